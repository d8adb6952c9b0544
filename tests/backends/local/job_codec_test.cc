// The local backend's job codec (properties and headers as JSON text), and
// a whole job (payload included) through a real SQLite file.
#include "daemon/backends/local/job_codec.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "daemon/backends/local/local_store.h"
#include "tests/backends/local_test_util.h"

namespace foxworker {
namespace {

using std::chrono::milliseconds;

using StringField = std::string Properties::*;
const std::vector<std::pair<const char*, StringField>>& StringFields() {
  static const std::vector<std::pair<const char*, StringField>> fields = {
      {"content_type", &Properties::content_type},
      {"content_encoding", &Properties::content_encoding},
      {"message_type", &Properties::message_type},
      {"correlation_id", &Properties::correlation_id},
      {"reply_to", &Properties::reply_to},
      {"app_id", &Properties::app_id},
      {"user_id", &Properties::user_id},
      {"expiration", &Properties::expiration},
      {"message_id", &Properties::message_id},
  };
  return fields;
}

// Every byte value, NUL and invalid UTF-8 included.
std::string AllBytes() {
  std::string s;
  for (int b = 0; b < 256; ++b) s.push_back(static_cast<char>(b));
  return s;
}

// Text that needs escaping in JSON, and some that does not.
const std::string kAwkward = std::string("quote \" backslash \\ slash / tab \t nl \n nul ") +
                             std::string(1, '\0') + " caf\xc3\xa9 \xf0\x9f\xa6\x8a end";

Properties FullProperties() {
  Properties p;
  p.content_type = "application/json";
  p.content_encoding = "gzip";
  p.message_type = "signup";
  p.correlation_id = "corr-1";
  p.reply_to = "replies";
  p.app_id = "web";
  p.user_id = "alice";
  p.expiration = "60000";
  p.message_id = "msg-9";
  p.priority = 5;
  p.timestamp_ms = 1'700'000'000'123;
  return p;
}

void ExpectSameProperties(const Properties& got, const Properties& want) {
  for (const auto& [key, field] : StringFields()) EXPECT_EQ(got.*field, want.*field) << key;
  EXPECT_EQ(got.timestamp_ms, want.timestamp_ms);
}

Properties Decoded(const std::string& json, uint8_t priority = 0) {
  Properties p;
  p.priority = priority;
  Status s = DecodeProperties(json, &p);
  EXPECT_TRUE(s.ok()) << s.ToString() << " decoding " << json;
  return p;
}

Headers DecodedHeaders(const std::string& json) {
  Headers h;
  Status s = DecodeHeaders(json, &h);
  EXPECT_TRUE(s.ok()) << s.ToString() << " decoding " << json;
  return h;
}

// ---- Properties ----

TEST(JobCodecTest, NoPropertiesEncodeAsEmptyText) {
  EXPECT_EQ(EncodeProperties(Properties{}), "");
  Properties only_priority;
  only_priority.priority = 9;  // stored in its own column
  EXPECT_EQ(EncodeProperties(only_priority), "");
  Properties p = Decoded("", 3);
  ExpectSameProperties(p, Properties{});
  EXPECT_EQ(p.priority, 3);
}

TEST(JobCodecTest, PropertiesAreAJsonObjectOfTheFieldsThatAreSet) {
  EXPECT_EQ(EncodeProperties(FullProperties()),
            "{\"content_type\":\"application/json\",\"content_encoding\":\"gzip\","
            "\"message_type\":\"signup\",\"correlation_id\":\"corr-1\",\"reply_to\":\"replies\","
            "\"app_id\":\"web\",\"user_id\":\"alice\",\"expiration\":\"60000\","
            "\"message_id\":\"msg-9\",\"timestamp_ms\":1700000000123}");
  Properties some;
  some.reply_to = "r";
  some.timestamp_ms = 0;  // unset
  EXPECT_EQ(EncodeProperties(some), "{\"reply_to\":\"r\"}");
  Properties ts;
  ts.timestamp_ms = -5;  // before 1970, still set
  EXPECT_EQ(EncodeProperties(ts), "{\"timestamp_ms\":-5}");
}

TEST(JobCodecTest, EveryPropertyRoundTripsAndThePriorityIsLeftAlone) {
  const Properties full = FullProperties();
  Properties back = Decoded(EncodeProperties(full), /*priority=*/200);
  ExpectSameProperties(back, full);
  EXPECT_EQ(back.priority, 200) << "the priority is not part of the properties JSON";
}

TEST(JobCodecTest, EachPropertyRoundTripsAlone) {
  for (const auto& [key, field] : StringFields()) {
    Properties p;
    p.*field = kAwkward;
    std::string json = EncodeProperties(p);
    EXPECT_NE(json.find(std::string("\"") + key + "\""), std::string::npos) << json;
    ExpectSameProperties(Decoded(json), p);
  }
  for (int64_t ts : {int64_t{1}, int64_t{-1}, std::numeric_limits<int64_t>::max(),
                     std::numeric_limits<int64_t>::min()}) {
    Properties p;
    p.timestamp_ms = ts;
    EXPECT_EQ(Decoded(EncodeProperties(p)).timestamp_ms, ts);
  }
}

TEST(JobCodecTest, PropertyValuesKeepEveryByte) {
  Properties p;
  p.correlation_id = AllBytes();
  p.message_id = kAwkward;
  ExpectSameProperties(Decoded(EncodeProperties(p)), p);
}

TEST(JobCodecTest, UnknownPropertyKeysAreIgnored) {
  Properties p = Decoded("{\"content_type\":\"text/plain\",\"from_the_future\":{\"x\":[1]}}");
  EXPECT_EQ(p.content_type, "text/plain");
  EXPECT_TRUE(p.message_type.empty());
}

TEST(JobCodecTest, MalformedPropertiesAreRejected) {
  for (const char* bad : {"not json", "[1,2]", "\"text\"", "42", "null",
                          "{\"content_type\":", "{\"a\":1}}", "{'a':1}"}) {
    Properties p;
    Status s = DecodeProperties(bad, &p);
    EXPECT_FALSE(s.ok()) << bad;
    EXPECT_TRUE(s.IsInvalidArgument()) << bad;
    EXPECT_EQ(s.message(), std::string("stored properties are not a JSON object: ") + bad);
  }
  // A long one is quoted in part.
  std::string long_bad = "[" + std::string(1000, '1');
  Properties p;
  Status s = DecodeProperties(long_bad, &p);
  EXPECT_EQ(s.message(), "stored properties are not a JSON object: " + long_bad.substr(0, 200));
}

// ---- Headers ----

TEST(JobCodecTest, NoHeadersEncodeAsEmptyTextAndDecodeToNone) {
  EXPECT_EQ(EncodeHeaders({}), "");
  Headers h = {{"stale", "value"}};
  ASSERT_TRUE(DecodeHeaders("", &h).ok());
  EXPECT_TRUE(h.empty()) << "decoding replaces what `out` held";
}

TEST(JobCodecTest, HeadersAreAJsonObjectInOrder) {
  EXPECT_EQ(EncodeHeaders({{"trace", "abc"}, {"tenant", "7"}}),
            "{\"trace\":\"abc\",\"tenant\":\"7\"}");
}

TEST(JobCodecTest, HeadersRoundTripInOrderWithRepeatsAndEmptyStrings) {
  const Headers headers = {{"z-last-alphabetically", "1"},
                           {"a", ""},
                           {"dup", "first"},
                           {"", "empty name"},
                           {"dup", "second"},
                           {kAwkward, kAwkward}};
  Headers back = {{"stale", "value"}};
  ASSERT_TRUE(DecodeHeaders(EncodeHeaders(headers), &back).ok());
  EXPECT_EQ(back, headers);
}

TEST(JobCodecTest, HeaderValuesKeepEveryByte) {
  const Headers headers = {{"blob", AllBytes()}, {std::string("n\0ul", 4), "x"}};
  EXPECT_EQ(DecodedHeaders(EncodeHeaders(headers)), headers);
}

// Rows edited by hand with sqlite3 may hold other JSON types.
TEST(JobCodecTest, NonStringHeaderValuesDecodeAsTheirJsonText) {
  EXPECT_EQ(DecodedHeaders("{\"n\":5,\"b\":true,\"z\":null,\"o\":{\"k\":[1,\"two\"]}}"),
            (Headers{{"n", "5"}, {"b", "true"}, {"z", "null"}, {"o", "{\"k\":[1,\"two\"]}"}}));
}

TEST(JobCodecTest, MalformedHeadersAreRejected) {
  for (const char* bad : {"nope", "[[\"a\",\"b\"]]", "\"a\"", "{\"a\":\"b\"", "{\"a\" \"b\"}"}) {
    Headers h;
    Status s = DecodeHeaders(bad, &h);
    EXPECT_FALSE(s.ok()) << bad;
    EXPECT_TRUE(s.IsInvalidArgument()) << bad;
    EXPECT_EQ(s.message(), std::string("stored headers are not a JSON object: ") + bad);
  }
}

// ---- A whole job through the file ----

class JobRoundTripTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = OpenStore(dir_.File("jobs.db"), clock_.AsFunction());
    ASSERT_NE(store_, nullptr);
  }

