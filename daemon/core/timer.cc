#include "daemon/core/timer.h"

#include <pthread.h>

#include <algorithm>
#include <chrono>

#include "daemon/base/clock.h"
#include "daemon/base/crash_stack.h"
#include "daemon/base/liveness.h"

namespace foxworker {

Timer::Timer() : thread_([this] { Loop(); }) {}

Timer::~Timer() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void Timer::At(uint64_t at_ns, const void* owner, std::function<void()> fn) {
  bool earliest;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = entries_.emplace(at_ns, Entry{owner, std::move(fn)});
    earliest = it == entries_.begin();
  }
  if (earliest) cv_.notify_all();
}

void Timer::Cancel(const void* owner) {
  std::unique_lock<std::mutex> lock(mu_);
  auto drop = [&] {
    for (auto it = entries_.begin(); it != entries_.end();)
      it = it->second.owner == owner ? entries_.erase(it) : std::next(it);
  };
  drop();
  cv_.wait(lock, [&] { return running_owner_ != owner; });
  // A callback that was running may have scheduled its next run (the
  // timeout watchdog re-arms itself): drop that too.
  drop();
}

void Timer::Loop() {
  InstallThreadCrashStack();
  pthread_setname_np(pthread_self(), "fw-timer");
  // Callbacks are quick by contract: a late beat here means a stuck one.
  Heartbeat heartbeat("timer");
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    heartbeat.Beat();
    if (entries_.empty()) {
      cv_.wait_for(lock, kHeartbeatPeriod);
      continue;
    }
    const uint64_t now = MonotonicNs();
    auto it = entries_.begin();
    if (it->first > now) {
      cv_.wait_for(lock, std::min<std::chrono::nanoseconds>(
                             std::chrono::nanoseconds(it->first - now), kHeartbeatPeriod));
      continue;
    }
    Entry e = std::move(it->second);
    entries_.erase(it);
    running_owner_ = e.owner;
    lock.unlock();
    e.fn();
    lock.lock();
    running_owner_ = nullptr;
    cv_.notify_all();
  }
}

}  // namespace foxworker
