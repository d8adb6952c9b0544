#include "daemon/backends/rabbitmq/amqp_message_codec.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <iterator>

#include <glog/logging.h>

#include "daemon/base/base64.h"
#include "daemon/base/clock.h"
#include "daemon/core/dead_letter.h"

namespace foxworker {
namespace {

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

void WriteJson(const amqp_field_value_t& v, JsonWriter& w);

// The length of the well-formed UTF-8 sequence at the start of `s` (no
// overlong forms, no surrogates, nothing above U+10FFFF), or 0.
size_t Utf8SequenceLength(std::string_view s) {
  const auto b = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  const auto cont = [&](size_t i) { return i < s.size() && (b(i) & 0xC0) == 0x80; };
  const unsigned char c = b(0);
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (!cont(1) || !cont(2)) return 0;
    if (c == 0xE0 && b(1) < 0xA0) return 0;  // overlong
    if (c == 0xED && b(1) >= 0xA0) return 0;  // surrogate
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    if (c == 0xF0 && b(1) < 0x90) return 0;  // overlong
    if (c == 0xF4 && b(1) >= 0x90) return 0;  // above U+10FFFF
    return 4;
  }
  return 0;
}

bool IsUtf8(std::string_view s) {
  while (!s.empty()) {
    size_t n = Utf8SequenceLength(s);
    if (n == 0) return false;
    s.remove_prefix(n);
  }
  return true;
}

// `s` with every byte that is not part of well-formed UTF-8 replaced by
// U+FFFD (for table keys, which JSON can only hold as strings).
std::string ToUtf8Lossy(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  while (!s.empty()) {
    size_t n = Utf8SequenceLength(s);
    if (n == 0) {
      out += "\xEF\xBF\xBD";
      n = 1;
    } else {
      out.append(s.data(), n);
    }
    s.remove_prefix(n);
  }
  return out;
}

// A string or byte array inside a table or array: a JSON string when it is
// well-formed UTF-8 (NUL and control characters escaped), otherwise
// {"$bytes": "<base64>"}, so the JSON always parses and no byte is lost.
void WriteBytesJson(const amqp_bytes_t& bytes, JsonWriter& w) {
  const std::string_view s(static_cast<const char*>(bytes.bytes), bytes.len);
  if (IsUtf8(s)) {
    w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
    return;
  }
  const std::string encoded = Base64(s);
  w.StartObject();
  w.Key("$bytes");
  w.String(encoded.data(), static_cast<rapidjson::SizeType>(encoded.size()));
  w.EndObject();
}

void WriteTableJson(const amqp_table_t& t, JsonWriter& w) {
  w.StartObject();
  for (int i = 0; i < t.num_entries; ++i) {
    const amqp_table_entry_t& e = t.entries[i];
    const std::string_view key(static_cast<const char*>(e.key.bytes), e.key.len);
    if (IsUtf8(key)) {
      w.Key(key.data(), static_cast<rapidjson::SizeType>(key.size()));
    } else {
      const std::string fixed = ToUtf8Lossy(key);
      w.Key(fixed.data(), static_cast<rapidjson::SizeType>(fixed.size()));
    }
    WriteJson(e.value, w);
  }
  w.EndObject();
}

// NaN and the infinities as strtod reads them; JSON has no number for them.
const char* NonFiniteText(double d) {
  if (std::isnan(d)) return "NaN";
  return d > 0 ? "Infinity" : "-Infinity";
}

// A float inside a table or array: a JSON number, or the string "NaN",
// "Infinity" or "-Infinity" (rapidjson's Writer writes nothing for those
// and the JSON would not parse).
void WriteDoubleJson(double d, JsonWriter& w) {
  if (std::isfinite(d)) {
    w.Double(d);
  } else {
    w.String(NonFiniteText(d));
  }
}

void WriteJson(const amqp_field_value_t& v, JsonWriter& w) {
  switch (v.kind) {
    case AMQP_FIELD_KIND_BOOLEAN: w.Bool(v.value.boolean != 0); break;
    case AMQP_FIELD_KIND_I8: w.Int(v.value.i8); break;
    case AMQP_FIELD_KIND_U8: w.Uint(v.value.u8); break;
    case AMQP_FIELD_KIND_I16: w.Int(v.value.i16); break;
    case AMQP_FIELD_KIND_U16: w.Uint(v.value.u16); break;
    case AMQP_FIELD_KIND_I32: w.Int(v.value.i32); break;
    case AMQP_FIELD_KIND_U32: w.Uint(v.value.u32); break;
    case AMQP_FIELD_KIND_I64: w.Int64(v.value.i64); break;
    case AMQP_FIELD_KIND_U64: w.Uint64(v.value.u64); break;
    case AMQP_FIELD_KIND_TIMESTAMP: w.Uint64(v.value.u64); break;
    case AMQP_FIELD_KIND_F32: WriteDoubleJson(v.value.f32, w); break;
    case AMQP_FIELD_KIND_F64: WriteDoubleJson(v.value.f64, w); break;
    case AMQP_FIELD_KIND_DECIMAL: {
      std::string text = FieldValueToString(v);
      w.RawValue(text.c_str(), text.size(), rapidjson::kNumberType);
      break;
    }
    case AMQP_FIELD_KIND_UTF8:
    case AMQP_FIELD_KIND_BYTES: WriteBytesJson(v.value.bytes, w); break;
    case AMQP_FIELD_KIND_ARRAY:
      w.StartArray();
      for (int i = 0; i < v.value.array.num_entries; ++i) WriteJson(v.value.array.entries[i], w);
      w.EndArray();
      break;
    case AMQP_FIELD_KIND_TABLE: WriteTableJson(v.value.table, w); break;
    case AMQP_FIELD_KIND_VOID:
    default: w.Null(); break;
  }
}

bool FieldAsInt(const amqp_field_value_t& v, int64_t* out) {
  switch (v.kind) {
    case AMQP_FIELD_KIND_I8: *out = v.value.i8; return true;
    case AMQP_FIELD_KIND_U8: *out = v.value.u8; return true;
    case AMQP_FIELD_KIND_I16: *out = v.value.i16; return true;
    case AMQP_FIELD_KIND_U16: *out = v.value.u16; return true;
    case AMQP_FIELD_KIND_I32: *out = v.value.i32; return true;
    case AMQP_FIELD_KIND_U32: *out = v.value.u32; return true;
    case AMQP_FIELD_KIND_I64: *out = v.value.i64; return true;
    case AMQP_FIELD_KIND_U64: *out = static_cast<int64_t>(v.value.u64); return true;
    case AMQP_FIELD_KIND_UTF8:
    case AMQP_FIELD_KIND_BYTES: {
      std::string s = BytesToString(v.value.bytes);
      char* end = nullptr;
      long long n = std::strtoll(s.c_str(), &end, 10);
      if (s.empty() || *end != '\0') return false;
      *out = n;
      return true;
    }
    default: return false;
  }
}

// The flags of the 14 basic properties (the first flag word, without its
// continuation bit and its unused bit 1).
constexpr amqp_flags_t kBasicPropertyFlags =
    AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_CONTENT_ENCODING_FLAG | AMQP_BASIC_HEADERS_FLAG |
    AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_PRIORITY_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG |
    AMQP_BASIC_REPLY_TO_FLAG | AMQP_BASIC_EXPIRATION_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG |
    AMQP_BASIC_TIMESTAMP_FLAG | AMQP_BASIC_TYPE_FLAG | AMQP_BASIC_USER_ID_FLAG |
    AMQP_BASIC_APP_ID_FLAG | AMQP_BASIC_CLUSTER_ID_FLAG;

const amqp_field_value_t* FindHeader(const amqp_basic_properties_t& props, std::string_view name) {
  if (!(props._flags & AMQP_BASIC_HEADERS_FLAG)) return nullptr;
  for (int i = 0; i < props.headers.num_entries; ++i) {
    const amqp_table_entry_t& e = props.headers.entries[i];
    if (std::string_view(static_cast<const char*>(e.key.bytes), e.key.len) == name) return &e.value;
  }
  return nullptr;
}

// "2023-11-14T22:13:20.000Z" (FormatIso8601Utc's form) as Unix ms, or 0.
int64_t ParseIso8601UtcMs(const std::string& text) {
  int y, mo, d, h, mi, sec, ms;
  char z = 0;
  if (text.size() != 24 ||
      std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d.%3d%c", &y, &mo, &d, &h, &mi, &sec, &ms,
                  &z) != 8 ||
      z != 'Z')
    return 0;
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  const time_t t = timegm(&tm);
  if (t <= 0) return 0;
  return static_cast<int64_t>(t) * 1000 + ms;
}

