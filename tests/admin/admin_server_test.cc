// The admin HTTP endpoint over real sockets, in front of a Supervisor on the
// memory backend.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "daemon/admin/admin_server.h"
#include "daemon/config/config_parser.h"
#include "daemon/core/metrics.h"
#include "tests/core/test_daemon.h"

namespace foxworker::testing {
namespace {

namespace fs = std::filesystem;

struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
};

// Sends `raw` as is and reads until the server closes.
HttpResponse SendRaw(const std::string& raw, uint16_t port, const std::string& unix_path = "") {
  HttpResponse r;
  int fd;
  if (unix_path.empty()) {
    fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      close(fd);
      return r;
    }
  } else {
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    strncpy(a.sun_path, unix_path.c_str(), sizeof a.sun_path - 1);
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      close(fd);
      return r;
    }
  }
  size_t off = 0;
  while (off < raw.size()) {
    ssize_t n = send(fd, raw.data() + off, raw.size() - off, MSG_NOSIGNAL);
    if (n <= 0) break;
    off += n;
  }
  std::string in;
  char buf[8192];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 2000) <= 0) break;
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    in.append(buf, n);
  }
  close(fd);
  size_t end = in.find("\r\n\r\n");
  if (in.rfind("HTTP/1.", 0) != 0 || end == std::string::npos) return r;
  r.status = std::stoi(in.substr(9, 3));
  std::istringstream head(in.substr(0, end));
  std::string line;
  std::getline(head, line);
  while (std::getline(head, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon);
    for (char& c : name) c = static_cast<char>(tolower(c));
    r.headers[name] = line.substr(colon + 2);
  }
  r.body = in.substr(end + 4);
  return r;
}

HttpResponse Request(uint16_t port, const std::string& method, const std::string& path,
                     const std::string& extra_headers = "") {
  return SendRaw(method + " " + path + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n" +
                     extra_headers + "\r\n",
                 port);
}

rapidjson::Document Json(const std::string& text) {
  rapidjson::Document d;
  d.Parse(text.c_str(), text.size());
  EXPECT_FALSE(d.HasParseError()) << text;
  return d;
}

constexpr char kToken[] = "s3cret-token";

class AdminServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("foxworker_admin_" + std::to_string(getpid()));
    fs::create_directories(dir_);
    token_file_ = (dir_ / "token").string();
    std::ofstream(token_file_) << kToken << "\n";
    fs::permissions(token_file_, fs::perms::owner_read | fs::perms::owner_write);
  }
  void TearDown() override {
    if (admin_) admin_->Stop();
    if (daemon_) daemon_->Shutdown();
    fs::remove_all(dir_);
  }

  void Start(bool with_token = true, const std::string& listen = "127.0.0.1:0") {
    daemon_ = StartDaemon(std::string("daemon:\n  worker_threads: 2\n") +
                          "plugins:\n  test:\n    path: " + TestPluginPath() +
                          "\nbackends:\n  mem:\n    type: memory\n"
                          "retry_policies:\n  default:\n    max_attempts: 2\n    initial: 1ms\n"
                          "queues:\n  jobs:\n    backend: mem\n    plugin: test\n"
                          "    concurrency: 2\n  mail:\n    backend: mem\n    plugin: test\n"
                          "    middleware:\n      - circuit_breaker: {failure_threshold: 100}\n");
    ASSERT_NE(daemon_, nullptr);
    AdminConfig ac;
    ac.listen = listen;
    if (with_token) ac.token_file = token_file_;
    admin_ = std::make_unique<AdminServer>(ac, *daemon_);
    Status s = admin_->Start();
    ASSERT_TRUE(s.ok()) << s.message();
    port_ = admin_->port();
  }

  MemoryBackend* Mem() { return static_cast<MemoryBackend*>(daemon_->FindBackend("mem")); }

  fs::path dir_;
  std::string token_file_;
  std::unique_ptr<Supervisor> daemon_;
  std::unique_ptr<AdminServer> admin_;
  uint16_t port_ = 0;
};

TEST_F(AdminServerTest, HealthzSaysOk) {
  Start();
  ASSERT_GT(port_, 0);
  HttpResponse r = Request(port_, "GET", "/healthz");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "ok\n");
  EXPECT_EQ(Request(port_, "POST", "/healthz").status, 405);
}

TEST_F(AdminServerTest, ReadyzIsReadyUntilAQueueIsPaused) {
  Start();
  HttpResponse r = Request(port_, "GET", "/readyz");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(Json(r.body)["ready"].GetBool());
  daemon_->FindConsumer("mail")->SetPaused(true);
  r = Request(port_, "GET", "/readyz");
  EXPECT_EQ(r.status, 503);
  auto d = Json(r.body);
  EXPECT_FALSE(d["ready"].GetBool());
  ASSERT_EQ(d["reasons"].Size(), 1u);
  EXPECT_STREQ(d["reasons"][0].GetString(), "queue mail is paused");
  EXPECT_EQ(r.headers["content-type"], "application/json");
}

