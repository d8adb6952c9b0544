// Storage faults under the real daemon: a full file system (a 2 MiB tmpfs
// the test mounts), a corrupt page, a file deleted under the daemon, and
// foxworkerctl reading a file it may not write. Each asserts the log lines,
// /readyz and the metric, that the daemon recovers by itself where it can,
// and that every accepted job is handled at least once.
#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <cstdlib>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "daemon/backends/local/local_store.h"
#include "tests/harness/admin_client.h"
#include "tests/harness/daemon_process.h"

namespace foxworker::testing {
namespace {

using namespace std::chrono_literals;

std::string TestPluginPath() { return std::string(TEST_PLUGIN_DIR) + "/libfoxworker_test_plugin.so"; }

bool WaitFor(const std::function<bool()>& done, std::chrono::milliseconds limit) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (done()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return done();
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int Count(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// The lines of `text` that contain `what`.
std::vector<std::string> Lines(const std::string& text, const std::string& what) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    if (line.find(what) != std::string::npos) out.push_back(line);
  return out;
}

std::set<std::string> Handled(const std::string& record) {
  std::set<std::string> ids;
  std::istringstream in(ReadFile(record));
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) ids.insert(line);
  return ids;
}

NewJob Job(size_t pad) {
  NewJob j;
  j.queue = "jobs";
  j.payload = "200";  // microseconds of work in the test plugin's record handler
  j.props.message_type = "record";
  j.headers.emplace_back("pad", std::string(pad, 'x'));
  return j;
}

class StorageFaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::temp_directory_path() /
           ("foxworker_storage_" + std::string(info->name()) + "_" + std::to_string(getpid()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    chmod(dir_.c_str(), 0755);
  }
  void TearDown() override {
    StopDaemon();
    if (mounted_) umount2(Path("fs").c_str(), MNT_DETACH);
    if (!HasFailure() && getenv("FOXWORKER_TEST_KEEP") == nullptr) std::filesystem::remove_all(dir_);
  }

  std::string Path(const std::string& name) const { return (dir_ / name).string(); }

  // Mounts a tmpfs of `size` at Path("fs"); false (the caller skips) when
  // this process may not mount.
  bool MountSmallFs(const char* size) {
    std::filesystem::create_directories(Path("fs"));
    std::string opts = std::string("size=") + size + ",mode=0755";
    if (mount("tmpfs", Path("fs").c_str(), "tmpfs", 0, opts.c_str()) != 0) {
      mount_error_ = std::strerror(errno);
      return false;
    }
    mounted_ = true;
    return true;
  }

  std::string Config(const std::string& db, const std::string& extra_queue = "") const {
    return "daemon:\n  worker_threads: 2\n  shutdown_timeout: 5s\n  state_dir: " + Path("state") +
           "\n  admin:\n    listen: unix:" + Path("admin.sock") + "\nplugins:\n  test:\n    path: " +
           TestPluginPath() + "\nbackends:\n  local:\n    type: local\n    path: " + db +
           "\n    lease: 30s\nqueues:\n  jobs:\n    backend: local\n    plugin: test\n" +
           "    concurrency: 2\n    prefetch: 8\n" + extra_queue;
  }

  void StartDaemon(const std::string& yaml) {
    std::filesystem::create_directories(Path("state"));
    std::ofstream(Path("foxworker.yaml")) << yaml;
    pid_ = SpawnDaemon(Path("foxworker.yaml"), Path("record.txt"), Path("daemon.log"));
    ASSERT_GT(pid_, 0);
    ASSERT_TRUE(WaitFor([&] { return Get(Path("admin.sock"), "/healthz").status == 200; }, 10s))
        << "the daemon did not start; see " << Path("daemon.log") << ":\n"
        << ReadFile(Path("daemon.log"));
  }

  // SIGTERM; returns the exit status (or -1).
  int StopDaemon() {
    if (pid_ <= 0) return -1;
    kill(pid_, SIGTERM);
    int status = 0;
    const auto until = std::chrono::steady_clock::now() + 15s;
    while (waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > until) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(10ms);
    }
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  // With `stop_after`, the daemon is stopped before the log is read.
  void DamageWhileRunning(bool keep_last_cell, std::string* log_out, bool stop_after = true);

  Http Ready() const { return Get(Path("admin.sock"), "/readyz"); }
  std::string Log() const { return ReadFile(Path("daemon.log")); }
  std::string Metrics() const { return Get(Path("admin.sock"), "/metrics").body; }

  std::filesystem::path dir_;
  bool mounted_ = false;
  std::string mount_error_;
  pid_t pid_ = -1;
};

// Writes `path` until the file system is full; returns the bytes written.
size_t FillUp(const std::string& path) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return 0;
  std::string block(4096, 'f');
  size_t total = 0;
  for (;;) {
    ssize_t n = write(fd, block.data(), block.size());
    if (n <= 0) break;
    total += static_cast<size_t>(n);
  }
  close(fd);
  return total;
}

// Issue 17 item 1: a full disk recovers once space is freed, with no lost
// job, one log line per change of state, /readyz and the metric saying so.
TEST_F(StorageFaultTest, FullDiskRecoversWhenSpaceIsFreed) {
  if (!MountSmallFs("2m")) {
    GTEST_SKIP() << "cannot mount a tmpfs here (" << mount_error_
                 << "); this test needs root or CAP_SYS_ADMIN";
  }
  const std::string db = Path("fs/jobs.db");
  ASSERT_NO_FATAL_FAILURE(StartDaemon(Config(db)));
  ASSERT_TRUE(WaitFor([&] { return Ready().status == 200; }, 10s)) << Ready().body;

  // Leave a little room, then enqueue faster than the daemon works until
  // the file system is full.
  FillUp(Path("fs/filler"));
  ASSERT_EQ(truncate(Path("fs/filler").c_str(),
                     std::max<off_t>(0, std::filesystem::file_size(Path("fs/filler")) - 400 * 1024)),
            0);
  LocalStoreOptions o;
  o.path = db;
  o.create = false;
  auto store = LocalStore::Open(o);
  ASSERT_TRUE(store.ok()) << store.status().message();
  std::set<std::string> accepted;
  std::string refusal;
  bool daemon_full = false;
  const auto until = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < until && !daemon_full) {
    std::vector<NewJob> batch;
    for (int i = 0; i < 20; ++i) batch.push_back(Job(1500));
    auto r = (*store)->EnqueueBatch(batch);
    if (r.ok()) {
      for (const auto& e : *r) accepted.insert(std::to_string(e.id));
    } else {
      refusal = r.status().message();
      FillUp(Path("fs/filler2"));  // whatever a checkpoint gave back
      std::this_thread::sleep_for(20ms);
    }
    daemon_full = Ready().body.find("storage disk_full") != std::string::npos;
  }
  store->reset();
  ASSERT_TRUE(daemon_full) << "the daemon never reported the full disk; /readyz: " << Ready().body
                           << "\nlog:\n" << Log();
  // (The daemon may hit the full disk before this enqueuer does.)
  if (!refusal.empty()) {
    EXPECT_NE(refusal.find("database or disk is full"), std::string::npos) << refusal;
  }
  ASSERT_GT(accepted.size(), 20u);
  Http ready = Ready();
  EXPECT_EQ(ready.status, 503);
  EXPECT_NE(ready.body.find("backend local: storage disk_full: local store " + db), std::string::npos)
      << ready.body;
  EXPECT_NE(Metrics().find("foxworker_backend_storage_state{backend=\"local\",state=\"disk_full\"} 1"),
            std::string::npos);
  // Stays full for a while: the daemon retries without a line per retry,
  // and an idle turn does not pass for "writable again".
  std::this_thread::sleep_for(1500ms);
  EXPECT_NE(Ready().body.find("storage disk_full"), std::string::npos) << Ready().body;

