// Crashes charged to the right message, Redis backend, the real foxworkerd:
// with concurrency 1 and five entries read (pending for the daemon's
// consumer, delivery count 1 each), the first entry's handler segfaults (or
// hangs and the daemon is kill -9ed). After a restart under another consumer
// name (the default name has the pid in it) with a handler that does not
// crash, only the entry that was running is on its second attempt; the four
// that waited prefetched run as attempt 1, at once (min_idle is 60 s, so
// only the journal can have sorted them). docs/semantics.md, "Attempts
// after a crash".
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "tests/backends/redis_test_util.h"
#include "tests/harness/daemon_process.h"

namespace foxworker::testing {
namespace {

constexpr char kStream[] = "jobs";
constexpr char kGroup[] = "foxworker";
constexpr int kInnocent = 4;


class RedisCrashAttributionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    struct rlimit none = {0, 0};
    setrlimit(RLIMIT_CORE, &none);
    ASSERT_TRUE(redis_.Start().ok());
    dir_ = redis_.dir() + "/state";
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }

  void Add(const std::string& type, const std::string& payload) {
    for (int i = 0; i <= kInnocent; ++i) {
      RedisReplyPtr r = redis_.Command({"XADD", kStream, "*", "data", i == 0 ? payload : "1000",
                                        "type", i == 0 ? type : "record_attempt"});
      ASSERT_TRUE(r != nullptr && r->type == REDIS_REPLY_STRING);
      (i == 0 ? culprit_ : innocent_.emplace_back()) = std::string(ReplyText(r.get()));
    }
  }

  void Spawn(bool healthy) {
    const std::string config = dir_ + "/foxworker.yaml";
    // No consumer name: the default one has this process's pid in it.
    std::ofstream(config) << "daemon:\n  state_dir: " << dir_
                          << "\nplugins:\n  test:\n    path: " << TestPluginPath()
                          << "\nbackends:\n  r:\n    type: redis\n    url: " << redis_.url()
                          << "\n    min_idle: 60s\n    claim_interval: 100ms\n    block: 200ms\n"
                          << "queues:\n  jobs:\n    backend: r\n    source: " << kStream
                          << "\n    plugin: test\n    concurrency: 1\n    prefetch: 5\n"
                          << (healthy ? "    handler: record_attempt\n" : "");
    pid_ = SpawnDaemon(config, record_, log_);
    ASSERT_GT(pid_, 0);
  }

  int Wait() {
    int status = 0;
    for (int i = 0; i < 2000; ++i) {
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return status;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return -1;
  }

  // After the first daemon died: all five pending for it, delivered once.
  void ExpectAllPendingOnce() {
    RedisReplyPtr r = redis_.Command({"XPENDING", kStream, kGroup, "-", "+", "100"});
    ASSERT_TRUE(r != nullptr && r->type == REDIS_REPLY_ARRAY);
    ASSERT_EQ(r->elements, static_cast<size_t>(1 + kInnocent)) << "not all prefetched";
    for (size_t i = 0; i < r->elements; ++i) EXPECT_EQ(r->element[i]->element[3]->integer, 1);
  }

  void RestartAndExpectOnlyTheCulpritCharged() {
    Spawn(/*healthy=*/true);
    ASSERT_TRUE(WaitFor([&] { return ReadAttempts(record_).size() == 1 + kInnocent; },
                        std::chrono::seconds(20)))
        << ReadAll(log_);
    const auto ran = ReadAttempts(record_);
    EXPECT_EQ(ran.at(culprit_), std::vector<int>{2}) << ReadAll(log_);
    for (const std::string& id : innocent_) {
      ASSERT_EQ(ran.count(id), 1u) << id;
      EXPECT_EQ(ran.at(id), std::vector<int>{1}) << "prefetched entry " << id << "\n"
                                                 << ReadAll(log_);
    }
    EXPECT_TRUE(WaitFor([&] { return redis_.PendingCount(kStream, kGroup) == 0; },
                        std::chrono::seconds(10)));
    const std::string log = ReadAll(log_);
    EXPECT_NE(log.find("running, charged an attempt: " + culprit_ + ";"), std::string::npos) << log;
    EXPECT_NE(log.find("never started, delivery count given back: " + innocent_[0]),
              std::string::npos)
        << log;
    kill(pid_, SIGTERM);
    const int status = Wait();
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status << "\n" << log;
  }

  RedisServer redis_;
  std::string dir_;
  std::string record_ = "";
  std::string log_ = "";
  pid_t pid_ = -1;
  std::string culprit_;
  std::vector<std::string> innocent_;
};

TEST_F(RedisCrashAttributionTest, SegfaultChargesOnlyTheRunningEntry) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "AddressSanitizer owns SIGSEGV from a bad access";
#endif
  record_ = dir_ + "/record.txt";
  log_ = dir_ + "/daemon.log";
  Add("crash", "500");  // time for the reader to fetch all five
  Spawn(/*healthy=*/false);
  const int status = Wait();
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV) << status << "\n"
                                                                  << ReadAll(log_);
  ExpectAllPendingOnce();
  RestartAndExpectOnlyTheCulpritCharged();
}

