// Interop with real third-party producers (issue 16): messages published by
// python3-pika, node's amqplib and amqp-publish (amqp-tools) on a real
// RabbitMQ, and entries added by redis-cli and python3-redis (redis-py) on a
// real Redis, run through the daemon (in-process Supervisor) with the probe
// plugin (tests/backends/rabbitmq_probe_plugin.c), whose handler fails every
// attempt; with max_attempts 2 each message makes one retry copy and one
// dead letter. Each test then compares, field by field:
//   - what the client meant to send (the expectations below) with what the
//     broker holds (a second queue bound to the same fanout exchange keeps a
//     copy of the original; on Redis the stream's first entry);
//   - what the plugin saw on attempt 1 with that original (every property,
//     every header in the producer's order, the payload, the id);
//   - attempt 2 (the retry copy as delivered) with attempt 1, and on Redis
//     the retry copy's entry with the original entry;
//   - the dead letter, read back from the broker (basic.get / XRANGE), with
//     the original: every property and every header with its AMQP type and
//     value (by name: RabbitMQ sorts the headers of a message it
//     re-encodes; Redis: every field, in order, duplicates kept), plus the
//     dead-letter fields.
// FOXWORKER_INTEROP_DUMP=1 prints what each AMQP test compared.
// docs/backends/rabbitmq.md and redis.md, "Interop", list what each client
// sends. The clients are installed by scripts/install-deps; a missing one
// fails the test under CI=true and skips it (saying why) elsewhere.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <foxworker/plugin.h>

#include "daemon/backends/rabbitmq/amqp_message_id.h"
#include "daemon/base/clock.h"
#include "daemon/core/dead_letter.h"
#include "tests/backends/rabbitmq_test_util.h"
#include "tests/backends/redis_test_util.h"

namespace foxworker::testing {
namespace {

const std::string kInteropDir = INTEROP_DIR;
// Debian's python: python3-pika and python3-redis are in its dist-packages
// (a python3 earlier on PATH, pyenv's say, does not see them).
const std::string kDebianPython = "/usr/bin/python3";

// Bytes as a C string literal, for messages.
std::string Printable(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out + "\"";
}

// Empty when the client can run, else why not.
std::string ClientMissing(const std::vector<std::string>& probe, const std::string& what) {
  std::string out;
  const int rc = RunCommand(probe, {}, &out);
  if (rc == 0) return "";
  return what + " is not usable (`" + probe[0] + (probe.size() > 1 ? " " + probe[1] : "") +
         "...` exited " + std::to_string(rc) + ": " + out.substr(0, 300) +
         "); scripts/install-deps installs it";
}

bool UnderCi() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::string(ci) == "true";
}

// A missing client fails under CI=true (CI installs every client, so a
// missing one is a broken setup, never a pass) and skips elsewhere.
#define REQUIRE_CLIENT(missing)                                                  \
  do {                                                                           \
    const std::string why_ = (missing);                                          \
    if (!why_.empty()) {                                                         \
      if (UnderCi()) FAIL() << why_ << " (CI=true: a missing client is a failure)"; \
      GTEST_SKIP() << why_;                                                      \
    }                                                                            \
  } while (0)

std::string PikaMissing() {
  return ClientMissing({kDebianPython, "-c", "import pika"}, "python3-pika");
}
std::string RedisPyMissing() {
  return ClientMissing({kDebianPython, "-c", "import redis"}, "python3-redis");
}
std::string AmqplibMissing() {
  return ClientMissing({"node", "-e", "require('" + kInteropDir + "/node_modules/amqplib')"},
                       "node with amqplib in tests/interop/node_modules");
}
std::string AmqpPublishMissing() {
  // --help exits 0 or 1 (popt) when the tool is there, 127 when it is not.
  std::string out;
  const int rc = RunCommand({"amqp-publish", "--help"}, {}, &out);
  if (rc == 0 || rc == 1) return "";
  return "amqp-publish (amqp-tools) is not usable (exit " + std::to_string(rc) +
         "); scripts/install-deps installs it";
}
std::string RedisCliMissing() {
  return ClientMissing({"redis-cli", "--version"}, "redis-cli (redis-tools)");
}

// ---------------------------------------------------------------- AMQP ---

// Deep equality of two field values: the same AMQP type and the same value
// (floats bit for bit, tables in order).
bool FieldEquals(const amqp_field_value_t& a, const amqp_field_value_t& b);

bool TableEquals(const amqp_table_t& a, const amqp_table_t& b) {
  if (a.num_entries != b.num_entries) return false;
  for (int i = 0; i < a.num_entries; ++i) {
    if (BytesToString(a.entries[i].key) != BytesToString(b.entries[i].key) ||
        !FieldEquals(a.entries[i].value, b.entries[i].value))
      return false;
  }
  return true;
}

bool FieldEquals(const amqp_field_value_t& a, const amqp_field_value_t& b) {
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case AMQP_FIELD_KIND_BOOLEAN: return (a.value.boolean != 0) == (b.value.boolean != 0);
    case AMQP_FIELD_KIND_I8: return a.value.i8 == b.value.i8;
    case AMQP_FIELD_KIND_U8: return a.value.u8 == b.value.u8;
    case AMQP_FIELD_KIND_I16: return a.value.i16 == b.value.i16;
    case AMQP_FIELD_KIND_U16: return a.value.u16 == b.value.u16;
    case AMQP_FIELD_KIND_I32: return a.value.i32 == b.value.i32;
    case AMQP_FIELD_KIND_U32: return a.value.u32 == b.value.u32;
    case AMQP_FIELD_KIND_I64: return a.value.i64 == b.value.i64;
    case AMQP_FIELD_KIND_U64:
    case AMQP_FIELD_KIND_TIMESTAMP: return a.value.u64 == b.value.u64;
    case AMQP_FIELD_KIND_F32: return std::memcmp(&a.value.f32, &b.value.f32, 4) == 0;
    case AMQP_FIELD_KIND_F64: return std::memcmp(&a.value.f64, &b.value.f64, 8) == 0;
    case AMQP_FIELD_KIND_DECIMAL:
      return a.value.decimal.decimals == b.value.decimal.decimals &&
             a.value.decimal.value == b.value.decimal.value;
    case AMQP_FIELD_KIND_UTF8:
    case AMQP_FIELD_KIND_BYTES: return BytesToString(a.value.bytes) == BytesToString(b.value.bytes);
    case AMQP_FIELD_KIND_ARRAY: {
      if (a.value.array.num_entries != b.value.array.num_entries) return false;
      for (int i = 0; i < a.value.array.num_entries; ++i)
        if (!FieldEquals(a.value.array.entries[i], b.value.array.entries[i])) return false;
      return true;
    }
    case AMQP_FIELD_KIND_TABLE: return TableEquals(a.value.table, b.value.table);
    case AMQP_FIELD_KIND_VOID: return true;
    default: return false;
  }
}

