// Crashes charged to the right message, local backend, the real foxworkerd:
// with concurrency 1 and five jobs prefetched, the first job's handler
// segfaults (or hangs and the daemon is kill -9ed). All five were claimed,
// so the file charged each an attempt; after a restart (with a handler that
// does not crash) only the job that was running is on its second attempt,
// the four that waited prefetched run as attempt 1. docs/semantics.md,
// "Attempts after a crash".
#include <signal.h>
#include <sys/resource.h>

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "daemon/backends/local/local_store.h"
#include "tests/harness/daemon_process.h"
#include "tests/service/daemon_run.h"

namespace foxworker::testing {
namespace {


class CrashAttributionTest : public DaemonRunTest {
 protected:
  static constexpr int kInnocent = 4;

  void SetUp() override {
    DaemonRunTest::SetUp();
    struct rlimit none = {0, 0};
    setrlimit(RLIMIT_CORE, &none);  // no core files from the crashes we cause
  }

  // One job of `type` (payload `payload`), then kInnocent record_attempt
  // jobs, in the order the daemon claims them.
  void Enqueue(const std::string& type, const std::string& payload) {
    auto store = Store();
    ASSERT_NE(store, nullptr);
    for (int i = 0; i <= kInnocent; ++i) {
      NewJob j;
      j.queue = "jobs";
      j.payload = i == 0 ? payload : "1000";  // record_attempt: 1 ms
      j.props.message_type = i == 0 ? type : "record_attempt";
      auto r = store->Enqueue(j);
      ASSERT_TRUE(r.ok()) << r.status().message();
      (i == 0 ? culprit_ : innocent_.emplace_back()) = std::to_string(r->id);
    }
  }

  std::unique_ptr<LocalStore> Store() {
    LocalStoreOptions o;
    o.path = Path("jobs.db");
    auto store = LocalStore::Open(o);
    EXPECT_TRUE(store.ok()) << store.status().message();
    return store.ok() ? std::move(*store) : nullptr;
  }

  // `healthy`: every message goes to record_attempt, whatever its type.
  std::string Yaml(bool healthy, const std::string& lease = "30s") const {
    return "daemon:\n  state_dir: " + dir_.string() + "\nplugins:\n  test:\n    path: " +
           TestPluginPath() + "\nbackends:\n  local:\n    type: local\n    path: " +
           Path("jobs.db") + "\n    lease: " + lease +
           "\nqueues:\n  jobs:\n    backend: local\n    plugin: test\n    concurrency: 1\n"
           "    prefetch: 5\n" +
           (healthy ? "    handler: record_attempt\n" : "");
  }

  // After the first daemon died: the file shows all five claimed by it and
  // charged (what a restart without the journal would keep).
  void ExpectAllClaimedAndCharged() {
    auto store = Store();
    ASSERT_NE(store, nullptr);
    std::vector<std::string> all = innocent_;
    all.push_back(culprit_);
    for (const std::string& id : all) {
      auto job = store->GetJob(std::stoll(id));
      ASSERT_TRUE(job.ok() && job->has_value()) << id;
      EXPECT_EQ((*job)->state, JobState::kRunning) << "job " << id << " was not prefetched";
      EXPECT_EQ((*job)->attempts, 1u) << id;
    }
  }

  // Restarts with a healthy handler and checks what each job ran as.
  void RestartAndExpectOnlyTheCulpritCharged() {
    Spawn(Yaml(/*healthy=*/true));
    ASSERT_TRUE(WaitUntil([&] { return ReadAttempts(Path("record.txt")).size() == 1 + kInnocent; }))
        << Log();
    const auto ran = ReadAttempts(Path("record.txt"));
    EXPECT_EQ(ran.at(culprit_), std::vector<int>{2}) << "the running job is charged once\n" << Log();
    for (const std::string& id : innocent_) {
      ASSERT_EQ(ran.count(id), 1u) << id;
      EXPECT_EQ(ran.at(id), std::vector<int>{1}) << "prefetched job " << id << " never started\n"
                                                 << Log();
    }
    const std::string log = Log();
    EXPECT_NE(log.find("running, charged an attempt: " + culprit_ + ";"), std::string::npos) << log;
    EXPECT_NE(log.find("never started, attempt given back: " + innocent_[0] + ", "),
              std::string::npos)
        << log;
    kill(pid_, SIGTERM);
    const int status = Wait();
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << Describe(status) << "\n" << log;
  }

  std::string culprit_;
  std::vector<std::string> innocent_;
};

TEST_F(CrashAttributionTest, SegfaultChargesOnlyTheRunningJob) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "AddressSanitizer owns SIGSEGV from a bad access";
#endif
  Enqueue("crash", "500");  // time for every job to be claimed
  Spawn(Yaml(/*healthy=*/false));
  const int status = Wait();
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV) << Describe(status) << "\n"
                                                                  << Log();
  ExpectAllClaimedAndCharged();
  RestartAndExpectOnlyTheCulpritCharged();
}

