// An alternate signal stack for the calling thread, so that the crash report
// (daemon/app/crash_report.h) can run when a thread overflowed its own stack.
// Linux gives every new thread an empty alternate stack: call this first
// thing in every thread the daemon starts (and once in main()).
#ifndef FOXWORKER_BASE_CRASH_STACK_H_
#define FOXWORKER_BASE_CRASH_STACK_H_

namespace foxworker {

// Maps a signal stack (with a guard page below it) for the calling thread and
// registers it with sigaltstack(2); it is unregistered and unmapped when the
// thread exits. A second call on the same thread does nothing. Failure (out
// of memory) is silent: a crash is then reported on the thread's own stack,
// which works for every crash but a stack overflow.
void InstallThreadCrashStack();

}  // namespace foxworker

#endif  // FOXWORKER_BASE_CRASH_STACK_H_
