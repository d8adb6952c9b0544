// ReloadPlan: what applying a config does to the running daemon, worked out
// from the config it runs (empty at start), the next one, and a few facts
// about what runs, before anything is built. The Supervisor applies it.
// Pure: no dlopen, no broker, no threads, so every decision can be tested on
// plain data.
#ifndef FOXWORKER_APP_RELOAD_PLAN_H_
#define FOXWORKER_APP_RELOAD_PLAN_H_

#include <map>
#include <string>
#include <vector>

#include "daemon/config/config.h"
#include "daemon/base/status.h"

namespace foxworker {

// What the plan needs to know about the running daemon beyond its config.
struct RunningFacts {
  // False at start: nothing runs yet, `old` is empty and every daemon
  // setting applies.
  bool started = false;

  // A loaded plugin that the next config keeps at the same path.
  struct Plugin {
    std::string config_json;       // what its instances are created from now
    std::string next_config_json;  // the next config's entry, its schema applied
    bool changed_on_disk = false;  // the file at its path is not the one loaded
  };
  std::map<std::string, Plugin> plugins;  // by name

  // A queue of the old config that has a consumer, or a new consumer waiting
  // to start (for a hand-over or its source to open). A queue of the old
  // config with neither (its consumer failed to start) is absent.
  struct Queue {
    bool consuming = false;  // false: waiting to start
    // The consumer was built with a timeout, so its watchdog runs
    // (Consumer::CanChangeLimits); meaningful when consuming.
    bool watchdog = false;
  };
  std::map<std::string, Queue> queues;  // by name

  // A consumer retired by an earlier reload and still draining, on the
  // backend of that name that still runs (empty when its backend is retired).
  struct Draining {
    std::string queue;
    std::string backend;
  };
  std::vector<Draining> draining;
};

enum class QueueAction {
  kKeep,          // the running consumer (or the waiting one) stays as it is
  // The running consumer takes the new concurrency/timeouts and, with
  // isolation: process, its handler set the new process settings (and new
  // children, see QueueStep).
  kChangeLimits,
  kStart,         // a new consumer: the queue is added or handed over
};

struct QueueStep {
  std::string name;
  QueueAction action = QueueAction::kKeep;
  // kStart: the running consumer retires and drains first (a hand-over).
  bool replaces_consumer = false;
  // kStart: a consumer still waiting to start is dropped for this one.
  bool replaces_waiting = false;
  // kChangeLimits of an isolation: process queue whose `process` block,
  // layout or plugin config changed: its handler set takes the change
  // (ProcessHandlerSet::PrepareChange).
  bool process_changed = false;
  // With process_changed: a new generation of children starts, the old
  // ones finish what they run and exit (NeedsNewChildren, or the plugin's
  // config changed). Without: the running children stay.
  bool new_children = false;
};

struct ReloadPlan {
  // The plan starts the daemon (RunningFacts::started was false).
  bool starting = false;
  // The daemon settings that take effect: the next config's, with those that
  // need a restart kept as they run.
  DaemonConfig daemon;

  // Plugins, by name. Loaded: new, or at another path (the old one retires).
  std::vector<std::string> plugins_to_load;      // next config order
  std::vector<std::string> plugins_kept;         // same path
  std::vector<std::string> plugins_reconfigured;  // kept, new config: new instances
  std::vector<std::string> plugins_changed_on_disk;  // kept, rebuilt .so (warned)
  std::vector<std::string> plugins_to_retire;    // removed or loaded again

  // Backends, by name. A changed backend is rebuilt: started anew and retired.
  std::vector<std::string> backends_to_start;  // added or rebuilt, next order
  std::vector<std::string> backends_kept;
  std::vector<std::string> backends_rebuilt;    // part of both lists above
  std::vector<std::string> backends_to_retire;  // removed or rebuilt

  // Shared rate limits whose definition changed or went: their buckets are
  // made again, and every queue using one is handed over.
  std::vector<std::string> rate_limits_changed;

  // Every queue of the next config, in its order, then the removed ones.
  std::vector<QueueStep> queues;
  std::vector<std::string> queues_removed;  // their consumer retires / waiting one goes

  // What the ReloadReport says: "queue mail added", ...
  std::vector<std::string> changes;
  // Settings that need a restart, kept as they were.
  std::vector<std::string> warnings;

  const QueueStep* FindQueue(const std::string& name) const;
};

// Works out what applying `next` to a daemon running `old` takes. Fails
// (and nothing may be applied) when a changed backend is still used by a
// queue. REQUIRES: both configs validated; `facts` describe `old`.
Result<ReloadPlan> ComputeReloadPlan(const Config& old, const Config& next,
                                     const RunningFacts& facts);

// True when `next` differs from `running` only in what a running consumer
// can take in place: concurrency, timeout, handler_timeouts. A timeout for
// a consumer without a watchdog is a hand-over. (Consumer::CanChangeLimits
// says the same of a live consumer.)
bool ChangesOnlyLimits(const QueueConfig& running, const QueueConfig& next, bool watchdog);

// True when both run isolation: process and `next` differs from `running`
// only in what the running consumer and its children can take without a
// hand-over: the limits ChangesOnlyLimits allows (concurrency included) and
// the `process` block.
bool ChangesChildrenInPlace(const QueueConfig& running, const QueueConfig& next, bool watchdog);

// For two isolation: process configs of a queue: whether its children must
// start anew to take `next` (what a child starts with differs: the number
// of children or messages per child, a limit, the user, no_new_privs).
// max_tasks, max_memory, max_lifetime, timeout_grace and crash_loop are
// the daemon's to apply, to running children too. (A changed plugin config
// also needs new children; the caller checks it.)
bool NeedsNewChildren(const QueueConfig& running, const QueueConfig& next);

// The names of the QueueConfig fields that differ, for the reload log:
// "concurrency 2 -> 4, timeout 5000 -> 200".
std::string QueueDiff(const QueueConfig& a, const QueueConfig& b);

}  // namespace foxworker

#endif  // FOXWORKER_APP_RELOAD_PLAN_H_