TEST_F(AdminServerTest, MetricsParseAsExpositionFormatAndCountWhatWasProcessed) {
  Start();
  auto plugin_counter =
      MetricsRegistry::Default().DefineCounter("foxworker_plugin_admin_test_total", "test");
  ASSERT_TRUE(plugin_counter.ok());
  (*plugin_counter)->Increment(7);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(Mem()->Enqueue("jobs", TypedMessage("ok"), {}).ok());
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(Mem()->Enqueue("jobs", TypedMessage("reject"), {}).ok());
  ASSERT_TRUE(Mem()->Enqueue("mail", TypedMessage("fail"), {}).ok());  // 2 attempts, then dead
  ASSERT_TRUE(WaitFor([&] {
    auto j = daemon_->FindConsumer("jobs")->Stats();
    auto m = daemon_->FindConsumer("mail")->Stats();
    return j.acked + j.dead_lettered == 13 && m.dead_lettered == 1 && j.in_flight == 0 &&
           m.in_flight == 0;
  }));

  HttpResponse r = Request(port_, "GET", "/metrics");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8");

  const std::regex help(R"(# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) .*)");
  const std::regex type(R"(# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped))");
  const std::regex sample(
      R"(([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")(,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")*\})? ([-+]?[0-9.]+(?:e[-+]?[0-9]+)?|NaN|[+-]Inf))");
  std::map<std::string, std::string> types;  // family -> type
  std::map<std::string, double> values;      // "name{labels}" -> value
  std::string current;
  std::istringstream lines(r.body);
  std::string line;
  int n = 0;
  while (std::getline(lines, line)) {
    ++n;
    std::smatch m;
    if (line.rfind("# HELP ", 0) == 0) {
      ASSERT_TRUE(std::regex_match(line, m, help)) << "line " << n << ": " << line;
    } else if (line.rfind("# TYPE ", 0) == 0) {
      ASSERT_TRUE(std::regex_match(line, m, type)) << "line " << n << ": " << line;
      ASSERT_EQ(types.count(m[1]), 0u) << "family declared twice: " << line;
      types[m[1]] = m[2];
      current = m[1];
    } else {
      ASSERT_TRUE(std::regex_match(line, m, sample)) << "line " << n << ": " << line;
      std::string name = m[1];
      // A sample belongs to the family declared last (histograms add suffixes).
      ASSERT_TRUE(name == current || name == current + "_bucket" || name == current + "_sum" ||
                  name == current + "_count")
          << "line " << n << ": " << line << " outside its family " << current;
      std::string key = name + m[2].str();
      ASSERT_EQ(values.count(key), 0u) << "duplicate series " << key;
      values[key] = std::stod(m[5]);
    }
  }
  EXPECT_EQ(values["foxworker_messages_received_total{queue=\"jobs\"}"], 13);
  EXPECT_EQ(values["foxworker_messages_acked_total{queue=\"jobs\"}"], 10);
  EXPECT_EQ(values["foxworker_messages_dead_lettered_total{queue=\"jobs\"}"], 3);
  EXPECT_EQ(values["foxworker_messages_retried_total{queue=\"jobs\"}"], 0);
  EXPECT_EQ(values["foxworker_messages_received_total{queue=\"mail\"}"], 2);
  EXPECT_EQ(values["foxworker_messages_retried_total{queue=\"mail\"}"], 1);
  EXPECT_EQ(values["foxworker_messages_dead_lettered_total{queue=\"mail\"}"], 1);
  EXPECT_EQ(values["foxworker_messages_timed_out_total{queue=\"mail\"}"], 0);
  EXPECT_EQ(values["foxworker_messages_in_flight{queue=\"jobs\"}"], 0);
  EXPECT_EQ(values["foxworker_backend_connected{backend=\"mem\"}"], 1);
  EXPECT_EQ(values["foxworker_backend_reconnects_total{backend=\"mem\"}"], 0);
  EXPECT_GT(values["foxworker_process_resident_memory_bytes"], 1e6);
  EXPECT_GE(values["foxworker_uptime_seconds"], 0);
  EXPECT_EQ(values["foxworker_plugin_admin_test_total"], 7);
  EXPECT_EQ(types["foxworker_messages_acked_total"], "counter");
  EXPECT_EQ(types["foxworker_messages_in_flight"], "gauge");
}

