// Supervisor: builds the running daemon from a validated Config (plugins,
// backends, executor, consumers), starts it, and owns the order of shutdown.
// The signal loop that drives it lives in daemon/main.cc.
#ifndef FOXWORKER_CORE_SUPERVISOR_H_
#define FOXWORKER_CORE_SUPERVISOR_H_

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "daemon/config/config.h"
#include "daemon/core/backend.h"
#include "daemon/core/consumer.h"
#include "daemon/core/executor.h"
#include "daemon/core/timer.h"
#include "daemon/middleware/rate_limit.h"
#include "daemon/plugins/plugin_loader.h"

namespace foxworker {

// Not thread-safe: used from the control thread only.
class Supervisor {
 public:
  explicit Supervisor(Config config);
  ~Supervisor();
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  // Loads plugins, starts backends and consumers. On error nothing is left
  // running.
  Status Start();

  // Graceful drain: stop fetching, wait for in-flight handlers until the
  // shutdown timeout or until `give_up()` returns true (polled), flush
  // settlements, close backends, destroy instances, shut plugins down.
  // Returns true when everything drained; false when handlers were abandoned
  // (their messages are redelivered later). After an abandon the process
  // must exit without running destructors of plugin state.
  bool Shutdown(const std::function<bool()>& give_up = nullptr);

  // One line listing queues, handlers, backends.
  std::string Describe() const;

  const Config& config() const { return config_; }
  Backend* FindBackend(const std::string& name) const;
  Consumer* FindConsumer(const std::string& name) const;
  const std::vector<std::unique_ptr<Consumer>>& consumers() const { return consumers_; }

 private:
  Status PublishFromPlugin(const foxw_publish& p, const Delivery* parent);

  Config config_;
  std::vector<std::unique_ptr<LoadedPlugin>> plugins_;  // load order
  std::map<std::string, std::unique_ptr<Backend>> backends_;
  std::unique_ptr<Executor> executor_;
  std::unique_ptr<Timer> timer_;
  std::map<std::string, std::shared_ptr<TokenBucket>> shared_buckets_;
  std::vector<std::unique_ptr<Consumer>> consumers_;
  bool started_ = false;
  bool shut_down_ = false;
};

}  // namespace foxworker

#endif  // FOXWORKER_CORE_SUPERVISOR_H_
