// The fixture the isolation: process tests share: one daemon (the core,
// started in this process) on the memory backend or on a real SQLite file,
// chosen by the test's parameter ("memory" or "local"), and the YAML both
// backends and a quick retry policy need.
#ifndef FOXWORKER_TESTS_ISOLATION_ISOLATION_FIXTURE_H_
#define FOXWORKER_TESTS_ISOLATION_ISOLATION_FIXTURE_H_

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "daemon/app/supervisor.h"
#include "daemon/backends/local/local_store.h"
#include "daemon/backends/memory/memory_backend.h"
#include "daemon/core/dead_letter.h"
#include "tests/core/test_daemon.h"

namespace foxworker::testing {

struct DeadLetter {
  std::string reason;
  uint32_t attempt = 0;
};

class IsolationFixture : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("foxworker_iso_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    if (daemon_) daemon_->Shutdown();
    daemon_.reset();
    std::filesystem::remove_all(dir_);
  }
  bool Local() const { return GetParam() == "local"; }
  std::string Db() const { return (dir_ / "jobs.db").string(); }

  // Everything before `queues:`: the daemon, the test plugin, backend `b`
  // and the retry policy `quick` (3 attempts, 20 ms apart).
  std::string CommonYaml() const {
    const std::string backend = Local() ? "  b:\n    type: local\n    path: " + Db() +
                                              "\n    durability: normal\n    lease: 30s\n"
                                        : "  b:\n    type: memory\n";
    return "daemon:\n  worker_threads: 4\n  shutdown_timeout: 5s\n"
           "plugins:\n  test:\n    path: " + TestPluginPath() +
           "\nbackends:\n" + backend +
           "retry_policies:\n  quick:\n    max_attempts: 3\n    backoff: fixed\n"
           "    initial: 20ms\n    jitter: 0\n";
  }
  void StartYaml(const std::string& queues) {
    daemon_ = StartDaemon(CommonYaml() + "queues:\n" + queues);
    ASSERT_TRUE(daemon_);
  }

  // What queue `jobs` dead-lettered: its reason and final attempt.
  std::vector<DeadLetter> DeadLetters() {
    std::vector<DeadLetter> out;
    if (Local()) {
      LocalStoreOptions o;
      o.path = Db();
      auto store = LocalStore::Open(o);
      EXPECT_TRUE(store.ok());
      auto dead = (*store)->ListDead("jobs", 1000);
      EXPECT_TRUE(dead.ok());
      for (const auto& j : *dead) out.push_back({j.last_error, j.attempts});
      return out;
    }
    auto* mem = static_cast<MemoryBackend*>(daemon_->FindBackend("b"));
    for (const auto& m : mem->Peek("jobs-dlq")) {
      const std::string* reason = m.FindHeader(kHeaderFailureReason);
      const std::string* attempt = m.FindHeader(kHeaderFinalAttempt);
      out.push_back({reason ? *reason : "",
                     attempt ? static_cast<uint32_t>(std::stoul(*attempt)) : 0});
    }
    return out;
  }

  std::filesystem::path dir_;
  std::unique_ptr<Supervisor> daemon_;
};

}  // namespace foxworker::testing

#endif  // FOXWORKER_TESTS_ISOLATION_ISOLATION_FIXTURE_H_
