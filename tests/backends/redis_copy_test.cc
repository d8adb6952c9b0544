// What the Redis backend's retry and dead-letter copies keep of an entry
// (docs/backends/redis.md, "Copies"): entries of any field count, and a bad
// member of a retry set never holds up the others.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "daemon/backends/redis/redis_codec.h"
#include "daemon/core/dead_letter.h"
#include "tests/backends/redis_test_util.h"

namespace foxworker::testing {
namespace {

using Fields = std::vector<std::pair<std::string, std::string>>;

std::string StreamName() {
  return std::string("c:") + ::testing::UnitTest::GetInstance()->current_test_info()->name();
}

// Lua's unpack stops near 8,000 values: 5,000 fields are 10,000 of them.
constexpr int kManyFields = 5000;

RedisCommand ManyFieldsEntry(const std::string& stream, const std::string& type) {
  RedisCommand add = {"XADD", stream, "*", "data", "big", "type", type};
  for (int i = 0; i < kManyFields; ++i) {
    add.push_back("h" + std::to_string(i));
    add.push_back("v" + std::to_string(i));
  }
  return add;
}

// Every entry of a stream as (id, fields in order, duplicates kept).
std::vector<std::pair<std::string, Fields>> Entries(RedisServer& redis, const std::string& stream) {
  std::vector<std::pair<std::string, Fields>> out;
  RedisReplyPtr r = redis.Command({"XRANGE", stream, "-", "+"});
  if (r == nullptr || r->type != REDIS_REPLY_ARRAY) return out;
  for (size_t i = 0; i < r->elements; ++i) {
    const redisReply* f = r->element[i]->element[1];
    Fields fields;
    for (size_t k = 0; k + 1 < f->elements; k += 2) {
      fields.emplace_back(ReplyText(f->element[k]), ReplyText(f->element[k + 1]));
    }
    out.emplace_back(std::string(ReplyText(r->element[i]->element[0])), std::move(fields));
  }
  return out;
}

const std::string* Find(const Fields& fields, const std::string& name) {
  for (const auto& [k, v] : fields) {
    if (k == name) return &v;
  }
  return nullptr;
}

TEST(RedisCopyTest, EntryWithThousandsOfFieldsIsDeadLettered) {
  RedisServer& redis = SharedRedis();
  const std::string stream = StreamName();
  ASSERT_EQ(redis.Command(ManyFieldsEntry(stream, "reject"))->type, REDIS_REPLY_STRING);
  SourceUnderTest t(TestOptions(redis, "c1"), stream);
  auto got = t.FetchN(1);
  ASSERT_EQ(got.size(), 1u);
  ASSERT_EQ(got[0]->msg.headers.size(), static_cast<size_t>(kManyFields));
  t.SettleOne(std::move(got[0]), Outcome::DeadLetter("bad input"));
  ASSERT_TRUE(WaitFor([&] { return redis.Integer({"XLEN", stream + "-dlq"}) == 1; }));
  EXPECT_TRUE(WaitFor([&] { return redis.PendingCount(stream, "foxworker") == 0; }));
  auto dead = Entries(redis, stream + "-dlq");
  ASSERT_EQ(dead.size(), 1u);
  const Fields& f = dead[0].second;
  ASSERT_GE(f.size(), static_cast<size_t>(kManyFields) + 2);
  EXPECT_EQ(f[0], (std::pair<std::string, std::string>("data", "big")));
  for (int i = 0; i < kManyFields; i += 997) {
    ASSERT_NE(Find(f, "h" + std::to_string(i)), nullptr) << i;
    EXPECT_EQ(*Find(f, "h" + std::to_string(i)), "v" + std::to_string(i));
  }
  ASSERT_NE(Find(f, kHeaderFailureReason), nullptr);
  EXPECT_EQ(*Find(f, kHeaderFailureReason), "bad input");
}

TEST(RedisCopyTest, RetryWithThousandsOfFieldsComesBackAndHoldsUpNoOtherRetry) {
  RedisServer& redis = SharedRedis();
  const std::string stream = StreamName();
  ASSERT_EQ(redis.Command(ManyFieldsEntry(stream, "fail"))->type, REDIS_REPLY_STRING);
  redis.Command({"XADD", stream, "*", "data", "small", "type", "fail"});
  SourceUnderTest t(TestOptions(redis, "c1"), stream);
  auto got = t.FetchN(2);
  ASSERT_EQ(got.size(), 2u);
  // The big one is due first; the small one after it.
  t.SettleOne(std::move(got[0]), Outcome::Retry(Duration(0), "later"));
  t.SettleOne(std::move(got[1]), Outcome::Retry(Duration(300), "later"));
  auto again = t.FetchN(2);
  ASSERT_EQ(again.size(), 2u) << "ZCARD " << redis.Integer({"ZCARD", stream + ":retry"});
  for (auto& d : again) {
    EXPECT_EQ(d->msg.attempt, 2u);
    if (d->msg.payload == "big") {
      EXPECT_NE(d->msg.FindHeader("h4999"), nullptr);
      EXPECT_GE(d->msg.headers.size(), static_cast<size_t>(kManyFields));
    } else {
      EXPECT_EQ(d->msg.payload, "small");
    }
    t.SettleOne(std::move(d), Outcome::Ack());
  }
  EXPECT_EQ(redis.Integer({"ZCARD", stream + ":retry"}), 0);
  EXPECT_TRUE(WaitFor([&] { return redis.PendingCount(stream, "foxworker") == 0; }));
}

TEST(RedisCopyTest, UnreadableRetryMemberIsDeadLetteredAndHoldsUpNoOther) {
  RedisServer& redis = SharedRedis();
  const std::string stream = StreamName();
  redis.Command({"XADD", stream, "*", "data", "small", "type", "fail"});
  // Due before the real retry: not msgpack, and a msgpack string, not an array.
  redis.Command({"ZADD", stream + ":retry", "1", "not msgpack \xc1"});
  redis.Command({"ZADD", stream + ":retry", "2", "\xa3" "abc"});
  SourceUnderTest t(TestOptions(redis, "c1"), stream);
  auto got = t.FetchN(1);
  ASSERT_EQ(got.size(), 1u);
  t.SettleOne(std::move(got[0]), Outcome::Retry(Duration(0), "later"));
  auto again = t.FetchN(1);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0]->msg.payload, "small");
  EXPECT_EQ(again[0]->msg.attempt, 2u);
  t.SettleOne(std::move(again[0]), Outcome::Ack());
  EXPECT_EQ(redis.Integer({"ZCARD", stream + ":retry"}), 0);
  auto dead = Entries(redis, stream + "-dlq");
  ASSERT_EQ(dead.size(), 2u);
  for (const auto& [id, f] : dead) {
    ASSERT_NE(Find(f, kHeaderFailureReason), nullptr);
    EXPECT_NE(Find(f, kHeaderFailureReason)->find("not a msgpack array"), std::string::npos);
    ASSERT_NE(Find(f, "x-retry-member"), nullptr);
  }
  EXPECT_EQ(*Find(dead[0].second, "x-retry-member"), "not msgpack \xc1");
}

