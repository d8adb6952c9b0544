// Executor: the shared pool of worker threads. No timing assertions: waits
// have generous upper bounds and only say "this happens eventually".
#include "daemon/core/executor.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

namespace foxworker {
namespace {

using std::chrono::milliseconds;
constexpr auto kLongWait = std::chrono::seconds(30);

// Opens once; Wait() blocks until then.
class Gate {
 public:
  void Open() {
    std::lock_guard<std::mutex> l(mu_);
    open_ = true;
    cv_.notify_all();
  }
  bool Wait(std::chrono::milliseconds limit = kLongWait) {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_for(l, limit, [&] { return open_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
};

// Counts arrivals; WaitFor(n) blocks until n arrived.
class Arrivals {
 public:
  void Arrive() {
    std::lock_guard<std::mutex> l(mu_);
    ++n_;
    cv_.notify_all();
  }
  bool WaitFor(int n, std::chrono::milliseconds limit = kLongWait) {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_for(l, limit, [&] { return n_ >= n; });
  }
  int count() {
    std::lock_guard<std::mutex> l(mu_);
    return n_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int n_ = 0;
};

TEST(ExecutorTest, RunsEveryPostedTask) {
  Executor executor(3);
  Arrivals done;
  std::atomic<int> sum{0};
  for (int i = 1; i <= 200; ++i) {
    executor.Post([&, i] {
      sum += i;
      done.Arrive();
    });
  }
  ASSERT_TRUE(done.WaitFor(200));
  EXPECT_EQ(sum.load(), 200 * 201 / 2);
  executor.Shutdown();
}

TEST(ExecutorTest, HasTheDeclaredNumberOfThreads) {
  EXPECT_EQ(Executor(1).threads(), 1);
  EXPECT_EQ(Executor(4).threads(), 4);
  // A pool needs at least one thread, or posted work would never run.
  Executor none(0);
  EXPECT_EQ(none.threads(), 1);
  std::promise<void> ran;
  none.Post([&] { ran.set_value(); });
  EXPECT_EQ(ran.get_future().wait_for(kLongWait), std::future_status::ready);
}

// `threads` tasks that each wait for all the others can only finish when
// they all run at once, each on its own thread with its own index.
TEST(ExecutorTest, RunsAsManyTasksAtOnceAsItHasThreads) {
  constexpr int kThreads = 4;
  Executor executor(kThreads);
  Arrivals started;
  Gate release;
  std::mutex mu;
  std::set<int> indexes;
  std::set<std::thread::id> ids;
  for (int i = 0; i < kThreads; ++i) {
    executor.Post([&] {
      {
        std::lock_guard<std::mutex> l(mu);
        indexes.insert(Executor::CurrentThreadIndex());
        ids.insert(std::this_thread::get_id());
      }
      started.Arrive();
      release.Wait();
    });
  }
  ASSERT_TRUE(started.WaitFor(kThreads)) << "only " << started.count() << " ran at once";
  release.Open();
  executor.Shutdown();
  EXPECT_EQ(indexes, (std::set<int>{0, 1, 2, 3}));
  EXPECT_EQ(ids.size(), static_cast<size_t>(kThreads));
  EXPECT_EQ(ids.count(std::this_thread::get_id()), 0u) << "a task ran on the posting thread";
}

TEST(ExecutorTest, NeverRunsMoreTasksAtOnceThanItHasThreads) {
  constexpr int kThreads = 2;
  Executor executor(kThreads);
  std::atomic<int> running{0};
  std::atomic<int> max_running{0};
  Arrivals done;
  for (int i = 0; i < 100; ++i) {
    executor.Post([&] {
      int now = ++running;
      int seen = max_running.load();
      while (now > seen && !max_running.compare_exchange_weak(seen, now)) {
      }
      std::this_thread::yield();
      --running;
      done.Arrive();
    });
  }
  ASSERT_TRUE(done.WaitFor(100));
  EXPECT_GE(max_running.load(), 1);
  EXPECT_LE(max_running.load(), kThreads);
}

TEST(ExecutorTest, CurrentThreadIndexIsMinusOneOffThePool) {
  Executor executor(2);
  EXPECT_EQ(Executor::CurrentThreadIndex(), -1);
  std::promise<int> index;
  executor.Post([&] { index.set_value(Executor::CurrentThreadIndex()); });
  auto future = index.get_future();
  ASSERT_EQ(future.wait_for(kLongWait), std::future_status::ready);
  int i = future.get();
  EXPECT_GE(i, 0);
  EXPECT_LT(i, 2);
  int other = -2;
  std::thread([&] { other = Executor::CurrentThreadIndex(); }).join();
  EXPECT_EQ(other, -1) << "a thread that is not the pool's";
}

TEST(ExecutorTest, ATaskMayPostAnother) {
  Executor executor(1);
  std::promise<void> inner_ran;
  executor.Post([&] { executor.Post([&] { inner_ran.set_value(); }); });
  EXPECT_EQ(inner_ran.get_future().wait_for(kLongWait), std::future_status::ready);
}

// Shutdown lets the queued tasks run, and returns only after they did.
TEST(ExecutorTest, ShutdownRunsTheQueuedTasksAndJoins) {
  Executor executor(1);
  Gate release;
  std::promise<void> blocking_started;
  executor.Post([&] {
    blocking_started.set_value();
    release.Wait();
  });
  std::atomic<int> ran{0};
  for (int i = 0; i < 50; ++i) executor.Post([&] { ++ran; });
  ASSERT_EQ(blocking_started.get_future().wait_for(kLongWait), std::future_status::ready);

  auto shutdown = std::async(std::launch::async, [&] { executor.Shutdown(); });
  EXPECT_EQ(shutdown.wait_for(milliseconds(200)), std::future_status::timeout)
      << "Shutdown returned while a task was still running";
  EXPECT_EQ(ran.load(), 0);
  release.Open();
  ASSERT_EQ(shutdown.wait_for(kLongWait), std::future_status::ready);
  EXPECT_EQ(ran.load(), 50) << "queued tasks were dropped at shutdown";
}

TEST(ExecutorTest, ShutdownTwiceAndThenDestroyIsFine) {
  auto executor = std::make_unique<Executor>(2);
  std::atomic<int> ran{0};
  executor->Post([&] { ++ran; });
  executor->Shutdown();
  EXPECT_EQ(ran.load(), 1);
  executor->Shutdown();
  executor.reset();
}

TEST(ExecutorTest, TasksPostedAfterShutdownDoNotRun) {
  Executor executor(2);
  executor.Shutdown();
  std::atomic<bool> ran{false};
  executor.Post([&] { ran = true; });
  std::this_thread::sleep_for(milliseconds(50));
  EXPECT_FALSE(ran.load());
}

TEST(ExecutorTest, DestructorRunsTheQueuedTasks) {
  std::atomic<int> ran{0};
  {
    Executor executor(1);
    for (int i = 0; i < 20; ++i) executor.Post([&] { ++ran; });
  }
  EXPECT_EQ(ran.load(), 20);
}

// ---- ThreadPool: a queue's own threads --------------------------------------

// Polls `pred` up to `limit` (thread counts change when threads get to run).
bool Eventually(const std::function<bool()>& pred, milliseconds limit = milliseconds(10000)) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(milliseconds(2));
  }
  return pred();
}

// Blocked tasks each get a thread, up to the limit; idle threads retire.
TEST(ThreadPoolTest, GrowsToItsLimitForBlockedTasksAndRetiresIdleThreads) {
  ThreadPool pool("test", 3, milliseconds(50));
  EXPECT_EQ(pool.threads(), 0);  // none until there is work
  Gate gate;
  Arrivals started;
  std::set<int> indexes;
  std::mutex mu;
  for (int i = 0; i < 4; ++i) {
    pool.Post([&] {
      {
        std::lock_guard<std::mutex> l(mu);
        indexes.insert(TaskRunner::CurrentThreadIndex());
      }
      started.Arrive();
      gate.Wait();
    });
  }
  ASSERT_TRUE(started.WaitFor(3));
  EXPECT_EQ(pool.threads(), 3);
  std::this_thread::sleep_for(milliseconds(50));
  EXPECT_EQ(started.count(), 3);  // the fourth waits for a free thread
  gate.Open();
  ASSERT_TRUE(started.WaitFor(4));
  {
    std::lock_guard<std::mutex> l(mu);
    EXPECT_EQ(indexes, (std::set<int>{0, 1, 2}));
  }
  EXPECT_TRUE(Eventually([&] { return pool.threads() == 0; })) << pool.threads() << " still alive";
  // It grows again for new work.
  std::promise<void> ran;
  pool.Post([&] { ran.set_value(); });
  EXPECT_EQ(ran.get_future().wait_for(kLongWait), std::future_status::ready);
}

// A lowered limit: threads over it leave once idle, and no more than it run.
TEST(ThreadPoolTest, ALoweredLimitHolds) {
  ThreadPool pool("test", 4);
  Gate first;
  Arrivals started;
  for (int i = 0; i < 4; ++i) pool.Post([&] { started.Arrive(); first.Wait(); });
  ASSERT_TRUE(started.WaitFor(4));
  pool.SetMaxThreads(1);
  EXPECT_EQ(pool.max_threads(), 1);
  first.Open();
  EXPECT_TRUE(Eventually([&] { return pool.threads() == 1; })) << pool.threads();
  std::atomic<int> running{0}, most{0};
  Arrivals done;
  for (int i = 0; i < 6; ++i) {
    pool.Post([&] {
      int now = ++running;
      int m = most.load();
      while (now > m && !most.compare_exchange_weak(m, now)) {
      }
      std::this_thread::sleep_for(milliseconds(5));
      --running;
      done.Arrive();
    });
  }
  ASSERT_TRUE(done.WaitFor(6));
  EXPECT_EQ(most.load(), 1);
}

}  // namespace
}  // namespace foxworker
