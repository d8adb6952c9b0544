// foxworkerctl, run as a program against real database files.
#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tests/backends/local_test_util.h"

namespace foxworker {
namespace {

struct CtlRun {
  int exit_code = -1;
  std::string out;
  std::string err;
};

std::string ShellQuote(const std::string& s) {
  std::string q = "'";
  for (char c : s) {
    if (c == '\'') {
      q += "'\\''";
    } else {
      q += c;
    }
  }
  return q + "'";
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

class CtlTest : public ::testing::Test {
 protected:
  // Runs foxworkerctl --db <file> ARGS with `input` on standard input.
  CtlRun Run(const std::vector<std::string>& args, const std::string& input = "",
             bool with_db = true) {
    {
      std::ofstream in(dir_.File("stdin"), std::ios::binary);
      in << input;
    }
    std::string cmd = ShellQuote(FOXWORKERCTL);
    if (with_db) cmd += " --db " + ShellQuote(db_);
    for (const std::string& a : args) cmd += " " + ShellQuote(a);
    cmd += " <" + ShellQuote(dir_.File("stdin")) + " >" + ShellQuote(dir_.File("stdout")) + " 2>" +
           ShellQuote(dir_.File("stderr"));
    int status = std::system(cmd.c_str());
    CtlRun r;
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = ReadFile(dir_.File("stdout"));
    r.err = ReadFile(dir_.File("stderr"));
    return r;
  }

  rapidjson::Document Json(const CtlRun& r) {
    rapidjson::Document doc;
    doc.Parse(r.out.c_str());
    EXPECT_FALSE(doc.HasParseError()) << "not JSON: " << r.out;
    return doc;
  }

  // A dead job made the way the daemon makes one.
  int64_t MakeDead(const std::string& queue, const std::string& reason) {
    auto store = OpenStore(db_);
    int64_t id = store->Enqueue(Job(queue, "payload of " + reason))->id;
    auto claimed = store->Claim(queue, "daemon", 1, std::chrono::milliseconds(30000), 0);
    EXPECT_TRUE(*store->Dead(id, claimed->jobs.at(0).claim_token, reason));
    return id;
  }

  TempDir dir_;
  std::string db_ = dir_.File("jobs.db");
};

TEST_F(CtlTest, EnqueueFromStdinAsJsonThenStats) {
  CtlRun r = Run({"--json", "enqueue", "emails", "-", "--type", "signup", "--header", "trace=t1",
                  "--priority", "4", "--correlation-id", "c-9"},
                 R"({"to":"a@example.com"})");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto doc = Json(r);
  ASSERT_TRUE(doc.IsObject() && doc.HasMember("id"));
  int64_t id = doc["id"].GetInt64();
  EXPECT_FALSE(doc["duplicate"].GetBool());

  auto store = OpenStore(db_);
  auto job = store->GetJob(id);
  ASSERT_TRUE(job.ok() && job->has_value());
  EXPECT_EQ((*job)->payload, R"({"to":"a@example.com"})");
  EXPECT_EQ((*job)->props.content_type, "application/json");
  EXPECT_EQ((*job)->props.message_type, "signup");
  EXPECT_EQ((*job)->props.correlation_id, "c-9");
  EXPECT_EQ((*job)->priority, 4);
  EXPECT_EQ((*job)->headers, (Headers{{"trace", "t1"}}));

  ASSERT_EQ(Run({"enqueue", "emails", "plain text"}).exit_code, 0);
  ASSERT_EQ(Run({"enqueue", "emails", "later", "--delay", "1h"}).exit_code, 0);
  r = Run({"stats", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  doc = Json(r);
  const auto& queues = doc["queues"];
  ASSERT_EQ(queues.Size(), 1u);
  EXPECT_STREQ(queues[0]["queue"].GetString(), "emails");
  EXPECT_EQ(queues[0]["waiting"].GetInt64(), 2);
  EXPECT_EQ(queues[0]["scheduled"].GetInt64(), 1);
  EXPECT_EQ(queues[0]["dead"].GetInt64(), 0);
  EXPECT_FALSE(queues[0]["paused"].GetBool());

  r = Run({"stats"});
  ASSERT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("QUEUE"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("emails"), std::string::npos) << r.out;
}

TEST_F(CtlTest, EnqueueFromAFileAndUniqueKeys) {
  {
    std::ofstream f(dir_.File("payload.bin"), std::ios::binary);
    f << std::string("\x01\x02\x00\x03", 4);
  }
  CtlRun r = Run({"enqueue", "q", "--file", dir_.File("payload.bin"), "--unique-key", "k"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("enqueued job 1 on queue q"), std::string::npos) << r.out;
  r = Run({"--json", "--raw", "enqueue", "q", "other", "--unique-key", "k"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(Json(r)["duplicate"].GetBool());
  EXPECT_EQ(Json(r)["id"].GetInt64(), 1);
  auto job = OpenStore(db_)->GetJob(1);
  EXPECT_EQ((*job)->payload, std::string("\x01\x02\x00\x03", 4));
}

TEST_F(CtlTest, RunAtSchedulesTheJob) {
  CtlRun r = Run({"--json", "enqueue", "q", "[]", "--run-at", "2100-01-01T00:00:00.500+01:00"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto job = OpenStore(db_)->GetJob(Json(r)["id"].GetInt64());
  EXPECT_EQ((*job)->state, JobState::kScheduled);
  EXPECT_EQ((*job)->run_at_ms, 4102441200500);  // 2099-12-31T23:00:00.500Z
}

TEST_F(CtlTest, DeadListShowRetryPurge) {
  int64_t a = MakeDead("emails", "smtp said no");
  int64_t b = MakeDead("emails", "bad address");
  int64_t c = MakeDead("reports", "out of paper");

  CtlRun r = Run({"dead", "list", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto doc = Json(r);
  ASSERT_EQ(doc["jobs"].Size(), 3u);
  r = Run({"dead", "list", "emails", "--limit", "1", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  doc = Json(r);
  ASSERT_EQ(doc["jobs"].Size(), 1u);
  EXPECT_STREQ(doc["jobs"][0]["queue"].GetString(), "emails");
  EXPECT_EQ(doc["jobs"][0]["attempts"].GetInt(), 1);

  r = Run({"dead", "list"});
  ASSERT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("smtp said no"), std::string::npos) << r.out;

  r = Run({"dead", "show", std::to_string(a), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  doc = Json(r);
  EXPECT_STREQ(doc["state"].GetString(), "dead");
  EXPECT_STREQ(doc["last_error"].GetString(), "smtp said no");
  EXPECT_STREQ(doc["payload"].GetString(), "payload of smtp said no");
  EXPECT_TRUE(doc["failed_at"].IsString());
  r = Run({"dead", "show", std::to_string(a)});
  EXPECT_NE(r.out.find("payload of smtp said no"), std::string::npos) << r.out;

  r = Run({"dead", "retry", std::to_string(a), "9999"});
  EXPECT_EQ(r.exit_code, 1) << "one id was not dead";
  EXPECT_NE(r.err.find("9999"), std::string::npos) << r.err;
  auto store = OpenStore(db_);
  EXPECT_EQ((*store->GetJob(a))->state, JobState::kWaiting);
  EXPECT_EQ((*store->GetJob(a))->attempts, 0u);

  r = Run({"dead", "purge", "--all", "emails", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Json(r)["purged"].GetInt64(), 1);
  EXPECT_FALSE(store->GetJob(b)->has_value());
  EXPECT_TRUE(store->GetJob(c)->has_value());

  r = Run({"dead", "retry", "--all"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("retried 1 dead job(s)"), std::string::npos) << r.out;
  EXPECT_EQ((*store->GetJob(c))->state, JobState::kWaiting);
}

TEST_F(CtlTest, PauseAndResume) {
  ASSERT_EQ(Run({"pause", "emails"}).exit_code, 0);
  EXPECT_EQ(*OpenStore(db_)->PausedQueues(), std::vector<std::string>{"emails"});
  CtlRun r = Run({"stats", "--json"});
  EXPECT_TRUE(Json(r)["queues"][0]["paused"].GetBool());
  ASSERT_EQ(Run({"resume", "emails"}).exit_code, 0);
  EXPECT_TRUE(OpenStore(db_)->PausedQueues()->empty());
}

TEST_F(CtlTest, ErrorsAndUsage) {
  CtlRun r = Run({"stats"});
  EXPECT_EQ(r.exit_code, 1) << "no database file yet";
  EXPECT_NE(r.err.find(db_), std::string::npos) << r.err;

  EXPECT_EQ(Run({"frobnicate"}).exit_code, 2);
  EXPECT_EQ(Run({"enqueue"}).exit_code, 2);
  EXPECT_EQ(Run({"enqueue", "q"}).exit_code, 2) << "no payload";
  EXPECT_EQ(Run({"enqueue", "q", "x", "--priority", "300"}).exit_code, 2);
  EXPECT_EQ(Run({"enqueue", "q", "x", "--delay", "soon"}).exit_code, 2);
  EXPECT_EQ(Run({"enqueue", "q", "x", "--run-at", "2030-01-01T00:00:00"}).exit_code, 2)
      << "a time without zone is refused";
  EXPECT_EQ(Run({"stats", "--limit", "3"}).exit_code, 2);
  EXPECT_EQ(Run({"dead", "show", "abc"}).exit_code, 2);
  EXPECT_EQ(Run({"stats"}, "", /*with_db=*/false).exit_code, 1);

  r = Run({"--json", "enqueue", "q", "{not json"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("not valid JSON"), std::string::npos) << r.err;

  r = Run({"--help"}, "", /*with_db=*/false);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("dead retry"), std::string::npos);
}

TEST_F(CtlTest, ConfigSelectsTheLocalBackend) {
  std::string config = dir_.File("foxworker.yaml");
  {
    std::ofstream f(config);
    f << "daemon:\n  state_dir: " << dir_.path() << "\n"
      << "backends:\n"
      << "  mem:\n    type: memory\n"
      << "  disk:\n    type: local\n    path: via-config.db\n    durability: normal\n";
  }
  CtlRun r = Run({"--config", config, "enqueue", "q", "hello"}, "", /*with_db=*/false);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto job = OpenStore(dir_.File("via-config.db"))->GetJob(1);
  ASSERT_TRUE(job.ok() && job->has_value());
  EXPECT_EQ((*job)->payload, "hello");

  r = Run({"--config", config, "--backend", "mem", "stats"}, "", /*with_db=*/false);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("memory"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace foxworker