TEST_F(CrashAttributionTest, KillNineChargesOnlyTheRunningJob) {
  Enqueue("hang", "60000");  // appends its id to the record, then sleeps 60 s
  Spawn(Yaml(/*healthy=*/false));
  ASSERT_TRUE(WaitUntil([&] {
    std::ifstream in(Path("record.txt"));
    std::string line;
    return std::getline(in, line) && line == culprit_;
  })) << Log();
  ASSERT_EQ(kill(pid_, SIGKILL), 0);
  const int status = Wait();
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << Describe(status);
  ExpectAllClaimedAndCharged();
  RestartAndExpectOnlyTheCulpritCharged();
}

// Without a journal that proves anything (here: deleted after the crash),
// nothing is given back: the jobs come back when their lease expires, every
// one of them charged, as before journals.
TEST_F(CrashAttributionTest, WithoutTheJournalEveryClaimedJobStaysCharged) {
  Enqueue("hang", "60000");
  Spawn(Yaml(/*healthy=*/false, "2s"));
  ASSERT_TRUE(WaitUntil([&] {
    std::ifstream in(Path("record.txt"));
    std::string line;
    return std::getline(in, line) && line == culprit_;
  })) << Log();
  ASSERT_EQ(kill(pid_, SIGKILL), 0);
  Wait();
  ASSERT_TRUE(std::filesystem::remove(Path("running.journal")));
  Spawn(Yaml(/*healthy=*/true, "2s"));
  ASSERT_TRUE(WaitUntil([&] { return ReadAttempts(Path("record.txt")).size() == 1 + kInnocent; }))
      << Log();
  for (const auto& [id, attempts] : ReadAttempts(Path("record.txt")))
    EXPECT_EQ(attempts, std::vector<int>{2}) << id;
  EXPECT_EQ(Log().find("attempt given back"), std::string::npos) << Log();
}

// docs/semantics.md, "Message ids", on the local backend: one job retried
// once, the daemon restarted, the retry's handler killed with SIGKILL, and
// the next daemon running it again: every attempt sees the job's id.
TEST_F(CrashAttributionTest, LocalMessageIdSurvivesARetryARestartAndAKillNine) {
  std::string id;
  {
    auto store = Store();
    ASSERT_NE(store, nullptr);
    NewJob j;
    j.queue = "jobs";
    j.payload = "60000";  // hang: 60 s
    auto r = store->Enqueue(j);
    ASSERT_TRUE(r.ok()) << r.status().message();
    id = std::to_string(r->id);
  }
  auto yaml = [&](const std::string& handler) {
    return "daemon:\n  state_dir: " + dir_.string() + "\nplugins:\n  test:\n    path: " +
           TestPluginPath() + "\nbackends:\n  local:\n    type: local\n    path: " +
           Path("jobs.db") +
           "\nretry_policies:\n  later:\n    max_attempts: 5\n    backoff: fixed\n"
           "    initial: 1s\n    jitter: 0\n"
           "queues:\n  jobs:\n    backend: local\n    plugin: test\n    concurrency: 1\n"
           "    retry_policy: later\n    middleware:\n      - logging\n    handler: " +
           handler + "\n";
  };
  // Run 1: attempt 1 fails and is scheduled again.
  Spawn(yaml("fail"));
  ASSERT_TRUE(WaitUntil([&] {
    auto store = Store();
    if (store == nullptr) return false;
    auto job = store->GetJob(std::stoll(id));
    return job.ok() && job->has_value() && (*job)->state == JobState::kScheduled;
  })) << Log();
  EXPECT_NE(Log().find("id=" + id + " type=- attempt=1 outcome=retry"), std::string::npos)
      << Log();
  ASSERT_EQ(kill(pid_, SIGTERM), 0);
  int status = Wait();
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << Describe(status) << Log();
  // Run 2 (a restart): attempt 2 hangs and the daemon is killed.
  Spawn(yaml("hang"));
  ASSERT_TRUE(WaitUntil([&] {
    std::ifstream in(Path("record.txt"));
    std::string line;
    return std::getline(in, line) && line == id;
  })) << Log();
  ASSERT_EQ(kill(pid_, SIGKILL), 0);
  status = Wait();
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << Describe(status);
  // Run 3: the killed attempt is charged and the id is the same.
  Spawn(yaml("record_attempt"));
  ASSERT_TRUE(WaitUntil([&] { return ReadAttempts(Path("record.txt")).count(id) == 1; })) << Log();
  EXPECT_EQ(ReadAttempts(Path("record.txt")).at(id), std::vector<int>{3}) << Log();
  kill(pid_, SIGTERM);
  status = Wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << Describe(status);
}

}  // namespace
}  // namespace foxworker::testing
