#include "exec_config.h"

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>

namespace foxworker::exec_plugin {
namespace {

constexpr const char* kDefaultPath = "/usr/local/bin:/usr/bin:/bin";
constexpr long long kMaxTimeoutMs = 7LL * 24 * 3600 * 1000;  // a week
constexpr long long kMaxOutputBytes = 64LL * 1024 * 1024;

[[noreturn]] void Fail(const std::string& message) { throw std::invalid_argument(message); }

std::string Quote(std::string_view s) { return "\"" + std::string(s) + "\""; }

std::string KeyError(const char* key, const std::string& what) {
  return std::string("config key \"") + key + "\": " + what;
}

// Scalars an operator may reasonably write for a string (the daemon may hand
// YAML scalars over as numbers or booleans).
bool ScalarText(const rapidjson::Value& v, std::string* out) {
  if (v.IsString()) {
    out->assign(v.GetString(), v.GetStringLength());
  } else if (v.IsInt64()) {
    *out = std::to_string(v.GetInt64());
  } else if (v.IsUint64()) {
    *out = std::to_string(v.GetUint64());
  } else if (v.IsBool()) {
    *out = v.GetBool() ? "true" : "false";
  } else {
    return false;
  }
  return true;
}

bool ParseInteger(std::string_view text, long long* value) {
  if (text.empty() || text.size() > 18) return false;
  long long v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *value = v;
  return true;
}

// An executable regular file? Returns an empty string, or why not.
std::string CheckExecutable(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return std::strerror(errno);
  if (!S_ISREG(st.st_mode)) return "not a regular file";
  if (access(path.c_str(), X_OK) != 0) return std::strerror(errno);
  return {};
}

std::string ResolveExecutable(const ExecConfig& config) {
  const std::string& name = config.command[0];
  if (name.find('/') != std::string::npos) {
    std::string path = name;
    if (path[0] != '/') {
      // execve resolves it after the chdir to working_dir; so do we.
      std::string base = config.working_dir;
      if (base.empty()) {
        char cwd[4096];
        if (getcwd(cwd, sizeof(cwd)) == nullptr) {
          Fail(KeyError("command",
                        "cannot resolve " + Quote(name) + ": the working directory is unknown"));
        }
        base = cwd;
      }
      path = base + "/" + path;
    }
    std::string why = CheckExecutable(path);
    if (!why.empty()) Fail(KeyError("command", Quote(path) + " is not executable: " + why));
    return path;
  }

  std::string search;
  auto env_path = config.env.find("PATH");
  if (env_path != config.env.end()) {
    search = env_path->second;
  } else if (const char* daemon_path = std::getenv("PATH"); daemon_path != nullptr) {
    search = daemon_path;
  } else {
    search = kDefaultPath;
  }
  std::string first_refusal;
  size_t start = 0;
  while (start <= search.size()) {
    size_t end = search.find(':', start);
    if (end == std::string::npos) end = search.size();
    std::string dir = search.substr(start, end - start);
    start = end + 1;
    if (dir.empty() || dir[0] != '/') continue;  // relative PATH entries are not searched
    std::string candidate = dir + "/" + name;
    if (access(candidate.c_str(), F_OK) != 0) continue;
    std::string why = CheckExecutable(candidate);
    if (why.empty()) return candidate;
    if (first_refusal.empty()) first_refusal = Quote(candidate) + " is not executable: " + why;
  }
  if (!first_refusal.empty()) Fail(KeyError("command", first_refusal));
  Fail(KeyError("command", Quote(name) + " was not found in PATH (" + search + ")"));
}

void ParseCommand(const rapidjson::Value& v, ExecConfig* config) {
  if (!v.IsArray()) {
    Fail(KeyError("command",
                  "must be a list of strings (argv, no shell), e.g. "
                  "[\"/usr/local/bin/job\", \"--verbose\"]"));
  }
  for (rapidjson::SizeType i = 0; i < v.Size(); ++i) {
    std::string arg;
    if (!ScalarText(v[i], &arg)) {
      Fail(KeyError("command", "element " + std::to_string(i) + " is not a string"));
    }
    if (arg.find('\0') != std::string::npos) {
      Fail(KeyError("command", "element " + std::to_string(i) + " contains a NUL byte"));
    }
    config->command.push_back(std::move(arg));
  }
  if (config->command.empty()) Fail(KeyError("command", "must not be empty"));
  if (config->command[0].empty()) Fail(KeyError("command", "the program name is empty"));
}

void ParseTimeout(const rapidjson::Value& v, ExecConfig* config) {
  long long ms = -1;
  if (v.IsInt64()) {
    ms = v.GetInt64();
  } else if (v.IsString()) {
    if (!ParseDurationMs(std::string_view(v.GetString(), v.GetStringLength()), &ms)) ms = -1;
  } else {
    Fail(KeyError("timeout", "must be a duration such as 30s, or milliseconds"));
  }
  if (ms <= 0 || ms > kMaxTimeoutMs) {
    Fail(KeyError("timeout", "must be a duration between 1ms and 7 days, such as 30s"));
  }
  config->timeout = std::chrono::milliseconds(ms);
}

void ParseEnv(const rapidjson::Value& v, ExecConfig* config) {
  if (!v.IsObject()) Fail(KeyError("env", "must be a map of variable names to strings"));
  for (auto it = v.MemberBegin(); it != v.MemberEnd(); ++it) {
    std::string name(it->name.GetString(), it->name.GetStringLength());
    if (name.empty() || name.find('=') != std::string::npos ||
        name.find('\0') != std::string::npos) {
      Fail(KeyError("env", "invalid variable name " + Quote(name)));
    }
    std::string value;
    if (!ScalarText(it->value, &value)) {
      Fail(KeyError("env", "the value of " + Quote(name) + " is not a string"));
    }
    if (value.find('\0') != std::string::npos) {
      Fail(KeyError("env", "the value of " + Quote(name) + " contains a NUL byte"));
    }
    config->env[name] = std::move(value);
  }
}

void ParseWorkingDir(const rapidjson::Value& v, ExecConfig* config) {
  if (!v.IsString()) Fail(KeyError("working_dir", "must be a string"));
  std::string dir(v.GetString(), v.GetStringLength());
  if (dir.empty()) return;
  struct stat st;
  if (stat(dir.c_str(), &st) != 0) {
    Fail(KeyError("working_dir", Quote(dir) + ": " + std::strerror(errno)));
  }
  if (!S_ISDIR(st.st_mode)) Fail(KeyError("working_dir", Quote(dir) + " is not a directory"));
  config->working_dir = std::move(dir);
}

void ParseMaxOutput(const rapidjson::Value& v, ExecConfig* config) {
  if (!v.IsInt64() || v.GetInt64() < 0 || v.GetInt64() > kMaxOutputBytes) {
    Fail(KeyError("max_output_bytes", "must be a number of bytes between 0 and 67108864"));
  }
  config->max_output_bytes = static_cast<size_t>(v.GetInt64());
}

void ParseRetryExitCodes(const rapidjson::Value& v, ExecConfig* config) {
  if (!v.IsArray()) Fail(KeyError("retry_exit_codes", "must be a list of exit statuses"));
  config->retry_exit_codes.clear();
  for (rapidjson::SizeType i = 0; i < v.Size(); ++i) {
    long long code = -1;
    if (v[i].IsInt64()) {
      code = v[i].GetInt64();
    } else if (!v[i].IsString() || !ParseInteger(v[i].GetString(), &code)) {
      code = -1;
    }
    if (code < 1 || code > 255) {
      Fail(KeyError("retry_exit_codes",
                    "element " + std::to_string(i) + " is not an exit status from 1 to 255"));
    }
    config->retry_exit_codes.push_back(static_cast<int>(code));
  }
}

}  // namespace

bool ParseDurationMs(std::string_view text, long long* ms) {
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  long long value = 0;
  if (!ParseInteger(text.substr(0, digits), &value)) return false;
  std::string_view unit = text.substr(digits);
  long long scale = 0;
  if (unit.empty() || unit == "ms") {
    scale = 1;
  } else if (unit == "s") {
    scale = 1000;
  } else if (unit == "m") {
    scale = 60 * 1000;
  } else if (unit == "h") {
    scale = 3600 * 1000;
  } else if (unit == "d") {
    scale = 24 * 3600 * 1000;
  } else {
    return false;
  }
  if (value > std::numeric_limits<long long>::max() / scale) return false;
  *ms = value * scale;
  return true;
}

ExecConfig ParseExecConfig(std::string_view json) {
  rapidjson::Document doc;
  doc.Parse(json.data(), json.size());
  if (doc.HasParseError()) {
    Fail(std::string("config is not valid JSON: ") +
         rapidjson::GetParseError_En(doc.GetParseError()) + " at offset " +
         std::to_string(doc.GetErrorOffset()));
  }
  if (!doc.IsObject()) Fail("config must be a JSON object");

  ExecConfig config;
  const rapidjson::Value* command = nullptr;
  for (auto it = doc.MemberBegin(); it != doc.MemberEnd(); ++it) {
    std::string_view key(it->name.GetString(), it->name.GetStringLength());
    const rapidjson::Value& value = it->value;
    if (key == "command") {
      command = &value;  // parsed last: resolving it needs env and working_dir
    } else if (key == "timeout") {
      ParseTimeout(value, &config);
    } else if (key == "env") {
      ParseEnv(value, &config);
    } else if (key == "working_dir") {
      ParseWorkingDir(value, &config);
    } else if (key == "max_output_bytes") {
      ParseMaxOutput(value, &config);
    } else if (key == "retry_exit_codes") {
      ParseRetryExitCodes(value, &config);
    } else {
      Fail("unknown config key " + Quote(key) +
           " (known: command, timeout, env, working_dir, max_output_bytes, retry_exit_codes)");
    }
  }
  if (command == nullptr) {
    Fail(KeyError("command",
                  "is required: the program to run and its arguments, e.g. "
                  "[\"/usr/local/bin/job\", \"--verbose\"]"));
  }
  ParseCommand(*command, &config);
  config.executable = ResolveExecutable(config);
  return config;
}

}  // namespace foxworker::exec_plugin
