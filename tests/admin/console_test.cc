// The operator's console end to end: the real foxworkerd on a real backend
// (local SQLite, Redis, RabbitMQ from tests/harness), its /api/v1 over TCP,
// and the page at / in headless Chromium driven over WebDriver.
//
// ConsoleApi* check the API (auth refusals, read-only, enqueue, dead
// letters, quiet); ConsoleBrowser* (ctest label "browser") drive the page.
// Dead-letter steps need the backend's Inspector; where a backend has none
// yet (503 "cannot be inspected") they are skipped with that message.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "tests/admin/console_http.h"
#include "tests/core/test_daemon.h"
#include "tests/harness/daemon_process.h"
#include "tests/isolation/backend_under_test.h"

namespace foxworker::testing {
namespace {

namespace fs = std::filesystem;

constexpr char kToken[] = "console-test-token";
// Shown as text, never run: each of these would set window.__pwned.
constexpr char kHostile[] =
    "<script>window.__pwned=1</script>\"><img src=x onerror=\"window.__pwned=1\">";

std::unique_ptr<BackendUnderTest> MakeBackend(const std::string& name) {
  if (name == "redis") return std::make_unique<RedisUnderTest>();
  if (name == "rabbitmq") return std::make_unique<RabbitMqUnderTest>();
  return std::make_unique<LocalUnderTest>();
}

template <typename F>
bool WaitFor(F f, int seconds = 60) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    if (f()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

class ConsoleFixture : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    std::string test = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    for (char& c : test)
      if (c == '/') c = '_';
    dir_ = (fs::temp_directory_path() / ("foxworker-console-" + std::to_string(getpid()) + "-" + test))
               .string();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    backend_ = MakeBackend(GetParam());
    const std::string why = backend_->Prepare(dir_);
    if (!why.empty()) GTEST_SKIP() << GetParam() << ": " << why;
  }

  void TearDown() override {
    StopDaemon();
    backend_.reset();
    if (!HasFailure()) fs::remove_all(dir_);
  }

  // Starts the daemon with queues "jobs" (dead-letters at the first
  // failure) and "hostile" (its backend-side name is kHostile-laden text).
  void StartDaemon(bool read_only = false) {
    port_ = FreePort();
    std::ofstream(dir_ + "/token") << kToken << "\n";
    chmod((dir_ + "/token").c_str(), 0600);
    hostile_source_ = backend_->Source(std::string("h") + kHostile);
    std::string yaml_source = hostile_source_;
    std::ofstream(dir_ + "/foxworker.yaml")
        << "daemon:\n  state_dir: " << dir_ << "\n  shutdown_timeout: 5s\n  admin:\n"
        << "    listen: 127.0.0.1:" << port_ << "\n    token_file: " << dir_ << "/token\n"
        << (read_only ? "    read_only: true\n" : "")
        << "plugins:\n  test:\n    path: " << TestPluginPath() << "\nbackends:\n"
        << backend_->Yaml()
        << "retry_policies:\n  once:\n    max_attempts: 1\n"
        << "queues:\n  jobs:\n    backend: b\n    source: " << backend_->Source("jobs")
        << "\n    plugin: test\n    retry_policy: once\n"
        << "  hostile:\n    backend: b\n    source: '" << yaml_source
        << "'\n    plugin: test\n    retry_policy: once\n";
    pid_ = SpawnDaemon(dir_ + "/foxworker.yaml", dir_ + "/record.txt", dir_ + "/daemon.log");
    ASSERT_GT(pid_, 0);
    ASSERT_TRUE(WaitFor([&] { return Get("/readyz").status == 200; }))
        << ReadAll(dir_ + "/daemon.log");
  }

  void StopDaemon() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    if (WaitDaemonExit(pid_, std::chrono::seconds(60)) == -1) {
      kill(pid_, SIGKILL);
      WaitDaemonExit(pid_, std::chrono::seconds(10));
    }
  }

