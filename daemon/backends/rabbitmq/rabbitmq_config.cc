#include "daemon/backends/rabbitmq/rabbitmq_config.h"

#include <rapidjson/document.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "daemon/backends/rabbitmq/amqp_url.h"
#include "daemon/config/extension_registry.h"
#include "daemon/config/plugin_config_json.h"
#include "daemon/base/units.h"

namespace foxworker {
namespace {

constexpr std::string_view kBackendKeys[] = {
    "type",        "url",          "tls",           "heartbeat",         "connection_name",
    "declare",     "queue_type",   "delayed_retries", "reconnect_initial", "reconnect_max"};
// The keys of a queue's `rabbitmq:` mapping.
constexpr std::string_view kQueueKeys[] = {
    "durable",  "queue_type",        "arguments",         "exchange",
    "bindings", "dead_letter_queue", "retry_queue_prefix"};

constexpr std::string_view kTlsKeys[] = {"ca", "cert", "key", "verify"};
constexpr std::string_view kExchangeKeys[] = {"name", "type", "durable", "auto_delete",
                                              "arguments"};
constexpr std::string_view kBindingKeys[] = {"exchange", "routing_key", "arguments"};
// AMQP short strings (queue, exchange and routing key names) hold 255 bytes.
constexpr size_t kMaxAmqpName = 255;

std::string ResolveAgainst(const std::string& dir, const std::string& path) {
  std::filesystem::path p(path);
  if (p.is_relative()) p = std::filesystem::path(dir) / p;
  return p.lexically_normal().string();
}

Status ParseTls(const YamlFile& file, const MappingEntry& entry, AmqpTlsOptions* tls) {
  Result<std::vector<MappingEntry>> entries =
      ReadMapping(file, entry.value, entry.value_mark, entry.path, kTlsKeys);
  if (!entries.ok()) return entries.status();
  for (const MappingEntry& e : *entries) {
    if (e.key == "verify") {
      Result<bool> v = ReadBool(file, e);
      if (!v.ok()) return v.status();
      tls->verify = *v;
      continue;
    }
    Result<std::string> path = ReadString(file, e);  // "" = not set
    if (!path.ok()) return path.status();
    std::string resolved = path->empty() ? std::string() : ResolveAgainst(file.dir, *path);
    if (e.key == "ca") tls->ca = resolved;
    if (e.key == "cert") tls->cert = resolved;
    if (e.key == "key") tls->key = resolved;
  }
  return Status::Ok();
}


Status ReadBoolInto(const YamlFile& file, const MappingEntry& e, bool* out) {
  Result<bool> b = ReadBool(file, e);
  if (!b.ok()) return b.status();
  *out = *b;
  return Status::Ok();
}

// A name the broker takes as a short string.
Result<std::string> ReadAmqpName(const YamlFile& file, const MappingEntry& e, bool allow_empty) {
  Result<std::string> text = allow_empty ? ReadString(file, e) : ReadNonEmptyString(file, e);
  if (!text.ok()) return text;
  if (text->size() > kMaxAmqpName) {
    return ErrorAt(file, e.value_mark, e.path,
                   "is " + std::to_string(text->size()) + " bytes long; AMQP names hold at most " +
                       std::to_string(kMaxAmqpName));
  }
  return text;
}

// `arguments: {x-max-length: 1000, x-overflow: reject-publish}`: the YAML is
// converted with the plugin `config:` rules, so the scalar types match them.
Status ParseArguments(const YamlFile& file, const MappingEntry& e, std::vector<AmqpArgument>* out) {
  if (!e.value.IsNull() && !e.value.IsMap()) {
    return ErrorAt(file, e.value_mark, e.path,
                   "expected a mapping of argument name to value ({x-max-length: 1000})");
  }
  std::map<std::string, SourceMark> marks;
  Result<std::string> json = PluginConfigToJson(file, e, &marks);
  if (!json.ok()) return json.status();
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseFullPrecisionFlag>(json->c_str(), json->size());
  if (doc.HasParseError() || !doc.IsObject()) {
    return Status::Internal(e.path + ": arguments did not convert to a JSON object");
  }
  out->clear();
  for (const auto& member : std::as_const(doc).GetObject()) {
    AmqpArgument arg;
    arg.key.assign(member.name.GetString(), member.name.GetStringLength());
    const rapidjson::Value& v = member.value;
    auto fail = [&](const std::string& why) {
      auto mark = marks.find(arg.key);
      return ErrorAt(mark == marks.end() ? ToSourceMark(file, e.value_mark) : mark->second,
                     e.path + "." + arg.key, why);
    };
    if (arg.key.empty() || arg.key.size() > kMaxAmqpName) {
      return fail("an argument name is 1 to 255 bytes long");
    }
    if (v.IsString()) {
      arg.kind = AmqpArgument::Kind::kString;
      arg.text.assign(v.GetString(), v.GetStringLength());
    } else if (v.IsBool()) {
      arg.kind = AmqpArgument::Kind::kBool;
      arg.bool_value = v.GetBool();
    } else if (v.IsInt64()) {
      arg.kind = AmqpArgument::Kind::kInt;
      arg.int_value = v.GetInt64();
    } else if (v.IsNumber()) {
      arg.kind = AmqpArgument::Kind::kDouble;
      arg.double_value = v.GetDouble();
    } else {
      return fail(std::string("expected a string, number or boolean, got ") +
                  (v.IsNull() ? "nothing" : v.IsObject() ? "a mapping" : "a sequence"));
    }
    out->push_back(std::move(arg));
  }
  return Status::Ok();
}

Status ParseExchange(const YamlFile& file, const MappingEntry& entry, AmqpExchangeConfig* x) {
  Result<std::vector<MappingEntry>> entries =
      ReadMapping(file, entry.value, entry.value_mark, entry.path, kExchangeKeys);
  if (!entries.ok()) return entries.status();
  x->mark = ToSourceMark(file, entry.key_mark);
  for (const MappingEntry& e : *entries) {
    Status status;
    if (e.key == "name") {
      Result<std::string> name = ReadAmqpName(file, e, /*allow_empty=*/false);
      if (!name.ok()) return name.status();
      if (name->rfind("amq.", 0) == 0) {
        return ErrorAt(file, e.value_mark, e.path,
                       "names starting with \"amq.\" are reserved for the broker's own exchanges "
                       "(bind to them under bindings instead of declaring them)");
      }
      x->name = *name;
    } else if (e.key == "type") {
      Result<std::string> type = ReadString(file, e);
      if (!type.ok()) return type.status();
      if (std::find(std::begin(kAmqpExchangeTypes), std::end(kAmqpExchangeTypes), *type) ==
          std::end(kAmqpExchangeTypes)) {
        return ErrorAt(file, e.value_mark, e.path,
                       "invalid exchange type \"" + *type +
                           "\": expected direct, topic, fanout or headers");
      }
      x->type = *type;
    } else if (e.key == "durable") {
      status = ReadBoolInto(file, e, &x->durable);
    } else if (e.key == "auto_delete") {
      status = ReadBoolInto(file, e, &x->auto_delete);
    } else {
      status = ParseArguments(file, e, &x->arguments);
    }
    if (!status.ok()) return status;
  }
  if (x->name.empty()) {
    return ErrorAt(file, entry.key_mark, entry.path, "missing required key \"name\"");
  }
  return Status::Ok();
}

// `routing_key: "a.*"` or `routing_key: ["a.*", "b.#"]`.
Status ParseRoutingKeys(const YamlFile& file, const MappingEntry& e, std::vector<std::string>* out) {
  out->clear();
  if (!e.value.IsSequence()) {
    Result<std::string> key = ReadAmqpName(file, e, /*allow_empty=*/true);
    if (!key.ok()) return key.status();
    out->push_back(*key);
    return Status::Ok();
  }
  size_t index = 0;
  for (auto it = e.value.begin(); it != e.value.end(); ++it, ++index) {
    YAML::Node node = *it;
    MappingEntry item;
    item.key = std::to_string(index);
    item.path = e.path + "[" + item.key + "]";
    item.value = node;
    item.key_mark = item.value_mark = node.Mark().line < 0 ? e.value_mark : node.Mark();
    Result<std::string> key = ReadAmqpName(file, item, /*allow_empty=*/true);
    if (!key.ok()) return key.status();
    out->push_back(*key);
  }
  if (out->empty()) {
    return ErrorAt(file, e.value_mark, e.path, "expected at least one routing key");
  }
  return Status::Ok();
}

Status ParseBindings(const YamlFile& file, const MappingEntry& list,
                     std::vector<AmqpBindingConfig>* out) {
  out->clear();
  if (list.value.IsNull()) return Status::Ok();
  if (!list.value.IsSequence()) {
    return ErrorAt(file, list.value_mark, list.path,
                   "expected a sequence (- {exchange: NAME, routing_key: KEY})");
  }
  size_t index = 0;
  for (auto it = list.value.begin(); it != list.value.end(); ++it, ++index) {
    YAML::Node node = *it;
    std::string path = list.path + "[" + std::to_string(index) + "]";
    YAML::Mark mark = node.Mark().line < 0 ? list.value_mark : node.Mark();
    Result<std::vector<MappingEntry>> entries = ReadMapping(file, node, mark, path, kBindingKeys);
    if (!entries.ok()) return entries.status();
    AmqpBindingConfig binding;
    binding.mark = ToSourceMark(file, mark);
    binding.routing_keys = {""};
    for (const MappingEntry& e : *entries) {
      Status status;
      if (e.key == "exchange") {
        Result<std::string> name = ReadAmqpName(file, e, /*allow_empty=*/false);
        status = name.ok() ? Status::Ok() : name.status();
        if (status.ok()) binding.exchange = *name;
      } else if (e.key == "routing_key") {
        status = ParseRoutingKeys(file, e, &binding.routing_keys);
      } else {
        status = ParseArguments(file, e, &binding.arguments);
      }
      if (!status.ok()) return status;
    }
    out->push_back(std::move(binding));
  }
  return Status::Ok();
}

// A dead_letter_queue or retry_queue_prefix: "{queue}" is the only
// placeholder.
Status ReadQueuePattern(const YamlFile& file, const MappingEntry& e, std::string* out) {
  Result<std::string> text = ReadNonEmptyString(file, e);
  if (!text.ok()) return text.status();
  std::string rest = ExpandQueuePattern(*text, "");
  size_t brace = rest.find_first_of("{}");
  if (brace != std::string::npos) {
    return ErrorAt(file, e.value_mark, e.path,
                   "\"{queue}\" is the only placeholder (the AMQP queue); found \"" + *text + "\"");
  }
  *out = *text;
  return Status::Ok();
}

bool SameArguments(const std::vector<AmqpArgument>& a, const std::vector<AmqpArgument>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].key != b[i].key || a[i].kind != b[i].kind || a[i].text != b[i].text ||
        a[i].int_value != b[i].int_value || a[i].double_value != b[i].double_value ||
        a[i].bool_value != b[i].bool_value) {
      return false;
    }
  }
  return true;
}

