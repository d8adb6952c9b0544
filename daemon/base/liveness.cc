#include "daemon/base/liveness.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "daemon/base/clock.h"

namespace foxworker {

struct Heartbeat::State {
  std::string name;
  std::atomic<uint64_t> last_ns{0};
  std::atomic<uint64_t> grace_ns{0};
  // The test hook: from this time on, Beat() never returns. 0: never.
  uint64_t stall_at_ns = 0;
};

namespace {

// FOXWORKER_TEST_STALL_THREAD / _AFTER_MS: see liveness.h.
uint64_t StallTimeFor(const std::string& name, uint64_t now_ns) {
  const char* target = getenv("FOXWORKER_TEST_STALL_THREAD");
  if (target == nullptr || name != target) return 0;
  uint64_t after_ms = 2000;
  if (const char* a = getenv("FOXWORKER_TEST_STALL_AFTER_MS"); a != nullptr && a[0] != '\0')
    after_ms = strtoull(a, nullptr, 10);
  return now_ns + std::max<uint64_t>(after_ms, 1) * 1000000;
}

[[noreturn]] void StallForever(const std::string& name) {
  // Not glog: base links nothing of it. One line, then block as a deadlock
  // would (holding whatever the thread holds).
  fprintf(stderr, "foxworker test hook FOXWORKER_TEST_STALL_THREAD: thread \"%s\" now blocks forever\n",
          name.c_str());
  fflush(stderr);
  for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
}

}  // namespace

Heartbeat::Heartbeat(std::string name, LivenessRegistry* registry) {
  Register(std::move(name), registry);
}

void Heartbeat::Register(std::string name, LivenessRegistry* registry) {
  Unregister();
  registry_ = registry != nullptr ? registry : &LivenessRegistry::Default();
  auto s = std::make_shared<State>();
  const uint64_t now = MonotonicNs();
  s->stall_at_ns = StallTimeFor(name, now);
  s->name = std::move(name);
  s->last_ns.store(now, std::memory_order_relaxed);
  state_ = s;
  registry_->Add(s);
}

void Heartbeat::Unregister() {
  if (state_ == nullptr) return;
  registry_->Remove(state_.get());
  state_.reset();
  registry_ = nullptr;
}

void Heartbeat::Beat(std::chrono::nanoseconds grace) {
  State* s = state_.get();
  if (s == nullptr) return;
  const uint64_t now = MonotonicNs();
  if (s->stall_at_ns != 0 && now >= s->stall_at_ns) {
    // A deadlock between beats, not an operation the thread announced: the
    // grace of its previous beat (up to a minute for a scan) would hide it
    // from the watchdog for that long.
    s->grace_ns.store(0, std::memory_order_relaxed);
    StallForever(s->name);
  }
  // Grace first: a reader that sees the new time sees its grace too or the
  // previous one, either of which is honest for that instant.
  s->grace_ns.store(static_cast<uint64_t>(std::max<int64_t>(0, grace.count())),
                    std::memory_order_relaxed);
  s->last_ns.store(now, std::memory_order_relaxed);
}

LivenessRegistry& LivenessRegistry::Default() {
  static auto* registry = new LivenessRegistry();  // never destroyed: threads may outlive main
  return *registry;
}

void LivenessRegistry::Add(const std::shared_ptr<Heartbeat::State>& s) {
  std::lock_guard<std::mutex> lock(mu_);
  beats_.push_back(s);
}

void LivenessRegistry::Remove(const Heartbeat::State* s) {
  std::lock_guard<std::mutex> lock(mu_);
  std::erase_if(beats_, [s](const auto& b) { return b.get() == s; });
}

std::vector<StaleHeartbeat> LivenessRegistry::Stale(uint64_t now_ns,
                                                    std::chrono::nanoseconds limit) const {
  std::vector<StaleHeartbeat> out;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& b : beats_) {
      const uint64_t last = b->last_ns.load(std::memory_order_relaxed);
      const uint64_t grace = b->grace_ns.load(std::memory_order_relaxed);
      if (now_ns <= last) continue;
      const auto age = std::chrono::nanoseconds(now_ns - last);
      if (age > limit + std::chrono::nanoseconds(grace)) out.push_back({b->name, age});
    }
  }
  std::sort(out.begin(), out.end(),
            [](const StaleHeartbeat& a, const StaleHeartbeat& b) { return a.name < b.name; });
  return out;
}

std::vector<std::string> LivenessRegistry::Names() const {
  std::vector<std::string> out;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& b : beats_) out.push_back(b->name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace foxworker
