// RabbitMqBackend: the `rabbitmq` backend on librabbitmq-c.
//
// One dedicated thread owns the AMQP connection (one channel in publisher
// confirm mode) and is the only code that touches librabbitmq-c. It consumes
// every source's queue (basic.qos prefetch = the source's prefetch), turns
// deliveries into Delivery values in the source's buffer and wakes the
// consumer. Worker threads hand settlements and publishes to it through a
// locked queue and an eventfd; the thread waits in poll() on the socket and
// the eventfd, so a settlement is applied within a loop turn; under
// sustained load with large prefetch windows it reads the socket at most
// every 300 us (kReadCoalesce; 1 ms for queues with isolation: process)
// instead of on every arrival. Acks are coalesced (multiple=true over the
// lowest contiguous unacked tags). Retry and dead-letter copies are
// published with confirms and the original is acked only after its copy's
// confirm. The thread reconnects forever with exponential backoff and
// jitter; settlements of a dead connection's deliveries are dropped (the
// broker redelivers) and counted.
//
// Safe for concurrent use.
#ifndef FOXWORKER_BACKENDS_RABBITMQ_RABBITMQ_BACKEND_H_
#define FOXWORKER_BACKENDS_RABBITMQ_RABBITMQ_BACKEND_H_

#include <amqp.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "daemon/backends/rabbitmq/rabbitmq_config.h"
#include "daemon/base/liveness.h"
#include "daemon/core/backend.h"

namespace foxworker {

class AmqpConnection;
class OwnedProperties;

class RabbitMqBackend : public Backend {
 public:
  RabbitMqBackend(std::string name, RabbitMqBackendOptions options);
  ~RabbitMqBackend() override;

  const std::string& name() const override { return name_; }
  Status Start() override;
  Result<std::unique_ptr<Source>> OpenSource(const SourceOptions& options) override;
  // Publishes to queue `source` (after `delay`, through the retry tier of
  // that queue that is at least as long) and waits for the broker's
  // confirm. A delay beyond the queue's retry policy `max` is refused.
  Status Enqueue(const std::string& source, Message message, Duration delay) override;
  void Stop(std::chrono::steady_clock::time_point deadline) override;
  BackendState State() const override;
  // A RabbitMqInspector on a connection of its own.
  Result<std::unique_ptr<Inspector>> OpenInspector(const InspectorOptions& options) override;

  // Counters for tests and logs.
  struct Counters {
    uint64_t connections = 0;        // successful connects, the first included
    uint64_t dropped_settlements = 0;  // for deliveries of a connection that died
    uint64_t confirm_failures = 0;   // copies nacked or returned by the broker
    uint64_t crash_dead_letters = 0;  // dead-lettered on arrival past max_attempts
  };
  Counters GetCounters() const;

  struct SourceState;

 private:
  class RabbitMqSource;
  struct Op;
  struct SettleOp;
  struct Unsettled;
  struct PendingConfirm;
  class UnsettledTags;

  void Post(std::vector<Op> ops);
  // Hands `batch` (of `source`) to the connection thread; see lazy_ops_.
  void PostSettlements(SourceState& source, std::vector<Settlement>& batch, bool urgent);
  void Kick();
  void Run();
  Status Connect(bool* permanent);
  Status ServeConnection();
  Status ConsumeSources();
  Status ApplyOps(std::vector<Op>& ops);
  Status RequeueDue();
  Status ReadFramesTurn();
  // Waits on the wake-up eventfd until kReadCoalesce after read_started_;
  // true when a worker kicked the thread first.
  bool SleepOutReadCoalesce();
  // Whether reads may be coalesced: every consumed queue has a large
  // prefetch window, at most half of it held here (see kReadCoalesce).
  // Sets read_coalesce_ for the sources that hold deliveries.
  bool WindowsAllowCoalescing();
  Status WakeDueSources(bool connection_ok);
  Status ApplySettlement(SettleOp& op);
  Status ReadFrames();
  Status HandleDelivery(const amqp_frame_t& frame);
  // Reads the content header and body frames of a delivery on `channel`:
  // `*props` points into librabbitmq-c's frame pool (valid until its buffers
  // are released at the end of the turn), the body is copied into `*body`.
  Status ReadContent(amqp_channel_t channel, const amqp_basic_properties_t** props,
                     std::string* body);
  // The original's properties for a copy of the delivery `d` of `u`.
  void CopyProperties(const Unsettled& u, const Delivery& d,
                      std::optional<OwnedProperties>* out) const;
  // A Delivery for the next message: a recycled one when there is one.
  std::unique_ptr<Delivery> NewDelivery();
  void Recycle(std::unique_ptr<Delivery> d);
  // Records `tag` as unsettled; returns its record.
  Unsettled& Track(uint64_t tag);
  // Forgets an unsettled tag; false when it was not there.
  bool Forget(uint64_t tag);
  Status HandleConfirm(uint64_t seq, bool multiple, bool ok);
  Status HandleReturn(const amqp_frame_t& frame);
  Status FlushAcks();
  Status PublishCopy(uint64_t original_tag, const std::string& routing_key,
                     const OwnedProperties& props, const std::string& body,
                     std::shared_ptr<std::promise<Status>> done);
  Status DeadLetter(uint64_t tag, const Delivery& d, const std::string& reason);
  // The producer's expiration back from x-original-expiration, for a copy
  // published where it may expire (the work queue, the dead-letter queue).
  static void RestoreExpiration(OwnedProperties& copy);
  // Sets a copy's `expiration` to the delay it waits in a retry queue,
  // keeping the producer's in x-original-expiration.
  static void WaitInRetryQueue(OwnedProperties& copy, Duration delay);
  // The queue a retry (or delayed publish) of `s` goes to: the first tier at
  // least `longest` (the longest delay it may have drawn), declared on first
  // use, or the queue itself for zero; `*ttl` is the tier's TTL (zero for
  // the queue itself).
  Result<std::string> RetryQueueFor(SourceState& s, Duration longest, Duration* ttl);
  Status DeclareMain(SourceState& s);
  void InitSourceState(SourceState& s, const SourceOptions& options) const;
  void DropConnection(const Status& why);
  void WaitBackoff();
  bool StopRequested() const { return stop_.load(std::memory_order_acquire); }

