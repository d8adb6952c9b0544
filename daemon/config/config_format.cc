// FormatConfig: the effective configuration written back as YAML.
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <charconv>
#include <cstdio>
#include <string>
#include <string_view>
#include <system_error>

#include "daemon/config/config_parser.h"
#include "daemon/config/units.h"

namespace foxworker {
namespace {

// A double-quoted YAML string that reads back as `text`. In values "$" is
// doubled so that environment interpolation does not apply again; keys are
// not interpolated.
enum class Quoting { kValue, kKey };
std::string Quote(std::string_view text, Quoting quoting = Quoting::kValue) {
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

// The shortest text that reads back as exactly `value`.
std::string ShortestText(double value) {
  char buffer[64];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof(buffer), value);
  CHECK(ec == std::errc()) << "to_chars failed for " << value;
  return std::string(buffer, end);
}

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

class YamlWriter {
 public:
  // "<indent>key: value"; an empty value leaves "key:" for a nested block.
  void Line(int depth, std::string_view key, std::string_view value) {
    out_.append(2 * static_cast<size_t>(depth), ' ');
    out_ += Key(key);
    out_ += ':';
    if (!value.empty()) {
      out_ += ' ';
      out_.append(value);
    }
    out_ += '\n';
  }
  void Comment(std::string_view text) {
    out_ += "# ";
    out_.append(text);
    out_ += '\n';
  }

  // A JSON value in block style, as the value of `key` at `depth`.
  void Json(int depth, std::string_view key, const rapidjson::Value& value) {
    if (IsBlock(value)) {
      Line(depth, key, "");
      Block(depth + 1, value);
    } else {
      Line(depth, key, Scalar(value));
    }
  }

  std::string& text() { return out_; }

 private:
  static bool IsBlock(const rapidjson::Value& v) {
    return (v.IsObject() && v.MemberCount() > 0) || (v.IsArray() && !v.Empty());
  }

  static std::string Scalar(const rapidjson::Value& v) {
    if (v.IsObject()) return "{}";
    if (v.IsArray()) return "[]";
    if (v.IsString()) return Quote(std::string_view(v.GetString(), v.GetStringLength()));
    rapidjson::StringBuffer buffer;  // null, booleans and numbers as JSON writes them
    rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
    v.Accept(writer);
    return std::string(buffer.GetString(), buffer.GetSize());
  }

  // A non-empty object or array, each line indented to `depth`.
  void Block(int depth, const rapidjson::Value& value) {
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

  std::string out_;
};

}  // namespace

std::string FormatConfig(const Config& config) {
  YamlWriter w;
  w.Comment("Effective configuration of " + config.file + ", every default written out.");
  const DaemonConfig& d = config.daemon;
  w.Line(0, "daemon", "");
  w.Line(1, "log_level", LogLevelName(d.log_level));
  w.Line(1, "worker_threads", std::to_string(d.worker_threads));
  w.Line(1, "shutdown_timeout", FormatDuration(d.shutdown_timeout));
  w.Line(1, "plugin_dir", Quote(d.plugin_dir));
  w.Line(1, "state_dir", Quote(d.state_dir));
  if (!d.include_dir.empty()) {
    w.text() += "  # include_dir: " + Quote(d.include_dir) + " (its files are merged below)\n";
  }

  w.Line(0, "plugins", config.plugins.empty() ? "{}" : "");
  for (const PluginConfig& p : config.plugins) {
    w.Line(1, p.name, "");
    w.Line(2, "path", Quote(p.path));
    rapidjson::Document json;
    json.Parse(p.config_json.c_str(), p.config_json.size());
    CHECK(!json.HasParseError() && json.IsObject())
        << "plugin " << p.name << ": config_json is not a JSON object: " << p.config_json;
    w.Json(2, "config", json);
  }

  w.Line(0, "backends", config.backends.empty() ? "{}" : "");
  for (const BackendConfig& b : config.backends) {
    w.Line(1, b.name, "");
    w.Line(2, "type", b.type);
    if (b.type == "memory") {
      w.Line(2, "capacity", std::to_string(b.memory.capacity));
    } else if (b.type == "local") {
      const LocalBackendOptions& l = b.local;
      w.Line(2, "path", Quote(l.path));
      w.Line(2, "durability", DurabilityName(l.durability));
      w.Line(2, "lease", FormatDuration(l.lease));
      w.Line(2, "poll_interval", FormatDuration(l.poll_interval));
      w.Line(2, "retention", FormatDuration(l.retention));
      w.Line(2, "batch_size", std::to_string(l.batch_size));
    }
  }

  w.Line(0, "queues", config.queues.empty() ? "{}" : "");
  for (const QueueConfig& q : config.queues) {
    w.Line(1, q.name, "");
    w.Line(2, "backend", Quote(q.backend));
    w.Line(2, "source", Quote(q.source));
    w.Line(2, "plugin", Quote(q.plugin));
    w.Line(2, "handler", Quote(q.handler));
    w.Line(2, "concurrency", std::to_string(q.concurrency));
    w.Line(2, "prefetch", std::to_string(q.prefetch));
    w.Line(2, "timeout", FormatDuration(q.timeout));
    w.Line(2, "retry_policy", Quote(q.retry_policy));
  }

  w.Line(0, "retry_policies", config.retry_policies.empty() ? "{}" : "");
  for (const RetryPolicyConfig& r : config.retry_policies) {
    w.Line(1, r.name, "");
    w.Line(2, "max_attempts", std::to_string(r.max_attempts));
    w.Line(2, "backoff", BackoffName(r.backoff));
    w.Line(2, "initial", FormatDuration(r.initial));
    w.Line(2, "max", FormatDuration(r.max));
    w.Line(2, "multiplier", ShortestText(r.multiplier));
    w.Line(2, "jitter", ShortestText(r.jitter));
    w.Line(2, "full_jitter", r.full_jitter ? "true" : "false");
  }
  return std::move(w.text());
}

}  // namespace foxworker
