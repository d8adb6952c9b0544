// LocalBackend's SQLite thread: the only code that touches its connection.

#include <dirent.h>
#include <fcntl.h>
#include <glog/logging.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <utility>

#include "daemon/backends/local/local_backend.h"
#include "daemon/backends/local/local_source.h"
#include "daemon/base/clock.h"
#include "daemon/base/crash_stack.h"
#include "daemon/base/liveness.h"

namespace foxworker {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// How often a backend with idle sources asks SQLite whether another process
// committed: soon after the last change, then less often (a wake-up costs
// more CPU than the question).
constexpr milliseconds kMinDataVersionInterval{2};
constexpr milliseconds kMaxDataVersionInterval{20};
constexpr milliseconds kMinBackoff{50};
constexpr milliseconds kMaxBackoff{5000};

// A turn's SQLite calls may wait this long for another process's lock (the
// store's busy timeout) before they give up.
constexpr milliseconds kStoreCallGrace{5000};  // LocalStoreOptions::busy_timeout

// Files up to this size are checked (PRAGMA quick_check at open,
// integrity_check to explain a lost row or to see a repair): about a second
// warm and ten cold on the development machine. Larger ones are not: a check
// could outlast systemd's start timeout; damage there is found when a
// statement reads it.
constexpr uint64_t kMaxCheckedBytes = uint64_t{256} << 20;

// A check that reads every page (PRAGMA quick_check) may take this long
// before the watchdog counts the thread as stuck (about 20 GB at the
// 200-300 MB/s quick_check reads on one core).
constexpr milliseconds kScanGrace{60000};

// The WAL is kept small below kSmallWalBelow of free space and normal again
// above kNormalWalAbove; free space is looked at every kSpaceCheckInterval.
constexpr uint64_t kSmallWalBelow = uint64_t{64} << 20;
constexpr uint64_t kNormalWalAbove = uint64_t{256} << 20;
constexpr milliseconds kSpaceCheckInterval{5000};
// How often the path is compared with the open file (deleted, replaced).
constexpr milliseconds kFileCheckInterval{1000};

// At most one integrity_check per this interval to explain outcomes whose
// job row is gone.
constexpr milliseconds kLostCheckInterval{10000};

milliseconds AtLeast(milliseconds d, milliseconds floor) { return std::max(d, floor); }

std::string Seconds(Clock::duration d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1fs", std::chrono::duration<double>(d).count());
  return buf;
}

std::string MiB(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  return buf;
}

// Bytes an unprivileged writer may still use on the file system of `path`;
// nullopt when unknown.
std::optional<uint64_t> FreeBytes(const std::string& path) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  struct statvfs vfs;
  if (::statvfs(dir.c_str(), &vfs) != 0) return std::nullopt;
  return static_cast<uint64_t>(vfs.f_bavail) * static_cast<uint64_t>(vfs.f_frsize);
}

// Whether the file system holding `path` is read-only now: mounted ro, or
// (ext4 after errors=remount-ro in recent kernels) marked emergency_ro, which
// statvfs does not show. An fsync failing there reads as a plain I/O error.
bool FileSystemReadOnly(const std::string& path) {
  std::error_code ec;
  std::filesystem::path dir = std::filesystem::canonical(
      std::filesystem::absolute(path).parent_path(), ec);
  if (ec) return false;
  struct statvfs vfs;
  if (::statvfs(dir.c_str(), &vfs) == 0 && (vfs.f_flag & ST_RDONLY) != 0) return true;
  // mountinfo: id parent major:minor root mount-point options ... - type source super-options
  FILE* f = std::fopen("/proc/self/mountinfo", "r");
  if (f == nullptr) return false;
  std::string best, best_opts;
  char line[4096];
  const std::string d = dir.string();
  while (std::fgets(line, sizeof line, f) != nullptr) {
    char mnt[2048], opts[1024];
    if (std::sscanf(line, "%*s %*s %*s %*s %2047s %1023s", mnt, opts) != 2) continue;
    std::string m = mnt;
    bool under = d == m || m == "/" || (d.size() > m.size() && d.compare(0, m.size(), m) == 0 &&
                                       d[m.size()] == '/');
    if (!under || m.size() < best.size()) continue;
    best = m;
    const char* sep = std::strstr(line, " - ");
    best_opts = std::string(opts) + "," + (sep != nullptr ? sep + 3 : "");
  }
  std::fclose(f);
  return best_opts.find("emergency_ro") != std::string::npos ||
         best_opts.rfind("ro,", 0) == 0 || best_opts.find(",ro,") != std::string::npos;
}