  std::string Origin() const { return "http://127.0.0.1:" + std::to_string(port_); }
  HttpAnswer Get(const std::string& path) { return HttpCall(port_, "GET", path, "", {}, 60000); }
  HttpAnswer Post(const std::string& path, const std::string& body = "",
                  std::vector<std::string> headers = {}) {
    return HttpCall(port_, "POST", path, body, headers);
  }
  HttpAnswer Change(const std::string& path, const std::string& body = "") {
    return Post(path, body, {std::string("Authorization: Bearer ") + kToken,
                             "Content-Type: application/json"});
  }
  // POST /login; the session cookie's value.
  std::string Login() {
    HttpAnswer a = Post("/login", std::string("token=") + kToken,
                        {"Content-Type: application/x-www-form-urlencoded", "Origin: " + Origin()});
    EXPECT_EQ(a.status, 303) << a.body;
    const std::string& c = a.headers["set-cookie"];
    EXPECT_NE(c.find("HttpOnly"), std::string::npos) << c;
    EXPECT_NE(c.find("SameSite=Strict"), std::string::npos) << c;
    const size_t eq = c.find('='), semi = c.find(';');
    return eq == std::string::npos ? "" : c.substr(eq + 1, semi - eq - 1);
  }

  rapidjson::Document Queue(const std::string& name) {
    return ParseJson(Get("/api/v1/queues/" + name).body);
  }
  uint64_t Count(const std::string& queue, const char* what) {
    rapidjson::Document d = Queue(queue);
    return d.IsObject() && d.HasMember("counts") ? d["counts"][what].GetUint64() : 0;
  }

  // Enqueues one message of type "fail" on `queue` over the API and waits
  // until it is dead-lettered.
  void EnqueueDead(const std::string& queue, const std::string& payload,
                   const std::string& header_value) {
    const uint64_t before = Count(queue, "dead_lettered");
    const size_t listed_before = DeadTotal(queue);
    HttpAnswer a = Change("/api/v1/queues/" + queue + "/messages",
                          "{\"payload\":" + JsonString(payload) +
                              ",\"type\":\"fail\",\"headers\":{\"x-note\":" +
                              JsonString(header_value) + "}}");
    ASSERT_EQ(a.status, 200) << a.body;
    ASSERT_TRUE(WaitFor([&] { return Count(queue, "dead_lettered") > before; }))
        << ReadAll(dir_ + "/daemon.log");
    // The consumer counts a dead letter when it hands it to the backend,
    // which writes it on a thread of its own (the local backend) a moment
    // later: wait until the backend lists it too.
    if (skip_.empty()) {
      ASSERT_TRUE(WaitFor([&] { return DeadTotal(queue) > listed_before; }))
          << ReadAll(dir_ + "/daemon.log");
    }
  }

  // The dead letters of `queue` (skips the test when the backend has no
  // inspector yet).
  rapidjson::Document DeadList(const std::string& queue, const std::string& query = "") {
    HttpAnswer a = Get("/api/v1/queues/" + queue + "/dead" + query);
    rapidjson::Document d = ParseJson(a.body);
    if (a.status == 503 && a.body.find("cannot be inspected") != std::string::npos) {
      skip_ = a.body;
      return d;
    }
    EXPECT_EQ(a.status, 200) << a.body;
    return d;
  }
  size_t DeadTotal(const std::string& queue) {
    rapidjson::Document d = DeadList(queue);
    return d.IsObject() && d.HasMember("total") ? d["total"].GetUint64() : 0;
  }

  std::string dir_;
  std::unique_ptr<BackendUnderTest> backend_;
  std::string hostile_source_;
  uint16_t port_ = 0;
  pid_t pid_ = -1;
  std::string skip_;
};

#define SKIP_IF_NO_INSPECTOR()                                          \
  if (!skip_.empty()) GTEST_SKIP() << GetParam() << ": " << skip_

