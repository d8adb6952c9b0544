#include "daemon/ctl/ctl_commands.h"
#include "daemon/ctl/ctl_remote.h"

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

#include "daemon/backends/local/local_config.h"
#include "daemon/backends/local/local_store.h"
#include "daemon/config/config_parser.h"
#include "daemon/base/clock.h"
#include "daemon/ctl/ctl_format.h"

namespace foxworker {
namespace {

// Which file the command works on, from --db or --config [--backend].
Result<LocalStoreOptions> ResolveStore(const CtlArgs& args) {
  LocalStoreOptions options;
  if (!args.db_path.empty()) {
    options.path = args.db_path;
    return options;
  }
  if (args.config_path.empty()) {
    return Status::InvalidArgument("no database: give --db FILE or --config FILE");
  }
  auto config = LoadConfig(args.config_path);
  if (!config.ok()) return config.status();
  const BackendConfig* backend = nullptr;
  if (!args.backend.empty()) {
    backend = config->FindBackend(args.backend);
    if (backend == nullptr) {
      return Status::NotFound(args.config_path + ": no backend named \"" + args.backend + "\"");
    }
    if (backend->type != "local") {
      return Status::InvalidArgument(args.config_path + ": backend \"" + args.backend +
                                     "\" has type " + backend->type +
                                     "; foxworkerctl works on local backends");
    }
  } else {
    for (const BackendConfig& b : config->backends) {
      if (b.type == "local") {
        backend = &b;
        break;
      }
    }
    if (backend == nullptr) {
      return Status::NotFound(args.config_path + ": the config has no backend of type local");
    }
  }
  const auto* local = backend->options.As<LocalBackendOptions>();
  if (local == nullptr) {
    return Status::Internal(args.config_path + ": backend \"" + backend->name +
                            "\" has no local backend options");
  }
  options.path = local->path;
  options.durability = local->durability;
  return options;
}

Result<std::string> ReadPayload(const CtlArgs& args, std::istream& in) {
  if (args.payload_given) return args.payload;
  if (args.payload_file == "-") {
    std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (in.bad()) return Status::IoError("reading the payload from standard input failed");
    return data;
  }
  std::ifstream file(args.payload_file, std::ios::binary);
  if (!file) {
    return Status::IoError("cannot read payload file " + args.payload_file + ": " +
                           std::strerror(errno));
  }
  std::ostringstream data;
  data << file.rdbuf();
  if (file.bad()) return Status::IoError("reading payload file " + args.payload_file + " failed");
  return data.str();
}

// Writes the finished JSON document `buf` as one line.
void Emit(std::ostream& out, const rapidjson::StringBuffer& buf) {
  out.write(buf.GetString(), static_cast<std::streamsize>(buf.GetSize()));
  out << '\n';
}

int Enqueue(const CtlArgs& args, LocalStore& store, std::istream& in, std::ostream& out,
            std::ostream& err) {
  auto payload = ReadPayload(args, in);
  if (!payload.ok()) {
    err << "foxworkerctl: " << payload.status().message() << '\n';
    return kCtlError;
  }
  NewJob job;
  job.queue = args.queue;
  job.payload = std::move(payload).value();
  job.props.message_type = args.message_type;
  job.props.content_type = args.content_type;
  job.props.correlation_id = args.correlation_id;
  job.headers = args.headers;
  job.priority = args.priority;
  job.unique_key = args.unique_key;
  if (args.json && !args.raw) {
    rapidjson::Document doc;
    doc.Parse(job.payload.data(), job.payload.size());
    if (doc.HasParseError()) {
      err << "foxworkerctl: the payload is not valid JSON: "
          << rapidjson::GetParseError_En(doc.GetParseError()) << " (at byte "
          << doc.GetErrorOffset() << "); use --raw to enqueue it as it is\n";
      return kCtlError;
    }
    if (job.props.content_type.empty()) job.props.content_type = "application/json";
  }
  if (args.delay_ms > 0) job.run_at_ms = store.NowMs() + args.delay_ms;
  if (args.run_at_ms != 0) job.run_at_ms = args.run_at_ms;

  auto result = store.Enqueue(job);
  if (!result.ok()) {
    err << "foxworkerctl: " << result.status().message() << '\n';
    return kCtlError;
  }
  if (args.json) {
    rapidjson::StringBuffer buf;
    JsonWriter w(buf);
    w.StartObject();
    w.Key("id");
    w.Int64(result->id);
    w.Key("queue");
    WriteJsonString(w, job.queue);
    w.Key("duplicate");
    w.Bool(result->duplicate);
    w.Key("run_at");
    WriteJsonTime(w, job.run_at_ms == 0 ? store.NowMs() : job.run_at_ms);
    w.EndObject();
    Emit(out, buf);
  } else if (result->duplicate) {
    out << "job " << result->id << " with unique key \"" << job.unique_key
        << "\" is already pending or running on queue " << job.queue << "; nothing enqueued\n";
  } else {
    out << "enqueued job " << result->id << " on queue " << job.queue;
    if (job.run_at_ms != 0) out << ", due " << FormatIso8601Utc(job.run_at_ms);
    out << '\n';
  }
  return kCtlOk;
}

int Stats(const CtlArgs& args, LocalStore& store, std::ostream& out, std::ostream& err) {
  auto stats = store.Stats();
  if (!stats.ok()) {
    err << "foxworkerctl: " << stats.status().message() << '\n';
    return kCtlError;
  }
  if (args.json) {
    rapidjson::StringBuffer buf;
    JsonWriter w(buf);
    w.StartObject();
    w.Key("queues");
    w.StartArray();
    for (const QueueStats& q : *stats) {
      w.StartObject();
      w.Key("queue");
      WriteJsonString(w, q.queue);
      w.Key("waiting");
      w.Int64(q.waiting);
      w.Key("scheduled");
      w.Int64(q.scheduled);
      w.Key("running");
      w.Int64(q.running);
      w.Key("dead");
      w.Int64(q.dead);
      w.Key("done");
      w.Int64(q.done);
      w.Key("oldest_waiting_age_ms");
      w.Int64(q.oldest_waiting_age_ms);
      w.Key("paused");
      w.Bool(q.paused);
      w.EndObject();
    }
    w.EndArray();
    w.EndObject();
    Emit(out, buf);
    return kCtlOk;
  }
  if (stats->empty()) {
    out << "no queues in " << store.path() << '\n';
    return kCtlOk;
  }
  std::vector<std::vector<std::string>> rows = {
      {"QUEUE", "WAITING", "SCHEDULED", "RUNNING", "DEAD", "DONE", "OLDEST", "PAUSED"}};
  for (const QueueStats& q : *stats) {
    rows.push_back({q.queue, std::to_string(q.waiting), std::to_string(q.scheduled),
                    std::to_string(q.running), std::to_string(q.dead), std::to_string(q.done),
                    q.waiting > 0 ? FormatAge(q.oldest_waiting_age_ms) : "-",
                    q.paused ? "yes" : "no"});
  }
  PrintTable(out, rows);
  return kCtlOk;
}

int DeadList(const CtlArgs& args, LocalStore& store, std::ostream& out, std::ostream& err) {
  auto jobs = store.ListDead(args.queue, args.limit);
  if (!jobs.ok()) {
    err << "foxworkerctl: " << jobs.status().message() << '\n';
    return kCtlError;
  }
  if (args.json) {
    rapidjson::StringBuffer buf;
    JsonWriter w(buf);
    w.StartObject();
    w.Key("jobs");
    w.StartArray();
    for (const JobRecord& job : *jobs) WriteJobJson(w, job, /*with_payload=*/false);
    w.EndArray();
    w.EndObject();
    Emit(out, buf);
    return kCtlOk;
  }
  if (jobs->empty()) {
    out << "no dead jobs" << (args.queue.empty() ? "" : " on queue " + args.queue) << '\n';
    return kCtlOk;
  }
  std::vector<std::vector<std::string>> rows = {
      {"ID", "QUEUE", "TYPE", "ATTEMPTS", "FAILED AT", "REASON"}};
  for (const JobRecord& job : *jobs) {
    std::string reason = job.last_error;
    std::replace(reason.begin(), reason.end(), '\n', ' ');
    if (reason.size() > 80) reason = reason.substr(0, 77) + "...";
    rows.push_back({std::to_string(job.id), job.queue,
                    job.props.message_type.empty() ? "-" : job.props.message_type,
                    std::to_string(job.attempts), FormatIso8601Utc(job.failed_at_ms), reason});
  }
  PrintTable(out, rows);
  return kCtlOk;
}

int DeadShow(const CtlArgs& args, LocalStore& store, std::ostream& out, std::ostream& err) {
  auto job = store.GetJob(args.ids[0]);
  if (!job.ok()) {
    err << "foxworkerctl: " << job.status().message() << '\n';
    return kCtlError;
  }
  if (!job->has_value()) {
    err << "foxworkerctl: no job " << args.ids[0] << " in " << store.path() << '\n';
    return kCtlError;
  }
  if (args.json) {
    rapidjson::StringBuffer buf;
    JsonWriter w(buf);
    WriteJobJson(w, **job, /*with_payload=*/true);
    Emit(out, buf);
  } else {
    PrintJob(out, **job);
  }
  return kCtlOk;
}

// dead retry and dead purge share their shape.
int DeadChange(const CtlArgs& args, LocalStore& store, std::ostream& out, std::ostream& err) {
  const bool retry = args.command == CtlCommand::kDeadRetry;
  const char* verb = retry ? "retried" : "purged";
  std::vector<int64_t> changed, skipped;
  int64_t count = 0;
  if (args.all) {
    auto n = retry ? store.RetryAllDead(args.queue) : store.PurgeAllDead(args.queue);
    if (!n.ok()) {
      err << "foxworkerctl: " << n.status().message() << '\n';
      return kCtlError;
    }
    count = *n;
  } else {
    auto ids = retry ? store.RetryDead(args.ids) : store.PurgeDead(args.ids);
    if (!ids.ok()) {
      err << "foxworkerctl: " << ids.status().message() << '\n';
      return kCtlError;
    }
    changed = std::move(ids).value();
    count = static_cast<int64_t>(changed.size());
    for (int64_t id : args.ids) {
      if (std::find(changed.begin(), changed.end(), id) == changed.end()) skipped.push_back(id);
    }
  }
  if (args.json) {
    rapidjson::StringBuffer buf;
    JsonWriter w(buf);
    w.StartObject();
    w.Key(verb);
    w.Int64(count);
    if (!args.all) {
      w.Key("ids");
      w.StartArray();
      for (int64_t id : changed) w.Int64(id);
      w.EndArray();
      w.Key("skipped");
      w.StartArray();
      for (int64_t id : skipped) w.Int64(id);
      w.EndArray();
    }
    w.EndObject();
    Emit(out, buf);
  } else {
    out << verb << " " << count << " dead job(s)";
    if (args.all && !args.queue.empty()) out << " of queue " << args.queue;
    out << '\n';
  }
  for (int64_t id : skipped) {
    err << "foxworkerctl: job " << id << " was not " << verb
        << (retry ? ": it is not dead, does not exist, or its unique key is taken by a pending job"
                  : ": it is not dead or does not exist")
        << '\n';
  }
  return skipped.empty() ? kCtlOk : kCtlError;
}

int PauseOrResume(const CtlArgs& args, LocalStore& store, std::ostream& out, std::ostream& err) {
  const bool pause = args.command == CtlCommand::kPause;
  Status s = pause ? store.Pause(args.queue) : store.Resume(args.queue);
  if (!s.ok()) {
    err << "foxworkerctl: " << s.message() << '\n';
    return kCtlError;
  }
  if (args.json) {
    rapidjson::StringBuffer buf;
    JsonWriter w(buf);
    w.StartObject();
    w.Key("queue");
    WriteJsonString(w, args.queue);
    w.Key("paused");
    w.Bool(pause);
    w.EndObject();
    Emit(out, buf);
  } else {
    out << "queue " << args.queue << (pause ? " paused" : " resumed") << '\n';
  }
  return kCtlOk;
}

}  // namespace

int RunCtlCommand(const CtlArgs& args, std::istream& in, std::ostream& out, std::ostream& err) {
  if (!args.url.empty()) return RunRemoteCommand(args, in, out, err);
  auto options = ResolveStore(args);
  if (!options.ok()) {
    err << "foxworkerctl: " << options.status().message() << '\n';
    return kCtlError;
  }
  // Writing commands may create the file (a job can be enqueued, or a queue
  // paused, before the daemon first ran); reading ones must find it.
  options->create = args.command == CtlCommand::kEnqueue || args.command == CtlCommand::kPause;
  // Reading commands open the file read-only, so that a user with read
  // access alone (monitoring) can run them.
  options->read_only = args.command == CtlCommand::kStats ||
                       args.command == CtlCommand::kDeadList ||
                       args.command == CtlCommand::kDeadShow;
  auto store = LocalStore::Open(std::move(options).value());
  if (!store.ok()) {
    err << "foxworkerctl: " << store.status().message() << '\n';
    return kCtlError;
  }
  LocalStore& s = **store;
  switch (args.command) {
    case CtlCommand::kEnqueue:
      return Enqueue(args, s, in, out, err);
    case CtlCommand::kStats:
      return Stats(args, s, out, err);
    case CtlCommand::kDeadList:
      return DeadList(args, s, out, err);
    case CtlCommand::kDeadShow:
      return DeadShow(args, s, out, err);
    case CtlCommand::kDeadRetry:
    case CtlCommand::kDeadPurge:
      return DeadChange(args, s, out, err);
    case CtlCommand::kPause:
    case CtlCommand::kResume:
      return PauseOrResume(args, s, out, err);
    case CtlCommand::kHelp:
    case CtlCommand::kVersion:
      break;
  }
  err << "foxworkerctl: internal error: command not runnable here\n";
  return kCtlError;
}

}  // namespace foxworker
