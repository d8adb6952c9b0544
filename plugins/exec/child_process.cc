#include "child_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <utility>

namespace foxworker::exec_plugin {
namespace {

using Clock = std::chrono::steady_clock;

// How often a running child's cancellation check is polled.
constexpr std::chrono::milliseconds kCancelPollInterval{100};
// Without a pidfd, how often the child's exit is checked.
constexpr std::chrono::milliseconds kExitPollInterval{10};
// After the child exited, how long to keep reading output its leftovers
// still hold open (they were just sent SIGKILL).
constexpr std::chrono::milliseconds kDrainGrace{1000};
constexpr size_t kReadChunk = 64 * 1024;

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { Close(); }
  int get() const { return fd_; }
  bool open() const { return fd_ >= 0; }
  void Reset(int fd) {
    Close();
    fd_ = fd;
  }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

// Blocks SIGPIPE in this thread so a write to a child that closed its stdin
// fails with EPIPE instead of killing the daemon, then discards the SIGPIPE
// that write left pending. No signal handler is installed.
class ScopedSigpipeBlock {
 public:
  ScopedSigpipeBlock() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGPIPE);
    sigset_t pending;
    sigemptyset(&pending);
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &set_, &old_);
  }
  ~ScopedSigpipeBlock() {
    if (saw_epipe_ && !was_pending_) {
      struct timespec zero = {0, 0};
      while (sigtimedwait(&set_, nullptr, &zero) < 0 && errno == EINTR) {
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  ScopedSigpipeBlock(const ScopedSigpipeBlock&) = delete;
  ScopedSigpipeBlock& operator=(const ScopedSigpipeBlock&) = delete;
  void NoteEpipe() { saw_epipe_ = true; }

 private:
  sigset_t set_;
  sigset_t old_;
  bool was_pending_ = false;
  bool saw_epipe_ = false;
};

class SpawnAttributes {
 public:
  SpawnAttributes() {
    posix_spawnattr_init(&attr_);
    posix_spawn_file_actions_init(&actions_);
  }
  ~SpawnAttributes() {
    posix_spawn_file_actions_destroy(&actions_);
    posix_spawnattr_destroy(&attr_);
  }
  SpawnAttributes(const SpawnAttributes&) = delete;
  SpawnAttributes& operator=(const SpawnAttributes&) = delete;
  posix_spawnattr_t* attr() { return &attr_; }
  posix_spawn_file_actions_t* actions() { return &actions_; }

 private:
  posix_spawnattr_t attr_;
  posix_spawn_file_actions_t actions_;
};

// Keeps the last `cap` bytes written to it.
class OutputTail {
 public:
  explicit OutputTail(size_t cap) : cap_(cap) {}
  void Append(const char* data, size_t len) {
    if (cap_ == 0) {
      truncated_ = truncated_ || len > 0;
      return;
    }
    buf_.append(data, len);
    if (buf_.size() > 2 * cap_) Trim();
  }
  std::string Take(bool* truncated) {
    Trim();
    *truncated = truncated_;
    return std::move(buf_);
  }

 private:
  void Trim() {
    if (buf_.size() <= cap_) return;
    buf_.erase(0, buf_.size() - cap_);
    truncated_ = true;
  }
  size_t cap_;
  std::string buf_;
  bool truncated_ = false;
};

bool SetNonBlocking(int fd) {
  int flags = fcntl(fd, F_GETFL);
  return flags >= 0 && fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0;
}

// True once the child exited; leaves it unreaped, so its pid (and thus its
// process group id) cannot be reused while we may still signal the group.
bool HasExited(pid_t pid) {
  siginfo_t info;
  std::memset(&info, 0, sizeof(info));
  while (waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
    if (errno != EINTR) return true;  // ECHILD: nothing left to wait for
  }
  return info.si_pid == pid;
}

int OpenPidfd(pid_t pid) {
#ifdef SYS_pidfd_open
  long fd = syscall(SYS_pidfd_open, pid, 0);
  return fd >= 0 ? static_cast<int>(fd) : -1;
#else
  (void)pid;
  return -1;
#endif
}

int MillisUntil(Clock::time_point now, Clock::time_point when) {
  if (when <= now) return 0;
  auto ms = std::chrono::ceil<std::chrono::milliseconds>(when - now).count();
  return static_cast<int>(std::min<long long>(ms, 1000 * 1000));
}

std::vector<char*> CStrings(const std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (const std::string& s : strings) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

}  // namespace

ChildResult RunChild(const ChildSpec& spec, std::string_view input, Clock::time_point deadline,
                     const std::function<bool()>& cancelled) {
  ChildResult result;
  const Clock::time_point start = Clock::now();

  // O_CLOEXEC everywhere: a child spawned concurrently by another thread must
  // not inherit our pipe ends, or our EOF would never come.
  int in_pipe[2];
  int out_pipe[2];
  if (pipe2(in_pipe, O_CLOEXEC) != 0) {
    result.error = std::string("cannot create a pipe: ") + std::strerror(errno);
    return result;
  }
  Fd child_in(in_pipe[0]);
  Fd to_child(in_pipe[1]);
  if (pipe2(out_pipe, O_CLOEXEC) != 0) {
    result.error = std::string("cannot create a pipe: ") + std::strerror(errno);
    return result;
  }
  Fd from_child(out_pipe[0]);
  Fd child_out(out_pipe[1]);

  SpawnAttributes spawn;
  posix_spawn_file_actions_t* actions = spawn.actions();
  posix_spawn_file_actions_adddup2(actions, child_in.get(), STDIN_FILENO);
  posix_spawn_file_actions_adddup2(actions, child_out.get(), STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(actions, child_out.get(), STDERR_FILENO);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
  // Descriptors the daemon opened without O_CLOEXEC stay out of the child.
  posix_spawn_file_actions_addclosefrom_np(actions, STDERR_FILENO + 1);
#endif
  if (!spec.working_dir.empty()) {
    posix_spawn_file_actions_addchdir_np(actions, spec.working_dir.c_str());
  }
  posix_spawnattr_t* attr = spawn.attr();
  // Its own process group, so a timeout reaches everything it started; an
  // empty signal mask and default dispositions, whatever the daemon's
  // threads block or ignore (SIGPIPE, SIGTERM).
  posix_spawnattr_setflags(attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(attr, 0);
  sigset_t mask;
  sigemptyset(&mask);
  posix_spawnattr_setsigmask(attr, &mask);
  sigset_t defaults;
  sigfillset(&defaults);
  sigdelset(&defaults, SIGKILL);
  sigdelset(&defaults, SIGSTOP);
  posix_spawnattr_setsigdefault(attr, &defaults);

  std::vector<char*> argv = CStrings(spec.argv);
  std::vector<char*> envp = CStrings(spec.env);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, spec.executable.c_str(), actions, attr, argv.data(), envp.data());
  child_in.Close();
  child_out.Close();
  if (rc != 0) {
    result.error = "cannot start " + spec.executable + ": " + std::strerror(rc);
    return result;
  }

  Fd pidfd(OpenPidfd(pid));
  SetNonBlocking(to_child.get());
  SetNonBlocking(from_child.get());
  if (input.empty()) to_child.Close();

  ScopedSigpipeBlock sigpipe_block;
  OutputTail tail(spec.max_output_bytes);
  size_t written = 0;
  enum class Phase { kRunning, kTerminating, kKilled, kDraining } phase = Phase::kRunning;
  Clock::time_point phase_deadline = deadline;
  ChildResult::End early_end = ChildResult::End::kExited;
  bool ended_early = false;
  char chunk[kReadChunk];

  for (;;) {
    Clock::time_point now = Clock::now();
    if (phase != Phase::kDraining && HasExited(pid)) {
      // Leftovers in its group may hold the output pipe open: end them now,
      // before reaping, while the group id cannot belong to anyone else.
      kill(-pid, SIGKILL);
      to_child.Close();
      phase = Phase::kDraining;
      phase_deadline = now + kDrainGrace;
    }
    if (phase == Phase::kDraining && (!from_child.open() || now >= phase_deadline)) break;
    if (phase == Phase::kRunning) {
      bool timed_out = now >= deadline;
      if (timed_out || cancelled()) {
        ended_early = true;
        early_end = timed_out ? ChildResult::End::kTimedOut : ChildResult::End::kCancelled;
        kill(-pid, SIGTERM);
        to_child.Close();
        phase = Phase::kTerminating;
        phase_deadline = now + kTerminateGrace;
      }
    } else if (phase == Phase::kTerminating && now >= phase_deadline) {
      kill(-pid, SIGKILL);
      phase = Phase::kKilled;
    }

    // Wake for output, input space, the child's exit, or the next check.
    pollfd fds[3];
    nfds_t n = 0;
    int out_index = -1;
    int in_index = -1;
    if (from_child.open()) {
      out_index = static_cast<int>(n);
      fds[n++] = pollfd{from_child.get(), POLLIN, 0};
    }
    if (to_child.open()) {
      in_index = static_cast<int>(n);
      fds[n++] = pollfd{to_child.get(), POLLOUT, 0};
    }
    if (pidfd.open() && phase != Phase::kDraining) fds[n++] = pollfd{pidfd.get(), POLLIN, 0};
    int wait_ms = 0;
    switch (phase) {
      case Phase::kRunning:
        wait_ms =
            std::min(MillisUntil(now, deadline), static_cast<int>(kCancelPollInterval.count()));
        break;
      case Phase::kTerminating:
      case Phase::kDraining:
        wait_ms = MillisUntil(now, phase_deadline);
        break;
      case Phase::kKilled:
        wait_ms = static_cast<int>(kCancelPollInterval.count());
        break;
    }
    if (!pidfd.open() && phase != Phase::kDraining) {
      wait_ms = std::min(wait_ms, static_cast<int>(kExitPollInterval.count()));
    }
    if (poll(fds, n, wait_ms) < 0) {
      if (errno == EINTR) continue;
      // Cannot wait any more: end the run the hard way (reaped below).
      result.error = std::string("poll failed: ") + std::strerror(errno);
      kill(-pid, SIGKILL);
      ended_early = true;
      early_end = ChildResult::End::kCancelled;
      break;
    }

    if (out_index >= 0 && (fds[out_index].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
      for (;;) {
        ssize_t got = read(from_child.get(), chunk, sizeof(chunk));
        if (got > 0) {
          tail.Append(chunk, static_cast<size_t>(got));
          if (static_cast<size_t>(got) < sizeof(chunk)) break;
          continue;
        }
        if (got < 0 && errno == EINTR) continue;
        if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        from_child.Close();  // EOF or a read error
        break;
      }
    }
    if (in_index >= 0 && to_child.open() && fds[in_index].revents != 0) {
      if ((fds[in_index].revents & POLLOUT) != 0) {
        while (written < input.size()) {
          ssize_t put = write(to_child.get(), input.data() + written, input.size() - written);
          if (put > 0) {
            written += static_cast<size_t>(put);
            continue;
          }
          if (put < 0 && errno == EINTR) continue;
          if (put < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
          if (put < 0 && errno == EPIPE) sigpipe_block.NoteEpipe();
          written = input.size();  // the child stopped reading: drop the rest
        }
        if (written >= input.size()) to_child.Close();
      } else {
        to_child.Close();  // POLLERR or POLLHUP: the child closed its stdin
      }
    }
  }

  int status = 0;
  pid_t reaped;
  while ((reaped = waitpid(pid, &status, 0)) < 0 && errno == EINTR) {
  }
  result.elapsed = Clock::now() - start;
  result.output = tail.Take(&result.output_truncated);
  if (ended_early) {
    result.end = early_end;
  } else if (reaped != pid) {
    // Someone else reaped it: SIGCHLD set to SIG_IGN, or a waitpid(-1) elsewhere.
    result.end = ChildResult::End::kLost;
    result.error = "the exit status of " + spec.executable + " was lost (" +
                   std::strerror(errno) + "): something else in the daemon reaps children";
  } else if (WIFEXITED(status)) {
    result.end = ChildResult::End::kExited;
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.end = ChildResult::End::kSignaled;
    result.signal = WTERMSIG(status);
  } else {
    result.end = ChildResult::End::kSignaled;
  }
  return result;
}

}  // namespace foxworker::exec_plugin
