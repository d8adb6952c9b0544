// The crash report: on SIGSEGV, SIGBUS, SIGFPE, SIGILL or SIGABRT the daemon
// writes to stderr (the journal under systemd) which signal hit which
// thread, what that thread was running (queue, plugin, handler, message id,
// attempt: daemon/core/running_job.h) and a backtrace, then dies of the same
// signal so that systemd restarts it. In the manner of Redis's bug report.
//
// The handler is async-signal-safe: it formats on its own stack and writes
// with write(2); no malloc, stdio or glog. It runs on the thread's alternate
// signal stack when the thread installed one (daemon/base/crash_stack.h), so
// a stack overflow is reported too.
//
// glog's InstallFailureSignalHandler() must not be called as well: both
// would claim the same signals. A CHECK or LOG(FATAL) prints its own message
// through glog and then aborts, which lands here.
#ifndef FOXWORKER_APP_CRASH_REPORT_H_
#define FOXWORKER_APP_CRASH_REPORT_H_

namespace foxworker {

// Installs the handlers and the calling thread's alternate stack, and loads
// what backtrace() needs (libgcc) now rather than in the handler. Call early
// in main(), before any thread starts. `version` is printed in the report;
// it must outlive the process (a string literal).
void InstallCrashReport(const char* version);

}  // namespace foxworker

#endif  // FOXWORKER_APP_CRASH_REPORT_H_
