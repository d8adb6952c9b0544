// LocalBackend on real database files and real time: its SQLite thread,
// group commit, leases and wake-ups.
#include "daemon/backends/local/local_backend.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "daemon/base/clock.h"
#include "tests/backends/local_test_util.h"

namespace foxworker {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

LocalBackendOptions Options(const std::string& path) {
  LocalBackendOptions o;
  o.path = path;
  o.durability = Durability::kNormal;
  o.lease = milliseconds(30000);
  o.poll_interval = milliseconds(50);
  return o;
}

SourceOptions ForQueue(const std::string& queue, int prefetch = 16, int max_attempts = 0) {
  SourceOptions o;
  o.queue = queue;
  o.source = queue;
  o.prefetch = prefetch;
  o.max_attempts = max_attempts;
  return o;
}

Message Msg(const std::string& payload) {
  Message m;
  m.payload = payload;
  return m;
}

// A started source plus a way to wait for deliveries, as a consumer would.
class Reader {
 public:
  explicit Reader(std::unique_ptr<Source> source) : source_(std::move(source)) {
    EXPECT_TRUE(source_
                    ->Start([this] {
                      std::lock_guard<std::mutex> l(mu_);
                      ++wakes_;
                      cv_.notify_all();
                    })
                    .ok());
  }

  // Fetches until `n` deliveries arrived or `timeout` passed.
  std::vector<std::unique_ptr<Delivery>> Take(size_t n, milliseconds timeout = milliseconds(5000)) {
    std::vector<std::unique_ptr<Delivery>> out;
    auto deadline = Clock::now() + timeout;
    while (out.size() < n) {
      uint64_t wakes;
      {
        std::lock_guard<std::mutex> l(mu_);
        wakes = wakes_;
      }
      source_->Fetch(n - out.size(), out);
      if (out.size() >= n) break;
      std::unique_lock<std::mutex> l(mu_);
      if (!cv_.wait_until(l, deadline, [&] { return wakes_ != wakes; })) break;
    }
    return out;
  }

  void Settle(std::unique_ptr<Delivery> d, Outcome o) {
    std::vector<Settlement> batch;
    batch.push_back({std::move(d), std::move(o)});
    source_->Settle(batch);
  }

  Source& source() { return *source_; }

 private:
  std::unique_ptr<Source> source_;
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t wakes_ = 0;
};

class LocalBackendTest : public ::testing::Test {
 protected:
  std::unique_ptr<LocalBackend> StartBackend(LocalBackendOptions o) {
    auto b = std::make_unique<LocalBackend>("local", std::move(o));
    Status s = b->Start();
    EXPECT_TRUE(s.ok()) << s.ToString();
    return b;
  }

  std::unique_ptr<Reader> Open(LocalBackend& b, SourceOptions o) {
    auto source = b.OpenSource(o);
    EXPECT_TRUE(source.ok()) << source.status().ToString();
    return std::make_unique<Reader>(std::move(source).value());
  }

  // A separate connection, as foxworkerctl or another daemon would have.
  LocalStore& Inspector() {
    if (!inspector_) inspector_ = OpenStore(path_);
    return *inspector_;
  }

  std::optional<JobRecord> Job(int64_t id) {
    auto r = Inspector().GetJob(id);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : std::nullopt;
  }

  // Waits until `pred` holds (the backend applies settlements asynchronously).
  template <typename Pred>
  bool Eventually(Pred pred, milliseconds timeout = milliseconds(5000)) {
    auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      if (pred()) return true;
      std::this_thread::sleep_for(milliseconds(5));
    }
    return pred();
  }

  TempDir dir_;
  std::string path_ = dir_.File("jobs.db");
  std::unique_ptr<LocalStore> inspector_;
};

