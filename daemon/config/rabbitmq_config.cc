#include "daemon/config/rabbitmq_config.h"

#include <amqp.h>

#include <filesystem>
#include <string>
#include <vector>

namespace foxworker {
namespace {

constexpr std::string_view kTlsKeys[] = {"ca", "cert", "key", "verify"};

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

}  // namespace

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

Status ParseRabbitMqBackendKey(const YamlFile& file, const MappingEntry& e,
                               RabbitMqBackendOptions* o) {
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
    std::string buffer = *url;
    amqp_connection_info info;
    if (amqp_parse_url(buffer.data(), &info) != AMQP_STATUS_OK) {
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

Status CheckRabbitMqBackend(const BackendConfig& backend) {
  const RabbitMqBackendOptions& o = backend.rabbitmq;
  const std::string where = "backends." + backend.name;
  if (o.reconnect_max < o.reconnect_initial) {
    return ErrorAt(backend.mark, where + ".reconnect_max",
                   "must not be less than reconnect_initial");
  }
  if (o.heartbeat.count() % 1000 != 0 || o.heartbeat > Duration(65535000)) {
    return ErrorAt(backend.mark, where + ".heartbeat",
                   "must be whole seconds between 0s and 65535s (AMQP heartbeats are in seconds)");
  }
  if (o.tls.cert.empty() != o.tls.key.empty()) {
    return ErrorAt(backend.mark, where + ".tls", "cert and key must be given together");
  }
  bool amqps = o.url.rfind("amqps://", 0) == 0;
  if (!amqps && (!o.tls.ca.empty() || !o.tls.cert.empty())) {
    return ErrorAt(backend.mark, where + ".tls", "TLS options need an amqps:// url");
  }
  return Status::Ok();
}

}  // namespace foxworker
