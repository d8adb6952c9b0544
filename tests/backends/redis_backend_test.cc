// The Redis Streams backend against a real redis-server: fields, retries,
// dead letters, releases, crash recovery, group re-creation, reconnects.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <set>
#include <thread>

#include "daemon/backends/redis/redis_codec.h"
#include "daemon/core/dead_letter.h"
#include "tests/backends/redis_test_util.h"

namespace foxworker::testing {
namespace {

std::string StreamName() {
  return std::string("s:") + ::testing::UnitTest::GetInstance()->current_test_info()->name();
}

TEST(RedisUrlTest, ParsesHostPortDbUserAndPassword) {
  RedisBackendOptions o;
  ASSERT_TRUE(ParseRedisUrl("redis://app:s%40cret@cache.example:6380/3", &o).ok());
  EXPECT_EQ(o.host, "cache.example");
  EXPECT_EQ(o.port, 6380);
  EXPECT_EQ(o.db, 3);
  EXPECT_EQ(o.user, "app");
  EXPECT_EQ(o.password, "s@cret");
  EXPECT_EQ(RedactedRedisUrl(o), "redis://app:***@cache.example:6380/3");

  ASSERT_TRUE(ParseRedisUrl("redis://:pw@[::1]", &o).ok());
  EXPECT_EQ(o.host, "::1");
  EXPECT_EQ(o.port, 6379);
  EXPECT_EQ(o.user, "");
  EXPECT_EQ(o.db, 0);
  EXPECT_EQ(RedactedRedisUrl(o), "redis://:***@[::1]:6379/0");

  ASSERT_TRUE(ParseRedisUrl("unix:///run/redis/redis.sock?db=2", &o).ok());
  EXPECT_EQ(o.unix_path, "/run/redis/redis.sock");
  EXPECT_EQ(o.db, 2);
  EXPECT_EQ(RedactedRedisUrl(o), "unix:///run/redis/redis.sock?db=2");
}

TEST(RedisUrlTest, RefusesBadUrlsWithoutEchoingThePassword) {
  RedisBackendOptions o;
  Status s = ParseRedisUrl("redis://u:topsecret@host:99999/0", &o);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.message().find("topsecret"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("port"), std::string::npos) << s.message();
  EXPECT_FALSE(ParseRedisUrl("http://host", &o).ok());
  EXPECT_FALSE(ParseRedisUrl("redis://host/abc", &o).ok());
  EXPECT_FALSE(ParseRedisUrl("unix://relative.sock", &o).ok());
  s = ParseRedisUrl("rediss://host:6380", &o);
  EXPECT_NE(s.message().find("TLS"), std::string::npos) << s.message();
}

TEST(RedisConfigTest, ParsesEveryKeyAndNeverPrintsThePassword) {
  auto config = ParseConfigString(
      "backends:\n  r:\n    type: redis\n    url: redis://app:hunter2@db.example:6390/4\n"
      "    connect_timeout: 2s\n    command_timeout: 3s\n    group: workers\n"
      "    consumer: box-1\n    start: $\n    payload_field: body\n    min_idle: 90s\n"
      "    claim_interval: 2s\n    block: 500ms\n    maxlen: 100000\n    dlq_maxlen: 5000\n"
      "    reconnect_initial: 50ms\n    reconnect_max: 5s\n",
      "test.yaml", "/tmp");
  ASSERT_TRUE(config.ok()) << config.status().message();
  const RedisBackendOptions& r = *config->backends[0].options.As<RedisBackendOptions>();
  EXPECT_EQ(r.host, "db.example");
  EXPECT_EQ(r.port, 6390);
  EXPECT_EQ(r.db, 4);
  EXPECT_EQ(r.user, "app");
  EXPECT_EQ(r.password, "hunter2");
  EXPECT_EQ(r.connect_timeout, Duration(2000));
  EXPECT_EQ(r.command_timeout, Duration(3000));
  EXPECT_EQ(r.group, "workers");
  EXPECT_EQ(r.consumer, "box-1");
  EXPECT_EQ(r.start, "$");
  EXPECT_EQ(r.payload_field, "body");
  EXPECT_EQ(r.min_idle, Duration(90000));
  EXPECT_EQ(r.claim_interval, Duration(2000));
  EXPECT_EQ(r.block, Duration(500));
  EXPECT_EQ(r.maxlen, 100000);
  EXPECT_EQ(r.dlq_maxlen, 5000);
  EXPECT_EQ(r.reconnect_initial, Duration(50));
  EXPECT_EQ(r.reconnect_max, Duration(5000));
  std::string text = FormatConfig(*config);
  EXPECT_EQ(text.find("hunter2"), std::string::npos) << text;
  EXPECT_NE(text.find("redis://app:***@db.example:6390/4"), std::string::npos) << text;
  auto again = ParseConfigString(text, "again.yaml", "/tmp");
  EXPECT_TRUE(again.ok()) << again.status().message();

  auto bad = ParseConfigString("backends:\n  r:\n    type: redis\n    min_idle: 0s\n", "t.yaml", "/tmp");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("backends.r.min_idle: must be greater than zero"),
            std::string::npos) << bad.status().message();
}

// A round that outgrew the first block leaves one block that fits it, reused
// by the next round of the same size; nothing is rewound while a root lives.
TEST(RedisConnectionTest, ArenaRewindsIntoOneBlockOnceEveryReplyIsFreed) {
  ReplyArena arena;
  arena.Hold();
  char* first = static_cast<char*>(arena.Alloc(100));
  std::memset(first, 'x', 100);
  for (int i = 0; i < 5000; ++i) ASSERT_NE(arena.Alloc(48), nullptr);  // past 64 KiB
  arena.Hold();
  arena.Release();  // one root still alive: nothing moves
  EXPECT_EQ(first[99], 'x');
  const size_t grown = arena.capacity();
  EXPECT_GT(grown, 64u * 1024);
  arena.Release();
  const size_t kept = arena.capacity();
  EXPECT_GE(kept, 100u + 5000u * 48);
  EXPECT_LE(kept, grown);
  arena.Hold();
  for (int i = 0; i < 5000; ++i) {
    auto* p = static_cast<char*>(arena.Alloc(48));
    ASSERT_EQ(p[0], 0);  // zeroed
  }
  EXPECT_EQ(arena.capacity(), kept);
  arena.Release();
}

// Commands are written in the protocol by RedisConnection itself: empty,
// binary and large arguments, commands with thousands of arguments, and
// several commands in one pipeline all arrive intact.
TEST(RedisConnectionTest, PipelinesEmptyBinaryLargeAndManyArguments) {
  RedisServer& redis = SharedRedis();
  auto conn = RedisConnection::Connect(TestOptions(redis, "c1"), "pipeline");
  ASSERT_TRUE(conn.ok());
  std::string big(200 * 1024, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7);
  RedisCommand many = {"DEL"};
  for (int i = 0; i < 5000; ++i) many.push_back("pipeline:none:" + std::to_string(i));
  std::vector<RedisReplyPtr> replies;
  ASSERT_TRUE((*conn)->Pipeline(std::vector<RedisCommand>{{"SET", "pipeline:empty", ""},
                                                          {"SET", "pipeline:big", big},
                                                          many,
                                                          {"GET", "pipeline:empty"},
                                                          {"GET", "pipeline:big"},
                                                          {"STRLEN", std::string("pipe\r\nline", 10)}},
                                &replies)
                  .ok());
  ASSERT_EQ(replies.size(), 6u);
  EXPECT_EQ(ReplyText(replies[0].get()), "OK");
  EXPECT_EQ(ReplyText(replies[1].get()), "OK");
  EXPECT_EQ(replies[2]->type, REDIS_REPLY_INTEGER);
  EXPECT_EQ(replies[2]->integer, 0);
  EXPECT_EQ(replies[3]->type, REDIS_REPLY_STRING);
  EXPECT_EQ(ReplyText(replies[3].get()), "");
  EXPECT_EQ(ReplyText(replies[4].get()), big);
  EXPECT_EQ(replies[5]->type, REDIS_REPLY_INTEGER);
  auto again = (*conn)->Run({"GET", "pipeline:empty"});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(ReplyText(again->get()), "");
}

// Replies built in a ReplyArena read the same as hiredis's own: nested
// arrays, binary strings, integers, nil, status and error replies, several
// replies alive at once, and a reply larger than the arena's first block.
// A "server" that answers the connection's setup, then announces a huge
// array: hiredis would allocate its element pointers (8 GB) at once.
// Found by fuzz/redis_entry_fuzzer.
TEST(RedisConnectionTest, AHugeArrayHeaderFailsTheConnectionInsteadOfAllocating) {
  for (bool arena : {false, true}) {
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(listener, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    ASSERT_EQ(listen(listener, 1), 0);
    socklen_t len = sizeof(addr);
    ASSERT_EQ(getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);
    std::thread server([listener] {
      int c = accept(listener, nullptr, nullptr);
      if (c < 0) return;
      char buf[4096];
      // CLIENT SETNAME, DBSIZE, CLIENT ID: one write from the client.
      if (read(c, buf, sizeof(buf)) > 0) {
        const std::string setup = "+OK\r\n:0\r\n:7\r\n";
        (void)!write(c, setup.data(), setup.size());
      }
      if (read(c, buf, sizeof(buf)) > 0) {
        const std::string huge = "*1000000000\r\n";
        (void)!write(c, huge.data(), huge.size());
      }
      (void)!read(c, buf, sizeof(buf));  // until the client closes
      close(c);
    });
    RedisBackendOptions o;
    o.host = "127.0.0.1";
    o.port = ntohs(addr.sin_port);
    o.command_timeout = std::chrono::milliseconds(5000);
    {
      auto conn = RedisConnection::Connect(o, "huge", arena);
      ASSERT_TRUE(conn.ok()) << conn.status().ToString();
      std::vector<RedisReplyPtr> replies;
      Status s = (*conn)->Pipeline(std::vector<RedisCommand>{{"PING"}}, &replies);
      EXPECT_FALSE(s.ok());
      EXPECT_NE(s.ToString().find("announced an array of 1000000000 elements, over the limit of "
                                  "1048576"),
                std::string::npos)
          << s.ToString();
    }
    server.join();
    close(listener);
  }
}

TEST(RedisConnectionTest, ArenaRepliesReadLikeHiredisOnes) {
  RedisServer& redis = SharedRedis();
  const std::string stream = StreamName();
  RedisBackendOptions o = TestOptions(redis, "c1");
  auto plain = RedisConnection::Connect(o, "plain");
  auto arena = RedisConnection::Connect(o, "arena", /*arena_replies=*/true);
  ASSERT_TRUE(plain.ok() && arena.ok());
  std::vector<RedisCommand> fill;
  for (int i = 0; i < 3000; ++i) {
    fill.push_back({"XADD", stream, "*", "data", std::string("p\0", 2) + std::to_string(i),
                    "type", "t", "n", std::to_string(i)});
  }
  redis.Pipeline(fill);
  const std::vector<RedisCommand> cmds = {
      {"XRANGE", stream, "-", "+"}, {"XLEN", stream},          {"GET", "missing-key"},
      {"PING"},                     {"XACK", stream},          {"XRANGE", stream, "-", "+", "COUNT", "2"}};
  // Two rounds: the second reuses the arena the first grew.
  for (int round = 0; round < 2; ++round) {
    std::vector<RedisReplyPtr> want, got;
    ASSERT_TRUE((*plain)->Pipeline(cmds, &want).ok());
    ASSERT_TRUE((*arena)->Pipeline(cmds, &got).ok());
    ASSERT_EQ(got.size(), want.size());
    std::function<void(const redisReply*, const redisReply*)> same = [&](const redisReply* a,
                                                                          const redisReply* b) {
      ASSERT_EQ(a->type, b->type);
      EXPECT_EQ(a->integer, b->integer);
      ASSERT_EQ(a->len, b->len);
      if (a->str != nullptr) {
        EXPECT_EQ(std::string(a->str, a->len), std::string(b->str, b->len));
        EXPECT_EQ(b->str[b->len], '\0');
      }
      ASSERT_EQ(a->elements, b->elements);
      for (size_t i = 0; i < a->elements; ++i) same(a->element[i], b->element[i]);
    };
    for (size_t i = 0; i < got.size(); ++i) same(want[i].get(), got[i].get());
    EXPECT_EQ(got[0]->elements, 3000u);
    EXPECT_EQ(got[2]->type, REDIS_REPLY_NIL);
    EXPECT_EQ(got[3]->type, REDIS_REPLY_STATUS);
    EXPECT_EQ(got[4]->type, REDIS_REPLY_ERROR);
    // Freeing some replies keeps the others readable.
    got[0].reset();
    auto more = (*arena)->Run({"XRANGE", stream, "-", "+", "COUNT", "1"});
    ASSERT_TRUE(more.ok());
    EXPECT_EQ(std::string((*more)->element[0]->element[1]->element[1]->str, 3),
              std::string("p\0" "0", 3));
    EXPECT_EQ(std::string(got[5]->element[1]->element[1]->element[1]->str), "p");
  }
}

TEST(RedisBackendTest, FieldsRoundTripToTheMessage) {
  RedisServer& redis = SharedRedis();
  const std::string stream = StreamName();
  redis.Command({"XADD", stream, "*", "data", std::string("pay\0load", 8), "content_type",
                 "application/json", "type", "email.send", "correlation_id", "c-1", "reply_to",
                 "replies", "message_id", "m-1", "priority", "7", "timestamp", "1700000000123",
                 "tenant", "acme"});
  SourceUnderTest t(TestOptions(redis, "c1"), stream);
  auto got = t.FetchN(1);
  ASSERT_EQ(got.size(), 1u);
  const Message& m = got[0]->msg;
  EXPECT_EQ(m.payload, std::string("pay\0load", 8));
  EXPECT_EQ(m.props.content_type, "application/json");
  EXPECT_EQ(m.props.message_type, "email.send");
  EXPECT_EQ(m.props.correlation_id, "c-1");
  EXPECT_EQ(m.props.reply_to, "replies");
  EXPECT_EQ(m.props.message_id, "m-1");
  EXPECT_EQ(m.props.priority, 7);
  EXPECT_EQ(m.props.timestamp_ms, 1700000000123);
  ASSERT_EQ(m.headers.size(), 1u);
  EXPECT_EQ(m.headers[0], (std::pair<std::string, std::string>("tenant", "acme")));
  EXPECT_EQ(m.attempt, 1u);
  EXPECT_EQ(m.enqueued_at_ms, EntryIdMs(m.id));
  EXPECT_EQ(*got[0]->queue, "q");
  EXPECT_EQ(redis.PendingCount(stream, "foxworker"), 1);
  t.SettleOne(std::move(got[0]), Outcome::Ack());
  EXPECT_TRUE(WaitFor([&] { return redis.PendingCount(stream, "foxworker") == 0; }));
}

TEST(RedisBackendTest, EnqueueWritesFieldsThatReadBackTheSame) {
  RedisServer& redis = SharedRedis();
  const std::string stream = StreamName();
  SourceUnderTest t(TestOptions(redis, "c1"), stream);
  Message m;
  m.payload = "hello";
  m.props.message_type = "greet";
  m.props.content_encoding = "gzip";
  m.props.app_id = "app";
  m.headers.emplace_back("k", "v");
  ASSERT_TRUE(t.backend->Enqueue(stream, m, Duration{0}).ok());
  auto got = t.FetchN(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0]->msg.payload, "hello");
  EXPECT_EQ(got[0]->msg.props.message_type, "greet");
  EXPECT_EQ(got[0]->msg.props.content_encoding, "gzip");
  EXPECT_EQ(got[0]->msg.props.app_id, "app");
  EXPECT_EQ(got[0]->msg.headers, m.headers);
  t.SettleOne(std::move(got[0]), Outcome::Ack());
}

TEST(RedisBackendTest, RetryWaitsInTheSortedSetThenComesBackWithTheNextAttempt) {
  RedisServer& redis = SharedRedis();
  const std::string stream = StreamName();
  redis.Command({"XADD", stream, "*", "data", "x", "type", "fail", "h", "1"});
  SourceUnderTest t(TestOptions(redis, "c1"), stream);
  auto got = t.FetchN(1);
  ASSERT_EQ(got.size(), 1u);
  const std::string first_id = got[0]->msg.id;
  const auto t0 = std::chrono::steady_clock::now();
  t.SettleOne(std::move(got[0]), Outcome::Retry(Duration(400), "try later"));
  // The copy waits in the set and the original is acked, atomically.
  ASSERT_TRUE(WaitFor([&] { return redis.Integer({"ZCARD", stream + ":retry"}) == 1; }));
  EXPECT_EQ(redis.PendingCount(stream, "foxworker"), 0);
  auto again = t.FetchN(1);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(400));
  const Message& m = again[0]->msg;
  EXPECT_EQ(m.id, first_id);  // a new entry, the same message
  EXPECT_EQ(m.enqueued_at_ms, EntryIdMs(first_id));
  EXPECT_EQ(m.attempt, 2u);
  EXPECT_EQ(m.payload, "x");
  EXPECT_EQ(m.props.message_type, "fail");
  ASSERT_NE(m.FindHeader("h"), nullptr);
  EXPECT_NE(m.FindHeader(kHeaderFirstSeenAt), nullptr);
  EXPECT_EQ(redis.Integer({"ZCARD", stream + ":retry"}), 0);
  t.SettleOne(std::move(again[0]), Outcome::Ack());
  EXPECT_TRUE(WaitFor([&] { return redis.PendingCount(stream, "foxworker") == 0; }));
}