// The size of the file (with its WAL), 0 when unknown.
uint64_t FileBytes(const std::string& path) {
  uint64_t total = 0;
  struct stat st;
  if (::stat(path.c_str(), &st) == 0) total += static_cast<uint64_t>(st.st_size);
  if (::stat((path + "-wal").c_str(), &st) == 0) total += static_cast<uint64_t>(st.st_size);
  return total;
}

// "/proc/PID/fd/N" of this process's descriptor of the deleted `path`, or "".
std::string DeletedFileDescriptor(const std::string& path) {
  const std::string wanted = std::filesystem::absolute(path).lexically_normal().string() +
                             " (deleted)";
  // open() then fdopendir(), not opendir(): ThreadSanitizer sees a
  // descriptor created by open() but not the one opendir() opens inside
  // libc, and took closedir() of a reused number for a race with libevent's
  // last epoll_ctl on the socket that had it before.
  const int fd = ::open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return "";
  DIR* dir = ::fdopendir(fd);
  if (dir == nullptr) {
    ::close(fd);
    return "";
  }
  std::string found;
  while (dirent* e = ::readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    std::string link = std::string("/proc/self/fd/") + e->d_name;
    char target[4096];
    ssize_t n = ::readlink(link.c_str(), target, sizeof target - 1);
    if (n <= 0) continue;
    if (std::string(target, static_cast<size_t>(n)) == wanted) {
      found = "/proc/" + std::to_string(::getpid()) + "/fd/" + e->d_name;
      break;
    }
  }
  ::closedir(dir);
  return found;
}

}  // namespace

void LocalBackend::Run(std::promise<Status>* started) {
  InstallThreadCrashStack();
  thread_id_.store(std::this_thread::get_id());
  Heartbeat heartbeat("backend local " + name_ + ": I/O");
  LocalStoreOptions store_options;
  store_options.path = options_.path;
  store_options.durability = options_.durability;
  auto store = LocalStore::Open(std::move(store_options));
  if (!store.ok()) {
    started->set_value(store.status());
    return;
  }
  store_ = std::move(store).value();
  heartbeat_ = &heartbeat;
  CheckAtOpen();
  if (auto dv = store_->DataVersion(); dv.ok()) data_version_ = *dv;
  if (auto paused = store_->PausedQueues(); paused.ok()) paused_queues_ = std::move(*paused);
  // Before anything is claimed. A corrupt file is left alone: those jobs
  // come back by lease expiry once the file is sound again.
  if (!Blocked()) RecoverPreviousRun();
  TimePoint now = Clock::now();
  CheckFile(now);
  next_renew_ = now + AtLeast(options_.lease / 3, milliseconds(1));
  next_recover_ = now;  // jobs of owners that died before we started
  next_purge_ = now;
  next_poll_ = now + AtLeast(options_.poll_interval, milliseconds(1));
  next_data_version_check_ = now;
  {
    std::lock_guard<std::mutex> l(mu_);
    interruptible_ = store_.get();
  }
  LOG(INFO) << "local backend " << name_ << ": opened " << options_.path << " (durability "
            << (options_.durability == Durability::kFull ? "full" : "normal") << ", owner "
            << owner_ << ")";
  started->set_value(Status::Ok());

  std::vector<SettleOp> settles;
  std::vector<EnqueueOp*> enqueues;
  SourceList sources;
  bool more = false;
  for (;;) {
    {
      std::unique_lock<std::mutex> l(mu_);
      auto ready = [&] {
        return stop_requested_ || kicked_ || !pending_settles_.empty() ||
               !pending_enqueues_.empty();
      };
      if (!more && !ready()) WaitUntilBeating(cv_, l, NextWakeupLocked(), ready, heartbeat);
      if (stop_requested_) break;
      kicked_ = false;
      TakePendingLocked(static_cast<size_t>(std::max(options_.batch_size, 1)), &settles, &enqueues);
      std::erase_if(sources_, [](const auto& s) { return s->closed.load(); });
      sources = sources_;
    }
    heartbeat.Beat(kStoreCallGrace);
    now = Clock::now();
    more = false;
    // Corrupt or deleted (known, or found by the checks and reads here):
    // nothing is written.
    bool park = Blocked() && !TryRecover();
    if (!park) {
      CheckFile(now);
      DetectNewWork(sources, now);
      park = Blocked();
    }
    if (park) {
      // Enqueues fail at once (their callers get the error instead of
      // waiting); settlements wait in memory and are applied once the file
      // is usable again.
      std::string why;
      {
        std::lock_guard<std::mutex> l(mu_);
        why = state_.last_error;
        pending_settles_.insert(pending_settles_.begin(), std::make_move_iterator(settles.begin()),
                                std::make_move_iterator(settles.end()));
      }
      settles.clear();
      FinishEnqueues(enqueues, Status::IoError(why));
      backoff_ = std::clamp(backoff_ * 2, kMinBackoff, kMaxBackoff);
      std::unique_lock<std::mutex> l(mu_);
      WaitUntilBeating(
          cv_, l, Clock::now() + backoff_,
          [&] { return stop_requested_ || !pending_enqueues_.empty(); }, heartbeat);
      continue;
    }
    if (fault_ == StorageFault::kDiskFull) {
      // Space the WAL holds is given back only by a checkpoint that truncates
      // it; SQLite's own checkpoints keep the file at its size.
      (void)store_->CheckpointTruncate();
    }
    if (!GroupCommit(sources, settles, enqueues, /*flush_only=*/false, now, &more)) {
      std::unique_lock<std::mutex> l(mu_);
      WaitUntilBeating(cv_, l, Clock::now() + backoff_, [&] { return stop_requested_; }, heartbeat);
    }
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    sources = sources_;
  }
  FlushForStop(sources);

  std::vector<EnqueueOp*> orphans;
  {
    // From here on Enqueue refuses, so nothing new can be left waiting.
    std::lock_guard<std::mutex> l(mu_);
    interruptible_ = nullptr;
    orphans.swap(pending_enqueues_);
    finished_ = true;
  }
  done_cv_.notify_all();
  FinishEnqueues(orphans, Status::Unavailable("local backend " + name_ + ": stopped"));
  store_.reset();
  heartbeat_ = nullptr;
  LOG(INFO) << "local backend " << name_ << ": closed " << options_.path;
}

