// isolation: process. The children's seccomp filter (a queue's
// `process: syscall_filter`, `syscall_deny`, `syscall_action`; see
// docs/configuration.md#isolation): a classic BPF program that foxworker-child
// installs after its own setup and before it loads the plugin.
//
// The program checks the architecture first (a call of another ABI, i386 on
// x86_64, and x32 calls are denied: their numbers mean other calls), then
// the denied numbers. A denied call fails with EPERM (`errno`), or (`kill`)
// traps into the child's SIGSYS handler, which writes a DenialNote on a pipe
// to the daemon and lets SIGSYS kill the child: the daemon then names the
// call in the reason it charges.
#ifndef FOXWORKER_ISOLATION_SYSCALL_FILTER_H_
#define FOXWORKER_ISOLATION_SYSCALL_FILTER_H_

#include <linux/filter.h>
#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "daemon/base/status.h"
#include "daemon/config/config.h"
#include "daemon/isolation/wire.h"

namespace foxworker::isolation {

struct SyscallFilterSpec {
  bool on = false;
  bool kill = false;        // SIGSYS rather than EPERM
  bool namespaces = false;  // clone() with CLONE_NEW* is denied; clone3() answers ENOSYS
  std::vector<uint32_t> deny;  // call numbers of this architecture, sorted, unique

  bool operator==(const SyscallFilterSpec&) const = default;
};

// The filter a queue's process: block asks for (names resolved: the config
// parser accepted only known ones).
SyscallFilterSpec FilterSpecOf(const ProcessIsolationConfig& config);

// The spec on the INIT frame.
void WriteFilterSpec(Writer& w, const SyscallFilterSpec& spec);
bool ReadFilterSpec(Reader& r, SyscallFilterSpec* spec);

// The BPF program for `spec` (on an architecture SyscallFilterArch() names).
std::vector<sock_filter> BuildFilterProgram(const SyscallFilterSpec& spec);

// In the child, with no_new_privs set: installs the filter on every thread
// (SECCOMP_FILTER_FLAG_TSYNC) and, with `kill`, the SIGSYS handler that
// writes a DenialNote on `note_fd` (the write end of the daemon's pipe).
Status InstallSyscallFilter(const SyscallFilterSpec& spec, int note_fd);

// The message the calling thread runs (0: none), for the note of a call it
// makes that is denied. Set by the child's worker threads.
void SetFilteredJob(uint64_t id);

// What a child's SIGSYS handler writes, once per denied call (a pipe write
// of this size is atomic).
struct DenialNote {
  uint32_t magic = 0;
  int32_t pid = 0;      // the process that made the call
  int32_t nr = 0;       // si_syscall
  uint32_t arch = 0;    // si_arch (AUDIT_ARCH_*)
  uint64_t job = 0;     // SetFilteredJob of the calling thread
};

// The first note on `fd` (non-blocking, drained) from process `pid`.
std::optional<DenialNote> ReadDenialNote(int fd, pid_t pid);

// "syscall_filter denied ptrace", or a call of another ABI.
std::string DescribeDenial(const DenialNote& note);

}  // namespace foxworker::isolation

#endif  // FOXWORKER_ISOLATION_SYSCALL_FILTER_H_
