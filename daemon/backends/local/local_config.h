// `type: local` in `backends:`: the options of a LocalBackend, their YAML
// and the registration that makes the type known.
#ifndef FOXWORKER_BACKENDS_LOCAL_LOCAL_CONFIG_H_
#define FOXWORKER_BACKENDS_LOCAL_LOCAL_CONFIG_H_

#include <string>
#include <string_view>

#include "daemon/config/config.h"
#include "daemon/base/status.h"

namespace foxworker {

class ExtensionRegistry;

enum class Durability { kFull, kNormal };

// "full", "normal".
std::string_view DurabilityName(Durability durability);
Result<Durability> ParseDurability(std::string_view name);

struct LocalBackendOptions : EquatableOptions<LocalBackendOptions, BackendOptions> {
  std::string path;                 // SQLite file; relative to daemon.state_dir
  Durability durability = Durability::kFull;
  Duration lease{30000};            // claim lease; renewed while a handler runs
  Duration poll_interval{200};      // how often idle queues look for due jobs
  Duration retention{0};            // keep acked jobs this long (0 = delete at ack)
  int batch_size = 256;             // max jobs claimed or settled per transaction

  bool operator==(const LocalBackendOptions&) const = default;
};

// Adds `type: local`: its keys, parse, format, the resolution of `path`
// against daemon.state_dir (one backend per file) and its factory.
void RegisterLocalBackend(ExtensionRegistry& registry);

}  // namespace foxworker

#endif  // FOXWORKER_BACKENDS_LOCAL_LOCAL_CONFIG_H_
