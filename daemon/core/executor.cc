#include "daemon/core/executor.h"

#include <pthread.h>

#include <algorithm>
#include <string>

#include "daemon/base/crash_stack.h"

namespace foxworker {
namespace {
thread_local int tls_thread_index = -1;

void NameThread(const std::string& name) {
  pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
}
}  // namespace

int TaskRunner::CurrentThreadIndex() { return tls_thread_index; }
void TaskRunner::SetCurrentThreadIndex(int index) { tls_thread_index = index; }

// ---- ThreadPool ---------------------------------------------------------------

ThreadPool::ThreadPool(std::string name, int max_threads, std::chrono::milliseconds idle_keepalive)
    : name_(std::move(name)), idle_keepalive_(idle_keepalive), max_(std::max(1, max_threads)) {}

ThreadPool::~ThreadPool() { Shutdown(); }

int ThreadPool::max_threads() const {
  std::lock_guard<std::mutex> lock(mu_);
  return max_;
}

int ThreadPool::threads() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(threads_.size() - finished_.size());
}

void ThreadPool::ReapLocked(std::vector<std::thread>* out) {
  for (int index : finished_) {
    auto it = threads_.find(index);
    if (it == threads_.end()) continue;
    out->push_back(std::move(it->second));
    threads_.erase(it);
  }
  finished_.clear();
}

void ThreadPool::Post(std::function<void()> task) {
  std::vector<std::thread> exited;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    ReapLocked(&exited);
    tasks_.push_back(std::move(task));
    // Every queued task beyond the idle threads gets a new thread, up to
    // the limit: a task never waits while the pool may still grow.
    const int alive = static_cast<int>(threads_.size() - finished_.size());
    if (static_cast<int>(tasks_.size()) > idle_ && alive < max_) {
      int index = 0;
      while (threads_.count(index)) ++index;  // the lowest free index
      threads_.emplace(index, std::thread([this, index] { WorkerLoop(index); }));
    }
  }
  cv_.notify_one();
  for (auto& t : exited) t.join();
}

void ThreadPool::SetMaxThreads(int n) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    max_ = std::max(1, n);
  }
  cv_.notify_all();  // threads over a lower limit leave
}

void ThreadPool::Shutdown() {
  std::map<int, std::thread> threads;
  {
    std::unique_lock<std::mutex> lock(mu_);
    stopping_ = true;
    threads.swap(threads_);
    finished_.clear();
  }
  cv_.notify_all();
  for (auto& [index, t] : threads)
    if (t.joinable()) t.join();
}

void ThreadPool::WorkerLoop(int index) {
  InstallThreadCrashStack();
  tls_thread_index = index;
  NameThread("fw-" + name_);
  std::unique_lock<std::mutex> lock(mu_);
  auto alive = [this] { return static_cast<int>(threads_.size() - finished_.size()); };
  for (;;) {
    if (!tasks_.empty() && (stopping_ || alive() <= max_)) {
      std::function<void()> task = std::move(tasks_.front());
      tasks_.pop_front();
      lock.unlock();
      task();
      task = nullptr;  // destroyed off the lock
      lock.lock();
      continue;
    }
    if (stopping_) return;  // drained; Shutdown joins
    // Over a lowered limit: leave.
    if (alive() > max_) break;
    ++idle_;
    const bool woken = cv_.wait_for(lock, idle_keepalive_, [&] {
      return stopping_ || !tasks_.empty() || alive() > max_;
    });
    --idle_;
    if (!woken) break;  // idle for the keep-alive: retire
  }
  finished_.push_back(index);  // joined by a later Post or by Shutdown
}

// ---- Executor -----------------------------------------------------------------

Executor::Executor(int threads) {
  if (threads < 1) threads = 1;
  count_ = threads;
  threads_.reserve(threads);
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this, i] { WorkerLoop(i); });
}

Executor::~Executor() { Shutdown(); }

void Executor::Post(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    tasks_.push_back(std::move(task));
  }
  cv_.notify_one();
}

void Executor::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ && threads_.empty()) return;
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  threads_.clear();
}

void Executor::WorkerLoop(int index) {
  InstallThreadCrashStack();
  tls_thread_index = index;
  NameThread("fw-worker-" + std::to_string(index));
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
      if (tasks_.empty()) return;  // stopping and drained
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    task();
  }
}

}  // namespace foxworker
