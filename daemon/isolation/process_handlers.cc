#include "daemon/isolation/process_handlers.h"

#include <fcntl.h>
#include <glog/logging.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>

#include "daemon/base/clock.h"
#include "daemon/core/consumer.h"
#include "daemon/plugins/host_api.h"

extern char** environ;

namespace foxworker::isolation {
namespace {

// How long a child may take to load the plugin and answer READY.
constexpr int kReadyTimeoutMs = 30000;
// Between SIGTERM and SIGKILL for a child past its grace.
constexpr uint64_t kTermToKillNs = 1000000000ull;
// How long a child may take to exit after SHUTDOWN (the plugin's shutdown
// hook) before it is terminated.
constexpr uint64_t kShutdownWaitNs = 10000000000ull;
// A consumer pass's RUN frames are written at its end, or once this much
// is queued for one child.
constexpr size_t kFlushAtBytes = 64 * 1024;
// A crashed child is started again after this, doubling per crash in a row
// up to kMaxRestartDelayNs (a crash loop must not spin).
constexpr uint64_t kFirstRestartDelayNs = 100000000ull;
constexpr uint64_t kMaxRestartDelayNs = 10000000000ull;

std::string SignalName(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  return abbrev != nullptr ? std::string("SIG") + abbrev : "signal " + std::to_string(sig);
}

// Hands `d`, which no child started, back to its consumer: to the backend,
// no attempt charged.
void HandBack(Delivery* d, std::string_view why) {
  const HandlerReply release{Verdict::kRelease, FOXW_RETRY, why, 0};
  if (d->consumer != nullptr) d->consumer->Complete(d, release);
}

// A process's resident set, in bytes (0 when it cannot be read).
uint64_t ResidentBytes(pid_t pid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/statm", static_cast<int>(pid));
  FILE* f = fopen(path, "re");
  if (f == nullptr) return 0;
  unsigned long long size = 0, resident = 0;
  const int n = fscanf(f, "%llu %llu", &size, &resident);
  fclose(f);
  return n == 2 ? resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE)) : 0;
}

// The call a child's syscall filter denied when SIGSYS ended it, as its
// note on `note_fd` tells (syscall_action: kill), or nullopt.
std::optional<std::string> DenialOf(int status, int note_fd, pid_t pid) {
  if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGSYS || note_fd < 0) return std::nullopt;
  std::optional<DenialNote> note = ReadDenialNote(note_fd, pid);
  if (!note) return std::nullopt;
  return DescribeDenial(*note);
}

}  // namespace

std::string ChildProgramPath() {
  if (const char* env = std::getenv("FOXWORKER_CHILD"); env != nullptr && *env != '\0') return env;
  char self[4096];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n > 0) {
    std::string dir(self, static_cast<size_t>(n));
    dir.resize(dir.rfind('/') + 1);
    const std::string next_to = dir + "foxworker-child";
    if (access(next_to.c_str(), X_OK) == 0) return next_to;
  }
  // The installed one before the build tree's: an installed daemon never
  // runs a developer's build (tests, whose binaries are elsewhere, do).
  if (access(FOXWORKER_CHILD_INSTALL_PATH, X_OK) == 0) return FOXWORKER_CHILD_INSTALL_PATH;
  if (access(FOXWORKER_CHILD_BUILD_PATH, X_OK) == 0) return FOXWORKER_CHILD_BUILD_PATH;
  return FOXWORKER_CHILD_INSTALL_PATH;
}

std::string DescribeChildExit(int status) {
  if (WIFSIGNALED(status)) return SignalName(WTERMSIG(status));
  if (WIFEXITED(status)) return "exit status " + std::to_string(WEXITSTATUS(status));
  return "wait status " + std::to_string(status);
}

struct ProcessChild {
  struct InFlight {
    Delivery* d = nullptr;
    std::string handler;
    // The call it is part of: its first message's id (a batch handler's
    // call runs several messages, one DONE each). The call's last message
    // holds its slot of the child.
    uint64_t call = 0;
    bool holds_slot = true;
    bool cancel_sent = false;
    uint64_t cancelled_at_ns = 0;
    bool term_sent = false;
    uint64_t term_at_ns = 0;
  };
  int index = 0;
  // The generation it belongs to: what it starts with (INIT) and how many
  // messages it runs at once. An in-place change of only the daemon's
  // settings swaps in the new options (with the same INIT), under the
  // set's mu_.
  std::shared_ptr<const ProcessOptions> options;
  int slots = 1;
  pid_t pid = 0;  // 0 until it first started
  // Shared: Submit sends on the channel it picked after letting go of the
  // lock, and a respawn must not destroy it meanwhile (nor may that send
  // reach the new child: the old channel is closed then, and the send fails).
  std::shared_ptr<Channel> channel;
  std::thread reader;
  std::thread output;  // the child's standard output and error, into the log
  // GUARDED_BY(set mu_):
  bool ready = false;
  bool reader_done = false;
  int running = 0;
  uint64_t tasks = 0;
  std::map<uint64_t, InFlight> in_flight;
  uint64_t restart_at_ns = 0;
  int crashes_in_a_row = 0;
  uint64_t started_ns = 0;
  uint64_t restarts = 0;  // of this slot
  uint64_t crashes = 0;
  // Recycling: no new messages; shut down once idle; its exit is no crash.
  bool retiring = false;
  bool shutdown_sent = false;
  std::string retire_reason;
  // The call whose timeout got the child killed (InFlight::call), and why.
  uint64_t killed_for = 0;
  std::string kill_reason;
  // With syscall_action: kill, the read end of the pipe on which the child
  // notes a denied call before SIGSYS ends it (syscall_filter.h); -1 without.
  // Replaced by Spawn, read by Died.
  int note_fd = -1;
  // Of an earlier generation (a reload replaced it): never started again,
  // removed from the set once gone.
  bool replaced = false;
  // The monitor is starting it again (Spawn, without the set's lock): not
  // gone, even though its last process is.
  bool respawning = false;
  // Closing (BeginClose, Abandon): SIGTERM at close_term_at_ns (0: not
  // closing), SIGKILL kTermToKillNs after the SIGTERM.
  uint64_t close_term_at_ns = 0;
  bool close_termed = false;
  uint64_t close_termed_at_ns = 0;
  bool close_killed = false;

  ~ProcessChild() {
    if (note_fd >= 0) close(note_fd);
  }
};

HandlerReply ProcessHandler::Handle(HandlerInstance instance, Delivery& d, char* reason_buf,
                                    size_t reason_cap) const {
  return set_->Submit(instance, name_, d, reason_buf, reason_cap);
}

void ProcessHandler::HandleBatch(HandlerInstance instance, Delivery* const* batch, size_t n,
                                 HandlerReply* replies, char* reason_bufs,
                                 size_t reason_cap) const {
  set_->SubmitBatch(instance, name_, batch, n, replies, reason_bufs, reason_cap);
}

ProcessHandlerSet::ProcessHandlerSet(const LoadedPlugin& plugin, ProcessOptions options)
    : plugin_(plugin),
      queue_(options.queue),
      plugin_name_(options.plugin_name),
      child_path_(options.child_path.empty() ? ChildProgramPath() : options.child_path),
      provider_("plugin " + plugin.name() + " (isolation: process)"),
      options_(std::make_shared<const ProcessOptions>(std::move(options))) {
  for (const foxw_handler_def* def : plugin_.handlers()) {
    handlers_.push_back(
        std::make_unique<ProcessHandler>(this, def->name, def->handle_batch != nullptr));
    views_.push_back(handlers_.back().get());
  }
}

