#include "daemon/app/reload_plan.h"

#include <algorithm>
#include <set>

namespace foxworker {
namespace {

std::string Join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& x : v) out += (out.empty() ? "" : ", ") + x;
  return out;
}

bool Contains(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

// Daemon settings: those the running process cannot change stay as they
// are, with a warning.
void PlanDaemon(const Config& old, const Config& next, ReloadPlan& plan) {
  plan.daemon = next.daemon;
  if (plan.starting) return;
  auto needs_restart = [&](bool changed, const std::string& what) {
    if (changed)
      plan.warnings.push_back(what + " changed: restart the service to apply it (kept as it was)");
  };
  needs_restart(next.daemon.worker_threads != old.daemon.worker_threads, "daemon.worker_threads");
  needs_restart(!(next.daemon.admin == old.daemon.admin), "daemon.admin");
  needs_restart(next.daemon.state_dir != old.daemon.state_dir, "daemon.state_dir");
  plan.daemon.worker_threads = old.daemon.worker_threads;
  plan.daemon.admin = old.daemon.admin;
  plan.daemon.state_dir = old.daemon.state_dir;
  if (next.daemon.log_level != old.daemon.log_level)
    plan.changes.push_back("log level " + std::string(LogLevelName(next.daemon.log_level)));
  if (next.daemon.shutdown_timeout != old.daemon.shutdown_timeout)
    plan.changes.push_back("shutdown_timeout " +
                           std::to_string(next.daemon.shutdown_timeout.count()) + " ms");
  if (next.daemon.long_job_warning != old.daemon.long_job_warning)
    plan.changes.push_back("long_job_warning " +
                           std::to_string(next.daemon.long_job_warning.count()) + " ms");
  if (next.daemon.liveness_timeout != old.daemon.liveness_timeout)
    plan.changes.push_back("liveness_timeout " +
                           std::to_string(next.daemon.liveness_timeout.count()) + " ms");
}

Status PlanBackends(const Config& old, const Config& next, const RunningFacts& facts,
                    ReloadPlan& plan) {
  // Who reads from a backend now: its queues (consuming or waiting to
  // start) and the retired consumers still draining on it.
  auto users_of = [&](const std::string& name) {
    std::vector<std::string> users;
    for (bool consuming : {true, false})
      for (const auto& q : old.queues) {
        auto it = facts.queues.find(q.name);
        if (q.backend == name && it != facts.queues.end() && it->second.consuming == consuming)
          users.push_back(q.name);
      }
    for (const auto& d : facts.draining)
      if (d.backend == name) users.push_back(d.queue + " (draining)");
    return users;
  };
  for (const auto& bc : next.backends) {
    const BackendConfig* was = old.FindBackend(bc.name);
    if (was != nullptr && *was == bc) {
      plan.backends_kept.push_back(bc.name);
      continue;
    }
    if (was != nullptr) {
      std::vector<std::string> users = users_of(bc.name);
      if (!users.empty())
        return Status::InvalidArgument(
            "backend " + bc.name + " changed while queues use it (" + Join(users) +
            "): restart the service to apply a backend's new settings, or move its queues to a "
            "new backend first");
      plan.backends_rebuilt.push_back(bc.name);
      plan.backends_to_retire.push_back(bc.name);
    }
    plan.backends_to_start.push_back(bc.name);
    plan.changes.push_back("backend " + bc.name + (was ? " rebuilt" : " added"));
  }
  for (const auto& bc : old.backends)
    if (next.FindBackend(bc.name) == nullptr) {
      plan.backends_to_retire.push_back(bc.name);
      plan.changes.push_back("backend " + bc.name + " removed");
    }
  return Status::Ok();
}

void PlanPlugins(const Config& old, const Config& next, const RunningFacts& facts,
                 ReloadPlan& plan) {
  for (const auto& pc : next.plugins) {
    const PluginConfig* was = old.FindPlugin(pc.name);
    auto fact = facts.plugins.find(pc.name);
    if (was == nullptr || was->path != pc.path || fact == facts.plugins.end()) {
      plan.plugins_to_load.push_back(pc.name);
      if (was != nullptr) plan.plugins_to_retire.push_back(pc.name);
      plan.changes.push_back("plugin " + pc.name + (was ? " loaded from " + pc.path : " added"));
      continue;
    }
    plan.plugins_kept.push_back(pc.name);
    if (fact->second.changed_on_disk) {
      plan.plugins_changed_on_disk.push_back(pc.name);
      plan.warnings.push_back(
          "plugin " + pc.name + ": " + pc.path +
          " changed on disk since it was loaded; a .so cannot be loaded again at the same path, "
          "so the loaded code keeps running: restart the service to run the new build");
    }
    if (fact->second.next_config_json != fact->second.config_json) {
      plan.plugins_reconfigured.push_back(pc.name);
      plan.changes.push_back("plugin " + pc.name + " config");
    }
  }
  for (const auto& pc : old.plugins)
    if (next.FindPlugin(pc.name) == nullptr) {
      plan.plugins_to_retire.push_back(pc.name);
      plan.changes.push_back("plugin " + pc.name + " removed");
    }
}

void PlanQueues(const Config& old, const Config& next, const RunningFacts& facts,
                ReloadPlan& plan) {
  // Dependencies whose change hands a queue over even when its own settings
  // are the same: its plugin's instances, its retry policy, a shared limit.
  auto plugin_loaded = [&](const std::string& name) {
    return Contains(plan.plugins_to_load, name);
  };
  auto plugin_reconfigured = [&](const std::string& name) {
    return Contains(plan.plugins_reconfigured, name);
  };
  auto policy_changed = [&](const std::string& name) {
    const RetryPolicyConfig* a = old.FindRetryPolicy(name);
    const RetryPolicyConfig* b = next.FindRetryPolicy(name);
    return a == nullptr || b == nullptr || !(*a == *b);
  };
  auto uses_changed_limit = [&](const QueueConfig& qc) {
    for (const auto& m : qc.middleware)
      if (Contains(plan.rate_limits_changed, std::string(m.options->shared_state())))
        return true;
    return false;
  };
  for (const auto& qc : next.queues) {
    QueueStep step;
    step.name = qc.name;
    auto fact = facts.queues.find(qc.name);
    const bool known = fact != facts.queues.end();
    const bool consuming = known && fact->second.consuming;
    const QueueConfig* current = known ? old.FindQueue(qc.name) : nullptr;
    const bool plugin_changed = plugin_loaded(qc.plugin) || plugin_reconfigured(qc.plugin);
    const bool retry_changed = policy_changed(qc.retry_policy);
    const bool limit_changed = uses_changed_limit(qc);
    const bool deps_changed = plugin_changed || retry_changed || limit_changed;
    if (current != nullptr && *current == qc && !deps_changed) {
      plan.queues.push_back(step);
      continue;
    }
    if (consuming && !deps_changed && ChangesOnlyLimits(*current, qc, fact->second.watchdog)) {
      // Only concurrency or timeouts: the running consumer takes them, with
      // no pause and no hand-over.
      step.action = QueueAction::kChangeLimits;
      plan.queues.push_back(step);
      plan.changes.push_back("queue " + qc.name + " changed in place (" + QueueDiff(*current, qc) +
                             ")");
      continue;
    }
    if (consuming && !plugin_loaded(qc.plugin) && !retry_changed && !limit_changed &&
        ChangesChildrenInPlace(*current, qc, fact->second.watchdog)) {
      // isolation: process: the consumer stays; its children take the
      // change, or a new generation of them does while the old one
      // finishes its messages. No pause, no hand-over.
      step.action = QueueAction::kChangeLimits;
      step.process_changed = true;
      step.new_children = plugin_reconfigured(qc.plugin) || NeedsNewChildren(*current, qc);
      plan.queues.push_back(step);
      std::string what = QueueDiff(*current, qc);
      if (plugin_reconfigured(qc.plugin))
        what += (what.empty() ? "" : ", ") + std::string("plugin ") + qc.plugin + " config";
      plan.changes.push_back("queue " + qc.name + " changed in place (" + what + ")" +
                             (step.new_children ? ": new handler children, the old ones finish "
                                                  "their messages"
                                                : ""));
      continue;
    }
    step.action = QueueAction::kStart;
    step.replaces_consumer = consuming;
    step.replaces_waiting = known && !consuming;
    plan.queues.push_back(step);
    std::string why;
    if (current == nullptr) {
      why = "added";
    } else {
      why = QueueDiff(*current, qc);
      std::vector<std::string> deps;
      if (plugin_changed) deps.push_back("plugin " + qc.plugin);
      if (retry_changed) deps.push_back("retry policy " + qc.retry_policy);
      if (limit_changed) deps.push_back("shared rate limit");
      if (!deps.empty()) why += (why.empty() ? "" : ", ") + Join(deps) + " changed";
      why = "changed (" + why + ")";
    }
    plan.changes.push_back("queue " + qc.name + " " + why);
  }
  // Removed: running consumers first, then the ones waiting to start.
  for (bool consuming : {true, false})
    for (const auto& q : old.queues) {
      auto it = facts.queues.find(q.name);
      if (next.FindQueue(q.name) != nullptr || it == facts.queues.end() ||
          it->second.consuming != consuming)
        continue;
      plan.queues_removed.push_back(q.name);
      plan.changes.push_back("queue " + q.name + " removed");
    }
}

}  // namespace

