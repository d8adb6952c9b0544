// Parsing and printing of the unit-suffixed values used in the config file:
// durations ("250ms", "30s", "1.5h"), rates ("100/s") and sizes ("64KiB").
//
// All parsers are strict: no surrounding spaces, no space between number and
// unit, and a unit is required (the only exception is a bare "0" for
// durations and sizes). Error messages quote the offending text and say what
// was expected.
#ifndef FOXWORKER_BASE_UNITS_H_
#define FOXWORKER_BASE_UNITS_H_

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "daemon/base/status.h"

namespace foxworker {

// Every duration in the daemon's settings, in whole milliseconds.
using Duration = std::chrono::milliseconds;

// "<number><unit>" with unit ms, s, m, h or d; the number may have a decimal
// fraction ("1.5s") as long as the result is a whole number of milliseconds.
// "0" alone means zero. Negative durations are rejected.
Result<Duration> ParseDuration(std::string_view text);

// "<number>/<unit>" with unit s, m or h; returns events per second. The rate
// must be greater than zero.
Result<double> ParseRate(std::string_view text);

// "<number><unit>" in bytes with unit B, KB, MB, GB, TB (powers of 1000) or
// KiB, MiB, GiB, TiB (powers of 1024); "0" alone means zero. A decimal
// fraction is allowed when the result is a whole number of bytes ("1.5KiB").
Result<uint64_t> ParseSize(std::string_view text);
// A text ParseSize() reads back as exactly `bytes`: "512MiB", "1000B", "0".
std::string FormatSize(uint64_t bytes);

// The shortest text that ParseDuration() reads back as exactly `d`:
// "30s", "250ms", "5m", "1.5s", "0".
std::string FormatDuration(Duration d);

}  // namespace foxworker

#endif  // FOXWORKER_BASE_UNITS_H_
