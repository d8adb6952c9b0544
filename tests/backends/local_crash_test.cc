// Crash-only: a real foxworkerd processes 20,000 jobs from a SQLite file
// while the test kill -9s it at random moments and restarts it. Every job
// must be handled at least once, none may be missing, and duplicates must
// stay within what was in flight at the kills.
#include <signal.h>
#include <spawn.h>
#include <fcntl.h>
#include <sys/wait.h>

#include <cstring>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <thread>

#include "daemon/backends/local/local_store.h"
#include "tests/core/test_daemon.h"
#include "tests/harness/daemon_process.h"


namespace foxworker::testing {
namespace {

constexpr int kJobs = 20000;
constexpr int kKills = 5;
constexpr int kPrefetch = 16;

std::map<std::string, int> ReadRecord(const std::string& path) {
  std::map<std::string, int> seen;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) seen[line]++;
  return seen;
}

TEST(LocalCrashTest, KillNineLosesNothing) {
  auto dir = std::filesystem::temp_directory_path() /
             ("foxworker_crash_" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string db = (dir / "jobs.db").string();
  const std::string record = (dir / "handled.txt").string();
  const std::string log = (dir / "daemon.log").string();
  {
    LocalStoreOptions o;
    o.path = db;
    auto store = LocalStore::Open(o);
    ASSERT_TRUE(store.ok()) << store.status().message();
    std::vector<NewJob> jobs;
    for (int i = 0; i < kJobs; ++i) {
      NewJob j;
      j.queue = "jobs";
      j.payload = "150";  // microseconds of work per job
      j.props.message_type = "record";
      jobs.push_back(std::move(j));
    }
    ASSERT_TRUE((*store)->EnqueueBatch(jobs).ok());
  }
  const std::string config = (dir / "foxworker.yaml").string();
  std::ofstream(config) << "daemon:\n  worker_threads: 2\n  shutdown_timeout: 10s\n"
                        << "plugins:\n  test:\n    path: " << TestPluginPath() << "\n"
                        << "backends:\n  local:\n    type: local\n    path: " << db
                        << "\n    durability: full\n    lease: 1s\n"
                        << "retry_policies:\n  default:\n    max_attempts: 50\n"
                        << "queues:\n  jobs:\n    backend: local\n    plugin: test\n"
                        << "    concurrency: 4\n    prefetch: " << kPrefetch << "\n";

  std::mt19937 rng(12345);
  std::uniform_int_distribution<int> pause_ms(80, 400);
  int kills = 0;
  for (; kills < kKills; ++kills) {
    pid_t pid = SpawnDaemon(config, record, log);
    ASSERT_GT(pid, 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms(rng)));
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    int status = 0;
    waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status)) << "the daemon exited on its own; see " << log;
  }
  // A last run to finish the work; the dead runs' leases expire after 1 s.
  pid_t pid = SpawnDaemon(config, record, log);
  ASSERT_GT(pid, 0);
  LocalStoreOptions o;
  o.path = db;
  o.create = false;
  auto store = LocalStore::Open(o);
  ASSERT_TRUE(store.ok()) << store.status().message();
  bool done = WaitFor(
      [&] {
        auto stats = (*store)->Stats();
        if (!stats.ok()) return false;
        for (const auto& q : *stats)
          if (q.queue == "jobs") return q.waiting + q.scheduled + q.running == 0;
        return true;  // no row left at all: every job was acked and deleted
      },
      std::chrono::seconds(120));
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(done) << "jobs left unprocessed; see " << log;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "graceful exit expected";

  auto seen = ReadRecord(record);
  int handled = 0, duplicates = 0;
  for (const auto& [id, n] : seen) {
    handled += n;
    duplicates += n - 1;
  }
  const int missing = kJobs - static_cast<int>(seen.size());
  printf("crash test: %d jobs, %d kills, %d handled, %d unique, %d duplicates, %d missing\n",
         kJobs, kills, handled, static_cast<int>(seen.size()), duplicates, missing);
  EXPECT_EQ(missing, 0);
  // At most what each killed daemon held: prefetched or running jobs.
  EXPECT_LE(duplicates, kills * kPrefetch);
  auto stats = (*store)->Stats();
  ASSERT_TRUE(stats.ok());
  for (const auto& q : *stats) EXPECT_EQ(q.dead, 0) << q.queue;
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace foxworker::testing
