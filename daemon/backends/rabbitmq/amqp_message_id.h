// Message ids for AMQP messages the producer sent without a `message_id`
// (docs/backends/rabbitmq.md, "Message ids").
//
// Thread-compatible: no shared state.
#ifndef FOXWORKER_BACKENDS_RABBITMQ_AMQP_MESSAGE_ID_H_
#define FOXWORKER_BACKENDS_RABBITMQ_AMQP_MESSAGE_ID_H_

#include <amqp.h>
#include <amqp_framing.h>

#include <string>
#include <string_view>

namespace foxworker {

// "amqp-" and 32 hex digits of a 128-bit hash of the body, every property
// and every header but x-delivery-count (which a quorum queue adds on
// redelivery). A redelivery of the same message, in this run or another,
// gets the same id; two messages equal in all of these get the same id too.
// `scratch` is reused between calls (no allocation once it is large enough).
void ContentMessageId(const amqp_basic_properties_t& props, std::string_view body,
                      std::string* scratch, std::string* out);

// A random UUID (version 4, from getrandom), e.g.
// "0b6f8e0a-3c1d-4e2f-9a8b-7c6d5e4f3a2b".
std::string RandomMessageId();

}  // namespace foxworker

#endif  // FOXWORKER_BACKENDS_RABBITMQ_AMQP_MESSAGE_ID_H_
