#include "daemon/backends/redis/redis_inspector.h"
#include "daemon/backends/redis/redis_backend.h"

#include <glog/logging.h>

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <random>
#include <utility>

#include "daemon/backends/redis/redis_codec.h"
#include "daemon/config/extension_registry.h"
#include "daemon/backends/redis/redis_source.h"
#include "daemon/backends/redis/redis_url.h"
#include "daemon/base/clock.h"

namespace foxworker {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::chrono::seconds kDestructorStopBudget{10};

std::string DefaultConsumerName() {
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0') {
    std::snprintf(host, sizeof(host), "unknown-host");
  }
  return std::string(host) + ":" + std::to_string(getpid());
}

const char* LinkName(int link) { return link == 0 ? "command" : "reader"; }

}  // namespace

// ---- RedisSource ----

RedisBackend::RedisSource::~RedisSource() { StopFetching(); }

void RedisBackend::RedisSource::OnStarted() {
  backend_->KickReader();
  backend_->KickCommands(/*unblock_reader=*/true);
}

void RedisBackend::RedisSource::Settle(std::vector<Settlement>& batch) {
  std::vector<SettleOp> ops;
  ops.reserve(batch.size());
  for (Settlement& s : batch) {
    ops.push_back(SettleOp{state_.get(), std::move(s.delivery), std::move(s.outcome)});
  }
  batch.clear();
  backend_->SubmitSettlements(std::move(ops));
}

void RedisBackend::RedisSource::OnStopFetching(BufferedSourceState::Buffer unstarted) {
  std::vector<SettleOp> ops;
  ops.reserve(unstarted.size());
  for (auto& d : unstarted) ops.push_back(SettleOp{state_.get(), std::move(d), Outcome::Release()});
  backend_->SubmitSettlements(std::move(ops));
}

// ---- RedisBackend ----

RedisBackend::RedisBackend(std::string name, RedisBackendOptions options)
    : name_(std::move(name)),
      options_(std::move(options)),
      consumer_(options_.consumer.empty() ? DefaultConsumerName() : options_.consumer),
      reader_wake_fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  PCHECK(reader_wake_fd_ >= 0) << "eventfd";
}

RedisBackend::~RedisBackend() {
  Stop(Clock::now() + kDestructorStopBudget);
  close(reader_wake_fd_);
}

Status RedisBackend::Start() {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (running_ || commands_thread_.joinable()) {
      return Status::InvalidArgument("redis backend " + name_ + ": already started");
    }
    running_ = true;
  }
  LOG(INFO) << "redis backend " << name_ << ": " << RedactedRedisUrl(options_) << ", group "
            << options_.group << ", consumer " << consumer_;
  commands_thread_ = std::thread([this] { RunCommands(); });
  reader_thread_ = std::thread([this] {
    RunReader();
    // The command thread flushes until the reader is gone: a read that the
    // stop's CLIENT UNBLOCK ended may still deliver entries to a stopped
    // source, and their releases must reach Redis.
    {
      std::lock_guard<std::mutex> l(mu_);
      reader_done_ = true;
      commands_kicked_ = true;
    }
    cv_.notify_all();
  });
  return Status::Ok();
}

Result<std::unique_ptr<Source>> RedisBackend::OpenSource(const SourceOptions& options) {
  if (options.source.empty()) {
    return Status::InvalidArgument("redis backend " + name_ + ": a source needs a stream key");
  }
  if (options.prefetch < 1) {
    return Status::InvalidArgument("redis backend " + name_ + ": prefetch of queue " +
                                   options.queue + " must be at least 1");
  }
  auto state = std::make_shared<SourceState>(options);
  std::lock_guard<std::mutex> l(mu_);
  if (stop_requested_) return Status::Unavailable("redis backend " + name_ + ": stopped");
  for (const auto& s : sources_) {
    if (s->options.source == options.source) {
      {
        // A queue that stopped reading the stream and whose every entry is
        // settled in Redis hands the stream over (config reload). Until then
        // a new reader would recover the entries still being settled.
        std::lock_guard<std::mutex> sl(s->mu);
        if (s->stopped && s->held_count == 0) continue;
      }
      return Status::InvalidArgument("redis backend " + name_ + ": stream " + options.source +
                                     " is already read by queue " + s->options.queue +
                                     " (one queue per stream and group)");
    }
  }
  sources_.push_back(state);
  return std::unique_ptr<Source>(new RedisSource(this, std::move(state)));
}

Status RedisBackend::Enqueue(const std::string& source, Message message, Duration delay) {
  if (source.empty()) {
    return Status::InvalidArgument("redis backend " + name_ + ": enqueue needs a stream key");
  }
  CHECK(std::this_thread::get_id() != commands_thread_.get_id())
      << "RedisBackend::Enqueue called on the backend's own command thread";
  EnqueueOp op;
  op.stream = source;
  op.message = std::move(message);
  op.delay = delay;
  std::unique_lock<std::mutex> l(mu_);
  if (!running_ || stop_requested_) {
    return Status::Unavailable("redis backend " + name_ + ": not running");
  }
  pending_enqueues_.push_back(&op);
  cv_.notify_one();
  done_cv_.wait(l, [&] { return op.done; });
  return op.status;
}

