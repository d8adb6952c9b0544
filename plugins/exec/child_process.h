// Runs one child process for the exec plugin: feeds it its input, captures
// the tail of its output, enforces a deadline and a cancellation check, and
// kills its whole process group when either ends the run.
#ifndef FOXWORKER_PLUGINS_EXEC_CHILD_PROCESS_H_
#define FOXWORKER_PLUGINS_EXEC_CHILD_PROCESS_H_

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace foxworker::exec_plugin {

struct ChildSpec {
  std::string executable;         // absolute path
  std::vector<std::string> argv;  // argv[0] as configured
  std::vector<std::string> env;   // "NAME=value" entries: the child's whole environment
  std::string working_dir;        // empty: inherit
  size_t max_output_bytes = 0;    // how much of the output's tail to keep
};

struct ChildResult {
  enum class End {
    kExited,       // exit_code is set
    kSignaled,     // signal is set
    kTimedOut,     // the deadline passed; the group was terminated
    kCancelled,    // the cancellation check fired; the group was terminated
    kSpawnFailed,  // error is set; nothing ran
    kLost,         // error is set; it ran, but its exit status could not be collected
  };
  End end = End::kSpawnFailed;
  int exit_code = 0;
  int signal = 0;
  std::string output;             // the last max_output_bytes of stdout+stderr
  bool output_truncated = false;  // older output was dropped
  std::string error;
  std::chrono::steady_clock::duration elapsed{};
};

// Grace between SIGTERM and SIGKILL when a run is ended early.
inline constexpr std::chrono::milliseconds kTerminateGrace{2000};

// Spawns spec.executable in a new process group with `input` on its stdin and
// stdout and stderr both captured. Returns when the child exited and was
// reaped. When `deadline` passes or `cancelled()` returns true (polled about
// every 100ms), the group gets SIGTERM, then SIGKILL after kTerminateGrace.
// Processes the child left behind in its group are killed once it exits.
//
// Thread-safe: uses no shared state; safe to call from many threads at once.
// Briefly blocks SIGPIPE in the calling thread. REQUIRES: nothing else in the
// process reaps children it did not spawn (waitpid(-1, ...)).
ChildResult RunChild(const ChildSpec& spec, std::string_view input,
                     std::chrono::steady_clock::time_point deadline,
                     const std::function<bool()>& cancelled);

}  // namespace foxworker::exec_plugin

#endif  // FOXWORKER_PLUGINS_EXEC_CHILD_PROCESS_H_