namespace {

// The children of a generation: `options` says how many, and how many
// messages each runs at once.
std::vector<std::unique_ptr<ProcessChild>> MakeChildren(
    const std::shared_ptr<const ProcessOptions>& options) {
  std::vector<std::unique_ptr<ProcessChild>> out;
  for (int i = 0; i < std::max(1, options->processes); ++i) {
    auto c = std::make_unique<ProcessChild>();
    c->index = i;
    c->options = options;
    c->slots = std::max(1, options->slots_per_child);
    out.push_back(std::move(c));
  }
  return out;
}

// Monotonic nanoseconds of a steady_clock time point (MonotonicNs reads
// the same clock).
uint64_t NsOf(std::chrono::steady_clock::time_point t) {
  const auto ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  return ns > 0 ? static_cast<uint64_t>(ns) : 0;
}

std::string JoinPids(const std::vector<int>& pids) {
  std::string out;
  for (int pid : pids) out += (out.empty() ? "" : ", ") + std::to_string(pid);
  return out;
}

}  // namespace

Result<std::unique_ptr<ProcessHandlerSet>> ProcessHandlerSet::Create(const LoadedPlugin& plugin,
                                                                     ProcessOptions options) {
  std::unique_ptr<ProcessHandlerSet> set(new ProcessHandlerSet(plugin, std::move(options)));
  // Not shared with any thread yet: no lock needed to fill it.
  set->children_ = MakeChildren(set->options_);
  for (auto& c : set->children_) {
    Status s = set->Spawn(c.get(), /*restart=*/false);
    if (!s.ok()) return Status::InvalidArgument("queue " + set->queue_ + ": " + s.message());
  }
  set->monitor_ = std::thread([s = set.get()] { s->Monitor(); });
  return set;
}

ProcessHandlerSet::Change::Change(ProcessHandlerSet* set) : set_(set) {}

ProcessHandlerSet::Change::~Change() {
  if (!children.empty()) set_->StopUnused(children);
}

Result<std::unique_ptr<ProcessHandlerSet::Change>> ProcessHandlerSet::PrepareChange(
    ProcessOptions next, bool new_children) {
  std::unique_ptr<Change> change(new Change(this));
  change->options = std::make_shared<const ProcessOptions>(std::move(next));
  if (!new_children) return change;
  // Started beside the running ones, which keep taking messages: nothing
  // sends to these before ApplyChange makes them the set's.
  change->children = MakeChildren(change->options);
  for (auto& c : change->children) {
    Status s = Spawn(c.get(), /*restart=*/false);
    if (!s.ok()) return Status::InvalidArgument("queue " + queue_ + ": " + s.message());
  }
  return change;
}

void ProcessHandlerSet::ApplyChange(std::unique_ptr<Change> change) {
  std::vector<int> old_pids, new_pids;
  int old_running = 0;
  bool hold_ended = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    options_ = change->options;
    if (change->children.empty()) {
      // Only what the daemon applies changed (the plan checked that every
      // child would start the same): the running children stay.
      for (auto& c : children_) c->options = options_;
    } else {
      std::map<int, std::pair<uint64_t, uint64_t>> counts;  // index -> restarts, crashes
      for (auto& c : children_) {
        counts[c->index] = {c->restarts, c->crashes};
        if (c->pid > 0 && !c->reader_done) {
          old_pids.push_back(static_cast<int>(c->pid));
          old_running += c->running;
        }
        // No new message; SHUTDOWN once idle (here or by the monitor).
        c->replaced = true;
        RetireLocked(c.get(), "(replaced by a config reload)");
        if (c->ready && c->running == 0 && !c->shutdown_sent) {
          c->shutdown_sent = true;
          (void)c->channel->Send(FrameType::kShutdown, {});
        }
        replaced_.push_back(std::move(c));
      }
      children_ = std::move(change->children);
      ++generation_;
      for (auto& c : children_) {
        new_pids.push_back(static_cast<int>(c->pid));
        // The slot's counters go on (they are counters): the new process
        // is one more started in its place.
        auto it = counts.find(c->index);
        if (it != counts.end()) {
          c->restarts = it->second.first + 1;
          c->crashes = it->second.second;
        }
      }
      // New children: a crash-loop pause of the old ones ends, the count
      // starts afresh.
      hold_ended = held_;
      EndHoldLocked();
    }
  }
  if (!new_pids.empty())
    LOG(INFO) << "queue " << queue_ << ": " << new_pids.size()
              << " new handler child(ren) (pid " << JoinPids(new_pids)
              << ") take its messages from now on; the " << old_pids.size()
              << " old one(s) (pid " << JoinPids(old_pids) << ") finish the " << old_running
              << " message(s) they run, then exit";
  if (hold_ended) {
    LOG(INFO) << "queue " << queue_ << ": crash-loop pause ended by the new handler children";
    NotifyHold();
  }
  DispatchWaiting(/*flush=*/true);
  monitor_cv_.notify_all();
}

void ProcessHandlerSet::StopUnused(std::vector<std::unique_ptr<Child>>& children) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    const uint64_t term_at = MonotonicNs() + kShutdownWaitNs;
    for (auto& c : children) {
      c->retiring = true;
      c->retire_reason = "(not used: the change that started it was not applied)";
      c->close_term_at_ns = term_at;
      if (c->ready && !c->shutdown_sent) {
        c->shutdown_sent = true;
        (void)c->channel->Send(FrameType::kShutdown, {});
      }
    }
  }
  for (;;) {
    bool gone = true;
    {
      std::lock_guard<std::mutex> lock(mu_);
      const uint64_t now = MonotonicNs();
      for (auto& c : children) {
        CloseStepLocked(c.get(), now);
        gone = gone && (c->pid <= 0 || c->reader_done || c->close_killed);
      }
    }
    if (gone) break;
    usleep(10000);
  }
  for (auto& c : children) {
    if (c->reader.joinable()) c->reader.join();
    if (c->output.joinable()) c->output.join();
  }
  children.clear();
}

ProcessHandlerSet::~ProcessHandlerSet() {
  std::deque<Waiting> waiting;
  uint64_t last_term_at = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    // Without BeginClose (a hand-over's retired consumer, a failed start):
    // the plugin's shutdown gets up to kShutdownWaitNs.
    if (!stopping_) CloseLocked(MonotonicNs() + kShutdownWaitNs);
    waiting.swap(waiting_);
    for (const auto* list : {&children_, &replaced_})
      for (const auto& c : *list) last_term_at = std::max(last_term_at, c->close_term_at_ns);
  }
  // Nothing waits when the consumer drained; if something does, its
  // consumer hears that it was not run.
  for (Waiting& w : waiting)
    for (Delivery* d : w.Deliveries())
      CompleteDeferred(d, FOXW_RETRY, "the queue's handler children are stopping", 0);
  // Each child calls the plugin's shutdown and exits; the monitor (and,
  // when there is none, the wait here) terminates the others at their
  // close deadline. A child that even SIGKILL does not end (stuck in the
  // kernel) is not waited for longer than a second more.
  WaitChildrenGone(last_term_at + 2 * kTermToKillNs);
  {
    std::lock_guard<std::mutex> lock(mu_);
    monitor_stop_ = true;
  }
  monitor_cv_.notify_all();
  if (monitor_.joinable()) monitor_.join();
  std::vector<std::thread> outputs;
  {
    std::lock_guard<std::mutex> lock(mu_);
    outputs.swap(finished_outputs_);
  }
  for (const auto* list : {&children_, &replaced_})
    for (const auto& c : *list) {
      if (c->reader.joinable()) c->reader.join();  // ends when the child exits
      if (c->output.joinable()) c->output.join();
    }
  for (auto& t : outputs) t.join();
  // Publishes the children asked for that are still under way (their
  // answers go nowhere now, but they use the plugin's publisher).
  std::unique_lock<std::mutex> lock(mu_);
  publish_done_.wait(lock, [&] { return publishing_ == 0; });
}

