#include "daemon/core/running_journal.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <mutex>
#include <utility>

#include "daemon/base/clock.h"

namespace foxworker {
namespace {

constexpr char kMagic[8] = {'F', 'O', 'X', 'W', 'J', 'R', 'N', 'L'};
constexpr uint32_t kVersion = 1;
constexpr size_t kHeaderSize = 4096;
constexpr size_t kEntrySize = 128;

enum : uint32_t { kFree = 0, kWriting = 1, kRunning = 2 };

struct OwnerRecord {
  uint32_t state;  // kFree, kWriting, kRunning (= valid)
  uint32_t checksum;
  char backend[64];
  char owner[120];
};
static_assert(sizeof(OwnerRecord) == 192);

struct Header {
  char magic[8];
  uint32_t version;
  uint32_t header_size;
  uint32_t entry_size;
  uint32_t entries;
  uint32_t pid;
  uint32_t reserved;
  uint64_t started_wall_ms;
  char boot_id[40];
  uint32_t checksum;    // of magic..boot_id
  uint32_t overflowed;  // set once a Begin found no free slot
  char pad[1024 - 88];
  OwnerRecord owners[RunningJournal::kOwners];
};
static_assert(offsetof(Header, checksum) == 80);
static_assert(sizeof(Header) == 1024 + 16 * 192);
static_assert(sizeof(Header) <= kHeaderSize);

struct Entry {
  uint32_t state;
  uint32_t checksum;  // of id_hash..id
  uint64_t id_hash;
  char queue[48];
  char id[64];
};
static_assert(sizeof(Entry) == kEntrySize);

constexpr size_t kFileSize = kHeaderSize + RunningJournal::kEntries * kEntrySize;

// FNV-1a, 32 and 64 bits: cheap, and only has to catch torn or foreign data.
uint32_t Fnv32(const void* data, size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 16777619u;
  return h;
}

uint32_t HeaderChecksum(const Header& h) { return Fnv32(&h, offsetof(Header, checksum)); }
uint32_t OwnerChecksum(const OwnerRecord& o) {
  return Fnv32(o.backend, sizeof(o.backend) + sizeof(o.owner));
}
uint32_t EntryChecksum(const Entry& e) {
  return Fnv32(&e.id_hash, sizeof(e.id_hash) + sizeof(e.queue) + sizeof(e.id));
}

template <size_t N>
void CopyText(char (&out)[N], std::string_view text) {
  const size_t n = std::min(text.size(), N - 1);
  std::memcpy(out, text.data(), n);
  std::memset(out + n, 0, N - n);
}

template <size_t N>
std::string TextOf(const char (&in)[N]) {
  return std::string(in, strnlen(in, N));
}

std::atomic_ref<uint32_t> StateOf(uint32_t& state) { return std::atomic_ref<uint32_t>(state); }

// This boot's id; empty when unknown (then no journal is ever proof).
const std::string& BootId() {
  static const std::string id = [] {
    std::ifstream in("/proc/sys/kernel/random/boot_id");
    std::string s;
    std::getline(in, s);
    return s;
  }();
  return id;
}

Header* HeaderOf(void* map) { return static_cast<Header*>(map); }
Entry* EntriesOf(void* map) {
  return reinterpret_cast<Entry*>(static_cast<char*>(map) + kHeaderSize);
}

std::atomic<RunningJournal*> g_current{nullptr};
std::mutex g_installed_mu;
// Every journal ever installed, kept (and reachable) until exit.
std::vector<std::unique_ptr<RunningJournal>>& Installed() {
  static auto* v = new std::vector<std::unique_ptr<RunningJournal>>();
  return *v;
}

thread_local size_t t_hint = 0;

}  // namespace

uint64_t RunningJournalIdHash(std::string_view id) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : id) h = (h ^ c) * 1099511628211ull;
  return h == 0 ? 1 : h;
}

