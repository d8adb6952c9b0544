// Redis connection URLs: redis://[[user]:password@]host[:port][/db],
// rediss://... (refused: this build's hiredis has no TLS) and
// unix:///path/to/socket[?db=N].
#ifndef FOXWORKER_BACKENDS_REDIS_REDIS_URL_H_
#define FOXWORKER_BACKENDS_REDIS_REDIS_URL_H_

#include <string>
#include <string_view>

#include "daemon/backends/redis/redis_config.h"

namespace foxworker {

// Fills the endpoint fields of `out` (host, port, unix_path, db, user,
// password) from `url`, leaving the other fields alone. The error message
// never contains the password.
Status ParseRedisUrl(std::string_view url, RedisBackendOptions* out);

// The endpoint of `options` as a URL with the password replaced by "***",
// for logs and --check-config.
std::string RedactedRedisUrl(const RedisBackendOptions& options);

}  // namespace foxworker

#endif  // FOXWORKER_BACKENDS_REDIS_REDIS_URL_H_
