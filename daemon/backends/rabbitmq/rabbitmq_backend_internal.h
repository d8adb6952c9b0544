// The parts of RabbitMqBackend shared by its two .cc files: the source's
// shared state and the records the connection thread keeps.
#ifndef FOXWORKER_BACKENDS_RABBITMQ_RABBITMQ_BACKEND_INTERNAL_H_
#define FOXWORKER_BACKENDS_RABBITMQ_RABBITMQ_BACKEND_INTERNAL_H_

#include "daemon/backends/rabbitmq/amqp_message_codec.h"
#include "daemon/backends/rabbitmq/rabbitmq_backend.h"
#include "daemon/backends/rabbitmq/retry_tiers.h"
#include "daemon/backends/rabbitmq/tag_window.h"
#include "daemon/core/buffered_source.h"

namespace foxworker {

// The buffer holds deliveries read and not handed out; the connection
// thread moves a turn's deliveries in at once and wakes the consumer.
struct RabbitMqBackend::SourceState : BufferedSourceState {
  SourceState() : BufferedSourceState(WakeOn::kRefill) {}

  SourceOptions options;
  std::string consumer_tag;
  // Derived from the options once, when the source is opened.
  AmqpQueueType queue_type = AmqpQueueType::kQuorum;  // of the queue, its DLQ and retry queues
  std::string dead_letter_queue;                      // expanded
  std::string retry_queue_prefix;                     // expanded
  RetryPolicyOptions retry_policy;                     // the default when not given
  std::vector<RetryTier> tiers;                       // from the retry policy

  // Settlements posted without waking the connection thread (GUARDED_BY the
  // backend's mu_).
  size_t lazy_settles = 0;

  // Connection thread only.
  bool consuming = false;  // basic.consume sent on the current connection
  bool cancelled = false;  // basic.cancel sent (never consume again)
  size_t held = 0;         // its deliveries not yet settled with the broker
  // Deliveries read this turn, moved into `buffer` under one lock (and the
  // consumer woken once) at the end of the turn.
  std::vector<std::unique_ptr<Delivery>> incoming;
};

// A settlement handed from a worker to the connection thread. `source` is
// never dangling: the backend keeps every SourceState it opened.
struct RabbitMqBackend::SettleOp {
  SourceState* source = nullptr;
  std::unique_ptr<Delivery> delivery;
  Outcome outcome;
};

// Other work handed from any thread to the connection thread.
struct RabbitMqBackend::Op {
  enum class Kind { kPublish, kCancel };
  Kind kind = Kind::kPublish;
  std::shared_ptr<SourceState> source;  // kCancel
  // kPublish
  std::string queue;
  std::shared_ptr<SourceState> target;  // the source consuming `queue`, if any
  Message message;
  Duration delay{0};
  std::shared_ptr<std::promise<Status>> done;
};

// A delivery of the current connection the broker has not had an ack,
// reject or nack for.
struct RabbitMqBackend::Unsettled {
  SourceState* source = nullptr;  // the backend keeps every SourceState it opened
  // The original's properties, for its retry and dead-letter copies. The
  // delivery's Message holds every property but the types of its headers and
  // the cluster id, so a deep copy is kept only for a message that has those
  // (or a timestamp beyond the Message's range); otherwise the copy is
  // rebuilt from the Message, the flags and the delivery mode.
  std::unique_ptr<OwnedProperties> props;
  amqp_flags_t flags = 0;
  uint8_t delivery_mode = 0;
  // Acked by the daemon, waiting for a multiple ack (see FlushAcks).
  bool acked = false;
  std::string exchange;
  std::string routing_key;

  // For reuse by the next tag (TagWindow): the strings keep their capacity.
  void Reset() {
    source = nullptr;
    props.reset();
    flags = 0;
    delivery_mode = 0;
    acked = false;
  }
};

// The deliveries of the current connection not yet settled, by tag.
class RabbitMqBackend::UnsettledTags : public TagWindow<Unsettled> {};

// A publish waiting for the broker's confirm.
struct RabbitMqBackend::PendingConfirm {
  uint64_t original_tag = 0;  // ack this delivery once confirmed; 0 = none
  std::string routing_key;
  bool returned = false;      // the broker returned it as unroutable
  std::shared_ptr<std::promise<Status>> done;
};

}  // namespace foxworker

#endif  // FOXWORKER_BACKENDS_RABBITMQ_RABBITMQ_BACKEND_INTERNAL_H_
