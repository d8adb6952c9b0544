// The rabbitmq backend's config keys, queue topology settings, URL redaction
// and retry tiers (no broker).
#include <amqp.h>
#include <gtest/gtest.h>

#include <string>

#include "daemon/backends/rabbitmq/amqp_url.h"
#include "daemon/backends/rabbitmq/rabbitmq_config.h"
#include "daemon/backends/rabbitmq/retry_tiers.h"
#include "daemon/config/config_parser.h"
#include "daemon/core/retry_policy.h"

namespace foxworker {
namespace {

constexpr char kYaml[] = R"(
plugins:
  p:
    path: /nonexistent/p.so
backends:
  rmq:
    type: rabbitmq
    url: amqps://worker:s3cret@broker.example:5671/prod
    tls:
      ca: /etc/ssl/ca.pem
      cert: client.pem
      key: client.key
      verify: false
    heartbeat: 15s
    connection_name: billing-workers
    declare: false
    queue_type: classic
    delayed_retries: false
    reconnect_initial: 200ms
    reconnect_max: 10s
queues:
  q:
    backend: rmq
    plugin: p
)";

TEST(RabbitMqConfigTest, ParsesEveryKey) {
  auto config = ParseConfigString(kYaml, "t.yaml", "/etc/foxworker");
  ASSERT_TRUE(config.ok()) << config.status().message();
  const RabbitMqBackendOptions& r = *config->backends[0].options.As<RabbitMqBackendOptions>();
  EXPECT_EQ(r.url, "amqps://worker:s3cret@broker.example:5671/prod");
  EXPECT_EQ(r.tls.ca, "/etc/ssl/ca.pem");
  EXPECT_EQ(r.tls.cert, "/etc/foxworker/client.pem");
  EXPECT_EQ(r.tls.key, "/etc/foxworker/client.key");
  EXPECT_FALSE(r.tls.verify);
  EXPECT_EQ(r.heartbeat, Duration(15000));
  EXPECT_EQ(r.connection_name, "billing-workers");
  EXPECT_FALSE(r.declare);
  EXPECT_EQ(r.queue_type, AmqpQueueType::kClassic);
  EXPECT_FALSE(r.delayed_retries);
  EXPECT_EQ(r.reconnect_initial, Duration(200));
  EXPECT_EQ(r.reconnect_max, Duration(10000));
}

TEST(RabbitMqConfigTest, FormatConfigNeverPrintsThePassword) {
  auto config = ParseConfigString(kYaml, "t.yaml", "/etc/foxworker");
  ASSERT_TRUE(config.ok()) << config.status().message();
  std::string text = FormatConfig(*config);
  EXPECT_EQ(text.find("s3cret"), std::string::npos) << text;
  EXPECT_NE(text.find("amqps://worker:***@broker.example:5671/prod"), std::string::npos) << text;
  // The printed config reads back (with the placeholder password).
  auto again = ParseConfigString(text, "printed.yaml", "/etc/foxworker");
  EXPECT_TRUE(again.ok()) << again.status().message();
}

TEST(RabbitMqConfigTest, RedactUrl) {
  EXPECT_EQ(RedactUrl("amqp://u:p@h/v"), "amqp://u:***@h/v");
  EXPECT_EQ(RedactUrl("amqp://u@h/v"), "amqp://u@h/v");
  EXPECT_EQ(RedactUrl("amqp://h:5672/v"), "amqp://h:5672/v");
  EXPECT_EQ(RedactUrl("amqp://h/v@x"), "amqp://h/v@x");
}

// The config layer checks URLs without librabbitmq-c; it must agree with
// amqp_parse_url(), which the connection uses.
TEST(RabbitMqConfigTest, UrlCheckAgreesWithTheClientLibrary) {
  const char* urls[] = {
      "amqp://", "amqps://", "amqp://localhost", "amqp://localhost:5672", "amqp://h:5672/",
      "amqp://guest:guest@localhost:5672", "amqp://u:p@h:1/v", "amqp://u@h", "amqp://u:p@h",
      "amqp://h/v%2Fx", "amqp://h/v/x", "amqp://h:/v", "amqp://h:abc", "amqp://h:70000",
      "amqp://[::1]", "amqp://[::1]:5672/v", "amqp://u:p@[::1]:5672/v", "amqp://[::1",
      "amqp://h%zz", "amqp://h%2", "amqp://h?x=1", "amqp://h#f", "http://h", "amqp:/h",
      "amqp://u:p@", "amqp://:5672", "amqp://u:p@h:5672/v:x", "amqp://a@b@c", "amqp://h]",
      "amqps://user:pass@rabbit.example.com:5671/%2f", "amqp://u:p@h:5672/v@x", "",
  };
  for (const char* url : urls) {
    std::string buffer = url;
    amqp_connection_info info;
    const bool library = amqp_parse_url(buffer.data(), &info) == AMQP_STATUS_OK;
    EXPECT_EQ(IsValidAmqpUrl(url), library) << url;
  }
}

TEST(RabbitMqConfigTest, ErrorsNameTheKey) {
  std::string bad = kYaml;
  bad.replace(bad.find("classic"), 7, "stream");
  auto config = ParseConfigString(bad, "t.yaml", "/etc");
  ASSERT_FALSE(config.ok());
  EXPECT_NE(config.status().message().find("backends.rmq.queue_type"), std::string::npos)
      << config.status().message();
  EXPECT_NE(config.status().message().find("expected quorum or classic"), std::string::npos);

  bad = kYaml;
  bad.replace(bad.find("amqps://"), 8, "http://");
  config = ParseConfigString(bad, "t.yaml", "/etc");
  ASSERT_FALSE(config.ok());
  EXPECT_NE(config.status().message().find("invalid AMQP URL"), std::string::npos);
  EXPECT_EQ(config.status().message().find("s3cret"), std::string::npos);

  bad = kYaml;
  bad.replace(bad.find("heartbeat: 15s"), 14, "heartbeat: 1500ms");
  config = ParseConfigString(bad, "t.yaml", "/etc");
  ASSERT_FALSE(config.ok());
  EXPECT_NE(config.status().message().find("whole seconds"), std::string::npos);

  bad = kYaml;
  bad.replace(bad.find("    declare: false\n"), 0, "    lease: 1s\n");
  config = ParseConfigString(bad, "t.yaml", "/etc");
  ASSERT_FALSE(config.ok());
  EXPECT_NE(config.status().message().find("belongs to type local"), std::string::npos)
      << config.status().message();
}

constexpr char kTopologyYaml[] = R"(
plugins:
  p:
    path: /nonexistent/p.so
backends:
  rmq:
    type: rabbitmq
queues:
  orders:
    backend: rmq
    plugin: p
    source: orders.v1
    rabbitmq:
      durable: true
      queue_type: classic
      arguments: {x-max-length: 100000, x-overflow: reject-publish, x-ratio: 0.5, "x-n": "42", x-flag: true}
      exchange:
        name: shop
        type: topic
        durable: true
        auto_delete: false
        arguments: {alternate-exchange: shop.unrouted}
      bindings:
        - routing_key: [order.created, "order.*.paid"]
        - exchange: amq.headers
          arguments: {x-match: all, kind: order}
      dead_letter_queue: "{queue}.dead"
      retry_queue_prefix: "retry.{queue}."
  plain:
    backend: rmq
    plugin: p
)";