// "S:\"text\"", "D:-3.14", "F:{...}": the type letter and the value.
std::string Describe(const amqp_field_value_t& v) {
  return std::string(1, static_cast<char>(v.kind)) + ":" + Printable(FieldValueToString(v));
}

// The foxw_header_type (ABI 1.1, msg_header_type) of an AMQP field type.
int HeaderTypeOf(const amqp_field_value_t& v) {
  switch (v.kind) {
    case AMQP_FIELD_KIND_UTF8: return FOXW_HEADER_STRING;
    case AMQP_FIELD_KIND_VOID: return FOXW_HEADER_NULL;
    case AMQP_FIELD_KIND_BOOLEAN: return FOXW_HEADER_BOOL;
    case AMQP_FIELD_KIND_I8:
    case AMQP_FIELD_KIND_U8:
    case AMQP_FIELD_KIND_I16:
    case AMQP_FIELD_KIND_U16:
    case AMQP_FIELD_KIND_I32:
    case AMQP_FIELD_KIND_U32:
    case AMQP_FIELD_KIND_I64:
    case AMQP_FIELD_KIND_U64: return FOXW_HEADER_INT;
    case AMQP_FIELD_KIND_F32:
    case AMQP_FIELD_KIND_F64: return FOXW_HEADER_FLOAT;
    case AMQP_FIELD_KIND_DECIMAL: return FOXW_HEADER_DECIMAL;
    case AMQP_FIELD_KIND_TIMESTAMP: return FOXW_HEADER_TIMESTAMP;
    case AMQP_FIELD_KIND_BYTES: return FOXW_HEADER_BYTES;
    case AMQP_FIELD_KIND_TABLE: return FOXW_HEADER_TABLE;
    case AMQP_FIELD_KIND_ARRAY: return FOXW_HEADER_ARRAY;
    default: return -1;
  }
}

using Headers = std::vector<std::pair<std::string, const amqp_field_value_t*>>;

Headers HeadersOf(const amqp_basic_properties_t& p) {
  Headers out;
  if (!(p._flags & AMQP_BASIC_HEADERS_FLAG)) return out;
  for (int i = 0; i < p.headers.num_entries; ++i)
    out.emplace_back(BytesToString(p.headers.entries[i].key), &p.headers.entries[i].value);
  return out;
}

const amqp_field_value_t* Find(const Headers& h, const std::string& name) {
  for (const auto& [k, v] : h)
    if (k == name) return v;
  return nullptr;
}

// Every basic property that is set, by the names the probe records them
// under (plus delivery_mode and cluster_id, which the SDK does not show).
std::map<std::string, std::string> PropertiesOf(const amqp_basic_properties_t& p) {
  std::map<std::string, std::string> out;
  auto str = [&](amqp_flags_t flag, const char* name, const amqp_bytes_t& b) {
    if (p._flags & flag) out[name] = BytesToString(b);
  };
  str(AMQP_BASIC_CONTENT_TYPE_FLAG, "content_type", p.content_type);
  str(AMQP_BASIC_CONTENT_ENCODING_FLAG, "content_encoding", p.content_encoding);
  str(AMQP_BASIC_TYPE_FLAG, "message_type", p.type);
  str(AMQP_BASIC_CORRELATION_ID_FLAG, "correlation_id", p.correlation_id);
  str(AMQP_BASIC_REPLY_TO_FLAG, "reply_to", p.reply_to);
  str(AMQP_BASIC_APP_ID_FLAG, "app_id", p.app_id);
  str(AMQP_BASIC_USER_ID_FLAG, "user_id", p.user_id);
  str(AMQP_BASIC_EXPIRATION_FLAG, "expiration", p.expiration);
  str(AMQP_BASIC_MESSAGE_ID_FLAG, "message_id", p.message_id);
  str(AMQP_BASIC_CLUSTER_ID_FLAG, "cluster_id", p.cluster_id);
  if (p._flags & AMQP_BASIC_PRIORITY_FLAG) out["priority"] = std::to_string(p.priority);
  if (p._flags & AMQP_BASIC_TIMESTAMP_FLAG) out["timestamp"] = std::to_string(p.timestamp);
  if (p._flags & AMQP_BASIC_DELIVERY_MODE_FLAG)
    out["delivery_mode"] = std::to_string(p.delivery_mode);
  return out;
}