void LocalBackend::TakePendingLocked(size_t max_settles, std::vector<SettleOp>* settles,
                                     std::vector<EnqueueOp*>* enqueues) {
  if (pending_settles_.size() <= max_settles) {
    settles->swap(pending_settles_);
    pending_settles_.clear();
  } else {
    auto end = pending_settles_.begin() + static_cast<std::ptrdiff_t>(max_settles);
    settles->assign(std::make_move_iterator(pending_settles_.begin()),
                    std::make_move_iterator(end));
    pending_settles_.erase(pending_settles_.begin(), end);
  }
  enqueues->swap(pending_enqueues_);
  pending_enqueues_.clear();
}

bool LocalBackend::WaitingForWork(const SourceList& sources) const {
  for (const auto& s : sources) {
    if ((s->idle || IsPaused(s->options.source)) && s->held < s->options.prefetch) return true;
  }
  return false;
}

LocalBackend::TimePoint LocalBackend::NextWakeupLocked() const {
  TimePoint next = std::min(next_renew_, next_recover_);
  if (options_.retention.count() > 0) next = std::min(next, next_purge_);
  if (WaitingForWork(sources_)) {
    next = std::min({next, next_poll_, next_data_version_check_});
  }
  return next;
}

bool LocalBackend::IsPaused(const std::string& queue) const {
  return std::find(paused_queues_.begin(), paused_queues_.end(), queue) != paused_queues_.end();
}

void LocalBackend::DetectNewWork(const SourceList& sources, TimePoint now) {
  bool probe = false;
  if (now >= next_poll_) {
    probe = true;
    next_poll_ = now + AtLeast(options_.poll_interval, milliseconds(1));
  }
  if (WaitingForWork(sources) && now >= next_data_version_check_) {
    auto dv = store_->DataVersion();
    if (dv.ok() && *dv != data_version_) {
      data_version_ = *dv;
      probe = true;
      data_version_interval_ = kMinDataVersionInterval;
    } else {
      data_version_interval_ = std::min(data_version_interval_ * 2, kMaxDataVersionInterval);
    }
    next_data_version_check_ =
        now + std::min(data_version_interval_, AtLeast(options_.poll_interval, milliseconds(1)));
  }
  if (!probe) return;

  // A failed read is a storage fault like a failed write (logged once per
  // change of state, not once per poll).
  if (Status st = RefreshPaused(sources); !st.ok()) {
    RecordFailure(st);
    return;
  }
  for (const auto& s : sources) {
    if (!s->idle || IsPaused(s->options.source)) continue;
    auto due = store_->HasDueJobs(s->options.source);
    if (!due.ok()) {
      RecordFailure(due.status());
      return;
    } else if (*due) {
      s->idle = false;
    }
  }
}

