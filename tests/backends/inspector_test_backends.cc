#include "tests/backends/inspector_test_backends.h"

#include <chrono>

#include "daemon/backends/local/local_backend.h"
#include "daemon/backends/redis/redis_backend.h"
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
};

}  // namespace

std::vector<std::string> InspectorBackends() { return {"local", "redis"}; }

std::unique_ptr<InspectorHarness> MakeInspectorHarness(const std::string& name,
                                                       const std::string& dir) {
  if (name == "local") return std::make_unique<LocalHarness>(dir);
  if (name == "redis") return std::make_unique<RedisHarness>();
  return nullptr;
}

}  // namespace foxworker::testing
