#include "daemon/base/units.h"
#include "daemon/config/yaml_writer.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <initializer_list>

namespace foxworker {
namespace {

using std::chrono::milliseconds;

Duration DurationOf(std::string_view text) {
  Result<Duration> d = ParseDuration(text);
  EXPECT_TRUE(d.ok()) << text << ": " << d.status().ToString();
  return d.ok() ? *d : Duration(-1);
}

std::string DurationError(std::string_view text) {
  Result<Duration> d = ParseDuration(text);
  EXPECT_FALSE(d.ok()) << text << " parsed";
  return d.ok() ? "" : d.status().message();
}

TEST(ParseDurationTest, EveryUnit) {
  EXPECT_EQ(DurationOf("250ms"), milliseconds(250));
  EXPECT_EQ(DurationOf("30s"), milliseconds(30000));
  EXPECT_EQ(DurationOf("5m"), milliseconds(300000));
  EXPECT_EQ(DurationOf("1h"), milliseconds(3600000));
  EXPECT_EQ(DurationOf("1d"), milliseconds(86400000));
  EXPECT_EQ(DurationOf("0ms"), milliseconds(0));
  EXPECT_EQ(DurationOf("0s"), milliseconds(0));
}

TEST(ParseDurationTest, ZeroNeedsNoUnit) { EXPECT_EQ(DurationOf("0"), milliseconds(0)); }

TEST(ParseDurationTest, Fractions) {
  EXPECT_EQ(DurationOf("1.5s"), milliseconds(1500));
  EXPECT_EQ(DurationOf("0.25s"), milliseconds(250));
  EXPECT_EQ(DurationOf("1.5m"), milliseconds(90000));
  EXPECT_EQ(DurationOf("0.001s"), milliseconds(1));
  EXPECT_EQ(DurationOf("2.50h"), milliseconds(9000000));
}

TEST(ParseDurationTest, Errors) {
  EXPECT_EQ(DurationError("30 sec"),
            "invalid duration \"30 sec\": expected a number followed by ms, s, m, h or d");
  EXPECT_EQ(DurationError("30"),
            "invalid duration \"30\": a unit is required; expected a number followed by ms, s, "
            "m, h or d");
  EXPECT_EQ(DurationError(""),
            "invalid duration \"\": expected a number followed by ms, s, m, h or d");
  EXPECT_EQ(DurationError("s"),
            "invalid duration \"s\": expected a number followed by ms, s, m, h or d");
  EXPECT_EQ(DurationError("30sec"),
            "invalid duration \"30sec\": expected a number followed by ms, s, m, h or d");
  EXPECT_EQ(DurationError("5M"),
            "invalid duration \"5M\": expected a number followed by ms, s, m, h or d");
  EXPECT_EQ(DurationError("1.5ms"),
            "invalid duration \"1.5ms\": not a whole number of milliseconds");
  EXPECT_EQ(DurationError("0.0001s"),
            "invalid duration \"0.0001s\": not a whole number of milliseconds");
  EXPECT_EQ(DurationError("-5s"), "invalid duration \"-5s\": must not be negative");
  EXPECT_EQ(DurationError("1.s"),
            "invalid duration \"1.s\": expected a number followed by ms, s, m, h or d");
  EXPECT_EQ(DurationError(".5s"),
            "invalid duration \".5s\": expected a number followed by ms, s, m, h or d");
  EXPECT_EQ(DurationError(" 5s"),
            "invalid duration \" 5s\": expected a number followed by ms, s, m, h or d");
  EXPECT_EQ(DurationError("5s "),
            "invalid duration \"5s \": expected a number followed by ms, s, m, h or d");
  EXPECT_EQ(DurationError("999999999999999d"),
            "invalid duration \"999999999999999d\": out of range");
  EXPECT_EQ(DurationError("12345678901234567890ms"),
            "invalid duration \"12345678901234567890ms\": out of range");
  EXPECT_EQ(DurationError("9223372036854775808ms"),
            "invalid duration \"9223372036854775808ms\": out of range");
}

TEST(FormatDurationTest, ShortestExact) {
  EXPECT_EQ(FormatDuration(milliseconds(0)), "0");
  EXPECT_EQ(FormatDuration(milliseconds(30000)), "30s");
  EXPECT_EQ(FormatDuration(milliseconds(250)), "250ms");
  EXPECT_EQ(FormatDuration(milliseconds(300000)), "5m");
  EXPECT_EQ(FormatDuration(milliseconds(3600000)), "1h");
  EXPECT_EQ(FormatDuration(milliseconds(86400000)), "1d");
  EXPECT_EQ(FormatDuration(milliseconds(1500)), "1.5s");
  EXPECT_EQ(FormatDuration(milliseconds(90000)), "90s");
  EXPECT_EQ(FormatDuration(milliseconds(129600000)), "36h");
  EXPECT_EQ(FormatDuration(milliseconds(1001)), "1001ms");
  EXPECT_EQ(FormatDuration(milliseconds(-5000)), "-5s");
}

TEST(FormatDurationTest, ParsesBackExactly) {
  for (int64_t ms : {1LL, 7LL, 999LL, 1000LL, 1250LL, 59999LL, 60000LL, 61000LL, 3599999LL,
                     5400000LL, 86399999LL, 86400000LL, 129600000LL, 31536000000LL}) {
    std::string text = FormatDuration(milliseconds(ms));
    EXPECT_EQ(DurationOf(text), milliseconds(ms)) << text;
  }
  // Found by fuzz/units_fuzzer: durations of 19 digits in milliseconds
  // printed as "<n>ms" that ParseDuration rejected (it read 18 digits).
  for (int64_t ms : std::initializer_list<int64_t>{4781767478204227808, 1000000000000000001,
                                                  INT64_MAX}) {
    std::string text = FormatDuration(milliseconds(ms));
    EXPECT_EQ(DurationOf(text), milliseconds(ms)) << text;
  }
  for (int64_t ms = 0; ms < 200000; ms += 37) {
    ASSERT_EQ(DurationOf(FormatDuration(milliseconds(ms))), milliseconds(ms));
  }
}

// Found by fuzz/units_fuzzer: a rate with 18 decimal places printed in
// exponent form ("6.9333333333333334e-18/s"), which ParseRate refuses.
TEST(FormatRateTest, TinyRatesParseBack) {
  for (const char* text : {"0.000000000000000416/m", "0.000000000000000001/s", "0.5/h"}) {
    Result<double> rate = ParseRate(text);
    ASSERT_TRUE(rate.ok()) << text;
    Result<double> back = ParseRate(FormatRate(*rate));
    ASSERT_TRUE(back.ok()) << FormatRate(*rate);
    EXPECT_EQ(*back, *rate) << FormatRate(*rate);
  }
}

// Found by fuzz/units_fuzzer: 0.010000000902180578/h read back as a rate
// whose rate * 3600 is an ulp away from that number, and FormatRate fell
// back to exponent form, which ParseRate refuses.
TEST(FormatRateTest, RatesWhoseUnitMultipleIsAnUlpOffParseBack) {
  for (const char* text : {"0.010000000902180578/h", "0.010000000902180578/m",
                           "123456.78901234567/h", "0.3333333333333333/m"}) {
    Result<double> rate = ParseRate(text);
    ASSERT_TRUE(rate.ok()) << text;
    const std::string printed = FormatRate(*rate);
    EXPECT_EQ(printed.find('e'), std::string::npos) << printed;
    Result<double> back = ParseRate(printed);
    ASSERT_TRUE(back.ok()) << printed;
    EXPECT_EQ(*back, *rate) << text << " -> " << printed;
  }
}

TEST(ParseRateTest, EveryUnit) {
  EXPECT_DOUBLE_EQ(*ParseRate("100/s"), 100.0);
  EXPECT_DOUBLE_EQ(*ParseRate("10/m"), 10.0 / 60);
  EXPECT_DOUBLE_EQ(*ParseRate("5/h"), 5.0 / 3600);
  EXPECT_DOUBLE_EQ(*ParseRate("0.5/s"), 0.5);
}

TEST(ParseRateTest, Errors) {
  auto error = [](std::string_view text) {
    Result<double> r = ParseRate(text);
    EXPECT_FALSE(r.ok()) << text;
    return r.ok() ? "" : r.status().message();
  };
  EXPECT_EQ(error("100"),
            "invalid rate \"100\": a unit is required; expected a number followed by /s, /m or /h");
  EXPECT_EQ(error("100/d"), "invalid rate \"100/d\": expected a number followed by /s, /m or /h");
  EXPECT_EQ(error("100 /s"), "invalid rate \"100 /s\": expected a number followed by /s, /m or /h");
  EXPECT_EQ(error("/s"), "invalid rate \"/s\": expected a number followed by /s, /m or /h");
  EXPECT_EQ(error("0/s"), "invalid rate \"0/s\": must be greater than zero");
  EXPECT_EQ(error("-1/s"), "invalid rate \"-1/s\": must not be negative");
}

TEST(ParseSizeTest, EveryUnit) {
  EXPECT_EQ(*ParseSize("0"), 0u);
  EXPECT_EQ(*ParseSize("512B"), 512u);
  EXPECT_EQ(*ParseSize("10KB"), 10000u);
  EXPECT_EQ(*ParseSize("3MB"), 3000000u);
  EXPECT_EQ(*ParseSize("2GB"), 2000000000u);
  EXPECT_EQ(*ParseSize("1TB"), 1000000000000u);
  EXPECT_EQ(*ParseSize("64KiB"), 65536u);
  EXPECT_EQ(*ParseSize("1MiB"), 1048576u);
  EXPECT_EQ(*ParseSize("1GiB"), 1073741824u);
  EXPECT_EQ(*ParseSize("1TiB"), 1099511627776u);
  EXPECT_EQ(*ParseSize("1.5KiB"), 1536u);
}

TEST(ParseSizeTest, Errors) {
  auto error = [](std::string_view text) {
    Result<uint64_t> r = ParseSize(text);
    EXPECT_FALSE(r.ok()) << text;
    return r.ok() ? "" : r.status().message();
  };
  constexpr std::string_view kExpected =
      "expected a number followed by B, KB, MB, GB, TB, KiB, MiB, GiB or TiB";
  EXPECT_EQ(error("512"), "invalid size \"512\": a unit is required; " + std::string(kExpected));
  EXPECT_EQ(error("10kb"), "invalid size \"10kb\": " + std::string(kExpected));
  EXPECT_EQ(error("1 MiB"), "invalid size \"1 MiB\": " + std::string(kExpected));
  EXPECT_EQ(error("0.5B"), "invalid size \"0.5B\": not a whole number of bytes");
  EXPECT_EQ(error("-1B"), "invalid size \"-1B\": must not be negative");
  EXPECT_EQ(error("99999999TiB"), "invalid size \"99999999TiB\": out of range");
}

}  // namespace
}  // namespace foxworker
