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
#include <chrono>
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
struct ProcessChild;

// One handler of the plugin, run in the children.
class ProcessHandler : public Handler {
 public:
  ProcessHandler(ProcessHandlerSet* set, std::string name, bool batched)
      : set_(set), name_(std::move(name)), batched_(batched) {}
  const std::string& name() const override { return name_; }
  // A batch handler's batch goes to one child in one RUN_BATCH frame and
  // takes one of its slots; the child calls the handler once for it.
  bool batched() const override { return batched_; }
  HandlerReply Handle(HandlerInstance instance, Delivery& d, char* reason_buf,
                      size_t reason_cap) const override;
  void HandleBatch(HandlerInstance instance, Delivery* const* batch, size_t n,
                   HandlerReply* replies, char* reason_bufs, size_t reason_cap) const override;

 private:
  ProcessHandlerSet* const set_;
  const std::string name_;
  const bool batched_;
};

class ProcessHandlerSet : public HandlerSet {
 public:
  // Starts the children and waits until each one loaded the plugin (or one
  // failed: the error says why, with the child's own message).
  static Result<std::unique_ptr<ProcessHandlerSet>> Create(const LoadedPlugin& plugin,
                                                           ProcessOptions options);
  // Waits until every child is gone: after BeginClose(), by its deadline;
  // without it, asks every child to finish and exit, terminating those that
  // do not within 10 s. REQUIRES: nothing is running (the consumer drained),
  // or Abandon() ran.
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
  // Messages waiting for a free child go back to the backend (kRelease,
  // uncharged) while `on`, those waiting now included.
  void SetHandBack(bool on) override;
  // SHUTDOWN to every child now (the plugin's shutdown runs in it), SIGTERM
  // to those still there at `deadline`, SIGKILL a second later; the
  // monitor does it, the destructor waits for it.
  void BeginClose(std::chrono::steady_clock::time_point deadline) override;
  // Stops the children still running messages (SIGTERM now, SIGKILL a
  // second later; idle ones get SHUTDOWN and the same second) and hands
  // those messages back uncharged (kRelease), each logged with `why`.
  // Returns at once: each message settles when its child is seen gone.
  size_t Abandon(const std::string& why) override;

  // Sends `d` to a child with a free slot, or queues it for the next slot
  // that frees (every child busy or restarting): kPending either way, or
  // kRetry with the reason when it cannot be run at all. Never blocks.
  // Within a consumer's pass (`instance` from Acquire) the frame may wait
  // for the pass's end.
  HandlerReply Submit(HandlerInstance instance, const std::string& handler, Delivery& d,
                      char* reason_buf, size_t reason_cap);
  // The same for a batch handler's call: the whole batch goes to one child
  // (or waits, whole, for a free slot). Every reply is the same verdict.
  void SubmitBatch(HandlerInstance instance, const std::string& handler, Delivery* const* batch,
                   size_t n, HandlerReply* replies, char* reason_bufs, size_t reason_cap);

  // A config reload's change of the queue's children: the settings the
  // daemon applies (timeout_grace, max_tasks, max_memory, max_lifetime,
  // crash_loop) and, when the children must start anew (the plugin's
  // config, the number of children or messages per child, the limits or
  // user they start with), a new generation of children.
  class Change {
   public:
    ~Change();  // stops children that were started and not applied
    Change(const Change&) = delete;
    Change& operator=(const Change&) = delete;
   private:
    friend class ProcessHandlerSet;
    explicit Change(ProcessHandlerSet* set);  // in the .cc: ProcessChild is complete there
    ProcessHandlerSet* const set_;
    std::shared_ptr<const ProcessOptions> options;
    std::vector<std::unique_ptr<ProcessChild>> children;
  };
  // Starts the new children when `new_children` (each loaded the plugin
  // and answered READY, or the change fails and nothing changed). The
  // queue keeps running on the old ones meanwhile. Control thread.
  // REQUIRES: next.queue and the plugin are this set's.
  Result<std::unique_ptr<Change>> PrepareChange(ProcessOptions next, bool new_children);
  // Applies it at once: new messages (and those waiting) go to the new
  // children; the old ones take no more, finish what they run, get SHUTDOWN
  // and exit. A new generation ends a crash-loop pause. Control thread.
  void ApplyChange(std::unique_ptr<Change> change);

