// The exec plugin: runs a configured command for each message, with the
// payload on stdin and the message's properties in the environment, and turns
// its exit status into a verdict. See plugins/exec/README.md.
//
// Instance model SHARED: one instance per queue serves all its concurrent
// messages. Run() touches only the immutable config and its own locals, so it
// is reentrant.
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <foxworker/plugin.hpp>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "child_process.h"
#include "exec_config.h"
#include "header_environment.h"

extern char** environ;

namespace foxworker::exec_plugin {
namespace {

// Unix milliseconds as decimal text; empty for 0, the SDK's "unknown".
std::string MillisOrEmpty(int64_t ms) { return ms == 0 ? std::string() : std::to_string(ms); }

// FOXWORKER_HEADERS_TYPE_<i>: the type the header was sent with.
const char* HeaderTypeName(foxw_header_type type) {
  switch (type) {
    case FOXW_HEADER_NULL: return "null";
    case FOXW_HEADER_BOOL: return "bool";
    case FOXW_HEADER_INT: return "int";
    case FOXW_HEADER_FLOAT: return "float";
    case FOXW_HEADER_DECIMAL: return "decimal";
    case FOXW_HEADER_TIMESTAMP: return "timestamp";
    case FOXW_HEADER_BYTES: return "bytes";
    case FOXW_HEADER_TABLE: return "table";
    case FOXW_HEADER_ARRAY: return "array";
    default: return "string";
  }
}

// Reason budget when the host does not say how much it keeps.
constexpr size_t kDefaultReasonBudget = 2048;

std::string FormatSeconds(std::chrono::steady_clock::duration d) {
  long long ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  std::string text = std::to_string(ms / 1000);
  if (long long frac = ms % 1000; frac != 0) {
    std::string digits = std::to_string(1000 + frac).substr(1);  // zero-padded to 3
    while (!digits.empty() && digits.back() == '0') digits.pop_back();
    text += "." + digits;
  }
  return text + "s";
}

std::string SignalName(int sig) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  if (const char* abbrev = sigabbrev_np(sig); abbrev != nullptr) {
    return std::to_string(sig) + " (SIG" + abbrev + ")";
  }
#endif
  return std::to_string(sig);
}

// The last lines of `output` that fit in `budget` bytes, one line per line,
// control characters other than tab and newline shown as '?'.
std::string LastLines(std::string_view output, size_t budget, bool truncated) {
  while (!output.empty() && (output.back() == '\n' || output.back() == '\r' ||
                             output.back() == ' ' || output.back() == '\t')) {
    output.remove_suffix(1);
  }
  constexpr std::string_view kElided = "[...] ";
  if (truncated) {
    // The capture began mid-line: drop that partial line.
    if (size_t newline = output.find('\n'); newline != std::string_view::npos) {
      output = output.substr(newline + 1);
    }
  }
  if (output.size() > budget) {
    size_t keep = budget > kElided.size() ? budget - kElided.size() : 0;
    output = output.substr(output.size() - keep);
    if (size_t newline = output.find('\n');
        newline != std::string_view::npos && newline + 1 < output.size()) {
      output = output.substr(newline + 1);  // start at a whole line
    }
    truncated = true;
  }
  std::string text = truncated && !output.empty() ? std::string(kElided) : std::string();
  for (char c : output) {
    unsigned char u = static_cast<unsigned char>(c);
    text += (u < 0x20 && c != '\n' && c != '\t') || u == 0x7f ? '?' : c;
  }
  return text;
}

}  // namespace

class ExecPlugin {
 public:
  static constexpr const char* kDescription =
      "Runs a command per message: payload on stdin, properties in FOXWORKER_* variables";
  static constexpr foxw_config_key kConfigSchema[] = {
      ConfigKey("command", FOXW_CONFIG_STRING_LIST, true, nullptr,
                "Program and arguments, argv form (no shell); a bare program name is looked "
                "up in PATH"),
      ConfigKey("timeout", FOXW_CONFIG_DURATION, false, "60s",
                "Longest run; then SIGTERM to its process group, SIGKILL 2s later, and a retry"),
      ConfigKey("env", FOXW_CONFIG_MAP, false, nullptr,
                "Extra environment variables, added to the daemon's"),
      ConfigKey("working_dir", FOXW_CONFIG_STRING, false, nullptr,
                "Directory to run in (default: the daemon's)"),
      ConfigKey("max_output_bytes", FOXW_CONFIG_INT, false, "65536",
                "How much of the end of stdout+stderr to keep for failure reasons"),
      ConfigKey("retry_exit_codes", FOXW_CONFIG_STRING_LIST, false, nullptr,
                "Exit statuses that mean retry (default: [75], EX_TEMPFAIL); other non-zero "
                "statuses reject"),
  };

