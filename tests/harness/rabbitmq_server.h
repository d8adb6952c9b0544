// A RabbitMQ broker for integration tests.
//
// Uses $FOXWORKER_TEST_AMQP_URL when set. Otherwise starts a private
// rabbitmq-server node (its own node name, ports, mnesia and log directories
// in a temporary directory, its own Erlang cookie) and stops it at the end;
// a system broker on localhost:5672 is only used when the private node cannot
// start. Only a private node can be controlled (stop_app, start_app,
// close_all_connections).
#ifndef FOXWORKER_TESTS_HARNESS_RABBITMQ_SERVER_H_
#define FOXWORKER_TESTS_HARNESS_RABBITMQ_SERVER_H_

#include <string>
#include <vector>

namespace foxworker::testing {

class RabbitMqServer {
 public:
  // The shared broker, started on first use; nullptr when none could be
  // found or started (the reason is in Error()).
  static RabbitMqServer* Get();
  static const std::string& Error();
  // Stops a private node (registered with atexit by Get()).
  static void StopShared();

  const std::string& url() const { return url_; }
  int port() const { return port_; }
  bool controllable() const { return !node_.empty(); }

  // TLS on a private node: a listener on tls_port() whose certificate (for
  // localhost and 127.0.0.1) is signed by ca_file(); the broker verifies
  // clients and refuses those without a certificate signed by the same CA
  // (client_cert()/client_key()). other_ca_file() is a CA that signed
  // nothing the broker trusts. tls_port() is 0 when TLS is unavailable
  // (a broker not started by the harness, or no openssl tool).
  int tls_port() const { return tls_port_; }
  std::string tls_url() const {
    return "amqps://guest:guest@localhost:" + std::to_string(tls_port_);
  }
  std::string ca_file() const { return dir_ + "/tls/ca.pem"; }
  std::string other_ca_file() const { return dir_ + "/tls/other-ca.pem"; }
  std::string client_cert() const { return dir_ + "/tls/client.pem"; }
  std::string client_key() const { return dir_ + "/tls/client.key"; }

  // Runs `rabbitmqctl -n NODE args...`; returns its exit code and fills
  // `output` (stdout and stderr) when given. REQUIRES: controllable().
  int Ctl(const std::vector<std::string>& args, std::string* output = nullptr) const;

 private:
  bool StartPrivateNode(std::string* error);
  // Writes the CA, server and client certificates and the broker's TLS
  // listener config; false (TLS left off) when openssl fails.
  bool PrepareTls(std::string* error);
  void StopPrivateNode();

  std::string url_;
  int port_ = 0;
  int tls_port_ = 0;
  std::string node_;  // empty: not ours
  std::string dir_;
  int server_pid_ = -1;
};

// Runs `argv` with `env` added to the environment; returns the exit code
// (-1 when it could not run) and its output.
int RunCommand(const std::vector<std::string>& argv, const std::vector<std::string>& env,
               std::string* output);

}  // namespace foxworker::testing

#endif  // FOXWORKER_TESTS_HARNESS_RABBITMQ_SERVER_H_