 private:
  using Child = ProcessChild;
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
  // The monitor's pass over one child: recycling, SHUTDOWN once a retiring
  // child is idle, timeouts of its messages. REQUIRES: mu_.
  void WatchLocked(Child* c, uint64_t now);
  // Closing: no new messages, no restarts; SHUTDOWN to every child now,
  // SIGTERM to those still there at `term_at_ns` (an earlier deadline of a
  // child stays). REQUIRES: mu_.
  void CloseLocked(uint64_t term_at_ns);
  // The monitor's pass while closing: SIGTERM at the child's close
  // deadline, SIGKILL a second later. REQUIRES: mu_.
  void CloseStepLocked(Child* c, uint64_t now);
  void Died(Child* c);
  // Retires `c` when its resident memory is over max_memory.
  void CheckMemoryLocked(Child* c);
  // Stops sending to `c` and shuts it down once idle (recycling).
  void RetireLocked(Child* c, const std::string& why);
  // The least busy child that can take a message now, or null.
  Child* PickLocked();
  // Records `d` as running on `c` under `id` and queues its RUN frame.
  // Returns the bytes queued on its channel.
  // A batch (`more` non-empty: the call's other messages, ids id+1...)
  // takes one slot, held by its last message, under one RUN_BATCH frame.
  size_t AssignLocked(Child* c, uint64_t id, Delivery* d, const std::string& handler,
                      std::string_view frame, const std::vector<Delivery*>& more = {});
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
  // Sends SHUTDOWN to the children of `children` (not part of the set) and
  // waits until they are gone (SIGTERM, SIGKILL after 10 s and 1 s).
  void StopUnused(std::vector<std::unique_ptr<Child>>& children);
  // Waits until every child of the set is gone, or `until` (monotonic).
  // True when they are.
  bool WaitChildrenGone(uint64_t until);

  const LoadedPlugin& plugin_;
  const std::string queue_;
  const std::string plugin_name_;
  const std::string child_path_;
  const std::string provider_;
  std::vector<std::unique_ptr<ProcessHandler>> handlers_;
  std::vector<const Handler*> views_;

  struct Waiting {
    Delivery* d;
    std::string handler;
    std::vector<Delivery*> more;  // a batch call's other messages
    // The messages, `d` first.
    std::vector<Delivery*> Deliveries() const;
  };
  // Ids for a call of `handler` on `batch` (one per message, consecutive)
  // and its frame: RUN for one message, RUN_BATCH for more.
  std::pair<uint64_t, std::string> Encode(const std::string& handler, Delivery* const* batch,
                                          size_t n);
  mutable std::mutex mu_;
  // The current generation's options (GUARDED_BY(mu_)): what a child that
  // starts gets, and the settings the daemon applies to every child.
  std::shared_ptr<const ProcessOptions> options_;
  std::deque<Waiting> waiting_;  // GUARDED_BY(mu_): submitted while no slot was free
  // GUARDED_BY(mu_): the current generation, fixed size; entries respawn
  // in place.
  std::vector<std::unique_ptr<Child>> children_;
  uint64_t generation_ = 0;  // GUARDED_BY(mu_): counts replacements of children_
  // GUARDED_BY(mu_): children of earlier generations (a reload replaced
  // them) finishing their messages; removed once gone.
  std::vector<std::unique_ptr<Child>> replaced_;
  // Output threads of removed children, joined by the destructor (a
  // process the plugin started may hold the pipe open longer).
  std::vector<std::thread> finished_outputs_;  // GUARDED_BY(mu_)
  std::atomic<uint64_t> next_id_{1};
  bool stopping_ = false;       // GUARDED_BY(mu_): closing or abandoning; no new messages
  bool monitor_stop_ = false;   // GUARDED_BY(mu_)
  bool hand_back_ = false;      // GUARDED_BY(mu_): see SetHandBack
  bool abandoning_ = false;     // GUARDED_BY(mu_): a dead child's messages go back uncharged
  std::string abandon_reason_;  // GUARDED_BY(mu_)
  int publishing_ = 0;          // GUARDED_BY(mu_): StartPublish threads
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
