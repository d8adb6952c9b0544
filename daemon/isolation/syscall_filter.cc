#include "daemon/isolation/syscall_filter.h"

#include <linux/audit.h>
#include <linux/seccomp.h>
#include <dirent.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>

#include "daemon/config/syscalls.h"

namespace foxworker::isolation {
namespace {

#if defined(__x86_64__)
constexpr uint32_t kNativeArch = AUDIT_ARCH_X86_64;
// x32 calls come with the x86_64 audit arch and this bit in their number.
constexpr uint32_t kX32Bit = 0x40000000;  // __X32_SYSCALL_BIT
#elif defined(__aarch64__)
constexpr uint32_t kNativeArch = AUDIT_ARCH_AARCH64;
#else
constexpr uint32_t kNativeArch = 0;  // unsupported: the config refuses a filter
#endif

// si_code of a SIGSYS from seccomp (SYS_SECCOMP in <asm-generic/siginfo.h>,
// which clashes with <signal.h>).
constexpr int kSysSeccomp = 1;
constexpr uint32_t kNoteMagic = 0x66777331;  // "fws1"

// Namespace flags clone() takes (CLONE_NEWTIME is clone3's and unshare's
// only: in clone() its bit is part of the exit signal).
constexpr uint32_t kCloneNamespaceFlags = CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS |
                                          CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID |
                                          CLONE_NEWNET;

int g_note_fd = -1;
// A plain thread_local of the executable: static TLS, safe to read in a
// signal handler.
thread_local uint64_t t_job = 0;

sock_filter Stmt(uint16_t code, uint32_t k) { return BPF_STMT(code, k); }
sock_filter Jump(uint16_t code, uint32_t k, uint8_t jt, uint8_t jf) {
  return BPF_JUMP(code, k, jt, jf);
}

// A denied call, trapped: notes it for the daemon, then dies of SIGSYS.
void OnSigsys(int, siginfo_t* info, void*) {
  if (info->si_code == kSysSeccomp && g_note_fd >= 0) {
    DenialNote note;
    note.magic = kNoteMagic;
    note.pid = getpid();
    note.nr = info->si_syscall;
    note.arch = info->si_arch;
    note.job = t_job;
    // Async-signal-safe, and atomic on a pipe at this size.
    if (write(g_note_fd, &note, sizeof note) < 0) {
      // Nothing to do: the daemon reports a bare SIGSYS.
    }
  }
  // The default action (terminate, as by SIGSYS), then SIGSYS, unblocked
  // (it is blocked in its own handler): the process ends here.
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigaction(SIGSYS, &dfl, nullptr);
  syscall(SYS_tgkill, getpid(), gettid(), SIGSYS);
  sigset_t sys;
  sigemptyset(&sys);
  sigaddset(&sys, SIGSYS);
  sigprocmask(SIG_UNBLOCK, &sys, nullptr);
  _exit(128 + SIGSYS);  // not reached
}

// The threads of this process (/proc/self/task), or -1 when unknown.
int ThreadCount() {
  DIR* dir = opendir("/proc/self/task");
  if (dir == nullptr) return -1;
  int n = 0;
  while (const dirent* e = readdir(dir))
    if (e->d_name[0] != '.') ++n;
  closedir(dir);
  return n;
}

}  // namespace

SyscallFilterSpec FilterSpecOf(const ProcessIsolationConfig& config) {
  SyscallFilterSpec spec;
  if (config.syscall_filter == SyscallFilter::kDefault) {
    for (std::string_view name : DefaultDeniedSyscalls()) {
      // A name this architecture lacks (iopl on aarch64) has nothing to deny.
      if (std::optional<int> nr = SyscallNumber(name)) spec.deny.push_back(static_cast<uint32_t>(*nr));
    }
    spec.namespaces = true;
  }
  for (const std::string& name : config.syscall_deny) {
    // The parser accepted known names only.
    if (std::optional<int> nr = SyscallNumber(name)) spec.deny.push_back(static_cast<uint32_t>(*nr));
  }
  std::sort(spec.deny.begin(), spec.deny.end());
  spec.deny.erase(std::unique(spec.deny.begin(), spec.deny.end()), spec.deny.end());
  spec.on = config.syscall_filter != SyscallFilter::kNone || !config.syscall_deny.empty();
  spec.kill = spec.on && config.syscall_action == SyscallAction::kKill;
  return spec;
}

void WriteFilterSpec(Writer& w, const SyscallFilterSpec& spec) {
  w.U8(spec.on ? 1 : 0);
  w.U8(spec.kill ? 1 : 0);
  w.U8(spec.namespaces ? 1 : 0);
  w.U32(static_cast<uint32_t>(spec.deny.size()));
  for (uint32_t nr : spec.deny) w.U32(nr);
}

bool ReadFilterSpec(Reader& r, SyscallFilterSpec* spec) {
  spec->on = r.U8() != 0;
  spec->kill = r.U8() != 0;
  spec->namespaces = r.U8() != 0;
  const uint32_t n = r.U32();
  if (!r.ok() || n > 4096) return false;
  spec->deny.resize(n);
  for (uint32_t& nr : spec->deny) nr = r.U32();
  return r.ok();
}

std::vector<sock_filter> BuildFilterProgram(const SyscallFilterSpec& spec) {
  const uint32_t deny = spec.kill ? SECCOMP_RET_TRAP : SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA);
  std::vector<sock_filter> p;
  p.push_back(Stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)));
  p.push_back(Jump(BPF_JMP | BPF_JEQ | BPF_K, kNativeArch, 1, 0));
  p.push_back(Stmt(BPF_RET | BPF_K, deny));  // another ABI: its numbers mean other calls
  p.push_back(Stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)));
