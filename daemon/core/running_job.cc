#include "daemon/core/running_job.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <mutex>

#include "daemon/base/clock.h"
#include "daemon/core/running_journal.h"

namespace foxworker {
namespace {

// One per thread that ever ran a handler, registered for RunningJobs() while
// the thread lives.
struct ThreadRecord {
  std::mutex mu;
  RunningJob job;       // GUARDED_BY(mu) for readers on other threads
  bool active = false;  // GUARDED_BY(mu)
};

std::mutex& RegistryMutex() {
  static std::mutex* mu = new std::mutex();
  return *mu;
}
std::vector<ThreadRecord*>& Registry() {  // GUARDED_BY(RegistryMutex())
  static auto* registry = new std::vector<ThreadRecord*>();
  return *registry;
}

// Initial-exec TLS: the signal handler reads it without allocating.
thread_local ThreadRecord* t_record __attribute__((tls_model("initial-exec"))) = nullptr;

// Unregisters and frees the thread's record when the thread exits.
struct RecordOwner {
  ThreadRecord* record = nullptr;
  ~RecordOwner() {
    if (record == nullptr) return;
    {
      std::lock_guard<std::mutex> lock(RegistryMutex());
      auto& r = Registry();
      r.erase(std::remove(r.begin(), r.end(), record), r.end());
    }
    t_record = nullptr;
    delete record;
  }
};
thread_local RecordOwner t_owner;

ThreadRecord* ThisThreadsRecord() {
  if (t_record == nullptr) {
    auto* record = new ThreadRecord();
    record->job.thread_id = static_cast<int>(syscall(SYS_gettid));
    {
      std::lock_guard<std::mutex> lock(RegistryMutex());
      Registry().push_back(record);
    }
    t_owner.record = record;
    t_record = record;
  }
  return t_record;
}

void CopyText(char (&out)[RunningJob::kTextCap], std::string_view text) {
  const size_t n = std::min(text.size(), RunningJob::kTextCap - 1);
  std::copy_n(text.data(), n, out);
  out[n] = '\0';
}

}  // namespace

RunningJobScope::RunningJobScope(std::string_view queue, std::string_view provider,
                                 std::string_view handler, std::string_view message_id,
                                 uint32_t attempt, std::span<Delivery* const> batch)
    : journal_(RunningJournal::Current()) {
  if (journal_ != nullptr) {
    if (batch.empty()) {
      slot_ = journal_->Begin(queue, message_id);
    } else {
      batch_slots_.reserve(batch.size());
      for (const Delivery* d : batch) batch_slots_.push_back(journal_->Begin(queue, d->msg.id));
    }
  }
  ThreadRecord* r = ThisThreadsRecord();
  std::lock_guard<std::mutex> lock(r->mu);
  CopyText(r->job.queue, queue);
  CopyText(r->job.provider, provider);
  CopyText(r->job.handler, handler);
  CopyText(r->job.message_id, message_id);
  r->job.attempt = attempt;
  r->job.started_ns = MonotonicNs();
  r->active = true;
}

RunningJobScope::~RunningJobScope() {
  {
    ThreadRecord* r = t_record;
    std::lock_guard<std::mutex> lock(r->mu);
    r->active = false;
  }
  if (journal_ != nullptr) {
    journal_->End(slot_);
    for (int slot : batch_slots_) journal_->End(slot);
  }
}

void RunningJobScope::KeepIn(RunningJournalHold& hold) {
  if (journal_ == nullptr || slot_ < 0) return;
  hold.Take(journal_, slot_);
  slot_ = -1;
}

void RunningJobScope::KeepBatchIn(size_t i, RunningJournalHold& hold) {
  if (journal_ == nullptr || i >= batch_slots_.size() || batch_slots_[i] < 0) return;
  hold.Take(journal_, batch_slots_[i]);
  batch_slots_[i] = -1;
}

const RunningJob* CurrentRunningJob() {
  const ThreadRecord* r = t_record;
  // No lock: only this thread writes its record, and it is the one asking.
  return r != nullptr && r->active ? &r->job : nullptr;
}

std::vector<RunningJobInfo> RunningJobs(std::string_view queue) {
  std::vector<RunningJobInfo> out;
  std::lock_guard<std::mutex> registry_lock(RegistryMutex());
  for (ThreadRecord* r : Registry()) {
    std::lock_guard<std::mutex> lock(r->mu);
    if (!r->active || (!queue.empty() && queue != r->job.queue)) continue;
    const RunningJob& j = r->job;
    out.push_back(RunningJobInfo{j.queue, j.provider, j.handler, j.message_id, j.attempt,
                                 j.started_ns, j.thread_id});
  }
  return out;
}

}  // namespace foxworker
