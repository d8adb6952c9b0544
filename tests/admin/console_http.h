// A tiny HTTP/1.1 client over loopback TCP, for the console tests (the
// daemon's admin API and chromedriver's WebDriver API), a WebDriver session
// on headless Chromium, and a one-page HTTP server standing in for a
// hostile site on another local port.
#ifndef FOXWORKER_TESTS_ADMIN_CONSOLE_HTTP_H_
#define FOXWORKER_TESTS_ADMIN_CONSOLE_HTTP_H_

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace foxworker::testing {

struct HttpAnswer {
  int status = 0;  // 0: no answer
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
};

// One request on a fresh connection to 127.0.0.1:port; reads the answer by
// its Content-Length (or to the close). `timeout_ms` bounds each wait.
inline HttpAnswer HttpCall(uint16_t port, const std::string& method, const std::string& path,
                           const std::string& body = "",
                           const std::vector<std::string>& headers = {},
                           int timeout_ms = 60000) {
  HttpAnswer r;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return r;
  }
  bool has_host = false;
  std::string req = method + " " + path + " HTTP/1.1\r\n";
  for (const auto& h : headers) {
    if (strncasecmp(h.c_str(), "host:", 5) == 0) has_host = true;
    req += h + "\r\n";
  }
  if (!has_host) req += "Host: 127.0.0.1:" + std::to_string(port) + "\r\n";
  req += "Connection: close\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  size_t off = 0;
  while (off < req.size()) {
    ssize_t n = send(fd, req.data() + off, req.size() - off, MSG_NOSIGNAL);
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
  std::string in;
  char buf[16384];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) <= 0) break;
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    in.append(buf, static_cast<size_t>(n));
    size_t end = in.find("\r\n\r\n");
    if (end != std::string::npos) {
      // Content-Length, any case, with or without a space (chromedriver
      // writes "Content-Length:252" and keeps the connection open).
      std::string head = in.substr(0, end);
      for (char& c : head) c = static_cast<char>(tolower(c));
      auto cl = head.find("\r\ncontent-length:");
      if (cl != std::string::npos &&
          in.size() >= end + 4 + std::stoul(head.substr(cl + 17)))
        break;
    }
  }
  close(fd);
  size_t end = in.find("\r\n\r\n");
  if (in.rfind("HTTP/1.", 0) != 0 || end == std::string::npos) return r;
  r.status = std::stoi(in.substr(9, 3));
  size_t pos = in.find("\r\n") + 2;
  while (pos < end) {
    size_t eol = in.find("\r\n", pos);
    std::string line = in.substr(pos, eol - pos);
    pos = eol + 2;
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon);
    for (char& c : name) c = static_cast<char>(tolower(c));
    std::string value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.erase(0, 1);
    r.headers[name] = value;
  }
  r.body = in.substr(end + 4);
  return r;
}

inline rapidjson::Document ParseJson(const std::string& text) {
  rapidjson::Document d;
  d.Parse(text.c_str(), text.size());
  return d;
}

inline std::string JsonText(const rapidjson::Value& v) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  v.Accept(w);
  return std::string(buf.GetString(), buf.GetSize());
}

inline std::string JsonString(const std::string& s) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  w.String(s.c_str(), static_cast<rapidjson::SizeType>(s.size()));
  return std::string(buf.GetString(), buf.GetSize());
}

// A TCP port nobody listens on now (bound and released).
inline uint16_t FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

inline std::string DecodeBase64(const std::string& in) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int v = val(c);
    if (v < 0) continue;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return out;
}

