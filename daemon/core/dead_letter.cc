#include "daemon/core/dead_letter.h"

#include <utility>

#include "daemon/base/clock.h"

namespace foxworker {
namespace {

DeadLetterField String(const char* name, std::string_view text) {
  DeadLetterField f;
  f.name = name;
  f.type = DeadLetterField::Type::kString;
  f.text = text;
  return f;
}

DeadLetterField Number(const char* name, DeadLetterField::Type type, int64_t number) {
  DeadLetterField f;
  f.name = name;
  f.type = type;
  f.number = number;
  return f;
}

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

std::string DeadLetterField::ToText() const {
  switch (type) {
    case Type::kString:
      return std::string(text);
    case Type::kInteger:
      return std::to_string(number);
    case Type::kTimestamp:
      return FormatIso8601Utc(number);
  }
  return std::string();
}

const DeadLetterField* DeadLetterFields::Find(std::string_view name) const {
  for (const DeadLetterField& f : *this) {
    if (name == f.name) return &f;
  }
  return nullptr;
}

DeadLetterFields DeadLetterFieldsFor(const Delivery& d, std::string_view original_queue,
                                     std::string_view reason, int64_t failed_at_ms) {
  using Type = DeadLetterField::Type;
  DeadLetterFields fields;
  fields.Add(String(kHeaderOriginalQueue, original_queue));
  fields.Add(String(kHeaderOriginalId, d.msg.id));
  // An empty header would claim a type the message does not have.
  if (!d.msg.props.message_type.empty())
    fields.Add(String(kHeaderMessageType, d.msg.props.message_type));
  fields.Add(String(kHeaderFailureReason, reason));
  fields.Add(Number(kHeaderFinalAttempt, Type::kInteger, d.msg.attempt));
  // A copy dead-lettered again keeps the first time it was seen.
  if (d.msg.FindHeader(kHeaderFirstSeenAt) == nullptr && d.msg.enqueued_at_ms > 0)
    fields.Add(Number(kHeaderFirstSeenAt, Type::kTimestamp, d.msg.enqueued_at_ms));
  fields.Add(Number(kHeaderFailedAt, Type::kTimestamp, failed_at_ms));
  return fields;
}

Message MakeDeadLetterCopy(const Delivery& d, const std::string& reason, int64_t failed_at_ms) {
  Message m = d.msg;
  const std::string_view queue =
      d.queue != nullptr ? std::string_view(*d.queue) : std::string_view();
  for (const DeadLetterField& f : DeadLetterFieldsFor(d, queue, reason, failed_at_ms))
    SetHeader(m.headers, f.name, f.ToText());
  return m;
}

}  // namespace foxworker
