#include "tests/backends/inspector_test_backends.h"

#include <chrono>

#include "daemon/backends/local/local_backend.h"
#include "daemon/backends/rabbitmq/rabbitmq_backend.h"
#include "daemon/backends/redis/redis_backend.h"
#include "tests/backends/rabbitmq_test_client.h"
#include "tests/harness/rabbitmq_server.h"
#include "tests/backends/redis_test_util.h"

namespace foxworker::testing {
namespace {

class LocalHarness : public InspectorHarness {
 public:
  explicit LocalHarness(std::string dir) : dir_(std::move(dir)) {}
  std::unique_ptr<Backend> MakeBackend() override {
    LocalBackendOptions o;
    o.path = dir_ + "/jobs.db";
    o.durability = Durability::kNormal;
    o.poll_interval = std::chrono::milliseconds(20);
    return std::make_unique<LocalBackend>("local", o);
  }

 private:
  std::string dir_;
};

class RedisHarness : public InspectorHarness {
 public:
  bool available() const override { return SharedRedis().port() != 0; }
  std::string why_unavailable() const override { return "no redis-server"; }
  std::unique_ptr<Backend> MakeBackend() override {
    return std::make_unique<RedisBackend>("redis", TestOptions(SharedRedis(), "inspector-test"));
  }
  void Cleanup(const SourceOptions& options) override {
    SharedRedis().Command({"DEL", options.source, options.source + "-dlq",
                           options.source + ":retry"});
  }
  bool scheduled_has_error() const override { return false; }
  bool RestartServer() override { return SharedRedis().Restart().ok(); }
};

class RabbitMqHarness : public InspectorHarness {
 public:
  RabbitMqHarness() : server_(RabbitMqServer::Get()) {}
  bool available() const override { return server_ != nullptr; }
  std::string why_unavailable() const override {
    return "no RabbitMQ broker: " + RabbitMqServer::Error();
  }
  std::unique_ptr<Backend> MakeBackend() override {
    RabbitMqBackendOptions o;
    o.url = server_->url();
    o.connection_name = "foxworker-inspector-test";
    o.reconnect_initial = std::chrono::milliseconds(100);
    o.reconnect_max = std::chrono::milliseconds(1000);
    return std::make_unique<RabbitMqBackend>("rmq", o);
  }
  void Prepare(SourceOptions& options) override { Cleanup(options); }
  void Cleanup(const SourceOptions& options) override {
    AmqpTestClient client(server_->url());
    if (client.ok()) client.DeleteWithDerived(options.source);
  }
  bool counts_unacked() const override { return false; }
  bool counts_scheduled() const override { return false; }
  bool knows_oldest_age() const override { return false; }
  bool lists_scheduled() const override { return false; }

 private:
  RabbitMqServer* server_;
};

}  // namespace

std::vector<std::string> InspectorBackends() { return {"local", "redis", "rabbitmq"}; }

std::unique_ptr<InspectorHarness> MakeInspectorHarness(const std::string& name,
                                                       const std::string& dir) {
  if (name == "local") return std::make_unique<LocalHarness>(dir);
  if (name == "redis") return std::make_unique<RedisHarness>();
  if (name == "rabbitmq") return std::make_unique<RabbitMqHarness>();
  return nullptr;
}

}  // namespace foxworker::testing