bool ProcessHandlerSet::WaitChildrenGone(uint64_t until) {
  for (;;) {
    bool gone = true;
    const uint64_t now = MonotonicNs();
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto* list : {&children_, &replaced_})
        for (const auto& c : *list) {
          // Also here: the monitor may not run (a failed Create).
          CloseStepLocked(c.get(), now);
          gone = gone && (c->pid <= 0 || (c->reader_done && !c->respawning));
        }
    }
    if (gone) return true;
    if (now >= until) return false;
    usleep(10000);
  }
}

void ProcessHandlerSet::CloseLocked(uint64_t term_at_ns) {
  stopping_ = true;
  for (const auto* list : {&children_, &replaced_})
    for (const auto& c : *list) {
      if (c->close_term_at_ns == 0 || term_at_ns < c->close_term_at_ns)
        c->close_term_at_ns = term_at_ns;
      if (c->ready && !c->shutdown_sent) {
        c->shutdown_sent = true;
        (void)c->channel->Send(FrameType::kShutdown, {});
      }
    }
}

void ProcessHandlerSet::CloseStepLocked(Child* c, uint64_t now) {
  if (c->pid <= 0 || c->reader_done || c->close_term_at_ns == 0) return;
  if (!c->close_termed && now >= c->close_term_at_ns) {
    c->close_termed = true;
    c->close_termed_at_ns = now;
    if (c->running > 0) {
      LOG(WARNING) << "queue " << queue_ << ": handler child " << c->pid << " still runs "
                   << c->running << " message(s); SIGTERM";
    } else {
      LOG(WARNING) << "queue " << queue_ << ": handler child " << c->pid
                   << " did not exit after its shutdown; SIGTERM";
    }
    kill(c->pid, SIGTERM);
  } else if (c->close_termed && !c->close_killed && now >= c->close_termed_at_ns + kTermToKillNs) {
    c->close_killed = true;
    LOG(WARNING) << "queue " << queue_ << ": handler child " << c->pid
                 << " still there a second after SIGTERM; SIGKILL";
    kill(c->pid, SIGKILL);
  }
}

void ProcessHandlerSet::BeginClose(std::chrono::steady_clock::time_point deadline) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    CloseLocked(NsOf(deadline));
  }
  monitor_cv_.notify_all();
}

size_t ProcessHandlerSet::Abandon(const std::string& why) {
  std::deque<Waiting> waiting;
  size_t running = 0;
  const uint64_t now = MonotonicNs();
  {
    std::lock_guard<std::mutex> lock(mu_);
    abandoning_ = true;
    abandon_reason_ = why;
    waiting.swap(waiting_);
    // Idle children run the plugin's shutdown (SHUTDOWN) and get a second
    // for it; busy ones were given the whole drain and are terminated now.
    CloseLocked(now + kTermToKillNs);
    for (const auto* list : {&children_, &replaced_})
      for (const auto& c : *list) {
        if (c->pid <= 0 || c->reader_done || c->in_flight.empty()) continue;
        for (const auto& [id, f] : c->in_flight) {
          const uint64_t ms = now > f.d->started_ns ? (now - f.d->started_ns) / 1000000 : 0;
          LOG(WARNING) << "shutdown: " << why << "; queue " << queue_ << ": handler " << f.handler
                       << " still runs message " << f.d->msg.id << " (attempt " << f.d->msg.attempt
                       << ", for " << ms / 1000 << "." << ms % 1000 / 100 << " s) in child "
                       << c->pid
                       << (f.call == c->killed_for
                               ? ", which its timeout is killing already: it is retried as that "
                                 "says"
                               : ": the child is stopped, the message goes back to the backend "
                                 "uncharged and runs again");
          ++running;
        }
        c->close_term_at_ns = now;
        CloseStepLocked(c.get(), now);
      }
  }
  size_t waited = 0;
  for (Waiting& w : waiting)
    for (Delivery* d : w.Deliveries()) {
      HandBack(d, "the daemon stopped before a handler child was free");
      ++waited;
    }
  // The monitor sends SIGKILL a second after SIGTERM; each child's reader
  // hands its messages back as it sees the child gone (Died).
  monitor_cv_.notify_all();
  return running + waited;
}

void ProcessHandlerSet::SetHandBack(bool on) {
  std::deque<Waiting> back;
  {
    std::lock_guard<std::mutex> lock(mu_);
    hand_back_ = on;
    if (on) back.swap(waiting_);
  }
  for (Waiting& w : back)
    for (Delivery* d : w.Deliveries())
      HandBack(d, "the queue stopped taking messages before a handler child was free");
}

