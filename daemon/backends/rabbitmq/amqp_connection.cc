#include "daemon/backends/rabbitmq/amqp_connection.h"

#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#include <sys/time.h>

#include <vector>

namespace foxworker {
namespace {

std::string MethodError(const amqp_rpc_reply_t& reply) {
  if (reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
    auto* m = static_cast<amqp_connection_close_t*>(reply.reply.decoded);
    return "broker closed the connection: " + std::to_string(m->reply_code) + " " +
           std::string(static_cast<const char*>(m->reply_text.bytes), m->reply_text.len);
  }
  if (reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
    auto* m = static_cast<amqp_channel_close_t*>(reply.reply.decoded);
    return "broker closed the channel: " + std::to_string(m->reply_code) + " " +
           std::string(static_cast<const char*>(m->reply_text.bytes), m->reply_text.len);
  }
  return "unexpected broker method " + std::to_string(reply.reply.id);
}

timeval ToTimeval(Duration d) {
  timeval tv;
  tv.tv_sec = static_cast<time_t>(d.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((d.count() % 1000) * 1000);
  return tv;
}

}  // namespace

std::string AmqpReplyError(const amqp_rpc_reply_t& reply) {
  switch (reply.reply_type) {
    case AMQP_RESPONSE_NORMAL: return "";
    case AMQP_RESPONSE_NONE: return "no reply from the broker";
    case AMQP_RESPONSE_LIBRARY_EXCEPTION: return amqp_error_string2(reply.library_error);
    case AMQP_RESPONSE_SERVER_EXCEPTION: return MethodError(reply);
  }
  return "unknown reply";
}

bool IsPermanentAmqpError(const amqp_rpc_reply_t& reply) {
  if (reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION)
    return reply.library_error == AMQP_STATUS_SSL_PEER_VERIFY_FAILED;
  if (reply.reply_type != AMQP_RESPONSE_SERVER_EXCEPTION) return false;
  int code = 0;
  if (reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD)
    code = static_cast<amqp_connection_close_t*>(reply.reply.decoded)->reply_code;
  else if (reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD)
    code = static_cast<amqp_channel_close_t*>(reply.reply.decoded)->reply_code;
  return code == AMQP_ACCESS_REFUSED || code == AMQP_NOT_ALLOWED ||
         code == AMQP_PRECONDITION_FAILED;
}

Result<std::unique_ptr<AmqpConnection>> AmqpConnection::Open(
    const RabbitMqBackendOptions& options, Duration timeout, bool* permanent) {
  bool ignored = false;
  if (permanent == nullptr) permanent = &ignored;
  *permanent = false;
  std::string url_buffer = options.url;
  amqp_connection_info info;
  amqp_default_connection_info(&info);
  if (amqp_parse_url(url_buffer.data(), &info) != AMQP_STATUS_OK) {
    *permanent = true;
    return Status::InvalidArgument("invalid AMQP URL " + RedactUrl(options.url));
  }
  std::unique_ptr<AmqpConnection> c(new AmqpConnection());
  c->state_ = amqp_new_connection();
  if (c->state_ == nullptr) return Status::Internal("amqp_new_connection failed");
  amqp_socket_t* socket = nullptr;
  if (info.ssl) {
    socket = amqp_ssl_socket_new(c->state_);
    if (socket == nullptr) return Status::Internal("cannot create a TLS socket");
    amqp_ssl_socket_set_verify_peer(socket, options.tls.verify ? 1 : 0);
    amqp_ssl_socket_set_verify_hostname(socket, options.tls.verify ? 1 : 0);
    if (!options.tls.ca.empty() && amqp_ssl_socket_set_cacert(socket, options.tls.ca.c_str()) != 0) {
      *permanent = true;
      return Status::InvalidArgument("cannot read the TLS CA file " + options.tls.ca);
    }
    if (!options.tls.cert.empty() &&
        amqp_ssl_socket_set_key(socket, options.tls.cert.c_str(), options.tls.key.c_str()) != 0) {
      *permanent = true;
      return Status::InvalidArgument("cannot read the TLS client certificate " + options.tls.cert +
                                     " or key " + options.tls.key);
    }
  } else {
    socket = amqp_tcp_socket_new(c->state_);
    if (socket == nullptr) return Status::Internal("cannot create a TCP socket");
  }
  const std::string where = std::string(info.host) + ":" + std::to_string(info.port);
  timeval tv = ToTimeval(timeout);
  int rc = amqp_socket_open_noblock(socket, info.host, info.port, &tv);
  if (rc != AMQP_STATUS_OK) {
    *permanent = rc == AMQP_STATUS_SSL_PEER_VERIFY_FAILED;
    return Status::Unavailable("cannot connect to " + where + ": " + amqp_error_string2(rc));
  }
  amqp_set_handshake_timeout(c->state_, &tv);
  amqp_set_rpc_timeout(c->state_, &tv);

  amqp_table_entry_t props[1];
  props[0].key = amqp_cstring_bytes("connection_name");
  props[0].value.kind = AMQP_FIELD_KIND_UTF8;
  props[0].value.value.bytes = amqp_cstring_bytes(options.connection_name.c_str());
  amqp_table_t client_properties = {1, props};
  const int heartbeat_s = static_cast<int>(options.heartbeat.count() / 1000);
  amqp_rpc_reply_t login = amqp_login_with_properties(
      c->state_, info.vhost, 0, AMQP_DEFAULT_FRAME_SIZE, heartbeat_s, &client_properties,
      AMQP_SASL_METHOD_PLAIN, info.user, info.password);
  if (login.reply_type != AMQP_RESPONSE_NORMAL) {
    *permanent = IsPermanentAmqpError(login) ||
                 (login.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
                  login.library_error == AMQP_STATUS_CONNECTION_CLOSED);
    std::string why = AmqpReplyError(login);
    if (login.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
        login.library_error == AMQP_STATUS_CONNECTION_CLOSED)
      why += " (the broker refused the login: check the user, password and vhost)";
    // With TLS, a broker that wants a client certificate (or refuses ours)
    // ends the handshake on the first read, which librabbitmq reports as a
    // bare SSL error.
    if (info.ssl && login.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
        login.library_error == AMQP_STATUS_SSL_ERROR)
      why += options.tls.cert.empty()
                 ? " (the broker ended the TLS handshake: it may require a client certificate, "
                   "tls.cert and tls.key)"
                 : " (the broker ended the TLS handshake: it may not trust the client "
                   "certificate " + options.tls.cert + ")";
    return Status::Unavailable("login to " + where + " failed: " + why);
  }
  amqp_channel_open(c->state_, kAmqpChannel);
  Status s = c->CheckReply("channel.open");
  if (!s.ok()) return s;
  amqp_confirm_select(c->state_, kAmqpChannel);
  s = c->CheckReply("confirm.select");
  if (!s.ok()) return s;
  return c;
}

AmqpConnection::~AmqpConnection() {
  if (state_ != nullptr) amqp_destroy_connection(state_);
}

int AmqpConnection::fd() const { return amqp_socket_get_sockfd(amqp_get_socket(state_)); }

Status AmqpConnection::CheckReply(const char* what) {
  amqp_rpc_reply_t reply = amqp_get_rpc_reply(state_);
  if (reply.reply_type == AMQP_RESPONSE_NORMAL) return Status::Ok();
  std::string text = std::string(what) + ": " + AmqpReplyError(reply);
  if (IsPermanentAmqpError(reply)) return Status::InvalidArgument(text);
  return Status::Unavailable(text);
}

Result<uint32_t> AmqpConnection::DeclareQueue(const std::string& name,
                                              const amqp_table_t& arguments, bool passive,
                                              bool durable) {
  amqp_queue_declare_ok_t* ok =
      amqp_queue_declare(state_, kAmqpChannel, amqp_cstring_bytes(name.c_str()), passive ? 1 : 0,
                         durable ? 1 : 0, /*exclusive=*/0, /*auto_delete=*/0, arguments);
  Status s = CheckReply(("queue.declare " + name).c_str());
  if (!s.ok()) return s;
  return ok->message_count;
}

Status AmqpConnection::DeclareExchange(const std::string& name, const std::string& type,
                                       bool durable, bool auto_delete,
                                       const amqp_table_t& arguments) {
  amqp_exchange_declare(state_, kAmqpChannel, amqp_cstring_bytes(name.c_str()),
                        amqp_cstring_bytes(type.c_str()), /*passive=*/0, durable ? 1 : 0,
                        auto_delete ? 1 : 0, /*internal=*/0, arguments);
  return CheckReply(("exchange.declare " + name).c_str());
}

Status AmqpConnection::BindQueue(const std::string& queue, const std::string& exchange,
                                 const std::string& routing_key, const amqp_table_t& arguments) {
  amqp_queue_bind(state_, kAmqpChannel, amqp_cstring_bytes(queue.c_str()),
                  amqp_cstring_bytes(exchange.c_str()), amqp_cstring_bytes(routing_key.c_str()),
                  arguments);
  return CheckReply(("queue.bind " + queue + " to " + exchange + " (routing key \"" +
                     routing_key + "\")")
                        .c_str());
}

void AmqpConnection::Close() {
  if (closed_ || state_ == nullptr) return;
  closed_ = true;
  amqp_channel_close(state_, kAmqpChannel, AMQP_REPLY_SUCCESS);
  amqp_connection_close(state_, AMQP_REPLY_SUCCESS);
}

}  // namespace foxworker
