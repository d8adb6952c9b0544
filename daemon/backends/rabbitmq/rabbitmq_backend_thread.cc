// RabbitMqBackend's connection thread: the only code that calls

#include <glog/logging.h>
// librabbitmq-c once the backend has started.
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "daemon/backends/rabbitmq/amqp_connection.h"
#include "daemon/backends/rabbitmq/amqp_message_id.h"
#include "daemon/backends/rabbitmq/rabbitmq_backend_internal.h"
#include "daemon/backends/rabbitmq/retry_tiers.h"
#include "daemon/base/clock.h"
#include "daemon/base/crash_stack.h"
#include "daemon/core/dead_letter.h"

namespace foxworker {
namespace {

// Timeout of a TCP connect, the AMQP handshake and each RPC.
constexpr Duration kRpcTimeout{10000};
// Longest poll() wait: heartbeats are checked at least this often.
constexpr int kMaxPollMs = 100;
// The longest a settlement posted lazily waits for the connection thread.
constexpr int kAckDelayMs = 2;
// The longest an ack waits for a delivery below it to be settled, so that a
// multiple ack can take both (see FlushAcks).
constexpr int kGapAckDelayMs = 5;
// When the broker refuses a retry or dead-letter copy, the original is
// requeued after this delay, doubling per refusal in a row up to the max.
constexpr std::chrono::milliseconds kRefusedRequeueFirst{500};
constexpr std::chrono::milliseconds kRefusedRequeueMax{30000};
// Frames read before pending settlements are applied again.
constexpr int kFramesPerTurn = 256;
// Under sustained load the socket is read at most once per kReadCoalesce:
// after a turn that brought at least kBusyDeliveries deliveries, the thread
// sleeps until kReadCoalesce after that turn's read began (a worker's urgent
// settlements wake it earlier), then reads what arrived meanwhile without
// polling. Each wake-up of this thread, and each hand-off to the workers,
// then carries a few dozen messages instead of a dozen or so, for at most
// kReadCoalesce of added delay; a turn with fewer deliveries ends it, so
// light traffic is still read as soon as it arrives. Only while every
// consumed queue has a prefetch of at least kCoalesceMinPrefetch and holds
// at most half of it: the broker can then keep sending during the wait, so
// the wait never caps throughput at a window per kReadCoalesce.
constexpr std::chrono::microseconds kReadCoalesce{300};
// The interval while every busy source answers later (isolation: process,
// SourceOptions::answers_later): each read's deliveries cost the daemon and
// the children a round of wake-ups (the consumer's task, a write per child,
// a read per child's answers), so fewer, fuller reads save more than in
// process, while the window (at most half held) leaves the broker room.
// Measured in docs/benchmarks.md: 300 us gives in-process queues more
// throughput, 1 ms gives process-isolated ones more (and each less CPU).
constexpr std::chrono::microseconds kReadCoalesceAnswersLater{1000};
constexpr int kBusyDeliveries = 4;
constexpr int kCoalesceMinPrefetch = 100;
// Settled deliveries with a larger payload are freed rather than reused.
constexpr size_t kMaxRecycledPayload = 64 * 1024;

amqp_bytes_t Bytes(const std::string& s) {
  amqp_bytes_t b;
  b.len = s.size();
  b.bytes = const_cast<char*>(s.data());
  return b;
}

amqp_table_entry_t StringEntry(const char* key, const std::string& value) {
  amqp_table_entry_t e;
  e.key = amqp_cstring_bytes(key);
  e.value.kind = AMQP_FIELD_KIND_UTF8;
  e.value.value.bytes = Bytes(value);
  return e;
}

amqp_table_entry_t IntEntry(const char* key, int64_t value) {
  amqp_table_entry_t e;
  e.key = amqp_cstring_bytes(key);
  e.value.kind = AMQP_FIELD_KIND_I64;
  e.value.value.i64 = value;
  return e;
}

// An `arguments:` table from the config. The entries point into `args`,
// which must outlive the table's use.
std::vector<amqp_table_entry_t> ArgumentEntries(const std::vector<AmqpArgument>& args) {
  std::vector<amqp_table_entry_t> out;
  out.reserve(args.size());
  for (const AmqpArgument& a : args) {
    amqp_table_entry_t e;
    e.key = Bytes(a.key);
    switch (a.kind) {
      case AmqpArgument::Kind::kString:
        e.value.kind = AMQP_FIELD_KIND_UTF8;
        e.value.value.bytes = Bytes(a.text);
        break;
      case AmqpArgument::Kind::kInt:
        e.value.kind = AMQP_FIELD_KIND_I64;
        e.value.value.i64 = a.int_value;
        break;
      case AmqpArgument::Kind::kDouble:
        e.value.kind = AMQP_FIELD_KIND_F64;
        e.value.value.f64 = a.double_value;
        break;
      case AmqpArgument::Kind::kBool:
        e.value.kind = AMQP_FIELD_KIND_BOOLEAN;
        e.value.value.boolean = a.bool_value ? 1 : 0;
        break;
    }
    out.push_back(e);
  }
  return out;
}

amqp_table_t TableOf(std::vector<amqp_table_entry_t>& entries) {
  return {static_cast<int>(entries.size()), entries.empty() ? nullptr : entries.data()};
}

Status StatusOf(int rc, const char* what) {
  if (rc == AMQP_STATUS_OK) return Status::Ok();
  return Status::Unavailable(std::string(what) + ": " + amqp_error_string2(rc));
}

}  // namespace

Status RabbitMqBackend::Connect(bool* permanent) {
  if (connect_calls_++ > 0) reconnect_attempts_.fetch_add(1);
  auto conn = AmqpConnection::Open(options_, kRpcTimeout, permanent);
  Status s = conn.ok() ? Status::Ok() : conn.status();
  if (s.ok()) {
    conn_ = std::move(*conn);
    ++generation_;
    next_publish_seq_ = 1;
    declared_.clear();
    delayed_requeues_.clear();  // the old connection's deliveries were requeued by the broker
    std::vector<std::shared_ptr<SourceState>> sources;
    {
      std::lock_guard<std::mutex> lock(mu_);
      sources = sources_;
    }
    for (auto& src : sources) src->consuming = false;
    for (auto& src : sources) {
      if (src->cancelled) continue;
      s = DeclareMain(*src);
      if (!s.ok()) break;
    }
    if (s.ok()) s = ConsumeSources();
    if (!s.ok()) {
      *permanent = s.IsInvalidArgument();
      conn_.reset();
    }
  }
  if (!s.ok()) {
    consecutive_failures_.fetch_add(1);
    std::lock_guard<std::mutex> lock(mu_);
    last_error_ = s.message();
    return Status(s.IsInvalidArgument() ? Status::InvalidArgument("backend " + name_ + ": " +
                                                                  s.message())
                                        : Status::Unavailable("backend " + name_ + ": " +
                                                              s.message()));
  }
  consecutive_failures_.store(0);
  connected_.store(true);
  {
    std::lock_guard<std::mutex> lock(mu_);
    counters_.connections++;
  }
  LOG(INFO) << "backend " << name_ << ": connected to " << RedactUrl(options_.url)
            << " (connection " << generation_ << ")";
  return Status::Ok();
}

Status RabbitMqBackend::DeclareMain(SourceState& s) {
  const std::string& queue = s.options.source;
  const RabbitMqQueueOptions& topo = RabbitMqQueueOptionsOf(s.options.queue_options.get());
  const std::string type(AmqpQueueTypeName(s.queue_type));
  if (declared_.count(queue) == 0) {
    // The exchange first, then the queue, then its bindings (which need both).
    if (topo.exchange) {
      const AmqpExchangeConfig& x = *topo.exchange;
      std::vector<amqp_table_entry_t> args = ArgumentEntries(x.arguments);
      Status st = conn_->DeclareExchange(x.name, x.type, x.durable, x.auto_delete, TableOf(args));
      if (!st.ok()) return st;
    }
    std::vector<amqp_table_entry_t> args = ArgumentEntries(topo.arguments);
    args.push_back(StringEntry("x-queue-type", type));
    Result<uint32_t> r = conn_->DeclareQueue(queue, TableOf(args), /*passive=*/!options_.declare,
                                             topo.durable);
    if (!r.ok()) return r.status();
    for (const AmqpBindingConfig& b : topo.bindings) {
      std::vector<amqp_table_entry_t> bargs = ArgumentEntries(b.arguments);
      for (const std::string& key : b.routing_keys) {
        Status st = conn_->BindQueue(queue, b.exchange, key, TableOf(bargs));
        if (!st.ok()) return st;
      }
    }
    declared_.insert(queue);
  }
  const std::string& dlq = s.dead_letter_queue;
  if (declared_.count(dlq) == 0) {
    amqp_table_entry_t args[] = {StringEntry("x-queue-type", type)};
    amqp_table_t table = {1, args};
    Result<uint32_t> r = conn_->DeclareQueue(dlq, table, /*passive=*/false);
    if (!r.ok()) return r.status();
    declared_.insert(dlq);
  }
  return Status::Ok();
}

Status RabbitMqBackend::ConsumeSources() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (live_sources_.size() != sources_.size()) {
      live_sources_ = sources_;
      size_t cap = 0;
      for (const auto& src : live_sources_) cap += static_cast<size_t>(std::max(1, src->options.prefetch));
      spare_cap_ = std::min<size_t>(cap, 65536);
      unsettled_->Reserve(2 * spare_cap_);
    }
  }
  for (auto& src : live_sources_) {
    if (src->consuming || src->cancelled) continue;
    {
      std::lock_guard<std::mutex> lock(src->mu);
      if (src->stopped) {
        src->cancelled = true;
        continue;
      }
    }
    if (declared_.count(src->options.source) == 0) {
      Status s = DeclareMain(*src);
      if (!s.ok()) return s;
    }
    amqp_connection_state_t st = conn_->state();
    amqp_basic_qos(st, kAmqpChannel, 0, static_cast<uint16_t>(std::clamp(src->options.prefetch, 1, 65535)),
                   /*global=*/0);
    Status s = conn_->CheckReply("basic.qos");
    if (!s.ok()) return s;
    amqp_basic_consume(st, kAmqpChannel, amqp_cstring_bytes(src->options.source.c_str()),
                       amqp_cstring_bytes(src->consumer_tag.c_str()), /*no_local=*/0,
                       /*no_ack=*/0, /*exclusive=*/0, amqp_empty_table);
    s = conn_->CheckReply(("basic.consume " + src->options.source).c_str());
    if (!s.ok()) return s;
    src->consuming = true;
  }
  return Status::Ok();
}

