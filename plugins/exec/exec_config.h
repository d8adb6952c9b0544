// The exec plugin's configuration: parsed from the JSON the daemon hands to
// create(), checked, and with the command resolved to an executable file.
#ifndef FOXWORKER_PLUGINS_EXEC_EXEC_CONFIG_H_
#define FOXWORKER_PLUGINS_EXEC_EXEC_CONFIG_H_

#include <chrono>
#include <cstddef>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace foxworker::exec_plugin {

struct ExecConfig {
  std::vector<std::string> command;  // argv as configured; command[0] non-empty
  std::string executable;            // absolute path command[0] resolved to
  std::chrono::milliseconds timeout{60000};
  std::map<std::string, std::string> env;  // added to (and overriding) the daemon's
  std::string working_dir;                 // empty: the daemon's working directory
  size_t max_output_bytes = 64 * 1024;
  std::vector<int> retry_exit_codes = {75};  // EX_TEMPFAIL
};

// Parses and checks `json` (a JSON object). The command is looked up in the
// PATH given by `env`, else the daemon's PATH, else /usr/local/bin:/usr/bin:/bin,
// and must be an executable regular file. Throws std::invalid_argument with a
// message naming the offending key.
ExecConfig ParseExecConfig(std::string_view json);

// Parses "250ms", "30s", "5m", "1h", "1d" or a bare number of milliseconds.
// Returns false on anything else.
bool ParseDurationMs(std::string_view text, long long* ms);

}  // namespace foxworker::exec_plugin

#endif  // FOXWORKER_PLUGINS_EXEC_EXEC_CONFIG_H_