Status ProcessHandlerSet::Spawn(Child* c, bool restart) {
  std::shared_ptr<const ProcessOptions> options;
  {
    std::lock_guard<std::mutex> lock(mu_);
    options = c->options;
  }
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    return Status::IoError(std::string("socketpair: ") + std::strerror(errno));
  int child_end = sv[1];
  if (child_end == 3) {  // dup2(3, 3) would keep FD_CLOEXEC
    child_end = fcntl(sv[1], F_DUPFD_CLOEXEC, 4);
    close(sv[1]);
  }
  // Its standard output and error: one pipe, read into the daemon's log.
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) {
    const int err = errno;
    close(sv[0]);
    close(child_end);
    return Status::IoError(std::string("pipe: ") + std::strerror(err));
  }
  // With syscall_action: kill, the pipe for its notes of denied calls, as
  // its descriptor 4. Non-blocking: Died reads what is there, and a child
  // never waits to write a note.
  int note[2] = {-1, -1};
  const SyscallFilterSpec filter = FilterSpecOf(options->config);
  if (filter.kill) {
    // Its write end above 4, so that the dup2s below do not overwrite it
    // first (nor leave it close-on-exec: dup2 to itself keeps the flag).
    int high = -1;
    if (pipe2(note, O_CLOEXEC | O_NONBLOCK) == 0) {
      high = fcntl(note[1], F_DUPFD_CLOEXEC, 5);
      close(note[1]);
      note[1] = high;
    }
    if (high < 0) {
      const int err = errno;
      if (note[0] >= 0) close(note[0]);
      close(sv[0]);
      close(child_end);
      close(out[0]);
      close(out[1]);
      return Status::IoError(std::string("pipe for syscall_filter notes: ") + std::strerror(err));
    }
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, out[1], 2);
  posix_spawn_file_actions_adddup2(&fa, child_end, 3);
  if (note[1] >= 0) posix_spawn_file_actions_adddup2(&fa, note[1], 4);
  posix_spawn_file_actions_addclosefrom_np(&fa, note[1] >= 0 ? 5 : 4);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  for (int sig : {SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGCHLD}) sigaddset(&defaults, sig);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setpgroup(&attr, 0);  // a ^C to the daemon's terminal is the daemon's
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                      POSIX_SPAWN_SETPGROUP);
  const std::string& path = child_path_;
  char* argv[] = {const_cast<char*>("foxworker-child"), nullptr};
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, path.c_str(), &fa, &attr, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  close(child_end);
  close(out[1]);
  if (note[1] >= 0) close(note[1]);
  // The last child's is read (Died) and its reader joined.
  if (c->note_fd >= 0) close(c->note_fd);
  c->note_fd = note[0];
  if (rc != 0) {
    close(sv[0]);
    close(out[0]);
    return Status::IoError("cannot start " + path + ": " + std::strerror(rc));
  }
  if (c->output.joinable()) c->output.join();  // the last child's, ended at its exit
  c->output = std::thread([this, fd = out[0], pid] { OutputLoop(fd, pid); });
  auto channel = std::make_shared<Channel>(sv[0], /*write_behind=*/true);
  Writer init;
  init.Str(options->plugin.name);
  init.Str(options->plugin.path);
  init.Str(options->plugin.config_json);
  init.Str(queue_);
  init.U32(static_cast<uint32_t>(c->slots));
  init.U32(static_cast<uint32_t>(FLAGS_minloglevel));
  init.U32(static_cast<uint32_t>(FLAGS_v));
  const ProcessIsolationConfig& pc = options->config;
  init.U64(pc.address_space);
  init.U64(static_cast<uint64_t>(pc.cpu_time.count() / 1000));
  init.U64(static_cast<uint64_t>(pc.open_files));
  init.U64(static_cast<uint64_t>(pc.max_processes));
  init.U8(pc.no_new_privs ? 1 : 0);
  init.Str(pc.user);
  WriteFilterSpec(init, filter);
  Status s = channel->Send(FrameType::kInit, init.body());
  FrameType type{};
  std::string body;
  if (s.ok()) {
    pollfd p{channel->fd(), POLLIN, 0};
    if (poll(&p, 1, kReadyTimeoutMs) <= 0) {
      s = Status::Unavailable("did not load the plugin within " +
                              std::to_string(kReadyTimeoutMs / 1000) + " s");
    } else {
      s = channel->Receive(&type, &body);
    }
  }
  if (s.ok() && type == FrameType::kFailed) s = Status::InvalidArgument(body);
  if (s.ok() && type != FrameType::kReady) s = Status::Unavailable("did not answer its init");
  if (!s.ok()) {
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    // Its own filter may have killed it while it loaded the plugin.
    if (std::optional<std::string> denied = DenialOf(status, c->note_fd, pid))
      s = Status::InvalidArgument("died of SIGSYS while loading the plugin (" + *denied + ")");
    return Status::InvalidArgument("handler child " + path + " (pid " + std::to_string(pid) +
                                   ") for plugin " + plugin_name_ + ": " + s.message());
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    c->pid = pid;
    c->channel = std::move(channel);
    c->ready = true;
    c->reader_done = false;
    c->killed_for = 0;
    c->kill_reason.clear();
    c->started_ns = MonotonicNs();
    c->tasks = 0;
    // A child of an earlier generation started again by a respawn under
    // way when a reload replaced it: it retires at once.
    c->retiring = c->replaced;
    c->shutdown_sent = false;
    if (stopping_) {
      // Started by a respawn under way when the set began closing: it
      // exits at once (and is terminated at its close deadline if not).
      c->shutdown_sent = true;
      (void)c->channel->Send(FrameType::kShutdown, {});
    }
    // Counted with the pid it shows, so that nobody sees one without the other.
    if (restart) ++c->restarts;
  }
  VLOG(1) << "queue " << queue_ << ": handler child " << pid << " started";
  c->reader = std::thread([this, c] { ReadLoop(c); });
  DispatchWaiting(/*flush=*/true);
  return Status::Ok();
}

void ProcessHandlerSet::ReadLoop(Child* c) {
  FrameType type{};
  std::string body;
  // The child's metric ids (from 1) -> the daemon's handles (null: refused).
  std::vector<foxw_metric*> metrics;
  bool unflushed = false;  // RUN frames queued by DispatchWaiting(false)
  // Answers read together are settled together.
  Consumer::CompletionBatch completions;
  for (;;) {
    if (!c->channel->FrameReady()) completions.Flush();
    // Before a read that may wait: whatever the batch of answers queued.
    if (unflushed && !c->channel->Buffered()) {
      FlushAll();
      unflushed = false;
    }
    Status s = c->channel->Receive(&type, &body);
    if (!s.ok()) break;
    if (type == FrameType::kMetricDefine) {
      Reader r(body);
      DefineChildMetric(c, r, &metrics);
      if (!r.ok()) break;
      continue;
    }
    if (type == FrameType::kMetricUpdate) {
      Reader r(body);
      if (!UpdateChildMetrics(r, metrics)) break;
      continue;
    }
    if (type == FrameType::kPublish) {
      std::shared_ptr<Channel> channel;
      {
        std::lock_guard<std::mutex> lock(mu_);
        channel = c->channel;
      }
      Reader r(body);
      if (!StartPublish(r, std::move(channel))) break;
      continue;
    }
    if (type == FrameType::kLog) {
      Reader r(body);
      const int severity = static_cast<int>(r.U32());
      const std::string file = r.Str();
      const int line = static_cast<int>(r.U32());
      const std::string text = r.Str();
      if (!r.ok() || severity < google::GLOG_INFO || severity >= google::NUM_SEVERITIES) break;
      // A child's FATAL is an error of the child, not of the daemon.
      google::LogMessage(file.c_str(), line, std::min(severity, int{google::GLOG_ERROR})).stream()
          << "[queue " << queue_ << " child " << c->pid << "] " << text;
      continue;
    }
    if (type != FrameType::kDone) continue;
    Reader r(body);
    const uint64_t id = r.U64();
    const int64_t raw = r.I64();
    const uint64_t delay_ms = r.U64();
    const std::string reason = r.Str();
    if (!r.ok()) break;
    Delivery* d = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = c->in_flight.find(id);
      if (it == c->in_flight.end()) continue;
      d = it->second.d;
      if (it->second.holds_slot) --c->running;
      c->in_flight.erase(it);
      ++c->tasks;
      c->crashes_in_a_row = 0;
      const int64_t max_tasks = options_->config.max_tasks;
      if (max_tasks > 0 && c->tasks >= static_cast<uint64_t>(max_tasks) && !c->retiring)
        RetireLocked(c, "after " + std::to_string(c->tasks) + " messages (max_tasks)");
      // Between messages: one read of /proc/PID/statm per answer.
      CheckMemoryLocked(c);
      if (c->retiring && c->running == 0 && !c->shutdown_sent) {
        c->shutdown_sent = true;
        (void)c->channel->Send(FrameType::kShutdown, {});
      }
    }
    CompleteDeferred(d, static_cast<foxw_verdict>(raw), reason, delay_ms);
    // The freed slot takes a waiting message. Its frame is written with the
    // others once every answer already read is handled: one write for the
    // whole batch.
    const bool more = c->channel->Buffered();
    DispatchWaiting(/*flush=*/!more);
    unflushed = more;
  }
  Died(c);
}

