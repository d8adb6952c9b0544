#include "tests/harness/redis_server.h"

#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <thread>

extern char** environ;

namespace foxworker::testing {
namespace {

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

std::string FindRedisServer() {
  for (const char* dir : {"/usr/bin", "/usr/sbin", "/usr/local/bin"}) {
    std::string p = std::string(dir) + "/redis-server";
    if (access(p.c_str(), X_OK) == 0) return p;
  }
  return "redis-server";
}

RedisBackendOptions OptionsFor(int port) {
  RedisBackendOptions o;
  o.host = "127.0.0.1";
  o.port = port;
  o.connect_timeout = std::chrono::milliseconds(1000);
  o.command_timeout = std::chrono::milliseconds(10000);
  return o;
}

}  // namespace

RedisServer::~RedisServer() {
  Stop();
  if (!dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
}

Status RedisServer::Start() {
  char tmpl[] = "/tmp/foxworker-redis-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return Status::IoError(std::string("mkdtemp: ") + strerror(errno));
  dir_ = tmpl;
  Status s;
  for (int i = 0; i < 5; ++i) {  // another process may take the port first
    port_ = FreePort();
    s = Launch();
    if (s.ok()) return s;
  }
  return s;
}

Status RedisServer::Launch() {
  std::string bin = FindRedisServer();
  std::string port = std::to_string(port_);
  std::string log = dir_ + "/redis.log";
  std::vector<std::string> args = {bin,          "--port",       port,       "--bind",
                                   "127.0.0.1",  "--dir",        dir_,       "--appendonly",
                                   "yes",        "--appendfsync", "everysec", "--save",
                                   "",           "--daemonize",  "no",       "--logfile",
                                   log,          "--protected-mode", "no"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_ = fork();
  if (pid_ < 0) {
    pid_ = -1;
    return Status::IoError(std::string("fork: ") + strerror(errno));
  }
  if (pid_ == 0) {
    // Dies with the test process, even when that one crashes or is killed.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execve(bin.c_str(), argv.data(), environ);
    _exit(127);
  }
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < end) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return Status::IoError("redis-server exited at start; see " + log);
    }
    auto conn = RedisConnection::Connect(OptionsFor(port_), "foxworker-test-harness");
    if (conn.ok()) {
      auto pong = (*conn)->Run({"PING"});
      if (pong.ok() && ReplyText(pong->get()) == "PONG") {
        conn_ = std::move(*conn);
        return Status::Ok();
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  Stop();
  return Status::IoError("redis-server on port " + port + " did not answer within 10 s");
}

void RedisServer::Stop() {
  conn_.reset();
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
}

Status RedisServer::Restart() {
  Stop();
  return Launch();
}

RedisReplyPtr RedisServer::Command(const std::vector<std::string>& args) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (conn_ == nullptr) {
      auto conn = RedisConnection::Connect(OptionsFor(port_), "foxworker-test-harness");
      if (!conn.ok()) {
        ADD_FAILURE() << conn.status().message();
        return nullptr;
      }
      conn_ = std::move(*conn);
    }
    auto reply = conn_->Run(args);
    if (reply.ok()) return std::move(*reply);
    conn_.reset();
  }
  ADD_FAILURE() << "redis command " << args[0] << " failed twice";
  return nullptr;
}

void RedisServer::Pipeline(const std::vector<RedisCommand>& commands) {
  if (Command({"PING"}) == nullptr) return;  // (re)connects
  std::vector<RedisReplyPtr> replies;
  Status s = conn_->Pipeline(commands, &replies);
  if (!s.ok()) {
    conn_.reset();
    ADD_FAILURE() << s.message();
    return;
  }
  for (const auto& r : replies) {
    if (IsError(r.get())) {
      ADD_FAILURE() << ReplyText(r.get());
      return;
    }
  }
}

long long RedisServer::Integer(const std::vector<std::string>& args) {
  RedisReplyPtr r = Command(args);
  return r != nullptr && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
}

long long RedisServer::PendingCount(const std::string& stream, const std::string& group) {
  RedisReplyPtr r = Command({"XPENDING", stream, group});
  if (r == nullptr || r->type != REDIS_REPLY_ARRAY || r->elements < 1) return -1;
  return r->element[0]->integer;
}

}  // namespace foxworker::testing
