// The rabbitmq backend's config keys, URL redaction and retry tiers (no broker).
#include <gtest/gtest.h>

#include "daemon/backends/rabbitmq/retry_tiers.h"
#include "daemon/config/config_parser.h"

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
  const RabbitMqBackendOptions& r = config->backends[0].rabbitmq;
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

TEST(RetryTiersTest, NearestTierOnALogScale) {
  EXPECT_EQ(RetryTierFor(Duration(0)), Duration(0));
  EXPECT_EQ(RetryTierFor(Duration(40)), Duration(0));
  EXPECT_EQ(RetryTierFor(Duration(60)), Duration(100));
  EXPECT_EQ(RetryTierFor(Duration(1000)), Duration(1000));
  EXPECT_EQ(RetryTierFor(Duration(1100)), Duration(1000));  // +10% jitter stays in the tier
  EXPECT_EQ(RetryTierFor(Duration(900)), Duration(1000));
  EXPECT_EQ(RetryTierFor(Duration(4500)), Duration(5000));
  EXPECT_EQ(RetryTierFor(Duration(3600000)), Duration(3600000));
  EXPECT_EQ(RetryTierFor(Duration(7 * 86400000LL)), Duration(86400000));
  EXPECT_EQ(RetryTierName(Duration(250)), "250ms");
  EXPECT_EQ(RetryTierName(Duration(5000)), "5s");
  EXPECT_EQ(RetryTierName(Duration(120000)), "2m");
  EXPECT_EQ(RetryTierName(Duration(3600000)), "1h");
}

}  // namespace
}  // namespace foxworker
