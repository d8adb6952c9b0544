#include "daemon/core/supervisor.h"

#include <algorithm>
#include <set>
#include <sstream>
#include <thread>

#include "daemon/config/extension_registry.h"
#include "daemon/core/clock.h"
#include "daemon/middleware/chain.h"

namespace foxworker {
namespace {

std::string StrOf(const foxw_str& s) { return s.len ? std::string(s.ptr, s.len) : std::string(); }

// Time allowed, after the drain wait, to flush settlements and close.
constexpr std::chrono::seconds kCloseTimeout{5};

// What a queue's consumer is built from, except its source.
struct PreparedQueue {
  RetryPolicyConfig policy;
  std::unique_ptr<InstancePool> instances;
  std::vector<std::unique_ptr<Middleware>> middleware;
};

Result<PreparedQueue> PrepareQueue(const Config& config, const QueueConfig& qc,
                                   const LoadedPlugin& plugin, int threads, Backend* backend,
                                   SharedMiddlewareStates* buckets) {
  const RetryPolicyConfig* policy = config.FindRetryPolicy(qc.retry_policy);
  CHECK(policy) << "config validation let an unknown retry policy through";
  PreparedQueue p;
  p.policy = *policy;
  auto pool = InstancePool::Create(plugin, qc.concurrency, threads);
  if (!pool.ok()) return Status::InvalidArgument("queue " + qc.name + ": " + pool.status().message());
  p.instances = std::move(*pool);
  MiddlewareContext mc{&config, backend, buckets, MonotonicNs};
  auto chain = BuildMiddleware(qc, mc);
  if (!chain.ok()) return chain.status();
  p.middleware = std::move(*chain);
  return p;
}

std::string Join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& x : v) out += (out.empty() ? "" : ", ") + x;
  return out;
}

// The names of the QueueConfig fields that differ, for the reload log.
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
  str("retry_policy", a.retry_policy, b.retry_policy);
  if (!(a.middleware == b.middleware)) d.push_back("middleware");
  return Join(d);
}

}  // namespace

Supervisor::Supervisor(Config config) : config_(std::move(config)) {}

Supervisor::~Supervisor() {
  if (started_ && !shut_down_) Shutdown();
}