TEST(RedisBackendTest, DeadLetterCopyCarriesFieldsReasonAndHistory) {
  RedisServer& redis = SharedRedis();
  const std::string stream = StreamName();
  redis.Command({"XADD", stream, "*", "data", "body", "type", "reject", "correlation_id", "c-9",
                 "tenant", "acme"});
  SourceUnderTest t(TestOptions(redis, "c1"), stream);
  auto got = t.FetchN(1);
  ASSERT_EQ(got.size(), 1u);
  const std::string id = got[0]->msg.id;
  t.SettleOne(std::move(got[0]), Outcome::DeadLetter("bad input"));
  ASSERT_TRUE(WaitFor([&] { return redis.Integer({"XLEN", stream + "-dlq"}) == 1; }));
  EXPECT_EQ(redis.PendingCount(stream, "foxworker"), 0);
  auto dead = ReadStream(redis, stream + "-dlq");
  ASSERT_EQ(dead.size(), 1u);
  auto& f = dead[0].second;
  EXPECT_EQ(f["data"], "body");
  EXPECT_EQ(f["type"], "reject");  // the entry's own field, kept as it was
  EXPECT_EQ(f["correlation_id"], "c-9");
  EXPECT_EQ(f["tenant"], "acme");
  EXPECT_EQ(f[kHeaderFailureReason], "bad input");
  EXPECT_EQ(f[kHeaderFinalAttempt], "1");
  EXPECT_EQ(f[kHeaderOriginalId], id);
  EXPECT_EQ(f[kHeaderOriginalQueue], stream);  // the backend's name for the source
  EXPECT_FALSE(f[kHeaderFirstSeenAt].empty());
  EXPECT_FALSE(f[kHeaderFailedAt].empty());
  EXPECT_EQ(f.count("attempt"), 0u);
}