// What a client publishes, and what the test expects of it.
struct AmqpClientCase {
  // The command, given the broker URL, the exchange and the routing key.
  std::vector<std::string> (*command)(const std::string& url, const std::string& exchange,
                                      const std::string& routing_key);
  std::string body;
  // Every basic property the client sets (PropertiesOf's names and form).
  std::map<std::string, std::string> properties;
  // Every header, in the order sent: name, AMQP type letter, and the value as
  // the plugin sees it (FieldValueToString's rendering).
  std::vector<std::tuple<std::string, char, std::string>> headers;
};

constexpr char kRoutingKey[] = "interop.key";

class InteropAmqpTest : public RabbitMqTest {
 protected:
  void TearDown() override {
    if (client_ && client_->ok()) {
      client_->Delete(queue_ + "-capture");
      client_->DeleteExchange(queue_ + "-x");
    }
    RabbitMqTest::TearDown();
  }

  // The daemon: every message of the queue to probe_fail (retry, with
  // max_attempts 2: one retry copy, then a dead letter).
  std::string InteropYaml() const {
    std::ostringstream y;
    y << "daemon:\n  worker_threads: 2\n  shutdown_timeout: 5s\n"
      << "plugins:\n  probe:\n    path: " << PROBE_PLUGIN_PATH << "\n"
      << "backends:\n  rmq:\n    type: rabbitmq\n    url: " << server_->url() << "\n"
      << "    reconnect_initial: 100ms\n    reconnect_max: 1s\n"
      << "queues:\n  work:\n    backend: rmq\n    source: " << queue_ << "\n"
      << "    plugin: probe\n    handler: probe_fail\n    concurrency: 1\n    prefetch: 4\n"
      << "    retry_policy: once\n"
      << "retry_policies:\n  once:\n    max_attempts: 2\n    backoff: fixed\n"
      << "    initial: 250ms\n    jitter: 0\n";
    return y.str();
  }