Status LocalBackend::RefreshPaused(const SourceList& sources) {
  auto paused = store_->PausedQueues();
  if (!paused.ok()) return paused.status();
  if (*paused == paused_queues_) return Status::Ok();
  paused_queues_ = std::move(*paused);
  for (const auto& s : sources) {
    // Paused while holding jobs nobody started: hand them back.
    if (IsPaused(s->options.source)) SubmitSettlements(TakeUnstarted(s, /*stop=*/false));
  }
  return Status::Ok();
}

bool LocalBackend::GroupCommit(const SourceList& sources, std::vector<SettleOp>& settles,
                               std::vector<EnqueueOp*>& enqueues, bool flush_only, TimePoint now,
                               bool* more) {
  const bool renew = !flush_only && now >= next_renew_;
  const bool recover = !flush_only && now >= next_recover_;
  const bool purge = !flush_only && options_.retention.count() > 0 && now >= next_purge_;
  const int batch = std::max(options_.batch_size, 1);

  // Work that makes a source's queue due again.
  auto wake_queue = [&](const std::string& queue) {
    for (const auto& s : sources) {
      if (s->options.source == queue) s->idle = false;
    }
  };
  for (const EnqueueOp* op : enqueues) {
    for (const NewJob& job : op->jobs) wake_queue(job.queue);
  }
  for (const SettleOp& op : settles) {
    if (op.kind == Outcome::Kind::kRelease ||
        (op.kind == Outcome::Kind::kRetry && op.delay.count() <= 0)) {
      op.source->idle = false;
    }
  }

  // Which sources claim how many: up to prefetch - held, batch_size in all.
  std::vector<ClaimPlan> plans;
  auto plan_claims = [&] {
    if (flush_only) return;
    int budget = batch;
    for (const auto& s : sources) {
      if (s->idle || IsPaused(s->options.source) || s->closed.load()) continue;
      {
        std::lock_guard<std::mutex> l(s->mu);
        if (!s->started || s->stopped) continue;
      }
      int64_t capacity = s->options.prefetch - s->held;
      if (capacity <= 0) continue;
      if (budget <= 0) {
        *more = true;
        continue;
      }
      int want = static_cast<int>(std::min<int64_t>(capacity, budget));
      if (want < capacity) *more = true;
      budget -= want;
      plans.push_back({s, want});
    }
  };

  if (settles.empty() && enqueues.empty() && !renew && !recover && !purge) {
    plan_claims();
    if (plans.empty()) return true;
  }

  std::vector<const SettleOp*> lost;  // settlements whose lease was gone
  std::vector<ClaimResult> claimed;
  const int64_t changes_before = store_->TotalChanges();
  Status st = store_->BeginWrite();
  for (size_t i = 0; st.ok() && i < enqueues.size(); ++i) {
    auto r = store_->EnqueueBatch(enqueues[i]->jobs);
    if (r.ok()) {
      enqueues[i]->results = std::move(r).value();
    } else {
      st = r.status();
    }
  }
  for (const SettleOp& op : settles) {
    if (!st.ok()) break;
    Result<bool> applied = false;
    switch (op.kind) {
      case Outcome::Kind::kAck:
        applied = store_->Ack(op.id, op.token, options_.retention);
        break;
      case Outcome::Kind::kRetry:
        applied = store_->Retry(op.id, op.token, op.delay, op.reason);
        break;
      case Outcome::Kind::kDeadLetter:
        applied = store_->Dead(op.id, op.token, op.reason);
        break;
      case Outcome::Kind::kRelease:
        applied = store_->Release(op.id, op.token);
        break;
    }
    if (!applied.ok()) {
      st = applied.status();
    } else if (!*applied && op.kind != Outcome::Kind::kRelease) {
      lost.push_back(&op);  // (a lost release is harmless: that attempt never ran)
    }
  }
  int64_t recovered = 0;
  if (st.ok() && recover) {
    auto r = store_->RecoverExpiredLeases();
    if (r.ok()) {
      recovered = *r;
    } else {
      st = r.status();
    }
  }
  if (st.ok() && renew) {
    if (auto r = store_->RenewLeases(owner_, options_.lease); !r.ok()) st = r.status();
  }
  if (st.ok() && purge) {
    if (auto r = store_->PurgeDone(options_.retention); !r.ok()) st = r.status();
  }
  if (st.ok()) {
    if (recovered > 0) {
      for (const auto& s : sources) s->idle = false;
    }
    plans.clear();
    plan_claims();
    if (!plans.empty()) {
      // Read under the write lock, so no claim follows a committed pause.
      st = RefreshPaused(sources);
      plans.clear();
      if (st.ok()) plan_claims();
    }
    for (const ClaimPlan& plan : plans) {
      auto r = store_->Claim(plan.source->options.source, owner_, plan.want, options_.lease,
                             plan.source->options.max_attempts);
      if (!r.ok()) {
        st = r.status();
        break;
      }
      claimed.push_back(std::move(r).value());
    }
  }
  if (st.ok() && fault_ != StorageFault::kOk && store_->TotalChanges() == changes_before) {
    // A commit that wrote no page proves nothing about a full or read-only
    // file: write one, lest an idle turn report "writable again" and the
    // next real write fail again.
    st = store_->ProbeWrite();
  }
  if (st.ok()) st = store_->Commit();

  if (!st.ok()) {
    store_->Rollback();
    RecordFailure(st);
    if (fault_ == StorageFault::kDiskFull) {
      // Give back what the WAL holds, and keep it small from now on.
      (void)store_->CheckpointTruncate();
      if (!store_->small_wal() && store_->SetSmallWal(true).ok()) {
        LOG(INFO) << "local backend " << name_ << ": keeping the WAL of " << options_.path
                  << " small (a checkpoint every 64 pages, truncated at each restart) until "
                  << MiB(kNormalWalAbove) << " are free";
      }
    }
    FinishEnqueues(enqueues, st);
    // Settlements are idempotent (guarded by the claim token): try again.
    {
      std::lock_guard<std::mutex> l(mu_);
      pending_settles_.insert(pending_settles_.begin(), std::make_move_iterator(settles.begin()),
                              std::make_move_iterator(settles.end()));
    }
    settles.clear();
    return false;
  }
  RecordSuccess();
  if (!enqueues.empty()) enqueue_commits_.fetch_add(1, std::memory_order_relaxed);

  if (renew) next_renew_ = now + AtLeast(options_.lease / 3, milliseconds(1));
  if (recover) {
    next_recover_ = now + std::clamp(options_.lease / 3, milliseconds(10), milliseconds(1000));
    if (recovered > 0) {
      LOG(INFO) << "local backend " << name_ << ": made " << recovered
                << " job(s) available again whose lease had expired";
    }
  }
  if (purge) {
    next_purge_ = now + std::clamp(options_.retention, milliseconds(1000), milliseconds(60000));
  }
  FinishEnqueues(enqueues, Status::Ok());
  if (!lost.empty()) ExplainLost(lost);
  for (const SettleOp& op : settles) --op.source->held;
  settles.clear();
  for (size_t i = 0; i < claimed.size(); ++i) Deliver(plans[i], claimed[i]);
  return true;
}

