// Fuzzes the local backend's job codec (daemon/backends/local/job_codec):
// the JSON text of a job's properties and headers in the SQLite file, which
// anyone with `sqlite3` can edit.
//
// The first input byte picks the mode:
//   even: the rest, split at the first NUL, is the stored properties JSON and
//         the stored headers JSON, decoded as a claim decodes them;
//   odd:  the rest drives a generator of Properties and Headers (any bytes:
//         NUL, control characters, invalid UTF-8, repeated names), and the
//         fuzzer checks decode(encode(x)) == x.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "daemon/backends/local/job_codec.h"
#include "daemon/core/message.h"

namespace {

[[noreturn]] void Fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "job_codec_fuzzer: %s\n%s\n", what, detail.c_str());
  std::abort();
}

bool SameStoredProperties(const foxworker::Properties& a, const foxworker::Properties& b) {
  return a.content_type == b.content_type && a.content_encoding == b.content_encoding &&
         a.message_type == b.message_type && a.correlation_id == b.correlation_id &&
         a.reply_to == b.reply_to && a.app_id == b.app_id && a.user_id == b.user_id &&
         a.expiration == b.expiration && a.message_id == b.message_id &&
         a.timestamp_ms == b.timestamp_ms;
}

void DecodeStored(std::string_view input) {
  const size_t nul = input.find('\0');
  const std::string_view props_json = input.substr(0, nul);
  const std::string_view headers_json =
      nul == std::string_view::npos ? std::string_view() : input.substr(nul + 1);
  foxworker::Properties p;
  if (foxworker::DecodeProperties(props_json, &p).ok()) {
    // What decoded encodes and decodes to the same (the stored form is
    // stable once written by us).
    foxworker::Properties again;
    const std::string json = foxworker::EncodeProperties(p);
    if (!foxworker::DecodeProperties(json, &again).ok()) Fail("re-encoded properties", json);
    if (!SameStoredProperties(p, again)) Fail("properties re-encode", json);
  }
  foxworker::Headers h;
  if (foxworker::DecodeHeaders(headers_json, &h).ok()) {
    foxworker::Headers again;
    const std::string json = foxworker::EncodeHeaders(h);
    if (!foxworker::DecodeHeaders(json, &again).ok() || again != h) Fail("headers re-encode", json);
  }
}

void RoundTrip(FuzzedDataProvider& in) {
  foxworker::Properties p;
  for (std::string* s : {&p.content_type, &p.content_encoding, &p.message_type,
                         &p.correlation_id, &p.reply_to, &p.app_id, &p.user_id, &p.expiration,
                         &p.message_id}) {
    if (in.ConsumeBool()) *s = in.ConsumeRandomLengthString(40);
  }
  if (in.ConsumeBool()) p.timestamp_ms = in.ConsumeIntegral<int64_t>();
  foxworker::Headers h;
  const int n = in.ConsumeIntegralInRange<int>(0, 8);
  for (int i = 0; i < n; ++i) {
    std::string name = in.ConsumeRandomLengthString(20);
    std::string value = in.ConsumeRandomLengthString(40);
    h.emplace_back(std::move(name), std::move(value));
  }

  const std::string props_json = foxworker::EncodeProperties(p);
  foxworker::Properties p2;
  foxworker::Status s = foxworker::DecodeProperties(props_json, &p2);
  if (!s.ok()) Fail("encoded properties do not decode", props_json + "\n" + s.message());
  if (!SameStoredProperties(p, p2)) Fail("properties: decode(encode(x)) != x", props_json);
  if (p2.timestamp_set != (p.timestamp_ms != 0)) Fail("timestamp_set", props_json);

  const std::string headers_json = foxworker::EncodeHeaders(h);
  foxworker::Headers h2;
  s = foxworker::DecodeHeaders(headers_json, &h2);
  if (!s.ok()) Fail("encoded headers do not decode", headers_json + "\n" + s.message());
  if (h2 != h) Fail("headers: decode(encode(x)) != x", headers_json);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  if (data[0] & 1) {
    FuzzedDataProvider in(data + 1, size - 1);
    RoundTrip(in);
  } else {
    DecodeStored(std::string_view(reinterpret_cast<const char*>(data + 1), size - 1));
  }
  return 0;
}
