// The RabbitMQ backend against a real broker (tests/harness/rabbitmq_server).
#include <algorithm>
#include <cstring>
#include <thread>

#include "daemon/backends/rabbitmq/amqp_message_codec.h"
#include "daemon/backends/rabbitmq/rabbitmq_backend.h"
#include "tests/backends/rabbitmq_test_util.h"

namespace foxworker::testing {
namespace {

TEST_F(RabbitMqTest, PropertiesAndNestedHeadersRoundTripToThePlugin) {
  daemon_ = StartDaemon(Yaml());
  ASSERT_NE(daemon_, nullptr);

  // Nested: {"a": 1, "b": {"c": "d"}} and [1, "x", {"k": true}].
  amqp_table_entry_t inner[] = {Entry("c", Utf8("d"))};
  amqp_field_value_t inner_table;
  inner_table.kind = AMQP_FIELD_KIND_TABLE;
  inner_table.value.table = {1, inner};
  amqp_table_entry_t outer[] = {Entry("a", I32(1)), Entry("b", inner_table)};
  amqp_field_value_t nested;
  nested.kind = AMQP_FIELD_KIND_TABLE;
  nested.value.table = {2, outer};
  amqp_field_value_t flag;
  flag.kind = AMQP_FIELD_KIND_BOOLEAN;
  flag.value.boolean = 1;
  amqp_table_entry_t in_array[] = {Entry("k", flag)};
  amqp_field_value_t array_table;
  array_table.kind = AMQP_FIELD_KIND_TABLE;
  array_table.value.table = {1, in_array};
  amqp_field_value_t array_items[] = {I32(1), Utf8("x"), array_table};
  amqp_field_value_t list;
  list.kind = AMQP_FIELD_KIND_ARRAY;
  list.value.array = {3, array_items};
  amqp_field_value_t i64;
  i64.kind = AMQP_FIELD_KIND_I64;
  i64.value.i64 = int64_t{1} << 40;
  amqp_field_value_t f64;
  f64.kind = AMQP_FIELD_KIND_F64;
  f64.value.f64 = 2.5;
  amqp_field_value_t dec;
  dec.kind = AMQP_FIELD_KIND_DECIMAL;
  dec.value.decimal = {2, 12345};
  amqp_field_value_t ts;
  ts.kind = AMQP_FIELD_KIND_TIMESTAMP;
  ts.value.u64 = 1700000000;
  amqp_field_value_t none;
  none.kind = AMQP_FIELD_KIND_VOID;
  amqp_field_value_t bytes;
  bytes.kind = AMQP_FIELD_KIND_BYTES;
  bytes.value.bytes = amqp_cstring_bytes("raw-bytes");
  amqp_field_value_t i8;
  i8.kind = AMQP_FIELD_KIND_I8;
  i8.value.i8 = -7;
  amqp_field_value_t i16;
  i16.kind = AMQP_FIELD_KIND_I16;
  i16.value.i16 = 300;
  amqp_table_entry_t headers[] = {
      Entry("str", Utf8("hello")), Entry("i32", I32(-42)), Entry("i64", i64),
      Entry("flag", flag),         Entry("f64", f64),      Entry("dec", dec),
      Entry("ts", ts),             Entry("void", none),    Entry("bytes", bytes),
      Entry("i8", i8),             Entry("i16", i16),      Entry("nested", nested),
      Entry("list", list),
  };
  amqp_basic_properties_t p;
  p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_CONTENT_ENCODING_FLAG |
             AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_PRIORITY_FLAG |
             AMQP_BASIC_CORRELATION_ID_FLAG | AMQP_BASIC_REPLY_TO_FLAG |
             AMQP_BASIC_EXPIRATION_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_TIMESTAMP_FLAG |
             AMQP_BASIC_TYPE_FLAG | AMQP_BASIC_USER_ID_FLAG | AMQP_BASIC_APP_ID_FLAG;
  p.content_type = amqp_cstring_bytes("application/json");
  p.content_encoding = amqp_cstring_bytes("identity");
  p.headers = {static_cast<int>(sizeof(headers) / sizeof(headers[0])), headers};
  p.delivery_mode = AMQP_DELIVERY_PERSISTENT;
  p.priority = 7;
  p.correlation_id = amqp_cstring_bytes("corr-1");
  p.reply_to = amqp_cstring_bytes("replies");
  p.expiration = amqp_cstring_bytes("600000");
  p.message_id = amqp_cstring_bytes("msg-1");
  p.timestamp = 1700000000;
  p.type = amqp_cstring_bytes("probe");
  p.user_id = amqp_cstring_bytes("guest");  // must match the connection's user
  p.app_id = amqp_cstring_bytes("tests");
  ASSERT_TRUE(client_->Publish(queue_, "{\"x\":1}", &p));

  ASSERT_TRUE(WaitRecords(1));
  ProbeRecord r = Records()[0];
  EXPECT_EQ(r.fields["id"], "msg-1");
  EXPECT_EQ(r.fields["queue"], "work");
  EXPECT_EQ(r.fields["payload"], "{\"x\":1}");
  EXPECT_EQ(r.fields["content_type"], "application/json");
  EXPECT_EQ(r.fields["content_encoding"], "identity");
  EXPECT_EQ(r.fields["message_type"], "probe");
  EXPECT_EQ(r.fields["correlation_id"], "corr-1");
  EXPECT_EQ(r.fields["reply_to"], "replies");
  EXPECT_EQ(r.fields["app_id"], "tests");
  EXPECT_EQ(r.fields["user_id"], "guest");
  EXPECT_EQ(r.fields["expiration"], "600000");
  EXPECT_EQ(r.fields["message_id"], "msg-1");
  EXPECT_EQ(r.priority, 7);
  EXPECT_EQ(r.timestamp_ms, int64_t{1700000000} * 1000);
  EXPECT_EQ(r.attempt, 1u);
  std::map<std::string, std::string> expected = {
      {"str", "hello"},
      {"i32", "-42"},
      {"i64", "1099511627776"},
      {"flag", "true"},
      {"f64", "2.5"},
      {"dec", "123.45"},
      {"ts", "1700000000"},
      {"void", ""},
      {"bytes", "raw-bytes"},
      {"i8", "-7"},
      {"i16", "300"},
      {"nested", "{\"a\":1,\"b\":{\"c\":\"d\"}}"},
      {"list", "[1,\"x\",{\"k\":true}]"},
  };
  for (const auto& [name, value] : expected) {
    const std::string* got = r.Header(name);
    ASSERT_NE(got, nullptr) << "header " << name << " missing";
    EXPECT_EQ(*got, value) << "header " << name;
  }
  EXPECT_TRUE(WaitFor([&] { return client_->Count(queue_) == 0; }));
  auto* backend = static_cast<RabbitMqBackend*>(daemon_->FindBackend("rmq"));
  ASSERT_NE(backend, nullptr);
  EXPECT_TRUE(backend->State().connected);
}

TEST_F(RabbitMqTest, RetryThenAck) {
  daemon_ = StartDaemon(Yaml(2, 8, /*max_attempts=*/5));
  ASSERT_NE(daemon_, nullptr);
  ASSERT_TRUE(PublishTyped(*client_, queue_, "probe_fail", "body", {{"succeed_at", "3"}}, "r-1"));
  ASSERT_TRUE(WaitRecords(3));
  auto records = Records();
  ASSERT_EQ(records.size(), 3u);
  for (uint32_t i = 0; i < 3; ++i) {
    EXPECT_EQ(records[i].attempt, i + 1);
    EXPECT_EQ(records[i].fields["id"], "r-1");
    EXPECT_EQ(records[i].fields["payload"], "body");
    EXPECT_NE(records[i].Header("succeed_at"), nullptr);
  }
  ASSERT_NE(records[1].Header("x-retry-attempt"), nullptr);
  EXPECT_EQ(*records[1].Header("x-retry-attempt"), "2");
  // Acked: nothing left anywhere, nothing dead-lettered.
  EXPECT_TRUE(WaitFor([&] {
    return client_->Count(queue_) == 0 && client_->Count(queue_ + "-retry-250ms") == 0;
  }));
  EXPECT_EQ(client_->Count(queue_ + "-dlq"), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(Records().size(), 3u);
}

TEST_F(RabbitMqTest, ExhaustedRetriesGoToTheDeadLetterQueueWithEveryHeader) {
  daemon_ = StartDaemon(Yaml(2, 8, /*max_attempts=*/3));
  ASSERT_NE(daemon_, nullptr);
  amqp_basic_properties_t p = TypedProps("probe_fail");
  amqp_table_entry_t h[] = {Entry("custom", Utf8("keep")), Entry("n", I32(5))};
  p._flags |= AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG |
              AMQP_BASIC_CONTENT_TYPE_FLAG;
  p.headers = {2, h};
  p.correlation_id = amqp_cstring_bytes("corr-9");
  p.content_type = amqp_cstring_bytes("text/plain");
  ASSERT_TRUE(client_->Publish(queue_, "doomed", &p));

  ASSERT_TRUE(WaitFor([&] { return client_->Count(queue_ + "-dlq") == 1; },
                      std::chrono::seconds(30)));
  EXPECT_EQ(Records().size(), 3u);
  auto m = client_->Get(queue_ + "-dlq");
  ASSERT_TRUE(m.has_value());
  const amqp_basic_properties_t& dp = m->raw.properties;
  EXPECT_EQ(m->body, "doomed");
  EXPECT_EQ(HeaderOf(dp, "x-original-queue"), queue_);
  EXPECT_EQ(HeaderOf(dp, "x-original-routing-key"), queue_);
  EXPECT_EQ(HeaderOf(dp, "x-failure-reason"),
            "retries exhausted after 3 attempts: probe asked to fail");
  EXPECT_EQ(HeaderOf(dp, "x-final-attempt"), "3");
  std::string failed_at = HeaderOf(dp, "x-failed-at");
  EXPECT_EQ(failed_at.size(), 24u) << failed_at;
  EXPECT_EQ(failed_at.back(), 'Z');
  EXPECT_EQ(HeaderOf(dp, "x-message-type"), "probe_fail");
  EXPECT_EQ(HeaderOf(dp, "x-retry-attempt"), "<absent>");
  // The copy does not carry the original's count (a quorum DLQ adds its own 0).
  EXPECT_TRUE(HeaderOf(dp, "x-delivery-count") == "<absent>" ||
              HeaderOf(dp, "x-delivery-count") == "0");
  // The original headers keep their AMQP types, and the properties stay.
  EXPECT_EQ(HeaderOf(dp, "custom"), "keep");
  EXPECT_EQ(HeaderOf(dp, "n"), "5");
  EXPECT_EQ(HeaderKind(dp, "n"), AMQP_FIELD_KIND_I32);
  EXPECT_EQ(BytesToString(dp.correlation_id), "corr-9");
  EXPECT_EQ(BytesToString(dp.content_type), "text/plain");
  EXPECT_EQ(BytesToString(dp.type), "probe_fail");
  EXPECT_EQ(dp.delivery_mode, AMQP_DELIVERY_PERSISTENT);
  EXPECT_EQ(client_->Count(queue_), 0);
}

TEST_F(RabbitMqTest, RejectGoesStraightToTheDeadLetterQueue) {
  daemon_ = StartDaemon(Yaml());
  ASSERT_NE(daemon_, nullptr);
  ASSERT_TRUE(PublishTyped(*client_, queue_, "probe_reject", "bad", {}, "rej-1"));
  ASSERT_TRUE(WaitFor([&] { return client_->Count(queue_ + "-dlq") == 1; }));
  EXPECT_EQ(Records().size(), 1u);
  auto m = client_->Get(queue_ + "-dlq");
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(HeaderOf(m->raw.properties, "x-failure-reason"), "probe rejects");
  EXPECT_EQ(HeaderOf(m->raw.properties, "x-final-attempt"), "1");
  EXPECT_EQ(HeaderOf(m->raw.properties, "x-original-queue"), queue_);
  EXPECT_EQ(HeaderOf(m->raw.properties, "x-original-id"), "rej-1");
  EXPECT_EQ(BytesToString(m->raw.properties.message_id), "rej-1");
  EXPECT_EQ(client_->Count(queue_), 0);
}

// Without headers the backend keeps no copy of the original's properties:
// the dead-letter copy is rebuilt from the delivered message, and must still
// carry every property with its value.
TEST_F(RabbitMqTest, DeadLetterCopyWithoutHeadersKeepsEveryProperty) {
  daemon_ = StartDaemon(Yaml());
  ASSERT_NE(daemon_, nullptr);
  amqp_basic_properties_t p = TypedProps("probe_reject");
  p._flags |= AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_CONTENT_ENCODING_FLAG |
              AMQP_BASIC_CORRELATION_ID_FLAG | AMQP_BASIC_REPLY_TO_FLAG |
              AMQP_BASIC_APP_ID_FLAG | AMQP_BASIC_PRIORITY_FLAG | AMQP_BASIC_TIMESTAMP_FLAG |
              AMQP_BASIC_EXPIRATION_FLAG;
  p._flags &= ~(AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG);
  p.content_type = amqp_cstring_bytes("application/octet-stream");
  p.content_encoding = amqp_cstring_bytes("gzip");
  p.correlation_id = amqp_cstring_bytes("corr-7");
  p.reply_to = amqp_cstring_bytes("replies");
  p.app_id = amqp_cstring_bytes("billing");
  p.priority = 3;
  p.timestamp = 1700000000;
  p.expiration = amqp_cstring_bytes("600000");
  ASSERT_TRUE(client_->Publish(queue_, "plain", &p));
  ASSERT_TRUE(WaitFor([&] { return client_->Count(queue_ + "-dlq") == 1; }));
  auto m = client_->Get(queue_ + "-dlq");
  ASSERT_TRUE(m.has_value());
  const amqp_basic_properties_t& dp = m->raw.properties;
  EXPECT_EQ(m->body, "plain");
  EXPECT_EQ(BytesToString(dp.type), "probe_reject");
  EXPECT_EQ(BytesToString(dp.content_type), "application/octet-stream");
  EXPECT_EQ(BytesToString(dp.content_encoding), "gzip");
  EXPECT_EQ(BytesToString(dp.correlation_id), "corr-7");
  EXPECT_EQ(BytesToString(dp.reply_to), "replies");
  EXPECT_EQ(BytesToString(dp.app_id), "billing");
  EXPECT_EQ(BytesToString(dp.expiration), "600000");
  ASSERT_TRUE(dp._flags & AMQP_BASIC_PRIORITY_FLAG);
  EXPECT_EQ(dp.priority, 3);
  ASSERT_TRUE(dp._flags & AMQP_BASIC_TIMESTAMP_FLAG);
  EXPECT_EQ(dp.timestamp, 1700000000u);
  EXPECT_EQ(dp.delivery_mode, AMQP_DELIVERY_PERSISTENT);
  EXPECT_FALSE(dp._flags & AMQP_BASIC_USER_ID_FLAG);
  // The generated id becomes the copy's message id.
  const std::string id = BytesToString(dp.message_id);
  EXPECT_EQ(id.rfind("amqp-", 0), 0u) << id;
  EXPECT_EQ(id.size(), 37u) << id;
  EXPECT_EQ(HeaderOf(dp, "x-original-id"), id);
  EXPECT_EQ(HeaderOf(dp, "x-failure-reason"), "probe rejects");
  EXPECT_EQ(HeaderOf(dp, "x-first-seen-at"), "2023-11-14T22:13:20.000Z");
  EXPECT_EQ(client_->Count(queue_), 0);
}

// Acks above a delivery still being handled go out without it (never as a
// multiple ack that would cover it), within a short wait: the broker hands
// out exactly as many new deliveries, and the held one can still be
// released afterwards.
TEST_F(RabbitMqTest, AcksAboveAnUnsettledDeliveryDoNotCoverIt) {
  constexpr int kPrefetch = 4;
  RabbitMqBackendOptions options;
  options.url = server_->url();
  RabbitMqBackend backend("rmq", options);
  auto source = backend.OpenSource(SourceOptions{"work", queue_, kPrefetch, 3});
  ASSERT_TRUE(source.ok()) << source.status().message();
  ASSERT_TRUE(backend.Start().ok());
  ASSERT_TRUE((*source)->Start([] {}).ok());
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(client_->Publish(queue_, std::to_string(i)));
  std::vector<std::unique_ptr<Delivery>> held;
  auto fetch_until = [&](size_t n) {
    return WaitFor([&] {
      (*source)->Fetch(100, held);
      return held.size() >= n;
    });
  };
  ASSERT_TRUE(fetch_until(kPrefetch));
  std::sort(held.begin(), held.end(), [](const auto& a, const auto& b) { return a->tag < b->tag; });
  const uint64_t lowest = held[0]->tag;
  // Ack all but the lowest tag; it stays unsettled.
  std::vector<Settlement> acks;
  for (size_t i = held.size(); i-- > 1;) acks.push_back(Settlement{std::move(held[i]), Outcome::Ack()});
  held.resize(1);
  (*source)->Settle(acks);
  ASSERT_TRUE(fetch_until(kPrefetch));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  (*source)->Fetch(100, held);
  EXPECT_EQ(held.size(), static_cast<size_t>(kPrefetch));  // not one more
  EXPECT_EQ(held[0]->tag, lowest);
  EXPECT_EQ(client_->Count(queue_), 10 - kPrefetch - (kPrefetch - 1));
  // The held one is still the broker's to take back.
  std::vector<Settlement> release;
  release.push_back(Settlement{std::move(held[0]), Outcome::Release()});
  held.erase(held.begin());
  (*source)->Settle(release);
  EXPECT_TRUE(WaitFor([&] {
    (*source)->Fetch(100, held);
    return held.size() == static_cast<size_t>(kPrefetch);
  }));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(backend.GetCounters().connections, 1u);  // no channel error
  EXPECT_EQ(backend.GetCounters().dropped_settlements, 0u);
  std::vector<Settlement> rest;
  for (auto& d : held) rest.push_back(Settlement{std::move(d), Outcome::Ack()});
  held.clear();
  (*source)->Settle(rest);
  (*source)->StopFetching();
  backend.Stop(std::chrono::steady_clock::now() + std::chrono::seconds(5));
}

// Drives a source directly: with nothing settled the broker hands out exactly
// the prefetch window and no more; each ack lets exactly one more in.
TEST_F(RabbitMqTest, PrefetchIsNeverExceeded) {
  constexpr int kPrefetch = 4;
  RabbitMqBackendOptions options;
  options.url = server_->url();
  RabbitMqBackend backend("rmq", options);
  auto source = backend.OpenSource(SourceOptions{"work", queue_, kPrefetch, 3});
  ASSERT_TRUE(source.ok()) << source.status().message();
  ASSERT_TRUE(backend.Start().ok());
  ASSERT_TRUE((*source)->Start([] {}).ok());
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(client_->Publish(queue_, std::to_string(i)));

  std::vector<std::unique_ptr<Delivery>> held;
  auto fetch_until = [&](size_t n) {
    return WaitFor([&] {
      (*source)->Fetch(100, held);
      return held.size() >= n;
    });
  };
  ASSERT_TRUE(fetch_until(kPrefetch));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  (*source)->Fetch(100, held);
  EXPECT_EQ(held.size(), static_cast<size_t>(kPrefetch));
  EXPECT_TRUE(WaitFor([&] { return client_->Count(queue_) == 20 - kPrefetch; }));

  // Ack two (out of order: the second and the first) and get exactly two more.
  std::vector<Settlement> acks;
  acks.push_back(Settlement{std::move(held[1]), Outcome::Ack()});
  acks.push_back(Settlement{std::move(held[0]), Outcome::Ack()});
  held.erase(held.begin(), held.begin() + 2);
  (*source)->Settle(acks);
  ASSERT_TRUE(fetch_until(kPrefetch));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  (*source)->Fetch(100, held);
  EXPECT_EQ(held.size(), static_cast<size_t>(kPrefetch));
  EXPECT_EQ(client_->Count(queue_), 20 - kPrefetch - 2);

  // Settle the rest in one batch, with releases: released ones come back.
  while (client_->Count(queue_) + static_cast<int64_t>(held.size()) > 0) {
    std::vector<Settlement> batch;
    for (auto& d : held) batch.push_back(Settlement{std::move(d), Outcome::Ack()});
    held.clear();
    (*source)->Settle(batch);
    if (!WaitFor([&] {
          (*source)->Fetch(100, held);
          return !held.empty() || client_->Count(queue_) == 0;
        }))
      break;
    EXPECT_LE(held.size(), static_cast<size_t>(kPrefetch));
  }
  EXPECT_EQ(client_->Count(queue_), 0);
  EXPECT_TRUE(held.empty());
  EXPECT_EQ(backend.GetCounters().dropped_settlements, 0u);
  (*source)->StopFetching();
  backend.Stop(std::chrono::steady_clock::now() + std::chrono::seconds(5));
}

TEST_F(RabbitMqTest, ShortRetryIsNotHeldBehindALongOne) {
  daemon_ = StartDaemon(Yaml(2, 8, /*max_attempts=*/5));
  ASSERT_NE(daemon_, nullptr);
  ASSERT_TRUE(PublishTyped(*client_, queue_, "probe_fail", "long",
                           {{"delay_ms", "60000"}, {"succeed_at", "2"}}, "long"));
  ASSERT_TRUE(WaitRecords(1));
  ASSERT_TRUE(WaitFor([&] { return client_->Count(queue_ + "-retry-1m") == 1; }));
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(PublishTyped(*client_, queue_, "probe_fail", "short",
                           {{"delay_ms", "500"}, {"succeed_at", "2"}}, "short"));
  ASSERT_TRUE(WaitFor(
      [&] {
        for (const auto& r : Records())
          if (r.fields.at("id") == "short" && r.attempt == 2) return true;
        return false;
      },
      std::chrono::seconds(15)));
  const auto waited = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(waited, std::chrono::milliseconds(400));
  EXPECT_LT(waited, std::chrono::seconds(10));
  for (const auto& r : Records()) EXPECT_FALSE(r.fields.at("id") == "long" && r.attempt == 2);
  EXPECT_EQ(client_->Count(queue_ + "-retry-1m"), 1);
}

}  // namespace
}  // namespace foxworker::testing
