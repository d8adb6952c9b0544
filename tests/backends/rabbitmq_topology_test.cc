// The topology a queue's `rabbitmq:` settings declare (exchange, bindings,
// queue arguments, overridden names) and the retry tiers derived from the
// retry policy, against a real broker (tests/harness/rabbitmq_server).
#include <cstdio>
#include <set>
#include <thread>

#include "tests/backends/rabbitmq_test_util.h"

namespace foxworker::testing {
namespace {

class RabbitMqTopologyTest : public RabbitMqTest {
 protected:
  void TearDown() override {
    RabbitMqTest::TearDown();
    if (client_ && client_->ok()) {
      for (const std::string& q : extra_queues_) client_->Delete(q);
      for (const std::string& x : exchanges_) client_->DeleteExchange(x);
    }
  }

  // A daemon whose queue `work` has `rabbitmq_block` (indented under the
  // queue) and retry policy `policy_block` (indented under the policy).
  std::string Yaml(const std::string& rabbitmq_block, const std::string& policy_block) const {
    std::ostringstream y;
    y << "daemon:\n  worker_threads: 4\n  shutdown_timeout: 5s\n"
      << "plugins:\n  probe:\n    path: " << PROBE_PLUGIN_PATH << "\n"
      << "backends:\n  rmq:\n    type: rabbitmq\n    url: " << server_->url() << "\n"
      << "    reconnect_initial: 100ms\n    reconnect_max: 1s\n"
      << "queues:\n  work:\n    backend: rmq\n    source: " << queue_ << "\n"
      << "    plugin: probe\n    concurrency: 2\n    prefetch: 8\n    retry_policy: p\n"
      << "    rabbitmq:\n"
      << rabbitmq_block << "retry_policies:\n  p:\n"
      << policy_block;
    return y.str();
  }

  // When the probe first saw message `id` at `attempt` (polling), or nullopt.
  bool Seen(const std::string& id, uint32_t attempt) const {
    for (const auto& r : Records())
      if (r.fields.at("id") == id && r.attempt == attempt) return true;
    return false;
  }