  ExecPlugin(PluginContext& ctx, std::string_view config_json)
      : ctx_(ctx),
        config_(ParseExecConfig(config_json)),
        duration_(ctx.histogram("run_duration_seconds", "Time the exec plugin's commands ran")),
        timeouts_(ctx.counter("timeouts_total",
                              "Commands ended by the exec plugin's timeout or a cancellation")),
        spawn_failures_(
            ctx.counter("spawn_failures_total", "Commands the exec plugin could not start")) {
    // Snapshot the daemon's environment now, on the control thread: reading
    // environ while another thread calls setenv() is a data race.
    for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
      std::string_view var(*entry);
      size_t eq = var.find('=');
      if (eq == std::string_view::npos || eq == 0) continue;
      base_env_[std::string(var.substr(0, eq))] = std::string(var.substr(eq + 1));
    }
    for (const auto& [name, value] : config_.env) base_env_[name] = value;
    // The header variables describe the message alone (README, "Headers").
    RemoveHeaderVariables(base_env_);
    ctx_.log(FOXW_LOG_DEBUG, "exec: running ", config_.executable, " with a ",
             FormatSeconds(config_.timeout), " timeout");
  }

  Verdict Run(const Message& msg) const {
    ChildSpec spec;
    spec.executable = config_.executable;
    spec.argv = config_.command;
    spec.env = Environment(msg);
    spec.working_dir = config_.working_dir;
    spec.max_output_bytes = config_.max_output_bytes;

    auto deadline = std::chrono::steady_clock::now() + config_.timeout;
    ChildResult run = RunChild(spec, msg.payload(), deadline, [&msg] { return msg.cancelled(); });
    if (run.end != ChildResult::End::kSpawnFailed) {
      duration_.Observe(run.elapsed);
    }
    if (ctx_.log_enabled(FOXW_LOG_DEBUG)) {
      ctx_.log(FOXW_LOG_DEBUG, "exec: message ", msg.id(), ": ", Describe(run), " after ",
               FormatSeconds(run.elapsed), run.output.empty() ? "" : "; output:\n", run.output);
    }

    switch (run.end) {
      case ChildResult::End::kSpawnFailed:
        spawn_failures_.Increment();
        return Verdict::Retry(run.error);
      case ChildResult::End::kLost:
        return Verdict::Retry(run.error);
      case ChildResult::End::kExited:
        if (run.exit_code == 0) return Verdict::Ack();
        if (std::find(config_.retry_exit_codes.begin(), config_.retry_exit_codes.end(),
                      run.exit_code) != config_.retry_exit_codes.end()) {
          return Verdict::Retry(WithOutput(Describe(run), run, msg));
        }
        return Verdict::Reject(WithOutput(Describe(run), run, msg));
      case ChildResult::End::kSignaled:
        return Verdict::Retry(WithOutput(Describe(run), run, msg));
      case ChildResult::End::kTimedOut:
        timeouts_.Increment();
        return Verdict::Retry(
            WithOutput("timeout after " + FormatSeconds(config_.timeout), run, msg));
      case ChildResult::End::kCancelled:
        timeouts_.Increment();
        if (msg.has_deadline() && msg.time_left().count() == 0) {
          return Verdict::Retry(WithOutput(
              "timeout after " + FormatSeconds(run.elapsed) + " (the message's deadline)", run,
              msg));
        }
        return Verdict::Retry(WithOutput("cancelled after " + FormatSeconds(run.elapsed) +
                                             " (the daemon gave up on the message)",
                                         run, msg));
    }
    return Verdict::Retry("exec: unknown run result");
  }

 private:
  static std::string Describe(const ChildResult& run) {
    switch (run.end) {
      case ChildResult::End::kExited:
        return "exit status " + std::to_string(run.exit_code);
      case ChildResult::End::kSignaled:
        return "killed by signal " + SignalName(run.signal);
      case ChildResult::End::kTimedOut:
        return "timed out";
      case ChildResult::End::kCancelled:
        return "cancelled";
      case ChildResult::End::kSpawnFailed:
      case ChildResult::End::kLost:
        return run.error;
    }
    return "unknown";
  }

  // "<what>: <last lines of output>", sized to the host's reason buffer.
  static std::string WithOutput(std::string what, const ChildResult& run, const Message& msg) {
    size_t capacity = msg.reason_capacity() != 0 ? msg.reason_capacity() : kDefaultReasonBudget;
    if (capacity <= what.size() + 2) return what;
    std::string lines = LastLines(run.output, capacity - what.size() - 2, run.output_truncated);
    if (lines.empty()) return what;
    return what + ": " + lines;
  }

  std::vector<std::string> Environment(const Message& msg) const {
    std::map<std::string, std::string> env = base_env_;
    env["FOXWORKER_MESSAGE_ID"] = std::string(msg.id());
    env["FOXWORKER_QUEUE"] = std::string(msg.queue());
    env["FOXWORKER_ATTEMPT"] = std::to_string(msg.attempt());
    // Every property the SDK exposes; empty when the message has none.
    env["FOXWORKER_MESSAGE_TYPE"] = std::string(msg.message_type());
    env["FOXWORKER_CONTENT_TYPE"] = std::string(msg.content_type());
    env["FOXWORKER_CONTENT_ENCODING"] = std::string(msg.content_encoding());
    env["FOXWORKER_CORRELATION_ID"] = std::string(msg.correlation_id());
    env["FOXWORKER_REPLY_TO"] = std::string(msg.reply_to());
    env["FOXWORKER_APP_ID"] = std::string(msg.app_id());
    env["FOXWORKER_USER_ID"] = std::string(msg.user_id());
    env["FOXWORKER_EXPIRATION"] = std::string(msg.expiration());
    env["FOXWORKER_PRODUCER_MESSAGE_ID"] = std::string(msg.message_id());
    env["FOXWORKER_CLUSTER_ID"] = std::string(msg.cluster_id());
    env["FOXWORKER_PRIORITY"] = std::to_string(msg.priority());
    const std::optional<int64_t> timestamp = msg.property_int(FOXW_PROP_TIMESTAMP_MS);
    env["FOXWORKER_TIMESTAMP_MS"] =
        timestamp ? std::to_string(*timestamp) : MillisOrEmpty(msg.timestamp_ms());
    const std::optional<int64_t> mode = msg.property_int(FOXW_PROP_DELIVERY_MODE);
    env["FOXWORKER_DELIVERY_MODE"] = mode ? std::to_string(*mode) : std::string();
    env["FOXWORKER_ENQUEUED_AT_MS"] = MillisOrEmpty(msg.enqueued_at_ms());
    HeaderList headers;
    headers.reserve(msg.header_count());
    for (const auto& header : msg.headers()) headers.push_back(header);
    AddHeaderVariables(headers, env);
    for (size_t i = 0; i < headers.size(); ++i)
      env["FOXWORKER_HEADERS_TYPE_" + std::to_string(i + 1)] = HeaderTypeName(msg.header_type(i));
    std::vector<std::string> entries;
    entries.reserve(env.size());
    for (auto& [name, value] : env) {
      if (value.find('\0') != std::string::npos) continue;
      entries.push_back(name + "=" + value);
    }
    return entries;
  }

  PluginContext& ctx_;
  const ExecConfig config_;
  std::map<std::string, std::string> base_env_;
  Histogram duration_;
  Counter timeouts_;
  Counter spawn_failures_;
};

}  // namespace foxworker::exec_plugin

FOXWORKER_PLUGIN(foxworker::exec_plugin::ExecPlugin, "exec", "1.0.0", FOXW_INSTANCE_SHARED,
                 FOXWORKER_HANDLER(foxworker::exec_plugin::ExecPlugin, Run, "*"));
