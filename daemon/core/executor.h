// Executor: the fixed pool of worker threads shared by every queue. Tasks are
// short "drain this consumer for a while" closures; per-queue limits live in
// Consumer, not here. No thread per message, and the task queue holds at most
// one entry per consumer slot.
#ifndef FOXWORKER_CORE_EXECUTOR_H_
#define FOXWORKER_CORE_EXECUTOR_H_

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace foxworker {

// Safe for concurrent use.
class Executor {
 public:
  explicit Executor(int threads);
  ~Executor();  // Joins; REQUIRES: Shutdown() was called or no task blocks.
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  int threads() const { return static_cast<int>(threads_.size()); }

  // Runs `task` on some worker thread.
  void Post(std::function<void()> task);

  // Stops accepting tasks, lets the queued ones run, and joins the threads.
  void Shutdown();

  // The calling thread's index in [0, threads()), or -1 off the pool.
  static int CurrentThreadIndex();

 private:
  void WorkerLoop(int index);

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;  // GUARDED_BY(mu_)
  bool stopping_ = false;                    // GUARDED_BY(mu_)
  std::vector<std::thread> threads_;
};

}  // namespace foxworker

#endif  // FOXWORKER_CORE_EXECUTOR_H_
