#include "daemon/backends/local/local_backend.h"

#include <glog/logging.h>

#include <unistd.h>

#include <cstdio>
#include <random>
#include <utility>

#include "daemon/backends/local/local_inspector.h"
#include "daemon/backends/local/local_key_store.h"
#include "daemon/backends/local/local_source.h"
#include "daemon/config/extension_registry.h"
#include "daemon/base/clock.h"

namespace foxworker {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::chrono::seconds kDestructorStopBudget{10};

std::string MakeOwnerId() {
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0') {
    std::snprintf(host, sizeof(host), "unknown-host");
  }
  std::random_device rd;
  char suffix[16];
  std::snprintf(suffix, sizeof(suffix), "%08x", rd());
  return std::string(host) + ":" + std::to_string(getpid()) + ":" + suffix;
}

}  // namespace

LocalBackend::LocalBackend(std::string name, LocalBackendOptions options)
    : name_(std::move(name)), options_(std::move(options)), owner_(MakeOwnerId()) {
  state_.storage = StorageFaultName(StorageFault::kOk);
  for (StorageFault f : kStorageFaults) state_.storage_states.push_back(StorageFaultName(f));
}

LocalBackend::~LocalBackend() { Stop(Clock::now() + kDestructorStopBudget); }

Status LocalBackend::Start() {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (running_ || finished_ || thread_.joinable()) {
      return Status::InvalidArgument("local backend " + name_ + ": already started");
    }
  }
  std::promise<Status> started;
  std::future<Status> result = started.get_future();
  thread_ = std::thread([this, &started] { Run(&started); });
  Status s = result.get();
  if (!s.ok()) {
    thread_.join();
    return Status::IoError("local backend " + name_ + ": " + s.message());
  }
  std::lock_guard<std::mutex> l(mu_);
  running_ = true;
  return Status::Ok();
}

Result<std::unique_ptr<Source>> LocalBackend::OpenSource(const SourceOptions& options) {
  if (options.source.empty()) {
    return Status::InvalidArgument("local backend " + name_ + ": a source needs a queue name");
  }
  if (options.prefetch < 1) {
    return Status::InvalidArgument("local backend " + name_ + ": prefetch of queue " +
                                   options.queue + " must be at least 1");
  }
  auto state = std::make_shared<SourceState>(options);
  {
    std::lock_guard<std::mutex> l(mu_);
    if (finished_ || stop_requested_) {
      return Status::Unavailable("local backend " + name_ + ": stopped");
    }
    sources_.push_back(state);
  }
  return std::unique_ptr<Source>(new LocalSource(this, std::move(state)));
}

Result<std::unique_ptr<Inspector>> LocalBackend::OpenInspector(const InspectorOptions& options) {
  return std::unique_ptr<Inspector>(
      new LocalInspector(options_.path, options_.durability, options));
}

Status LocalBackend::Enqueue(const std::string& source, Message message, Duration delay) {
  NewJob job;
  job.queue = source;
  job.payload = std::move(message.payload);
  job.props = std::move(message.props);
  job.headers = std::move(message.headers);
  job.priority = job.props.priority;
  if (delay.count() > 0) job.run_at_ms = WallMsCeil() + delay.count();
  std::vector<NewJob> jobs;
  jobs.push_back(std::move(job));
  auto r = EnqueueBatch(std::move(jobs));
  return r.ok() ? Status::Ok() : r.status();
}

Result<std::vector<EnqueueResult>> LocalBackend::EnqueueBatch(std::vector<NewJob> jobs) {
  if (jobs.empty()) return std::vector<EnqueueResult>();
  for (const NewJob& job : jobs) {
    if (job.queue.empty()) {
      return Status::InvalidArgument("local backend " + name_ + ": a job needs a queue name");
    }
  }
  if (std::this_thread::get_id() == thread_id_.load()) {
    // Called back from a wake-up on the backend's own thread: it owns the
    // connection, and waiting for itself would never end.
    auto results = store_->EnqueueBatch(jobs);
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& s : sources_) {
      for (const NewJob& job : jobs) {
        if (s->options.source == job.queue) s->idle = false;
      }
    }
    return results;
  }
  EnqueueOp op;
  op.jobs = std::move(jobs);
  std::unique_lock<std::mutex> l(mu_);
  if (!running_ || finished_) {
    return Status::Unavailable("local backend " + name_ + ": not running");
  }
  pending_enqueues_.push_back(&op);
  cv_.notify_one();
  done_cv_.wait(l, [&] { return op.done; });
  if (!op.status.ok()) return op.status;
  return std::move(op.results);
}

