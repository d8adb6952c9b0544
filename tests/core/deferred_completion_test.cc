#include "daemon/core/deferred_completion.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

namespace foxworker {
namespace {

TEST(DeferredCompletionTest, CompleteAfterTheHandlerReturnedSettlesOnTheCompletingThread) {
  DeferredCompletion c;
  EXPECT_TRUE(c.HandlerDeferred());  // the result is not in: complete() will settle
  ASSERT_EQ(c.ClaimForPlugin(), DeferredCompletion::Claim::kClaimed);
  c.SetResult(HandlerReply{Verdict::kAck, 1, "done", 0});
  EXPECT_TRUE(c.ResultReady());  // the handler had returned: the completing thread settles
  EXPECT_EQ(c.result().verdict, Verdict::kAck);
  EXPECT_EQ(c.result().reason, "done");
}

TEST(DeferredCompletionTest, CompleteDuringTheHandlerCallSettlesOnTheHandlerThread) {
  DeferredCompletion c;
  ASSERT_EQ(c.ClaimForPlugin(), DeferredCompletion::Claim::kClaimed);
  c.SetResult(HandlerReply{Verdict::kRetry, 2, "later", 250});
  EXPECT_FALSE(c.ResultReady());     // the handler is still running
  EXPECT_FALSE(c.HandlerDeferred());  // it returns pending and finds the result in
  HandlerReply r = c.result();
  EXPECT_EQ(r.verdict, Verdict::kRetry);
  EXPECT_EQ(r.reason, "later");
  EXPECT_EQ(r.retry_delay_ms, 250u);
}

TEST(DeferredCompletionTest, ASecondCompleteIsRefused) {
  DeferredCompletion c;
  EXPECT_EQ(c.ClaimForPlugin(), DeferredCompletion::Claim::kClaimed);
  EXPECT_EQ(c.ClaimForPlugin(), DeferredCompletion::Claim::kTwice);
  EXPECT_TRUE(c.CompletedByPlugin());
}

TEST(DeferredCompletionTest, TheWatchdogAndThePluginClaimOnlyOnce) {
  DeferredCompletion late;
  EXPECT_TRUE(late.ClaimForWatchdog());
  EXPECT_EQ(late.ClaimForPlugin(), DeferredCompletion::Claim::kTimedOut);
  EXPECT_FALSE(late.CompletedByPlugin());

  DeferredCompletion early;
  EXPECT_EQ(early.ClaimForPlugin(), DeferredCompletion::Claim::kClaimed);
  EXPECT_FALSE(early.ClaimForWatchdog());
}

TEST(DeferredCompletionTest, ResetStartsOver) {
  DeferredCompletion c;
  c.ClaimForWatchdog();
  c.HandlerDeferred();
  c.Reset();
  EXPECT_TRUE(c.HandlerDeferred());
  EXPECT_EQ(c.ClaimForPlugin(), DeferredCompletion::Claim::kClaimed);
  EXPECT_EQ(c.result().verdict, Verdict::kUnknown);
}

// The handler's return and complete() on two threads: exactly one settles,
// whatever the interleaving.
TEST(DeferredCompletionTest, ExactlyOneThreadSettlesUnderRaces) {
  for (int round = 0; round < 2000; ++round) {
    DeferredCompletion c;
    std::atomic<int> settlers{0};
    std::thread completer([&] {
      if (c.ClaimForPlugin() != DeferredCompletion::Claim::kClaimed) return;
      c.SetResult(HandlerReply{Verdict::kAck, 1, {}, 0});
      if (c.ResultReady()) settlers.fetch_add(1);
    });
    if (!c.HandlerDeferred()) settlers.fetch_add(1);
    completer.join();
    ASSERT_EQ(settlers.load(), 1) << "round " << round;
  }
}

}  // namespace
}  // namespace foxworker