void RedisBackend::Stop(std::chrono::steady_clock::time_point deadline) {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!commands_thread_.joinable()) return;
    stop_requested_ = true;
    stop_deadline_ = deadline;
    unblock_reader_ = true;
    // The reader only finishes its rounds in flight now: acks from here on
    // go to the command thread, and the reader hands over the ones it had
    // not sent when it returns (AbandonRounds).
    reader_takes_acks_ = false;
  }
  cv_.notify_all();
  reader_cv_.notify_all();
  reader_thread_.join();
  commands_thread_.join();
  std::lock_guard<std::mutex> l(mu_);
  running_ = false;
  commands_connected_ = reader_connected_ = false;
  state_.connected = false;
}

Result<std::unique_ptr<Inspector>> RedisBackend::OpenInspector(const InspectorOptions& options) {
  return std::unique_ptr<Inspector>(new RedisInspector(options_, options));
}

BackendState RedisBackend::State() const {
  std::lock_guard<std::mutex> l(mu_);
  BackendState s = state_;
  s.connected = commands_connected_ && reader_connected_;
  return s;
}

void RedisBackend::SubmitSettlements(std::vector<SettleOp> ops, bool to_commands) {
  if (ops.empty()) return;
  bool commands = false, reader = false, wake_poll = false;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (SettleOp& op : ops) {
      if (!to_commands && reader_takes_acks_ && op.outcome.kind == Outcome::Kind::kAck) {
        reader_acks_.push_back(std::move(op));
        reader = true;
      } else {
        pending_settles_.push_back(std::move(op));
        commands = true;
      }
    }
    if (reader && reader_polling_ && reader_acks_.size() >= reader_wake_acks_) {
      reader_polling_ = false;
      wake_poll = true;
    }
  }
  if (commands) cv_.notify_one();
  if (reader) reader_cv_.notify_one();
  if (wake_poll) {
    const uint64_t one = 1;
    PCHECK(write(reader_wake_fd_, &one, sizeof(one)) == sizeof(one) || errno == EAGAIN)
        << "writing the reader's eventfd";
  }
}

void RedisBackend::KickReader() {
  {
    std::lock_guard<std::mutex> l(mu_);
    reader_kicked_ = true;
  }
  reader_cv_.notify_one();
}

void RedisBackend::KickCommands(bool unblock_reader) {
  {
    std::lock_guard<std::mutex> l(mu_);
    commands_kicked_ = true;
    if (unblock_reader) unblock_reader_ = true;
  }
  cv_.notify_one();
}

void RedisBackend::Deliver(const std::shared_ptr<SourceState>& source, const redisReply* entries,
                           const std::vector<uint32_t>& counts) {
  if (entries == nullptr || entries->type != REDIS_REPLY_ARRAY || entries->elements == 0) return;
  const size_t n = entries->elements;
  const uint64_t now_ns = MonotonicNs();
  const auto now = Clock::now();
  const int max_attempts = source->options.max_attempts;
  // Deliveries to fill: recycled ones first, taken under one lock.
  std::vector<std::unique_ptr<Delivery>> batch;
  batch.reserve(n);
  {
    std::lock_guard<std::mutex> l(source->mu);
    while (batch.size() < n && !source->spare.empty()) {
      batch.push_back(std::move(source->spare.back()));
      source->spare.pop_back();
    }
  }
  while (batch.size() < n) batch.push_back(std::make_unique<Delivery>());
  size_t used = 0;
  std::vector<SettleOp> settle_now;
  std::vector<std::string_view> entry_ids(n);  // by delivery, in batch order
  std::vector<std::string_view> dead_ids;      // of settle_now
  for (size_t i = 0; i < n; ++i) {
    const redisReply* e = entries->element[i];
    if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 ||
        e->element[0]->type != REDIS_REPLY_STRING) {
      continue;  // an entry deleted from the stream while pending: nothing to run
    }
    const std::string_view entry_id(e->element[0]->str, e->element[0]->len);
    entry_ids[used] = entry_id;
    std::unique_ptr<Delivery>& d = batch[used++];
    const uint32_t count = i < counts.size() ? counts[i] : 1;
    DecodeEntryInto(entry_id, e->element[1], options_.payload_field, count, &d->msg);
    d->queue = &source->options.queue;
    d->tag = count;
    d->received_ns = now_ns;
    if (max_attempts > 0 && d->msg.attempt > static_cast<uint32_t>(max_attempts)) {
      std::string reason = "attempt " + std::to_string(d->msg.attempt) + " exceeds max_attempts " +
                           std::to_string(max_attempts) +
                           ": earlier attempts crashed the worker or timed out";
      LOG(WARNING) << "redis backend " << name_ << ": stream " << source->options.source
                   << " entry " << entry_id << " (message " << d->msg.id << "): " << reason
                   << "; dead-lettering it";
      d->msg.attempt -= 1;  // the last attempt that ran
      settle_now.push_back(SettleOp{source.get(), std::move(d), Outcome::DeadLetter(std::move(reason))});
      dead_ids.push_back(entry_id);
    }
  }
  std::function<void()> wake;
  {
    std::lock_guard<std::mutex> l(source->mu);
    for (size_t k = 0; k < settle_now.size(); ++k) {
      source->HoldLocked(*settle_now[k].delivery, dead_ids[k], now);
    }
    for (size_t i = 0; i < used; ++i) {
      std::unique_ptr<Delivery>& d = batch[i];
      if (d == nullptr) continue;  // dead-lettered above
      source->HoldLocked(*d, entry_ids[i], now);
      if (source->stopped) {
        settle_now.push_back(SettleOp{source.get(), std::move(d), Outcome::Release()});
      } else {
        source->buffer.push_back(std::move(d));
      }
    }
    for (size_t i = used; i < n; ++i) source->RecycleLocked(std::move(batch[i]));
    wake = source->RefilledLocked();
  }
  SubmitSettlements(std::move(settle_now));
  if (wake) wake();
}

