// A minimal AMQP client on librabbitmq-c for the RabbitMQ tests: declare,
// publish with confirms, get, count, purge and delete queues. Blocking;
// failures are reported with gtest ADD_FAILURE and make the call return false.
#ifndef FOXWORKER_TESTS_BACKENDS_RABBITMQ_TEST_CLIENT_H_
#define FOXWORKER_TESTS_BACKENDS_RABBITMQ_TEST_CLIENT_H_

#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>
#include <gtest/gtest.h>

#include <optional>
#include <string>

namespace foxworker::testing {

struct ReceivedMessage {
  std::string body;
  amqp_message_t raw;  // properties valid until the client's next call
};

class AmqpTestClient {
 public:
  explicit AmqpTestClient(const std::string& url) {
    std::string buffer = url;
    amqp_connection_info info;
    amqp_parse_url(buffer.data(), &info);
    conn_ = amqp_new_connection();
    amqp_socket_t* socket = amqp_tcp_socket_new(conn_);
    if (amqp_socket_open(socket, info.host, info.port) != AMQP_STATUS_OK) {
      ADD_FAILURE() << "test client: cannot connect to " << info.host << ":" << info.port;
      return;
    }
    if (!Ok(amqp_login(conn_, info.vhost, 0, AMQP_DEFAULT_FRAME_SIZE, 0, AMQP_SASL_METHOD_PLAIN,
                       info.user, info.password),
            "login"))
      return;
    amqp_channel_open(conn_, 1);
    if (!Ok(amqp_get_rpc_reply(conn_), "channel.open")) return;
    amqp_confirm_select(conn_, 1);
    ok_ = Ok(amqp_get_rpc_reply(conn_), "confirm.select");
  }
  ~AmqpTestClient() {
    if (have_message_) amqp_destroy_message(&last_.raw);  // the last Get()'s message
    if (ok_) {
      amqp_channel_close(conn_, 1, AMQP_REPLY_SUCCESS);
      amqp_connection_close(conn_, AMQP_REPLY_SUCCESS);
    }
    amqp_destroy_connection(conn_);
  }
  bool ok() const { return ok_; }

  // Declares a durable queue of `type` ("quorum" or "classic").
  bool Declare(const std::string& queue, const std::string& type = "quorum") {
    amqp_table_entry_t e;
    e.key = amqp_cstring_bytes("x-queue-type");
    e.value.kind = AMQP_FIELD_KIND_UTF8;
    e.value.value.bytes = amqp_cstring_bytes(type.c_str());
    amqp_table_t args = {1, &e};
    amqp_queue_declare(conn_, 1, amqp_cstring_bytes(queue.c_str()), 0, 1, 0, 0, args);
    return Ok(amqp_get_rpc_reply(conn_), "queue.declare");
  }

  // Deletes the queue and the queues the backend derives from it with the
  // default names ({queue}-dlq, {queue}-retry-{tier} for the ladder steps
  // and the tiers the tests' policies use).
  void DeleteWithDerived(const std::string& queue) {
    const char* suffixes[] = {"",          "-dlq",         "-retry-100ms", "-retry-250ms",
                              "-retry-500ms", "-retry-1s",  "-retry-2s",    "-retry-5s",
                              "-retry-10s", "-retry-15s",   "-retry-30s",   "-retry-1m",
                              "-retry-2m",  "-retry-5m",    "-retry-10m",   "-retry-15m",
                              "-retry-30m", "-retry-1h",    "-retry-2h",    "-retry-4h",
                              "-retry-8h",  "-retry-12h",   "-retry-1d"};
    for (const char* s : suffixes) Delete(queue + s);
  }

  void Delete(const std::string& queue) {
    amqp_queue_delete(conn_, 1, amqp_cstring_bytes(queue.c_str()), 0, 0);
    Ok(amqp_get_rpc_reply(conn_), "queue.delete");
  }

  // Declares a durable exchange of `type` ("fanout", "direct", ...).
  bool DeclareExchange(const std::string& exchange, const std::string& type) {
    amqp_exchange_declare(conn_, 1, amqp_cstring_bytes(exchange.c_str()),
                          amqp_cstring_bytes(type.c_str()), 0, 1, 0, 0, amqp_empty_table);
    return Ok(amqp_get_rpc_reply(conn_), "exchange.declare");
  }

  bool Bind(const std::string& queue, const std::string& exchange,
            const std::string& routing_key) {
    amqp_queue_bind(conn_, 1, amqp_cstring_bytes(queue.c_str()),
                    amqp_cstring_bytes(exchange.c_str()), amqp_cstring_bytes(routing_key.c_str()),
                    amqp_empty_table);
    return Ok(amqp_get_rpc_reply(conn_), "queue.bind");
  }

  void DeleteExchange(const std::string& exchange) {
    amqp_exchange_delete(conn_, 1, amqp_cstring_bytes(exchange.c_str()), 0);
    Ok(amqp_get_rpc_reply(conn_), "queue.delete");  // a missing exchange is fine too
  }

  // Publishes to `exchange` with `routing_key` and waits for the confirm.
  bool PublishToExchange(const std::string& exchange, const std::string& routing_key,
                         const std::string& body, const amqp_basic_properties_t& props) {
    amqp_bytes_t b;
    b.len = body.size();
    b.bytes = const_cast<char*>(body.data());
    if (amqp_basic_publish(conn_, 1, amqp_cstring_bytes(exchange.c_str()),
                           amqp_cstring_bytes(routing_key.c_str()), 0, 0, &props,
                           b) != AMQP_STATUS_OK) {
      ADD_FAILURE() << "test client: publish to exchange " << exchange << " failed";
      return false;
    }
    ++unconfirmed_;
    return WaitConfirms();
  }