TEST(RedisBackendTest, SettlingTwiceWritesOneCopy) {
  RedisServer& redis = SharedRedis();
  const std::string stream = StreamName();
  redis.Command({"XADD", stream, "*", "data", "1"});
  SourceUnderTest t(TestOptions(redis, "c1"), stream);
  auto got = t.FetchN(1);
  ASSERT_EQ(got.size(), 1u);
  auto twin = std::make_unique<Delivery>();
  twin->msg = got[0]->msg;
  twin->queue = got[0]->queue;
  twin->generation = got[0]->generation;  // as Consumer::CloneForSettlement does
  t.SettleOne(std::move(got[0]), Outcome::DeadLetter("first"));
  ASSERT_TRUE(WaitFor([&] { return redis.PendingCount(stream, "foxworker") == 0; }));
  t.SettleOne(std::move(twin), Outcome::DeadLetter("second"));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(redis.Integer({"XLEN", stream + "-dlq"}), 1);
}

TEST(RedisBackendTest, ReleasedEntriesAreClaimedAtOnceWithoutCountingAnAttempt) {
  RedisServer& redis = SharedRedis();
  const std::string stream = StreamName();
  for (int i = 0; i < 5; ++i) redis.Command({"XADD", stream, "*", "data", std::to_string(i)});
  auto first = std::make_unique<SourceUnderTest>(TestOptions(redis, "first"), stream, 5);
  auto got = first->FetchN(5);
  ASSERT_EQ(got.size(), 5u);
  // Stop fetching (no more reads or claims here), hand back three that never
  // started and keep two running.
  first->source->StopFetching();
  std::vector<Settlement> release;
  for (int i = 0; i < 3; ++i) release.push_back(Settlement{std::move(got[i]), Outcome::Release()});
  first->source->Settle(release);
  RedisBackendOptions o = TestOptions(redis, "second");
  o.min_idle = std::chrono::milliseconds(30000);  // far longer than this test
  SourceUnderTest second(o, stream, 10);
  auto taken = second.FetchN(3);
  ASSERT_EQ(taken.size(), 3u);
  for (const auto& d : taken) EXPECT_EQ(d->msg.attempt, 1u) << d->msg.id;
  // The two still running stay with the first consumer.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  std::vector<std::unique_ptr<Delivery>> none;
  EXPECT_EQ(second.source->Fetch(10, none), 0u);
  for (auto& d : taken) second.SettleOne(std::move(d), Outcome::Ack());
  for (int i = 3; i < 5; ++i) first->SettleOne(std::move(got[i]), Outcome::Ack());
  EXPECT_TRUE(WaitFor([&] { return redis.PendingCount(stream, "foxworker") == 0; }));
}