TEST_F(LocalBackendTest, EnqueueDeliverAck) {
  auto backend = StartBackend(Options(path_));
  auto reader = Open(*backend, ForQueue("emails"));

  Message m = Msg("hello");
  m.props.message_type = "signup";
  m.props.content_type = "text/plain";
  m.props.priority = 3;
  m.headers = {{"trace", "t1"}};
  int64_t before = WallMs();
  ASSERT_TRUE(backend->Enqueue("emails", m, milliseconds(0)).ok());
  // Committed before Enqueue returned: another connection sees it.
  EXPECT_EQ(Inspector().Stats()->size(), 1u);

  auto got = reader->Take(1);
  ASSERT_EQ(got.size(), 1u);
  Delivery& d = *got[0];
  EXPECT_EQ(d.msg.payload, "hello");
  EXPECT_EQ(d.msg.props.message_type, "signup");
  EXPECT_EQ(d.msg.props.content_type, "text/plain");
  EXPECT_EQ(d.msg.props.priority, 3);
  EXPECT_EQ(d.msg.headers, (Headers{{"trace", "t1"}}));
  EXPECT_EQ(d.msg.attempt, 1u);
  EXPECT_GE(d.msg.enqueued_at_ms, before);
  EXPECT_EQ(d.msg.id, std::to_string(d.tag));
  EXPECT_NE(d.generation, 0u);
  EXPECT_EQ(*d.queue, "emails");
  int64_t id = static_cast<int64_t>(d.tag);
  EXPECT_EQ(Job(id)->state, JobState::kRunning);
  EXPECT_EQ(Job(id)->owner, backend->owner());

  reader->Settle(std::move(got[0]), Outcome::Ack());
  EXPECT_TRUE(Eventually([&] { return !Job(id).has_value(); }));
}

// Consumer::Start only starts the source and waits to be woken: the first
// delivery must wake it although it never fetched.
TEST_F(LocalBackendTest, FirstDeliveryWakesAConsumerThatNeverFetched) {
  auto backend = StartBackend(Options(path_));
  auto source = backend->OpenSource(ForQueue("q"));
  ASSERT_TRUE(source.ok());
  std::mutex mu;
  std::condition_variable cv;
  bool woken = false;
  ASSERT_TRUE((*source)
                  ->Start([&] {
                    std::lock_guard<std::mutex> l(mu);
                    woken = true;
                    cv.notify_all();
                  })
                  .ok());
  ASSERT_TRUE(backend->Enqueue("q", Msg("x"), milliseconds(0)).ok());
  std::unique_lock<std::mutex> l(mu);
  EXPECT_TRUE(cv.wait_for(l, std::chrono::seconds(5), [&] { return woken; }));
  EXPECT_TRUE((*source)->MaybeReady());
}

TEST_F(LocalBackendTest, RetryRedeliversWithTheNextAttemptAndDeadLetterKeepsTheReason) {
  auto backend = StartBackend(Options(path_));
  auto reader = Open(*backend, ForQueue("q"));
  ASSERT_TRUE(backend->Enqueue("q", Msg("flaky"), milliseconds(0)).ok());

  auto first = reader->Take(1);
  ASSERT_EQ(first.size(), 1u);
  int64_t id = static_cast<int64_t>(first[0]->tag);
  reader->Settle(std::move(first[0]), Outcome::Retry(milliseconds(0), "connection reset"));
  auto second = reader->Take(1);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(static_cast<int64_t>(second[0]->tag), id);
  EXPECT_EQ(second[0]->msg.attempt, 2u);
  EXPECT_EQ(Job(id)->last_error, "connection reset");

  reader->Settle(std::move(second[0]), Outcome::DeadLetter("retries exhausted: boom"));
  ASSERT_TRUE(Eventually([&] { return Job(id)->state == JobState::kDead; }));
  JobRecord r = *Job(id);
  EXPECT_EQ(r.last_error, "retries exhausted: boom");
  EXPECT_EQ(r.attempts, 2u);
  EXPECT_GT(r.failed_at_ms, 0);
}

TEST_F(LocalBackendTest, DelayedRetryIsNotDeliveredEarly) {
  auto backend = StartBackend(Options(path_));
  auto reader = Open(*backend, ForQueue("q"));
  ASSERT_TRUE(backend->Enqueue("q", Msg("x"), milliseconds(0)).ok());
  auto first = reader->Take(1);
  ASSERT_EQ(first.size(), 1u);
  auto settled_at = Clock::now();
  reader->Settle(std::move(first[0]), Outcome::Retry(milliseconds(400), "later"));
  auto second = reader->Take(1, milliseconds(3000));
  ASSERT_EQ(second.size(), 1u);
  EXPECT_GE(Clock::now() - settled_at, milliseconds(390));
  EXPECT_EQ(second[0]->msg.attempt, 2u);
}

