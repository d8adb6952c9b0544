// Fuzzes the admin HTTP layer: the input is sent as is, as one HTTP
// connection's bytes (request line, headers, body), to a real AdminServer
// (evhttp on its own loop thread) in front of a started Supervisor on the
// memory backend, with a token file so pause and resume reach the token
// check. The request line, path and query routing, the headers (the
// Authorization check) and the bodies of the POST endpoints all come from
// the fuzzer; the response must be well-formed HTTP when there is one.
// The server's thread runs the instrumented handler, so its coverage guides
// the fuzzer too.
//
// The daemon has no queue here (a queue needs a plugin, which the fuzz build
// does not build): queue routes answer 404 after their routing and checks.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>

#include "daemon/app/admin/admin_server.h"
#include "daemon/app/builtin_extensions.h"
#include "daemon/app/supervisor.h"
#include "daemon/config/config_parser.h"

namespace {

std::unique_ptr<foxworker::Supervisor> g_supervisor;
std::unique_ptr<foxworker::AdminServer> g_admin;
uint16_t g_port = 0;

[[noreturn]] void Fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "admin_http_fuzzer: %s\n%s\n", what, detail.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  foxworker::RegisterBuiltinExtensions();
  char tmpl[] = "/tmp/foxworker-admin-fuzz-XXXXXX";
  const char* dir = mkdtemp(tmpl);
  if (dir == nullptr) std::abort();
  const std::string token_file = std::string(dir) + "/token";
  std::ofstream(token_file) << "fuzz-token\n";
  auto config = foxworker::ParseConfigString(
      "daemon:\n  worker_threads: 1\nbackends:\n  mem:\n    type: memory\nqueues: {}\n",
      "admin-fuzz.yaml", dir);
  if (!config.ok()) Fail("config", config.status().message());
  g_supervisor = std::make_unique<foxworker::Supervisor>(std::move(*config));
  foxworker::Status s = g_supervisor->Start();
  if (!s.ok()) Fail("supervisor", s.message());
  foxworker::AdminConfig ac;
  ac.listen = "127.0.0.1:0";
  ac.token_file = token_file;
  // Far above the harness's own wait (kAnswerWaitMs): an input that gets
  // no answer until the request timeout closes it is then told apart from
  // a slow answer on a loaded machine.
  ac.request_timeout = foxworker::Duration(120000);
  g_admin = std::make_unique<foxworker::AdminServer>(ac, *g_supervisor);
  s = g_admin->Start();
  if (!s.ok()) Fail("admin server", s.message());
  g_port = g_admin->port();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 16 * 1024) return 0;
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(g_port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    // A signal (libFuzzer's timers) may interrupt a blocking connect; the
    // connection goes on in the background: wait for it and read its result.
    int err = errno;
    if (err == EINTR) {
      pollfd p{fd, POLLOUT, 0};
      int ready;
      while ((ready = poll(&p, 1, 30000)) < 0 && errno == EINTR) {
      }
      socklen_t len = sizeof err;
      err = ready <= 0 ? ETIMEDOUT
                       : (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 ? err : errno);
    }
    if (err != 0) {
      close(fd);
      Fail("connect", std::strerror(err));
    }
  }
  size_t off = 0;
  while (off < size) {
    const ssize_t n = send(fd, data + off, size - off, MSG_NOSIGNAL);
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
  shutdown(fd, SHUT_WR);  // the end of the request: evhttp answers or closes
  std::string response;
  char buf[8192];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    // The request has ended (SHUT_WR): whatever it was, the server answers
    // or closes at once, never only at its request timeout. At once means
    // within 30 s here: a harness at nice 19 on a loaded machine waited over
    // 5 s for a pipelined input that takes 4 ms on an idle one.
    const int ready = poll(&p, 1, 30000);
    if (ready == 0) Fail("neither an answer nor a close within 30 s", response);
    if (ready < 0) break;
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    response.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  // Every response (pipelined requests give several) starts well-formed.
  if (!response.empty()) {
    // evhttp answers with the version it parsed from the request, whatever
    // it was ("HTTP/0.0", and "HTTP/1.-1" for a minor version that overflows
    // libevent's int: libevent's quirk, not ours): "HTTP/<version> NNN".
    const size_t space = response.find(' ');
    if (response.rfind("HTTP/", 0) != 0 || space == std::string::npos || space > 32 ||
        response.size() < space + 4)
      Fail("malformed response", response);
    const int status = std::atoi(response.c_str() + space + 1);
    if (status < 100 || status > 599) Fail("bad status", response);
  }
  return 0;
}
