// Liveness: the daemon's own threads say they are alive, and the control loop
// feeds the systemd watchdog only while every one of them does.
//
// Every daemon-owned thread that must keep running (the control loop, each
// backend's I/O threads, the timer, the executor's dispatch) registers a
// Heartbeat and beats it from its loop at least every kHeartbeatPeriod, idle
// or not: loops with blocking waits wait at most that long at a time. A thread
// that enters a call bounded by a longer time (a broker RPC, a Redis BLOCK)
// says so with Beat(grace). User handlers never beat: how long a job takes
// never decides whether the daemon is alive.
//
// Test hook (compiled in always, documented in docs/operations.md): with
// FOXWORKER_TEST_STALL_THREAD=<heartbeat name> in the environment, that
// heartbeat's thread blocks forever inside a Beat() once
// FOXWORKER_TEST_STALL_AFTER_MS (default 2000) have passed since it
// registered: an injected deadlock, to prove the watchdog catches one.
#ifndef FOXWORKER_BASE_LIVENESS_H_
#define FOXWORKER_BASE_LIVENESS_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace foxworker {

// How often a registered thread beats at the least (bounded waits use it).
inline constexpr std::chrono::milliseconds kHeartbeatPeriod{1000};

class LivenessRegistry;

// One thread's heartbeat. Inactive until Register(); Beat() on an inactive
// heartbeat does nothing. Beat() is for the owning thread; Register and
// Unregister for the owner (usually that thread, at its start and end).
class Heartbeat {
 public:
  Heartbeat() = default;
  // Registers at once in `registry` (the process's by default).
  explicit Heartbeat(std::string name, LivenessRegistry* registry = nullptr);
  ~Heartbeat() { Unregister(); }
  Heartbeat(const Heartbeat&) = delete;
  Heartbeat& operator=(const Heartbeat&) = delete;

  // Starts being checked under `name` (unique names read best in the log:
  // "backend redis r: reader"). Counts as a beat. Re-registering renames.
  void Register(std::string name, LivenessRegistry* registry = nullptr);
  // Stops being checked (a thread that exits on purpose).
  void Unregister();
  bool registered() const { return state_ != nullptr; }

  // "Alive now". With `grace`: alive now, and the next beat may legitimately
  // come up to `grace` later than usual (the thread is entering a call that
  // blocks at most that long). Cheap: a clock read and two relaxed stores.
  void Beat(std::chrono::nanoseconds grace = std::chrono::nanoseconds(0));

  struct State;  // shared with the registry

 private:
  std::shared_ptr<State> state_;
  LivenessRegistry* registry_ = nullptr;
};

// A heartbeat older than the limit (plus the grace it asked for).
struct StaleHeartbeat {
  std::string name;
  std::chrono::nanoseconds age{0};  // since the last beat
};

// The set of registered heartbeats. Safe for concurrent use.
class LivenessRegistry {
 public:
  LivenessRegistry() = default;
  LivenessRegistry(const LivenessRegistry&) = delete;
  LivenessRegistry& operator=(const LivenessRegistry&) = delete;

  // The process's registry: what the daemon's threads use.
  static LivenessRegistry& Default();

  // The heartbeats whose last beat is older than `limit` plus the grace it
  // asked for, as of `now_ns` (MonotonicNs()); sorted by name.
  std::vector<StaleHeartbeat> Stale(uint64_t now_ns, std::chrono::nanoseconds limit) const;
  // The names of every registered heartbeat, sorted (for tests and reports).
  std::vector<std::string> Names() const;

 private:
  friend class Heartbeat;
  void Add(const std::shared_ptr<Heartbeat::State>& s);
  void Remove(const Heartbeat::State* s);

  mutable std::mutex mu_;
  std::vector<std::shared_ptr<Heartbeat::State>> beats_;  // GUARDED_BY(mu_)
};

// cv.wait_until(lock, deadline, pred) that wakes at least every
// kHeartbeatPeriod to beat `hb`. Returns pred().
template <class Clock, class Duration, class Pred>
bool WaitUntilBeating(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                      std::chrono::time_point<Clock, Duration> deadline, Pred pred,
                      Heartbeat& hb) {
  for (;;) {
    hb.Beat();
    if (pred()) return true;
    const auto now = Clock::now();
    if (now >= deadline) return false;
    const auto step = std::chrono::time_point_cast<Duration>(now + kHeartbeatPeriod);
    if (cv.wait_until(lock, std::min(deadline, step), pred)) return true;
  }
}

}  // namespace foxworker

#endif  // FOXWORKER_BASE_LIVENESS_H_
