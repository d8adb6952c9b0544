#include "daemon/base/clock.h"

#include <cstdio>
#include <cstdlib>
#include <ctime>

namespace foxworker {

void PinLocalTimeZone() {
  if (std::getenv("TZ") == nullptr) setenv("TZ", ":/etc/localtime", /*overwrite=*/0);
  tzset();
}

std::string FormatIso8601Utc(int64_t unix_ms) {
  const time_t secs = static_cast<time_t>(unix_ms / 1000);
  const int millis = static_cast<int>(unix_ms % 1000);
  struct tm tm_utc;
  gmtime_r(&secs, &tm_utc);
  char buf[96];
  snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm_utc.tm_year + 1900,
           tm_utc.tm_mon + 1, tm_utc.tm_mday, tm_utc.tm_hour, tm_utc.tm_min, tm_utc.tm_sec,
           millis < 0 ? 0 : millis);
  return buf;
}

}  // namespace foxworker