  void Run(const AmqpClientCase& c) {
    const std::string exchange = queue_ + "-x";
    const std::string capture = queue_ + "-capture";
    // The work queue (declared as the daemon declares it) and a capture
    // queue, both bound to one fanout exchange: the capture queue keeps the
    // original exactly as the broker got it.
    ASSERT_TRUE(client_->Declare(queue_));
    ASSERT_TRUE(client_->Declare(capture));
    ASSERT_TRUE(client_->DeclareExchange(exchange, "fanout"));
    ASSERT_TRUE(client_->Bind(queue_, exchange, ""));
    ASSERT_TRUE(client_->Bind(capture, exchange, ""));
    daemon_ = StartDaemon(InteropYaml());
    ASSERT_NE(daemon_, nullptr);

    std::string out;
    const auto argv = c.command(server_->url(), exchange, kRoutingKey);
    ASSERT_EQ(RunCommand(argv, {}, &out), 0) << argv[0] << " " << (argv.size() > 1 ? argv[1] : "")
                                             << ":\n" << out;
    ASSERT_TRUE(WaitFor([&] { return client_->Count(queue_ + "-dlq") == 1; },
                        std::chrono::seconds(30)))
        << "no dead letter; records: " << Records().size();
    const auto records = Records();
    ASSERT_EQ(records.size(), 2u);

    AmqpTestClient capture_client(server_->url());
    ASSERT_TRUE(capture_client.ok());
    auto original = capture_client.Get(capture);
    ASSERT_TRUE(original.has_value());
    auto dead = client_->Get(queue_ + "-dlq");
    ASSERT_TRUE(dead.has_value());
    const amqp_basic_properties_t& op = original->raw.properties;
    const amqp_basic_properties_t& dp = dead->raw.properties;
    Headers oh = HeadersOf(op);
    const Headers dh = HeadersOf(dp);
    if (std::getenv("FOXWORKER_INTEROP_DUMP") != nullptr) {
      auto dump = [](const char* what, const amqp_basic_properties_t& p) {
        std::cerr << what << ":\n";
        for (const auto& [k, v] : PropertiesOf(p)) std::cerr << "  " << k << " = " << Printable(v) << "\n";
        for (const auto& [k, v] : HeadersOf(p)) std::cerr << "  [" << Printable(k) << "] " << Describe(*v) << "\n";
      };
      dump("original (capture queue)", op);
      dump("dead letter", dp);
      for (const ProbeRecord& r : records) {
        std::cerr << "plugin, attempt " << r.attempt << ":\n";
        for (const auto& [k, v] : r.fields) std::cerr << "  " << k << " = " << Printable(v) << "\n";
        for (const auto& [k, v] : r.headers) std::cerr << "  [" << Printable(k) << "] " << Printable(v) << "\n";
      }
    }

    // 1. The client sent what it meant to: every property, every header with
    // its type (the broker's copy, read by librabbitmq-c).
    EXPECT_EQ(original->body, c.body);
    auto sent = PropertiesOf(op);
    sent.erase("delivery_mode");
    auto meant = c.properties;
    meant.erase("delivery_mode");
    EXPECT_EQ(sent, meant);
    // RabbitMQ (3.10, quorum queues) delivers the headers sorted by name,
    // with its own x-delivery-count added, whatever the order sent: so by
    // name here, and in the broker's order from here on.
    std::string names;
    for (const auto& [name, value] : oh) names += " " + Printable(name) + "=" + Describe(*value);
    ASSERT_EQ(oh.size(), c.headers.size() + (Find(oh, kHeaderDeliveryCount) ? 1 : 0))
        << "the broker holds:" << names;
    for (const auto& [name, kind, text] : c.headers) {
      const amqp_field_value_t* v = Find(oh, name);
      ASSERT_NE(v, nullptr) << name << " missing; the broker holds:" << names;
      EXPECT_EQ(static_cast<char>(v->kind), kind) << name;
      EXPECT_EQ(FieldValueToString(*v), text) << name << ": " << Printable(FieldValueToString(*v));
    }
    // A basic.get of a quorum queue shows x-delivery-count 0, a consumer's
    // first delivery none: not part of what the client sent.
    std::erase_if(oh, [](const auto& h) { return h.first == kHeaderDeliveryCount; });

    // 2. What the plugin saw on attempt 1 is the original.
    const ProbeRecord& first = records[0];
    EXPECT_EQ(first.attempt, 1u);
    EXPECT_EQ(first.fields.at("payload"), original->body);
    EXPECT_EQ(first.fields.at("queue"), "work");
    const auto props = PropertiesOf(op);
    for (const char* name : {"content_type", "content_encoding", "message_type", "correlation_id",
                             "reply_to", "app_id", "user_id", "expiration", "message_id",
                             "cluster_id"}) {
      const std::string want = props.count(name) ? props.at(name) : "";
      EXPECT_EQ(first.fields.at(name), want) << name;
    }
    // The numeric properties as sent, unset ones told apart (ABI 1.1).
    auto sent_as = [&](const char* name, int64_t scale) -> int64_t {
      return props.count(name) ? std::stoll(props.at(name)) * scale : -1;
    };
    EXPECT_EQ(first.sent_priority, sent_as("priority", 1));
    EXPECT_EQ(first.sent_timestamp_ms, sent_as("timestamp", 1000));
    EXPECT_EQ(first.delivery_mode, sent_as("delivery_mode", 1));
    EXPECT_EQ(first.priority, props.count("priority") ? std::stoi(props.at("priority")) : 0);
    const int64_t ts_ms =
        props.count("timestamp") ? std::stoll(props.at("timestamp")) * 1000 : 0;
    EXPECT_EQ(first.timestamp_ms, ts_ms);
    if (ts_ms != 0) {
      EXPECT_EQ(first.enqueued_at_ms, ts_ms);
    } else {
      EXPECT_GT(first.enqueued_at_ms, 0);
    }
    const std::string id = first.fields.at("id");
    if (props.count("message_id")) {
      EXPECT_EQ(id, props.at("message_id"));
    } else {
      EXPECT_EQ(id.rfind("amqp-", 0), 0u) << id;
      EXPECT_EQ(id.size(), 37u) << id;
      // The capture queue's copy, which the broker re-encoded (headers
      // sorted, x-delivery-count added) as it does a redelivery, derives
      // the same id.
      std::string scratch, derived;
      ContentMessageId(op, original->body, &scratch, &derived);
      EXPECT_EQ(derived, id);
    }
    // The consumer's first delivery is the producer's frame as it was: the
    // headers in the order sent.
    ASSERT_EQ(first.headers.size(), c.headers.size());
    for (size_t i = 0; i < c.headers.size(); ++i) {
      const std::string& name = std::get<0>(c.headers[i]);
      EXPECT_EQ(first.headers[i].first, name) << "header " << i;
      const amqp_field_value_t* v = Find(oh, first.headers[i].first);
      ASSERT_NE(v, nullptr) << Printable(first.headers[i].first);
      EXPECT_EQ(first.headers[i].second, FieldValueToString(*v))
          << name << ": " << Printable(first.headers[i].second);
      // The type it was sent with (ABI 1.1).
      ASSERT_EQ(first.header_types.size(), first.headers.size());
      EXPECT_EQ(first.header_types[i], HeaderTypeOf(*v)) << name;
    }

    // 3. Attempt 2 (the retry copy, back from the retry queue) is the same
    // message: the same id, payload and properties, every header of attempt
    // 1 with its value, and only bookkeeping added.
    const ProbeRecord& second = records[1];
    EXPECT_EQ(second.attempt, 2u);
    EXPECT_EQ(second.fields.at("id"), id);
    EXPECT_EQ(second.fields.at("payload"), first.fields.at("payload"));
    for (const char* name : {"content_type", "content_encoding", "message_type", "correlation_id",
                             "reply_to", "app_id", "user_id", "expiration", "cluster_id"}) {
      EXPECT_EQ(second.fields.at(name), first.fields.at(name)) << name;
    }
    EXPECT_EQ(second.sent_priority, first.sent_priority);
    EXPECT_EQ(second.sent_timestamp_ms, first.sent_timestamp_ms);
    EXPECT_EQ(second.delivery_mode, first.delivery_mode);
    // A copy carries the id as its message_id.
    EXPECT_EQ(second.fields.at("message_id"), id);
    EXPECT_EQ(second.priority, first.priority);
    EXPECT_EQ(second.timestamp_ms, first.timestamp_ms);
    EXPECT_EQ(second.enqueued_at_ms, first.enqueued_at_ms);
    // By name: RabbitMQ re-encodes, sorted by name, a message whose headers
    // it changes (x-death when the retry queue sends the copy back).
    ASSERT_EQ(second.header_types.size(), second.headers.size());
    for (size_t i = 0; i < first.headers.size(); ++i) {
      const auto& [name, value] = first.headers[i];
      size_t j = 0;
      while (j < second.headers.size() && second.headers[j].first != name) ++j;
      ASSERT_LT(j, second.headers.size()) << name << " missing on attempt 2";
      EXPECT_EQ(second.headers[j].second, value) << name;
      EXPECT_EQ(second.header_types[j], first.header_types[i]) << name;
    }
    // The broker's x-death bookkeeping of the retry queue; ours.
    const std::set<std::string> retry_bookkeeping = {
        "x-retry-attempt",        "x-first-seen-at",      "x-original-expiration",
        "x-death",                "x-first-death-exchange", "x-first-death-queue",
        kHeaderDeliveryCount,
        "x-first-death-reason",   "x-last-death-exchange",  "x-last-death-queue",
        "x-last-death-reason",    kHeaderOriginalExchange,  kHeaderOriginalRoutingKey};
    for (const auto& [name, value] : second.headers) {
      if (first.Header(name) != nullptr) continue;
      EXPECT_TRUE(retry_bookkeeping.count(name)) << "attempt 2 has an unexpected header " << name
                                                 << " = " << Printable(value);
    }
    ASSERT_NE(second.Header("x-retry-attempt"), nullptr);
    EXPECT_EQ(*second.Header("x-retry-attempt"), "2");
    EXPECT_EQ(second.Header("x-first-seen-at") != nullptr, ts_ms == 0);
    EXPECT_EQ(second.Header("x-original-expiration") != nullptr, props.count("expiration") == 1);

    // 4. The dead letter keeps the original: the body, every property (the
    // producer's expiration back as the property), every header with its
    // AMQP type and value, and adds the dead-letter fields.
    EXPECT_EQ(dead->body, original->body);
    auto kept = PropertiesOf(dp);
    auto want = PropertiesOf(op);
    want["message_id"] = id;
    want["delivery_mode"] = "2";
    EXPECT_EQ(kept, want);
    for (const auto& [name, value] : oh) {
      const amqp_field_value_t* v = Find(dh, name);
      ASSERT_NE(v, nullptr) << name << " missing in the dead letter";
      EXPECT_TRUE(FieldEquals(*v, *value))
          << name << ": dead letter " << Describe(*v) << ", original " << Describe(*value);
    }
    std::set<std::string> dead_bookkeeping = retry_bookkeeping;
    dead_bookkeeping.insert({kHeaderOriginalQueue, kHeaderFailureReason, kHeaderFinalAttempt,
                             kHeaderFailedAt, kHeaderMessageType, kHeaderOriginalId,
                             kHeaderOriginalRoutingKey, kHeaderOriginalExchange});
    for (const auto& [name, value] : dh) {
      if (Find(oh, name) != nullptr) continue;
      EXPECT_TRUE(dead_bookkeeping.count(name))
          << "the dead letter has an unexpected header " << name << " = " << Describe(*value);
    }
    // Where the client published it, though the retry copy came back
    // through the default exchange.
    EXPECT_EQ(HeaderOf(dp, kHeaderOriginalExchange), exchange);
    EXPECT_EQ(HeaderOf(dp, kHeaderOriginalRoutingKey), kRoutingKey);
    EXPECT_EQ(HeaderOf(dp, kHeaderOriginalQueue), queue_);
    EXPECT_EQ(HeaderOf(dp, kHeaderOriginalId), id);
    EXPECT_EQ(HeaderOf(dp, kHeaderFinalAttempt), "2");
    EXPECT_EQ(HeaderKind(dp, kHeaderFinalAttempt), AMQP_FIELD_KIND_I64);
    EXPECT_EQ(HeaderOf(dp, kHeaderFailureReason),
              "retries exhausted after 2 attempts: probe asked to fail");
    EXPECT_EQ(HeaderOf(dp, kHeaderMessageType),
              props.count("message_type") ? props.at("message_type") : "<absent>");
    EXPECT_EQ(HeaderOf(dp, kHeaderOriginalExpiration), "<absent>");
    if (ts_ms == 0) {
      EXPECT_EQ(HeaderOf(dp, kHeaderFirstSeenAt), FormatIso8601Utc(first.enqueued_at_ms));
    }
    EXPECT_EQ(client_->Count(queue_), 0);
  }
};

