// `dedup` in a queue's `middleware:`: its settings, their YAML and the
// registration that makes the type known.
#ifndef FOXWORKER_MIDDLEWARE_DEDUP_DEDUP_CONFIG_H_
#define FOXWORKER_MIDDLEWARE_DEDUP_DEDUP_CONFIG_H_

#include <cstddef>
#include <string>

#include "daemon/config/config.h"

namespace foxworker {

class ExtensionRegistry;

// Skips a message whose key was processed successfully within `ttl`.
// `key`: "header:NAME", "property:NAME" (message_id, correlation_id, type,
// ...) or "json:/json/pointer" into the payload.
struct DedupConfig : EquatableOptions<DedupConfig, MiddlewareOptions> {
  std::string key;
  Duration ttl{86400000};
  size_t max_keys = 100000;  // in-memory store bound (LRU); a backend's durable store is unbounded

  bool operator==(const DedupConfig&) const = default;
};

// Adds `dedup`: its keys, parse, format and factory.
void RegisterDedup(ExtensionRegistry& registry);

}  // namespace foxworker

#endif  // FOXWORKER_MIDDLEWARE_DEDUP_DEDUP_CONFIG_H_