// An entry none of whose fields the daemon would write that way itself: a
// `type` (not message_type), no payload field, a duplicate field, priorities
// out of 0-255, a producer's own `attempt`.
const Fields kOddEntry = {{"type", "odd"},      {"h", "1"},        {"priority", "300"},
                          {"h", "2"},           {"attempt", "1"},  {"zz", ""},
                          {"priority", "-1"},   {"a", "last"}};

RedisCommand Add(const std::string& stream, const Fields& fields) {
  RedisCommand add = {"XADD", stream, "*"};
  for (const auto& [k, v] : fields) {
    add.push_back(k);
    add.push_back(v);
  }
  return add;
}

// `fields` without the bookkeeping fields named in `names`.
Fields Without(Fields fields, const std::vector<std::string>& names) {
  std::erase_if(fields, [&](const auto& f) {
    return std::find(names.begin(), names.end(), f.first) != names.end();
  });
  return fields;
}

TEST(RedisCopyTest, RetryAndDeadLetterCopiesKeepTheEntrysFieldsExactly) {
  RedisServer& redis = SharedRedis();
  const std::string stream = StreamName();
  redis.Command(Add(stream, kOddEntry));
  SourceUnderTest t(TestOptions(redis, "c1"), stream);
  auto got = t.FetchN(1);
  ASSERT_EQ(got.size(), 1u);
  t.SettleOne(std::move(got[0]), Outcome::Retry(Duration(0), "later"));
  auto again = t.FetchN(1);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0]->msg.attempt, 2u);
  // The retry copy in the stream: the entry's fields in order, then the
  // bookkeeping fields appended.
  auto entries = Entries(redis, stream);
  ASSERT_EQ(entries.size(), 2u);
  const Fields& retry = entries[1].second;
  EXPECT_EQ(Without(retry, {kHeaderFirstSeenAt, "x-attempt", kHeaderOriginalId}), kOddEntry);
  ASSERT_NE(Find(retry, "x-attempt"), nullptr);
  EXPECT_EQ(*Find(retry, "x-attempt"), "2");
  EXPECT_EQ(Find(retry, kHeaderMessageType), nullptr);
  // One message, one id: the first entry's, carried by the copy.
  const std::string& first_id = entries[0].first;
  ASSERT_NE(Find(retry, kHeaderOriginalId), nullptr);
  EXPECT_EQ(*Find(retry, kHeaderOriginalId), first_id);
  EXPECT_EQ(again[0]->msg.id, first_id);

  t.SettleOne(std::move(again[0]), Outcome::DeadLetter("bad input"));
  ASSERT_TRUE(WaitFor([&] { return redis.Integer({"XLEN", stream + "-dlq"}) == 1; }));
  auto dead = Entries(redis, stream + "-dlq");
  ASSERT_EQ(dead.size(), 1u);
  const Fields& f = dead[0].second;
  EXPECT_EQ(Without(f, {kHeaderFirstSeenAt, kHeaderOriginalId, kHeaderOriginalQueue,
                        kHeaderMessageType, kHeaderFailureReason, kHeaderFinalAttempt,
                        kHeaderFailedAt}),
            kOddEntry);
  EXPECT_EQ(Find(f, "x-attempt"), nullptr);  // a dead letter added back starts at attempt 1
  EXPECT_EQ(*Find(f, kHeaderOriginalQueue), stream);
  EXPECT_EQ(*Find(f, kHeaderMessageType), "odd");
  EXPECT_EQ(*Find(f, kHeaderFinalAttempt), "2");
  EXPECT_EQ(*Find(f, kHeaderOriginalId), first_id);
  // x-first-seen-at was written once, by the retry, and kept.
  EXPECT_EQ(*Find(f, kHeaderFirstSeenAt), *Find(retry, kHeaderFirstSeenAt));
  // Bookkeeping fields come after the entry's own, each once.
  EXPECT_EQ(f.size(), kOddEntry.size() + 7);
}