TEST_F(LocalBackendTest, PriorityOrderAndDelayedEnqueue) {
  auto backend = StartBackend(Options(path_));
  Message low = Msg("low"), high = Msg("high");
  high.props.priority = 7;
  ASSERT_TRUE(backend->Enqueue("q", low, milliseconds(0)).ok());
  ASSERT_TRUE(backend->Enqueue("q", high, milliseconds(0)).ok());
  ASSERT_TRUE(backend->Enqueue("q", Msg("delayed"), milliseconds(300)).ok());
  auto opened = Clock::now();
  auto reader = Open(*backend, ForQueue("q"));
  auto got = reader->Take(2);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0]->msg.payload, "high");
  EXPECT_EQ(got[1]->msg.payload, "low");
  auto delayed = reader->Take(1, milliseconds(3000));
  ASSERT_EQ(delayed.size(), 1u);
  EXPECT_EQ(delayed[0]->msg.payload, "delayed");
  EXPECT_GE(Clock::now() - opened, milliseconds(250));
}

TEST_F(LocalBackendTest, PrefetchBoundsWhatIsHeld) {
  auto backend = StartBackend(Options(path_));
  std::vector<NewJob> jobs;
  for (int i = 0; i < 20; ++i) jobs.push_back(foxworker::Job("q", std::to_string(i)));
  ASSERT_TRUE(backend->EnqueueBatch(jobs).ok());
  auto reader = Open(*backend, ForQueue("q", /*prefetch=*/4));
  auto got = reader->Take(10, milliseconds(500));
  EXPECT_EQ(got.size(), 4u);
  EXPECT_EQ(Inspector().Stats()->at(0).running, 4);
  reader->Settle(std::move(got[0]), Outcome::Ack());
  auto more = reader->Take(1);
  EXPECT_EQ(more.size(), 1u) << "a settlement makes room for one more";
}

TEST_F(LocalBackendTest, NoticesJobsEnqueuedByAnotherProcessQuickly) {
  LocalBackendOptions o = Options(path_);
  o.poll_interval = milliseconds(10000);  // only PRAGMA data_version can notice
  auto backend = StartBackend(o);
  auto reader = Open(*backend, ForQueue("q"));
  std::this_thread::sleep_for(milliseconds(100));  // let the source go idle
  auto start = Clock::now();
  ASSERT_TRUE(Inspector().Enqueue(foxworker::Job("q", "from ctl")).ok());
  auto got = reader->Take(1, milliseconds(2000));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_LT(Clock::now() - start, milliseconds(500));
}

TEST_F(LocalBackendTest, StopFetchingReleasesUnstartedJobs) {
  auto backend = StartBackend(Options(path_));
  std::vector<NewJob> jobs;
  for (int i = 0; i < 10; ++i) jobs.push_back(foxworker::Job("q", std::to_string(i)));
  ASSERT_TRUE(backend->EnqueueBatch(jobs).ok());
  auto reader = Open(*backend, ForQueue("q", /*prefetch=*/10));
  auto got = reader->Take(2);
  ASSERT_EQ(got.size(), 2u);
  ASSERT_TRUE(Eventually([&] { return reader->source().MaybeReady(); }));
  reader->source().StopFetching();
  std::vector<std::unique_ptr<Delivery>> none;
  EXPECT_EQ(reader->source().Fetch(10, none), 0u);
  // The eight never handed out are waiting again, attempts given back.
  ASSERT_TRUE(Eventually([&] { return Inspector().Stats()->at(0).waiting == 8; }));
  // Fetched deliveries can still be settled after StopFetching.
  int64_t released = static_cast<int64_t>(got[0]->tag);
  reader->Settle(std::move(got[0]), Outcome::Release());
  reader->Settle(std::move(got[1]), Outcome::Ack());
  ASSERT_TRUE(Eventually([&] {
    QueueStats q = Inspector().Stats()->at(0);
    return q.waiting == 9 && q.running == 0;
  }));
  EXPECT_EQ(Job(released)->attempts, 0u);
}

TEST_F(LocalBackendTest, PausedQueueDeliversNothingUntilResumed) {
  LocalBackendOptions o = Options(path_);
  auto backend = StartBackend(o);
  ASSERT_TRUE(Inspector().Pause("q").ok());
  auto reader = Open(*backend, ForQueue("q"));
  ASSERT_TRUE(backend->Enqueue("q", Msg("held back"), milliseconds(0)).ok());
  // Give the backend time to notice the pause (it reads it every poll_interval).
  auto got = reader->Take(1, milliseconds(400));
  EXPECT_TRUE(got.empty());
  ASSERT_TRUE(Inspector().Resume("q").ok());
  got = reader->Take(1, milliseconds(3000));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0]->msg.payload, "held back");
}

