// `logging` in a queue's `middleware:`: its settings, their YAML and the
// registration that makes the type known.
#ifndef FOXWORKER_MIDDLEWARE_LOGGING_LOGGING_CONFIG_H_
#define FOXWORKER_MIDDLEWARE_LOGGING_LOGGING_CONFIG_H_

#include "daemon/config/config.h"

namespace foxworker {

class ExtensionRegistry;

// One structured line per outcome at `level`; `trace` also logs each step.
struct LoggingConfig : EquatableOptions<LoggingConfig, MiddlewareOptions> {
  LogLevel level = LogLevel::kInfo;

  bool operator==(const LoggingConfig&) const = default;
};

// Adds `logging`: its keys, parse, format and factory.
void RegisterLogging(ExtensionRegistry& registry);

}  // namespace foxworker

#endif  // FOXWORKER_MIDDLEWARE_LOGGING_LOGGING_CONFIG_H_
