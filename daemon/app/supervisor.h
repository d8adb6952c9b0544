// Supervisor: builds the running daemon from a validated Config (plugins,
// backends, executor, consumers), starts it, applies reloads, and owns the
// order of shutdown.
// The signal loop that drives it lives in daemon/main.cc.
#ifndef FOXWORKER_CORE_SUPERVISOR_H_
#define FOXWORKER_CORE_SUPERVISOR_H_

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <string>
#include <utility>
#include <vector>

#include "daemon/base/liveness.h"
#include "daemon/config/config.h"
#include "daemon/core/backend.h"
#include "daemon/core/consumer.h"
#include "daemon/core/executor.h"
#include "daemon/app/depth_poller.h"
#include "daemon/app/reload_plan.h"
#include "daemon/core/timer.h"
#include "daemon/config/extension_registry.h"
#include "daemon/isolation/process_handlers.h"
#include "daemon/plugins/plugin_loader.h"

namespace foxworker {

// What a config reload did.
struct ReloadReport {
  std::vector<std::string> changes;   // "queue mail added", ... (empty: nothing changed)
  std::vector<std::string> warnings;  // settings that need a restart, kept as they were
};

// What the running daemon is made of at one moment. Immutable once
// published: a change (reload, a queue starting) publishes a new snapshot,
// and whoever holds an old one keeps its objects alive. The objects
// themselves are live (a Consumer counts, a Backend connects); what does not
// change is which of them make up the daemon and the config they run.
struct RuntimeSnapshot {
  std::shared_ptr<const Config> config;
  std::vector<std::shared_ptr<LoadedPlugin>> plugins;  // load order
  std::map<std::string, std::shared_ptr<Backend>> backends;
  std::vector<std::shared_ptr<Consumer>> consumers;  // config order

  Backend* FindBackend(const std::string& name) const;
  Consumer* FindConsumer(const std::string& name) const;
  LoadedPlugin* FindPlugin(const std::string& name) const;
};

// Start and Reload are one path: a ReloadPlan computed from the running
// config (empty at start) and the next one, then applied.
//
// Used from the control thread only, except ReadLock() and what it guards
// (see there), snapshot(), and the publish callback plugins use.
class Supervisor {
 public:
  explicit Supervisor(Config config);
  ~Supervisor();
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  // Loads plugins, starts backends and consumers: applies the plan from an
  // empty config to the one given to the constructor. Stricter than a
  // reload where only a start can be: a queue whose source cannot be opened
  // fails the start (a reload waits for it), and new backends start after
  // their queues' sources are open, so that errors their first connection
  // finds stop the daemon. On error, Shutdown() stops what runs.
  Status Start();

  // Graceful drain: stop fetching, wait for in-flight handlers until the
  // shutdown timeout or until `give_up()` returns true (polled), flush
  // settlements, close backends, destroy instances (handler children of
  // isolation: process get what is left of the shutdown timeout, at least
  // a second, for the plugin's shutdown, then SIGTERM, then SIGKILL), shut
  // plugins down.
  // Returns true when every message settled and every handler call returned;
  // false when handlers were abandoned (each is logged; their messages are
  // redelivered later). Handlers running in children are ended: their
  // children are stopped, their messages handed back uncharged, and the
  // shutdown then completes. Handlers running in the daemon's threads
  // cannot be: after such an abandon (see LogAbandoned) the process must
  // exit without running destructors of plugin state. Safe after a failed
  // Start(), and a no-op when called again.
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
  // the control thread swaps the snapshot, and changes a consumer's limits
  // in place, only under the exclusive lock, which it holds for nothing
  // slower than that (never across broker I/O).
  std::shared_lock<std::shared_mutex> ReadLock() const {
    return std::shared_lock<std::shared_mutex>(state_mu_);
  }

  // The current snapshot, from any thread, without ReadLock(). Holding it
  // keeps its backends, consumers and plugins alive (not running: a backend
  // retired meanwhile is stopped, and its Enqueue fails).
  std::shared_ptr<const RuntimeSnapshot> snapshot() const;

  // One line listing queues, handlers, backends.
  std::string Describe() const;

  // Of the current snapshot (see ReadLock()).
  const Config& config() const { return *current_->config; }
  Backend* FindBackend(const std::string& name) const { return current_->FindBackend(name); }
  Consumer* FindConsumer(const std::string& name) const { return current_->FindConsumer(name); }
  const std::vector<std::shared_ptr<Consumer>>& consumers() const { return current_->consumers; }

  // The depth of every queue, read on a timer (daemon/app/depth_poller.h);
  // null when the admin listener is off (nothing would show it) and before
  // Start. Stopped by Shutdown, it keeps its last readings. From any thread.
  const DepthPoller* depth_poller() const { return depth_poller_.get(); }

 private:
  // A consumer taken out of service by a reload, draining.
  struct Retiring {
    std::shared_ptr<Consumer> consumer;
    const Backend* backend;
    const LoadedPlugin* plugin;  // its handlers' plugin: not shut down before it drained
  };
  // A queue's new consumer, built and waiting until the consumer it replaces
  // has drained (or for its source to open).
  struct PendingStart {
    QueueConfig config;
    RetryPolicyConfig policy;
    std::shared_ptr<LoadedPlugin> plugin;
    std::unique_ptr<HandlerSet> handlers;
    std::vector<std::unique_ptr<Middleware>> middleware;
    bool paused = false;  // the queue was paused (admin): it stays paused
    bool open_error_logged = false;
  };

