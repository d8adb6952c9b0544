#include "tests/harness/rabbitmq_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <thread>

extern char** environ;

namespace foxworker::testing {
namespace {

std::string g_error;
std::unique_ptr<RabbitMqServer> g_server;
bool g_tried = false;

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof(a);
  int port = -1;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  close(fd);
  return port;
}

bool PortOpen(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  close(fd);
  return ok;
}

std::string Tool(const std::string& name) {
  std::string debian = "/usr/lib/rabbitmq/bin/" + name;
  if (access(debian.c_str(), X_OK) == 0) return debian;
  return name;  // from PATH
}

pid_t Spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env, int out_fd) {
  std::vector<std::string> envs;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string kv = *e;
    bool overridden = false;
    for (const auto& o : env)
      if (kv.substr(0, kv.find('=') + 1) == o.substr(0, o.find('=') + 1)) overridden = true;
    if (!overridden) envs.push_back(kv);
  }
  for (const auto& o : env) envs.push_back(o);
  std::vector<char*> cargv, cenv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  for (const auto& e : envs) cenv.push_back(const_cast<char*>(e.c_str()));
  cenv.push_back(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    setsid();  // its own process group, so the whole node can be killed
    int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, 0);
    dup2(out_fd, 1);
    dup2(out_fd, 2);
    execvpe(cargv[0], cargv.data(), cenv.data());
    _exit(127);
  }
  return pid;
}

}  // namespace

int RunCommand(const std::vector<std::string>& argv, const std::vector<std::string>& env,
               std::string* output) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  pid_t pid = Spawn(argv, env, fds[1]);
  close(fds[1]);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) < 0) return -1;
  if (output) *output = out;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

RabbitMqServer* RabbitMqServer::Get() {
  if (g_tried) return g_server.get();
  g_tried = true;
  auto server = std::make_unique<RabbitMqServer>();
  if (const char* url = std::getenv("FOXWORKER_TEST_AMQP_URL"); url != nullptr && *url) {
    server->url_ = url;
    g_server = std::move(server);
    return g_server.get();
  }
  std::string error;
  if (server->StartPrivateNode(&error)) {
    g_server = std::move(server);
    std::atexit(&RabbitMqServer::StopShared);
    return g_server.get();
  }
  if (PortOpen(5672)) {
    std::cerr << "rabbitmq harness: private node failed (" << error
              << "); using the broker on localhost:5672\n";
    server->url_ = "amqp://guest:guest@localhost:5672";
    server->port_ = 5672;
    g_server = std::move(server);
    return g_server.get();
  }
  g_error = error;
  return nullptr;
}

const std::string& RabbitMqServer::Error() { return g_error; }

void RabbitMqServer::StopShared() {
  if (g_server) g_server->StopPrivateNode();
}

int RabbitMqServer::Ctl(const std::vector<std::string>& args, std::string* output) const {
  std::vector<std::string> argv = {Tool("rabbitmqctl"), "-n", node_};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv, {"HOME=" + dir_}, output);
}