  // Enqueues `job`, then reads it back by GetJob and by Claim.
  void ExpectRoundTrip(const NewJob& job) {
    auto enqueued = store_->Enqueue(job);
    ASSERT_TRUE(enqueued.ok()) << enqueued.status().ToString();
    auto record = store_->GetJob(enqueued->id);
    ASSERT_TRUE(record.ok()) << record.status().ToString();
    ASSERT_TRUE(record->has_value());
    EXPECT_EQ((*record)->payload, job.payload);
    ExpectSameProperties((*record)->props, job.props);
    EXPECT_EQ((*record)->headers, job.headers);
    EXPECT_EQ((*record)->priority, job.priority);

    auto claimed = store_->Claim(job.queue, "owner", 1, milliseconds(30000), 0);
    ASSERT_TRUE(claimed.ok()) << claimed.status().ToString();
    ASSERT_EQ(claimed->jobs.size(), 1u);
    const ClaimedJob& c = claimed->jobs[0];
    EXPECT_EQ(c.id, enqueued->id);
    EXPECT_EQ(c.payload, job.payload);
    ExpectSameProperties(c.props, job.props);
    EXPECT_EQ(c.props.priority, job.priority);
    EXPECT_EQ(c.headers, job.headers);
  }

  TempDir dir_;
  FakeClock clock_;
  std::unique_ptr<LocalStore> store_;
};

TEST_F(JobRoundTripTest, EveryFieldAndABinaryPayload) {
  NewJob job = Job("q1", AllBytes() + AllBytes(), /*priority=*/5);
  job.props = FullProperties();
  job.headers = {{"trace", "abc"}, {"dup", "1"}, {"dup", "2"}, {"bin", AllBytes()}};
  ExpectRoundTrip(job);
}

TEST_F(JobRoundTripTest, EmptyPayloadNoPropertiesNoHeaders) { ExpectRoundTrip(Job("q2", "")); }

TEST_F(JobRoundTripTest, PayloadOfOnlyNulBytes) {
  ExpectRoundTrip(Job("q3", std::string(64, '\0')));
}

}  // namespace
}  // namespace foxworker
