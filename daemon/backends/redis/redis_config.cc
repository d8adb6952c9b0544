#include "daemon/backends/redis/redis_config.h"

#include <utility>

#include "daemon/backends/redis/redis_url.h"
#include "daemon/config/extension_registry.h"
#include "daemon/base/units.h"

namespace foxworker {
namespace {

constexpr std::string_view kKeys[] = {
    "type",     "url",   "connect_timeout", "command_timeout",   "group",
    "consumer", "start", "payload_field",   "min_idle",          "claim_interval",
    "block",    "maxlen", "dlq_maxlen",     "reconnect_initial", "reconnect_max"};

// One key of the block.
Status ParseKey(const YamlFile& file, const MappingEntry& e, RedisBackendOptions* r) {
  if (e.key == "type") return Status::Ok();
  if (e.key == "url") {
    Result<std::string> url = ReadNonEmptyString(file, e);
    if (!url.ok()) return url.status();
    Status status = ParseRedisUrl(*url, r);
    if (!status.ok()) return ErrorAt(file, e.value_mark, e.path, status.message());
    return Status::Ok();
  }
  if (e.key == "group") return Assign(ReadNonEmptyString(file, e), &r->group);
  if (e.key == "consumer") return Assign(ReadNonEmptyString(file, e), &r->consumer);
  if (e.key == "payload_field") return Assign(ReadNonEmptyString(file, e), &r->payload_field);
  if (e.key == "start") {
    Status status = Assign(ReadNonEmptyString(file, e), &r->start);
    if (status.ok() && r->start != "0" && r->start != "$") {
      return ErrorAt(file, e.value_mark, e.path,
                     "must be \"0\" (the whole stream) or \"$\" (only new entries)");
    }
    return status;
  }
  if (e.key == "maxlen") return Assign(ReadInteger(file, e, 0, INT64_MAX), &r->maxlen);
  if (e.key == "dlq_maxlen") return Assign(ReadInteger(file, e, 0, INT64_MAX), &r->dlq_maxlen);
  if (e.key == "connect_timeout") return AssignPositiveDuration(file, e, &r->connect_timeout);
  if (e.key == "command_timeout") return AssignPositiveDuration(file, e, &r->command_timeout);
  if (e.key == "min_idle") return AssignPositiveDuration(file, e, &r->min_idle);
  if (e.key == "claim_interval") return AssignPositiveDuration(file, e, &r->claim_interval);
  if (e.key == "block") return AssignPositiveDuration(file, e, &r->block);
  if (e.key == "reconnect_initial") return AssignPositiveDuration(file, e, &r->reconnect_initial);
  if (e.key == "reconnect_max") return AssignPositiveDuration(file, e, &r->reconnect_max);
  return Status::Internal(e.path + ": not a key of a redis backend");  // keys were checked
}

Result<std::shared_ptr<const BackendOptions>> Parse(const YamlFile& file, const MappingEntry&,
                                                    const std::vector<MappingEntry>& entries) {
  auto options = std::make_shared<RedisBackendOptions>();
  for (const MappingEntry& e : entries) {
    Status status = ParseKey(file, e, options.get());
    if (!status.ok()) return status;
  }
  return std::shared_ptr<const BackendOptions>(std::move(options));
}

void Format(const BackendOptions& base, YamlWriter& w, int depth) {
  const auto& r = static_cast<const RedisBackendOptions&>(base);
  w.Line(depth, "url", Quote(RedactedRedisUrl(r)));  // the password prints as ***
  w.Line(depth, "connect_timeout", FormatDuration(r.connect_timeout));
  w.Line(depth, "command_timeout", FormatDuration(r.command_timeout));
  w.Line(depth, "group", Quote(r.group));
  w.Line(depth, "consumer", Quote(r.consumer));  // "" = hostname:pid
  w.Line(depth, "start", Quote(r.start));
  w.Line(depth, "payload_field", Quote(r.payload_field));
  w.Line(depth, "min_idle", FormatDuration(r.min_idle));
  w.Line(depth, "claim_interval", FormatDuration(r.claim_interval));
  w.Line(depth, "block", FormatDuration(r.block));
  w.Line(depth, "maxlen", std::to_string(r.maxlen));
  w.Line(depth, "dlq_maxlen", std::to_string(r.dlq_maxlen));
  w.Line(depth, "reconnect_initial", FormatDuration(r.reconnect_initial));
  w.Line(depth, "reconnect_max", FormatDuration(r.reconnect_max));
}

}  // namespace

void RegisterRedisBackend(ExtensionRegistry& registry) {
  BackendExtension redis;
  redis.type = "redis";
  redis.keys = kKeys;
  redis.parse = Parse;
  redis.format = Format;
  registry.AddBackend(std::move(redis));
}

}  // namespace foxworker
