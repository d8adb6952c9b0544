#include "daemon/base/units.h"

#include <array>
#include <charconv>
#include <cstdio>
#include <limits>

namespace foxworker {
namespace {

// A non-negative decimal number as written: value = mantissa / scale, where
// scale is 10^(digits after the point).
struct Decimal {
  uint64_t mantissa = 0;
  uint64_t scale = 1;
};

// At most 19 significant digits keeps the mantissa and the scale below 2^64,
// and still reads every millisecond or byte count up to INT64_MAX (19 digits)
// written out whole: FormatDuration's "<n>ms" for the largest durations.
constexpr int kMaxDigits = 19;

enum class NumberError { kNone, kMissing, kTooLong };

// Reads "<digits>" or "<digits>.<digits>" from the front of `text`; `rest`
// receives what follows.
NumberError ReadDecimal(std::string_view text, Decimal* number, std::string_view* rest) {
  size_t i = 0;
  int digits = 0;
  auto read_digits = [&](bool fraction) {
    size_t start = i;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      if (++digits > kMaxDigits) return false;
      number->mantissa = number->mantissa * 10 + static_cast<uint64_t>(text[i] - '0');
      if (fraction) number->scale *= 10;
      ++i;
    }
    return i > start || !fraction;
  };
  *number = Decimal{};
  if (!read_digits(false)) return NumberError::kTooLong;
  if (i == 0) return NumberError::kMissing;
  if (i < text.size() && text[i] == '.') {
    ++i;
    if (!read_digits(true)) {
      return digits > kMaxDigits ? NumberError::kTooLong : NumberError::kMissing;
    }
  }
  *rest = text.substr(i);
  return NumberError::kNone;
}

struct Unit {
  std::string_view suffix;
  uint64_t multiplier;
};

std::string Quoted(std::string_view text) {
  std::string out = "\"";
  out.append(text);
  out += '"';
  return out;
}

// Parses "<decimal><suffix>" into a whole number of base units (milliseconds,
// bytes). `what` names the kind of value in errors, `expected` describes the
// accepted units, `base_name` the base unit for fractional results.
Result<uint64_t> ParseScaled(std::string_view text, const Unit* units, size_t unit_count,
                             std::string_view what, std::string_view expected,
                             std::string_view base_name) {
  auto fail = [&](std::string_view why) {
    return Status::InvalidArgument("invalid " + std::string(what) + " " + Quoted(text) + ": " +
                                   std::string(why));
  };
  if (text == "0") return uint64_t{0};
  if (!text.empty() && text[0] == '-') return fail("must not be negative");
  Decimal number;
  std::string_view suffix;
  switch (ReadDecimal(text, &number, &suffix)) {
    case NumberError::kNone:
      break;
    case NumberError::kMissing:
      return fail("expected a number followed by " + std::string(expected));
    case NumberError::kTooLong:
      return fail("out of range");
  }
  if (suffix.empty()) {
    return fail("a unit is required; expected a number followed by " + std::string(expected));
  }
  for (size_t u = 0; u < unit_count; ++u) {
    if (suffix != units[u].suffix) continue;
    unsigned __int128 scaled =
        static_cast<unsigned __int128>(number.mantissa) * units[u].multiplier;
    if (scaled % number.scale != 0) {
      return fail("not a whole number of " + std::string(base_name));
    }
    scaled /= number.scale;
    if (scaled > static_cast<unsigned __int128>(std::numeric_limits<int64_t>::max())) {
      return fail("out of range");
    }
    return static_cast<uint64_t>(scaled);
  }
  return fail("expected a number followed by " + std::string(expected));
}

constexpr uint64_t kSecond = 1000;
constexpr uint64_t kMinute = 60 * kSecond;
constexpr uint64_t kHour = 60 * kMinute;
constexpr uint64_t kDay = 24 * kHour;

constexpr std::array<Unit, 5> kDurationUnits = {
    {{"ms", 1}, {"s", kSecond}, {"m", kMinute}, {"h", kHour}, {"d", kDay}}};

constexpr uint64_t kKiB = 1024;
constexpr std::array<Unit, 9> kSizeUnits = {{
    {"B", 1},
    {"KB", 1000},
    {"MB", 1000 * 1000},
    {"GB", 1000 * 1000 * 1000},
    {"TB", 1000ULL * 1000 * 1000 * 1000},
    {"KiB", kKiB},
    {"MiB", kKiB* kKiB},
    {"GiB", kKiB* kKiB* kKiB},
    {"TiB", kKiB* kKiB* kKiB* kKiB},
}};

// The decimal text of `value / divisor` when it has at most `max_fraction`
// digits after the point, else "".
std::string ExactQuotient(uint64_t value, uint64_t divisor, int max_fraction) {
  uint64_t whole = value / divisor;
  uint64_t remainder = value % divisor;
  std::string out = std::to_string(whole);
  if (remainder == 0) return out;
  out += '.';
  for (int i = 0; i < max_fraction && remainder != 0; ++i) {
    unsigned __int128 r = static_cast<unsigned __int128>(remainder) * 10;
    out += static_cast<char>('0' + static_cast<int>(r / divisor));
    remainder = static_cast<uint64_t>(r % divisor);
  }
  return remainder == 0 ? out : std::string();
}

}  // namespace

