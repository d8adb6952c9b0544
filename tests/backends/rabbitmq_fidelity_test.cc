// What producers send is what handlers see and what copies keep (issue 16),
// against a real broker (tests/harness/rabbitmq_server).
#include <rapidjson/document.h>
#include <rapidjson/error/en.h>

#include <thread>

#include "daemon/backends/rabbitmq/amqp_message_codec.h"
#include "tests/backends/rabbitmq_test_util.h"

namespace foxworker::testing {
namespace {

amqp_field_value_t Decimal(uint8_t places, int32_t value) {
  amqp_field_value_t v;
  v.kind = AMQP_FIELD_KIND_DECIMAL;
  v.value.decimal.decimals = places;
  v.value.decimal.value = static_cast<uint32_t>(value);
  return v;
}

amqp_field_value_t Bytes(std::string_view raw) {
  amqp_field_value_t v;
  v.kind = AMQP_FIELD_KIND_BYTES;
  v.value.bytes.bytes = const_cast<char*>(raw.data());
  v.value.bytes.len = raw.size();
  return v;
}

amqp_field_value_t TableValue(amqp_table_entry_t* entries, int n) {
  amqp_field_value_t v;
  v.kind = AMQP_FIELD_KIND_TABLE;
  v.value.table = {n, entries};
  return v;
}

// Whether `text` parses as JSON with UTF-8 validation.
::testing::AssertionResult ParsesAsJson(const std::string& text) {
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseValidateEncodingFlag>(text.c_str(), text.size());
  if (!doc.HasParseError()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << rapidjson::GetParseError_En(doc.GetParseError()) << " at " << doc.GetErrorOffset()
         << " in " << text;
}

// Bug 1: the decimal's value is signed (pika's Decimal("-3.14") arrived as
// 42949669.82); bug 2: a nested byte array that is not UTF-8 made the JSON
// unparsable.
TEST(AmqpFieldRenderingTest, DecimalsAreSignedAndNestedBytesKeepTheJsonValid) {
  EXPECT_EQ(FieldValueToString(Decimal(2, -314)), "-3.14");
  EXPECT_EQ(FieldValueToString(Decimal(1, -5)), "-0.5");
  EXPECT_EQ(FieldValueToString(Decimal(3, -5)), "-0.005");
  EXPECT_EQ(FieldValueToString(Decimal(0, -7)), "-7");
  EXPECT_EQ(FieldValueToString(Decimal(2, 12345)), "123.45");
  EXPECT_EQ(FieldValueToString(Decimal(0, INT32_MIN)), "-2147483648");
  EXPECT_EQ(FieldValueToString(Decimal(2, INT32_MAX)), "21474836.47");

  const std::string raw("\xff\xfe\x00"
                        "A",
                        4);
  const std::string nul_text("a\0b", 3);
  amqp_table_entry_t inner[] = {Entry("d", Decimal(1, -15)), Entry("raw", Bytes(raw)),
                                Entry("text", Bytes(nul_text)), Entry("s", Utf8("héllo"))};
  const std::string json = FieldValueToString(TableValue(inner, 4));
  EXPECT_TRUE(ParsesAsJson(json));
  EXPECT_EQ(json, "{\"d\":-1.5,\"raw\":{\"$bytes\":\"//4AQQ==\"},\"text\":\"a\\u0000b\","
                  "\"s\":\"héllo\"}");
  // A key that is not UTF-8 keeps the JSON valid too.
  amqp_table_entry_t bad_key[] = {Entry("k\xff", Utf8("v"))};
  EXPECT_TRUE(ParsesAsJson(FieldValueToString(TableValue(bad_key, 1))));
  // Top-level byte arrays stay as they are.
  EXPECT_EQ(FieldValueToString(Bytes(raw)), raw);
}

TEST_F(RabbitMqTest, NegativeDecimalsAndNestedBinaryReachThePluginIntact) {
  daemon_ = StartDaemon(Yaml());
  ASSERT_NE(daemon_, nullptr);
  const std::string raw("\xff\xfe\x00"
                        "A",
                        4);
  amqp_table_entry_t inner[] = {Entry("dec", Decimal(1, -15)), Entry("bin", Bytes(raw))};
  amqp_table_entry_t headers[] = {Entry("dec", Decimal(2, -314)),
                                  Entry("half", Decimal(1, -5)),
                                  Entry("nested", TableValue(inner, 2))};
  amqp_basic_properties_t p = TypedProps("probe");
  p._flags |= AMQP_BASIC_HEADERS_FLAG;
  p.headers = {3, headers};
  ASSERT_TRUE(client_->Publish(queue_, "x", &p));
  ASSERT_TRUE(WaitRecords(1));
  ProbeRecord r = Records()[0];
  ASSERT_NE(r.Header("dec"), nullptr);
  EXPECT_EQ(*r.Header("dec"), "-3.14");
  EXPECT_EQ(*r.Header("half"), "-0.5");
  ASSERT_NE(r.Header("nested"), nullptr);
  EXPECT_TRUE(ParsesAsJson(*r.Header("nested")));
  EXPECT_EQ(*r.Header("nested"), "{\"dec\":-1.5,\"bin\":{\"$bytes\":\"//4AQQ==\"}}");
}


}  // namespace
}  // namespace foxworker::testing