TEST(RabbitMqTopologyConfigTest, ParsesQueueExchangeAndBindings) {
  auto config = ParseConfigString(kTopologyYaml, "t.yaml", "/etc");
  ASSERT_TRUE(config.ok()) << config.status().message();
  const RabbitMqQueueOptions& o =
      RabbitMqQueueOptionsOf(config->queues[0].backend_block.options.get());
  EXPECT_TRUE(o.present);
  EXPECT_EQ(o.queue_type, AmqpQueueType::kClassic);
  ASSERT_EQ(o.arguments.size(), 5u);
  EXPECT_EQ(o.arguments[0].key, "x-max-length");
  EXPECT_EQ(o.arguments[0].kind, AmqpArgument::Kind::kInt);
  EXPECT_EQ(o.arguments[0].int_value, 100000);
  EXPECT_EQ(o.arguments[1].kind, AmqpArgument::Kind::kString);
  EXPECT_EQ(o.arguments[1].text, "reject-publish");
  EXPECT_EQ(o.arguments[2].kind, AmqpArgument::Kind::kDouble);
  EXPECT_EQ(o.arguments[2].double_value, 0.5);
  EXPECT_EQ(o.arguments[3].kind, AmqpArgument::Kind::kString);  // quoted "42"
  EXPECT_EQ(o.arguments[4].kind, AmqpArgument::Kind::kBool);
  ASSERT_TRUE(o.exchange.has_value());
  EXPECT_EQ(o.exchange->name, "shop");
  EXPECT_EQ(o.exchange->type, "topic");
  ASSERT_EQ(o.exchange->arguments.size(), 1u);
  ASSERT_EQ(o.bindings.size(), 2u);
  EXPECT_EQ(o.bindings[0].exchange, "shop");  // the queue's own exchange by default
  EXPECT_EQ(o.bindings[0].routing_keys,
            (std::vector<std::string>{"order.created", "order.*.paid"}));
  EXPECT_EQ(o.bindings[1].exchange, "amq.headers");
  EXPECT_EQ(o.bindings[1].routing_keys, std::vector<std::string>{""});
  EXPECT_EQ(o.bindings[1].arguments.size(), 2u);
  EXPECT_EQ(ExpandQueuePattern(o.dead_letter_queue, "orders.v1"), "orders.v1.dead");
  EXPECT_EQ(ExpandQueuePattern(o.retry_queue_prefix, "orders.v1"), "retry.orders.v1.");
  const RabbitMqQueueOptions& plain =
      RabbitMqQueueOptionsOf(config->queues[1].backend_block.options.get());
  EXPECT_FALSE(plain.present);
  EXPECT_EQ(ExpandQueuePattern(plain.dead_letter_queue, "plain"), "plain-dlq");
  EXPECT_EQ(ExpandQueuePattern(plain.retry_queue_prefix, "plain"), "plain-retry-");
}