  // Publishes to `queue` through the default exchange and waits for the
  // confirm.
  bool Publish(const std::string& queue, const std::string& body,
               const amqp_basic_properties_t* props = nullptr) {
    amqp_basic_properties_t p;
    if (props == nullptr) {
      p._flags = AMQP_BASIC_DELIVERY_MODE_FLAG;
      p.delivery_mode = AMQP_DELIVERY_PERSISTENT;
      props = &p;
    }
    amqp_bytes_t b;
    b.len = body.size();
    b.bytes = const_cast<char*>(body.data());
    if (amqp_basic_publish(conn_, 1, amqp_empty_bytes, amqp_cstring_bytes(queue.c_str()), 0, 0,
                           props, b) != AMQP_STATUS_OK) {
      ADD_FAILURE() << "test client: publish failed";
      return false;
    }
    ++unconfirmed_;
    return WaitConfirms();
  }

  // Publishes without waiting; WaitConfirms() waits for all.
  bool PublishAsync(const std::string& queue, const std::string& body,
                    const amqp_basic_properties_t& props) {
    amqp_bytes_t b;
    b.len = body.size();
    b.bytes = const_cast<char*>(body.data());
    if (amqp_basic_publish(conn_, 1, amqp_empty_bytes, amqp_cstring_bytes(queue.c_str()), 0, 0,
                           &props, b) != AMQP_STATUS_OK)
      return false;
    ++unconfirmed_;
    return true;
  }

  bool WaitConfirms() {
    while (unconfirmed_ > 0) {
      amqp_frame_t frame;
      timeval tv{30, 0};
      if (amqp_simple_wait_frame_noblock(conn_, &frame, &tv) != AMQP_STATUS_OK) {
        ADD_FAILURE() << "test client: no confirm";
        return false;
      }
      if (frame.frame_type != AMQP_FRAME_METHOD) continue;
      if (frame.payload.method.id == AMQP_BASIC_ACK_METHOD) {
        auto* a = static_cast<amqp_basic_ack_t*>(frame.payload.method.decoded);
        uint64_t n = a->multiple ? a->delivery_tag - confirmed_ : 1;
        confirmed_ += n;
        unconfirmed_ -= n;
      } else if (frame.payload.method.id == AMQP_BASIC_NACK_METHOD) {
        ADD_FAILURE() << "test client: publish nacked";
        return false;
      }
      amqp_maybe_release_buffers(conn_);
    }
    return true;
  }

  // basic.get with auto-ack; nullopt when the queue is empty.
  std::optional<ReceivedMessage> Get(const std::string& queue) {
    if (have_message_) {
      amqp_destroy_message(&last_.raw);
      have_message_ = false;
    }
    amqp_maybe_release_buffers(conn_);
    amqp_rpc_reply_t r = amqp_basic_get(conn_, 1, amqp_cstring_bytes(queue.c_str()), 1);
    if (!Ok(r, "basic.get")) return std::nullopt;
    if (r.reply.id == AMQP_BASIC_GET_EMPTY_METHOD) return std::nullopt;
    r = amqp_read_message(conn_, 1, &last_.raw, 0);
    if (!Ok(r, "read message")) return std::nullopt;
    have_message_ = true;
    last_.body.assign(static_cast<const char*>(last_.raw.body.bytes), last_.raw.body.len);
    return last_;
  }

  // Ready messages in `queue` (-1 on error).
  int64_t Count(const std::string& queue) {
    amqp_queue_declare_ok_t* ok =
        amqp_queue_declare(conn_, 1, amqp_cstring_bytes(queue.c_str()), 1, 0, 0, 0, amqp_empty_table);
    if (!Ok(amqp_get_rpc_reply(conn_), "passive queue.declare")) return -1;
    return ok->message_count;
  }

  void Purge(const std::string& queue) {
    amqp_queue_purge(conn_, 1, amqp_cstring_bytes(queue.c_str()));
    Ok(amqp_get_rpc_reply(conn_), "queue.purge");
  }

 private:
  bool Ok(amqp_rpc_reply_t r, const char* what) {
    if (r.reply_type == AMQP_RESPONSE_NORMAL) return true;
    if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION && r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
      auto* c = static_cast<amqp_channel_close_t*>(r.reply.decoded);
      // A 404 on delete or passive declare is expected: reopen the channel.
      if (c->reply_code == AMQP_NOT_FOUND) {
        amqp_channel_close_ok_t close_ok;
        amqp_send_method(conn_, 1, AMQP_CHANNEL_CLOSE_OK_METHOD, &close_ok);
        amqp_channel_open(conn_, 1);
        amqp_get_rpc_reply(conn_);
        amqp_confirm_select(conn_, 1);
        amqp_get_rpc_reply(conn_);
        confirmed_ = 0;
        unconfirmed_ = 0;
        return std::string(what) == "queue.delete";
      }
      ADD_FAILURE() << "test client: " << what << ": channel closed "
                    << c->reply_code << " "
                    << std::string(static_cast<char*>(c->reply_text.bytes), c->reply_text.len);
      return false;
    }
    ADD_FAILURE() << "test client: " << what << " failed (reply type " << r.reply_type
                  << ", library error " << amqp_error_string2(r.library_error) << ")";
    return false;
  }

  amqp_connection_state_t conn_;
  bool ok_ = false;
  uint64_t unconfirmed_ = 0, confirmed_ = 0;
  ReceivedMessage last_;
  bool have_message_ = false;
};

}  // namespace foxworker::testing

#endif  // FOXWORKER_TESTS_BACKENDS_RABBITMQ_TEST_CLIENT_H_
