// What producers send is what handlers see and what copies keep (issue 16),
// against a real broker (tests/harness/rabbitmq_server).
#include <rapidjson/document.h>
#include <rapidjson/error/en.h>

#include <thread>

#include "daemon/backends/rabbitmq/amqp_message_codec.h"
#include "daemon/backends/rabbitmq/rabbitmq_backend.h"
#include "daemon/base/clock.h"
#include "tests/backends/rabbitmq_test_util.h"

namespace foxworker::testing {
namespace {

amqp_field_value_t Decimal(uint8_t places, int32_t value) {
  amqp_field_value_t v;
  v.kind = AMQP_FIELD_KIND_DECIMAL;
  v.value.decimal.decimals = places;
  v.value.decimal.value = static_cast<uint32_t>(value);
  return v;
}

amqp_field_value_t Bytes(std::string_view raw) {
  amqp_field_value_t v;
  v.kind = AMQP_FIELD_KIND_BYTES;
  v.value.bytes.bytes = const_cast<char*>(raw.data());
  v.value.bytes.len = raw.size();
  return v;
}

amqp_field_value_t TableValue(amqp_table_entry_t* entries, int n) {
  amqp_field_value_t v;
  v.kind = AMQP_FIELD_KIND_TABLE;
  v.value.table = {n, entries};
  return v;
}

// Whether `text` parses as JSON with UTF-8 validation.
::testing::AssertionResult ParsesAsJson(const std::string& text) {
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseValidateEncodingFlag>(text.c_str(), text.size());
  if (!doc.HasParseError()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << rapidjson::GetParseError_En(doc.GetParseError()) << " at " << doc.GetErrorOffset()
         << " in " << text;
}

// Bug 1: the decimal's value is signed (pika's Decimal("-3.14") arrived as
// 42949669.82); bug 2: a nested byte array that is not UTF-8 made the JSON
// unparsable.
TEST(AmqpFieldRenderingTest, DecimalsAreSignedAndNestedBytesKeepTheJsonValid) {
  EXPECT_EQ(FieldValueToString(Decimal(2, -314)), "-3.14");
  EXPECT_EQ(FieldValueToString(Decimal(1, -5)), "-0.5");
  EXPECT_EQ(FieldValueToString(Decimal(3, -5)), "-0.005");
  EXPECT_EQ(FieldValueToString(Decimal(0, -7)), "-7");
  EXPECT_EQ(FieldValueToString(Decimal(2, 12345)), "123.45");
  EXPECT_EQ(FieldValueToString(Decimal(0, INT32_MIN)), "-2147483648");
  EXPECT_EQ(FieldValueToString(Decimal(2, INT32_MAX)), "21474836.47");

  const std::string raw("\xff\xfe\x00"
                        "A",
                        4);
  const std::string nul_text("a\0b", 3);
  amqp_table_entry_t inner[] = {Entry("d", Decimal(1, -15)), Entry("raw", Bytes(raw)),
                                Entry("text", Bytes(nul_text)), Entry("s", Utf8("héllo"))};
  const std::string json = FieldValueToString(TableValue(inner, 4));
  EXPECT_TRUE(ParsesAsJson(json));
  EXPECT_EQ(json, "{\"d\":-1.5,\"raw\":{\"$bytes\":\"//4AQQ==\"},\"text\":\"a\\u0000b\","
                  "\"s\":\"héllo\"}");
  // A key that is not UTF-8 keeps the JSON valid too.
  amqp_table_entry_t bad_key[] = {Entry("k\xff", Utf8("v"))};
  EXPECT_TRUE(ParsesAsJson(FieldValueToString(TableValue(bad_key, 1))));
  // Top-level byte arrays stay as they are.
  EXPECT_EQ(FieldValueToString(Bytes(raw)), raw);
}

// Bug 10: what the SDK (ABI 1.1) reads of a delivery: every header's type
// (a null header is not an empty string), cluster_id, delivery_mode, and
// whether priority and timestamp were set at all.
TEST(AmqpDecodeTest, HeaderTypesAndPropertiesAsSent) {
  amqp_field_value_t null_value;
  null_value.kind = AMQP_FIELD_KIND_VOID;
  amqp_field_value_t flag;
  flag.kind = AMQP_FIELD_KIND_BOOLEAN;
  flag.value.boolean = 1;
  amqp_field_value_t stamp;
  stamp.kind = AMQP_FIELD_KIND_TIMESTAMP;
  stamp.value.u64 = 1700000000;
  amqp_table_entry_t inner[] = {Entry("k", Utf8("v"))};
  amqp_table_entry_t headers[] = {
      Entry("empty", Utf8("")),      Entry("null", null_value),      Entry("n", I32(-4)),
      Entry("d", Decimal(2, -314)),  Entry("b", flag),               Entry("ts", stamp),
      Entry("raw", Bytes("\xff")),  Entry("t", TableValue(inner, 1))};
  amqp_basic_properties_t p = TypedProps("t");
  p._flags |= AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_CLUSTER_ID_FLAG | AMQP_BASIC_PRIORITY_FLAG |
              AMQP_BASIC_TIMESTAMP_FLAG;
  p.headers = {8, headers};
  p.cluster_id = amqp_cstring_bytes("c9");
  p.priority = 0;   // set, to 0
  p.timestamp = 0;  // set, to the epoch
  Message m;
  DecodeProperties(p, &m);
  ASSERT_EQ(m.headers.size(), 8u);
  const HeaderType want[] = {HeaderType::kString,  HeaderType::kNull,    HeaderType::kInt,
                             HeaderType::kDecimal, HeaderType::kBool,    HeaderType::kTimestamp,
                             HeaderType::kBytes,   HeaderType::kTable};
  for (size_t i = 0; i < 8; ++i) EXPECT_EQ(m.TypeOfHeader(i), want[i]) << m.headers[i].first;
  EXPECT_EQ(m.headers[0].second, "");
  EXPECT_EQ(m.headers[1].second, "");
  EXPECT_EQ(m.props.cluster_id, "c9");
  EXPECT_EQ(m.props.delivery_mode, AMQP_DELIVERY_PERSISTENT);
  EXPECT_TRUE(m.props.priority_set);
  EXPECT_EQ(m.props.sent_priority, 0);
  EXPECT_TRUE(m.props.timestamp_set);
  EXPECT_EQ(m.props.timestamp_ms, 0);

  // Reused for a message with none of them: nothing carries over.
  amqp_basic_properties_t bare;
  bare._flags = 0;
  DecodeProperties(bare, &m);
  EXPECT_TRUE(m.headers.empty());
  EXPECT_TRUE(m.header_types.empty());
  EXPECT_EQ(m.props.cluster_id, "");
  EXPECT_EQ(m.props.delivery_mode, 0);
  EXPECT_FALSE(m.props.priority_set);
  EXPECT_FALSE(m.props.timestamp_set);

  // A timestamp past what milliseconds hold saturates instead of overflowing.
  bare._flags = AMQP_BASIC_TIMESTAMP_FLAG;
  bare.timestamp = UINT64_MAX;
  DecodeProperties(bare, &m);
  EXPECT_EQ(m.props.timestamp_ms, INT64_MAX);
}

TEST_F(RabbitMqTest, NegativeDecimalsAndNestedBinaryReachThePluginIntact) {
  daemon_ = StartDaemon(Yaml());
  ASSERT_NE(daemon_, nullptr);
  const std::string raw("\xff\xfe\x00"
                        "A",
                        4);
  amqp_table_entry_t inner[] = {Entry("dec", Decimal(1, -15)), Entry("bin", Bytes(raw))};
  amqp_table_entry_t headers[] = {Entry("dec", Decimal(2, -314)),
                                  Entry("half", Decimal(1, -5)),
                                  Entry("nested", TableValue(inner, 2))};
  amqp_basic_properties_t p = TypedProps("probe");
  p._flags |= AMQP_BASIC_HEADERS_FLAG;
  p.headers = {3, headers};
  ASSERT_TRUE(client_->Publish(queue_, "x", &p));
  ASSERT_TRUE(WaitRecords(1));
  ProbeRecord r = Records()[0];
  ASSERT_NE(r.Header("dec"), nullptr);
  EXPECT_EQ(*r.Header("dec"), "-3.14");
  EXPECT_EQ(*r.Header("half"), "-0.5");
  ASSERT_NE(r.Header("nested"), nullptr);
  EXPECT_TRUE(ParsesAsJson(*r.Header("nested")));
  EXPECT_EQ(*r.Header("nested"), "{\"dec\":-1.5,\"bin\":{\"$bytes\":\"//4AQQ==\"}}");
}


// Publishes a message of `type` with one header "big" of `size` bytes.
bool PublishWithBigHeader(AmqpTestClient& client, const std::string& queue, const char* type,
                          size_t size) {
  const std::string big(size, 'b');
  amqp_table_entry_t headers[] = {Entry("big", Bytes(big))};
  amqp_basic_properties_t p = TypedProps(type);
  p._flags |= AMQP_BASIC_HEADERS_FLAG;
  p.headers = {1, headers};
  return client.Publish(queue, "big", &p);
}

// Bug 6: the original fits the broker's frame (131072 bytes) but its dead
// letter, with the dead-letter headers, does not. The copy used to fail to
// encode after its method frame went out, resetting the connection about
// every 0.4 s, and the handler ran again each time.
TEST_F(RabbitMqTest, ADeadLetterTooLargeForTheFrameIsCutNotRetriedForever) {
  daemon_ = StartDaemon(Yaml());
  ASSERT_NE(daemon_, nullptr);
  ASSERT_TRUE(PublishWithBigHeader(*client_, queue_, "probe_reject", 131072 - 300));
  ASSERT_TRUE(WaitFor([&] { return client_->Count(queue_ + "-dlq") == 1; },
                      std::chrono::seconds(10)));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(Records().size(), 1u);
  auto* backend = static_cast<RabbitMqBackend*>(daemon_->FindBackend("rmq"));
  ASSERT_NE(backend, nullptr);
  EXPECT_EQ(backend->GetCounters().connections, 1u);
  auto m = client_->Get(queue_ + "-dlq");
  ASSERT_TRUE(m.has_value());
  const amqp_basic_properties_t& dp = m->raw.properties;
  EXPECT_EQ(m->body, "big");
  EXPECT_EQ(HeaderOf(dp, "big"), "<absent>");
  const std::string reason = HeaderOf(dp, "x-failure-reason");
  EXPECT_EQ(reason.rfind("probe rejects (headers cut to fit the broker's frame of 131072 bytes", 0),
            0u)
      << reason;
  EXPECT_NE(reason.find("big (130781 bytes)"), std::string::npos) << reason;
  EXPECT_EQ(HeaderOf(dp, "x-original-queue"), queue_);
  EXPECT_EQ(HeaderOf(dp, "x-final-attempt"), "1");
  EXPECT_EQ(client_->Count(queue_), 0);
}

// Bug 6, retry side: a retry copy that cannot be encoded is dead-lettered at
// once (cut), not retried.
TEST_F(RabbitMqTest, ARetryCopyTooLargeForTheFrameIsDeadLettered) {
  daemon_ = StartDaemon(Yaml(2, 8, /*max_attempts=*/5));
  ASSERT_NE(daemon_, nullptr);
  ASSERT_TRUE(PublishWithBigHeader(*client_, queue_, "probe_fail", 131072 - 80));
  ASSERT_TRUE(WaitFor([&] { return client_->Count(queue_ + "-dlq") == 1; },
                      std::chrono::seconds(10)));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(Records().size(), 1u);
  auto* backend = static_cast<RabbitMqBackend*>(daemon_->FindBackend("rmq"));
  ASSERT_NE(backend, nullptr);
  EXPECT_EQ(backend->GetCounters().connections, 1u);
  auto m = client_->Get(queue_ + "-dlq");
  ASSERT_TRUE(m.has_value());
  const std::string reason = HeaderOf(m->raw.properties, "x-failure-reason");
  EXPECT_EQ(reason.rfind("probe asked to fail (not retried: the retry copy's", 0), 0u) << reason;
  EXPECT_NE(reason.find("headers cut to fit"), std::string::npos) << reason;
  EXPECT_EQ(HeaderOf(m->raw.properties, "big"), "<absent>");
}

// Bug 4: without a producer's timestamp, every attempt and the dead letter
// keep the time the message was first seen.
TEST_F(RabbitMqTest, FirstSeenTimeSticksAcrossRetries) {
  daemon_ = StartDaemon(Yaml(2, 8, /*max_attempts=*/3));
  ASSERT_NE(daemon_, nullptr);
  ASSERT_TRUE(PublishTyped(*client_, queue_, "probe_fail", "body", {}));
  ASSERT_TRUE(WaitFor([&] { return client_->Count(queue_ + "-dlq") == 1; },
                      std::chrono::seconds(30)));
  auto records = Records();
  ASSERT_EQ(records.size(), 3u);
  ASSERT_GT(records[0].enqueued_at_ms, 0);
  EXPECT_EQ(records[1].enqueued_at_ms, records[0].enqueued_at_ms);
  EXPECT_EQ(records[2].enqueued_at_ms, records[0].enqueued_at_ms);
  auto m = client_->Get(queue_ + "-dlq");
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(HeaderOf(m->raw.properties, "x-first-seen-at"),
            FormatIso8601Utc(records[0].enqueued_at_ms));
  EXPECT_FALSE(m->raw.properties._flags & AMQP_BASIC_TIMESTAMP_FLAG);
}

// Bug 3: retries kept the retry delay as the expiration; the producer's
// reaches every attempt and the dead letter.
TEST_F(RabbitMqTest, TheProducersExpirationSurvivesRetriesAndReachesTheDeadLetter) {
  daemon_ = StartDaemon(Yaml(2, 8, /*max_attempts=*/3));
  ASSERT_NE(daemon_, nullptr);
  amqp_basic_properties_t p = TypedProps("probe_fail");
  p._flags |= AMQP_BASIC_EXPIRATION_FLAG;
  p.expiration = amqp_cstring_bytes("600000");
  ASSERT_TRUE(client_->Publish(queue_, "ttl", &p));
  ASSERT_TRUE(WaitFor([&] { return client_->Count(queue_ + "-dlq") == 1; },
                      std::chrono::seconds(30)));
  auto records = Records();
  ASSERT_EQ(records.size(), 3u);
  for (auto& r : records) EXPECT_EQ(r.fields["expiration"], "600000") << "attempt " << r.attempt;
  auto m = client_->Get(queue_ + "-dlq");
  ASSERT_TRUE(m.has_value());
  ASSERT_TRUE(m->raw.properties._flags & AMQP_BASIC_EXPIRATION_FLAG);
  EXPECT_EQ(BytesToString(m->raw.properties.expiration), "600000");
  EXPECT_EQ(HeaderOf(m->raw.properties, "x-original-expiration"), "<absent>");
}

// A retry copy comes back through the default exchange with the queue as
// its routing key; the dead letter still names where the producer published
// the message (the interop tests found it naming the retry's route).
TEST_F(RabbitMqTest, ADeadLetterAfterRetriesNamesTheProducersExchangeAndRoutingKey) {
  const std::string exchange = queue_ + "-x";
  client_->DeleteExchange(exchange);
  ASSERT_TRUE(client_->Declare(queue_));
  ASSERT_TRUE(client_->DeclareExchange(exchange, "direct"));
  ASSERT_TRUE(client_->Bind(queue_, exchange, "orders.created"));
  daemon_ = StartDaemon(Yaml(2, 8, /*max_attempts=*/2));
  ASSERT_NE(daemon_, nullptr);
  ASSERT_TRUE(client_->PublishToExchange(exchange, "orders.created", "body", TypedProps("probe_fail")));
  ASSERT_TRUE(WaitFor([&] { return client_->Count(queue_ + "-dlq") == 1; },
                      std::chrono::seconds(30)));
  auto records = Records();
  ASSERT_EQ(records.size(), 2u);
  ASSERT_NE(records[1].Header(kHeaderOriginalExchange), nullptr);
  EXPECT_EQ(*records[1].Header(kHeaderOriginalExchange), exchange);
  ASSERT_NE(records[1].Header(kHeaderOriginalRoutingKey), nullptr);
  EXPECT_EQ(*records[1].Header(kHeaderOriginalRoutingKey), "orders.created");
  auto m = client_->Get(queue_ + "-dlq");
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(HeaderOf(m->raw.properties, kHeaderOriginalExchange), exchange);
  EXPECT_EQ(HeaderOf(m->raw.properties, kHeaderOriginalRoutingKey), "orders.created");
  client_->DeleteExchange(exchange);
}

// RabbitMQ refuses a publish whose user_id is not the connection's user
// (PRECONDITION_FAILED, which closes the channel). A producer that sets its
// user_id and a daemon that logs in as another user: every copy broke the
// connection, about every 70 ms, forever (found writing the interop tests).
// The copies carry the user id in x-original-user-id instead, and the plugin
// still sees it.
TEST_F(RabbitMqTest, CopiesOfAMessageWithAnotherUsersUserIdArePublished) {
  if (!server_->controllable()) GTEST_SKIP() << "needs rabbitmqctl on a private node";
  server_->Ctl({"add_user", "foxw-worker", "worker-pw"});
  ASSERT_EQ(server_->Ctl({"set_permissions", "-p", "/", "foxw-worker", ".*", ".*", ".*"}), 0);
  std::string url = server_->url();
  url.replace(url.find("guest:guest"), 11, "foxw-worker:worker-pw");
  std::string yaml = Yaml(2, 8, /*max_attempts=*/2);
  yaml.replace(yaml.find(server_->url()), server_->url().size(), url);
  daemon_ = StartDaemon(yaml);
  ASSERT_NE(daemon_, nullptr);
  for (const char* type : {"probe_fail", "probe_reject"}) {
    amqp_basic_properties_t p = TypedProps(type);
    p._flags |= AMQP_BASIC_USER_ID_FLAG;
    p.user_id = amqp_cstring_bytes("guest");
    ASSERT_TRUE(client_->Publish(queue_, type, &p));
  }
  ASSERT_TRUE(WaitFor([&] { return client_->Count(queue_ + "-dlq") == 2; },
                      std::chrono::seconds(15)))
      << "dead letters: " << client_->Count(queue_ + "-dlq");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const auto records = Records();
  EXPECT_EQ(records.size(), 3u);
  for (const auto& r : records) {
    EXPECT_EQ(r.fields.at("user_id"), "guest") << r.fields.at("message_type") << " " << r.attempt;
  }
  auto* backend = static_cast<RabbitMqBackend*>(daemon_->FindBackend("rmq"));
  ASSERT_NE(backend, nullptr);
  EXPECT_EQ(backend->GetCounters().connections, 1u);
  for (int i = 0; i < 2; ++i) {
    auto m = client_->Get(queue_ + "-dlq");
    ASSERT_TRUE(m.has_value());
    EXPECT_FALSE(m->raw.properties._flags & AMQP_BASIC_USER_ID_FLAG);
    EXPECT_EQ(HeaderOf(m->raw.properties, kHeaderOriginalUserId), "guest");
  }
  // The daemon's own user stays a property.
  daemon_->Shutdown();
  daemon_.reset();
  daemon_ = StartDaemon(Yaml(2, 8, /*max_attempts=*/2));
  ASSERT_NE(daemon_, nullptr);
  amqp_basic_properties_t p = TypedProps("probe_reject");
  p._flags |= AMQP_BASIC_USER_ID_FLAG;
  p.user_id = amqp_cstring_bytes("guest");
  ASSERT_TRUE(client_->Publish(queue_, "own", &p));
  ASSERT_TRUE(WaitFor([&] { return client_->Count(queue_ + "-dlq") == 1; },
                      std::chrono::seconds(15)));
  auto m = client_->Get(queue_ + "-dlq");
  ASSERT_TRUE(m.has_value());
  ASSERT_TRUE(m->raw.properties._flags & AMQP_BASIC_USER_ID_FLAG);
  EXPECT_EQ(BytesToString(m->raw.properties.user_id), "guest");
  EXPECT_EQ(HeaderOf(m->raw.properties, kHeaderOriginalUserId), "<absent>");
  server_->Ctl({"delete_user", "foxw-worker"});
}

// Bug 7: a message without message_id keeps one id across a retry, a
// redelivery and a new connection (a daemon restart); two messages that
// differ get two ids.
TEST_F(RabbitMqTest, MessageIdsAreStableAcrossRedeliveryAndRestartAndUniqueAcrossMessages) {
  auto fetch_one = [&](RabbitMqBackend& backend, Source& source) {
    std::vector<std::unique_ptr<Delivery>> got;
    EXPECT_TRUE(WaitFor([&] {
      source.Fetch(1, got);
      return !got.empty();
    }));
    (void)backend;
    return got.empty() ? nullptr : std::move(got[0]);
  };
  RabbitMqBackendOptions options;
  options.url = server_->url();
  std::string first_id;
  for (int run = 0; run < 2; ++run) {
    RabbitMqBackend backend("rmq", options);
    auto source = backend.OpenSource(SourceOptions{"work", queue_, 1, 3});
    ASSERT_TRUE(source.ok()) << source.status().message();
    ASSERT_TRUE(backend.Start().ok());
    ASSERT_TRUE((*source)->Start([] {}).ok());
    if (run == 0) {
      ASSERT_TRUE(client_->Publish(queue_, "same body"));
    }
    std::unique_ptr<Delivery> d = fetch_one(backend, **source);
    ASSERT_NE(d, nullptr);
    if (run == 0) {
      first_id = d->msg.id;
      EXPECT_EQ(first_id.rfind("amqp-", 0), 0u) << first_id;
      EXPECT_EQ(first_id.size(), 37u) << first_id;
      // A redelivery on the same connection.
      std::vector<Settlement> release;
      release.push_back(Settlement{std::move(d), Outcome::Release()});
      (*source)->Settle(release);
      d = fetch_one(backend, **source);
      ASSERT_NE(d, nullptr);
    }
    EXPECT_EQ(d->msg.id, first_id) << "run " << run;
    // Run 0 leaves it unacked (the broker requeues it when the backend
    // stops, as after kill -9); run 1 acks it.
    if (run == 1) {
      std::vector<Settlement> ack;
      ack.push_back(Settlement{std::move(d), Outcome::Ack()});
      (*source)->Settle(ack);
    }
    (*source)->StopFetching();
    backend.Stop(std::chrono::steady_clock::now() + std::chrono::seconds(5));
  }
  // Another message gets another id.
  RabbitMqBackend backend("rmq", options);
  auto source = backend.OpenSource(SourceOptions{"work", queue_, 1, 3});
  ASSERT_TRUE(source.ok());
  ASSERT_TRUE(backend.Start().ok());
  ASSERT_TRUE((*source)->Start([] {}).ok());
  ASSERT_TRUE(client_->Publish(queue_, "other body"));
  std::unique_ptr<Delivery> other = fetch_one(backend, **source);
  ASSERT_NE(other, nullptr);
  EXPECT_NE(other->msg.id, first_id);
  std::vector<Settlement> ack;
  ack.push_back(Settlement{std::move(other), Outcome::Ack()});
  (*source)->Settle(ack);
  (*source)->StopFetching();
  backend.Stop(std::chrono::steady_clock::now() + std::chrono::seconds(5));
}

// RabbitMQ re-encodes a message whose headers it changes with the headers
// sorted by name (a quorum queue's redelivery adds x-delivery-count): the
// derived id must not depend on the order (found by the interop tests,
// where the clients' headers came back sorted).
TEST_F(RabbitMqTest, TheDerivedIdSurvivesARedeliveryThatSortsTheHeaders) {
  RabbitMqBackendOptions options;
  options.url = server_->url();
  RabbitMqBackend backend("rmq", options);
  auto source = backend.OpenSource(SourceOptions{"work", queue_, 1, 3});
  ASSERT_TRUE(source.ok()) << source.status().message();
  ASSERT_TRUE(backend.Start().ok());
  ASSERT_TRUE((*source)->Start([] {}).ok());
  amqp_table_entry_t inner[] = {Entry("z", I32(1)), Entry("a", I32(2))};
  amqp_table_entry_t headers[] = {Entry("zulu", Utf8("1")), Entry("alpha", I32(2)),
                                  Entry("mike", TableValue(inner, 2))};
  amqp_basic_properties_t p = TypedProps("probe");
  p._flags |= AMQP_BASIC_HEADERS_FLAG;
  p.headers = {3, headers};
  ASSERT_TRUE(client_->Publish(queue_, "unsorted", &p));
  auto fetch_one = [&] {
    std::vector<std::unique_ptr<Delivery>> got;
    EXPECT_TRUE(WaitFor([&] {
      (*source)->Fetch(1, got);
      return !got.empty();
    }));
    return got.empty() ? nullptr : std::move(got[0]);
  };
  std::unique_ptr<Delivery> d = fetch_one();
  ASSERT_NE(d, nullptr);
  const std::string first_id = d->msg.id;
  ASSERT_EQ(d->msg.headers.size(), 3u);
  EXPECT_EQ(d->msg.headers[0].first, "zulu");
  std::vector<Settlement> release;
  release.push_back(Settlement{std::move(d), Outcome::Release()});
  (*source)->Settle(release);
  d = fetch_one();
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->msg.attempt, 2u);
  // The broker's re-encoding: sorted, with its count.
  ASSERT_EQ(d->msg.headers.size(), 4u);
  EXPECT_EQ(d->msg.headers[0].first, "alpha");
  EXPECT_EQ(d->msg.id, first_id);
  std::vector<Settlement> ack;
  ack.push_back(Settlement{std::move(d), Outcome::Ack()});
  (*source)->Settle(ack);
  (*source)->StopFetching();
  backend.Stop(std::chrono::steady_clock::now() + std::chrono::seconds(5));
}

TEST_F(RabbitMqTest, RetryCopiesKeepTheDerivedId) {
  daemon_ = StartDaemon(Yaml(2, 8, /*max_attempts=*/5));
  ASSERT_NE(daemon_, nullptr);
  ASSERT_TRUE(PublishTyped(*client_, queue_, "probe_fail", "body", {{"succeed_at", "2"}}));
  ASSERT_TRUE(WaitRecords(2));
  auto records = Records();
  EXPECT_EQ(records[0].fields["id"].size(), 37u);
  EXPECT_EQ(records[1].fields["id"], records[0].fields["id"]);
}

// Bug 7: a publish without an id gets a fresh UUID, so two alike are two
// messages.
TEST_F(RabbitMqTest, PublishesWithoutAnIdGetFreshUuids) {
  RabbitMqBackendOptions options;
  options.url = server_->url();
  RabbitMqBackend backend("rmq", options);
  ASSERT_TRUE(backend.Start().ok());
  ASSERT_TRUE(client_->Declare(queue_));
  for (int i = 0; i < 2; ++i) {
    Message m;
    m.payload = "same";
    m.props.timestamp_ms = 1700000000000;
    ASSERT_TRUE(backend.Enqueue(queue_, std::move(m), Duration{0}).ok());
  }
  std::vector<std::string> ids;
  for (int i = 0; i < 2; ++i) {
    auto m = client_->Get(queue_);
    ASSERT_TRUE(m.has_value());
    ids.push_back(BytesToString(m->raw.properties.message_id));
    EXPECT_EQ(ids.back().size(), 36u) << ids.back();
    EXPECT_EQ(ids.back()[14], '4') << ids.back();
  }
  EXPECT_NE(ids[0], ids[1]);
  backend.Stop(std::chrono::steady_clock::now() + std::chrono::seconds(5));
}

}  // namespace
}  // namespace foxworker::testing
