// isolation: process across a config reload and a shutdown, under the real
// foxworkerd (tests/harness/daemon_process.h) on the local and Redis
// backends. The handler `hang` records its message's id when it starts
// (a message run twice is recorded twice) and sleeps its payload (ms).
//
// What must hold:
// - a reload that needs new children starts them beside the old ones: new
//   messages run on the new children while the old ones finish theirs; then
//   the old ones exit (reaped: no zombie). Every message acked, run once.
// - a reload that changes nothing the children start with keeps them (the
//   same pids); the daemon's own process settings apply in place.
// - a queue switched from in-process to process isolation and back by
//   reloads loses nothing and runs nothing twice.
// - SIGTERM: a handler that finishes within shutdown_timeout is acked, the
//   plugin's shutdown runs in the child, the daemon exits 0; a handler that
//   hangs past it is stopped with its child, its message is not acked and
//   runs again at the next start, and the daemon exits 3 within
//   shutdown_timeout plus a few seconds.
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/harness/admin_client.h"
#include "tests/harness/daemon_process.h"
#include "tests/isolation/backend_under_test.h"

namespace foxworker::testing {
namespace {

using namespace std::chrono_literals;

// What /api/v1/queues says of one queue.
struct QueueView {
  bool found = false;
  std::string isolation;
  std::vector<int> pids;  // of its children (0: restarting)
  uint64_t acked = 0, retried = 0, released = 0;
};

QueueView ViewOf(const std::string& socket, const std::string& queue) {
  QueueView v;
  const Http r = Get(socket, "/api/v1/queues");
  if (r.status != 200) return v;
  rapidjson::Document doc;
  doc.Parse(r.body.c_str(), r.body.size());
  if (doc.HasParseError()) return v;
  const rapidjson::Value* list = &doc;
  if (doc.IsObject() && doc.HasMember("queues")) list = &doc["queues"];
  if (!list->IsArray()) return v;
  for (const auto& q : list->GetArray()) {
    if (!q.IsObject() || !q.HasMember("name") || q["name"].GetString() != queue) continue;
    v.found = true;
    v.isolation = q["isolation"].GetString();
    if (q.HasMember("children"))
      for (const auto& c : q["children"].GetArray()) v.pids.push_back(c["pid"].GetInt());
    const auto& c = q["counts"];
    v.acked = c["acked"].GetUint64();
    v.retried = c["retried"].GetUint64();
    if (c.HasMember("released")) v.released = c["released"].GetUint64();
  }
  return v;
}

// The lines of a record file.
std::vector<std::string> Lines(const std::string& path) {
  std::vector<std::string> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(line);
  return out;
}

// How often each id was recorded (hang: once per start).
std::map<std::string, int> Runs(const std::string& record) {
  std::map<std::string, int> out;
  for (const std::string& id : Lines(record)) out[id]++;
  return out;
}

// The process no longer exists (exited and reaped: not even a zombie).
bool Gone(int pid) { return kill(pid, 0) != 0 && errno == ESRCH; }

// Alive and not a zombie.
bool Running(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(in, stat)) return false;
  const size_t paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] != 'Z';
}

