// ServiceNotifier: the daemon's side of systemd's notify protocol
// (sd_notify(3)): READY=1, STATUS=, STOPPING=1, EXTEND_TIMEOUT_USEC=,
// WATCHDOG=1. Every call is a no-op when NOTIFY_SOCKET is unset, so the
// daemon runs the same in a terminal, a container or under systemd.
//
// ProgressWatch decides whether the watchdog may be pinged: every consumer is
// either making progress or honestly idle. ServiceSummary is what STATUS=
// says about the running daemon.
#ifndef FOXWORKER_APP_SERVICE_NOTIFIER_H_
#define FOXWORKER_APP_SERVICE_NOTIFIER_H_

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <string_view>
#include <vector>

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

// One consumer's numbers as the watch sees them.
struct ConsumerProgress {
  std::string queue;
  int64_t in_flight = 0;
  uint64_t settled = 0;  // acked + retried + dead-lettered
  // How long a handler of this queue may legitimately run (its largest
  // timeout); zero when the queue has none.
  std::chrono::milliseconds longest_handler{0};
};

// Tracks, per queue, when its settled count last moved. A queue with
// messages in flight whose count has not moved for longer than the limit
// (the watchdog interval, plus the queue's longest handler timeout) is stuck.
// Not thread-safe.
class ProgressWatch {
 public:
  explicit ProgressWatch(std::chrono::microseconds limit) : limit_(limit) {}

  // Records a sample; returns the names of the stuck queues (empty when the
  // watchdog may be pinged).
  std::vector<std::string> Observe(const std::vector<ConsumerProgress>& now,
                                   std::chrono::steady_clock::time_point t);

 private:
  struct Seen {
    uint64_t settled = 0;
    std::chrono::steady_clock::time_point moved;  // last change, or last idle moment
  };
  const std::chrono::microseconds limit_;
  std::map<std::string, Seen> seen_;
};

// Builds the STATUS= text about a running daemon: queues consuming, in
// flight, processed per minute, paused queues, disconnected backends.
// Not thread-safe.
class ServiceSummary {
 public:
  std::vector<ConsumerProgress> Sample(const Supervisor& supervisor) const;
  // Call about once a second; `t` is now.
  std::string Text(const Supervisor& supervisor, std::chrono::steady_clock::time_point t);

 private:
  // (time, total settled) over the last minute, oldest first.
  std::deque<std::pair<std::chrono::steady_clock::time_point, uint64_t>> window_;
};

}  // namespace foxworker

#endif  // FOXWORKER_APP_SERVICE_NOTIFIER_H_