void LocalBackend::Stop(std::chrono::steady_clock::time_point deadline) {
  {
    std::unique_lock<std::mutex> l(mu_);
    if (!thread_.joinable()) return;
    stop_requested_ = true;
    stop_deadline_ = deadline;
    cv_.notify_all();
    if (!done_cv_.wait_until(l, deadline, [&] { return finished_; })) {
      LOG(WARNING) << "local backend " << name_ << ": stop deadline passed; "
                   << "unwritten outcomes will be redelivered after their lease expires";
      abandon_ = true;
      cv_.notify_all();
      if (interruptible_ != nullptr) interruptible_->Interrupt();
    }
  }
  thread_.join();
  std::lock_guard<std::mutex> l(mu_);
  running_ = false;
}

void LocalBackend::AdoptPreviousRun(PreviousRun previous) { previous_ = std::move(previous); }

void LocalBackend::RecoverPreviousRun() {
  if (!previous_) return;
  const PreviousRun& p = *previous_;
  auto r = store_->RecoverDeadOwner(
      p.owner, [&](int64_t id) { return p.WasRunning(std::to_string(id)); });
  if (!r.ok()) {
    // Nothing given back: those jobs come back when their lease expires,
    // charged as without a journal.
    LOG(WARNING) << "local backend " << name_ << ": could not recover the jobs of the previous "
                 << "daemon (owner " << p.owner << "): " << r.status().message()
                 << "; they are charged an attempt when their lease expires";
    return;
  }
  if (r->charged.empty() && r->refunded.empty()) return;
  auto ids = [](const std::vector<int64_t>& v) {
    std::string s;
    for (size_t i = 0; i < v.size() && i < 20; ++i) s += (i ? ", " : "") + std::to_string(v[i]);
    if (v.size() > 20) s += ", ...";
    return s.empty() ? std::string("none") : s;
  };
  LOG(WARNING) << "local backend " << name_ << ": the previous daemon (pid "
               << p.evidence->pid << ", owner " << p.owner << ") died holding "
               << r->charged.size() + r->refunded.size() << " job(s); running, charged an attempt: "
               << ids(r->charged) << "; never started, attempt given back: " << ids(r->refunded);
}

BackendState LocalBackend::State() const {
  std::lock_guard<std::mutex> l(mu_);
  return state_;
}

void LocalBackend::SubmitSettlements(std::vector<SettleOp> ops) {
  if (ops.empty()) return;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (pending_settles_.empty()) {
      pending_settles_ = std::move(ops);
    } else {
      pending_settles_.insert(pending_settles_.end(), std::make_move_iterator(ops.begin()),
                              std::make_move_iterator(ops.end()));
    }
  }
  cv_.notify_one();
}

void LocalBackend::Kick() {
  {
    std::lock_guard<std::mutex> l(mu_);
    kicked_ = true;
  }
  cv_.notify_one();
}

std::unique_ptr<KeyStore> LocalBackend::OpenDurableKeyStore(const std::string& scope) {
  return std::make_unique<LocalKeyStore>(options_.path, scope);
}

Result<std::unique_ptr<Backend>> MakeLocalBackend(const BackendConfig& config) {
  if (config.type != "local") {
    return Status::InvalidArgument("backend " + config.name + " has type " + config.type +
                                   ", not local");
  }
  const auto* options = config.options.As<LocalBackendOptions>();
  if (options == nullptr) {
    return Status::InvalidArgument("local backend " + config.name + ": no options given");
  }
  const LocalBackendOptions& o = *options;
  if (o.path.empty()) {
    return Status::InvalidArgument("local backend " + config.name + ": no path given");
  }
  if (o.lease.count() <= 0) {
    return Status::InvalidArgument("local backend " + config.name + ": lease must be positive");
  }
  if (o.batch_size < 1) {
    return Status::InvalidArgument("local backend " + config.name +
                                   ": batch_size must be at least 1");
  }
  return std::unique_ptr<Backend>(new LocalBackend(config.name, o));
}

void RegisterLocalBackendFactory(ExtensionRegistry& registry) {
  registry.SetBackendFactory("local", MakeLocalBackend);
}

}  // namespace foxworker
