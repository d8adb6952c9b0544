// isolation: process under the real foxworkerd (tests/harness/daemon_process.h)
// on the local, RabbitMQ and Redis backends. One queue, `risky`, runs the
// test plugin in child processes and gets good messages with bad ones among
// them: a segfault, abort(), exit(1), an endless loop past its timeout, a
// leak that max_memory recycles, a fork bomb that max_processes stops and a
// flood of standard output. A second queue, `steady`, in the same daemon is
// fed one message after another the whole time.
//
// What must hold: nothing is lost (produced = acked + dead-lettered, by the
// daemon's counters and by what the backend still holds), every good message
// ran exactly once, on its first attempt; each bad one used its three
// attempts and was dead-lettered with its own reason (retried counts exactly
// the bad messages' attempts: no good message was charged); the leak was
// recycled and the flood rate-limited in the log; and `steady` kept
// completing messages while the children crashed.
#include <pwd.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/harness/admin_client.h"
#include "tests/harness/daemon_process.h"
#include "tests/isolation/backend_under_test.h"

namespace foxworker::testing {
namespace {

using namespace std::chrono_literals;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif

constexpr int kGoodBetween = 4;  // record_attempt (20 ms of work) before each other one
constexpr size_t kGoodWaiting = 6;  // while bad ones are left
constexpr int kEachBad = 2;     // of every kind that is dead-lettered
constexpr int kMaxAttempts = 3;
constexpr int kLeaks = 2;       // 192 MiB each, past max_memory: 160MiB
constexpr int kFloodLines = 20000;
constexpr char kSpinTimeout[] = "2s";  // more than a child takes to restart

// Processes and threads of `uid` now: RLIMIT_NPROC counts them all.
int64_t TasksOf(uid_t uid) {
  int64_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    const std::string name = e.path().filename();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream status(e.path() / "status");
    std::string line;
    uid_t real = static_cast<uid_t>(-1);
    int64_t threads = 0;
    while (std::getline(status, line)) {
      if (line.rfind("Uid:", 0) == 0) real = static_cast<uid_t>(std::stoul(line.substr(4)));
      if (line.rfind("Threads:", 0) == 0) threads = std::stoll(line.substr(8));
    }
    if (real == uid) n += threads;
  }
  return n;
}

// The queue's counts from /api/v1/queues.
struct Counts {
  uint64_t received = 0, acked = 0, retried = 0, dead_lettered = 0;
};

bool QueueCounts(const std::string& socket, const std::string& queue, Counts* out) {
  const Http r = Get(socket, "/api/v1/queues");
  if (r.status != 200) return false;
  rapidjson::Document doc;
  doc.Parse(r.body.c_str(), r.body.size());
  if (doc.HasParseError()) return false;
  const rapidjson::Value* list = &doc;
  if (doc.IsObject() && doc.HasMember("queues")) list = &doc["queues"];
  if (!list->IsArray()) return false;
  for (const auto& q : list->GetArray()) {
    if (!q.IsObject() || !q.HasMember("name") || q["name"].GetString() != queue) continue;
    const auto& c = q["counts"];
    out->received = c["received"].GetUint64();
    out->acked = c["acked"].GetUint64();
    out->retried = c["retried"].GetUint64();
    out->dead_lettered = c["dead_lettered"].GetUint64();
    return true;
  }
  return false;
}

size_t CountOf(const std::string& text, const std::string& part) {
  size_t n = 0;
  for (size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
  return n;
}

class IsolationDaemonTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    struct rlimit none = {0, 0};
    setrlimit(RLIMIT_CORE, &none);  // children that crash write no core file
    dir_ = std::filesystem::temp_directory_path() /
           ("foxworker_isod_" + std::to_string(getpid()) + "_" + GetParam());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    if (GetParam() == "local") backend_ = std::make_unique<LocalUnderTest>();
    if (GetParam() == "rabbitmq") backend_ = std::make_unique<RabbitMqUnderTest>();
    if (GetParam() == "redis") backend_ = std::make_unique<RedisUnderTest>();
    const std::string error = backend_->Prepare(dir_.string());
    ASSERT_EQ(error, "");
  }
  void TearDown() override {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    backend_.reset();
    if (!HasFailure()) std::filesystem::remove_all(dir_);
  }