// The encoded size of a field value (its kind octet included) and of a
// table, as amqp_encode_table writes them.
size_t TableSize(const amqp_table_t& t);

size_t FieldSize(const amqp_field_value_t& v) {
  switch (v.kind) {
    case AMQP_FIELD_KIND_BOOLEAN:
    case AMQP_FIELD_KIND_I8:
    case AMQP_FIELD_KIND_U8: return 2;
    case AMQP_FIELD_KIND_I16:
    case AMQP_FIELD_KIND_U16: return 3;
    case AMQP_FIELD_KIND_I32:
    case AMQP_FIELD_KIND_U32:
    case AMQP_FIELD_KIND_F32: return 5;
    case AMQP_FIELD_KIND_I64:
    case AMQP_FIELD_KIND_U64:
    case AMQP_FIELD_KIND_F64:
    case AMQP_FIELD_KIND_TIMESTAMP: return 9;
    case AMQP_FIELD_KIND_DECIMAL: return 6;
    case AMQP_FIELD_KIND_UTF8:
    case AMQP_FIELD_KIND_BYTES: return 5 + v.value.bytes.len;
    case AMQP_FIELD_KIND_ARRAY: {
      size_t n = 5;
      for (int i = 0; i < v.value.array.num_entries; ++i) n += FieldSize(v.value.array.entries[i]);
      return n;
    }
    case AMQP_FIELD_KIND_TABLE: return 1 + TableSize(v.value.table);
    case AMQP_FIELD_KIND_VOID:
    default: return 1;
  }
}