Result<Duration> ParseDuration(std::string_view text) {
  Result<uint64_t> ms = ParseScaled(text, kDurationUnits.data(), kDurationUnits.size(), "duration",
                                    "ms, s, m, h or d", "milliseconds");
  if (!ms.ok()) return ms.status();
  return Duration(static_cast<Duration::rep>(*ms));
}

Result<double> ParseRate(std::string_view text) {
  auto fail = [&](std::string_view why) {
    return Status::InvalidArgument("invalid rate " + Quoted(text) + ": " + std::string(why));
  };
  constexpr std::string_view kExpected = "expected a number followed by /s, /m or /h";
  if (!text.empty() && text[0] == '-') return fail("must not be negative");
  Decimal number;
  std::string_view suffix;
  switch (ReadDecimal(text, &number, &suffix)) {
    case NumberError::kNone:
      break;
    case NumberError::kMissing:
      return fail(kExpected);
    case NumberError::kTooLong:
      return fail("out of range");
  }
  double per;
  if (suffix == "/s") {
    per = 1;
  } else if (suffix == "/m") {
    per = 60;
  } else if (suffix == "/h") {
    per = 3600;
  } else if (suffix.empty()) {
    return fail("a unit is required; " + std::string(kExpected));
  } else {
    return fail(kExpected);
  }
  if (number.mantissa == 0) return fail("must be greater than zero");
  // The number as the nearest double (from_chars rounds correctly; the
  // mantissa alone does not above 2^53), then per second: FormatRate relies
  // on exactly these two roundings to print a text that reads back the same.
  const std::string_view digits = text.substr(0, text.size() - suffix.size());
  double value = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value,
                                   std::chars_format::fixed);
  if (ec != std::errc() || end != digits.data() + digits.size()) return fail(kExpected);
  return value / per;
}

Result<uint64_t> ParseSize(std::string_view text) {
  return ParseScaled(text, kSizeUnits.data(), kSizeUnits.size(), "size",
                     "B, KB, MB, GB, TB, KiB, MiB, GiB or TiB", "bytes");
}

std::string FormatSize(uint64_t bytes) {
  if (bytes == 0) return "0";
  constexpr std::pair<uint64_t, const char*> kUnits[] = {
      {1ull << 40, "TiB"}, {1ull << 30, "GiB"}, {1ull << 20, "MiB"}, {1ull << 10, "KiB"}};
  for (const auto& [size, name] : kUnits)
    if (bytes % size == 0) return std::to_string(bytes / size) + name;
  return std::to_string(bytes) + "B";
}

std::string FormatDuration(Duration d) {
  Duration::rep count = d.count();
  if (count == 0) return "0";
  std::string sign;
  uint64_t ms;
  if (count < 0) {
    sign = "-";
    ms = static_cast<uint64_t>(-(count + 1)) + 1;  // no overflow at the minimum
  } else {
    ms = static_cast<uint64_t>(count);
  }
  // Try every unit; keep the shortest exact text. On a tie a whole number
  // wins ("1001ms", not "1.001s"), then the larger unit.
  std::string best;
  auto better = [](const std::string& a, const std::string& b) {
    if (a.size() != b.size()) return a.size() < b.size();
    return a.find('.') == std::string::npos && b.find('.') != std::string::npos;
  };
  for (auto it = kDurationUnits.rbegin(); it != kDurationUnits.rend(); ++it) {
    // A day is 2^10 * 3^3 * 5^5 ms, so an exact quotient never needs more
    // than 10 fraction digits.
    std::string number = ExactQuotient(ms, it->multiplier, 10);
    if (number.empty()) continue;
    std::string text = number + std::string(it->suffix);
    if (best.empty() || better(text, best)) best = std::move(text);
  }
  return sign + best;
}

}  // namespace foxworker