  std::vector<std::string> extra_queues_;
  std::vector<std::string> exchanges_;
};

amqp_basic_properties_t WithId(const char* type, const char* id,
                               std::vector<amqp_table_entry_t>* headers) {
  amqp_basic_properties_t p = TypedProps(type);
  p._flags |= AMQP_BASIC_MESSAGE_ID_FLAG;
  p.message_id = amqp_cstring_bytes(id);
  if (headers != nullptr && !headers->empty()) {
    p._flags |= AMQP_BASIC_HEADERS_FLAG;
    p.headers = {static_cast<int>(headers->size()), headers->data()};
  }
  return p;
}

amqp_table_entry_t StringHeader(const char* key, const char* value) {
  amqp_table_entry_t e;
  e.key = amqp_cstring_bytes(key);
  e.value.kind = AMQP_FIELD_KIND_UTF8;
  e.value.value.bytes = amqp_cstring_bytes(value);
  return e;
}

amqp_table_entry_t IntHeader(const char* key, int64_t value) {
  amqp_table_entry_t e;
  e.key = amqp_cstring_bytes(key);
  e.value.kind = AMQP_FIELD_KIND_I64;
  e.value.value.i64 = value;
  return e;
}

TEST_F(RabbitMqTopologyTest, ExchangeAndBindingsFromConfigRouteToTheHandler) {
  const std::string exchange = queue_ + ".events";
  exchanges_.push_back(exchange);
  client_->DeleteExchange(exchange);
  std::ostringstream block;
  block << "      arguments: {x-max-length: 1000}\n"
        << "      exchange:\n        name: " << exchange << "\n        type: topic\n"
        << "      bindings:\n"
        << "        - routing_key: [\"order.*\", \"invoice.paid\"]\n"
        << "        - exchange: amq.direct\n          routing_key: " << queue_ << "\n";
  daemon_ = StartDaemon(Yaml(block.str(), "    max_attempts: 1\n"));
  ASSERT_NE(daemon_, nullptr);

  amqp_basic_properties_t p = WithId("probe", "via-topic", nullptr);
  ASSERT_TRUE(client_->PublishToExchange(exchange, "order.created", "a", p));
  p = WithId("probe", "via-second-key", nullptr);
  ASSERT_TRUE(client_->PublishToExchange(exchange, "invoice.paid", "b", p));
  p = WithId("probe", "unbound-key", nullptr);
  ASSERT_TRUE(client_->PublishToExchange(exchange, "invoice.sent", "c", p));  // dropped
  p = WithId("probe", "via-amq-direct", nullptr);
  ASSERT_TRUE(client_->PublishToExchange("amq.direct", queue_, "d", p));
  ASSERT_TRUE(WaitRecords(3));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto records = Records();
  ASSERT_EQ(records.size(), 3u);
  std::set<std::string> ids;
  for (const auto& r : records) ids.insert(r.fields.at("id"));
  EXPECT_EQ(ids, (std::set<std::string>{"via-topic", "via-second-key", "via-amq-direct"}));
}

TEST_F(RabbitMqTopologyTest, OverriddenDeadLetterAndRetryQueueNames) {
  extra_queues_ = {queue_ + ".dead", queue_ + ".wait.250ms", queue_ + ".wait.5m"};
  for (const std::string& q : extra_queues_) client_->Delete(q);
  daemon_ = StartDaemon(Yaml("      dead_letter_queue: \"{queue}.dead\"\n"
                             "      retry_queue_prefix: \"{queue}.wait.\"\n",
                             "    max_attempts: 2\n    backoff: fixed\n    initial: 250ms\n"
                             "    max: 5m\n    jitter: 0\n"));
  ASSERT_NE(daemon_, nullptr);
  std::vector<amqp_table_entry_t> none;
  amqp_basic_properties_t p = WithId("probe_fail", "named", &none);
  ASSERT_TRUE(client_->Publish(queue_, "x", &p));
  // Attempt 1 retries through {queue}.wait.250ms, attempt 2 dead-letters.
  ASSERT_TRUE(WaitFor([&] { return client_->Count(queue_ + ".dead") == 1; }));
  EXPECT_TRUE(Seen("named", 2));
  EXPECT_EQ(client_->Count(queue_ + ".wait.250ms"), 0);  // exists (declared on use), empty
  EXPECT_EQ(client_->Count(queue_ + "-dlq"), -1);        // the default names are not used
  EXPECT_EQ(client_->Count(queue_ + "-retry-250ms"), -1);
  auto m = client_->Get(queue_ + ".dead");
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->body, "x");
}

// The policy's delays are 1s (attempt 1) and 30s (attempts 2 and 3), so it
// has a 1s and a 30s tier. Message A fails at attempt 2 and waits in the 30s
// tier; message B, published after it, fails at attempt 1 and must be back
// after about 1 s, not behind A. With one shared retry queue and per-message
// TTLs B would wait the 30 s with A.
TEST_F(RabbitMqTopologyTest, ShortRetryIsNotHeldUpByALongOne) {
  daemon_ = StartDaemon(Yaml("      queue_type: quorum\n",
                             "    max_attempts: 4\n    backoff: exponential\n    initial: 1s\n"
                             "    multiplier: 30\n    max: 30s\n    jitter: 0\n"));
  ASSERT_NE(daemon_, nullptr);
  // A arrives as attempt 2 (a retry the daemon made earlier).
  std::vector<amqp_table_entry_t> a_headers = {IntHeader("x-retry-attempt", 2),
                                               StringHeader("succeed_at", "4")};
  amqp_basic_properties_t a = WithId("probe_fail", "A", &a_headers);
  ASSERT_TRUE(client_->Publish(queue_, "long", &a));
  ASSERT_TRUE(WaitFor([&] { return client_->Count(queue_ + "-retry-30s") == 1; }));

  std::vector<amqp_table_entry_t> b_headers = {StringHeader("succeed_at", "2")};
  amqp_basic_properties_t b = WithId("probe_fail", "B", &b_headers);
  ASSERT_TRUE(client_->Publish(queue_, "short", &b));
  ASSERT_TRUE(WaitFor([&] { return Seen("B", 1); }, std::chrono::seconds(10)));
  const auto first = std::chrono::steady_clock::now();
  ASSERT_TRUE(WaitFor([&] { return Seen("B", 2); }, std::chrono::seconds(20)));
  const auto waited = std::chrono::steady_clock::now() - first;
  const double ms = std::chrono::duration<double, std::milli>(waited).count();
  std::printf("B's 1s retry came back after %.0f ms; A is still in the 30s tier\n", ms);
  EXPECT_GE(waited, std::chrono::milliseconds(900));
  EXPECT_LT(waited, std::chrono::seconds(5));
  EXPECT_FALSE(Seen("A", 3));
  EXPECT_EQ(client_->Count(queue_ + "-retry-30s"), 1);
  EXPECT_EQ(client_->Count(queue_ + "-retry-1s"), 0);
}

}  // namespace
}  // namespace foxworker::testing
