// RunningJournal: which messages this daemon's handlers are running, kept in
// a small memory-mapped file (MAP_SHARED) under daemon.state_dir so that it
// outlives a crash of the process (SIGSEGV, kill -9): the page cache keeps
// what was written even though the process never got to flush anything.
//
// After a crash the next daemon reads it (before its backends claim
// anything) and each backend gives back the attempt of every message the
// dead daemon had claimed but never started: only a message whose handler
// was running is charged for the crash (docs/semantics.md, "Attempts after a
// crash"). The journal is proof only when it is intact and from this boot;
// otherwise every claimed message stays charged, as a lease expiry charges
// it: never refund without proof, or a message that crashes the daemon
// would run forever uncounted.
//
// File layout (native endianness; it never leaves the machine):
//   header (4 KiB): magic, version, sizes, pid, boot id, start time, a
//     checksum of those, and a table of the claim owners the backends use
//     (local lease owner, Redis consumer name) by backend name;
//   kEntries entries of 128 bytes: state (free, being written, running),
//     a checksum, a 64-bit hash of the message id, and the queue and id as
//     text (cut to fit) for the logs.
// A record is written completely before its state says "running" (a release
// store), so a torn record reads as "not running": its handler had not been
// called yet.
//
// Thread-safety: Begin and End may be called from any thread at once (a slot
// is taken by compare-and-swap); RecordOwner from one thread at a time.
#ifndef FOXWORKER_CORE_RUNNING_JOURNAL_H_
#define FOXWORKER_CORE_RUNNING_JOURNAL_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "daemon/base/status.h"

namespace foxworker {

// What a dead daemon's journal proves about the moment it died.
struct RunningJournalEvidence {
  uint32_t pid = 0;  // of the daemon that wrote it
  std::map<std::string, std::string> owners;  // backend name -> claim owner it used
  std::unordered_set<uint64_t> running;       // RunningJournalIdHash of each running id
  std::vector<std::string> running_ids;       // as text (maybe cut), for logs

  bool WasRunning(std::string_view message_id) const;
  // The claim owner backend `backend` used, or null.
  const std::string* OwnerOf(std::string_view backend) const;
};

// The hash under which a message id is journaled. Two ids with one hash make
// the journal charge both (never refund wrongly).
uint64_t RunningJournalIdHash(std::string_view message_id);

class RunningJournal {
 public:
  static constexpr size_t kEntries = 4096;
  static constexpr size_t kOwners = 16;
  static constexpr const char* kFileName = "running.journal";

  // Opens (creating it) `path` and locks it (flock) for this process: the
  // lock, which the kernel drops when the process dies however it dies, is
  // what proves the previous writer dead. Reads what the file held into
  // previous(). Fails when the file cannot be opened, mapped or locked
  // (another live daemon uses it: the message says so).
  static Result<std::unique_ptr<RunningJournal>> Open(const std::string& path);

  ~RunningJournal();
  RunningJournal(const RunningJournal&) = delete;
  RunningJournal& operator=(const RunningJournal&) = delete;

  const std::string& path() const { return path_; }

  // What the file proved when it was opened, or null (then problem() says
  // why: missing or empty file, another boot, torn or foreign content, an
  // overflow); null with an empty problem() when the file was new.
  const std::shared_ptr<const RunningJournalEvidence>& previous() const { return previous_; }
  const std::string& problem() const { return problem_; }

  // Starts this daemon's record: a new header (this pid and boot), no
  // owners, no running entries. What the file held is gone.
  void Reset();

  // Records that backend `backend` claims as `owner`. Past kOwners, or for
  // names that do not fit, the backend is left out (its claims are then
  // charged after a crash, as without a journal) and false is returned.
  bool RecordOwner(std::string_view backend, std::string_view owner);

  // Marks `message_id` of `queue` as running; returns its slot for End, or
  // -1 when every slot is taken (the journal then marks itself overflowed
  // and stops being proof: everything is charged after a crash).
  int Begin(std::string_view queue, std::string_view message_id);
  void End(int slot);

  // The process's journal, which RunningJobScope writes to (null: none).
  static RunningJournal* Current();
  // Makes `journal` the current one. The process keeps it until it exits
  // (a handler that outlives its daemon's shutdown may still End into it).
  static void Install(std::unique_ptr<RunningJournal> journal);
  // No journal from now on: the current one's mapping is swapped for
  // anonymous memory (late Ends write nowhere) and its lock dropped. The
  // file keeps what it said, including handlers still running.
  static void Uninstall();

 private:
  RunningJournal(std::string path, int fd, void* map);
  void ReadPrevious();
  void Detach();

  const std::string path_;
  int fd_;
  void* map_;
  std::shared_ptr<const RunningJournalEvidence> previous_;
  std::string problem_;
};

// A journal entry kept past its handler call: a deferred delivery
// (FOXW_PENDING) holds its message's entry until the delivery is settled and
// destroyed (or reset for reuse), so a crash while it waits for complete()
// charges it like a running handler.
class RunningJournalHold {
 public:
  RunningJournalHold() = default;
  ~RunningJournalHold() { Release(); }
  RunningJournalHold(const RunningJournalHold&) = delete;
  RunningJournalHold& operator=(const RunningJournalHold&) = delete;

  void Take(RunningJournal* journal, int slot) {
    Release();
    journal_ = journal;
    slot_ = slot;
  }
  void Release() {
    if (journal_ != nullptr) journal_->End(slot_);
    journal_ = nullptr;
    slot_ = -1;
  }

 private:
  RunningJournal* journal_ = nullptr;
  int slot_ = -1;
};

}  // namespace foxworker

#endif  // FOXWORKER_CORE_RUNNING_JOURNAL_H_
