// The notify protocol as systemd sees it: the real foxworkerd runs as a child
// with NOTIFY_SOCKET pointing at a datagram socket this test binds.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <map>
#include <set>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "daemon/backends/local/local_store.h"
#include "tests/core/test_daemon.h"

extern char** environ;

namespace foxworker::testing {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct Note {
  Clock::time_point at;
  std::string text;
};

class NotifyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("foxworker_notify_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    socket_path_ = (dir_ / "notify.sock").string();
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd_, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    ASSERT_LT(socket_path_.size(), sizeof addr.sun_path);
    strcpy(addr.sun_path, socket_path_.c_str());
    ASSERT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << strerror(errno);
  }
  void TearDown() override {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (fd_ >= 0) close(fd_);
    fs::remove_all(dir_);
  }

  std::string WriteConfig(const std::string& body, const std::string& plugin_extra = "",
                          const std::string& daemon_extra = "") {
    std::string path = (dir_ / "foxworker.yaml").string();
    // Written aside and renamed in, as an editor or config manager would, so
    // a reload never reads half a file.
    std::string tmp = path + ".tmp";
    std::ofstream(tmp) << "daemon:\n  worker_threads: 2\n  shutdown_timeout: 1s\n" << daemon_extra
                       << "  state_dir: " << dir_.string() << "\nplugins:\n  test:\n    path: "
                       << TestPluginPath()
                       << "\n" << plugin_extra << body;
    fs::rename(tmp, path);
    return path;
  }

  // Sends SIGHUP and collects notifications up to the READY=1 that ends the
  // reload; returns that READY's text (empty if none came).
  std::string Reload() {
    const size_t from = notes_.size();
    EXPECT_EQ(kill(pid_, SIGHUP), 0);
    if (!ReadUntil([](const std::string& t) { return Has(t, "READY=1"); })) return "";
    bool reloading = false;
    for (size_t i = from; i + 1 < notes_.size(); ++i) reloading = reloading || Has(notes_[i].text, "RELOADING=1");
    EXPECT_TRUE(reloading) << "READY=1 without RELOADING=1 before it";
    return notes_.back().text;
  }

  void Spawn(const std::string& config, std::vector<std::string> extra_env = {}) {
    std::vector<std::string> env_strings;
    for (char** e = environ; *e; ++e) {
      std::string v = *e;
      if (v.rfind("NOTIFY_SOCKET=", 0) == 0 || v.rfind("WATCHDOG_", 0) == 0) continue;
      env_strings.push_back(v);
    }
    env_strings.push_back("NOTIFY_SOCKET=" + socket_path_);
    for (auto& e : extra_env) env_strings.push_back(e);
    std::vector<char*> env;
    for (auto& e : env_strings) env.push_back(e.data());
    env.push_back(nullptr);
    std::string bin = std::string(FOXWORKER_BINARY_DIR) + "/daemon/foxworkerd";
    log_ = (dir_ / "daemon.log").string();
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 2, log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    std::string arg = "--config=" + config;
    char* argv[] = {bin.data(), arg.data(), nullptr};
    int rc = posix_spawn(&pid_, bin.c_str(), &fa, nullptr, argv, env.data());
    posix_spawn_file_actions_destroy(&fa);
    ASSERT_EQ(rc, 0) << strerror(rc);
  }

