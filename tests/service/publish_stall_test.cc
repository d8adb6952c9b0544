// A plugin's publish to a stopped RabbitMQ waits (up to 30 s) for a confirm.
// It must not hold up the daemon: a SIGHUP reload and then SIGTERM complete
// within their usual time while it waits. The real foxworkerd, a local
// (SQLite) queue whose handler publishes, and a private rabbitmq-server node
// that the test stops.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "daemon/backends/local/local_store.h"
#include "tests/core/test_daemon.h"
#include "tests/harness/daemon_process.h"
#include "tests/harness/rabbitmq_server.h"

namespace foxworker::testing {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

bool Has(const std::string& text, const std::string& what) {
  return text.find(what) != std::string::npos;
}

// Waits for the child up to `limit`; its exit code, or -1 (still running
// or killed by a signal).
int WaitExit(pid_t pid, std::chrono::milliseconds limit) {
  const auto end = Clock::now() + limit;
  while (Clock::now() < end) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return -1;
}

class PublishStallTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = RabbitMqServer::Get();
    if (server_ == nullptr) GTEST_SKIP() << "no RabbitMQ broker: " << RabbitMqServer::Error();
    if (!server_->controllable()) GTEST_SKIP() << "needs rabbitmqctl on a private node";
    dir_ = fs::temp_directory_path() / ("foxworker_stall_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (broker_stopped_) {
      server_->Ctl({"start_app"});
      server_->Ctl({"await_startup"});
    }
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  std::string Log() const { return ReadFile(log_); }
  std::string Record() const { return ReadFile(record_); }

  RabbitMqServer* server_ = nullptr;
  fs::path dir_;
  std::string log_, record_;
  pid_t pid_ = -1;
  bool broker_stopped_ = false;
};

TEST_F(PublishStallTest, ReloadAndShutdownDoNotWaitForAPublishToAStoppedBroker) {
  const std::string db = (dir_ / "jobs.db").string();
  const std::string amqp_queue = "foxworker-stall-" + std::to_string(getpid());
  auto config = [&](const std::string& more_queues) {
    std::ostringstream y;
    y << "daemon:\n  worker_threads: 2\n  shutdown_timeout: 2s\n  state_dir: " << dir_.string()
      << "\nplugins:\n  test:\n    path: " << TestPluginPath() << "\n"
      << "backends:\n  local:\n    type: local\n    path: " << db << "\n"
      << "  rmq:\n    type: rabbitmq\n    url: " << server_->url() << "\n"
      << "queues:\n"
      << "  jobs:\n    backend: local\n    plugin: test\n    handler: publish\n"
      << "  out:\n    backend: rmq\n    source: " << amqp_queue
      << "\n    plugin: test\n    handler: ok\n"
      << more_queues;
    const std::string path = (dir_ / "foxworker.yaml").string();
    std::ofstream(path + ".tmp") << y.str();
    fs::rename(path + ".tmp", path);
    return path;
  };
  log_ = (dir_ / "daemon.log").string();
  record_ = (dir_ / "record").string();
  pid_ = SpawnDaemon(config(""), record_, log_);
  ASSERT_GT(pid_, 0);
  ASSERT_TRUE(WaitFor([&] { return Has(Log(), "foxworkerd ") && Has(Log(), " started: "); },
                      std::chrono::seconds(30)))
      << Log();
  ASSERT_TRUE(WaitFor([&] { return Has(Log(), "backend rmq: connected"); })) << Log();

  // The broker goes away; the handler's publish waits for it.
  std::string out;
  ASSERT_EQ(server_->Ctl({"stop_app"}, &out), 0) << out;
  broker_stopped_ = true;
  {
    LocalStoreOptions o;
    o.path = db;
    auto store = LocalStore::Open(o);
    ASSERT_TRUE(store.ok()) << store.status().message();
    std::vector<NewJob> jobs(1);
    jobs[0].queue = "jobs";
    jobs[0].payload = "out";  // the queue the handler publishes to
    ASSERT_TRUE((*store)->EnqueueBatch(jobs).ok());
  }
  ASSERT_TRUE(WaitFor([&] { return Has(Record(), "publishing"); })) << Log();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  ASSERT_FALSE(Has(Record(), "published")) << "the publish did not wait: " << Record();

  // A reload applies at once (it used to wait for the publish's 30 s).
  config("  extra:\n    backend: local\n    plugin: test\n");
  auto t0 = Clock::now();
  ASSERT_EQ(kill(pid_, SIGHUP), 0);
  ASSERT_TRUE(WaitFor([&] { return Has(Log(), "reload applied: queue extra added"); },
                      std::chrono::seconds(20)))
      << Log();
  const auto reload_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
  EXPECT_LT(reload_ms, 2000) << Log();
  EXPECT_FALSE(Has(Record(), "published")) << "still waiting for the broker";

  // SIGTERM: the drain waits for the publishing handler up to the shutdown
  // timeout (2 s), gives it a second after cancelling, and stops the
  // backends (up to 5 s to close), which fails the publish. It used to
  // wait for the publish first.
  t0 = Clock::now();
  ASSERT_EQ(kill(pid_, SIGTERM), 0);
  const int code = WaitExit(pid_, std::chrono::seconds(20));
  const auto stop_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
  if (code != -1) pid_ = -1;
  EXPECT_EQ(code, 3) << Log();  // the publishing handler was abandoned
  EXPECT_LT(stop_ms, 2000 + 1000 + 5000) << Log();
  EXPECT_TRUE(Has(Log(), "abandoning 1 running handler(s)")) << Log();
  EXPECT_TRUE(Has(Log(), "abandoned handler on queue ")) << Log();
}

}  // namespace
}  // namespace foxworker::testing
