// Fuzzes what the RabbitMQ backend reads from a delivery's content header:
// the basic properties and their header table, as librabbitmq-c decodes them
// from the wire, through DecodeProperties, FieldValueToString,
// AttemptFromHeaders and OwnedProperties (the copy that retries and
// dead-letters are published with).
//
// The first input byte picks the mode:
//   even: the rest is an encoded properties payload (flag words, then the
//         flagged fields), as a broker sends it;
//   odd:  the rest drives a generator of properties with a header table of
//         every field type (nested tables and arrays, negative decimals,
//         byte strings), so no shape depends on luck in the wire bytes.
// Either way the fuzzer checks decode(encode(x)) == x for the properties the
// backend copies (OwnedProperties, then amqp_encode_properties, then
// amqp_decode_properties) and for the table alone (amqp_encode_table /
// amqp_decode_table), that HeaderFrameSize() is the encoded size, that the
// JSON FieldValueToString writes for tables and arrays parses, and that
// CutHeadersToFit keeps its promise.
#include <amqp.h>
#include <amqp_framing.h>
#include <fuzzer/FuzzedDataProvider.h>
#include <rapidjson/document.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/backends/rabbitmq/amqp_message_codec.h"
#include "daemon/core/message.h"

namespace {

using foxworker::OwnedProperties;
using foxworker::AmqpStringProperty;
using foxworker::kAmqpStringProperties;

constexpr amqp_flags_t kBasicPropertyFlags = 0xFFFC;

[[noreturn]] void Fail(const char* what) {
  std::fprintf(stderr, "amqp_properties_fuzzer: %s\n", what);
  std::abort();
}
#define FUZZ_CHECK(cond) \
  do {                   \
    if (!(cond)) Fail(#cond); \
  } while (0)

bool BytesEqual(const amqp_bytes_t& a, const amqp_bytes_t& b) {
  return a.len == b.len && (a.len == 0 || std::memcmp(a.bytes, b.bytes, a.len) == 0);
}

bool TableEqual(const amqp_table_t& a, const amqp_table_t& b);

bool ValueEqual(const amqp_field_value_t& a, const amqp_field_value_t& b) {
  if (a.kind != b.kind) {
    std::fprintf(stderr, "field kind '%c' came back as '%c'\n", a.kind, b.kind);
    return false;
  }
  switch (a.kind) {
    case AMQP_FIELD_KIND_BOOLEAN: return (a.value.boolean != 0) == (b.value.boolean != 0);
    case AMQP_FIELD_KIND_I8: return a.value.i8 == b.value.i8;
    case AMQP_FIELD_KIND_U8: return a.value.u8 == b.value.u8;
    case AMQP_FIELD_KIND_I16: return a.value.i16 == b.value.i16;
    case AMQP_FIELD_KIND_U16: return a.value.u16 == b.value.u16;
    case AMQP_FIELD_KIND_I32: return a.value.i32 == b.value.i32;
    case AMQP_FIELD_KIND_U32: return a.value.u32 == b.value.u32;
    case AMQP_FIELD_KIND_I64: return a.value.i64 == b.value.i64;
    case AMQP_FIELD_KIND_U64:
    case AMQP_FIELD_KIND_TIMESTAMP: return a.value.u64 == b.value.u64;
    // Bit for bit: a NaN must come back as the same NaN.
    case AMQP_FIELD_KIND_F32: return std::memcmp(&a.value.f32, &b.value.f32, 4) == 0;
    case AMQP_FIELD_KIND_F64: return std::memcmp(&a.value.f64, &b.value.f64, 8) == 0;
    case AMQP_FIELD_KIND_DECIMAL:
      return a.value.decimal.decimals == b.value.decimal.decimals &&
             a.value.decimal.value == b.value.decimal.value;
    case AMQP_FIELD_KIND_UTF8:
    case AMQP_FIELD_KIND_BYTES: return BytesEqual(a.value.bytes, b.value.bytes);
    case AMQP_FIELD_KIND_ARRAY:
      if (a.value.array.num_entries != b.value.array.num_entries) return false;
      for (int i = 0; i < a.value.array.num_entries; ++i)
        if (!ValueEqual(a.value.array.entries[i], b.value.array.entries[i])) return false;
      return true;
    case AMQP_FIELD_KIND_TABLE: return TableEqual(a.value.table, b.value.table);
    case AMQP_FIELD_KIND_VOID: return true;
    default: return false;
  }
}

bool TableEqual(const amqp_table_t& a, const amqp_table_t& b) {
  if (a.num_entries != b.num_entries) return false;
  for (int i = 0; i < a.num_entries; ++i) {
    if (!BytesEqual(a.entries[i].key, b.entries[i].key)) return false;
    if (!ValueEqual(a.entries[i].value, b.entries[i].value)) return false;
  }
  return true;
}

// The properties the backend keeps (every flagged field) are equal.
// Says what differs on stderr (the caller aborts).
bool Differs(const char* what) {
  std::fprintf(stderr, "amqp_properties_fuzzer: %s differs\n", what);
  return false;
}

bool PropertiesEqual(const amqp_basic_properties_t& a, const amqp_basic_properties_t& b) {
  if (a._flags != b._flags) {
    std::fprintf(stderr, "flags %#x != %#x\n", a._flags, b._flags);
    return Differs("_flags");
  }
  const amqp_flags_t f = a._flags;
  for (const AmqpStringProperty& fd : kAmqpStringProperties)
    if ((f & fd.flag) && !BytesEqual(a.*fd.field, b.*fd.field)) return Differs("a string property");
  if ((f & AMQP_BASIC_DELIVERY_MODE_FLAG) && a.delivery_mode != b.delivery_mode)
    return Differs("delivery_mode");
  if ((f & AMQP_BASIC_PRIORITY_FLAG) && a.priority != b.priority) return Differs("priority");
  if ((f & AMQP_BASIC_TIMESTAMP_FLAG) && a.timestamp != b.timestamp) return Differs("timestamp");
  if ((f & AMQP_BASIC_HEADERS_FLAG) && !TableEqual(a.headers, b.headers)) return Differs("headers");
  return true;
}

// FieldValueToString of a table or array (and of anything nested) is JSON
// that parses, as its comment promises.
void CheckJson(const amqp_field_value_t& v) {
  const std::string text = foxworker::FieldValueToString(v);
  if (v.kind == AMQP_FIELD_KIND_TABLE || v.kind == AMQP_FIELD_KIND_ARRAY) {
    rapidjson::Document doc;
    doc.Parse(text.data(), text.size());
    if (doc.HasParseError()) {
      std::fprintf(stderr, "not JSON: %s\n", text.c_str());
      Fail("FieldValueToString of a table or array is not JSON");
    }
    FUZZ_CHECK(v.kind == AMQP_FIELD_KIND_TABLE ? doc.IsObject() : doc.IsArray());
  }
}

// Encodes `props` as amqp_encode_properties does, decodes it again and
// checks both the round trip and OwnedProperties' size arithmetic.
void CheckRoundTrip(const OwnedProperties& owned, const amqp_basic_properties_t& expected) {
  const amqp_basic_properties_t& p = owned.props();
  const size_t frame = owned.HeaderFrameSize();
  std::vector<char> buf(frame + 64);
  amqp_bytes_t out{buf.size(), buf.data()};
  const int n = amqp_encode_properties(AMQP_BASIC_CLASS, const_cast<amqp_basic_properties_t*>(&p),
                                       out);
  FUZZ_CHECK(n >= 0);
  // Frame header (7) and end (1), class id, weight and body size (12), then
  // what amqp_encode_properties wrote (the flag words and the fields).
  if (frame != 20 + static_cast<size_t>(n)) {
    std::fprintf(stderr, "HeaderFrameSize %zu, encoded properties %d (+20)\n", frame, n);
    Fail("HeaderFrameSize() is not the size librabbitmq-c encodes");
  }
  amqp_pool_t pool;
  init_amqp_pool(&pool, 4096);
  void* decoded = nullptr;
  const int rc = amqp_decode_properties(AMQP_BASIC_CLASS, &pool,
                                        amqp_bytes_t{static_cast<size_t>(n), buf.data()}, &decoded);
  FUZZ_CHECK(rc == AMQP_STATUS_OK);
  FUZZ_CHECK(PropertiesEqual(*static_cast<amqp_basic_properties_t*>(decoded), expected));

  if (p._flags & AMQP_BASIC_HEADERS_FLAG) {
    // The table alone, through the table codec.
    std::vector<char> tbuf(frame + 64);
    size_t offset = 0;
    FUZZ_CHECK(amqp_encode_table(amqp_bytes_t{tbuf.size(), tbuf.data()},
                                 const_cast<amqp_table_t*>(&p.headers), &offset) == AMQP_STATUS_OK);
    amqp_table_t back;
    size_t read = 0;
    FUZZ_CHECK(amqp_decode_table(amqp_bytes_t{offset, tbuf.data()}, &pool, &back, &read) ==
               AMQP_STATUS_OK);
    FUZZ_CHECK(read == offset);
    FUZZ_CHECK(TableEqual(back, expected.headers));
  }
  empty_amqp_pool(&pool);
}

void Exercise(const amqp_basic_properties_t& props, size_t frame_max) {
  foxworker::Message m;
  foxworker::DecodeProperties(props, &m);
  FUZZ_CHECK(m.header_types.size() == m.headers.size());
  foxworker::DecodeProperties(props, &m);  // a reused message is cleared
  FUZZ_CHECK(m.header_types.size() == m.headers.size());
  (void)foxworker::AttemptFromHeaders(props);
  if (props._flags & AMQP_BASIC_HEADERS_FLAG) {
    for (int i = 0; i < props.headers.num_entries; ++i) {
      CheckJson(props.headers.entries[i].value);
      (void)foxworker::FieldValueType(props.headers.entries[i].value);
    }
  }

  // The copy a retry or dead-letter publishes keeps every flagged field (of
  // the 14 basic properties: a continuation bit and further flag words are
  // dropped).
  amqp_basic_properties_t expected = props;
  expected._flags &= kBasicPropertyFlags;
  OwnedProperties copy(props);
  CheckRoundTrip(copy, expected);
  (void)copy.HeaderText(foxworker::kHeaderRetryAttempt);
  copy.SetInt(foxworker::kHeaderRetryAttempt, 2);
  copy.SetString(foxworker::kHeaderOriginalRoutingKey, "rk");
  copy.Remove("x-delivery-count");
  amqp_basic_properties_t edited = copy.props();
  CheckRoundTrip(copy, edited);

  // Cutting headers to fit a frame: the result fits unless only kept
  // headers are left.
  const std::vector<std::string_view> keep = {foxworker::kHeaderRetryAttempt};
  const size_t before = copy.HeaderFrameSize();
  const std::string cut = copy.CutHeadersToFit(frame_max, keep);
  const size_t after = copy.HeaderFrameSize();
  FUZZ_CHECK(after <= before);
  FUZZ_CHECK(cut.empty() == (after == before));
  if (after > frame_max) {
    const amqp_table_t& t = copy.props().headers;
    for (int i = 0; i < t.num_entries; ++i) {
      const std::string_view key(static_cast<const char*>(t.entries[i].key.bytes),
                                 t.entries[i].key.len);
      FUZZ_CHECK(key == foxworker::kHeaderRetryAttempt);
    }
  }
  edited = copy.props();
  CheckRoundTrip(copy, edited);

  // What a message without headers rebuilds from: the same properties.
  if (foxworker::MessageKeepsProperties(props)) {
    OwnedProperties rebuilt(m.props, props._flags, props.delivery_mode);
    expected = props;
    expected._flags &= kBasicPropertyFlags;
    CheckRoundTrip(rebuilt, expected);
  }
}

// --- the generator ---------------------------------------------------------

amqp_bytes_t GenBytes(FuzzedDataProvider& in, amqp_pool_t* pool, size_t max) {
  const std::string s = in.ConsumeRandomLengthString(max);
  amqp_bytes_t b;
  amqp_pool_alloc_bytes(pool, s.size(), &b);
  if (!s.empty()) std::memcpy(b.bytes, s.data(), s.size());
  return b;
}

void GenTable(FuzzedDataProvider& in, amqp_pool_t* pool, int depth, amqp_table_t* out);

amqp_field_value_t GenValue(FuzzedDataProvider& in, amqp_pool_t* pool, int depth) {
  static constexpr uint8_t kKinds[] = {
      AMQP_FIELD_KIND_BOOLEAN, AMQP_FIELD_KIND_I8,   AMQP_FIELD_KIND_U8,
      AMQP_FIELD_KIND_I16,     AMQP_FIELD_KIND_U16,  AMQP_FIELD_KIND_I32,
      AMQP_FIELD_KIND_U32,     AMQP_FIELD_KIND_I64,  AMQP_FIELD_KIND_U64,
      AMQP_FIELD_KIND_F32,     AMQP_FIELD_KIND_F64,  AMQP_FIELD_KIND_DECIMAL,
      AMQP_FIELD_KIND_UTF8,    AMQP_FIELD_KIND_BYTES, AMQP_FIELD_KIND_TIMESTAMP,
      AMQP_FIELD_KIND_VOID,    AMQP_FIELD_KIND_ARRAY, AMQP_FIELD_KIND_TABLE};
  amqp_field_value_t v;
  std::memset(&v, 0, sizeof(v));
  v.kind = in.PickValueInArray(kKinds);
  if (depth >= 4 && (v.kind == AMQP_FIELD_KIND_ARRAY || v.kind == AMQP_FIELD_KIND_TABLE))
    v.kind = AMQP_FIELD_KIND_VOID;
  switch (v.kind) {
    case AMQP_FIELD_KIND_BOOLEAN: v.value.boolean = in.ConsumeBool(); break;
    case AMQP_FIELD_KIND_I8: v.value.i8 = in.ConsumeIntegral<int8_t>(); break;
    case AMQP_FIELD_KIND_U8: v.value.u8 = in.ConsumeIntegral<uint8_t>(); break;
    case AMQP_FIELD_KIND_I16: v.value.i16 = in.ConsumeIntegral<int16_t>(); break;
    case AMQP_FIELD_KIND_U16: v.value.u16 = in.ConsumeIntegral<uint16_t>(); break;
    case AMQP_FIELD_KIND_I32: v.value.i32 = in.ConsumeIntegral<int32_t>(); break;
    case AMQP_FIELD_KIND_U32: v.value.u32 = in.ConsumeIntegral<uint32_t>(); break;
    case AMQP_FIELD_KIND_I64: v.value.i64 = in.ConsumeIntegral<int64_t>(); break;
    case AMQP_FIELD_KIND_U64:
    case AMQP_FIELD_KIND_TIMESTAMP: v.value.u64 = in.ConsumeIntegral<uint64_t>(); break;
    case AMQP_FIELD_KIND_F32: {
      const uint32_t bits = in.ConsumeIntegral<uint32_t>();  // NaNs and infinities too
      std::memcpy(&v.value.f32, &bits, 4);
      break;
    }
    case AMQP_FIELD_KIND_F64: {
      const uint64_t bits = in.ConsumeIntegral<uint64_t>();
      std::memcpy(&v.value.f64, &bits, 8);
      break;
    }
    case AMQP_FIELD_KIND_DECIMAL:
      v.value.decimal.decimals = in.ConsumeIntegral<uint8_t>();
      // Signed on the wire: negative decimals are common (-3.14).
      v.value.decimal.value = static_cast<uint32_t>(in.ConsumeIntegral<int32_t>());
      break;
    case AMQP_FIELD_KIND_UTF8:
    case AMQP_FIELD_KIND_BYTES: v.value.bytes = GenBytes(in, pool, 64); break;
    case AMQP_FIELD_KIND_ARRAY: {
      const int n = in.ConsumeIntegralInRange<int>(0, 5);
      v.value.array.num_entries = n;
      v.value.array.entries = static_cast<amqp_field_value_t*>(
          amqp_pool_alloc(pool, sizeof(amqp_field_value_t) * static_cast<size_t>(n ? n : 1)));
      for (int i = 0; i < n; ++i) v.value.array.entries[i] = GenValue(in, pool, depth + 1);
      break;
    }
    case AMQP_FIELD_KIND_TABLE: GenTable(in, pool, depth + 1, &v.value.table); break;
    default: break;
  }
  return v;
}

void GenTable(FuzzedDataProvider& in, amqp_pool_t* pool, int depth, amqp_table_t* out) {
  const int n = in.ConsumeIntegralInRange<int>(0, 6);
  out->num_entries = n;
  out->entries = static_cast<amqp_table_entry_t*>(
      amqp_pool_alloc(pool, sizeof(amqp_table_entry_t) * static_cast<size_t>(n ? n : 1)));
  static const char* const kNames[] = {"x-retry-attempt", "x-delivery-count", "x-first-seen-at",
                                       "x-original-expiration", "x-death", "h"};
  for (int i = 0; i < n; ++i) {
    amqp_table_entry_t& e = out->entries[i];
    if (depth == 0 && in.ConsumeBool()) {
      const char* name = in.PickValueInArray(kNames);
      e.key = amqp_cstring_bytes(name);
    } else {
      e.key = GenBytes(in, pool, 32);  // keys are short strings (up to 255 bytes)
    }
    e.value = GenValue(in, pool, depth);
  }
}

void Generate(FuzzedDataProvider& in, amqp_pool_t* pool, amqp_basic_properties_t* p) {
  std::memset(p, 0, sizeof(*p));
  p->_flags = in.ConsumeIntegral<uint16_t>() & 0xFFFC;  // the 14 basic properties
  amqp_bytes_t* strings[] = {&p->content_type, &p->content_encoding, &p->correlation_id,
                             &p->reply_to,     &p->expiration,       &p->message_id,
                             &p->type,         &p->user_id,          &p->app_id,
                             &p->cluster_id};
  for (amqp_bytes_t* s : strings) *s = GenBytes(in, pool, 16);
  p->delivery_mode = in.ConsumeIntegral<uint8_t>();
  p->priority = in.ConsumeIntegral<uint8_t>();
  p->timestamp = in.ConsumeIntegral<uint64_t>();
  GenTable(in, pool, 0, &p->headers);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  const bool generate = data[0] & 1;
  const size_t frame_max = 64 + static_cast<size_t>(data[1]) * 8;
  amqp_pool_t pool;
  init_amqp_pool(&pool, 4096);
  amqp_basic_properties_t props;
  if (generate) {
    FuzzedDataProvider in(data + 2, size - 2);
    Generate(in, &pool, &props);
    Exercise(props, frame_max);
  } else {
    void* decoded = nullptr;
    std::vector<char> wire(data + 2, data + size);  // librabbitmq-c takes a non-const buffer
    if (amqp_decode_properties(AMQP_BASIC_CLASS, &pool, amqp_bytes_t{wire.size(), wire.data()},
                               &decoded) == AMQP_STATUS_OK) {
      props = *static_cast<amqp_basic_properties_t*>(decoded);
      Exercise(props, frame_max);
    }
  }
  empty_amqp_pool(&pool);
  return 0;
}