void LocalBackend::Deliver(ClaimPlan& plan, ClaimResult& claimed) {
  SourceState& s = *plan.source;
  for (int64_t id : claimed.dead_lettered) {
    LOG(WARNING) << "local backend " << name_ << ": job " << id << " on queue " << s.options.source
                 << " dead-lettered at claim: its attempts exceed "
                 << "max_attempts " << s.options.max_attempts
                 << " (earlier attempts crashed the worker or timed out)";
  }
  size_t got = claimed.jobs.size() + claimed.dead_lettered.size();
  if (got < static_cast<size_t>(plan.want)) s.idle = true;
  if (claimed.jobs.empty()) return;

  s.held += static_cast<int64_t>(claimed.jobs.size());
  uint64_t received = MonotonicNs();
  std::vector<std::unique_ptr<Delivery>> batch;
  batch.reserve(claimed.jobs.size());
  for (ClaimedJob& job : claimed.jobs) {
    auto d = std::make_unique<Delivery>();
    d->msg.id = std::to_string(job.id);
    d->msg.payload = std::move(job.payload);
    d->msg.props = std::move(job.props);
    d->msg.headers = std::move(job.headers);
    d->msg.enqueued_at_ms = job.enqueued_at_ms;
    d->msg.attempt = job.attempts;
    d->queue = &s.options.queue;
    d->tag = static_cast<uint64_t>(job.id);
    d->generation = job.claim_token;
    d->received_ns = received;
    batch.push_back(std::move(d));
  }
  std::function<void()> wake;
  std::vector<SettleOp> release;
  {
    std::lock_guard<std::mutex> l(s.mu);
    if (s.stopped) {
      for (const auto& d : batch) release.push_back(ReleaseOp(plan.source, *d));
    } else {
      for (auto& d : batch) s.buffer.push_back(std::move(d));
      wake = s.RefilledLocked();
    }
  }
  SubmitSettlements(std::move(release));
  if (wake) wake();
}

