// The Inspector (daemon/core/inspect.h) of every durable backend, on real
// servers: a real SQLite file, a real redis-server, a real rabbitmq-server.
// Letters are dead-lettered through the backend's own Source and Settle, as
// the daemon does, then listed, filtered, shown, retried and deleted.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "daemon/backends/local/local_backend.h"
#include "daemon/core/backend.h"
#include "daemon/core/inspect.h"
#include "tests/backends/inspector_test_backends.h"
#include "tests/backends/local_test_util.h"
#include "tests/core/test_daemon.h"

namespace foxworker::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

class InspectorTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = info->name();
    std::replace(name.begin(), name.end(), '/', '-');
    source_name_ = "insp-" + name + "-" + std::to_string(getpid());
    harness_ = MakeInspectorHarness(GetParam(), dir_.path());
    ASSERT_NE(harness_, nullptr);
    if (!harness_->available()) GTEST_SKIP() << harness_->why_unavailable();
    backend_ = harness_->MakeBackend();
    ASSERT_NE(backend_, nullptr);
    options_.queue = "work";
    options_.source = source_name_;
    options_.prefetch = 1;
    options_.max_attempts = 3;
    harness_->Prepare(options_);
    auto source = backend_->OpenSource(options_);
    ASSERT_TRUE(source.ok()) << source.status().message();
    source_ = std::move(source).value();
    ASSERT_TRUE(backend_->Start().ok());
    ASSERT_TRUE(source_->Start([] {}).ok());
    InspectorOptions io;
    io.timeout = seconds(10);
    auto inspector = backend_->OpenInspector(io);
    ASSERT_TRUE(inspector.ok()) << inspector.status().message();
    inspector_ = std::move(inspector).value();
  }

  void TearDown() override {
    inspector_.reset();
    if (source_ != nullptr) source_->StopFetching();
    if (backend_ != nullptr) backend_->Stop(std::chrono::steady_clock::now() + seconds(5));
    source_.reset();
    backend_.reset();
    if (harness_ != nullptr) harness_->Cleanup(options_);
  }

  void Enqueue(const std::string& payload, const std::string& type = "t") {
    Message m;
    m.payload = payload;
    m.props.message_type = type;
    m.props.message_id = "mid-" + payload;
    m.headers.emplace_back("x-test", "h-" + payload);
    ASSERT_TRUE(backend_->Enqueue(source_name_, std::move(m), milliseconds(0)).ok());
  }

  std::unique_ptr<Delivery> FetchOne(milliseconds limit = seconds(20)) {
    std::vector<std::unique_ptr<Delivery>> out;
    WaitFor([&] { return source_->Fetch(1, out) > 0; }, limit);
    return out.empty() ? nullptr : std::move(out[0]);
  }

  void Settle(std::unique_ptr<Delivery> d, Outcome outcome) {
    std::vector<Settlement> batch;
    batch.push_back(Settlement{std::move(d), std::move(outcome)});
    source_->Settle(batch);
  }

  // Enqueues one message per reason and dead-letters each through the
  // source, in order; waits until the inspector counts them all.
  void DeadLetter(const std::vector<std::string>& reasons) {
    for (size_t i = 0; i < reasons.size(); ++i) {
      Enqueue("p" + std::to_string(i));
      auto d = FetchOne();
      ASSERT_NE(d, nullptr) << "message " << i << " never delivered";
      EXPECT_EQ(d->msg.payload, "p" + std::to_string(i));
      Settle(std::move(d), Outcome::DeadLetter(reasons[i]));
      // One at a time, so failure times (and the newest-first order) follow
      // the reasons' order.
      ASSERT_TRUE(WaitDead(static_cast<int64_t>(i + 1))) << "letter " << i;
    }
  }

  bool WaitDead(int64_t n) {
    return WaitFor(
        [&] {
          auto d = inspector_->Depth(options_);
          return d.ok() && d->dead_letters == n;
        },
        seconds(20));
  }

  DeadLetterPage List(const std::string& reason = "", size_t offset = 0, size_t limit = 100) {
    DeadLetterFilter f;
    f.reason_contains = reason;
    auto page = inspector_->ListDead(options_, f, offset, limit);
    EXPECT_TRUE(page.ok()) << page.status().message();
    return page.ok() ? std::move(page).value() : DeadLetterPage{};
  }

  TempDir dir_;
  std::string source_name_;
  std::unique_ptr<InspectorHarness> harness_;
  std::unique_ptr<Backend> backend_;
  SourceOptions options_;
  std::unique_ptr<Source> source_;
  std::unique_ptr<Inspector> inspector_;
};

