// How the real foxworkerd ends: every start failure exits 1 with its error
// and without crashing; a drained stop exits 0; a stop that abandons running
// handlers names each of them and exits 3.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "daemon/backends/local/local_store.h"
#include "tests/service/daemon_run.h"

namespace foxworker::testing {
namespace {

constexpr int kExitCannotRun = 1;
constexpr int kExitAbandoned = 3;

std::string PluginBlock(const std::string& path) {
  return "plugins:\n  test:\n    path: " + path + "\n";
}

std::string MemoryQueue() {
  return "backends:\n  mem:\n    type: memory\n"
         "queues:\n  jobs:\n    backend: mem\n    plugin: test\n";
}

class ExitStatusTest : public DaemonRunTest {
 protected:
  // Starts the daemon on `yaml`, which must fail to start with `message`.
  void ExpectStartFailure(const std::string& yaml, const std::string& message) {
    Spawn(yaml);
    const int status = Wait();
    const std::string log = Log();
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == kExitCannotRun)
        << Describe(status) << "\n" << log;
    EXPECT_NE(log.find("cannot start: "), std::string::npos) << log;
    EXPECT_NE(log.find(message), std::string::npos) << "expected \"" << message << "\" in\n"
                                                     << log;
    EXPECT_EQ(log.find("CRASH REPORT"), std::string::npos) << log;
    EXPECT_EQ(log.find(" started: "), std::string::npos) << "it must not claim it started\n" << log;
  }

  // Enqueues jobs into the SQLite file `db` (created): each is
  // {message type, payload}; returns their ids.
  std::vector<int64_t> Enqueue(const std::string& db, const std::string& queue,
                               const std::vector<std::pair<std::string, std::string>>& jobs) {
    LocalStoreOptions o;
    o.path = db;
    auto store = LocalStore::Open(o);
    EXPECT_TRUE(store.ok()) << store.status().message();
    std::vector<int64_t> ids;
    if (!store.ok()) return ids;
    for (const auto& [type, payload] : jobs) {
      NewJob j;
      j.queue = queue;
      j.payload = payload;
      j.props.message_type = type;
      auto r = (*store)->Enqueue(j);
      EXPECT_TRUE(r.ok()) << r.status().message();
      if (r.ok()) ids.push_back(r->id);
    }
    return ids;
  }

  // The ids the test plugin's "hang" handler recorded as started.
  std::vector<std::string> Started() const {
    std::vector<std::string> ids;
    std::ifstream in(Path("record.txt"));
    for (std::string line; std::getline(in, line);)
      if (!line.empty()) ids.push_back(line);
    return ids;
  }

  // Jobs of `queue` running now in `db`, or -1.
  static int64_t Running(const std::string& db, const std::string& queue) {
    LocalStoreOptions o;
    o.path = db;
    o.create = false;
    auto store = LocalStore::Open(o);
    if (!store.ok()) return -1;
    auto stats = (*store)->Stats();
    if (!stats.ok()) return -1;
    for (const auto& q : *stats)
      if (q.queue == queue) return q.running;
    return 0;
  }
};

TEST_F(ExitStatusTest, PluginFileMissing) {
  ExpectStartFailure(PluginBlock(Path("no_such_plugin.so")) + MemoryQueue(),
                     "no_such_plugin.so: cannot open: No such file or directory");
}

// --check-config points a plugin file it cannot open at the path's value
// (line 3, column 11: "    path: <value>"), not at the plugin's entry.
TEST_F(ExitStatusTest, CheckConfigPointsAtThePluginPathValue) {
  const std::string file = Path("foxworker.yaml");
  std::ofstream(file) << PluginBlock(Path("no_such_plugin.so")) + MemoryQueue();
  const std::string cmd = std::string(FOXWORKER_BINARY_DIR) + "/daemon/foxworkerd --check-config " +
                          file + " 2>&1";
  FILE* out = popen(cmd.c_str(), "r");
  ASSERT_NE(out, nullptr);
  std::string text;
  char buf[512];
  while (fgets(buf, sizeof buf, out) != nullptr) text += buf;
  const int status = pclose(out);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == kExitCannotRun) << status << "\n" << text;
  EXPECT_NE(text.find(file + ":3:11: plugins.test.path: plugin " + Path("no_such_plugin.so") +
                      ": cannot open: No such file or directory"),
            std::string::npos)
      << text;
}

TEST_F(ExitStatusTest, NotAPlugin) {
  ExpectStartFailure(PluginBlock(TestPluginPath("bad_no_magic")) + MemoryQueue(),
                     "not a foxworker plugin");
}

TEST_F(ExitStatusTest, PluginInitRefused) {
  ExpectStartFailure(PluginBlock(TestPluginPath("bad_init")) + MemoryQueue(),
                     "init refused: missing licence key");
}