size_t EntrySize(const amqp_table_entry_t& e) { return 1 + e.key.len + FieldSize(e.value); }

size_t TableSize(const amqp_table_t& t) {
  size_t n = 4;
  for (int i = 0; i < t.num_entries; ++i) n += EntrySize(t.entries[i]);
  return n;
}

amqp_bytes_t CloneBytes(const amqp_bytes_t& b, amqp_pool_t* pool) {
  if (b.len == 0) return amqp_empty_bytes;
  amqp_bytes_t out;
  amqp_pool_alloc_bytes(pool, b.len, &out);
  CHECK(out.bytes != nullptr) << "out of memory copying AMQP headers";
  std::memcpy(out.bytes, b.bytes, b.len);
  return out;
}

amqp_field_value_t CloneValue(const amqp_field_value_t& v, amqp_pool_t* pool) {
  amqp_field_value_t out = v;  // scalars are copied here
  switch (v.kind) {
    case AMQP_FIELD_KIND_UTF8:
    case AMQP_FIELD_KIND_BYTES: out.value.bytes = CloneBytes(v.value.bytes, pool); break;
    case AMQP_FIELD_KIND_ARRAY: {
      const int n = v.value.array.num_entries;
      out.value.array.entries = nullptr;
      if (n > 0) {
        auto* entries = static_cast<amqp_field_value_t*>(
            amqp_pool_alloc(pool, sizeof(amqp_field_value_t) * static_cast<size_t>(n)));
        CHECK(entries != nullptr) << "out of memory copying AMQP headers";
        for (int i = 0; i < n; ++i) entries[i] = CloneValue(v.value.array.entries[i], pool);
        out.value.array.entries = entries;
      }
      break;
    }
    case AMQP_FIELD_KIND_TABLE: CloneTable(v.value.table, pool, &out.value.table); break;
    default: break;
  }
  return out;
}

}  // namespace

void CloneTable(const amqp_table_t& from, amqp_pool_t* pool, amqp_table_t* to) {
  const int n = from.num_entries;
  to->num_entries = n > 0 ? n : 0;
  to->entries = nullptr;
  if (n <= 0) return;
  auto* entries = static_cast<amqp_table_entry_t*>(
      amqp_pool_alloc(pool, sizeof(amqp_table_entry_t) * static_cast<size_t>(n)));
  CHECK(entries != nullptr) << "out of memory copying AMQP headers";
  for (int i = 0; i < n; ++i) {
    entries[i].key = CloneBytes(from.entries[i].key, pool);
    entries[i].value = CloneValue(from.entries[i].value, pool);
  }
  to->entries = entries;
}

