// isolation: process. The core's HandlerSet over child processes that run
// a queue's handlers (foxworker-child): every message is sent to a child
// over its channel and answered later (Verdict::kPending, completed through
// the consumer like a plugin's deferred complete()). A child that dies
// charges one attempt to exactly the messages it was running; one past its
// deadline plus a grace period is killed. See docs/architecture.md.
#ifndef FOXWORKER_ISOLATION_PROCESS_HANDLERS_H_
#define FOXWORKER_ISOLATION_PROCESS_HANDLERS_H_

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "daemon/config/config.h"
#include "daemon/core/handler.h"
#include "daemon/isolation/syscall_filter.h"
#include "daemon/isolation/wire.h"
#include "daemon/plugins/plugin_loader.h"

namespace foxworker::isolation {

// The child program: $FOXWORKER_CHILD, else foxworker-child next to the
// running executable, else the installed one.
std::string ChildProgramPath();

// "handler crashed: SIGSEGV in plugin P, handler H (child pid N)" and the
// like, for a child's wait status.
std::string DescribeChildExit(int wait_status);

struct ProcessOptions {
  std::string queue;
  PluginConfig plugin;       // as configured (the child applies the schema)
  std::string plugin_name;   // for reasons
  int processes = 1;         // children
  int slots_per_child = 1;   // messages a child runs at once
  ProcessIsolationConfig config;  // grace, recycling, limits, user
  std::string child_path;    // empty: ChildProgramPath()
};

class ProcessHandlerSet;

// One handler of the plugin, run in the children.
class ProcessHandler : public Handler {
 public:
  ProcessHandler(ProcessHandlerSet* set, std::string name) : set_(set), name_(std::move(name)) {}
  const std::string& name() const override { return name_; }
  // Batches are not sent to children: one message per call (the child
  // hands a batch handler a batch of one).
  bool batched() const override { return false; }
  HandlerReply Handle(HandlerInstance instance, Delivery& d, char* reason_buf,
                      size_t reason_cap) const override;
  void HandleBatch(HandlerInstance instance, Delivery* const* batch, size_t n,
                   HandlerReply* replies, char* reason_bufs, size_t reason_cap) const override;

 private:
  ProcessHandlerSet* const set_;
  const std::string name_;
};

class ProcessHandlerSet : public HandlerSet {
 public:
  // Starts the children and waits until each one loaded the plugin (or one
  // failed: the error says why, with the child's own message).
  static Result<std::unique_ptr<ProcessHandlerSet>> Create(const LoadedPlugin& plugin,
                                                           ProcessOptions options);
  // Asks every child to finish and exit; kills those that do not within
  // 10 s. REQUIRES: nothing is running (the consumer drained).
  ~ProcessHandlerSet() override;

  const std::string& provider() const override { return provider_; }
  const std::vector<const Handler*>& handlers() const override { return views_; }
  const Handler* Find(std::string_view type) const override;
  std::string HandlerNames() const override { return plugin_.HandlerNames(); }
  // A consumer's pass over its messages: RUN frames submitted within it
  // are written together when it ends (Release), one write per child.
  HandlerInstance Acquire() override { return this; }
  void Release(HandlerInstance instance) override {
    if (instance != nullptr) FlushAll();
  }
  Result<std::unique_ptr<Growth>> PrepareResize(int) override {
    return std::unique_ptr<Growth>();
  }
  void Resize(std::unique_ptr<Growth>) override {}
  void Trim(int) override {}

  bool HandsOff() const override { return true; }
  HandlerChildren Children() const override;
  // Crash loops (ProcessIsolationConfig::crash_loop): `crashes` deaths of
  // its children that were no recycling within `window` hold the queue for
  // `pause`. Meanwhile Submit answers kRelease and dead children are not
  // started again; at its end (or at EndHold) they start at once.
  void SetHoldCallback(HoldCallback hold) override;
  void EndHold() override;
  // What waits for a free slot goes back to its consumer (kRelease): the
  // queue pauses or stops, and no child has started it.
  void ReleaseUnstarted() override;