// One key of the backend's block (any of kBackendKeys but "type").
Status ParseBackendKey(const YamlFile& file, const MappingEntry& e, RabbitMqBackendOptions* o) {
  auto read_duration = [&](Duration* out, bool allow_zero) -> Status {
    Result<Duration> d = ReadDuration(file, e);
    if (!d.ok()) return d.status();
    if (!allow_zero && *d == Duration::zero())
      return ErrorAt(file, e.value_mark, e.path, "must be greater than zero");
    *out = *d;
    return Status::Ok();
  };
  auto read_bool = [&](bool* out) -> Status {
    Result<bool> b = ReadBool(file, e);
    if (!b.ok()) return b.status();
    *out = *b;
    return Status::Ok();
  };
  if (e.key == "url") {
    Result<std::string> url = ReadNonEmptyString(file, e);
    if (!url.ok()) return url.status();
    if (!IsValidAmqpUrl(*url)) {
      return ErrorAt(file, e.value_mark, e.path,
                     "invalid AMQP URL \"" + RedactUrl(*url) +
                         "\": expected amqp://user:password@host:port/vhost or amqps://...");
    }
    o->url = *url;
    return Status::Ok();
  }
  if (e.key == "tls") return ParseTls(file, e, &o->tls);
  if (e.key == "heartbeat") return read_duration(&o->heartbeat, true);
  if (e.key == "connection_name") {
    Result<std::string> name = ReadNonEmptyString(file, e);
    if (!name.ok()) return name.status();
    o->connection_name = *name;
    return Status::Ok();
  }
  if (e.key == "declare") return read_bool(&o->declare);
  if (e.key == "delayed_retries") return read_bool(&o->delayed_retries);
  if (e.key == "queue_type") {
    Result<std::string> text = ReadString(file, e);
    if (!text.ok()) return text.status();
    Result<AmqpQueueType> type = ParseAmqpQueueType(*text);
    if (!type.ok()) return ErrorAt(file, e.value_mark, e.path, type.status().message());
    o->queue_type = *type;
    return Status::Ok();
  }
  if (e.key == "reconnect_initial") return read_duration(&o->reconnect_initial, false);
  if (e.key == "reconnect_max") return read_duration(&o->reconnect_max, false);
  return ErrorAt(file, e.key_mark, e.path, "not a key of a rabbitmq backend");
}

}  // namespace

