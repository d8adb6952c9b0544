// Crash recovery with real processes: a foxworkerd reading a Redis stream is
// kill -9ed while entries are in flight (pending for its consumer name in
// the group); a second foxworkerd, another consumer of the same group, must
// claim them once they have been idle for its min_idle and run them as their
// second attempt, and handle the rest, leaving nothing pending.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/backends/redis_test_util.h"
#include "tests/harness/daemon_process.h"


namespace foxworker::testing {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kEntries = 300;
constexpr char kStream[] = "jobs";
constexpr char kGroup[] = "foxworker";


struct PendingEntry {
  long long idle_ms = 0;
  long long deliveries = 0;
};

// The ids pending for `consumer`.
std::map<std::string, PendingEntry> PendingOf(RedisServer& redis, const std::string& consumer) {
  std::map<std::string, PendingEntry> out;
  RedisReplyPtr r = redis.Command({"XPENDING", kStream, kGroup, "-", "+", "10000", consumer});
  if (r == nullptr || r->type != REDIS_REPLY_ARRAY) return out;
  for (size_t i = 0; i < r->elements; ++i) {
    const redisReply* p = r->element[i];
    out[std::string(ReplyText(p->element[0]))] = {p->element[2]->integer, p->element[3]->integer};
  }
  return out;
}

std::string Config(RedisServer& redis, const std::string& consumer, const std::string& min_idle) {
  return "daemon:\n  worker_threads: 4\n  shutdown_timeout: 10s\n"
         "plugins:\n  test:\n    path: " + TestPluginPath() +
         "\nbackends:\n  r:\n    type: redis\n    url: " + redis.url() +
         "\n    consumer: " + consumer + "\n    min_idle: " + min_idle +
         "\n    claim_interval: 100ms\n    block: 200ms\n"
         "queues:\n  jobs:\n    backend: r\n    source: " + kStream +
         "\n    plugin: test\n    concurrency: 4\n    prefetch: 32\n";
}

class ScopedChild {
 public:
  explicit ScopedChild(pid_t pid) : pid_(pid) {}
  ~ScopedChild() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  pid_t pid() const { return pid_; }
  // Sends `sig` and reaps the process; returns its wait status.
  int Stop(int sig) {
    int status = 0;
    kill(pid_, sig);
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }

