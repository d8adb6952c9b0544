#include "daemon/app/admin/admin_render.h"

#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <fstream>
#include <algorithm>
#include <map>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "daemon/config/extension_registry.h"
#include "daemon/base/clock.h"
#include "daemon/core/metrics.h"
#include "daemon/app/supervisor.h"

namespace foxworker {
namespace {

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

void Key(JsonWriter& w, const char* key) { w.Key(key); }
void Str(JsonWriter& w, const std::string& s) {
  w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

struct QueueFamily {
  const char* name;
  const char* type;
  const char* help;
  double (*value)(const ConsumerStats&);
};

const QueueFamily kQueueFamilies[] = {
    {"foxworker_messages_received_total", "counter",
     "Messages fetched from the backend, per queue.",
     [](const ConsumerStats& s) { return double(s.received); }},
    {"foxworker_messages_acked_total", "counter", "Messages whose handler succeeded (acked).",
     [](const ConsumerStats& s) { return double(s.acked); }},
    {"foxworker_messages_retried_total", "counter",
     "Failed attempts scheduled for another try.",
     [](const ConsumerStats& s) { return double(s.retried); }},
    {"foxworker_messages_dead_lettered_total", "counter",
     "Messages rejected or out of attempts, moved to the dead-letter queue.",
     [](const ConsumerStats& s) { return double(s.dead_lettered); }},
    {"foxworker_messages_rejected_total", "counter",
     "Messages dead-lettered without retrying: the handler rejected them, no handler takes "
     "their type or a middleware refused them (a subset of dead_lettered).",
     [](const ConsumerStats& s) { return double(s.rejected); }},
    {"foxworker_messages_timed_out_total", "counter",
     "Attempts failed because the handler ran past its timeout.",
     [](const ConsumerStats& s) { return double(s.timed_out); }},
    {"foxworker_messages_released_total", "counter",
     "Fetched but unstarted messages handed back to the backend (shutdown, pause).",
     [](const ConsumerStats& s) { return double(s.released); }},
    {"foxworker_unknown_verdicts_total", "counter",
     "Handler calls that returned an unknown verdict (a plugin bug; treated as retry).",
     [](const ConsumerStats& s) { return double(s.unknown_verdicts); }},
    {"foxworker_admission_waits_total", "counter",
     "Times a middleware (rate limit, circuit breaker) held fetching back.",
     [](const ConsumerStats& s) { return double(s.admission_waits); }},
    {"foxworker_messages_in_flight", "gauge",
     "Messages fetched and not yet settled (running, deferred or buffered).",
     [](const ConsumerStats& s) { return double(s.in_flight); }},
    {"foxworker_handlers_stuck", "gauge",
     "Handler calls still running past their timeout (and deferred messages whose "
     "complete() is overdue), per queue.",
     [](const ConsumerStats& s) { return double(s.stuck); }},
};

std::string SecondsText(uint64_t ns) {
  char buf[32];
  snprintf(buf, sizeof buf, "%.1fs", static_cast<double>(ns) / 1e9);
  return buf;
}

}  // namespace

std::vector<std::string> ReadinessReasons(const Supervisor& supervisor) {
  std::vector<std::string> reasons;
  for (const auto& bc : supervisor.config().backends) {
    const Backend* b = supervisor.FindBackend(bc.name);
    if (b == nullptr) {
      reasons.push_back("backend " + bc.name + " is not running");
      continue;
    }
    BackendState st = b->State();
    if (!st.storage.empty() && st.storage != "ok") {
      reasons.push_back("backend " + bc.name + ": storage " + st.storage +
                        (st.last_error.empty() ? "" : ": " + st.last_error));
    } else if (!st.connected) {
      reasons.push_back("backend " + bc.name + " is disconnected" +
                        (st.last_error.empty() ? "" : ": " + st.last_error));
    }
  }
  for (const auto& c : supervisor.consumers()) {
    if (c->paused()) reasons.push_back("queue " + c->name() + " is paused");
    if (c->held()) {
      const std::string why = c->HoldReason();
      reasons.push_back("queue " + c->name() + " is paused" + (why.empty() ? "" : ": " + why));
    }
    std::vector<StuckHandler> stuck = c->Stuck();
    if (stuck.empty()) continue;
    const StuckHandler& s = stuck.front();  // the longest running
    reasons.push_back("queue " + c->name() + ": " + std::to_string(stuck.size()) +
                      " handler(s) stuck past their timeout (longest: " + s.handler +
                      " on message " + s.message_id + ", running " + SecondsText(s.running_ns) +
                      ", timeout " + SecondsText(s.timeout_ns) + ")");
  }
  if (supervisor.consumers().size() < supervisor.config().queues.size())
    reasons.push_back("not every queue has started");
  return reasons;
}

std::string RenderReadinessJson(const std::vector<std::string>& reasons) {
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  w.StartObject();
  Key(w, "ready");
  w.Bool(reasons.empty());
  Key(w, "reasons");
  w.StartArray();
  for (const auto& r : reasons) Str(w, r);
  w.EndArray();
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize()) + "\n";
}

uint64_t ResidentMemoryBytes() {
  std::ifstream statm("/proc/self/statm");
  uint64_t size = 0, resident = 0;
  if (!(statm >> size >> resident)) return 0;
  return resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

std::string RenderMetrics(const Supervisor& supervisor,
                          std::chrono::system_clock::time_point started) {
  PrometheusText m;
  const auto& consumers = supervisor.consumers();
  std::vector<std::pair<MetricLabels, ConsumerStats>> stats;
  for (const auto& c : consumers) stats.push_back({{{"queue", c->name()}}, c->Stats()});
  for (const QueueFamily& f : kQueueFamilies) {
    m.Family(f.name, f.type, f.help);
    for (const auto& [labels, s] : stats) m.Sample(labels, f.value(s));
  }
  m.Family("foxworker_queue_paused", "gauge", "1 when the queue is paused, else 0.");
  for (const auto& c : consumers) m.Sample({{"queue", c->name()}}, c->paused() ? 1 : 0);

  // Depth: the DepthPoller's last readings (a scrape never asks a backend);
  // values the backend cannot tell (-1) have no sample.
  if (const DepthPoller* poller = supervisor.depth_poller()) {
    const std::map<std::string, DepthReading> depth = poller->Snapshot();
    struct DepthFamily {
      const char* name;
      const char* help;
      double (*value)(const QueueDepth&);
    };
    static const DepthFamily kDepthFamilies[] = {
        {"foxworker_queue_backlog", "Messages ready to fetch and not yet delivered (last reading).",
         [](const QueueDepth& d) { return double(d.backlog); }},
        {"foxworker_queue_unacked", "Messages delivered to a consumer and not yet settled.",
         [](const QueueDepth& d) { return double(d.unacked); }},
        {"foxworker_queue_scheduled", "Messages waiting for a retry backoff or a delay.",
         [](const QueueDepth& d) { return double(d.scheduled); }},
        {"foxworker_queue_dead_letters", "Messages in the queue's dead letters.",
         [](const QueueDepth& d) { return double(d.dead_letters); }},
        {"foxworker_queue_oldest_age_seconds", "Age of the oldest ready message.",
         [](const QueueDepth& d) { return d.oldest_age_seconds; }},
    };
    for (const DepthFamily& f : kDepthFamilies) {
      m.Family(f.name, "gauge", f.help);
      for (const auto& [queue, r] : depth) {
        if (r.read_at_ms == 0) continue;  // never read
        double v = f.value(r.depth);
        if (v >= 0) m.Sample({{"queue", queue}}, v);
      }
    }
    m.Family("foxworker_queue_depth_read_ok", "gauge",
             "1 when the last reading of the queue's depth succeeded, 0 when it failed (the depth "
             "gauges then keep the last successful reading).");
    for (const auto& [queue, r] : depth) m.Sample({{"queue", queue}}, r.ok ? 1 : 0);
  }

  // isolation: process: one sample per child slot (its index, not its pid,
  // which changes at every restart).
  std::vector<std::pair<std::string, HandlerChildren>> children;
  for (const auto& c : consumers) {
    HandlerChildren h = c->Children();
    if (h.isolated) children.emplace_back(c->name(), std::move(h));
  }
  m.Family("foxworker_queue_crash_loop_paused", "gauge",
           "1 while the queue is paused after a crash loop of its handler children "
           "(isolation: process), else 0.");
  for (const auto& c : consumers) m.Sample({{"queue", c->name()}}, c->held() ? 1 : 0);
  m.Family("foxworker_queue_crash_loop_pauses_total", "counter",
           "Times the queue was paused after a crash loop (isolation: process).");
  for (const auto& [queue, h] : children)
    m.Sample({{"queue", queue}}, static_cast<double>(h.crash_loop_pauses));
  struct ChildFamily {
    const char* name;
    const char* type;
    const char* help;
    double (*value)(const HandlerChild&);
  };
  static const ChildFamily kChildFamilies[] = {
      {"foxworker_handler_child_pid", "gauge",
       "The pid of a queue's handler child (isolation: process); 0 while it restarts.",
       [](const HandlerChild& h) { return static_cast<double>(h.pid); }},
      {"foxworker_handler_child_tasks", "gauge", "Messages the child's current process answered.",
       [](const HandlerChild& h) { return static_cast<double>(h.tasks); }},
      {"foxworker_handler_child_running", "gauge", "Messages the child runs now.",
       [](const HandlerChild& h) { return static_cast<double>(h.running); }},
      {"foxworker_handler_child_resident_memory_bytes", "gauge", "The child's resident memory.",
       [](const HandlerChild& h) { return static_cast<double>(h.rss_bytes); }},
      {"foxworker_handler_child_uptime_seconds", "gauge", "How long the child's process has run.",
       [](const HandlerChild& h) { return h.uptime_s; }},
      {"foxworker_handler_child_restarts_total", "counter",
       "Processes started in the child's place after the first (crashes and recycling).",
       [](const HandlerChild& h) { return static_cast<double>(h.restarts); }},
      {"foxworker_handler_child_crashes_total", "counter",
       "Processes of the child that died other than by recycling or shutdown.",
       [](const HandlerChild& h) { return static_cast<double>(h.crashes); }},
  };
  for (const ChildFamily& f : kChildFamilies) {
    m.Family(f.name, f.type, f.help);
    for (const auto& [queue, h] : children)
      for (const HandlerChild& child : h.children)
        m.Sample({{"queue", queue}, {"child", std::to_string(child.index)}}, f.value(child));
  }

  const std::vector<double>& bounds = LatencyHistogram::BoundsSeconds();
  m.Family("foxworker_handler_duration_seconds", "histogram",
           "Time a handler call took, per queue and handler; one observation per message "
           "(a batch call counts once per message, with the call's duration).");
  for (const auto& c : consumers)
    for (const auto& h : c->handler_metrics())
      m.HistogramSamples({{"handler", h->handler}, {"queue", c->name()}}, bounds,
                         h->duration.Take());
  m.Family("foxworker_queue_wait_seconds", "histogram",
           "Time from a message's enqueue (the backend's timestamp) to its handler's start.");
  for (const auto& c : consumers)
    m.HistogramSamples({{"queue", c->name()}}, bounds, c->queue_wait().Take());

  // Middleware metrics: every family a registered middleware type declares,
  // with its samples per queue (samples of one queue with the same labels
  // add up), queues in name order.
  struct FamilySamples {
    // By queue; within a queue, label sets in the order first reported.
    std::map<std::string, std::vector<std::pair<MetricLabels, double>>> by_queue;
  };
  std::map<std::string, FamilySamples, std::less<>> families;
  const uint64_t now = MonotonicNs();
  for (const auto& c : consumers) {
    std::vector<MiddlewareSample> samples;
    for (const auto& mw : c->middleware()) mw->Samples(now, &samples);
    for (MiddlewareSample& sample : samples) {
      auto& list = families[sample.family].by_queue[c->name()];
      auto same = std::find_if(list.begin(), list.end(),
                               [&](const auto& entry) { return entry.first == sample.labels; });
      if (same != list.end()) {
        same->second += sample.value;
      } else {
        list.emplace_back(std::move(sample.labels), sample.value);
      }
    }
  }
  for (const MiddlewareExtension& type : ExtensionRegistry::Global().middleware()) {
    for (const MiddlewareMetricFamily& family : type.metric_families) {
      m.Family(family.name, family.type, family.help);
      auto it = families.find(family.name);
      if (it == families.end()) continue;
      for (const auto& [queue, list] : it->second.by_queue) {
        for (const auto& [labels, value] : list) {
          // Labels in name order, "queue" among them.
          MetricLabels all = labels;
          all.emplace_back("queue", queue);
          std::sort(all.begin(), all.end());
          m.Sample(all, value);
        }
      }
    }
  }

  std::vector<std::pair<std::string, BackendState>> backends;
  for (const auto& bc : supervisor.config().backends) {
    const Backend* b = supervisor.FindBackend(bc.name);
    if (b != nullptr) backends.emplace_back(bc.name, b->State());
  }
  m.Family("foxworker_backend_connected", "gauge",
           "1 when the backend's connection is up, else 0.");
  for (const auto& [name, st] : backends) m.Sample({{"backend", name}}, st.connected ? 1 : 0);
  m.Family("foxworker_backend_reconnects_total", "counter",
           "Times the backend reconnected after losing its connection.");
  for (const auto& [name, st] : backends) m.Sample({{"backend", name}}, double(st.reconnects));
  m.Family("foxworker_backend_storage_state", "gauge",
           "For backends on a local file: 1 for the file's current state (ok, disk_full, "
           "read_only, corrupt, deleted, io_error, busy, error), 0 for the others.");
  for (const auto& [name, st] : backends) {
    for (const std::string& state : st.storage_states) {
      m.Sample({{"backend", name}, {"state", state}}, state == st.storage ? 1 : 0);
    }
  }
  m.Family("foxworker_backend_storage_faults_total", "counter",
           "For backends on a local file: times the file left the ok state.");
  for (const auto& [name, st] : backends) {
    if (!st.storage_states.empty()) m.Sample({{"backend", name}}, double(st.storage_faults));
  }

  m.Family("foxworker_process_resident_memory_bytes", "gauge",
           "Resident memory of the foxworkerd process.");
  m.Sample({}, double(ResidentMemoryBytes()));
  m.Family("foxworker_uptime_seconds", "gauge", "Seconds since the daemon started consuming.");
  m.Sample({}, std::chrono::duration<double>(std::chrono::system_clock::now() - started).count());
  m.Family("foxworker_start_time_seconds", "gauge",
           "When the daemon started consuming, in seconds since the Unix epoch.");
  m.Sample({}, double(std::chrono::duration_cast<std::chrono::seconds>(started.time_since_epoch())
                          .count()));
  m.Family("foxworker_build_info", "gauge", "Always 1; the version is in the label.");
  m.Sample({{"version", FOXWORKER_VERSION}}, 1);

  return m.text() + MetricsRegistry::Default().RenderPrometheus();
}

std::string RenderQueueJson(const Supervisor& supervisor, const Consumer& c) {
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  const ConsumerOptions& qc = c.config();
  const QueueConfig* queue = supervisor.config().FindQueue(c.name());
  ConsumerStats s = c.Stats();
  w.StartObject();
  Key(w, "name");
  Str(w, c.name());
  Key(w, "backend");
  Str(w, qc.backend);
  Key(w, "source");
  Str(w, qc.source.empty() ? qc.name : qc.source);
  const Backend* b = supervisor.FindBackend(qc.backend);
  Key(w, "backend_connected");
  w.Bool(b != nullptr && b->State().connected);
  Key(w, "plugin");
  Str(w, queue != nullptr ? queue->plugin : std::string());
  Key(w, "paused");
  w.Bool(c.paused());
  // Why it takes no messages: the operator's pause, a crash loop, or both.
  const bool held = c.held();
  const std::string hold_reason = held ? c.HoldReason() : std::string();
  Key(w, "pause_reasons");
  w.StartArray();
  if (c.paused()) Str(w, "paused by an operator");
  if (held) Str(w, hold_reason);
  w.EndArray();
  Key(w, "crash_loop_paused");
  w.Bool(held);
  Key(w, "concurrency");
  w.Int(qc.concurrency);
  Key(w, "prefetch");
  w.Int(qc.prefetch);
  Key(w, "in_flight");
  w.Int64(s.in_flight);
  Key(w, "running");
  w.Int64(s.running);
  // The DepthPoller's last reading: numbers the backend cannot tell, or not
  // read yet, are null.
  {
    const DepthPoller* poller = supervisor.depth_poller();
    const DepthReading r = poller != nullptr ? poller->Reading(c.name()) : DepthReading{};
    const bool read = r.read_at_ms != 0;
    auto count = [&](const char* key, int64_t v) {
      Key(w, key);
      if (read && v >= 0) {
        w.Int64(v);
      } else {
        w.Null();
      }
    };
    Key(w, "depth");
    w.StartObject();
    count("backlog", r.depth.backlog);
    count("unacked", r.depth.unacked);
    count("scheduled", r.depth.scheduled);
    count("dead_letters", r.depth.dead_letters);
    Key(w, "oldest_age_seconds");
    if (read && r.depth.oldest_age_seconds >= 0) {
      w.Double(r.depth.oldest_age_seconds);
    } else {
      w.Null();
    }
    Key(w, "ok");
    w.Bool(r.ok);
    Key(w, "error");
    Str(w, poller == nullptr ? std::string("depth is not read (no admin listener)") : r.error);
    Key(w, "read_at_ms");
    w.Int64(r.read_at_ms);
    w.EndObject();
  }
  const HandlerChildren children = c.Children();
  Key(w, "isolation");
  Str(w, children.isolated ? "process" : "in_process");
  if (children.isolated) {
    Key(w, "children");
    w.StartArray();
    for (const HandlerChild& h : children.children) {
      w.StartObject();
      Key(w, "index");
      w.Int(h.index);
      Key(w, "pid");
      w.Int(h.pid);
      Key(w, "tasks");
      w.Uint64(h.tasks);
      Key(w, "running");
      w.Int(h.running);
      Key(w, "resident_memory_bytes");
      w.Uint64(h.rss_bytes);
      Key(w, "uptime_s");
      w.Double(h.uptime_s);
      Key(w, "restarts");
      w.Uint64(h.restarts);
      Key(w, "crashes");
      w.Uint64(h.crashes);
      w.EndObject();
    }
    w.EndArray();
    Key(w, "crash_loop_pauses");
    w.Uint64(children.crash_loop_pauses);
  }
  Key(w, "stuck");
  w.StartArray();
  for (const StuckHandler& h : c.Stuck()) {
    w.StartObject();
    Key(w, "handler");
    Str(w, h.handler);
    Key(w, "message_id");
    Str(w, h.message_id);
    Key(w, "attempt");
    w.Uint(h.attempt);
    Key(w, "running_for_s");
    w.Double(static_cast<double>(h.running_ns / 1000000) / 1e3);
    Key(w, "timeout_s");
    w.Double(static_cast<double>(h.timeout_ns / 1000000) / 1e3);
    Key(w, "deferred");
    w.Bool(h.deferred);
    w.EndObject();
  }
  w.EndArray();
  const std::pair<const char*, uint64_t> counts[] = {
      {"received", s.received},       {"acked", s.acked},
      {"retried", s.retried},         {"dead_lettered", s.dead_lettered},
      {"rejected", s.rejected},
      {"released", s.released},       {"timed_out", s.timed_out},
      {"unknown_verdicts", s.unknown_verdicts}, {"admission_waits", s.admission_waits}};
  Key(w, "counts");
  w.StartObject();
  for (const auto& [k, v] : counts) {
    Key(w, k);
    w.Uint64(v);
  }
  w.EndObject();
  Key(w, "middleware");
  w.StartArray();
  for (const auto& mw : c.middleware()) {
    w.StartObject();
    Key(w, "type");
    Str(w, std::string(mw->name()));
    std::string state = mw->State();
    if (!state.empty()) {
      Key(w, "state");
      Str(w, state);
    }
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

std::string RenderQueuesJson(const Supervisor& supervisor) {
  std::string out = "{\"queues\":[";
  bool first = true;
  for (const auto& c : supervisor.consumers()) {
    if (!first) out += ",";
    first = false;
    out += RenderQueueJson(supervisor, *c);
  }
  out += "],\"backends\":";
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  w.StartArray();
  for (const auto& bc : supervisor.config().backends) {
    const Backend* b = supervisor.FindBackend(bc.name);
    BackendState st = b != nullptr ? b->State() : BackendState{false, 0, 0, "not running"};
    w.StartObject();
    Key(w, "name");
    Str(w, bc.name);
    Key(w, "type");
    Str(w, bc.type);
    Key(w, "connected");
    w.Bool(st.connected);
    Key(w, "reconnects");
    w.Uint64(st.reconnects);
    Key(w, "consecutive_failures");
    w.Uint64(st.consecutive_failures);
    Key(w, "last_error");
    Str(w, st.last_error);
    if (!st.storage.empty()) {
      Key(w, "storage");
      Str(w, st.storage);
      Key(w, "storage_faults");
      w.Uint64(st.storage_faults);
    }
    w.EndObject();
  }
  w.EndArray();
  out.append(buf.GetString(), buf.GetSize());
  out += "}\n";
  return out;
}

std::string RenderErrorJson(const std::string& message) {
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  w.StartObject();
  Key(w, "error");
  Str(w, message);
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize()) + "\n";
}

}  // namespace foxworker
