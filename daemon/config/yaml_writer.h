// YamlWriter: writes the effective configuration back as YAML (what
// `foxworkerd --check-config` prints). Extensions format their own blocks
// with it; every value they write must read back as the same value.
#ifndef FOXWORKER_CONFIG_YAML_WRITER_H_
#define FOXWORKER_CONFIG_YAML_WRITER_H_

#include <rapidjson/document.h>

#include <string>
#include <string_view>

namespace foxworker {

// A double-quoted YAML string that reads back as `text`. In values "$" is
// doubled so that environment interpolation does not apply again; keys are
// not interpolated.
enum class Quoting { kValue, kKey };
std::string Quote(std::string_view text, Quoting quoting = Quoting::kValue);

// The shortest text that reads back as exactly `value`.
std::string ShortestText(double value);

// The shortest "<number>/<unit>" that ParseRate() reads back as exactly `rate`.
std::string FormatRate(double rate);

// "true" or "false".
inline std::string_view BoolText(bool value) { return value ? "true" : "false"; }

class YamlWriter {
 public:
  // "<indent>key: value" (two spaces per depth); an empty value leaves
  // "key:" for a nested block.
  void Line(int depth, std::string_view key, std::string_view value);
  void Comment(std::string_view text);

  // A JSON value in block style, as the value of `key` at `depth`.
  void Json(int depth, std::string_view key, const rapidjson::Value& value);

  std::string& text() { return out_; }

 private:
  static bool IsBlock(const rapidjson::Value& v);
  static std::string Scalar(const rapidjson::Value& v);
  // A non-empty object or array, each line indented to `depth`.
  void Block(int depth, const rapidjson::Value& value);

  std::string out_;
};

}  // namespace foxworker

#endif  // FOXWORKER_CONFIG_YAML_WRITER_H_
