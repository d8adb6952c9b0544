// Clocks and time formatting shared by the core and the backends.
#ifndef FOXWORKER_BASE_CLOCK_H_
#define FOXWORKER_BASE_CLOCK_H_

#include <chrono>
#include <cstdint>
#include <string>

namespace foxworker {

inline uint64_t MonotonicNs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

// Unix time in nanoseconds.
inline int64_t WallNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

inline int64_t WallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Unix time in milliseconds, rounded up: a due time of WallMsCeil() + delay,
// compared against WallMs(), is never reached before delay has passed (with
// WallMs() the sub-millisecond part is lost and a job can run up to 1 ms early).
inline int64_t WallMsCeil() {
  return std::chrono::ceil<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// "2026-11-22T22:53:51.123Z"
std::string FormatIso8601Utc(int64_t unix_ms);

}  // namespace foxworker

#endif  // FOXWORKER_BASE_CLOCK_H_
