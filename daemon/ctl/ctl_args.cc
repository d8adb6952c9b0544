#include "daemon/ctl/ctl_args.h"

#include <time.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <map>
#include <set>
#include <string_view>

#include "daemon/base/units.h"

namespace foxworker {
namespace {

// Starts with a newline so that the text lines up here; CtlUsage skips it.
constexpr char kUsage[] = R"(
usage: foxworkerctl [--db FILE | --config FILE [--backend NAME]] [--json] COMMAND
       foxworkerctl --url http://HOST:PORT [--token-file F] [--json] COMMAND

Works on the local backend's SQLite file directly; no daemon needs to run.
With --url it asks a running daemon's admin HTTP instead, for every backend
(local, Redis, RabbitMQ); dead-letter commands then name the queue and take
the opaque ids `dead list` prints:
  dead list QUEUE [--reason TEXT] [--limit N]
  dead show QUEUE ID
  dead retry QUEUE ID... | --all QUEUE [--reason TEXT]
  dead purge QUEUE ID... | --all QUEUE [--reason TEXT]
  stats, pause QUEUE, resume QUEUE, enqueue QUEUE PAYLOAD as below.

commands:
  enqueue QUEUE [PAYLOAD | -]  add a job; the payload is the argument, the file
                               given with --file, or standard input ("-")
      --file F                 read the payload from F ("-" = standard input)
      --type T                 message type (routes to a handler)
      --content-type CT        content type (default with --json: application/json)
      --header K=V             a header; repeatable
      --priority N             0..255, higher runs first (default 0)
      --delay D                run after D ("30s", "5m")
      --run-at TIME            run at an ISO 8601 time with zone (2026-03-01T12:00:00Z)
      --unique-key K           no-op when a job with key K is already pending or running
      --correlation-id ID      correlation id property
      --raw                    with --json: the payload need not be JSON
  stats                        per queue: waiting, scheduled, running, dead, done,
                               age of the oldest waiting job, paused
  dead list [QUEUE] [--limit N]  dead jobs, newest first (default limit 50)
  dead show ID                 everything about one job, with its payload
  dead retry ID... | --all [QUEUE]  put dead jobs back to waiting, attempts reset
  dead purge ID... | --all [QUEUE]  delete dead jobs
  pause QUEUE                  stop the daemons from claiming the queue's jobs
  resume QUEUE                 undo pause

options:
  --db FILE         the SQLite file of a local backend
  --config FILE     the daemon's config; uses its first local backend, or --backend NAME
  --url URL         a running daemon's admin listener (daemon.admin.listen)
  --token-file F    the admin token for changes (else $FOXWORKER_ADMIN_TOKEN)
  --reason TEXT     with --url: only dead letters whose reason contains TEXT
  --json            machine-readable output (one JSON document); with enqueue the
                    payload must also be valid JSON (unless --raw)
  --help, --version

exit status: 0 ok, 1 error, 2 usage error
)";

enum class Cmd { kGlobal, kEnqueue, kDeadList, kDeadRetryPurge };

struct OptionSpec {
  bool takes_value;
  Cmd scope;
};

const std::map<std::string, OptionSpec, std::less<>>& Options() {
  static const auto* options = new std::map<std::string, OptionSpec, std::less<>>{
      {"db", {true, Cmd::kGlobal}},
      {"config", {true, Cmd::kGlobal}},
      {"backend", {true, Cmd::kGlobal}},
      {"json", {false, Cmd::kGlobal}},
      {"url", {true, Cmd::kGlobal}},
      {"token-file", {true, Cmd::kGlobal}},
      {"reason", {true, Cmd::kGlobal}},
      {"help", {false, Cmd::kGlobal}},
      {"version", {false, Cmd::kGlobal}},
      {"file", {true, Cmd::kEnqueue}},
      {"type", {true, Cmd::kEnqueue}},
      {"content-type", {true, Cmd::kEnqueue}},
      {"header", {true, Cmd::kEnqueue}},
      {"priority", {true, Cmd::kEnqueue}},
      {"delay", {true, Cmd::kEnqueue}},
      {"run-at", {true, Cmd::kEnqueue}},
      {"unique-key", {true, Cmd::kEnqueue}},
      {"correlation-id", {true, Cmd::kEnqueue}},
      {"raw", {false, Cmd::kEnqueue}},
      {"limit", {true, Cmd::kDeadList}},
      {"all", {false, Cmd::kDeadRetryPurge}},
  };
  return *options;
}

const char* ScopeName(Cmd scope) {
  switch (scope) {
    case Cmd::kEnqueue:
      return "enqueue";
    case Cmd::kDeadList:
      return "dead list";
    case Cmd::kDeadRetryPurge:
      return "dead retry and dead purge";
    case Cmd::kGlobal:
      break;
  }
  return "every command";
}

Status Usage(std::string msg) { return Status::InvalidArgument(std::move(msg)); }

Result<int64_t> ParseInt(std::string_view text, int64_t min, int64_t max, const char* what) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v < min || v > max) {
    return Usage(std::string(what) + " must be an integer from " + std::to_string(min) + " to " +
                 std::to_string(max) + ", not \"" + std::string(text) + "\"");
  }
  return v;
}

