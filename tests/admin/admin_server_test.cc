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

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "daemon/app/admin/admin_server.h"
#include "daemon/config/config_parser.h"
#include "daemon/base/clock.h"
#include "daemon/core/metrics.h"
#include "tests/core/test_daemon.h"
#include "tests/support/log_capture.h"

namespace foxworker::testing {
namespace {

namespace fs = std::filesystem;

struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
};

// Sends `raw` as is and reads until the server closes.
// With `half_close` the client shuts its side down after sending, as a
// client that has nothing more to send may.
HttpResponse SendRaw(const std::string& raw, uint16_t port, const std::string& unix_path = "",
                     bool half_close = false) {
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
  if (half_close) shutdown(fd, SHUT_WR);
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

// A strict reader of the Prometheus text exposition format (0.0.4), as far
// as foxworkerd uses it: every family has a HELP line, then a TYPE line,
// then its samples; names and labels follow the charset rules; label values
// use only the \\, \" and \n escapes; no series appears twice; counters are
// never negative; every histogram series has buckets with increasing le
// ending in +Inf, non-decreasing counts, a _sum, and a _count equal to its
// +Inf bucket.
struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};
struct Family {
  std::string type;
  std::string help;
  std::vector<Sample> samples;
};
struct Exposition {
  std::map<std::string, Family> families;
  std::map<std::string, double> values;  // "name{a=\"1\",b=\"2\"}" (sorted labels) -> value

  static std::string Key(const std::string& name, std::vector<std::string> labels) {
    std::sort(labels.begin(), labels.end());
    std::string key = name;
    if (!labels.empty()) {
      key += '{';
      for (size_t i = 0; i < labels.size(); ++i) key += (i ? "," : "") + labels[i];
      key += '}';
    }
    return key;
  }
  bool Has(const std::string& name, const std::vector<std::string>& labels) const {
    return values.count(Key(name, labels)) != 0;
  }
  // The sample's value; a missing one fails the test and reads as -1.
  double Value(const std::string& name, const std::vector<std::string>& labels) const {
    auto it = values.find(Key(name, labels));
    EXPECT_TRUE(it != values.end()) << "no sample " << Key(name, labels);
    return it == values.end() ? -1 : it->second;
  }
};

bool IsMetricName(const std::string& s) {
  static const std::regex re("[a-zA-Z_:][a-zA-Z0-9_:]*");
  return std::regex_match(s, re);
}

bool ParseValue(const std::string& text, double* out) {
  if (text == "+Inf" || text == "Inf") {
    *out = INFINITY;
  } else if (text == "-Inf") {
    *out = -INFINITY;
  } else if (text == "NaN") {
    *out = NAN;
  } else {
    static const std::regex number(R"([-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)");
    if (!std::regex_match(text, number)) return false;
    *out = std::stod(text);
  }
  return true;
}

// Returns "" or what is wrong, with the line number.
std::string ParseExposition(const std::string& text, Exposition* e) {
  if (!text.empty() && text.back() != '\n') return "the text does not end in a newline";
  std::istringstream lines(text);
  std::string line, current, pending_help;
  int n = 0;
  auto at = [&](const std::string& what) {
    return "line " + std::to_string(n) + ": " + what + ": " + line;
  };
  while (std::getline(lines, line)) {
    ++n;
    if (line.rfind("# HELP ", 0) == 0) {
      std::string rest = line.substr(7);
      size_t sp = rest.find(' ');
      std::string name = rest.substr(0, sp);
      if (!IsMetricName(name)) return at("bad metric name in HELP");
      if (e->families.count(name) || name == pending_help) return at("family declared twice");
      pending_help = name;
      continue;
    }
    if (line.rfind("# TYPE ", 0) == 0) {
      std::istringstream words(line.substr(7));
      std::string name, type, extra;
      words >> name >> type;
      if (words >> extra) return at("trailing text");
      if (name != pending_help) return at("TYPE without a HELP line just before it");
      if (type != "counter" && type != "gauge" && type != "histogram") return at("bad type");
      Family& f = e->families[name];
      f.type = type;
      current = name;
      pending_help.clear();
      continue;
    }
    if (line.empty() || line[0] == '#') return at("unexpected line");
    if (current.empty() || !pending_help.empty()) return at("sample outside a family");
    // name{labels} value
    size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    Sample s;
    s.name = line.substr(0, i);
    if (!IsMetricName(s.name)) return at("bad metric name");
    Family& f = e->families[current];
    const bool histogram = f.type == "histogram";
    if (!(s.name == current ||
          (histogram && (s.name == current + "_bucket" || s.name == current + "_sum" ||
                         s.name == current + "_count"))))
      return at("sample not of family " + current);
    if (histogram && s.name == current) return at("histogram sample without a suffix");
    std::vector<std::string> label_texts;
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        size_t eq = line.find('=', i);
        if (eq == std::string::npos) return at("label without =");
        std::string label = line.substr(i, eq - i);
        static const std::regex label_re("[a-zA-Z_][a-zA-Z0-9_]*");
        if (!std::regex_match(label, label_re) || label.rfind("__", 0) == 0)
          return at("bad label name");
        i = eq + 1;
        if (i >= line.size() || line[i] != '"') return at("label value not quoted");
        std::string value;
        for (++i; i < line.size() && line[i] != '"'; ++i) {
          if (line[i] == '\\') {
            if (++i >= line.size()) return at("escape at end of line");
            if (line[i] == 'n') value += '\n';
            else if (line[i] == '\\' || line[i] == '"') value += line[i];
            else return at("bad escape");
          } else {
            value += line[i];
          }
        }
        if (i >= line.size()) return at("unterminated label value");
        label_texts.push_back(line.substr(eq - label.size(), i + 1 - (eq - label.size())));
        if (!s.labels.emplace(label, value).second) return at("label given twice");
        ++i;  // closing quote
        if (i < line.size() && line[i] == ',') ++i;
        else if (i < line.size() && line[i] != '}') return at("expected , or }");
      }
      if (i >= line.size()) return at("unterminated label set");
      ++i;  // '}'
    }
    if (i >= line.size() || line[i] != ' ') return at("no space before the value");
    std::string value_text = line.substr(i + 1);
    if (value_text.find(' ') != std::string::npos) return at("timestamps are not expected");
    if (!ParseValue(value_text, &s.value)) return at("bad value");
    if (f.type == "counter" && !(s.value >= 0)) return at("negative or NaN counter");
    if ((s.name.size() > 6 && s.name.compare(s.name.size() - 6, 6, "_total") == 0) !=
        (f.type == "counter"))
      return at("counters, and only counters, end in _total");
    if (histogram && (s.name == current + "_bucket") != (s.labels.count("le") == 1))
      return at("le belongs on _bucket samples only");
    std::string key = Exposition::Key(s.name, label_texts);
    if (!e->values.emplace(key, s.value).second) return at("duplicate series");
    f.samples.push_back(std::move(s));
  }
  if (!pending_help.empty()) return "HELP for " + pending_help + " without a TYPE";
  // Histogram series: group by labels without le.
  for (const auto& [name, f] : e->families) {
    if (f.type != "histogram") continue;
    struct Series {
      std::vector<std::pair<double, double>> buckets;  // (le, count) in text order
      bool has_sum = false, has_count = false;
      double count = 0;
    };
    std::map<std::map<std::string, std::string>, Series> series;
    for (const Sample& s : f.samples) {
      auto labels = s.labels;
      std::string le;
      if (auto it = labels.find("le"); it != labels.end()) {
        le = it->second;
        labels.erase(it);
      }
      Series& x = series[labels];
      if (s.name == name + "_bucket") {
        double bound;
        if (!ParseValue(le, &bound) || std::isnan(bound)) return name + ": bad le \"" + le + "\"";
        x.buckets.emplace_back(bound, s.value);
      } else if (s.name == name + "_sum") {
        x.has_sum = true;
      } else {
        x.has_count = true;
        x.count = s.value;
      }
    }
    for (const auto& [labels, x] : series) {
      if (x.buckets.empty() || !x.has_sum || !x.has_count)
        return name + ": a series lacks _bucket, _sum or _count";
      for (size_t i = 1; i < x.buckets.size(); ++i) {
        if (!(x.buckets[i].first > x.buckets[i - 1].first)) return name + ": le not increasing";
        if (x.buckets[i].second < x.buckets[i - 1].second)
          return name + ": bucket counts decrease";
      }
      if (!std::isinf(x.buckets.back().first)) return name + ": no le=\"+Inf\" bucket";
      if (x.buckets.back().second != x.count) return name + ": _count is not the +Inf bucket";
    }
  }
  return "";
}


