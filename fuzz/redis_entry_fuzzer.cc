// Fuzzes what the Redis backend decodes from the server: replies as hiredis
// reads them off the socket (RESP), walked the way the reader thread walks
// an XREADGROUP / XCLAIM reply, and every stream entry's fields through
// DecodeEntryInto (redis_codec).
//
// The first input byte picks the mode:
//   even: the rest is RESP bytes from a server; every complete reply in it
//         is decoded as a read reply (streams of entries), into one reused
//         Message the way RedisBackend::Deliver reuses its deliveries;
//   odd:  the rest drives a generator of Messages; the fuzzer encodes one
//         (EncodeMessage, what XADD and the retry scripts write), sends the
//         fields through RESP and hiredis's reader, decodes the entry and
//         checks decode(encode(x)) == x.
// (Retry-set members are msgpack packed and unpacked by the Lua scripts
// inside Redis; no C++ code reads them.)
#include <fuzzer/FuzzedDataProvider.h>
#include <hiredis/hiredis.h>
#include <hiredis/read.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/backends/redis/redis_codec.h"
#include "daemon/backends/redis/redis_connection.h"

namespace {

[[noreturn]] void Fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "redis_entry_fuzzer: %s\n%s\n", what, detail.c_str());
  std::abort();
}

const std::string kPayloadField = "data";

// One read reply: [[stream, [[id, [field, value, ...]], ...]], ...], as
// RedisBackend::TakeReadReply and Deliver walk it.
void DecodeReadReply(const redisReply* r, foxworker::Message* m) {
  (void)foxworker::IsError(r);
  (void)foxworker::IsTransientError(r);
  (void)foxworker::IsErrorCode(r, "NOGROUP");
  (void)foxworker::ReplyText(r);
  if (r->type != REDIS_REPLY_ARRAY) return;
  for (size_t i = 0; i < r->elements; ++i) {
    const redisReply* stream = r->element[i];
    if (stream->type != REDIS_REPLY_ARRAY || stream->elements < 2) continue;
    (void)foxworker::ReplyText(stream->element[0]);
    const redisReply* entries = stream->element[1];
    if (entries->type != REDIS_REPLY_ARRAY) continue;
    for (size_t j = 0; j < entries->elements; ++j) {
      const redisReply* e = entries->element[j];
      if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 ||
          e->element[0]->type != REDIS_REPLY_STRING)
        continue;
      const std::string_view id(e->element[0]->str, e->element[0]->len);
      foxworker::DecodeEntryInto(id, e->element[1], kPayloadField,
                                 static_cast<uint32_t>(j % 4), m);
      (void)foxworker::EntryIdMs(std::string(id));
      // What Deliver does with the attempt (max_attempts, the dead-letter
      // reason) must not overflow.
      if (m->attempt == 0) Fail("attempt 0", std::string(id));
    }
  }
}

void DecodeWire(std::string_view wire) {
  // The daemon's builders (RedisConnection's), with their array limit.
  redisReader* reader = foxworker::NewLimitedReader();
  if (redisReaderFeed(reader, wire.data(), wire.size()) != REDIS_OK) {
    redisReaderFree(reader);
    return;
  }
  foxworker::Message m;
  for (int n = 0; n < 16; ++n) {
    void* reply = nullptr;
    if (redisReaderGetReply(reader, &reply) != REDIS_OK || reply == nullptr) break;
    DecodeReadReply(static_cast<redisReply*>(reply), &m);
    freeReplyObject(reply);
  }
  redisReaderFree(reader);
}

// A bulk string in RESP.
void AppendBulk(std::string* out, std::string_view s) {
  *out += "$" + std::to_string(s.size()) + "\r\n";
  out->append(s);
  *out += "\r\n";
}

bool IsEntryField(std::string_view name) {
  static const char* const kFields[] = {
      "data", "content_type", "content_encoding", "message_type", "type", "correlation_id",
      "reply_to", "app_id", "user_id", "expiration", "message_id", "priority", "timestamp",
      foxworker::kAttemptField, foxworker::kCopyAttemptField};
  for (const char* f : kFields)
    if (name == f) return true;
  return false;
}