Status Supervisor::Start() {
  CHECK(!started_) << "Supervisor::Start called twice";
  for (const auto& pc : config_.plugins) {
    auto p = LoadedPlugin::Load(pc);
    if (!p.ok()) return p.status();
    (*p)->ctx()->publish = [this](const foxw_publish& pub, const Delivery* parent) {
      return PublishFromPlugin(pub, parent);
    };
    LOG(INFO) << "loaded plugin " << (*p)->name() << " " << (*p)->info().version << " from "
              << (*p)->path() << " (handlers: " << (*p)->HandlerNames() << ")";
    plugins_.push_back(std::move(*p));
  }
  for (const auto& bc : config_.backends) {
    auto b = MakeBackend(bc);
    if (!b.ok()) return b.status();
    backends_[bc.name] = std::move(*b);
  }
  executor_ = std::make_unique<Executor>(config_.daemon.worker_threads);
  timer_ = std::make_unique<Timer>();

  for (const auto& qc : config_.queues) {
    const LoadedPlugin* plugin = FindPlugin(qc.plugin);
    CHECK(plugin) << "config validation let an unknown plugin through: " << qc.plugin;
    Backend* backend = backends_.at(qc.backend).get();
    auto prepared =
        PrepareQueue(config_, qc, *plugin, executor_->threads(), backend, &shared_buckets_);
    if (!prepared.ok()) return prepared.status();
    SourceOptions so{qc.name, qc.source, qc.prefetch, prepared->policy.max_attempts,
                     prepared->policy, qc.backend_block.options.shared()};
    auto source = backend->OpenSource(so);
    if (!source.ok())
      return Status::InvalidArgument("queue " + qc.name + ": " + source.status().message());
    consumers_.push_back(std::make_unique<Consumer>(
        qc, prepared->policy, *plugin, std::move(prepared->instances), std::move(*source),
        std::move(prepared->middleware), *executor_, *timer_));
  }
  started_ = true;
  for (auto& [name, backend] : backends_) {
    Status s = backend->Start();
    if (!s.ok()) return Status::Unavailable("backend " + name + ": " + s.message());
  }
  for (auto& c : consumers_) {
    Status s = c->Start();
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

bool Supervisor::Shutdown(const std::function<bool()>& give_up) {
  if (shut_down_) return true;
  shut_down_ = true;
  const auto t0 = std::chrono::steady_clock::now();
  // A reload transition in progress: queues waiting to start never will;
  // consumers still draining from a reload drain with the rest.
  pending_.clear();
  {
    std::unique_lock<std::shared_mutex> lock(state_mu_);
    for (auto& r : retiring_) consumers_.push_back(std::move(r.consumer));
    retiring_.clear();
  }
  const auto deadline = t0 + config_.daemon.shutdown_timeout;
  for (auto& c : consumers_) c->StopFetching();
  int64_t in_flight = 0;
  for (auto& c : consumers_) in_flight += c->Stats().in_flight;
  if (in_flight > 0)
    LOG(INFO) << "draining: waiting up to " << config_.daemon.shutdown_timeout.count()
              << " ms for " << in_flight << " in-flight message(s)";
  bool drained = true;
  for (auto& c : consumers_) {
    while (!c->WaitDrained(std::min(deadline, std::chrono::steady_clock::now() +
                                                  std::chrono::milliseconds(50)))) {
      if (std::chrono::steady_clock::now() >= deadline || (give_up && give_up())) {
        drained = false;
        break;
      }
    }
    if (!drained) break;
  }
  if (!drained) {
    // Tell handlers that poll cancellation, and give them a moment.
    for (auto& c : consumers_) c->CancelInFlight();
    const auto grace = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    drained = true;
    for (auto& c : consumers_) drained = c->WaitDrained(grace) && drained;
  }
  const auto close_deadline = std::chrono::steady_clock::now() + kCloseTimeout;
  if (!drained) {
    int64_t left = 0;
    for (auto& c : consumers_) left += c->Stats().in_flight;
    LOG(WARNING) << "shutdown: giving up on " << left
                 << " in-flight message(s); they were not acked and will be redelivered";
    // Flush what did finish; leave the stuck handlers' state alone.
    for (auto& [name, backend] : backends_) backend->Stop(close_deadline);
    for (auto& backend : retiring_backends_) backend->Stop(close_deadline);
    return false;
  }
  for (auto& [name, backend] : backends_) backend->Stop(close_deadline);
  for (auto& backend : retiring_backends_) backend->Stop(close_deadline);
  // A deferred completion may still be inside Consumer::Complete() just after
  // it settled; wait (briefly) until no thread is inside a consumer before
  // tearing anything down.
  for (auto& c : consumers_) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    while (!c->Quiesced() && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  // No handler runs any more. Consumers and backends stay (stopped) until the
  // supervisor is destroyed, so their final counts can still be read.
  for (auto& c : consumers_) c->DestroyInstances();
  executor_->Shutdown();
  for (auto it = plugins_.rbegin(); it != plugins_.rend(); ++it) (*it)->Shutdown();
  for (auto& p : retiring_plugins_) p->Shutdown();
  LOG(INFO) << "shutdown complete in "
            << std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::steady_clock::now() - t0)
                   .count()
            << " ms";
  return true;
}

std::string Supervisor::Describe() const {
  std::ostringstream os;
  os << "queues [";
  bool first = true;
  for (const auto& c : consumers_) {
    const auto& q = c->config();
    os << (first ? "" : ", ") << q.name << " (backend " << q.backend << ", source " << q.source
       << ", plugin " << q.plugin << ", handler " << (q.handler.empty() ? "by type" : q.handler)
       << ", concurrency " << q.concurrency << ", prefetch " << q.prefetch << ")";
    first = false;
  }
  os << "]; backends [";
  first = true;
  for (const auto& b : config_.backends) {
    os << (first ? "" : ", ") << b.name << " (" << b.type << ")";
    first = false;
  }
  os << "]; plugins [";
  first = true;
  for (const auto& p : plugins_) {
    os << (first ? "" : ", ") << p->name() << " " << p->info().version << " (" << p->HandlerNames()
       << ")";
    first = false;
  }
  os << "]; " << (executor_ ? executor_->threads() : 0) << " worker threads";
  return os.str();
}

Backend* Supervisor::FindBackend(const std::string& name) const {
  auto it = backends_.find(name);
  return it == backends_.end() ? nullptr : it->second.get();
}

Consumer* Supervisor::FindConsumer(const std::string& name) const {
  for (const auto& c : consumers_)
    if (c->name() == name) return c.get();
  return nullptr;
}

LoadedPlugin* Supervisor::FindPlugin(const std::string& name) const {
  for (const auto& p : plugins_)
    if (p->name() == name) return p.get();
  return nullptr;
}

Status Supervisor::PublishFromPlugin(const foxw_publish& p, const Delivery* parent) {
  if (p.struct_size < sizeof(foxw_publish))
    return Status::InvalidArgument("foxw_publish struct too small");
  // Handler threads publish while a reload may swap the config and backends.
  auto lock = ReadLock();
  const std::string queue = StrOf(p.queue);
  const QueueConfig* qc = nullptr;
  for (const auto& q : config_.queues)
    if (q.name == queue) qc = &q;
  if (qc == nullptr) return Status::NotFound("no queue named \"" + queue + "\" in the config");
  Message m;
  m.payload = StrOf(p.payload);
  m.props.message_type = StrOf(p.message_type);
  m.props.content_type = StrOf(p.content_type);
  m.props.correlation_id = StrOf(p.correlation_id);
  if (m.props.correlation_id.empty() && parent) m.props.correlation_id = parent->msg.props.correlation_id;
  m.props.priority = p.priority;
  m.props.timestamp_ms = WallMs();
  for (size_t i = 0; i < p.header_count; ++i)
    m.headers.emplace_back(StrOf(p.headers[i].name), StrOf(p.headers[i].value));
  return backends_.at(qc->backend)->Enqueue(qc->source, std::move(m), Duration(p.delay_ms));
}

Result<ReloadReport> Supervisor::Reload(Config next) {
  CHECK(started_ && !shut_down_) << "Supervisor::Reload outside Start..Shutdown";
  ReloadReport report;

  // ---- daemon: what the running process cannot change stays as it is.
  auto needs_restart = [&](bool changed, const std::string& what) {
    if (changed)
      report.warnings.push_back(what + " changed: restart the service to apply it (kept as it was)");
  };
  needs_restart(next.daemon.worker_threads != config_.daemon.worker_threads,
                "daemon.worker_threads");
  needs_restart(!(next.daemon.admin == config_.daemon.admin), "daemon.admin");
  needs_restart(next.daemon.state_dir != config_.daemon.state_dir, "daemon.state_dir");
  next.daemon.worker_threads = config_.daemon.worker_threads;
  next.daemon.admin = config_.daemon.admin;
  next.daemon.state_dir = config_.daemon.state_dir;
  if (next.daemon.log_level != config_.daemon.log_level)
    report.changes.push_back("log level " + std::string(LogLevelName(next.daemon.log_level)));
  if (next.daemon.shutdown_timeout != config_.daemon.shutdown_timeout)
    report.changes.push_back("shutdown_timeout " + std::to_string(next.daemon.shutdown_timeout.count()) + " ms");

  // Everything built below is undone unless the reload commits.
  std::map<std::string, std::unique_ptr<Backend>> new_backends;
  std::map<std::string, std::unique_ptr<LoadedPlugin>> new_plugins;
  std::map<LoadedPlugin*, std::string> old_json;  // plugins whose JSON was swapped
  std::vector<PendingStart> starts;
  // Running consumers whose limits change in place, with what that needs.
  std::vector<std::pair<Consumer*, Consumer::LimitChange>> in_place;
  bool committed = false;
  struct Undo {
    std::function<void()> fn;
    ~Undo() { fn(); }
  } undo{[&] {
    if (committed) return;
    starts.clear();  // destroys the new instances while their plugins still exist
    in_place.clear();
    for (auto& [plugin, json] : old_json) plugin->SetConfigJson(json);
    for (auto& [name, plugin] : new_plugins) plugin->Shutdown();
    // Retire them like any other plugin: never dlclose, keep the object.
    for (auto& [name, plugin] : new_plugins) finished_plugins_.push_back(std::move(plugin));
    for (auto& [name, backend] : new_backends)
      backend->Stop(std::chrono::steady_clock::now() + kCloseTimeout);
  }};

  // ---- backends
  auto users_of_backend = [&](const std::string& name) {
    std::vector<std::string> users;
    const Backend* b = FindBackend(name);
    for (const auto& c : consumers_)
      if (c->config().backend == name) users.push_back(c->name());
    for (const auto& p : pending_)
      if (p.config.backend == name) users.push_back(p.config.name);
    for (const auto& r : retiring_)
      if (r.backend == b) users.push_back(r.consumer->name() + " (draining)");
    return users;
  };
  std::vector<std::string> drop_backends;  // retired: removed or rebuilt
  for (const auto& bc : next.backends) {
    const BackendConfig* old = config_.FindBackend(bc.name);
    if (old != nullptr && *old == bc) continue;
    if (old != nullptr) {
      std::vector<std::string> users = users_of_backend(bc.name);
      if (!users.empty())
        return Status::InvalidArgument(
            "backend " + bc.name + " changed while queues use it (" + Join(users) +
            "): restart the service to apply a backend's new settings, or move its queues to a "
            "new backend first");
      drop_backends.push_back(bc.name);
    }
    auto b = MakeBackend(bc);
    if (!b.ok()) return Status::InvalidArgument("backend " + bc.name + ": " + b.status().message());
    Status st = (*b)->Start();
    if (!st.ok()) {
      (*b)->Stop(std::chrono::steady_clock::now() + kCloseTimeout);
      return Status::Unavailable("backend " + bc.name + ": " + st.message());
    }
    report.changes.push_back(std::string(old ? "backend " + bc.name + " rebuilt" : "backend " + bc.name + " added"));
    new_backends[bc.name] = std::move(*b);
  }
  for (const auto& bc : config_.backends)
    if (next.FindBackend(bc.name) == nullptr) {
      drop_backends.push_back(bc.name);
      report.changes.push_back("backend " + bc.name + " removed");
    }

  // ---- plugins
  std::set<std::string> renewed;  // plugins whose queues need new instances
  std::map<LoadedPlugin*, std::string> set_json;
  for (const auto& pc : next.plugins) {
    LoadedPlugin* old = FindPlugin(pc.name);
    if (old == nullptr || old->path() != pc.path) {
      auto p = LoadedPlugin::Load(pc);
      if (!p.ok()) return Status::InvalidArgument("plugin " + pc.name + ": " + p.status().message());
      (*p)->ctx()->publish = [this](const foxw_publish& pub, const Delivery* parent) {
        return PublishFromPlugin(pub, parent);
      };
      LOG(INFO) << "loaded plugin " << (*p)->name() << " " << (*p)->info().version << " from "
                << (*p)->path() << " (handlers: " << (*p)->HandlerNames() << ")";
      report.changes.push_back("plugin " + pc.name + (old ? " loaded from " + pc.path : " added"));
      new_plugins[pc.name] = std::move(*p);
      renewed.insert(pc.name);
      continue;
    }
    auto id = StatPluginFile(pc.path);
    if (!id.ok()) return Status::InvalidArgument("plugin " + pc.name + ": " + id.status().message());
    if (!(*id == old->file_id()))
      report.warnings.push_back(
          "plugin " + pc.name + ": " + pc.path +
          " changed on disk since it was loaded; a .so cannot be loaded again at the same path, "
          "so the loaded code keeps running: restart the service to run the new build");
    auto json = ApplyPluginSchema(pc, old->info());
    if (!json.ok()) return json.status();
    if (*json != old->config().config_json) {
      set_json[old] = std::move(*json);
      renewed.insert(pc.name);
      report.changes.push_back("plugin " + pc.name + " config");
    }
  }
  for (const auto& p : plugins_)
    if (next.FindPlugin(p->name()) == nullptr) report.changes.push_back("plugin " + p->name() + " removed");
  for (auto& [plugin, json] : set_json) {
    old_json[plugin] = plugin->config().config_json;
    plugin->SetConfigJson(std::move(json));
  }
  auto plugin_for = [&](const std::string& name) -> const LoadedPlugin* {
    auto it = new_plugins.find(name);
    return it != new_plugins.end() ? it->second.get() : FindPlugin(name);
  };

  // ---- retry policies and shared rate limits a queue depends on
  auto policy_changed = [&](const std::string& name) {
    const RetryPolicyConfig* a = config_.FindRetryPolicy(name);
    const RetryPolicyConfig* b = next.FindRetryPolicy(name);
    return a == nullptr || b == nullptr || !(*a == *b);
  };
  // Shared limits whose definition changed or went: every queue using one
  // gets the new bucket (PrepareQueue adds it to `buckets` for the first such
  // queue, so the test below is on this set, not on `buckets`).
  auto buckets = shared_buckets_;
  std::set<std::string> stale_buckets;
  for (auto it = buckets.begin(); it != buckets.end();) {
    const RateLimitConfig* a = config_.FindRateLimit(it->first);
    const RateLimitConfig* b = next.FindRateLimit(it->first);
    if (a != nullptr && b != nullptr && *a == *b) {
      ++it;
      continue;
    }
    stale_buckets.insert(it->first);
    it = buckets.erase(it);
  }
  auto uses_new_bucket = [&](const QueueConfig& qc) {
    for (const auto& m : qc.middleware)
      if (stale_buckets.count(std::string(m.options->shared_state())) > 0) return true;
    return false;
  };

  // ---- queues
  std::vector<Consumer*> retire;
  std::set<std::string> drop_pending;
  for (const auto& qc : next.queues) {
    Consumer* c = FindConsumer(qc.name);
    const PendingStart* waiting = nullptr;
    for (const auto& p : pending_)
      if (p.config.name == qc.name) waiting = &p;
    const QueueConfig* current = c ? &c->config() : waiting ? &waiting->config : nullptr;
    const bool deps_changed = renewed.count(qc.plugin) > 0 || policy_changed(qc.retry_policy) ||
                              uses_new_bucket(qc);
    if (current != nullptr && *current == qc && !deps_changed) continue;
    if (c != nullptr && !deps_changed && c->CanChangeLimits(qc)) {
      // Only concurrency or timeouts: the running consumer takes them, with
      // no pause and no hand-over (the instances a higher concurrency needs
      // are made now, so a failing create() fails the reload).
      auto change = c->PrepareLimits(qc);
      if (!change.ok()) return change.status();
      report.changes.push_back("queue " + qc.name + " changed in place (" +
                               QueueDiff(*current, qc) + ")");
      in_place.emplace_back(c, std::move(*change));
      continue;
    }
    const LoadedPlugin* plugin = plugin_for(qc.plugin);
    CHECK(plugin) << "config validation let an unknown plugin through: " << qc.plugin;
    if (Status s = CheckQueueHandler(qc, *plugin); !s.ok()) return s;
    // The queue's backend as it will be after this reload.
    auto rebuilt = new_backends.find(qc.backend);
    Backend* backend =
        rebuilt != new_backends.end() ? rebuilt->second.get() : FindBackend(qc.backend);
    auto prepared = PrepareQueue(next, qc, *plugin, executor_->threads(), backend, &buckets);
    if (!prepared.ok()) return prepared.status();
    starts.push_back(PendingStart{qc, prepared->policy, plugin, std::move(prepared->instances),
                                  std::move(prepared->middleware)});
    if (c != nullptr) retire.push_back(c);
    if (waiting != nullptr) drop_pending.insert(qc.name);
    starts.back().paused = c ? c->paused() : waiting ? waiting->paused : false;
    std::string why;
    if (current == nullptr) {
      why = "added";
    } else {
      why = QueueDiff(*current, qc);
      std::vector<std::string> deps;
      if (renewed.count(qc.plugin)) deps.push_back("plugin " + qc.plugin);
      if (policy_changed(qc.retry_policy)) deps.push_back("retry policy " + qc.retry_policy);
      if (uses_new_bucket(qc)) deps.push_back("shared rate limit");
      if (!deps.empty()) why += (why.empty() ? "" : ", ") + Join(deps) + " changed";
      why = "changed (" + why + ")";
    }
    report.changes.push_back("queue " + qc.name + " " + why);
  }
  for (const auto& c : consumers_)
    if (next.FindQueue(c->name()) == nullptr) {
      retire.push_back(c.get());
      report.changes.push_back("queue " + c->name() + " removed");
    }
  for (const auto& p : pending_)
    if (next.FindQueue(p.config.name) == nullptr) {
      drop_pending.insert(p.config.name);
      report.changes.push_back("queue " + p.config.name + " removed");
    }

  // ---- commit: nothing below fails.
  committed = true;
  {
    std::unique_lock<std::shared_mutex> lock(state_mu_);
    for (Consumer* c : retire) {
      c->StopFetching();
      const int64_t in_flight = c->Stats().in_flight;
      if (in_flight > 0)
        LOG(INFO) << "queue " << c->name() << ": stopped fetching; " << in_flight
                  << " message(s) in flight finish on the old consumer"
                  << (next.FindQueue(c->name()) ? " before the new one starts" : "");
      auto it = std::find_if(consumers_.begin(), consumers_.end(),
                             [&](const auto& x) { return x.get() == c; });
      retiring_.push_back(Retiring{std::move(*it), FindBackend(c->config().backend)});
      consumers_.erase(it);
    }
    for (auto& [c, change] : in_place) c->ChangeLimits(std::move(change));
    std::erase_if(pending_, [&](const PendingStart& p) { return drop_pending.count(p.config.name) > 0; });
    for (auto& p : starts) pending_.push_back(std::move(p));
    for (const auto& name : drop_backends) {
      auto it = backends_.find(name);
      if (it == backends_.end()) continue;
      retiring_backends_.push_back(std::move(it->second));
      backends_.erase(it);
    }
    for (auto& [name, b] : new_backends) backends_[name] = std::move(b);
    for (auto it = plugins_.begin(); it != plugins_.end();) {
      if (next.FindPlugin((*it)->name()) == nullptr || new_plugins.count((*it)->name())) {
        retiring_plugins_.push_back(std::move(*it));
        it = plugins_.erase(it);
      } else {
        ++it;
      }
    }
    for (const auto& pc : next.plugins) {
      auto it = new_plugins.find(pc.name);
      if (it != new_plugins.end()) plugins_.push_back(std::move(it->second));
    }
    config_ = std::move(next);
    shared_buckets_ = std::move(buckets);
  }
  Poll();
  return report;
}

bool Supervisor::TryStart(PendingStart& p) {
  for (const auto& r : retiring_) {
    // The consumer it replaces, or another one on the same backend queue,
    // is still draining: starting now could hand a message being settled
    // to a second consumer.
    if (r.consumer->name() == p.config.name) return false;
    if (r.backend == FindBackend(p.config.backend) && r.consumer->config().source == p.config.source)
      return false;
  }
  Backend* backend = FindBackend(p.config.backend);
  CHECK(backend) << "pending queue " << p.config.name << " on unknown backend";
  SourceOptions so{p.config.name, p.config.source, p.config.prefetch, p.policy.max_attempts,
                   p.policy, p.config.backend_block.options.shared()};
  auto source = backend->OpenSource(so);
  if (!source.ok()) {
    if (!p.open_error_logged)
      LOG(WARNING) << "queue " << p.config.name << ": cannot open its source yet, retrying: "
                   << source.status().message();
    p.open_error_logged = true;
    return false;
  }
  auto c = std::make_unique<Consumer>(p.config, p.policy, *p.plugin, std::move(p.instances),
                                      std::move(*source), std::move(p.middleware), *executor_,
                                      *timer_);
  if (p.paused) c->SetPaused(true);
  Status s = c->Start();
  if (!s.ok()) {
    // Not expected (the handler was checked when the reload was prepared).
    LOG(ERROR) << "queue " << p.config.name << ": cannot start its consumer: " << s.message();
    c->StopFetching();
    retiring_.push_back(Retiring{std::move(c), backend});
    return true;
  }
  LOG(INFO) << "queue " << p.config.name << ": " << (p.paused ? "started paused" : "consuming")
            << " (backend " << p.config.backend << ", source " << p.config.source
            << ", concurrency " << p.config.concurrency << ", prefetch " << p.config.prefetch
            << ")";
  std::unique_lock<std::shared_mutex> lock(state_mu_);
  consumers_.push_back(std::move(c));
  // Keep the config's order (status pages, Describe).
  std::map<std::string, size_t> order;
  for (size_t i = 0; i < config_.queues.size(); ++i) order[config_.queues[i].name] = i;
  std::stable_sort(consumers_.begin(), consumers_.end(), [&](const auto& a, const auto& b) {
    return order[a->name()] < order[b->name()];
  });
  return true;
}

void Supervisor::Poll() {
  if (shut_down_) return;
  // Per-slot instances a lowered concurrency left idle.
  for (auto& c : consumers_) c->TrimInstances();
  // Drained retired consumers go (they are no longer visible to readers).
  for (auto it = retiring_.begin(); it != retiring_.end();) {
    if (!it->consumer->Quiesced()) {
      ++it;
      continue;
    }
    const ConsumerStats st = it->consumer->Stats();
    LOG(INFO) << "queue " << it->consumer->name() << ": retired consumer drained (" << st.acked
              << " acked, " << st.retried << " retried, " << st.dead_lettered
              << " dead-lettered over its life)";
    it->consumer->DestroyInstances();
    it = retiring_.erase(it);
  }
  for (auto it = pending_.begin(); it != pending_.end();)
    it = TryStart(*it) ? pending_.erase(it) : std::next(it);
  // Backends and plugins nothing uses any more.
  for (auto it = retiring_backends_.begin(); it != retiring_backends_.end();) {
    bool used = false;
    for (const auto& r : retiring_) used = used || r.backend == it->get();
    if (used) {
      ++it;
      continue;
    }
    (*it)->Stop(std::chrono::steady_clock::now() + kCloseTimeout);
    LOG(INFO) << "backend " << (*it)->name() << ": stopped (no queue uses it any more)";
    it = retiring_backends_.erase(it);
  }
  for (auto it = retiring_plugins_.begin(); it != retiring_plugins_.end();) {
    bool used = false;
    for (const auto& r : retiring_) used = used || &r.consumer->plugin() == it->get();
    for (const auto& p : pending_) used = used || p.plugin == it->get();
    if (used) {
      ++it;
      continue;
    }
    (*it)->Shutdown();
    LOG(INFO) << "plugin " << (*it)->name() << " (" << (*it)->path()
              << "): shut down (no queue uses it any more; its code stays loaded)";
    finished_plugins_.push_back(std::move(*it));
    it = retiring_plugins_.erase(it);
  }
}

std::string Supervisor::Transition() const {
  std::string out;
  if (!retiring_.empty()) {
    out = "draining retired consumer(s): ";
    for (size_t i = 0; i < retiring_.size(); ++i)
      out += (i ? ", " : "") + retiring_[i].consumer->name() + " (" +
             std::to_string(retiring_[i].consumer->Stats().in_flight) + " in flight)";
  }
  if (!pending_.empty()) {
    out += out.empty() ? "" : "; ";
    out += "waiting to start: ";
    for (size_t i = 0; i < pending_.size(); ++i) out += (i ? ", " : "") + pending_[i].config.name;
  }
  return out;
}

}  // namespace foxworker