using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// A client on its own connection that writes its request when told to (a
// byte at a time, for the slow ones) and notes when the server closed the
// connection, in seconds from connecting.
struct Client {
  int fd = -1;
  std::string request;  // what is left to send
  Clock::time_point opened;
  double closed_after = -1;  // < 0: still open
  std::string received;

  // Connects and sends `first` at once; `rest` is for SendByte().
  Client(uint16_t port, const std::string& first, std::string rest = "")
      : request(std::move(rest)) {
    opened = Clock::now();
    fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << strerror(errno);
    if (!first.empty()) Send(first);
  }
  ~Client() { close(fd); }
  bool open() const { return closed_after < 0; }
  void Send(const std::string& data) {
    EXPECT_EQ(send(fd, data.data(), data.size(), MSG_NOSIGNAL), static_cast<ssize_t>(data.size()));
  }
  void SendByte() {
    if (!open() || request.empty()) return;
    if (send(fd, request.data(), 1, MSG_NOSIGNAL) == 1) request.erase(0, 1);
  }
  // After poll() said the socket is readable.
  void Read() {
    char buf[8192];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n > 0) {
      received.append(buf, n);
    } else {
      closed_after = SecondsSince(opened);
    }
  }
  // Reads until `done()` or the server closes or `ms` pass.
  template <typename Done>
  void ReadUntil(Done done, int ms) {
    const auto end = Clock::now() + std::chrono::milliseconds(ms);
    while (open() && !done() && Clock::now() < end) {
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 10) > 0) Read();
    }
  }
};

