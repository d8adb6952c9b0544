// Fuzzes the small text parsers of config values: durations, sizes and rates
// (daemon/base/units), listen addresses, AMQP and Redis URLs, quoting for
// --check-config output.
//
// Checks the round trips the config printer relies on:
//   ParseDuration(FormatDuration(d)) == d for every d >= 0 (a parsed one
//   and one made of the first 8 input bytes);
//   ParseRate(FormatRate(r)) == r exactly; ShortestText reads back exactly.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "daemon/backends/rabbitmq/amqp_url.h"
#include "daemon/backends/redis/redis_config.h"
#include "daemon/backends/redis/redis_url.h"
#include "daemon/base/units.h"
#include "daemon/config/listen_address.h"
#include "daemon/config/yaml_writer.h"

namespace {

[[noreturn]] void Fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "units_fuzzer: %s: %s\n", what, detail.c_str());
  std::abort();
}

void CheckDuration(foxworker::Duration d) {
  const std::string text = foxworker::FormatDuration(d);
  if (d.count() < 0) {
    if (text.empty() || text[0] != '-') Fail("negative duration printed without a sign", text);
    return;
  }
  foxworker::Result<foxworker::Duration> back = foxworker::ParseDuration(text);
  if (!back.ok()) Fail("FormatDuration output does not parse", text + ": " + back.status().message());
  if (*back != d) Fail("FormatDuration round trip", text);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  if (size >= 8) {
    int64_t raw;
    std::memcpy(&raw, data, 8);
    CheckDuration(foxworker::Duration(raw));
  }

  foxworker::Result<foxworker::Duration> d = foxworker::ParseDuration(text);
  if (d.ok()) {
    if (d->count() < 0) Fail("ParseDuration returned a negative duration", std::string(text));
    CheckDuration(*d);
  } else if (d.status().message().empty()) {
    Fail("ParseDuration error without a message", std::string(text));
  }

  foxworker::Result<uint64_t> s = foxworker::ParseSize(text);
  if (s.ok() && *s > static_cast<uint64_t>(INT64_MAX)) Fail("ParseSize out of range", std::string(text));

  foxworker::Result<double> r = foxworker::ParseRate(text);
  if (r.ok()) {
    if (!(*r > 0) || !std::isfinite(*r)) Fail("ParseRate not positive and finite", std::string(text));
    const std::string printed = foxworker::FormatRate(*r);
    foxworker::Result<double> back = foxworker::ParseRate(printed);
    if (!back.ok() || *back != *r) Fail("FormatRate round trip", std::string(text) + " -> " + printed);
    const std::string shortest = foxworker::ShortestText(*r);
    if (std::strtod(shortest.c_str(), nullptr) != *r)
      Fail("ShortestText round trip", std::string(text) + " -> " + shortest);
  }

  (void)foxworker::ParseListenAddress(text);
  (void)foxworker::IsValidAmqpUrl(text);
  foxworker::RedisBackendOptions options;
  if (foxworker::ParseRedisUrl(text, &options).ok()) (void)foxworker::RedactedRedisUrl(options);
  (void)foxworker::Quote(text);
  (void)foxworker::Quote(text, foxworker::Quoting::kKey);
  return 0;
}
