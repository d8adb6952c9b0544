#include "daemon/core/dead_letter.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace foxworker {
namespace {

using Type = DeadLetterField::Type;

// 2026-11-22T22:53:51.123Z
constexpr int64_t kFailedAtMs = 1795388031123;
constexpr int64_t kEnqueuedAtMs = 1795387000000;  // 2026-11-22T22:36:40.000Z

struct DeliveryFixture {
  std::string queue = "jobs";
  Delivery d;
  DeliveryFixture() {
    d.msg.id = "id-7";
    d.msg.props.message_type = "resize";
    d.msg.attempt = 3;
    d.msg.enqueued_at_ms = kEnqueuedAtMs;
    d.msg.headers = {{"custom", "keep"}};
    d.queue = &queue;
  }
};

std::vector<std::string> Names(const DeadLetterFields& fields) {
  std::vector<std::string> names;
  for (const DeadLetterField& f : fields) names.emplace_back(f.name);
  return names;
}

TEST(DeadLetterPolicyTest, EveryFieldInOrderWithItsType) {
  DeliveryFixture fx;
  DeadLetterFields fields = DeadLetterFieldsFor(fx.d, "amqp-jobs", "bad input", kFailedAtMs);
  EXPECT_EQ(Names(fields),
            (std::vector<std::string>{kHeaderOriginalQueue, kHeaderOriginalId, kHeaderMessageType,
                                      kHeaderFailureReason, kHeaderFinalAttempt, kHeaderFirstSeenAt,
                                      kHeaderFailedAt}));

  const DeadLetterField* f = fields.Find(kHeaderOriginalQueue);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->type, Type::kString);
  EXPECT_EQ(f->text, "amqp-jobs");  // the backend's name for the queue, as given
  EXPECT_EQ(fields.Find(kHeaderOriginalId)->text, "id-7");
  EXPECT_EQ(fields.Find(kHeaderMessageType)->text, "resize");
  EXPECT_EQ(fields.Find(kHeaderFailureReason)->text, "bad input");

  f = fields.Find(kHeaderFinalAttempt);
  EXPECT_EQ(f->type, Type::kInteger);
  EXPECT_EQ(f->number, 3);
  EXPECT_EQ(f->ToText(), "3");

  f = fields.Find(kHeaderFirstSeenAt);
  EXPECT_EQ(f->type, Type::kTimestamp);
  EXPECT_EQ(f->number, kEnqueuedAtMs);
  EXPECT_EQ(f->ToText(), "2026-11-22T22:36:40.000Z");

  f = fields.Find(kHeaderFailedAt);
  EXPECT_EQ(f->type, Type::kTimestamp);
  EXPECT_EQ(f->ToText(), "2026-11-22T22:53:51.123Z");

  EXPECT_EQ(fields.Find("custom"), nullptr);  // the original's headers are not policy
}

TEST(DeadLetterPolicyTest, NoMessageTypeHeaderWithoutAType) {
  DeliveryFixture fx;
  fx.d.msg.props.message_type.clear();
  DeadLetterFields fields = DeadLetterFieldsFor(fx.d, "jobs", "r", kFailedAtMs);
  EXPECT_EQ(fields.Find(kHeaderMessageType), nullptr);
  EXPECT_EQ(fields.size(), 6u);
}

TEST(DeadLetterPolicyTest, FirstSeenAtOnlyWhenKnownAndNotCarriedAlready) {
  DeliveryFixture fx;
  fx.d.msg.enqueued_at_ms = 0;
  EXPECT_EQ(DeadLetterFieldsFor(fx.d, "jobs", "r", kFailedAtMs).Find(kHeaderFirstSeenAt), nullptr);

  DeliveryFixture again;
  again.d.msg.headers.emplace_back(kHeaderFirstSeenAt, "2026-01-01T00:00:00.000Z");
  EXPECT_EQ(DeadLetterFieldsFor(again.d, "jobs", "r", kFailedAtMs).Find(kHeaderFirstSeenAt),
            nullptr);
}

TEST(DeadLetterPolicyTest, StringCopyReplacesInPlaceAndAppendsTheRest) {
  DeliveryFixture fx;
  // A message dead-lettered before (and replayed) carries some fields already.
  fx.d.msg.headers = {{"custom", "keep"},
                      {kHeaderFailureReason, "old reason"},
                      {kHeaderFirstSeenAt, "2026-01-01T00:00:00.000Z"}};
  Message m = MakeDeadLetterCopy(fx.d, "new reason", kFailedAtMs);

  ASSERT_GE(m.headers.size(), 3u);
  EXPECT_EQ(m.headers[0], (std::pair<std::string, std::string>{"custom", "keep"}));
  EXPECT_EQ(m.headers[1].first, kHeaderFailureReason);
  EXPECT_EQ(m.headers[1].second, "new reason");
  EXPECT_EQ(m.headers[2].second, "2026-01-01T00:00:00.000Z");  // kept, not replaced

  EXPECT_EQ(*m.FindHeader(kHeaderOriginalQueue), "jobs");  // the delivery's queue
  EXPECT_EQ(*m.FindHeader(kHeaderOriginalId), "id-7");
  EXPECT_EQ(*m.FindHeader(kHeaderMessageType), "resize");
  EXPECT_EQ(*m.FindHeader(kHeaderFinalAttempt), "3");
  EXPECT_EQ(*m.FindHeader(kHeaderFailedAt), "2026-11-22T22:53:51.123Z");
  EXPECT_EQ(m.headers.size(), 3u + 5u);  // queue, id, type, attempt, failed-at appended
  // The rest of the message is the original's.
  EXPECT_EQ(m.id, "id-7");
  EXPECT_EQ(m.attempt, 3u);
}

TEST(DeadLetterPolicyTest, StringCopyOfAMessageWithoutTypeOrQueue) {
  DeliveryFixture fx;
  fx.d.msg.props.message_type.clear();
  fx.d.queue = nullptr;
  Message m = MakeDeadLetterCopy(fx.d, "r", kFailedAtMs);
  EXPECT_EQ(m.FindHeader(kHeaderMessageType), nullptr);
  ASSERT_NE(m.FindHeader(kHeaderOriginalQueue), nullptr);
  EXPECT_EQ(*m.FindHeader(kHeaderOriginalQueue), "");
}

}  // namespace
}  // namespace foxworker
