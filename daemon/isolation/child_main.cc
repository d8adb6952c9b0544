// foxworker-child: runs one queue's handlers in a process of their own
// (isolation: process). foxworkerd starts it with fork+exec (posix_spawn),
// its channel on descriptor 3; see docs/architecture.md.
//
// It loads the plugin with the daemon's own loader and host services, so a
// plugin runs here exactly as in the daemon. It runs up to `slots` messages
// at once, one thread per slot, and answers each RUN with one DONE: at
// once, or when the plugin's complete() comes for a deferred message. The
// host services that need the daemon go over the channel: log lines (LOG),
// publish (PUBLISH, answered by PUBLISHED), and the plugin's metrics
// (METRIC_DEFINE and METRIC_UPDATE, every kMetricsIntervalMs).
#include <fcntl.h>
#include <glog/logging.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "daemon/base/clock.h"
#include "daemon/core/executor.h"
#include "daemon/isolation/syscall_filter.h"
#include "daemon/isolation/wire.h"
#include "daemon/plugins/host_api.h"
#include "daemon/plugins/plugin_handlers.h"
#include "daemon/plugins/plugin_loader.h"

namespace foxworker::isolation {
namespace {

constexpr int kChannelFd = 3;
// With syscall_action: kill, the pipe on which a denied call's SIGSYS
// handler tells the daemon which call it was (syscall_filter.h).
constexpr int kDenialNoteFd = 4;
constexpr size_t kReasonCap = 1024;
// How often the plugin's metrics are reported to the daemon: how stale the
// daemon's /metrics may be, and what a crash may lose.
constexpr int kMetricsIntervalMs = 200;

struct Job {
  uint64_t id = 0;
  std::string handler;
  Delivery d;
  // The handler's return and a deferred complete() meet here: exactly one
  // DONE leaves for each job.
  std::mutex mu;
  bool returned = false;  // the handler returned kPending
  bool answered = false;
  bool have_result = false;
  int64_t raw = 0;
  uint64_t delay_ms = 0;
  std::string reason;
  // RUN_BATCH: the call's other messages (ids id + 1, ...), answered
  // after this one, each with its own DONE. A batch cannot defer.
  std::vector<std::unique_ptr<Job>> more;
  // Its index in Child::running_ while it is there (GUARDED_BY Child::mu_).
  size_t running_pos = kNotRunning;
  bool deferrable = false;  // complete() may answer it (not a batch's)
  static constexpr size_t kNotRunning = static_cast<size_t>(-1);