using ConsoleApi = ConsoleFixture;

// Every refusal a change can meet, and what is served to anyone.
TEST_P(ConsoleApi, ChangesNeedTheTokenAndTheOrigin) {
  StartDaemon();
  const std::string pause = "/api/v1/queues/jobs/pause";
  // No token, a wrong one.
  EXPECT_EQ(Post(pause).status, 401);
  EXPECT_EQ(Post(pause, "", {"Authorization: Bearer nope"}).status, 401);
  // A session cookie that is not one.
  EXPECT_EQ(Post(pause, "", {"Cookie: foxworker_session=forged", "Origin: " + Origin(),
                             "X-Foxworker-Request: 1"}).status, 401);
  const std::string cookie = "Cookie: foxworker_session=" + Login();
  // The session alone, without our Origin or without the custom header.
  EXPECT_EQ(Post(pause, "", {cookie}).status, 403);
  EXPECT_EQ(Post(pause, "", {cookie, "X-Foxworker-Request: 1"}).status, 403);
  EXPECT_EQ(Post(pause, "", {cookie, "Origin: " + Origin()}).status, 403);
  // Another local port is another origin, though the same site.
  EXPECT_EQ(Post(pause, "", {cookie, "Origin: http://127.0.0.1:1", "X-Foxworker-Request: 1"}).status,
            403);
  EXPECT_FALSE(Queue("jobs")["paused"].GetBool()) << "no refusal paused it";
  // A wrong token at the login form sets no session.
  HttpAnswer bad = Post("/login", "token=wrong", {"Origin: " + Origin()});
  EXPECT_EQ(bad.status, 303);
  EXPECT_EQ(bad.headers.count("set-cookie"), 0u);
  // A cross-origin login is refused.
  EXPECT_EQ(Post("/login", std::string("token=") + kToken, {"Origin: http://127.0.0.1:1"}).status,
            403);
  // The session with our Origin and the header may.
  HttpAnswer ok = Post(pause, "", {cookie, "Origin: " + Origin(), "X-Foxworker-Request: 1"});
  EXPECT_EQ(ok.status, 200) << ok.body;
  EXPECT_TRUE(Queue("jobs")["paused"].GetBool());
  EXPECT_EQ(Change("/api/v1/queues/jobs/resume").status, 200);

  // DNS rebinding: a loopback listener answers loopback Host names only.
  EXPECT_EQ(HttpCall(port_, "GET", "/api/v1/queues", "", {"Host: evil.example:80"}).status, 421);
  EXPECT_EQ(HttpCall(port_, "GET", "/readyz", "", {"Host: evil.example"}).status, 421);
  EXPECT_EQ(HttpCall(port_, "GET", "/api/v1/queues", "", {"Host: localhost"}).status, 200);
  EXPECT_EQ(HttpCall(port_, "GET", "/api/v1/queues", "", {"Host: [::1]:9"}).status, 200);
  // Every answer carries the CSP, the page included.
  for (const char* path : {"/", "/console/app.js", "/api/v1/queues", "/nope"}) {
    HttpAnswer a = Get(path);
    EXPECT_NE(a.headers["content-security-policy"].find("script-src 'self'"), std::string::npos)
        << path;
    EXPECT_EQ(a.headers["content-security-policy"].find("unsafe-inline"), std::string::npos);
  }
  HttpAnswer page = Get("/");
  EXPECT_EQ(page.status, 200);
  EXPECT_EQ(page.body.find("<script>"), std::string::npos) << "no inline script";
}

