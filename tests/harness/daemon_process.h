// The real foxworkerd binary as a child process, for tests that kill it.
#ifndef FOXWORKER_TESTS_HARNESS_DAEMON_PROCESS_H_
#define FOXWORKER_TESTS_HARNESS_DAEMON_PROCESS_H_

#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

extern char** environ;

namespace foxworker::testing {

// Starts `foxworkerd --config=CONFIG` from this build, with stdout to
// /dev/null, stderr appended to `log`, and FOXWORKER_TEST_RECORD_FILE set to
// `record` (where the test plugin writes what it handled). Returns the pid,
// or -1 (with a test failure) when it could not start.
inline pid_t SpawnDaemon(const std::string& config, const std::string& record,
                         const std::string& log) {
  const std::string rec = "FOXWORKER_TEST_RECORD_FILE=" + record;
  std::vector<char*> env;
  for (char** e = environ; *e; ++e) {
    if (std::strncmp(*e, "FOXWORKER_TEST_RECORD_FILE=", 27) != 0) env.push_back(*e);
  }
  env.push_back(const_cast<char*>(rec.c_str()));
  env.push_back(nullptr);
  std::string bin = std::string(FOXWORKER_BINARY_DIR) + "/daemon/foxworkerd";
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 2, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  std::string arg_config = "--config=" + config;
  char* argv[] = {bin.data(), arg_config.data(), nullptr};
  pid_t pid = -1;
  int rc = posix_spawn(&pid, bin.c_str(), &fa, nullptr, argv, env.data());
  posix_spawn_file_actions_destroy(&fa);
  EXPECT_EQ(rc, 0) << strerror(rc);
  return rc == 0 ? pid : -1;
}

// The whole file (the daemon's log, a record file); "" when it cannot be read.
inline std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The test plugin's record lines "<id> <attempt>" (handler record_attempt),
// as id -> the attempts it ran with, in order.
inline std::map<std::string, std::vector<int>> ReadAttempts(const std::string& path) {
  std::map<std::string, std::vector<int>> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id;
    int attempt = 0;
    if (fields >> id >> attempt) out[id].push_back(attempt);
  }
  return out;
}

}  // namespace foxworker::testing

#endif  // FOXWORKER_TESTS_HARNESS_DAEMON_PROCESS_H_
