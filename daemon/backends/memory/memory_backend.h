// MemoryBackend: an in-process broker for unit tests and for trying things
// out. Nothing survives the process. Retries wait on a timer thread; dead
// letters go to the source "<source>-dlq", like the broker backends.
#ifndef FOXWORKER_BACKENDS_MEMORY_MEMORY_BACKEND_H_
#define FOXWORKER_BACKENDS_MEMORY_MEMORY_BACKEND_H_

#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <queue>
#include <string>
#include <thread>
#include <vector>

#include "daemon/backends/memory/memory_config.h"
#include "daemon/core/backend.h"

namespace foxworker {

// Safe for concurrent use.
class MemoryBackend : public Backend {
 public:
  MemoryBackend(std::string name, MemoryBackendOptions options);
  ~MemoryBackend() override;

  const std::string& name() const override { return name_; }
  Status Start() override;
  Result<std::unique_ptr<Source>> OpenSource(const SourceOptions& options) override;
  Status Enqueue(const std::string& source, Message message, Duration delay) override;
  void Stop(std::chrono::steady_clock::time_point deadline) override;

  // Enqueues many messages with one lock (benchmarks, tests).
  Status EnqueueBatch(const std::string& source, std::vector<Message>& messages);

  // Inspection for tests: messages waiting (ready, not delayed) on a source,
  // and a copy of them.
  size_t ReadyCount(const std::string& source);
  size_t DelayedCount(const std::string& source);
  // An inspector that tells depth only (backlog, scheduled, dead letters);
  // the memory backend keeps no dead letters worth browsing. It reads this
  // backend's queues: it must not outlive it.
  Result<std::unique_ptr<Inspector>> OpenInspector(const InspectorOptions& options) override;
  std::vector<Message> Peek(const std::string& source);

  struct Queue;  // one backend-side queue

 private:
  Queue& GetQueue(const std::string& source);
  void TimerLoop();
  void Schedule(Queue& q, std::unique_ptr<Delivery> d, Duration delay);

  const std::string name_;
  const MemoryBackendOptions options_;
  std::mutex queues_mu_;
  std::map<std::string, std::unique_ptr<Queue>> queues_;  // GUARDED_BY(queues_mu_)

  struct Timed {
    std::chrono::steady_clock::time_point due;
    uint64_t seq;
    Queue* queue;
    Delivery* delivery;  // owned
    bool operator>(const Timed& o) const { return due != o.due ? due > o.due : seq > o.seq; }
  };
  std::mutex timer_mu_;
  std::condition_variable timer_cv_;
  std::priority_queue<Timed, std::vector<Timed>, std::greater<Timed>> timers_;  // GUARDED_BY(timer_mu_)
  uint64_t timer_seq_ = 0;
  bool stopping_ = false;
  std::thread timer_thread_;
  std::atomic<uint64_t> next_id_{1};
};

}  // namespace foxworker

#endif  // FOXWORKER_BACKENDS_MEMORY_MEMORY_BACKEND_H_