void LocalBackend::FinishEnqueues(std::vector<EnqueueOp*>& enqueues, const Status& status) {
  if (enqueues.empty()) return;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (EnqueueOp* op : enqueues) {
      if (!status.ok()) op->status = status;
      op->done = true;
    }
  }
  done_cv_.notify_all();
  enqueues.clear();
}

void LocalBackend::FlushForStop(const SourceList& sources) {
  // Jobs that were never handed out go back first, so another daemon can take
  // them right away.
  for (const auto& s : sources) SubmitSettlements(TakeUnstarted(s, /*stop=*/true));
  std::vector<SettleOp> settles;
  std::vector<EnqueueOp*> enqueues;
  for (;;) {
    TimePoint deadline;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (abandon_) return;
      TakePendingLocked(pending_settles_.size(), &settles, &enqueues);
      deadline = stop_deadline_;
    }
    if (settles.empty() && enqueues.empty()) return;
    if (Blocked()) {
      LOG(WARNING) << "local backend " << name_ << ": " << settles.size()
                   << " outcome(s) not written at stop: " << options_.path << " is "
                   << StorageFaultName(fault_)
                   << "; those jobs run again once the file is usable (their leases expire)";
      FinishEnqueues(enqueues, Status::IoError("local backend " + name_ + ": " +
                                               options_.path + " is " +
                                               StorageFaultName(fault_)));
      return;
    }
    bool more = false;
    if (GroupCommit(sources, settles, enqueues, /*flush_only=*/true, Clock::now(), &more)) {
      continue;
    }
    if (Clock::now() >= deadline) return;
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait_until(l, std::min(deadline, Clock::now() + kMinBackoff), [&] { return abandon_; });
  }
}

void LocalBackend::RecordFailure(const Status& status, std::optional<StorageFault> fault) {
  StorageFault f = fault ? *fault : (store_ ? store_->last_fault() : StorageFault::kOther);
  if (f == StorageFault::kOk) f = StorageFault::kOther;
  if ((f == StorageFault::kIoError || f == StorageFault::kOther) &&
      FileSystemReadOnly(options_.path)) {
    f = StorageFault::kReadOnly;
  }
  backoff_ = std::clamp(backoff_ * 2, kMinBackoff, kMaxBackoff);
  const StorageFault was = fault_;
  if (was == StorageFault::kOk) fault_since_ = Clock::now();
  fault_ = f;
  {
    std::lock_guard<std::mutex> l(mu_);
    state_.connected = false;
    ++state_.consecutive_failures;
    state_.last_error = status.message();
    state_.storage = StorageFaultName(f);
    if (was == StorageFault::kOk) ++state_.storage_faults;
  }
  if (f == was) return;  // one line per change of state, not per retry
  if (f == StorageFault::kCorrupt) {
    if (auto dv = store_->DataVersion(); dv.ok()) fault_data_version_ = *dv;
  }
  std::string extra;
  if (f == StorageFault::kDeleted) {
    // Everything committed goes into the deleted file itself, so that a copy
    // of it is complete, and the WAL is left empty, so that a file put at
    // the path later cannot pick up this file's frames from it.
    (void)store_->CheckpointTruncate();
  }
  if (f == StorageFault::kDeleted && store_->CheckPath() == FileIdentity::kMissing) {
    std::string fd = DeletedFileDescriptor(options_.path);
    if (!fd.empty()) {
      extra = "; its jobs are still readable through " + fd + ": copy it (cp " + fd + " " +
              options_.path + ".saved) before restarting the daemon";
    }
  }
  std::string cause;
  if (store_ != nullptr && !fault && store_->last_error_code() != 0) {
    // SQLite's code and the system's errno: what the state was read from.
    cause = " [SQLite error " + std::to_string(store_->last_error_code());
    if (store_->last_system_errno() != 0) {
      cause += ", errno " + std::to_string(store_->last_system_errno()) + " " +
               std::strerror(store_->last_system_errno());
    }
    cause += "]";
  }
  if (f == StorageFault::kReadOnly && store_ != nullptr && store_->last_system_errno() != EROFS) {
    cause += " (the file system is read-only now)";
  }
  LOG(ERROR) << "local backend " << name_ << ": storage " << StorageFaultName(f)
             << (was == StorageFault::kOk ? "" : std::string(" (was ") + StorageFaultName(was) + ")")
             << ": " << status.message() << cause << "; " << StorageFaultAdvice(f) << extra;
}