TEST(RabbitMqTopologyConfigTest, CheckConfigPrintsItAndReadsBack) {
  auto config = ParseConfigString(kTopologyYaml, "t.yaml", "/etc");
  ASSERT_TRUE(config.ok()) << config.status().message();
  std::string text = FormatConfig(*config);
  for (const char* expected :
       {"      exchange:\n        name: \"shop\"\n        type: topic\n",
        "        - exchange: \"shop\"\n          routing_key: [\"order.created\", \"order.*.paid\"]\n",
        "          arguments:\n            x-match: \"all\"\n", "        x-ratio: 0.5\n",
        "        x-max-length: 100000\n", "        x-n: \"42\"\n",
        "      dead_letter_queue: \"{queue}.dead\"\n",
        "      retry_queue_prefix: \"{queue}-retry-\"\n", "      queue_type: quorum\n"}) {
    EXPECT_NE(text.find(expected), std::string::npos) << expected << "\nin:\n" << text;
  }
  auto again = ParseConfigString(text, "printed.yaml", "/etc");
  ASSERT_TRUE(again.ok()) << again.status().message() << "\n" << text;
  std::string text_again = FormatConfig(*again);
  EXPECT_EQ(text_again.substr(text_again.find('\n')), text.substr(text.find('\n')));
}

// The error for `kTopologyYaml` with `from` replaced by `to`.
std::string TopologyError(const std::string& from, const std::string& to) {
  std::string yaml = kTopologyYaml;
  size_t at = yaml.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at == std::string::npos) return "";
  yaml.replace(at, from.size(), to);
  auto config = ParseConfigString(yaml, "t.yaml", "/etc");
  EXPECT_FALSE(config.ok()) << "accepted: " << to;
  return config.ok() ? "" : config.status().message();
}

