// 20,000 persistent messages while the broker is stopped and started twice
// and the daemon's connection is force-closed once: every message is handled
// at least once and the queue ends empty.
#include <algorithm>
#include <fstream>
#include <set>
#include <thread>

#include "daemon/backends/rabbitmq/rabbitmq_backend.h"
#include "tests/backends/rabbitmq_test_util.h"

namespace foxworker::testing {
namespace {

constexpr int kMessages = 20000;

std::vector<std::string> ReadLines(const std::string& path) {
  std::vector<std::string> lines;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

TEST_F(RabbitMqTest, SurvivesBrokerRestartsAndForcedCloses) {
  if (!server_->controllable()) GTEST_SKIP() << "needs rabbitmqctl on a private node";
  const std::string record_file = "/tmp/" + queue_ + ".record";
  unlink(record_file.c_str());
  setenv("FOXWORKER_TEST_RECORD_FILE", record_file.c_str(), 1);
  ASSERT_TRUE(client_->Declare(queue_));
  for (int i = 0; i < kMessages; ++i) {
    amqp_basic_properties_t p = TypedProps("record");
    std::string id = "m-" + std::to_string(i);
    p._flags |= AMQP_BASIC_MESSAGE_ID_FLAG;
    p.message_id = amqp_cstring_bytes(id.c_str());
    ASSERT_TRUE(client_->PublishAsync(queue_, "2000", p));  // the handler sleeps 2 ms
    if (i % 1000 == 999) {
      ASSERT_TRUE(client_->WaitConfirms());
    }
  }
  ASSERT_TRUE(client_->WaitConfirms());
  client_.reset();  // the faults close every connection

  std::ostringstream y;
  y << "daemon:\n  worker_threads: 4\n  shutdown_timeout: 10s\n"
    << "plugins:\n  test:\n    path: " << TestPluginPath() << "\n"
    << "backends:\n  rmq:\n    type: rabbitmq\n    url: " << server_->url() << "\n"
    << "    heartbeat: 5s\n    reconnect_initial: 100ms\n    reconnect_max: 1s\n"
    << "queues:\n  work:\n    backend: rmq\n    source: " << queue_ << "\n"
    << "    plugin: test\n    concurrency: 4\n    prefetch: 100\n";
  daemon_ = StartDaemon(y.str());
  ASSERT_NE(daemon_, nullptr);
  auto* backend = static_cast<RabbitMqBackend*>(daemon_->FindBackend("rmq"));
  auto handled = [&] { return ReadLines(record_file).size(); };
  // At most every message: on a loaded machine the broker's restart can
  // leave fewer than the step to handle after the next fault.
  auto wait_progress = [&](size_t step_to) {
    const size_t n = std::min<size_t>(step_to, kMessages);
    ASSERT_TRUE(WaitFor([&] { return handled() >= n; }, std::chrono::seconds(90)))
        << "stuck at " << handled() << " handled; backend: " << backend->State().last_error;
  };
  auto ctl = [&](const std::vector<std::string>& args) {
    std::string out;
    ASSERT_EQ(server_->Ctl(args, &out), 0) << out;
  };

  wait_progress(3000);
  ctl({"stop_app"});
  std::this_thread::sleep_for(std::chrono::seconds(1));
  EXPECT_FALSE(backend->State().connected);
  ctl({"start_app"});
  ctl({"await_startup"});

  wait_progress(handled() + 1500);
  ctl({"close_all_connections", "fault test"});

  wait_progress(handled() + 1500);
  ctl({"stop_app"});
  std::this_thread::sleep_for(std::chrono::seconds(1));
  ctl({"start_app"});
  ctl({"await_startup"});

  std::set<std::string> unique;
  ASSERT_TRUE(WaitFor(
      [&] {
        auto lines = ReadLines(record_file);
        unique.insert(lines.begin(), lines.end());
        return unique.size() >= static_cast<size_t>(kMessages);
      },
      std::chrono::seconds(120)))
      << unique.size() << " of " << kMessages << " handled";
  client_ = std::make_unique<AmqpTestClient>(server_->url());
  ASSERT_TRUE(client_->ok());
  EXPECT_TRUE(WaitFor([&] { return client_->Count(queue_) == 0; }, std::chrono::seconds(30)));
  EXPECT_EQ(client_->Count(queue_ + "-dlq"), 0);
  for (int i = 0; i < kMessages; ++i) ASSERT_EQ(unique.count("m-" + std::to_string(i)), 1u) << i;
  const size_t total = ReadLines(record_file).size();
  const BackendState state = backend->State();
  const auto counters = backend->GetCounters();
  std::printf("fault test: handled %zu, unique %zu, duplicates %zu, reconnects %llu "
              "(connections %llu), dropped settlements %llu\n",
              total, unique.size(), total - unique.size(),
              static_cast<unsigned long long>(state.reconnects),
              static_cast<unsigned long long>(counters.connections),
              static_cast<unsigned long long>(counters.dropped_settlements));
  EXPECT_TRUE(state.connected);
  EXPECT_GE(counters.connections, 4u);  // the first + one after each fault
  unlink(record_file.c_str());
}

}  // namespace
}  // namespace foxworker::testing