std::string BytesToString(amqp_bytes_t bytes) {
  return bytes.len ? std::string(static_cast<const char*>(bytes.bytes), bytes.len) : std::string();
}

HeaderType FieldValueType(const amqp_field_value_t& v) {
  switch (v.kind) {
    case AMQP_FIELD_KIND_UTF8: return HeaderType::kString;
    case AMQP_FIELD_KIND_VOID: return HeaderType::kNull;
    case AMQP_FIELD_KIND_BOOLEAN: return HeaderType::kBool;
    case AMQP_FIELD_KIND_I8:
    case AMQP_FIELD_KIND_U8:
    case AMQP_FIELD_KIND_I16:
    case AMQP_FIELD_KIND_U16:
    case AMQP_FIELD_KIND_I32:
    case AMQP_FIELD_KIND_U32:
    case AMQP_FIELD_KIND_I64:
    case AMQP_FIELD_KIND_U64: return HeaderType::kInt;
    case AMQP_FIELD_KIND_F32:
    case AMQP_FIELD_KIND_F64: return HeaderType::kFloat;
    case AMQP_FIELD_KIND_DECIMAL: return HeaderType::kDecimal;
    case AMQP_FIELD_KIND_TIMESTAMP: return HeaderType::kTimestamp;
    case AMQP_FIELD_KIND_BYTES: return HeaderType::kBytes;
    case AMQP_FIELD_KIND_TABLE: return HeaderType::kTable;
    case AMQP_FIELD_KIND_ARRAY: return HeaderType::kArray;
    default: return HeaderType::kString;
  }
}

std::string FieldValueToString(const amqp_field_value_t& v) {
  switch (v.kind) {
    case AMQP_FIELD_KIND_UTF8:
    case AMQP_FIELD_KIND_BYTES: return BytesToString(v.value.bytes);
    case AMQP_FIELD_KIND_VOID: return std::string();
    case AMQP_FIELD_KIND_F32:
      if (!std::isfinite(v.value.f32)) return NonFiniteText(v.value.f32);
      break;
    case AMQP_FIELD_KIND_F64:
      if (!std::isfinite(v.value.f64)) return NonFiniteText(v.value.f64);
      break;
    case AMQP_FIELD_KIND_DECIMAL: {
      // value * 10^-decimals, written exactly. The value is a signed 32-bit
      // integer (AMQP 0-9-1 and every client), though librabbitmq-c keeps it
      // in a uint32_t.
      const int64_t value = static_cast<int32_t>(v.value.decimal.value);
      std::string digits = std::to_string(value < 0 ? -value : value);
      const char* sign = value < 0 ? "-" : "";
      unsigned places = v.value.decimal.decimals;
      if (places == 0) return sign + digits;
      while (digits.size() <= places) digits.insert(0, "0");
      return sign + digits.substr(0, digits.size() - places) + "." +
             digits.substr(digits.size() - places);
    }
    default: break;  // numbers, booleans, timestamps, tables and arrays: as JSON
  }
  rapidjson::StringBuffer buffer;
  JsonWriter w(buffer);
  WriteJson(v, w);
  return std::string(buffer.GetString(), buffer.GetSize());
}

