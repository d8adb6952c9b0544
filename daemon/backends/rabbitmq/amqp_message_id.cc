#include "daemon/backends/rabbitmq/amqp_message_id.h"

#include <sys/random.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <random>
#include <string_view>
#include <utility>
#include <vector>

#include "daemon/backends/rabbitmq/amqp_message_codec.h"

namespace foxworker {
namespace {

// MurmurHash3_x64_128 (Austin Appleby, public domain): fast, well mixed, not
// meant to resist an adversary (a producer that wants two messages to share
// an id can simply give them one).
uint64_t Rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

uint64_t Fmix(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ULL;
  k ^= k >> 33;
  return k;
}

void Murmur3(std::string_view data, uint64_t seed1, uint64_t seed2, uint64_t out[2]) {
  const auto* p = reinterpret_cast<const uint8_t*>(data.data());
  const size_t len = data.size();
  const size_t blocks = len / 16;
  uint64_t h1 = seed1, h2 = seed2;
  constexpr uint64_t c1 = 0x87c37b91114253d5ULL;
  constexpr uint64_t c2 = 0x4cf5ad432745937fULL;
  for (size_t i = 0; i < blocks; ++i) {
    uint64_t k1, k2;
    std::memcpy(&k1, p + i * 16, 8);
    std::memcpy(&k2, p + i * 16 + 8, 8);
    k1 *= c1; k1 = Rotl(k1, 31); k1 *= c2; h1 ^= k1;
    h1 = Rotl(h1, 27); h1 += h2; h1 = h1 * 5 + 0x52dce729;
    k2 *= c2; k2 = Rotl(k2, 33); k2 *= c1; h2 ^= k2;
    h2 = Rotl(h2, 31); h2 += h1; h2 = h2 * 5 + 0x38495ab5;
  }
  const uint8_t* tail = p + blocks * 16;
  uint64_t k1 = 0, k2 = 0;
  const size_t rest = len & 15;
  for (size_t i = rest; i > 8; --i) k2 ^= static_cast<uint64_t>(tail[i - 1]) << ((i - 9) * 8);
  if (rest > 8) { k2 *= c2; k2 = Rotl(k2, 33); k2 *= c1; h2 ^= k2; }
  for (size_t i = std::min<size_t>(rest, 8); i > 0; --i)
    k1 ^= static_cast<uint64_t>(tail[i - 1]) << ((i - 1) * 8);
  if (rest > 0) { k1 *= c1; k1 = Rotl(k1, 31); k1 *= c2; h1 ^= k1; }
  h1 ^= len; h2 ^= len;
  h1 += h2; h2 += h1;
  h1 = Fmix(h1); h2 = Fmix(h2);
  h1 += h2; h2 += h1;
  out[0] = h1;
  out[1] = h2;
}

// Field values are written with their kind and length, so that no two
// different tables write the same bytes.
void PutU64(std::string* s, uint64_t v) { s->append(reinterpret_cast<const char*>(&v), 8); }

void PutBytes(std::string* s, const amqp_bytes_t& b) {
  PutU64(s, b.len);
  if (b.len) s->append(static_cast<const char*>(b.bytes), b.len);
}

void PutTable(std::string* s, const amqp_table_t& t, bool top);

void PutField(std::string* s, const amqp_field_value_t& v) {
  s->push_back(static_cast<char>(v.kind));
  switch (v.kind) {
    case AMQP_FIELD_KIND_BOOLEAN: s->push_back(v.value.boolean ? 1 : 0); break;
    case AMQP_FIELD_KIND_I8: PutU64(s, static_cast<uint64_t>(v.value.i8)); break;
    case AMQP_FIELD_KIND_U8: PutU64(s, v.value.u8); break;
    case AMQP_FIELD_KIND_I16: PutU64(s, static_cast<uint64_t>(v.value.i16)); break;
    case AMQP_FIELD_KIND_U16: PutU64(s, v.value.u16); break;
    case AMQP_FIELD_KIND_I32: PutU64(s, static_cast<uint64_t>(v.value.i32)); break;
    case AMQP_FIELD_KIND_U32: PutU64(s, v.value.u32); break;
    case AMQP_FIELD_KIND_I64: PutU64(s, static_cast<uint64_t>(v.value.i64)); break;
    case AMQP_FIELD_KIND_U64:
    case AMQP_FIELD_KIND_TIMESTAMP: PutU64(s, v.value.u64); break;
    case AMQP_FIELD_KIND_F32: {
      uint32_t bits;
      std::memcpy(&bits, &v.value.f32, 4);
      PutU64(s, bits);
      break;
    }
    case AMQP_FIELD_KIND_F64: {
      uint64_t bits;
      std::memcpy(&bits, &v.value.f64, 8);
      PutU64(s, bits);
      break;
    }
    case AMQP_FIELD_KIND_DECIMAL:
      PutU64(s, (uint64_t{v.value.decimal.decimals} << 32) | v.value.decimal.value);
      break;
    case AMQP_FIELD_KIND_UTF8:
    case AMQP_FIELD_KIND_BYTES: PutBytes(s, v.value.bytes); break;
    case AMQP_FIELD_KIND_ARRAY:
      PutU64(s, static_cast<uint64_t>(v.value.array.num_entries));
      for (int i = 0; i < v.value.array.num_entries; ++i) PutField(s, v.value.array.entries[i]);
      break;
    case AMQP_FIELD_KIND_TABLE: PutTable(s, v.value.table, false); break;
    default: break;
  }
}

// Entries, then an end mark (no count: a skipped x-delivery-count must
// leave no trace, as the first delivery has none). The headers themselves
// (`top`) are written in a canonical order, each entry's encoding sorted
// bytewise: RabbitMQ re-encodes a message whose headers it changes (a
// quorum queue's redelivery adds x-delivery-count) with them sorted by
// name, and the redelivery must keep the first delivery's id. Nested tables
// keep their order, as the broker does.
void PutTable(std::string* s, const amqp_table_t& t, bool top) {
  if (!top) {
    for (int i = 0; i < t.num_entries; ++i) {
      s->push_back('e');
      PutBytes(s, t.entries[i].key);
      PutField(s, t.entries[i].value);
    }
    s->push_back('.');
    return;
  }
  thread_local std::vector<std::pair<size_t, size_t>> spans;  // offset, length
  spans.clear();
  const size_t start = s->size();
  for (int i = 0; i < t.num_entries; ++i) {
    const amqp_table_entry_t& e = t.entries[i];
    if (std::string_view(static_cast<const char*>(e.key.bytes), e.key.len) == kHeaderDeliveryCount)
      continue;
    const size_t from = s->size();
    s->push_back('e');
    PutBytes(s, e.key);
    PutField(s, e.value);
    spans.emplace_back(from, s->size() - from);
  }
  const size_t end = s->size();
  const std::string_view all(*s);
  std::sort(spans.begin(), spans.end(), [&](const auto& a, const auto& b) {
    return all.substr(a.first, a.second) < all.substr(b.first, b.second);
  });
  // The sorted copy goes after the entries, then replaces them.
  s->reserve(end + (end - start) + 1);
  for (const auto& [from, length] : spans) s->append(*s, from, length);
  s->erase(start, end - start);
  s->push_back('.');
}

}  // namespace

void ContentMessageId(const amqp_basic_properties_t& p, std::string_view body,
                      std::string* scratch, std::string* out) {
  std::string& s = *scratch;
  s.clear();
  // Only flagged fields: the others may hold anything.
  const amqp_flags_t f = p._flags & ~AMQP_BASIC_HEADERS_FLAG;
  PutU64(&s, f);
  // Every string property but message_id (the id this derives stands in
  // for it), in the table's order, so derived ids stay what they were.
  for (const AmqpStringProperty& field : kAmqpStringProperties)
    if (field.flag != AMQP_BASIC_MESSAGE_ID_FLAG && (f & field.flag)) PutBytes(&s, p.*field.field);
  if (f & AMQP_BASIC_DELIVERY_MODE_FLAG) s.push_back(static_cast<char>(p.delivery_mode));
  if (f & AMQP_BASIC_PRIORITY_FLAG) s.push_back(static_cast<char>(p.priority));
  if (f & AMQP_BASIC_TIMESTAMP_FLAG) PutU64(&s, p.timestamp);
  if (p._flags & AMQP_BASIC_HEADERS_FLAG) PutTable(&s, p.headers, true);
  else s.push_back('.');
  uint64_t body_hash[2];
  Murmur3(body, 0x666f78776f726b31ULL, 0x616d71702d696431ULL, body_hash);
  uint64_t h[2];
  Murmur3(s, body_hash[0], body_hash[1], h);
  char id[5 + 32];
  std::memcpy(id, "amqp-", 5);
  static constexpr char kHex[] = "0123456789abcdef";
  for (int i = 0; i < 16; ++i) {
    const uint8_t byte = static_cast<uint8_t>(h[i / 8] >> (56 - 8 * (i % 8)));
    id[5 + 2 * i] = kHex[byte >> 4];
    id[6 + 2 * i] = kHex[byte & 15];
  }
  out->assign(id, sizeof(id));
}

std::string RandomMessageId() {
  uint8_t b[16];
  size_t got = 0;
  while (got < sizeof(b)) {
    ssize_t n = getrandom(b + got, sizeof(b) - got, 0);
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  if (got < sizeof(b)) {
    // getrandom only fails before the kernel's pool is seeded (or under a
    // seccomp filter): fall back to random_device.
    std::random_device rd;
    for (uint8_t& x : b) x = static_cast<uint8_t>(rd());
  }
  b[6] = static_cast<uint8_t>((b[6] & 0x0f) | 0x40);  // version 4
  b[8] = static_cast<uint8_t>((b[8] & 0x3f) | 0x80);  // RFC 4122 variant
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
    out.push_back(kHex[b[i] >> 4]);
    out.push_back(kHex[b[i] & 15]);
  }
  return out;
}

}  // namespace foxworker
