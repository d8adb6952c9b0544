#include "daemon/core/retry_policy.h"

#include <gtest/gtest.h>

namespace foxworker {
namespace {

RetryPolicyOptions Policy(Backoff b, int64_t initial_ms, int64_t max_ms, double mult, double jitter) {
  RetryPolicyOptions c;
  c.max_attempts = 5;
  c.backoff = b;
  c.initial = Duration(initial_ms);
  c.max = Duration(max_ms);
  c.multiplier = mult;
  c.jitter = jitter;
  return c;
}

TEST(RetryPolicyTest, Fixed) {
  RetryPolicy p(Policy(Backoff::kFixed, 500, 10000, 2, 0));
  for (uint32_t a = 1; a <= 4; ++a) EXPECT_EQ(p.NextDelay(a).count(), 500);
}

TEST(RetryPolicyTest, Linear) {
  RetryPolicy p(Policy(Backoff::kLinear, 100, 350, 2, 0));
  EXPECT_EQ(p.NextDelay(1).count(), 100);
  EXPECT_EQ(p.NextDelay(2).count(), 200);
  EXPECT_EQ(p.NextDelay(3).count(), 300);
  EXPECT_EQ(p.NextDelay(4).count(), 350);  // capped
}

TEST(RetryPolicyTest, ExponentialCapsAtMax) {
  RetryPolicy p(Policy(Backoff::kExponential, 1000, 5000, 2, 0));
  EXPECT_EQ(p.NextDelay(1).count(), 1000);
  EXPECT_EQ(p.NextDelay(2).count(), 2000);
  EXPECT_EQ(p.NextDelay(3).count(), 4000);
  EXPECT_EQ(p.NextDelay(4).count(), 5000);
  EXPECT_EQ(p.NextDelay(1000).count(), 5000);  // no overflow
}

TEST(RetryPolicyTest, JitterStaysWithinBounds) {
  double u = 0;
  RetryPolicy p(Policy(Backoff::kFixed, 1000, 10000, 2, 0.2), [&] { return u; });
  u = 0.0;
  EXPECT_EQ(p.NextDelay(1).count(), 800);
  u = 0.5;
  EXPECT_EQ(p.NextDelay(1).count(), 1000);
  u = 0.999999;
  EXPECT_NEAR(p.NextDelay(1).count(), 1200, 1);
}

TEST(RetryPolicyTest, FullJitterIsBetweenZeroAndTheDelay) {
  RetryPolicyOptions c = Policy(Backoff::kExponential, 1000, 60000, 2, 0);
  c.full_jitter = true;
  RetryPolicy p(c);
  for (int i = 0; i < 1000; ++i) {
    auto d = p.NextDelay(3).count();
    EXPECT_GE(d, 0);
    EXPECT_LE(d, 4000);
  }
}

TEST(RetryPolicyTest, HandlerHintIsCappedByMax) {
  RetryPolicy p(Policy(Backoff::kFixed, 1000, 5000, 2, 0.5));
  EXPECT_EQ(p.NextDelay(1, Duration(3000)).count(), 3000);
  EXPECT_EQ(p.NextDelay(1, Duration(60000)).count(), 5000);
}

TEST(RetryPolicyTest, UnjitteredDelayIsTheBaseOrTheCappedHint) {
  RetryPolicy p(Policy(Backoff::kExponential, 1000, 5000, 2, 0.5), [] { return 0.99; });
  EXPECT_EQ(p.UnjitteredDelay(2).count(), 2000);
  EXPECT_GT(p.NextDelay(2).count(), 2000);  // the jitter the tiers must not see
  EXPECT_EQ(p.UnjitteredDelay(9).count(), 5000);
  EXPECT_EQ(p.UnjitteredDelay(1, Duration(3000)).count(), 3000);
  EXPECT_EQ(p.UnjitteredDelay(1, Duration(60000)).count(), 5000);
}

TEST(RetryPolicyTest, AttemptsRemain) {
  RetryPolicy p(Policy(Backoff::kFixed, 1, 1, 1, 0));
  EXPECT_TRUE(p.AttemptsRemain(4));
  EXPECT_FALSE(p.AttemptsRemain(5));
}

}  // namespace
}  // namespace foxworker
