#include "daemon/app/service_notifier.h"

#include <systemd/sd-daemon.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include <glog/logging.h>

#include "daemon/app/supervisor.h"

namespace foxworker {

ServiceNotifier::ServiceNotifier() {
  const char* socket = getenv("NOTIFY_SOCKET");
  enabled_ = socket != nullptr && socket[0] != '\0';
  uint64_t usec = 0;
  // sd_watchdog_enabled checks WATCHDOG_PID against our pid; it does not
  // unset the variables (plugins must not see a different environment).
  if (enabled_ && sd_watchdog_enabled(0, &usec) > 0)
    watchdog_ = std::chrono::microseconds(usec);
}

void ServiceNotifier::Send(const std::string& text) {
  if (!enabled_) return;
  int r = sd_notify(0, text.c_str());
  if (r < 0 && !warned_) {
    warned_ = true;
    LOG(WARNING) << "sd_notify to $NOTIFY_SOCKET failed: " << strerror(-r)
                 << " (further failures are not logged)";
  }
}

void ServiceNotifier::Ready(std::string_view status) {
  last_status_ = status;
  Send("READY=1\nSTATUS=" + last_status_);
}

void ServiceNotifier::Status(std::string_view status) {
  if (status == last_status_) return;
  last_status_ = status;
  Send("STATUS=" + last_status_);
}

void ServiceNotifier::Stopping(std::string_view status) {
  last_status_ = status;
  Send("STOPPING=1\nSTATUS=" + last_status_);
}

void ServiceNotifier::Reloading(std::string_view status) {
  last_status_ = status;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  const uint64_t usec = static_cast<uint64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
  Send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec) + "\nSTATUS=" + last_status_);
}

void ServiceNotifier::ExtendTimeout(std::chrono::microseconds more) {
  Send("EXTEND_TIMEOUT_USEC=" + std::to_string(std::max<int64_t>(0, more.count())));
}

void ServiceNotifier::Watchdog() {
  if (watchdog_.count() > 0) Send("WATCHDOG=1");
}

std::vector<std::string> ProgressWatch::Observe(const std::vector<ConsumerProgress>& now,
                                                std::chrono::steady_clock::time_point t) {
  std::vector<std::string> stuck;
  for (const ConsumerProgress& c : now) {
    auto [it, inserted] = seen_.try_emplace(c.queue, Seen{c.settled, t});
    Seen& s = it->second;
    if (inserted) continue;
    if (c.settled != s.settled || c.in_flight <= 0) {
      // Progress, or honestly idle: nothing is waiting on a handler.
      s.settled = c.settled;
      s.moved = t;
      continue;
    }
    if (t - s.moved > limit_ + c.longest_handler) stuck.push_back(c.queue);
  }
  return stuck;
}

std::vector<ConsumerProgress> ServiceSummary::Sample(const Supervisor& supervisor) const {
  std::vector<ConsumerProgress> out;
  for (const auto& c : supervisor.consumers()) {
    ConsumerStats s = c->Stats();
    ConsumerProgress p;
    p.queue = c->name();
    p.in_flight = s.in_flight;
    p.settled = s.acked + s.retried + s.dead_lettered;
    p.longest_handler = c->config().timeout;
    for (const auto& [handler, timeout] : c->config().handler_timeouts)
      p.longest_handler = std::max(p.longest_handler, timeout);
    out.push_back(std::move(p));
  }
  return out;
}

std::string ServiceSummary::Text(const Supervisor& supervisor,
                                 std::chrono::steady_clock::time_point t) {
  int consuming = 0;
  int64_t in_flight = 0;
  uint64_t settled = 0;
  std::vector<std::string> paused;
  for (const auto& c : supervisor.consumers()) {
    ConsumerStats s = c->Stats();
    in_flight += s.in_flight;
    settled += s.acked + s.retried + s.dead_lettered;
    if (c->paused()) {
      paused.push_back(c->name());
    } else {
      ++consuming;
    }
  }
  // A config reload replaces consumers, and their counts start again: start
  // the window again rather than report a negative rate.
  if (!window_.empty() && settled < window_.back().second) window_.clear();
  window_.emplace_back(t, settled);
  while (window_.size() > 1 && t - window_.front().first > std::chrono::seconds(60))
    window_.pop_front();
  const uint64_t last_minute = settled - window_.front().second;

  std::string text = std::to_string(consuming) + "/" +
                     std::to_string(supervisor.consumers().size()) + " queues consuming, " +
                     std::to_string(in_flight) + " in flight, " + std::to_string(last_minute) +
                     " processed in the last minute";
  std::string degraded;
  for (const auto& bc : supervisor.config().backends) {
    const Backend* b = supervisor.FindBackend(bc.name);
    if (b == nullptr) continue;
    BackendState st = b->State();
    if (!st.connected) degraded += (degraded.empty() ? "" : ", ") + bc.name;
  }
  if (!degraded.empty()) text += "; backend disconnected: " + degraded;
  if (!paused.empty()) {
    text += "; paused: ";
    for (size_t i = 0; i < paused.size(); ++i) text += (i ? ", " : "") + paused[i];
  }
  return text;
}

}  // namespace foxworker
