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
//
// Every connection has a deadline (`daemon.admin.request_timeout`, 10 s by
// default): the whole request, headers and body, must arrive within it,
// counted from accept or from the previous answer on a kept-alive
// connection; otherwise the connection is closed. libevent's own timeout is
// one of inactivity, which a client sending a byte a second never trips.
// Every error answer is JSON {"error": "..."}, including the ones libevent
// writes itself (400 for a malformed request or oversized headers, 413 for
// an oversized body, 417, 501): their HTML is rewritten before it reaches
// the socket.
#ifndef FOXWORKER_APP_ADMIN_ADMIN_SERVER_H_
#define FOXWORKER_APP_ADMIN_ADMIN_SERVER_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>

#include "daemon/config/config.h"
#include "daemon/base/status.h"

struct bufferevent;
struct evbuffer;
struct evbuffer_cb_info;
struct event_base;
struct evhttp;
struct evhttp_connection;
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

  // True for a TCP listen address other hosts can reach: a wildcard
  // (0.0.0.0, [::]) or any IP that is not loopback. False for loopback and
  // unix sockets.
  static bool ReachableFromOtherHosts(const std::string& listen);

 private:
  // One accepted connection: its deadline and the check of what libevent
  // writes to it. Lives from accept until libevent closes the connection.
  struct Connection;
  static bufferevent* OnNewConnection(event_base* base, void* self);
  static void OnAttach(int, short, void* conn);
  static void OnDeadline(int, short, void* conn);
  static void OnCheckOutput(int, short, void* conn);
  static void OnClosed(evhttp_connection* evcon, void* conn);
  // The connection's output buffer got data: have OnCheckOutput look at it
  // once the whole answer is queued, before it is written.
  static void OnOutputQueued(evbuffer* out, const evbuffer_cb_info* info, void* conn);
  // Forgets the connection (libevent closed it or is about to).
  void Drop(Connection* conn);
  void ArmDeadline(Connection* conn);

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
  // Open connections by their bufferevent; touched on the loop thread only
  // (and by Stop() after it joined).
  std::unordered_map<bufferevent*, std::unique_ptr<Connection>> connections_;
};

}  // namespace foxworker

#endif  // FOXWORKER_APP_ADMIN_ADMIN_SERVER_H_