void ProcessHandlerSet::DefineChildMetric(Child* c, Reader& r,
                                          std::vector<foxw_metric*>* metrics) {
  const uint32_t id = r.U32();
  const int32_t kind = r.U8();
  const std::string name = r.Str();
  const std::string help = r.Str();
  // Ids count up from 1, one per metric the plugin defined: a bound far
  // above any plugin's keeps a corrupt frame from allocating much.
  constexpr uint32_t kMaxMetrics = 1u << 16;
  if (!r.ok() || id == 0 || id > kMaxMetrics) {
    LOG(WARNING) << "queue " << queue_ << ": handler child " << c->pid
                 << " sent a malformed metric definition";
    return;
  }
  if (metrics->size() < id + 1) metrics->resize(id + 1, nullptr);
  // Only the plugin's own family names, as metric_define makes them.
  const std::string prefix = "foxworker_plugin_" + plugin_.ctx()->plugin_name + "_";
  std::string error;
  foxw_metric* m = nullptr;
  if (name.compare(0, prefix.size(), prefix) != 0) {
    error = "not a metric of plugin " + plugin_.ctx()->plugin_name;
  } else {
    m = DefineMetric(name, kind, help, &error);
  }
  if (m == nullptr)
    LOG(WARNING) << "queue " << queue_ << ": metric " << name << " of handler child "
                 << c->pid << " is not exported: " << error;
  (*metrics)[id] = m;
}

bool ProcessHandlerSet::UpdateChildMetrics(Reader& r, const std::vector<foxw_metric*>& metrics) {
  const uint32_t n = r.U32();
  for (uint32_t i = 0; i < n && r.ok(); ++i) {
    const uint32_t id = r.U32();
    const int32_t kind = r.U8();
    foxw_metric* m = id < metrics.size() ? metrics[id] : nullptr;
    if (m != nullptr && m->kind != kind) m = nullptr;
    if (kind == FOXW_METRIC_COUNTER) {
      const double delta = r.F64();
      if (m != nullptr) m->counter->Increment(delta);
    } else if (kind == FOXW_METRIC_GAUGE) {
      const double value = r.F64();
      if (m != nullptr) m->gauge->Set(value);
    } else if (kind == FOXW_METRIC_HISTOGRAM) {
      const uint32_t buckets = r.U32();
      if (buckets > 1024) return false;
      std::vector<uint64_t> counts(buckets);
      for (uint64_t& k : counts) k = r.U64();
      const double sum = r.F64();
      if (m != nullptr && r.ok()) m->histogram->Add(counts, sum);
    } else {
      return false;
    }
  }
  return r.ok();
}

bool ProcessHandlerSet::StartPublish(Reader& r, std::shared_ptr<Channel> channel) {
  const uint64_t id = r.U64();
  std::unique_ptr<Delivery> parent;
  if (r.U8() != 0) {
    // The child's message as the daemon sent it (less its payload): what
    // the publisher reads of a parent (its correlation id) is there.
    parent = std::make_unique<Delivery>();
    if (!r.Msg(&parent->msg)) return false;
    parent->queue = &queue_;
  }
  auto fields = std::make_unique<PublishFields>();
  if (!ReadPublish(r, fields.get())) return false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++publishing_;
  }
  std::thread([this, id, channel = std::move(channel), parent = std::move(parent),
               fields = std::move(fields)]() mutable {
    // The same publisher, and so the same rules and errors, as a plugin's
    // publish() in the daemon (HostPublish checked the rest in the child).
    const auto& publish = plugin_.ctx()->publish;
    Status status = Status::Unavailable("publishing is not available");
    if (publish) {
      std::vector<foxw_header> headers;
      const foxw_publish p = fields->View(&headers);
      status = publish(p, parent.get());
    }
    Writer w;
    w.U64(id);
    WriteStatus(w, status);
    // A child gone meanwhile: its channel is closed, the send fails.
    (void)channel->Send(FrameType::kPublished, w.body());
    channel.reset();
    parent.reset();
    fields.reset();
    std::lock_guard<std::mutex> lock(mu_);
    --publishing_;
    publish_done_.notify_all();
  }).detach();
  return true;
}

void ProcessHandlerSet::OutputLoop(int fd, pid_t pid) {
  // What a plugin prints (printf, a library's warnings) rather than logs:
  // one log line per line, at most kOutputLinesPerSecond a second per child,
  // then a count of what was left out.
  constexpr int kOutputLinesPerSecond = 50;
  constexpr size_t kMaxLine = 4096;
  std::string pending;
  char buf[8192];
  uint64_t window_start = MonotonicNs();
  int in_window = 0;
  uint64_t dropped = 0;
  auto next_window = [&] {
    const uint64_t now = MonotonicNs();
    if (now - window_start < 1000000000ull) return;
    if (dropped > 0)
      LOG(WARNING) << "[queue " << queue_ << " child " << pid << "] " << dropped
                   << " line(s) of output left out (more than " << kOutputLinesPerSecond
                   << " a second)";
    window_start = now;
    in_window = 0;
    dropped = 0;
  };
  auto emit = [&](std::string_view line) {
    next_window();
    if (++in_window > kOutputLinesPerSecond) {
      ++dropped;
      return;
    }
    LOG(WARNING) << "[queue " << queue_ << " child " << pid << " output] " << line;
  };
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 1000) == 0) {  // quiet: report what the last second left out
      next_window();
      continue;
    }
    const ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    pending.append(buf, static_cast<size_t>(n));
    size_t start = 0;
    for (size_t nl; (nl = pending.find('\n', start)) != std::string::npos; start = nl + 1)
      emit(std::string_view(pending).substr(start, std::min(nl - start, kMaxLine)));
    pending.erase(0, start);
    if (pending.size() > kMaxLine) {
      emit(std::string_view(pending).substr(0, kMaxLine));
      pending.clear();
    }
  }
  if (!pending.empty()) emit(pending);
  if (dropped > 0)
    LOG(WARNING) << "[queue " << queue_ << " child " << pid << "] " << dropped
                 << " line(s) of output left out";
  close(fd);
}