void DecodeProperties(const amqp_basic_properties_t& p, Message* m) {
  Properties& out = m->props;
  auto take = [&](amqp_flags_t flag, const amqp_bytes_t& bytes, std::string* field) {
    if ((p._flags & flag) && bytes.len > 0)
      field->assign(static_cast<const char*>(bytes.bytes), bytes.len);
    else
      field->clear();
  };
  take(AMQP_BASIC_CONTENT_TYPE_FLAG, p.content_type, &out.content_type);
  take(AMQP_BASIC_CONTENT_ENCODING_FLAG, p.content_encoding, &out.content_encoding);
  take(AMQP_BASIC_TYPE_FLAG, p.type, &out.message_type);
  take(AMQP_BASIC_CORRELATION_ID_FLAG, p.correlation_id, &out.correlation_id);
  take(AMQP_BASIC_REPLY_TO_FLAG, p.reply_to, &out.reply_to);
  take(AMQP_BASIC_APP_ID_FLAG, p.app_id, &out.app_id);
  take(AMQP_BASIC_USER_ID_FLAG, p.user_id, &out.user_id);
  take(AMQP_BASIC_EXPIRATION_FLAG, p.expiration, &out.expiration);
  take(AMQP_BASIC_MESSAGE_ID_FLAG, p.message_id, &out.message_id);
  take(AMQP_BASIC_CLUSTER_ID_FLAG, p.cluster_id, &out.cluster_id);
  out.priority_set = (p._flags & AMQP_BASIC_PRIORITY_FLAG) != 0;
  out.priority = out.priority_set ? p.priority : 0;
  out.sent_priority = out.priority;
  out.delivery_mode = (p._flags & AMQP_BASIC_DELIVERY_MODE_FLAG) ? p.delivery_mode : 0;
  out.timestamp_ms = 0;
  out.timestamp_set = (p._flags & AMQP_BASIC_TIMESTAMP_FLAG) != 0;
  m->enqueued_at_ms = 0;
  if (out.timestamp_set) {
    // Seconds on the wire; one past what milliseconds can hold saturates.
    constexpr uint64_t kMaxSeconds = static_cast<uint64_t>(INT64_MAX / 1000);
    out.timestamp_ms = p.timestamp <= kMaxSeconds ? static_cast<int64_t>(p.timestamp) * 1000
                                                  : INT64_MAX;
    m->enqueued_at_ms = out.timestamp_ms;
  }
  m->headers.clear();
  m->header_types.clear();
  if (p._flags & AMQP_BASIC_HEADERS_FLAG) {
    m->headers.reserve(static_cast<size_t>(p.headers.num_entries));
    m->header_types.reserve(static_cast<size_t>(p.headers.num_entries));
    for (int i = 0; i < p.headers.num_entries; ++i) {
      const amqp_table_entry_t& e = p.headers.entries[i];
      m->headers.emplace_back(BytesToString(e.key), FieldValueToString(e.value));
      m->header_types.push_back(FieldValueType(e.value));
    }
    // What a retry copy carries for the original (see kHeaderOriginalExpiration
    // and x-first-seen-at).
    if (out.expiration.empty()) {
      if (const std::string* e = m->FindHeader(kHeaderOriginalExpiration)) out.expiration = *e;
    }
    if (out.user_id.empty()) {
      if (const std::string* u = m->FindHeader(kHeaderOriginalUserId)) out.user_id = *u;
    }
    if (m->enqueued_at_ms == 0) {
      if (const std::string* f = m->FindHeader(kHeaderFirstSeenAt))
        m->enqueued_at_ms = ParseIso8601UtcMs(*f);
    }
  }
}

bool MessageKeepsProperties(const amqp_basic_properties_t& p) {
  constexpr uint64_t kMaxTimestamp = static_cast<uint64_t>(INT64_MAX / 1000);
  return !(p._flags & (AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_CLUSTER_ID_FLAG)) &&
         (!(p._flags & AMQP_BASIC_TIMESTAMP_FLAG) || p.timestamp <= kMaxTimestamp);
}

uint32_t AttemptFromHeaders(const amqp_basic_properties_t& props) {
  int64_t attempt = 1;
  int64_t n = 0;
  const amqp_field_value_t* retry = FindHeader(props, kHeaderRetryAttempt);
  if (retry != nullptr && FieldAsInt(*retry, &n) && n >= 1) attempt = n;
  const amqp_field_value_t* count = FindHeader(props, kHeaderDeliveryCount);
  // Saturating: both come from the producer or the broker, up to INT64_MAX
  // (the sum overflowed; found by fuzz/amqp_properties_fuzzer).
  if (count != nullptr && FieldAsInt(*count, &n) && n > 0)
    attempt = n > INT64_MAX - attempt ? INT64_MAX : attempt + n;
  return static_cast<uint32_t>(std::min<int64_t>(attempt, UINT32_MAX));
}

