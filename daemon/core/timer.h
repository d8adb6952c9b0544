// Timer: one thread that runs short callbacks at given monotonic times.
// Used for admission wake-ups (rate limits, open breakers) and the timeout
// watchdog. Callbacks must be quick; they run on the timer thread.
#ifndef FOXWORKER_CORE_TIMER_H_
#define FOXWORKER_CORE_TIMER_H_

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

namespace foxworker {

// Safe for concurrent use.
class Timer {
 public:
  Timer();
  ~Timer();
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  // Runs `fn` at monotonic time `at_ns` (or soon after). `owner` groups
  // callbacks for Cancel().
  void At(uint64_t at_ns, const void* owner, std::function<void()> fn);

  // Drops every pending callback of `owner` and waits until none of its
  // callbacks is running. REQUIRES: not called from a timer callback.
  void Cancel(const void* owner);

 private:
  void Loop();

  struct Entry {
    const void* owner;
    std::function<void()> fn;
  };
  std::mutex mu_;
  std::condition_variable cv_;
  std::multimap<uint64_t, Entry> entries_;  // GUARDED_BY(mu_)
  const void* running_owner_ = nullptr;      // GUARDED_BY(mu_)
  bool stopping_ = false;                    // GUARDED_BY(mu_)
  std::thread thread_;
};

}  // namespace foxworker

#endif  // FOXWORKER_CORE_TIMER_H_