void LocalBackend::RecordSuccess(const char* how) {
  if (fault_ == StorageFault::kOk) {
    backoff_ = milliseconds(0);
    return;
  }
  const StorageFault was = fault_;
  fault_ = StorageFault::kOk;
  backoff_ = milliseconds(0);
  uint64_t failures;
  {
    std::lock_guard<std::mutex> l(mu_);
    failures = state_.consecutive_failures;
    state_.connected = true;
    state_.consecutive_failures = 0;
    state_.storage = StorageFaultName(StorageFault::kOk);
  }
  LOG(WARNING) << "local backend " << name_ << ": storage ok: " << options_.path << " "
               << (how != nullptr ? how : "is writable again") << " after "
               << Seconds(Clock::now() - fault_since_) << " in state " << StorageFaultName(was)
               << " (" << failures << " failed attempt(s))";
}

void LocalBackend::BeatForScan() {
  if (heartbeat_ != nullptr) heartbeat_->Beat(kScanGrace);
}

void LocalBackend::CheckAtOpen() {
  if (uint64_t bytes = FileBytes(options_.path); bytes > kMaxCheckedBytes) {
    LOG(INFO) << "local backend " << name_ << ": " << options_.path << " is " << MiB(bytes)
              << ", more than " << MiB(kMaxCheckedBytes)
              << ": not checked with PRAGMA quick_check at open (damage is reported when a"
              << " statement reads it)";
    return;
  }
  BeatForScan();
  const TimePoint start = Clock::now();
  auto check = store_->QuickCheck();
  const auto took = Clock::now() - start;
  if (took > std::chrono::seconds(1)) {
    LOG(INFO) << "local backend " << name_ << ": PRAGMA quick_check of " << options_.path
              << " took " << Seconds(took);
  }
  if (!check.ok()) {
    RecordFailure(check.status());
  } else if (!check->empty()) {
    RecordFailure(Status::IoError("local store " + options_.path +
                                  ": PRAGMA quick_check at open: " + *check),
                  StorageFault::kCorrupt);
  }
}

bool LocalBackend::TryRecover() {
  // A deleted file does not come back: reopening a file put at the path
  // while this connection (and its WAL) is open could mix the old WAL into
  // the new file, and creating an empty one would drop the jobs silently.
  // A restart opens whatever is at the path then (see operations.md).
  if (fault_ != StorageFault::kCorrupt) return false;
  // A damaged file heals only when someone changes it (REINDEX, a delete
  // of the damaged rows with sqlite3): check again only after a commit by
  // another connection.
  auto dv = store_->DataVersion();
  if (dv.ok() && *dv == fault_data_version_) return false;
  if (dv.ok()) fault_data_version_ = *dv;
  if (FileBytes(options_.path) > kMaxCheckedBytes) return false;  // a restart checks on use
  BeatForScan();
  auto check = store_->QuickCheck(/*full=*/true);
  if (!check.ok() || !check->empty()) return false;
  RecordSuccess("passes PRAGMA integrity_check again");
  return true;
}

