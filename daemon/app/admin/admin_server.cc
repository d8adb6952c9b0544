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
#include "daemon/app/admin/console_assets.h"
#include "daemon/core/inspect.h"
#include "daemon/base/crash_stack.h"
#include "daemon/config/listen_address.h"
#include "daemon/app/supervisor.h"
#include "daemon/base/clock.h"

namespace foxworker {
namespace {

constexpr char kQueuesPrefix[] = "/api/v1/queues";
constexpr size_t kMaxHeaders = 8192;
constexpr size_t kMaxBody = 64 * 1024;
constexpr char kSessionCookie[] = "foxworker_session";
constexpr auto kSessionLifetime = std::chrono::hours(12);
constexpr size_t kMaxSessions = 64;
constexpr size_t kMaxPayloadShown = 64 * 1024;
constexpr size_t kMaxListLimit = 500;
// Every answer's Content-Security-Policy: the console's own files only, no
// inline script or style, no framing, forms post to the daemon only.
constexpr char kCsp[] =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'";

void SecurityHeaders(evkeyvalq* headers) {
  evhttp_add_header(headers, "Content-Security-Policy", kCsp);
  evhttp_add_header(headers, "X-Content-Type-Options", "nosniff");
  evhttp_add_header(headers, "X-Frame-Options", "DENY");
  evhttp_add_header(headers, "Referrer-Policy", "same-origin");
  evhttp_add_header(headers, "Cross-Origin-Resource-Policy", "same-origin");
}

void Reply(evhttp_request* req, int code, const char* reason, const std::string& body,
           const char* content_type = "application/json") {
  evkeyvalq* headers = evhttp_request_get_output_headers(req);
  evhttp_add_header(headers, "Content-Type", content_type);
  if (evhttp_find_header(headers, "Cache-Control") == nullptr)
    evhttp_add_header(headers, "Cache-Control", "no-store");
  SecurityHeaders(headers);
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

// An answer the worker thread computes; `req` is answered from the loop
// thread unless `cancelled` (libevent freed it with its connection).
struct AdminServer::Pending {
  evhttp_request* req = nullptr;
  Connection* conn = nullptr;
  bool cancelled = false;  // loop thread only
  bool orphan = false;     // the connection went, the request was left to us
  Answer answer;
};

struct AdminServer::Connection {
  AdminServer* server = nullptr;
  std::vector<std::shared_ptr<Pending>> pending;
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
    : config_(std::move(config)),
      supervisor_(supervisor),
      history_(std::chrono::seconds(5), 180) {}

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
  for (const auto& p : c->pending) {
    // libevent keeps a request whose client went away before the answer
    // (evcon NULL) for whoever answers it; one still on the connection is
    // freed with it.
    if (evhttp_request_get_connection(p->req) == nullptr)
      p->orphan = true;
    else
      p->cancelled = true;
    p->conn = nullptr;
  }
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
  {
    Result<ListenAddress> a = ParseListenAddress(config_.listen);
    loopback_ = a.ok() && a->unix_path.empty() && !ReachableFromOtherHosts(config_.listen);
  }
  done_event_ = event_new(base_, -1, EV_PERSIST, &AdminServer::OnDone, this);
  sample_event_ = event_new(base_, -1, EV_PERSIST, &AdminServer::OnSample, this);
  {
    timeval every = ToTimeval(history_.interval());
    evtimer_add(sample_event_, &every);
  }
  {
    std::lock_guard<std::mutex> lock(work_mu_);
    work_stop_ = false;
  }
  worker_ = std::thread([this] {
    InstallThreadCrashStack();
    WorkerLoop();
  });
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
  {
    std::lock_guard<std::mutex> lock(work_mu_);
    work_stop_ = true;
    work_.clear();
  }
  work_cv_.notify_all();
  if (worker_.joinable()) worker_.join();
  inspectors_.clear();
  event_base_loopexit(base_, nullptr);
  if (thread_.joinable()) thread_.join();
  evhttp_free(http_);
  // Answers computed but not sent: their requests went with their
  // connections, except those libevent left to us.
  {
    std::lock_guard<std::mutex> lock(done_mu_);
    for (const auto& p : done_)
      if (p->orphan) evhttp_request_free(p->req);
    done_.clear();
  }
  event_free(done_event_);
  event_free(sample_event_);
  done_event_ = sample_event_ = nullptr;  // closes the listening sockets and open connections (OnClosed)
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
  server->current_ = nullptr;
  if (evcon != nullptr) {
    auto it = server->connections_.find(evhttp_connection_get_bufferevent(evcon));
    if (it != server->connections_.end()) server->current_ = it->second.get();
  }
  server->Handle(req);
  server->current_ = nullptr;
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
  // /healthz tells nothing: probes may name the host any way they like.
  if (path != "/healthz" && !HostAllowed(req)) return;
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
  } else if (const ConsoleAsset* asset = FindConsoleAsset(path == "/" ? "/index.html" : path);
             asset != nullptr && (path == "/" || path.rfind("/console/", 0) == 0)) {
    if (!get) return MethodNotAllowed(req, "GET");
    evkeyvalq* out = evhttp_request_get_output_headers(req);
    const std::string etag = std::string("\"") + asset->etag + "\"";
    evhttp_add_header(out, "ETag", etag.c_str());
    evhttp_add_header(out, "Cache-Control", "no-cache");
    const char* inm = evhttp_find_header(evhttp_request_get_input_headers(req), "If-None-Match");
    if (inm != nullptr && etag == inm) {
      SecurityHeaders(out);
      evhttp_send_reply(req, 304, "Not Modified", nullptr);
      return;
    }
    Reply(req, 200, "OK", std::string(asset->data, asset->size), asset->content_type);
  } else if (path == "/login" || path == "/logout") {
    if (method != EVHTTP_REQ_POST) return MethodNotAllowed(req, "POST");
    HandleLogin(req, path == "/logout");
  } else if (path == "/api/v1/session") {
    if (!get) return MethodNotAllowed(req, "GET");
    std::string body = std::string("{\"authenticated\":") + (Session(req).empty() ? "false" : "true") +
                       ",\"token_configured\":" + (token_.empty() ? "false" : "true") +
                       ",\"read_only\":" + (config_.read_only ? "true" : "false") +
                       ",\"quiet\":" + (quiet_ ? "true" : "false") +
                       ",\"version\":\"" FOXWORKER_VERSION "\"}\n";
    Reply(req, 200, "OK", body);
  } else if (path == "/api/v1/running") {
    if (!get) return MethodNotAllowed(req, "GET");
    Reply(req, 200, "OK", RenderRunningJson(supervisor_));
  } else if (path == "/api/v1/history") {
    if (!get) return MethodNotAllowed(req, "GET");
    Reply(req, 200, "OK", history_.RenderJson());
  } else if (path == "/api/v1/plugins") {
    if (!get) return MethodNotAllowed(req, "GET");
    Reply(req, 200, "OK", RenderPluginsJson(*supervisor_.snapshot()));
  } else if (path == "/api/v1/quiet" || path == "/api/v1/unquiet") {
    if (method != EVHTTP_REQ_POST) return MethodNotAllowed(req, "POST");
    HandleQuiet(req, path == "/api/v1/quiet");
  } else if (path == kQueuesPrefix) {
    if (!get) return MethodNotAllowed(req, "GET");
    Reply(req, 200, "OK", RenderQueuesJson(supervisor_));
  } else if (path.rfind(std::string(kQueuesPrefix) + "/", 0) == 0) {
    // /api/v1/queues/{name}[/{action}...]
    std::string rest = path.substr(sizeof kQueuesPrefix);
    size_t slash = rest.find('/');
    std::string queue = rest.substr(0, slash);
    std::string action = slash == std::string::npos ? "" : rest.substr(slash + 1);
    if (!ValidName(queue)) {
      ReplyError(req, 404, "Not Found", "no such endpoint: " + path);
    } else if (action.empty()) {
      if (!get) return MethodNotAllowed(req, "GET");
      const Consumer* c = supervisor_.FindConsumer(queue);
      if (c == nullptr) return ReplyError(req, 404, "Not Found", "no queue named \"" + queue + "\"");
      Reply(req, 200, "OK", RenderQueueJson(supervisor_, *c) + "\n");
    } else if (action == "pause" || action == "resume") {
      if (method != EVHTTP_REQ_POST) return MethodNotAllowed(req, "POST");
      HandleQueueAction(req, queue, action);
    } else if (action == "dead" || action.rfind("dead/", 0) == 0 || action == "scheduled" ||
               action == "messages") {
      HandleInspect(req, queue, action);
    } else {
      ReplyError(req, 404, "Not Found", "no such endpoint: " + path);
    }
  } else {
    ReplyError(req, 404, "Not Found", "no such endpoint: " + path);
  }
}

namespace {
// The value of `name` in a Cookie header, "" when absent.
std::string CookieValue(const char* header, std::string_view name) {
  if (header == nullptr) return "";
  std::string_view h(header);
  while (!h.empty()) {
    size_t semi = h.find(';');
    std::string_view part = h.substr(0, semi);
    while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
    if (part.size() > name.size() && part.substr(0, name.size()) == name && part[name.size()] == '=')
      return std::string(part.substr(name.size() + 1));
    if (semi == std::string_view::npos) break;
    h.remove_prefix(semi + 1);
  }
  return "";
}

// "localhost", "127.0.0.1", "[::1]", each with an optional ":port".
bool LoopbackHost(std::string_view host) {
  std::string_view name = host;
  if (!name.empty() && name.front() == '[') {
    size_t close = name.find(']');
    if (close == std::string_view::npos) return false;
    std::string inner(name.substr(1, close - 1));
    in6_addr v6;
    return inet_pton(AF_INET6, inner.c_str(), &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
  }
  size_t colon = name.rfind(':');
  if (colon != std::string_view::npos) name = name.substr(0, colon);
  if (EqualsNoCase(name, "localhost")) return true;
  in_addr v4;
  std::string text(name);
  return inet_pton(AF_INET, text.c_str(), &v4) == 1 && (ntohl(v4.s_addr) >> 24) == 127;
}

// The body of a request, whole (bounded by kMaxBody).
std::string Body(evhttp_request* req) {
  evbuffer* in = evhttp_request_get_input_buffer(req);
  std::string out(evbuffer_get_length(in), '\0');
  evbuffer_copyout(in, out.data(), out.size());
  return out;
}

std::string FormValue(const std::string& body, const char* name) {
  evkeyvalq fields;
  std::string out;
  if (evhttp_parse_query_str(body.c_str(), &fields) == 0) {
    const char* v = evhttp_find_header(&fields, name);
    if (v != nullptr) out = v;
  }
  evhttp_clear_headers(&fields);
  return out;
}

std::string QueryValue(evhttp_request* req, const char* name, const std::string& fallback = "") {
  const evhttp_uri* uri = evhttp_request_get_evhttp_uri(req);
  const char* q = uri != nullptr ? evhttp_uri_get_query(uri) : nullptr;
  if (q == nullptr) return fallback;
  evkeyvalq fields;
  std::string out = fallback;
  if (evhttp_parse_query_str(q, &fields) == 0) {
    const char* v = evhttp_find_header(&fields, name);
    if (v != nullptr) out = v;
  }
  evhttp_clear_headers(&fields);
  return out;
}

size_t QueryNumber(evhttp_request* req, const char* name, size_t fallback, size_t max) {
  std::string v = QueryValue(req, name);
  if (v.empty()) return fallback;
  char* end = nullptr;
  unsigned long long n = strtoull(v.c_str(), &end, 10);
  if (end == v.c_str() || *end != '\0') return fallback;
  return std::min<size_t>(static_cast<size_t>(n), max);
}

std::string UriDecode(const std::string& s) {
  char* d = evhttp_uridecode(s.c_str(), 0, nullptr);
  if (d == nullptr) return s;
  std::string out(d);
  free(d);
  return out;
}

int CodeOf(const Status& s) {
  switch (s.code()) {
    case Status::Code::kNotFound: return 404;
    case Status::Code::kInvalidArgument: return 400;
    case Status::Code::kUnavailable: return 503;
    default: return 500;
  }
}
}  // namespace

bool AdminServer::HostAllowed(evhttp_request* req) {
  if (!loopback_) return true;
  const char* host = evhttp_find_header(evhttp_request_get_input_headers(req), "Host");
  if (host == nullptr || LoopbackHost(host)) return true;
  ReplyError(req, 421, "Misdirected Request",
             "this listener is on loopback and answers only Host: localhost, 127.0.0.1 or [::1] "
             "(a DNS rebinding guard)");
  return false;
}

std::string AdminServer::Session(evhttp_request* req) {
  std::string id =
      CookieValue(evhttp_find_header(evhttp_request_get_input_headers(req), "Cookie"),
                  kSessionCookie);
  if (id.empty()) return "";
  auto it = sessions_.end();
  for (auto i = sessions_.begin(); i != sessions_.end(); ++i)
    if (SameSecret(i->first, id)) it = i;
  if (it == sessions_.end()) return "";
  if (it->second < std::chrono::steady_clock::now()) {
    sessions_.erase(it);
    return "";
  }
  return id;
}

bool AdminServer::Authorized(evhttp_request* req) {
  if (config_.read_only) {
    ReplyError(req, 403, "Forbidden", "read-only console (daemon.admin.read_only: true)");
    return false;
  }
  if (token_.empty()) {
    ReplyError(req, 403, "Forbidden",
               "disabled: set daemon.admin.token_file to allow changes");
    return false;
  }
  evkeyvalq* in = evhttp_request_get_input_headers(req);
  const char* auth = evhttp_find_header(in, "Authorization");
  static constexpr char kBearer[] = "Bearer ";
  if (auth == nullptr && !Session(req).empty()) {
    // A session cookie rides along on any request the browser sends to this
    // origin, and a page on another local port is the same site: a change
    // needs our own Origin and a header a form cannot set.
    const char* origin = evhttp_find_header(in, "Origin");
    const char* host = evhttp_find_header(in, "Host");
    const char* custom = evhttp_find_header(in, "X-Foxworker-Request");
    if (origin == nullptr || host == nullptr || std::string(origin) != std::string("http://") + host) {
      ReplyError(req, 403, "Forbidden", "cross-origin change refused (Origin is not this console)");
      return false;
    }
    if (custom == nullptr || std::string(custom) != "1") {
      ReplyError(req, 403, "Forbidden", "a change with the session cookie needs X-Foxworker-Request: 1");
      return false;
    }
    return true;
  }
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

void AdminServer::HandleLogin(evhttp_request* req, bool logout) {
  evkeyvalq* in = evhttp_request_get_input_headers(req);
  evkeyvalq* out = evhttp_request_get_output_headers(req);
  const char* origin = evhttp_find_header(in, "Origin");
  const char* host = evhttp_find_header(in, "Host");
  // A login form posted from another page would log the browser in to a
  // session of the attacker's choosing (and a logout, out): same origin only.
  if (origin != nullptr && (host == nullptr || std::string(origin) != std::string("http://") + host)) {
    ReplyError(req, 403, "Forbidden", "cross-origin login refused");
    return;
  }
  if (logout) {
    std::string id = Session(req);
    if (!id.empty()) sessions_.erase(id);
    evhttp_add_header(out, "Set-Cookie",
                      (std::string(kSessionCookie) + "=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0").c_str());
    evhttp_add_header(out, "Location", "/");
    Reply(req, 303, "See Other", "{}\n");
    return;
  }
  if (config_.read_only || token_.empty()) {
    ReplyError(req, 403, "Forbidden",
               config_.read_only ? "read-only console: nothing to log in to"
                                 : "no daemon.admin.token_file: changes are disabled");
    return;
  }
  const std::string token = FormValue(Body(req), "token");
  if (!SameSecret(token, token_)) {
    evhttp_add_header(out, "Location", "/#login-failed");
    Reply(req, 303, "See Other", RenderErrorJson("wrong token"));
    return;
  }
  const auto now = std::chrono::steady_clock::now();
  for (auto it = sessions_.begin(); it != sessions_.end();)
    it = it->second < now ? sessions_.erase(it) : std::next(it);
  while (sessions_.size() >= kMaxSessions) {
    auto oldest = std::min_element(sessions_.begin(), sessions_.end(),
                                   [](const auto& a, const auto& b) { return a.second < b.second; });
    sessions_.erase(oldest);
  }
  const std::string id = RandomToken();
  sessions_[id] = now + kSessionLifetime;
  evhttp_add_header(out, "Set-Cookie",
                    (std::string(kSessionCookie) + "=" + id +
                     "; Path=/; HttpOnly; SameSite=Strict; Max-Age=43200")
                        .c_str());
  evhttp_add_header(out, "Location", "/");
  LOG(INFO) << "admin: console login";
  Reply(req, 303, "See Other", "{}\n");
}

void AdminServer::HandleQuiet(evhttp_request* req, bool quiet) {
  if (!Authorized(req)) return;
  if (quiet) {
    for (const auto& c : supervisor_.consumers()) {
      if (c->paused()) continue;
      c->SetPaused(true);
      quieted_.insert(c->name());
    }
    if (!quiet_) LOG(INFO) << "admin: daemon quiet (every queue stops fetching)";
  } else {
    for (const std::string& name : quieted_) {
      Consumer* c = supervisor_.FindConsumer(name);
      if (c != nullptr) c->SetPaused(false);
    }
    quieted_.clear();
    if (quiet_) LOG(INFO) << "admin: daemon unquiet";
  }
  quiet_ = quiet;
  Reply(req, 200, "OK", std::string("{\"quiet\":") + (quiet ? "true" : "false") + "}\n");
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


void AdminServer::Async(evhttp_request* req, std::function<Answer()> work) {
  auto p = std::make_shared<Pending>();
  p->req = req;
  p->conn = current_;
  if (current_ != nullptr) current_->pending.push_back(p);
  {
    std::lock_guard<std::mutex> lock(work_mu_);
    work_.push_back([this, p, work = std::move(work)] {
      Answer a = work();
      {
        std::lock_guard<std::mutex> done_lock(done_mu_);
        p->answer = std::move(a);
        done_.push_back(p);
      }
      event_active(done_event_, EV_TIMEOUT, 1);
    });
  }
  work_cv_.notify_one();
}

void AdminServer::OnDone(int, short, void* self) {
  auto* server = static_cast<AdminServer*>(self);
  std::vector<std::shared_ptr<Pending>> done;
  {
    std::lock_guard<std::mutex> lock(server->done_mu_);
    done.swap(server->done_);
  }
  for (const auto& p : done) {
    if (p->cancelled) continue;
    if (p->conn != nullptr) {
      auto& v = p->conn->pending;
      v.erase(std::remove(v.begin(), v.end(), p), v.end());
    }
    const Answer& a = p->answer;
    const char* reason = a.code == 200 ? "OK" : a.code == 404 ? "Not Found"
                       : a.code == 400 ? "Bad Request" : a.code == 503 ? "Service Unavailable"
                       : "Error";
    // An orphan's reply frees it (libevent: no connection to send on).
    Reply(p->req, a.code, reason, a.body);
  }
}

void AdminServer::OnSample(int, short, void* self) {
  auto* server = static_cast<AdminServer*>(self);
  auto lock = server->supervisor_.ReadLock();
  server->history_.Sample(server->supervisor_, WallMs());
}

void AdminServer::WorkerLoop() {
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock<std::mutex> lock(work_mu_);
      work_cv_.wait(lock, [this] { return work_stop_ || !work_.empty(); });
      if (work_stop_) return;
      job = std::move(work_.front());
      work_.pop_front();
    }
    job();
  }
}

Result<Inspector*> AdminServer::InspectorFor(const RuntimeSnapshot& snap,
                                            const std::string& backend) {
  auto b = snap.backends.find(backend);
  if (b == snap.backends.end()) return Status::NotFound("no backend named \"" + backend + "\"");
  InspectorSlot& slot = inspectors_[backend];
  if (slot.backend.lock() != b->second || slot.inspector == nullptr) {
    slot.inspector.reset();
    slot.backend = b->second;
    Result<std::unique_ptr<Inspector>> opened = b->second->OpenInspector(InspectorOptions{});
    if (!opened.ok()) return opened.status();
    slot.inspector = std::move(*opened);
  }
  return slot.inspector.get();
}

void AdminServer::HandleInspect(evhttp_request* req, const std::string& queue,
                                const std::string& action) {
  const evhttp_cmd_type method = evhttp_request_get_command(req);
  const bool get = method == EVHTTP_REQ_GET || method == EVHTTP_REQ_HEAD;
  // dead | dead/retry | dead/delete | dead/{id} | dead/{id}/retry | scheduled | messages
  enum class Op { kList, kRetry, kDelete, kShow, kDeleteOne, kRetryOne, kScheduled, kEnqueue };
  Op op;
  std::string id;
  if (action == "dead") {
    if (!get) return MethodNotAllowed(req, "GET");
    op = Op::kList;
  } else if (action == "dead/retry" || action == "dead/delete") {
    if (method != EVHTTP_REQ_POST) return MethodNotAllowed(req, "POST");
    op = action == "dead/retry" ? Op::kRetry : Op::kDelete;
  } else if (action == "scheduled") {
    if (!get) return MethodNotAllowed(req, "GET");
    op = Op::kScheduled;
  } else if (action == "messages") {
    if (method != EVHTTP_REQ_POST) return MethodNotAllowed(req, "POST");
    op = Op::kEnqueue;
  } else {
    std::string rest = action.substr(5);  // after "dead/"
    const bool retry = rest.size() > 6 && rest.compare(rest.size() - 6, 6, "/retry") == 0;
    if (retry) rest.resize(rest.size() - 6);
    if (rest.empty() || rest.find('/') != std::string::npos)
      return ReplyError(req, 404, "Not Found", "no such endpoint");
    id = UriDecode(rest);
    if (retry) {
      if (method != EVHTTP_REQ_POST) return MethodNotAllowed(req, "POST");
      op = Op::kRetryOne;
    } else if (method == EVHTTP_REQ_DELETE) {
      op = Op::kDeleteOne;
    } else if (get) {
      op = Op::kShow;
    } else {
      return MethodNotAllowed(req, "GET, DELETE");
    }
  }
  const bool change = op == Op::kRetry || op == Op::kDelete || op == Op::kDeleteOne ||
                      op == Op::kRetryOne || op == Op::kEnqueue;
  if (change && !Authorized(req)) return;
  const QueueConfig* qc = supervisor_.config().FindQueue(queue);
  if (qc == nullptr) return ReplyError(req, 404, "Not Found", "no queue named \"" + queue + "\"");

  // What the worker needs, read here (under the read lock).
  std::shared_ptr<const RuntimeSnapshot> snap = supervisor_.snapshot();
  const RetryPolicyConfig* policy = snap->config->FindRetryPolicy(qc->retry_policy);
  SourceOptions so{qc->name, qc->source, qc->prefetch, policy ? policy->max_attempts : 0,
                   policy ? std::optional<RetryPolicyOptions>(*policy) : std::nullopt,
                   qc->backend_block.options.shared()};
  const std::string backend = qc->backend;
  DeadLetterFilter filter;
  filter.reason_contains = QueryValue(req, "reason");
  const size_t offset = QueryNumber(req, "offset", 0, SIZE_MAX);
  const size_t limit = QueryNumber(req, "limit", 50, kMaxListLimit);
  const size_t max_payload = QueryNumber(req, "max_payload", kMaxPayloadShown, 1 << 20);
  const std::string body = change ? Body(req) : std::string();

  Async(req, [this, snap, so, backend, op, id, filter, offset, limit, max_payload, body,
              queue]() -> Answer {
    if (op == Op::kEnqueue) {
      Result<EnqueueRequest> r = ParseEnqueue(body);
      if (!r.ok()) return {400, RenderErrorJson(r.status().message())};
      auto b = snap->backends.find(backend);
      if (b == snap->backends.end()) return {503, RenderErrorJson("backend not running")};
      const std::string message_id = r->message.props.message_id;
      Status s = b->second->Enqueue(so.source, std::move(r->message), r->delay);
      if (!s.ok()) return {CodeOf(s) == 500 ? 503 : CodeOf(s), RenderErrorJson(s.message())};
      LOG(INFO) << "admin: enqueued a message on queue " << queue;
      return {200, "{\"enqueued\":true}\n"};
    }
    Result<Inspector*> ins = InspectorFor(*snap, backend);
    if (!ins.ok()) return {CodeOf(ins.status()) == 500 ? 503 : CodeOf(ins.status()),
                           RenderErrorJson(ins.status().message())};
    Inspector& in = **ins;
    auto fail = [this, &backend](const Status& s) -> Answer {
      // The next call opens a fresh connection.
      if (s.code() == Status::Code::kUnavailable) inspectors_.erase(backend);
      return {CodeOf(s), RenderErrorJson(s.message())};
    };
    switch (op) {
      case Op::kList: {
        Result<DeadLetterPage> page = in.ListDead(so, filter, offset, limit);
        if (!page.ok()) return fail(page.status());
        return {200, RenderDeadPageJson(*page, offset, limit)};
      }
      case Op::kShow: {
        Result<DeadLetter> letter = in.GetDead(so, id, max_payload);
        if (!letter.ok()) return fail(letter.status());
        return {200, RenderDeadLetterJson(*letter)};
      }
      case Op::kScheduled: {
        Result<std::vector<ScheduledJob>> jobs = in.ListScheduled(so, limit);
        if (!jobs.ok()) return fail(jobs.status());
        return {200, RenderScheduledJson(*jobs)};
      }
      case Op::kRetryOne:
      case Op::kDeleteOne: {
        auto r = op == Op::kRetryOne ? in.RetryDead(so, {id}) : in.DeleteDead(so, {id});
        if (!r.ok()) return fail(r.status());
        if (r->empty()) return {404, RenderErrorJson("no dead letter \"" + id + "\" on " + queue)};
        LOG(INFO) << "admin: " << (op == Op::kRetryOne ? "retried" : "deleted")
                  << " dead letter " << id << " of queue " << queue;
        return {200, RenderDoneJson(*r)};
      }
      case Op::kRetry:
      case Op::kDelete: {
        Result<DeadSelection> sel = ParseDeadSelection(body);
        if (!sel.ok()) return {400, RenderErrorJson(sel.status().message())};
        const bool retry = op == Op::kRetry;
        if (sel->all) {
          Result<size_t> n = retry ? in.RetryMatching(so, sel->filter)
                                   : in.DeleteMatching(so, sel->filter);
          if (!n.ok()) return fail(n.status());
          LOG(INFO) << "admin: " << (retry ? "retried " : "deleted ") << *n
                    << " dead letters of queue " << queue;
          return {200, RenderCountJson(*n)};
        }
        auto r = retry ? in.RetryDead(so, sel->ids) : in.DeleteDead(so, sel->ids);
        if (!r.ok()) return fail(r.status());
        LOG(INFO) << "admin: " << (retry ? "retried " : "deleted ") << r->size()
                  << " dead letters of queue " << queue;
        return {200, RenderDoneJson(*r)};
      }
      default:
        return {500, RenderErrorJson("unreachable")};
    }
  });
}

}  // namespace foxworker