TEST_F(LocalBackendTest, PausingReleasesBufferedJobs) {
  auto backend = StartBackend(Options(path_));
  std::vector<NewJob> jobs;
  for (int i = 0; i < 5; ++i) jobs.push_back(foxworker::Job("q", std::to_string(i)));
  ASSERT_TRUE(backend->EnqueueBatch(jobs).ok());
  auto reader = Open(*backend, ForQueue("q", /*prefetch=*/5));
  ASSERT_TRUE(Eventually([&] { return Inspector().Stats()->at(0).running == 5; }));
  ASSERT_TRUE(Inspector().Pause("q").ok());
  ASSERT_TRUE(Eventually([&] { return Inspector().Stats()->at(0).waiting == 5; }));
  std::vector<std::unique_ptr<Delivery>> none;
  EXPECT_EQ(reader->source().Fetch(5, none), 0u);
}

TEST_F(LocalBackendTest, LeaseRenewalKeepsALongJob) {
  LocalBackendOptions o = Options(path_);
  o.lease = milliseconds(300);
  auto backend = StartBackend(o);
  auto reader = Open(*backend, ForQueue("q", 1));
  ASSERT_TRUE(backend->Enqueue("q", Msg("long"), milliseconds(0)).ok());
  auto got = reader->Take(1);
  ASSERT_EQ(got.size(), 1u);
  int64_t id = static_cast<int64_t>(got[0]->tag);

  // The handler runs for five leases while another daemon keeps looking.
  auto other = OpenStore(path_);
  auto until = Clock::now() + milliseconds(1500);
  while (Clock::now() < until) {
    ASSERT_EQ(*other->RecoverExpiredLeases(), 0);
    ASSERT_TRUE(other->Claim("q", "thief", 10, milliseconds(300), 0)->jobs.empty());
    std::this_thread::sleep_for(milliseconds(20));
  }
  EXPECT_EQ(Job(id)->attempts, 1u);
  reader->Settle(std::move(got[0]), Outcome::Ack());
  EXPECT_TRUE(Eventually([&] { return !Job(id).has_value(); }));
}

TEST_F(LocalBackendTest, JobsOfAStoppedDaemonAreRecoveredAfterTheirLease) {
  LocalBackendOptions o = Options(path_);
  o.lease = milliseconds(300);
  auto first = StartBackend(o);
  auto reader = Open(*first, ForQueue("q", 1));
  ASSERT_TRUE(first->Enqueue("q", Msg("in flight"), milliseconds(0)).ok());
  auto got = reader->Take(1);
  ASSERT_EQ(got.size(), 1u);
  int64_t id = static_cast<int64_t>(got[0]->tag);
  // The daemon dies with the job in its handler: nothing is settled.
  reader.reset();
  first->Stop(Clock::now() + milliseconds(1000));
  EXPECT_EQ(Job(id)->state, JobState::kRunning);

  auto second = StartBackend(o);
  auto reader2 = Open(*second, ForQueue("q", 1));
  auto again = reader2->Take(1, milliseconds(3000));
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(static_cast<int64_t>(again[0]->tag), id);
  EXPECT_EQ(again[0]->msg.attempt, 2u) << "the crashed attempt counted";
  EXPECT_NE(again[0]->generation, got[0]->generation);
}