// Sends every client one more byte each second until the server closed them
// all or `limit_s` passed, asking /healthz on a fresh connection at each
// tick: it must answer meanwhile. Closes are noted as they happen.
void TrickleUntilClosed(const std::vector<Client*>& clients, uint16_t port, double limit_s) {
  const auto start = Clock::now();
  for (int tick = 0; SecondsSince(start) < limit_s; ++tick) {
    std::vector<Client*> open;
    for (Client* c : clients)
      if (c->open()) open.push_back(c);
    if (open.empty()) return;
    for (Client* c : open) c->SendByte();
    HttpResponse health = Request(port, "GET", "/healthz");
    EXPECT_EQ(health.status, 200) << "/healthz at " << SecondsSince(start) << "s";
    const auto next = start + std::chrono::seconds(tick + 1);
    while (Clock::now() < next) {
      std::vector<pollfd> fds;
      for (Client* c : open)
        if (c->open()) fds.push_back({c->fd, POLLIN, 0});
      if (fds.empty()) break;
      int ms = static_cast<int>(
          std::chrono::duration_cast<std::chrono::milliseconds>(next - Clock::now()).count());
      if (poll(fds.data(), fds.size(), std::max(ms, 0)) <= 0) continue;
      for (const pollfd& p : fds)
        if (p.revents != 0)
          for (Client* c : open)
            if (c->fd == p.fd) c->Read();
    }
  }
}

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + 1)) ++n;
  return n;
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

  static constexpr char kQueues[] =
      "queues:\n  jobs:\n    backend: mem\n    plugin: test\n"
      "    concurrency: 2\n  mail:\n    backend: mem\n    plugin: test\n"
      "    middleware:\n      - circuit_breaker: {failure_threshold: 100}\n";

  void Start(bool with_token = true, const std::string& listen = "127.0.0.1:0",
             const std::string& queues = kQueues) {
    daemon_ = StartDaemon(std::string("daemon:\n  worker_threads: 2\n") +
                          "plugins:\n  test:\n    path: " + TestPluginPath() +
                          "\nbackends:\n  mem:\n    type: memory\n"
                          "retry_policies:\n  default:\n    max_attempts: 2\n    initial: 1ms\n" +
                          queues);
    ASSERT_NE(daemon_, nullptr);
    AdminConfig ac;
    ac.listen = listen;
    if (with_token) ac.token_file = token_file_;
    if (request_timeout_) ac.request_timeout = *request_timeout_;
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
  std::optional<Duration> request_timeout_;  // unset: AdminConfig's default
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

// A handler past its timeout is named in /readyz (not ready), listed in the
// queue's JSON and counted by a gauge until its call returns.
TEST_F(AdminServerTest, AStuckHandlerIsReportedUntilItReturns) {
  Start(true, "127.0.0.1:0",
        "queues:\n  jobs:\n    backend: mem\n    plugin: test\n    timeout: 100ms\n");
  ASSERT_FALSE(HasFatalFailure());
  Message m = TypedMessage("sleep");
  m.payload = "1500";
  ASSERT_TRUE(Mem()->Enqueue("jobs", m, {}).ok());
  Consumer* c = daemon_->FindConsumer("jobs");
  ASSERT_TRUE(WaitFor([&] { return c->Stats().stuck == 1; }));
  HttpResponse r = Request(port_, "GET", "/readyz");
  EXPECT_EQ(r.status, 503) << r.body;
  auto d = Json(r.body);
  ASSERT_EQ(d["reasons"].Size(), 1u) << r.body;
  const std::string reason = d["reasons"][0].GetString();
  EXPECT_EQ(reason.rfind("queue jobs: 1 handler(s) stuck past their timeout (longest: sleep on "
                         "message ", 0),
            0u)
      << reason;
  EXPECT_NE(reason.find("timeout 0.1s)"), std::string::npos) << reason;

  r = Request(port_, "GET", "/api/v1/queues/jobs");
  ASSERT_EQ(r.status, 200);
  auto q = Json(r.body);
  ASSERT_EQ(q["stuck"].Size(), 1u) << r.body;
  EXPECT_STREQ(q["stuck"][0]["handler"].GetString(), "sleep");
  EXPECT_EQ(q["stuck"][0]["attempt"].GetUint(), 1u);
  EXPECT_GE(q["stuck"][0]["running_for_s"].GetDouble(), 0.1);
  EXPECT_DOUBLE_EQ(q["stuck"][0]["timeout_s"].GetDouble(), 0.1);
  EXPECT_FALSE(q["stuck"][0]["deferred"].GetBool());

  r = Request(port_, "GET", "/metrics");
  EXPECT_NE(r.body.find("\nfoxworker_handlers_stuck{queue=\"jobs\"} 1\n"), std::string::npos)
      << r.body;

  // The call returns after 1.5 s; the message is retried then.
  ASSERT_TRUE(WaitFor([&] { return c->Stats().stuck == 0 && c->Stats().retried == 1; }));
  EXPECT_EQ(Request(port_, "GET", "/readyz").status, 200);
  EXPECT_EQ(Json(Request(port_, "GET", "/api/v1/queues/jobs").body)["stuck"].Size(), 0u);
}

TEST_F(AdminServerTest, MetricsParseAsExpositionFormatAndCountWhatWasProcessed) {
  Start(true, "127.0.0.1:0",
        std::string(kQueues) + "      - rate_limit: {rate: 40/s, burst: 1}\n");
  ASSERT_FALSE(HasFatalFailure());
  auto plugin_counter =
      MetricsRegistry::Default().DefineCounter("foxworker_plugin_admin_test_total", "test");
  ASSERT_TRUE(plugin_counter.ok());
  (*plugin_counter)->Increment(7);
  // jobs: 50 acked, 7 rejected, 3 that fail twice (3 retries, then dead
  // letters: retries exhausted), 1 of a type nothing handles (rejected
  // without a handler call), 1 that waited 2s in the queue before this run.
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(Mem()->Enqueue("jobs", TypedMessage("ok"), {}).ok());
  for (int i = 0; i < 7; ++i)
    ASSERT_TRUE(Mem()->Enqueue("jobs", TypedMessage("reject"), {}).ok());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(Mem()->Enqueue("jobs", TypedMessage("fail"), {}).ok());
  ASSERT_TRUE(Mem()->Enqueue("jobs", TypedMessage("no_such_type"), {}).ok());
  Message old = TypedMessage("sleep", "30");  // and its handler takes >= 30ms
  old.enqueued_at_ms = WallMs() - 2000;
  ASSERT_TRUE(Mem()->Enqueue("jobs", std::move(old), {}).ok());
  // mail: rate limited to 40/s with a burst of 1, so 5 messages wait.
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(Mem()->Enqueue("mail", TypedMessage("ok"), {}).ok());
  ASSERT_TRUE(WaitFor([&] {
    auto j = daemon_->FindConsumer("jobs")->Stats();
    auto m = daemon_->FindConsumer("mail")->Stats();
    return j.acked == 51 && j.dead_lettered == 11 && m.acked == 5 && j.in_flight == 0 &&
           m.in_flight == 0;
  }));

  HttpResponse r = Request(port_, "GET", "/metrics");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8");
  Exposition e;
  std::string error = ParseExposition(r.body, &e);
  ASSERT_EQ(error, "") << r.body;

  const std::string jobs = "queue=\"jobs\"", mail = "queue=\"mail\"";
  EXPECT_EQ(e.Value("foxworker_messages_received_total", {jobs}), 65);  // 62 + 3 retries
  EXPECT_EQ(e.Value("foxworker_messages_acked_total", {jobs}), 51);
  EXPECT_EQ(e.Value("foxworker_messages_retried_total", {jobs}), 3);
  EXPECT_EQ(e.Value("foxworker_messages_rejected_total", {jobs}), 8);
  EXPECT_EQ(e.Value("foxworker_messages_dead_lettered_total", {jobs}), 11);  // 8 + 3 exhausted
  EXPECT_EQ(e.Value("foxworker_messages_timed_out_total", {jobs}), 0);
  EXPECT_EQ(e.Value("foxworker_messages_in_flight", {jobs}), 0);
  EXPECT_EQ(e.Value("foxworker_messages_received_total", {mail}), 5);
  EXPECT_EQ(e.Value("foxworker_messages_acked_total", {mail}), 5);
  EXPECT_EQ(e.Value("foxworker_messages_rejected_total", {mail}), 0);

  // Handler time: one observation per handler call, per handler.
  const std::string ok = "handler=\"ok\"", reject = "handler=\"reject\"",
                    fail = "handler=\"fail\"", sleep = "handler=\"sleep\"";
  EXPECT_EQ(e.Value("foxworker_handler_duration_seconds_count", {ok, jobs}), 50);
  EXPECT_EQ(e.Value("foxworker_handler_duration_seconds_count", {reject, jobs}), 7);
  EXPECT_EQ(e.Value("foxworker_handler_duration_seconds_count", {fail, jobs}), 6);
  EXPECT_EQ(e.Value("foxworker_handler_duration_seconds_count", {sleep, jobs}), 1);
  EXPECT_EQ(e.Value("foxworker_handler_duration_seconds_count", {ok, mail}), 5);
  EXPECT_EQ(e.Value("foxworker_handler_duration_seconds_count", {"handler=\"batch\"", jobs}), 0);
  EXPECT_EQ(e.Value("foxworker_handler_duration_seconds_bucket", {sleep, jobs, "le=\"0.025\""}),
            0);
  EXPECT_GE(e.Value("foxworker_handler_duration_seconds_sum", {sleep, jobs}), 0.030);
  EXPECT_LT(e.Value("foxworker_handler_duration_seconds_sum", {ok, jobs}), 1.0);
  double calls = 0;
  for (const auto& s : e.families["foxworker_handler_duration_seconds"].samples)
    if (s.name == "foxworker_handler_duration_seconds_count" && s.labels.at("queue") == "jobs")
      calls += s.value;
  EXPECT_EQ(calls, 64);  // received but for the unknown type
  // Queue wait: per started handler; the 2s-old message is past 1s.
  EXPECT_EQ(e.Value("foxworker_queue_wait_seconds_count", {jobs}), 64);
  EXPECT_EQ(e.Value("foxworker_queue_wait_seconds_bucket", {jobs, "le=\"1\""}), 63);
  EXPECT_GE(e.Value("foxworker_queue_wait_seconds_sum", {jobs}), 2.0);
  EXPECT_EQ(e.Value("foxworker_queue_wait_seconds_count", {mail}), 5);

  // Middleware: the breaker is closed; the rate limit held fetching back
  // for about 4 x 25ms.
  EXPECT_EQ(e.Value("foxworker_circuit_breaker_state", {mail, "state=\"closed\""}), 1);
  EXPECT_EQ(e.Value("foxworker_circuit_breaker_state", {mail, "state=\"open\""}), 0);
  EXPECT_EQ(e.Value("foxworker_circuit_breaker_state", {mail, "state=\"half_open\""}), 0);
  EXPECT_EQ(e.Value("foxworker_circuit_breaker_opened_total", {mail}), 0);
  EXPECT_FALSE(e.Has("foxworker_circuit_breaker_state", {jobs, "state=\"closed\""}));
  EXPECT_GE(e.Value("foxworker_rate_limit_waits_total", {mail, "limit=\"own\""}), 1);
  EXPECT_GE(e.Value("foxworker_rate_limit_wait_seconds_total", {mail, "limit=\"own\""}), 0.05);
  EXPECT_LT(e.Value("foxworker_rate_limit_wait_seconds_total", {mail, "limit=\"own\""}), 5);

  EXPECT_EQ(e.Value("foxworker_backend_connected", {"backend=\"mem\""}), 1);
  EXPECT_EQ(e.Value("foxworker_backend_reconnects_total", {"backend=\"mem\""}), 0);
  EXPECT_GT(e.Value("foxworker_process_resident_memory_bytes", {}), 1e6);
  EXPECT_GE(e.Value("foxworker_uptime_seconds", {}), 0);
  EXPECT_EQ(e.Value("foxworker_plugin_admin_test_total", {}), 7);
  EXPECT_EQ(e.families["foxworker_messages_acked_total"].type, "counter");
  EXPECT_EQ(e.families["foxworker_messages_in_flight"].type, "gauge");
  EXPECT_EQ(e.families["foxworker_handler_duration_seconds"].type, "histogram");
  // Labels stay bounded: no message ids anywhere.
  for (const auto& [name, family] : e.families)
    for (const auto& s : family.samples)
      for (const auto& [label, value] : s.labels)
        EXPECT_TRUE(label == "queue" || label == "handler" || label == "backend" ||
                    label == "state" || label == "limit" || label == "le" || label == "version")
            << name << " has label " << label;
}

TEST(ExpositionParserTest, RejectsMalformedText) {
  Exposition e;
  EXPECT_EQ(ParseExposition("# HELP a_total A.\n# TYPE a_total counter\na_total 1\n", &e), "");
  const char* bad[] = {
      "a_total 1\n",                                                  // no TYPE
      "# HELP a_total A.\n# TYPE a_total counter\n",                  // valid: no samples
      "# TYPE a_total counter\n# HELP a_total A.\na_total 1\n",       // HELP after TYPE
      "# HELP a_total A.\n# TYPE a_total counter\na-b 1\n",           // name charset
      "# HELP a_total A.\n# TYPE a_total counter\na_total{q=\"x} 1\n",  // open quote
      "# HELP a_total A.\n# TYPE a_total counter\na_total{q=\"x\",q=\"y\"} 1\n",  // twice
      "# HELP a_total A.\n# TYPE a_total counter\na_total{1q=\"x\"} 1\n",  // label charset
      "# HELP a_total A.\n# TYPE a_total counter\na_total one\n",     // value
      "# HELP a_total A.\n# TYPE a_total counter\na_total -1\n",      // negative counter
      "# HELP a_total A.\n# TYPE a_total counter\na_total 1\na_total 2\n",  // duplicate series
      "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\n"
      "h_sum 1\nh_count 1\n",                                         // decreasing buckets
      "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",  // no +Inf
      "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 1\n",  // count
      "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n",  // no _sum
  };
  int i = 0;
  for (const char* text : bad) {
    Exposition x;
    std::string error = ParseExposition(text, &x);
    if (i++ == 1) {
      EXPECT_EQ(error, "") << text;  // a family without samples is valid
    } else {
      EXPECT_NE(error, "") << text;
    }
  }
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

// A request line evhttp cannot parse is answered 400 (JSON) and closed at
// once, not left open until the request timeout (found by
// fuzz/admin_http_fuzzer: "HTTP/1/1" waited the whole 10 s).
TEST_F(AdminServerTest, AnUnparsableRequestLineIsAnsweredAtOnce) {
  Start();
  using namespace std::string_literals;
  for (const std::string& raw :
       {"GET /healthz HTTP/1/1\r\n\r\n"s, "GET\r\n\r\n"s, "GET /healthz HTTP/9.9.9\r\n\r\n"s,
        "\x16\x03\x01\x02\x00garbage\r\n\r\n"s, "GET /healthz HTTP/1.1 extra\r\n\r\n"s,
        "GET  HTTP/1.1\r\n\r\n"s}) {
    for (bool half_close : {false, true}) {
      const auto t0 = std::chrono::steady_clock::now();
      HttpResponse r = SendRaw(raw, port_, "", half_close);
      const auto took = std::chrono::steady_clock::now() - t0;
      EXPECT_EQ(r.status, 400) << raw << half_close;
      EXPECT_TRUE(Json(r.body).HasMember("error")) << raw << r.body;
      EXPECT_LT(took, std::chrono::milliseconds(1500)) << raw << half_close;
    }
  }
  // A request line cut short by the client's close: closed at once.
  for (const char* raw : {"GET /healthz HTTP/1/1", "GET /healthz HTTP/1.1\r\nHost: x\r\n"}) {
    const auto t0 = std::chrono::steady_clock::now();
    HttpResponse r = SendRaw(raw, port_, "", /*half_close=*/true);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(1500)) << raw;
    EXPECT_TRUE(r.status == 0 || r.status == 400) << raw << r.status;
  }
  // Behind a pipelined good request: its answer, then the JSON 400.
  HttpResponse r = SendRaw("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1/1\r\n\r\n", port_);
  EXPECT_EQ(r.status, 200);
  const size_t second = r.body.find("HTTP/1.1 400 Bad Request\r\n");
  ASSERT_NE(second, std::string::npos) << r.body;
  EXPECT_NE(r.body.find("Content-Type: application/json\r\n", second), std::string::npos) << r.body;
  EXPECT_EQ(r.body.find("<HTML>"), std::string::npos) << r.body;
  EXPECT_TRUE(Json(r.body.substr(r.body.find("\r\n\r\n", second) + 4)).HasMember("error")) << r.body;
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

// docs/operations.md: "a request must arrive within 10 s" (request_timeout).
// A client sending one byte a second never trips libevent's inactivity
// timeout; it must be cut off at the limit all the same, without an answer,
// whether it trickles the headers or the body, while /healthz keeps
// answering everyone else.
TEST_F(AdminServerTest, ASlowClientIsClosedAtTheRequestTimeoutWhileHealthzAnswers) {
  request_timeout_ = Duration(2500);
  Start();
  ASSERT_FALSE(HasFatalFailure());
  Client headers(port_, "", "GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: " +
                                std::string(40, 'a') + "\r\n\r\n");
  Client body(port_,
              std::string("POST /api/v1/queues/jobs/pause HTTP/1.1\r\nHost: localhost\r\n"
                          "Authorization: Bearer ") +
                  kToken + "\r\nContent-Length: 40\r\n\r\n",
              std::string(40, 'b'));
  TrickleUntilClosed({&headers, &body}, port_, 6);
  for (const Client* c : {&headers, &body}) {
    EXPECT_GE(c->closed_after, 2.45);
    EXPECT_LT(c->closed_after, 3.25);
    EXPECT_EQ(c->received, "") << "closed without an answer";
    EXPECT_FALSE(c->request.empty()) << "the request was still incomplete";
  }
  EXPECT_FALSE(daemon_->FindConsumer("jobs")->paused()) << "the slow POST never ran";
  EXPECT_EQ(Request(port_, "GET", "/healthz").status, 200);
}

// The documented default, at its real length.
TEST_F(AdminServerTest, TheDefaultRequestTimeoutIsTheDocumentedTenSeconds) {
  EXPECT_EQ(AdminConfig{}.request_timeout, Duration(10000));
  Start();
  ASSERT_FALSE(HasFatalFailure());
  Client slow(port_, "", "GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: " +
                             std::string(40, 'a') + "\r\n\r\n");
  TrickleUntilClosed({&slow}, port_, 13);
  EXPECT_GE(slow.closed_after, 9.95);
  EXPECT_LT(slow.closed_after, 10.75);
  EXPECT_EQ(slow.received, "");
}

// On a kept-alive connection each request gets the whole timeout again,
// counted from the previous answer; an idle connection is closed after it.
TEST_F(AdminServerTest, AKeptAliveConnectionGetsTheTimeoutPerRequestAndIdlesOut) {
  request_timeout_ = Duration(1500);
  Start();
  ASSERT_FALSE(HasFatalFailure());
  const std::string request = "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n";
  Client c(port_, "");
  // Three requests 1 s apart: 2 s in all, past one timeout from accept.
  Clock::time_point answered;
  for (size_t i = 1; i <= 3; ++i) {
    if (i > 1) std::this_thread::sleep_for(std::chrono::seconds(1));
    c.Send(request);
    c.ReadUntil([&] { return Count(c.received, "\r\n\r\nok\n") == i; }, 1000);
    ASSERT_EQ(Count(c.received, "\r\n\r\nok\n"), i) << c.received;
    ASSERT_TRUE(c.open()) << "closed after " << c.closed_after << "s";
    answered = Clock::now();
  }
  c.ReadUntil([] { return false; }, 3000);
  ASSERT_FALSE(c.open());
  const double idle = SecondsSince(answered);
  EXPECT_GE(idle, 1.4);
  EXPECT_LT(idle, 2.1);
}

// Every error answer is JSON {"error": "..."} with Content-Type
// application/json: ours, and the ones libevent writes itself for requests
// it cannot parse or that are too large.
TEST_F(AdminServerTest, EveryErrorAnswerIsJson) {
  Start();
  ASSERT_FALSE(HasFatalFailure());
  auto expect_json_error = [&](HttpResponse r, int status, const std::string& what) {
    EXPECT_EQ(r.status, status) << what;
    EXPECT_EQ(r.headers["content-type"], "application/json") << what;
    EXPECT_EQ(r.headers["content-length"], std::to_string(r.body.size())) << what;
    rapidjson::Document d;
    d.Parse(r.body.c_str(), r.body.size());
    EXPECT_TRUE(!d.HasParseError() && d.IsObject() && d.HasMember("error") &&
                d["error"].IsString() && d["error"].GetStringLength() > 0)
        << what << ": " << r.body;
    EXPECT_EQ(r.body.find("<HTML>"), std::string::npos) << what << ": " << r.body;
  };
  const std::string close = "Host: localhost\r\nConnection: close\r\n";
  // Ours.
  expect_json_error(Request(port_, "GET", "/nope"), 404, "unknown path");
  expect_json_error(Request(port_, "GET", "/api/v1/queues/nope"), 404, "unknown queue");
  expect_json_error(Request(port_, "DELETE", "/metrics"), 405, "wrong method");
  expect_json_error(Request(port_, "TRACE", "/healthz"), 405, "TRACE");
  expect_json_error(Request(port_, "POST", "/api/v1/queues/jobs/pause"), 401, "no token");
  expect_json_error(SendRaw("GET http://x HTTP/1.1\r\n" + close + "\r\n", port_), 400,
                    "no path");
  // libevent's, rewritten.
  expect_json_error(SendRaw("GET\r\n\r\n", port_), 400, "bad request line");
  expect_json_error(SendRaw(std::string("\x16\x03\x01\x02\x00garbage\r\n\r\n", 16), port_), 400,
                    "TLS hello");
  expect_json_error(SendRaw("GET /healthz HTTP/1.1\r\nno colon here\r\n\r\n", port_), 400,
                    "bad header line");
  expect_json_error(
      SendRaw("POST /healthz HTTP/1.1\r\n" + close + "Content-Length: many\r\n\r\n", port_), 400,
      "bad Content-Length");
  expect_json_error(SendRaw("POST /healthz HTTP/1.1\r\n" + close +
                                "Transfer-Encoding: chunked\r\n\r\nzz\r\nxx\r\n0\r\n\r\n",
                            port_),
                    413, "bad chunk (libevent's status for it)");
  expect_json_error(SendRaw("FOO /healthz HTTP/1.1\r\n" + close + "\r\n", port_), 501,
                    "unknown method");
  expect_json_error(SendRaw("POST /healthz HTTP/1.1\r\n" + close +
                                "Expect: bogus\r\nContent-Length: 1\r\n\r\nx",
                            port_),
                    417, "Expect");
  // Headers over 8 KiB (libevent says 400): the request line's 21 bytes plus
  // 8172 in an unfinished header line are one past the cap, so libevent
  // answers once it has read all of it (nothing unread that would reset the
  // connection).
  const std::string big_header = "X-Big: " + std::string(8165, 'a');
  expect_json_error(SendRaw("GET /healthz HTTP/1.1\r\n" + big_header, port_), 400,
                    "headers too large");
  expect_json_error(SendRaw("HEAD /healthz HTTP/1.1\r\n" + big_header.substr(1), port_), 400,
                    "headers too large, HEAD");
  expect_json_error(SendRaw("GET /nope HTTP/1.0\r\nContent-Length: x\r\n\r\n", port_), 400,
                    "HTTP/1.0");
  expect_json_error(SendRaw("POST /api/v1/queues/jobs/pause HTTP/1.1\r\n" + close +
                                "Content-Length: 100000\r\n\r\n" + std::string(100000, 'x'),
                            port_),
                    413, "body too large");
  EXPECT_EQ(Request(port_, "GET", "/healthz").status, 200) << "still serving";
}

// A HEAD answer is the GET answer's headers, with its Content-Length, and
// no body: the next answer on the connection starts right after them.
TEST_F(AdminServerTest, AHeadAnswerHasNoBody) {
  Start();
  ASSERT_FALSE(HasFatalFailure());
  Client c(port_, "HEAD /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n");
  c.ReadUntil([&] { return c.received.find("\r\n\r\n") != std::string::npos; }, 2000);
  c.ReadUntil([] { return false; }, 200);  // a body would be here by now
  ASSERT_NE(c.received.find("\r\n\r\n"), std::string::npos) << c.received;
  EXPECT_EQ(c.received.substr(c.received.find("\r\n\r\n") + 4), "") << c.received;
  EXPECT_NE(c.received.find("Content-Length: 3\r\n"), std::string::npos) << c.received;
  c.received.clear();
  c.Send("GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
  c.ReadUntil([] { return false; }, 2000);
  EXPECT_EQ(c.received.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << c.received;
}

TEST(AdminAddressTest, ReachableFromOtherHosts) {
  for (const char* yes : {"0.0.0.0:9090", "[::]:9090", "[0:0:0:0:0:0:0:0]:1", "10.1.2.3:80",
                          "[2001:db8::1]:80", "[::ffff:0.0.0.0]:1", "[::ffff:10.0.0.1]:1"})
    EXPECT_TRUE(AdminServer::ReachableFromOtherHosts(yes)) << yes;
  for (const char* no : {"127.0.0.1:9090", "127.1.2.3:0", "[::1]:9090", "[::ffff:127.0.0.1]:1",
                         "unix:/run/foxworker/admin.sock", "garbage"})
    EXPECT_FALSE(AdminServer::ReachableFromOtherHosts(no)) << no;
}

// A listener other hosts can reach, with no token: one WARNING at start
// that says so. With a token, or on loopback, none.
TEST_F(AdminServerTest, AWildcardListenerWithoutATokenIsWarnedAbout) {
  const std::string warning = "is reachable from other hosts without a token";
  {
    LogCapture log;
    Start(/*with_token=*/false, "0.0.0.0:0");
    ASSERT_FALSE(HasFatalFailure());
    std::vector<std::string> lines = log.Matching(google::GLOG_WARNING, warning);
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_NE(lines[0].find("0.0.0.0:" + std::to_string(port_)), std::string::npos) << lines[0];
    EXPECT_NE(lines[0].find("daemon.admin.token_file"), std::string::npos) << lines[0];
    // Mutating endpoints stay refused without a token, as everywhere.
    EXPECT_EQ(Request(port_, "POST", "/api/v1/queues/jobs/pause").status, 403);
    admin_->Stop();
  }
  for (auto [token, listen] : {std::pair{true, "0.0.0.0:0"}, std::pair{false, "127.0.0.1:0"}}) {
    LogCapture log;
    AdminConfig ac;
    ac.listen = listen;
    if (token) ac.token_file = token_file_;
    AdminServer other(ac, *daemon_);
    ASSERT_TRUE(other.Start().ok());
    EXPECT_TRUE(log.Matching(google::GLOG_WARNING, warning).empty()) << listen;
  }
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

  // request_timeout: 10s unless set, printed, at least 100ms.
  EXPECT_EQ(c->daemon.admin.request_timeout, Duration(10000));
  EXPECT_NE(printed.find("request_timeout: 10s"), std::string::npos) << printed;
  auto timeout = ParseConfigString(
      "daemon:\n  admin:\n    listen: 127.0.0.1:0\n    request_timeout: 2500ms\n", "t.yaml", "/");
  ASSERT_TRUE(timeout.ok()) << timeout.status().message();
  EXPECT_EQ(timeout->daemon.admin.request_timeout, Duration(2500));
  for (const char* bad : {"50ms", "0s", "soon"}) {
    auto e = ParseConfigString(
        std::string("daemon:\n  admin:\n    listen: 127.0.0.1:0\n    request_timeout: ") + bad +
            "\n",
        "t.yaml", "/");
    ASSERT_FALSE(e.ok()) << bad;
    EXPECT_NE(e.status().message().find("t.yaml:4:"), std::string::npos) << e.status().message();
  }

  // depth_interval: 5s unless set, printed, at least 100ms, errors at file:line:col.
  EXPECT_EQ(c->daemon.admin.depth_interval, Duration(5000));
  EXPECT_NE(printed.find("depth_interval: 5s"), std::string::npos) << printed;
  auto interval = ParseConfigString(
      "daemon:\n  admin:\n    listen: 127.0.0.1:0\n    depth_interval: 250ms\n", "t.yaml", "/");
  ASSERT_TRUE(interval.ok()) << interval.status().message();
  EXPECT_EQ(interval->daemon.admin.depth_interval, Duration(250));
  for (const char* bad : {"50ms", "0s", "often"}) {
    auto e = ParseConfigString(
        std::string("daemon:\n  admin:\n    listen: 127.0.0.1:0\n    depth_interval: ") + bad +
            "\n",
        "t.yaml", "/");
    ASSERT_FALSE(e.ok()) << bad;
    EXPECT_NE(e.status().message().find("t.yaml:4:"), std::string::npos) << e.status().message();
    EXPECT_NE(e.status().message().find("depth_interval"), std::string::npos)
        << e.status().message();
  }

  // read_only: false unless set; a value that is not a boolean is an error
  // at file:line:col naming the key.
  EXPECT_FALSE(c->daemon.admin.read_only);
  auto ro = ParseConfigString("daemon:\n  admin:\n    listen: 127.0.0.1:0\n    read_only: true\n",
                              "t.yaml", "/");
  ASSERT_TRUE(ro.ok()) << ro.status().message();
  EXPECT_TRUE(ro->daemon.admin.read_only);
  auto bad_ro = ParseConfigString(
      "daemon:\n  admin:\n    listen: 127.0.0.1:0\n    read_only: sometimes\n", "t.yaml", "/");
  ASSERT_FALSE(bad_ro.ok());
  EXPECT_NE(bad_ro.status().message().find("t.yaml:4:"), std::string::npos)
      << bad_ro.status().message();
  EXPECT_NE(bad_ro.status().message().find("read_only"), std::string::npos)
      << bad_ro.status().message();
}

}  // namespace
}  // namespace foxworker::testing
