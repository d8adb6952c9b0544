#include "daemon/backends/redis/redis_codec.h"

#include <algorithm>
#include <charconv>
#include <string_view>

namespace foxworker {
namespace {

bool ParseInt(std::string_view text, int64_t* out) {
  if (text.empty()) return false;
  // The common case, every entry id's milliseconds: a few plain digits.
  if (text.size() <= 18 && text[0] != '-') {
    int64_t v = 0;
    for (char c : text) {
      if (c < '0' || c > '9') return false;
      v = v * 10 + (c - '0');
    }
    *out = v;
    return true;
  }
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && end == text.data() + text.size();
}

// The string Properties by field name; nullptr when not one of them.
std::string* StringProperty(Properties& p, std::string_view name) {
  if (name == "content_type") return &p.content_type;
  if (name == "content_encoding") return &p.content_encoding;
  if (name == "message_type" || name == "type") return &p.message_type;
  if (name == "correlation_id") return &p.correlation_id;
  if (name == "reply_to") return &p.reply_to;
  if (name == "app_id") return &p.app_id;
  if (name == "user_id") return &p.user_id;
  if (name == "expiration") return &p.expiration;
  if (name == "message_id") return &p.message_id;
  return nullptr;
}

}  // namespace

int64_t EntryIdMs(const std::string& id) {
  int64_t ms = 0;
  std::string_view text(id);
  return ParseInt(text.substr(0, text.find('-')), &ms) ? ms : 0;
}

Message DecodeEntry(const std::string& id, const redisReply* fields,
                    const std::string& payload_field, uint32_t delivery_count) {
  Message m;
  DecodeEntryInto(id, fields, payload_field, delivery_count, &m);
  return m;
}

void DecodeEntryInto(std::string_view id, const redisReply* fields,
                     const std::string& payload_field, uint32_t delivery_count, Message* m) {
  m->id.assign(id);
  m->payload.clear();
  Properties& p = m->props;
  for (std::string* s : {&p.content_type, &p.content_encoding, &p.message_type,
                         &p.correlation_id, &p.reply_to, &p.app_id, &p.user_id, &p.expiration,
                         &p.message_id}) {
    s->clear();
  }
  p.priority = 0;
  p.timestamp_ms = 0;
  p.priority_set = false;
  p.sent_priority = 0;
  p.timestamp_set = false;
  m->headers.clear();
  m->header_types.clear();
  int64_t ms = 0;
  m->enqueued_at_ms = ParseInt(id.substr(0, id.find('-')), &ms) ? ms : 0;
  int64_t first_attempt = 1;
  bool copy_attempt = false;  // x-attempt seen: it wins over attempt
  bool original_id = false;   // x-original-id seen: the message id
  if (fields != nullptr && fields->type == REDIS_REPLY_ARRAY) {
    for (size_t i = 0; i + 1 < fields->elements; i += 2) {
      const redisReply* k = fields->element[i];
      const redisReply* v = fields->element[i + 1];
      if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) continue;
      std::string_view name(k->str, k->len);
      std::string_view value(v->str, v->len);
      int64_t number = 0;
      if (name == payload_field) {
        m->payload.assign(value);
      } else if (std::string* prop = StringProperty(p, name)) {
        prop->assign(value);
      } else if (name == "priority" && ParseInt(value, &number)) {
        p.priority = static_cast<uint8_t>(std::clamp<int64_t>(number, 0, 255));
        p.priority_set = true;
        p.sent_priority = number;
      } else if (name == "timestamp" && ParseInt(value, &number)) {
        p.timestamp_ms = number;
        p.timestamp_set = true;
      } else if (name == kCopyAttemptField && ParseInt(value, &number)) {
        if (!copy_attempt) first_attempt = std::clamp<int64_t>(number, 1, UINT32_MAX / 2);
        copy_attempt = true;
      } else if (name == kAttemptField && ParseInt(value, &number)) {
        if (!copy_attempt) first_attempt = std::clamp<int64_t>(number, 1, UINT32_MAX / 2);
      } else {
        if (name == kOriginalIdField && !original_id && !value.empty()) {
          // A copy: the message's id and enqueued time are its first entry's.
          original_id = true;
          m->id.assign(value);
          if (ParseInt(value.substr(0, value.find('-')), &number)) m->enqueued_at_ms = number;
        }
        m->headers.emplace_back(std::string(name), std::string(value));
      }
    }
  }
  m->attempt = static_cast<uint32_t>(first_attempt) + std::max<uint32_t>(delivery_count, 1) - 1;
}

std::vector<std::string> EncodeMessage(const Message& m, const std::string& payload_field,
                                       uint32_t attempt) {
  std::vector<std::string> f;
  f.reserve(4 + 2 * m.headers.size());
  auto add = [&f](std::string_view name, const std::string& value) {
    if (value.empty()) return;
    f.emplace_back(name);
    f.push_back(value);
  };
  f.push_back(payload_field);
  f.push_back(m.payload);
  const Properties& p = m.props;
  add("content_type", p.content_type);
  add("content_encoding", p.content_encoding);
  add("message_type", p.message_type);
  add("correlation_id", p.correlation_id);
  add("reply_to", p.reply_to);
  add("app_id", p.app_id);
  add("user_id", p.user_id);
  add("expiration", p.expiration);
  add("message_id", p.message_id);
  if (p.priority != 0) add("priority", std::to_string(p.priority));
  if (p.timestamp_ms != 0) add("timestamp", std::to_string(p.timestamp_ms));
  if (attempt > 1) add(kAttemptField, std::to_string(attempt));
  for (const auto& [k, v] : m.headers) {
    f.push_back(k);
    f.push_back(v);
  }
  return f;
}

}  // namespace foxworker
