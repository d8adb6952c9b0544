// Shared pieces of the Redis backend tests: one real redis-server per test
// binary, backends and sources on it, and daemons configured for it.
#ifndef FOXWORKER_TESTS_BACKENDS_REDIS_TEST_UTIL_H_
#define FOXWORKER_TESTS_BACKENDS_REDIS_TEST_UTIL_H_

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "daemon/backends/redis/redis_backend.h"
#include "daemon/backends/redis/redis_url.h"
#include "tests/core/test_daemon.h"
#include "tests/harness/redis_server.h"

namespace foxworker::testing {

// The redis-server of this test binary, started by the first test that
// needs it and stopped at exit.
inline RedisServer& SharedRedis() {
  static RedisServer server;  // destroyed (server stopped, dir removed) at exit
  static const bool started = [] {
    Status st = server.Start();
    if (!st.ok()) ADD_FAILURE() << st.message();
    return st.ok();
  }();
  (void)started;
  return server;
}

inline RedisBackendOptions TestOptions(RedisServer& server, const std::string& consumer) {
  RedisBackendOptions o;
  EXPECT_TRUE(ParseRedisUrl(server.url(), &o).ok());
  o.consumer = consumer;
  o.block = std::chrono::milliseconds(200);
  o.min_idle = std::chrono::milliseconds(60000);
  o.claim_interval = std::chrono::milliseconds(100);
  o.reconnect_initial = std::chrono::milliseconds(20);
  o.reconnect_max = std::chrono::milliseconds(200);
  o.command_timeout = std::chrono::milliseconds(5000);
  o.connect_timeout = std::chrono::milliseconds(1000);
  return o;
}

// A started backend with one started source.
struct SourceUnderTest {
  std::unique_ptr<RedisBackend> backend;
  std::unique_ptr<Source> source;
  std::atomic<int> wakes{0};

  SourceUnderTest(RedisBackendOptions options, const std::string& stream, int prefetch = 16,
                  int max_attempts = 0) {
    backend = std::make_unique<RedisBackend>("redis", std::move(options));
    auto s = backend->OpenSource(SourceOptions{"q", stream, prefetch, max_attempts});
    EXPECT_TRUE(s.ok()) << s.status().message();
    source = std::move(*s);
    EXPECT_TRUE(backend->Start().ok());
    EXPECT_TRUE(source->Start([this] { wakes++; }).ok());
  }
  ~SourceUnderTest() {
    source->StopFetching();
    backend->Stop(std::chrono::steady_clock::now() + std::chrono::seconds(5));
    source.reset();
  }

  // Waits (at most `limit`) until `n` deliveries were fetched.
  std::vector<std::unique_ptr<Delivery>> FetchN(size_t n,
                                                std::chrono::milliseconds limit = std::chrono::seconds(15)) {
    std::vector<std::unique_ptr<Delivery>> out;
    WaitFor([&] {
      source->Fetch(n - out.size(), out);
      return out.size() >= n;
    }, limit);
    return out;
  }

  void SettleOne(std::unique_ptr<Delivery> d, Outcome outcome) {
    std::vector<Settlement> batch;
    batch.push_back(Settlement{std::move(d), std::move(outcome)});
    source->Settle(batch);
  }
};

// A stream entry's fields as a map.
inline std::map<std::string, std::string> FieldMap(const redisReply* fields) {
  std::map<std::string, std::string> m;
  for (size_t i = 0; i + 1 < fields->elements; i += 2) {
    m[std::string(ReplyText(fields->element[i]))] = std::string(ReplyText(fields->element[i + 1]));
  }
  return m;
}

// All entries of a stream as (id, fields).
inline std::vector<std::pair<std::string, std::map<std::string, std::string>>> ReadStream(
    RedisServer& server, const std::string& stream) {
  std::vector<std::pair<std::string, std::map<std::string, std::string>>> out;
  RedisReplyPtr r = server.Command({"XRANGE", stream, "-", "+"});
  if (r == nullptr || r->type != REDIS_REPLY_ARRAY) return out;
  for (size_t i = 0; i < r->elements; ++i) {
    out.emplace_back(std::string(ReplyText(r->element[i]->element[0])),
                     FieldMap(r->element[i]->element[1]));
  }
  return out;
}

// A daemon config with one redis backend and one queue on `stream`.
inline std::string RedisDaemonYaml(RedisServer& server, const std::string& stream,
                                   const std::string& consumer, const std::string& backend_extra,
                                   const std::string& queue_extra) {
  return "daemon:\n  worker_threads: 4\n  shutdown_timeout: 5s\n"
         "plugins:\n  test:\n    path: " + TestPluginPath() +
         "\nbackends:\n  r:\n    type: redis\n    url: " + server.url() +
         "\n    consumer: " + consumer +
         "\n    block: 200ms\n    claim_interval: 100ms\n    reconnect_initial: 20ms\n"
         "    reconnect_max: 200ms\n" + backend_extra +
         "retry_policies:\n  quick:\n    max_attempts: 3\n    backoff: fixed\n    initial: 50ms\n"
         "    jitter: 0\n"
         "queues:\n  q:\n    backend: r\n    source: " + stream +
         "\n    plugin: test\n    retry_policy: quick\n" + queue_extra;
}

}  // namespace foxworker::testing

#endif  // FOXWORKER_TESTS_BACKENDS_REDIS_TEST_UTIL_H_