std::string ExpandQueuePattern(std::string_view pattern, std::string_view queue) {
  static constexpr std::string_view kPlaceholder = "{queue}";
  std::string out;
  size_t pos = 0;
  for (size_t at; (at = pattern.find(kPlaceholder, pos)) != std::string_view::npos;
       pos = at + kPlaceholder.size()) {
    out.append(pattern.substr(pos, at - pos));
    out.append(queue);
  }
  out.append(pattern.substr(pos));
  return out;
}

std::string_view AmqpQueueTypeName(AmqpQueueType type) {
  return type == AmqpQueueType::kQuorum ? "quorum" : "classic";
}

Result<AmqpQueueType> ParseAmqpQueueType(std::string_view name) {
  if (name == "quorum") return AmqpQueueType::kQuorum;
  if (name == "classic") return AmqpQueueType::kClassic;
  return Status::InvalidArgument("invalid queue type \"" + std::string(name) +
                                 "\": expected quorum or classic");
}

std::string RedactUrl(std::string_view url) {
  size_t scheme_end = url.find("://");
  size_t start = scheme_end == std::string_view::npos ? 0 : scheme_end + 3;
  size_t at = url.find('@', start);
  if (at == std::string_view::npos) return std::string(url);
  size_t slash = url.find('/', start);
  if (slash != std::string_view::npos && slash < at) return std::string(url);
  size_t colon = url.find(':', start);
  if (colon == std::string_view::npos || colon > at) return std::string(url);
  return std::string(url.substr(0, colon + 1)) + "***" + std::string(url.substr(at));
}

