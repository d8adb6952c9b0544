#include "daemon/backends/rabbitmq/rabbitmq_inspector.h"
#include "daemon/backends/rabbitmq/rabbitmq_backend.h"

#include <glog/logging.h>

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "daemon/backends/rabbitmq/amqp_connection.h"
#include "daemon/backends/rabbitmq/amqp_message_id.h"
#include "daemon/backends/rabbitmq/rabbitmq_backend_internal.h"
#include "daemon/config/extension_registry.h"
#include "daemon/base/units.h"

namespace foxworker {
namespace {

// How long Enqueue waits for the broker's confirm.
constexpr std::chrono::seconds kEnqueueTimeout{30};

}  // namespace

class RabbitMqBackend::RabbitMqSource final : public BufferedSource {
 public:
  RabbitMqSource(RabbitMqBackend* backend, std::shared_ptr<SourceState> state)
      : BufferedSource("rabbitmq source " + state->options.source, state),
        backend_(backend),
        state_(std::move(state)) {}

  ~RabbitMqSource() override { StopFetching(); }

  void Settle(std::vector<Settlement>& batch) override {
    backend_->PostSettlements(*state_, batch, /*urgent=*/false);
  }

 private:
  void OnStarted() override { backend_->Kick(); }

  void OnStopFetching(BufferedSourceState::Buffer unstarted) override {
    std::vector<Settlement> releases;
    releases.reserve(unstarted.size());
    for (auto& d : unstarted) releases.push_back({std::move(d), Outcome::Release()});
    // Posted before the cancel below, and applied before it (settlements
    // come first in a turn).
    if (!releases.empty()) backend_->PostSettlements(*state_, releases, /*urgent=*/true);
    std::vector<Op> ops;
    Op cancel;
    cancel.kind = Op::Kind::kCancel;
    cancel.source = state_;
    ops.push_back(std::move(cancel));
    backend_->Post(std::move(ops));
  }

  RabbitMqBackend* backend_;
  std::shared_ptr<SourceState> state_;
};

RabbitMqBackend::RabbitMqBackend(std::string name, RabbitMqBackendOptions options)
    : name_(std::move(name)),
      options_(std::move(options)),
      unsettled_(std::make_unique<UnsettledTags>()) {
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  PCHECK(wake_fd_ >= 0) << "eventfd";
  std::string url = options_.url;
  amqp_connection_info info;
  amqp_default_connection_info(&info);
  if (amqp_parse_url(url.data(), &info) == AMQP_STATUS_OK && info.user != nullptr)
    login_user_ = info.user;
}

RabbitMqBackend::~RabbitMqBackend() {
  Stop(std::chrono::steady_clock::now());
  close(wake_fd_);
}

Status RabbitMqBackend::Start() {
  if (thread_.joinable()) return Status::Ok();
  // The first connection is made here so that errors reconnecting cannot fix
  // (credentials, vhost, TLS files, queue arguments) stop the daemon at
  // start; a broker that is merely down is retried in the background. The
  // connection is handed to the thread before it starts.
  bool permanent = false;
  Status s = Connect(&permanent);
  if (!s.ok()) {
    if (permanent) return s;
    LOG(WARNING) << s.message() << "; retrying in the background";
  }
  thread_ = std::thread([this] { Run(); });
  return Status::Ok();
}

void RabbitMqBackend::InitSourceState(SourceState& s, const SourceOptions& options) const {
  s.options = options;
  const RabbitMqQueueOptions& topology = RabbitMqQueueOptionsOf(options.queue_options.get());
  s.queue_type = topology.queue_type.value_or(options_.queue_type);
  s.dead_letter_queue = ExpandQueuePattern(topology.dead_letter_queue, options.source);
  s.retry_queue_prefix = ExpandQueuePattern(topology.retry_queue_prefix, options.source);
  s.retry_policy = options.retry_policy.value_or(RetryPolicyOptions{});
  s.tiers = ComputeRetryTiers(s.retry_policy);
}

Result<std::unique_ptr<Source>> RabbitMqBackend::OpenSource(const SourceOptions& options) {
  auto state = std::make_shared<SourceState>();
  InitSourceState(*state, options);
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& s : sources_) {
      if (s->options.source == options.source && !s->cancelled) {
        return Status::InvalidArgument("rabbitmq backend " + name_ + ": AMQP queue \"" +
                                       options.source + "\" is already consumed by queue " +
                                       s->options.queue);
      }
    }
    state->consumer_tag = "foxworker." + options.queue + "." + std::to_string(sources_.size());
    sources_.push_back(state);
  }
  Kick();
  return std::unique_ptr<Source>(new RabbitMqSource(this, std::move(state)));
}