bool RunningJournalEvidence::WasRunning(std::string_view message_id) const {
  return running.count(RunningJournalIdHash(message_id)) > 0;
}

const std::string* RunningJournalEvidence::OwnerOf(std::string_view backend) const {
  auto it = owners.find(std::string(backend));
  return it == owners.end() ? nullptr : &it->second;
}

Result<std::unique_ptr<RunningJournal>> RunningJournal::Open(const std::string& path) {
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return Status::IoError("cannot open " + path + ": " + strerror(errno));
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int e = errno;
    close(fd);
    if (e == EWOULDBLOCK) {
      return Status::Unavailable(path + " is locked by another running daemon (one journal per "
                                 "daemon: give each daemon its own daemon.state_dir)");
    }
    return Status::IoError("cannot lock " + path + ": " + strerror(e));
  }
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    const int e = errno;
    close(fd);
    return Status::IoError("cannot stat " + path + ": " + strerror(e));
  }
  const bool was_new = st.st_size == 0;
  const bool right_size = static_cast<size_t>(st.st_size) == kFileSize;
  if (!right_size && (ftruncate(fd, 0) != 0 || ftruncate(fd, kFileSize) != 0)) {
    const int e = errno;
    close(fd);
    return Status::IoError("cannot size " + path + ": " + strerror(e));
  }
  void* map = mmap(nullptr, kFileSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (map == MAP_FAILED) {
    const int e = errno;
    close(fd);
    return Status::IoError("cannot map " + path + ": " + strerror(e));
  }
  std::unique_ptr<RunningJournal> j(new RunningJournal(path, fd, map));
  if (right_size) {
    j->ReadPrevious();
  } else if (!was_new) {
    j->problem_ = "it had " + std::to_string(st.st_size) + " bytes, not " +
                  std::to_string(kFileSize) + " (torn or not a journal)";
  }
  return j;
}

RunningJournal::RunningJournal(std::string path, int fd, void* map)
    : path_(std::move(path)), fd_(fd), map_(map) {}

RunningJournal::~RunningJournal() {
  if (map_ != nullptr) munmap(map_, kFileSize);
  if (fd_ >= 0) close(fd_);
}

void RunningJournal::ReadPrevious() {
  const Header& h = *HeaderOf(map_);
  if (std::memcmp(h.magic, kMagic, sizeof(kMagic)) != 0) {
    problem_ = "it does not start with the journal's magic (not a journal, or zeroed)";
    return;
  }
  if (h.version != kVersion || h.header_size != kHeaderSize || h.entry_size != kEntrySize ||
      h.entries != kEntries) {
    problem_ = "it has version " + std::to_string(h.version) + " or a layout this daemon does not know";
    return;
  }
  if (h.checksum != HeaderChecksum(h)) {
    problem_ = "its header checksum does not match (torn or corrupted)";
    return;
  }
  const std::string boot = TextOf(h.boot_id);
  if (BootId().empty() || boot != BootId()) {
    problem_ = "it was written before the machine restarted (boot " + boot +
               "): the page cache that kept it may not have reached the disk";
    return;
  }
  if (h.overflowed != 0) {
    problem_ = "more handlers ran at once than it has slots (" + std::to_string(kEntries) + ")";
    return;
  }
  auto ev = std::make_shared<RunningJournalEvidence>();
  ev->pid = h.pid;
  for (const OwnerRecord& o : h.owners) {
    if (o.state != kRunning) continue;  // free, or being written: that backend never started
    if (o.checksum != OwnerChecksum(o)) {
      problem_ = "an owner record's checksum does not match (corrupted)";
      return;
    }
    ev->owners[TextOf(o.backend)] = TextOf(o.owner);
  }
  const Entry* entries = EntriesOf(map_);
  for (size_t i = 0; i < kEntries; ++i) {
    const Entry& e = entries[i];
    if (e.state == kFree || e.state == kWriting) continue;  // writing: not started yet
    if (e.state != kRunning || e.checksum != EntryChecksum(e)) {
      problem_ = "entry " + std::to_string(i) + " is corrupted";
      return;
    }
    ev->running.insert(e.id_hash);
    ev->running_ids.push_back(TextOf(e.queue) + "/" + TextOf(e.id));
  }
  previous_ = std::move(ev);
}