const QueueStep* ReloadPlan::FindQueue(const std::string& name) const {
  for (const auto& q : queues)
    if (q.name == name) return &q;
  return nullptr;
}

bool ChangesOnlyLimits(const QueueConfig& running, const QueueConfig& next, bool watchdog) {
  // What the consumer does not see must be equal; the rest is the
  // consumer's own rule.
  QueueConfig probe = next;
  static_cast<ConsumerOptions&>(probe) = static_cast<const ConsumerOptions&>(running);
  // The children of isolation: process are sized to the concurrency.
  if (running.process_isolation && running.concurrency != next.concurrency) return false;
  return probe == running && OnlyLimitsDiffer(running, next, watchdog);
}

bool ChangesChildrenInPlace(const QueueConfig& running, const QueueConfig& next, bool watchdog) {
  if (!running.process_isolation || !next.process_isolation) return false;
  QueueConfig probe = next;
  static_cast<ConsumerOptions&>(probe) = static_cast<const ConsumerOptions&>(running);
  probe.process = running.process;
  return probe == running && OnlyLimitsDiffer(running, next, watchdog);
}

bool NeedsNewChildren(const QueueConfig& running, const QueueConfig& next) {
  const ProcessIsolationConfig& a = running.process;
  const ProcessIsolationConfig& b = next.process;
  // What a child is started with (its INIT frame and rlimits).
  return !(ChildLayoutOf(running) == ChildLayoutOf(next)) || a.address_space != b.address_space ||
         a.cpu_time != b.cpu_time || a.open_files != b.open_files ||
         a.max_processes != b.max_processes || a.no_new_privs != b.no_new_privs ||
         a.user != b.user || a.syscall_filter != b.syscall_filter ||
         a.syscall_deny != b.syscall_deny || a.syscall_action != b.syscall_action;
}

