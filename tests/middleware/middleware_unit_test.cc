// The middleware's arithmetic with a fake clock: breaker transitions, token
// bucket timing, dedup TTL and bounds.
#include <gtest/gtest.h>

#include "daemon/core/payload_validation.h"
#include "daemon/middleware/circuit_breaker/circuit_breaker.h"
#include "daemon/middleware/dedup/dedup.h"
#include "daemon/middleware/logging/logging.h"
#include "daemon/middleware/rate_limit/rate_limit.h"

namespace foxworker {
namespace {

constexpr uint64_t kMs = 1000000;

struct FakeClock {
  uint64_t now = 1000 * kMs;
  MonotonicClock fn() {
    return [this] { return now; };
  }
};

CallInfo Ran(bool failed) {
  CallInfo c;
  c.handler_ran = true;
  c.failed = failed;
  return c;
}

TEST(CircuitBreakerTest, OpensAtTheThresholdAndStopsAdmitting) {
  FakeClock clock;
  CircuitBreakerConfig c;
  c.failure_threshold = 3;
  c.window = Duration(10000);
  c.reset_timeout = Duration(5000);
  CircuitBreaker b("q", c, clock.fn());
  Delivery d;
  uint64_t after = 0;
  EXPECT_EQ(b.Admit(10, clock.now, &after), 10u);
  b.After(d, Outcome::Retry(Duration(0), "x"), Ran(true));
  b.After(d, Outcome::Retry(Duration(0), "x"), Ran(true));
  EXPECT_EQ(b.phase(), CircuitBreaker::Phase::kClosed);
  b.After(d, Outcome::Retry(Duration(0), "x"), Ran(true));
  EXPECT_EQ(b.phase(), CircuitBreaker::Phase::kOpen);
  EXPECT_EQ(b.Admit(10, clock.now, &after), 0u);
  EXPECT_EQ(after, 5000 * kMs);
  clock.now += 4999 * kMs;
  EXPECT_EQ(b.Admit(10, clock.now, &after), 0u);
  EXPECT_EQ(after, 1 * kMs);
}

TEST(CircuitBreakerTest, FailuresOutsideTheWindowDoNotCount) {
  FakeClock clock;
  CircuitBreakerConfig c;
  c.failure_threshold = 2;
  c.window = Duration(1000);
  CircuitBreaker b("q", c, clock.fn());
  Delivery d;
  b.After(d, Outcome::Retry(Duration(0), "x"), Ran(true));
  clock.now += 1500 * kMs;
  b.After(d, Outcome::Retry(Duration(0), "x"), Ran(true));
  EXPECT_EQ(b.phase(), CircuitBreaker::Phase::kClosed);
}

TEST(CircuitBreakerTest, HalfOpenLetsTrialsThroughThenClosesOrReopens) {
  FakeClock clock;
  CircuitBreakerConfig c;
  c.failure_threshold = 1;
  c.reset_timeout = Duration(1000);
  c.half_open_trials = 2;
  CircuitBreaker b("q", c, clock.fn());
  Delivery d;
  uint64_t after = 0;
  b.After(d, Outcome::Retry(Duration(0), "x"), Ran(true));
  ASSERT_EQ(b.phase(), CircuitBreaker::Phase::kOpen);
  clock.now += 1000 * kMs;
  EXPECT_EQ(b.Admit(10, clock.now, &after), 2u);  // half-open: two trials
  EXPECT_EQ(b.phase(), CircuitBreaker::Phase::kHalfOpen);
  EXPECT_EQ(b.Admit(10, clock.now, &after), 0u);  // trials out, waiting for them
  b.After(d, Outcome::Ack(), Ran(false));
  EXPECT_EQ(b.phase(), CircuitBreaker::Phase::kHalfOpen);
  b.After(d, Outcome::Ack(), Ran(false));
  EXPECT_EQ(b.phase(), CircuitBreaker::Phase::kClosed);
  // Again, but a trial fails: back to open for another reset timeout.
  b.After(d, Outcome::Retry(Duration(0), "x"), Ran(true));
  clock.now += 1000 * kMs;
  EXPECT_EQ(b.Admit(1, clock.now, &after), 1u);
  b.After(d, Outcome::Retry(Duration(0), "x"), Ran(true));
  EXPECT_EQ(b.phase(), CircuitBreaker::Phase::kOpen);
  EXPECT_EQ(b.times_opened(), 3u);
}

TEST(CircuitBreakerTest, RefundReturnsUnusedTrials) {
  FakeClock clock;
  CircuitBreakerConfig c;
  c.failure_threshold = 1;
  c.reset_timeout = Duration(10);
  c.half_open_trials = 1;
  CircuitBreaker b("q", c, clock.fn());
  Delivery d;
  uint64_t after = 0;
  b.After(d, Outcome::Retry(Duration(0), "x"), Ran(true));
  clock.now += 10 * kMs;
  EXPECT_EQ(b.Admit(1, clock.now, &after), 1u);
  b.Refund(1);  // nothing was fetched
  EXPECT_EQ(b.Admit(1, clock.now, &after), 1u);
}

TEST(CircuitBreakerTest, RatioModeNeedsMinCalls) {
  FakeClock clock;
  CircuitBreakerConfig c;
  c.failure_ratio = 0.5;
  c.min_calls = 4;
  CircuitBreaker b("q", c, clock.fn());
  Delivery d;
  b.After(d, Outcome::Retry(Duration(0), "x"), Ran(true));
  b.After(d, Outcome::Retry(Duration(0), "x"), Ran(true));
  b.After(d, Outcome::Ack(), Ran(false));
  EXPECT_EQ(b.phase(), CircuitBreaker::Phase::kClosed);  // 3 calls < min_calls
  b.After(d, Outcome::Ack(), Ran(false));
  EXPECT_EQ(b.phase(), CircuitBreaker::Phase::kOpen);  // 2 of 4 failed
}

TEST(CircuitBreakerTest, RejectsAndSkippedMessagesDoNotCount) {
  FakeClock clock;
  CircuitBreakerConfig c;
  c.failure_threshold = 1;
  CircuitBreaker b("q", c, clock.fn());
  Delivery d;
  b.After(d, Outcome::DeadLetter("bad input"), Ran(false));
  CallInfo skipped;
  b.After(d, Outcome::Ack(), skipped);
  EXPECT_EQ(b.phase(), CircuitBreaker::Phase::kClosed);
}

TEST(TokenBucketTest, StartsFullThenRefillsAtTheRate) {
  uint64_t now = 0;
  TokenBucket t(10, 5, now);  // 10/s, burst 5
  uint64_t after = 0;
  EXPECT_EQ(t.Take(100, now, &after), 5u);
  EXPECT_EQ(after, 100 * kMs);  // next token in 1/10 s
  EXPECT_EQ(t.Take(1, now, &after), 0u);
  now += 250 * kMs;
  EXPECT_EQ(t.Take(100, now, &after), 2u);  // 2.5 tokens accrued
  EXPECT_EQ(after, 50 * kMs);               // the half token needs 50 ms more
  now += 10000 * kMs;
  EXPECT_EQ(t.Take(100, now, &after), 5u);  // capped at burst
}

TEST(TokenBucketTest, GiveReturnsTokensUpToBurst) {
  TokenBucket t(1, 2, 0);
  uint64_t after = 0;
  EXPECT_EQ(t.Take(2, 0, &after), 2u);
  t.Give(5);
  EXPECT_EQ(t.Take(5, 0, &after), 2u);
}

TEST(TokenBucketTest, RateOverThreeSeconds) {
  TokenBucket t(50, 1, 0);
  uint64_t now = 0, after = 0, taken = 0;
  while (now < 3000 * kMs) {
    taken += t.Take(10, now, &after);
    now += after ? after : kMs;
  }
  EXPECT_NEAR(static_cast<double>(taken), 150, 2);
}

TEST(RateLimitTest, CountsWaits) {
  RateLimit r(std::make_shared<TokenBucket>(1, 1, 0), "own");
  uint64_t after = 0;
  EXPECT_EQ(r.Admit(3, 0, &after), 1u);
  EXPECT_EQ(r.Admit(3, 0, &after), 0u);
  EXPECT_EQ(r.waits(), 1u);
}

TEST(RateLimitTest, TimesWaitsFromFirstRefusalToNextGrant) {
  RateLimit r(std::make_shared<TokenBucket>(1, 1, 0), "shared api");
  EXPECT_EQ(r.limit(), "api");
  EXPECT_EQ(RateLimit(std::make_shared<TokenBucket>(1, 1, 0), "own").limit(), "own");
  uint64_t after = 0;
  const uint64_t kSec = 1000000000;
  EXPECT_EQ(r.Admit(1, kSec, &after), 1u);
  EXPECT_EQ(r.WaitedNs(kSec), 0u);
  EXPECT_EQ(r.Admit(1, kSec + 100 * kMs, &after), 0u);  // the wait starts
  EXPECT_EQ(r.Admit(1, kSec + 500 * kMs, &after), 0u);  // still the same wait
  EXPECT_EQ(r.WaitedNs(kSec + 700 * kMs), 600 * kMs);  // open wait counted at read time
  EXPECT_EQ(r.Admit(1, 2 * kSec, &after), 1u);          // granted: 900ms waited
  EXPECT_EQ(r.WaitedNs(3 * kSec), 900 * kMs);
  EXPECT_EQ(r.waits(), 2u);
}

TEST(DedupTest, SkipsWithinTtlOnlyAfterSuccess) {
  int64_t now = 1000;
  DedupConfig c;
  c.key = "header:idem";
  c.ttl = Duration(500);
  Dedup dd("q", c, std::make_unique<MemoryDedupStore>(10), [&] { return now; });
  Delivery d;
  d.msg.headers.emplace_back("idem", "k1");
  EXPECT_FALSE(dd.Before(d));
  dd.After(d, Outcome::Retry(Duration(0), "x"), Ran(true));  // failure: not recorded
  EXPECT_FALSE(dd.Before(d));
  dd.After(d, Outcome::Ack(), Ran(false));
  auto skip = dd.Before(d);
  ASSERT_TRUE(skip);
  EXPECT_EQ(skip->kind, Outcome::Kind::kAck);
  now += 499;
  EXPECT_TRUE(dd.Before(d));
  now += 1;
  EXPECT_FALSE(dd.Before(d));  // expired
  EXPECT_EQ(dd.skipped(), 2u);
}

TEST(DedupTest, MessagesWithoutAKeyRunNormally) {
  DedupConfig c;
  c.key = "property:message_id";
  Dedup dd("q", c, std::make_unique<MemoryDedupStore>(10), [] { return int64_t{0}; });
  Delivery d;
  dd.After(d, Outcome::Ack(), Ran(false));
  EXPECT_FALSE(dd.Before(d));
}

TEST(DedupTest, MemoryStoreIsBounded) {
  MemoryDedupStore s(3);
  for (int i = 0; i < 5; ++i) s.Record("k" + std::to_string(i), 1000);
  EXPECT_EQ(s.size(), 3u);
  EXPECT_FALSE(s.Seen("k0", 0));
  EXPECT_TRUE(s.Seen("k4", 0));
}

TEST(DedupTest, KeysFromHeadersPropertiesAndJsonPointers) {
  Message m;
  m.headers.emplace_back("x-id", "h1");
  m.props.correlation_id = "c1";
  m.payload = R"({"order":{"id":42,"ref":"r-9"}})";
  EXPECT_EQ(DedupKeyOf("header:x-id", m), "h1");
  EXPECT_EQ(DedupKeyOf("property:correlation_id", m), "c1");
  EXPECT_EQ(DedupKeyOf("json:/order/id", m), "42");
  EXPECT_EQ(DedupKeyOf("json:/order/ref", m), "r-9");
  EXPECT_EQ(DedupKeyOf("json:/missing", m), "");
}

TEST(PayloadValidationTest, RejectsJsonThatDoesNotParse) {
  Delivery d;
  d.msg.props.content_type = "application/json; charset=utf-8";
  d.msg.payload = R"({"a": )";
  auto o = ValidatePayload(d);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->kind, Outcome::Kind::kDeadLetter);
  EXPECT_NE(o->reason.find("payload is not valid JSON"), std::string::npos) << o->reason;
  EXPECT_NE(o->reason.find("at offset 6"), std::string::npos) << o->reason;
  d.msg.payload = R"({"a": 1})";
  EXPECT_FALSE(ValidatePayload(d));
  d.msg.props.content_type = "text/plain";
  d.msg.payload = "{";
  EXPECT_FALSE(ValidatePayload(d));
}

TEST(OutcomeLoggingTest, OneLineWithTheFieldsOperatorsNeed) {
  Delivery d;
  std::string q = "emails";
  d.msg.id = "17";
  d.msg.props.message_type = "email.send";
  d.msg.props.correlation_id = "abc";
  d.msg.attempt = 2;
  CallInfo c = Ran(true);
  c.duration_ns = 12345678;
  std::string line = OutcomeLogging::Line(q, d, Outcome::Retry(Duration(2000), "smtp 451"), c);
  EXPECT_EQ(line,
            "queue=emails id=17 type=email.send attempt=2 outcome=retry duration_ms=12.346 "
            "correlation_id=abc delay_ms=2000 reason=\"smtp 451\"");
}

}  // namespace
}  // namespace foxworker
