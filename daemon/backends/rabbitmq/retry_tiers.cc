#include "daemon/backends/rabbitmq/retry_tiers.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iterator>

#include "daemon/base/units.h"
#include "daemon/core/retry_policy.h"

namespace foxworker {
namespace {

// Steps for requested delays: neighbours differ by at most 2.5x.
constexpr int64_t kLadderMs[] = {
    100,      250,      500,      1000,     2000,     5000,     10000,    15000,
    30000,    60000,    120000,   300000,   600000,   900000,   1800000,  3600000,
    7200000,  14400000, 28800000, 43200000, 86400000};

// `ms` rounded up to three significant digits (1357.4 -> 1360, 57 -> 57).
int64_t RoundUp3(double ms) {
  if (ms <= 1000) return static_cast<int64_t>(std::ceil(ms - 1e-9));
  double step = std::pow(10.0, std::floor(std::log10(ms)) - 2);
  return static_cast<int64_t>(std::ceil(ms / step - 1e-9) * step);
}

}  // namespace

Duration LongestJitteredDelay(const RetryPolicyOptions& policy, Duration base) {
  double top = static_cast<double>(base.count());
  if (!policy.full_jitter) top *= 1.0 + policy.jitter;
  top = std::min(top, static_cast<double>(policy.max.count()));
  return Duration(static_cast<int64_t>(std::ceil(top - 1e-9)));
}

std::vector<RetryTier> ComputeRetryTiers(const RetryPolicyOptions& policy, size_t max_tiers) {
  std::vector<RetryTier> tiers;
  auto add = [&](int64_t ms, bool from_policy) {
    if (ms > 0) tiers.push_back({Duration(ms), from_policy});
  };
  RetryPolicy rp(policy, [] { return 0.0; });
  for (int attempt = 1; attempt < policy.max_attempts; ++attempt) {
    Duration base = rp.BaseDelay(static_cast<uint32_t>(attempt));
    add(RoundUp3(static_cast<double>(LongestJitteredDelay(policy, base).count())), true);
    if (base >= policy.max) break;  // every later attempt has the same delay
  }
  // Requested delays are capped at max; published ones may reach 24h.
  add(policy.max.count(), true);
  for (int64_t ms : kLadderMs) add(ms, false);
  std::sort(tiers.begin(), tiers.end(), [](const RetryTier& a, const RetryTier& b) {
    return a.ttl < b.ttl || (a.ttl == b.ttl && a.policy > b.policy);
  });
  // One tier per TTL (a policy delay wins over an equal ladder step).
  tiers.erase(std::unique(tiers.begin(), tiers.end(),
                          [](const RetryTier& a, const RetryTier& b) { return a.ttl == b.ttl; }),
              tiers.end());
  // Too many: drop the tier closest to the next longer one, which then takes
  // its delays; ladder steps go first. The longest tier always stays.
  max_tiers = std::max<size_t>(1, max_tiers);
  while (tiers.size() > max_tiers) {
    bool any_ladder = std::any_of(tiers.begin(), std::prev(tiers.end()),
                                  [](const RetryTier& t) { return !t.policy; });
    size_t best = 0;
    double best_ratio = INFINITY;
    for (size_t i = 0; i + 1 < tiers.size(); ++i) {
      if (any_ladder && tiers[i].policy) continue;
      double ratio =
          static_cast<double>(tiers[i + 1].ttl.count()) / static_cast<double>(tiers[i].ttl.count());
      if (ratio < best_ratio) {
        best_ratio = ratio;
        best = i;
      }
    }
    tiers.erase(tiers.begin() + static_cast<std::ptrdiff_t>(best));
  }
  return tiers;
}

const RetryTier* FindRetryTier(const std::vector<RetryTier>& tiers, Duration longest) {
  if (longest <= Duration::zero()) return nullptr;
  auto it = std::lower_bound(tiers.begin(), tiers.end(), longest,
                             [](const RetryTier& t, Duration d) { return t.ttl < d; });
  return it == tiers.end() ? nullptr : &*it;
}

std::string RetryTierName(Duration ttl) { return FormatDuration(ttl); }

}  // namespace foxworker
