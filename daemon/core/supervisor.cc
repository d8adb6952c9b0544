#include "daemon/core/supervisor.h"

#include <sstream>
#include <thread>

#include "daemon/backends/backend_factory.h"
#include "daemon/core/clock.h"
#include "daemon/middleware/registry.h"

namespace foxworker {
namespace {

std::string StrOf(const foxw_str& s) { return s.len ? std::string(s.ptr, s.len) : std::string(); }

// Time allowed, after the drain wait, to flush settlements and close.
constexpr std::chrono::seconds kCloseTimeout{5};

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
    const LoadedPlugin* plugin = nullptr;
    for (const auto& p : plugins_)
      if (p->name() == qc.plugin) plugin = p.get();
    CHECK(plugin) << "config validation let an unknown plugin through: " << qc.plugin;
    const RetryPolicyConfig* policy = config_.FindRetryPolicy(qc.retry_policy);
    CHECK(policy) << "config validation let an unknown retry policy through";
    Backend* backend = backends_.at(qc.backend).get();
    auto pool = InstancePool::Create(*plugin, qc.concurrency, executor_->threads());
    if (!pool.ok())
      return Status::InvalidArgument("queue " + qc.name + ": " + pool.status().message());
    MiddlewareContext mc{&config_, config_.FindBackend(qc.backend), &shared_buckets_, MonotonicNs};
    auto chain = BuildMiddleware(qc, mc);
    if (!chain.ok()) return chain.status();
    SourceOptions so{qc.name, qc.source, qc.prefetch, policy->max_attempts, *policy,
                     qc.rabbitmq};
    auto source = backend->OpenSource(so);
    if (!source.ok())
      return Status::InvalidArgument("queue " + qc.name + ": " + source.status().message());
    consumers_.push_back(std::make_unique<Consumer>(qc, *policy, *plugin, std::move(*pool),
                                                    std::move(*source), std::move(*chain),
                                                    *executor_, *timer_));
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
    return false;
  }
  for (auto& [name, backend] : backends_) backend->Stop(close_deadline);
  // No handler runs any more. Consumers and backends stay (stopped) until the
  // supervisor is destroyed, so their final counts can still be read.
  for (auto& c : consumers_) c->DestroyInstances();
  executor_->Shutdown();
  for (auto it = plugins_.rbegin(); it != plugins_.rend(); ++it) (*it)->Shutdown();
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

Status Supervisor::PublishFromPlugin(const foxw_publish& p, const Delivery* parent) {
  if (p.struct_size < sizeof(foxw_publish))
    return Status::InvalidArgument("foxw_publish struct too small");
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

}  // namespace foxworker
