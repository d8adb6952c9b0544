// ServiceNotifier: the daemon's side of systemd's notify protocol
// (sd_notify(3)): READY=1, STATUS=, STOPPING=1, EXTEND_TIMEOUT_USEC=,
// WATCHDOG=1. Every call is a no-op when NOTIFY_SOCKET is unset, so the
// daemon runs the same in a terminal, a container or under systemd.
//
// DaemonWatch decides whether the watchdog may be pinged: the daemon's own
// threads are alive, whatever its jobs do (docs/operations.md#watchdog).
// ServiceSummary is what STATUS= says about the running daemon.
#ifndef FOXWORKER_APP_SERVICE_NOTIFIER_H_
#define FOXWORKER_APP_SERVICE_NOTIFIER_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "daemon/base/liveness.h"

namespace foxworker {

class Supervisor;

// Used from the control thread only.
class ServiceNotifier {
 public:
  // Reads NOTIFY_SOCKET and WATCHDOG_USEC/WATCHDOG_PID from the environment.
  ServiceNotifier();

  bool enabled() const { return enabled_; }
  // The watchdog interval systemd asked for (WatchdogSec=); zero when off.
  std::chrono::microseconds watchdog_interval() const { return watchdog_; }

  void Ready(std::string_view status);
  void Status(std::string_view status);
  void Stopping(std::string_view status);
  // RELOADING=1 with MONOTONIC_USEC= (what Type=notify-reload wants); send
  // Ready() when the reload is done, whether or not it applied.
  void Reloading(std::string_view status);
  // Asks systemd to wait `more` beyond now before it gives up on the stop.
  void ExtendTimeout(std::chrono::microseconds more);
  void Watchdog();

 private:
  // Sends `text` (newline-separated assignments); logs failures once.
  void Send(const std::string& text);

  bool enabled_ = false;
  bool warned_ = false;
  std::chrono::microseconds watchdog_{0};
  std::string last_status_;
};

// How late a heartbeat may be: `configured` when non-zero, else half the
// watchdog interval but at least 10 s, or 10 s without a watchdog.
std::chrono::milliseconds LivenessLimit(std::chrono::milliseconds configured,
                                        std::chrono::microseconds watchdog);

// Watches the daemon, never its jobs. The control loop calls Tick() each
// tick and pings the systemd watchdog only when it returns true: every
// registered heartbeat (base/liveness.h: the control loop's own, each
// backend I/O thread, the timer, the executor's dispatch) is fresh. A thread
// of its own reports: one ERROR naming the late heartbeats when they go
// late (and one more if others follow them), one WARNING when they are all
// fresh again, and one WARNING per
// message whose handler has run longer than `long_job_warning`. How long a
// handler runs never decides whether the watchdog is pinged.
class DaemonWatch {
 public:
  // `watchdog`: the interval systemd asked for, zero when off (for the
  // limit and the log lines).
  explicit DaemonWatch(std::chrono::microseconds watchdog,
                       LivenessRegistry* registry = &LivenessRegistry::Default());
  ~DaemonWatch();  // Stop()s
  DaemonWatch(const DaemonWatch&) = delete;
  DaemonWatch& operator=(const DaemonWatch&) = delete;

  // The config's daemon.liveness_timeout and daemon.long_job_warning (0:
  // derived, off). At start and after each reload. Thread-safe.
  void Configure(std::chrono::milliseconds liveness_timeout,
                 std::chrono::milliseconds long_job_warning);
  // The control thread, once a tick: beats "control loop"; true when the
  // watchdog may be pinged.
  bool Tick();
  // Ends the reporter (before the shutdown drain, when the control loop no
  // longer ticks). The heartbeat of the control loop goes with it.
  void Stop();

  std::chrono::milliseconds limit() const { return limit_.load(); }

 private:
  void Report();
  void ReportLongJobs(uint64_t now_ns);

  const std::chrono::microseconds watchdog_;
  LivenessRegistry* const registry_;
  Heartbeat control_loop_;
  std::atomic<std::chrono::milliseconds> limit_;
  std::atomic<std::chrono::milliseconds> long_job_warning_{std::chrono::milliseconds(0)};

  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;  // GUARDED_BY(mu_)
  std::thread reporter_;

  // The reporter's own.
  uint64_t late_since_ns_ = 0;      // 0: every heartbeat fresh
  std::set<std::string> reported_;  // late threads named in this episode
  // Messages already warned about: "thread id/started_ns/message id".
  std::set<std::string> warned_;
};

// Builds the STATUS= text about a running daemon: queues consuming, in
// flight, processed per minute, paused queues, disconnected backends.
// Not thread-safe.
class ServiceSummary {
 public:
  // Call about once a second; `t` is now.
  std::string Text(const Supervisor& supervisor, std::chrono::steady_clock::time_point t);

 private:
  // (time, total settled) over the last minute, oldest first.
  std::deque<std::pair<std::chrono::steady_clock::time_point, uint64_t>> window_;
};

}  // namespace foxworker

#endif  // FOXWORKER_APP_SERVICE_NOTIFIER_H_
