// DepthPoller: reads every queue's depth (daemon/core/inspect.h) on a timer,
// `daemon.admin.depth_interval` apart, on one thread of its own, through one
// inspector per backend (each on a connection of its own). /metrics and
// /api/v1/queues show the last readings: a scrape never calls a backend.
//
// It follows reloads: each round reads the queues and backends of the
// supervisor's current snapshot, opens an inspector for a backend it has
// not seen (or that a reload replaced) and forgets queues that went away.
// A failed read keeps the last value and records the error.
#ifndef FOXWORKER_APP_DEPTH_POLLER_H_
#define FOXWORKER_APP_DEPTH_POLLER_H_

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "daemon/base/units.h"
#include "daemon/core/backend.h"
#include "daemon/core/inspect.h"

namespace foxworker {

struct Config;
struct QueueConfig;
struct RuntimeSnapshot;

// The SourceOptions a queue's source is opened with (the same the Supervisor
// passes to OpenSource), for calls to an Inspector.
SourceOptions QueueSourceOptions(const Config& config, const QueueConfig& queue);

struct DepthReading {
  QueueDepth depth;      // the last successful reading (all -1 before one)
  bool ok = false;       // whether the last attempt succeeded
  std::string error;     // the last attempt's error, "" when it succeeded
  int64_t read_at_ms = 0;  // Unix ms of the last successful reading; 0 = none yet
};

class DepthPoller {
 public:
  // `snapshot` returns what the daemon runs now (Supervisor::snapshot()).
  DepthPoller(std::function<std::shared_ptr<const RuntimeSnapshot>()> snapshot, Duration interval);
  ~DepthPoller();
  DepthPoller(const DepthPoller&) = delete;
  DepthPoller& operator=(const DepthPoller&) = delete;

  // Starts the thread; its first round runs at once.
  void Start();
  // Stops the thread (waits for a read in progress, bounded by the
  // inspectors' timeout) and closes the inspectors.
  void Stop();

  // The last reading of every queue the daemon runs, by queue name. From
  // any thread; never touches a backend.
  std::map<std::string, DepthReading> Snapshot() const;
  // Of one queue; nullopt-like ok=false and read_at_ms 0 when none yet.
  DepthReading Reading(const std::string& queue) const;

  // Rounds completed since Start (tests wait on it).
  uint64_t rounds() const;

 private:
  struct BackendInspector {
    // The backend it was opened on (not kept alive: a reload's retired
    // backend is destroyed when the supervisor is done with it).
    std::weak_ptr<Backend> backend;
    std::unique_ptr<Inspector> inspector;  // null when opening failed
    std::string error;                   // why it could not be opened
  };

  void Run();
  void Round();

  const std::function<std::shared_ptr<const RuntimeSnapshot>()> snapshot_;
  const Duration interval_;
  // Used by the poller's thread only.
  std::map<std::string, BackendInspector> inspectors_;  // by backend name

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;                            // GUARDED_BY(mu_)
  uint64_t rounds_ = 0;                          // GUARDED_BY(mu_)
  std::map<std::string, DepthReading> readings_;  // GUARDED_BY(mu_)
  std::thread thread_;
};

}  // namespace foxworker

#endif  // FOXWORKER_APP_DEPTH_POLLER_H_