TEST_F(RedisCrashAttributionTest, KillNineChargesOnlyTheRunningEntry) {
  record_ = dir_ + "/record.txt";
  log_ = dir_ + "/daemon.log";
  Add("hang", "60000");
  Spawn(/*healthy=*/false);
  ASSERT_TRUE(WaitFor(
      [&] {
        std::ifstream in(record_);
        std::string line;
        return std::getline(in, line) && line == culprit_;
      },
      std::chrono::seconds(20)))
      << ReadAll(log_);
  // The hang handler records before it sleeps; the other four were read in
  // the same XREADGROUP or are about to be: wait until all are pending.
  ASSERT_TRUE(WaitFor([&] { return redis_.PendingCount(kStream, kGroup) == 1 + kInnocent; },
                      std::chrono::seconds(10)));
  ASSERT_EQ(kill(pid_, SIGKILL), 0);
  const int status = Wait();
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  ExpectAllPendingOnce();
  RestartAndExpectOnlyTheCulpritCharged();
}

// docs/semantics.md, "Message ids": one entry, retried once (a new entry in
// the stream), the daemon restarted, the retry's handler killed with
// SIGKILL, and the next daemon running it again: every attempt sees the id
// of the first entry, and the journal (which names that id) still charges
// the killed attempt to the retry copy pending under another entry id.
TEST_F(RedisCrashAttributionTest, MessageIdSurvivesARetryARestartAndAKillNine) {
  record_ = dir_ + "/record.txt";
  log_ = dir_ + "/daemon.log";
  RedisReplyPtr r = redis_.Command({"XADD", kStream, "*", "data", "60000"});
  ASSERT_TRUE(r != nullptr && r->type == REDIS_REPLY_STRING);
  const std::string id(ReplyText(r.get()));
  auto spawn = [&](const std::string& handler) {
    const std::string config = dir_ + "/foxworker.yaml";
    std::ofstream(config) << "daemon:\n  state_dir: " << dir_
                          << "\nplugins:\n  test:\n    path: " << TestPluginPath()
                          << "\nbackends:\n  r:\n    type: redis\n    url: " << redis_.url()
                          << "\n    min_idle: 60s\n    claim_interval: 100ms\n    block: 200ms\n"
                          << "retry_policies:\n  later:\n    max_attempts: 5\n    backoff: fixed\n"
                          << "    initial: 1s\n    jitter: 0\n"
                          << "queues:\n  jobs:\n    backend: r\n    source: " << kStream
                          << "\n    plugin: test\n    concurrency: 1\n    prefetch: 5\n"
                          << "    retry_policy: later\n    middleware:\n      - logging\n"
                          << "    handler: " << handler << "\n";
    pid_ = SpawnDaemon(config, record_, log_);
    ASSERT_GT(pid_, 0);
  };
  // Run 1: attempt 1 fails; its retry copy waits in the retry set.
  spawn("fail");
  ASSERT_TRUE(WaitFor([&] { return redis_.Integer({"ZCARD", std::string(kStream) + ":retry"}) == 1; },
                      std::chrono::seconds(20)))
      << ReadAll(log_);
  ASSERT_EQ(kill(pid_, SIGTERM), 0);
  int status = Wait();
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status << "\n" << ReadAll(log_);
  EXPECT_NE(ReadAll(log_).find("id=" + id + " type=- attempt=1 outcome=retry"), std::string::npos)
      << ReadAll(log_);
  // Run 2 (a restart): the copy comes back as a new entry; attempt 2 hangs
  // and the daemon is killed.
  spawn("hang");
  ASSERT_TRUE(WaitFor([&] { return ReadAll(record_) == id + "\n"; }, std::chrono::seconds(20)))
      << ReadAll(record_) << ReadAll(log_);
  auto entries = ReadStream(redis_, kStream);
  ASSERT_EQ(entries.size(), 2u);
  const std::string copy = entries[1].first;
  EXPECT_NE(copy, id);
  ASSERT_EQ(kill(pid_, SIGKILL), 0);
  status = Wait();
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  // Run 3: the killed attempt is charged (the journal named the message
  // id, the pending entry is the copy), and the id is the first entry's.
  spawn("record_attempt");
  ASSERT_TRUE(WaitFor([&] { return ReadAttempts(record_).count(id) == 1; },
                      std::chrono::seconds(20)))
      << ReadAll(record_) << ReadAll(log_);
  EXPECT_EQ(ReadAttempts(record_).at(id), std::vector<int>{3}) << ReadAll(log_);
  EXPECT_NE(ReadAll(log_).find("running, charged an attempt: " + copy + ";"), std::string::npos)
      << ReadAll(log_);
  EXPECT_TRUE(WaitFor([&] { return redis_.PendingCount(kStream, kGroup) == 0; },
                      std::chrono::seconds(10)));
  kill(pid_, SIGTERM);
  status = Wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

}  // namespace
}  // namespace foxworker::testing
