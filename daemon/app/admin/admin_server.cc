#include "daemon/app/admin/admin_server.h"

#include <event2/buffer.h>
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
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

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
constexpr int kRequestTimeoutSeconds = 10;

void Reply(evhttp_request* req, int code, const char* reason, const std::string& body,
           const char* content_type = "application/json") {
  evkeyvalq* headers = evhttp_request_get_output_headers(req);
  evhttp_add_header(headers, "Content-Type", content_type);
  evhttp_add_header(headers, "Cache-Control", "no-store");
  evbuffer* buf = evbuffer_new();
  evbuffer_add(buf, body.data(), body.size());
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

bool ValidName(const std::string& name) {
  if (name.empty()) return false;
  for (char c : name)
    if (!isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.' && c != ':')
      return false;
  return true;
}

}  // namespace

AdminServer::AdminServer(AdminConfig config, const Supervisor& supervisor)
    : config_(std::move(config)), supervisor_(supervisor) {}

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
  // Makes event_base_loopbreak() safe from the control thread.
  evthread_use_pthreads();
  base_ = event_base_new();
  if (base_ == nullptr) return Status::IoError("admin: event_base_new failed");
  http_ = evhttp_new(base_);
  evhttp_set_max_headers_size(http_, kMaxHeaders);
  evhttp_set_max_body_size(http_, kMaxBody);
  evhttp_set_timeout(http_, kRequestTimeoutSeconds);
  evhttp_set_allowed_methods(http_, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                        EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                        EVHTTP_REQ_PATCH | EVHTTP_REQ_OPTIONS);
  evhttp_set_gencb(http_, &AdminServer::OnRequest, this);
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
  event_base_loopbreak(base_);
  if (thread_.joinable()) thread_.join();
  evhttp_free(http_);  // closes the listening sockets and open connections
  event_base_free(base_);
  http_ = nullptr;
  base_ = nullptr;
  Result<ListenAddress> a = ParseListenAddress(config_.listen);
  if (a.ok() && !a->unix_path.empty()) unlink(a->unix_path.c_str());
}

void AdminServer::OnRequest(evhttp_request* req, void* self) {
  static_cast<AdminServer*>(self)->Handle(req);
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
  const bool changed = c->paused() != pause;
  c->SetPaused(pause);
  if (changed) LOG(INFO) << "admin: queue " << queue << (pause ? " paused" : " resumed");
  Reply(req, 200, "OK", RenderQueueJson(supervisor_, *c) + "\n");
}

}  // namespace foxworker