TEST_P(InspectorTest, ListsFiltersAndPagesDeadLettersNewestFirst) {
  DeadLetter({"handler failed: boom", "killed after TIMEOUT 30s", "handler failed: bang",
              "Timeout again"});
  DeadLetterPage all = List();
  ASSERT_EQ(all.letters.size(), 4u);
  EXPECT_EQ(all.total, 4u);
  EXPECT_EQ(all.letters[0].reason, "Timeout again");
  EXPECT_EQ(all.letters[3].reason, "handler failed: boom");
  for (const auto& l : all.letters) {
    EXPECT_EQ(l.queue, "work");
    EXPECT_EQ(l.type, "t");
    EXPECT_FALSE(l.id.empty());
    EXPECT_EQ(l.payload_bytes, 2u);
    EXPECT_GE(l.attempts, 1);
  }
  EXPECT_EQ(all.letters[3].message_id, "mid-p0");
  std::set<std::string> ids;
  for (const auto& l : all.letters) ids.insert(l.id);
  EXPECT_EQ(ids.size(), 4u);

  // The ids stay the same across calls.
  DeadLetterPage again = List();
  ASSERT_EQ(again.letters.size(), 4u);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(again.letters[i].id, all.letters[i].id);

  DeadLetterPage timeouts = List("timeout");
  ASSERT_EQ(timeouts.letters.size(), 2u);
  EXPECT_EQ(timeouts.total, 2u);
  EXPECT_EQ(timeouts.letters[0].reason, "Timeout again");
  EXPECT_EQ(timeouts.letters[1].reason, "killed after TIMEOUT 30s");

  DeadLetterPage page = List("", 1, 2);
  ASSERT_EQ(page.letters.size(), 2u);
  EXPECT_EQ(page.total, 4u);
  EXPECT_EQ(page.letters[0].id, all.letters[1].id);
  EXPECT_EQ(page.letters[1].id, all.letters[2].id);

  EXPECT_TRUE(List("no such reason").letters.empty());
}

TEST_P(InspectorTest, ShowsOneLetterWithPayloadHeadersAndATruncation) {
  DeadLetter({"handler failed: boom"});
  DeadLetterPage all = List();
  ASSERT_EQ(all.letters.size(), 1u);
  auto letter = inspector_->GetDead(options_, all.letters[0].id, 1);
  ASSERT_TRUE(letter.ok()) << letter.status().message();
  EXPECT_EQ(letter->summary.id, all.letters[0].id);
  EXPECT_EQ(letter->summary.reason, "handler failed: boom");
  EXPECT_EQ(letter->payload, "p");
  EXPECT_TRUE(letter->payload_truncated);
  bool header = false;
  for (const auto& [k, v] : letter->headers) header |= (k == "x-test" && v == "h-p0");
  EXPECT_TRUE(header);

  auto whole = inspector_->GetDead(options_, all.letters[0].id, 1 << 20);
  ASSERT_TRUE(whole.ok());
  EXPECT_EQ(whole->payload, "p0");
  EXPECT_FALSE(whole->payload_truncated);

  auto missing = inspector_->GetDead(options_, "999999", 100);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), Status::Code::kNotFound);
}

TEST_P(InspectorTest, ARetriedLetterIsFetchedAgainWithAttemptOne) {
  DeadLetter({"first", "second"});
  DeadLetterPage all = List();
  ASSERT_EQ(all.letters.size(), 2u);
  const std::string id = all.letters[1].id;  // "first", payload p0
  auto done = inspector_->RetryDead(options_, {id, "not-an-id"});
  ASSERT_TRUE(done.ok()) << done.status().message();
  ASSERT_EQ(*done, std::vector<std::string>{id});

  auto d = FetchOne();
  ASSERT_NE(d, nullptr) << "the retried letter was not delivered again";
  EXPECT_EQ(d->msg.payload, "p0");
  EXPECT_EQ(d->msg.attempt, 1u);
  EXPECT_NE(d->msg.FindHeader("x-test"), nullptr);
  Settle(std::move(d), Outcome::Ack());

  ASSERT_TRUE(WaitDead(1));
  DeadLetterPage left = List();
  ASSERT_EQ(left.letters.size(), 1u);
  EXPECT_EQ(left.letters[0].reason, "second");
  auto gone = inspector_->GetDead(options_, id, 100);
  EXPECT_EQ(gone.status().code(), Status::Code::kNotFound);
}

