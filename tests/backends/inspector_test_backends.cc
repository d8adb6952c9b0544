#include "tests/backends/inspector_test_backends.h"

#include <chrono>

#include "daemon/backends/local/local_backend.h"

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

}  // namespace

std::vector<std::string> InspectorBackends() { return {"local"}; }

std::unique_ptr<InspectorHarness> MakeInspectorHarness(const std::string& name,
                                                       const std::string& dir) {
  if (name == "local") return std::make_unique<LocalHarness>(dir);
  return nullptr;
}

}  // namespace foxworker::testing
