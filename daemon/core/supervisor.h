// Supervisor: builds the running daemon from a validated Config (plugins,
// backends, executor, consumers), starts it, and owns the order of shutdown.
// The signal loop that drives it lives in daemon/main.cc.
#ifndef FOXWORKER_CORE_SUPERVISOR_H_
#define FOXWORKER_CORE_SUPERVISOR_H_

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include "daemon/config/config.h"
#include "daemon/core/backend.h"
#include "daemon/core/consumer.h"
#include "daemon/core/executor.h"
#include "daemon/core/timer.h"
#include "daemon/config/extension_registry.h"
#include "daemon/plugins/plugin_loader.h"

namespace foxworker {

// What a config reload did.
struct ReloadReport {
  std::vector<std::string> changes;   // "queue mail added", ... (empty: nothing changed)
  std::vector<std::string> warnings;  // settings that need a restart, kept as they were
};

// Used from the control thread only, except ReadLock() and what it guards
// (see there) and the publish callback plugins use.
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

  // Applies a new, validated config to the running daemon (SIGHUP): adds
  // queues, backends and plugins; retires removed ones; hands a changed queue
  // over to a new consumer (the old one stops fetching and finishes its
  // in-flight messages first), or, when only its concurrency or timeouts
  // changed, applies them to the running consumer (Consumer::ChangeLimits).
  // Either the whole config applies or, on error,
  // nothing changes and the running config stays. Never waits for handlers:
  // Poll() completes the hand-overs as consumers drain.
  Result<ReloadReport> Reload(Config next);

  // Advances reload transitions: destroys the plugin instances a lowered
  // concurrency left idle and drained retired consumers, starts
  // the consumers that waited for them, stops backends and shuts down plugins
  // that nothing uses any more. Call from the control loop.
  void Poll();

  // Empty when no reload transition is under way; else what is still going
  // on ("handing over: jobs (3 in flight)").
  std::string Transition() const;
  // Whether Transition() has anything to say (cheaper than building it).
  bool InTransition() const { return !retiring_.empty() || !pending_.empty(); }

  // Threads other than the control thread (the admin endpoint) hold this
  // while they read config(), consumers(), FindBackend() and FindConsumer():
  // Reload() and Poll() change those only under the exclusive lock.
  std::shared_lock<std::shared_mutex> ReadLock() const {
    return std::shared_lock<std::shared_mutex>(state_mu_);
  }

  // One line listing queues, handlers, backends.
  std::string Describe() const;

  const Config& config() const { return config_; }
  Backend* FindBackend(const std::string& name) const;
  Consumer* FindConsumer(const std::string& name) const;
  const std::vector<std::unique_ptr<Consumer>>& consumers() const { return consumers_; }

 private:
  // A consumer taken out of service by a reload, draining.
  struct Retiring {
    std::unique_ptr<Consumer> consumer;
    const Backend* backend;
  };
  // A queue's new consumer, built and waiting until the consumer it replaces
  // has drained (or for its source to open).
  struct PendingStart {
    QueueConfig config;
    RetryPolicyConfig policy;
    const LoadedPlugin* plugin;
    std::unique_ptr<InstancePool> instances;
    std::vector<std::unique_ptr<Middleware>> middleware;
    bool paused = false;  // the queue was paused (admin): it stays paused
    bool open_error_logged = false;
  };

  Status PublishFromPlugin(const foxw_publish& p, const Delivery* parent);
  LoadedPlugin* FindPlugin(const std::string& name) const;
  // Opens the source of a pending queue and starts its consumer; false when
  // it must wait (the source cannot be opened yet).
  bool TryStart(PendingStart& p);

  mutable std::shared_mutex state_mu_;
  Config config_;
  std::vector<std::unique_ptr<LoadedPlugin>> plugins_;  // load order
  std::map<std::string, std::unique_ptr<Backend>> backends_;
  std::unique_ptr<Executor> executor_;
  std::unique_ptr<Timer> timer_;
  SharedMiddlewareStates shared_buckets_;  // shared rate limits' token buckets, by name
  std::vector<std::unique_ptr<Consumer>> consumers_;
  // Reload transitions; declared after what they use, so destroyed first.
  std::vector<std::unique_ptr<LoadedPlugin>> retiring_plugins_;  // shut down once unused
  std::vector<std::unique_ptr<LoadedPlugin>> finished_plugins_;  // shut down (never dlclosed)
  std::vector<std::unique_ptr<Backend>> retiring_backends_;      // stopped once unused
  std::vector<Retiring> retiring_;
  std::vector<PendingStart> pending_;
  bool started_ = false;
  bool shut_down_ = false;
};

}  // namespace foxworker

#endif  // FOXWORKER_CORE_SUPERVISOR_H_
