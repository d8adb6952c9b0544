#include "daemon/middleware/circuit_breaker/circuit_breaker_config.h"

#include <map>
#include <utility>

#include "daemon/config/extension_registry.h"
#include "daemon/base/units.h"
#include "daemon/middleware/circuit_breaker/circuit_breaker.h"

namespace foxworker {
namespace {

constexpr std::string_view kKeys[] = {"failure_threshold", "failure_ratio", "min_calls",
                                      "window",            "reset_timeout", "half_open_trials"};
constexpr int64_t kMaxCount = 1000000000;

Result<std::shared_ptr<const MiddlewareOptions>> Parse(const YamlFile& file, const MappingEntry&,
                                                       const std::vector<MappingEntry>& entries) {
  auto cb = std::make_shared<CircuitBreakerConfig>();
  // Keys whose presence is checked after the loop.
  std::map<std::string, const MappingEntry*> seen;
  for (const MappingEntry& e : entries) {
    seen[e.key] = &e;
    Status status;
    if (e.key == "failure_threshold") {
      status = Assign(ReadInteger(file, e, 1, kMaxCount), &cb->failure_threshold);
    } else if (e.key == "failure_ratio") {
      status = Assign(ReadNumber(file, e, 0, 1), &cb->failure_ratio);
    } else if (e.key == "min_calls") {
      status = Assign(ReadInteger(file, e, 1, kMaxCount), &cb->min_calls);
    } else if (e.key == "half_open_trials") {
      status = Assign(ReadInteger(file, e, 1, kMaxCount), &cb->half_open_trials);
    } else if (e.key == "window") {
      status = AssignPositiveDuration(file, e, &cb->window);
    } else if (e.key == "reset_timeout") {
      status = AssignPositiveDuration(file, e, &cb->reset_timeout);
    } else {
      return Status::Internal(e.path + ": not a key of a circuit_breaker");  // keys were checked
    }
    if (!status.ok()) return status;
  }
  // failure_ratio > 0 selects ratio mode; keys of the other mode would be
  // silently ignored, so they are errors.
  bool ratio_mode = cb->failure_ratio > 0;
  if (ratio_mode && seen.count("failure_threshold") != 0) {
    const MappingEntry& e = *seen["failure_threshold"];
    return ErrorAt(file, e.key_mark, e.path,
                   "not used with failure_ratio (a breaker counts failures or judges their "
                   "ratio, not both)");
  }
  if (!ratio_mode && seen.count("min_calls") != 0) {
    const MappingEntry& e = *seen["min_calls"];
    return ErrorAt(file, e.key_mark, e.path, "only used with a failure_ratio greater than 0");
  }
  return std::shared_ptr<const MiddlewareOptions>(std::move(cb));
}

void Format(const MiddlewareOptions& options, YamlWriter& w, int depth) {
  const auto& cb = static_cast<const CircuitBreakerConfig&>(options);
  if (cb.failure_ratio > 0) {
    w.Line(depth, "failure_ratio", ShortestText(cb.failure_ratio));
    w.Line(depth, "min_calls", std::to_string(cb.min_calls));
  } else {
    w.Line(depth, "failure_threshold", std::to_string(cb.failure_threshold));
  }
  w.Line(depth, "window", FormatDuration(cb.window));
  w.Line(depth, "reset_timeout", FormatDuration(cb.reset_timeout));
  w.Line(depth, "half_open_trials", std::to_string(cb.half_open_trials));
}

Result<std::unique_ptr<Middleware>> Make(const QueueConfig& queue, const MiddlewareConfig& m,
                                         MiddlewareContext& context) {
  const auto* options = m.options.As<CircuitBreakerConfig>();
  if (options == nullptr) return Status::InvalidArgument("circuit_breaker without its settings");
  return std::unique_ptr<Middleware>(new CircuitBreaker(queue.name, *options, context.clock));
}

}  // namespace

void RegisterCircuitBreaker(ExtensionRegistry& registry) {
  MiddlewareExtension cb;
  cb.type = "circuit_breaker";
  cb.keys = kKeys;
  cb.once_per_queue = true;
  cb.parse = Parse;
  cb.format = Format;
  cb.make = Make;
  cb.metric_families = {
      {CircuitBreaker::kStateFamily, "gauge",
       "1 for the circuit breaker's current state (closed, open, half_open), 0 for the "
       "others."},
      {CircuitBreaker::kOpenedFamily, "counter", "Times the queue's circuit breaker opened."},
  };
  registry.AddMiddleware(std::move(cb));
}

}  // namespace foxworker