  // Ready for the next RUN frame: the strings keep their capacity.
  // REQUIRES: answered, its handler returned, not in Child::running_.
  void Reset() {
    returned = answered = have_result = false;
    raw = 0;
    delay_ms = 0;
    reason.clear();
    more.clear();
    deferrable = false;
    d.ResetState();
  }
};

struct Limits {
  uint64_t address_space = 0;  // 0 = leave as is
  uint64_t cpu_seconds = 0;
  uint64_t open_files = 0;
  uint64_t processes = 0;
  bool no_new_privs = true;
  std::string user;
};

Status SetLimit(int resource, const char* name, uint64_t value) {
  if (value == 0) return Status::Ok();
  rlimit rl{static_cast<rlim_t>(value), static_cast<rlim_t>(value)};
  if (setrlimit(resource, &rl) != 0)
    return Status::InvalidArgument(std::string("cannot set ") + name + " to " +
                                   std::to_string(value) + ": " + std::strerror(errno));
  return Status::Ok();
}

// The queue's process: block, applied to this process before the plugin
// is loaded: the user first (a root daemon's child gives up root), then the
// limits, hard and soft, so that the plugin cannot raise them again.
Status ApplyLimits(const Limits& l) {
  if (!l.user.empty()) {
    passwd pw{};
    passwd* found = nullptr;
    std::vector<char> buf(16384);
    if (getpwnam_r(l.user.c_str(), &pw, buf.data(), buf.size(), &found) != 0 || found == nullptr)
      return Status::InvalidArgument("process.user: no user \"" + l.user + "\"");
    if (geteuid() == 0) {
      if (initgroups(pw.pw_name, pw.pw_gid) != 0 || setresgid(pw.pw_gid, pw.pw_gid, pw.pw_gid) != 0 ||
          setresuid(pw.pw_uid, pw.pw_uid, pw.pw_uid) != 0)
        return Status::InvalidArgument("process.user: cannot become " + l.user + ": " +
                                       std::strerror(errno));
    } else if (pw.pw_uid != geteuid()) {
      return Status::InvalidArgument("process.user: cannot run as " + l.user +
                                     ": the daemon runs as uid " + std::to_string(geteuid()) +
                                     ", not root");
    }
  }
  for (Status s : {SetLimit(RLIMIT_AS, "address_space (RLIMIT_AS)", l.address_space),
                   SetLimit(RLIMIT_CPU, "cpu_time (RLIMIT_CPU)", l.cpu_seconds),
                   SetLimit(RLIMIT_NOFILE, "open_files (RLIMIT_NOFILE)", l.open_files),
                   SetLimit(RLIMIT_NPROC, "max_processes (RLIMIT_NPROC)", l.processes)}) {
    if (!s.ok()) return s;
  }
  if (l.no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
    return Status::InvalidArgument(std::string("cannot set no_new_privs: ") + std::strerror(errno));
  return Status::Ok();
}

class Child {
 public:
  explicit Child(Channel* channel) : channel_(channel) {}

  int Run();
  // The plugin's complete() of a deferred message (SetDeferredSink).
  int32_t Complete(Delivery* d, const HandlerReply& reply);
  // The plugin's publish(), after HostPublish's checks: asks the daemon and
  // waits for its answer.
  Status Publish(const foxw_publish& p, const Delivery* parent);

 private:
  // A publish waiting for the daemon's answer.
  struct PendingPublish {
    bool done = false;
    Status status;
  };
  // What the daemon last got of one metric.
  struct SentMetric {
    uint32_t id = 0;
    double counter = 0;
    std::vector<uint64_t> buckets;  // per bucket, not cumulative
    double sum = 0;
  };

  void Worker(int index);
  void RunJob(std::unique_ptr<Job> job);
  // `more_follow`: the caller answers another job right after (a batch):
  // this answer is queued to leave with that one. `reuse`: the job itself,
  // answered synchronously, kept for a later RUN frame.
  void Answer(Job* job, int64_t raw, std::string_view reason, uint64_t delay_ms,
              bool more_follow = false, std::unique_ptr<Job> reuse = nullptr);
  // A job for the next RUN frame: a spare one when there is one. Reader only.
  std::unique_ptr<Job> NewJob();
  // running_, REQUIRES: mu_.
  void AddRunningLocked(Job* job);
  void RemoveRunningLocked(Job* job);
  // A batch handler's call (RUN_BATCH, or a RUN for a batch handler).
  void RunBatchJob(const Handler* h, std::unique_ptr<Job> job);
  // Reads the daemon's frames until SHUTDOWN has been handled and Run()
  // closes the read side.
  void ReadLoop();
  void FlushLoop();
  // Sends what changed in the plugin's metrics since the last call (and
  // the definitions the daemon has not seen). One caller at a time.
  void FlushMetrics();

  Channel* const channel_;
  std::string queue_;
  std::unique_ptr<LoadedPlugin> plugin_;
  std::unique_ptr<PluginHandlerSet> handlers_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Job>> queued_;  // GUARDED_BY(mu_)
  // GUARDED_BY(mu_): read and not answered, in no order (Job::running_pos).
  // At most a few per slot: a CANCEL or complete() looks through them.
  std::vector<Job*> running_;
  // GUARDED_BY(mu_): jobs answered synchronously, reset for the next RUN
  // frames (a message costs no allocation once they are warm). The reader
  // takes them in bunches into its own reader_spares_.
  std::vector<std::unique_ptr<Job>> spare_jobs_;
  std::vector<std::unique_ptr<Job>> reader_spares_;  // the reader thread's
  static constexpr size_t kMaxSpareJobs = 256;
  bool stopping_ = false;                    // GUARDED_BY(mu_)
  bool shutdown_asked_ = false;              // GUARDED_BY(mu_): SHUTDOWN came
  bool finishing_ = false;                   // GUARDED_BY(mu_): Run() closes the read side
  std::condition_variable shutdown_cv_;

  std::mutex publish_mu_;
  std::condition_variable publish_cv_;
  std::map<uint64_t, PendingPublish*> publishes_;  // GUARDED_BY(publish_mu_)
  uint64_t next_publish_ = 1;                      // GUARDED_BY(publish_mu_)

  std::mutex flush_mu_;
  std::condition_variable flush_cv_;
  bool flush_stop_ = false;                     // GUARDED_BY(flush_mu_)
  std::map<const foxw_metric*, SentMetric> sent_;  // FlushMetrics() only
  int idle_ = 0;                             // GUARDED_BY(mu_): workers waiting for a job
  int waking_ = 0;                           // GUARDED_BY(mu_): notified, not yet running
  uint64_t woke_ns_ = 0;                     // GUARDED_BY(mu_): when WakeLocked last woke one
  // Per worker: when its handler started (0: not in a handler).
  std::unique_ptr<std::atomic<uint64_t>[]> busy_since_;
  int workers_ = 0;

  // How many workers to wake for queued jobs (none while a worker that is
  // awake will take them soon); counted as waking. REQUIRES: mu_. The
  // caller notifies them after letting go of mu_ (Wake), so that they do
  // not wake only to wait for the lock.
  int WakeLocked(uint64_t now, bool recheck);
  void Wake(int n) {
    for (int i = 0; i < n; ++i) cv_.notify_one();
  }
};

// Waking a thread costs more here than running a short handler. So a
// queued job wakes no worker while one that is awake will take it soon: one
// between jobs, or in a handler for less than kBusyNs. Once every awake
// worker has been in its handler that long (handlers that wait), enough
// workers are woken for every queued job. Short jobs thus run back to back
// on few threads; slow ones spread over every slot. While jobs are queued
// the reader looks again every kRecheckNs.
constexpr uint64_t kBusyNs = 50000;
constexpr uint64_t kRecheckNs = 200000;
constexpr uint64_t kWakeTrustNs = 2000000;

int Child::WakeLocked(uint64_t now, bool recheck) {
  // A notified worker runs as soon as the scheduler lets it, which on a busy
  // machine can take longer than a recheck: waking another one then is a
  // wake-up (and a thread) more per batch for nothing. Only notifies older
  // than kWakeTrustNs are no longer trusted, in case one was lost: waking
  // one worker too many costs little, leaving a job with none would stall it.
  if (recheck && now - woke_ns_ >= kWakeTrustNs) waking_ = 0;
  if (queued_.empty() || idle_ - waking_ <= 0) return 0;
  const int awake = workers_ - idle_;
  int busy = 0;
  for (int i = 0; i < workers_; ++i) {
    const uint64_t since = busy_since_[i].load(std::memory_order_relaxed);
    if (since != 0 && now - since >= kBusyNs) ++busy;
  }
  if (awake + waking_ > busy) return 0;  // someone takes the next job soon
  // Every worker asleep: one wakes and runs the jobs back to back. Only
  // once it has been in a handler for kBusyNs (the next recheck sees it)
  // do the others wake, one per queued job.
  if (awake == 0) {
    waking_ += 1;
    woke_ns_ = now;
    return 1;
  }
  const int need = std::min(static_cast<int>(queued_.size()) - waking_, idle_ - waking_);
  if (need <= 0) return 0;
  waking_ += need;
  woke_ns_ = now;
  return need;
}

Child* g_child = nullptr;

// The syscall filter denies ptrace, which LeakSanitizer's exit check needs
// (it stops the threads with it): under ASan that check is off then, rather
// than failing (errno) or killing the child at its exit (kill).
bool g_ptrace_denied = false;

// Every glog line of the child (the plugin's log() calls included) goes to
// the daemon as a LOG frame, which logs it in its own log with the queue
// and the child's pid. The child writes no log of its own.
class ChannelLogSink : public google::LogSink {
 public:
  explicit ChannelLogSink(Channel* channel) : channel_(channel) {}
  using google::LogSink::send;
  void send(google::LogSeverity severity, const char*, const char* base_filename, int line,
            const google::LogMessageTime&, const char* message, size_t message_len) override {
    Writer w;
    w.U32(static_cast<uint32_t>(severity));
    w.Str(base_filename != nullptr ? base_filename : "");
    w.U32(static_cast<uint32_t>(line));
    w.Str(std::string_view(message, message_len));
    (void)channel_->Send(FrameType::kLog, w.body());
  }

 private:
  Channel* const channel_;
};

int32_t SinkDeferred(Delivery* d, const HandlerReply& reply);

void Child::AddRunningLocked(Job* job) {
  job->running_pos = running_.size();
  running_.push_back(job);
}

void Child::RemoveRunningLocked(Job* job) {
  if (job->running_pos == Job::kNotRunning) return;
  Job* last = running_.back();
  running_[job->running_pos] = last;
  last->running_pos = job->running_pos;
  running_.pop_back();
  job->running_pos = Job::kNotRunning;
}

std::unique_ptr<Job> Child::NewJob() {
  if (reader_spares_.empty()) {
    std::lock_guard<std::mutex> lock(mu_);
    reader_spares_.swap(spare_jobs_);
  }
  if (reader_spares_.empty()) return std::make_unique<Job>();
  std::unique_ptr<Job> job = std::move(reader_spares_.back());
  reader_spares_.pop_back();
  return job;
}

void Child::Answer(Job* job, int64_t raw, std::string_view reason, uint64_t delay_ms,
                   bool more_follow, std::unique_ptr<Job> reuse) {
  // The frame's buffer is the thread's own, reused (Queue and Send copy it).
  thread_local Writer w;
  w.body().clear();
  w.U64(job->id);
  w.I64(raw);
  w.U64(delay_ms);
  w.Str(reason);
  {
    std::lock_guard<std::mutex> lock(mu_);
    RemoveRunningLocked(job);
    if (reuse != nullptr && spare_jobs_.size() < kMaxSpareJobs) {
      reuse->Reset();
      spare_jobs_.push_back(std::move(reuse));
    }
    if (more_follow || !queued_.empty()) {
      // A worker goes on to the next job: the answer leaves with the next
      // one written, or with the reader's flush within kRecheckNs (queued
      // under mu_, so a reader that then finds no job finds the answer).
      channel_->Queue(FrameType::kDone, w.body());
      return;
    }
  }
  Status s = channel_->Send(FrameType::kDone, w.body());
  if (!s.ok()) {
    // The daemon is gone: nothing to answer to.
    _exit(0);
  }
}

int32_t Child::Complete(Delivery* d, const HandlerReply& reply) {
  Job* job = nullptr;
  {
    // Decided under mu_ as well as the job's lock: a job leaves running_,
    // is reset and goes back to the spares under mu_, so the one found here
    // is still this message's (not the next message's in the same object)
    // until the decision is made. Lock order: mu_, then a job's mu.
    std::lock_guard<std::mutex> lock(mu_);
    for (Job* j : running_) {
      if (j->deferrable && &j->d == d) {
        job = j;
        break;
      }
    }
    if (job == nullptr) return -1;
    std::lock_guard<std::mutex> job_lock(job->mu);
    if (job->answered || job->have_result) return -1;
    if (!job->returned) {
      // The handler has not returned yet: its thread answers when it does
      // (or its own verdict wins, if it returns one).
      job->have_result = true;
      job->raw = reply.raw;
      job->delay_ms = reply.retry_delay_ms;
      job->reason.assign(reply.reason.data(), reply.reason.size());
      return 0;
    }
    job->answered = true;
  }
  std::unique_ptr<Job> owned(job);  // the handler's thread let go of it
  Answer(job, reply.raw, reply.reason, reply.retry_delay_ms);
  return 0;
}

void Child::RunJob(std::unique_ptr<Job> job) {
  const Handler* h = handlers_->Find(job->handler);
  if (h == nullptr) {
    const std::string why = "no handler " + job->handler + " in the child";
    for (auto& m : job->more) Answer(m.get(), FOXW_RETRY, why, 0, /*more_follow=*/true);
    Answer(job.get(), FOXW_RETRY, why, 0);
    return;
  }
  if (h->batched() || !job->more.empty()) {
    RunBatchJob(h, std::move(job));
    return;
  }
  char reason[kReasonCap];
  // A call the syscall filter kills for is charged to this message.
  SetFilteredJob(job->id);
  void* instance = handlers_->Acquire();
  job->d.started_ns = MonotonicNs();
  HandlerReply reply = h->Handle(instance, job->d, reason, sizeof reason);
  handlers_->Release(instance);
  SetFilteredJob(0);
  if (reply.verdict != Verdict::kPending) {
    Job* j = job.get();
    Answer(j, reply.raw, reply.reason, reply.retry_delay_ms, /*more_follow=*/false,
           std::move(job));
    return;
  }
  std::unique_lock<std::mutex> lock(job->mu);
  job->returned = true;
  if (!job->have_result) {
    job.release();  // Complete() answers and frees it
    return;
  }
  job->answered = true;
  lock.unlock();
  Answer(job.get(), job->raw, job->reason, job->delay_ms);
}

void Child::RunBatchJob(const Handler* h, std::unique_ptr<Job> job) {
  const size_t n = 1 + job->more.size();
  std::vector<Delivery*> ds{&job->d};
  for (auto& m : job->more) ds.push_back(&m->d);
  std::vector<HandlerReply> replies(n);
  std::string reasons(n * kReasonCap, '\0');
  if (h->batched()) {
    SetFilteredJob(job->id);  // the daemon charges a denied call to the whole call
    void* instance = handlers_->Acquire();
    const uint64_t now = MonotonicNs();
    for (Delivery* d : ds) d->started_ns = now;
    h->HandleBatch(instance, ds.data(), n, replies.data(), reasons.data(), kReasonCap);
    handlers_->Release(instance);
    SetFilteredJob(0);
  }
  const std::string not_batched = "handler " + job->handler + " takes no batches";
  if (!h->batched())
    for (auto& r : replies) r = {Verdict::kRetry, FOXW_RETRY, not_batched, 0};
  for (size_t i = 0; i < n; ++i) {
    HandlerReply& r = replies[i];
    if (r.verdict == Verdict::kPending)
      r = {Verdict::kRetry, FOXW_RETRY, "a batch handler cannot defer", 0};
    Job* j = i == 0 ? job.get() : job->more[i - 1].get();
    Answer(j, r.raw, r.reason, r.retry_delay_ms, /*more_follow=*/i + 1 < n);
  }
}

void Child::Worker(int index) {
  // PER_THREAD instances (one per slot: PluginHandlerSet::Create with no
  // executor) are this thread's by its index; off a runner the lookup
  // would find none and abort the child on every message.
  TaskRunner::SetCurrentThreadIndex(index);
  for (;;) {
    std::unique_ptr<Job> job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (queued_.empty() && !stopping_) {
        ++idle_;
        // Every wake-up, taken job or not, ends one notify's count.
        while (queued_.empty() && !stopping_) {
          cv_.wait(lock);
          if (waking_ > 0) --waking_;
        }
        --idle_;
      }
      if (queued_.empty()) return;
      job = std::move(queued_.front());
      queued_.pop_front();
    }
    busy_since_[index].store(MonotonicNs(), std::memory_order_relaxed);
    RunJob(std::move(job));
    busy_since_[index].store(0, std::memory_order_relaxed);
  }
}

int Child::Run() {
  FrameType type;
  std::string body;
  Status s = channel_->Receive(&type, &body);
  if (!s.ok() || type != FrameType::kInit) {
    LOG(ERROR) << "foxworker-child: no init frame: " << s.message();
    return 1;
  }
  Reader r(body);
  PluginConfig config;
  config.name = r.Str();
  config.path = r.Str();
  config.config_json = r.Str();
  queue_ = r.Str();
  const uint32_t slots = r.U32();
  // The daemon's log level (daemon.log_level): what log_enabled() answers.
  FLAGS_minloglevel = static_cast<int32_t>(r.U32());
  FLAGS_v = static_cast<int32_t>(r.U32());
  Limits limits;
  limits.address_space = r.U64();
  limits.cpu_seconds = r.U64();
  limits.open_files = r.U64();
  limits.processes = r.U64();
  limits.no_new_privs = r.U8() != 0;
  limits.user = r.Str();
  SyscallFilterSpec filter;
  if (!ReadFilterSpec(r, &filter) || !r.ok() || slots == 0) {
    LOG(ERROR) << "foxworker-child: malformed init frame";
    return 1;
  }
  // Before any code of the plugin runs (its constructors run at dlopen).
  Status limited = ApplyLimits(limits);
  // The syscall filter after that setup (which must not meet it) and, like
  // the limits, before the plugin's first code. It needs no_new_privs, which
  // the config requires with a filter.
  if (limited.ok() && filter.kill) (void)fcntl(kDenialNoteFd, F_SETFD, FD_CLOEXEC);
  g_ptrace_denied =
      filter.on && std::binary_search(filter.deny.begin(), filter.deny.end(), SYS_ptrace);
  if (limited.ok()) limited = InstallSyscallFilter(filter, kDenialNoteFd);
  if (!limited.ok()) {
    (void)channel_->Send(FrameType::kFailed, limited.message());
    return 1;
  }
  auto plugin = LoadedPlugin::Load(config);
  if (!plugin.ok()) {
    (void)channel_->Send(FrameType::kFailed, plugin.status().message());
    return 1;
  }
  plugin_ = std::move(*plugin);
  // publish() goes to the daemon, which publishes with its own publisher.
  plugin_->ctx()->publish = [this](const foxw_publish& p, const Delivery* parent) {
    return Publish(p, parent);
  };
  auto handlers = PluginHandlerSet::Create(*plugin_, queue_, static_cast<int>(slots), 0);
  if (!handlers.ok()) {
    (void)channel_->Send(FrameType::kFailed, handlers.status().message());
    return 1;
  }
  handlers_ = std::move(*handlers);
  SetDeferredSink(&SinkDeferred);
  // The worker threads before READY: once READY is sent the daemon sends
  // messages, and a thread that cannot be made then (the user at
  // max_processes, RLIMIT_NPROC, which a sibling's fork bomb can hold for a
  // moment) would abort with one of them charged. Before, it is a failed
  // start, which charges nothing.
  std::vector<std::thread> workers;
  std::thread reader, flusher;
  workers_ = static_cast<int>(slots);
  busy_since_ = std::make_unique<std::atomic<uint64_t>[]>(slots);
  for (uint32_t i = 0; i < slots; ++i) busy_since_[i].store(0);
  try {
    for (uint32_t i = 0; i < slots; ++i)
      workers.emplace_back([this, i] { Worker(static_cast<int>(i)); });
    reader = std::thread([this] { ReadLoop(); });
    flusher = std::thread([this] { FlushLoop(); });
  } catch (const std::system_error& e) {
    (void)channel_->Send(FrameType::kFailed,
                         std::string("cannot start a worker thread: ") + e.what());
    _exit(1);  // the threads made so far wait for work that never comes
  }
  {
    Writer w;
    w.U64(static_cast<uint64_t>(getpid()));
    if (!channel_->Send(FrameType::kReady, w.body()).ok()) _exit(0);
  }
  {
    std::unique_lock<std::mutex> lock(mu_);
    shutdown_cv_.wait(lock, [&] { return shutdown_asked_; });
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : workers) t.join();
  // The reader still runs: destroy and shutdown may publish.
  handlers_.reset();
  plugin_->Shutdown();
  {
    std::lock_guard<std::mutex> lock(flush_mu_);
    flush_stop_ = true;
  }
  flush_cv_.notify_all();
  flusher.join();
  FlushMetrics();  // the last of it: a recycled child loses nothing
  {
    std::lock_guard<std::mutex> lock(mu_);
    finishing_ = true;
  }
  channel_->ShutdownRead();
  reader.join();
  return 0;
}

void Child::ReadLoop() {
  FrameType type;
  std::string body;
  // RUN frames already read whole arrive in batches: they are queued
  // together, under one lock and with one look at whom to wake, before
  // the reader handles another kind of frame or waits.
  std::vector<std::unique_ptr<Job>> batch;
  auto queue_batch = [&] {
    if (batch.empty()) return;
    int wake;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto& job : batch) {
        AddRunningLocked(job.get());
        // A batch's messages cannot be completed later.
        job->deferrable = job->more.empty();
        for (auto& m : job->more) AddRunningLocked(m.get());
        queued_.push_back(std::move(job));
      }
      wake = WakeLocked(MonotonicNs(), /*recheck=*/false);
    }
    batch.clear();
    Wake(wake);
  };
  for (;;) {
    if (!channel_->FrameReady()) queue_batch();
    // Nothing read is waiting, and jobs are queued or answers held back
    // (Answer): look again every kRecheckNs until the jobs are taken and
    // the answers written.
    while (!channel_->Buffered()) {
      bool jobs, held;
      int wake = 0;
      {
        std::lock_guard<std::mutex> lock(mu_);
        jobs = !queued_.empty();
        if (jobs) wake = WakeLocked(MonotonicNs(), /*recheck=*/true);
        held = channel_->HasQueued();
      }
      Wake(wake);
      if (held && !channel_->Flush().ok()) _exit(0);  // the daemon is gone
      if (!jobs) break;
      pollfd p{channel_->fd(), POLLIN, 0};
      const timespec wait{0, static_cast<long>(kRecheckNs)};
      if (ppoll(&p, 1, &wait, nullptr) != 0) break;
    }
    Status s = channel_->Receive(&type, &body);
    if (!s.ok()) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (finishing_) return;
      }
      // The daemon closed the channel or died: stop at once, nothing of
      // ours can be answered any more (a publish waiting for its answer
      // ends with the process).
      _exit(0);
    }
    Reader in(body);
    if (type == FrameType::kRun || type == FrameType::kRunBatch) {
      std::unique_ptr<Job> job = NewJob();
      job->id = in.U64();
      in.StrInto(&job->handler);
      const uint64_t timeout_ms = in.U64();
      const uint32_t count = type == FrameType::kRunBatch ? in.U32() : 1;
      const uint64_t now = MonotonicNs();
      bool ok = in.ok() && count >= 1 && count <= kMaxFrame / 16;
      for (uint32_t i = 0; ok && i < count; ++i) {
        Job* j = job.get();
        if (i > 0) {
          job->more.push_back(std::make_unique<Job>());
          j = job->more.back().get();
          j->id = job->id + i;
          j->handler = job->handler;
        }
        ok = in.Msg(&j->d.msg);
        j->d.queue = &queue_;
        j->d.received_ns = now;
        if (timeout_ms > 0) j->d.deadline_ns = now + timeout_ms * 1000000;
      }
      if (!ok) {
        LOG(ERROR) << "foxworker-child: malformed run frame";
        _exit(1);
      }
      batch.push_back(std::move(job));
      continue;
    }
    // A CANCEL may name a job of the batch.
    queue_batch();
    if (type == FrameType::kCancel) {
      const uint64_t id = in.U64();
      std::lock_guard<std::mutex> lock(mu_);
      for (Job* j : running_)
        if (j->id == id) j->d.cancelled.store(true);
    } else if (type == FrameType::kPublished) {
      const uint64_t id = in.U64();
      Status status = ReadStatus(in);
      if (!in.ok()) {
        LOG(ERROR) << "foxworker-child: malformed published frame";
        _exit(1);
      }
      {
        std::lock_guard<std::mutex> lock(publish_mu_);
        auto it = publishes_.find(id);
        if (it != publishes_.end()) {
          it->second->done = true;
          it->second->status = std::move(status);
          publishes_.erase(it);
        }
      }
      publish_cv_.notify_all();
    } else if (type == FrameType::kShutdown) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        shutdown_asked_ = true;
      }
      shutdown_cv_.notify_all();
    } else {
      LOG(ERROR) << "foxworker-child: unexpected frame " << static_cast<int>(type);
      _exit(1);
    }
  }
}