TEST_P(ConsoleApi, QuietStopsEveryQueueAndUnquietResumesThem) {
  StartDaemon();
  EXPECT_EQ(Post("/api/v1/quiet").status, 401);
  HttpAnswer q = Change("/api/v1/quiet");
  ASSERT_EQ(q.status, 200) << q.body;
  EXPECT_TRUE(Queue("jobs")["paused"].GetBool());
  EXPECT_TRUE(Queue("hostile")["paused"].GetBool());
  EXPECT_NE(Get("/api/v1/session").body.find("\"quiet\":true"), std::string::npos);
  // Enqueued while quiet: nothing runs it.
  ASSERT_EQ(Change("/api/v1/queues/jobs/messages", R"({"payload":"x","type":"ok"})").status, 200);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(Count("jobs", "received"), 0u);
  ASSERT_EQ(Change("/api/v1/unquiet").status, 200);
  EXPECT_FALSE(Queue("jobs")["paused"].GetBool());
  EXPECT_TRUE(WaitFor([&] { return Count("jobs", "acked") == 1; }));
}

TEST_P(ConsoleApi, EnqueueAndDeadLetters) {
  StartDaemon();
  // Enqueue: bad bodies are 400s.
  EXPECT_EQ(Change("/api/v1/queues/jobs/messages", "not json").status, 400);
  EXPECT_EQ(Change("/api/v1/queues/jobs/messages", R"({"type":"ok"})").status, 400);
  EXPECT_EQ(Change("/api/v1/queues/nope/messages", R"({"payload":"x"})").status, 404);
  ASSERT_EQ(Change("/api/v1/queues/jobs/messages",
                   R"({"payload":{"a":1},"type":"ok","headers":{"k":"v"},"priority":3})")
                .status,
            200);
  EXPECT_TRUE(WaitFor([&] { return Count("jobs", "acked") == 1; }));

  ASSERT_NO_FATAL_FAILURE(EnqueueDead("jobs", "{\"order\": 42}", "hv"));
  rapidjson::Document list = DeadList("jobs");
  SKIP_IF_NO_INSPECTOR();
  ASSERT_EQ(list["total"].GetUint64(), 1u);
  const std::string id = list["letters"][0]["id"].GetString();
  EXPECT_NE(std::string(list["letters"][0]["reason"].GetString()).find("asked to fail"),
            std::string::npos);
  EXPECT_EQ(DeadList("jobs", "?reason=ASKED")["total"].GetUint64(), 1u);
  EXPECT_EQ(DeadList("jobs", "?reason=zzz")["total"].GetUint64(), 0u);

  HttpAnswer one = Get("/api/v1/queues/jobs/dead/" + id);
  ASSERT_EQ(one.status, 200) << one.body;
  rapidjson::Document letter = ParseJson(one.body);
  EXPECT_STREQ(letter["payload_kind"].GetString(), "json");
  EXPECT_NE(std::string(letter["payload"].GetString()).find("\"order\": 42"), std::string::npos);
  EXPECT_NE(one.body.find("\"hv\""), std::string::npos) << "the header is shown";
  EXPECT_EQ(Get("/api/v1/queues/jobs/dead/no-such-id").status, 404);

  // Retry needs the token; the retried letter runs again (and, failing
  // again, comes back).
  EXPECT_EQ(Post("/api/v1/queues/jobs/dead/retry", "{\"ids\":[" + JsonString(id) + "]}").status,
            401);
  const uint64_t received = Count("jobs", "received");
  HttpAnswer r = Change("/api/v1/queues/jobs/dead/retry", "{\"ids\":[" + JsonString(id) + "]}");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.body.find("\"count\":1"), std::string::npos) << r.body;
  EXPECT_TRUE(WaitFor([&] { return Count("jobs", "received") > received; }));
  EXPECT_TRUE(WaitFor([&] { return DeadTotal("jobs") == 1; }));

  // Retry all matching, then delete all matching.
  HttpAnswer all = Change("/api/v1/queues/jobs/dead/retry", R"({"all":true,"reason":"asked"})");
  EXPECT_EQ(all.status, 200) << all.body;
  EXPECT_TRUE(WaitFor([&] { return DeadTotal("jobs") == 1; }));
  HttpAnswer del = Change("/api/v1/queues/jobs/dead/delete", R"({"all":true})");
  EXPECT_EQ(del.status, 200) << del.body;
  EXPECT_EQ(DeadTotal("jobs"), 0u);
  // Binary payloads are shown as hex.
  ASSERT_EQ(Change("/api/v1/queues/jobs/messages", R"({"payload_base64":"AAEC/w==","type":"fail"})")
                .status,
            200);
  ASSERT_TRUE(WaitFor([&] { return DeadTotal("jobs") == 1; }));
  const std::string bid = DeadList("jobs")["letters"][0]["id"].GetString();
  rapidjson::Document bin = ParseJson(Get("/api/v1/queues/jobs/dead/" + bid).body);
  EXPECT_STREQ(bin["payload_kind"].GetString(), "hex");
  EXPECT_NE(std::string(bin["payload"].GetString()).find("00 01 02 ff"), std::string::npos);
  HttpAnswer d1 = HttpCall(port_, "DELETE", "/api/v1/queues/jobs/dead/" + bid, "",
                           {std::string("Authorization: Bearer ") + kToken});
  EXPECT_EQ(d1.status, 200) << d1.body;
  EXPECT_EQ(DeadTotal("jobs"), 0u);

  // A delayed enqueue is listed among the scheduled jobs where the backend
  // can list them (RabbitMQ's TTL tiers cannot be browsed: 503).
  ASSERT_EQ(Change("/api/v1/queues/jobs/messages", R"({"payload":"later","type":"ok","delay":"1h"})")
                .status,
            200);
  HttpAnswer sched = Get("/api/v1/queues/jobs/scheduled");
  if (GetParam() == "rabbitmq") {
    EXPECT_EQ(sched.status, 503) << sched.body;
  } else {
    EXPECT_EQ(sched.status, 200) << sched.body;
    EXPECT_TRUE(WaitFor([&] {
      return Get("/api/v1/queues/jobs/scheduled").body.find("\"due_ms\"") != std::string::npos;
    })) << Get("/api/v1/queues/jobs/scheduled").body;
  }
}

