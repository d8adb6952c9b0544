// Timer: callbacks at monotonic times, on one thread, cancellable by owner.
// A loaded machine may run a callback late, so these tests check order,
// "not before its time" and "eventually", never how late.
#include "daemon/core/timer.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "daemon/base/clock.h"

namespace foxworker {
namespace {

using std::chrono::milliseconds;
constexpr auto kLongWait = std::chrono::seconds(30);
constexpr uint64_t kMs = 1'000'000;
constexpr uint64_t kHour = 3600 * 1000 * kMs;

// What the callbacks did, in the order they did it.
class Log {
 public:
  void Add(int v) {
    std::lock_guard<std::mutex> l(mu_);
    values_.push_back(v);
    cv_.notify_all();
  }
  bool WaitForSize(size_t n, std::chrono::milliseconds limit = kLongWait) {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_for(l, limit, [&] { return values_.size() >= n; });
  }
  std::vector<int> values() {
    std::lock_guard<std::mutex> l(mu_);
    return values_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<int> values_;
};

// Keeps the timer's thread busy in a callback until Release(), so that
// entries added meanwhile are all pending when it looks again.
class TimerBlocker {
 public:
  explicit TimerBlocker(Timer& timer) {
    std::future<void> started = entered_.get_future();
    std::shared_future<void> released = release_.get_future().share();
    timer.At(0, this, [this, released] {
      entered_.set_value();
      released.wait();
    });
    EXPECT_EQ(started.wait_for(kLongWait), std::future_status::ready);
  }
  ~TimerBlocker() { Release(); }
  void Release() {
    if (!released_) release_.set_value();
    released_ = true;
  }

