#include "daemon/middleware/rate_limit/rate_limit_config.h"

#include <utility>
#include <vector>

#include "daemon/config/extension_registry.h"
#include "daemon/middleware/rate_limit/rate_limit.h"

namespace foxworker {
namespace {

constexpr std::string_view kKeys[] = {"rate", "burst", "shared"};

std::string Join(const std::vector<std::string_view>& items) {
  std::string out;
  for (std::string_view item : items) out += (out.empty() ? "" : ", ") + std::string(item);
  return out;
}

Result<std::shared_ptr<const MiddlewareOptions>> Parse(const YamlFile& file,
                                                       const MappingEntry& item,
                                                       const std::vector<MappingEntry>& entries) {
  auto rl = std::make_shared<RateLimitOptions>();
  const MappingEntry* shared = nullptr;
  bool has_rate = false, has_burst = false;
  for (const MappingEntry& e : entries) {
    Status status;
    if (e.key == "shared") {
      shared = &e;
      status = Assign(ReadNonEmptyString(file, e), &rl->shared);
    } else if (e.key == "rate" || e.key == "burst") {
      (e.key == "rate" ? has_rate : has_burst) = true;
      status = ReadTokenBucketKey(file, e, &rl->rate, &rl->burst);
    } else {
      return Status::Internal(e.path + ": not a key of a rate_limit");  // keys were checked
    }
    if (!status.ok()) return status;
  }
  if (shared != nullptr && (has_rate || has_burst)) {
    return ErrorAt(file, shared->key_mark, shared->path,
                   "cannot be combined with rate or burst (the shared bucket under "
                   "rate_limits has its own)");
  }
  if (shared == nullptr && !has_rate) {
    return ErrorAt(file, item.key_mark, item.path,
                   "missing required key \"rate\" (or \"shared\", naming an entry of "
                   "rate_limits)");
  }
  return std::shared_ptr<const MiddlewareOptions>(std::move(rl));
}

// A shared bucket must be defined under the top-level rate_limits.
Status Check(const Config& config, const QueueConfig& queue, size_t index) {
  const MiddlewareConfig& m = queue.middleware[index];
  const std::string& shared = m.options.As<RateLimitOptions>()->shared;
  if (shared.empty() || config.FindRateLimit(shared) != nullptr) return Status::Ok();
  std::vector<std::string_view> buckets;
  for (const RateLimitConfig& r : config.rate_limits) buckets.push_back(r.name);
  std::string hint = DidYouMean(shared, buckets);
  if (hint.empty()) {
    hint = buckets.empty() ? " (rate_limits defines none)"
                           : " (defined rate limits: " + Join(buckets) + ")";
  }
  return ErrorAt(m.mark,
                 "queues." + queue.name + ".middleware[" + std::to_string(index) +
                     "].rate_limit.shared",
                 "rate limit \"" + shared + "\" is not defined under rate_limits" + hint);
}

void Format(const MiddlewareOptions& options, YamlWriter& w, int depth) {
  const auto& rl = static_cast<const RateLimitOptions&>(options);
  if (!rl.shared.empty()) {
    w.Line(depth, "shared", Quote(rl.shared));
  } else {
    w.Line(depth, "rate", FormatRate(rl.rate));
    w.Line(depth, "burst", std::to_string(rl.burst));
  }
}

Result<std::unique_ptr<Middleware>> Make(const QueueConfig&, const MiddlewareConfig& m,
                                         MiddlewareContext& c) {
  const auto* rl = m.options.As<RateLimitOptions>();
  if (rl == nullptr) return Status::InvalidArgument("rate_limit without its settings");
  if (rl->shared.empty()) {
    return std::unique_ptr<Middleware>(
        new RateLimit(std::make_shared<TokenBucket>(rl->rate, rl->burst, c.clock()), "own"));
  }
  const RateLimitConfig* limit = c.config->FindRateLimit(rl->shared);
  if (limit == nullptr) {
    return Status::InvalidArgument(m.mark.ToString() + ": unknown shared rate limit \"" +
                                   rl->shared + "\"");
  }
  // Every queue naming the limit shares one bucket, created by the first.
  std::shared_ptr<SharedMiddlewareState>& state = (*c.shared)[limit->name];
  if (!state) state = std::make_shared<TokenBucket>(limit->rate, limit->burst, c.clock());
  auto bucket = std::dynamic_pointer_cast<TokenBucket>(state);
  if (bucket == nullptr) {
    return Status::Internal("shared state \"" + limit->name + "\" is not a token bucket");
  }
  return std::unique_ptr<Middleware>(new RateLimit(std::move(bucket), "shared " + limit->name));
}

}  // namespace

void RegisterRateLimit(ExtensionRegistry& registry) {
  MiddlewareExtension rl;
  rl.type = "rate_limit";
  rl.keys = kKeys;
  rl.parse = Parse;
  rl.check = Check;
  rl.format = Format;
  rl.make = Make;
  rl.metric_families = {
      {RateLimit::kWaitsFamily, "counter",
       "Times fetching found the rate limit's bucket empty and waited."},
      {RateLimit::kWaitSecondsFamily, "counter",
       "Time fetching was held back by the rate limit (first refusal to next grant)."},
  };
  registry.AddMiddleware(std::move(rl));
}

}  // namespace foxworker