  // What Apply() builds before it commits.
  struct Staged {
    std::map<std::string, std::shared_ptr<Backend>> backends;  // new, started on a reload
    std::map<std::string, std::shared_ptr<LoadedPlugin>> plugins;  // loaded
    std::map<LoadedPlugin*, std::string> old_json;  // plugins whose config JSON was swapped
    std::vector<PendingStart> starts;               // queues added or handed over
    // Running consumers whose limits change in place, with what that needs.
    std::vector<std::pair<Consumer*, Consumer::LimitChange>> in_place;
    // isolation: process queues changed in place: their handler sets and
    // what changes (new children, started).
    std::vector<std::pair<isolation::ProcessHandlerSet*,
                          std::unique_ptr<isolation::ProcessHandlerSet::Change>>>
        children;
    SharedMiddlewareStates buckets;  // shared rate limits' token buckets, by name
  };

  // Applies the plan from `old` (what runs) to `next`: the one path of
  // Start() and Reload().
  Result<ReloadReport> Apply(const Config& old, Config next);
  // Builds what `plan` needs into `staged`; on error the caller Discard()s it.
  Status Build(const ReloadPlan& plan, const Config& next, const RunningFacts& facts,
               Staged& staged);
  // Undoes Build(): the running daemon is as it was.
  void Discard(Staged& staged);
  // Makes `staged` part of the daemon and `next` its config (cannot fail):
  // retires what the plan retires, queues the new consumers, swaps the
  // snapshot and applies in-place limit changes under the exclusive lock.
  void Commit(const ReloadPlan& plan, Staged& staged, Config next);
  // Start only: opens the sources of every queue (failing the start when
  // one cannot), then starts the backends, then the consumers.
  Status StartQueues();
  // What the plan needs to know about what runs (plugin files and their
  // effective config, which queues consume or wait, who drains where).
  Result<RunningFacts> Facts(const Config& next) const;
  // Builds a queue's consumer: the only place a Consumer is constructed.
  std::shared_ptr<Consumer> MakeConsumer(PendingStart& p, std::unique_ptr<Source> source);
  Result<std::unique_ptr<Source>> OpenSourceOf(const PendingStart& p);
  // Publishes `next` as the current snapshot (control thread; takes the
  // exclusive lock for the swap only).
  // `under_lock` runs under the exclusive lock too (what readers of a
  // consumer's config() must not see half done).
  void Swap(std::shared_ptr<const RuntimeSnapshot> next,
            const std::function<void()>& under_lock = nullptr);
  // A copy of the current snapshot to change and Swap() in.
  std::shared_ptr<RuntimeSnapshot> Edit() const;
  // Adds a started consumer to the snapshot, in config order.
  void Install(std::shared_ptr<Consumer> c);

  // Logs what a shutdown that gave up leaves behind: one line in total and
  // one per handler still running (queue, plugin, handler, message id,
  // attempt, running for). `why` says why it gave up.
  void LogAbandoned(int64_t in_flight, const std::string& why);

  Status PublishFromPlugin(const foxw_publish& p, const Delivery* parent);
  // Opens the source of a pending queue and starts its consumer; false when
  // it must wait (the source cannot be opened yet).
  bool TryStart(PendingStart& p);

  mutable std::shared_mutex state_mu_;  // see ReadLock()
  mutable std::mutex snapshot_mu_;      // guards the pointer current_ for snapshot()
  std::unique_ptr<Executor> executor_;
  std::unique_ptr<Timer> timer_;
  // Beaten by Poll() after it probed every queue's dispatch locks.
  Heartbeat dispatch_beat_;
  SharedMiddlewareStates shared_buckets_;  // shared rate limits' token buckets, by name
  // Written by the control thread only, under both locks. Declared after
  // the executor and timer its consumers use, so destroyed before them.
  std::shared_ptr<const RuntimeSnapshot> current_;
  // Queues whose consumer was built with a timeout (its watchdog runs).
  std::set<std::string> watchdog_;
  // Reload transitions; declared after what they use, so destroyed first.
  std::vector<std::shared_ptr<LoadedPlugin>> retiring_plugins_;  // shut down once unused
  std::vector<std::shared_ptr<LoadedPlugin>> finished_plugins_;  // shut down (never dlclosed)
  std::vector<std::shared_ptr<Backend>> retiring_backends_;      // stopped once unused
  std::vector<Retiring> retiring_;
  std::vector<PendingStart> pending_;
  // Drained or stopped, destroyed by Poll() once no snapshot holds them.
  std::vector<Retiring> released_;
  std::vector<std::shared_ptr<Backend>> released_backends_;
  // Declared last: stopped (and destroyed) before what it reads.
  std::unique_ptr<DepthPoller> depth_poller_;
  bool started_ = false;
  bool shut_down_ = false;
  bool journal_installed_ = false;  // StartRunningJournal installed this daemon's journal
};

}  // namespace foxworker

#endif  // FOXWORKER_CORE_SUPERVISOR_H_