void RabbitMqBackend::Run() {
  InstallThreadCrashStack();
  heartbeat_.Register("backend rabbitmq " + name_ + ": I/O");
  while (!StopRequested()) {
    if (!conn_) {
      WaitBackoff();
      if (StopRequested()) break;
      // Opening and declaring wait on the broker, each step at most
      // kRpcTimeout.
      heartbeat_.Beat(kRpcTimeout);
      bool permanent = false;
      Status s = Connect(&permanent);
      if (!s.ok()) {
        LOG(WARNING) << s.message() << " (attempt " << consecutive_failures_.load() << ")";
        continue;
      }
    }
    Status s = ServeConnection();
    if (!s.ok()) {
      DropConnection(s);
      continue;
    }
    break;  // stopped
  }
  if (conn_) {
    conn_->Close();
    conn_.reset();
  }
  DropConnection(Status::Ok());
  heartbeat_.Unregister();
}

void RabbitMqBackend::WaitBackoff() {
  const uint64_t failures = consecutive_failures_.load();
  if (failures == 0) return;
  double delay = static_cast<double>(options_.reconnect_initial.count());
  for (uint64_t i = 1; i < failures && delay < options_.reconnect_max.count(); ++i) delay *= 2;
  delay = std::min(delay, static_cast<double>(options_.reconnect_max.count()));
  // Jitter: uniform in [delay/2, delay], so many daemons do not reconnect in
  // lockstep after a broker restart.
  std::uniform_real_distribution<double> jitter(0.5, 1.0);
  const auto until = std::chrono::steady_clock::now() +
                     Duration(static_cast<int64_t>(delay * jitter(rng_)));
  while (!StopRequested()) {
    heartbeat_.Beat();
    auto now = std::chrono::steady_clock::now();
    if (now >= until) return;
    pollfd p{wake_fd_, POLLIN, 0};
    int ms = static_cast<int>(std::min<int64_t>(
        std::chrono::duration_cast<Duration>(until - now).count() + 1, kHeartbeatPeriod.count()));
    poll(&p, 1, ms);
    if (p.revents & POLLIN) {
      uint64_t n;
      ssize_t r = read(wake_fd_, &n, sizeof(n));
      (void)r;
      kicked_.store(false);
    }
  }
}

