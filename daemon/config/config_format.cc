// FormatConfig: the effective configuration written back as YAML.

#include <glog/logging.h>
#include <rapidjson/document.h>

#include <string>
#include <utility>

#include "daemon/config/config_parser.h"
#include "daemon/config/extension_registry.h"
#include "daemon/base/units.h"
#include "daemon/config/yaml_writer.h"

namespace foxworker {

std::string FormatConfig(const Config& config) {
  YamlWriter w;
  w.Comment("Effective configuration of " + config.file + ", every default written out.");
  const DaemonConfig& d = config.daemon;
  w.Line(0, "daemon", "");
  w.Line(1, "log_level", LogLevelName(d.log_level));
  w.Line(1, "worker_threads", std::to_string(d.worker_threads));
  w.Line(1, "shutdown_timeout", FormatDuration(d.shutdown_timeout));
  w.Line(1, "long_job_warning", FormatDuration(d.long_job_warning));
  w.Line(1, "liveness_timeout", FormatDuration(d.liveness_timeout));
  w.Line(1, "plugin_dir", Quote(d.plugin_dir));
  w.Line(1, "state_dir", Quote(d.state_dir));
  if (!d.admin.listen.empty()) {
    w.Line(1, "admin", "");
    w.Line(2, "listen", Quote(d.admin.listen));
    w.Line(2, "token_file", Quote(d.admin.token_file));
    w.Line(2, "request_timeout", FormatDuration(d.admin.request_timeout));
    w.Line(2, "depth_interval", FormatDuration(d.admin.depth_interval));
  }
  if (!d.include_dir.empty()) {
    w.text() += "  # include_dir: " + Quote(d.include_dir) + " (its files are merged below)\n";
  }

  w.Line(0, "plugins", config.plugins.empty() ? "{}" : "");
  for (const PluginConfig& p : config.plugins) {
    w.Line(1, p.name, "");
    w.Line(2, "path", Quote(p.path));
    rapidjson::Document json;
    json.Parse<rapidjson::kParseFullPrecisionFlag>(p.config_json.c_str(), p.config_json.size());
    CHECK(!json.HasParseError() && json.IsObject())
        << "plugin " << p.name << ": config_json is not a JSON object: " << p.config_json;
    w.Json(2, "config", json);
  }

  const ExtensionRegistry& registry = ExtensionRegistry::Global();
  w.Line(0, "backends", config.backends.empty() ? "{}" : "");
  for (const BackendConfig& b : config.backends) {
    w.Line(1, b.name, "");
    w.Line(2, "type", b.type);
    const BackendExtension* type = registry.FindBackend(b.type);
    CHECK(type != nullptr && b.options) << "backend " << b.name << " of unregistered type "
                                        << b.type;
    type->format(*b.options, w, 2);
  }

  w.Line(0, "queues", config.queues.empty() ? "{}" : "");
  for (const QueueConfig& q : config.queues) {
    w.Line(1, q.name, "");
    w.Line(2, "backend", Quote(q.backend));
    w.Line(2, "source", Quote(q.source));
    w.Line(2, "plugin", Quote(q.plugin));
    w.Line(2, "handler", Quote(q.handler));
    w.Line(2, "concurrency", std::to_string(q.concurrency));
    w.Line(2, "prefetch", std::to_string(q.prefetch));
    // 0 (batching off) is the absence of the key: a written batch_size is 1..10000.
    if (q.batch_size > 0) w.Line(2, "batch_size", std::to_string(q.batch_size));
    w.Line(2, "flush_interval", FormatDuration(q.flush_interval));
    w.Line(2, "pool", q.cpu_pool ? "cpu" : "queue");
    w.Line(2, "timeout", FormatDuration(q.timeout));
    // Unset means as many as the concurrency.
    w.Line(2, "replace_stuck",
           std::to_string(q.replace_stuck < 0 ? q.concurrency : q.replace_stuck));
    w.Line(2, "retry_stuck", q.retry_stuck_at_once ? "at_once" : "after_return");
    w.Line(2, "isolation", q.process_isolation ? "process" : "in_process");
    if (q.process_isolation) {
      const ProcessIsolationConfig& p = q.process;
      w.Line(2, "process", "");
      w.Line(3, "processes", std::to_string(p.processes > 0 ? p.processes : q.concurrency));
      w.Line(3, "timeout_grace", FormatDuration(p.timeout_grace));
      w.Line(3, "max_tasks", std::to_string(p.max_tasks));
      w.Line(3, "max_memory", FormatSize(p.max_memory));
      w.Line(3, "max_lifetime", FormatDuration(p.max_lifetime));
      w.Line(3, "address_space", FormatSize(p.address_space));
      w.Line(3, "cpu_time", FormatDuration(p.cpu_time));
      w.Line(3, "open_files", std::to_string(p.open_files));
      w.Line(3, "max_processes", std::to_string(p.max_processes));
      w.Line(3, "no_new_privs", BoolText(p.no_new_privs));
      w.Line(3, "user", Quote(p.user));
      w.Line(3, "syscall_filter", SyscallFilterName(p.syscall_filter));
      std::string deny;  // names are [a-z0-9_]: no quoting
      for (const std::string& name : p.syscall_deny) deny += (deny.empty() ? "" : ", ") + name;
      w.Line(3, "syscall_deny", "[" + deny + "]");
      w.Line(3, "syscall_action", SyscallActionName(p.syscall_action));
      w.Line(3, "crash_loop", "");
      w.Line(4, "crashes", std::to_string(p.crash_loop.crashes));
      w.Line(4, "window", FormatDuration(p.crash_loop.window));
      w.Line(4, "pause", FormatDuration(p.crash_loop.pause));
    }
    w.Line(2, "retry_policy", Quote(q.retry_policy));
    w.Line(2, "handler_timeouts", q.handler_timeouts.empty() ? "{}" : "");
    for (const auto& [handler, timeout] : q.handler_timeouts) {
      w.Line(3, handler, FormatDuration(timeout));
    }
    w.Line(2, "middleware", q.middleware.empty() ? "[]" : "");
    for (const MiddlewareConfig& m : q.middleware) {
      w.text() += "      - " + m.type + ":\n";
      const MiddlewareExtension* type = registry.FindMiddleware(m.type);
      CHECK(type != nullptr && m.options) << "middleware of unregistered type " << m.type;
      type->format(*m.options, w, 5);  // the settings, indented under the type
    }
    // The queue's backend block (`rabbitmq:`), written for every queue on a
    // backend of a type that has one.
    const BackendConfig* backend = config.FindBackend(q.backend);
    const BackendExtension* type = backend ? registry.FindBackend(backend->type) : nullptr;
    if (type != nullptr && type->format_queue) {
      type->format_queue(q.backend_block.options.get(), *backend, w, 2);
    }
  }

  w.Line(0, "retry_policies", config.retry_policies.empty() ? "{}" : "");
  for (const RetryPolicyConfig& r : config.retry_policies) {
    w.Line(1, r.name, "");
    w.Line(2, "max_attempts", std::to_string(r.max_attempts));
    w.Line(2, "backoff", BackoffName(r.backoff));
    w.Line(2, "initial", FormatDuration(r.initial));
    w.Line(2, "max", FormatDuration(r.max));
    w.Line(2, "multiplier", ShortestText(r.multiplier));
    w.Line(2, "jitter", ShortestText(r.jitter));
    w.Line(2, "full_jitter", r.full_jitter ? "true" : "false");
  }

  w.Line(0, "rate_limits", config.rate_limits.empty() ? "{}" : "");
  for (const RateLimitConfig& r : config.rate_limits) {
    w.Line(1, r.name, "");
    w.Line(2, "rate", FormatRate(r.rate));
    w.Line(2, "burst", std::to_string(r.burst));
  }
  return std::move(w.text());
}

}  // namespace foxworker
