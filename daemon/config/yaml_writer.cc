#include "daemon/config/yaml_writer.h"

#include <glog/logging.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <system_error>
#include <utility>

#include "daemon/base/units.h"

namespace foxworker {
namespace {

// Keys are written plain when that cannot change their meaning.
std::string Key(std::string_view key) {
  bool plain = !key.empty() && key != "null" && key != "Null" && key != "NULL" && key != "~";
  for (size_t i = 0; plain && i < key.size(); ++i) {
    char c = key[i];
    bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    plain = alnum || c == '_' || (i > 0 && (c == '-' || c == '.'));
  }
  return plain ? std::string(key) : Quote(key, Quoting::kKey);
}

}  // namespace

std::string Quote(std::string_view text, Quoting quoting) {
  std::string out = "\"";
  for (char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      case '$':
        out += quoting == Quoting::kValue ? "$$" : "$";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
          char escape[8];
          std::snprintf(escape, sizeof(escape), "\\x%02x", static_cast<unsigned char>(c));
          out += escape;
        } else {
          out += c;
        }
    }
  }
  out += '"';
  return out;
}

std::string ShortestText(double value) {
  char buffer[64];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof(buffer), value);
  CHECK(ec == std::errc()) << "to_chars failed for " << value;
  return std::string(buffer, end);
}

std::string FormatRate(double rate) {
  constexpr std::pair<std::string_view, double> kUnits[] = {{"/s", 1}, {"/m", 60}, {"/h", 3600}};
  std::string best;
  for (const auto& [unit, per] : kUnits) {
    // ParseRate divides what it read by the unit's seconds, so rate * per
    // can be an ulp or two away from the number that parses back to `rate`
    // (0.010000000902180578/h; found by fuzz/units_fuzzer): try its
    // neighbours too.
    const double x = rate * per;
    double candidates[5] = {x, std::nextafter(x, 0.0), std::nextafter(x, HUGE_VAL), 0, 0};
    candidates[3] = std::nextafter(candidates[1], 0.0);
    candidates[4] = std::nextafter(candidates[2], HUGE_VAL);
    for (double y : candidates) {
      // Up to 18 places: ParseRate reads 19 digits, "0." and 18 after it
      // (a rate like 0.000000000000000416/m; found by fuzz/units_fuzzer).
      for (int precision = 0; precision <= 18; ++precision) {
        char buffer[64];
        auto [end, ec] =
            std::to_chars(buffer, buffer + sizeof(buffer), y, std::chars_format::fixed, precision);
        if (ec != std::errc()) break;
        std::string text = std::string(buffer, end) + std::string(unit);
        if (!best.empty() && text.size() >= best.size()) break;
        Result<double> back = ParseRate(text);
        if (back.ok() && *back == rate) {
          best = std::move(text);
          break;
        }
      }
    }
  }
  if (best.empty()) best = ShortestText(rate) + "/s";  // not reached for parsed rates
  return best;
}


// YAML limits an implicit key ("key: value") to 1024 characters; past that
// yaml-cpp reads "illegal map value". Longer keys (a plugin's config may have
// any) are written as explicit ones, "? key" then ": value" on the next line.
// Found by fuzz/config_fuzzer.
constexpr size_t kMaxImplicitKey = 1000;

void YamlWriter::Line(int depth, std::string_view key, std::string_view value) {
  out_.append(2 * static_cast<size_t>(depth), ' ');
  std::string text = Key(key);
  if (text.size() > kMaxImplicitKey) {
    out_ += "? ";
    out_ += text;
    out_ += '\n';
    out_.append(2 * static_cast<size_t>(depth), ' ');
  } else {
    out_ += text;
  }
  out_ += ':';
  if (!value.empty()) {
    out_ += ' ';
    out_.append(value);
  }
  out_ += '\n';
}

void YamlWriter::Comment(std::string_view text) {
  out_ += "# ";
  out_.append(text);
  out_ += '\n';
}

void YamlWriter::Json(int depth, std::string_view key, const rapidjson::Value& value) {
  if (IsBlock(value)) {
    Line(depth, key, "");
    Block(depth + 1, value);
  } else {
    Line(depth, key, Scalar(value));
  }
}

bool YamlWriter::IsBlock(const rapidjson::Value& v) {
  return (v.IsObject() && v.MemberCount() > 0) || (v.IsArray() && !v.Empty());
}

std::string YamlWriter::Scalar(const rapidjson::Value& v) {
  if (v.IsObject()) return "{}";
  if (v.IsArray()) return "[]";
  if (v.IsString()) return Quote(std::string_view(v.GetString(), v.GetStringLength()));
  rapidjson::StringBuffer buffer;  // null, booleans and numbers as JSON writes them
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  v.Accept(writer);
  return std::string(buffer.GetString(), buffer.GetSize());
}

void YamlWriter::Block(int depth, const rapidjson::Value& value) {
  if (value.IsObject()) {
    for (const auto& member : value.GetObject()) {
      Json(depth, std::string_view(member.name.GetString(), member.name.GetStringLength()),
           member.value);
    }
    return;
  }
  size_t indent = 2 * static_cast<size_t>(depth);
  for (const auto& item : value.GetArray()) {
    if (!IsBlock(item)) {
      out_.append(indent, ' ');
      out_ += "- " + Scalar(item) + "\n";
      continue;
    }
    // Write the item one level deeper, then put "- " in the first line's
    // indentation: "  - a: 1\n    b: 2".
    size_t start = out_.size();
    Block(depth + 1, item);
    out_.replace(start + indent, 2, "- ");
  }
}

}  // namespace foxworker