OwnedProperties::OwnedProperties(const amqp_basic_properties_t& original) {
  init_amqp_pool(&pool_, 1024);
  // Fields whose flag is not set may hold anything (librabbitmq-c does not
  // initialise them when it decodes a frame): copy only the flagged ones.
  // Only the 14 basic properties' flags: librabbitmq-c keeps the
  // continuation bit and any further flag words a sender wrote, and would
  // encode those words again, so the copy's header frame would be larger
  // than HeaderFrameSize() says (found by fuzz/amqp_properties_fuzzer).
  std::memset(&props_, 0, sizeof(props_));
  props_._flags = original._flags & kBasicPropertyFlags;
  for (const AmqpStringProperty& f : kAmqpStringProperties) {
    const amqp_bytes_t& from = original.*f.field;
    if (!(original._flags & f.flag) || from.len == 0) continue;
    props_.*f.field = Dup(std::string_view(static_cast<const char*>(from.bytes), from.len));
  }
  if (original._flags & AMQP_BASIC_DELIVERY_MODE_FLAG) props_.delivery_mode = original.delivery_mode;
  if (original._flags & AMQP_BASIC_PRIORITY_FLAG) props_.priority = original.priority;
  if (original._flags & AMQP_BASIC_TIMESTAMP_FLAG) props_.timestamp = original.timestamp;
  if (props_._flags & AMQP_BASIC_HEADERS_FLAG) {
    // Not amqp_table_clone: it refuses a table with an empty key, which the
    // wire allows and brokers pass on, and the copy lost every header
    // (found by fuzz/amqp_properties_fuzzer).
    CloneTable(original.headers, &pool_, &props_.headers);
  } else {
    props_.headers.num_entries = 0;
    props_.headers.entries = nullptr;
  }
}

OwnedProperties::OwnedProperties(const Message& m) {
  init_amqp_pool(&pool_, 1024);
  std::memset(&props_, 0, sizeof(props_));
  auto put = [&](amqp_flags_t flag, const std::string& value, amqp_bytes_t* field) {
    if (value.empty()) return;
    props_._flags |= flag;
    *field = Dup(value);
  };
  const Properties& p = m.props;
  put(AMQP_BASIC_CONTENT_TYPE_FLAG, p.content_type, &props_.content_type);
  put(AMQP_BASIC_CONTENT_ENCODING_FLAG, p.content_encoding, &props_.content_encoding);
  put(AMQP_BASIC_TYPE_FLAG, p.message_type, &props_.type);
  put(AMQP_BASIC_CORRELATION_ID_FLAG, p.correlation_id, &props_.correlation_id);
  put(AMQP_BASIC_REPLY_TO_FLAG, p.reply_to, &props_.reply_to);
  put(AMQP_BASIC_APP_ID_FLAG, p.app_id, &props_.app_id);
  put(AMQP_BASIC_USER_ID_FLAG, p.user_id, &props_.user_id);
  put(AMQP_BASIC_EXPIRATION_FLAG, p.expiration, &props_.expiration);
  put(AMQP_BASIC_MESSAGE_ID_FLAG, p.message_id.empty() ? m.id : p.message_id, &props_.message_id);
  if (p.priority != 0) {
    props_._flags |= AMQP_BASIC_PRIORITY_FLAG;
    props_.priority = p.priority;
  }
  props_._flags |= AMQP_BASIC_TIMESTAMP_FLAG;
  props_.timestamp = static_cast<uint64_t>((p.timestamp_ms != 0 ? p.timestamp_ms : WallMs()) / 1000);
  for (const auto& [name, value] : m.headers) SetString(name, value);
  if (m.attempt > 1) SetInt(kHeaderRetryAttempt, m.attempt);
  SetPersistent();
}