void RabbitMqBackend::DropConnection(const Status& why) {
  conn_.reset();  // closes the socket; the broker requeues every unacked delivery
  connected_.store(false);
  uint64_t lost = unsettled_->size();
  unsettled_->Clear();
  to_ack_.clear();
  acks_waiting_ = 0;
  acks_waiting_since_ = {};
  read_coalescing_ = false;
  for (auto& [seq, pc] : confirms_) {
    if (pc.done) pc.done->set_value(Status::Unavailable("connection lost before the confirm"));
  }
  confirms_.clear();
  declared_.clear();
  std::vector<std::shared_ptr<SourceState>> sources;
  {
    std::lock_guard<std::mutex> lock(mu_);
    sources = sources_;
    if (!why.ok()) last_error_ = why.message();
  }
  // Buffered deliveries were never started; the broker redelivers them.
  for (auto& src : sources) {
    src->consuming = false;
    src->held = 0;
    src->incoming.clear();
    std::lock_guard<std::mutex> lock(src->mu);
    src->buffer.clear();
    src->buffered.store(0, std::memory_order_relaxed);
  }
  wake_due_.clear();
  if (!why.ok()) {
    consecutive_failures_.fetch_add(1);
    LOG(WARNING) << "backend " << name_ << ": connection " << generation_ << " lost: "
                 << why.message() << "; " << lost
                 << " unacked deliveries will be redelivered by the broker; reconnecting";
  }
}

Status RabbitMqBackend::ServeConnection() {
  bool cancelled_all = false;
  for (;;) {
    // A turn may make a synchronous call to the broker (a declare, a
    // consume), each bounded by kRpcTimeout; otherwise it polls at most
    // kMaxPollMs.
    heartbeat_.Beat(kRpcTimeout);
    Status s = ConsumeSources();
    if (!s.ok()) return s;
    std::vector<Op> ops;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!ops_.empty()) ops.swap(ops_);
      applying_.swap(settles_);  // both keep their capacity
      lazy_ops_.store(0);
      for (SettleOp& op : applying_) op.source->lazy_settles = 0;
    }
    // Settlements first: a source's releases come before its cancel.
    for (SettleOp& op : applying_) {
      s = ApplySettlement(op);
      if (!s.ok()) break;
      Recycle(std::move(op.delivery));
    }
    applying_.clear();
    if (!s.ok()) return s;
    s = ApplyOps(ops);
    if (!s.ok()) return s;
    s = FlushAcks();
    if (!s.ok()) return s;
    s = RequeueDue();
    if (!s.ok()) return s;
    if (StopRequested()) {
      if (!cancelled_all) {
        cancelled_all = true;
        std::vector<std::shared_ptr<SourceState>> sources;
        {
          std::lock_guard<std::mutex> lock(mu_);
          sources = sources_;
        }
        for (auto& src : sources) {
          {
            std::lock_guard<std::mutex> lock(src->mu);
            src->stopped = true;
          }
          if (!src->consuming || src->cancelled) continue;
          src->cancelled = true;
          amqp_basic_cancel(conn_->state(), kAmqpChannel,
                            amqp_cstring_bytes(src->consumer_tag.c_str()));
          s = conn_->CheckReply("basic.cancel");
          if (!s.ok()) return s;
        }
      }
      bool idle;
      {
        std::lock_guard<std::mutex> lock(mu_);
        idle = ops_.empty() && settles_.empty();
      }
      if ((idle && confirms_.empty()) || std::chrono::steady_clock::now() >= stop_deadline_) {
        if (!confirms_.empty())
          LOG(WARNING) << "backend " << name_ << ": closing with " << confirms_.size()
                       << " unconfirmed publish(es); their originals will be redelivered";
        conn_->Close();
        conn_.reset();
        return Status::Ok();
      }
    }
    s = ReadFrames();
    if (!s.ok()) return s;
  }
}

Status RabbitMqBackend::RequeueDue() {
  if (delayed_requeues_.empty()) return Status::Ok();
  const auto now = std::chrono::steady_clock::now();
  const bool stopping = StopRequested();
  for (auto it = delayed_requeues_.begin(); it != delayed_requeues_.end();) {
    if (it->second > now && !stopping) {
      ++it;
      continue;
    }
    const uint64_t tag = it->first;
    it = delayed_requeues_.erase(it);
    Forget(tag);
    int rc = amqp_basic_reject(conn_->state(), kAmqpChannel, tag, /*requeue=*/1);
    if (rc != AMQP_STATUS_OK) return StatusOf(rc, "basic.reject");
  }
  return Status::Ok();
}

