#include "daemon/app/crash_report.h"

#include <execinfo.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "daemon/base/crash_stack.h"
#include "daemon/core/running_job.h"

namespace foxworker {
namespace {

constexpr int kCrashSignals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
constexpr int kMaxFrames = 64;

const char* g_version = "";
// The thread id writing the report, 0 while none is.
std::atomic<long> g_reporting{0};

// One line of the report, built on the stack and written with write(2).
class Line {
 public:
  Line& Text(const char* s) {
    while (*s != '\0' && n_ < sizeof buf_ - 1) buf_[n_++] = *s++;
    return *this;
  }
  Line& Dec(uint64_t v) {
    char tmp[24];
    size_t i = 0;
    do {
      tmp[i++] = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v != 0);
    while (i > 0 && n_ < sizeof buf_ - 1) buf_[n_++] = tmp[--i];
    return *this;
  }
  Line& Signed(int64_t v) {
    if (v < 0) {
      Text("-");
      return Dec(static_cast<uint64_t>(-(v + 1)) + 1);
    }
    return Dec(static_cast<uint64_t>(v));
  }
  Line& Hex(uintptr_t v) {
    char tmp[2 * sizeof v];
    size_t i = 0;
    do {
      tmp[i++] = "0123456789abcdef"[v & 0xf];
      v >>= 4;
    } while (v != 0);
    Text("0x");
    while (i > 0 && n_ < sizeof buf_ - 1) buf_[n_++] = tmp[--i];
    return *this;
  }
  // Writes the line and a newline to stderr.
  void Write() {
    buf_[n_++] = '\n';
    const char* p = buf_;
    size_t left = n_;
    while (left > 0) {
      ssize_t w = write(STDERR_FILENO, p, left);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) break;
      p += w;
      left -= static_cast<size_t>(w);
    }
    n_ = 0;
  }

 private:
  char buf_[768];
  size_t n_ = 0;
};

const char* SignalName(int sig) {
  switch (sig) {
    case SIGSEGV: return "SIGSEGV";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGILL: return "SIGILL";
    case SIGABRT: return "SIGABRT";
  }
  return "signal";
}

const char* SignalText(int sig) {
  switch (sig) {
    case SIGSEGV: return "invalid memory access";
    case SIGBUS: return "bus error";
    case SIGFPE: return "arithmetic exception";
    case SIGILL: return "illegal instruction";
    case SIGABRT: return "aborted";
  }
  return "";
}

// The kernel's reason for a fault (si_code > 0), or null.
const char* FaultCodeName(int sig, int code) {
  switch (sig) {
    case SIGSEGV:
      switch (code) {
        case SEGV_MAPERR: return "SEGV_MAPERR (address not mapped)";
        case SEGV_ACCERR: return "SEGV_ACCERR (no permission for the access)";
      }
      break;
    case SIGBUS:
      switch (code) {
        case BUS_ADRALN: return "BUS_ADRALN (misaligned address)";
        case BUS_ADRERR: return "BUS_ADRERR (no such physical address, e.g. past the end of a mapped file)";
        case BUS_OBJERR: return "BUS_OBJERR (hardware error)";
      }
      break;
    case SIGFPE:
      switch (code) {
        case FPE_INTDIV: return "FPE_INTDIV (integer division by zero)";
        case FPE_INTOVF: return "FPE_INTOVF (integer overflow)";
        case FPE_FLTDIV: return "FPE_FLTDIV (floating-point division by zero)";
        case FPE_FLTOVF: return "FPE_FLTOVF (floating-point overflow)";
        case FPE_FLTUND: return "FPE_FLTUND (floating-point underflow)";
        case FPE_FLTRES: return "FPE_FLTRES (floating-point inexact result)";
        case FPE_FLTINV: return "FPE_FLTINV (invalid floating-point operation)";
        case FPE_FLTSUB: return "FPE_FLTSUB (subscript out of range)";
      }
      break;
    case SIGILL:
      switch (code) {
        case ILL_ILLOPC: return "ILL_ILLOPC (illegal opcode)";
        case ILL_ILLOPN: return "ILL_ILLOPN (illegal operand)";
        case ILL_ILLADR: return "ILL_ILLADR (illegal addressing mode)";
        case ILL_ILLTRP: return "ILL_ILLTRP (illegal trap)";
        case ILL_PRVOPC: return "ILL_PRVOPC (privileged opcode)";
        case ILL_PRVREG: return "ILL_PRVREG (privileged register)";
        case ILL_COPROC: return "ILL_COPROC (coprocessor error)";
        case ILL_BADSTK: return "ILL_BADSTK (internal stack error)";
      }
      break;
  }
  return nullptr;
}

uint64_t MonotonicNow() {
  // steady_clock is CLOCK_MONOTONIC: comparable with RunningJob::started_ns.
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

// Restores the default action and makes `sig` pending on this thread: it
// kills the process as soon as the handler returns (the signal is blocked
// until then). A fault would also recur on return; this covers a signal that
// was sent (abort(), kill).
void DieOf(int sig) {
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  sigaction(sig, &dfl, nullptr);
  syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), sig);
}

