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
//   GET  /                               the console (daemon/app/admin/console/)
//   POST /login, /logout                 the console's session cookie
//   GET  /api/v1/session|running|history|plugins
//   POST /api/v1/quiet|unquiet
//   GET  /api/v1/queues/{name}/dead[/{id}], /scheduled
//   POST /api/v1/queues/{name}/dead/retry|delete, /dead/{id}/retry, /messages
//   DELETE /api/v1/queues/{name}/dead/{id}
// (docs/operations.md#the-console). Changes need the token (bearer, or the
// session cookie with our Origin and X-Foxworker-Request); backend calls
// run on a worker thread, never on the loop.
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

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "daemon/app/admin/admin_console.h"

#include "daemon/config/config.h"
#include "daemon/base/status.h"

struct bufferevent;
struct event;
struct evbuffer;
struct evbuffer_cb_info;
struct event_base;
struct evhttp;
struct evhttp_connection;
struct evhttp_request;

namespace foxworker {

class Supervisor;
class Backend;
class Inspector;
struct RuntimeSnapshot;

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
  // /api/v1/queues/{queue}/dead..., /scheduled, /messages: answered from the
  // worker thread.
  void HandleInspect(evhttp_request* req, const std::string& queue, const std::string& action);
  void HandleLogin(evhttp_request* req, bool logout);
  void HandleQuiet(evhttp_request* req, bool quiet);
  // The session cookie's value when it names a live session, else "".
  std::string Session(evhttp_request* req);
  // True when the request may mutate; otherwise the refusal was sent.
  bool Authorized(evhttp_request* req);
  // False (and a 421 sent) when a loopback listener gets a Host that is
  // not loopback (DNS rebinding).
  bool HostAllowed(evhttp_request* req);
  Status Bind();

  // An answer computed on the worker thread, sent from the loop thread.
  struct Answer {
    int code = 200;
    std::string body;
  };
  struct Pending;
  // Runs `work` on the worker thread and sends what it returns as the
  // answer to `req` (unless its connection closed meanwhile).
  void Async(evhttp_request* req, std::function<Answer()> work);
  static void OnDone(int, short, void* self);
  static void OnSample(int, short, void* self);
  void WorkerLoop();
  // Worker thread only: the inspector of `backend` in `snap`, opened on
  // first use and reopened when a reload replaced the backend.
  Result<Inspector*> InspectorFor(const RuntimeSnapshot& snap, const std::string& backend);

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
  // The connection whose request Handle() is answering (loop thread).
  Connection* current_ = nullptr;
  bool loopback_ = false;  // a TCP listener on a loopback address

  // Worker thread: inspector calls and enqueues, never on the loop thread.
  std::thread worker_;
  std::mutex work_mu_;
  std::condition_variable work_cv_;
  std::deque<std::function<void()>> work_;  // GUARDED_BY(work_mu_)
  bool work_stop_ = false;                  // GUARDED_BY(work_mu_)
  std::mutex done_mu_;
  std::vector<std::shared_ptr<Pending>> done_;  // GUARDED_BY(done_mu_)
  event* done_event_ = nullptr;
  struct InspectorSlot {
    std::weak_ptr<Backend> backend;  // not kept alive past a reload
    std::unique_ptr<Inspector> inspector;
  };
  std::map<std::string, InspectorSlot> inspectors_;  // worker thread only

  // Loop thread only.
  event* sample_event_ = nullptr;
  ConsoleHistory history_;
  std::map<std::string, std::chrono::steady_clock::time_point> sessions_;  // id -> expiry
  bool quiet_ = false;
  std::set<std::string> quieted_;  // queues the quiet paused (resumed by unquiet)
};

}  // namespace foxworker

#endif  // FOXWORKER_APP_ADMIN_ADMIN_SERVER_H_