void ProcessHandlerSet::Died(Child* c) {
  // The channel ended: the child exited, or it closed its end (then it is
  // killed: it can run nothing more for us).
  int status = 0;
  pid_t got = 0;
  for (int i = 0; i < 100 && (got = waitpid(c->pid, &status, WNOHANG)) == 0; ++i)
    usleep(10000);
  if (got == 0) {
    kill(c->pid, SIGKILL);
    waitpid(c->pid, &status, 0);
  }
  std::vector<std::pair<Delivery*, std::string>> charged;
  bool stopping;
  bool recycled = false;
  bool held = false;  // this crash started a crash-loop pause
  std::string last;   // the crash, for the pause's reason
  std::string how;    // the child's end, as reasons and the log tell it
  CrashLoopConfig crash_loop;
  // Shutdown gave up on the messages it ran (Abandon): back uncharged.
  std::vector<Delivery*> released;
  std::string abandon_reason;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping = stopping_;
    crash_loop = options_->config.crash_loop;
    recycled = c->retiring && c->in_flight.empty() && WIFEXITED(status) &&
               WEXITSTATUS(status) == 0;
    how = DescribeChildExit(status);
    // A denied call (syscall_action: kill) is named, and charged by name to
    // the message whose handler made it.
    std::optional<DenialNote> note;
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS && c->note_fd >= 0)
      note = ReadDenialNote(c->note_fd, c->pid);
    if (note) how += " (" + DescribeDenial(*note) + ")";
    if (abandoning_) {
      // Except a message whose own timeout was killing the child already:
      // that one is charged as the kill would have.
      abandon_reason = abandon_reason_;
      for (auto it = c->in_flight.begin(); it != c->in_flight.end();) {
        if (it->second.call == c->killed_for) {
          ++it;
          continue;
        }
        released.push_back(it->second.d);
        it = c->in_flight.erase(it);
      }
    }
    for (auto& [id, f] : c->in_flight) {
      std::string crash = how;
      if (note && note->job != 0 && note->job != f.call)
        crash = DescribeChildExit(status) + " (" + DescribeDenial(*note) +
                " in the handler of another message of the child)";
      std::string reason =
          f.call == c->killed_for
              ? c->kill_reason
              : "handler crashed: " + crash + " in plugin " + plugin_name_ + ", handler " +
                    f.handler + " (child pid " + std::to_string(c->pid) + ")";
      charged.emplace_back(f.d, std::move(reason));
    }
    if (!recycled && !stopping) {
      last = (c->killed_for != 0 && std::any_of(c->in_flight.begin(), c->in_flight.end(),
                                                 [&](const auto& e) {
                                                   return e.second.call == c->killed_for;
                                                 })
                  ? c->kill_reason + " (" + how + ")"
                  : how) +
             " in plugin " + plugin_name_ +
             (c->in_flight.empty() ? "" : ", handler " + c->in_flight.begin()->second.handler) +
             ", child pid " + std::to_string(c->pid);
    }
    c->in_flight.clear();
    c->running = 0;
    c->ready = false;
    c->reader_done = true;
    if (recycled) {
      c->restart_at_ns = 0;  // at once
    } else if (!stopping) {
      ++c->crashes;
      ++c->crashes_in_a_row;
      uint64_t delay = kFirstRestartDelayNs;
      for (int i = 1; i < c->crashes_in_a_row && delay < kMaxRestartDelayNs; ++i) delay *= 2;
      c->restart_at_ns = MonotonicNs() + std::min(delay, kMaxRestartDelayNs);
      held = CountCrashLocked(last);
    }
  }
  if (held) {
    // First the queue stops taking messages, then the charged ones settle
    // (their retries must not find it still consuming).
    NotifyHold();
    monitor_cv_.notify_all();  // the monitor hands waiting messages back
  }
  if (recycled) {
    LOG(INFO) << "queue " << queue_ << ": handler child " << c->pid << " recycled "
              << c->retire_reason;
  } else if (!released.empty()) {
    LOG(WARNING) << "queue " << queue_ << ": handler child " << c->pid << " of plugin "
                 << plugin_name_ << " stopped at shutdown (" << DescribeChildExit(status)
                 << ") with " << released.size()
                 << " message(s) running; they go back to the backend uncharged";
  } else if (!stopping || !charged.empty()) {
    LOG(WARNING) << "queue " << queue_ << ": handler child " << c->pid << " of plugin "
                 << plugin_name_ << " ended (" << how << ") with "
                 << charged.size() << " message(s) running; each is charged one attempt";
  }
  if (held) {
    const CrashLoopConfig& cl = crash_loop;
    LOG(ERROR) << "queue " << queue_ << " paused: handler children crashed "
               << cl.crashes << " times within " << FormatDuration(cl.window) << " (last: " << last
               << "); resumes in " << FormatDuration(cl.pause) << " or with POST /api/v1/queues/"
               << queue_ << "/resume";
  }
  for (auto& [d, reason] : charged) CompleteDeferred(d, FOXW_RETRY, reason, 0);
  for (Delivery* d : released) {
    const std::string reason = "the daemon stopped before the handler finished (" +
                               abandon_reason + "); child pid " + std::to_string(c->pid);
    HandBack(d, reason);
  }
  monitor_cv_.notify_all();
}

bool ProcessHandlerSet::CountCrashLocked(const std::string& last) {
  const CrashLoopConfig& cl = options_->config.crash_loop;
  if (cl.crashes <= 0 || held_) return false;
  const uint64_t now = MonotonicNs();
  const uint64_t window = static_cast<uint64_t>(cl.window.count()) * 1000000;
  crash_times_.push_back(now);
  while (!crash_times_.empty() && now - crash_times_.front() > window) crash_times_.pop_front();
  if (crash_times_.size() < static_cast<size_t>(cl.crashes)) return false;
  crash_times_.clear();
  held_ = true;
  held_until_ns_ = now + static_cast<uint64_t>(cl.pause.count()) * 1000000;
  ++crash_loop_pauses_;
  const int64_t resume_ms = WallNs() / 1000000 + cl.pause.count();
  hold_reason_ = "crash loop: handler children crashed " + std::to_string(cl.crashes) +
                 " times within " + FormatDuration(cl.window) + " (last: " + last +
                 "); resumes at " + FormatIso8601Utc(resume_ms) + " or when an operator resumes it";
  return true;
}

void ProcessHandlerSet::EndHoldLocked() {
  crash_times_.clear();
  if (!held_) return;
  held_ = false;
  hold_reason_.clear();
  // Restarted fresh: no backoff left over from before the pause.
  for (auto& c : children_) {
    c->crashes_in_a_row = 0;
    if (!c->ready) c->restart_at_ns = 0;
  }
}

void ProcessHandlerSet::NotifyHold() {
  std::lock_guard<std::mutex> cb_lock(hold_cb_mu_);
  std::string reason;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (held_ == hold_notified_) return;
    hold_notified_ = held_;
    if (held_) reason = hold_reason_;
  }
  if (hold_cb_) hold_cb_(reason);
}

void ProcessHandlerSet::SetHoldCallback(HoldCallback hold) {
  {
    std::lock_guard<std::mutex> cb_lock(hold_cb_mu_);
    hold_cb_ = std::move(hold);
    hold_notified_ = false;  // a new callback is told of a hold under way
  }
  NotifyHold();
}

void ProcessHandlerSet::EndHold() {
  bool was_held;
  {
    std::lock_guard<std::mutex> lock(mu_);
    was_held = held_;
    EndHoldLocked();
  }
  if (was_held)
    LOG(INFO) << "queue " << queue_
              << ": crash-loop pause ended by an operator's resume; starting its handler "
                 "children again";
  monitor_cv_.notify_all();
  NotifyHold();
}

namespace {

uint64_t TimeoutMs(const Delivery& d) {
  if (d.deadline_ns == Delivery::kNoDeadline) return 0;
  const uint64_t now = MonotonicNs();
  return d.deadline_ns > now ? std::max<uint64_t>(1, (d.deadline_ns - now) / 1000000) : 1;
}

}  // namespace

std::vector<Delivery*> ProcessHandlerSet::Waiting::Deliveries() const {
  std::vector<Delivery*> all{d};
  all.insert(all.end(), more.begin(), more.end());
  return all;
}

std::pair<uint64_t, std::string> ProcessHandlerSet::Encode(const std::string& handler,
                                                           Delivery* const* batch, size_t n) {
  const uint64_t id = next_id_.fetch_add(n, std::memory_order_relaxed);
  Writer out;
  out.U64(id);
  out.Str(handler);
  out.U64(TimeoutMs(*batch[0]));  // a batch's messages share their deadline
  // RUN_BATCH: the count, then the messages; their ids follow `id`.
  if (n > 1) out.U32(static_cast<uint32_t>(n));
  for (size_t i = 0; i < n; ++i) out.Msg(batch[i]->msg);
  return {id, std::move(out.body())};
}

ProcessHandlerSet::Child* ProcessHandlerSet::PickLocked() {
  Child* c = nullptr;
  for (auto& k : children_) {
    if (!k->ready || k->retiring || k->running >= k->slots) continue;
    if (c == nullptr || k->running < c->running) c = k.get();
  }
  return c;
}