  // Collects notifications until `until` returns true for one of them or the
  // time is up; returns whether it matched.
  bool ReadUntil(const std::function<bool(const std::string&)>& until,
                 std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    auto end = Clock::now() + limit;
    while (Clock::now() < end) {
      pollfd p{fd_, POLLIN, 0};
      int ms = static_cast<int>(
          std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now()).count());
      if (poll(&p, 1, std::max(ms, 1)) <= 0) continue;
      char buf[4096];
      ssize_t n = recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) continue;
      notes_.push_back({Clock::now(), std::string(buf, n)});
      if (until && until(notes_.back().text)) return true;
    }
    return false;
  }

  int WaitExit() {
    int status = 0;
    EXPECT_EQ(waitpid(pid_, &status, 0), pid_);
    pid_ = -1;
    EXPECT_TRUE(WIFEXITED(status)) << Log();
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  std::string Log() const {
    std::ifstream in(log_);
    return "daemon log:\n" + std::string(std::istreambuf_iterator<char>(in), {});
  }

  bool WaitLog(const std::string& what, std::chrono::milliseconds limit = std::chrono::seconds(5)) {
    const auto end = Clock::now() + limit;
    while (Clock::now() < end) {
      if (Has(Log(), what)) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

  static bool Has(const std::string& text, const std::string& what) {
    return text.find(what) != std::string::npos;
  }

  fs::path dir_;
  std::string socket_path_, log_;
  int fd_ = -1;
  pid_t pid_ = -1;
  std::vector<Note> notes_;
};

constexpr char kMemoryQueues[] =
    "backends:\n  mem:\n    type: memory\n"
    "queues:\n  jobs:\n    backend: mem\n    plugin: test\n  mail:\n    backend: mem\n"
    "    plugin: test\n";

TEST_F(NotifyTest, ReadyAfterStartStatusStoppingOnTermExitZero) {
  Spawn(WriteConfig(kMemoryQueues));
  ASSERT_TRUE(ReadUntil([](const std::string& t) { return Has(t, "READY=1"); })) << Log();
  const std::string& ready = notes_.back().text;
  EXPECT_TRUE(Has(ready, "STATUS=2/2 queues consuming, 0 in flight")) << ready;
  // READY is the first thing the daemon says, and only after it logged start.
  EXPECT_EQ(notes_.size(), 1u) << notes_.front().text;
  EXPECT_TRUE(Has(Log(), "started:")) << Log();

  ASSERT_EQ(kill(pid_, SIGTERM), 0);
  ASSERT_TRUE(ReadUntil([](const std::string& t) { return Has(t, "STOPPING=1"); })) << Log();
  EXPECT_TRUE(Has(notes_.back().text, "STATUS=draining: 0 in flight")) << notes_.back().text;
  EXPECT_TRUE(ReadUntil([](const std::string& t) { return Has(t, "EXTEND_TIMEOUT_USEC="); }));
  EXPECT_EQ(WaitExit(), 0) << Log();
  for (const Note& n : notes_) EXPECT_FALSE(Has(n.text, "WATCHDOG=1")) << "no WatchdogSec set";
}

TEST_F(NotifyTest, NoReadyWhenStartFails) {
  // The plugin has no such handler, which only loading it reveals.
  Spawn(WriteConfig("backends:\n  mem:\n    type: memory\n"
                    "queues:\n  jobs:\n    backend: mem\n    plugin: test\n"
                    "    handler: no_such_handler\n"));
  EXPECT_EQ(WaitExit(), 1) << Log();
  ReadUntil(nullptr, std::chrono::milliseconds(200));
  for (const Note& n : notes_) EXPECT_FALSE(Has(n.text, "READY=1")) << n.text;
}

TEST_F(NotifyTest, WatchdogPingsWhileIdle) {
  Spawn(WriteConfig(kMemoryQueues), {"WATCHDOG_USEC=300000"});
  ASSERT_TRUE(ReadUntil([](const std::string& t) { return Has(t, "READY=1"); })) << Log();
  int pings = 0;
  ReadUntil(
      [&](const std::string& t) { return Has(t, "WATCHDOG=1") && ++pings == 5; },
      std::chrono::seconds(3));
  EXPECT_EQ(pings, 5) << "an idle daemon is healthy";
  kill(pid_, SIGTERM);
  EXPECT_EQ(WaitExit(), 0) << Log();
}

// A handler that runs far longer than the watchdog interval (the "ten-minute
// job", shortened to 9 s against a 2 s watchdog) on a queue with no timeout:
// the daemon's own threads are alive, so the pings never stop, nothing is
// logged as an ERROR, and the one WARNING names the message.
TEST_F(NotifyTest, ALongHandlerNeverStopsTheWatchdogAndWarnsOnce) {
  const std::string db = (dir_ / "jobs.db").string();
  {
    LocalStoreOptions o;
    o.path = db;
    auto store = LocalStore::Open(o);
    ASSERT_TRUE(store.ok()) << store.status().message();
    std::vector<NewJob> jobs(1);
    jobs[0].queue = "jobs";
    jobs[0].payload = "9000";  // ms
    jobs[0].props.message_type = "sleep";
    ASSERT_TRUE((*store)->EnqueueBatch(jobs).ok());
  }
  Spawn(WriteConfig("backends:\n  local:\n    type: local\n    path: " + db +
                        "\nqueues:\n  jobs:\n    backend: local\n    plugin: test\n",
                    "", "  long_job_warning: 2s\n"),
        {"WATCHDOG_USEC=2000000"});
  ASSERT_TRUE(ReadUntil([](const std::string& t) { return Has(t, "READY=1"); })) << Log();
  ASSERT_TRUE(ReadUntil([](const std::string& t) { return Has(t, "1 in flight"); })) << Log();
  const auto running_from = notes_.back().at;
  ASSERT_TRUE(ReadUntil([](const std::string& t) { return Has(t, "0 in flight"); },
                        std::chrono::seconds(20)))
      << Log();
  const auto running_until = notes_.back().at;
  EXPECT_GE(running_until - running_from, std::chrono::seconds(8));
  // Pings all along, never as much as the 2 s interval apart.
  std::vector<Clock::time_point> pings;
  for (const Note& n : notes_)
    if (Has(n.text, "WATCHDOG=1")) pings.push_back(n.at);
  ASSERT_GE(pings.size(), 10u) << "pings every 2s/3 over 9 s";
  for (size_t i = 1; i < pings.size(); ++i) {
    EXPECT_LT(pings[i] - pings[i - 1], std::chrono::milliseconds(1500))
        << "ping gap of "
        << std::chrono::duration_cast<std::chrono::milliseconds>(pings[i] - pings[i - 1]).count()
        << " ms";
  }
  EXPECT_GT(pings.back(), running_until - std::chrono::seconds(1));
  const std::string log = Log();
  size_t warnings = 0;
  for (size_t at = 0; (at = log.find("longer than daemon.long_job_warning", at)) != std::string::npos;
       ++at)
    ++warnings;
  EXPECT_EQ(warnings, 1u) << log;
  EXPECT_TRUE(Has(log, "queue jobs: handler sleep (plugin test) has been running message ")) << log;
  // glog writes an ERROR as a line starting with "E" and the date.
  EXPECT_FALSE(Has("\n" + log, "\nE2")) << log;
  EXPECT_FALSE(Has(log, "not responding")) << log;
  kill(pid_, SIGTERM);
  EXPECT_EQ(WaitExit(), 0) << Log();
}

// An injected deadlock in the local backend's I/O thread (the test hook
// FOXWORKER_TEST_STALL_THREAD blocks it forever 1.5 s after it starts): the
// pings stop for good once the liveness timeout passed, and one ERROR names
// the thread. systemd would now SIGABRT the daemon after WatchdogSec.
TEST_F(NotifyTest, ADeadlockedBackendThreadStopsTheWatchdogAndIsNamed) {
  const std::string db = (dir_ / "jobs.db").string();
  Spawn(WriteConfig("backends:\n  local:\n    type: local\n    path: " + db +
                        "\nqueues:\n  jobs:\n    backend: local\n    plugin: test\n",
                    "", "  liveness_timeout: 2s\n"),
        {"WATCHDOG_USEC=1000000", "FOXWORKER_TEST_STALL_THREAD=backend local local: I/O",
         "FOXWORKER_TEST_STALL_AFTER_MS=1500"});
  ASSERT_TRUE(ReadUntil([](const std::string& t) { return Has(t, "READY=1"); })) << Log();
  int pings = 0;
  ReadUntil([&](const std::string& t) { return Has(t, "WATCHDOG=1") && ++pings == 2; },
            std::chrono::seconds(3));
  EXPECT_EQ(pings, 2) << "pinged while the thread was alive";
  ASSERT_TRUE(WaitLog("not responding", std::chrono::seconds(15))) << Log();
  // The ERROR comes from a reporter thread that may run a tick before the
  // control loop's check: allow one tick (1 s / 3) for the last ping.
  ReadUntil(nullptr, std::chrono::milliseconds(500));
  const auto quiet_from = Clock::now();
  ReadUntil(nullptr, std::chrono::milliseconds(2500));
  for (const Note& n : notes_) {
    if (n.at >= quiet_from) {
      EXPECT_FALSE(Has(n.text, "WATCHDOG=1")) << "pinged while deadlocked";
    }
  }
  const std::string log = Log();
  EXPECT_TRUE(Has(log, "thread \"backend local local: I/O\" now blocks forever")) << log;
  EXPECT_TRUE(Has(log, "daemon thread(s) not responding for longer than 2s: ")) << log;
  // Named in the ERROR, or in the one "also" line after it: the control
  // loop, which reads the backend's state under the lock the deadlocked
  // thread holds, may go late a moment before it.
  EXPECT_TRUE(Has(log, "backend local local: I/O (last beat ")) << log;
  EXPECT_TRUE(Has(log, "no longer pinging the systemd watchdog")) << log;
  size_t errors = 0;
  for (size_t at = 0; (at = log.find("daemon thread(s) not responding", at)) != std::string::npos;
       ++at)
    ++errors;
  EXPECT_EQ(errors, 1u) << log;
  // Still running (systemd is the one to end it): TearDown kills it.
  EXPECT_EQ(kill(pid_, 0), 0);
}

// The ability to start a handler is watched too: the control loop probes
// every lock a queue takes to start and settle a handler, then beats
// "handler dispatch". A deadlock there (injected by the hook) stops the pings.
TEST_F(NotifyTest, ADeadlockedDispatchStopsTheWatchdogAndIsNamed) {
  const std::string db = (dir_ / "jobs.db").string();
  Spawn(WriteConfig("backends:\n  local:\n    type: local\n    path: " + db +
                        "\nqueues:\n  jobs:\n    backend: local\n    plugin: test\n",
                    "", "  liveness_timeout: 2s\n"),
        {"WATCHDOG_USEC=1000000", "FOXWORKER_TEST_STALL_THREAD=handler dispatch",
         "FOXWORKER_TEST_STALL_AFTER_MS=1500"});
  ASSERT_TRUE(ReadUntil([](const std::string& t) { return Has(t, "READY=1"); })) << Log();
  ASSERT_TRUE(WaitLog("not responding", std::chrono::seconds(15))) << Log();
  ReadUntil(nullptr, std::chrono::milliseconds(500));
  const auto quiet_from = Clock::now();
  ReadUntil(nullptr, std::chrono::milliseconds(2500));
  for (const Note& n : notes_) {
    if (n.at >= quiet_from) {
      EXPECT_FALSE(Has(n.text, "WATCHDOG=1")) << "pinged while deadlocked";
    }
  }
  const std::string log = Log();
  EXPECT_TRUE(Has(log, "thread \"handler dispatch\" now blocks forever")) << log;
  EXPECT_TRUE(Has(log, "handler dispatch (last beat ")) << log;
  EXPECT_TRUE(Has(log, "no longer pinging the systemd watchdog")) << log;
}

TEST_F(NotifyTest, SighupReloadsReloadingThenReadyAndKeepsTheOldConfigWhenBroken) {
  const std::string config = WriteConfig(kMemoryQueues);
  Spawn(config);
  ASSERT_TRUE(ReadUntil([](const std::string& t) { return Has(t, "READY=1"); })) << Log();

  // A valid new config: one more queue.
  WriteConfig(std::string(kMemoryQueues) + "  reports:\n    backend: mem\n    plugin: test\n");
  size_t from = notes_.size();
  std::string ready = Reload();
  ASSERT_FALSE(ready.empty()) << Log();
  // RELOADING=1 (with the monotonic time systemd 253 wants) comes first, and
  // nothing else is said between it and READY=1.
  ASSERT_EQ(notes_.size(), from + 2) << notes_.back().text;
  EXPECT_TRUE(Has(notes_[from].text, "RELOADING=1\nMONOTONIC_USEC=")) << notes_[from].text;
  EXPECT_TRUE(Has(notes_[from].text, "STATUS=reloading " + config)) << notes_[from].text;
  EXPECT_TRUE(Has(ready, "STATUS=3/3 queues consuming")) << ready;
  EXPECT_TRUE(Has(ready, "reloaded at")) << ready;
  EXPECT_TRUE(Has(Log(), "reload applied: queue reports added")) << Log();

  // A broken one: the daemon says why and keeps running the previous config.
  WriteConfig(std::string(kMemoryQueues) + "  reports:\n    backend: nowhere\n    plugin: test\n");
  from = notes_.size();
  ready = Reload();
  ASSERT_FALSE(ready.empty()) << Log();
  EXPECT_TRUE(Has(notes_[from].text, "RELOADING=1")) << notes_[from].text;
  EXPECT_TRUE(Has(ready, "STATUS=3/3 queues consuming")) << ready;
  EXPECT_TRUE(Has(ready, "reload failed at")) << ready;
  EXPECT_TRUE(Has(ready, "running the previous config")) << ready;
  EXPECT_TRUE(Has(ready, "nowhere")) << ready;
  EXPECT_TRUE(Has(Log(), "reload failed, still running the previous config")) << Log();
  kill(pid_, SIGTERM);
  ASSERT_TRUE(ReadUntil([](const std::string& t) { return Has(t, "STOPPING=1"); })) << Log();
  EXPECT_EQ(WaitExit(), 0) << Log();
}

TEST_F(NotifyTest, ReloadRefusesABackendChangeUnderItsQueuesButMovesQueuesToANewOne) {
  Spawn(WriteConfig(kMemoryQueues));
  ASSERT_TRUE(ReadUntil([](const std::string& t) { return Has(t, "READY=1"); })) << Log();
  std::string changed = kMemoryQueues;
  changed.replace(changed.find("type: memory"), 12, "type: memory\n    capacity: 10");
  WriteConfig(changed);
  std::string ready = Reload();
  ASSERT_FALSE(ready.empty()) << Log();
  EXPECT_TRUE(Has(ready, "reload failed")) << ready;
  EXPECT_TRUE(Has(ready, "backend mem changed while queues use it (jobs, mail)")) << ready;
  EXPECT_TRUE(Has(ready, "restart the service")) << ready;

  // A new backend for the queues is fine, and the old one is stopped.
  WriteConfig("backends:\n  mem2:\n    type: memory\n    capacity: 10\n"
              "queues:\n  jobs:\n    backend: mem2\n    plugin: test\n  mail:\n    backend: mem2\n"
              "    plugin: test\n");
  ready = Reload();
  EXPECT_TRUE(Has(ready, "reloaded at")) << ready;
  EXPECT_TRUE(WaitLog("backend mem: stopped")) << Log();
  EXPECT_TRUE(Has(Log(), "backend mem2 added")) << Log();
  EXPECT_TRUE(Has(Log(), "queue jobs changed (backend \"mem\" -> \"mem2\")")) << Log();
  kill(pid_, SIGTERM);
  EXPECT_EQ(WaitExit(), 0) << Log();
}

// Queues added, removed, changed and their plugin's config changed while
// messages flow through the local backend: every message is handled exactly
// once, and those of a removed queue wait in the store.
TEST_F(NotifyTest, ReloadWhileMessagesFlowHandlesEveryMessageExactlyOnce) {
  const std::string db = (dir_ / "jobs.db").string();
  const std::string record = (dir_ / "handled.txt").string();
  auto queues = [&](const std::vector<std::pair<std::string, std::string>>& qs) {
    std::string y = "backends:\n  local:\n    type: local\n    path: " + db +
                    "\n    poll_interval: 20ms\nqueues:\n";
    for (const auto& [name, extra] : qs)
      y += "  " + name + ":\n    backend: local\n    plugin: test\n    handler: record\n" + extra;
    return y;
  };
  LocalStoreOptions o;
  o.path = db;
  auto store = LocalStore::Open(o);
  ASSERT_TRUE(store.ok()) << store.status().message();
  std::map<std::string, int> enqueued;
  auto enqueue = [&](const std::string& queue, int n) {
    std::vector<NewJob> jobs(n);
    for (auto& j : jobs) {
      j.queue = queue;
      // us per message: the reloads land mid-flow (long enough that a
      // handler runs at the reload even on a loaded machine under ASan,
      // where 15 ms once left none running at either reload).
      j.payload = "40000";
    }
    auto r = (*store)->EnqueueBatch(jobs);
    ASSERT_TRUE(r.ok()) << r.status().message();
    enqueued[queue] += n;
  };
  for (const char* q : {"a", "b", "c"}) enqueue(q, 40);

  Spawn(WriteConfig(queues({{"a", "    concurrency: 2\n"}, {"b", ""}, {"c", "    prefetch: 8\n"}})),
        {"FOXWORKER_TEST_RECORD_FILE=" + record});
  ASSERT_TRUE(ReadUntil([](const std::string& t) { return Has(t, "READY=1"); })) << Log();
  std::this_thread::sleep_for(std::chrono::milliseconds(150));

  // a changes its limits (with its prefetch: a hand-over), c only its
  // concurrency (in place), b goes away, d comes.
  WriteConfig(queues({{"a", "    concurrency: 4\n    prefetch: 8\n"},
                      {"c", "    concurrency: 3\n    prefetch: 8\n"},
                      {"d", ""}}));
  enqueue("a", 40);
  enqueue("d", 40);
  std::string ready = Reload();
  ASSERT_FALSE(ready.empty()) << Log();
  EXPECT_TRUE(Has(ready, "reloaded at")) << ready;
  enqueue("a", 40);
  enqueue("c", 40);
  enqueue("b", 20);  // nobody consumes b now: these wait
  std::this_thread::sleep_for(std::chrono::milliseconds(150));

  // b comes back, and the plugin's config changes: every queue's instances
  // are rebuilt while messages are in flight.
  WriteConfig(queues({{"a", "    concurrency: 4\n    prefetch: 8\n"},
                      {"b", ""},
                      {"c", "    concurrency: 3\n    prefetch: 8\n"},
                      {"d", ""}}),
              "    config:\n      generation: 2\n");
  enqueue("d", 40);
  ready = Reload();
  ASSERT_FALSE(ready.empty()) << Log();
  EXPECT_TRUE(Has(ready, "reloaded at")) << ready;
  enqueue("a", 40);
  enqueue("b", 20);

  int total = 0;
  for (const auto& [q, n] : enqueued) total += n;
  auto left = [&] {
    auto st = (*store)->Stats();
    EXPECT_TRUE(st.ok());
    int64_t n = 0;
    if (st.ok())
      for (const auto& q : *st) n += q.waiting + q.scheduled + q.running + q.dead;
    return n;
  };
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  while (left() > 0 && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_EQ(left(), 0) << Log();

  kill(pid_, SIGTERM);
  EXPECT_EQ(WaitExit(), 0) << Log();
  std::ifstream in(record);
  std::map<std::string, int> seen;
  int lines = 0;
  for (std::string id; std::getline(in, id);) {
    ++seen[id];
    ++lines;
  }
  EXPECT_EQ(lines, total);
  EXPECT_EQ(static_cast<int>(seen.size()), total);
  for (const auto& [id, n] : seen) EXPECT_EQ(n, 1) << "message " << id << " handled " << n << " times";
  const std::string log = Log();
  EXPECT_TRUE(Has(log, "queue a changed (concurrency 2 -> 4, prefetch 4 -> 8)")) << log;
  EXPECT_TRUE(Has(log, "queue c changed in place (concurrency 1 -> 3)")) << log;
  EXPECT_TRUE(Has(log, "queue b removed")) << log;
  EXPECT_TRUE(Has(log, "queue d added")) << log;
  EXPECT_TRUE(Has(log, "plugin test config")) << log;
  EXPECT_TRUE(Has(log, "retired consumer drained")) << log;
  // The reloads did land while handlers ran.
  EXPECT_TRUE(Has(log, "in flight finish on the old consumer before the new one starts")) << log;
}

TEST_F(NotifyTest, ReloadSaysARebuiltSoAtTheSamePathNeedsARestart) {
  const fs::path so = dir_ / "plugin.so";
  fs::copy_file(TestPluginPath(), so);
  std::string body = std::string(kMemoryQueues);
  auto write = [&](const std::string& extra) {
    std::string path = (dir_ / "foxworker.yaml").string();
    std::ofstream(path + ".tmp") << "daemon:\n  worker_threads: 2\n  shutdown_timeout: 1s\n"
                                 << "  state_dir: " << dir_.string() << "\n"
                                 << "plugins:\n  test:\n    path: " << so.string() << "\n"
                                 << extra << body;
    fs::rename(path + ".tmp", path);
    return path;
  };
  Spawn(write(""));
  ASSERT_TRUE(ReadUntil([](const std::string& t) { return Has(t, "READY=1"); })) << Log();
  // A new build installed the usual way: written aside, renamed over.
  fs::copy_file(TestPluginPath(), dir_ / "plugin.so.new");
  fs::rename(dir_ / "plugin.so.new", so);
  write("    config:\n      generation: 2\n");
  std::string ready = Reload();
  ASSERT_FALSE(ready.empty()) << Log();
  // The rest applies (the plugin's config); the new code needs a restart.
  EXPECT_TRUE(Has(ready, "reloaded at")) << ready;
  EXPECT_TRUE(Has(ready, "1 setting(s) need a restart, see the log")) << ready;
  EXPECT_TRUE(Has(Log(), "plugin.so changed on disk since it was loaded")) << Log();
  EXPECT_TRUE(Has(Log(), "restart the service to run the new build")) << Log();
  EXPECT_TRUE(Has(Log(), "reload applied: plugin test config")) << Log();
  kill(pid_, SIGTERM);
  EXPECT_EQ(WaitExit(), 0) << Log();
}

}  // namespace
}  // namespace foxworker::testing