TEST_P(ConsoleApi, ReadOnlyRefusesEveryChange) {
  if (GetParam() != "local") GTEST_SKIP() << "read_only is backend-independent: local only";
  StartDaemon(/*read_only=*/true);
  for (const char* path : {"/api/v1/queues/jobs/pause", "/api/v1/quiet",
                           "/api/v1/queues/jobs/dead/retry", "/api/v1/queues/jobs/messages"}) {
    HttpAnswer a = Change(path, R"({"all":true,"payload":"x"})");
    EXPECT_EQ(a.status, 403) << path << " " << a.body;
  }
  EXPECT_NE(Get("/api/v1/session").body.find("\"read_only\":true"), std::string::npos);
  EXPECT_EQ(Post("/login", std::string("token=") + kToken, {"Origin: " + Origin()}).status, 403);
}

// foxworkerctl --url against the running daemon: list, show, retry, purge.
TEST_P(ConsoleApi, CtlUrlListsShowsRetriesAndPurgesDeadLetters) {
  StartDaemon();
  ASSERT_NO_FATAL_FAILURE(EnqueueDead("jobs", "{\"n\": 5}", "ctl"));
  DeadList("jobs");
  SKIP_IF_NO_INSPECTOR();
  auto ctl = [&](const std::string& args, int* rc = nullptr) {
    const std::string out = dir_ + "/ctl.out";
    const std::string cmd = std::string(FOXWORKER_BINARY_DIR) + "/daemon/foxworkerctl --url " +
                            Origin() + " " + args + " > " + out + " 2>&1";
    const int status = std::system(cmd.c_str());
    if (rc != nullptr) *rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return ReadAll(out);
  };
  const std::string token = "--token-file " + dir_ + "/token ";
  rapidjson::Document list = ParseJson(ctl("--json dead list jobs"));
  ASSERT_TRUE(list.IsObject() && list.HasMember("letters")) << ctl("--json dead list jobs");
  ASSERT_EQ(list["letters"].Size(), 1u);
  const std::string id = list["letters"][0]["id"].GetString();
  EXPECT_NE(ctl("dead list jobs --reason asked").find("asked to fail"), std::string::npos);
  const std::string shown = ctl("dead show jobs '" + id + "'");
  EXPECT_NE(shown.find("\"n\": 5"), std::string::npos) << shown;
  EXPECT_NE(shown.find("ctl"), std::string::npos) << shown;
  int rc = 0;
  ctl("dead retry jobs '" + id + "'", &rc);
  EXPECT_EQ(rc, 1) << "a retry without the token is refused";
  const uint64_t received = Count("jobs", "received");
  const std::string retried = ctl(token + "dead retry jobs '" + id + "'", &rc);
  EXPECT_EQ(rc, 0) << retried;
  EXPECT_TRUE(WaitFor([&] { return Count("jobs", "received") > received; }));
  EXPECT_TRUE(WaitFor([&] { return DeadTotal("jobs") == 1; }));
  const std::string purged = ctl(token + "dead purge --all jobs", &rc);
  EXPECT_EQ(rc, 0) << purged;
  EXPECT_NE(purged.find("purged 1"), std::string::npos) << purged;
  EXPECT_EQ(DeadTotal("jobs"), 0u);
}