namespace {

// The backend's options as a whole (after every key was read); `mark` is
// the backend's, `where` its path.
Status CheckBackend(const RabbitMqBackendOptions& o, const SourceMark& mark,
                    const std::string& where) {
  if (o.reconnect_max < o.reconnect_initial) {
    return ErrorAt(mark, where + ".reconnect_max",
                   "must not be less than reconnect_initial");
  }
  if (o.heartbeat.count() % 1000 != 0 || o.heartbeat > Duration(65535000)) {
    return ErrorAt(mark, where + ".heartbeat",
                   "must be whole seconds between 0s and 65535s (AMQP heartbeats are in seconds)");
  }
  if (o.tls.cert.empty() != o.tls.key.empty()) {
    return ErrorAt(mark, where + ".tls", "cert and key must be given together");
  }
  bool amqps = o.url.rfind("amqps://", 0) == 0;
  if (!amqps && (!o.tls.ca.empty() || !o.tls.cert.empty())) {
    return ErrorAt(mark, where + ".tls", "TLS options need an amqps:// url");
  }
  return Status::Ok();
}

// A queue's `rabbitmq:` mapping (`entry`).
Status ParseQueueOptions(const YamlFile& file, const MappingEntry& entry, RabbitMqQueueOptions* o) {
  Result<std::vector<MappingEntry>> entries =
      ReadMapping(file, entry.value, entry.value_mark, entry.path, kQueueKeys);
  if (!entries.ok()) return entries.status();
  o->present = true;
  o->mark = ToSourceMark(file, entry.key_mark);
  for (const MappingEntry& e : *entries) {
    Status status;
    if (e.key == "durable") {
      status = ReadBoolInto(file, e, &o->durable);
    } else if (e.key == "queue_type") {
      Result<std::string> text = ReadString(file, e);
      if (!text.ok()) return text.status();
      Result<AmqpQueueType> type = ParseAmqpQueueType(*text);
      if (!type.ok()) return ErrorAt(file, e.value_mark, e.path, type.status().message());
      o->queue_type = *type;
    } else if (e.key == "arguments") {
      status = ParseArguments(file, e, &o->arguments);
      for (const AmqpArgument& arg : o->arguments) {
        if (status.ok() && arg.key == "x-queue-type") {
          status = ErrorAt(file, e.value_mark, e.path,
                           "x-queue-type is set by queue_type (quorum or classic), not here");
        }
      }
    } else if (e.key == "exchange") {
      AmqpExchangeConfig exchange;
      status = ParseExchange(file, e, &exchange);
      if (status.ok()) o->exchange = std::move(exchange);
    } else if (e.key == "bindings") {
      status = ParseBindings(file, e, &o->bindings);
    } else if (e.key == "dead_letter_queue") {
      status = ReadQueuePattern(file, e, &o->dead_letter_queue);
    } else if (e.key == "retry_queue_prefix") {
      status = ReadQueuePattern(file, e, &o->retry_queue_prefix);
    } else {
      return Status::Internal(e.path + ": not a key of a queue's rabbitmq block");  // checked
    }
    if (!status.ok()) return status;
  }
  for (size_t i = 0; i < o->bindings.size(); ++i) {
    AmqpBindingConfig& b = o->bindings[i];
    if (!b.exchange.empty()) continue;
    if (!o->exchange) {
      return ErrorAt(b.mark, entry.path + ".bindings[" + std::to_string(i) + "]",
                     "missing required key \"exchange\" (it defaults to the queue's own "
                     "exchange, and this queue declares none)");
    }
    b.exchange = o->exchange->name;
  }
  return Status::Ok();
}

// Every queue's `rabbitmq:` settings against its backend and the other
// queues (after every file was read and references were checked; a block on
// a queue of another backend type was refused before).
Status CheckQueues(const Config& config) {
  // Exchanges declared by more than one queue of a backend must agree, or the
  // broker refuses the second declaration.
  std::map<std::pair<std::string, std::string>, const AmqpExchangeConfig*> exchanges;
  for (const QueueConfig& q : config.queues) {
    const BackendConfig* backend = config.FindBackend(q.backend);
    const auto* backend_options =
        backend != nullptr ? backend->options.As<RabbitMqBackendOptions>() : nullptr;
    if (backend_options == nullptr) continue;
    const RabbitMqQueueOptions& o = RabbitMqQueueOptionsOf(q.backend_block.options.get());
    const std::string where = "queues." + q.name + ".rabbitmq";
    const RabbitMqBackendOptions& b = *backend_options;
    AmqpQueueType type = o.queue_type.value_or(b.queue_type);
    if (!b.declare && (o.exchange || !o.bindings.empty() || !o.arguments.empty() ||
                       o.queue_type || !o.durable)) {
      return ErrorAt(o.mark, where,
                     "backend " + backend->name +
                         " has declare: false, so durable, queue_type, arguments, exchange and "
                         "bindings would not be used");
    }
    if (type == AmqpQueueType::kQuorum && !o.durable) {
      return ErrorAt(o.mark, where + ".durable", "quorum queues are always durable");
    }
    const std::string dlq = ExpandQueuePattern(o.dead_letter_queue, q.source);
    if (dlq == q.source) {
      return ErrorAt(o.mark, where + ".dead_letter_queue",
                     "names the queue itself (\"" + dlq + "\")");
    }
    if (dlq.size() > kMaxAmqpName) {
      return ErrorAt(o.mark, where + ".dead_letter_queue",
                     "\"" + dlq + "\" is longer than 255 bytes");
    }
    // The longest tier suffix is "99.9ms"-like; leave room for it.
    if (ExpandQueuePattern(o.retry_queue_prefix, q.source).size() + 16 > kMaxAmqpName) {
      return ErrorAt(o.mark, where + ".retry_queue_prefix",
                     "leaves no room for the tier in a 255-byte queue name");
    }
    if (!o.exchange) continue;
    auto [it, inserted] = exchanges.emplace(std::make_pair(backend->name, o.exchange->name),
                                            &*o.exchange);
    const AmqpExchangeConfig& x = *o.exchange;
    const AmqpExchangeConfig& first = *it->second;
    if (!inserted && (x.type != first.type || x.durable != first.durable ||
                      x.auto_delete != first.auto_delete ||
                      !SameArguments(x.arguments, first.arguments))) {
      return ErrorAt(x.mark, where + ".exchange",
                     "exchange \"" + x.name + "\" is also declared at " + first.mark.ToString() +
                         " with other settings; the broker would refuse one of them");
    }
  }
  return Status::Ok();
}

Result<std::shared_ptr<const BackendOptions>> ParseBackend(
    const YamlFile& file, const MappingEntry& item, const std::vector<MappingEntry>& entries) {
  auto options = std::make_shared<RabbitMqBackendOptions>();
  for (const MappingEntry& e : entries) {
    if (e.key == "type") continue;
    Status status = ParseBackendKey(file, e, options.get());
    if (!status.ok()) return status;
  }
  Status status = CheckBackend(*options, ToSourceMark(file, item.key_mark), item.path);
  if (!status.ok()) return status;
  return std::shared_ptr<const BackendOptions>(std::move(options));
}

void FormatBackend(const BackendOptions& base, YamlWriter& w, int depth) {
  const auto& r = static_cast<const RabbitMqBackendOptions&>(base);
  w.Line(depth, "url", Quote(RedactUrl(r.url)));  // the password prints as ***
  w.Line(depth, "tls", "");
  w.Line(depth + 1, "ca", Quote(r.tls.ca));
  w.Line(depth + 1, "cert", Quote(r.tls.cert));
  w.Line(depth + 1, "key", Quote(r.tls.key));
  w.Line(depth + 1, "verify", BoolText(r.tls.verify));
  w.Line(depth, "heartbeat", FormatDuration(r.heartbeat));
  w.Line(depth, "connection_name", Quote(r.connection_name));
  w.Line(depth, "declare", BoolText(r.declare));
  w.Line(depth, "queue_type", AmqpQueueTypeName(r.queue_type));
  w.Line(depth, "delayed_retries", BoolText(r.delayed_retries));
  w.Line(depth, "reconnect_initial", FormatDuration(r.reconnect_initial));
  w.Line(depth, "reconnect_max", FormatDuration(r.reconnect_max));
}

Result<std::shared_ptr<const BackendQueueOptions>> ParseQueue(const YamlFile& file,
                                                               const MappingEntry& entry) {
  auto options = std::make_shared<RabbitMqQueueOptions>();
  Status status = ParseQueueOptions(file, entry, options.get());
  if (!status.ok()) return status;
  return std::shared_ptr<const BackendQueueOptions>(std::move(options));
}

// An AMQP argument's value, written so that it reads back with its type.
std::string ArgumentText(const AmqpArgument& a) {
  switch (a.kind) {
    case AmqpArgument::Kind::kString:
      return Quote(a.text);
    case AmqpArgument::Kind::kInt:
      return std::to_string(a.int_value);
    case AmqpArgument::Kind::kBool:
      return std::string(BoolText(a.bool_value));
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
void FormatQueue(const BackendQueueOptions* options, const BackendConfig& backend_config,
                 YamlWriter& w, int depth) {
  const RabbitMqQueueOptions& o = RabbitMqQueueOptionsOf(options);
  const auto& backend = *backend_config.options.As<RabbitMqBackendOptions>();
  w.Line(depth, "rabbitmq", "");
  const int d = depth + 1;
  if (!backend.declare) {
    // Nothing is declared: only the names apply (anything else is an error).
    w.Line(d, "dead_letter_queue", Quote(o.dead_letter_queue));
    w.Line(d, "retry_queue_prefix", Quote(o.retry_queue_prefix));
    return;
  }
  w.Line(d, "durable", BoolText(o.durable));
  w.Line(d, "queue_type", AmqpQueueTypeName(o.queue_type.value_or(backend.queue_type)));
  FormatArguments(w, d, o.arguments);
  if (o.exchange) {
    const AmqpExchangeConfig& x = *o.exchange;
    w.Line(d, "exchange", "");
    w.Line(d + 1, "name", Quote(x.name));
    w.Line(d + 1, "type", x.type);
    w.Line(d + 1, "durable", BoolText(x.durable));
    w.Line(d + 1, "auto_delete", BoolText(x.auto_delete));
    FormatArguments(w, d + 1, x.arguments);
  }
  w.Line(d, "bindings", o.bindings.empty() ? "[]" : "");
  for (const AmqpBindingConfig& b : o.bindings) {
    w.text() += std::string(2 * static_cast<size_t>(d + 1), ' ') + "- exchange: " +
                Quote(b.exchange) + "\n";
    std::string keys;
    for (const std::string& k : b.routing_keys) keys += (keys.empty() ? "" : ", ") + Quote(k);
    w.Line(d + 2, "routing_key", "[" + keys + "]");
    FormatArguments(w, d + 2, b.arguments);
  }
  w.Line(d, "dead_letter_queue", Quote(o.dead_letter_queue));
  w.Line(d, "retry_queue_prefix", Quote(o.retry_queue_prefix));
}


}  // namespace

bool RabbitMqQueueOptions::operator==(const RabbitMqQueueOptions& other) const {
  return present == other.present && durable == other.durable &&
         queue_type == other.queue_type && arguments == other.arguments &&
         exchange == other.exchange && bindings == other.bindings &&
         dead_letter_queue == other.dead_letter_queue &&
         retry_queue_prefix == other.retry_queue_prefix;
}

bool RabbitMqQueueOptions::Equals(const BackendQueueOptions& other) const {
  const auto* same = dynamic_cast<const RabbitMqQueueOptions*>(&other);
  return same != nullptr && *this == *same;
}

const RabbitMqQueueOptions& RabbitMqQueueOptionsOf(const BackendQueueOptions* options) {
  static const RabbitMqQueueOptions kDefaults;
  const auto* own = dynamic_cast<const RabbitMqQueueOptions*>(options);
  return own != nullptr ? *own : kDefaults;
}

void RegisterRabbitMqBackend(ExtensionRegistry& registry) {
  BackendExtension rabbitmq;
  rabbitmq.type = "rabbitmq";
  rabbitmq.keys = kBackendKeys;
  rabbitmq.parse = ParseBackend;
  rabbitmq.format = FormatBackend;
  rabbitmq.queue_key = "rabbitmq";
  rabbitmq.parse_queue = ParseQueue;
  rabbitmq.format_queue = FormatQueue;
  rabbitmq.check_queues = CheckQueues;
  registry.AddBackend(std::move(rabbitmq));
}

}  // namespace foxworker