void LocalBackend::ExplainLost(const std::vector<const SettleOp*>& lost) {
  auto prefix = [&](const SettleOp* op) {
    return "local backend " + name_ + ": job " + std::to_string(op->id) + " on queue " +
           op->source->options.source + ": " + OutcomeKindName(op->kind) + " not applied: ";
  };
  std::vector<const SettleOp*> gone;
  for (const SettleOp* op : lost) {
    auto holder = store_->JobHolder(op->id);
    if (!holder.ok()) {
      RecordFailure(holder.status());
      if (Blocked()) return;
      gone.push_back(op);
      continue;
    }
    if (!holder->has_value()) {
      gone.push_back(op);
      continue;
    }
    const JobHolderInfo& h = **holder;
    std::string now = h.state == JobState::kRunning
                          ? "it is running for " + (h.owner == owner_ ? "this daemon" : h.owner)
                          : std::string("it is ") + JobStateName(h.state) + " now";
    LOG(WARNING) << prefix(op) << "its lease expired and it was claimed again (" << now
                 << "), so it may run twice";
  }
  if (gone.empty()) return;
  std::sort(gone.begin(), gone.end(),
            [](const SettleOp* a, const SettleOp* b) { return a->id < b->id; });
  // No row with that id: another daemon claimed and acked it after this
  // one's lease expired, someone deleted it, or the file lost it. Only a
  // check tells the last apart.
  const TimePoint now = Clock::now();
  if (now >= next_lost_check_ && FileBytes(options_.path) <= kMaxCheckedBytes) {
    next_lost_check_ = now + kLostCheckInterval;
    BeatForScan();
    // integrity_check, not quick_check: a leaf that lost rows is a sound
    // b-tree, only the indexes still pointing at the rows tell.
    auto check = store_->QuickCheck(/*full=*/true);
    std::string findings = check.ok() ? *check : check.status().message();
    if (!findings.empty() && (check.ok() || store_->last_fault() == StorageFault::kCorrupt)) {
      std::string ids;
      for (size_t i = 0; i < gone.size() && i < 20; ++i) {
        ids += (i ? ", " : "") + std::to_string(gone[i]->id);
      }
      RecordFailure(Status::IoError("local store " + options_.path + ": " +
                                    std::to_string(gone.size()) +
                                    " outcome(s) found no job row (job " + ids +
                                    ") and PRAGMA integrity_check finds the file damaged: " +
                                    findings),
                    StorageFault::kCorrupt);
      return;
    }
  }
  for (const SettleOp* op : gone) {
    LOG(WARNING) << prefix(op) << "the job is no longer in the file (its lease expired and"
                 << " another daemon claimed and finished it, or it was deleted by hand), so it"
                 << " may have run twice";
  }
}

void LocalBackend::CheckFile(TimePoint now) {
  if (now < next_file_check_) return;
  next_file_check_ = now + kFileCheckInterval;
  // SQLite notices a deleted or replaced file only when it writes a page
  // (SQLITE_READONLY_DBMOVED); an idle daemon would not notice for hours.
  if (!Blocked()) {
    switch (store_->CheckPath()) {
      case FileIdentity::kSame:
        break;
      case FileIdentity::kMissing:
        RecordFailure(Status::IoError("local store " + options_.path +
                                      ": the file was deleted (nothing is at its path now)"),
                      StorageFault::kDeleted);
        return;
      case FileIdentity::kOther:
        RecordFailure(Status::IoError("local store " + options_.path +
                                      ": another file took its place at its path"),
                      StorageFault::kDeleted);
        return;
    }
  }
  if (now < next_space_check_) return;
  next_space_check_ = now + kSpaceCheckInterval;
  auto free = FreeBytes(options_.path);
  if (!free) return;
  if (!store_->small_wal() && *free < kSmallWalBelow) {
    if (store_->SetSmallWal(true).ok()) {
      LOG(INFO) << "local backend " << name_ << ": " << MiB(*free) << " free on the file system of "
                << options_.path << ": keeping its WAL small (a checkpoint every 64 pages,"
                << " truncated at each restart) until " << MiB(kNormalWalAbove) << " are free";
    }
  } else if (store_->small_wal() && *free >= kNormalWalAbove && fault_ == StorageFault::kOk) {
    if (store_->SetSmallWal(false).ok()) {
      LOG(INFO) << "local backend " << name_ << ": " << MiB(*free) << " free on the file system of "
                << options_.path << ": the WAL may grow to its usual size again";
    }
  }
}

}  // namespace foxworker