// chromedriver and one headless Chromium session, driven over the W3C
// WebDriver protocol.
class Browser {
 public:
  Browser() {
    port_ = FreePort();
    const std::string port_arg = "--port=" + std::to_string(port_);
    const char* bin = "/usr/bin/chromedriver";
    char* argv[] = {const_cast<char*>(bin), const_cast<char*>(port_arg.c_str()), nullptr};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    int rc = posix_spawn(&driver_, bin, &fa, nullptr, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
      error_ = "cannot start chromedriver: " + std::string(strerror(rc));
      driver_ = -1;
      return;
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (HttpCall(port_, "GET", "/status", "", {}, 2000).status != 200) {
      if (std::chrono::steady_clock::now() > deadline) {
        error_ = "chromedriver did not answer";
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    HttpAnswer s = HttpCall(
        port_, "POST", "/session",
        R"({"capabilities":{"alwaysMatch":{"goog:chromeOptions":{"binary":"/usr/bin/chromium",)"
        R"("args":["--headless=new","--no-sandbox","--disable-gpu","--disable-dev-shm-usage",)"
        R"("--window-size=1280,1000","--no-first-run","--disable-extensions"]}}}})",
        {"Content-Type: application/json"});
    rapidjson::Document d = ParseJson(s.body);
    if (s.status != 200 || !d.IsObject() || !d.HasMember("value") ||
        !d["value"].HasMember("sessionId")) {
      error_ = "cannot start a Chromium session: " + s.body;
      return;
    }
    session_ = d["value"]["sessionId"].GetString();
  }
  ~Browser() {
    if (!session_.empty()) HttpCall(port_, "DELETE", "/session/" + session_, "", {}, 20000);
    if (driver_ > 0) {
      kill(driver_, SIGTERM);
      int st;
      waitpid(driver_, &st, 0);
    }
  }
  bool ok() const { return !session_.empty(); }
  const std::string& error() const { return error_; }

  // A WebDriver command; the "value" of its answer as JSON text.
  std::string Command(const std::string& method, const std::string& what,
                      const std::string& body = "{}") {
    HttpAnswer a = HttpCall(port_, method, "/session/" + session_ + what,
                            method == "GET" ? "" : body, {"Content-Type: application/json"});
    rapidjson::Document d = ParseJson(a.body);
    EXPECT_EQ(a.status, 200) << what << ": " << a.body.substr(0, 500);
    if (!d.IsObject() || !d.HasMember("value")) return "";
    return JsonText(d["value"]);
  }
  void Go(const std::string& url) { Command("POST", "/url", "{\"url\":" + JsonString(url) + "}"); }
  // Runs `script` (a function body) in the page; its return value as JSON.
  std::string Js(const std::string& script) {
    return Command("POST", "/execute/sync",
                   "{\"script\":" + JsonString(script) + ",\"args\":[]}");
  }
  // Polls `script` until it returns true; false past `seconds`.
  bool WaitJs(const std::string& script, int seconds = 60) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    while (std::chrono::steady_clock::now() < deadline) {
      if (Js(script) == "true") return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }
  void Screenshot(const std::string& path) {
    std::string v = Command("GET", "/screenshot");
    if (v.size() < 2) return;
    std::ofstream(path, std::ios::binary) << DecodeBase64(v.substr(1, v.size() - 2));
  }

 private:
  uint16_t port_ = 0;
  pid_t driver_ = -1;
  std::string session_;
  std::string error_;
};

// Serves one HTML page at any path, on its own port (a hostile site).
class OnePageServer {
 public:
  explicit OnePageServer(std::string page) : page_(std::move(page)) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    listen(fd_, 16);
    thread_ = std::thread([this] {
      while (!stop_) {
        pollfd p{fd_, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0) continue;
        int c = accept(fd_, nullptr, nullptr);
        if (c < 0) continue;
        char buf[4096];
        pollfd q{c, POLLIN, 0};
        if (poll(&q, 1, 2000) > 0) (void)recv(c, buf, sizeof buf, 0);
        std::string out = "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n"
                          "Content-Length: " + std::to_string(page_.size()) + "\r\n\r\n" + page_;
        (void)send(c, out.data(), out.size(), MSG_NOSIGNAL);
        close(c);
      }
    });
  }
  ~OnePageServer() {
    stop_ = true;
    thread_.join();
    close(fd_);
  }
  uint16_t port() const { return port_; }

 private:
  std::string page_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace foxworker::testing

#endif  // FOXWORKER_TESTS_ADMIN_CONSOLE_HTTP_H_