TEST_F(ExitStatusTest, PluginCreateRefused) {
  ExpectStartFailure(PluginBlock(TestPluginPath("bad_create")) + MemoryQueue(),
                     "queue jobs: plugin " + TestPluginPath("bad_create") +
                         ": create refused: the test plugin refuses to create instances");
}

TEST_F(ExitStatusTest, LocalStoreCannotOpen) {
  ExpectStartFailure(PluginBlock(TestPluginPath()) +
                         "backends:\n  local:\n    type: local\n    path: " +
                         Path("missing_dir/jobs.db") +
                         "\nqueues:\n  jobs:\n    backend: local\n    plugin: test\n",
                     "backend local: ");
  EXPECT_NE(Log().find("cannot open"), std::string::npos) << Log();
}

TEST_F(ExitStatusTest, AdminCannotBind) {
  // Hold a listening port so that the daemon's bind fails.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  const std::string listen = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  Spawn("daemon:\n  admin:\n    listen: " + listen + "\n" + PluginBlock(TestPluginPath()) +
        MemoryQueue());
  const int status = Wait();
  close(fd);
  const std::string log = Log();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == kExitCannotRun)
      << Describe(status) << "\n" << log;
  EXPECT_NE(log.find("cannot start: admin: cannot listen on " + listen + ": Address already in use"),
            std::string::npos)
      << log;
  EXPECT_EQ(log.find("CRASH REPORT"), std::string::npos) << log;
}

TEST_F(ExitStatusTest, DrainedStopExitsZero) {
  const std::string db = Path("jobs.db");
  Enqueue(db, "jobs", {{"sleep", "700"}});
  Spawn("daemon:\n  shutdown_timeout: 10s\n" + PluginBlock(TestPluginPath()) +
        "backends:\n  local:\n    type: local\n    path: " + db +
        "\nqueues:\n  jobs:\n    backend: local\n    plugin: test\n");
  ASSERT_TRUE(WaitUntil([&] { return Running(db, "jobs") == 1; })) << Log();
  ASSERT_EQ(kill(pid_, SIGTERM), 0);
  const int status = Wait();
  const std::string log = Log();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << Describe(status) << "\n" << log;
  EXPECT_NE(log.find("shutdown complete"), std::string::npos) << log;
  EXPECT_EQ(log.find("abandon"), std::string::npos) << log;
  EXPECT_EQ(Running(db, "jobs"), 0);
}

// The case: two handlers stuck past their queue's timeout (so their
// messages were already retried and no longer count as in flight) and
// another queue's message in flight. The shutdown used to log "giving up on
// 0 in-flight message(s)" and exit 0.
TEST_F(ExitStatusTest, AbandonedHandlersAreNamedAndExitThree) {
  const std::string db = Path("jobs.db");
  const std::vector<int64_t> stuck = Enqueue(db, "slow", {{"hang", "60000"}, {"hang", "60000"}});
  const std::vector<int64_t> other = Enqueue(db, "other", {{"hang", "2000"}});
  ASSERT_EQ(stuck.size(), 2u);
  Spawn("daemon:\n  worker_threads: 4\n  shutdown_timeout: 3s\n" + PluginBlock(TestPluginPath()) +
        "backends:\n  local:\n    type: local\n    path: " + db +
        "\nretry_policies:\n  later:\n    max_attempts: 5\n    backoff: fixed\n    initial: 1h\n    max: 1h\n"
        "queues:\n"
        "  slow:\n    backend: local\n    plugin: test\n    concurrency: 2\n    prefetch: 2\n"
        "    timeout: 1s\n    retry_policy: later\n"
        "  other:\n    backend: local\n    plugin: test\n");
  // Every handler started (the plugin records the ids), and the slow ones
  // are past their timeout: their messages were retried.
  ASSERT_TRUE(WaitUntil([&] { return Started().size() == 3; })) << Log();
  std::this_thread::sleep_for(std::chrono::milliseconds(1300));
  ASSERT_EQ(kill(pid_, SIGTERM), 0);
  const int status = Wait();
  const std::string log = Log();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == kExitAbandoned)
      << Describe(status) << "\n" << log;
  EXPECT_NE(log.find("shutdown: shutdown_timeout (3000 ms) expired; abandoning 2 running "
                     "handler(s), listed below"),
            std::string::npos)
      << log;
  for (int64_t id : stuck)
    EXPECT_NE(log.find("shutdown: abandoned handler on queue slow: plugin test, handler hang, "
                       "message id " + std::to_string(id) + ", attempt 1, running for "),
              std::string::npos)
        << "message " << id << "\n" << log;
  EXPECT_EQ(log.find("abandoned handler on queue other"), std::string::npos) << log;
  EXPECT_NE(log.find("exiting with status 3"), std::string::npos) << log;
  EXPECT_EQ(log.find("CRASH REPORT"), std::string::npos) << log;
}

}  // namespace
}  // namespace foxworker::testing