  const std::string name_;
  const RabbitMqBackendOptions options_;
  // The user the URL logs in as (librabbitmq-c's "guest" when it names
  // none): the only user_id the broker accepts on our publishes.
  std::string login_user_;

  // Shared with worker threads.
  mutable std::mutex mu_;
  std::vector<Op> ops_;                             // GUARDED_BY(mu_)
  std::vector<SettleOp> settles_;                   // GUARDED_BY(mu_)
  std::vector<std::shared_ptr<SourceState>> sources_;  // GUARDED_BY(mu_)
  std::string last_error_;                          // GUARDED_BY(mu_)
  Counters counters_;                               // GUARDED_BY(mu_)
  std::atomic<bool> connected_{false};
  std::atomic<uint64_t> reconnect_attempts_{0};
  std::atomic<uint64_t> consecutive_failures_{0};
  std::atomic<bool> kicked_{false};
  // Settlements are posted lazily: the connection thread is woken for them
  // only when a source has an eighth of its prefetch window waiting, or when
  // the thread is about to sleep longer than kAckDelayMs (in_long_poll_);
  // otherwise it picks them up within kAckDelayMs (lazy_ops_ > 0 shortens
  // its poll). Both are seq_cst: each side stores its own, then loads the
  // other's, so no settlement waits for a long poll.
  std::atomic<int> lazy_ops_{0};
  std::atomic<bool> in_long_poll_{false};
  std::atomic<bool> stop_{false};
  std::chrono::steady_clock::time_point stop_deadline_;  // set before stop_
  int wake_fd_ = -1;
  std::thread thread_;
  // The connection thread's (docs/operations.md#watchdog); only it beats.
  Heartbeat heartbeat_;

  // Connection thread only.
  std::unique_ptr<AmqpConnection> conn_;
  uint64_t generation_ = 0;
  uint64_t connect_calls_ = 0;  // Start() and then the thread, never at once
  uint64_t next_publish_seq_ = 1;
  std::unique_ptr<UnsettledTags> unsettled_;         // by delivery tag
  // Steady consuming allocates nothing per message: the records of settled
  // tags (a ring of twice the sources' prefetch windows) and settled
  // deliveries (at most spare_cap_, the prefetch windows; their strings keep
  // their capacity) are reused.
  std::vector<std::unique_ptr<Delivery>> spare_deliveries_;
  size_t spare_cap_ = 0;
  std::vector<SettleOp> applying_;                   // settles_ of this turn
  // The sources, as of the last ConsumeSources (once per turn).
  std::vector<std::shared_ptr<SourceState>> live_sources_;
  // Clocks read once per turn for the deliveries of that turn (0 = not yet).
  uint64_t turn_mono_ns_ = 0;
  int64_t turn_wall_ms_ = 0;
  // Read coalescing (see kReadCoalesce): on while turns bring deliveries;
  // when the current (or last) turn's read began.
  bool read_coalescing_ = false;
  std::chrono::microseconds read_coalesce_{300};  // kReadCoalesce or ...AnswersLater
  std::chrono::steady_clock::time_point read_started_{};
  std::map<uint64_t, PendingConfirm> confirms_;      // by publish sequence number
  std::vector<uint64_t> to_ack_;
  // Unsettled tags marked acked that sit above one still unsettled, and
  // since when the oldest of them waits (FlushAcks).
  size_t acks_waiting_ = 0;
  std::chrono::steady_clock::time_point acks_waiting_since_{};
  std::set<std::string> declared_;                   // queues declared on this connection
  // Originals whose retry or dead-letter copy the broker refused, requeued
  // when due (delivery tag, due time) so a broker that keeps refusing does
  // not spin the handler; the delay doubles per refusal in a row.
  std::deque<std::pair<uint64_t, std::chrono::steady_clock::time_point>> delayed_requeues_;
  int refusals_in_a_row_ = 0;
  // Sources that got deliveries this turn: their consumers are woken once at
  // the end of the turn, not once per delivery.
  std::vector<SourceState*> wake_due_;
  std::mt19937_64 rng_{std::random_device{}()};
  std::string id_scratch_;  // for ContentMessageId
};

class ExtensionRegistry;
// Builds a RabbitMqBackend from its config (not started).
Result<std::unique_ptr<Backend>> MakeRabbitMqBackend(const BackendConfig& config);
// Sets MakeRabbitMqBackend as the "rabbitmq" type's factory.
void RegisterRabbitMqBackendFactory(ExtensionRegistry& registry);

}  // namespace foxworker

#endif  // FOXWORKER_BACKENDS_RABBITMQ_RABBITMQ_BACKEND_H_
