#include "daemon/app/admin/admin_server.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <strings.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string_view>

#include <glog/logging.h>

#include "daemon/app/admin/admin_render.h"
#include "daemon/base/crash_stack.h"
#include "daemon/config/listen_address.h"
#include "daemon/app/supervisor.h"

namespace foxworker {
namespace {

constexpr char kQueuesPrefix[] = "/api/v1/queues";
constexpr size_t kMaxHeaders = 8192;
constexpr size_t kMaxBody = 4096;

void Reply(evhttp_request* req, int code, const char* reason, const std::string& body,
           const char* content_type = "application/json") {
  evkeyvalq* headers = evhttp_request_get_output_headers(req);
  evhttp_add_header(headers, "Content-Type", content_type);
  evhttp_add_header(headers, "Cache-Control", "no-store");
  evbuffer* buf = evbuffer_new();
  if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
    // libevent 2.1 would send the body after a HEAD answer's headers (and
    // leave Content-Length out), which a kept-alive client reads as the
    // start of the next answer.
    evhttp_add_header(headers, "Content-Length", std::to_string(body.size()).c_str());
  } else {
    evbuffer_add(buf, body.data(), body.size());
  }
  evhttp_send_reply(req, code, reason, buf);
  evbuffer_free(buf);
}

void ReplyError(evhttp_request* req, int code, const char* reason, const std::string& message) {
  Reply(req, code, reason, RenderErrorJson(message));
}

void MethodNotAllowed(evhttp_request* req, const char* allow) {
  evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
  ReplyError(req, 405, "Method Not Allowed", std::string("method not allowed; use ") + allow);
}

// Compares without an early exit, so timing does not reveal how much of a
// guess was right (only whether its length was).
bool SameSecret(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

timeval ToTimeval(Duration d) {
  timeval tv;
  tv.tv_sec = static_cast<time_t>(d.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>(d.count() % 1000 * 1000);
  return tv;
}

// What a libevent-generated error page says, as our JSON message.
std::string LibeventErrorMessage(int code) {
  switch (code) {
    // libevent says 400 for headers over the limit too, and 413 for a
    // malformed chunk of a chunked body.
    case 400:
      return "malformed HTTP request, or headers over " + std::to_string(kMaxHeaders / 1024) +
             " KiB";
    case 413:
      return "request body over " + std::to_string(kMaxBody / 1024) +
             " KiB, or a malformed chunk";
    case 417: return "unsupported Expect header (only 100-continue is understood)";
    case 501: return "method not implemented";
    default: return "HTTP error " + std::to_string(code);
  }
}

bool EqualsNoCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

// libevent answers malformed or oversized requests itself, with an HTML page
// (evhttp_send_error: Content-Type text/html, Connection: close), and 2.1
// has no hook to change it. It writes such a page whole into the
// connection's output buffer, which is only written to the socket from a
// later event; so this runs in between and, when `out` ends with such a page
// (our own answers are never text/html), replaces it by the same status and
// headers with a JSON {"error": ...} body. What is in front of it (a
// "100 Continue", or the answers to earlier pipelined requests, which the
// page follows: the connection closes after it) is kept.
bool RewriteErrorPageAt(const std::string& text, size_t start, std::string* out) {
  if (text.compare(start, 7, "HTTP/1.") != 0 || text.size() < start + 12) return false;
  const size_t head_end = text.find("\r\n\r\n", start);
  if (head_end == std::string::npos) return false;
  const int code = atoi(text.c_str() + start + 9);
  if (code < 400 || code > 599) return false;
  size_t line_end = text.find("\r\n", start);
  std::string head = text.substr(start, line_end - start) + "\r\n";  // the status line
  bool html = false;
  long content_length = -1;
  for (size_t pos = line_end + 2; pos < head_end + 2;) {
    size_t eol = text.find("\r\n", pos);
    std::string_view line(text.data() + pos, eol - pos);
    pos = eol + 2;
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) return false;
    std::string_view name = line.substr(0, colon), value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    if (EqualsNoCase(name, "Content-Type")) {
      html = EqualsNoCase(value, "text/html");
      continue;
    }
    if (EqualsNoCase(name, "Content-Length")) {
      content_length = atol(std::string(value).c_str());
      continue;
    }
    head.append(line.data(), line.size()).append("\r\n");
  }
  const size_t body = text.size() - (head_end + 4);
  // libevent 2.1 leaves Content-Length out for HTTP/1.0 and HEAD requests
  // (and sends the page anyway; the connection closes after it). With one,
  // a partial body means the page was not written at once: leave it. A page
  // with a body starts "<HTML>".
  if (!html || (content_length >= 0 && body != 0 && body != static_cast<size_t>(content_length)))
    return false;
  if (body != 0 && text.compare(head_end + 4, 6, "<HTML>") != 0) return false;
  const std::string json = RenderErrorJson(LibeventErrorMessage(code));
  head += "Content-Type: application/json\r\nCache-Control: no-store\r\nContent-Length: " +
          std::to_string(json.size()) + "\r\n\r\n";
  if (body != 0 || content_length < 0) head += json;
  *out = std::move(head);
  return true;
}

void RewriteTail(evbuffer* out, size_t len) {
  constexpr size_t kMaxPage = 4096;  // libevent's pages are a few hundred bytes
  // The last kMaxPage bytes: the page, if there is one, is at the end.
  const size_t tail = std::min(len, kMaxPage);
  evbuffer_ptr from;
  if (evbuffer_ptr_set(out, &from, len - tail, EVBUFFER_PTR_SET) != 0) return;
  std::string text(tail, '\0');
  if (evbuffer_copyout_from(out, &from, text.data(), tail) != static_cast<ev_ssize_t>(tail)) return;
  std::string replacement;
  for (size_t pos = text.rfind("HTTP/1."); pos != std::string::npos;
       pos = pos == 0 ? std::string::npos : text.rfind("HTTP/1.", pos - 1)) {
    if (!RewriteErrorPageAt(text, pos, &replacement)) continue;
    const size_t keep = len - tail + pos;
    evbuffer* front = evbuffer_new();
    if (front == nullptr) return;
    evbuffer_remove_buffer(out, front, keep);
    evbuffer_drain(out, evbuffer_get_length(out));
    evbuffer_add_buffer(out, front);
    evbuffer_free(front);
    evbuffer_add(out, replacement.data(), replacement.size());
    return;
  }
}

void RewriteLibeventErrorPage(evbuffer* out) {
  const size_t len = evbuffer_get_length(out);
  if (len < 12) return;
  // A socket bufferevent freezes its output's front after every write (and
  // unfreezes it only to write), so that nothing else drains it: behind an
  // earlier answer on a kept-alive connection, reading or draining it fails
  // unless we do the same.
  char probe;
  const bool frozen = evbuffer_copyout(out, &probe, 1) < 0;
  if (frozen) evbuffer_unfreeze(out, 1);
  RewriteTail(out, len);
  if (frozen) evbuffer_freeze(out, 1);
}

bool ValidName(const std::string& name) {
  if (name.empty()) return false;
  for (char c : name)
    if (!isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.' && c != ':')
      return false;
  return true;
}

}  // namespace

struct AdminServer::Connection {
  AdminServer* server = nullptr;
  bufferevent* bev = nullptr;
  // Set by OnAttach; until then we hold a reference on `bev`.
  evhttp_connection* evcon = nullptr;
  event* attach = nullptr;
  event* deadline = nullptr;
  event* check_output = nullptr;
  evbuffer_cb_entry* output_cb = nullptr;
  bool holds_ref = true;
  bool check_pending = false;
  bool rewriting = false;
};

AdminServer::AdminServer(AdminConfig config, const Supervisor& supervisor)
    : config_(std::move(config)), supervisor_(supervisor) {}

bool AdminServer::ReachableFromOtherHosts(const std::string& listen) {
  Result<ListenAddress> a = ParseListenAddress(listen);
  if (!a.ok() || !a->unix_path.empty()) return false;
  in_addr v4;
  in6_addr v6;
  if (inet_pton(AF_INET, a->host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) != 127;
  if (inet_pton(AF_INET6, a->host.c_str(), &v6) != 1) return false;
  if (IN6_IS_ADDR_LOOPBACK(&v6)) return false;
  if (IN6_IS_ADDR_V4MAPPED(&v6)) return v6.s6_addr[12] != 127;
  return true;
}

// Connection tracking. libevent 2.1 has no "new connection" hook, but
// evhttp_set_bevcb lets us create each connection's bufferevent. From it,
// once evhttp has set the connection up (OnAttach, run right after the
// accept callback), bufferevent_getcb yields the evhttp_connection (evhttp
// passes it as the bufferevent's callback argument), and its close callback
// then tells us when libevent frees it. Until then a reference on the
// bufferevent keeps our pointer valid, and callbacks that read NULL mean
// libevent already dropped the connection.
bufferevent* AdminServer::OnNewConnection(event_base* base, void* self) {
  auto* server = static_cast<AdminServer*>(self);
  // Options 0, as evhttp's own: evhttp closes the socket itself.
  bufferevent* bev = bufferevent_socket_new(base, -1, 0);
  if (bev == nullptr) return nullptr;  // evhttp makes its own, without a deadline
  auto conn = std::make_unique<Connection>();
  Connection* c = conn.get();
  c->server = server;
  c->bev = bev;
  c->attach = event_new(base, -1, 0, &AdminServer::OnAttach, c);
  c->deadline = evtimer_new(base, &AdminServer::OnDeadline, c);
  c->check_output = event_new(base, -1, 0, &AdminServer::OnCheckOutput, c);
  event_priority_set(c->check_output, 0);
  c->output_cb = evbuffer_add_cb(bufferevent_get_output(bev), &AdminServer::OnOutputQueued, c);
  bufferevent_incref(bev);
  server->connections_[bev] = std::move(conn);
  server->ArmDeadline(c);
  event_active(c->attach, EV_TIMEOUT, 1);
  return bev;
}

void AdminServer::OnAttach(int, short, void* arg) {
  auto* c = static_cast<Connection*>(arg);
  void* cbarg = nullptr;
  bufferevent_getcb(c->bev, nullptr, nullptr, nullptr, &cbarg);
  auto* evcon = static_cast<evhttp_connection*>(cbarg);
  if (evcon == nullptr || evhttp_connection_get_bufferevent(evcon) != c->bev) {
    // libevent freed the connection already (or never set it up).
    c->server->Drop(c);
    return;
  }
  c->evcon = evcon;
  evhttp_connection_set_closecb(evcon, &AdminServer::OnClosed, c);
  bufferevent_decref(c->bev);  // the close callback guards the pointer from now on
  c->holds_ref = false;
}

void AdminServer::ArmDeadline(Connection* c) {
  timeval tv = ToTimeval(config_.request_timeout);
  evtimer_add(c->deadline, &tv);
}

void AdminServer::OnDeadline(int, short, void* arg) {
  auto* c = static_cast<Connection*>(arg);
  if (c->evcon == nullptr) return;  // not attached yet: cannot happen after a whole timeout
  VLOG(1) << "admin: closing a connection whose request did not arrive within "
          << FormatDuration(c->server->config_.request_timeout);
  // Runs OnClosed, which drops `c`.
  evhttp_connection_free(c->evcon);
}

void AdminServer::OnClosed(evhttp_connection* evcon, void* arg) {
  auto* c = static_cast<Connection*>(arg);
  evhttp_connection_set_closecb(evcon, nullptr, nullptr);
  c->evcon = nullptr;
  c->server->Drop(c);
}

void AdminServer::OnCheckOutput(int, short, void* arg) {
  auto* c = static_cast<Connection*>(arg);
  c->check_pending = false;
  c->rewriting = true;
  RewriteLibeventErrorPage(bufferevent_get_output(c->bev));
  c->rewriting = false;
}

void AdminServer::OnOutputQueued(evbuffer*, const evbuffer_cb_info* info, void* arg) {
  auto* c = static_cast<Connection*>(arg);
  if (info->n_added == 0 || c->rewriting || c->check_pending) return;
  c->check_pending = true;
  // Runs after the callback that is queueing the answer returned, and before
  // the socket is polled for writing again.
  event_active(c->check_output, EV_TIMEOUT, 1);
}

void AdminServer::Drop(Connection* c) {
  // The bufferevent is still alive: libevent calls the close callback before
  // freeing it, and before OnAttach we hold a reference.
  evbuffer_remove_cb_entry(bufferevent_get_output(c->bev), c->output_cb);
  event_free(c->attach);
  event_free(c->deadline);
  event_free(c->check_output);
  bufferevent* bev = c->bev;
  const bool holds_ref = c->holds_ref;
  connections_.erase(bev);  // deletes `c`
  if (holds_ref) bufferevent_decref(bev);
}

AdminServer::~AdminServer() { Stop(); }

Status AdminServer::Start() {
  CHECK(base_ == nullptr) << "AdminServer::Start called twice";
  if (!config_.token_file.empty()) {
    std::ifstream in(config_.token_file);
    if (!in) {
      return Status::InvalidArgument("daemon.admin.token_file: cannot read " +
                                     config_.token_file + ": " + strerror(errno));
    }
    std::stringstream text;
    text << in.rdbuf();
    token_ = text.str();
    while (!token_.empty() && isspace(static_cast<unsigned char>(token_.back()))) token_.pop_back();
    while (!token_.empty() && isspace(static_cast<unsigned char>(token_.front())))
      token_.erase(0, 1);
    if (token_.empty())
      return Status::InvalidArgument("daemon.admin.token_file: " + config_.token_file +
                                     " is empty");
    struct stat st;
    if (stat(config_.token_file.c_str(), &st) == 0 && (st.st_mode & S_IROTH))
      LOG(WARNING) << "daemon.admin.token_file " << config_.token_file
                   << " is readable by every user; chmod o-r it";
  }
  // Makes event_base_loopexit() safe from the control thread.
  evthread_use_pthreads();
  base_ = event_base_new();
  if (base_ == nullptr) return Status::IoError("admin: event_base_new failed");
  // Two priorities: the output check (OnCheckOutput) runs before any other
  // active event, so a page libevent queued is rewritten before a write
  // event sends it (behind a pipelined answer the write was already due).
  event_base_priority_init(base_, 2);
  http_ = evhttp_new(base_);
  evhttp_set_max_headers_size(http_, kMaxHeaders);
  evhttp_set_max_body_size(http_, kMaxBody);
  // An inactivity timeout, on top of the per-connection deadline (which
  // bounds the whole request; see OnNewConnection).
  timeval tv = ToTimeval(config_.request_timeout);
  evhttp_set_timeout_tv(http_, &tv);
  // Read and discard an oversized body before answering 413, so the client
  // is not reset while sending it and reads the answer (bounded by the
  // deadline).
  evhttp_set_flags(http_, EVHTTP_SERVER_LINGERING_CLOSE);
  // Every method libevent knows reaches Handle(), which answers 405 with
  // Allow; only unknown methods get libevent's 501.
  evhttp_set_allowed_methods(http_, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                        EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                        EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
                                        EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
  evhttp_set_gencb(http_, &AdminServer::OnRequest, this);
  evhttp_set_bevcb(http_, &AdminServer::OnNewConnection, this);
  Status s = Bind();
  if (!s.ok()) {
    evhttp_free(http_);
    event_base_free(base_);
    http_ = nullptr;
    base_ = nullptr;
    return s;
  }
  started_ = std::chrono::system_clock::now();
  thread_ = std::thread([this] {
    InstallThreadCrashStack();
    event_base_dispatch(base_);
  });
  LOG(INFO) << "admin HTTP listening on " << address_
            << (token_.empty() ? " (pause/resume disabled: no token_file)" : "");
  if (token_.empty() && ReachableFromOtherHosts(config_.listen)) {
    LOG(WARNING) << "admin HTTP on " << address_
                 << " is reachable from other hosts without a token (daemon.admin.token_file "
                    "unset): anyone who can connect reads /metrics, /readyz and "
                    "/api/v1/queues (queue and backend names, backend errors); pause/resume "
                    "stay disabled. Listen on 127.0.0.1, [::1] or a unix socket, or firewall "
                    "the port";
  }
  return Status::Ok();
}

Status AdminServer::Bind() {
  Result<ListenAddress> a = ParseListenAddress(config_.listen);
  if (!a.ok()) return Status::InvalidArgument("daemon.admin.listen: " + a.status().message());
  if (!a->unix_path.empty()) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return Status::IoError(std::string("admin: socket: ") + strerror(errno));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    strncpy(addr.sun_path, a->unix_path.c_str(), sizeof addr.sun_path - 1);
    unlink(a->unix_path.c_str());  // a stale socket from a previous run
    // Owner and group only: the socket is the admin's access control.
    mode_t old = umask(0117);
    int rc = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    umask(old);
    if (rc != 0 || listen(fd, 64) != 0) {
      Status s = Status::IoError("admin: cannot listen on " + config_.listen + ": " +
                                 strerror(errno));
      close(fd);
      return s;
    }
    if (evhttp_accept_socket_with_handle(http_, fd) == nullptr) {
      close(fd);
      return Status::IoError("admin: evhttp cannot accept on " + config_.listen);
    }
    address_ = config_.listen;
    return Status::Ok();
  }
  evhttp_bound_socket* bound = evhttp_bind_socket_with_handle(http_, a->host.c_str(), a->port);
  if (bound == nullptr)
    return Status::IoError("admin: cannot listen on " + config_.listen + ": " +
                           strerror(errno));
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  getsockname(evhttp_bound_socket_get_fd(bound), reinterpret_cast<sockaddr*>(&ss), &len);
  port_ = ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                         : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  address_ = (a->host.find(':') != std::string::npos ? "[" + a->host + "]" : a->host) + ":" +
             std::to_string(port_);
  return Status::Ok();
}

void AdminServer::Stop() {
  if (base_ == nullptr) return;
  // Not loopbreak: the loop clears a break requested before it started
  // running, and a Stop() right after Start() would then wait forever.
  // loopexit queues an event the loop runs whenever it starts.
  event_base_loopexit(base_, nullptr);
  if (thread_.joinable()) thread_.join();
  evhttp_free(http_);  // closes the listening sockets and open connections (OnClosed)
  // Connections accepted just before the loop stopped, not yet attached.
  while (!connections_.empty()) Drop(connections_.begin()->second.get());
  event_base_free(base_);
  http_ = nullptr;
  base_ = nullptr;
  Result<ListenAddress> a = ParseListenAddress(config_.listen);
  if (a.ok() && !a->unix_path.empty()) unlink(a->unix_path.c_str());
}

void AdminServer::OnRequest(evhttp_request* req, void* self) {
  auto* server = static_cast<AdminServer*>(self);
  evhttp_connection* evcon = evhttp_request_get_connection(req);
  server->Handle(req);
  // The request arrived whole and is answered: the next one on this
  // connection (keep-alive) gets a full timeout again, counted from now.
  if (evcon == nullptr) return;
  auto it = server->connections_.find(evhttp_connection_get_bufferevent(evcon));
  if (it != server->connections_.end()) server->ArmDeadline(it->second.get());
}

void AdminServer::Handle(evhttp_request* req) {
  // A config reload may swap the consumers and backends meanwhile.
  auto lock = supervisor_.ReadLock();
  const evhttp_cmd_type method = evhttp_request_get_command(req);
  const evhttp_uri* uri = evhttp_request_get_evhttp_uri(req);
  const char* raw_path = uri != nullptr ? evhttp_uri_get_path(uri) : nullptr;
  if (raw_path == nullptr || raw_path[0] != '/') {
    ReplyError(req, 400, "Bad Request", "malformed request target");
    return;
  }
  std::string path = raw_path;
  if (path.size() > 1 && path.back() == '/') path.pop_back();
  const bool get = method == EVHTTP_REQ_GET || method == EVHTTP_REQ_HEAD;

  if (path == "/healthz") {
    if (!get) return MethodNotAllowed(req, "GET");
    Reply(req, 200, "OK", "ok\n", "text/plain; charset=utf-8");
  } else if (path == "/readyz") {
    if (!get) return MethodNotAllowed(req, "GET");
    std::vector<std::string> reasons = ReadinessReasons(supervisor_);
    Reply(req, reasons.empty() ? 200 : 503, reasons.empty() ? "OK" : "Service Unavailable",
          RenderReadinessJson(reasons));
  } else if (path == "/metrics") {
    if (!get) return MethodNotAllowed(req, "GET");
    Reply(req, 200, "OK", RenderMetrics(supervisor_, started_),
          "text/plain; version=0.0.4; charset=utf-8");
  } else if (path == kQueuesPrefix) {
    if (!get) return MethodNotAllowed(req, "GET");
    Reply(req, 200, "OK", RenderQueuesJson(supervisor_));
  } else if (path.rfind(std::string(kQueuesPrefix) + "/", 0) == 0) {
    // /api/v1/queues/{name}[/{action}]
    std::string rest = path.substr(sizeof kQueuesPrefix);
    size_t slash = rest.find('/');
    std::string queue = rest.substr(0, slash);
    std::string action = slash == std::string::npos ? "" : rest.substr(slash + 1);
    if (!ValidName(queue) || action.find('/') != std::string::npos) {
      ReplyError(req, 404, "Not Found", "no such endpoint: " + path);
    } else if (action.empty()) {
      if (!get) return MethodNotAllowed(req, "GET");
      const Consumer* c = supervisor_.FindConsumer(queue);
      if (c == nullptr) return ReplyError(req, 404, "Not Found", "no queue named \"" + queue + "\"");
      Reply(req, 200, "OK", RenderQueueJson(supervisor_, *c) + "\n");
    } else if (action == "pause" || action == "resume") {
      if (method != EVHTTP_REQ_POST) return MethodNotAllowed(req, "POST");
      HandleQueueAction(req, queue, action);
    } else {
      ReplyError(req, 404, "Not Found", "no such endpoint: " + path);
    }
  } else {
    ReplyError(req, 404, "Not Found", "no such endpoint: " + path);
  }
}

bool AdminServer::Authorized(evhttp_request* req) {
  if (token_.empty()) {
    ReplyError(req, 403, "Forbidden",
               "disabled: set daemon.admin.token_file to allow pausing and resuming queues");
    return false;
  }
  const char* auth = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
  static constexpr char kBearer[] = "Bearer ";
  if (auth == nullptr || strncasecmp(auth, kBearer, sizeof kBearer - 1) != 0) {
    evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
                      "Bearer realm=\"foxworker\"");
    ReplyError(req, 401, "Unauthorized", "missing \"Authorization: Bearer <token>\"");
    return false;
  }
  if (!SameSecret(auth + sizeof kBearer - 1, token_)) {
    evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
                      "Bearer realm=\"foxworker\", error=\"invalid_token\"");
    ReplyError(req, 401, "Unauthorized", "wrong token");
    return false;
  }
  return true;
}

void AdminServer::HandleQueueAction(evhttp_request* req, const std::string& queue,
                                    const std::string& action) {
  if (!Authorized(req)) return;
  Consumer* c = supervisor_.FindConsumer(queue);
  if (c == nullptr) return ReplyError(req, 404, "Not Found", "no queue named \"" + queue + "\"");
  const bool pause = action == "pause";
  // A resume also ends a crash-loop pause (and forgets its crashes).
  const bool changed = c->paused() != pause || (!pause && c->held());
  c->SetPaused(pause);
  if (changed) LOG(INFO) << "admin: queue " << queue << (pause ? " paused" : " resumed");
  Reply(req, 200, "OK", RenderQueueJson(supervisor_, *c) + "\n");
}

}  // namespace foxworker
