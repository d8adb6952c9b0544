// Whole daemons (Supervisor, executor, the test plugin) on the Redis backend.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <map>

#include "daemon/core/consumer.h"
#include "daemon/core/dead_letter.h"
#include "tests/backends/redis_test_util.h"

namespace foxworker::testing {
namespace {

std::string StreamName() {
  return std::string("d:") + ::testing::UnitTest::GetInstance()->current_test_info()->name();
}

std::map<std::string, int> ReadRecord(const std::string& path) {
  std::map<std::string, int> seen;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) seen[line]++;
  }
  return seen;
}

class RedisDaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ResetTestPlugin();
    record_ = SharedRedis().dir() + "/" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".record";
    std::remove(record_.c_str());
    setenv("FOXWORKER_TEST_RECORD_FILE", record_.c_str(), 1);
  }
  std::string record_;
};

TEST_F(RedisDaemonTest, FailingHandlerIsRetriedWithDelayThenDeadLettered) {
  RedisServer& redis = SharedRedis();
  const std::string stream = StreamName();
  redis.Command({"XADD", stream, "*", "data", "x", "type", "fail", "tenant", "acme"});
  redis.Command({"XADD", stream, "*", "data", "y", "type", "ok"});
  auto d = StartDaemon(RedisDaemonYaml(redis, stream, "c1", "", ""));
  ASSERT_TRUE(d);
  ASSERT_TRUE(WaitFor([&] { return redis.Integer({"XLEN", stream + "-dlq"}) == 1; },
                      std::chrono::seconds(15)));
  Consumer* c = d->FindConsumer("q");
  EXPECT_TRUE(WaitFor([&] { return c->Stats().acked == 1 && c->Stats().retried == 2; }));
  EXPECT_TRUE(WaitFor([&] { return redis.PendingCount(stream, "foxworker") == 0; }));
  EXPECT_EQ(redis.Integer({"ZCARD", stream + ":retry"}), 0);
  auto dead = ReadStream(redis, stream + "-dlq");
  ASSERT_EQ(dead.size(), 1u);
  auto& f = dead[0].second;
  EXPECT_EQ(f["data"], "x");
  EXPECT_EQ(f["tenant"], "acme");
  EXPECT_EQ(f[kHeaderFinalAttempt], "3");
  EXPECT_NE(f[kHeaderFailureReason].find("asked to fail"), std::string::npos)
      << f[kHeaderFailureReason];
  EXPECT_EQ(f[kHeaderOriginalQueue], stream);
  EXPECT_TRUE(d->Shutdown());
}

TEST_F(RedisDaemonTest, TwoDaemonsInOneGroupShareTheWorkWithoutRunningAnEntryTwice) {
  RedisServer& redis = SharedRedis();
  const std::string stream = StreamName();
  constexpr int kEntries = 2000;
  std::vector<RedisCommand> adds;
  for (int i = 0; i < kEntries; ++i) {
    redis.Command({"XADD", stream, "*", "data", "200", "type", "record"});  // 200 us each
  }
  const std::string queue = "    concurrency: 4\n    prefetch: 16\n";
  auto a = StartDaemon(RedisDaemonYaml(redis, stream, "a", "", queue));
  auto b = StartDaemon(RedisDaemonYaml(redis, stream, "b", "", queue));
  ASSERT_TRUE(a && b);
  Consumer* ca = a->FindConsumer("q");
  Consumer* cb = b->FindConsumer("q");
  ASSERT_TRUE(WaitFor([&] { return ca->Stats().acked + cb->Stats().acked == kEntries; },
                      std::chrono::seconds(60)));
  EXPECT_TRUE(a->Shutdown());
  EXPECT_TRUE(b->Shutdown());
  EXPECT_GT(ca->Stats().acked, 0u);
  EXPECT_GT(cb->Stats().acked, 0u);
  auto seen = ReadRecord(record_);
  EXPECT_EQ(seen.size(), static_cast<size_t>(kEntries));
  int twice = 0;
  for (auto& [id, n] : seen) twice += n > 1;
  EXPECT_EQ(twice, 0);
  EXPECT_EQ(redis.PendingCount(stream, "foxworker"), 0);
}

TEST_F(RedisDaemonTest, DaemonRecoversAKilledConsumersEntriesAfterMinIdle) {
  RedisServer& redis = SharedRedis();
  const std::string stream = StreamName();
  redis.Command({"XGROUP", "CREATE", stream, "foxworker", "0", "MKSTREAM"});
  for (int i = 0; i < 50; ++i) redis.Command({"XADD", stream, "*", "data", "0", "type", "record"});
  // What a kill -9 leaves behind: entries read by a consumer that never acks.
  redis.Command({"XREADGROUP", "GROUP", "foxworker", "killed", "COUNT", "30", "STREAMS", stream, ">"});
  ASSERT_EQ(redis.PendingCount(stream, "foxworker"), 30);
  auto d = StartDaemon(RedisDaemonYaml(redis, stream, "survivor", "    min_idle: 700ms\n",
                                       "    concurrency: 2\n"));
  ASSERT_TRUE(d);
  Consumer* c = d->FindConsumer("q");
  // The 20 never read go at once; the killed consumer's 30 after min_idle.
  ASSERT_TRUE(WaitFor([&] { return c->Stats().acked == 50; }, std::chrono::seconds(20)));
  EXPECT_TRUE(WaitFor([&] { return redis.PendingCount(stream, "foxworker") == 0; }));
  EXPECT_TRUE(d->Shutdown());
  auto seen = ReadRecord(record_);
  EXPECT_EQ(seen.size(), 50u);
}

TEST_F(RedisDaemonTest, GracefulShutdownLeavesUnstartedEntriesForOthers) {
  RedisServer& redis = SharedRedis();
  const std::string stream = StreamName();
  constexpr uint64_t kEntries = 30;
  for (uint64_t i = 0; i < kEntries; ++i) {
    redis.Command({"XADD", stream, "*", "data", "50", "type", "sleep"});
  }
  auto d = StartDaemon(RedisDaemonYaml(redis, stream, "leaver", "",
                                       "    concurrency: 1\n    prefetch: 4\n"));
  ASSERT_TRUE(d);
  Consumer* c = d->FindConsumer("q");
  ASSERT_TRUE(WaitFor([&] { return c->Stats().acked >= 1; }));
  EXPECT_TRUE(d->Shutdown());
  // It finished what it had started (at most two batches of prefetch 4).
  const uint64_t done = c->Stats().acked;
  EXPECT_LE(done, 8u);
  // What it had buffered was handed back idle: another daemon takes it
  // without waiting for min_idle (60 s here) and without an extra attempt.
  auto e = StartDaemon(RedisDaemonYaml(redis, stream, "taker", "",
                                       "    concurrency: 4\n    prefetch: 20\n"));
  ASSERT_TRUE(e);
  Consumer* c2 = e->FindConsumer("q");
  ASSERT_TRUE(WaitFor([&] { return done + c2->Stats().acked == kEntries; },
                      std::chrono::seconds(20)));
  EXPECT_EQ(c2->Stats().retried, 0u);
  EXPECT_TRUE(e->Shutdown());
  EXPECT_EQ(redis.PendingCount(stream, "foxworker"), 0);
}

}  // namespace
}  // namespace foxworker::testing
