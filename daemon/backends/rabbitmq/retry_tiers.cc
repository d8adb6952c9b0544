#include "daemon/backends/rabbitmq/retry_tiers.h"

#include <cmath>
#include <iterator>

namespace foxworker {
namespace {

// Roughly 1-2-5 steps: neighbours differ by at most 2.5x, so the nearest
// tier is within ~60% of the requested delay and usually much closer.
constexpr int64_t kTiersMs[] = {
    100,       250,       500,        1000,       2000,       5000,       10000,
    15000,     30000,     60000,      120000,     300000,     600000,     900000,
    1800000,   3600000,   7200000,    14400000,   28800000,   43200000,   86400000};

}  // namespace

Duration RetryTierFor(Duration delay) {
  const double ms = static_cast<double>(delay.count());
  if (ms < kTiersMs[0] / 2.0) return Duration::zero();
  int64_t best = kTiersMs[0];
  double best_distance = INFINITY;
  for (int64_t tier : kTiersMs) {
    double distance = std::fabs(std::log(ms / static_cast<double>(tier)));
    if (distance < best_distance) {
      best_distance = distance;
      best = tier;
    }
  }
  return Duration(best);
}

std::string RetryTierName(Duration tier) {
  int64_t ms = tier.count();
  if (ms % 3600000 == 0) return std::to_string(ms / 3600000) + "h";
  if (ms % 60000 == 0) return std::to_string(ms / 60000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

}  // namespace foxworker