size_t CountOf(const std::string& text, const std::string& part) {
  size_t n = 0;
  for (size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
  return n;
}

class IsolationLifecycleTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    struct rlimit none = {0, 0};
    setrlimit(RLIMIT_CORE, &none);
    std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::replace(name.begin(), name.end(), '/', '_');  // "Test/local"
    dir_ = std::filesystem::temp_directory_path() /
           ("foxworker_isol_" + std::to_string(getpid()) + "_" + name);
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    if (GetParam() == "local") backend_ = std::make_unique<LocalUnderTest>();
    if (GetParam() == "redis") backend_ = std::make_unique<RedisUnderTest>();
    ASSERT_TRUE(backend_);
    const std::string error = backend_->Prepare(dir_.string());
    ASSERT_EQ(error, "");
    record_ = Path("record.txt");
    shutdowns_ = Path("shutdowns.txt");
    log_ = Path("daemon.log");
    socket_ = Path("admin.sock");
    config_ = Path("foxworker.yaml");
    setenv("FOXWORKER_TEST_SHUTDOWN_FILE", shutdowns_.c_str(), 1);
  }
  void TearDown() override {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    unsetenv("FOXWORKER_TEST_SHUTDOWN_FILE");
    unsetenv("FOXWORKER_TEST_CHILD_SHUTDOWN_MS");
    backend_.reset();
    if (!HasFailure()) std::filesystem::remove_all(dir_);
  }

  std::string Path(const std::string& name) const { return (dir_ / name).string(); }

  // The config: queue `jobs` (plugin test, concurrency 2, prefetch 8)
  // with `jobs_extra` appended to its entry.
  void WriteConfig(const std::string& jobs_extra, const std::string& shutdown_timeout = "10s",
                   const std::string& daemon_extra = "") {
    std::ofstream(config_) << "daemon:\n  state_dir: " << dir_.string()
                           << "\n  shutdown_timeout: " << shutdown_timeout << "\n" << daemon_extra
                           << "  admin:\n    listen: unix:" << socket_
                           << "\nplugins:\n  test:\n    path: " << TestPluginPath()
                           << "\nbackends:\n" << backend_->Yaml()
                           << "queues:\n  jobs:\n    backend: b\n    source: "
                           << backend_->Source("jobs")
                           << "\n    plugin: test\n    handler: hang\n    concurrency: 2\n"
                           << "    prefetch: 8\n" << jobs_extra;
  }

  void Start() {
    pid_ = SpawnDaemon(config_, record_, log_);
    ASSERT_GT(pid_, 0);
    ASSERT_TRUE(WaitFor([&] { return ViewOf(socket_, "jobs").found; }, 30s)) << ReadAll(log_);
  }

  // Sends SIGHUP and waits for the reload's outcome in the log.
  void Reload() {
    const size_t before = CountOf(ReadAll(log_), "reload applied");
    kill(pid_, SIGHUP);
    ASSERT_TRUE(WaitFor([&] { return CountOf(ReadAll(log_), "reload applied") > before; }, 30s))
        << ReadAll(log_);
  }

  // The children's pids once every child runs.
  std::vector<int> Pids() {
    std::vector<int> pids;
    EXPECT_TRUE(WaitFor(
        [&] {
          pids = ViewOf(socket_, "jobs").pids;
          for (int p : pids)
            if (p == 0) return false;
          return !pids.empty();
        },
        30s));
    return pids;
  }

  // Waits (at most `limit`) for the daemon to end; its wait status, or -1.
  int WaitExit(std::chrono::milliseconds limit) { return WaitDaemonExit(pid_, limit); }

  std::filesystem::path dir_;
  std::unique_ptr<BackendUnderTest> backend_;
  std::string record_, shutdowns_, log_, socket_, config_;
  pid_t pid_ = -1;
};

TEST_P(IsolationLifecycleTest, AReloadStartsNewChildrenWhileTheOldOnesFinishTheirMessages) {
  BackendUnderTest& b = *backend_;
  WriteConfig("    isolation: process\n    process:\n      open_files: 1024\n");
  std::set<std::string> ids;
  for (int i = 0; i < 8; ++i) ids.insert(b.Enqueue("jobs", "hang", "4000"));
  Start();
  // Both children run a message.
  ASSERT_TRUE(WaitFor([&] { return Lines(record_).size() >= 2; }, 30s)) << ReadAll(log_);
  const std::vector<int> old_pids = Pids();
  ASSERT_EQ(old_pids.size(), 2u);

  // A limit the children start with: new children.
  WriteConfig("    isolation: process\n    process:\n      open_files: 2048\n");
  const auto reloaded = std::chrono::steady_clock::now();
  Reload();
  const std::string after_reload = ReadAll(log_);
  EXPECT_NE(after_reload.find("queue jobs changed in place (process.open_files 1024 -> 2048): "
                              "new handler children, the old ones finish their messages"),
            std::string::npos)
      << after_reload;
  // No window: the new children take messages while the old ones still run
  // theirs (4 s each; a hand-over would wait for them).
  ASSERT_TRUE(WaitFor([&] { return Lines(record_).size() >= 4; }, 10s)) << ReadAll(log_);
  const auto new_started = std::chrono::steady_clock::now();
  for (int pid : old_pids) EXPECT_TRUE(Running(pid)) << "old child " << pid << " ended early";
  EXPECT_LT(new_started - reloaded, 3s);
  const std::vector<int> new_pids = Pids();
  ASSERT_EQ(new_pids.size(), 2u);
  for (int pid : new_pids)
    EXPECT_EQ(std::count(old_pids.begin(), old_pids.end(), pid), 0) << "child " << pid << " kept";

  // Everything acked, each message run once; the old children gone.
  QueueView v;
  ASSERT_TRUE(WaitFor(
      [&] {
        v = ViewOf(socket_, "jobs");
        return v.acked >= ids.size();
      },
      60s))
      << v.acked << " acked\n"
      << ReadAll(log_);
  ASSERT_TRUE(WaitFor([&] { return Gone(old_pids[0]) && Gone(old_pids[1]); }, 15s))
      << ReadAll(log_);
  const std::map<std::string, int> runs = Runs(record_);
  EXPECT_EQ(runs.size(), ids.size());
  for (const std::string& id : ids) EXPECT_EQ(runs.count(id) ? runs.at(id) : 0, 1) << id;
  EXPECT_EQ(v.acked, ids.size());
  EXPECT_EQ(v.retried, 0u);
  const std::string text = ReadAll(log_);
  for (int pid : old_pids)
    EXPECT_NE(text.find("handler child " + std::to_string(pid) +
                        " recycled (replaced by a config reload)"),
              std::string::npos)
        << text;
  // The plugin's shutdown ran in each old child.
  const std::string shutdowns = ReadAll(shutdowns_);
  for (int pid : old_pids)
    EXPECT_NE(shutdowns.find("shutdown " + std::to_string(pid) + "\n"), std::string::npos)
        << shutdowns;

  kill(pid_, SIGTERM);
  const int status = WaitExit(30s);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status << "\n" << ReadAll(log_);
  EXPECT_EQ(b.Left("jobs"), 0);
  for (int pid : new_pids) EXPECT_TRUE(Gone(pid)) << pid;
}