void RoundTrip(FuzzedDataProvider& in) {
  foxworker::Message m;
  m.id = "1700000000000-" + std::to_string(in.ConsumeIntegral<uint16_t>());
  m.payload = in.ConsumeRandomLengthString(64);
  foxworker::Properties& p = m.props;
  for (std::string* s : {&p.content_type, &p.content_encoding, &p.message_type,
                         &p.correlation_id, &p.reply_to, &p.app_id, &p.user_id, &p.expiration,
                         &p.message_id}) {
    if (in.ConsumeBool()) *s = in.ConsumeRandomLengthString(24);
  }
  p.priority = in.ConsumeIntegral<uint8_t>();
  p.timestamp_ms = in.ConsumeBool() ? in.ConsumeIntegral<int64_t>() : 0;
  const uint32_t attempt = in.ConsumeIntegralInRange<uint32_t>(1, UINT32_MAX / 2);
  const int n = in.ConsumeIntegralInRange<int>(0, 6);
  std::string expected_id = m.id;
  bool original_id = false;
  for (int i = 0; i < n; ++i) {
    std::string name = in.ConsumeBool() ? std::string(foxworker::kOriginalIdField)
                                        : in.ConsumeRandomLengthString(16);
    if (IsEntryField(name)) continue;  // a header of that name is a property, not a header
    std::string value = in.ConsumeRandomLengthString(24);
    if (name == foxworker::kOriginalIdField && !original_id && !value.empty()) {
      original_id = true;
      expected_id = value;
    }
    m.headers.emplace_back(std::move(name), std::move(value));
  }

  const std::vector<std::string> fields = foxworker::EncodeMessage(m, kPayloadField, attempt);
  // The entry as XREADGROUP returns it, through hiredis's reader.
  std::string wire = "*1\r\n*2\r\n";
  AppendBulk(&wire, m.id);
  wire += "*" + std::to_string(fields.size()) + "\r\n";
  for (const std::string& f : fields) AppendBulk(&wire, f);
  redisReader* reader = redisReaderCreate();
  void* reply = nullptr;
  if (redisReaderFeed(reader, wire.data(), wire.size()) != REDIS_OK ||
      redisReaderGetReply(reader, &reply) != REDIS_OK || reply == nullptr)
    Fail("hiredis did not read the entry", wire);
  const redisReply* entry = static_cast<redisReply*>(reply)->element[0];

  foxworker::Message back;
  back.payload = "left over from an earlier message";
  back.headers.emplace_back("old", "header");
  foxworker::DecodeEntryInto(std::string_view(entry->element[0]->str, entry->element[0]->len),
                             entry->element[1], kPayloadField, 1, &back);
  freeReplyObject(reply);
  redisReaderFree(reader);

  const foxworker::Properties& q = back.props;
  if (back.id != expected_id) Fail("id", back.id + " != " + expected_id);
  if (back.payload != m.payload) Fail("payload", back.payload);
  if (q.content_type != p.content_type || q.content_encoding != p.content_encoding ||
      q.message_type != p.message_type || q.correlation_id != p.correlation_id ||
      q.reply_to != p.reply_to || q.app_id != p.app_id || q.user_id != p.user_id ||
      q.expiration != p.expiration || q.message_id != p.message_id)
    Fail("string properties", wire);
  if (q.priority != p.priority || q.priority_set != (p.priority != 0)) Fail("priority", wire);
  if (q.timestamp_ms != p.timestamp_ms || q.timestamp_set != (p.timestamp_ms != 0))
    Fail("timestamp", wire);
  if (back.attempt != attempt) Fail("attempt", std::to_string(back.attempt));
  if (back.headers != m.headers) Fail("headers", wire);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  if (data[0] & 1) {
    FuzzedDataProvider in(data + 1, size - 1);
    RoundTrip(in);
  } else {
    DecodeWire(std::string_view(reinterpret_cast<const char*>(data + 1), size - 1));
  }
  return 0;
}