 private:
  pid_t pid_;
};

TEST(RedisKillTest, KilledDaemonsPendingEntriesAreRecoveredByAnotherAfterMinIdle) {
  RedisServer redis;
  ASSERT_TRUE(redis.Start().ok());
  const std::string dir = redis.dir();
  std::vector<RedisCommand> adds;
  for (int i = 0; i < kEntries; ++i) {
    // 20 ms of work each: 4 slots take about 1.5 s for all of them.
    adds.push_back({"XADD", kStream, "*", "data", "20000", "type", "record_attempt"});
  }
  redis.Pipeline(adds);
  ASSERT_EQ(redis.Integer({"XLEN", kStream}), kEntries);

  // The victim: min_idle 60 s, so only the rescuer's claims can recover.
  const std::string victim_config = dir + "/victim.yaml";
  std::ofstream(victim_config) << Config(redis, "victim", "60s");
  const std::string victim_record = dir + "/victim.record";
  ScopedChild victim(SpawnDaemon(victim_config, victim_record, dir + "/victim.log"));
  ASSERT_GT(victim.pid(), 0);
  // Killed once it has acked some entries and holds others in flight.
  ASSERT_TRUE(WaitFor(
      [&] {
        const auto ran = ReadAttempts(victim_record);  // before XPENDING: see below
        const auto pending = PendingOf(redis, "victim");
        size_t acked = 0;  // ran, and no longer pending since it was read first
        for (const auto& [id, a] : ran) acked += pending.count(id) == 0;
        return acked >= 8 && pending.size() >= 16;
      },
      std::chrono::seconds(30)))
      << "the victim never had entries in flight; see " << dir << "/victim.log";
  const int status = victim.Stop(SIGKILL);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  const auto killed_at = Clock::now();

  const std::map<std::string, PendingEntry> orphans = PendingOf(redis, "victim");
  ASSERT_GE(orphans.size(), 16u);
  long long most_idle_ms = 0;
  for (const auto& [id, p] : orphans) {
    EXPECT_EQ(p.deliveries, 1) << id;
    most_idle_ms = std::max(most_idle_ms, p.idle_ms);
  }
  // No orphan may be claimed before it has been idle for min_idle (1 s).
  const auto earliest_claim = killed_at + std::chrono::milliseconds(1000 - most_idle_ms);
  const auto ran_before = ReadAttempts(victim_record);
  ASSERT_LT(ran_before.size(), static_cast<size_t>(kEntries)) << "the victim finished the stream";

  // The rescuer claims what has been idle for 1 s.
  const std::string rescuer_config = dir + "/rescuer.yaml";
  std::ofstream(rescuer_config) << Config(redis, "rescuer", "1s");
  const std::string rescuer_record = dir + "/rescuer.record";
  ScopedChild rescuer(SpawnDaemon(rescuer_config, rescuer_record, dir + "/rescuer.log"));
  ASSERT_GT(rescuer.pid(), 0);
  // The rescuer reads the entries never delivered at once; each orphan is
  // recorded when the rescuer has run it.
  Clock::time_point first_orphan_seen{};
  ASSERT_TRUE(WaitFor(
      [&] {
        auto ran = ReadAttempts(rescuer_record);
        size_t seen = 0;
        for (const auto& [id, p] : orphans) seen += ran.count(id);
        if (seen > 0 && first_orphan_seen == Clock::time_point{}) first_orphan_seen = Clock::now();
        return seen == orphans.size();
      },
      std::chrono::seconds(30)))
      << "orphans not recovered; see " << dir << "/rescuer.log";
  EXPECT_GE(first_orphan_seen, earliest_claim) << "an orphan was claimed before min_idle";
  std::set<std::string> all;
  ASSERT_TRUE(WaitFor(
      [&] {
        all.clear();
        for (const auto& [id, a] : ReadAttempts(victim_record)) all.insert(id);
        for (const auto& [id, a] : ReadAttempts(rescuer_record)) all.insert(id);
        return all.size() == static_cast<size_t>(kEntries) &&
               redis.PendingCount(kStream, kGroup) == 0;
      },
      std::chrono::seconds(60)))
      << all.size() << " of " << kEntries << " handled, "
      << redis.PendingCount(kStream, kGroup) << " pending; see " << dir << "/rescuer.log";
  const int rescuer_status = rescuer.Stop(SIGTERM);
  EXPECT_TRUE(WIFEXITED(rescuer_status) && WEXITSTATUS(rescuer_status) == 0)
      << "graceful exit expected; see " << dir << "/rescuer.log";

  // Every orphan ran again as its second attempt; everything else the
  // rescuer ran was new to the group (attempt 1), and nothing else ran
  // twice: an orphan the victim had finished but not yet acked is the only
  // kind of duplicate.
  const auto victim_ran = ReadAttempts(victim_record);
  const auto rescuer_ran = ReadAttempts(rescuer_record);
  EXPECT_EQ(victim_ran.size(), ran_before.size()) << "the victim ran after its kill";
  for (const auto& [id, attempts] : victim_ran) {
    EXPECT_EQ(attempts, std::vector<int>{1}) << id;
  }
  int recovered = 0, duplicates = 0;
  for (const auto& [id, attempts] : rescuer_ran) {
    if (orphans.count(id) > 0) {
      EXPECT_EQ(attempts, std::vector<int>{2}) << "orphan " << id;
      ++recovered;
      duplicates += static_cast<int>(victim_ran.count(id));  // ran, killed before its ack
    } else {
      EXPECT_EQ(attempts, std::vector<int>{1}) << id;
      EXPECT_EQ(victim_ran.count(id), 0u) << id << " ran on both daemons but was no orphan";
    }
  }
  EXPECT_EQ(recovered, static_cast<int>(orphans.size()));
  EXPECT_EQ(redis.PendingCount(kStream, kGroup), 0);
  EXPECT_TRUE(PendingOf(redis, "victim").empty());
  EXPECT_LT(duplicates, static_cast<int>(victim_ran.size())) << "the victim acked nothing";
  std::printf("redis kill test: %d entries, %zu run by the victim, %zu orphans recovered "
              "(%d of them had run), %zu run by the rescuer\n",
              kEntries, victim_ran.size(), orphans.size(), duplicates, rescuer_ran.size());
}

}  // namespace
}  // namespace foxworker::testing