TEST(RedisBackendTest, DeadConsumersPendingEntriesAreClaimedAfterMinIdle) {
  RedisServer& redis = SharedRedis();
  const std::string stream = StreamName();
  redis.Command({"XGROUP", "CREATE", stream, "foxworker", "0", "MKSTREAM"});
  for (int i = 0; i < 10; ++i) redis.Command({"XADD", stream, "*", "data", std::to_string(i)});
  // A consumer that reads everything and dies without acking.
  redis.Command({"XREADGROUP", "GROUP", "foxworker", "ghost", "COUNT", "100", "STREAMS", stream, ">"});
  ASSERT_EQ(redis.PendingCount(stream, "foxworker"), 10);
  RedisBackendOptions o = TestOptions(redis, "alive");
  o.min_idle = std::chrono::milliseconds(500);
  const auto t0 = std::chrono::steady_clock::now();
  SourceUnderTest t(o, stream, 4);
  std::vector<std::unique_ptr<Delivery>> all;
  ASSERT_TRUE(WaitFor([&] {
    auto some = t.FetchN(1, std::chrono::milliseconds(100));
    for (auto& d : some) {
      EXPECT_EQ(d->msg.attempt, 2u);  // the ghost's delivery counts
      all.push_back(std::move(d));
      t.SettleOne(std::move(all.back()), Outcome::Ack());
    }
    return all.size() == 10;
  }, std::chrono::seconds(20)));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(450));
  EXPECT_TRUE(WaitFor([&] { return redis.PendingCount(stream, "foxworker") == 0; }));
}

