// FormatConfig: the effective configuration written back as YAML.

#include <glog/logging.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <charconv>
#include <cstdio>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include "daemon/backends/redis/redis_url.h"
#include "daemon/config/config_parser.h"
#include "daemon/base/units.h"

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

// The shortest "<number>/<unit>" that ParseRate() reads back as exactly `rate`.
std::string FormatRate(double rate) {
  constexpr std::pair<std::string_view, double> kUnits[] = {{"/s", 1}, {"/m", 60}, {"/h", 3600}};
  std::string best;
  for (const auto& [unit, per] : kUnits) {
    for (int precision = 0; precision <= 17; ++precision) {
      char buffer[64];
      auto [end, ec] = std::to_chars(buffer, buffer + sizeof(buffer), rate * per,
                                     std::chars_format::fixed, precision);
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
  if (best.empty()) best = ShortestText(rate) + "/s";  // not reached for parsed rates
  return best;
}

// One item of a queue's `middleware:` sequence, at queue-key depth 2.
void FormatMiddleware(YamlWriter& w, const MiddlewareConfig& m) {
  w.text() += "      - " + m.type + ":\n";
  constexpr int kDepth = 5;  // the settings, indented under the type
  if (m.type == "circuit_breaker") {
    const CircuitBreakerConfig& cb = m.circuit_breaker;
    if (cb.failure_ratio > 0) {
      w.Line(kDepth, "failure_ratio", ShortestText(cb.failure_ratio));
      w.Line(kDepth, "min_calls", std::to_string(cb.min_calls));
    } else {
      w.Line(kDepth, "failure_threshold", std::to_string(cb.failure_threshold));
    }
    w.Line(kDepth, "window", FormatDuration(cb.window));
    w.Line(kDepth, "reset_timeout", FormatDuration(cb.reset_timeout));
    w.Line(kDepth, "half_open_trials", std::to_string(cb.half_open_trials));
  } else if (m.type == "rate_limit") {
    if (!m.rate_limit.shared.empty()) {
      w.Line(kDepth, "shared", Quote(m.rate_limit.shared));
    } else {
      w.Line(kDepth, "rate", FormatRate(m.rate_limit.rate));
      w.Line(kDepth, "burst", std::to_string(m.rate_limit.burst));
    }
  } else if (m.type == "dedup") {
    w.Line(kDepth, "key", Quote(m.dedup.key));
    w.Line(kDepth, "ttl", FormatDuration(m.dedup.ttl));
    w.Line(kDepth, "max_keys", std::to_string(m.dedup.max_keys));
  } else if (m.type == "logging") {
    w.Line(kDepth, "level", LogLevelName(m.logging.level));
  }
}

// An AMQP argument's value, written so that it reads back with its type.
std::string ArgumentText(const AmqpArgument& a) {
  switch (a.kind) {
    case AmqpArgument::Kind::kString:
      return Quote(a.text);
    case AmqpArgument::Kind::kInt:
      return std::to_string(a.int_value);
    case AmqpArgument::Kind::kBool:
      return a.bool_value ? "true" : "false";
    case AmqpArgument::Kind::kDouble: {
      std::string text = ShortestText(a.double_value);
      if (text.find_first_of(".eEn") == std::string::npos) text += ".0";  // not an integer
      return text;
    }
  }
  return "";
}

void FormatArguments(YamlWriter& w, int depth, const std::vector<AmqpArgument>& args) {
  w.Line(depth, "arguments", args.empty() ? "{}" : "");
  for (const AmqpArgument& a : args) w.Line(depth + 1, a.key, ArgumentText(a));
}

// A rabbitmq queue's `rabbitmq:` block, every default written out.
void FormatRabbitMqQueue(YamlWriter& w, const RabbitMqQueueOptions& o,
                         const RabbitMqBackendOptions& backend) {
  w.Line(2, "rabbitmq", "");
  if (!backend.declare) {
    // Nothing is declared: only the names apply (anything else is an error).
    w.Line(3, "dead_letter_queue", Quote(o.dead_letter_queue));
    w.Line(3, "retry_queue_prefix", Quote(o.retry_queue_prefix));
    return;
  }
  w.Line(3, "durable", o.durable ? "true" : "false");
  w.Line(3, "queue_type", AmqpQueueTypeName(o.queue_type.value_or(backend.queue_type)));
  FormatArguments(w, 3, o.arguments);
  if (o.exchange) {
    const AmqpExchangeConfig& x = *o.exchange;
    w.Line(3, "exchange", "");
    w.Line(4, "name", Quote(x.name));
    w.Line(4, "type", x.type);
    w.Line(4, "durable", x.durable ? "true" : "false");
    w.Line(4, "auto_delete", x.auto_delete ? "true" : "false");
    FormatArguments(w, 4, x.arguments);
  }
  w.Line(3, "bindings", o.bindings.empty() ? "[]" : "");
  for (const AmqpBindingConfig& b : o.bindings) {
    w.text() += "        - exchange: " + Quote(b.exchange) + "\n";
    std::string keys;
    for (const std::string& k : b.routing_keys) keys += (keys.empty() ? "" : ", ") + Quote(k);
    w.Line(5, "routing_key", "[" + keys + "]");
    FormatArguments(w, 5, b.arguments);
  }
  w.Line(3, "dead_letter_queue", Quote(o.dead_letter_queue));
  w.Line(3, "retry_queue_prefix", Quote(o.retry_queue_prefix));
}

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
  if (!d.admin.listen.empty()) {
    w.Line(1, "admin", "");
    w.Line(2, "listen", Quote(d.admin.listen));
    w.Line(2, "token_file", Quote(d.admin.token_file));
  }
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
    } else if (b.type == "redis") {
      const RedisBackendOptions& r = b.redis;
      w.Line(2, "url", Quote(RedactedRedisUrl(r)));  // the password prints as ***
      w.Line(2, "connect_timeout", FormatDuration(r.connect_timeout));
      w.Line(2, "command_timeout", FormatDuration(r.command_timeout));
      w.Line(2, "group", Quote(r.group));
      w.Line(2, "consumer", Quote(r.consumer));  // "" = hostname:pid
      w.Line(2, "start", Quote(r.start));
      w.Line(2, "payload_field", Quote(r.payload_field));
      w.Line(2, "min_idle", FormatDuration(r.min_idle));
      w.Line(2, "claim_interval", FormatDuration(r.claim_interval));
      w.Line(2, "block", FormatDuration(r.block));
      w.Line(2, "maxlen", std::to_string(r.maxlen));
      w.Line(2, "dlq_maxlen", std::to_string(r.dlq_maxlen));
      w.Line(2, "reconnect_initial", FormatDuration(r.reconnect_initial));
      w.Line(2, "reconnect_max", FormatDuration(r.reconnect_max));
    } else if (b.type == "rabbitmq") {
      const RabbitMqBackendOptions& r = b.rabbitmq;
      w.Line(2, "url", Quote(RedactUrl(r.url)));  // the password prints as ***
      w.Line(2, "tls", "");
      w.Line(3, "ca", Quote(r.tls.ca));
      w.Line(3, "cert", Quote(r.tls.cert));
      w.Line(3, "key", Quote(r.tls.key));
      w.Line(3, "verify", r.tls.verify ? "true" : "false");
      w.Line(2, "heartbeat", FormatDuration(r.heartbeat));
      w.Line(2, "connection_name", Quote(r.connection_name));
      w.Line(2, "declare", r.declare ? "true" : "false");
      w.Line(2, "queue_type", AmqpQueueTypeName(r.queue_type));
      w.Line(2, "delayed_retries", r.delayed_retries ? "true" : "false");
      w.Line(2, "reconnect_initial", FormatDuration(r.reconnect_initial));
      w.Line(2, "reconnect_max", FormatDuration(r.reconnect_max));
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
    // 0 (batching off) is the absence of the key: a written batch_size is 1..10000.
    if (q.batch_size > 0) w.Line(2, "batch_size", std::to_string(q.batch_size));
    w.Line(2, "flush_interval", FormatDuration(q.flush_interval));
    w.Line(2, "timeout", FormatDuration(q.timeout));
    w.Line(2, "retry_policy", Quote(q.retry_policy));
    w.Line(2, "handler_timeouts", q.handler_timeouts.empty() ? "{}" : "");
    for (const auto& [handler, timeout] : q.handler_timeouts) {
      w.Line(3, handler, FormatDuration(timeout));
    }
    w.Line(2, "middleware", q.middleware.empty() ? "[]" : "");
    for (const MiddlewareConfig& m : q.middleware) FormatMiddleware(w, m);
    const BackendConfig* backend = config.FindBackend(q.backend);
    if (backend != nullptr && backend->type == "rabbitmq")
      FormatRabbitMqQueue(w, q.rabbitmq, backend->rabbitmq);
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

  w.Line(0, "rate_limits", config.rate_limits.empty() ? "{}" : "");
  for (const RateLimitConfig& r : config.rate_limits) {
    w.Line(1, r.name, "");
    w.Line(2, "rate", FormatRate(r.rate));
    w.Line(2, "burst", std::to_string(r.burst));
  }
  return std::move(w.text());
}

}  // namespace foxworker
