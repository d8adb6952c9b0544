// Fault test: a daemon works through 20,000 stream entries while Redis
// (appendonly yes) is restarted twice under it. Every entry must be handled
// at least once and nothing may be left pending or waiting for a retry.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>

#include "daemon/core/consumer.h"
#include "tests/backends/redis_test_util.h"

namespace foxworker::testing {
namespace {

constexpr int kEntries = 20000;

TEST(RedisFaultTest, EveryEntryIsHandledAcrossTwoRedisRestarts) {
  RedisServer redis;
  ASSERT_TRUE(redis.Start().ok());
  const std::string stream = "fault";
  const std::string record = redis.dir() + "/record";
  setenv("FOXWORKER_TEST_RECORD_FILE", record.c_str(), 1);
  std::vector<RedisCommand> adds;
  for (int i = 0; i < kEntries; ++i) {
    adds.push_back({"XADD", stream, "*", "data", "150", "type", "record", "n", std::to_string(i)});
    if (adds.size() == 1000) {
      redis.Pipeline(adds);
      adds.clear();
    }
  }
  ASSERT_EQ(redis.Integer({"XLEN", stream}), kEntries);

  auto d = StartDaemon(RedisDaemonYaml(redis, stream, "faulty", "",
                                       "    concurrency: 4\n    prefetch: 64\n"));
  ASSERT_TRUE(d);
  Consumer* c = d->FindConsumer("q");
  auto* backend = d->FindBackend("r");
  for (uint64_t at : {5000u, 12000u}) {
    ASSERT_TRUE(WaitFor([&] { return c->Stats().acked >= at; }, std::chrono::seconds(60)));
    ASSERT_TRUE(redis.Restart().ok());
  }
  // Done when Redis agrees: nothing pending, nothing scheduled, all seen.
  auto count_seen = [&] {
    std::map<std::string, int> seen;
    std::ifstream in(record);
    std::string line;
    while (std::getline(in, line)) {
      if (!line.empty()) seen[line]++;
    }
    return seen;
  };
  ASSERT_TRUE(WaitFor([&] {
    return c->Stats().acked >= static_cast<uint64_t>(kEntries) &&
           redis.PendingCount(stream, "foxworker") == 0 && count_seen().size() == kEntries;
  }, std::chrono::seconds(90)));
  BackendState state = backend->State();
  EXPECT_TRUE(d->Shutdown());

  auto seen = count_seen();
  int handled = 0, duplicates = 0;
  for (const auto& [id, n] : seen) {
    handled += n;
    duplicates += n - 1;
  }
  EXPECT_EQ(seen.size(), static_cast<size_t>(kEntries));
  EXPECT_EQ(redis.PendingCount(stream, "foxworker"), 0);
  EXPECT_EQ(redis.Integer({"ZCARD", stream + ":retry"}), 0);
  EXPECT_GE(state.reconnects, 2u);
  std::printf("redis fault test: entries %d, handled %d, duplicates %d, reconnects %llu\n",
              kEntries, handled, duplicates, static_cast<unsigned long long>(state.reconnects));
}

}  // namespace
}  // namespace foxworker::testing
