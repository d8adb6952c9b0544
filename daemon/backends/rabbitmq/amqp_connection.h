// AmqpConnection: one librabbitmq-c connection with one channel in
// publisher-confirm mode, opened from the backend's options.
//
// Not thread-safe: a connection is used by the backend's connection thread
// only.
#ifndef FOXWORKER_BACKENDS_RABBITMQ_AMQP_CONNECTION_H_
#define FOXWORKER_BACKENDS_RABBITMQ_AMQP_CONNECTION_H_

#include <amqp.h>
#include <amqp_framing.h>

#include <memory>
#include <string>

#include "daemon/backends/rabbitmq/rabbitmq_config.h"
#include "daemon/base/status.h"

namespace foxworker {

inline constexpr amqp_channel_t kAmqpChannel = 1;

// A readable description of an RPC reply that is not normal ("" when it is).
std::string AmqpReplyError(const amqp_rpc_reply_t& reply);

// True for broker errors that reconnecting will not fix by itself (bad
// credentials, missing vhost, a queue declared with other arguments).
bool IsPermanentAmqpError(const amqp_rpc_reply_t& reply);

class AmqpConnection {
 public:
  // Connects, logs in, opens channel 1 and turns on publisher confirms.
  // `permanent` (when not null) is set when the failure is one reconnecting
  // will not fix.
  static Result<std::unique_ptr<AmqpConnection>> Open(const RabbitMqBackendOptions& options,
                                                      Duration timeout, bool* permanent);
  ~AmqpConnection();
  AmqpConnection(const AmqpConnection&) = delete;
  AmqpConnection& operator=(const AmqpConnection&) = delete;

  amqp_connection_state_t state() const { return state_; }
  int fd() const;

  // queue.declare with `arguments`; `passive` only checks that the queue
  // exists. Returns the queue's ready message count.
  Result<uint32_t> DeclareQueue(const std::string& name, const amqp_table_t& arguments,
                                bool passive, bool durable = true);

  // exchange.declare (not passive, not internal).
  Status DeclareExchange(const std::string& name, const std::string& type, bool durable,
                         bool auto_delete, const amqp_table_t& arguments);

  // queue.bind.
  Status BindQueue(const std::string& queue, const std::string& exchange,
                   const std::string& routing_key, const amqp_table_t& arguments);

  // Closes channel and connection politely (bounded by the heartbeat or the
  // socket's timeouts). Idempotent.
  void Close();

  // Turns the last RPC reply into a Status: Ok when normal, InvalidArgument
  // for a permanent error, else Unavailable.
  Status CheckReply(const char* what);

 private:
  AmqpConnection() = default;
  amqp_connection_state_t state_ = nullptr;
  bool closed_ = false;
};

}  // namespace foxworker

#endif  // FOXWORKER_BACKENDS_RABBITMQ_AMQP_CONNECTION_H_