TEST_F(LocalBackendTest, RepeatedCrashesDeadLetterAtClaim) {
  ASSERT_TRUE(OpenStore(path_)->Enqueue(foxworker::Job("q", "kills the worker")).ok());
  LocalBackendOptions o = Options(path_);
  o.lease = milliseconds(200);
  int64_t id = 0;
  for (int attempt = 1; attempt <= 2; ++attempt) {
    auto backend = StartBackend(o);
    auto reader = Open(*backend, ForQueue("q", 1, /*max_attempts=*/2));
    auto got = reader->Take(1, milliseconds(3000));
    ASSERT_EQ(got.size(), 1u) << "attempt " << attempt;
    EXPECT_EQ(got[0]->msg.attempt, static_cast<uint32_t>(attempt));
    id = static_cast<int64_t>(got[0]->tag);
    reader.reset();  // "crash": the delivery is never settled
    backend->Stop(Clock::now() + milliseconds(1000));
  }
  auto backend = StartBackend(o);
  auto reader = Open(*backend, ForQueue("q", 1, /*max_attempts=*/2));
  EXPECT_TRUE(reader->Take(1, milliseconds(1000)).empty());
  ASSERT_TRUE(Eventually([&] { return Job(id)->state == JobState::kDead; }));
  EXPECT_EQ(Job(id)->last_error,
            "attempt 3 exceeds max_attempts 2: earlier attempts crashed the worker or timed out");
  EXPECT_EQ(Job(id)->attempts, 2u);
}

TEST_F(LocalBackendTest, StopFlushesPendingSettlements) {
  LocalBackendOptions o = Options(path_);
  o.durability = Durability::kFull;
  auto backend = StartBackend(o);
  std::vector<NewJob> jobs;
  for (int i = 0; i < 50; ++i) jobs.push_back(foxworker::Job("q", std::to_string(i)));
  ASSERT_TRUE(backend->EnqueueBatch(jobs).ok());
  auto reader = Open(*backend, ForQueue("q", 64));
  auto got = reader->Take(50);
  ASSERT_EQ(got.size(), 50u);
  std::vector<Settlement> batch;
  for (auto& d : got) batch.push_back({std::move(d), Outcome::Ack()});
  reader->source().Settle(batch);
  reader->source().StopFetching();
  backend->Stop(Clock::now() + milliseconds(5000));
  EXPECT_TRUE(Inspector().Stats()->empty());
  EXPECT_FALSE(backend->Enqueue("q", Msg("too late"), milliseconds(0)).ok());
}

// Each Enqueue returns once its job is committed; while one commit (and,
// with durability full, its fsync) runs, the other enqueuers' jobs wait and
// go into the next one together. Every Enqueue is carried by a group commit,
// so fewer commits than Enqueue calls means some commit carried several.
TEST_F(LocalBackendTest, ConcurrentEnqueuersShareCommits) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 250;
  LocalBackendOptions o = Options(path_);
  o.durability = Durability::kFull;
  auto backend = StartBackend(o);
  const uint64_t commits_before = backend->enqueue_commits();
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        if (!backend->Enqueue("q", Msg(std::to_string(t * 1000 + i)), milliseconds(0)).ok()) {
          ++failures;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  const uint64_t commits = backend->enqueue_commits() - commits_before;
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(Inspector().Stats()->at(0).waiting, kThreads * kPerThread);
  EXPECT_GT(commits, 0u);
  EXPECT_LT(commits, static_cast<uint64_t>(kThreads * kPerThread))
      << "every enqueue had a commit of its own";
  RecordProperty("enqueue_commits", std::to_string(commits));
}

// One enqueuer at a time cannot share: each Enqueue is its own commit. (The
// counter above counts commits, not calls.)
TEST_F(LocalBackendTest, ASingleEnqueuerCommitsEachEnqueue) {
  auto backend = StartBackend(Options(path_));
  const uint64_t commits_before = backend->enqueue_commits();
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(backend->Enqueue("q", Msg(std::to_string(i)), milliseconds(0)).ok());
  }
  EXPECT_EQ(backend->enqueue_commits() - commits_before, 20u);
}

