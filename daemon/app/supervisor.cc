#include "daemon/app/supervisor.h"

#include <glog/logging.h>

#include <algorithm>
#include <set>
#include <sstream>
#include <tuple>
#include <thread>
#include <utility>

#include "daemon/app/crash_attribution.h"
#include "daemon/base/clock.h"
#include "daemon/core/running_job.h"
#include "daemon/core/running_journal.h"
#include "daemon/isolation/process_handlers.h"
#include "daemon/config/extension_registry.h"
#include "daemon/middleware/chain.h"
#include "daemon/plugins/plugin_handlers.h"

namespace foxworker {
namespace {

std::string StrOf(const foxw_str& s) { return s.len ? std::string(s.ptr, s.len) : std::string(); }

// Time allowed, after the drain wait, to flush settlements and close.
constexpr std::chrono::seconds kCloseTimeout{5};
// The least time handler children (isolation: process) get for the
// plugin's shutdown after a drain that used up shutdown_timeout.
constexpr std::chrono::seconds kMinChildShutdown{1};

// What the children of an isolation: process queue start with.
isolation::ProcessOptions ProcessOptionsOf(const Config& config, const QueueConfig& qc,
                                           const LoadedPlugin& plugin) {
  const PluginConfig* pc = config.FindPlugin(qc.plugin);
  CHECK(pc) << "config validation let an unknown plugin through";
  isolation::ProcessOptions o;
  o.queue = qc.name;
  o.plugin = *pc;
  o.plugin_name = plugin.name();
  const ChildLayout layout = ChildLayoutOf(qc);
  o.processes = layout.processes;
  o.slots_per_child = layout.slots_per_child;
  o.config = qc.process;
  return o;
}

// What a queue's consumer is built from, except its source.
struct PreparedQueue {
  RetryPolicyConfig policy;
  std::unique_ptr<HandlerSet> handlers;
  std::vector<std::unique_ptr<Middleware>> middleware;
};

Result<PreparedQueue> PrepareQueue(const Config& config, const QueueConfig& qc,
                                   const LoadedPlugin& plugin, int threads,
                                   Backend* backend, SharedMiddlewareStates* buckets) {
  const RetryPolicyConfig* policy = config.FindRetryPolicy(qc.retry_policy);
  CHECK(policy) << "config validation let an unknown retry policy through";
  PreparedQueue p;
  p.policy = *policy;
  if (qc.process_isolation) {
    auto handlers =
        isolation::ProcessHandlerSet::Create(plugin, ProcessOptionsOf(config, qc, plugin));
    if (!handlers.ok()) return handlers.status();
    p.handlers = std::move(*handlers);
  } else {
    auto handlers = PluginHandlerSet::Create(plugin, qc.name, HandlerSlots(qc), threads);
    if (!handlers.ok()) return handlers.status();
    p.handlers = std::move(*handlers);
  }
  MiddlewareContext mc{&config, backend, buckets, MonotonicNs};
  auto chain = BuildMiddleware(qc, mc);
  if (!chain.ok()) return chain.status();
  p.middleware = std::move(*chain);
  return p;
}

}  // namespace

Backend* RuntimeSnapshot::FindBackend(const std::string& name) const {
  auto it = backends.find(name);
  return it == backends.end() ? nullptr : it->second.get();
}

Consumer* RuntimeSnapshot::FindConsumer(const std::string& name) const {
  for (const auto& c : consumers)
    if (c->name() == name) return c.get();
  return nullptr;
}

LoadedPlugin* RuntimeSnapshot::FindPlugin(const std::string& name) const {
  for (const auto& p : plugins)
    if (p->name() == name) return p.get();
  return nullptr;
}

Supervisor::Supervisor(Config config) {
  auto first = std::make_shared<RuntimeSnapshot>();
  first->config = std::make_shared<const Config>(std::move(config));
  current_ = std::move(first);
}

Supervisor::~Supervisor() {
  if (started_ && !shut_down_) Shutdown();
  if (journal_installed_) RunningJournal::Uninstall();
}

std::shared_ptr<const RuntimeSnapshot> Supervisor::snapshot() const {
  std::lock_guard<std::mutex> lock(snapshot_mu_);
  return current_;
}

std::shared_ptr<RuntimeSnapshot> Supervisor::Edit() const {
  return std::make_shared<RuntimeSnapshot>(*current_);
}

void Supervisor::Swap(std::shared_ptr<const RuntimeSnapshot> next,
                      const std::function<void()>& under_lock) {
  {
    std::unique_lock<std::shared_mutex> lock(state_mu_);
    if (under_lock) under_lock();
    std::lock_guard<std::mutex> guard(snapshot_mu_);
    current_.swap(next);
  }
  // `next` now holds the previous snapshot: released here, outside the locks.
}

Status Supervisor::Start() {
  CHECK(!started_) << "Supervisor::Start called twice";
  // The config given to the constructor; kept alive while it is applied.
  const std::shared_ptr<const Config> first = current_->config;
  auto report = Apply(Config{}, *first);
  if (!report.ok()) return report.status();
  if (!first->daemon.admin.listen.empty()) {
    depth_poller_ = std::make_unique<DepthPoller>([this] { return snapshot(); },
                                                  first->daemon.admin.depth_interval);
    depth_poller_->Start();
  }
  return Status::Ok();
}

Result<ReloadReport> Supervisor::Reload(Config next) {
  CHECK(started_ && !shut_down_) << "Supervisor::Reload outside Start..Shutdown";
  const std::shared_ptr<const Config> running = current_->config;
  if (!next.declares_queues && !running->queues.empty())
    return Status::InvalidArgument(
        next.file + " has no queues section (an empty or half-written file?), which would remove "
        "every queue; the " + std::to_string(running->queues.size()) +
        " running queue(s) stay. To remove them all, write \"queues: {}\"");
  return Apply(*running, std::move(next));
}

Result<RunningFacts> Supervisor::Facts(const Config& next) const {
  RunningFacts facts;
  facts.started = started_;
  for (const auto& pc : next.plugins) {
    const LoadedPlugin* loaded = current_->FindPlugin(pc.name);
    if (loaded == nullptr || loaded->path() != pc.path) continue;
    auto id = StatPluginFile(pc.path);
    if (!id.ok()) return Status::InvalidArgument("plugin " + pc.name + ": " + id.status().message());
    auto json = ApplyPluginSchema(pc, loaded->info());
    if (!json.ok()) return json.status();
    facts.plugins[pc.name] = RunningFacts::Plugin{loaded->config().config_json, std::move(*json),
                                                  !(*id == loaded->file_id())};
  }
  for (const auto& c : current_->consumers)
    facts.queues[c->name()] = RunningFacts::Queue{true, watchdog_.count(c->name()) > 0};
  for (const auto& p : pending_) facts.queues[p.config.name] = RunningFacts::Queue{false, false};
  for (const auto& r : retiring_) {
    std::string backend;
    for (const auto& [name, b] : current_->backends)
      if (b.get() == r.backend) backend = name;
    facts.draining.push_back(RunningFacts::Draining{r.consumer->name(), backend});
  }
  return facts;
}

Result<ReloadReport> Supervisor::Apply(const Config& old, Config next) {
  auto facts = Facts(next);
  if (!facts.ok()) return facts.status();
  auto plan = ComputeReloadPlan(old, next, *facts);
  if (!plan.ok()) return plan.status();
  next.daemon = plan->daemon;
  if (plan->starting) {
    executor_ = std::make_unique<Executor>(next.daemon.worker_threads);
    timer_ = std::make_unique<Timer>();
  }
  Staged staged;
  if (Status s = Build(*plan, next, *facts, staged); !s.ok()) {
    Discard(staged);
    return s;
  }
  Commit(*plan, staged, std::move(next));
  ReloadReport report{plan->changes, plan->warnings};
  if (plan->starting) {
    if (Status s = StartQueues(); !s.ok()) return s;
    return report;
  }
  Poll();
  return report;
}

Status Supervisor::Build(const ReloadPlan& plan, const Config& next, const RunningFacts& facts,
                         Staged& staged) {
  // A start reports a backend's or plugin's error as it comes (it names the
  // file); a reload says which entry of the config failed.
  auto entry_error = [&](const std::string& entry, const Status& s) {
    return plan.starting ? s : Status::InvalidArgument(entry + ": " + s.message());
  };

  // ---- backends: made, and on a reload started at once (at start they
  // start once their queues' sources are open).
  for (const auto& name : plan.backends_to_start) {
    auto made = MakeBackend(*next.FindBackend(name));
    if (!made.ok()) return entry_error("backend " + name, made.status());
    std::shared_ptr<Backend> b = std::move(*made);
    if (!plan.starting) {
      RecordClaimOwner(name, *b);
      Status st = b->Start();
      if (!st.ok()) {
        b->Stop(std::chrono::steady_clock::now() + kCloseTimeout);
        return Status::Unavailable("backend " + name + ": " + st.message());
      }
    }
    staged.backends[name] = std::move(b);
  }

  // ---- plugins
  for (const auto& name : plan.plugins_to_load) {
    auto loaded = LoadedPlugin::Load(*next.FindPlugin(name));
    if (!loaded.ok()) return entry_error("plugin " + name, loaded.status());
    std::shared_ptr<LoadedPlugin> p = std::move(*loaded);
    p->ctx()->publish = [this](const foxw_publish& pub, const Delivery* parent) {
      return PublishFromPlugin(pub, parent);
    };
    LOG(INFO) << "loaded plugin " << p->name() << " " << p->info().version << " from " << p->path()
              << " (handlers: " << p->HandlerNames() << ")";
    staged.plugins[name] = std::move(p);
  }
  for (const auto& name : plan.plugins_reconfigured) {
    LoadedPlugin* p = current_->FindPlugin(name);
    CHECK(p) << "reload plan reconfigures plugin " << name << ", which is not loaded";
    staged.old_json[p] = p->config().config_json;
    p->SetConfigJson(facts.plugins.at(name).next_config_json);
  }
  auto plugin_for = [&](const std::string& name) -> std::shared_ptr<LoadedPlugin> {
    auto it = staged.plugins.find(name);
    if (it != staged.plugins.end()) return it->second;
    for (const auto& p : current_->plugins)
      if (p->name() == name) return p;
    return nullptr;
  };

  // ---- shared rate limits: a changed one gets a new bucket (made by the
  // first queue that uses it), which every queue using it is handed over to.
  staged.buckets = shared_buckets_;
  for (const auto& name : plan.rate_limits_changed) staged.buckets.erase(name);

  // ---- queues
  for (const QueueStep& step : plan.queues) {
    const QueueConfig& qc = *next.FindQueue(step.name);
    if (step.action == QueueAction::kKeep) continue;
    if (step.action == QueueAction::kChangeLimits) {
      // The instances a higher concurrency needs are made now, so a failing
      // create() fails the reload.
      Consumer* c = current_->FindConsumer(qc.name);
      CHECK(c) << "reload plan changes the limits of queue " << qc.name << ", which has no consumer";
      auto change = c->PrepareLimits(qc);
      if (!change.ok()) return change.status();
      staged.in_place.emplace_back(c, std::move(*change));
      if (step.process_changed) {
        // isolation: process: the new children (when the plan wants them)
        // start now, beside the running ones, so that one that cannot
        // start fails the reload.
        auto* set = dynamic_cast<isolation::ProcessHandlerSet*>(c->handler_set());
        CHECK(set) << "queue " << qc.name << " runs isolation: process without its children";
        std::shared_ptr<LoadedPlugin> plugin = plugin_for(qc.plugin);
        CHECK(plugin) << "config validation let an unknown plugin through: " << qc.plugin;
        auto children = set->PrepareChange(ProcessOptionsOf(next, qc, *plugin), step.new_children);
        if (!children.ok()) return children.status();
        staged.children.emplace_back(set, std::move(*children));
      }
      continue;
    }
    std::shared_ptr<LoadedPlugin> plugin = plugin_for(qc.plugin);
    CHECK(plugin) << "config validation let an unknown plugin through: " << qc.plugin;
    if (Status s = CheckQueueHandler(qc, *plugin); !s.ok()) return s;
    // The queue's backend as it will be once the plan applies (dedup asks it
    // for durable storage).
    auto rebuilt = staged.backends.find(qc.backend);
    Backend* backend = rebuilt != staged.backends.end() ? rebuilt->second.get()
                                                         : current_->FindBackend(qc.backend);
    auto prepared =
        PrepareQueue(next, qc, *plugin, qc.cpu_pool ? executor_->threads() : 0, backend,
                     &staged.buckets);
    if (!prepared.ok()) return prepared.status();
    PendingStart p{qc, prepared->policy, plugin, std::move(prepared->handlers),
                   std::move(prepared->middleware)};
    // A paused queue (admin) stays paused across a hand-over.
    if (step.replaces_consumer) p.paused = current_->FindConsumer(qc.name)->paused();
    for (const auto& waiting : pending_)
      if (step.replaces_waiting && waiting.config.name == qc.name) p.paused = waiting.paused;
    staged.starts.push_back(std::move(p));
  }
  return Status::Ok();
}

void Supervisor::Discard(Staged& staged) {
  staged.starts.clear();  // destroys the new instances while their plugins still exist
  staged.in_place.clear();
  staged.children.clear();  // stops the children started for in-place changes
  for (auto& [plugin, json] : staged.old_json) {
    plugin->SetConfigJson(json);
    plugin->CommitConfig();
  }
  for (auto& [name, plugin] : staged.plugins) plugin->Shutdown();
  // Retire them like any other plugin: never dlclose, keep the object.
  for (auto& [name, plugin] : staged.plugins) finished_plugins_.push_back(std::move(plugin));
  for (auto& [name, backend] : staged.backends)
    backend->Stop(std::chrono::steady_clock::now() + kCloseTimeout);
  staged = Staged();
}

void Supervisor::Commit(const ReloadPlan& plan, Staged& staged, Config next) {
  // Running handlers' typed config reads see a reconfigured plugin's new
  // config from here on, not while the reload could still be discarded.
  for (auto& [plugin, json] : staged.old_json) plugin->CommitConfig();
  auto snap = Edit();
  std::vector<std::shared_ptr<Consumer>> retire;
  auto take_consumer = [&](const std::string& name) {
    auto it = std::find_if(snap->consumers.begin(), snap->consumers.end(),
                           [&](const auto& c) { return c->name() == name; });
    if (it == snap->consumers.end()) return;
    retire.push_back(std::move(*it));
    snap->consumers.erase(it);
  };
  std::set<std::string> drop_waiting;
  for (const QueueStep& step : plan.queues) {
    if (step.replaces_consumer) take_consumer(step.name);
    if (step.replaces_waiting) drop_waiting.insert(step.name);
  }
  for (const auto& name : plan.queues_removed) {
    take_consumer(name);
    drop_waiting.insert(name);
  }
  for (auto& c : retire) {
    c->StopFetching();
    const int64_t in_flight = c->Stats().in_flight;
    if (in_flight > 0)
      LOG(INFO) << "queue " << c->name() << ": stopped fetching; " << in_flight
                << " message(s) in flight finish on the old consumer"
                << (next.FindQueue(c->name()) ? " before the new one starts" : "");
    const Backend* backend = snap->FindBackend(c->config().backend);
    const QueueConfig* was = snap->config->FindQueue(c->name());
    CHECK(was) << "running queue " << c->name() << " missing from its config";
    retiring_.push_back(Retiring{std::move(c), backend, snap->FindPlugin(was->plugin)});
  }
  std::erase_if(pending_, [&](const PendingStart& p) { return drop_waiting.count(p.config.name) > 0; });
  for (auto& p : staged.starts) pending_.push_back(std::move(p));
  for (const auto& name : plan.backends_to_retire) {
    auto it = snap->backends.find(name);
    if (it == snap->backends.end()) continue;
    retiring_backends_.push_back(std::move(it->second));
    snap->backends.erase(it);
  }
  for (auto& [name, b] : staged.backends) snap->backends[name] = std::move(b);
  for (const auto& name : plan.plugins_to_retire) {
    auto it = std::find_if(snap->plugins.begin(), snap->plugins.end(),
                           [&](const auto& p) { return p->name() == name; });
    if (it == snap->plugins.end()) continue;
    retiring_plugins_.push_back(std::move(*it));
    snap->plugins.erase(it);
  }
  for (const auto& name : plan.plugins_to_load) snap->plugins.push_back(staged.plugins.at(name));
  snap->config = std::make_shared<const Config>(std::move(next));
  shared_buckets_ = std::move(staged.buckets);
  // New children take new messages from here on; the old ones finish theirs.
  for (auto& [set, change] : staged.children) set->ApplyChange(std::move(change));
  Swap(std::move(snap), [&] {
    for (auto& [c, change] : staged.in_place) c->ChangeLimits(std::move(change));
  });
  staged = Staged();
}

Status Supervisor::StartQueues() {
  // Every queue's source opens now or the start fails; then the backends
  // start, then the consumers.
  std::vector<Consumer*> made;
  while (!pending_.empty()) {
    PendingStart& p = pending_.front();
    auto source = OpenSourceOf(p);
    if (!source.ok())
      return Status::InvalidArgument("queue " + p.config.name + ": " + source.status().message());
    std::shared_ptr<Consumer> c = MakeConsumer(p, std::move(*source));
    made.push_back(c.get());
    pending_.erase(pending_.begin());
    Install(std::move(c));
  }
  started_ = true;
  journal_installed_ = StartRunningJournal(current_->config->daemon.state_dir, current_->backends);
  for (const auto& [name, backend] : current_->backends) {
    Status s = backend->Start();
    if (!s.ok()) return Status::Unavailable("backend " + name + ": " + s.message());
  }
  for (Consumer* c : made) {
    Status s = c->Start();
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

Result<std::unique_ptr<Source>> Supervisor::OpenSourceOf(const PendingStart& p) {
  Backend* backend = current_->FindBackend(p.config.backend);
  CHECK(backend) << "queue " << p.config.name << " on unknown backend " << p.config.backend;
  SourceOptions so{p.config.name, p.config.source, p.config.prefetch, p.policy.max_attempts,
                   p.policy, p.config.backend_block.options.shared()};
  so.answers_later = p.config.process_isolation;
  return backend->OpenSource(so);
}

std::shared_ptr<Consumer> Supervisor::MakeConsumer(PendingStart& p, std::unique_ptr<Source> source) {
  auto c = std::make_shared<Consumer>(p.config, p.policy, std::move(p.handlers),
                                      std::move(source), std::move(p.middleware), *executor_,
                                      *timer_);
  if (p.paused) c->SetPaused(true);
  return c;
}

void Supervisor::Install(std::shared_ptr<Consumer> c) {
  const ConsumerOptions& q = c->config();
  if (q.timeout.count() > 0 || !q.handler_timeouts.empty())
    watchdog_.insert(q.name);
  else
    watchdog_.erase(q.name);
  auto next = Edit();
  next->consumers.push_back(std::move(c));
  // Keep the config's order (status pages, Describe).
  std::map<std::string, size_t> order;
  for (size_t i = 0; i < next->config->queues.size(); ++i) order[next->config->queues[i].name] = i;
  std::stable_sort(next->consumers.begin(), next->consumers.end(),
                   [&](const auto& a, const auto& b) { return order[a->name()] < order[b->name()]; });
  Swap(std::move(next));
}

bool Supervisor::Shutdown(const std::function<bool()>& give_up) {
  if (shut_down_) return true;
  shut_down_ = true;
  if (depth_poller_ != nullptr) depth_poller_->Stop();
  dispatch_beat_.Unregister();  // no longer polled
  const auto t0 = std::chrono::steady_clock::now();
  const auto deadline = t0 + current_->config->daemon.shutdown_timeout;
  // A reload transition in progress: queues waiting to start never will
  // (their handler sets, children of isolation: process included, close
  // meanwhile and go at the end); consumers still draining from a reload
  // drain with the rest.
  std::vector<std::unique_ptr<HandlerSet>> unstarted;
  for (auto& p : pending_) {
    if (p.handlers == nullptr) continue;
    p.handlers->BeginClose(deadline);
    unstarted.push_back(std::move(p.handlers));
  }
  pending_.clear();
  if (!retiring_.empty()) {
    auto next = Edit();
    for (auto& r : retiring_) next->consumers.push_back(std::move(r.consumer));
    retiring_.clear();
    Swap(std::move(next));
  }
  const auto consumers = current_->consumers;
  const Config& config = *current_->config;
  for (auto& c : consumers) c->StopFetching();
  auto in_flight = [&] {
    int64_t n = 0;
    for (auto& c : consumers) n += c->Stats().in_flight;
    return n;
  };
  const int64_t in_flight_at_stop = in_flight();
  const size_t running_at_stop = RunningJobs().size();
  if (in_flight_at_stop > 0 || running_at_stop > 0)
    LOG(INFO) << "draining: waiting up to " << config.daemon.shutdown_timeout.count() << " ms for "
              << in_flight_at_stop << " in-flight message(s) and " << running_at_stop
              << " running handler(s)";
  // Whether every message settled and every handler call returned by
  // `until`. Both are needed: a handler past its timeout keeps running after
  // its message was retried (no longer in flight), and a deferred completion
  // is in flight with no handler running. `ask`: polled, true stops waiting.
  bool asked_to_stop = false;
  auto wait_all = [&](std::chrono::steady_clock::time_point until, bool ask) {
    auto stop_waiting = [&] {
      if (std::chrono::steady_clock::now() >= until) return true;
      if (ask && give_up && give_up()) asked_to_stop = true;
      return ask && asked_to_stop;
    };
    for (auto& c : consumers) {
      while (!c->WaitDrained(std::min(until, std::chrono::steady_clock::now() +
                                                 std::chrono::milliseconds(50)))) {
        if (stop_waiting()) return false;
      }
    }
    while (!RunningJobs().empty()) {
      if (stop_waiting()) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return true;
  };
  bool drained = wait_all(deadline, true);
  if (!drained) {
    // Tell handlers that poll cancellation, and give them a moment.
    for (auto& c : consumers) c->CancelInFlight();
    drained = wait_all(std::chrono::steady_clock::now() + std::chrono::seconds(1), false);
  }
  bool abandoned = false;
  if (!drained) {
    abandoned = true;
    const std::string why =
        asked_to_stop ? std::string("asked to stop waiting")
                      : "shutdown_timeout (" +
                            std::to_string(config.daemon.shutdown_timeout.count()) +
                            " ms) expired";
    // isolation: process: handlers still running in children can be ended.
    // Their children are stopped (SIGTERM, SIGKILL a second later) and
    // their messages go back to the backend uncharged, not acked: they run
    // again. Each is logged.
    size_t handed_back = 0;
    for (auto& c : consumers) handed_back += c->AbandonInstances(why);
    // They settle as their children are seen gone: at once after SIGTERM,
    // or after the SIGKILL a second later.
    if (handed_back > 0)
      drained = wait_all(std::chrono::steady_clock::now() + std::chrono::seconds(3), false);
    if (!drained) {
      // Handlers still run in the daemon's threads: they cannot be ended.
      const auto close_deadline = std::chrono::steady_clock::now() + kCloseTimeout;
      LogAbandoned(in_flight(), why);
      // Flush what did finish; leave the stuck handlers' state alone.
      for (auto& [name, backend] : current_->backends) backend->Stop(close_deadline);
      for (auto& backend : retiring_backends_) backend->Stop(close_deadline);
      return false;
    }
    LOG(WARNING) << "shutdown: " << why << "; " << handed_back
                 << " message(s) of stopped handler children went back to the backend; no "
                    "handler runs any more, shutting down the rest";
  }
  const auto close_deadline = std::chrono::steady_clock::now() + kCloseTimeout;
  for (auto& [name, backend] : current_->backends) backend->Stop(close_deadline);
  for (auto& backend : retiring_backends_) backend->Stop(close_deadline);
  // A deferred completion may still be inside Consumer::Complete() just after
  // it settled; wait (briefly) until no thread is inside a consumer before
  // tearing anything down.
  for (auto& c : consumers) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    while (!c->Quiesced() && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  // No handler runs any more. Handler children (isolation: process) run the
  // plugin's shutdown within what is left of shutdown_timeout, but at least
  // kMinChildShutdown, and are then terminated: all queues' at once.
  const auto children_by =
      std::max(deadline, std::chrono::steady_clock::now() + kMinChildShutdown);
  for (auto& c : consumers) c->CloseInstances(children_by);
  // Consumers and backends stay (stopped) until the supervisor is destroyed,
  // so their final counts can still be read.
  for (auto& c : consumers) c->DestroyInstances();
  unstarted.clear();
  if (executor_) executor_->Shutdown();
  const auto& plugins = current_->plugins;
  for (auto it = plugins.rbegin(); it != plugins.rend(); ++it) (*it)->Shutdown();
  for (auto& p : retiring_plugins_) p->Shutdown();
  LOG(INFO) << "shutdown complete in "
            << std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::steady_clock::now() - t0)
                   .count()
            << " ms" << (abandoned ? " (after stopping handler children, see above)" : "");
  return !abandoned;
}

void Supervisor::LogAbandoned(int64_t in_flight, const std::string& why) {
  std::vector<RunningJobInfo> running = RunningJobs();
  std::sort(running.begin(), running.end(), [](const auto& a, const auto& b) {
    return std::tie(a.queue, a.started_ns) < std::tie(b.queue, b.started_ns);
  });
  LOG(WARNING) << "shutdown: " << why << "; abandoning " << running.size()
               << " running handler(s), listed below; " << in_flight
               << " message(s) in flight are left unsettled and will be delivered again";
  const uint64_t now = MonotonicNs();
  for (const RunningJobInfo& j : running) {
    const uint64_t ms = now > j.started_ns ? (now - j.started_ns) / 1000000 : 0;
    LOG(WARNING) << "shutdown: abandoned handler on queue " << j.queue << ": " << j.provider
                 << ", handler " << j.handler << ", message id " << j.message_id << ", attempt "
                 << j.attempt << ", running for " << ms / 1000 << "." << ms % 1000 / 100
                 << " s (thread " << j.thread_id << ")";
  }
}

std::string Supervisor::Describe() const {
  std::ostringstream os;
  os << "queues [";
  bool first = true;
  for (const auto& c : current_->consumers) {
    const QueueConfig* qc = current_->config->FindQueue(c->name());
    if (qc == nullptr) continue;
    const QueueConfig& q = *qc;
    os << (first ? "" : ", ") << q.name << " (backend " << q.backend << ", source " << q.source
       << ", plugin " << q.plugin << ", handler " << (q.handler.empty() ? "by type" : q.handler)
       << ", concurrency " << q.concurrency << ", prefetch " << q.prefetch << ", "
       << (q.cpu_pool ? "on the cpu pool"
                      : "up to " + std::to_string(q.concurrency) + " threads of its own")
       << ")";
    first = false;
  }
  os << "]; backends [";
  first = true;
  for (const auto& b : current_->config->backends) {
    os << (first ? "" : ", ") << b.name << " (" << b.type << ")";
    first = false;
  }
  os << "]; plugins [";
  first = true;
  for (const auto& p : current_->plugins) {
    os << (first ? "" : ", ") << p->name() << " " << p->info().version << " (" << p->HandlerNames()
       << ")";
    first = false;
  }
  os << "]; cpu pool of " << (executor_ ? executor_->threads() : 0) << " threads (for pool: cpu queues)";
  return os.str();
}


Status Supervisor::PublishFromPlugin(const foxw_publish& p, const Delivery* parent) {
  if (p.struct_size < sizeof(foxw_publish))
    return Status::InvalidArgument("foxw_publish struct too small");
  // Handler threads publish while a reload may swap the config and backends.
  // No lock is held across Enqueue, which may wait for a broker's confirm:
  // shared ownership keeps the backend alive; one that a reload retires
  // meanwhile may be stopped under the call, which then fails.
  // The snapshot itself is let go before the call, so that what a reload
  // retires is not kept for the length of a publish.
  const std::string queue = StrOf(p.queue);
  std::shared_ptr<Backend> backend;
  std::string source;
  {
    const std::shared_ptr<const RuntimeSnapshot> snap = snapshot();
    const QueueConfig* qc = snap->config->FindQueue(queue);
    if (qc == nullptr) return Status::NotFound("no queue named \"" + queue + "\" in the config");
    auto it = snap->backends.find(qc->backend);
    if (it == snap->backends.end())
      return Status::Unavailable("queue " + queue + ": backend " + qc->backend + " is not running");
    backend = it->second;
    source = qc->source;
  }
  Message m;
  m.payload = StrOf(p.payload);
  m.props.message_type = StrOf(p.message_type);
  m.props.content_type = StrOf(p.content_type);
  m.props.correlation_id = StrOf(p.correlation_id);
  if (m.props.correlation_id.empty() && parent) m.props.correlation_id = parent->msg.props.correlation_id;
  m.props.priority = p.priority;
  m.props.timestamp_ms = WallMs();
  // 1.1 fields; a 1.0 plugin's struct leaves them zero (HostPublish copies).
  m.props.message_id = StrOf(p.message_id);
  m.props.app_id = StrOf(p.app_id);
  m.props.content_encoding = StrOf(p.content_encoding);
  for (size_t i = 0; i < p.header_count; ++i)
    m.headers.emplace_back(StrOf(p.headers[i].name), StrOf(p.headers[i].value));
  return backend->Enqueue(source, std::move(m), Duration(p.delay_ms));
}

bool Supervisor::TryStart(PendingStart& p) {
  Backend* backend = current_->FindBackend(p.config.backend);
  CHECK(backend) << "pending queue " << p.config.name << " on unknown backend";
  for (const auto* list : {&retiring_, &released_})
    for (const auto& r : *list) {
      // The consumer it replaces, or another one on the same backend queue,
      // is still draining (or not yet destroyed, with its source): starting
      // now could hand a message being settled to a second consumer.
      if (r.consumer->name() == p.config.name) return false;
      if (r.backend == backend && r.consumer->config().source == p.config.source) return false;
    }
  auto source = OpenSourceOf(p);
  if (!source.ok()) {
    if (!p.open_error_logged)
      LOG(WARNING) << "queue " << p.config.name << ": cannot open its source yet, retrying: "
                   << source.status().message();
    p.open_error_logged = true;
    return false;
  }
  std::shared_ptr<Consumer> c = MakeConsumer(p, std::move(*source));
  Status s = c->Start();
  if (!s.ok()) {
    // Not expected (the handler was checked when the reload was prepared).
    LOG(ERROR) << "queue " << p.config.name << ": cannot start its consumer: " << s.message();
    c->StopFetching();
    retiring_.push_back(Retiring{std::move(c), backend, p.plugin.get()});
    return true;
  }
  LOG(INFO) << "queue " << p.config.name << ": " << (p.paused ? "started paused" : "consuming")
            << " (backend " << p.config.backend << ", source " << p.config.source
            << ", concurrency " << p.config.concurrency << ", prefetch " << p.config.prefetch
            << ")";
  Install(std::move(c));
  return true;
}

void Supervisor::Poll() {
  if (shut_down_) return;
  // The ability to start a handler: every lock a queue takes to start and
  // settle one, and the pools' locks. A deadlock there stalls this thread,
  // so neither beat comes and the systemd watchdog stops being fed.
  if (!dispatch_beat_.registered()) dispatch_beat_.Register("handler dispatch");
  for (const auto& c : current_->consumers) c->ProbeDispatch();
  if (executor_) executor_->Probe();
  dispatch_beat_.Beat();
  // Per-slot instances a lowered concurrency left idle.
  for (auto& c : current_->consumers) c->TrimInstances();
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
    released_.push_back(std::move(*it));
    it = retiring_.erase(it);
  }
  // Destroyed here, on the control thread, once no snapshot holds them any
  // more (a publish holds one for a moment): nothing else can take a new
  // reference then. Before a new consumer opens the same source.
  std::erase_if(released_, [](const Retiring& r) { return r.consumer.use_count() == 1; });
  for (auto it = pending_.begin(); it != pending_.end();)
    it = TryStart(*it) ? pending_.erase(it) : std::next(it);
  // Backends and plugins nothing uses any more.
  for (auto it = retiring_backends_.begin(); it != retiring_backends_.end();) {
    bool used = false;
    for (const auto* list : {&retiring_, &released_})
      for (const auto& r : *list) used = used || r.backend == it->get();
    if (used) {
      ++it;
      continue;
    }
    (*it)->Stop(std::chrono::steady_clock::now() + kCloseTimeout);
    LOG(INFO) << "backend " << (*it)->name() << ": stopped (no queue uses it any more)";
    released_backends_.push_back(std::move(*it));
    it = retiring_backends_.erase(it);
  }
  for (auto it = retiring_plugins_.begin(); it != retiring_plugins_.end();) {
    bool used = false;
    for (const auto& r : retiring_) used = used || r.plugin == it->get();
    for (const auto& p : pending_) used = used || p.plugin == *it;
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
  std::erase_if(released_backends_, [](const auto& b) { return b.use_count() == 1; });
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