Status RabbitMqBackend::Enqueue(const std::string& source, Message message, Duration delay) {
  auto done = std::make_shared<std::promise<Status>>();
  std::future<Status> result = done->get_future();
  Op op;
  op.kind = Op::Kind::kPublish;
  op.queue = source;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& s : sources_)
      if (s->options.source == source) op.target = s;
  }
  if (!op.target && delay.count() > 0) {
    // Not consumed here: its tiers are those of the default retry policy.
    SourceOptions options;
    options.queue = source;
    options.source = source;
    op.target = std::make_shared<SourceState>();
    InitSourceState(*op.target, options);
  }
  if (op.target && FindRetryTier(op.target->tiers, delay) == nullptr && delay.count() > 0) {
    return Status::InvalidArgument(
        "rabbitmq backend " + name_ + ": a delay of " + FormatDuration(delay) +
        " is longer than the longest retry tier of AMQP queue " + source + " (" +
        FormatDuration(op.target->tiers.empty() ? Duration::zero()
                                                : op.target->tiers.back().ttl) +
        ")");
  }
  // A publish the caller gave no id gets a fresh one, so two alike are
  // still two messages.
  if (message.props.message_id.empty() && message.id.empty()) message.id = RandomMessageId();
  op.message = std::move(message);
  op.delay = delay;
  op.done = done;
  std::vector<Op> ops;
  ops.push_back(std::move(op));
  if (StopRequested()) return Status::Unavailable("rabbitmq backend " + name_ + " is stopped");
  Post(std::move(ops));
  if (result.wait_for(kEnqueueTimeout) != std::future_status::ready) {
    return Status::Unavailable("rabbitmq backend " + name_ + ": no confirm for a publish to " +
                               source + " within " + std::to_string(kEnqueueTimeout.count()) +
                               " s");
  }
  return result.get();
}

void RabbitMqBackend::Post(std::vector<Op> ops) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (Op& op : ops) ops_.push_back(std::move(op));
  }
  Kick();
}

void RabbitMqBackend::PostSettlements(SourceState& source, std::vector<Settlement>& batch,
                                      bool urgent) {
  if (batch.empty()) return;
  const size_t threshold = std::max<size_t>(1, static_cast<size_t>(source.options.prefetch) / 8);
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (Settlement& s : batch) {
      settles_.push_back({&source, std::move(s.delivery), std::move(s.outcome)});
    }
    source.lazy_settles += batch.size();
    if (source.lazy_settles >= threshold) urgent = true;
    if (!urgent) lazy_ops_.fetch_add(1);
  }
  batch.clear();
  if (urgent || in_long_poll_.load()) Kick();
}

void RabbitMqBackend::Kick() {
  if (kicked_.exchange(true, std::memory_order_acq_rel)) return;
  uint64_t one = 1;
  ssize_t n = write(wake_fd_, &one, sizeof(one));
  (void)n;  // EAGAIN: the counter is already non-zero, the thread will wake
}

void RabbitMqBackend::Stop(std::chrono::steady_clock::time_point deadline) {
  if (!stop_.load()) {
    stop_deadline_ = deadline;
    stop_.store(true, std::memory_order_release);
  }
  kicked_.store(false);
  Kick();
  if (thread_.joinable()) thread_.join();
  // Never started, or the thread is gone: close what Start opened, fail
  // publishes nobody will make.
  if (conn_) {
    conn_->Close();
    conn_.reset();
  }
  std::vector<Op> left;
  std::vector<SettleOp> settles;  // dropped: the broker requeues them
  {
    std::lock_guard<std::mutex> lock(mu_);
    left.swap(ops_);
    settles.swap(settles_);
  }
  for (Op& op : left)
    if (op.done) op.done->set_value(Status::Unavailable("rabbitmq backend " + name_ + " stopped"));
  connected_.store(false);
}

Result<std::unique_ptr<Inspector>> RabbitMqBackend::OpenInspector(
    const InspectorOptions& options) {
  return std::unique_ptr<Inspector>(new RabbitMqInspector(options_, options));
}

BackendState RabbitMqBackend::State() const {
  BackendState s;
  s.connected = connected_.load();
  s.reconnects = reconnect_attempts_.load();
  s.consecutive_failures = consecutive_failures_.load();
  std::lock_guard<std::mutex> lock(mu_);
  s.last_error = last_error_;
  return s;
}

RabbitMqBackend::Counters RabbitMqBackend::GetCounters() const {
  std::lock_guard<std::mutex> lock(mu_);
  return counters_;
}

Result<std::unique_ptr<Backend>> MakeRabbitMqBackend(const BackendConfig& config) {
  const auto* options = config.options.As<RabbitMqBackendOptions>();
  if (options == nullptr) {
    return Status::InvalidArgument("rabbitmq backend " + config.name + ": no options given");
  }
  return std::unique_ptr<Backend>(new RabbitMqBackend(config.name, *options));
}

void RegisterRabbitMqBackendFactory(ExtensionRegistry& registry) {
  registry.SetBackendFactory("rabbitmq", MakeRabbitMqBackend);
}

}  // namespace foxworker