void RunningJournal::Reset() {
  std::memset(map_, 0, kFileSize);
  Header& h = *HeaderOf(map_);
  std::memcpy(h.magic, kMagic, sizeof(kMagic));
  h.version = kVersion;
  h.header_size = kHeaderSize;
  h.entry_size = kEntrySize;
  h.entries = kEntries;
  h.pid = static_cast<uint32_t>(getpid());
  h.started_wall_ms = static_cast<uint64_t>(WallMs());
  CopyText(h.boot_id, BootId());
  h.checksum = HeaderChecksum(h);
}

bool RunningJournal::RecordOwner(std::string_view backend, std::string_view owner) {
  Header& h = *HeaderOf(map_);
  if (backend.size() >= sizeof(OwnerRecord::backend) || owner.size() >= sizeof(OwnerRecord::owner))
    return false;
  for (OwnerRecord& o : h.owners) {
    if (o.state == kRunning && TextOf(o.backend) != backend) continue;
    StateOf(o.state).store(kWriting, std::memory_order_release);
    CopyText(o.backend, backend);
    CopyText(o.owner, owner);
    o.checksum = OwnerChecksum(o);
    StateOf(o.state).store(kRunning, std::memory_order_release);
    return true;
  }
  return false;
}

int RunningJournal::Begin(std::string_view queue, std::string_view message_id) {
  Entry* entries = EntriesOf(map_);
  size_t i = t_hint;
  for (size_t tries = 0; tries < kEntries; ++tries, i = (i + 1) % kEntries) {
    uint32_t expected = kFree;
    if (StateOf(entries[i].state).load(std::memory_order_relaxed) != kFree ||
        !StateOf(entries[i].state).compare_exchange_strong(expected, kWriting,
                                                           std::memory_order_acquire))
      continue;
    Entry& e = entries[i];
    e.id_hash = RunningJournalIdHash(message_id);
    CopyText(e.queue, queue);
    CopyText(e.id, message_id);
    e.checksum = EntryChecksum(e);
    StateOf(e.state).store(kRunning, std::memory_order_release);
    t_hint = i;
    return static_cast<int>(i);
  }
  StateOf(HeaderOf(map_)->overflowed).store(1, std::memory_order_release);
  return -1;
}

void RunningJournal::End(int slot) {
  if (slot < 0) return;
  StateOf(EntriesOf(map_)[slot].state).store(kFree, std::memory_order_release);
}

RunningJournal* RunningJournal::Current() { return g_current.load(std::memory_order_acquire); }

void RunningJournal::Install(std::unique_ptr<RunningJournal> journal) {
  std::lock_guard<std::mutex> lock(g_installed_mu);
  RunningJournal* j = journal.get();
  Installed().push_back(std::move(journal));
  RunningJournal* old = g_current.exchange(j, std::memory_order_acq_rel);
  if (old != nullptr) old->Detach();
}

void RunningJournal::Uninstall() {
  std::lock_guard<std::mutex> lock(g_installed_mu);
  RunningJournal* old = g_current.exchange(nullptr, std::memory_order_acq_rel);
  if (old != nullptr) old->Detach();
}

void RunningJournal::Detach() {
  // Same address, now private memory: a handler still running may End into
  // it without touching the file another journal may use next.
  void* anon = mmap(map_, kFileSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
                    -1, 0);
  if (anon == MAP_FAILED) return;  // keeps writing to the file; still correct for this process
  if (fd_ >= 0) {
    close(fd_);  // drops the lock
    fd_ = -1;
  }
}

}  // namespace foxworker