// Two daemons on one file, both alive and busy: every job runs exactly once.
TEST_F(LocalBackendTest, TwoBackendsOnOneFileNeverDeliverTheSameJobTwice) {
  constexpr int kJobs = 5000;
  {
    auto seed = OpenStore(path_);
    std::vector<NewJob> jobs;
    for (int i = 0; i < kJobs; ++i) jobs.push_back(foxworker::Job("q", std::to_string(i)));
    ASSERT_TRUE(seed->EnqueueBatch(jobs).ok());
  }
  std::vector<std::atomic<int>> handled(kJobs);
  std::atomic<int> total{0};
  std::atomic<int> per_backend[2] = {0, 0};

  std::vector<std::unique_ptr<LocalBackend>> backends;
  std::vector<std::unique_ptr<Source>> sources;
  for (int b = 0; b < 2; ++b) {
    backends.push_back(StartBackend(Options(path_)));
    auto s = backends.back()->OpenSource(ForQueue("q", 64));
    ASSERT_TRUE(s.ok());
    sources.push_back(std::move(s).value());
    ASSERT_TRUE(sources.back()->Start([] {}).ok());
  }
  std::vector<std::thread> workers;
  for (int b = 0; b < 2; ++b) {
    for (int t = 0; t < 2; ++t) {
      workers.emplace_back([&, b] {
        auto deadline = Clock::now() + std::chrono::seconds(60);
        std::vector<std::unique_ptr<Delivery>> batch;
        while (total.load() < kJobs && Clock::now() < deadline) {
          batch.clear();
          if (sources[b]->Fetch(16, batch) == 0) {
            std::this_thread::sleep_for(milliseconds(1));
            continue;
          }
          std::vector<Settlement> settled;
          for (auto& d : batch) {
            handled[std::stoi(d->msg.payload)].fetch_add(1);
            per_backend[b].fetch_add(1);
            total.fetch_add(1);
            settled.push_back({std::move(d), Outcome::Ack()});
          }
          sources[b]->Settle(settled);
        }
      });
    }
  }
  for (auto& w : workers) w.join();
  // Nothing more may arrive afterwards either.
  std::this_thread::sleep_for(milliseconds(200));
  for (int b = 0; b < 2; ++b) {
    std::vector<std::unique_ptr<Delivery>> late;
    EXPECT_EQ(sources[b]->Fetch(100, late), 0u);
  }
  int missing = 0, twice = 0;
  for (int i = 0; i < kJobs; ++i) {
    if (handled[i].load() == 0) ++missing;
    if (handled[i].load() > 1) ++twice;
  }
  EXPECT_EQ(missing, 0);
  EXPECT_EQ(twice, 0);
  EXPECT_EQ(total.load(), kJobs);
  EXPECT_GT(per_backend[0].load(), 0) << "both daemons took part";
  EXPECT_GT(per_backend[1].load(), 0) << "both daemons took part";
  for (auto& s : sources) s->StopFetching();
  sources.clear();
  for (auto& b : backends) b->Stop(Clock::now() + milliseconds(5000));
  EXPECT_TRUE(Inspector().Stats()->empty());
}

// Dedup keeps its keys here: they outlive the store that recorded them (a
// restart) and are scoped by queue.
TEST_F(LocalBackendTest, DurableKeyStoreKeepsKeysInTheFile) {
  auto backend = StartBackend(Options(path_));
  std::unique_ptr<KeyStore> store = backend->OpenDurableKeyStore("jobs");
  ASSERT_NE(store, nullptr);
  store->Record("order-7", /*expires_ms=*/2000);
  store.reset();
  std::unique_ptr<KeyStore> again = backend->OpenDurableKeyStore("jobs");
  EXPECT_TRUE(again->Seen("order-7", 1000));
  EXPECT_FALSE(again->Seen("order-7", 2000));  // expired
  EXPECT_FALSE(backend->OpenDurableKeyStore("mail")->Seen("order-7", 1000));
  backend->Stop(Clock::now() + milliseconds(5000));
}

TEST(LocalBackendFactoryTest, BuildsFromConfigAndRejectsNonsense) {
  BackendConfig config;
  config.name = "disk";
  config.type = "local";
  LocalBackendOptions options;
  options.path = "/tmp/x.db";
  config.options = std::make_shared<LocalBackendOptions>(options);
  auto backend = MakeLocalBackend(config);
  ASSERT_TRUE(backend.ok()) << backend.status().ToString();
  EXPECT_EQ((*backend)->name(), "disk");

  options.batch_size = 0;
  config.options = std::make_shared<LocalBackendOptions>(options);
  EXPECT_FALSE(MakeLocalBackend(config).ok());
  options.batch_size = 10;
  options.path.clear();
  config.options = std::make_shared<LocalBackendOptions>(options);
  EXPECT_FALSE(MakeLocalBackend(config).ok());
}

TEST(LocalBackendStartTest, StartFailsWithThePathWhenTheFileCannotBeOpened) {
  LocalBackendOptions o;
  o.path = "/nonexistent-dir/foxworker/jobs.db";
  LocalBackend backend("disk", o);
  Status s = backend.Start();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find(o.path), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("disk"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace foxworker