  // Sends `d` to a child with a free slot, or queues it for the next slot
  // that frees (every child busy or restarting): kPending either way, or
  // kRetry with the reason when it cannot be run at all. Never blocks.
  // Within a consumer's pass (`instance` from Acquire) the frame may wait
  // for the pass's end.
  HandlerReply Submit(HandlerInstance instance, const std::string& handler, Delivery& d,
                      char* reason_buf, size_t reason_cap);

 private:
  struct Child;
  ProcessHandlerSet(const LoadedPlugin& plugin, ProcessOptions options);
  Status Spawn(Child* c, bool restart);
  void ReadLoop(Child* c);
  // A METRIC_DEFINE of `c`: the daemon's handle for the child's id.
  void DefineChildMetric(Child* c, Reader& r, std::vector<foxw_metric*>* metrics);
  // A METRIC_UPDATE: adds the child's changes to the daemon's metrics.
  // False on a malformed frame.
  bool UpdateChildMetrics(Reader& r, const std::vector<foxw_metric*>& metrics);
  // A PUBLISH of a child: publishes on a thread of its own (a broker's
  // confirm must not hold up the child's other answers) and answers with
  // PUBLISHED on `channel`. False on a malformed frame.
  bool StartPublish(Reader& r, std::shared_ptr<Channel> channel);
  void OutputLoop(int fd, pid_t pid);
  void Monitor();
  void Died(Child* c);
  // Retires `c` when its resident memory is over max_memory.
  void CheckMemoryLocked(Child* c);
  // Stops sending to `c` and shuts it down once idle (recycling).
  void RetireLocked(Child* c, const std::string& why);
  // The least busy child that can take a message now, or null.
  Child* PickLocked();
  // Records `d` as running on `c` under `id` and queues its RUN frame.
  // Returns the bytes queued on its channel.
  size_t AssignLocked(Child* c, uint64_t id, Delivery* d, const std::string& handler,
                      std::string_view frame);
  // Hands waiting messages to free slots. Their RUN frames are queued on the
  // channels and written by the next Flush (flush=false: the caller, which
  // is about to send more, flushes later).
  void DispatchWaiting(bool flush);
  // Writes what is queued on every child's channel.
  void FlushAll();
  // Counts a crash (`last` says which) towards a crash loop; true when it
  // starts a hold.
  bool CountCrashLocked(const std::string& last);
  // Ends a hold (if any) and forgets the crashes counted; dead children
  // start at once.
  void EndHoldLocked();
  // Tells the hold callback what changed since it was last told.
  // REQUIRES: mu_ not held.
  void NotifyHold();

  const LoadedPlugin& plugin_;
  const ProcessOptions options_;
  const SyscallFilterSpec filter_;  // of options_.config
  const std::string provider_;
  std::vector<std::unique_ptr<ProcessHandler>> handlers_;
  std::vector<const Handler*> views_;

  struct Waiting {
    Delivery* d;
    std::string handler;
  };
  mutable std::mutex mu_;
  std::deque<Waiting> waiting_;  // GUARDED_BY(mu_): submitted while no slot was free
  std::vector<std::unique_ptr<Child>> children_;  // fixed size; entries respawn in place
  std::atomic<uint64_t> next_id_{1};
  bool stopping_ = false;                          // GUARDED_BY(mu_)
  int publishing_ = 0;                             // GUARDED_BY(mu_): StartPublish threads
  std::condition_variable publish_done_;
  // Crash loops, GUARDED_BY(mu_): when the recent crashes were (monotonic),
  // the hold and its end, and how many holds there were.
  std::deque<uint64_t> crash_times_;
  bool held_ = false;
  uint64_t held_until_ns_ = 0;
  std::string hold_reason_;
  uint64_t crash_loop_pauses_ = 0;
  // Serializes the hold callback's calls (and their order with held_).
  std::mutex hold_cb_mu_;
  HoldCallback hold_cb_;        // GUARDED_BY(hold_cb_mu_)
  bool hold_notified_ = false;  // GUARDED_BY(hold_cb_mu_): what hold_cb_ was told last
  std::condition_variable monitor_cv_;
  std::thread monitor_;
};

}  // namespace foxworker::isolation

#endif  // FOXWORKER_ISOLATION_PROCESS_HANDLERS_H_