  // The operator frees space; the daemon recovers by itself.
  std::filesystem::remove(Path("fs/filler"));
  std::filesystem::remove(Path("fs/filler2"));
  ASSERT_TRUE(WaitFor([&] { return Ready().status == 200; }, 20s))
      << Ready().body << "\nlog:\n" << Log();
  bool all = WaitFor(
      [&] {
        auto handled = Handled(Path("record.txt"));
        for (const auto& id : accepted)
          if (!handled.count(id)) return false;
        return true;
      },
      30s);
  auto handled = Handled(Path("record.txt"));
  size_t missing = 0;
  for (const auto& id : accepted) missing += handled.count(id) == 0;
  std::printf("full disk: %zu jobs accepted, %zu handled, %zu missing\n", accepted.size(),
              handled.size(), missing);
  EXPECT_TRUE(all);
  EXPECT_EQ(missing, 0u);
  std::string metrics = Metrics();
  EXPECT_NE(metrics.find("foxworker_backend_storage_state{backend=\"local\",state=\"ok\"} 1"),
            std::string::npos);
  EXPECT_EQ(StopDaemon(), 0);

  std::string log = Log();
  auto full_lines = Lines(log, "local backend local: storage disk_full");
  auto ok_lines = Lines(log, "local backend local: storage ok: " + db + " is writable again after ");
  ASSERT_GE(full_lines.size(), 1u) << log;
  // One line per change of state: each episode is one line in, one line out,
  // whatever the number of retries.
  EXPECT_EQ(full_lines.size(), ok_lines.size()) << log;
  EXPECT_LE(full_lines.size(), 3u) << log;
  EXPECT_NE(full_lines[0].find(": storage disk_full: local store " + db + ": "), std::string::npos)
      << full_lines[0];
  EXPECT_NE(full_lines[0].find("database or disk is full [SQLite error 13]; free space on its file"
                               " system; the daemon checkpoints and truncates its WAL and retries"
                               " by itself"),
            std::string::npos)
      << full_lines[0];
  EXPECT_EQ(Count(log, "writable again"), static_cast<int>(ok_lines.size()));
  EXPECT_EQ(Count(log, "not applied"), 0) << log;
}