Result<int64_t> ParseJobId(std::string_view text) {
  return ParseInt(text, 1, INT64_MAX, "a job id");
}

}  // namespace

const char* CtlUsage() { return kUsage + 1; }

Result<int64_t> ParseIso8601(const std::string& text) {
  int year, mon, day, hour, min, sec, n = 0;
  char sep;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2d%c%2d:%2d:%2d%n", &year, &mon, &day, &sep, &hour, &min,
                  &sec, &n) != 7 ||
      (sep != 'T' && sep != 't' && sep != ' ')) {
    return Usage("--run-at: \"" + text + "\" is not an ISO 8601 time like 2026-03-01T12:00:00Z");
  }
  std::string_view rest(text.c_str() + n);
  int64_t millis = 0;
  if (!rest.empty() && rest[0] == '.') {
    size_t digits = 1;
    while (digits < rest.size() && rest[digits] >= '0' && rest[digits] <= '9') ++digits;
    std::string frac(rest.substr(1, digits - 1));
    if (frac.empty()) return Usage("--run-at: \"" + text + "\" has an empty fraction");
    frac.resize(3, '0');  // milliseconds; finer digits are dropped
    millis = std::stoi(frac.substr(0, 3));
    rest.remove_prefix(digits);
  }
  int64_t offset_s = 0;
  if (rest == "Z" || rest == "z") {
    offset_s = 0;
  } else if (rest.size() == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':') {
    auto oh = ParseInt(rest.substr(1, 2), 0, 23, "--run-at: the zone's hours");
    auto om = ParseInt(rest.substr(4, 2), 0, 59, "--run-at: the zone's minutes");
    if (!oh.ok()) return oh.status();
    if (!om.ok()) return om.status();
    offset_s = (*oh * 3600 + *om * 60) * (rest[0] == '-' ? -1 : 1);
  } else {
    return Usage("--run-at: \"" + text +
                 "\" needs a time zone: end it with Z (UTC) or an offset like +01:00");
  }
  if (mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60) {
    return Usage("--run-at: \"" + text + "\" is not a valid date and time");
  }
  struct tm tm = {};
  tm.tm_year = year - 1900;
  tm.tm_mon = mon - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = min;
  tm.tm_sec = sec;
  time_t t = timegm(&tm);
  return (static_cast<int64_t>(t) - offset_s) * 1000 + millis;
}

