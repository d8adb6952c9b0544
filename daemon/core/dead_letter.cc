#include "daemon/core/dead_letter.h"

#include <algorithm>

#include "daemon/base/clock.h"

namespace foxworker {
namespace {

void SetHeader(Headers& headers, const char* name, std::string value) {
  for (auto& [k, v] : headers) {
    if (k == name) {
      v = std::move(value);
      return;
    }
  }
  headers.emplace_back(name, std::move(value));
}

}  // namespace

Message MakeDeadLetterCopy(const Delivery& d, const std::string& reason, int64_t failed_at_ms) {
  Message m = d.msg;
  SetHeader(m.headers, kHeaderOriginalQueue, d.queue ? *d.queue : std::string());
  SetHeader(m.headers, kHeaderOriginalId, d.msg.id);
  SetHeader(m.headers, kHeaderMessageType, d.msg.props.message_type);
  SetHeader(m.headers, kHeaderFailureReason, reason);
  SetHeader(m.headers, kHeaderFinalAttempt, std::to_string(d.msg.attempt));
  if (d.msg.FindHeader(kHeaderFirstSeenAt) == nullptr && d.msg.enqueued_at_ms > 0)
    SetHeader(m.headers, kHeaderFirstSeenAt, FormatIso8601Utc(d.msg.enqueued_at_ms));
  SetHeader(m.headers, kHeaderFailedAt, FormatIso8601Utc(failed_at_ms));
  return m;
}

}  // namespace foxworker