TEST(RabbitMqTopologyConfigTest, ErrorsPointAtTheKey) {
  std::string e = TopologyError("type: topic", "type: fan");
  EXPECT_NE(e.find("t.yaml:19:15: queues.orders.rabbitmq.exchange.type: invalid exchange type "
                   "\"fan\": expected direct, topic, fanout or headers"),
            std::string::npos)
      << e;
  e = TopologyError("name: shop", "name: amq.shop");
  EXPECT_NE(e.find("t.yaml:18:15: queues.orders.rabbitmq.exchange.name: names starting with"),
            std::string::npos)
      << e;
  e = TopologyError("x-flag: true}", "x-flag: [1]}");
  EXPECT_NE(e.find("queues.orders.rabbitmq.arguments.x-flag: expected a string, number or "
                   "boolean, got a sequence"),
            std::string::npos)
      << e;
  e = TopologyError("x-flag: true}", "x-queue-type: stream}");
  EXPECT_NE(e.find("x-queue-type is set by queue_type"), std::string::npos) << e;
  e = TopologyError("        - exchange: amq.headers\n", "        - exchnge: amq.headers\n");
  EXPECT_NE(e.find("t.yaml:25:11: queues.orders.rabbitmq.bindings[1].exchnge: unknown key"),
            std::string::npos)
      << e;
  e = TopologyError("      exchange:\n        name: shop\n        type: topic\n        "
                    "durable: true\n        auto_delete: false\n        arguments: "
                    "{alternate-exchange: shop.unrouted}\n",
                    "");
  EXPECT_NE(e.find("t.yaml:18:11: queues.orders.rabbitmq.bindings[0]: missing required key "
                   "\"exchange\""),
            std::string::npos)
      << e;
  e = TopologyError("\"{queue}.dead\"", "\"{queue}\"");
  EXPECT_NE(e.find("queues.orders.rabbitmq.dead_letter_queue: names the queue itself"),
            std::string::npos)
      << e;
  e = TopologyError("\"retry.{queue}.\"", "\"retry.{name}.\"");
  EXPECT_NE(e.find("queues.orders.rabbitmq.retry_queue_prefix: \"{queue}\" is the only "
                   "placeholder"),
            std::string::npos)
      << e;
  e = TopologyError("      durable: true\n      queue_type: classic\n", "      durable: false\n");
  EXPECT_NE(e.find("queues.orders.rabbitmq.durable: quorum queues are always durable"),
            std::string::npos)
      << e;
  e = TopologyError("    type: rabbitmq\n", "    type: rabbitmq\n    declare: false\n");
  EXPECT_NE(e.find("has declare: false, so durable, queue_type, arguments, exchange and bindings "
                   "would not be used"),
            std::string::npos)
      << e;
  e = TopologyError("  plain:\n    backend: rmq\n",
                    "  plain:\n    backend: rmq\n    rabbitmq: {exchange: {name: shop}}\n");
  EXPECT_NE(e.find("exchange \"shop\" is also declared at t.yaml:17:7 with other settings"),
            std::string::npos)
      << e;
}

TEST(RabbitMqTopologyConfigTest, OnlyForRabbitMqQueues) {
  std::string yaml = kTopologyYaml;
  yaml.replace(yaml.find("backends:\n"), 10, "backends:\n  mem:\n    type: memory\n");
  yaml.replace(yaml.find("  plain:\n    backend: rmq\n"), 26,
               "  plain:\n    backend: mem\n    rabbitmq: {dead_letter_queue: x}\n");
  auto config = ParseConfigString(yaml, "t.yaml", "/etc");
  ASSERT_FALSE(config.ok());
  EXPECT_NE(config.status().message().find(
                "queues.plain.rabbitmq: only queues on a rabbitmq backend have this key "
                "(backend \"mem\" is of type memory)"),
            std::string::npos)
      << config.status().message();
}

RetryPolicyConfig Policy(Backoff backoff, int64_t initial_ms, double multiplier, int64_t max_ms,
                         int max_attempts, double jitter) {
  RetryPolicyConfig p;
  p.backoff = backoff;
  p.initial = Duration(initial_ms);
  p.multiplier = multiplier;
  p.max = Duration(max_ms);
  p.max_attempts = max_attempts;
  p.jitter = jitter;
  return p;
}

std::vector<Duration> PolicyTtls(const std::vector<RetryTier>& tiers) {
  std::vector<Duration> out;
  for (const RetryTier& t : tiers)
    if (t.policy) out.push_back(t.ttl);
  return out;
}

void ExpectIncreasing(const std::vector<RetryTier>& tiers) {
  for (size_t i = 1; i < tiers.size(); ++i) EXPECT_LT(tiers[i - 1].ttl, tiers[i].ttl);
}

TEST(RetryTiersTest, OneTierPerDistinctDelayOfThePolicy) {
  // The default policy: 1s, 2s, 4s, 8s (attempts 1-4), jitter 10%, max 5m.
  RetryPolicyConfig p;
  std::vector<RetryTier> tiers = ComputeRetryTiers(p);
  EXPECT_EQ(PolicyTtls(tiers), (std::vector<Duration>{Duration(1100), Duration(2200),
                                                      Duration(4400), Duration(8800),
                                                      Duration(300000)}));
  EXPECT_EQ(tiers.size(), kMaxRetryTiers);
  ExpectIncreasing(tiers);
  EXPECT_EQ(tiers.back().ttl, Duration(86400000));  // delayed publishes up to 24h
  EXPECT_EQ(RetryTierName(Duration(1100)), "1.1s");
  EXPECT_EQ(RetryTierName(Duration(300000)), "5m");

  // Jitter never moves a retry into another tier: the tier is picked by the
  // un-jittered delay's jitter range, which the TTL covers.
  for (int64_t base : {1000, 2000, 4000, 8000}) {
    const RetryTier* t = FindRetryTier(tiers, LongestJitteredDelay(p, Duration(base)));
    ASSERT_NE(t, nullptr);
    EXPECT_TRUE(t->policy);
    EXPECT_EQ(t->ttl, Duration(base * 11 / 10));
  }
  EXPECT_EQ(FindRetryTier(tiers, Duration(0)), nullptr);
  // Other delays go to the first tier at least as long.
  EXPECT_EQ(FindRetryTier(tiers, Duration(1500))->ttl, Duration(2200));
  EXPECT_GE(FindRetryTier(tiers, Duration(9000))->ttl, Duration(9000));
  EXPECT_LE(FindRetryTier(tiers, Duration(9000))->ttl, Duration(60000));
  EXPECT_EQ(FindRetryTier(tiers, Duration(86400001)), nullptr);
}

