// Payload validation: the consumer's check, before any middleware or
// handler, that a payload parses as its content type declares.
#ifndef FOXWORKER_CORE_PAYLOAD_VALIDATION_H_
#define FOXWORKER_CORE_PAYLOAD_VALIDATION_H_

#include <optional>

#include "daemon/core/message.h"
#include "daemon/core/outcome.h"

namespace foxworker {

// A reject with the parse error as the reason when the content type is
// application/json or */*+json and the payload is not valid JSON; nullopt
// otherwise (other content types are not checked).
std::optional<Outcome> ValidatePayload(const Delivery& d);

}  // namespace foxworker

#endif  // FOXWORKER_CORE_PAYLOAD_VALIDATION_H_
