// `type: redis` in `backends:`: the options of a RedisBackend, their YAML
// and the registration that makes the type known. The endpoint fields are
// parsed from `url` (redis_url.h); `password` is never printed or logged.
#ifndef FOXWORKER_BACKENDS_REDIS_REDIS_CONFIG_H_
#define FOXWORKER_BACKENDS_REDIS_REDIS_CONFIG_H_

#include <cstdint>
#include <string>

#include "daemon/config/config.h"

namespace foxworker {

class ExtensionRegistry;

struct RedisBackendOptions : EquatableOptions<RedisBackendOptions, BackendOptions> {
  std::string url = "redis://127.0.0.1:6379/0";
  std::string host = "127.0.0.1";  // empty when unix_path is set
  int port = 6379;
  std::string unix_path;            // unix:///path?db=N
  int db = 0;
  std::string user;                 // ACL user (Redis 6+); empty = default user
  std::string password;             // empty = no AUTH
  Duration connect_timeout{5000};
  Duration command_timeout{5000};
  std::string group = "foxworker";
  std::string consumer;             // empty = "hostname:pid"
  std::string start = "0";          // where a new group starts: "0" (all) or "$" (new only)
  std::string payload_field = "data";
  Duration min_idle{60000};         // claim others' pending entries idle this long
  Duration claim_interval{5000};    // how often to look for such entries
  Duration block{1000};             // XREADGROUP BLOCK
  int64_t maxlen = 0;               // stream MAXLEN ~ on our XADDs; 0 = no trimming
  int64_t dlq_maxlen = 0;           // same for <stream>-dlq
  Duration reconnect_initial{100};
  Duration reconnect_max{10000};

  bool operator==(const RedisBackendOptions&) const = default;
};

// Adds `type: redis`: its keys, parse, format and factory.
void RegisterRedisBackend(ExtensionRegistry& registry);

}  // namespace foxworker

#endif  // FOXWORKER_BACKENDS_REDIS_REDIS_CONFIG_H_