std::vector<std::string> PikaCommand(const std::string& url, const std::string& exchange,
                                     const std::string& key) {
  return {kDebianPython, kInteropDir + "/clients/pika_publish.py", url, exchange, key};
}

TEST_F(InteropAmqpTest, Pika) {
  REQUIRE_CLIENT(PikaMissing());
  AmqpClientCase c;
  c.command = &PikaCommand;
  c.body = std::string("pika\0body\xff\xfe", 11);
  c.properties = {{"content_type", "application/x-foxworker; charset=binary"},
                  {"content_encoding", "identity"},
                  {"delivery_mode", "2"},
                  {"priority", "7"},
                  {"correlation_id", "corr-\xc3\xbc-1"},
                  {"reply_to", "replies"},
                  {"expiration", "600000"},
                  {"message_id", "pika-message-1"},
                  {"timestamp", "1700000000"},
                  {"message_type", "interop.rich"},
                  {"user_id", "guest"},
                  {"app_id", "pika-interop"},
                  {"cluster_id", "cluster-x"}};
  c.headers = {
      {"s_utf8", 'S', "h\xc3\xa9llo \xe2\x9c\x93 \xe6\x97\xa5\xe6\x9c\xac"},
      {"s_nul", 'S', std::string("a\0b", 3)},
      {"s_empty", 'S', ""},
      {"b_bin", 'x', std::string("\xff\xfe\0A", 4)},
      {"b_text", 'x', "plain bytes"},
      {"t_true", 't', "true"},
      {"t_false", 't', "false"},
      {"i32_pos", 'I', "42"},
      {"i32_min", 'I', "-2147483648"},
      {"i64_max", 'l', "9223372036854775807"},
      {"i64_min", 'l', "-9223372036854775808"},
      {"dec_neg", 'D', "-3.14"},
      {"dec_pos", 'D', "123.45"},
      {"dec_tiny_neg", 'D', "-0.005"},
      {"dec_int", 'D', "-7"},
      {"ts", 'T', "1700000000"},
      {"void", 'V', ""},
      {"nested", 'F',
       "{\"level1\":{\"level2\":{\"dec\":-1.5,\"bin\":{\"$bytes\":\"/wA=\"},"
       "\"list\":[1,\"two\",null,true]}},\"s\":\"x\xc3\xa9\"}"},
      {"array", 'A',
       "[1,-2,\"three\",{\"$bytes\":\"/g==\"},2.5,{\"k\":false},[null],9223372036854775807]"},
      {"empty_table", 'F', "{}"},
      {"empty_array", 'A', "[]"},
      {"cl\xc3\xa9", 'S', "utf-8 key"},
  };
  Run(c);
}

