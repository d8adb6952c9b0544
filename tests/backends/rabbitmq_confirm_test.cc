// Publisher confirms gate the ack of the original: when the broker nacks the
// dead-letter copy (here a policy makes the DLQ refuse every publish), the
// original stays unacked and is redelivered after a growing delay; once the
// DLQ takes copies again, the message is dead-lettered once and nothing is
// lost.
#include <gtest/gtest.h>

#include <string>

#include "daemon/backends/rabbitmq/amqp_message_codec.h"
#include "daemon/backends/rabbitmq/rabbitmq_backend.h"
#include "tests/backends/rabbitmq_test_util.h"

namespace foxworker::testing {
namespace {

class RabbitMqConfirmTest : public RabbitMqTest {
 protected:
  void SetUp() override {
    RabbitMqTest::SetUp();
    if (HasFatalFailure()) return;
    if (!server_->controllable()) GTEST_SKIP() << "needs rabbitmqctl on a private broker node";
    policy_ = "foxw-refuse-" + queue_;
  }

  void TearDown() override {
    if (server_ != nullptr && server_->controllable()) server_->Ctl({"clear_policy", policy_});
    RabbitMqTest::TearDown();
  }

  // Every publish to `queue` is nacked by the broker.
  void RefusePublishesTo(const std::string& queue) {
    std::string out;
    ASSERT_EQ(server_->Ctl({"set_policy", "--apply-to", "queues", policy_, "^" + queue + "$",
                            R"({"max-length":0,"overflow":"reject-publish"})"},
                           &out),
              0)
        << out;
  }

  std::string policy_;
};

TEST_F(RabbitMqConfirmTest, NackedDeadLetterCopyLeavesTheOriginalQueued) {
  daemon_ = StartDaemon(Yaml(1, 1, /*max_attempts=*/50));
  ASSERT_NE(daemon_, nullptr);
  auto* backend = static_cast<RabbitMqBackend*>(daemon_->FindBackend("rmq"));
  // The DLQ as the daemon declares it, holding one message: a quorum queue
  // refuses publishes once it is over its limit, not at it.
  ASSERT_TRUE(client_->Declare(queue_ + "-dlq"));
  ASSERT_TRUE(client_->Publish(queue_ + "-dlq", "filler", nullptr));
  RefusePublishesTo(queue_ + "-dlq");

  amqp_basic_properties_t p = TypedProps("probe_reject");
  p._flags |= AMQP_BASIC_MESSAGE_ID_FLAG;
  p.message_id = amqp_cstring_bytes("nack-1");
  ASSERT_TRUE(client_->Publish(queue_, "keep me", &p));
  // Rejected, its dead-letter copy nacked, the original requeued and handled
  // again: the message is never acked without a confirmed copy.
  ASSERT_TRUE(WaitFor([&] { return backend->GetCounters().confirm_failures >= 2; },
                      std::chrono::seconds(20)));
  ASSERT_GE(Records().size(), 2u);
  // Requeued after a growing delay (0.5 s, 1 s, 2 s...), not at once: the
  // handler is not spun against a broker that keeps refusing.
  const size_t before = Records().size();
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_LE(Records().size(), before + 2);
  for (const auto& r : Records()) EXPECT_EQ(r.fields.at("id"), "nack-1");
  EXPECT_EQ(client_->Count(queue_ + "-dlq"), 1);  // the filler alone

  // The DLQ takes copies again (a quorum queue leaves its refusing state
  // once it is under a limit, so the filler goes and the limit is raised):
  // one copy lands, the original goes.
  ASSERT_EQ(client_->Get(queue_ + "-dlq")->body, "filler");
  std::string out;
  ASSERT_EQ(server_->Ctl({"set_policy", "--apply-to", "queues", policy_,
                          "^" + queue_ + "-dlq$", R"({"max-length":1000})"},
                         &out),
            0)
      << out;
  ASSERT_TRUE(WaitFor([&] { return client_->Count(queue_ + "-dlq") == 1; },
                      std::chrono::seconds(20)));
  daemon_->Shutdown();
  daemon_.reset();
  EXPECT_EQ(client_->Count(queue_), 0);
  EXPECT_EQ(client_->Count(queue_ + "-dlq"), 1);
  auto m = client_->Get(queue_ + "-dlq");
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(BytesToString(m->raw.properties.message_id), "nack-1");
}

}  // namespace
}  // namespace foxworker::testing
