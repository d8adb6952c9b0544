// Reading yaml-cpp nodes with errors as values. Internal to daemon/config/:
// every yaml-cpp exception is caught here or in config_parser.cc, and every
// error carries "file:line:column: key.path: message".
#ifndef FOXWORKER_CONFIG_YAML_READER_H_
#define FOXWORKER_CONFIG_YAML_READER_H_

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/config/config.h"
#include "daemon/base/status.h"

namespace foxworker {

// One YAML file being read: its name for messages and the directory that
// relative paths written in it resolve against.
struct YamlFile {
  std::string name;
  std::string dir;
};

// yaml-cpp marks are 0-based; SourceMark is 1-based.
SourceMark ToSourceMark(const YamlFile& file, const YAML::Mark& mark);

// "file:line:column: path: message" (": path" is left out when empty).
Status ErrorAt(const YamlFile& file, const YAML::Mark& mark, std::string_view path,
               std::string_view message);
Status ErrorAt(const SourceMark& mark, std::string_view path, std::string_view message);

// Parses one YAML document. An empty text gives a null node; a syntax error
// or a second document is an error with the file, line and column.
Result<YAML::Node> ParseYamlDocument(const std::string& text, const YamlFile& file);

// One `key: value` pair of a mapping.
struct MappingEntry {
  std::string key;
  std::string path;  // the parent's path + "." + key
  YAML::Mark key_mark;
  YAML::Mark value_mark;  // the key's mark when the value has none (an empty value)
  YAML::Node value;
};

// Reads `node` as a mapping; a null node is an empty mapping. Keys must be
// plain strings and appear once. When `known_keys` is non-empty, every key
// must be one of them; an unknown key is reported with the closest known key
// when one is within two edits. `mark` locates `node` for errors.
Result<std::vector<MappingEntry>> ReadMapping(const YamlFile& file, const YAML::Node& node,
                                              const YAML::Mark& mark, const std::string& path,
                                              std::span<const std::string_view> known_keys);

// The "unknown key" error for `entry`, suggesting the closest of
// `known_keys` or else listing them all.
Status UnknownKeyError(const YamlFile& file, const MappingEntry& entry,
                       std::span<const std::string_view> known_keys);

// The candidate closest to `word` (optimal string alignment distance) when
// it is at most two edits away and closer than the word's length, else "".
std::string_view ClosestMatch(std::string_view word, std::span<const std::string_view> candidates);

// " (did you mean "x"?)" when a candidate is close, else "".
std::string DidYouMean(std::string_view word, std::span<const std::string_view> candidates);

// Scalar readers. The value must be a scalar (not a mapping, sequence or
// empty); environment references in it are expanded first. Errors point at
// the value and name the entry's path.
Result<std::string> ReadString(const YamlFile& file, const MappingEntry& entry);
Result<std::string> ReadNonEmptyString(const YamlFile& file, const MappingEntry& entry);
Result<int64_t> ReadInteger(const YamlFile& file, const MappingEntry& entry, int64_t min,
                            int64_t max);
Result<double> ReadNumber(const YamlFile& file, const MappingEntry& entry, double min, double max);
Result<bool> ReadBool(const YamlFile& file, const MappingEntry& entry);
Result<Duration> ReadDuration(const YamlFile& file, const MappingEntry& entry);

// Stores a read value into `out` (converting it), or returns the error.
template <typename T, typename U>
Status Assign(Result<U> result, T* out) {
  if (!result.ok()) return result.status();
  *out = static_cast<T>(*result);
  return Status::Ok();
}

// Reads a string and converts it with `parse` (ParseLogLevel, ...); a bad
// name is an error at the value.
template <typename E>
Status AssignEnum(const YamlFile& file, const MappingEntry& entry,
                  Result<E> (*parse)(std::string_view), E* out) {
  Result<std::string> text = ReadString(file, entry);
  if (!text.ok()) return text.status();
  Result<E> value = parse(*text);
  if (!value.ok()) return ErrorAt(file, entry.value_mark, entry.path, value.status().message());
  *out = *value;
  return Status::Ok();
}

// A duration that must be greater than zero.
Status AssignPositiveDuration(const YamlFile& file, const MappingEntry& entry, Duration* out);

// `rate` ("100/s") or `burst` of a token bucket (a `rate_limits:` entry or a
// `rate_limit` middleware).
Status ReadTokenBucketKey(const YamlFile& file, const MappingEntry& entry, double* rate,
                          int* burst);

// Names of plugins, backends, queues and retry policies: letters, digits,
// '_', '-', '.' and ':', starting with a letter or digit.
bool IsValidName(std::string_view name);

}  // namespace foxworker

#endif  // FOXWORKER_CONFIG_YAML_READER_H_