Status Child::Publish(const foxw_publish& p, const Delivery* parent) {
  PendingPublish wait;
  uint64_t id;
  {
    std::lock_guard<std::mutex> lock(publish_mu_);
    id = next_publish_++;
    publishes_[id] = &wait;
  }
  Writer w;
  w.U64(id);
  w.U8(parent != nullptr ? 1 : 0);
  if (parent != nullptr) w.Msg(parent->msg, /*with_payload=*/false);
  WritePublish(w, p);
  Status sent = channel_->Send(FrameType::kPublish, w.body());
  std::unique_lock<std::mutex> lock(publish_mu_);
  if (!sent.ok()) {
    publishes_.erase(id);
    return Status::Unavailable("the daemon is gone (" + sent.message() + ")");
  }
  // Other slots keep running; the reader thread hands the answer over.
  publish_cv_.wait(lock, [&] { return wait.done; });
  return wait.status;
}

void Child::FlushLoop() {
  std::unique_lock<std::mutex> lock(flush_mu_);
  while (!flush_stop_) {
    flush_cv_.wait_for(lock, std::chrono::milliseconds(kMetricsIntervalMs));
    if (flush_stop_) break;
    lock.unlock();
    FlushMetrics();
    lock.lock();
  }
}

void Child::FlushMetrics() {
  Writer updates;
  uint32_t n = 0;
  for (foxw_metric* m : DefinedMetrics()) {
    auto it = sent_.find(m);
    if (it == sent_.end()) {
      SentMetric fresh;
      fresh.id = static_cast<uint32_t>(sent_.size() + 1);
      Writer def;
      def.U32(fresh.id);
      def.U8(static_cast<uint8_t>(m->kind));
      def.Str(m->name);
      def.Str(m->help);
      if (!channel_->Send(FrameType::kMetricDefine, def.body()).ok()) return;
      it = sent_.emplace(m, std::move(fresh)).first;
    }
    SentMetric& sent = it->second;
    if (m->kind == FOXW_METRIC_COUNTER) {
      const double value = m->counter->Value();
      if (value <= sent.counter) continue;
      updates.U32(sent.id);
      updates.U8(static_cast<uint8_t>(m->kind));
      updates.F64(value - sent.counter);
      sent.counter = value;
    } else if (m->kind == FOXW_METRIC_GAUGE) {
      // acquire: the value set before the flag (or a later one).
      if (!m->gauge_set.exchange(false, std::memory_order_acquire)) continue;
      updates.U32(sent.id);
      updates.U8(static_cast<uint8_t>(m->kind));
      updates.F64(m->gauge->Value());
    } else {
      const Histogram::Snapshot snap = m->histogram->Take();
      // Each bucket's own count, read once by Take(): it never decreases.
      std::vector<uint64_t> buckets(snap.cumulative.size());
      for (size_t i = 0; i < buckets.size(); ++i)
        buckets[i] = snap.cumulative[i] - (i > 0 ? snap.cumulative[i - 1] : 0);
      if (sent.buckets.size() != buckets.size()) sent.buckets.assign(buckets.size(), 0);
      if (buckets == sent.buckets) continue;
      updates.U32(sent.id);
      updates.U8(static_cast<uint8_t>(m->kind));
      updates.U32(static_cast<uint32_t>(buckets.size()));
      for (size_t i = 0; i < buckets.size(); ++i) updates.U64(buckets[i] - sent.buckets[i]);
      updates.F64(snap.sum - sent.sum);
      sent.buckets = std::move(buckets);
      sent.sum = snap.sum;
    }
    ++n;
  }
  if (n == 0) return;
  Writer frame;
  frame.U32(n);
  frame.body() += updates.body();
  (void)channel_->Send(FrameType::kMetricUpdate, frame.body());
}