  std::string Path(const std::string& name) const { return (dir_ / name).string(); }

  // Waits (at most `limit`) for the daemon to end; its wait status, or -1.
  int WaitExit(std::chrono::milliseconds limit) { return WaitDaemonExit(pid_, limit); }

  std::filesystem::path dir_;
  std::unique_ptr<BackendUnderTest> backend_;
  pid_t pid_ = -1;
};

TEST_P(IsolationDaemonTest, BadMessagesCostOnlyThemselvesAndTheOtherQueueKeepsGoing) {
  BackendUnderTest& b = *backend_;
  // max_processes (RLIMIT_NPROC) counts every process and thread of the
  // children's user, and the kernel does not enforce it for root: as root
  // the children run as nobody, otherwise as us.
  std::string user_line;
  uid_t children_uid = geteuid();
  if (geteuid() == 0) {
    passwd* nobody = getpwnam("nobody");
    if (nobody == nullptr) GTEST_SKIP() << "running as root and there is no user nobody to run "
                                           "the children as (RLIMIT_NPROC does not bind root)";
    children_uid = nobody->pw_uid;
    user_line = "      user: nobody\n";
    // The children (as nobody) read the plugin and append to the record file.
    chmod(dir_.c_str(), 0755);
  }
  // Room for what the user runs now and the queue's three children (a few
  // threads each), then for the fork bomb (as the test's own user the
  // daemon, started later, takes some of it).
  const int64_t max_processes = TasksOf(children_uid) + 32 + 64;
  const std::string record = Path("record.txt");
  const std::string log = Path("daemon.log");
  { std::ofstream(record).flush(); }
  chmod(record.c_str(), 0666);

  const std::string socket = Path("admin.sock");
  const std::string config = Path("foxworker.yaml");
  std::ofstream(config) << "daemon:\n  state_dir: " << dir_.string()
                        << "\n  shutdown_timeout: 10s\n  admin:\n    listen: unix:" << socket
                        << "\nplugins:\n  test:\n    path: " << TestPluginPath()
                        << "\nbackends:\n" << b.Yaml()
                        << "retry_policies:\n  quick:\n    max_attempts: " << kMaxAttempts
                        << "\n    backoff: fixed\n    initial: 50ms\n    jitter: 0\n"
                        << "queues:\n  risky:\n    backend: b\n    source: " << b.Source("risky")
                        << "\n    plugin: test\n    retry_policy: quick\n    concurrency: 3\n"
                        << "    timeout: 60s\n    handler_timeouts: {spin: " << kSpinTimeout
                        << "}\n    isolation: process\n    process:\n      timeout_grace: 100ms\n"
                        // 30 crashes on purpose: no crash-loop pause here
                        // (crash_loop_test covers it).
                        << "      crash_loop: {crashes: 0}\n"
                        << "      max_memory: 160MiB\n      max_processes: " << max_processes
                        << "\n" << user_line
                        << "  steady:\n    backend: b\n    source: " << b.Source("steady")
                        << "\n    plugin: test\n    handler: record\n    concurrency: 1\n";

  // The risky queue's first messages: the bad ones spread among good ones.
  // While bad ones are left, the loop below keeps a few good ones waiting
  // too: a child that answers one resets its restart backoff, so that a
  // spin's retry never waits for a child longer than its timeout (the wait
  // counts against it: "cancelled while every handler child was busy").
  std::vector<std::string> bad_kinds = {"abort", "exit", "spin", "fork_bomb"};
  if (!kSanitized) bad_kinds.push_back("crash");  // a sanitizer owns SIGSEGV: see below
  std::set<std::string> good;
  std::map<std::string, std::string> bad;  // id -> kind
  int acked_others = 0;                    // leak and flood: acked, not recorded
  const int n_bad = kEachBad * static_cast<int>(bad_kinds.size());
  for (int k = 0; k < n_bad + kLeaks + 1; ++k) {
    for (int i = 0; i < kGoodBetween; ++i) good.insert(b.Enqueue("risky", "record_attempt", "20000"));
    if (k < n_bad) {
      const std::string& kind = bad_kinds[k % bad_kinds.size()];
      bad[b.Enqueue("risky", kind, kind == "fork_bomb" ? "1000" : "")] = kind;
    } else if (k < n_bad + kLeaks) {
      b.Enqueue("risky", "leak", "192");
      ++acked_others;
    } else {
      b.Enqueue("risky", "flood", std::to_string(kFloodLines));
      ++acked_others;
    }
  }
  ASSERT_EQ(bad.size(), static_cast<size_t>(n_bad));
  auto risky_total = [&] { return good.size() + bad.size() + static_cast<size_t>(acked_others); };

  const auto t0 = std::chrono::steady_clock::now();
  pid_ = SpawnDaemon(config, record, log);
  ASSERT_GT(pid_, 0);

  // The steady queue: one message at a time, the next as soon as the last
  // was handled, until the risky queue is done.
  std::set<std::string> steady;
  auto read_records = [&](std::map<std::string, std::vector<int>>* risky_runs,
                          std::map<std::string, int>* steady_runs) {
    std::ifstream in(record);
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string id;
      int attempt = 0;
      if (!(fields >> id)) continue;
      if (fields >> attempt) {
        (*risky_runs)[id].push_back(attempt);  // record_attempt: "<id> <attempt>"
      } else {
        (*steady_runs)[id]++;  // record: "<id>"
      }
    }
  };
  size_t steady_done_at_first_crash = 0;
  bool crashed = false;
  Counts risky;
  bool risky_done = false;
  const auto limit = t0 + 240s;
  while (std::chrono::steady_clock::now() < limit) {
    std::map<std::string, std::vector<int>> risky_runs;
    std::map<std::string, int> steady_runs;
    read_records(&risky_runs, &steady_runs);
    if (!crashed && ReadAll(log).find("handler crashed: ") != std::string::npos) {
      crashed = true;
      steady_done_at_first_crash = steady_runs.size();
    }
    const bool all_bad_dead = b.DeadCount("risky") >= bad.size();
    if (QueueCounts(socket, "risky", &risky) && all_bad_dead &&
        risky.acked + risky.dead_lettered >= risky_total()) {
      risky_done = true;
      break;
    }
    while (!all_bad_dead && good.size() - risky_runs.size() < kGoodWaiting)
      good.insert(b.Enqueue("risky", "record_attempt", "20000"));
    if (steady_runs.size() == steady.size()) steady.insert(b.Enqueue("steady", "any", "1000"));
    std::this_thread::sleep_for(5ms);
  }
  ASSERT_TRUE(risky_done) << risky.acked << " acked, " << risky.dead_lettered
                          << " dead-lettered of " << risky_total() << "\n"
                          << ReadAll(log);
  // Let the last steady message finish (the handler records before the ack).
  Counts steady_counts;
  ASSERT_TRUE(WaitFor(
      [&] {
        return QueueCounts(socket, "steady", &steady_counts) &&
               steady_counts.acked + steady_counts.dead_lettered >= steady.size();
      },
      30s))
      << steady_counts.acked << " of " << steady.size() << " steady messages acked";
  const auto t1 = std::chrono::steady_clock::now();
  Counts final_risky;
  ASSERT_TRUE(QueueCounts(socket, "risky", &final_risky));

  kill(pid_, SIGTERM);
  const int status = WaitExit(60s);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  const std::string text = ReadAll(log);

  // Nothing lost: what went in was acked or dead-lettered, by the daemon's
  // counts and by what the backend still holds.
  const int64_t risky_lost = static_cast<int64_t>(risky_total()) -
                             static_cast<int64_t>(final_risky.acked + final_risky.dead_lettered);
  const int64_t steady_lost = static_cast<int64_t>(steady.size()) -
                              static_cast<int64_t>(steady_counts.acked + steady_counts.dead_lettered);
  EXPECT_EQ(risky_lost, 0);
  EXPECT_EQ(steady_lost, 0);
  EXPECT_EQ(final_risky.acked, good.size() + static_cast<size_t>(acked_others));
  EXPECT_EQ(final_risky.dead_lettered, bad.size());
  // Only the guilty were charged: each bad message's two retries, nothing more.
  EXPECT_EQ(final_risky.retried, bad.size() * (kMaxAttempts - 1)) << text;
  EXPECT_EQ(b.Left("risky"), 0);
  EXPECT_EQ(b.Left("steady"), 0);

  // Every good message ran once, on its first attempt.
  std::map<std::string, std::vector<int>> risky_runs;
  std::map<std::string, int> steady_runs;
  read_records(&risky_runs, &steady_runs);
  EXPECT_EQ(risky_runs.size(), good.size());
  for (const std::string& id : good) {
    auto it = risky_runs.find(id);
    ASSERT_NE(it, risky_runs.end()) << "good message " << id << " never ran\n" << text;
    EXPECT_EQ(it->second, std::vector<int>{1}) << "good message " << id << " ran more than once";
  }
  EXPECT_EQ(steady_runs.size(), steady.size());
  for (const auto& [id, n] : steady_runs) EXPECT_EQ(n, 1) << "steady message " << id;
  EXPECT_EQ(steady_counts.retried, 0u);

  // Each bad message dead-lettered after its last attempt, with its reason.
  const std::vector<Dead> dead = b.DeadLetters("risky");
  ASSERT_EQ(dead.size(), bad.size());
  for (const Dead& d : dead) {
    auto it = bad.find(d.id);
    ASSERT_NE(it, bad.end()) << "dead letter " << d.id << " (" << d.reason << ") was good";
    const std::string& kind = it->second;
    EXPECT_EQ(d.attempt, kMaxAttempts) << kind;
    std::string want;
    if (kind == "crash") want = "handler crashed: SIGSEGV in plugin test, handler crash (child pid ";
    if (kind == "abort") want = "handler crashed: SIGABRT in plugin test, handler abort (child pid ";
    // A sanitizer's exit-time checks (LeakSanitizer) may end the child with
    // another status: only the attribution is checked then.
    if (kind == "exit")
      want = kSanitized ? " in plugin test, handler exit (child pid "
                        : "handler crashed: exit status 1 in plugin test, handler exit (child pid ";
    // Its last attempt may also have timed out waiting for a child (all
    // busy or restarting after the others' crashes): a timeout either way.
    if (kind == "spin")
      want = d.reason.find("cancelled while every handler child was busy") != std::string::npos
                 ? "cancelled while every handler child was busy"
                 : "killed after timeout ";
    if (kind == "fork_bomb") want = "fork failed after ";
    EXPECT_NE(d.reason.find(want), std::string::npos) << kind << ": " << d.reason;
    if (kind == "fork_bomb") std::printf("[%s] %s\n", GetParam().c_str(), d.reason.c_str());
    bad.erase(it);  // each one once
  }

  // The leak was recycled, the flood logged rate-limited.
  EXPECT_GE(CountOf(text, "(max_memory)"), 1u) << text;
  EXPECT_NE(text.find("line(s) of output left out"), std::string::npos);
  EXPECT_LT(CountOf(text, "output] flood line"), static_cast<size_t>(kFloodLines) / 2);

  // The steady queue kept completing messages while children crashed.
  ASSERT_TRUE(crashed);
  EXPECT_GT(steady_runs.size(), steady_done_at_first_crash)
      << "the steady queue stopped while the risky one crashed";
  // (A child restarted while the fork bomb holds the user's processes
  // cannot make its thread: a failed start, which charges nothing.)
  std::printf("[%s] risky: %zu messages (%zu bad), steady: %zu messages (%zu of them after the "
              "first crash); lost %lld + %lld; %zu failed child starts; %.1f s\n",
              GetParam().c_str(), risky_total(), dead.size(), steady.size(),
              steady_runs.size() - steady_done_at_first_crash, static_cast<long long>(risky_lost),
              static_cast<long long>(steady_lost), CountOf(text, "cannot start a worker thread"),
              std::chrono::duration<double>(t1 - t0).count());
}

INSTANTIATE_TEST_SUITE_P(Backends, IsolationDaemonTest,
                         ::testing::Values("local", "rabbitmq", "redis"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace foxworker::testing