void OnCrash(int sig, siginfo_t* info, void* /*ucontext*/) {
  const int saved_errno = errno;
  const long tid = syscall(SYS_gettid);
  long expected = 0;
  if (!g_reporting.compare_exchange_strong(expected, tid)) {
    if (expected == tid) {
      // The report itself crashed (a broken unwinder, say): stop here.
      Line().Text("=== crashed again (").Text(SignalName(sig)).Text(") while writing the crash report ===").Write();
      DieOf(sig);
      return;
    }
    // Another thread is writing its report and will end the process; wait
    // for it, but not forever (its backtrace could hang).
    for (int i = 0; i < 100; ++i) {
      struct timespec ts = {0, 50 * 1000 * 1000};
      nanosleep(&ts, nullptr);
    }
    DieOf(sig);
    return;
  }

  Line line;
  line.Text("=== FOXWORKERD CRASH REPORT START (foxworkerd ").Text(g_version).Text(") ===").Write();
  line.Text("foxworkerd crashed: ").Text(SignalName(sig)).Text(" (signal ").Dec(static_cast<uint64_t>(sig))
      .Text(", ").Text(SignalText(sig)).Text(")");
  if (info != nullptr) {
    const char* code = FaultCodeName(sig, info->si_code);
    if (info->si_code > 0 && info->si_code != SI_KERNEL && code != nullptr) {
      line.Text(", code ").Text(code).Text(", fault address ")
          .Hex(reinterpret_cast<uintptr_t>(info->si_addr));
    } else if (info->si_code <= 0) {
      // Sent, not a fault: abort(), raise(), kill, tgkill.
      line.Text(", sent by pid ").Signed(info->si_pid);
      if (info->si_pid == getpid())
        line.Text(" (this process: abort(), raise() or a failed CHECK)");
      else
        line.Text(" uid ").Dec(info->si_uid);
    } else {
      line.Text(", code ").Signed(info->si_code);
    }
  }
  line.Write();
  char name[17] = {0};
  prctl(PR_GET_NAME, name, 0, 0, 0);
  line.Text("pid ").Dec(static_cast<uint64_t>(getpid())).Text(", thread ").Dec(static_cast<uint64_t>(tid))
      .Text(" \"").Text(name).Text("\"").Write();
  const RunningJob* job = CurrentRunningJob();
  if (job != nullptr) {
    const uint64_t now = MonotonicNow();
    const uint64_t ms = now > job->started_ns ? (now - job->started_ns) / 1000000 : 0;
    line.Text("running on this thread: ").Text(job->provider).Text(", handler ").Text(job->handler)
        .Text(", queue ").Text(job->queue).Text(", message id ").Text(job->message_id)
        .Text(", attempt ").Dec(job->attempt).Text(", started ").Dec(ms).Text(" ms ago")
        .Write();
  } else {
    line.Text("running on this thread: no handler running on this thread").Write();
  }
  line.Text("backtrace (resolve foxworkerd(+0x...) offsets with: addr2line -Cfe <binary> 0x...):").Write();
  void* frames[kMaxFrames];
  const int n = backtrace(frames, kMaxFrames);
  backtrace_symbols_fd(frames, n, STDERR_FILENO);
  line.Text("=== FOXWORKERD CRASH REPORT END: dying of ").Text(SignalName(sig))
      .Text(" (under systemd, Restart=on-failure starts the daemon again) ===").Write();
  errno = saved_errno;
  DieOf(sig);
}

}  // namespace

void InstallCrashReport(const char* version) {
  g_version = version;
  // backtrace() loads libgcc's unwinder on first use, which allocates: do it
  // now, not in the handler.
  void* frames[2];
  backtrace(frames, 2);
  InstallThreadCrashStack();
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = OnCrash;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  for (int sig : kCrashSignals) sigaddset(&sa.sa_mask, sig);
  for (int sig : kCrashSignals) sigaction(sig, &sa, nullptr);
}

}  // namespace foxworker
