#include "daemon/middleware/logging/logging_config.h"

#include <utility>
#include <vector>

#include "daemon/config/extension_registry.h"
#include "daemon/middleware/logging/logging.h"

namespace foxworker {
namespace {

constexpr std::string_view kKeys[] = {"level"};

Result<std::shared_ptr<const MiddlewareOptions>> Parse(const YamlFile& file, const MappingEntry&,
                                                       const std::vector<MappingEntry>& entries) {
  auto logging = std::make_shared<LoggingConfig>();
  for (const MappingEntry& e : entries) {
    if (e.key != "level") {
      return Status::Internal(e.path + ": not a key of a logging");  // keys were checked
    }
    Status status = AssignEnum(file, e, &ParseLogLevel, &logging->level);
    if (!status.ok()) return status;
  }
  return std::shared_ptr<const MiddlewareOptions>(std::move(logging));
}

void Format(const MiddlewareOptions& options, YamlWriter& w, int depth) {
  w.Line(depth, "level", LogLevelName(static_cast<const LoggingConfig&>(options).level));
}

Result<std::unique_ptr<Middleware>> Make(const QueueConfig& queue, const MiddlewareConfig& m,
                                         MiddlewareContext&) {
  const auto* options = m.options.As<LoggingConfig>();
  if (options == nullptr) return Status::InvalidArgument("logging without its settings");
  return std::unique_ptr<Middleware>(new OutcomeLogging(queue.name, *options));
}

}  // namespace

void RegisterLogging(ExtensionRegistry& registry) {
  MiddlewareExtension logging;
  logging.type = "logging";
  logging.keys = kKeys;
  logging.once_per_queue = true;
  logging.parse = Parse;
  logging.format = Format;
  logging.make = Make;
  registry.AddMiddleware(std::move(logging));
}

}  // namespace foxworker