std::vector<std::string> AmqplibCommand(const std::string& url, const std::string& exchange,
                                        const std::string& key) {
  return {"node", kInteropDir + "/clients/amqplib_publish.js", url, exchange, key};
}

TEST_F(InteropAmqpTest, Amqplib) {
  REQUIRE_CLIENT(AmqplibMissing());
  AmqpClientCase c;
  c.command = &AmqplibCommand;
  c.body = std::string("node\0\xc3(", 7);
  c.properties = {{"content_type", "application/x-amqplib"},
                  {"content_encoding", "gzip"},
                  {"delivery_mode", "2"},
                  {"priority", "3"},
                  {"correlation_id", "corr-node"},
                  {"reply_to", "node.replies"},
                  {"expiration", "600000"},
                  {"message_type", "interop.rich"},
                  {"user_id", "guest"},
                  {"app_id", "amqplib-interop"}};
  c.headers = {
      {"s_utf8", 'S', "h\xc3\xa9llo \xe2\x9c\x93 \xe6\x97\xa5\xe6\x9c\xac"},
      {"s_nul", 'S', std::string("a\0b", 3)},
      {"b_bin", 'x', std::string("\xff\xfe\0A", 4)},
      {"t_true", 't', "true"},
      {"i8", 'b', "-5"},
      {"u8", 'B', "200"},
      {"i16", 's', "-30000"},
      {"u16", 'u', "60000"},
      {"i32", 'I', "-100000"},
      {"u32", 'i', "4000000000"},
      {"i64", 'l', "-9007199254740991"},
      {"i64_guessed", 'l', "9007199254740991"},
      {"f32", 'f', "1.5"},
      {"f64", 'd', "-2.25"},
      {"dec_neg", 'D', "-3.14"},
      {"dec_pos", 'D', "123.45"},
      {"ts", 'T', "1700000000"},
      {"void", 'V', ""},
      {"nested", 'F', "{\"level1\":{\"bin\":{\"$bytes\":\"/wA=\"},\"n\":-1,\"list\":[1,\"two\",null]}}"},
      {"array", 'A', "[1,\"two\",\"bytes\",{\"k\":false},[null],-1.5]"},
  };
  Run(c);
}

std::vector<std::string> AmqpPublishCommand(const std::string& url, const std::string& exchange,
                                            const std::string& key) {
  return {"amqp-publish", "--url", url, "-e", exchange, "-r", key, "-p",
          "-C", "text/plain; charset=utf-8", "-E", "utf-8", "-t", "reply.here",
          "-H", "s_utf8: h\xc3\xa9llo \xe2\x9c\x93", "-H", "colons: a: b",
          "-H", "x-custom-id: 42", "-b", "amqp-publish body \xe2\x9c\x93"};
}

TEST_F(InteropAmqpTest, AmqpPublish) {
  REQUIRE_CLIENT(AmqpPublishMissing());
  AmqpClientCase c;
  c.command = &AmqpPublishCommand;
  c.body = "amqp-publish body \xe2\x9c\x93";
  c.properties = {{"content_type", "text/plain; charset=utf-8"},
                  {"content_encoding", "utf-8"},
                  {"delivery_mode", "2"},
                  {"reply_to", "reply.here"}};
  c.headers = {
      {"s_utf8", 'S', "h\xc3\xa9llo \xe2\x9c\x93"},
      {"colons", 'S', "a: b"},
      {"x-custom-id", 'S', "42"},
  };
  Run(c);
}

// --------------------------------------------------------------- Redis ---

using Fields = std::vector<std::pair<std::string, std::string>>;

// Every entry of a stream: id, and its fields in order, duplicates kept.
std::vector<std::pair<std::string, Fields>> Entries(RedisServer& redis, const std::string& stream) {
  std::vector<std::pair<std::string, Fields>> out;
  RedisReplyPtr r = redis.Command({"XRANGE", stream, "-", "+"});
  if (r == nullptr || r->type != REDIS_REPLY_ARRAY) return out;
  for (size_t i = 0; i < r->elements; ++i) {
    const redisReply* f = r->element[i]->element[1];
    Fields fields;
    for (size_t k = 0; k + 1 < f->elements; k += 2)
      fields.emplace_back(ReplyText(f->element[k]), ReplyText(f->element[k + 1]));
    out.emplace_back(std::string(ReplyText(r->element[i]->element[0])), std::move(fields));
  }
  return out;
}

const std::string* FindField(const Fields& fields, const std::string& name) {
  for (const auto& [k, v] : fields)
    if (k == name) return &v;
  return nullptr;
}

Fields Without(Fields fields, const std::set<std::string>& names) {
  std::erase_if(fields, [&](const auto& f) { return names.count(f.first) > 0; });
  return fields;
}

std::string Describe(const Fields& fields) {
  std::string out;
  for (const auto& [k, v] : fields) out += "  " + Printable(k) + " = " + Printable(v) + "\n";
  return out;
}

