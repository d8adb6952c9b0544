#include "daemon/app/service_notifier.h"

#include <systemd/sd-daemon.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include <pthread.h>

#include <glog/logging.h>

#include "daemon/app/supervisor.h"
#include "daemon/base/clock.h"
#include "daemon/base/units.h"
#include "daemon/core/running_job.h"

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

std::chrono::milliseconds LivenessLimit(std::chrono::milliseconds configured,
                                        std::chrono::microseconds watchdog) {
  constexpr std::chrono::milliseconds kFloor{10000};
  if (configured.count() > 0) return configured;
  if (watchdog.count() <= 0) return kFloor;
  return std::max(kFloor, std::chrono::duration_cast<std::chrono::milliseconds>(watchdog / 2));
}

namespace {

std::string Ago(std::chrono::nanoseconds d) {
  return FormatDuration(std::chrono::duration_cast<std::chrono::milliseconds>(d));
}

constexpr std::chrono::milliseconds kReportEvery{250};

}  // namespace

DaemonWatch::DaemonWatch(std::chrono::microseconds watchdog, LivenessRegistry* registry)
    : watchdog_(watchdog),
      registry_(registry),
      limit_(LivenessLimit(std::chrono::milliseconds(0), watchdog)) {
  control_loop_.Register("control loop", registry_);
  reporter_ = std::thread([this] { Report(); });
}

DaemonWatch::~DaemonWatch() { Stop(); }

void DaemonWatch::Configure(std::chrono::milliseconds liveness_timeout,
                            std::chrono::milliseconds long_job_warning) {
  limit_.store(LivenessLimit(liveness_timeout, watchdog_));
  long_job_warning_.store(long_job_warning);
}

bool DaemonWatch::Tick() {
  control_loop_.Beat();
  return registry_->Stale(MonotonicNs(), limit_.load()).empty();
}

void DaemonWatch::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (reporter_.joinable()) reporter_.join();
  control_loop_.Unregister();
}

void DaemonWatch::Report() {
  pthread_setname_np(pthread_self(), "fw-watch");
  std::unique_lock<std::mutex> lock(mu_);
  while (!cv_.wait_for(lock, kReportEvery, [this] { return stopping_; })) {
    lock.unlock();
    const uint64_t now = MonotonicNs();
    const auto limit = limit_.load();
    std::vector<StaleHeartbeat> stale = registry_->Stale(now, limit);
    // Each late thread is named once per episode: the first line when the
    // episode starts, then (rarely) one more line for threads that went
    // late after it (a deadlock spreads to the threads that wait on it).
    std::string names;
    for (const auto& h : stale) {
      if (!reported_.insert(h.name).second) continue;
      names += (names.empty() ? "" : ", ") + h.name + " (last beat " + Ago(h.age) + " ago)";
    }
    if (!names.empty() && late_since_ns_ == 0) {
      late_since_ns_ = now;
      LOG(ERROR) << "daemon thread(s) not responding for longer than " << FormatDuration(limit)
                 << ": " << names << "; "
                 << (watchdog_.count() > 0
                         ? "no longer pinging the systemd watchdog: systemd will restart the daemon"
                         : "no systemd watchdog configured, the daemon keeps running");
    } else if (!names.empty()) {
      LOG(ERROR) << "also not responding: " << names;
    } else if (stale.empty() && late_since_ns_ != 0) {
      LOG(WARNING) << "daemon threads responding again after "
                   << Ago(std::chrono::nanoseconds(now - late_since_ns_))
                   << (watchdog_.count() > 0 ? "; pinging the systemd watchdog again" : "");
      late_since_ns_ = 0;
      reported_.clear();
    }
    ReportLongJobs(now);
    lock.lock();
  }
}

void DaemonWatch::ReportLongJobs(uint64_t now_ns) {
  const auto threshold = long_job_warning_.load();
  if (threshold.count() <= 0) {
    warned_.clear();
    return;
  }
  std::set<std::string> running;
  for (const RunningJobInfo& j : RunningJobs()) {
    std::string key = std::to_string(j.thread_id) + "/" + std::to_string(j.started_ns) + "/" +
                      j.message_id;
    if (warned_.count(key) != 0) {
      running.insert(std::move(key));
      continue;
    }
    if (now_ns < j.started_ns) continue;
    const auto ran = std::chrono::nanoseconds(now_ns - j.started_ns);
    if (ran < threshold) continue;
    LOG(WARNING) << "queue " << j.queue << ": handler " << j.handler << " (" << j.provider
                 << ") has been running message " << j.message_id << " (attempt " << j.attempt
                 << ") for " << Ago(ran) << ", longer than daemon.long_job_warning ("
                 << FormatDuration(threshold) << "); it keeps running, and the watchdog is not "
                 << "affected";
    running.insert(std::move(key));
  }
  // Forget the calls that ended: one line per handler call at most.
  warned_.swap(running);
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
    if (c->paused() || c->held()) {
      paused.push_back(c->held() ? c->name() + " (crash loop)" : c->name());
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
    if (!st.connected) {
      degraded += (degraded.empty() ? "" : ", ") + bc.name;
      if (!st.storage.empty() && st.storage != "ok") degraded += " (storage " + st.storage + ")";
    }
  }
  if (!degraded.empty()) text += "; backend disconnected: " + degraded;
  if (!paused.empty()) {
    text += "; paused: ";
    for (size_t i = 0; i < paused.size(); ++i) text += (i ? ", " : "") + paused[i];
  }
  return text;
}

}  // namespace foxworker