TEST(RedisCopyTest, DeadLetterWithoutTypeWritesNoMessageType) {
  RedisServer& redis = SharedRedis();
  const std::string stream = StreamName();
  redis.Command({"XADD", stream, "*", "data", "x"});
  SourceUnderTest t(TestOptions(redis, "c1"), stream);
  auto got = t.FetchN(1);
  ASSERT_EQ(got.size(), 1u);
  t.SettleOne(std::move(got[0]), Outcome::DeadLetter("bad input"));
  ASSERT_TRUE(WaitFor([&] { return redis.Integer({"XLEN", stream + "-dlq"}) == 1; }));
  auto dead = Entries(redis, stream + "-dlq");
  EXPECT_EQ(Find(dead[0].second, kHeaderMessageType), nullptr);
  EXPECT_EQ(dead[0].second[0], (std::pair<std::string, std::string>("data", "x")));
}

TEST(RedisCopyTest, EntryTrimmedWhileItRanIsCopiedFromWhatWasDecoded) {
  RedisServer& redis = SharedRedis();
  const std::string stream = StreamName();
  redis.Command({"XADD", stream, "*", "data", "x", "tenant", "acme"});
  SourceUnderTest t(TestOptions(redis, "c1"), stream);
  auto got = t.FetchN(1);
  ASSERT_EQ(got.size(), 1u);
  redis.Command({"XDEL", stream, got[0]->msg.id});
  t.SettleOne(std::move(got[0]), Outcome::DeadLetter("bad input"));
  ASSERT_TRUE(WaitFor([&] { return redis.Integer({"XLEN", stream + "-dlq"}) == 1; }));
  auto dead = Entries(redis, stream + "-dlq");
  ASSERT_NE(Find(dead[0].second, "tenant"), nullptr);
  EXPECT_EQ(*Find(dead[0].second, "data"), "x");
  EXPECT_TRUE(WaitFor([&] { return redis.PendingCount(stream, "foxworker") == 0; }));
}

}  // namespace
}  // namespace foxworker::testing