// The fields the Redis backend reads as properties (docs/backends/redis.md,
// "Fields"); every other field is a header.
const std::set<std::string> kPropertyFields = {
    "data",     "content_type", "content_encoding", "message_type", "type",
    "correlation_id", "reply_to", "app_id",         "user_id",      "expiration",
    "message_id", "priority",   "timestamp",        "x-attempt",    "attempt"};

class InteropRedisTest : public ::testing::Test {
 protected:
  void SetUp() override {
    stream_ = std::string("interop:") +
              ::testing::UnitTest::GetInstance()->current_test_info()->name();
    probe_file_ = "/tmp/foxw-interop-" + std::to_string(getpid()) + "-" +
                  ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".probe";
    unlink(probe_file_.c_str());
    setenv("FOXWORKER_PROBE_FILE", probe_file_.c_str(), 1);
  }
  void TearDown() override {
    if (daemon_) daemon_->Shutdown();
    daemon_.reset();
    unlink(probe_file_.c_str());
    unlink((probe_file_ + ".redis-cli").c_str());
  }

  void StartTheDaemon() {
    RedisServer& redis = SharedRedis();
    daemon_ = StartDaemon(
        "daemon:\n  worker_threads: 2\n  shutdown_timeout: 5s\n"
        "plugins:\n  probe:\n    path: " PROBE_PLUGIN_PATH "\n"
        "backends:\n  r:\n    type: redis\n    url: " + redis.url() +
        "\n    consumer: interop\n    block: 200ms\n    claim_interval: 100ms\n"
        "retry_policies:\n  once:\n    max_attempts: 2\n    backoff: fixed\n"
        "    initial: 250ms\n    jitter: 0\n"
        "queues:\n  work:\n    backend: r\n    source: " + stream_ +
        "\n    plugin: probe\n    handler: probe_fail\n    concurrency: 1\n    prefetch: 4\n"
        "    retry_policy: once\n");
    ASSERT_NE(daemon_, nullptr);
  }

  // After the client added one entry: `sent` is every field it meant to
  // send, in order.
  void Check(const Fields& sent) {
    RedisServer& redis = SharedRedis();
    ASSERT_TRUE(WaitFor([&] { return redis.Integer({"XLEN", stream_ + "-dlq"}) == 1; },
                        std::chrono::seconds(30)))
        << "no dead letter; records: " << ReadProbeFile(probe_file_).size();
    const auto records = ReadProbeFile(probe_file_);
    ASSERT_EQ(records.size(), 2u);
    const auto entries = Entries(redis, stream_);
    ASSERT_EQ(entries.size(), 2u) << "the original and its retry copy";
    const auto& [first_id, original] = entries[0];
    const Fields& retry = entries[1].second;

    // 1. Redis holds what the client meant to send, byte for byte.
    EXPECT_EQ(original, sent) << "in Redis:\n" << Describe(original) << "meant:\n"
                              << Describe(sent);

    // 2. What the plugin saw on attempt 1.
    const ProbeRecord& first = records[0];
    EXPECT_EQ(first.attempt, 1u);
    EXPECT_EQ(first.fields.at("id"), first_id);
    EXPECT_EQ(first.fields.at("queue"), "work");
    const std::string* data = FindField(original, "data");
    EXPECT_EQ(first.fields.at("payload"), data ? *data : "");
    const std::string* type = FindField(original, "message_type");
    if (type == nullptr) type = FindField(original, "type");
    EXPECT_EQ(first.fields.at("message_type"), type ? *type : "");
    for (const char* name : {"content_type", "content_encoding", "correlation_id", "reply_to",
                             "app_id", "user_id", "expiration", "message_id"}) {
      const std::string* v = FindField(original, name);
      EXPECT_EQ(first.fields.at(name), v ? *v : "") << name;
    }
    if (const std::string* p = FindField(original, "priority")) {
      EXPECT_EQ(first.priority, std::min(255, std::max(0, std::stoi(*p))));
    }
    if (const std::string* t = FindField(original, "timestamp")) {
      EXPECT_EQ(first.timestamp_ms, std::stoll(*t));
    }
    // The enqueued time is the time in the entry id.
    EXPECT_EQ(first.enqueued_at_ms, std::stoll(first_id.substr(0, first_id.find('-'))));
    Fields headers;
    for (const auto& f : original)
      if (!kPropertyFields.count(f.first)) headers.push_back(f);
    Fields seen(first.headers.begin(), first.headers.end());
    EXPECT_EQ(seen, headers) << "plugin saw:\n" << Describe(seen) << "entry's headers:\n"
                             << Describe(headers);
    // Every field is a string (ABI 1.1); the numbers as sent, unclamped.
    EXPECT_EQ(first.header_types, std::vector<int>(first.headers.size(), FOXW_HEADER_STRING));
    const std::string* priority = FindField(original, "priority");
    EXPECT_EQ(first.sent_priority, priority ? std::stoll(*priority) : -1);
    const std::string* timestamp = FindField(original, "timestamp");
    EXPECT_EQ(first.sent_timestamp_ms, timestamp ? std::stoll(*timestamp) : -1);

    // 3. The retry copy in the stream is the entry's fields exactly, then
    // the bookkeeping; attempt 2 is the same message.
    EXPECT_EQ(Without(retry, {"x-attempt", kHeaderFirstSeenAt, kHeaderOriginalId}), original)
        << "retry copy:\n" << Describe(retry);
    ASSERT_NE(FindField(retry, "x-attempt"), nullptr);
    EXPECT_EQ(*FindField(retry, "x-attempt"), "2");
    ASSERT_NE(FindField(retry, kHeaderOriginalId), nullptr);
    EXPECT_EQ(*FindField(retry, kHeaderOriginalId), first_id);
    const ProbeRecord& second = records[1];
    EXPECT_EQ(second.attempt, 2u);
    EXPECT_EQ(second.fields.at("id"), first_id);
    for (const auto& [name, value] : first.fields) {
      EXPECT_EQ(second.fields.at(name), value) << name;
    }
    EXPECT_EQ(second.priority, first.priority);
    EXPECT_EQ(second.sent_priority, first.sent_priority);
    EXPECT_EQ(second.timestamp_ms, first.timestamp_ms);
    EXPECT_EQ(second.sent_timestamp_ms, first.sent_timestamp_ms);
    EXPECT_EQ(second.enqueued_at_ms, first.enqueued_at_ms);
    Fields seen2(second.headers.begin(), second.headers.end());
    EXPECT_EQ(Without(seen2, {kHeaderFirstSeenAt, kHeaderOriginalId}), seen)
        << "attempt 2 saw:\n" << Describe(seen2);

    // 4. The dead letter: the entry's fields exactly, then the dead-letter
    // fields.
    const auto dead = Entries(redis, stream_ + "-dlq");
    ASSERT_EQ(dead.size(), 1u);
    const Fields& dl = dead[0].second;
    EXPECT_EQ(Without(dl, {kHeaderFirstSeenAt, kHeaderOriginalId, kHeaderOriginalQueue,
                           kHeaderMessageType, kHeaderFailureReason, kHeaderFinalAttempt,
                           kHeaderFailedAt}),
              original)
        << "dead letter:\n" << Describe(dl);
    auto field = [&](const char* name) {
      const std::string* v = FindField(dl, name);
      return v ? *v : std::string("<absent>");
    };
    EXPECT_EQ(field(kHeaderOriginalId), first_id);
    EXPECT_EQ(field(kHeaderOriginalQueue), stream_);
    EXPECT_EQ(field(kHeaderFinalAttempt), "2");
    EXPECT_EQ(field(kHeaderFailureReason), "retries exhausted after 2 attempts: probe asked to fail");
    EXPECT_EQ(field(kHeaderMessageType), type ? *type : "<absent>");
    EXPECT_EQ(field(kHeaderFirstSeenAt), *FindField(retry, kHeaderFirstSeenAt));
    EXPECT_EQ(field(kHeaderFirstSeenAt), FormatIso8601Utc(first.enqueued_at_ms));
    EXPECT_EQ(field("x-attempt"), "<absent>");
    EXPECT_TRUE(WaitFor([&] { return redis.PendingCount(stream_, "foxworker") == 0; }));
  }

