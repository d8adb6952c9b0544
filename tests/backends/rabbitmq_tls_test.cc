// amqps:// against the harness broker's TLS listener, which verifies client
// certificates: a daemon with the right CA and a client certificate consumes;
// one that does not trust the broker's certificate refuses to start with the
// reason; one without a client certificate keeps retrying and says why.
#include <gtest/gtest.h>

#include <string>

#include "tests/backends/rabbitmq_test_util.h"

namespace foxworker::testing {
namespace {

class RabbitMqTlsTest : public RabbitMqTest {
 protected:
  void SetUp() override {
    RabbitMqTest::SetUp();
    if (HasFatalFailure()) return;
    if (server_->tls_port() == 0) {
      // Only a broker the harness started has a TLS listener; CI always
      // starts one, so this skip shows only against FOXWORKER_TEST_AMQP_URL.
      GTEST_SKIP() << "the broker in use has no TLS listener";
    }
  }

  // The same daemon as RabbitMqTest::Yaml, connecting over TLS.
  std::string TlsYaml(const std::string& tls) const {
    std::string yaml = Yaml();
    const std::string plain = "url: " + server_->url() + "\n";
    yaml.replace(yaml.find(plain), plain.size(),
                 "url: " + server_->tls_url() + "\n    tls:\n" + tls);
    return yaml;
  }

  BackendState StateOf(Supervisor& sup) { return sup.FindBackend("rmq")->State(); }
};

TEST_F(RabbitMqTlsTest, VerifiedConnectionWithClientCertificateConsumes) {
  daemon_ = StartDaemon(TlsYaml("      ca: " + server_->ca_file() + "\n      cert: " +
                                server_->client_cert() + "\n      key: " +
                                server_->client_key() + "\n      verify: true\n"));
  ASSERT_NE(daemon_, nullptr);
  amqp_basic_properties_t p = TypedProps("probe");
  ASSERT_TRUE(client_->Publish(queue_, "over tls", &p));
  ASSERT_TRUE(WaitRecords(1));
  EXPECT_EQ(Records()[0].fields["payload"], "over tls");
  EXPECT_TRUE(StateOf(*daemon_).connected);
  EXPECT_TRUE(WaitFor([&] { return client_->Count(queue_) == 0; }));
}

TEST_F(RabbitMqTlsTest, UntrustedBrokerCertificateStopsTheStartWithTheReason) {
  auto config = ParseConfigString(
      TlsYaml("      ca: " + server_->other_ca_file() + "\n      cert: " + server_->client_cert() +
              "\n      key: " + server_->client_key() + "\n      verify: true\n"),
      "tls.yaml", "/tmp");
  ASSERT_TRUE(config.ok()) << config.status().message();
  Supervisor sup(std::move(*config));
  Status s = sup.Start();
  ASSERT_FALSE(s.ok()) << "a broker certificate from an untrusted CA was accepted";
  EXPECT_NE(s.message().find("localhost:" + std::to_string(server_->tls_port())),
            std::string::npos)
      << s.message();
  EXPECT_NE(s.message().find("verif"), std::string::npos) << s.message();
  sup.Shutdown();
}

TEST_F(RabbitMqTlsTest, MissingClientCertificateIsRetriedAndReported) {
  daemon_ = StartDaemon(TlsYaml("      ca: " + server_->ca_file() + "\n      verify: true\n"));
  ASSERT_NE(daemon_, nullptr);
  // The broker ends the handshake: not a configuration error the daemon can
  // be sure of (a broker may be mid-rotation), so it retries and says why.
  ASSERT_TRUE(WaitFor([&] { return StateOf(*daemon_).consecutive_failures >= 2; },
                      std::chrono::seconds(15)));
  BackendState st = StateOf(*daemon_);
  EXPECT_FALSE(st.connected);
  EXPECT_NE(st.last_error.find("client certificate"), std::string::npos) << st.last_error;
  EXPECT_NE(st.last_error.find("localhost:" + std::to_string(server_->tls_port())),
            std::string::npos)
      << st.last_error;
  amqp_basic_properties_t p = TypedProps("probe");
  ASSERT_TRUE(client_->Publish(queue_, "waits", &p));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_TRUE(Records().empty());
}

}  // namespace
}  // namespace foxworker::testing