 private:
  std::promise<void> entered_;
  std::promise<void> release_;
  bool released_ = false;
};

TEST(TimerTest, RunsCallbacksInTimeOrderNotInTheOrderGiven) {
  Log log;
  int owner = 0;
  Timer timer;  // last: destroyed (and joined) first
  // While the timer is busy, all four become due; then it runs them in
  // time order.
  TimerBlocker blocker(timer);
  timer.At(3, &owner, [&] { log.Add(3); });
  timer.At(1, &owner, [&] { log.Add(1); });
  timer.At(4, &owner, [&] { log.Add(4); });
  timer.At(2, &owner, [&] { log.Add(2); });
  blocker.Release();
  ASSERT_TRUE(log.WaitForSize(4));
  EXPECT_EQ(log.values(), (std::vector<int>{1, 2, 3, 4}));

  // The same with times still ahead.
  const uint64_t now = MonotonicNs();
  timer.At(now + 300 * kMs, &owner, [&] { log.Add(7); });
  timer.At(now + 100 * kMs, &owner, [&] { log.Add(5); });
  timer.At(now + 200 * kMs, &owner, [&] { log.Add(6); });
  ASSERT_TRUE(log.WaitForSize(7));
  EXPECT_EQ(log.values(), (std::vector<int>{1, 2, 3, 4, 5, 6, 7}));
}

TEST(TimerTest, NeverRunsACallbackBeforeItsTime) {
  int owner = 0;
  std::vector<std::pair<uint64_t, std::promise<uint64_t>>> due(5);
  Timer timer;  // last: destroyed (and joined) first
  const uint64_t now = MonotonicNs();
  for (size_t i = 0; i < due.size(); ++i) {
    due[i].first = now + (20 + 30 * i) * kMs;
    timer.At(due[i].first, &owner, [&, i] { due[i].second.set_value(MonotonicNs()); });
  }
  for (auto& [at, ran] : due) {
    auto f = ran.get_future();
    ASSERT_EQ(f.wait_for(kLongWait), std::future_status::ready);
    EXPECT_GE(f.get(), at);
  }
}

TEST(TimerTest, ATimeInThePastRunsSoon) {
  int owner = 0;
  std::promise<void> ran;
  Timer timer;  // last: destroyed (and joined) first
  timer.At(0, &owner, [&] { ran.set_value(); });
  EXPECT_EQ(ran.get_future().wait_for(kLongWait), std::future_status::ready);
}

// The timer thread sleeps until its earliest entry; a new earlier entry
// must wake it, or it would run an hour late.
TEST(TimerTest, AnEarlierEntryAddedLaterWakesTheTimer) {
  int owner = 0;
  std::atomic<bool> late_ran{false};
  Timer timer;  // last: destroyed (and joined) first
  timer.At(MonotonicNs() + kHour, &owner, [&] { late_ran = true; });
  std::this_thread::sleep_for(milliseconds(20));  // let the thread go to sleep on it
  std::promise<void> ran;
  timer.At(MonotonicNs() + 10 * kMs, &owner, [&] { ran.set_value(); });
  EXPECT_EQ(ran.get_future().wait_for(kLongWait), std::future_status::ready);
  EXPECT_FALSE(late_ran.load());
}

TEST(TimerTest, CallbacksRunOnOneThreadThatIsNotTheCallers) {
  int owner = 0;
  std::mutex mu;
  std::set<std::thread::id> ids;
  Log log;
  const uint64_t now = MonotonicNs();
  Timer timer;  // last: destroyed (and joined) first
  for (int i = 0; i < 10; ++i) {
    timer.At(now + i * kMs, &owner, [&, i] {
      {
        std::lock_guard<std::mutex> l(mu);
        ids.insert(std::this_thread::get_id());
      }
      log.Add(i);
    });
  }
  ASSERT_TRUE(log.WaitForSize(10));
  EXPECT_EQ(ids.size(), 1u);
  EXPECT_EQ(ids.count(std::this_thread::get_id()), 0u);
}

// A callback that re-arms itself ticks again and again, the way the timeout
// watchdog does.
TEST(TimerTest, ARearmingCallbackTicksRepeatedly) {
  int owner = 0;
  std::atomic<int> ticks{0};
  std::promise<void> fifth;
  Timer timer;  // last: destroyed (and joined) first
  std::function<void()> tick = [&] {
    if (++ticks == 5) fifth.set_value();
    if (ticks < 5) timer.At(MonotonicNs() + 5 * kMs, &owner, tick);
  };
  timer.At(MonotonicNs() + 5 * kMs, &owner, tick);
  ASSERT_EQ(fifth.get_future().wait_for(kLongWait), std::future_status::ready);
  EXPECT_EQ(ticks.load(), 5);
}

TEST(TimerTest, CancelDropsOnlyThatOwnersCallbacks) {
  int kept_owner = 0, cancelled_owner = 0;
  Log log;
  std::atomic<bool> cancelled_ran{false};
  Timer timer;  // last: destroyed (and joined) first
  TimerBlocker blocker(timer);
  // All due, each cancelled entry before a kept one.
  for (int i = 0; i < 3; ++i) {
    timer.At(2 * i + 1, &cancelled_owner, [&] { cancelled_ran = true; });
    timer.At(2 * i + 2, &kept_owner, [&, i] { log.Add(i); });
  }
  timer.Cancel(&cancelled_owner);
  blocker.Release();
  ASSERT_TRUE(log.WaitForSize(3));
  EXPECT_EQ(log.values(), (std::vector<int>{0, 1, 2}));
  EXPECT_FALSE(cancelled_ran.load());
}

TEST(TimerTest, CancelWithNothingPendingReturns) {
  int owner = 0;
  Timer timer;  // last: destroyed (and joined) first
  timer.Cancel(&owner);
  std::promise<void> ran;
  timer.At(0, &owner, [&] { ran.set_value(); });
  EXPECT_EQ(ran.get_future().wait_for(kLongWait), std::future_status::ready)
      << "an owner can schedule again after a Cancel";
}

// Cancel waits for the owner's running callback, and a callback that
// re-arms itself while Cancel waits (as the timeout watchdog does) is dropped
// too: nothing of the owner runs after Cancel returns.
TEST(TimerTest, CancelWaitsForARunningCallbackAndDropsWhatItRearms) {
  int owner = 0;
  std::promise<void> entered;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<int> runs{0};
  std::atomic<bool> running{false};
  Timer timer;  // last: destroyed (and joined) first
  timer.At(0, &owner, [&] {
    running = true;
    ++runs;
    entered.set_value();
    released.wait();
    timer.At(MonotonicNs() + 50 * kMs, &owner, [&] { ++runs; });  // the next run
    running = false;
  });
  ASSERT_EQ(entered.get_future().wait_for(kLongWait), std::future_status::ready);

  auto cancel = std::async(std::launch::async, [&] { timer.Cancel(&owner); });
  EXPECT_EQ(cancel.wait_for(milliseconds(200)), std::future_status::timeout)
      << "Cancel returned while the owner's callback was running";
  release.set_value();
  ASSERT_EQ(cancel.wait_for(kLongWait), std::future_status::ready);
  EXPECT_FALSE(running.load()) << "Cancel returned before the callback finished";
  const int runs_at_return = runs.load();

  // A marker of another owner, due after the re-armed run would have been:
  // by the time it runs, that run would have happened.
  int other = 0;
  std::promise<void> marker;
  timer.At(MonotonicNs() + 100 * kMs, &other, [&] { marker.set_value(); });
  ASSERT_EQ(marker.get_future().wait_for(kLongWait), std::future_status::ready);
  EXPECT_EQ(runs.load(), runs_at_return) << "a callback of the owner ran after Cancel returned";
}

TEST(TimerTest, CancelDoesNotWaitForAnotherOwnersRunningCallback) {
  int busy_owner = 0, other_owner = 0;
  std::promise<void> entered;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  Timer timer;  // last: destroyed (and joined) first
  timer.At(0, &busy_owner, [&] {
    entered.set_value();
    released.wait();
  });
  ASSERT_EQ(entered.get_future().wait_for(kLongWait), std::future_status::ready);
  std::atomic<bool> other_ran{false};
  timer.At(MonotonicNs() + kHour, &other_owner, [&] { other_ran = true; });
  auto cancel = std::async(std::launch::async, [&] { timer.Cancel(&other_owner); });
  EXPECT_EQ(cancel.wait_for(kLongWait), std::future_status::ready)
      << "Cancel waited for a callback of another owner";
  release.set_value();
  EXPECT_FALSE(other_ran.load());
}

TEST(TimerTest, DestroyingTheTimerDropsFarFutureEntries) {
  std::atomic<bool> ran{false};
  auto destroyed = std::async(std::launch::async, [&] {
    Timer timer;
    int owner = 0;
    timer.At(MonotonicNs() + kHour, &owner, [&] { ran = true; });
  });
  ASSERT_EQ(destroyed.wait_for(kLongWait), std::future_status::ready)
      << "~Timer waited for a pending entry";
  EXPECT_FALSE(ran.load());
}

}  // namespace
}  // namespace foxworker
