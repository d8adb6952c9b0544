// RedisServer: a real redis-server for integration tests, on a free port in
// a temporary directory, with `appendonly yes`. Never a system service.
#ifndef FOXWORKER_TESTS_HARNESS_REDIS_SERVER_H_
#define FOXWORKER_TESTS_HARNESS_REDIS_SERVER_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "daemon/backends/redis/redis_connection.h"
#include "daemon/base/status.h"

namespace foxworker::testing {

class RedisServer {
 public:
  RedisServer() = default;
  // Stops the server and removes its directory.
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  // Starts redis-server (from PATH, /usr/bin or /usr/sbin) on a free port and
  // waits until it answers PING (at most 10 s).
  Status Start();
  // SIGTERM (Redis writes and fsyncs its AOF) and wait for the exit.
  void Stop();
  // Stop, then start again on the same port and directory (AOF reloaded).
  Status Restart();

  int port() const { return port_; }
  const std::string& dir() const { return dir_; }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_) + "/0"; }

  // Runs one command on the harness's own connection (reconnecting if the
  // server restarted). Fails the test on a connection error.
  RedisReplyPtr Command(const std::vector<std::string>& args);
  // Sends many commands pipelined; fails the test on an error reply.
  void Pipeline(const std::vector<RedisCommand>& commands);
  // Shorthands: an integer reply (or -1), and XPENDING's count.
  long long Integer(const std::vector<std::string>& args);
  long long PendingCount(const std::string& stream, const std::string& group);

 private:
  Status Launch();

  pid_t pid_ = -1;
  int port_ = 0;
  std::string dir_;
  std::unique_ptr<RedisConnection> conn_;
};

}  // namespace foxworker::testing

#endif  // FOXWORKER_TESTS_HARNESS_REDIS_SERVER_H_