INSTANTIATE_TEST_SUITE_P(Backends, ConsoleApi, ::testing::Values("local", "redis", "rabbitmq"),
                         [](const auto& info) { return info.param; });

// ---- the page in headless Chromium ----

class ConsoleBrowser : public ConsoleFixture {
 protected:
  void SetUp() override {
    ConsoleFixture::SetUp();
    if (IsSkipped()) return;
    browser_ = std::make_unique<Browser>();
    if (!browser_->ok()) {
      // CI installs chromium and chromium-driver (scripts/install-deps): a
      // missing browser there is a broken setup, never a pass.
      const char* ci = std::getenv("CI");
      if (ci != nullptr && std::string(ci) == "true")
        FAIL() << "no headless Chromium (CI=true: a missing browser is a failure): "
               << browser_->error();
      GTEST_SKIP() << "no headless Chromium: " << browser_->error();
    }
  }
  void TearDown() override {
    browser_.reset();
    ConsoleFixture::TearDown();
  }
  // Copies of the screenshots for docs/images/ are taken on the local
  // backend; every backend writes its own into the build directory.
  void Shot(const std::string& name) {
    const std::string dir = std::string(FOXWORKER_BINARY_DIR) + "/console-screenshots";
    fs::create_directories(dir);
    browser_->Screenshot(dir + "/" + name + "-" + GetParam() + ".png");
  }
  void LogIn() {
    browser_->Go(Origin() + "/");
    ASSERT_TRUE(browser_->WaitJs("return !!document.body.dataset.loaded;"));
    browser_->Js(std::string("document.getElementById('token').value = '") + kToken +
                 "'; document.getElementById('login').submit(); return true;");
    ASSERT_TRUE(browser_->WaitJs(
        "return !!document.body.dataset.loaded && document.getElementById('mode').textContent.includes('logged in');"))
        << browser_->Js("return document.body.innerText;");
  }
  std::unique_ptr<Browser> browser_;
};

