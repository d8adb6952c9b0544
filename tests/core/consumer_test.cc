// The Consumer over a fake Source and fake handlers: the dispatch core alone,
// linked without config, plugins or any backend.
#include "daemon/core/consumer.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <thread>

#include "tests/fakes/fake_source.h"

namespace foxworker {
namespace {

using namespace std::chrono_literals;

bool WaitFor(const std::function<bool()>& done, std::chrono::milliseconds limit = 10s) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

class ConsumerTest : public ::testing::Test {
 protected:
  void Build(ConsumerOptions options, std::vector<std::unique_ptr<FakeHandler>> handlers,
             RetryPolicyOptions policy = {}) {
    auto source = std::make_unique<FakeSource>();
    source_ = source.get();
    if (options.name.empty()) options.name = "q";
    if (options.prefetch == 0) options.prefetch = 2 * options.concurrency;
    consumer_ = std::make_unique<Consumer>(
        options, policy, std::make_unique<FakeHandlerSet>(std::move(handlers)), std::move(source),
        std::vector<std::unique_ptr<Middleware>>{}, executor_, timer_);
    ASSERT_TRUE(consumer_->Start().ok());
  }
  void TearDown() override {
    if (consumer_) {
      consumer_->StopFetching();
      EXPECT_TRUE(WaitFor([&] { return consumer_->Quiesced(); }));
      consumer_->DestroyInstances();
    }
  }
  static std::vector<std::unique_ptr<FakeHandler>> One(std::string name, FakeHandler::Fn fn) {
    std::vector<std::unique_ptr<FakeHandler>> v;
    v.push_back(std::make_unique<FakeHandler>(std::move(name), std::move(fn)));
    return v;
  }

