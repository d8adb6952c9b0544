// What every handler thread is running right now: for the crash report (read
// from a signal handler on the crashing thread), for shutdown (which names
// the handlers it abandons), and for stuck-slot reports.
//
// A handler call is wrapped in a RunningJobScope on the thread that runs it.
// The record is fixed-size text, so a signal handler can read the current
// thread's record without allocating or locking.
#ifndef FOXWORKER_CORE_RUNNING_JOB_H_
#define FOXWORKER_CORE_RUNNING_JOB_H_

#include <atomic>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/core/message.h"

namespace foxworker {

class RunningJournal;

struct RunningJob {
  static constexpr size_t kTextCap = 128;
  char queue[kTextCap] = {0};
  char provider[kTextCap] = {0};  // "plugin exec"
  char handler[kTextCap] = {0};
  char message_id[kTextCap] = {0};
  uint32_t attempt = 0;
  uint64_t started_ns = 0;  // MonotonicNs()
  int thread_id = 0;        // gettid()
};

// A copy of one record, for code that is not a signal handler.
struct RunningJobInfo {
  std::string queue;
  std::string provider;
  std::string handler;
  std::string message_id;
  uint32_t attempt = 0;
  uint64_t started_ns = 0;
  int thread_id = 0;
};

// Marks the calling thread as running one handler call until destroyed.
// One per thread at a time (they do not nest). Cheap: the thread's record is
// made once and locked only by this thread and by readers of RunningJobs().
//
// While it lives, the message is also in the process's RunningJournal (when
// one is installed): `message_id`, or for a batch handler's call every
// message of `batch` (then `message_id` is only the text for reports).
class RunningJobScope {
 public:
  RunningJobScope(std::string_view queue, std::string_view provider, std::string_view handler,
                  std::string_view message_id, uint32_t attempt,
                  std::span<Delivery* const> batch = {});
  ~RunningJobScope();
  RunningJobScope(const RunningJobScope&) = delete;
  RunningJobScope& operator=(const RunningJobScope&) = delete;

  // Hands the message's journal entry to `hold` (a deferred delivery keeps
  // it until settled); the scope's end then leaves it alone.
  void KeepIn(RunningJournalHold& hold);
  // The same for the `i`th message of the batch the scope was made with.
  void KeepBatchIn(size_t i, RunningJournalHold& hold);

 private:
  RunningJournal* journal_ = nullptr;
  int slot_ = -1;
  std::vector<int> batch_slots_;
};

// The calling thread's current record, or null. Async-signal-safe: for the
// crash report.
const RunningJob* CurrentRunningJob();

// Every record alive now, in no particular order; `queue` non-empty: that
// queue's only.
std::vector<RunningJobInfo> RunningJobs(std::string_view queue = {});

}  // namespace foxworker

#endif  // FOXWORKER_CORE_RUNNING_JOB_H_