TEST(RetryTiersTest, CappedAndRoundedDelaysShareATier) {
  // 1s x3: 1s, 3s, 9s, 27s, then capped at 30s for attempts 5..9.
  auto tiers = ComputeRetryTiers(Policy(Backoff::kExponential, 1000, 3, 30000, 10, 0));
  EXPECT_EQ(PolicyTtls(tiers), (std::vector<Duration>{Duration(1000), Duration(3000),
                                                      Duration(9000), Duration(27000),
                                                      Duration(30000)}));
  // Jitter past max is clamped, like RetryPolicy::NextDelay does.
  RetryPolicyConfig fixed = Policy(Backoff::kFixed, 30000, 2, 30000, 5, 0.2);
  tiers = ComputeRetryTiers(fixed);
  EXPECT_EQ(PolicyTtls(tiers), std::vector<Duration>{Duration(30000)});
  EXPECT_EQ(LongestJitteredDelay(fixed, Duration(30000)), Duration(30000));
  // Three significant digits, rounded up: 1234 ms * 1.1 = 1357.4 -> 1360.
  tiers = ComputeRetryTiers(Policy(Backoff::kFixed, 1234, 2, 60000, 5, 0.1));
  EXPECT_EQ(PolicyTtls(tiers), (std::vector<Duration>{Duration(1360), Duration(60000)}));
  EXPECT_EQ(RetryTierName(Duration(1360)), "1.36s");
  // A zero delay has no tier (it is retried on the queue itself).
  tiers = ComputeRetryTiers(Policy(Backoff::kFixed, 0, 2, 0, 5, 0));
  EXPECT_TRUE(PolicyTtls(tiers).empty());
  EXPECT_EQ(FindRetryTier(tiers, Duration(0)), nullptr);
}

TEST(RetryTiersTest, AtMostSixteenTiersDroppingTheClosest) {
  // Linear 1s..100s: 100 distinct delays, plus max.
  RetryPolicyConfig p = Policy(Backoff::kLinear, 1000, 2, 200000, 101, 0);
  auto tiers = ComputeRetryTiers(p);
  ASSERT_EQ(tiers.size(), kMaxRetryTiers);
  ExpectIncreasing(tiers);
  EXPECT_EQ(tiers.front(), (RetryTier{Duration(1000), true}));
  EXPECT_EQ(tiers.back().ttl, Duration(86400000));
  for (size_t i = 0; i + 1 < tiers.size(); ++i) EXPECT_TRUE(tiers[i].policy) << i;
  // Every delay of the policy has a tier at least as long, and dropping the
  // closest keeps the spread small: no tier is more than 1.5x its shortest
  // delay.
  RetryPolicy rp(p, [] { return 0.0; });
  for (uint32_t attempt = 1; attempt < 101; ++attempt) {
    Duration base = rp.BaseDelay(attempt);
    const RetryTier* t = FindRetryTier(tiers, base);
    ASSERT_NE(t, nullptr) << base.count();
    EXPECT_GE(t->ttl, base);
    EXPECT_LE(static_cast<double>(t->ttl.count()), 1.5 * static_cast<double>(base.count()))
        << "attempt " << attempt << " tier " << t->ttl.count();
  }
  EXPECT_EQ(ComputeRetryTiers(p, 3).size(), 3u);
}

TEST(RetryTiersTest, FullJitterTiersAreTheDelaysThemselves) {
  RetryPolicyConfig p = Policy(Backoff::kExponential, 500, 2, 4000, 10, 0.1);
  p.full_jitter = true;
  EXPECT_EQ(PolicyTtls(ComputeRetryTiers(p)),
            (std::vector<Duration>{Duration(500), Duration(1000), Duration(2000),
                                   Duration(4000)}));
}

}  // namespace
}  // namespace foxworker