Result<std::unique_ptr<RedisConnection>> RedisBackend::Connect(Link link) {
  const int i = static_cast<int>(link);
  // The reader's replies (whole batches of entries) are built in an arena:
  // no allocation per entry. Its replies never outlive one ReadOnce.
  auto conn = RedisConnection::Connect(options_, "foxworker:" + consumer_ + ":" + LinkName(i),
                                       /*arena_replies=*/link == Link::kReader);
  if (!conn.ok()) {
    RecordFailure(link, conn.status());
    return conn.status();
  }
  std::lock_guard<std::mutex> l(mu_);
  (link == Link::kCommands ? commands_connected_ : reader_connected_) = true;
  if (lost_[i]) {
    state_.reconnects++;
    LOG(INFO) << "redis backend " << name_ << ": " << LinkName(i) << " connection re-established"
              << " (" << state_.reconnects << " reconnects so far)";
  } else if (!ever_connected_[i]) {
    LOG(INFO) << "redis backend " << name_ << ": " << LinkName(i) << " connection up";
  }
  ever_connected_[i] = true;
  lost_[i] = false;
  state_.consecutive_failures = 0;
  return conn;
}

void RedisBackend::RecordFailure(Link link, const Status& status) {
  const int i = static_cast<int>(link);
  std::lock_guard<std::mutex> l(mu_);
  bool was_connected = link == Link::kCommands ? commands_connected_ : reader_connected_;
  (link == Link::kCommands ? commands_connected_ : reader_connected_) = false;
  if (ever_connected_[i]) lost_[i] = true;
  state_.consecutive_failures++;
  state_.last_error = status.message();
  // Log the first failure of a run loudly, the rest now and then.
  if (was_connected || state_.consecutive_failures == 1 || state_.consecutive_failures % 50 == 0) {
    LOG(WARNING) << "redis backend " << name_ << " (" << LinkName(i) << "): "
                 << status.message() << "; reconnecting";
  }
}

std::chrono::milliseconds RedisBackend::Backoff(int failures) {
  thread_local std::mt19937 rng{std::random_device{}()};
  const int64_t initial = std::max<int64_t>(1, options_.reconnect_initial.count());
  const int64_t max = std::max<int64_t>(initial, options_.reconnect_max.count());
  int64_t delay = initial;
  for (int i = 1; i < failures && delay < max; ++i) delay *= 2;
  delay = std::min(delay, max);
  // Half fixed, half random: spreads the daemons of a fleet after an outage.
  std::uniform_int_distribution<int64_t> jitter(delay / 2, delay);
  return std::chrono::milliseconds(jitter(rng));
}

bool RedisBackend::SleepUnlessStopping(TimePoint until) {
  std::unique_lock<std::mutex> l(mu_);
  WaitUntilBeating(reader_cv_, l, until, [&] { return stop_requested_; }, reader_heartbeat_);
  return !stop_requested_;
}

Result<std::unique_ptr<Backend>> MakeRedisBackend(const BackendConfig& config) {
  if (config.type != "redis") {
    return Status::InvalidArgument("backend " + config.name + " has type " + config.type +
                                   ", not redis");
  }
  const auto* options = config.options.As<RedisBackendOptions>();
  if (options == nullptr) {
    return Status::InvalidArgument("redis backend " + config.name + ": no options given");
  }
  const RedisBackendOptions& o = *options;
  if (o.group.empty() || o.payload_field.empty()) {
    return Status::InvalidArgument("redis backend " + config.name +
                                   ": group and payload_field must not be empty");
  }
  if (o.start != "0" && o.start != "$") {
    return Status::InvalidArgument("redis backend " + config.name + ": start must be 0 or $");
  }
  return std::unique_ptr<Backend>(new RedisBackend(config.name, o));
}

void RegisterRedisBackendFactory(ExtensionRegistry& registry) {
  registry.SetBackendFactory("redis", MakeRedisBackend);
}

}  // namespace foxworker