  Executor executor_{4};
  Timer timer_;
  FakeSource* source_ = nullptr;
  std::unique_ptr<Consumer> consumer_;
};

TEST_F(ConsumerTest, AcksWhatTheHandlerAcks) {
  std::atomic<int> ran{0};
  Build({}, One("*", [&](Delivery&) {
          ran++;
          return HandlerReply{Verdict::kAck, 1, {}, 0};
        }));
  for (int i = 0; i < 20; ++i) source_->Push("m" + std::to_string(i), "x");
  ASSERT_TRUE(WaitFor([&] { return source_->Settled().size() == 20; }));
  for (const auto& [id, o] : source_->Settled()) EXPECT_EQ(o.kind, Outcome::Kind::kAck) << id;
  EXPECT_EQ(ran.load(), 20);
  EXPECT_EQ(consumer_->Stats().acked, 20u);
  EXPECT_EQ(consumer_->Stats().in_flight, 0);
}

TEST_F(ConsumerTest, RoutesByTypeAndRejectsAnUnknownType) {
  std::vector<std::unique_ptr<FakeHandler>> hs;
  std::atomic<int> mail{0};
  hs.push_back(std::make_unique<FakeHandler>("mail", [&](Delivery&) {
    mail++;
    return HandlerReply{Verdict::kAck, 1, {}, 0};
  }));
  Build({}, std::move(hs));
  source_->Push("a", "x", "mail");
  source_->Push("b", "x", "sms");
  ASSERT_TRUE(WaitFor([&] { return source_->Settled().size() == 2; }));
  for (const auto& [id, o] : source_->Settled()) {
    if (id == "a") {
      EXPECT_EQ(o.kind, Outcome::Kind::kAck);
    } else {
      EXPECT_EQ(o.kind, Outcome::Kind::kDeadLetter);
      EXPECT_TRUE(o.rejected);
      EXPECT_EQ(o.reason, "unknown message type \"sms\": fake handlers has handlers mail");
    }
  }
  EXPECT_EQ(mail.load(), 1);
}

TEST_F(ConsumerTest, RetriesWithThePolicyAndDeadLettersTheLastAttempt) {
  RetryPolicyOptions policy;
  policy.max_attempts = 3;
  policy.backoff = Backoff::kFixed;
  policy.initial = Duration(700);
  policy.jitter = 0;
  Build({}, One("*", [](Delivery&) { return HandlerReply{Verdict::kRetry, 2, "flaky", 0}; }),
        policy);
  source_->Push("first", "x", {}, 1);
  source_->Push("last", "x", {}, 3);
  ASSERT_TRUE(WaitFor([&] { return source_->Settled().size() == 2; }));
  for (const auto& [id, o] : source_->Settled()) {
    if (id == "first") {
      EXPECT_EQ(o.kind, Outcome::Kind::kRetry);
      EXPECT_EQ(o.delay, Duration(700));
      EXPECT_EQ(o.reason, "flaky");
    } else {
      EXPECT_EQ(o.kind, Outcome::Kind::kDeadLetter);
      EXPECT_FALSE(o.rejected);
      EXPECT_EQ(o.reason, "retries exhausted after 3 attempts: flaky");
    }
  }
}

TEST_F(ConsumerTest, AnUnknownVerdictIsARetryAndCounted) {
  Build({}, One("*", [](Delivery&) { return HandlerReply{Verdict::kUnknown, 42, {}, 0}; }));
  source_->Push("m", "x");
  ASSERT_TRUE(WaitFor([&] { return source_->Settled().size() == 1; }));
  EXPECT_EQ(source_->Settled()[0].second.kind, Outcome::Kind::kRetry);
  EXPECT_EQ(source_->Settled()[0].second.reason, "plugin returned unknown verdict 42");
  EXPECT_EQ(consumer_->Stats().unknown_verdicts, 1u);
}

TEST_F(ConsumerTest, PayloadValidationIsAnOptionThatRunsBeforeTheHandler) {
  std::atomic<int> ran{0};
  Build({}, One("*", [&](Delivery&) {
          ran++;
          return HandlerReply{Verdict::kAck, 1, {}, 0};
        }));
  source_->Push("bad", "{\"a\": ", {}, 1, "application/json");
  source_->Push("untyped", "{\"a\": ");
  ASSERT_TRUE(WaitFor([&] { return source_->Settled().size() == 2; }));
  for (const auto& [id, o] : source_->Settled()) {
    if (id == "bad") {
      EXPECT_EQ(o.kind, Outcome::Kind::kDeadLetter);
      EXPECT_NE(o.reason.find("payload is not valid JSON"), std::string::npos) << o.reason;
    } else {
      EXPECT_EQ(o.kind, Outcome::Kind::kAck);  // no content type: not checked
    }
  }
  EXPECT_EQ(ran.load(), 1);  // the bad one never reached the handler
}

TEST_F(ConsumerTest, PayloadValidationCanBeTurnedOff) {
  std::atomic<int> ran{0};
  ConsumerOptions o;
  o.validate_payload = false;
  Build(o, One("*", [&](Delivery&) {
          ran++;
          return HandlerReply{Verdict::kAck, 1, {}, 0};
        }));
  source_->Push("bad", "{\"a\": ", {}, 1, "application/json");
  ASSERT_TRUE(WaitFor([&] { return source_->Settled().size() == 1; }));
  EXPECT_EQ(source_->Settled()[0].second.kind, Outcome::Kind::kAck);
  EXPECT_EQ(ran.load(), 1);
}

TEST_F(ConsumerTest, ADeferredMessageIsSettledOnceWhenCompletedFromAnotherThread) {
  std::mutex mu;
  std::vector<Delivery*> parked;
  Build({}, One("*", [&](Delivery& d) {
          std::lock_guard<std::mutex> lock(mu);
          parked.push_back(&d);
          return HandlerReply{Verdict::kPending, 4, {}, 0};
        }));
  source_->Push("m1", "x");
  source_->Push("m2", "x");
  ASSERT_TRUE(WaitFor([&] {
    std::lock_guard<std::mutex> lock(mu);
    return parked.size() == 2;
  }));
  EXPECT_TRUE(source_->Settled().empty());
  EXPECT_EQ(consumer_->Stats().in_flight, 2);
  std::vector<Delivery*> todo;
  {
    std::lock_guard<std::mutex> lock(mu);
    todo = parked;
  }
  std::thread t([&] {
    EXPECT_EQ(consumer_->Complete(todo[0], HandlerReply{Verdict::kAck, 1, {}, 0}), 0);
    EXPECT_EQ(consumer_->Complete(todo[1], HandlerReply{Verdict::kReject, 3, "bad", 0}), 0);
  });
  t.join();
  ASSERT_TRUE(WaitFor([&] { return source_->Settled().size() == 2; }));
  int acks = 0, rejects = 0;
  for (const auto& [id, o] : source_->Settled()) {
    acks += o.kind == Outcome::Kind::kAck;
    rejects += o.kind == Outcome::Kind::kDeadLetter && o.rejected && o.reason == "bad";
  }
  EXPECT_EQ(acks, 1);
  EXPECT_EQ(rejects, 1);
  EXPECT_EQ(consumer_->Stats().in_flight, 0);
}

TEST_F(ConsumerTest, CompletingBeforeTheHandlerReturnsSettlesOnce) {
  Build({}, One("*", [&](Delivery& d) {
          // complete() from inside the call, then answer pending.
          EXPECT_EQ(consumer_->Complete(&d, HandlerReply{Verdict::kAck, 1, {}, 0}), 0);
          EXPECT_EQ(consumer_->Complete(&d, HandlerReply{Verdict::kAck, 1, {}, 0}), -1);
          return HandlerReply{Verdict::kPending, 4, {}, 0};
        }));
  for (int i = 0; i < 10; ++i) source_->Push("m" + std::to_string(i), "x");
  ASSERT_TRUE(WaitFor([&] { return source_->Settled().size() == 10; }));
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(source_->Settled().size(), 10u);
  for (const auto& [id, o] : source_->Settled()) EXPECT_EQ(o.kind, Outcome::Kind::kAck) << id;
}

TEST_F(ConsumerTest, RunsAtMostConcurrencyHandlersAtOnce) {
  std::atomic<int> running{0}, peak{0};
  ConsumerOptions o;
  o.concurrency = 2;
  o.prefetch = 8;
  Build(o, One("*", [&](Delivery&) {
          int now = ++running;
          int p = peak.load();
          while (now > p && !peak.compare_exchange_weak(p, now)) {
          }
          std::this_thread::sleep_for(20ms);
          --running;
          return HandlerReply{Verdict::kAck, 1, {}, 0};
        }));
  for (int i = 0; i < 12; ++i) source_->Push("m" + std::to_string(i), "x");
  ASSERT_TRUE(WaitFor([&] { return source_->Settled().size() == 12; }));
  EXPECT_LE(peak.load(), 2);
  EXPECT_GE(peak.load(), 1);
}

// By default a stuck handler's message waits for the call to return, so two
// attempts never run at once; meanwhile the slot is replaced and the stuck
// call is reported.
TEST_F(ConsumerTest, AStuckHandlersMessageIsRetriedWhenItReturnsAndItsSlotIsReplaced) {
  ConsumerOptions o;
  o.timeout = Duration(50);
  std::atomic<bool> release{false};
  std::atomic<bool> saw_cancel{false};
  std::atomic<int> fast{0};
  Build(o, One("*", [&](Delivery& d) {
          if (d.msg.id == "fast") {
            fast++;
            return HandlerReply{Verdict::kAck, 1, {}, 0};
          }
          while (!release.load()) std::this_thread::sleep_for(5ms);
          saw_cancel = d.cancelled.load();
          return HandlerReply{Verdict::kAck, 1, {}, 0};
        }));
  source_->Push("slow", "x");
  ASSERT_TRUE(WaitFor([&] { return consumer_->Stats().stuck == 1; }));
  EXPECT_EQ(consumer_->Stats().timed_out, 1u);
  std::vector<StuckHandler> stuck = consumer_->Stuck();
  ASSERT_EQ(stuck.size(), 1u);
  EXPECT_EQ(stuck[0].message_id, "slow");
  EXPECT_EQ(stuck[0].handler, "*");
  EXPECT_EQ(stuck[0].timeout_ns, 50000000u);
  EXPECT_GE(stuck[0].running_ns, 50000000u);
  // concurrency 1, and the stuck call does not count: the next one runs.
  source_->Push("fast", "x");
  ASSERT_TRUE(WaitFor([&] { return fast.load() == 1; }));
  ASSERT_TRUE(WaitFor([&] { return source_->Settled().size() == 1; }));
  EXPECT_EQ(source_->Settled()[0].first, "fast");
  // Not settled while its call runs: no second attempt can start.
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(source_->Settled().size(), 1u);
  release = true;
  ASSERT_TRUE(WaitFor([&] { return source_->Settled().size() == 2; }));
  EXPECT_EQ(source_->Settled()[1].first, "slow");
  Outcome timed_out = source_->Settled()[1].second;
  EXPECT_EQ(timed_out.kind, Outcome::Kind::kRetry);  // the late ack is ignored
  EXPECT_EQ(timed_out.reason, "timeout after 0.05s");
  EXPECT_TRUE(saw_cancel.load());
  EXPECT_EQ(consumer_->Stats().stuck, 0);
  EXPECT_TRUE(consumer_->Stuck().empty());
  ASSERT_TRUE(WaitFor([&] { return consumer_->Stats().running == 0; }));
}

TEST_F(ConsumerTest, ReplaceStuckZeroKeepsTheStuckSlotTaken) {
  ConsumerOptions o;
  o.timeout = Duration(50);
  o.replace_stuck = 0;
  std::atomic<bool> release{false};
  std::atomic<int> fast{0};
  Build(o, One("*", [&](Delivery& d) {
          if (d.msg.id == "fast") {
            fast++;
            return HandlerReply{Verdict::kAck, 1, {}, 0};
          }
          while (!release.load()) std::this_thread::sleep_for(5ms);
          return HandlerReply{Verdict::kAck, 1, {}, 0};
        }));
  source_->Push("slow", "x");
  ASSERT_TRUE(WaitFor([&] { return consumer_->Stats().stuck == 1; }));
  source_->Push("fast", "x");
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(fast.load(), 0);
  release = true;
  ASSERT_TRUE(WaitFor([&] { return fast.load() == 1; }));
  ASSERT_TRUE(WaitFor([&] { return source_->Settled().size() == 2; }));
}

TEST_F(ConsumerTest, RetryStuckAtOnceSettlesTheTimeoutAndIgnoresTheLateVerdict) {
  ConsumerOptions o;
  o.timeout = Duration(50);
  o.retry_stuck_at_once = true;
  std::atomic<bool> release{false};
  Build(o, One("*", [&](Delivery&) {
          while (!release.load()) std::this_thread::sleep_for(5ms);
          return HandlerReply{Verdict::kAck, 1, {}, 0};
        }));
  source_->Push("slow", "x");
  ASSERT_TRUE(WaitFor([&] { return source_->Settled().size() == 1; }));
  Outcome timed_out = source_->Settled()[0].second;
  EXPECT_EQ(timed_out.kind, Outcome::Kind::kRetry);
  EXPECT_EQ(timed_out.reason, "timeout after 0.05s");
  EXPECT_EQ(consumer_->Stats().timed_out, 1u);
  EXPECT_EQ(consumer_->Stats().stuck, 1);  // the call still runs
  release = true;
  ASSERT_TRUE(WaitFor([&] { return consumer_->Stats().running == 0; }));
  EXPECT_EQ(source_->Settled().size(), 1u);  // the late ack settled nothing
  EXPECT_EQ(consumer_->Stats().stuck, 0);
}

// A deferred message whose complete() is overdue waits for it, then is
// retried as a timeout whatever complete() said.
TEST_F(ConsumerTest, AnOverdueDeferredMessageIsRetriedWhenItCompletes) {
  ConsumerOptions o;
  o.timeout = Duration(50);
  std::atomic<Delivery*> held{nullptr};
  Build(o, One("*", [&](Delivery& d) {
          held = &d;
          return HandlerReply{Verdict::kPending, 0, {}, 0};
        }));
  source_->Push("later", "x");
  ASSERT_TRUE(WaitFor([&] { return consumer_->Stats().stuck == 1; }));
  std::vector<StuckHandler> stuck = consumer_->Stuck();
  ASSERT_EQ(stuck.size(), 1u);
  EXPECT_TRUE(stuck[0].deferred);
  EXPECT_EQ(stuck[0].message_id, "later");
  EXPECT_TRUE(source_->Settled().empty());
  Delivery* d = held.load();
  ASSERT_NE(d, nullptr);
  EXPECT_TRUE(d->cancelled.load());
  EXPECT_EQ(consumer_->Complete(d, HandlerReply{Verdict::kAck, 1, {}, 0}), 0);
  ASSERT_TRUE(WaitFor([&] { return source_->Settled().size() == 1; }));
  EXPECT_EQ(source_->Settled()[0].second.kind, Outcome::Kind::kRetry);
  EXPECT_EQ(source_->Settled()[0].second.reason, "timeout after 0.05s");
  EXPECT_EQ(consumer_->Stats().stuck, 0);
}

}  // namespace
}  // namespace foxworker