TEST_F(AdminServerTest, QueuesJsonShowsCountsBackendAndMiddlewareState) {
  Start();
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(Mem()->Enqueue("mail", TypedMessage("ok"), {}).ok());
  ASSERT_TRUE(WaitFor([&] { return daemon_->FindConsumer("mail")->Stats().acked == 4; }));
  HttpResponse r = Request(port_, "GET", "/api/v1/queues");
  ASSERT_EQ(r.status, 200);
  auto d = Json(r.body);
  ASSERT_EQ(d["queues"].Size(), 2u);
  const auto& mail = d["queues"][1];
  EXPECT_STREQ(mail["name"].GetString(), "mail");
  EXPECT_STREQ(mail["backend"].GetString(), "mem");
  EXPECT_TRUE(mail["backend_connected"].GetBool());
  EXPECT_FALSE(mail["paused"].GetBool());
  EXPECT_EQ(mail["in_flight"].GetInt64(), 0);
  EXPECT_EQ(mail["counts"]["acked"].GetUint64(), 4u);
  bool breaker = false;
  for (const auto& mw : mail["middleware"].GetArray()) {
    if (std::string(mw["type"].GetString()) != "circuit_breaker") continue;
    breaker = true;
    ASSERT_TRUE(mw.HasMember("state"));
    EXPECT_EQ(std::string(mw["state"].GetString()).rfind("closed", 0), 0u);
  }
  EXPECT_TRUE(breaker) << r.body;
  EXPECT_STREQ(d["backends"][0]["name"].GetString(), "mem");
  EXPECT_TRUE(d["backends"][0]["connected"].GetBool());

  r = Request(port_, "GET", "/api/v1/queues/jobs");
  ASSERT_EQ(r.status, 200);
  EXPECT_STREQ(Json(r.body)["name"].GetString(), "jobs");
  r = Request(port_, "GET", "/api/v1/queues/nope");
  EXPECT_EQ(r.status, 404);
  EXPECT_TRUE(Json(r.body).HasMember("error"));
}

TEST_F(AdminServerTest, PauseAndResumeNeedTheBearerToken) {
  Start();
  const std::string auth = std::string("Authorization: Bearer ") + kToken + "\r\n";
  HttpResponse r = Request(port_, "POST", "/api/v1/queues/jobs/pause");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.headers.count("www-authenticate"), 1u);
  EXPECT_TRUE(Json(r.body).HasMember("error"));
  EXPECT_EQ(Request(port_, "POST", "/api/v1/queues/jobs/pause",
                    "Authorization: Bearer wrong\r\n").status, 401);
  EXPECT_EQ(Request(port_, "POST", "/api/v1/queues/jobs/pause",
                    "Authorization: Basic Zm94OnMzY3JldA==\r\n").status, 401);
  EXPECT_FALSE(daemon_->FindConsumer("jobs")->paused());

  r = Request(port_, "POST", "/api/v1/queues/jobs/pause", auth);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(Json(r.body)["paused"].GetBool());
  EXPECT_TRUE(daemon_->FindConsumer("jobs")->paused());
  // A paused queue fetches nothing.
  ASSERT_TRUE(Mem()->Enqueue("jobs", TypedMessage("ok"), {}).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(daemon_->FindConsumer("jobs")->Stats().received, 0u);
  EXPECT_EQ(Request(port_, "GET", "/readyz").status, 503);

  r = Request(port_, "POST", "/api/v1/queues/jobs/resume", auth);
  EXPECT_EQ(r.status, 200);
  EXPECT_FALSE(daemon_->FindConsumer("jobs")->paused());
  EXPECT_TRUE(WaitFor([&] { return daemon_->FindConsumer("jobs")->Stats().acked == 1; }));

  EXPECT_EQ(Request(port_, "POST", "/api/v1/queues/nope/pause", auth).status, 404);
  EXPECT_EQ(Request(port_, "GET", "/api/v1/queues/jobs/pause", auth).status, 405);
  EXPECT_EQ(Request(port_, "POST", "/api/v1/queues/jobs/explode", auth).status, 404);
}

TEST_F(AdminServerTest, WithoutATokenMutatingEndpointsAreDisabled) {
  Start(/*with_token=*/false);
  HttpResponse r = Request(port_, "POST", "/api/v1/queues/jobs/pause",
                           "Authorization: Bearer anything\r\n");
  EXPECT_EQ(r.status, 403);
  EXPECT_NE(r.body.find("disabled"), std::string::npos) << r.body;
  EXPECT_FALSE(daemon_->FindConsumer("jobs")->paused());
  EXPECT_EQ(Request(port_, "GET", "/api/v1/queues").status, 200);
}

