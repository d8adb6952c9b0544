// The host services table (daemon/plugins/host_api.cc) called directly, as a
// plugin would, over a Delivery.
#include <glog/logging.h>
#include "daemon/plugins/host_api.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "daemon/base/clock.h"
#include "daemon/core/metrics.h"
#include "tests/plugins/plugin_harness.h"

namespace foxworker::testing {
namespace {

#define EXPECT_CONTAINS(haystack, needle) \
  EXPECT_NE((haystack).find(needle), std::string::npos) << "in: " << (haystack)

std::string S(foxw_str s) { return std::string(s.ptr, s.len); }

const foxw_host_api& Api() { return *HostApi(); }

TEST(HostApiTest, DescribesItself) {
  EXPECT_EQ(Api().struct_size, sizeof(foxw_host_api));
  EXPECT_EQ(Api().abi_major, FOXW_ABI_MAJOR);
  EXPECT_EQ(Api().abi_minor, FOXW_ABI_MINOR);
  // Append-only table: every 1.0 entry is set.
  const auto* fns = reinterpret_cast<const void* const*>(reinterpret_cast<const char*>(&Api()) +
                                                         offsetof(foxw_host_api, log_enabled));
  size_t count = (sizeof(foxw_host_api) - offsetof(foxw_host_api, log_enabled)) / sizeof(void*);
  for (size_t i = 0; i < count; ++i) EXPECT_NE(fns[i], nullptr) << "entry " << i;
}

TEST(HostApiTest, MessageAccessorsBorrowTheDeliverysStrings) {
  auto d = MakeDelivery("the payload", "image.resize", "backend-id");
  d->msg.props.content_type = "application/json";
  d->msg.props.content_encoding = "gzip";
  d->msg.props.correlation_id = "corr";
  d->msg.props.reply_to = "replies";
  d->msg.props.app_id = "app";
  d->msg.props.user_id = "user";
  d->msg.props.expiration = "60000";
  d->msg.props.message_id = "producer-id";
  d->msg.props.priority = 7;
  d->msg.props.timestamp_ms = 1700000000123;
  d->msg.enqueued_at_ms = 1700000000456;
  d->msg.attempt = 4;
  const foxw_message* m = AsForeign(d.get());

  EXPECT_EQ(S(Api().msg_id(m)), "backend-id");
  EXPECT_EQ(Api().msg_id(m).ptr, d->msg.id.data());  // borrowed, not copied
  EXPECT_EQ(S(Api().msg_queue(m)), "jobs");
  EXPECT_EQ(S(Api().msg_payload(m)), "the payload");
  EXPECT_EQ(S(Api().msg_property(m, FOXW_PROP_CONTENT_TYPE)), "application/json");
  EXPECT_EQ(S(Api().msg_property(m, FOXW_PROP_CONTENT_ENCODING)), "gzip");
  EXPECT_EQ(S(Api().msg_property(m, FOXW_PROP_MESSAGE_TYPE)), "image.resize");
  EXPECT_EQ(S(Api().msg_property(m, FOXW_PROP_CORRELATION_ID)), "corr");
  EXPECT_EQ(S(Api().msg_property(m, FOXW_PROP_REPLY_TO)), "replies");
  EXPECT_EQ(S(Api().msg_property(m, FOXW_PROP_APP_ID)), "app");
  EXPECT_EQ(S(Api().msg_property(m, FOXW_PROP_USER_ID)), "user");
  EXPECT_EQ(S(Api().msg_property(m, FOXW_PROP_EXPIRATION)), "60000");
  EXPECT_EQ(S(Api().msg_property(m, FOXW_PROP_MESSAGE_ID)), "producer-id");
  EXPECT_EQ(Api().msg_property(m, 999).len, 0u);  // unknown: empty
  EXPECT_EQ(Api().msg_priority(m), 7);
  EXPECT_EQ(Api().msg_timestamp_ms(m), 1700000000123);
  EXPECT_EQ(Api().msg_enqueued_at_ms(m), 1700000000456);
  EXPECT_EQ(Api().msg_attempt(m), 4u);
}

TEST(HostApiTest, HeadersByNameAndByIndex) {
  auto d = MakeDelivery("");
  d->msg.headers = {{"a", "1"}, {"b", "{\"nested\":true}"}};
  const foxw_message* m = AsForeign(d.get());
  foxw_str value{nullptr, 0};
  ASSERT_TRUE(Api().msg_header(m, "b", 1, &value));
  EXPECT_EQ(S(value), "{\"nested\":true}");
  EXPECT_FALSE(Api().msg_header(m, "bx", 1 + 1, &value));
  EXPECT_TRUE(Api().msg_header(m, "abc", 1, &value));  // length-delimited name
  EXPECT_EQ(S(value), "1");
  ASSERT_EQ(Api().msg_header_count(m), 2u);
  foxw_str name{nullptr, 0};
  ASSERT_TRUE(Api().msg_header_at(m, 1, &name, &value));
  EXPECT_EQ(S(name), "b");
  EXPECT_FALSE(Api().msg_header_at(m, 2, &name, &value));
}

// ABI 1.1: what the producer set, as it set it.
TEST(HostApiTest, NumericPropertiesTellSetFromUnset) {
  auto d = MakeDelivery("");
  const foxw_message* m = AsForeign(d.get());
  int64_t v = -7;
  for (int32_t prop : std::vector<int32_t>{FOXW_PROP_PRIORITY, FOXW_PROP_TIMESTAMP_MS,
                                           FOXW_PROP_DELIVERY_MODE, FOXW_PROP_CONTENT_TYPE, 999}) {
    EXPECT_FALSE(Api().msg_property_int(m, prop, &v)) << prop;
    EXPECT_EQ(v, -7) << "untouched when not set";
  }
  Properties& p = d->msg.props;
  p.priority = 255;  // clamped, as msg_priority reads it
  p.priority_set = true;
  p.sent_priority = 300;
  p.timestamp_set = true;  // a producer's timestamp of 0 is a timestamp
  p.delivery_mode = 2;
  p.cluster_id = "c9";
  ASSERT_TRUE(Api().msg_property_int(m, FOXW_PROP_PRIORITY, &v));
  EXPECT_EQ(v, 300);
  EXPECT_EQ(Api().msg_priority(m), 255);
  ASSERT_TRUE(Api().msg_property_int(m, FOXW_PROP_TIMESTAMP_MS, &v));
  EXPECT_EQ(v, 0);
  ASSERT_TRUE(Api().msg_property_int(m, FOXW_PROP_DELIVERY_MODE, &v));
  EXPECT_EQ(v, 2);
  EXPECT_TRUE(Api().msg_property_int(m, FOXW_PROP_PRIORITY, nullptr));
  EXPECT_EQ(S(Api().msg_property(m, FOXW_PROP_CLUSTER_ID)), "c9");
  EXPECT_EQ(Api().msg_property(m, FOXW_PROP_PRIORITY).len, 0u);  // numeric: not a string
}

TEST(HostApiTest, HeaderTypesTellNullFromEmpty) {
  auto d = MakeDelivery("");
  const foxw_message* m = AsForeign(d.get());
  d->msg.headers = {{"s", ""}, {"n", ""}, {"t", "{}"}};
  // A backend without types (Redis, local): every header is a string.
  EXPECT_EQ(Api().msg_header_type(m, 0), FOXW_HEADER_STRING);
  EXPECT_EQ(Api().msg_header_type(m, 1), FOXW_HEADER_STRING);
  EXPECT_EQ(Api().msg_header_type(m, 3), FOXW_HEADER_NONE);
  d->msg.header_types = {HeaderType::kString, HeaderType::kNull, HeaderType::kTable};
  EXPECT_EQ(Api().msg_header_type(m, 0), FOXW_HEADER_STRING);
  EXPECT_EQ(Api().msg_header_type(m, 1), FOXW_HEADER_NULL);
  EXPECT_EQ(Api().msg_header_type(m, 2), FOXW_HEADER_TABLE);
  EXPECT_EQ(Api().msg_header_type(m, 3), FOXW_HEADER_NONE);
  EXPECT_EQ(Api().msg_header_type(nullptr, 0), FOXW_HEADER_NONE);
  // Every foxw_header_type value is the HeaderType of the same number.
  static_assert(static_cast<int>(HeaderType::kArray) == FOXW_HEADER_ARRAY);
  static_assert(static_cast<int>(HeaderType::kBytes) == FOXW_HEADER_BYTES);
}

TEST(HostApiTest, DeadlineAndCancellation) {
  auto d = MakeDelivery("");
  const foxw_message* m = AsForeign(d.get());
  EXPECT_EQ(Api().msg_deadline_ns(m), UINT64_MAX);
  EXPECT_FALSE(Api().msg_cancelled(m));

  d->deadline_ns = MonotonicNs() + 60'000'000'000ull;
  EXPECT_EQ(Api().msg_deadline_ns(m), d->deadline_ns);
  EXPECT_FALSE(Api().msg_cancelled(m));
  d->deadline_ns = MonotonicNs() - 1;
  EXPECT_TRUE(Api().msg_cancelled(m));  // the deadline passed

  d->deadline_ns = Delivery::kNoDeadline;
  d->cancelled.store(true);
  EXPECT_TRUE(Api().msg_cancelled(m));
  d->cancelled.store(false);
  std::atomic<bool> cancel_all{true};
  d->cancel_all = &cancel_all;
  EXPECT_TRUE(Api().msg_cancelled(m));  // shutdown timeout
}

TEST(HostApiTest, ClocksAgreeWithTheDaemons) {
  uint64_t before = MonotonicNs();
  uint64_t host = Api().monotonic_ns();
  EXPECT_GE(host, before);
  EXPECT_LT(host - before, 1'000'000'000ull);
  EXPECT_NEAR(static_cast<double>(Api().wall_time_ms()), static_cast<double>(WallMs()), 1000.0);
}

TEST(HostApiTest, LogLevelsMapOntoGlog) {
  int saved_v = FLAGS_v;
  int saved_min = FLAGS_minloglevel;
  foxw_plugin_ctx ctx;
  ctx.plugin_name = "resizer";

  FLAGS_v = 0;
  FLAGS_minloglevel = google::GLOG_INFO;
  EXPECT_FALSE(Api().log_enabled(&ctx, FOXW_LOG_TRACE));
  EXPECT_FALSE(Api().log_enabled(&ctx, FOXW_LOG_DEBUG));
  EXPECT_TRUE(Api().log_enabled(&ctx, FOXW_LOG_INFO));
  FLAGS_v = 1;
  EXPECT_TRUE(Api().log_enabled(&ctx, FOXW_LOG_DEBUG));
  EXPECT_FALSE(Api().log_enabled(&ctx, FOXW_LOG_TRACE));
  FLAGS_v = 2;
  EXPECT_TRUE(Api().log_enabled(&ctx, FOXW_LOG_TRACE));
  EXPECT_TRUE(Api().log_enabled(&ctx, -5));  // clamped to TRACE
  FLAGS_minloglevel = google::GLOG_WARNING;
  EXPECT_FALSE(Api().log_enabled(&ctx, FOXW_LOG_INFO));
  EXPECT_TRUE(Api().log_enabled(&ctx, FOXW_LOG_WARN));
  EXPECT_TRUE(Api().log_enabled(&ctx, 99));  // clamped to ERROR

  {
    LogCapture capture;
    const char kText[] = "resized 3 images\n";
    Api().log(&ctx, FOXW_LOG_INFO, kText, sizeof(kText) - 1);  // below minloglevel: dropped
    Api().log(&ctx, FOXW_LOG_ERROR, kText, sizeof(kText) - 1);
    auto lines = capture.Matching("[plugin resizer]");
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_EQ(lines[0], "[plugin resizer] resized 3 images");  // trailing newline dropped
    EXPECT_EQ(capture.lines().back().first, google::GLOG_ERROR);
  }
  FLAGS_v = saved_v;
  FLAGS_minloglevel = saved_min;
}

TEST(HostApiTest, MetricsAreDefinedOnlyWhileDefining) {
  // The process-wide registry outlives a test: a fresh name per run keeps
  // --gtest_repeat honest.
  static int run = 0;
  const std::string name = "hostapitest" + std::to_string(run++);
  const std::string prefix = "foxworker_plugin_" + name + "_";
  foxw_plugin_ctx ctx;
  ctx.plugin_name = name;
  char err[256] = {0};
  EXPECT_EQ(Api().metric_define(&ctx, FOXW_METRIC_COUNTER, "late_total", "h", err, sizeof(err)),
            nullptr);
  EXPECT_STREQ(err, "metric_define: metrics can only be defined during init or create");

  DefiningScope defining(&ctx);  // as init and create run
  foxw_metric* jobs =
      Api().metric_define(&ctx, FOXW_METRIC_COUNTER, "jobs_total", "Jobs done", err, sizeof(err));
  ASSERT_NE(jobs, nullptr) << err;
  // Every instance defines its metrics: same name and kind, same metric.
  EXPECT_EQ(
      Api().metric_define(&ctx, FOXW_METRIC_COUNTER, "jobs_total", "Jobs done", err, sizeof(err)),
      jobs);
  foxw_metric* depth =
      Api().metric_define(&ctx, FOXW_METRIC_GAUGE, "depth", "Depth", err, sizeof(err));
  foxw_metric* took =
      Api().metric_define(&ctx, FOXW_METRIC_HISTOGRAM, "took_seconds", "Took", err, sizeof(err));
  ASSERT_NE(depth, nullptr);
  ASSERT_NE(took, nullptr);

  EXPECT_EQ(Api().metric_define(&ctx, FOXW_METRIC_GAUGE, "jobs_total", "x", err, sizeof(err)),
            nullptr);
  EXPECT_CONTAINS(std::string(err), "already defined as a counter, not as a gauge");
  EXPECT_EQ(Api().metric_define(&ctx, FOXW_METRIC_COUNTER, "bad-name", "x", err, sizeof(err)),
            nullptr);
  EXPECT_CONTAINS(std::string(err), "invalid metric name \"" + prefix + "bad-name\"");
  EXPECT_EQ(Api().metric_define(&ctx, 42, "x", "x", err, sizeof(err)), nullptr);
  EXPECT_CONTAINS(std::string(err), "unknown metric kind 42");

  Api().metric_update(jobs, 2);
  Api().metric_update(jobs, 1);
  Api().metric_update(jobs, -5);  // counters only go up
  Api().metric_update(depth, 12);
  Api().metric_update(took, 0.003);
  Api().metric_update(nullptr, 1);  // ignored
  std::string text = MetricsRegistry::Default().RenderPrometheus();
  EXPECT_CONTAINS(text, "# HELP " + prefix + "jobs_total Jobs done\n# TYPE " + prefix +
                            "jobs_total counter\n" + prefix + "jobs_total 3\n");
  EXPECT_CONTAINS(text, prefix + "depth 12\n");
  EXPECT_CONTAINS(text, prefix + "took_seconds_bucket{le=\"0.005\"} 1\n");
  EXPECT_CONTAINS(text, prefix + "took_seconds_count 1\n");
}

TEST(HostApiTest, PublishWithoutAPublisherFailsClearly) {
  foxw_plugin_ctx ctx;
  ctx.plugin_name = "p";
  foxw_publish pub{};
  pub.struct_size = sizeof(pub);
  pub.queue = {"next", 4};
  char err[256] = {0};
  EXPECT_EQ(Api().publish(&ctx, nullptr, &pub, err, sizeof(err)), -1);
  EXPECT_STREQ(err, "publishing is not available");
}

TEST(HostApiTest, PublishHandsTheRequestToTheSupervisor) {
  foxw_plugin_ctx ctx;
  ctx.plugin_name = "p";
  std::string seen_queue, seen_payload, seen_header;
  const Delivery* seen_parent = nullptr;
  ctx.publish = [&](const foxw_publish& p, const Delivery* parent) {
    seen_queue.assign(p.queue.ptr, p.queue.len);
    seen_payload.assign(p.payload.ptr, p.payload.len);
    if (p.header_count == 1) seen_header.assign(p.headers[0].value.ptr, p.headers[0].value.len);
    seen_parent = parent;
    return p.queue.len == 4 ? Status::Ok() : Status::NotFound("no queue named that");
  };
  auto parent = MakeDelivery("");
  foxw_header header{{"k", 1}, {"v", 1}};
  foxw_publish pub{};
  pub.struct_size = sizeof(pub);
  pub.queue = {"next", 4};
  pub.payload = {"body", 4};
  pub.headers = &header;
  pub.header_count = 1;
  char err[256] = {0};
  EXPECT_EQ(Api().publish(&ctx, AsForeign(parent.get()), &pub, err, sizeof(err)), 0) << err;
  EXPECT_EQ(seen_queue, "next");
  EXPECT_EQ(seen_payload, "body");
  EXPECT_EQ(seen_header, "v");
  EXPECT_EQ(seen_parent, parent.get());

  pub.queue = {"other", 5};
  EXPECT_EQ(Api().publish(&ctx, nullptr, &pub, err, sizeof(err)), -1);
  EXPECT_STREQ(err, "publish to \"other\": no queue named that");

  pub.struct_size = sizeof(size_t);
  EXPECT_EQ(Api().publish(&ctx, nullptr, &pub, err, sizeof(err)), -1);
  EXPECT_CONTAINS(std::string(err), "foxw_publish.struct_size is 8");

  pub.struct_size = sizeof(pub);
  pub.headers = nullptr;
  EXPECT_EQ(Api().publish(&ctx, nullptr, &pub, err, sizeof(err)), -1);
  EXPECT_STREQ(err, "publish: header_count is set but headers is NULL");
}

// ABI 1.1's publish fields reach the supervisor; a 1.0 plugin's smaller
// struct leaves them empty whatever lies past its end.
TEST(HostApiTest, PublishCarriesThe11FieldsOnlyFromA11Struct) {
  foxw_plugin_ctx ctx;
  ctx.plugin_name = "p";
  std::string id, app, encoding;
  ctx.publish = [&](const foxw_publish& p, const Delivery*) {
    id.assign(p.message_id.ptr == nullptr ? "" : std::string(p.message_id.ptr, p.message_id.len));
    app.assign(p.app_id.ptr == nullptr ? "" : std::string(p.app_id.ptr, p.app_id.len));
    encoding.assign(p.content_encoding.ptr == nullptr
                        ? ""
                        : std::string(p.content_encoding.ptr, p.content_encoding.len));
    return Status::Ok();
  };
  foxw_publish pub{};
  pub.struct_size = sizeof(pub);
  pub.queue = {"next", 4};
  pub.message_id = {"id-1", 4};
  pub.app_id = {"billing", 7};
  pub.content_encoding = {"gzip", 4};
  char err[256] = {0};
  ASSERT_EQ(Api().publish(&ctx, nullptr, &pub, err, sizeof(err)), 0) << err;
  EXPECT_EQ(id, "id-1");
  EXPECT_EQ(app, "billing");
  EXPECT_EQ(encoding, "gzip");

  pub.struct_size = FOXW_PUBLISH_SIZE_1_0;  // a 1.0 plugin: the rest is not its
  ASSERT_EQ(Api().publish(&ctx, nullptr, &pub, err, sizeof(err)), 0) << err;
  EXPECT_EQ(id, "");
  EXPECT_EQ(app, "");
  EXPECT_EQ(encoding, "");

  pub.struct_size = sizeof(pub);
  pub.app_id = {nullptr, 3};
  EXPECT_EQ(Api().publish(&ctx, nullptr, &pub, err, sizeof(err)), -1);
  EXPECT_STREQ(err, "publish: app_id.len is set but its ptr is NULL");
}

TEST(HostApiTest, CompletingAMessageThatIsNotPendingFails) {
  auto d = MakeDelivery("");
  EXPECT_EQ(Api().complete(AsForeign(d.get()), FOXW_ACK, nullptr, 0, 0), -1);
  EXPECT_EQ(Api().complete(nullptr, FOXW_ACK, nullptr, 0, 0), -1);
}

TEST(HostApiTest, ErrorsAreTruncatedToTheCallersBuffer) {
  foxw_plugin_ctx ctx;
  char err[8];
  std::memset(err, 'x', sizeof(err));
  EXPECT_EQ(Api().metric_define(&ctx, FOXW_METRIC_COUNTER, "a", "h", err, sizeof(err)), nullptr);
  EXPECT_EQ(std::strlen(err), sizeof(err) - 1);
}

// Typed config reads: conversions, absence, and which version a thread
// sees while a reload is staged but not committed.
TEST(HostApiConfigTest, TypedReadsConvertAndFollowCommits) {
  foxw_plugin_ctx ctx;
  ctx.plugin_name = "typed";
  SetPluginConfig(&ctx, R"({"name":"ada","n":"42","big":42,"ratio":0.5,"on":"yes",)"
                        R"("off":false,"wait":"1500ms","ms":250,"tags":["a","b"],)"
                        R"("env":{"K":"V"},"mixed":[1],"nothing":null})");
  CommitPluginConfig(&ctx);
  const foxw_host_api& api = Api();
  foxw_str s{nullptr, 0};
  ASSERT_EQ(api.config_string(&ctx, "name", &s), FOXW_CONFIG_OK);
  EXPECT_EQ(std::string(s.ptr, s.len), "ada");
  ASSERT_EQ(api.config_string(&ctx, "big", &s), FOXW_CONFIG_OK);  // a number as its text
  EXPECT_EQ(std::string(s.ptr, s.len), "42");
  int64_t n = -1;
  EXPECT_EQ(api.config_int(&ctx, "n", &n), FOXW_CONFIG_OK);
  EXPECT_EQ(n, 42);
  EXPECT_EQ(api.config_int(&ctx, "name", &n), FOXW_CONFIG_WRONG_TYPE);
  EXPECT_EQ(n, 42);  // untouched
  EXPECT_EQ(api.config_int(&ctx, "absent", &n), FOXW_CONFIG_ABSENT);
  EXPECT_EQ(api.config_int(&ctx, "nothing", &n), FOXW_CONFIG_ABSENT);
  double d = 0;
  EXPECT_EQ(api.config_double(&ctx, "ratio", &d), FOXW_CONFIG_OK);
  EXPECT_EQ(d, 0.5);
  bool b = false;
  EXPECT_EQ(api.config_bool(&ctx, "on", &b), FOXW_CONFIG_OK);
  EXPECT_TRUE(b);
  EXPECT_EQ(api.config_bool(&ctx, "off", &b), FOXW_CONFIG_OK);
  EXPECT_FALSE(b);
  EXPECT_EQ(api.config_bool(&ctx, "name", &b), FOXW_CONFIG_WRONG_TYPE);
  uint64_t ms = 0;
  EXPECT_EQ(api.config_duration_ms(&ctx, "wait", &ms), FOXW_CONFIG_OK);
  EXPECT_EQ(ms, 1500u);
  EXPECT_EQ(api.config_duration_ms(&ctx, "ms", &ms), FOXW_CONFIG_OK);
  EXPECT_EQ(ms, 250u);
  EXPECT_EQ(api.config_duration_ms(&ctx, "name", &ms), FOXW_CONFIG_WRONG_TYPE);
  size_t count = 0;
  EXPECT_EQ(api.config_count(&ctx, "tags", &count), FOXW_CONFIG_OK);
  EXPECT_EQ(count, 2u);
  foxw_str name{nullptr, 0}, value{nullptr, 0};
  EXPECT_EQ(api.config_item(&ctx, "tags", 1, &name, &value), FOXW_CONFIG_OK);
  EXPECT_EQ(name.len, 0u);
  EXPECT_EQ(std::string(value.ptr, value.len), "b");
  EXPECT_EQ(api.config_item(&ctx, "tags", 2, &name, &value), FOXW_CONFIG_ABSENT);
  EXPECT_EQ(api.config_item(&ctx, "env", 0, &name, &value), FOXW_CONFIG_OK);
  EXPECT_EQ(std::string(name.ptr, name.len) + "=" + std::string(value.ptr, value.len), "K=V");
  EXPECT_EQ(api.config_item(&ctx, "mixed", 0, &name, &value), FOXW_CONFIG_WRONG_TYPE);
  EXPECT_EQ(api.config_count(&ctx, "name", &count), FOXW_CONFIG_WRONG_TYPE);

  // A reload stages a new config: create() on the control thread sees it,
  // running handlers (other threads) keep the committed one until commit.
  const foxw_str kept = s;  // borrowed: stays valid across reloads
  SetPluginConfig(&ctx, R"({"name":"grace"})");
  auto read_name = [&] {
    foxw_str v{nullptr, 0};
    api.config_string(&ctx, "name", &v);
    return std::string(v.ptr, v.len);
  };
  EXPECT_EQ(read_name(), "ada");
  {
    DefiningScope defining(&ctx);
    EXPECT_EQ(read_name(), "grace");
    std::string other;
    std::thread handler([&] { other = read_name(); });
    handler.join();
    EXPECT_EQ(other, "ada");
  }
  CommitPluginConfig(&ctx);
  EXPECT_EQ(read_name(), "grace");
  EXPECT_EQ(std::string(kept.ptr, kept.len), "42");
  // Going back to an earlier config reuses its version.
  const size_t versions = ctx.versions.size();
  SetPluginConfig(&ctx, R"({"name":"grace"})");
  EXPECT_EQ(ctx.versions.size(), versions);
}

// Init and create run on the control thread: publish is refused there and
// metrics may be defined, while a handler on another thread publishes.
TEST(HostApiConfigTest, DefiningIsPerThread) {
  foxw_plugin_ctx ctx;
  ctx.plugin_name = "perthread";
  int published = 0;
  ctx.publish = [&](const foxw_publish&, const Delivery*) {
    ++published;
    return Status::Ok();
  };
  foxw_publish pub{};
  pub.struct_size = sizeof(pub);
  pub.queue = foxw_str{"q", 1};
  char err[256] = {0};
  DefiningScope defining(&ctx);
  EXPECT_EQ(Api().publish(&ctx, nullptr, &pub, err, sizeof(err)), -1);
  EXPECT_STREQ(err, "publish is not available during init or create");
  int32_t from_handler = -2;
  std::thread handler([&] { from_handler = Api().publish(&ctx, nullptr, &pub, err, sizeof(err)); });
  handler.join();
  EXPECT_EQ(from_handler, 0) << err;
  EXPECT_EQ(published, 1);
}

}  // namespace
}  // namespace foxworker::testing