#if defined(__x86_64__)
  p.push_back(Jump(BPF_JMP | BPF_JGE | BPF_K, kX32Bit, 0, 1));
  p.push_back(Stmt(BPF_RET | BPF_K, deny));
#endif
  // One test per denied call: short jumps, however long the list. The
  // list is tens of calls; the cost is tens of instructions per call.
  for (uint32_t nr : spec.deny) {
    p.push_back(Jump(BPF_JMP | BPF_JEQ | BPF_K, nr, 0, 1));
    p.push_back(Stmt(BPF_RET | BPF_K, deny));
  }
  if (spec.namespaces) {
    // clone3() passes its flags in memory a filter cannot read: ENOSYS
    // sends the C library back to clone(), whose flags are an argument.
    p.push_back(Jump(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone3, 0, 1));
    p.push_back(Stmt(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)));
    // clone(flags, ...) on both architectures; the flags are in the low
    // word of the first argument (little-endian).
    p.push_back(Jump(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone, 0, 3));
    p.push_back(Stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, args[0])));
    p.push_back(Jump(BPF_JMP | BPF_JSET | BPF_K, kCloneNamespaceFlags, 0, 1));
    p.push_back(Stmt(BPF_RET | BPF_K, deny));
  }
  p.push_back(Stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
  return p;
}

Status InstallSyscallFilter(const SyscallFilterSpec& spec, int note_fd) {
  if (!spec.on) return Status::Ok();
  if (kNativeArch == 0)
    return Status::InvalidArgument("syscall_filter: not supported on this architecture");
  std::vector<sock_filter> program = BuildFilterProgram(spec);
  if (program.size() > BPF_MAXINSNS)
    return Status::InvalidArgument("syscall_filter: the program has " +
                                   std::to_string(program.size()) + " instructions, more than " +
                                   std::to_string(BPF_MAXINSNS));
  if (spec.kill) {
    g_note_fd = note_fd;
    struct sigaction sa {};
    sa.sa_sigaction = &OnSigsys;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSYS, &sa, nullptr) != 0)
      return Status::InvalidArgument(std::string("syscall_filter: cannot handle SIGSYS: ") +
                                     std::strerror(errno));
  }
  sock_fprog prog{static_cast<unsigned short>(program.size()), program.data()};
  // Every thread of the process, should a library have started one.
  const long rc = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog);
  if (rc > 0)
    return Status::InvalidArgument("syscall_filter: cannot install on thread " + std::to_string(rc));
  if (rc == 0) return Status::Ok();
  const int err = errno;
  if (err != EPERM && err != ENOSYS)
    return Status::InvalidArgument(std::string("syscall_filter: cannot install: ") +
                                   std::strerror(err));
  // seccomp(2) itself is denied: the shipped unit's SystemCallFilter
  // (@system-service) leaves it out. prctl() installs the same filter, on
  // the calling thread only: right while it is the only one.
  const int threads = ThreadCount();
  if (threads != 1)
    return Status::InvalidArgument(
        std::string("syscall_filter: seccomp(2) is denied (") + std::strerror(err) +
        "; a SystemCallFilter of the service?) and prctl() would filter one of the child's " +
        (threads < 0 ? "threads (/proc/self/task unreadable)" : std::to_string(threads) + " threads"));
  if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) != 0)
    return Status::InvalidArgument(std::string("syscall_filter: cannot install: ") +
                                   std::strerror(errno));
  return Status::Ok();
}

void SetFilteredJob(uint64_t id) { t_job = id; }

std::optional<DenialNote> ReadDenialNote(int fd, pid_t pid) {
  std::optional<DenialNote> found;
  DenialNote note;
  // Whole notes only: each was one atomic write.
  while (read(fd, &note, sizeof note) == static_cast<ssize_t>(sizeof note)) {
    if (!found && note.magic == kNoteMagic && note.pid == pid) found = note;
  }
  return found;
}

std::string DescribeDenial(const DenialNote& note) {
  if (note.arch != kNativeArch) {
    char arch[16];
    snprintf(arch, sizeof arch, "0x%x", note.arch);
    const std::string abi = note.arch == AUDIT_ARCH_I386  ? "i386"
                            : note.arch == AUDIT_ARCH_ARM ? "arm"
                                                          : "audit arch " + std::string(arch);
    return "syscall_filter denied a call of another ABI (" + abi + " system call " +
           std::to_string(note.nr) + ")";
  }
#if defined(__x86_64__)
  if ((static_cast<uint32_t>(note.nr) & kX32Bit) != 0)
    return "syscall_filter denied an x32 call (x32 system call " +
           std::to_string(static_cast<uint32_t>(note.nr) & ~kX32Bit) + ")";
#endif
  const std::string_view name = SyscallName(note.nr);
  return "syscall_filter denied " +
         (name.empty() ? "system call " + std::to_string(note.nr) : std::string(name));
}

}  // namespace foxworker::isolation
