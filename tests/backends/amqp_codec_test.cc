// The AMQP message codec without a broker: regressions found by
// fuzz/amqp_properties_fuzzer (docs/fuzzing.md).
#include <amqp.h>
#include <amqp_framing.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "daemon/backends/rabbitmq/amqp_message_codec.h"

namespace foxworker {
namespace {

amqp_field_value_t F64(double d) {
  amqp_field_value_t v;
  v.kind = AMQP_FIELD_KIND_F64;
  v.value.f64 = d;
  return v;
}

amqp_field_value_t F32(float f) {
  amqp_field_value_t v;
  v.kind = AMQP_FIELD_KIND_F32;
  v.value.f32 = f;
  return v;
}

bool ParsesAsJson(const std::string& text) {
  rapidjson::Document doc;
  doc.Parse(text.c_str(), text.size());
  return !doc.HasParseError();
}

// A float header that is NaN or infinite, inside a table or an array, made
// the JSON unparsable ({"f":} : rapidjson writes nothing for it), and alone
// rendered as "".
TEST(AmqpCodecFuzzRegressionTest, NonFiniteFloatsKeepTheJsonValid) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  amqp_table_entry_t entries[] = {
      {amqp_cstring_bytes("nan"), F64(nan)},
      {amqp_cstring_bytes("inf"), F64(inf)},
      {amqp_cstring_bytes("neg"), F32(-std::numeric_limits<float>::infinity())},
      {amqp_cstring_bytes("one"), F64(1.5)},
  };
  amqp_field_value_t table;
  table.kind = AMQP_FIELD_KIND_TABLE;
  table.value.table = {4, entries};
  const std::string json = FieldValueToString(table);
  EXPECT_TRUE(ParsesAsJson(json)) << json;
  EXPECT_EQ(json, "{\"nan\":\"NaN\",\"inf\":\"Infinity\",\"neg\":\"-Infinity\",\"one\":1.5}");

  amqp_field_value_t items[] = {F32(std::nanf("")), F64(-inf)};
  amqp_field_value_t array;
  array.kind = AMQP_FIELD_KIND_ARRAY;
  array.value.array = {2, items};
  EXPECT_EQ(FieldValueToString(array), "[\"NaN\",\"-Infinity\"]");

  EXPECT_EQ(FieldValueToString(F64(nan)), "NaN");
  EXPECT_EQ(FieldValueToString(F64(inf)), "Infinity");
  EXPECT_EQ(FieldValueToString(F32(-std::numeric_limits<float>::infinity())), "-Infinity");
  EXPECT_EQ(FieldValueToString(F64(-2.25)), "-2.25");
}

// librabbitmq-c keeps a flag word's continuation bit and the bits of further
// flag words a sender wrote; a copy kept them and encoded a second flag word,
// so its header frame was larger than HeaderFrameSize() said (and
// CutHeadersToFit could let a frame past frame_max through).
TEST(AmqpCodecFuzzRegressionTest, ACopyKeepsOnlyTheBasicPropertyFlags) {
  amqp_table_entry_t headers[] = {{amqp_cstring_bytes("h"), {}}};
  headers[0].value.kind = AMQP_FIELD_KIND_UTF8;
  headers[0].value.value.bytes = amqp_cstring_bytes("v");
  amqp_basic_properties_t p;
  p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_HEADERS_FLAG | 0x0001u | (1u << 17);
  p.content_type = amqp_cstring_bytes("text/plain");
  p.headers = {1, headers};

  OwnedProperties copy(p);
  EXPECT_EQ(copy.props()._flags, AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_HEADERS_FLAG);
  std::vector<char> buf(4096);
  const int n = amqp_encode_properties(AMQP_BASIC_CLASS,
                                       const_cast<amqp_basic_properties_t*>(&copy.props()),
                                       amqp_bytes_t{buf.size(), buf.data()});
  ASSERT_GT(n, 0);
  // Frame header and end (8), class id, weight and body size (12).
  EXPECT_EQ(copy.HeaderFrameSize(), 20u + static_cast<size_t>(n));

  Properties plain;
  plain.content_type = "text/plain";
  OwnedProperties rebuilt(plain, p._flags & ~AMQP_BASIC_HEADERS_FLAG, 0);
  EXPECT_EQ(rebuilt.props()._flags, AMQP_BASIC_CONTENT_TYPE_FLAG);
}

// amqp_table_clone refuses a header with an empty name (the wire allows it
// and RabbitMQ passes it on): a retry or dead-letter copy of such a message
// lost every header, x-death and the producer's included.
TEST(AmqpCodecFuzzRegressionTest, ACopyKeepsHeadersWithAnEmptyName) {
  amqp_field_value_t text;
  text.kind = AMQP_FIELD_KIND_UTF8;
  text.value.bytes = amqp_cstring_bytes("v");
  amqp_field_value_t nested_items[] = {text};
  amqp_field_value_t array;
  array.kind = AMQP_FIELD_KIND_ARRAY;
  array.value.array = {1, nested_items};
  amqp_table_entry_t headers[] = {{amqp_cstring_bytes("before"), text},
                                  {amqp_empty_bytes, text},
                                  {amqp_cstring_bytes("after"), array}};
  amqp_basic_properties_t p;
  p._flags = AMQP_BASIC_HEADERS_FLAG;
  p.headers = {3, headers};

  OwnedProperties copy(p);
  ASSERT_EQ(copy.props().headers.num_entries, 3);
  EXPECT_EQ(copy.HeaderText("before"), "v");
  EXPECT_TRUE(copy.HasHeader(""));
  EXPECT_EQ(copy.HeaderText(""), "v");
  EXPECT_TRUE(copy.HasHeader("after"));
  // A deep copy: the copy does not point into the original's memory.
  EXPECT_NE(copy.props().headers.entries[0].value.value.bytes.bytes, text.value.bytes.bytes);
  Message m;
  DecodeProperties(copy.props(), &m);
  ASSERT_EQ(m.headers.size(), 3u);
  EXPECT_EQ(m.headers[2].second, "[\"v\"]");
}

// x-retry-attempt and x-delivery-count near INT64_MAX: their sum
// overflowed (undefined behaviour) instead of saturating.
TEST(AmqpCodecFuzzRegressionTest, HugeAttemptHeadersSaturate) {
  amqp_field_value_t retry;
  retry.kind = AMQP_FIELD_KIND_I64;
  retry.value.i64 = INT64_MAX;
  amqp_field_value_t count;
  count.kind = AMQP_FIELD_KIND_UTF8;
  count.value.bytes = amqp_cstring_bytes("9223372036854775807");
  amqp_table_entry_t headers[] = {{amqp_cstring_bytes(kHeaderRetryAttempt), retry},
                                  {amqp_cstring_bytes(kHeaderDeliveryCount), count}};
  amqp_basic_properties_t p;
  p._flags = AMQP_BASIC_HEADERS_FLAG;
  p.headers = {2, headers};
  EXPECT_EQ(AttemptFromHeaders(p), UINT32_MAX);
  retry.value.i64 = 3;
  count.value.bytes = amqp_cstring_bytes("2");
  headers[0].value = retry;
  headers[1].value = count;
  EXPECT_EQ(AttemptFromHeaders(p), 5u);
}

}  // namespace
}  // namespace foxworker
