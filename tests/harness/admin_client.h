// A GET over the real daemon's unix admin socket (daemon.admin.listen:
// unix:PATH), for tests that read /readyz, /metrics or /api/v1/queues.
#ifndef FOXWORKER_TESTS_HARNESS_ADMIN_CLIENT_H_
#define FOXWORKER_TESTS_HARNESS_ADMIN_CLIENT_H_

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace foxworker::testing {

struct Http {
  int status = 0;  // 0: no answer (not listening yet, or gone)
  std::string body;
};

// GET over the daemon's unix admin socket.
inline Http Get(const std::string& socket_path, const std::string& path) {
  Http r;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::snprintf(a.sun_path, sizeof a.sun_path, "%s", socket_path.c_str());
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return r;
  }
  std::string req = "GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  if (write(fd, req.data(), req.size()) != static_cast<ssize_t>(req.size())) {
    close(fd);
    return r;
  }
  std::string all;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) all.append(buf, static_cast<size_t>(n));
  close(fd);
  if (all.size() > 12) r.status = std::atoi(all.substr(9, 3).c_str());
  auto body = all.find("\r\n\r\n");
  if (body != std::string::npos) r.body = all.substr(body + 4);
  return r;
}

}  // namespace foxworker::testing

#endif  // FOXWORKER_TESTS_HARNESS_ADMIN_CLIENT_H_