// The bytes of page `page` (1-based) of a SQLite file with 4 KiB pages.
constexpr off_t kPage = 4096;

// Issue 17 item 2: a corrupt page is reported as corruption, at once, with
// /readyz not ready; nothing is claimed, no lease is blamed, and no
// "writable again" is claimed at shutdown.
TEST_F(StorageFaultTest, CorruptPageIsReportedAtStartAndNothingIsClaimed) {
  const std::string db = Path("jobs.db");
  std::set<std::string> ids;
  {
    LocalStoreOptions o;
    o.path = db;
    auto store = LocalStore::Open(o);
    ASSERT_TRUE(store.ok()) << store.status().message();
    std::vector<NewJob> jobs;
    for (int i = 0; i < 200; ++i) jobs.push_back(Job(1000));
    auto r = (*store)->EnqueueBatch(jobs);
    ASSERT_TRUE(r.ok());
    for (const auto& e : *r) ids.insert(std::to_string(e.id));
  }  // closed: checkpointed into the file, no WAL left
  ASSERT_FALSE(std::filesystem::exists(db + "-wal"));
  const off_t pages = static_cast<off_t>(std::filesystem::file_size(db)) / kPage;
  ASSERT_GT(pages, 20);
  // Garbage over a page in the middle (a leaf of the jobs table), header intact.
  const off_t victim = pages / 2;
  std::string original(kPage, '\0');
  {
    int fd = open(db.c_str(), O_RDWR | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(pread(fd, original.data(), kPage, (victim - 1) * kPage), kPage);
    std::string garbage(kPage, '\0');
    uint32_t x = 12345;
    for (char& c : garbage) {
      x = x * 1103515245 + 12345;
      c = static_cast<char>(x >> 24);
    }
    ASSERT_EQ(pwrite(fd, garbage.data(), kPage, (victim - 1) * kPage), kPage);
    close(fd);
  }

  ASSERT_NO_FATAL_FAILURE(StartDaemon(Config(db)));
  // Not ready at once (the check runs before the backend reports started).
  Http ready = Ready();
  EXPECT_EQ(ready.status, 503);
  const std::string reason =
      "backend local: storage corrupt: local store " + db + ": PRAGMA quick_check at open: ";
  EXPECT_NE(ready.body.find(reason), std::string::npos) << ready.body;
  EXPECT_NE(Metrics().find("foxworker_backend_storage_state{backend=\"local\",state=\"corrupt\"} 1"),
            std::string::npos);
  EXPECT_NE(Metrics().find("foxworker_backend_storage_faults_total{backend=\"local\"} 1"),
            std::string::npos);
  // It stays so: no claim, no lease renewal, no "writable again".
  std::this_thread::sleep_for(2500ms);
  EXPECT_EQ(Ready().status, 503);
  EXPECT_EQ(StopDaemon(), 0);
  std::string log = Log();
  auto corrupt = Lines(log, "local backend local: storage corrupt");
  ASSERT_EQ(corrupt.size(), 1u) << log;
  const std::string& line = corrupt[0];
  EXPECT_EQ(line.substr(0, 1), "E") << line;
  EXPECT_NE(line.find("] local backend local: storage corrupt: local store " + db +
                      ": PRAGMA quick_check at open: "),
            std::string::npos)
      << line;
  EXPECT_NE(line.find("; the file is damaged: nothing is claimed or settled until it passes"
                      " PRAGMA integrity_check again (after a repair in place), or until a"
                      " restart with a recovered file (see operations.md, Storage faults)"),
            std::string::npos)
      << line;
  EXPECT_EQ(Count(log, "not applied"), 0) << log;
  EXPECT_EQ(Count(log, "lease expired"), 0) << log;
  EXPECT_EQ(Count(log, "writable again"), 0) << log;
  EXPECT_EQ(Count(log, "storage ok"), 0) << log;
  EXPECT_TRUE(Handled(Path("record.txt")).empty());

  // The operator restores the page (as from a backup) and starts again:
  // every job is handled.
  {
    int fd = open(db.c_str(), O_RDWR | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(pwrite(fd, original.data(), kPage, (victim - 1) * kPage), kPage);
    close(fd);
  }
  ASSERT_NO_FATAL_FAILURE(StartDaemon(Config(db)));
  EXPECT_TRUE(WaitFor([&] { return Ready().status == 200; }, 10s)) << Ready().body;
  EXPECT_TRUE(WaitFor([&] { return Handled(Path("record.txt")) == ids; }, 20s));
  EXPECT_EQ(StopDaemon(), 0);
}

uint32_t BigEndian32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

// Issue 17 item 2 as it was seen: the file goes bad while the daemon runs.
// The leftmost leaf of the jobs table (jobs 1..3, of which 1 and 2 are
// running) is damaged: with `keep_last_cell`, it keeps only its last cell
// (a b-tree page SQLite reads without complaint, so the acks of jobs 1 and
// 2 find no row: the case that was logged as "its lease expired and it was
// claimed again"); otherwise it is emptied (which SQLite reports as
// malformed). Either way the daemon must call it corruption, promptly.
// Returns the daemon's log.
void StorageFaultTest::DamageWhileRunning(bool keep_last_cell, std::string* log_out,
                                          bool stop_after) {
  const std::string db = Path("jobs.db");
  std::set<std::string> ids;
  {
    LocalStoreOptions o;
    o.path = db;
    auto store = LocalStore::Open(o);
    ASSERT_TRUE(store.ok()) << store.status().message();
    std::vector<NewJob> jobs;
    for (int i = 0; i < 30; ++i) {
      NewJob j = Job(1000);
      if (i < 2) j.payload = "2500000";  // the first two run 2.5 s: acked after the damage
      jobs.push_back(std::move(j));
    }
    auto r = (*store)->EnqueueBatch(jobs);
    ASSERT_TRUE(r.ok());
    for (const auto& e : *r) ids.insert(std::to_string(e.id));
  }
  ASSERT_NO_FATAL_FAILURE(StartDaemon(Config(db)));
  LocalStoreOptions o;
  o.path = db;
  o.create = false;
  auto store = LocalStore::Open(o);
  ASSERT_TRUE(store.ok()) << store.status().message();
  // Wait until jobs 1 and 2 run (the others are done or buffered).
  ASSERT_TRUE(WaitFor(
      [&] {
        auto j1 = (*store)->GetJob(1);
        auto j2 = (*store)->GetJob(2);
        return j1.ok() && j2.ok() && *j1 && *j2 && (*j1)->state == JobState::kRunning &&
               (*j2)->state == JobState::kRunning;
      },
      5s));
  // Everything into the file, then the leftmost leaf of the jobs table
  // (jobs 1..3) replaced by an empty leaf.
  ASSERT_TRUE(WaitFor([&] { return (*store)->CheckpointTruncate().ok(); }, 2s));
  int fd = open(db.c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  auto page = [&](uint32_t n) {
    std::string p(kPage, '\0');
    EXPECT_EQ(pread(fd, p.data(), kPage, (n - 1) * kPage), kPage);
    return p;
  };
  uint32_t root = 0;
  {
    std::string cmd = "sqlite3 -readonly " + db +
                      " \"SELECT rootpage FROM sqlite_schema WHERE name = 'jobs'\"";
    FILE* p = popen(cmd.c_str(), "r");
    ASSERT_NE(p, nullptr);
    if (fscanf(p, "%u", &root) != 1) root = 0;
    pclose(p);
  }
  if (root == 0) {
    close(fd);
    GTEST_SKIP() << "no sqlite3 command to find the jobs table's root page";
  }
  std::string root_page = page(root);
  const auto* r = reinterpret_cast<const unsigned char*>(root_page.data());
  ASSERT_EQ(r[0], 0x05) << "the jobs table's root is not an interior page";
  const uint32_t first_cell = (uint32_t{r[12]} << 8) | r[13];
  const uint32_t leaf = BigEndian32(r + first_cell);
  std::string damaged(kPage, '\0');
  if (keep_last_cell) {
    damaged = page(leaf);
    auto* d = reinterpret_cast<unsigned char*>(damaged.data());
    ASSERT_EQ(d[0], 0x0D) << "the root's first child is not a leaf";
    const uint32_t cells = (uint32_t{d[3]} << 8) | d[4];
    ASSERT_GE(cells, 3u);
    d[8] = d[8 + 2 * (cells - 1)];  // the cell pointer array holds the last cell only
    d[9] = d[9 + 2 * (cells - 1)];
    d[3] = 0;
    d[4] = 1;
  } else {
    damaged[0] = 0x0D;  // table leaf, no cells, content area at the page's end
    damaged[5] = 0x10;
    damaged[6] = 0x00;
  }
  ASSERT_EQ(pwrite(fd, damaged.data(), kPage, (leaf - 1) * kPage), kPage);
  close(fd);
  // A commit by another connection, so that the daemon reads the pages anew.
  ASSERT_TRUE((*store)->Pause("other").ok());
  store->reset();

  ASSERT_TRUE(WaitFor([&] { return Ready().body.find("storage corrupt") != std::string::npos; },
                      10s))
      << Ready().body << "\n" << Log();
  Http ready = Ready();
  EXPECT_EQ(ready.status, 503);
  EXPECT_NE(ready.body.find("backend local: storage corrupt: local store " + db + ": "),
            std::string::npos)
      << ready.body;
  std::this_thread::sleep_for(1500ms);
  EXPECT_EQ(Ready().status, 503);
  if (stop_after) {
    EXPECT_EQ(StopDaemon(), 0);
  }
  std::string log = Log();
  auto corrupt = Lines(log, "local backend local: storage corrupt");
  ASSERT_EQ(corrupt.size(), 1u) << log;
  EXPECT_NE(corrupt[0].find("] local backend local: storage corrupt: local store " + db + ": "),
            std::string::npos)
      << corrupt[0];
  EXPECT_NE(corrupt[0].find("; the file is damaged: nothing is claimed or settled until it"
                            " passes PRAGMA integrity_check again"),
            std::string::npos)
      << corrupt[0];
  EXPECT_EQ(Count(log, "lease expired"), 0) << log;
  EXPECT_EQ(Count(log, "not applied"), 0) << log;
  EXPECT_EQ(Count(log, "writable again"), 0) << log;
  EXPECT_EQ(Count(log, "storage ok"), 0) << log;
  *log_out = log;
}

TEST_F(StorageFaultTest, RowsLostWhileRunningAreCorruptionNotAnExpiredLease) {
  std::string log;
  ASSERT_NO_FATAL_FAILURE(DamageWhileRunning(/*keep_last_cell=*/true, &log));
  if (IsSkipped()) return;
  auto line = Lines(log, "local backend local: storage corrupt").at(0);
  const std::string db = Path("jobs.db");
  // Jobs 1 and 2 finish together, so one commit or two carry their acks
  // (and the first is enough to find the damage).
  const std::regex expected("\\] local backend local: storage corrupt: local store " + db +
                            ": (1 outcome\\(s\\) found no job row \\(job [12]\\)|2 outcome\\(s\\)"
                            " found no job row \\(job 1, 2\\)) and PRAGMA integrity_check finds"
                            " the file damaged: .*wrong # of entries in index jobs_running; ");
  EXPECT_TRUE(std::regex_search(line, expected)) << line;
}

// A repair in place by another connection (REINDEX and VACUUM with sqlite3,
// the daemon still running) is noticed: integrity_check passes, the daemon
// goes on by itself, and every job whose row survived is handled.
TEST_F(StorageFaultTest, RepairInPlaceIsNoticed) {
  std::string log;
  ASSERT_NO_FATAL_FAILURE(DamageWhileRunning(/*keep_last_cell=*/true, &log, /*stop_after=*/false));
  if (IsSkipped()) return;
  const std::string db = Path("jobs.db");
  std::string cmd = "sqlite3 " + db + " 'REINDEX; VACUUM;' 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  char buf[512];
  std::string out;
  while (fgets(buf, sizeof buf, p) != nullptr) out += buf;
  ASSERT_EQ(pclose(p), 0) << out;
  ASSERT_TRUE(WaitFor([&] { return Ready().status == 200; }, 15s)) << Ready().body << "\n" << Log();
  // Jobs 1 and 2 lost their rows with the damage; every other job is handled.
  EXPECT_TRUE(WaitFor(
      [&] {
        auto handled = Handled(Path("record.txt"));
        for (int id = 3; id <= 30; ++id)
          if (!handled.count(std::to_string(id))) return false;
        return true;
      },
      20s))
      << Log();
  EXPECT_EQ(StopDaemon(), 0);
  log = Log();
  auto ok = Lines(log, "local backend local: storage ok: " + db +
                           " passes PRAGMA integrity_check again after ");
  EXPECT_EQ(ok.size(), 1u) << log;
  EXPECT_EQ(Lines(log, "storage corrupt").size(), 1u) << log;
}

TEST_F(StorageFaultTest, MalformedPageWhileRunningIsCorruption) {
  std::string log;
  ASSERT_NO_FATAL_FAILURE(DamageWhileRunning(/*keep_last_cell=*/false, &log));
  if (IsSkipped()) return;
  auto line = Lines(log, "local backend local: storage corrupt").at(0);
  EXPECT_NE(line.find("database disk image is malformed [SQLite error 11]"), std::string::npos)
      << line;
}

// A file deleted under the daemon: reported once, not ready, nothing
// written to a new empty file behind the operator's back; the log names the
// descriptor the jobs can be copied from.
TEST_F(StorageFaultTest, DeletedFileIsReportedAndRefused) {
  const std::string db = Path("jobs.db");
  ASSERT_NO_FATAL_FAILURE(StartDaemon(Config(db)));
  ASSERT_TRUE(WaitFor([&] { return Ready().status == 200; }, 10s)) << Ready().body;
  ASSERT_EQ(unlink(db.c_str()), 0);
  // The next write (lease recovery runs at least once a second) finds out.
  ASSERT_TRUE(WaitFor([&] { return Ready().status == 503; }, 5s));
  Http ready = Ready();
  EXPECT_NE(ready.body.find("backend local: storage deleted: "), std::string::npos) << ready.body;
  EXPECT_NE(Metrics().find("foxworker_backend_storage_state{backend=\"local\",state=\"deleted\"} 1"),
            std::string::npos);
  std::this_thread::sleep_for(1500ms);
  EXPECT_FALSE(std::filesystem::exists(db)) << "a new file was created behind the operator's back";
  EXPECT_EQ(StopDaemon(), 0);
  std::string log = Log();
  auto lines = Lines(log, "local backend local: storage deleted");
  ASSERT_EQ(lines.size(), 1u) << log;
  EXPECT_NE(lines[0].find("the file was deleted or replaced while the daemon had it open"),
            std::string::npos)
      << lines[0];
  EXPECT_NE(lines[0].find("its jobs are still readable through /proc/"), std::string::npos)
      << lines[0];
  EXPECT_EQ(Count(log, "writable again"), 0) << log;
}

// A read-only remount: ext4 on a loop device with errors=remount-ro, an
// error triggered through /sys/fs/ext4/DEV/trigger_fs_error. Reported once,
// not ready; such a file system cannot go read-write again without an
// unmount and fsck, so the operator stops the daemon, repairs, and starts it:
// every job is handled.
TEST_F(StorageFaultTest, ReadOnlyRemountIsReportedAndNothingIsLost) {
  if (geteuid() != 0 || access("/usr/sbin/mkfs.ext4", X_OK) != 0 ||
      access("/usr/sbin/losetup", X_OK) != 0) {
    GTEST_SKIP() << "needs root, mkfs.ext4 and losetup for an ext4 loop device";
  }
  auto sh = [](const std::string& cmd) {
    std::string out;
    FILE* p = popen((cmd + " 2>&1").c_str(), "r");
    char buf[512];
    while (p != nullptr && fgets(buf, sizeof buf, p) != nullptr) out += buf;
    int status = p != nullptr ? pclose(p) : -1;
    return std::make_pair(WIFEXITED(status) ? WEXITSTATUS(status) : -1, out);
  };
  const std::string img = Path("ext4.img");
  std::filesystem::create_directories(Path("fs"));
  ASSERT_EQ(sh("truncate -s 16M " + img + " && mkfs.ext4 -q " + img).first, 0);
  auto [rc, dev] = sh("losetup -f --show " + img);
  if (rc != 0) GTEST_SKIP() << "no loop device here: " << dev;
  while (!dev.empty() && dev.back() == '\n') dev.pop_back();
  struct Detach {
    std::string dev;
    ~Detach() {
      umount2(mnt.c_str(), MNT_DETACH);
      std::string cmd = "losetup -d " + dev;
      if (std::system(cmd.c_str()) != 0) std::fprintf(stderr, "cannot detach %s\n", dev.c_str());
    }
    std::string mnt;
  } detach{dev, Path("fs")};
  auto mount_fs = [&] {
    return mount(dev.c_str(), Path("fs").c_str(), "ext4", 0, "errors=remount-ro") == 0;
  };
  if (!mount_fs()) GTEST_SKIP() << "cannot mount ext4 here: " << std::strerror(errno);
  const std::string sysfs = "/sys/fs/ext4/" + std::filesystem::path(dev).filename().string() +
                            "/trigger_fs_error";
  if (access(sysfs.c_str(), W_OK) != 0) GTEST_SKIP() << "no " << sysfs << " in this kernel";

  const std::string db = Path("fs/jobs.db");
  std::set<std::string> ids;
  {
    LocalStoreOptions o;
    o.path = db;
    auto store = LocalStore::Open(o);
    ASSERT_TRUE(store.ok()) << store.status().message();
    std::vector<NewJob> jobs;
    for (int i = 0; i < 60; ++i) {
      NewJob j = Job(100);
      j.payload = "20000";  // 20 ms each: jobs are in flight when the error comes
      jobs.push_back(std::move(j));
    }
    auto r = (*store)->EnqueueBatch(jobs);
    ASSERT_TRUE(r.ok());
    for (const auto& e : *r) ids.insert(std::to_string(e.id));
  }
  ASSERT_NO_FATAL_FAILURE(StartDaemon(Config(db)));
  ASSERT_TRUE(WaitFor([&] { return !Handled(Path("record.txt")).empty(); }, 10s));
  std::ofstream(sysfs) << "1";
  ASSERT_TRUE(WaitFor([&] { return Ready().body.find("storage read_only") != std::string::npos; },
                      10s))
      << Ready().body << "\n" << Log();
  Http ready = Ready();
  EXPECT_EQ(ready.status, 503);
  EXPECT_NE(ready.body.find("backend local: storage read_only: local store " + db), std::string::npos)
      << ready.body;
  EXPECT_NE(Metrics().find("foxworker_backend_storage_state{backend=\"local\",state=\"read_only\"} 1"),
            std::string::npos);
  std::this_thread::sleep_for(1500ms);  // retries, without a line each
  StopDaemon();
  std::string log = Log();
  auto lines = Lines(log, "local backend local: storage read_only");
  ASSERT_EQ(lines.size(), 1u) << log;
  EXPECT_TRUE(lines[0].find("Read-only file system") != std::string::npos ||
              lines[0].find("(the file system is read-only now)") != std::string::npos)
      << lines[0];
  EXPECT_NE(lines[0].find("the file or its file system became read-only"), std::string::npos)
      << lines[0];
  EXPECT_EQ(Count(log, "writable again"), 0) << log;

  // The operator's repair: unmount, fsck, mount, start.
  ASSERT_EQ(umount2(Path("fs").c_str(), 0), 0) << std::strerror(errno);
  auto fsck = sh("e2fsck -fy " + dev);
  EXPECT_LE(fsck.first, 1) << fsck.second;
  ASSERT_TRUE(mount_fs()) << std::strerror(errno);
  ASSERT_NO_FATAL_FAILURE(StartDaemon(Config(db)));
  // Jobs the first daemon held come back when their 30 s lease expires, or
  // at once from its running journal (the state_dir is not on the broken
  // file system).
  bool all = WaitFor(
      [&] {
        auto handled = Handled(Path("record.txt"));
        for (const auto& id : ids)
          if (!handled.count(id)) return false;
        return true;
      },
      45s);
  EXPECT_TRUE(all) << Log();
  EXPECT_EQ(StopDaemon(), 0);
}

// Issue 17 item 6: stats, dead list and dead show need only read access.
TEST_F(StorageFaultTest, CtlReadsWithReadAccessOnly) {
  if (access("/usr/bin/setpriv", X_OK) != 0) GTEST_SKIP() << "no setpriv to run as nobody";
  if (geteuid() != 0) GTEST_SKIP() << "needs root to switch to the user nobody";
  const std::string db = Path("jobs.db");
  {
    LocalStoreOptions o;
    o.path = db;
    auto store = LocalStore::Open(o);
    ASSERT_TRUE(store.ok()) << store.status().message();
    ASSERT_TRUE((*store)->Enqueue(Job(10)).ok());
  }
  chmod(db.c_str(), 0644);
  auto run = [&](const std::string& args) {
    std::string cmd = "setpriv --reuid=nobody --regid=nogroup --clear-groups " +
                      std::string(FOXWORKERCTL) + " --db " + db + " " + args + " 2>&1";
    std::string out;
    FILE* p = popen(cmd.c_str(), "r");
    char buf[512];
    while (p != nullptr && fgets(buf, sizeof buf, p) != nullptr) out += buf;
    int status = p != nullptr ? pclose(p) : -1;
    return std::make_pair(WIFEXITED(status) ? WEXITSTATUS(status) : -1, out);
  };
  // No daemon: no -wal, no -shm, and nobody may create them.
  auto [rc, out] = run("stats");
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("jobs"), std::string::npos) << out;
  EXPECT_EQ(run("dead list").first, 0);
  EXPECT_EQ(run("dead show 1").first, 0);
  // With a daemon holding the file open (its -wal and -shm exist, readable).
  ASSERT_NO_FATAL_FAILURE(StartDaemon(Config(db)));
  ASSERT_TRUE(WaitFor([&] { return std::filesystem::exists(db + "-shm"); }, 5s));
  chmod((db + "-shm").c_str(), 0644);
  chmod((db + "-wal").c_str(), 0644);
  std::tie(rc, out) = run("stats");
  EXPECT_EQ(rc, 0) << out;
  // Writing still needs write access, and says so.
  std::tie(rc, out) = run("pause jobs");
  EXPECT_EQ(rc, 1);
  EXPECT_NE(out.find("cannot write the file"), std::string::npos) << out;
  EXPECT_EQ(StopDaemon(), 0);
}

}  // namespace
}  // namespace foxworker::testing