Result<CtlArgs> ParseCtlArgs(const std::vector<std::string>& args) {
  CtlArgs out;
  std::vector<std::string> positional;
  std::vector<std::pair<std::string, std::string>> options;  // name, value
  bool options_done = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (options_done || a.size() < 2 || a[0] != '-') {
      positional.push_back(a);
      continue;
    }
    if (a == "--") {
      options_done = true;
      continue;
    }
    if (a == "-h") {
      options.emplace_back("help", "");
      continue;
    }
    if (a.rfind("--", 0) != 0) return Usage("unknown option " + a);
    size_t eq = a.find('=');
    std::string name = a.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
    auto spec = Options().find(name);
    if (spec == Options().end()) return Usage("unknown option --" + name);
    std::string value;
    if (spec->second.takes_value) {
      if (eq != std::string::npos) {
        value = a.substr(eq + 1);
      } else if (i + 1 < args.size()) {
        value = args[++i];
      } else {
        return Usage("option --" + name + " needs a value");
      }
    } else if (eq != std::string::npos) {
      return Usage("option --" + name + " takes no value");
    }
    options.emplace_back(name, value);
  }

  // The command decides which options apply.
  bool help = false, version = false;
  for (const auto& [name, value] : options) {
    help = help || name == "help";
    version = version || name == "version";
  }
  if (help || (positional.empty() && !version) ||
      (!positional.empty() && positional[0] == "help")) {
    out.command = CtlCommand::kHelp;
    return out;
  }
  if (version) {
    out.command = CtlCommand::kVersion;
    return out;
  }
  const std::string& cmd = positional[0];
  Cmd scope = Cmd::kGlobal;
  size_t first_arg = 1;
  if (cmd == "enqueue") {
    out.command = CtlCommand::kEnqueue;
    scope = Cmd::kEnqueue;
  } else if (cmd == "stats") {
    out.command = CtlCommand::kStats;
  } else if (cmd == "pause") {
    out.command = CtlCommand::kPause;
  } else if (cmd == "resume") {
    out.command = CtlCommand::kResume;
  } else if (cmd == "dead") {
    if (positional.size() < 2) return Usage("dead: give list, show, retry or purge");
    const std::string& sub = positional[1];
    first_arg = 2;
    if (sub == "list") {
      out.command = CtlCommand::kDeadList;
      scope = Cmd::kDeadList;
    } else if (sub == "show") {
      out.command = CtlCommand::kDeadShow;
    } else if (sub == "retry") {
      out.command = CtlCommand::kDeadRetry;
      scope = Cmd::kDeadRetryPurge;
    } else if (sub == "purge") {
      out.command = CtlCommand::kDeadPurge;
      scope = Cmd::kDeadRetryPurge;
    } else {
      return Usage("dead: unknown subcommand \"" + sub + "\" (list, show, retry, purge)");
    }
  } else {
    return Usage("unknown command \"" + cmd + "\"");
  }
  std::vector<std::string> rest(positional.begin() + static_cast<std::ptrdiff_t>(first_arg),
                                positional.end());
  std::string cmd_name = first_arg == 2 ? "dead " + positional[1] : cmd;

  for (const auto& [name, value] : options) {
    const OptionSpec& spec = Options().find(name)->second;
    if (spec.scope != Cmd::kGlobal && spec.scope != scope) {
      return Usage("option --" + name + " applies to " + ScopeName(spec.scope) + ", not " +
                   cmd_name);
    }
    if (name == "db") {
      out.db_path = value;
    } else if (name == "config") {
      out.config_path = value;
    } else if (name == "backend") {
      out.backend = value;
    } else if (name == "json") {
      out.json = true;
    } else if (name == "url") {
      out.url = value;
    } else if (name == "token-file") {
      out.token_file = value;
    } else if (name == "reason") {
      out.reason = value;
    } else if (name == "file") {
      out.payload_file = value;
    } else if (name == "type") {
      out.message_type = value;
    } else if (name == "content-type") {
      out.content_type = value;
    } else if (name == "header") {
      size_t eq = value.find('=');
      if (eq == 0 || eq == std::string::npos) {
        return Usage("--header needs NAME=VALUE, not \"" + value + "\"");
      }
      out.headers.emplace_back(value.substr(0, eq), value.substr(eq + 1));
    } else if (name == "priority") {
      auto p = ParseInt(value, 0, 255, "--priority");
      if (!p.ok()) return p.status();
      out.priority = *p;
    } else if (name == "delay") {
      auto d = ParseDuration(value);
      if (!d.ok()) return Usage("--delay: " + d.status().message());
      out.delay_ms = d->count();
    } else if (name == "run-at") {
      auto t = ParseIso8601(value);
      if (!t.ok()) return t.status();
      out.run_at_ms = *t;
    } else if (name == "unique-key") {
      if (value.empty()) return Usage("--unique-key must not be empty");
      out.unique_key = value;
    } else if (name == "correlation-id") {
      out.correlation_id = value;
    } else if (name == "raw") {
      out.raw = true;
    } else if (name == "limit") {
      auto n = ParseInt(value, 1, 1000000, "--limit");
      if (!n.ok()) return n.status();
      out.limit = static_cast<int>(*n);
    } else if (name == "all") {
      out.all = true;
    }
  }
  if (!out.db_path.empty() && !out.config_path.empty()) {
    return Usage("give --db or --config, not both");
  }
  if (!out.backend.empty() && out.config_path.empty()) {
    return Usage("--backend needs --config");
  }

  auto too_many = [&](size_t max) -> Status {
    if (rest.size() <= max) return Status::Ok();
    return Usage(cmd_name + ": unexpected argument \"" + rest[max] + "\"");
  };
  if (out.url.empty() && (!out.token_file.empty() || !out.reason.empty()))
    return Usage("--token-file and --reason need --url");
  if (!out.url.empty()) {
    if (!out.db_path.empty() || !out.config_path.empty())
      return Usage("give --url, or --db/--config, not both");
    if (out.url.rfind("http://", 0) != 0) return Usage("--url must be http://HOST:PORT");
    // Dead letters of a running daemon are per queue, with opaque ids.
    switch (out.command) {
      case CtlCommand::kDeadList:
        if (rest.size() != 1) return Usage("dead list: give the queue name (with --url)");
        out.queue = rest[0];
        return out;
      case CtlCommand::kDeadShow:
        if (rest.size() != 2) return Usage("dead show: give QUEUE ID (with --url)");
        out.queue = rest[0];
        out.str_ids.push_back(rest[1]);
        return out;
      case CtlCommand::kDeadRetry:
      case CtlCommand::kDeadPurge:
        if (rest.empty()) return Usage(cmd_name + ": give QUEUE ID... or --all QUEUE (with --url)");
        out.queue = rest[0];
        out.str_ids.assign(rest.begin() + 1, rest.end());
        if (out.all != out.str_ids.empty())
          return Usage(cmd_name + ": give QUEUE ID... or --all QUEUE (with --url)");
        return out;
      default:
        break;
    }
  }
  switch (out.command) {
    case CtlCommand::kEnqueue:
      if (rest.empty()) return Usage("enqueue: give the queue name");
      if (Status s = too_many(2); !s.ok()) return s;
      out.queue = rest[0];
      if (rest.size() == 2) {
        if (!out.payload_file.empty()) return Usage("enqueue: give a payload or --file, not both");
        if (rest[1] == "-") {
          out.payload_file = "-";
        } else {
          out.payload = rest[1];
          out.payload_given = true;
        }
      }
      if (!out.payload_given && out.payload_file.empty()) {
        return Usage(
            "enqueue: no payload: give it as an argument, with --file F, or - for "
            "standard input");
      }
      if (out.delay_ms > 0 && out.run_at_ms != 0) {
        return Usage("enqueue: give --delay or --run-at, not both");
      }
      break;
    case CtlCommand::kStats:
      if (Status s = too_many(0); !s.ok()) return s;
      break;
    case CtlCommand::kPause:
    case CtlCommand::kResume:
      if (rest.empty()) return Usage(cmd_name + ": give the queue name");
      if (Status s = too_many(1); !s.ok()) return s;
      out.queue = rest[0];
      break;
    case CtlCommand::kDeadList:
      if (Status s = too_many(1); !s.ok()) return s;
      if (!rest.empty()) out.queue = rest[0];
      break;
    case CtlCommand::kDeadShow: {
      if (rest.size() != 1) return Usage("dead show: give one job id");
      auto id = ParseJobId(rest[0]);
      if (!id.ok()) return id.status();
      out.ids.push_back(*id);
      break;
    }
    case CtlCommand::kDeadRetry:
    case CtlCommand::kDeadPurge:
      if (out.all) {
        if (Status s = too_many(1); !s.ok()) return s;
        if (!rest.empty()) out.queue = rest[0];
        break;
      }
      if (rest.empty()) return Usage(cmd_name + ": give job ids, or --all [QUEUE]");
      for (const std::string& r : rest) {
        auto id = ParseJobId(r);
        if (!id.ok()) return id.status();
        out.ids.push_back(*id);
      }
      break;
    case CtlCommand::kHelp:
    case CtlCommand::kVersion:
      break;
  }
  return out;
}

}  // namespace foxworker
