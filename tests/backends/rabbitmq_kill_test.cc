// docs/semantics.md, "Message ids", RabbitMQ: the real foxworkerd
// (tests/harness/daemon_process.h) on a real broker. One message without a
// message_id is killed (SIGKILL) while its first attempt runs, fails its
// redelivery in the next daemon (a retry), is picked up after a restart,
// killed again while the retry runs, and acked by a fourth daemon: every
// attempt sees the same id (the hash the backend derives from the message's
// bytes, then the copy's message_id), and each redelivery after a kill
// counts as an attempt.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "tests/backends/rabbitmq_test_util.h"
#include "tests/harness/daemon_process.h"

namespace foxworker::testing {
namespace {

class RabbitMqKillTest : public RabbitMqTest {
 protected:
  void SetUp() override {
    RabbitMqTest::SetUp();
    if (HasFatalFailure()) return;
    dir_ = "/tmp/" + queue_ + ".d";
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    log_ = dir_ + "/daemon.log";
  }
  void TearDown() override {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    RabbitMqTest::TearDown();
    if (!HasFailure()) std::filesystem::remove_all(dir_);
  }

  // Starts foxworkerd with every message of the queue going to `handler`.
  void Spawn(const std::string& handler) {
    const std::string config = dir_ + "/foxworker.yaml";
    std::ofstream(config) << "daemon:\n  state_dir: " << dir_ << "\n  shutdown_timeout: 5s\n"
                          << "plugins:\n  probe:\n    path: " << PROBE_PLUGIN_PATH << "\n"
                          << "backends:\n  rmq:\n    type: rabbitmq\n    url: " << server_->url()
                          << "\n    reconnect_initial: 100ms\n    reconnect_max: 1s\n"
                          << "retry_policies:\n  later:\n    max_attempts: 5\n"
                          << "    backoff: fixed\n    initial: 5s\n    jitter: 0\n"
                          << "queues:\n  work:\n    backend: rmq\n    source: " << queue_
                          << "\n    plugin: probe\n    handler: " << handler
                          << "\n    concurrency: 1\n    prefetch: 4\n    retry_policy: later\n";
    pid_ = SpawnDaemon(config, dir_ + "/unused.record", log_);
    ASSERT_GT(pid_, 0);
  }

  // Waits (at most 20 s) for the daemon to end; its wait status, or -1.
  int Wait() {
    int status = 0;
    for (int i = 0; i < 2000; ++i) {
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return status;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return -1;
  }

  std::string dir_, log_;
  pid_t pid_ = -1;
};

TEST_F(RabbitMqKillTest, MessageIdSurvivesARetryARestartAndAKillNine) {
  // No message_id, headers out of name order (the broker sorts them when it
  // re-encodes a redelivery); the payload is how long probe_hang sleeps.
  amqp_table_entry_t headers[] = {Entry("zulu", Utf8("z")), Entry("alpha", I32(-1))};
  amqp_basic_properties_t p;
  p._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG |
             AMQP_BASIC_HEADERS_FLAG;
  p.delivery_mode = AMQP_DELIVERY_PERSISTENT;
  p.content_type = amqp_cstring_bytes("text/plain");
  p.headers = {2, headers};
  // Declared before the first daemon, so the publish is not lost.
  ASSERT_TRUE(client_->Declare(queue_));
  ASSERT_TRUE(client_->Publish(queue_, "60000", &p));

  auto kill_during = [&](size_t records) {
    ASSERT_TRUE(WaitRecords(records, std::chrono::seconds(30))) << ReadAll(log_);
    ASSERT_EQ(kill(pid_, SIGKILL), 0);
    const int status = Wait();
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  };
  // Run 1: attempt 1 is running when the daemon is killed.
  Spawn("probe_hang");
  kill_during(1);
  // Run 2: the broker's redelivery (x-delivery-count 1) is attempt 2; it
  // fails, and its copy waits 5 s in the retry queue while the daemon stops
  // (SIGTERM).
  Spawn("probe_fail");
  ASSERT_TRUE(WaitFor([&] { return client_->Count(queue_ + "-retry-5s") == 1; },
                      std::chrono::seconds(30)))
      << ReadAll(log_);
  ASSERT_EQ(kill(pid_, SIGTERM), 0);
  int status = Wait();
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status << "\n" << ReadAll(log_);
  ASSERT_EQ(Records().size(), 2u);
  // Run 3 (a restart): the copy comes back to the work queue; attempt 3 is
  // running when the daemon is killed.
  Spawn("probe_hang");
  kill_during(3);
  // Run 4: the copy's redelivery, attempt 4, is acked.
  Spawn("probe");
  ASSERT_TRUE(WaitRecords(4, std::chrono::seconds(30))) << ReadAll(log_);
  ASSERT_TRUE(WaitFor([&] { return client_->Count(queue_) == 0; }, std::chrono::seconds(10)));
  ASSERT_EQ(kill(pid_, SIGTERM), 0);
  status = Wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status << "\n" << ReadAll(log_);

  const auto records = Records();
  ASSERT_EQ(records.size(), 4u);
  const std::string id = records[0].fields.at("id");
  EXPECT_EQ(id.rfind("amqp-", 0), 0u) << id;
  EXPECT_EQ(id.size(), 37u) << id;
  for (size_t i = 0; i < records.size(); ++i) {
    const ProbeRecord& r = records[i];
    EXPECT_EQ(r.attempt, i + 1) << "record " << i;
    EXPECT_EQ(r.fields.at("id"), id) << "attempt " << r.attempt;
    EXPECT_EQ(r.fields.at("payload"), "60000");
    EXPECT_EQ(r.fields.at("content_type"), "text/plain");
    ASSERT_NE(r.Header("zulu"), nullptr);
    EXPECT_EQ(*r.Header("zulu"), "z");
    ASSERT_NE(r.Header("alpha"), nullptr);
    EXPECT_EQ(*r.Header("alpha"), "-1");
    // The copies carry the id as their message_id; the original had none.
    EXPECT_EQ(r.fields.at("message_id"), i < 2 ? "" : id) << "attempt " << r.attempt;
  }
  // The producer's order on the first delivery; sorted by the broker on
  // its redelivery.
  EXPECT_EQ(records[0].headers[0].first, "zulu");
  EXPECT_EQ(records[1].headers[0].first, "alpha");
  EXPECT_EQ(*records[1].Header("x-delivery-count"), "1");
  EXPECT_EQ(*records[3].Header("x-delivery-count"), "1");
  // No timestamp: the enqueued time is when a daemon first received it
  // (run 2, after the kill), carried from then on in x-first-seen-at.
  EXPECT_EQ(records[2].enqueued_at_ms, records[1].enqueued_at_ms);
  EXPECT_EQ(records[3].enqueued_at_ms, records[1].enqueued_at_ms);
  EXPECT_EQ(client_->Count(queue_ + "-dlq"), 0);
}

}  // namespace
}  // namespace foxworker::testing