  std::string stream_;
  std::string probe_file_;
  std::unique_ptr<Supervisor> daemon_;
};

TEST_F(InteropRedisTest, RedisPy) {
  REQUIRE_CLIENT(RedisPyMissing());
  StartTheDaemon();
  std::string out;
  ASSERT_EQ(RunCommand({kDebianPython, kInteropDir + "/clients/redis_py_publish.py",
                        std::to_string(SharedRedis().port()), stream_},
                       {}, &out),
            0)
      << out;
  Check({{"data", std::string("redis\0py\xff\xfe", 10)},
         {"message_type", "interop.rich"},
         {"content_type", "application/octet-stream"},
         {"content_encoding", "identity"},
         {"correlation_id", "corr-\xc3\xbc"},
         {"reply_to", "replies"},
         {"app_id", "redis-py-interop"},
         {"user_id", "someone"},
         {"expiration", "600000"},
         {"message_id", "redis-py-message-1"},
         {"priority", "7"},
         {"timestamp", "1700000000123"},
         {"s_utf8", "h\xc3\xa9llo \xe2\x9c\x93 \xe6\x97\xa5\xe6\x9c\xac"},
         {"s_nul", std::string("a\0b", 3)},
         {"b_bin", std::string("\xff\xfe\0A", 4)},
         {"empty", ""},
         {"i64_min", "-9223372036854775808"},
         {"dec_neg", "-3.14"},
         {"json", "{\"a\":[1,null],\"b\":{\"$bytes\":\"//4=\"}}"},
         {std::string("k\xff\0", 3), "binary field name"},
         {"cl\xc3\xa9", "utf-8 field name"}});
}

TEST_F(InteropRedisTest, RedisCli) {
  REQUIRE_CLIENT(RedisCliMissing());
  StartTheDaemon();
  // redis-cli reading commands from standard input splits them as its
  // prompt does: "\xHH" escapes in double quotes give any byte. A `type`
  // field (not message_type), a duplicate field, a priority above 255 and a
  // producer's own `attempt`.
  const std::string script = probe_file_ + ".redis-cli";
  std::ofstream(script) << "XADD " << stream_
                        << " * type interop.rich data \"cli\\x00body\\xff\" h 1 priority 300"
                           " h 2 attempt 1 u \"h\\xc3\\xa9llo\" nul \"a\\x00b\" empty \"\""
                           " i64 9223372036854775807\n";
  std::string out;
  ASSERT_EQ(RunCommand({"sh", "-c", "redis-cli -p " + std::to_string(SharedRedis().port()) +
                                        " < " + script},
                       {}, &out),
            0)
      << out;
  Check({{"type", "interop.rich"},
         {"data", std::string("cli\0body\xff", 9)},
         {"h", "1"},
         {"priority", "300"},
         {"h", "2"},
         {"attempt", "1"},
         {"u", "h\xc3\xa9llo"},
         {"nul", std::string("a\0b", 3)},
         {"empty", ""},
         {"i64", "9223372036854775807"}});
}

}  // namespace
}  // namespace foxworker::testing
