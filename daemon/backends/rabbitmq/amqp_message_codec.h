// Conversions between AMQP basic properties (librabbitmq-c) and the daemon's
// backend-neutral Message, and the owned copy of a delivery's properties that
// retry and dead-letter copies are published with.
//
// Not thread-safe: used on the backend's connection thread only.
#ifndef FOXWORKER_BACKENDS_RABBITMQ_AMQP_MESSAGE_CODEC_H_
#define FOXWORKER_BACKENDS_RABBITMQ_AMQP_MESSAGE_CODEC_H_

#include <amqp.h>
#include <amqp_framing.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/config/config.h"
#include "daemon/core/message.h"

namespace foxworker {

inline constexpr char kHeaderRetryAttempt[] = "x-retry-attempt";
inline constexpr char kHeaderDeliveryCount[] = "x-delivery-count";  // set by quorum queues
inline constexpr char kHeaderOriginalRoutingKey[] = "x-original-routing-key";
inline constexpr char kHeaderOriginalExchange[] = "x-original-exchange";
// The producer's `expiration`, carried by a retry copy while it waits in a
// retry queue (whose per-message TTL is the retry delay); the plugin sees it
// as the expiration, and a copy published to a queue where it could expire
// again (the work queue, the dead-letter queue) gets it back as `expiration`.
inline constexpr char kHeaderOriginalExpiration[] = "x-original-expiration";
// The producer's `user_id` when it is not the user the daemon logged in as:
// RabbitMQ refuses a publish whose user_id is not the connection's user
// (PRECONDITION_FAILED, which closes the channel), so the backend's copies
// carry it here instead, and the plugin still sees it as the user id.
inline constexpr char kHeaderOriginalUserId[] = "x-original-user-id";

std::string BytesToString(amqp_bytes_t bytes);

// A header value as the plugin sees it: strings and byte arrays as they are,
// numbers in decimal (decimals signed and exact, "-3.14"; a float that is
// not finite as NaN, Infinity or -Infinity), booleans as true/false,
// timestamps as Unix seconds, void as "", and tables and arrays as JSON
// (nested values the same way, typed as JSON allows; a float that is not
// finite is the JSON string "NaN", "Infinity" or "-Infinity"). Inside JSON a
// string or byte array is a JSON string when it is well-formed UTF-8, else
// {"$bytes":"<base64>"}; a table key that is not UTF-8 has its bad bytes
// replaced by U+FFFD. The JSON therefore always parses.
std::string FieldValueToString(const amqp_field_value_t& value);

// The string basic properties, in wire order, with their flags: copies,
// frame sizes and derived ids walk this one table.
struct AmqpStringProperty {
  amqp_flags_t flag;
  amqp_bytes_t amqp_basic_properties_t::*field;
};
inline constexpr AmqpStringProperty kAmqpStringProperties[] = {
    {AMQP_BASIC_CONTENT_TYPE_FLAG, &amqp_basic_properties_t::content_type},
    {AMQP_BASIC_CONTENT_ENCODING_FLAG, &amqp_basic_properties_t::content_encoding},
    {AMQP_BASIC_CORRELATION_ID_FLAG, &amqp_basic_properties_t::correlation_id},
    {AMQP_BASIC_REPLY_TO_FLAG, &amqp_basic_properties_t::reply_to},
    {AMQP_BASIC_EXPIRATION_FLAG, &amqp_basic_properties_t::expiration},
    {AMQP_BASIC_MESSAGE_ID_FLAG, &amqp_basic_properties_t::message_id},
    {AMQP_BASIC_TYPE_FLAG, &amqp_basic_properties_t::type},
    {AMQP_BASIC_USER_ID_FLAG, &amqp_basic_properties_t::user_id},
    {AMQP_BASIC_APP_ID_FLAG, &amqp_basic_properties_t::app_id},
    {AMQP_BASIC_CLUSTER_ID_FLAG, &amqp_basic_properties_t::cluster_id},
};

// A deep copy of `from` in `pool`, every field with its AMQP type; unlike
// amqp_table_clone, an empty key (which the wire allows) is copied too.
void CloneTable(const amqp_table_t& from, amqp_pool_t* pool, amqp_table_t* to);

// The type `value` was sent with, as plugins see it (foxw_header_type).
HeaderType FieldValueType(const amqp_field_value_t& value);

// Fills `out` (properties, headers; enqueued_at from the timestamp property
// when set, else from an x-first-seen-at header a retry copy carries; the
// expiration from x-original-expiration and the user id from
// x-original-user-id when the property is absent) from
// `props`. Properties `props` does not have are cleared, so
// `out` may be a reused message.
void DecodeProperties(const amqp_basic_properties_t& props, Message* out);

// Whether the Message DecodeProperties fills keeps everything a copy needs
// (with the flags and delivery mode): no headers (whose AMQP types it does
// not keep), no cluster id, a timestamp within its range.
bool MessageKeepsProperties(const amqp_basic_properties_t& props);

// The attempt number of a delivery: x-retry-attempt (1 when absent) plus the
// deliveries a quorum queue counted before this one (x-delivery-count).
uint32_t AttemptFromHeaders(const amqp_basic_properties_t& props);

// A deep copy of a delivery's properties in its own pool, with header edits
// for the copies the backend publishes. Every field keeps its AMQP type.
class OwnedProperties {
 public:
  explicit OwnedProperties(const amqp_basic_properties_t& original);
  // Builds properties from a backend-neutral message (Backend::Enqueue);
  // headers become strings.
  explicit OwnedProperties(const Message& message);
  // Rebuilds the properties DecodeProperties took apart: the flagged fields
  // of `flags` from `p`. REQUIRES: MessageKeepsProperties held for them.
  OwnedProperties(const Properties& p, amqp_flags_t flags, uint8_t delivery_mode);
  ~OwnedProperties();
  OwnedProperties(const OwnedProperties&) = delete;
  OwnedProperties& operator=(const OwnedProperties&) = delete;