TEST(RedisBackendTest, EntryThatCrashedEveryAttemptIsDeadLettered) {
  RedisServer& redis = SharedRedis();
  const std::string stream = StreamName();
  redis.Command({"XGROUP", "CREATE", stream, "foxworker", "0", "MKSTREAM"});
  redis.Command({"XADD", stream, "*", "data", "poison", "attempt", "2"});
  // The retried copy (attempt 2) crashed two workers: delivered twice.
  redis.Command({"XREADGROUP", "GROUP", "foxworker", "ghost", "STREAMS", stream, ">"});
  auto r = redis.Command({"XRANGE", stream, "-", "+"});
  std::string id(ReplyText(r->element[0]->element[0]));
  redis.Command({"XCLAIM", stream, "foxworker", "ghost2", "0", id});
  RedisBackendOptions o = TestOptions(redis, "alive");
  o.min_idle = std::chrono::milliseconds(200);
  SourceUnderTest t(o, stream, 4, /*max_attempts=*/3);
  ASSERT_TRUE(WaitFor([&] { return redis.Integer({"XLEN", stream + "-dlq"}) == 1; },
                      std::chrono::seconds(15)));
  auto dead = ReadStream(redis, stream + "-dlq");
  EXPECT_NE(dead[0].second[kHeaderFailureReason].find("attempt 4 exceeds max_attempts 3"),
            std::string::npos)
      << dead[0].second[kHeaderFailureReason];
  EXPECT_EQ(dead[0].second[kHeaderFinalAttempt], "3");
  EXPECT_EQ(dead[0].second[kHeaderOriginalId], id);
  EXPECT_TRUE(WaitFor([&] { return redis.PendingCount(stream, "foxworker") == 0; }));
  std::vector<std::unique_ptr<Delivery>> none;
  EXPECT_EQ(t.source->Fetch(1, none), 0u);
}