bool RabbitMqServer::PrepareTls(std::string* error) {
  const std::string tls = dir_ + "/tls";
  std::filesystem::create_directories(tls);
  auto run = [&](const std::vector<std::string>& argv) {
    std::string out;
    if (RunCommand(argv, {}, &out) == 0) return true;
    *error = argv[0] + " " + argv[1] + " failed: " + out;
    return false;
  };
  auto ca = [&](const std::string& name, const std::string& cn) {
    return run({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                "/CN=" + cn, "-keyout", tls + "/" + name + ".key", "-out",
                tls + "/" + name + ".pem"});
  };
  auto leaf = [&](const std::string& name, const std::string& cn, const std::string& ext) {
    std::ofstream(tls + "/" + name + ".ext") << ext << "\n";
    return run({"openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=" + cn,
                "-keyout", tls + "/" + name + ".key", "-out", tls + "/" + name + ".csr"}) &&
           run({"openssl", "x509", "-req", "-in", tls + "/" + name + ".csr", "-CA",
                tls + "/ca.pem", "-CAkey", tls + "/ca.key", "-CAcreateserial", "-days", "2",
                "-extfile", tls + "/" + name + ".ext", "-out", tls + "/" + name + ".pem"});
  };
  if (!ca("ca", "foxworker test CA") || !ca("other-ca", "foxworker other CA") ||
      !leaf("server", "localhost",
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth") ||
      !leaf("client", "foxworker-client", "extendedKeyUsage=clientAuth")) {
    return false;
  }
  tls_port_ = FreePort();
  std::ofstream conf(dir_ + "/rabbitmq.conf");
  conf << "listeners.ssl.default = 127.0.0.1:" << tls_port_ << "\n"
       << "ssl_options.cacertfile = " << tls << "/ca.pem\n"
       << "ssl_options.certfile = " << tls << "/server.pem\n"
       << "ssl_options.keyfile = " << tls << "/server.key\n"
       << "ssl_options.verify = verify_peer\n"
       << "ssl_options.fail_if_no_peer_cert = true\n";
  return static_cast<bool>(conf);
}

bool RabbitMqServer::StartPrivateNode(std::string* error) {
  char tmpl[] = "/tmp/foxworker-rabbitmq-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) {
    *error = std::string("mkdtemp: ") + strerror(errno);
    return false;
  }
  dir_ = tmpl;
  port_ = FreePort();
  int dist_port = FreePort();
  while (dist_port == port_) dist_port = FreePort();
  node_ = "foxw-test-" + std::to_string(getpid()) + "@localhost";
  if (std::string tls_error; !PrepareTls(&tls_error)) {
    std::cerr << "rabbitmq harness: no TLS listener: " << tls_error << "\n";
    tls_port_ = 0;
    std::filesystem::remove(dir_ + "/rabbitmq.conf");
  }
  // epmd is shared by every Erlang node of the host; -daemon is a no-op
  // when one already runs.
  RunCommand({"epmd", "-daemon"}, {}, nullptr);
  std::vector<std::string> env = {
      "HOME=" + dir_,
      "RABBITMQ_NODENAME=" + node_,
      "RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
      "RABBITMQ_NODE_PORT=" + std::to_string(port_),
      "RABBITMQ_DIST_PORT=" + std::to_string(dist_port),
      "RABBITMQ_MNESIA_BASE=" + dir_ + "/mnesia",
      "RABBITMQ_LOG_BASE=" + dir_ + "/log",
      "RABBITMQ_PID_FILE=" + dir_ + "/rabbitmq.pid",
      "RABBITMQ_ENABLED_PLUGINS_FILE=" + dir_ + "/enabled_plugins",
      "RABBITMQ_CONFIG_FILE=" + dir_ + "/rabbitmq",
      "RABBITMQ_ADVANCED_CONFIG_FILE=" + dir_ + "/advanced.config",
      "RABBITMQ_CONF_ENV_FILE=" + dir_ + "/rabbitmq-env.conf",
  };
  std::string log = dir_ + "/server.out";
  int out = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  server_pid_ = Spawn({Tool("rabbitmq-server")}, env, out);
  close(out);
  if (server_pid_ < 0) {
    *error = "cannot start rabbitmq-server";
    node_.clear();
    return false;
  }
  url_ = "amqp://guest:guest@127.0.0.1:" + std::to_string(port_);  // no "/": vhost "/"
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(server_pid_, &status, WNOHANG) == server_pid_) {
      server_pid_ = -1;
      *error = "rabbitmq-server exited during startup; see " + log;
      node_.clear();
      return false;
    }
    // await_startup fails at once while the node is not registered yet.
    if (Ctl({"await_startup", "--timeout", "60"}) == 0 && PortOpen(port_) &&
        (tls_port_ == 0 || PortOpen(tls_port_))) {
      std::cerr << "rabbitmq harness: started node " << node_ << " on port " << port_ << " in "
                << dir_ << "\n";
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  *error = "rabbitmq-server did not start within 120 s; see " + log;
  StopPrivateNode();
  node_.clear();
  return false;
}

void RabbitMqServer::StopPrivateNode() {
  if (server_pid_ > 0) {
    Ctl({"shutdown"});
    int status = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (waitpid(server_pid_, &status, WNOHANG) != server_pid_) {
      if (std::chrono::steady_clock::now() >= deadline) {
        kill(-server_pid_, SIGKILL);
        waitpid(server_pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    server_pid_ = -1;
  }
  if (!dir_.empty() && std::getenv("FOXWORKER_TEST_KEEP_RABBITMQ_DIR") == nullptr) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
}

}  // namespace foxworker::testing