TEST_P(InspectorTest, DeletesOneAndThoseMatchingAFilter) {
  DeadLetter({"boom one", "other", "BOOM two", "boom three"});
  DeadLetterPage all = List();
  ASSERT_EQ(all.letters.size(), 4u);
  auto deleted = inspector_->DeleteDead(options_, {all.letters[1].id});  // "BOOM two"
  ASSERT_TRUE(deleted.ok()) << deleted.status().message();
  EXPECT_EQ(deleted->size(), 1u);
  ASSERT_TRUE(WaitDead(3));

  DeadLetterFilter f;
  f.reason_contains = "Boom";
  auto n = inspector_->DeleteMatching(options_, f);
  ASSERT_TRUE(n.ok()) << n.status().message();
  EXPECT_EQ(*n, 2u);
  ASSERT_TRUE(WaitDead(1));
  DeadLetterPage left = List();
  ASSERT_EQ(left.letters.size(), 1u);
  EXPECT_EQ(left.letters[0].reason, "other");
  // Nothing was put back on the queue.
  std::vector<std::unique_ptr<Delivery>> out;
  EXPECT_EQ(source_->Fetch(1, out), 0u);
}

TEST_P(InspectorTest, RetriesThoseMatchingAFilter) {
  DeadLetter({"db down", "bad input", "DB DOWN again"});
  DeadLetterFilter f;
  f.reason_contains = "db down";
  auto n = inspector_->RetryMatching(options_, f);
  ASSERT_TRUE(n.ok()) << n.status().message();
  EXPECT_EQ(*n, 2u);
  std::set<std::string> payloads;
  for (int i = 0; i < 2; ++i) {
    auto d = FetchOne();
    ASSERT_NE(d, nullptr) << "retried letter " << i << " not delivered";
    EXPECT_EQ(d->msg.attempt, 1u);
    payloads.insert(d->msg.payload);
    Settle(std::move(d), Outcome::Ack());
  }
  EXPECT_EQ(payloads, (std::set<std::string>{"p0", "p2"}));
  ASSERT_TRUE(WaitDead(1));
  EXPECT_EQ(List().letters.at(0).reason, "bad input");
}

TEST_P(InspectorTest, DepthCountsBacklogAndDeadLetters) {
  DeadLetter({"x", "y"});
  // With prefetch 1, one of the five is held by the source, four wait.
  for (int i = 0; i < 5; ++i) Enqueue("b" + std::to_string(i));
  QueueDepth last;
  bool reached = WaitFor(
      [&] {
        auto d = inspector_->Depth(options_);
        if (!d.ok()) return false;
        last = *d;
        return d->backlog == 4 && d->dead_letters == 2;
      },
      seconds(20));
  EXPECT_TRUE(reached) << "backlog " << last.backlog << " dead " << last.dead_letters;
  if (harness_->counts_unacked()) {
    EXPECT_EQ(last.unacked, 1);
  }
  EXPECT_GE(last.oldest_age_seconds, harness_->knows_oldest_age() ? 0.0 : -1.0);
  if (harness_->counts_scheduled()) {
    EXPECT_EQ(last.scheduled, 0);
  }
}

TEST_P(InspectorTest, ListsARetryWaitingForItsBackoff) {
  if (!harness_->lists_scheduled()) {
    auto r = inspector_->ListScheduled(options_, 10);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), Status::Code::kUnavailable);
    EXPECT_FALSE(r.status().message().empty());
    return;
  }
  Enqueue("later");
  auto d = FetchOne();
  ASSERT_NE(d, nullptr);
  Settle(std::move(d), Outcome::Retry(seconds(600), "try later"));
  std::vector<ScheduledJob> jobs;
  ASSERT_TRUE(WaitFor(
      [&] {
        auto r = inspector_->ListScheduled(options_, 10);
        if (!r.ok()) return false;
        jobs = *r;
        return jobs.size() == 1;
      },
      seconds(20)));
  EXPECT_EQ(jobs[0].queue, "work");
  EXPECT_EQ(jobs[0].attempt, 1);
  EXPECT_EQ(jobs[0].type, "t");
  if (harness_->scheduled_has_error()) {
    EXPECT_EQ(jobs[0].last_error, "try later");
  }
  EXPECT_GT(jobs[0].due_ms, 0);
  auto depth = inspector_->Depth(options_);
  ASSERT_TRUE(depth.ok());
  EXPECT_EQ(depth->scheduled, 1);
}

// A connection the server closed meanwhile is replaced within the call: the
// first call after a restart answers, it does not fail.
TEST_P(InspectorTest, TheFirstCallAfterAServerRestartAnswers) {
  DeadLetter({"x"});
  if (!harness_->RestartServer()) GTEST_SKIP() << "this harness cannot restart its server";
  auto depth = inspector_->Depth(options_);
  ASSERT_TRUE(depth.ok()) << depth.status().message();
  EXPECT_EQ(depth->dead_letters, 1);
  auto page = inspector_->ListDead(options_, DeadLetterFilter{}, 0, 10);
  ASSERT_TRUE(page.ok()) << page.status().message();
  EXPECT_EQ(page->letters.size(), 1u);
}

INSTANTIATE_TEST_SUITE_P(Backends, InspectorTest, ::testing::ValuesIn(InspectorBackends()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace foxworker::testing