TEST_F(AdminServerTest, BadRequestsGet4xxAndTheServerKeepsServing) {
  Start();
  HttpResponse r = Request(port_, "GET", "/nope");
  EXPECT_EQ(r.status, 404);
  EXPECT_TRUE(Json(r.body).HasMember("error"));
  EXPECT_EQ(Request(port_, "GET", "/api/v1/queues/../../etc/passwd").status, 404);
  EXPECT_EQ(Request(port_, "GET", "/api/v1/queues/a%00b").status, 404);
  EXPECT_EQ(Request(port_, "GET", "/api/v1/queues/jobs/pause/more").status, 404);
  EXPECT_EQ(Request(port_, "DELETE", "/metrics").status, 405);

  // Not HTTP at all, a bad request line, an absolute-form target with no
  // path, oversized headers and an oversized body.
  int s = SendRaw("\x16\x03\x01\x02\x00garbage\r\n\r\n", port_).status;
  EXPECT_TRUE(s == 0 || (s >= 400 && s < 500)) << s;
  s = SendRaw("GET\r\n\r\n", port_).status;
  EXPECT_TRUE(s == 0 || (s >= 400 && s < 500)) << s;
  s = SendRaw("GET http://x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", port_).status;
  EXPECT_TRUE(s >= 400 && s < 500) << s;
  s = Request(port_, "GET", "/healthz", "X-Big: " + std::string(20000, 'a') + "\r\n").status;
  EXPECT_TRUE(s == 0 || (s >= 400 && s < 500)) << s;
  s = SendRaw("POST /api/v1/queues/jobs/pause HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
              "Content-Length: 100000\r\n\r\n" + std::string(100000, 'x'), port_).status;
  EXPECT_TRUE(s == 0 || (s >= 400 && s < 500)) << s;

  EXPECT_EQ(Request(port_, "GET", "/healthz").status, 200) << "still serving";
}

TEST_F(AdminServerTest, ListensOnAUnixSocket) {
  const std::string path = (dir_ / "admin.sock").string();
  Start(true, "unix:" + path);
  EXPECT_EQ(admin_->address(), "unix:" + path);
  HttpResponse r = SendRaw("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 0, path);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ((fs::status(path).permissions() & fs::perms::others_all), fs::perms::none);
  admin_->Stop();
  EXPECT_FALSE(fs::exists(path));
}

TEST_F(AdminServerTest, AnUnreadableOrEmptyTokenFileRefusesToStart) {
  daemon_ = StartDaemon("plugins:\n  test:\n    path: " + TestPluginPath() +
                        "\nbackends:\n  mem:\n    type: memory\n"
                        "queues:\n  jobs:\n    backend: mem\n    plugin: test\n");
  ASSERT_NE(daemon_, nullptr);
  AdminConfig ac{"127.0.0.1:0", (dir_ / "missing").string()};
  EXPECT_FALSE(AdminServer(ac, *daemon_).Start().ok());
  std::ofstream((dir_ / "empty").string()) << "\n";
  ac.token_file = (dir_ / "empty").string();
  Status s = AdminServer(ac, *daemon_).Start();
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("empty"), std::string::npos) << s.message();
}

TEST(AdminConfigTest, ParsesValidatesAndPrints) {
  auto c = ParseConfigString(
      "daemon:\n  admin:\n    listen: 127.0.0.1:9090\n    token_file: token\n", "t.yaml", "/etc/fw");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->daemon.admin.listen, "127.0.0.1:9090");
  EXPECT_EQ(c->daemon.admin.token_file, "/etc/fw/token");
  std::string printed = FormatConfig(*c);
  EXPECT_NE(printed.find("listen: \"127.0.0.1:9090\""), std::string::npos) << printed;

  auto off = ParseConfigString("daemon:\n  log_level: info\n", "t.yaml", "/etc/fw");
  ASSERT_TRUE(off.ok());
  EXPECT_TRUE(off->daemon.admin.listen.empty());

  for (const char* bad : {"localhost:9090", "127.0.0.1:99999", "127.0.0.1", "unix:relative"}) {
    auto e = ParseConfigString(std::string("daemon:\n  admin:\n    listen: \"") + bad + "\"\n",
                               "t.yaml", "/etc/fw");
    ASSERT_FALSE(e.ok()) << bad;
    EXPECT_NE(e.status().message().find("t.yaml:3:"), std::string::npos) << e.status().message();
    EXPECT_NE(e.status().message().find("daemon.admin.listen"), std::string::npos)
        << e.status().message();
  }
  auto unknown = ParseConfigString("daemon:\n  admin:\n    listn: x\n", "t.yaml", "/etc/fw");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("listen"), std::string::npos);
  EXPECT_TRUE(ParseConfigString("daemon:\n  admin:\n    listen: \"[::1]:0\"\n", "t.yaml", "/")
                  .ok());
}

}  // namespace
}  // namespace foxworker::testing