OwnedProperties::OwnedProperties(const Properties& p, amqp_flags_t flags,
                                 uint8_t delivery_mode) {
  init_amqp_pool(&pool_, 1024);
  std::memset(&props_, 0, sizeof(props_));
  props_._flags = flags & kBasicPropertyFlags & ~(AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_CLUSTER_ID_FLAG);
  auto put = [&](amqp_flags_t flag, const std::string& value, amqp_bytes_t* field) {
    if (props_._flags & flag) *field = Dup(value);
  };
  put(AMQP_BASIC_CONTENT_TYPE_FLAG, p.content_type, &props_.content_type);
  put(AMQP_BASIC_CONTENT_ENCODING_FLAG, p.content_encoding, &props_.content_encoding);
  put(AMQP_BASIC_TYPE_FLAG, p.message_type, &props_.type);
  put(AMQP_BASIC_CORRELATION_ID_FLAG, p.correlation_id, &props_.correlation_id);
  put(AMQP_BASIC_REPLY_TO_FLAG, p.reply_to, &props_.reply_to);
  put(AMQP_BASIC_APP_ID_FLAG, p.app_id, &props_.app_id);
  put(AMQP_BASIC_USER_ID_FLAG, p.user_id, &props_.user_id);
  put(AMQP_BASIC_EXPIRATION_FLAG, p.expiration, &props_.expiration);
  put(AMQP_BASIC_MESSAGE_ID_FLAG, p.message_id, &props_.message_id);
  props_.priority = p.priority;
  props_.delivery_mode = delivery_mode;
  props_.timestamp = static_cast<uint64_t>(p.timestamp_ms / 1000);
}

OwnedProperties::~OwnedProperties() { empty_amqp_pool(&pool_); }

amqp_bytes_t OwnedProperties::Dup(std::string_view text) {
  amqp_bytes_t out;
  amqp_pool_alloc_bytes(&pool_, text.size(), &out);
  CHECK(out.bytes != nullptr || text.empty()) << "out of memory copying AMQP properties";
  if (!text.empty()) std::memcpy(out.bytes, text.data(), text.size());
  return out;
}

void OwnedProperties::Set(std::string_view name, const amqp_field_value_t& value) {
  amqp_table_t& t = props_.headers;
  if (!(props_._flags & AMQP_BASIC_HEADERS_FLAG)) {
    props_._flags |= AMQP_BASIC_HEADERS_FLAG;
    t.num_entries = 0;
    t.entries = nullptr;
  }
  for (int i = 0; i < t.num_entries; ++i) {
    if (std::string_view(static_cast<const char*>(t.entries[i].key.bytes), t.entries[i].key.len) ==
        name) {
      t.entries[i].value = value;
      return;
    }
  }
  auto* entries = static_cast<amqp_table_entry_t*>(
      amqp_pool_alloc(&pool_, sizeof(amqp_table_entry_t) * static_cast<size_t>(t.num_entries + 1)));
  CHECK(entries != nullptr) << "out of memory growing AMQP headers";
  if (t.num_entries > 0) std::memcpy(entries, t.entries, sizeof(amqp_table_entry_t) * t.num_entries);
  entries[t.num_entries].key = Dup(name);
  entries[t.num_entries].value = value;
  t.entries = entries;
  t.num_entries += 1;
}

void OwnedProperties::SetString(std::string_view name, std::string_view value) {
  amqp_field_value_t v;
  v.kind = AMQP_FIELD_KIND_UTF8;
  v.value.bytes = Dup(value);
  Set(name, v);
}

void OwnedProperties::SetInt(std::string_view name, int64_t value) {
  amqp_field_value_t v;
  v.kind = AMQP_FIELD_KIND_I64;
  v.value.i64 = value;
  Set(name, v);
}

void OwnedProperties::Remove(std::string_view name) {
  if (!(props_._flags & AMQP_BASIC_HEADERS_FLAG)) return;
  amqp_table_t& t = props_.headers;
  int kept = 0;
  for (int i = 0; i < t.num_entries; ++i) {
    if (std::string_view(static_cast<const char*>(t.entries[i].key.bytes), t.entries[i].key.len) ==
        name)
      continue;
    t.entries[kept++] = t.entries[i];
  }
  t.num_entries = kept;
}

void OwnedProperties::SetMessageId(std::string_view id) {
  props_._flags |= AMQP_BASIC_MESSAGE_ID_FLAG;
  props_.message_id = Dup(id);
}

void OwnedProperties::SetPersistent() {
  props_._flags |= AMQP_BASIC_DELIVERY_MODE_FLAG;
  props_.delivery_mode = AMQP_DELIVERY_PERSISTENT;
}

void OwnedProperties::SetExpiration(Duration ttl) {
  SetExpiration(std::to_string(std::max<int64_t>(0, ttl.count())));
}

void OwnedProperties::SetExpiration(std::string_view text) {
  props_._flags |= AMQP_BASIC_EXPIRATION_FLAG;
  props_.expiration = Dup(text);
}