TEST_P(ConsoleBrowser, OverviewMatchesTheApi) {
  StartDaemon();
  ASSERT_EQ(Change("/api/v1/queues/jobs/pause").status, 200);
  ASSERT_EQ(Change("/api/v1/queues/jobs/messages", R"({"payload":"x","type":"ok"})").status, 200);
  ASSERT_NO_FATAL_FAILURE(EnqueueDead("hostile", "p", "h"));
  browser_->Go(Origin() + "/");
  ASSERT_TRUE(browser_->WaitJs(
      "return document.querySelectorAll('#queues tbody tr').length == 2 && "
      "document.querySelectorAll('#plugins tbody tr').length == 1;"));
  // Each queue's row against /api/v1/queues, read after the page did.
  rapidjson::Document api = ParseJson(Get("/api/v1/queues").body);
  for (const auto& q : api["queues"].GetArray()) {
    const std::string name = q["name"].GetString();
    const std::string row = "document.querySelector('#queues tr[data-queue=\"" + name + "\"]')";
    auto field = [&](const char* f) {
      return browser_->Js("return " + row + ".querySelector('[data-field=" + f + "]').textContent;");
    };
    EXPECT_EQ(field("source"), JsonString(q["source"].GetString()));
    EXPECT_EQ(field("in_flight"), "\"" + std::to_string(q["in_flight"].GetInt64()) + "\"");
    EXPECT_EQ(field("running"), "\"" + std::to_string(q["running"].GetInt64()) + "\"");
    EXPECT_EQ(field("state").find("paused") != std::string::npos, q["paused"].GetBool()) << name;
    if (q.HasMember("depth") && q["depth"].IsObject() && q["depth"].HasMember("backlog") &&
        q["depth"]["backlog"].GetInt64() >= 0) {
      EXPECT_EQ(field("backlog"), "\"" + std::to_string(q["depth"]["backlog"].GetInt64()) + "\"");
    }
  }
  const std::string backends = browser_->Js(
      "return [...document.querySelectorAll('#backends tbody tr')].map(r => r.dataset.backend + ':' + "
      "r.querySelector('[data-field=connected]').textContent).join(',');");
  EXPECT_EQ(backends, "\"b:yes\"");
  // Not logged in: no change buttons.
  EXPECT_EQ(browser_->Js("return document.querySelectorAll('#queues button').length;"), "0");
  // For the screenshot (local), wait for history samples so the charts
  // have a line.
  if (GetParam() == "local")
    browser_->WaitJs("return document.querySelectorAll('#charts polyline').length > 0 && "
                   "[...document.querySelectorAll('#charts polyline')].some(p => p.getAttribute('points').includes(' '));",
                   15);
  Shot("overview");
  EXPECT_EQ(browser_->Js("return window.__pwned === undefined;"), "true");
}

TEST_P(ConsoleBrowser, RetryingADeadLetterFromThePageRunsItAgain) {
  StartDaemon();
  ASSERT_NO_FATAL_FAILURE(EnqueueDead("jobs", "{\"order\": 7}", "from-the-test"));
  DeadList("jobs");
  SKIP_IF_NO_INSPECTOR();
  ASSERT_NO_FATAL_FAILURE(LogIn());
  browser_->Go(Origin() + "/#dead");
  ASSERT_TRUE(browser_->WaitJs("return document.querySelectorAll('#dead tbody tr').length == 1;"));
  browser_->Js("document.querySelector('#dead tbody tr button.show').click(); return true;");
  ASSERT_TRUE(browser_->WaitJs(
      "return document.getElementById('letter-payload').textContent.includes('\"order\": 7');"));
  Shot("dead-letters");
  const uint64_t received = Count("jobs", "received");
  browser_->Js("document.querySelector('#dead tbody tr button.retry').click(); return true;");
  EXPECT_TRUE(WaitFor([&] { return Count("jobs", "received") > received; }))
      << browser_->Js("return document.getElementById('status').textContent;");
}

