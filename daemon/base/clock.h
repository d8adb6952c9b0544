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

// Call first in main(), before any thread exists. With TZ unset, glibc
// treats every mktime() (glog calls one per log line) as a possible time
// zone change: it frees and re-allocates its copy of the zone name and reads
// /etc/localtime again, while another thread's localtime_r reads the same
// state: the data race ThreadSanitizer reports, and a stat() per log line.
// Setting TZ to the same default (":/etc/localtime", what glibc reads when
// TZ is unset) makes those calls see "no change". An operator's own TZ is
// kept. A zone file replaced while the daemon runs applies after a restart.
void PinLocalTimeZone();

// "2026-11-22T22:53:51.123Z"
std::string FormatIso8601Utc(int64_t unix_ms);

}  // namespace foxworker

#endif  // FOXWORKER_BASE_CLOCK_H_