size_t ProcessHandlerSet::AssignLocked(Child* c, uint64_t id, Delivery* d,
                                       const std::string& handler, std::string_view frame,
                                       const std::vector<Delivery*>& more) {
  for (size_t i = 0; i <= more.size(); ++i) {
    Child::InFlight f;
    f.d = i == 0 ? d : more[i - 1];
    f.handler = handler;
    f.call = id;
    f.holds_slot = i == more.size();
    c->in_flight.emplace(id + i, std::move(f));
  }
  ++c->running;
  // Queued while the messages are recorded and nobody else can have
  // answered them: the moment the lock is let go, the child's death may
  // settle (and free) the deliveries.
  return c->channel->Queue(more.empty() ? FrameType::kRun : FrameType::kRunBatch, frame);
}

HandlerReply ProcessHandlerSet::Submit(HandlerInstance instance, const std::string& handler,
                                       Delivery& d, char* reason_buf, size_t reason_cap) {
  HandlerReply reply;
  Delivery* batch[1] = {&d};
  SubmitBatch(instance, handler, batch, 1, &reply, reason_buf, reason_cap);
  return reply;
}

void ProcessHandlerSet::SubmitBatch(HandlerInstance instance, const std::string& handler,
                                    Delivery* const* batch, size_t n, HandlerReply* replies,
                                    char* reason_bufs, size_t reason_cap) {
  auto answer_all = [&](Verdict verdict, const std::string& why) {
    for (size_t i = 0; i < n; ++i) {
      char* buf = reason_bufs + i * reason_cap;
      const size_t len = std::min(why.size(), reason_cap - 1);
      std::memcpy(buf, why.data(), len);
      buf[len] = '\0';
      replies[i] = HandlerReply{verdict, FOXW_RETRY, std::string_view(buf, len), 0};
    }
  };
  // Headers and properties fit in the last MiB of a frame (a backend's own
  // limits keep them far smaller).
  size_t bytes = 0;
  for (size_t i = 0; i < n; ++i) bytes += batch[i]->msg.payload.size();
  if (bytes > kMaxFrame - (1u << 20)) {
    answer_all(Verdict::kRetry, (n == 1 ? "a payload of " : "a batch of payloads of ") +
                                    std::to_string(bytes) +
                                    " bytes is over what a handler child takes (isolation: process)");
    return;
  }
  // Encoded before the lock (the deliveries are ours until recorded).
  auto [id, frame] = Encode(handler, batch, n);
  std::shared_ptr<Channel> channel;
  size_t queued = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return answer_all(Verdict::kRetry, "the queue's handler children are stopping");
    // Not started: back to the backend, no attempt charged.
    if (held_) return answer_all(Verdict::kRelease, "the queue is paused after a crash loop");
    Child* c = waiting_.empty() ? PickLocked() : nullptr;
    if (c == nullptr && hand_back_) {
      // The queue stopped taking messages (SetHandBack): not started, so
      // back to the backend, no attempt charged.
      return answer_all(Verdict::kRelease,
                        "the queue stopped taking messages before a handler child was free");
    }
    if (c == nullptr) {
      // Every slot is busy (or its child restarting): the next one to free
      // takes it, in order. Its deadline still runs (Monitor).
      waiting_.push_back({batch[0], handler, std::vector<Delivery*>(batch + 1, batch + n)});
    } else {
      queued = AssignLocked(c, id, batch[0], handler, frame,
                            std::vector<Delivery*>(batch + 1, batch + n));
      channel = c->channel;
    }
  }
  for (size_t i = 0; i < n; ++i) replies[i] = HandlerReply{Verdict::kPending, FOXW_PENDING, {}, 0};
  // In a consumer's pass, the frame leaves with the others at its end
  // (Release), or now when much is queued. A failed write means the child
  // is gone: its reader charges the messages with the others it was
  // running, through the same deferred completion.
  if (channel != nullptr && (instance == nullptr || queued >= kFlushAtBytes)) (void)channel->Flush();
}

void ProcessHandlerSet::DispatchWaiting(bool flush) {
  struct Ready {
    Waiting w;
    uint64_t id = 0;
    std::string frame;
  };
  std::vector<Ready> ready;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ || held_ || waiting_.empty()) {
      if (!flush) return;
    } else {
      int free_slots = 0;
      for (auto& c : children_)
        if (c->ready && !c->retiring) free_slots += std::max(0, c->slots - c->running);
      while (!waiting_.empty() && free_slots-- > 0) {
        ready.push_back({std::move(waiting_.front()), 0, {}});
        waiting_.pop_front();
      }
    }
  }
  // Taken out of waiting_, these are nobody else's until recorded again.
  for (Ready& r : ready) {
    const std::vector<Delivery*> all = r.w.Deliveries();
    std::tie(r.id, r.frame) = Encode(r.w.handler, all.data(), all.size());
  }
  if (!ready.empty()) {
    std::lock_guard<std::mutex> lock(mu_);
    size_t i = 0;
    for (; i < ready.size(); ++i) {
      Child* c = stopping_ || held_ ? nullptr : PickLocked();
      if (c == nullptr) break;
      AssignLocked(c, ready[i].id, ready[i].w.d, ready[i].w.handler, ready[i].frame, ready[i].w.more);
    }
    // A slot taken meanwhile (or a child gone): back to the front, in order.
    for (size_t j = ready.size(); j > i; --j) waiting_.push_front(std::move(ready[j - 1].w));
  }
  if (flush) FlushAll();
}

void ProcessHandlerSet::FlushAll() {
  std::vector<std::shared_ptr<Channel>> channels;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& c : children_)
      if (c->channel != nullptr) channels.push_back(c->channel);
  }
  for (auto& ch : channels) (void)ch->Flush();
}