TEST_P(ConsoleBrowser, HostileTextIsShownAsTextAndRunsNothing) {
  StartDaemon();
  ASSERT_NO_FATAL_FAILURE(EnqueueDead("hostile", kHostile, kHostile));
  browser_->Go(Origin() + "/");
  ASSERT_TRUE(browser_->WaitJs("return document.querySelectorAll('#queues tbody tr').length == 2;"));
  // The backend-side name is shown as the text it is.
  EXPECT_EQ(browser_->Js("return document.querySelector('#queues tr[data-queue=hostile] "
                         "[data-field=source]').textContent;"),
            JsonString(hostile_source_));
  DeadList("hostile");
  if (skip_.empty()) {
    browser_->Go(Origin() + "/#dead");
    browser_->Js("const s = document.getElementById('dead-queue'); s.value = 'hostile'; "
                 "s.dispatchEvent(new Event('change')); return true;");
    ASSERT_TRUE(browser_->WaitJs("return document.querySelectorAll('#dead tbody tr').length == 1;"));
    browser_->Js("document.querySelector('#dead tbody tr button.show').click(); return true;");
    ASSERT_TRUE(browser_->WaitJs(
        "return document.getElementById('letter-payload').textContent.length > 0;"));
    EXPECT_EQ(browser_->Js("return document.getElementById('letter-payload').textContent;"),
              JsonString(kHostile));
    EXPECT_EQ(browser_->Js("return [...document.querySelectorAll('#letter-headers td')].some("
                           "td => td.textContent === " + JsonString(kHostile) + ");"),
              "true");
  }
  // Nothing ran and nothing became an element.
  EXPECT_EQ(browser_->Js("return window.__pwned === undefined;"), "true");
  EXPECT_EQ(browser_->Js("return document.querySelectorAll('main img, main script').length;"), "0");
  SKIP_IF_NO_INSPECTOR();
}

TEST_P(ConsoleBrowser, ChangesWithoutTheTokenAndCrossOriginPostsAreRefused) {
  StartDaemon();
  // The page without a login: a change it tries is refused.
  browser_->Go(Origin() + "/");
  ASSERT_TRUE(browser_->WaitJs("return !!document.body.dataset.loaded;"));
  browser_->Js("fetch('/api/v1/queues/jobs/pause', {method: 'POST', headers: "
               "{'X-Foxworker-Request': '1'}}).then(r => { window.__answer = r.status; }); return true;");
  ASSERT_TRUE(browser_->WaitJs("return window.__answer !== undefined;"));
  EXPECT_EQ(browser_->Js("return window.__answer;"), "401");
  EXPECT_FALSE(Queue("jobs")["paused"].GetBool());

  // Logged in, a page on another local port (the same site, another
  // origin) posts a form to the console: the browser sends the cookie, the
  // daemon refuses.
  ASSERT_NO_FATAL_FAILURE(LogIn());
  OnePageServer evil("<!DOCTYPE html><html><body><form id=f method=post action='" + Origin() +
                     "/api/v1/queues/jobs/pause'><input name=a value=1></form></body></html>");
  browser_->Go("http://127.0.0.1:" + std::to_string(evil.port()) + "/");
  browser_->Js("document.getElementById('f').submit(); return true;");
  ASSERT_TRUE(browser_->WaitJs("return location.port == '" + std::to_string(port_) + "' && "
                               "document.readyState == 'complete';"));
  EXPECT_NE(browser_->Js("return document.body.textContent;").find("cross-origin"), std::string::npos)
      << browser_->Js("return document.body.textContent;");
  EXPECT_FALSE(Queue("jobs")["paused"].GetBool());
  // The same session from the console's own page may.
  browser_->Go(Origin() + "/");
  ASSERT_TRUE(browser_->WaitJs("return document.querySelectorAll('#queues button[data-action=pause]').length == 2;"));
  browser_->Js("document.querySelector('#queues tr[data-queue=jobs] button').click(); return true;");
  EXPECT_TRUE(WaitFor([&] { return Queue("jobs")["paused"].GetBool(); }));
}

INSTANTIATE_TEST_SUITE_P(Backends, ConsoleBrowser, ::testing::Values("local", "redis", "rabbitmq"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace foxworker::testing