Status RabbitMqBackend::ApplyOps(std::vector<Op>& ops) {
  for (Op& op : ops) {
    Status s;
    switch (op.kind) {
      case Op::Kind::kCancel:
        if (op.source->consuming && !op.source->cancelled) {
          op.source->cancelled = true;
          amqp_basic_cancel(conn_->state(), kAmqpChannel,
                            amqp_cstring_bytes(op.source->consumer_tag.c_str()));
          s = conn_->CheckReply("basic.cancel");
        } else {
          op.source->cancelled = true;
        }
        break;
      case Op::Kind::kPublish: {
        OwnedProperties props(op.message);
        props.KeepForeignUserId(login_user_);
        std::string target = op.queue;
        if (op.delay.count() > 0 && op.target) {
          Duration ttl{0};
          Result<std::string> q = RetryQueueFor(*op.target, op.delay, &ttl);
          if (!q.ok()) {
            op.done->set_value(q.status());
            return q.status();
          }
          target = *q;
          if (ttl.count() > 0) WaitInRetryQueue(props, std::min(op.delay, ttl));
        }
        const size_t frame_max = static_cast<size_t>(amqp_get_frame_max(conn_->state()));
        if (props.HeaderFrameSize() > frame_max) {
          // Refused here: the publish would break the connection.
          op.done->set_value(Status::InvalidArgument(
              "publish to " + op.queue + ": its properties and headers take " +
              std::to_string(props.HeaderFrameSize()) + " bytes, over the broker's frame of " +
              std::to_string(frame_max) + " bytes"));
          break;
        }
        s = PublishCopy(0, target, props, op.message.payload, op.done);
        if (!s.ok()) op.done->set_value(s);
        break;
      }
    }
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

Status RabbitMqBackend::ApplySettlement(SettleOp& op) {
  const Delivery& d = *op.delivery;
  Unsettled* found = d.generation == generation_ ? unsettled_->Find(d.tag) : nullptr;
  if (found == nullptr) {
    // The connection that delivered it is gone: the broker has requeued it.
    std::lock_guard<std::mutex> lock(mu_);
    counters_.dropped_settlements++;
    return Status::Ok();
  }
  amqp_connection_state_t st = conn_->state();
  switch (op.outcome.kind) {
    case Outcome::Kind::kAck:
      to_ack_.push_back(d.tag);
      return Status::Ok();
    case Outcome::Kind::kRelease: {
      int rc = amqp_basic_reject(st, kAmqpChannel, d.tag, /*requeue=*/1);
      Forget(d.tag);
      return StatusOf(rc, "basic.reject");
    }
    case Outcome::Kind::kDeadLetter:
      return DeadLetter(d.tag, d, op.outcome.reason);
    case Outcome::Kind::kRetry: {
      Unsettled& u = *found;
      std::string target = u.source->options.source;
      Duration ttl{0};
      if (options_.delayed_retries && op.outcome.delay.count() > 0) {
        // The tier depends on the un-jittered delay only.
        Duration longest = std::max(
            LongestJitteredDelay(u.source->retry_policy, op.outcome.base_delay), op.outcome.delay);
        Result<std::string> q = RetryQueueFor(*u.source, longest, &ttl);
        if (!q.ok()) return q.status();
        target = *q;
      }
      std::optional<OwnedProperties> copy;
      CopyProperties(u, d, &copy);
      copy->Remove(kHeaderDeliveryCount);
      copy->SetInt(kHeaderRetryAttempt, static_cast<int64_t>(d.msg.attempt) + 1);
      RestoreExpiration(*copy);
      // Its own (jittered) delay, which the tier's TTL bounds: it waits at
      // least that long, and at most the TTL when a longer one is ahead.
      if (ttl.count() > 0) WaitInRetryQueue(*copy, std::min(op.outcome.delay, ttl));
      // Without a producer's timestamp the first delivery's arrival is the
      // enqueued time, kept for every later attempt and the dead letter.
      if (!(u.flags & AMQP_BASIC_TIMESTAMP_FLAG) && !copy->HasHeader(kHeaderFirstSeenAt) &&
          d.msg.enqueued_at_ms > 0)
        copy->SetString(kHeaderFirstSeenAt, FormatIso8601Utc(d.msg.enqueued_at_ms));
      // Where the producer published it: the copy comes back through the
      // default exchange, so the dead letter would name that instead.
      // Written once, like x-first-seen-at.
      if (!copy->HasHeader(kHeaderOriginalExchange))
        copy->SetString(kHeaderOriginalExchange, u.exchange);
      if (!copy->HasHeader(kHeaderOriginalRoutingKey))
        copy->SetString(kHeaderOriginalRoutingKey, u.routing_key);
      copy->KeepForeignUserId(login_user_);
      if (d.msg.props.message_id.empty()) copy->SetMessageId(d.msg.id);
      copy->SetPersistent();
      const size_t frame_max = static_cast<size_t>(amqp_get_frame_max(st));
      if (copy->HeaderFrameSize() > frame_max) {
        // It could never be published: dead-letter it (with headers cut)
        // rather than break the connection or retry it forever.
        return DeadLetter(d.tag, d,
                          op.outcome.reason + " (not retried: the retry copy's properties and "
                          "headers take " + std::to_string(copy->HeaderFrameSize()) +
                          " bytes, over the broker's frame of " + std::to_string(frame_max) +
                          " bytes)");
      }
      return PublishCopy(d.tag, target, *copy, d.msg.payload, nullptr);
    }
  }
  return Status::Ok();
}

void RabbitMqBackend::CopyProperties(const Unsettled& u, const Delivery& d,
                                     std::optional<OwnedProperties>* out) const {
  if (u.props)
    out->emplace(u.props->props());
  else
    out->emplace(d.msg.props, u.flags, u.delivery_mode);
}

Status RabbitMqBackend::DeadLetter(uint64_t tag, const Delivery& d, const std::string& reason) {
  Unsettled* found = unsettled_->Find(tag);
  CHECK(found != nullptr) << "dead-lettering an unknown delivery tag " << tag;
  Unsettled& u = *found;
  const std::string& queue = u.source->options.source;
  const std::string& dlq = u.source->dead_letter_queue;
  if (declared_.count(dlq) == 0) {
    Status s = DeclareMain(*u.source);
    if (!s.ok()) return s;
  }
  std::optional<OwnedProperties> props;
  CopyProperties(u, d, &props);
  OwnedProperties& copy = *props;
  copy.Remove(kHeaderDeliveryCount);
  copy.Remove(kHeaderRetryAttempt);
  // The dead-letter policy's fields (x-original-queue is the AMQP queue),
  // then where the producer had published the original.
  for (const DeadLetterField& f : DeadLetterFieldsFor(d, queue, reason, WallMs())) {
    switch (f.type) {
      case DeadLetterField::Type::kString:
        copy.SetString(f.name, f.text);
        break;
      case DeadLetterField::Type::kInteger:
        copy.SetInt(f.name, f.number);
        break;
      case DeadLetterField::Type::kTimestamp:
        copy.SetString(f.name, f.ToText());
        break;
    }
  }
  // A retry copy carries the producer's (ApplySettlement, kRetry).
  if (!copy.HasHeader(kHeaderOriginalRoutingKey))
    copy.SetString(kHeaderOriginalRoutingKey, u.routing_key);
  if (!copy.HasHeader(kHeaderOriginalExchange)) copy.SetString(kHeaderOriginalExchange, u.exchange);
  RestoreExpiration(copy);
  copy.KeepForeignUserId(login_user_);
  if (d.msg.props.message_id.empty()) copy.SetMessageId(d.msg.id);
  copy.SetPersistent();
  const size_t frame_max = static_cast<size_t>(amqp_get_frame_max(conn_->state()));
  if (copy.HeaderFrameSize() > frame_max) {
    // The broker's frame cannot hold the copy: cut the original's headers,
    // largest first, never the dead-letter ones, and say so in the reason
    // (room for that is kept).
    constexpr size_t kReasonRoom = 1024;
    const size_t before = copy.HeaderFrameSize();
    std::vector<std::string_view> keep = {kHeaderOriginalRoutingKey, kHeaderOriginalExchange};
    for (const DeadLetterField& f : DeadLetterFieldsFor(d, queue, reason, 0)) keep.push_back(f.name);
    keep.push_back(kHeaderFirstSeenAt);
    keep.push_back(kHeaderOriginalUserId);
    const std::string cut =
        copy.CutHeadersToFit(frame_max > kReasonRoom ? frame_max - kReasonRoom : 0, keep);
    std::string why = reason + " (headers cut to fit the broker's frame of " +
                      std::to_string(frame_max) + " bytes, the copy took " +
                      std::to_string(before) + ": " + (cut.empty() ? "none could be" : cut) + ")";
    copy.SetString(kHeaderFailureReason, why);
    LOG(WARNING) << "backend " << name_ << ": dead letter of " << d.msg.id << " from " << queue
                 << ": " << why;
    if (copy.HeaderFrameSize() > frame_max) {
      // Only the reason itself can be this long: keep its start.
      const size_t over = copy.HeaderFrameSize() - frame_max;
      why.resize(why.size() > over + 3 ? why.size() - over - 3 : 0);
      copy.SetString(kHeaderFailureReason, why + "...");
    }
  }
  return PublishCopy(tag, dlq, copy, d.msg.payload, nullptr);
}

void RabbitMqBackend::RestoreExpiration(OwnedProperties& copy) {
  std::optional<std::string_view> original = copy.HeaderText(kHeaderOriginalExpiration);
  if (!original) return;
  if (!copy.Expiration()) copy.SetExpiration(*original);
  copy.Remove(kHeaderOriginalExpiration);
}

void RabbitMqBackend::WaitInRetryQueue(OwnedProperties& copy, Duration delay) {
  // The retry queue's per-message TTL is the delay, and the broker drops
  // `expiration` when it moves the copy back: the producer's travels in a
  // header meanwhile.
  if (std::optional<std::string_view> producer = copy.Expiration())
    copy.SetString(kHeaderOriginalExpiration, *producer);
  copy.SetExpiration(delay);
}

Result<std::string> RabbitMqBackend::RetryQueueFor(SourceState& s, Duration longest,
                                                   Duration* ttl) {
  const std::string& queue = s.options.source;
  *ttl = Duration::zero();
  if (longest <= Duration::zero() || s.tiers.empty()) return queue;
  const RetryTier* tier = FindRetryTier(s.tiers, longest);
  // Retries stay within the policy's max, and Enqueue refuses longer
  // delays; the longest tier is the closest there is.
  if (tier == nullptr) tier = &s.tiers.back();
  *ttl = tier->ttl;
  std::string name = s.retry_queue_prefix + RetryTierName(tier->ttl);
  if (declared_.count(name)) return name;
  std::string type(AmqpQueueTypeName(s.queue_type));
  std::string empty;
  std::vector<amqp_table_entry_t> args = {
      StringEntry("x-queue-type", type),
      IntEntry("x-message-ttl", tier->ttl.count()),
      StringEntry("x-dead-letter-exchange", empty),
      StringEntry("x-dead-letter-routing-key", queue),
  };
  static const std::string kAtLeastOnce = "at-least-once";
  static const std::string kRejectPublish = "reject-publish";
  if (s.queue_type == AmqpQueueType::kQuorum) {
    // Quorum queues dead-letter at-most-once unless told otherwise.
    args.push_back(StringEntry("x-dead-letter-strategy", kAtLeastOnce));
    args.push_back(StringEntry("x-overflow", kRejectPublish));
  }
  amqp_table_t table = {static_cast<int>(args.size()), args.data()};
  Result<uint32_t> r = conn_->DeclareQueue(name, table, /*passive=*/false);
  if (!r.ok()) return r.status();
  declared_.insert(name);
  return name;
}

Status RabbitMqBackend::PublishCopy(uint64_t original_tag, const std::string& routing_key,
                                    const OwnedProperties& props, const std::string& body,
                                    std::shared_ptr<std::promise<Status>> done) {
  int rc = amqp_basic_publish(conn_->state(), kAmqpChannel, amqp_empty_bytes, Bytes(routing_key),
                              /*mandatory=*/1, /*immediate=*/0, &props.props(), Bytes(body));
  if (rc != AMQP_STATUS_OK) return StatusOf(rc, ("basic.publish to " + routing_key).c_str());
  PendingConfirm pc;
  pc.original_tag = original_tag;
  pc.routing_key = routing_key;
  pc.done = std::move(done);
  confirms_.emplace(next_publish_seq_++, std::move(pc));
  return Status::Ok();
}

Status RabbitMqBackend::HandleConfirm(uint64_t seq, bool multiple, bool ok) {
  auto end = multiple ? confirms_.upper_bound(seq) : confirms_.find(seq);
  auto begin = multiple ? confirms_.begin() : end;
  if (!multiple && end != confirms_.end()) end = std::next(end);
  for (auto it = begin; it != end;) {
    PendingConfirm& pc = it->second;
    const bool success = ok && !pc.returned;
    if (pc.original_tag != 0) {
      if (success) {
        refusals_in_a_row_ = 0;
        to_ack_.push_back(pc.original_tag);
      } else {
        {
          std::lock_guard<std::mutex> lock(mu_);
          counters_.confirm_failures++;
        }
        const auto delay = std::min<std::chrono::milliseconds>(
            kRefusedRequeueMax, kRefusedRequeueFirst * (1 << std::min(refusals_in_a_row_, 10)));
        ++refusals_in_a_row_;
        LOG(ERROR) << "backend " << name_ << ": the broker did not take the copy published to "
                   << pc.routing_key << (pc.returned ? " (unroutable)" : " (nacked)")
                   << "; the original stays unacked and is requeued in " << delay.count()
                   << " ms";
        declared_.erase(pc.routing_key);
        delayed_requeues_.emplace_back(pc.original_tag, std::chrono::steady_clock::now() + delay);
      }
    }
    if (pc.done) {
      pc.done->set_value(success ? Status::Ok()
                                 : Status::Unavailable("the broker refused the publish to " +
                                                       pc.routing_key));
    }
    it = confirms_.erase(it);
  }
  return Status::Ok();
}

Status RabbitMqBackend::HandleReturn(const amqp_frame_t& frame) {
  auto* m = static_cast<amqp_basic_return_t*>(frame.payload.method.decoded);
  std::string routing_key = BytesToString(m->routing_key);
  std::string text = BytesToString(m->reply_text);
  amqp_message_t message;
  amqp_rpc_reply_t r = amqp_read_message(conn_->state(), frame.channel, &message, 0);
  if (r.reply_type != AMQP_RESPONSE_NORMAL)
    return Status::Unavailable("reading a returned message: " + AmqpReplyError(r));
  amqp_destroy_message(&message);
  // The return precedes the confirm of the same publish.
  for (auto& [seq, pc] : confirms_) {
    if (!pc.returned && pc.routing_key == routing_key) {
      pc.returned = true;
      break;
    }
  }
  LOG(ERROR) << "backend " << name_ << ": publish to " << routing_key << " returned: " << text;
  return Status::Ok();
}

Status RabbitMqBackend::FlushAcks() {
  for (uint64_t tag : to_ack_) {
    Unsettled* u = unsettled_->Find(tag);
    if (u == nullptr || u->acked) continue;
    u->acked = true;
    ++acks_waiting_;
  }
  to_ack_.clear();
  if (acks_waiting_ == 0) return Status::Ok();
  // Acks wait a little so that one multiple ack takes many (the broker
  // handles one frame instead of one per turn): until an eighth of the
  // prefetch windows is acked, or the oldest waited kAckDelayMs.
  const auto now = std::chrono::steady_clock::now();
  if (acks_waiting_since_ == std::chrono::steady_clock::time_point{}) acks_waiting_since_ = now;
  const size_t window = std::max<size_t>(1, spare_cap_);
  const bool due = StopRequested() ||
                   now - acks_waiting_since_ >= std::chrono::milliseconds(kAckDelayMs);
  if (!due && acks_waiting_ < std::max<size_t>(1, window / 8)) return Status::Ok();
  amqp_connection_state_t st = conn_->state();
  // The lowest unsettled tags that are all acked go in one multiple ack.
  uint64_t last = 0;
  uint64_t tag = unsettled_->Lowest();
  while (tag != 0 && unsettled_->Find(tag)->acked) {
    last = tag;
    Forget(tag);
    tag = unsettled_->NextAbove(tag);
  }
  int rc = AMQP_STATUS_OK;
  if (last != 0) rc = amqp_basic_ack(st, kAmqpChannel, last, /*multiple=*/1);
  if (acks_waiting_ == 0 || rc != AMQP_STATUS_OK) {
    acks_waiting_since_ = {};
    return StatusOf(rc, "basic.ack");
  }
  // The rest sit above a delivery still being handled (or waiting for its
  // copy's confirm), which a multiple ack must not cover. Workers settle out
  // of order, so the gap usually closes soon and a later multiple ack takes
  // them too, instead of a frame and a system call each. They wait at most
  // about kAckDelayMs (counted again from a multiple ack that took others),
  // and not while they hold half of the prefetch windows (the broker would
  // stop delivering).
  if (last != 0 && !StopRequested()) acks_waiting_since_ = now;
  if (!StopRequested() && acks_waiting_ < std::max<size_t>(1, window / 2) &&
      now - acks_waiting_since_ < std::chrono::milliseconds(kGapAckDelayMs)) {
    return Status::Ok();
  }
  while (tag != 0 && acks_waiting_ > 0 && rc == AMQP_STATUS_OK) {
    const uint64_t next = unsettled_->NextAbove(tag);
    if (unsettled_->Find(tag)->acked) {
      rc = amqp_basic_ack(st, kAmqpChannel, tag, /*multiple=*/0);
      Forget(tag);
    }
    tag = next;
  }
  acks_waiting_since_ = {};
  return StatusOf(rc, "basic.ack");
}

std::unique_ptr<Delivery> RabbitMqBackend::NewDelivery() {
  if (spare_deliveries_.empty()) return std::make_unique<Delivery>();
  std::unique_ptr<Delivery> d = std::move(spare_deliveries_.back());
  spare_deliveries_.pop_back();
  return d;
}

void RabbitMqBackend::Recycle(std::unique_ptr<Delivery> d) {
  if (d == nullptr || spare_deliveries_.size() >= spare_cap_ ||
      d->msg.payload.capacity() > kMaxRecycledPayload)
    return;
  d->ResetState();
  spare_deliveries_.push_back(std::move(d));
}

RabbitMqBackend::Unsettled& RabbitMqBackend::Track(uint64_t tag) {
  return unsettled_->Insert(tag);
}

bool RabbitMqBackend::Forget(uint64_t tag) {
  Unsettled* u = unsettled_->Find(tag);
  if (u == nullptr) return false;
  if (u->acked) --acks_waiting_;
  if (u->source != nullptr) --u->source->held;
  unsettled_->Erase(tag);
  return true;
}

Status RabbitMqBackend::ReadContent(amqp_channel_t channel, const amqp_basic_properties_t** props,
                                    std::string* body) {
  amqp_connection_state_t st = conn_->state();
  auto next = [&](amqp_frame_t* f, uint8_t type) -> Status {
    // The rest of a message follows its basic.deliver at once, and is
    // usually buffered already: look without a deadline (no clock read)
    // first.
    timeval zero{0, 0};
    int rc = amqp_simple_wait_frame_noblock(st, f, &zero);
    if (rc == AMQP_STATUS_TIMEOUT) {
      timeval tv{static_cast<time_t>(kRpcTimeout.count() / 1000), 0};
      rc = amqp_simple_wait_frame_noblock(st, f, &tv);
    }
    if (rc != AMQP_STATUS_OK) return StatusOf(rc, "reading a delivery");
    if (f->frame_type != type || f->channel != channel)
      return Status::Unavailable("reading a delivery: unexpected frame type " +
                                 std::to_string(f->frame_type) + " on channel " +
                                 std::to_string(f->channel));
    return Status::Ok();
  };
  amqp_frame_t frame;
  Status s = next(&frame, AMQP_FRAME_HEADER);
  if (!s.ok()) return s;
  *props = static_cast<const amqp_basic_properties_t*>(frame.payload.properties.decoded);
  const uint64_t size = frame.payload.properties.body_size;
  body->clear();
  if (size > body->max_size()) return Status::Unavailable("reading a delivery: body too large");
  body->reserve(static_cast<size_t>(size));
  while (body->size() < size) {
    s = next(&frame, AMQP_FRAME_BODY);
    if (!s.ok()) return s;
    const amqp_bytes_t& part = frame.payload.body_fragment;
    if (body->size() + part.len > size)
      return Status::Unavailable("reading a delivery: body longer than announced");
    body->append(static_cast<const char*>(part.bytes), part.len);
  }
  return Status::Ok();
}

Status RabbitMqBackend::HandleDelivery(const amqp_frame_t& frame) {
  const auto* m = static_cast<const amqp_basic_deliver_t*>(frame.payload.method.decoded);
  const std::string_view consumer_tag(static_cast<const char*>(m->consumer_tag.bytes),
                                      m->consumer_tag.len);
  const uint64_t tag = m->delivery_tag;
  // The method's fields live in the frame pool, like the content read next.
  const amqp_bytes_t exchange = m->exchange;
  const amqp_bytes_t routing_key = m->routing_key;
  std::unique_ptr<Delivery> d = NewDelivery();
  const amqp_basic_properties_t* props = nullptr;
  Status s = ReadContent(frame.channel, &props, &d->msg.payload);
  if (!s.ok()) return s;

  SourceState* src = nullptr;
  for (auto& candidate : live_sources_)
    if (candidate->consumer_tag == consumer_tag) src = candidate.get();
  if (src == nullptr) {
    Recycle(std::move(d));
    return StatusOf(amqp_basic_reject(conn_->state(), kAmqpChannel, tag, 1), "basic.reject");
  }
  DecodeProperties(*props, &d->msg);
  d->msg.attempt = AttemptFromHeaders(*props);
  if (d->msg.props.message_id.empty()) {
    // Stable across redeliveries and restarts: derived from the content.
    // Retry and dead-letter copies carry it as their message_id.
    ContentMessageId(*props, d->msg.payload, &id_scratch_, &d->msg.id);
  } else {
    d->msg.id = d->msg.props.message_id;
  }
  // One clock read per turn serves every delivery of the turn.
  if (turn_mono_ns_ == 0) {
    turn_mono_ns_ = MonotonicNs();
    turn_wall_ms_ = WallMs();
  }
  if (d->msg.enqueued_at_ms == 0) d->msg.enqueued_at_ms = turn_wall_ms_;
  d->tag = tag;
  d->generation = generation_;
  d->received_ns = turn_mono_ns_;

  Unsettled& u = Track(tag);
  if (u.source != nullptr) --u.source->held;  // a tag seen twice (never from a broker)
  u.source = src;
  ++src->held;
  u.exchange.assign(static_cast<const char*>(exchange.bytes), exchange.len);
  u.routing_key.assign(static_cast<const char*>(routing_key.bytes), routing_key.len);
  u.flags = props->_flags;
  u.delivery_mode =
      (props->_flags & AMQP_BASIC_DELIVERY_MODE_FLAG) ? props->delivery_mode : uint8_t{0};
  if (!MessageKeepsProperties(*props)) u.props = std::make_unique<OwnedProperties>(*props);

  const int max_attempts = src->options.max_attempts;
  if (max_attempts > 0 && d->msg.attempt > static_cast<uint32_t>(max_attempts)) {
    // Only crashes and lost connections get here: a handler's own retries
    // dead-letter before publishing a copy past the limit.
    {
      std::lock_guard<std::mutex> lock(mu_);
      counters_.crash_dead_letters++;
    }
    d->queue = &src->options.queue;
    s = DeadLetter(tag, *d,
                   "attempt " + std::to_string(d->msg.attempt) + " exceeds max_attempts " +
                       std::to_string(max_attempts) +
                       ": redelivered after earlier attempts never finished (crash or lost "
                       "connection)");
    Recycle(std::move(d));
    return s;
  }
  d->queue = &src->options.queue;
  if (src->incoming.empty()) wake_due_.push_back(src);
  src->incoming.push_back(std::move(d));
  return Status::Ok();
}

Status RabbitMqBackend::WakeDueSources(bool connection_ok) {
  Status result;
  for (SourceState* src : wake_due_) {
    std::function<void()> wake;
    bool stopped;
    {
      std::lock_guard<std::mutex> lock(src->mu);
      stopped = src->stopped;
      if (!stopped && connection_ok) {
        for (auto& d : src->incoming) src->buffer.push_back(std::move(d));
        wake = src->RefilledLocked();
      }
    }
    if (stopped && connection_ok) {
      // Stopped meanwhile: hand them straight back.
      for (auto& d : src->incoming) {
        if (!result.ok()) break;
        Forget(d->tag);
        result = StatusOf(amqp_basic_reject(conn_->state(), kAmqpChannel, d->tag, 1),
                          "basic.reject");
      }
    }
    src->incoming.clear();
    if (wake) wake();
  }
  wake_due_.clear();
  return result;
}

// One turn reads what the socket has (or waits for it), then wakes each
// consumer that got deliveries once: a worker hand-off per turn, not per
// message, which matters on a machine the broker shares.
Status RabbitMqBackend::ReadFrames() {
  turn_mono_ns_ = 0;
  Status s = ReadFramesTurn();
  Status w = WakeDueSources(s.ok());
  return s.ok() ? w : s;
}

bool RabbitMqBackend::SleepOutReadCoalesce() {
  const auto now = std::chrono::steady_clock::now();
  const auto deadline = read_started_ + read_coalesce_;
  if (now >= deadline) return false;
  const int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - now).count();
  timespec ts{static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
  pollfd p{wake_fd_, POLLIN, 0};
  if (ppoll(&p, 1, &ts, nullptr) <= 0 || !(p.revents & POLLIN)) return false;
  uint64_t count;
  ssize_t r = read(wake_fd_, &count, sizeof(count));
  (void)r;
  kicked_.store(false, std::memory_order_release);
  return true;
}

bool RabbitMqBackend::WindowsAllowCoalescing() {
  bool answers_later = true;
  for (const auto& src : live_sources_) {
    if (!src->consuming || src->cancelled) continue;
    const size_t window = static_cast<size_t>(std::max(1, src->options.prefetch));
    if (window < static_cast<size_t>(kCoalesceMinPrefetch) || src->held * 2 > window) return false;
    // A source that holds nothing now is idle, whatever its kind.
    if (!src->options.answers_later && src->held > 0) answers_later = false;
  }
  read_coalesce_ = answers_later ? kReadCoalesceAnswersLater : kReadCoalesce;
  return true;
}

Status RabbitMqBackend::ReadFramesTurn() {
  amqp_connection_state_t st = conn_->state();
  int deliveries = 0;
  bool did_read = false;  // this turn read the socket (or its buffer)
  for (int processed = 0; processed < kFramesPerTurn; ++processed) {
    if (!amqp_frames_enqueued(st) && !amqp_data_in_buffer(st) && read_coalescing_) {
      if (processed > 0) break;  // apply what workers sent meanwhile
      // See kReadCoalesce. Woken by a worker: its settlements first, then
      // the rest of the interval.
      if (SleepOutReadCoalesce()) break;
      read_started_ = std::chrono::steady_clock::now();
    } else if (!amqp_frames_enqueued(st) && !amqp_data_in_buffer(st)) {
      if (processed > 0) break;  // apply what workers sent meanwhile
      pollfd fds[2] = {{conn_->fd(), POLLIN, 0}, {wake_fd_, POLLIN, 0}};
      in_long_poll_.store(true);
      const bool lazy = lazy_ops_.load() > 0 || acks_waiting_ > 0;
      if (lazy) in_long_poll_.store(false);
      int n = poll(fds, 2, lazy ? kAckDelayMs : kMaxPollMs);
      in_long_poll_.store(false);
      if (n < 0 && errno != EINTR) return Status::Unavailable(std::string("poll: ") + strerror(errno));
      if (fds[1].revents & POLLIN) {
        uint64_t count;
        ssize_t r = read(wake_fd_, &count, sizeof(count));
        (void)r;
        kicked_.store(false, std::memory_order_release);
      }
      // With nothing to read, still let librabbitmq-c send and check
      // heartbeats (a zero-timeout wait below).
      if (!(fds[0].revents & (POLLIN | POLLERR | POLLHUP)) && (fds[1].revents & POLLIN)) break;
      read_started_ = std::chrono::steady_clock::now();
    }
    did_read = true;
    amqp_frame_t frame;
    timeval zero{0, 0};
    int rc = amqp_simple_wait_frame_noblock(st, &frame, &zero);
    if (rc == AMQP_STATUS_TIMEOUT) break;
    if (rc != AMQP_STATUS_OK) return StatusOf(rc, "reading from the broker");
    if (frame.frame_type != AMQP_FRAME_METHOD) continue;
    Status s;
    switch (frame.payload.method.id) {
      case AMQP_BASIC_DELIVER_METHOD:
        ++deliveries;
        s = HandleDelivery(frame);
        break;
      case AMQP_BASIC_ACK_METHOD: {
        auto* a = static_cast<amqp_basic_ack_t*>(frame.payload.method.decoded);
        s = HandleConfirm(a->delivery_tag, a->multiple != 0, true);
        break;
      }
      case AMQP_BASIC_NACK_METHOD: {
        auto* a = static_cast<amqp_basic_nack_t*>(frame.payload.method.decoded);
        s = HandleConfirm(a->delivery_tag, a->multiple != 0, false);
        break;
      }
      case AMQP_BASIC_RETURN_METHOD:
        s = HandleReturn(frame);
        break;
      case AMQP_BASIC_CANCEL_METHOD: {
        auto* c = static_cast<amqp_basic_cancel_t*>(frame.payload.method.decoded);
        s = Status::Unavailable("the broker cancelled consumer " + BytesToString(c->consumer_tag) +
                                " (queue deleted or its leader moved)");
        break;
      }
      case AMQP_CHANNEL_CLOSE_METHOD: {
        auto* c = static_cast<amqp_channel_close_t*>(frame.payload.method.decoded);
        s = Status::Unavailable("broker closed the channel: " + std::to_string(c->reply_code) +
                                " " + BytesToString(c->reply_text));
        break;
      }
      case AMQP_CONNECTION_CLOSE_METHOD: {
        auto* c = static_cast<amqp_connection_close_t*>(frame.payload.method.decoded);
        s = Status::Unavailable("broker closed the connection: " + std::to_string(c->reply_code) +
                                " " + BytesToString(c->reply_text));
        amqp_connection_close_ok_t ok;
        amqp_send_method(st, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
        break;
      }
      default:
        break;
    }
    if (!s.ok()) return s;
  }
  if (did_read) read_coalescing_ = deliveries >= kBusyDeliveries && WindowsAllowCoalescing();
  if (!amqp_frames_enqueued(st)) amqp_maybe_release_buffers(st);
  return Status::Ok();
}

}  // namespace foxworker