void ProcessHandlerSet::Monitor() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!monitor_stop_) {
    monitor_cv_.wait_for(lock, std::chrono::milliseconds(50));
    if (monitor_stop_) break;
    uint64_t now = MonotonicNs();
    if (stopping_) {
      // Closing: nothing starts any more; children that do not exit by
      // their close deadline are terminated, then killed.
      for (const auto* list : {&children_, &replaced_})
        for (const auto& c : *list) CloseStepLocked(c.get(), now);
      continue;
    }
    // A waiting message cancelled (its deadline, the watchdog, shutdown)
    // before a slot freed never reached a child: it is answered here.
    std::vector<Delivery*> gave_up;
    for (auto it = waiting_.begin(); it != waiting_.end();) {
      // A batch waits whole: its messages share one deadline.
      if (it->d->IsCancelled(now)) {
        for (Delivery* d : it->Deliveries()) gave_up.push_back(d);
        it = waiting_.erase(it);
      } else {
        ++it;
      }
    }
    // A crash loop holds the queue: what waits was never started and goes
    // back to the backend, no attempt charged.
    std::vector<Delivery*> released;
    if (held_) {
      for (Waiting& w : waiting_)
        for (Delivery* d : w.Deliveries()) released.push_back(d);
      waiting_.clear();
    }
    if (!gave_up.empty() || !released.empty()) {
      lock.unlock();
      for (Delivery* d : gave_up)
        CompleteDeferred(d, FOXW_RETRY, "cancelled while every handler child was busy", 0);
      for (Delivery* d : released) HandBack(d, "the queue is paused after a crash loop");
      lock.lock();
      if (monitor_stop_) break;
      if (stopping_) continue;
    }
    // A waiting message is handed out by the answer that frees a slot; this
    // catches one that lost a race to a Submit for the slot.
    if (!waiting_.empty()) {
      lock.unlock();
      DispatchWaiting(/*flush=*/true);
      lock.lock();
      if (monitor_stop_) break;
      if (stopping_) continue;
    }
    // Frames of a consumer pass held up inside it (a middleware that
    // waits) leave now.
    for (const auto* list : {&children_, &replaced_})
      for (size_t i = 0; i < list->size(); ++i) {
        Child* c = (*list)[i].get();
        if (c->channel == nullptr || !c->channel->HasQueued()) continue;
        std::shared_ptr<Channel> ch = c->channel;
        lock.unlock();
        (void)ch->Flush();
        lock.lock();
      }
    if (monitor_stop_) break;
    if (stopping_) continue;
    if (held_ && now >= held_until_ns_) {
      EndHoldLocked();
      LOG(INFO) << "queue " << queue_
                << ": crash-loop pause over; starting its handler children again";
      lock.unlock();
      NotifyHold();
      lock.lock();
      if (monitor_stop_) break;
      if (stopping_) continue;
    }
    now = MonotonicNs();
    // By index, and only while the generation is the one the pass began
    // with: a respawn lets go of the lock, and a reload may replace the
    // children meanwhile.
    const uint64_t generation = generation_;
    for (size_t i = 0; i < children_.size() && generation_ == generation && !stopping_; ++i) {
      Child* c = children_[i].get();
      // Respawn a dead child when its backoff is over (not while the queue
      // is held after a crash loop).
      if (!c->ready && c->reader_done && !held_ && now >= c->restart_at_ns) {
        c->respawning = true;
        lock.unlock();
        if (c->reader.joinable()) c->reader.join();
        Status s = Spawn(c, /*restart=*/true);
        lock.lock();
        c->respawning = false;
        if (!s.ok()) {
          // A failed start backs off like a crash: a transient cause (the
          // user at max_processes for a moment) costs 100 ms, not 10 s,
          // while messages wait for the slot.
          ++c->crashes_in_a_row;
          uint64_t delay = kFirstRestartDelayNs;
          for (int i = 1; i < c->crashes_in_a_row && delay < kMaxRestartDelayNs; ++i) delay *= 2;
          LOG(ERROR) << "queue " << queue_ << ": " << s.message() << "; trying again in "
                     << FormatDuration(Duration(std::min(delay, kMaxRestartDelayNs) / 1000000));
          c->restart_at_ns = MonotonicNs() + std::min(delay, kMaxRestartDelayNs);
        }
        continue;
      }
      if (!c->ready) continue;
      WatchLocked(c, now);
    }
    if (monitor_stop_) break;
    if (stopping_) continue;
    // Earlier generations: they finish their messages (with the same
    // timeouts), exit after SHUTDOWN, and go once their reader is done.
    std::vector<std::unique_ptr<Child>> gone;
    for (auto it = replaced_.begin(); it != replaced_.end();) {
      Child* c = it->get();
      if (c->pid > 0 && !c->reader_done) {
        if (!c->retiring) RetireLocked(c, "(replaced by a config reload)");
        if (c->ready) WatchLocked(c, now);
        ++it;
        continue;
      }
      gone.push_back(std::move(*it));
      it = replaced_.erase(it);
    }
    if (!gone.empty()) {
      lock.unlock();
      // The reader ends right after the child's death is handled (Died).
      for (auto& c : gone)
        if (c->reader.joinable()) c->reader.join();
      lock.lock();
      // The output pipe may outlive the child (a process the plugin
      // started): its thread is joined at the end.
      for (auto& c : gone)
        if (c->output.joinable()) finished_outputs_.push_back(std::move(c->output));
    }
  }
}

void ProcessHandlerSet::WatchLocked(Child* c, uint64_t now) {
  // Recycling by age and by memory, between messages: a retiring child
  // takes no new message and is shut down once idle.
  const ProcessIsolationConfig& pc = options_->config;
  if (!c->retiring && pc.max_lifetime.count() > 0 &&
      now - c->started_ns >= static_cast<uint64_t>(pc.max_lifetime.count()) * 1000000)
    RetireLocked(c, "after " + FormatDuration(pc.max_lifetime) + " (max_lifetime)");
  CheckMemoryLocked(c);
  if (c->retiring && c->running == 0 && !c->shutdown_sent) {
    c->shutdown_sent = true;
    (void)c->channel->Send(FrameType::kShutdown, {});
  }
  // Timeouts: a message past its deadline (or cancelled by the consumer's
  // watchdog or shutdown) is told to stop; past the grace period its child
  // is terminated, then killed.
  for (auto& [id, f] : c->in_flight) {
    if (!f.cancel_sent && f.d->IsCancelled(now)) {
      f.cancel_sent = true;
      f.cancelled_at_ns = now;
      Writer w;
      w.U64(id);
      (void)c->channel->Send(FrameType::kCancel, w.body());
    } else if (f.cancel_sent && !f.term_sent &&
               now - f.cancelled_at_ns >=
                   static_cast<uint64_t>(pc.timeout_grace.count()) * 1000000) {
      f.term_sent = true;
      f.term_at_ns = now;
      if (c->killed_for == 0) {
        c->killed_for = f.call;
        const uint64_t limit =
            f.d->deadline_ns != Delivery::kNoDeadline ? f.d->deadline_ns - f.d->started_ns : 0;
        c->kill_reason = limit > 0 ? "killed after timeout " +
                                         FormatDuration(Duration(limit / 1000000))
                                   : "killed after it was cancelled";
      }
      LOG(WARNING) << "queue " << queue_ << ": handler " << f.handler << " still runs message "
                   << f.d->msg.id << " " << FormatDuration(pc.timeout_grace)
                   << " after it was cancelled; terminating its child " << c->pid;
      kill(c->pid, SIGTERM);
    } else if (f.term_sent && now - f.term_at_ns >= kTermToKillNs) {
      kill(c->pid, SIGKILL);
    }
  }
}

void ProcessHandlerSet::CheckMemoryLocked(Child* c) {
  const uint64_t limit = options_->config.max_memory;
  if (limit == 0 || c->retiring) return;
  const uint64_t rss = ResidentBytes(c->pid);
  if (rss > limit)
    RetireLocked(c, "at " + std::to_string(rss >> 20) + " MiB resident, over " + FormatSize(limit) +
                        " (max_memory)");
}

void ProcessHandlerSet::RetireLocked(Child* c, const std::string& why) {
  c->retiring = true;
  c->retire_reason = why;
  VLOG(1) << "queue " << queue_ << ": recycling handler child " << c->pid << " " << why;
}

const Handler* ProcessHandlerSet::Find(std::string_view type) const {
  const foxw_handler_def* def = plugin_.FindHandler(type);
  if (def == nullptr) return nullptr;
  for (const auto& h : handlers_)
    if (h->name() == def->name) return h.get();
  return nullptr;
}

HandlerChildren ProcessHandlerSet::Children() const {
  HandlerChildren out;
  out.isolated = true;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const uint64_t now = MonotonicNs();
    for (const auto& c : children_) {
      HandlerChild h;
      h.index = c->index;
      h.pid = c->ready ? static_cast<int>(c->pid) : 0;
      h.tasks = c->tasks;
      h.running = c->running;
      h.uptime_s = c->ready ? static_cast<double>(now - c->started_ns) / 1e9 : 0;
      h.restarts = c->restarts;
      h.crashes = c->crashes;
      out.children.push_back(h);
    }
    out.crash_loop_pauses = crash_loop_pauses_;
  }
  for (HandlerChild& h : out.children)
    if (h.pid != 0) h.rss_bytes = ResidentBytes(h.pid);
  return out;
}

}  // namespace foxworker::isolation