void OwnedProperties::ClearExpiration() {
  props_._flags &= ~AMQP_BASIC_EXPIRATION_FLAG;
  props_.expiration = amqp_empty_bytes;
}

std::optional<std::string_view> OwnedProperties::Expiration() const {
  if (!(props_._flags & AMQP_BASIC_EXPIRATION_FLAG)) return std::nullopt;
  return std::string_view(static_cast<const char*>(props_.expiration.bytes),
                          props_.expiration.len);
}

void OwnedProperties::KeepForeignUserId(std::string_view login_user) {
  if (!(props_._flags & AMQP_BASIC_USER_ID_FLAG)) return;
  const std::string_view user(static_cast<const char*>(props_.user_id.bytes), props_.user_id.len);
  if (user == login_user) return;
  if (!HasHeader(kHeaderOriginalUserId)) SetString(kHeaderOriginalUserId, user);
  props_._flags &= ~AMQP_BASIC_USER_ID_FLAG;
  props_.user_id = amqp_empty_bytes;
}

std::optional<std::string_view> OwnedProperties::HeaderText(std::string_view name) const {
  const amqp_field_value_t* v = FindHeader(props_, name);
  if (v == nullptr || (v->kind != AMQP_FIELD_KIND_UTF8 && v->kind != AMQP_FIELD_KIND_BYTES))
    return std::nullopt;
  return std::string_view(static_cast<const char*>(v->value.bytes.bytes), v->value.bytes.len);
}

bool OwnedProperties::HasHeader(std::string_view name) const {
  return FindHeader(props_, name) != nullptr;
}

size_t OwnedProperties::HeaderFrameSize() const {
  // Frame header (7) and end (1); class id, weight, body size and one flag
  // word (14); then each flagged property.
  size_t n = 8 + 14;
  const amqp_flags_t f = props_._flags;
  for (const AmqpStringProperty& s : kAmqpStringProperties)
    if (f & s.flag) n += 1 + (props_.*s.field).len;
  if (f & AMQP_BASIC_HEADERS_FLAG) n += TableSize(props_.headers);
  if (f & AMQP_BASIC_DELIVERY_MODE_FLAG) n += 1;
  if (f & AMQP_BASIC_PRIORITY_FLAG) n += 1;
  if (f & AMQP_BASIC_TIMESTAMP_FLAG) n += 8;
  return n;
}

std::string OwnedProperties::CutHeadersToFit(size_t frame_max,
                                             const std::vector<std::string_view>& keep) {
  size_t size = HeaderFrameSize();
  if (size <= frame_max || !(props_._flags & AMQP_BASIC_HEADERS_FLAG)) return std::string();
  amqp_table_t& t = props_.headers;
  // Largest first, so as few headers as possible are cut.
  std::vector<int> order;
  for (int i = 0; i < t.num_entries; ++i) {
    const std::string_view key(static_cast<const char*>(t.entries[i].key.bytes),
                               t.entries[i].key.len);
    if (std::find(keep.begin(), keep.end(), key) == keep.end()) order.push_back(i);
  }
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
    return EntrySize(t.entries[a]) > EntrySize(t.entries[b]);
  });
  std::vector<bool> cut(static_cast<size_t>(t.num_entries), false);
  std::string what;
  size_t named = 0, unnamed = 0;
  for (int i : order) {
    if (size <= frame_max) break;
    const amqp_table_entry_t& e = t.entries[i];
    const size_t entry = EntrySize(e);
    size -= entry;
    cut[static_cast<size_t>(i)] = true;
    if (named < 10) {
      if (!what.empty()) what += ", ";
      what += std::string(static_cast<const char*>(e.key.bytes), std::min<size_t>(e.key.len, 64)) +
              " (" + std::to_string(entry) + " bytes)";
      ++named;
    } else {
      ++unnamed;
    }
  }
  if (unnamed > 0) what += " and " + std::to_string(unnamed) + " more";
  int kept = 0;
  for (int i = 0; i < t.num_entries; ++i)
    if (!cut[static_cast<size_t>(i)]) t.entries[kept++] = t.entries[i];
  t.num_entries = kept;
  return what;
}

}  // namespace foxworker