TEST(RedisBackendTest, OwnLeftoversFromAnEarlierRunAreTakenAtOnce) {
  RedisServer& redis = SharedRedis();
  const std::string stream = StreamName();
  redis.Command({"XGROUP", "CREATE", stream, "foxworker", "0", "MKSTREAM"});
  redis.Command({"XADD", stream, "*", "data", "left"});
  redis.Command({"XREADGROUP", "GROUP", "foxworker", "me", "STREAMS", stream, ">"});
  SourceUnderTest t(TestOptions(redis, "me"), stream);  // min_idle 60 s
  auto got = t.FetchN(1, std::chrono::seconds(5));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0]->msg.payload, "left");
  EXPECT_EQ(got[0]->msg.attempt, 2u);
  t.SettleOne(std::move(got[0]), Outcome::Ack());
  EXPECT_TRUE(WaitFor([&] { return redis.PendingCount(stream, "foxworker") == 0; }));
}

TEST(RedisBackendTest, DelayedEnqueueArrivesAfterItsDelay) {
  RedisServer& redis = SharedRedis();
  const std::string stream = StreamName();
  SourceUnderTest t(TestOptions(redis, "c1"), stream);
  Message m;
  m.payload = "later";
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(t.backend->Enqueue(stream, m, Duration(300)).ok());
  EXPECT_EQ(redis.Integer({"ZCARD", stream + ":retry"}), 1);
  auto got = t.FetchN(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(300));
  EXPECT_EQ(got[0]->msg.payload, "later");
  EXPECT_EQ(got[0]->msg.attempt, 1u);
  t.SettleOne(std::move(got[0]), Outcome::Ack());
}

