// RabbitMqInspector: the rabbitmq backend's Inspector (daemon/core/inspect.h),
// on an AMQP connection of its own (one channel, publisher confirms; the
// socket, handshake and RPC timeouts are the inspector's timeout; after an
// error the next call connects again).
//
// Depth is a passive queue.declare of the queue and of its dead-letter
// queue: ready counts only (unacked, scheduled and the oldest age are -1).
//
// A queue cannot be read without taking its messages, so the dead letters
// are browsed: basic.get without ack of every message of the dead-letter
// queue (at most kMaxBrowse), acting on those asked for (a retry publishes a
// copy to the queue without the dead-letter headers, attempt 1 again, waits
// for the broker's confirm, then acks the original; a delete acks it), then
// basic.nack with requeue of the rest, which puts them back where they were.
// What this costs is in docs/operations.md ("Dead letters on RabbitMQ").
//
// Ids hash the message id, x-failed-at and x-failure-reason, so they are the
// same in every browse (two letters equal in all three share one id, and an
// action on it applies to both).
#ifndef FOXWORKER_BACKENDS_RABBITMQ_RABBITMQ_INSPECTOR_H_
#define FOXWORKER_BACKENDS_RABBITMQ_RABBITMQ_INSPECTOR_H_

#include <amqp.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "daemon/backends/rabbitmq/amqp_connection.h"
#include "daemon/backends/rabbitmq/rabbitmq_config.h"
#include "daemon/core/inspect.h"

namespace foxworker {

class RabbitMqInspector final : public Inspector {
 public:
  // The most letters one browse takes from the dead-letter queue.
  static constexpr size_t kMaxBrowse = 20000;

  RabbitMqInspector(RabbitMqBackendOptions options, InspectorOptions inspector);
  ~RabbitMqInspector() override;

  Result<QueueDepth> Depth(const SourceOptions& queue) override;
  Result<DeadLetterPage> ListDead(const SourceOptions& queue, const DeadLetterFilter& filter,
                                  size_t offset, size_t limit) override;
  Result<DeadLetter> GetDead(const SourceOptions& queue, const std::string& id,
                             size_t max_payload) override;
  Result<std::vector<std::string>> RetryDead(const SourceOptions& queue,
                                             const std::vector<std::string>& ids) override;
  Result<size_t> RetryMatching(const SourceOptions& queue, const DeadLetterFilter& filter) override;
  Result<std::vector<std::string>> DeleteDead(const SourceOptions& queue,
                                              const std::vector<std::string>& ids) override;
  Result<size_t> DeleteMatching(const SourceOptions& queue, const DeadLetterFilter& filter) override;
  // kUnavailable: retries wait in TTL queues, which cannot be browsed.
  Result<std::vector<ScheduledJob>> ListScheduled(const SourceOptions& queue, size_t limit) override;

 private:
  enum class Action { kKeep, kRetry, kDelete };
  // One letter as the browse hands it to its visitor.
  struct Letter {
    std::string id;
    const amqp_basic_properties_t* props = nullptr;
    std::string_view body;
  };
  struct BrowseResult {
    size_t seen = 0;
    bool complete = true;  // the queue ran empty before kMaxBrowse
    std::vector<std::string> retried, deleted;
  };

  Result<AmqpConnection*> Connection();
  // Drops the connection (the next call connects again) and returns `s`.
  Status Fail(Status s);
  Result<QueueDepth> ReadDepth(const SourceOptions& queue);
  // Browses the queue's dead letters, oldest first.
  Result<BrowseResult> Browse(const SourceOptions& queue,
                              const std::function<Action(const Letter&)>& visit);
  // One attempt of Browse; `took` is set once a letter was taken.
  Result<BrowseResult> BrowseOnce(const SourceOptions& queue,
                                  const std::function<Action(const Letter&)>& visit, bool* took);
  // Publishes the retry copy of `letter` to the queue and waits for the
  // confirm; Ok when the broker took it.
  Status PublishRetry(const std::string& queue, const Letter& letter);

  RabbitMqBackendOptions options_;
  InspectorOptions inspector_;
  std::unique_ptr<AmqpConnection> conn_;
  uint64_t next_publish_seq_ = 1;
};

}  // namespace foxworker

#endif  // FOXWORKER_BACKENDS_RABBITMQ_RABBITMQ_INSPECTOR_H_
