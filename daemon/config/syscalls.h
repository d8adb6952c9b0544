// System call names of the architecture this is built for, and the lists
// behind a queue's `process: syscall_filter` (isolation: process; see
// docs/configuration.md#isolation). The config parser checks names with
// them; daemon/isolation/syscall_filter.h turns them into the filter.
#ifndef FOXWORKER_CONFIG_SYSCALLS_H_
#define FOXWORKER_CONFIG_SYSCALLS_H_

#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace foxworker {

// The number of system call `name` ("ptrace") here, or nullopt when this
// architecture has none of that name.
std::optional<int> SyscallNumber(std::string_view name);

// The name of system call `nr` here, or "" when unknown.
std::string_view SyscallName(int nr);

// Every name SyscallNumber knows, for "did you mean".
std::vector<std::string_view> SyscallNames();

// The architecture a syscall filter is built for ("x86_64", "aarch64"), or
// "" when the filter does not support this one.
std::string_view SyscallFilterArch();

// `syscall_filter: default`: calls that no job handler needs and that reach
// other processes, the machine or kernel code unprivileged code has no
// business in. Names this architecture lacks (iopl on aarch64) are skipped.
// Besides these the default filter refuses clone() with namespace flags
// (CLONE_NEWUSER, ...) and answers clone3() with ENOSYS (its flags cannot be
// read by a filter; the C library then uses clone()).
std::span<const std::string_view> DefaultDeniedSyscalls();

// Calls foxworker-child itself makes after its filter is in place (reading
// and writing its channel, threads, memory, signals, loading the plugin):
// `syscall_deny` refuses them rather than start children that cannot run.
std::span<const std::string_view> SyscallsTheChildNeeds();

}  // namespace foxworker

#endif  // FOXWORKER_CONFIG_SYSCALLS_H_