TEST(RedisBackendTest, GroupIsRecreatedWhenTheStreamIsDeleted) {
  RedisServer& redis = SharedRedis();
  const std::string stream = StreamName();
  redis.Command({"XADD", stream, "*", "data", "1"});
  SourceUnderTest t(TestOptions(redis, "c1"), stream);
  auto got = t.FetchN(1);
  ASSERT_EQ(got.size(), 1u);
  t.SettleOne(std::move(got[0]), Outcome::Ack());
  ASSERT_TRUE(WaitFor([&] { return redis.PendingCount(stream, "foxworker") == 0; }));
  redis.Command({"DEL", stream});
  redis.Command({"XADD", stream, "*", "data", "2"});
  got = t.FetchN(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0]->msg.payload, "2");
  t.SettleOne(std::move(got[0]), Outcome::Ack());
}

TEST(RedisBackendTest, PrefetchBoundsWhatIsHeld) {
  RedisServer& redis = SharedRedis();
  const std::string stream = StreamName();
  for (int i = 0; i < 20; ++i) redis.Command({"XADD", stream, "*", "data", std::to_string(i)});
  SourceUnderTest t(TestOptions(redis, "c1"), stream, 5);
  auto got = t.FetchN(5);
  ASSERT_EQ(got.size(), 5u);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(redis.PendingCount(stream, "foxworker"), 5);
  std::vector<std::unique_ptr<Delivery>> more;
  EXPECT_EQ(t.source->Fetch(10, more), 0u);
  for (auto& d : got) t.SettleOne(std::move(d), Outcome::Ack());
  auto next = t.FetchN(5);
  EXPECT_EQ(next.size(), 5u);
  for (auto& d : next) t.SettleOne(std::move(d), Outcome::Ack());
}

// While entries flow, the reader pipelines the acks ahead of its next reads
// and keeps two rounds in flight: the group's pending list must still never
// hold more than the prefetch window, and every entry must end acked.
TEST(RedisBackendTest, PipelinedAcksAndReadsKeepThePendingListWithinThePrefetch) {
  RedisServer& redis = SharedRedis();
  const std::string stream = StreamName();
  constexpr int kEntries = 3000;
  constexpr int kPrefetch = 40;
  for (int done = 0; done < kEntries; done += 500) {
    for (int i = done; i < done + 500; ++i) {
      redis.Command({"XADD", stream, "*", "data", std::to_string(i)});
    }
  }
  SourceUnderTest t(TestOptions(redis, "c1"), stream, kPrefetch);
  std::atomic<bool> done{false};
  std::atomic<long long> max_pending{0};
  // Its own connection: the harness's is not for two threads.
  auto conn = RedisConnection::Connect(TestOptions(redis, "sampler"), "sampler");
  ASSERT_TRUE(conn.ok()) << conn.status().message();
  std::thread sampler([&] {
    while (!done.load()) {
      auto r = (*conn)->Run({"XPENDING", stream, "foxworker"});
      if (r.ok() && (*r)->type == REDIS_REPLY_ARRAY && (*r)->elements > 0) {
        long long p = (*r)->element[0]->integer;
        if (p > max_pending.load()) max_pending.store(p);
      }
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
  });
  std::set<std::string> seen;
  int handled = 0;
  const auto limit = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  std::vector<std::unique_ptr<Delivery>> got;
  while (handled < kEntries && std::chrono::steady_clock::now() < limit) {
    got.clear();
    if (t.source->Fetch(7, got) == 0) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      continue;
    }
    std::vector<Settlement> batch;
    for (auto& d : got) {
      seen.insert(d->msg.payload);
      batch.push_back(Settlement{std::move(d), Outcome::Ack()});
      ++handled;
    }
    t.source->Settle(batch);
  }
  EXPECT_TRUE(WaitFor([&] { return redis.PendingCount(stream, "foxworker") == 0; }));
  done.store(true);
  sampler.join();
  EXPECT_EQ(handled, kEntries);
  EXPECT_EQ(seen.size(), static_cast<size_t>(kEntries));
  EXPECT_LE(max_pending.load(), kPrefetch);
  EXPECT_GT(max_pending.load(), 0);
}

