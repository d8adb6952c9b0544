// Turns a plugin's free-form `config:` subtree into the JSON object the
// plugin receives.
#ifndef FOXWORKER_CONFIG_PLUGIN_CONFIG_JSON_H_
#define FOXWORKER_CONFIG_PLUGIN_CONFIG_JSON_H_

#include <map>
#include <string>

#include "daemon/config/config.h"
#include "daemon/config/yaml_reader.h"
#include "daemon/base/status.h"

namespace foxworker {

// Converts `entry.value` (a mapping, or empty for "{}") to JSON text.
// Mappings become objects and sequences arrays, keeping their order. An empty
// value or an unquoted null/~ is null. Every scalar has its environment
// references expanded; then an unquoted true/false (any capitalisation YAML
// 1.2 allows), a decimal integer or a decimal/exponent number becomes a JSON
// boolean or number, and everything else (quoted, !!str, block scalars,
// .inf, 0x1F) a JSON string. Other explicit tags are rejected. Duplicate keys
// are errors. `key_marks` receives where each top-level key was written.
Result<std::string> PluginConfigToJson(const YamlFile& file, const MappingEntry& entry,
                                       std::map<std::string, SourceMark>* key_marks);

}  // namespace foxworker

#endif  // FOXWORKER_CONFIG_PLUGIN_CONFIG_JSON_H_
