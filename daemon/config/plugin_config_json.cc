#include "daemon/config/plugin_config_json.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <span>
#include <string_view>
#include <system_error>

#include "daemon/config/env_interpolation.h"

namespace foxworker {
namespace {

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

constexpr std::string_view kPlainTag = "?";   // yaml-cpp's tag for unquoted scalars
constexpr std::string_view kQuotedTag = "!";  // quoted and block scalars
constexpr std::string_view kStrTag = "tag:yaml.org,2002:str";

// Bounds that keep a self-referring alias (&a [*a]) or an alias bomb from
// exhausting the stack or memory.
constexpr int kMaxDepth = 64;
constexpr size_t kMaxValues = 1000000;

// The state of one conversion.
struct JsonOutput {
  rapidjson::StringBuffer buffer;
  JsonWriter writer{buffer};
  size_t values = 0;
};

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// [-+]?[0-9]+
bool LooksLikeInteger(std::string_view s) {
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) s.remove_prefix(1);
  if (s.empty()) return false;
  for (char c : s) {
    if (!IsDigit(c)) return false;
  }
  return true;
}

// [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?  (YAML 1.2 core schema)
bool LooksLikeFloat(std::string_view s) {
  size_t i = 0;
  auto digits = [&] {
    size_t start = i;
    while (i < s.size() && IsDigit(s[i])) ++i;
    return i - start;
  };
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
  size_t whole = digits();
  size_t fraction = 0;
  if (i < s.size() && s[i] == '.') {
    ++i;
    fraction = digits();
  }
  if (whole == 0 && fraction == 0) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
    if (digits() == 0) return false;
  }
  return i == s.size();
}

// Writes an unquoted scalar as the JSON type YAML 1.2's core schema gives it.
void WritePlainScalar(const std::string& text, JsonWriter* writer) {
  if (text == "true" || text == "True" || text == "TRUE") {
    writer->Bool(true);
    return;
  }
  if (text == "false" || text == "False" || text == "FALSE") {
    writer->Bool(false);
    return;
  }
  std::string_view number = text;
  if (!number.empty() && number[0] == '+') number.remove_prefix(1);
  const char* begin = number.data();
  const char* end = begin + number.size();
  if (LooksLikeInteger(text)) {
    int64_t i = 0;
    if (auto [p, ec] = std::from_chars(begin, end, i); ec == std::errc() && p == end) {
      writer->Int64(i);
      return;
    }
    uint64_t u = 0;
    if (auto [p, ec] = std::from_chars(begin, end, u); ec == std::errc() && p == end) {
      writer->Uint64(u);
      return;
    }
  }
  if (LooksLikeInteger(text) || LooksLikeFloat(text)) {
    double d = 0;
    if (auto [p, ec] = std::from_chars(begin, end, d);
        ec == std::errc() && p == end && std::isfinite(d)) {
      writer->Double(d);
      return;
    }
  }
  writer->String(text.data(), static_cast<rapidjson::SizeType>(text.size()));
}

Status WriteNode(const YamlFile& file, const YAML::Node& node, const YAML::Mark& mark,
                 const std::string& path, int depth, JsonOutput* out);

Status WriteMapping(const YamlFile& file, const std::vector<MappingEntry>& entries, int depth,
                    JsonOutput* out) {
  JsonWriter* writer = &out->writer;
  writer->StartObject();
  for (const MappingEntry& entry : entries) {
    writer->Key(entry.key.data(), static_cast<rapidjson::SizeType>(entry.key.size()));
    Status status = WriteNode(file, entry.value, entry.value_mark, entry.path, depth + 1, out);
    if (!status.ok()) return status;
  }
  writer->EndObject();
  return Status::Ok();
}

Status WriteNode(const YamlFile& file, const YAML::Node& node, const YAML::Mark& mark,
                 const std::string& path, int depth, JsonOutput* out) {
  if (depth > kMaxDepth) {
    return ErrorAt(file, mark, path,
                   "nested more than " + std::to_string(kMaxDepth) +
                       " levels deep (does an alias refer to itself?)");
  }
  if (++out->values > kMaxValues) {
    return ErrorAt(file, mark, path,
                   "plugin config has more than " + std::to_string(kMaxValues) +
                       " values (are aliases expanding it?)");
  }
  JsonWriter* writer = &out->writer;
  switch (node.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null:
      writer->Null();
      return Status::Ok();
    case YAML::NodeType::Map: {
      Result<std::vector<MappingEntry>> entries = ReadMapping(file, node, mark, path, {});
      if (!entries.ok()) return entries.status();
      return WriteMapping(file, *entries, depth, out);
    }
    case YAML::NodeType::Sequence: {
      writer->StartArray();
      for (size_t i = 0; i < node.size(); ++i) {
        YAML::Node item = node[i];
        YAML::Mark item_mark = item.Mark().line >= 0 ? item.Mark() : mark;
        Status status =
            WriteNode(file, item, item_mark, path + "[" + std::to_string(i) + "]", depth + 1, out);
        if (!status.ok()) return status;
      }
      writer->EndArray();
      return Status::Ok();
    }
    case YAML::NodeType::Scalar:
      break;
  }
  const std::string& tag = node.Tag();
  if (tag != kPlainTag && tag != kQuotedTag && tag != kStrTag) {
    return ErrorAt(file, mark, path,
                   "unsupported tag \"" + tag +
                       "\" (write the value unquoted for a number or boolean, or quote it for "
                       "a string)");
  }
  Result<std::string> text = InterpolateEnvironment(node.Scalar());
  if (!text.ok()) return ErrorAt(file, mark, path, text.status().message());
  if (tag == kPlainTag) {
    WritePlainScalar(*text, writer);
  } else {
    writer->String(text->data(), static_cast<rapidjson::SizeType>(text->size()));
  }
  return Status::Ok();
}

}  // namespace

Result<std::string> PluginConfigToJson(const YamlFile& file, const MappingEntry& entry,
                                       std::map<std::string, SourceMark>* key_marks) {
  Result<std::vector<MappingEntry>> entries =
      ReadMapping(file, entry.value, entry.value_mark, entry.path, {});
  if (!entries.ok()) return entries.status();
  for (const MappingEntry& e : *entries) (*key_marks)[e.key] = ToSourceMark(file, e.key_mark);
  JsonOutput out;
  Status status = WriteMapping(file, *entries, /*depth=*/1, &out);
  if (!status.ok()) return status;
  return std::string(out.buffer.GetString(), out.buffer.GetSize());
}

}  // namespace foxworker
