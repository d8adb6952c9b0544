// The backends InspectorTest runs on: each makes a backend on a real server
// (a SQLite file, redis-server, rabbitmq-server) and says what its
// inspector can tell.
#ifndef FOXWORKER_TESTS_BACKENDS_INSPECTOR_TEST_BACKENDS_H_
#define FOXWORKER_TESTS_BACKENDS_INSPECTOR_TEST_BACKENDS_H_

#include <memory>
#include <string>
#include <vector>

#include "daemon/core/backend.h"

namespace foxworker::testing {

class InspectorHarness {
 public:
  virtual ~InspectorHarness() = default;
  virtual bool available() const { return true; }
  virtual std::string why_unavailable() const { return {}; }
  virtual std::unique_ptr<Backend> MakeBackend() = 0;
  // Before the source opens: fills backend-side options (the rabbitmq: block).
  virtual void Prepare(SourceOptions& options) { (void)options; }
  // After the test: removes what the test left on the server.
  virtual void Cleanup(const SourceOptions& options) { (void)options; }
  // Restarts the server (its data kept); false when the harness cannot.
  virtual bool RestartServer() { return false; }
  virtual bool counts_unacked() const { return true; }
  virtual bool counts_scheduled() const { return true; }
  virtual bool knows_oldest_age() const { return true; }
  virtual bool lists_scheduled() const { return true; }
  // Whether a listed retry says which failure scheduled it.
  virtual bool scheduled_has_error() const { return true; }
};

// "local", "redis", "rabbitmq".
std::vector<std::string> InspectorBackends();
// `dir` is a temporary directory of the test's own.
std::unique_ptr<InspectorHarness> MakeInspectorHarness(const std::string& name,
                                                       const std::string& dir);

}  // namespace foxworker::testing

#endif  // FOXWORKER_TESTS_BACKENDS_INSPECTOR_TEST_BACKENDS_H_
