// Where handlers run. Tasks are "drain this consumer for a while" closures;
// per-queue limits live in Consumer. No thread per message, and the task
// queue holds at most one entry per consumer slot.
//
// ThreadPool: one per queue by default. Its threads follow the queue's
// concurrency (grown on demand up to it, idle ones retire), so
// `concurrency: N` means N handlers running whether they compute or block,
// whatever the CPU count, and a queue's blocked handlers never hold up
// another queue.
//
// Executor: the fixed, CPU-sized pool a queue with `pool: cpu` shares with
// the other such queues (CPU-bound work, where more threads than cores only
// adds switching).
#ifndef FOXWORKER_CORE_EXECUTOR_H_
#define FOXWORKER_CORE_EXECUTOR_H_

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace foxworker {

// What a consumer posts its drain tasks to.
class TaskRunner {
 public:
  virtual ~TaskRunner() = default;
  virtual void Post(std::function<void()> task) = 0;
  // The most threads it runs tasks on at once (PER_THREAD plugin instances
  // are made for each index in [0, max_threads())).
  virtual int max_threads() const = 0;
  // The calling thread's index in [0, max_threads()) of the runner it
  // belongs to, or -1 off every runner.
  static int CurrentThreadIndex();
  // Gives the calling thread, which belongs to no runner, the index
  // CurrentThreadIndex() answers: foxworker-child runs a queue's handlers
  // on threads of its own, one per slot, and PER_THREAD plugin instances
  // are looked up by that index.
  static void SetCurrentThreadIndex(int index);
};

// Grows on demand to `max_threads`; a thread idle for `idle_keepalive` exits.
// Safe for concurrent use.
class ThreadPool final : public TaskRunner {
 public:
  ThreadPool(std::string name, int max_threads,
             std::chrono::milliseconds idle_keepalive = std::chrono::seconds(30));
  ~ThreadPool() override;  // Shutdown()
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  void Post(std::function<void()> task) override;
  int max_threads() const override;
  // Raises or lowers the limit; threads over a lowered one exit once idle.
  void SetMaxThreads(int n);
  // Threads alive now.
  int threads() const;
  // Takes and releases the pool's lock (the daemon's liveness probe: a
  // deadlock there stalls the caller).
  void Probe() const { std::lock_guard<std::mutex> lock(mu_); }
  // Runs the queued tasks, then joins every thread. Post() after it runs
  // nothing.
  void Shutdown();

 private:
  void WorkerLoop(int index);
  void ReapLocked(std::vector<std::thread>* out);  // REQUIRES: mu_

  const std::string name_;
  const std::chrono::milliseconds idle_keepalive_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;  // GUARDED_BY(mu_)
  int max_;                                   // GUARDED_BY(mu_)
  int idle_ = 0;                              // GUARDED_BY(mu_)
  bool stopping_ = false;                     // GUARDED_BY(mu_)
  std::map<int, std::thread> threads_;        // GUARDED_BY(mu_); index -> thread
  std::vector<int> finished_;                 // GUARDED_BY(mu_); exited, not joined
};

// A fixed number of threads. Safe for concurrent use.
class Executor final : public TaskRunner {
 public:
  explicit Executor(int threads);
  ~Executor() override;  // Joins; REQUIRES: Shutdown() was called or no task blocks.
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  int threads() const { return count_; }
  int max_threads() const override { return count_; }

  // Runs `task` on some worker thread.
  void Post(std::function<void()> task) override;

  // Stops accepting tasks, lets the queued ones run, and joins the threads.
  void Shutdown();
  // Takes and releases the pool's lock (the daemon's liveness probe).
  void Probe() const { std::lock_guard<std::mutex> lock(mu_); }

  // The calling thread's index in [0, threads()), or -1 off the pool.
  static int CurrentThreadIndex() { return TaskRunner::CurrentThreadIndex(); }

 private:
  void WorkerLoop(int index);

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;  // GUARDED_BY(mu_)
  bool stopping_ = false;                    // GUARDED_BY(mu_)
  int count_ = 0;
  std::vector<std::thread> threads_;
};

}  // namespace foxworker

#endif  // FOXWORKER_CORE_EXECUTOR_H_