std::string QueueDiff(const QueueConfig& a, const QueueConfig& b) {
  std::vector<std::string> d;
  auto num = [&](const char* name, auto x, auto y) {
    if (x != y) d.push_back(std::string(name) + " " + std::to_string(x) + " -> " + std::to_string(y));
  };
  auto str = [&](const char* name, const std::string& x, const std::string& y) {
    if (x != y) d.push_back(std::string(name) + " \"" + x + "\" -> \"" + y + "\"");
  };
  str("backend", a.backend, b.backend);
  str("source", a.source, b.source);
  str("plugin", a.plugin, b.plugin);
  str("handler", a.handler, b.handler);
  num("concurrency", a.concurrency, b.concurrency);
  num("prefetch", a.prefetch, b.prefetch);
  num("batch_size", a.batch_size, b.batch_size);
  num("flush_interval", a.flush_interval.count(), b.flush_interval.count());
  num("timeout", a.timeout.count(), b.timeout.count());
  if (a.handler_timeouts != b.handler_timeouts) d.push_back("handler_timeouts");
  num("replace_stuck", a.replace_stuck, b.replace_stuck);
  if (a.retry_stuck_at_once != b.retry_stuck_at_once)
    d.push_back(std::string("retry_stuck ") + (a.retry_stuck_at_once ? "at_once" : "after_return") +
                " -> " + (b.retry_stuck_at_once ? "at_once" : "after_return"));
  str("retry_policy", a.retry_policy, b.retry_policy);
  if (!(a.middleware == b.middleware)) d.push_back("middleware");
  if (a.process_isolation != b.process_isolation)
    d.push_back(std::string("isolation ") + (a.process_isolation ? "process" : "in_process") +
                " -> " + (b.process_isolation ? "process" : "in_process"));
  if (a.process_isolation && b.process_isolation) {
    const ProcessIsolationConfig& p = a.process;
    const ProcessIsolationConfig& q = b.process;
    num("process.processes", p.processes, q.processes);
    num("process.timeout_grace", p.timeout_grace.count(), q.timeout_grace.count());
    num("process.max_tasks", p.max_tasks, q.max_tasks);
    num("process.max_memory", p.max_memory, q.max_memory);
    num("process.max_lifetime", p.max_lifetime.count(), q.max_lifetime.count());
    num("process.address_space", p.address_space, q.address_space);
    num("process.cpu_time", p.cpu_time.count(), q.cpu_time.count());
    num("process.open_files", p.open_files, q.open_files);
    num("process.max_processes", p.max_processes, q.max_processes);
    num("process.no_new_privs", p.no_new_privs, q.no_new_privs);
    str("process.user", p.user, q.user);
    if (!(p.crash_loop == q.crash_loop)) d.push_back("process.crash_loop");
    if (p.syscall_filter != q.syscall_filter || p.syscall_deny != q.syscall_deny ||
        p.syscall_action != q.syscall_action)
      d.push_back("process.syscall_filter");
  }
  return Join(d);
}

Result<ReloadPlan> ComputeReloadPlan(const Config& old, const Config& next,
                                     const RunningFacts& facts) {
  ReloadPlan plan;
  plan.starting = !facts.started;
  PlanDaemon(old, next, plan);
  if (Status s = PlanBackends(old, next, facts, plan); !s.ok()) return s;
  PlanPlugins(old, next, facts, plan);
  for (const auto& rl : old.rate_limits) {
    const RateLimitConfig* now = next.FindRateLimit(rl.name);
    if (now == nullptr || !(*now == rl)) plan.rate_limits_changed.push_back(rl.name);
  }
  PlanQueues(old, next, facts, plan);
  return plan;
}

}  // namespace foxworker
