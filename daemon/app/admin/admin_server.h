// AdminServer: the HTTP admin endpoint on libevent's evhttp, on its own
// event-loop thread. Read-only endpoints are open to whoever can reach the
// socket (loopback or a unix socket by default); mutating ones need the
// bearer token from `daemon.admin.token_file` and are disabled without one.
//
//   GET  /healthz                        200 "ok"
//   GET  /readyz                         200, or 503 with the reasons (JSON)
//   GET  /metrics                        Prometheus text format 0.0.4
//   GET  /api/v1/queues                  every queue and backend (JSON)
//   GET  /api/v1/queues/{name}           one queue (JSON)
//   POST /api/v1/queues/{name}/pause     stop fetching (running handlers finish)
//   POST /api/v1/queues/{name}/resume
#ifndef FOXWORKER_APP_ADMIN_ADMIN_SERVER_H_
#define FOXWORKER_APP_ADMIN_ADMIN_SERVER_H_

#include <chrono>
#include <cstdint>
#include <string>
#include <thread>

#include "daemon/config/config.h"
#include "daemon/base/status.h"

struct event_base;
struct evhttp;
struct evhttp_request;

namespace foxworker {

class Supervisor;

class AdminServer {
 public:
  // `supervisor` must be started before Start() and outlive Stop(). Pausing
  // goes through its consumers, which are safe for concurrent use.
  AdminServer(AdminConfig config, const Supervisor& supervisor);
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // Reads the token, binds and starts the loop thread. Errors leave nothing
  // running.
  Status Start();
  // Stops the loop, joins the thread, closes the socket. Idempotent.
  void Stop();

  // Where it listens ("127.0.0.1:9090", "unix:/run/..."), after Start().
  const std::string& address() const { return address_; }
  uint16_t port() const { return port_; }

 private:
  static void OnRequest(evhttp_request* req, void* self);
  void Handle(evhttp_request* req);
  void HandleQueueAction(evhttp_request* req, const std::string& queue, const std::string& action);
  // True when the request may mutate; otherwise the refusal was sent.
  bool Authorized(evhttp_request* req);
  Status Bind();

  const AdminConfig config_;
  const Supervisor& supervisor_;
  std::string token_;
  std::string address_;
  uint16_t port_ = 0;
  std::chrono::system_clock::time_point started_;
  event_base* base_ = nullptr;
  evhttp* http_ = nullptr;
  std::thread thread_;
};

}  // namespace foxworker

#endif  // FOXWORKER_APP_ADMIN_ADMIN_SERVER_H_