  void SetString(std::string_view name, std::string_view value);
  void SetInt(std::string_view name, int64_t value);
  void Remove(std::string_view name);
  void SetMessageId(std::string_view id);
  void SetPersistent();
  // The per-message TTL (`expiration`, milliseconds as text).
  void SetExpiration(Duration ttl);
  void SetExpiration(std::string_view text);
  void ClearExpiration();
  // The `expiration` property, when set.
  std::optional<std::string_view> Expiration() const;
  // Moves a `user_id` other than `login_user` (the connection's, which the
  // broker requires) into the header x-original-user-id (kept when already
  // there), so the publish is not refused.
  void KeepForeignUserId(std::string_view login_user);
  // The header `name` when present and a string or byte array.
  std::optional<std::string_view> HeaderText(std::string_view name) const;
  bool HasHeader(std::string_view name) const;

  // The size in bytes of the content header frame these properties make
  // (frame header and end octet included), as librabbitmq-c encodes it: a
  // publish whose header frame exceeds the connection's frame_max fails
  // after its method frame went out, which breaks the connection.
  size_t HeaderFrameSize() const;
  // Removes headers whose names are not in `keep`, largest first, until
  // HeaderFrameSize() <= frame_max (or none is left to remove). Returns what
  // was cut, e.g. "big (130952 bytes), x-death (310 bytes)" (at most ten
  // names, then how many more), empty when nothing was.
  std::string CutHeadersToFit(size_t frame_max, const std::vector<std::string_view>& keep);

  const amqp_basic_properties_t& props() const { return props_; }

 private:
  void Set(std::string_view name, const amqp_field_value_t& value);
  amqp_bytes_t Dup(std::string_view text);

  amqp_pool_t pool_;
  amqp_basic_properties_t props_;
};

}  // namespace foxworker

#endif  // FOXWORKER_BACKENDS_RABBITMQ_AMQP_MESSAGE_CODEC_H_
