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
#include <string>
#include <string_view>

#include "daemon/config/config.h"
#include "daemon/core/message.h"

namespace foxworker {

inline constexpr char kHeaderRetryAttempt[] = "x-retry-attempt";
inline constexpr char kHeaderDeliveryCount[] = "x-delivery-count";  // set by quorum queues
inline constexpr char kHeaderOriginalRoutingKey[] = "x-original-routing-key";
inline constexpr char kHeaderOriginalExchange[] = "x-original-exchange";

std::string BytesToString(amqp_bytes_t bytes);

// A header value as the plugin sees it: strings and byte arrays as they are,
// numbers in decimal (decimals signed and exact, "-3.14"), booleans as
// true/false, timestamps as Unix seconds, void as "", and tables and arrays
// as JSON (nested values the same way, typed as JSON allows). Inside JSON a
// string or byte array is a JSON string when it is well-formed UTF-8, else
// {"$bytes":"<base64>"}; a table key that is not UTF-8 has its bad bytes
// replaced by U+FFFD. The JSON therefore always parses.
std::string FieldValueToString(const amqp_field_value_t& value);

// Fills `out` (properties, headers; enqueued_at from the timestamp property
// when set) from `props`. Properties `props` does not have are cleared, so
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

  const amqp_basic_properties_t& props() const { return props_; }

 private:
  void Set(std::string_view name, const amqp_field_value_t& value);
  amqp_bytes_t Dup(std::string_view text);

  amqp_pool_t pool_;
  amqp_basic_properties_t props_;
};

}  // namespace foxworker

#endif  // FOXWORKER_BACKENDS_RABBITMQ_AMQP_MESSAGE_CODEC_H_
