// Runs the real foxworkerd of this build on a config, for tests of how it
// starts, stops and dies: its stderr in a file, its wait status.
#ifndef FOXWORKER_TESTS_SERVICE_DAEMON_RUN_H_
#define FOXWORKER_TESTS_SERVICE_DAEMON_RUN_H_

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "tests/harness/daemon_process.h"

namespace foxworker::testing {

inline std::string TestPluginPath(const std::string& variant = "test_plugin") {
  return std::string(TEST_PLUGIN_DIR) + "/libfoxworker_" + variant + ".so";
}

// A scratch directory per test, removed when the test passed.
class DaemonRunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::temp_directory_path() /
           ("foxworker_" + std::string(info->name()) + "_" + std::to_string(getpid()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (!HasFailure() && getenv("FOXWORKER_TEST_KEEP") == nullptr) std::filesystem::remove_all(dir_);
  }

  std::string Path(const std::string& name) const { return (dir_ / name).string(); }

  // Writes `yaml` as the config and starts the daemon on it.
  void Spawn(const std::string& yaml) {
    std::ofstream(Path("foxworker.yaml")) << yaml;
    pid_ = SpawnDaemon(Path("foxworker.yaml"), Path("record.txt"), Path("stderr.log"));
    ASSERT_GT(pid_, 0);
  }

  // The wait status once the daemon ended, or -1 when it still ran after
  // `limit` (it is then killed).
  int Wait(std::chrono::milliseconds limit = std::chrono::seconds(20)) {
    const auto until = std::chrono::steady_clock::now() + limit;
    int status = 0;
    while (std::chrono::steady_clock::now() < until) {
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return status;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
    return -1;
  }

  // Polls `done` until true or `limit`.
  static bool WaitUntil(const std::function<bool()>& done,
                        std::chrono::milliseconds limit = std::chrono::seconds(20)) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < until) {
      if (done()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return done();
  }

  std::string Log() const {
    std::ifstream in(Path("stderr.log"));
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  static std::string Describe(int status) {
    if (status == -1) return "still running (killed by the test)";
    if (WIFEXITED(status)) return "exit " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return std::string("killed by ") + strsignal(WTERMSIG(status));
    return "status " + std::to_string(status);
  }

  std::filesystem::path dir_;
  pid_t pid_ = -1;
};

}  // namespace foxworker::testing

#endif  // FOXWORKER_TESTS_SERVICE_DAEMON_RUN_H_