TEST(RedisBackendTest, StopRightAfterSettlingWritesEveryAck) {
  // Acks the reader had batched but not sent when Stop came reach Redis
  // before Stop returns (once left 6 of 2,000 entries pending).
  RedisServer& redis = SharedRedis();
  for (int round = 0; round < 30; ++round) {
    const std::string stream = StreamName() + std::to_string(round);
    for (int i = 0; i < 60; ++i) redis.Command({"XADD", stream, "*", "data", std::to_string(i)});
    SourceUnderTest t(TestOptions(redis, "c1"), stream, /*prefetch=*/40);
    int settled = 0;
    const auto limit = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    while (settled < 60 && std::chrono::steady_clock::now() < limit) {
      std::vector<std::unique_ptr<Delivery>> got;
      if (t.source->Fetch(3, got) == 0) {
        std::this_thread::sleep_for(std::chrono::microseconds(100));
        continue;
      }
      std::vector<Settlement> batch;
      for (auto& d : got) batch.push_back(Settlement{std::move(d), Outcome::Ack()});
      settled += static_cast<int>(batch.size());
      t.source->Settle(batch);
    }
    ASSERT_EQ(settled, 60);
    t.source->StopFetching();
    t.backend->Stop(std::chrono::steady_clock::now() + std::chrono::seconds(5));
    ASSERT_EQ(redis.PendingCount(stream, "foxworker"), 0) << "round " << round;
  }
}

TEST(RedisBackendTest, SurvivesARedisRestartAndCountsTheReconnect) {
  RedisServer redis;  // its own server: this test restarts it
  ASSERT_TRUE(redis.Start().ok());
  const std::string stream = "restart";
  redis.Command({"XADD", stream, "*", "data", "before"});
  SourceUnderTest t(TestOptions(redis, "c1"), stream);
  auto got = t.FetchN(1);
  ASSERT_EQ(got.size(), 1u);
  ASSERT_TRUE(redis.Restart().ok());
  // The ack made while Redis was away (or just back) is applied after the
  // reconnect; the entry read before the restart is still pending meanwhile.
  t.SettleOne(std::move(got[0]), Outcome::Ack());
  ASSERT_TRUE(WaitFor([&] { return redis.PendingCount(stream, "foxworker") == 0; }));
  redis.Command({"XADD", stream, "*", "data", "after"});
  got = t.FetchN(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0]->msg.payload, "after");
  t.SettleOne(std::move(got[0]), Outcome::Ack());
  ASSERT_TRUE(WaitFor([&] { return t.backend->State().connected; }));
  EXPECT_GE(t.backend->State().reconnects, 1u);
}

TEST(RedisBackendTest, UnreachableRedisIsReportedNotFatal) {
  RedisServer& redis = SharedRedis();
  RedisBackendOptions o = TestOptions(redis, "c1");
  o.port = 1;  // nothing listens there
  SourceUnderTest t(o, StreamName());
  ASSERT_TRUE(WaitFor([&] { return t.backend->State().consecutive_failures >= 2; }));
  BackendState s = t.backend->State();
  EXPECT_FALSE(s.connected);
  EXPECT_NE(s.last_error.find("127.0.0.1:1"), std::string::npos) << s.last_error;
  EXPECT_FALSE(t.backend->Enqueue("x", Message(), Duration{0}).ok());
}

}  // namespace
}  // namespace foxworker::testing
