#include "daemon/config/syscalls.h"

#include <sys/syscall.h>

#include <algorithm>
#include <string_view>

namespace foxworker {
namespace {

struct SyscallEntry {
  std::string_view name;
  int nr;
};

// Every name <sys/syscall.h> defines here (syscall_table.inc holds the
// names of both supported architectures, each under its own #ifdef).
constexpr SyscallEntry kSyscalls[] = {
#include "daemon/config/syscall_table.inc"
};

// See docs/configuration.md#isolation for why each group is here.
constexpr std::string_view kDefaultDenied[] = {
    // Another process's memory or state: the daemon's (its broker
    // credentials), a sibling child's.
    "ptrace", "process_vm_readv", "process_vm_writev", "process_madvise", "kcmp", "pidfd_getfd",
    "migrate_pages", "move_pages",
    // Mounts and the root directory.
    "mount", "umount2", "pivot_root", "chroot", "fsopen", "fsconfig", "fsmount", "fspick",
    "move_mount", "open_tree", "mount_setattr",
    // New namespaces (unprivileged user namespaces open much kernel code)
    // and joining others.
    "unshare", "setns",
    // The machine: power, kernel, modules, swap, accounting, quotas, names,
    // the kernel log, the clock, I/O ports.
    "reboot", "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "swapon", "swapoff", "acct", "quotactl", "quotactl_fd", "sethostname", "setdomainname",
    "syslog", "vhangup", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "iopl",
    "ioperm", "modify_ldt", "uselib",
    // Files by handle, around the directory permissions on the way.
    "open_by_handle_at", "name_to_handle_at", "lookup_dcookie",
    // Kernel interfaces open to unprivileged code that were the way in of
    // many kernel exploits; io_uring's operations also bypass this filter.
    "bpf", "perf_event_open", "userfaultfd", "keyctl", "add_key", "request_key",
    "io_uring_setup", "io_uring_enter", "io_uring_register", "personality",
};

// What foxworker-child calls once its filter is in place (strace -f of
// syscall_filter_test: loading the plugin, its threads, its channel, a
// denied call's SIGSYS handler), and the calls the C library uses for the
// same elsewhere (brk, mremap, nanosleep, ...). Not `kill`, `fcntl` or the
// network calls an operator may well want to deny.
constexpr std::string_view kChildNeeds[] = {
    "read", "write", "readv", "writev", "pread64", "openat", "open", "close", "fstat",
    "newfstatat", "statx", "lseek", "mmap", "munmap", "mprotect", "madvise", "mremap", "brk",
    "futex", "clone", "clone3", "set_robust_list", "rseq", "exit", "exit_group", "rt_sigaction",
    "rt_sigprocmask", "rt_sigreturn", "tgkill", "getpid", "gettid", "poll", "ppoll", "sendto",
    "shutdown", "clock_gettime", "clock_nanosleep", "nanosleep", "sched_yield",
    "restart_syscall", "getrandom", "prlimit64",
};

}  // namespace

std::optional<int> SyscallNumber(std::string_view name) {
  for (const SyscallEntry& e : kSyscalls)
    if (e.name == name) return e.nr;
  return std::nullopt;
}

std::string_view SyscallName(int nr) {
  for (const SyscallEntry& e : kSyscalls)
    if (e.nr == nr) return e.name;
  return {};
}

std::vector<std::string_view> SyscallNames() {
  std::vector<std::string_view> names;
  for (const SyscallEntry& e : kSyscalls) names.push_back(e.name);
  return names;
}

std::string_view SyscallFilterArch() {
#if defined(__x86_64__) && !defined(__ILP32__)
  return "x86_64";
#elif defined(__aarch64__) && !defined(__ILP32__)
  return "aarch64";
#else
  return "";
#endif
}

std::span<const std::string_view> DefaultDeniedSyscalls() { return kDefaultDenied; }

std::span<const std::string_view> SyscallsTheChildNeeds() { return kChildNeeds; }

}  // namespace foxworker