TEST_P(IsolationLifecycleTest, AReloadWhoseNewChildrenCannotStartChangesNothing) {
  BackendUnderTest& b = *backend_;
  WriteConfig("    isolation: process\n");
  Start();
  const std::vector<int> pids = Pids();
  ASSERT_EQ(pids.size(), 2u);
  // A user that does not exist: the first new child cannot start.
  WriteConfig("    isolation: process\n    process:\n      user: no-such-user-foxw\n");
  kill(pid_, SIGHUP);
  ASSERT_TRUE(WaitFor([&] { return ReadAll(log_).find("reload failed") != std::string::npos; },
                      30s))
      << ReadAll(log_);
  const std::string text = ReadAll(log_);
  EXPECT_NE(text.find("reload failed, still running the previous config: queue jobs: handler "
                      "child "),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("process.user: no user \"no-such-user-foxw\""), std::string::npos) << text;
  EXPECT_EQ(Pids(), pids);
  const std::string id = b.Enqueue("jobs", "hang", "10");
  ASSERT_TRUE(WaitFor([&] { return ViewOf(socket_, "jobs").acked >= 1; }, 30s)) << ReadAll(log_);
  EXPECT_EQ(Runs(record_)[id], 1);
  kill(pid_, SIGTERM);
  const int status = WaitExit(30s);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

TEST_P(IsolationLifecycleTest, AReloadThatChangesNothingTheChildrenStartWithKeepsThem) {
  BackendUnderTest& b = *backend_;
  WriteConfig("    isolation: process\n");
  Start();
  const std::vector<int> pids = Pids();
  ASSERT_EQ(pids.size(), 2u);

  // The same file: nothing changes.
  Reload();
  EXPECT_EQ(Pids(), pids);
  // What the daemon applies to running children, and a daemon setting.
  WriteConfig("    isolation: process\n    process:\n      max_tasks: 1000\n      max_lifetime: "
              "1h\n      timeout_grace: 2s\n      crash_loop: {crashes: 5}\n",
              "10s", "  log_level: info\n  long_job_warning: 1m\n");
  Reload();
  const std::string text = ReadAll(log_);
  EXPECT_NE(text.find("queue jobs changed in place (process.timeout_grace 5000 -> 2000, "
                      "process.max_tasks 0 -> 1000, process.max_lifetime 0 -> 3600000, "
                      "process.crash_loop)"),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("new handler children"), std::string::npos) << text;
  EXPECT_EQ(Pids(), pids);

  // They still run messages.
  const std::string id = b.Enqueue("jobs", "hang", "10");
  ASSERT_TRUE(WaitFor([&] { return ViewOf(socket_, "jobs").acked >= 1; }, 30s)) << ReadAll(log_);
  EXPECT_EQ(Runs(record_)[id], 1);
  EXPECT_EQ(Pids(), pids);
  kill(pid_, SIGTERM);
  const int status = WaitExit(30s);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

TEST_P(IsolationLifecycleTest, ConcurrencyAndPluginConfigReplaceTheChildrenInPlace) {
  BackendUnderTest& b = *backend_;
  WriteConfig("    isolation: process\n");
  std::set<std::string> ids;
  for (int i = 0; i < 6; ++i) ids.insert(b.Enqueue("jobs", "hang", "1500"));
  Start();
  ASSERT_TRUE(WaitFor([&] { return Lines(record_).size() >= 2; }, 30s)) << ReadAll(log_);
  const std::vector<int> first = Pids();
  ASSERT_EQ(first.size(), 2u);

  // concurrency 2 -> 3: three children (prefetch is set: no hand-over).
  std::string yaml = ReadAll(config_);
  yaml.replace(yaml.find("concurrency: 2"), 14, "concurrency: 3");
  std::ofstream(config_) << yaml;
  Reload();
  const std::vector<int> second = Pids();
  ASSERT_EQ(second.size(), 3u);
  for (int pid : second) EXPECT_EQ(std::count(first.begin(), first.end(), pid), 0);

  // The plugin's config: new children again.
  yaml = ReadAll(config_);
  yaml.replace(yaml.find("    path: "), 0, "    config: {reloaded: true}\n");
  std::ofstream(config_) << yaml;
  Reload();
  const std::string text = ReadAll(log_);
  EXPECT_NE(text.find("queue jobs changed in place (plugin test config): new handler children"),
            std::string::npos)
      << text;
  const std::vector<int> third = Pids();
  ASSERT_EQ(third.size(), 3u);
  for (int pid : third) EXPECT_EQ(std::count(second.begin(), second.end(), pid), 0);

  QueueView v;
  ASSERT_TRUE(WaitFor(
      [&] {
        v = ViewOf(socket_, "jobs");
        return v.acked >= ids.size();
      },
      60s))
      << ReadAll(log_);
  for (const std::string& id : ids) EXPECT_EQ(Runs(record_)[id], 1) << id;
  for (int pid : first) EXPECT_TRUE(WaitFor([&] { return Gone(pid); }, 15s)) << pid;
  for (int pid : second) EXPECT_TRUE(WaitFor([&] { return Gone(pid); }, 15s)) << pid;
  kill(pid_, SIGTERM);
  const int status = WaitExit(30s);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_EQ(b.Left("jobs"), 0);
}

TEST_P(IsolationLifecycleTest, SwitchingIsolationOnAndOffByReloadLosesNothing) {
  BackendUnderTest& b = *backend_;
  WriteConfig("");
  std::set<std::string> ids;
  for (int i = 0; i < 6; ++i) ids.insert(b.Enqueue("jobs", "hang", "800"));
  Start();
  EXPECT_EQ(ViewOf(socket_, "jobs").isolation, "in_process");
  ASSERT_TRUE(WaitFor([&] { return Lines(record_).size() >= 2; }, 30s)) << ReadAll(log_);

  WriteConfig("    isolation: process\n");
  Reload();
  EXPECT_NE(ReadAll(log_).find("queue jobs changed (isolation in_process -> process)"),
            std::string::npos)
      << ReadAll(log_);
  ASSERT_TRUE(WaitFor([&] { return ViewOf(socket_, "jobs").isolation == "process"; }, 30s))
      << ReadAll(log_);
  const std::vector<int> pids = Pids();
  ASSERT_EQ(pids.size(), 2u);
  for (int i = 0; i < 4; ++i) ids.insert(b.Enqueue("jobs", "hang", "800"));
  ASSERT_TRUE(WaitFor([&] { return Lines(record_).size() >= 8; }, 30s)) << ReadAll(log_);

  WriteConfig("");
  Reload();
  ASSERT_TRUE(WaitFor([&] { return ViewOf(socket_, "jobs").isolation == "in_process"; }, 30s))
      << ReadAll(log_);
  for (int i = 0; i < 2; ++i) ids.insert(b.Enqueue("jobs", "hang", "10"));

  // A hand-over starts the counts afresh: the backend says what is left.
  ASSERT_TRUE(WaitFor([&] { return Runs(record_).size() >= ids.size(); }, 60s)) << ReadAll(log_);
  for (int pid : pids) EXPECT_TRUE(WaitFor([&] { return Gone(pid); }, 15s)) << pid;
  kill(pid_, SIGTERM);
  const int status = WaitExit(30s);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status << "\n" << ReadAll(log_);
  EXPECT_EQ(b.Left("jobs"), 0);
  const std::map<std::string, int> runs = Runs(record_);
  EXPECT_EQ(runs.size(), ids.size());
  for (const std::string& id : ids) EXPECT_EQ(runs.count(id) ? runs.at(id) : 0, 1) << id;
}

TEST_P(IsolationLifecycleTest, ShutdownWaitsForAChildsMessageThatFinishesInTime) {
  BackendUnderTest& b = *backend_;
  WriteConfig("    isolation: process\n", "10s");
  const std::string id = b.Enqueue("jobs", "hang", "2500");
  Start();
  ASSERT_TRUE(WaitFor([&] { return Lines(record_).size() >= 1; }, 30s)) << ReadAll(log_);
  const std::vector<int> pids = Pids();
  const auto t0 = std::chrono::steady_clock::now();
  kill(pid_, SIGTERM);
  const int status = WaitExit(20s);
  const auto took = std::chrono::steady_clock::now() - t0;
  const std::string text = ReadAll(log_);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status << "\n" << text;
  EXPECT_LT(took, 8s) << text;
  // Acked (nothing left in the backend), run once.
  EXPECT_EQ(b.Left("jobs"), 0);
  EXPECT_EQ(Runs(record_)[id], 1);
  // The plugin's shutdown ran in every child, which is gone.
  const std::string shutdowns = ReadAll(shutdowns_);
  for (int pid : pids) {
    EXPECT_NE(shutdowns.find("shutdown " + std::to_string(pid) + "\n"), std::string::npos)
        << pid << "\n" << shutdowns;
    EXPECT_TRUE(Gone(pid)) << pid;
  }
  EXPECT_EQ(text.find("SIGTERM\n"), std::string::npos) << text;
}

TEST_P(IsolationLifecycleTest, AChildWhoseShutdownHangsIsTerminatedAtShutdownTimeout) {
  WriteConfig("    isolation: process\n", "3s");
  setenv("FOXWORKER_TEST_CHILD_SHUTDOWN_MS", "60000", 1);
  Start();
  unsetenv("FOXWORKER_TEST_CHILD_SHUTDOWN_MS");
  const std::vector<int> pids = Pids();
  const auto t0 = std::chrono::steady_clock::now();
  kill(pid_, SIGTERM);
  const int status = WaitExit(30s);
  const auto took = std::chrono::steady_clock::now() - t0;
  const std::string text = ReadAll(log_);
  // Nothing ran: the whole shutdown_timeout is the children's, then
  // SIGTERM ends them (the hook sleeps a minute).
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status << "\n" << text;
  EXPECT_GE(took, 2500ms) << text;
  EXPECT_LT(took, 6s) << text;
  for (int pid : pids) {
    EXPECT_NE(text.find("queue jobs: handler child " + std::to_string(pid) +
                        " did not exit after its shutdown; SIGTERM"),
              std::string::npos)
        << text;
    EXPECT_TRUE(Gone(pid)) << pid;
  }
}

TEST_P(IsolationLifecycleTest, AHandlerHungPastShutdownTimeoutIsStoppedAndItsMessageRunsAgain) {
  BackendUnderTest& b = *backend_;
  WriteConfig("    isolation: process\n", "2s");
  const std::string hung = b.Enqueue("jobs", "hang", "600000");
  const std::string quick = b.Enqueue("jobs", "hang", "100");
  Start();
  ASSERT_TRUE(WaitFor([&] { return ViewOf(socket_, "jobs").acked >= 1; }, 30s)) << ReadAll(log_);
  ASSERT_TRUE(WaitFor([&] { return Runs(record_)[hung] == 1; }, 30s)) << ReadAll(log_);
  const std::vector<int> pids = Pids();
  const auto t0 = std::chrono::steady_clock::now();
  kill(pid_, SIGTERM);
  const int status = WaitExit(30s);
  const auto took = std::chrono::steady_clock::now() - t0;
  std::string text = ReadAll(log_);
  // Abandoned: exit status 3, within shutdown_timeout (2 s), the second
  // for cancellation, the second between SIGTERM and SIGKILL, and a margin.
  ASSERT_TRUE(WIFEXITED(status)) << status << "\n" << text;
  EXPECT_EQ(WEXITSTATUS(status), 3) << text;
  EXPECT_LT(took, 7s) << text;
  EXPECT_NE(text.find("shutdown: shutdown_timeout (2000 ms) expired; queue jobs: handler hang "
                      "still runs message " + hung),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("with 1 message(s) running; they go back to the backend uncharged"),
            std::string::npos)
      << text;
  for (int pid : pids) EXPECT_TRUE(WaitFor([&] { return Gone(pid); }, 5s)) << pid;
  // Not acked: still in the backend. The quick one was.
  EXPECT_EQ(b.Left("jobs"), 1);
  EXPECT_EQ(Runs(record_)[quick], 1);

  // It runs again at the next start (and hangs again: SIGKILL ends it).
  Start();
  ASSERT_TRUE(WaitFor([&] { return Runs(record_)[hung] == 2; }, 30s)) << ReadAll(log_);
  EXPECT_EQ(Runs(record_)[quick], 1);
}

INSTANTIATE_TEST_SUITE_P(Backends, IsolationLifecycleTest, ::testing::Values("local", "redis"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace foxworker::testing