int32_t SinkDeferred(Delivery* d, const HandlerReply& reply) {
  return g_child == nullptr ? -1 : g_child->Complete(d, reply);
}

}  // namespace
}  // namespace foxworker::isolation

#if defined(__SANITIZE_ADDRESS__)
extern "C" __attribute__((visibility("default"))) int __lsan_is_turned_off() {
  return foxworker::isolation::g_ptrace_denied ? 1 : 0;
}
#endif

int main() {
  foxworker::PinLocalTimeZone();
  google::InitGoogleLogging("foxworker-child");
  signal(SIGPIPE, SIG_IGN);
  foxworker::isolation::Channel channel(foxworker::isolation::kChannelFd);
  // Lines go to the daemon through the sink only: no log files, nothing on
  // standard error but a FATAL's (whose process dies anyway).
  FLAGS_logtostderr = false;
  FLAGS_stderrthreshold = google::GLOG_FATAL;
  for (int sev = google::GLOG_INFO; sev < google::NUM_SEVERITIES; ++sev)
    google::SetLogDestination(sev, "");
  foxworker::isolation::ChannelLogSink sink(&channel);
  google::AddLogSink(&sink);
  foxworker::isolation::Child child(&channel);
  foxworker::isolation::g_child = &child;
  return child.Run();
}
