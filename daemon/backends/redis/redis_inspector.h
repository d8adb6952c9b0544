// RedisInspector: the redis backend's Inspector (daemon/core/inspect.h), on
// a hiredis connection of its own (connect and command timeouts = the
// inspector's timeout; after an error the next call connects again).
//
//   depth         XINFO GROUPS (the group's `lag` and `pending`, Redis 7;
//                 else the entries after its last-delivered-id are counted),
//                 ZCARD <stream>:retry, XLEN <stream>-dlq, and the first
//                 undelivered entry's id for the oldest age
//   dead letters  the <stream>-dlq stream; ids are its entry ids. A retry is
//                 one Lua script per call: XADD of the letter's fields back
//                 to the stream without the dead-letter fields (attempt 1
//                 again), then XDEL from the dead letters
//   scheduled     ZRANGE <stream>:retry WITHSCORES, members decoded from
//                 their msgpack [tag, field, value, ...]
#ifndef FOXWORKER_BACKENDS_REDIS_REDIS_INSPECTOR_H_
#define FOXWORKER_BACKENDS_REDIS_REDIS_INSPECTOR_H_

#include <memory>
#include <string>
#include <vector>

#include "daemon/backends/redis/redis_config.h"
#include "daemon/backends/redis/redis_connection.h"
#include "daemon/core/inspect.h"

namespace foxworker {

// Decodes a retry set member, a msgpack array of strings (or integers, as
// text); false when it is not one.
bool DecodeMsgpackStrings(std::string_view packed, std::vector<std::string>* out);

class RedisInspector final : public Inspector {
 public:
  RedisInspector(RedisBackendOptions options, InspectorOptions inspector);

  Result<QueueDepth> Depth(const SourceOptions& queue) override;
  Result<DeadLetterPage> ListDead(const SourceOptions& queue, const DeadLetterFilter& filter,
                                  size_t offset, size_t limit) override;
  Result<DeadLetter> GetDead(const SourceOptions& queue, const std::string& id,
                             size_t max_payload) override;
  Result<std::vector<std::string>> RetryDead(const SourceOptions& queue,
                                             const std::vector<std::string>& ids) override;
  Result<size_t> RetryMatching(const SourceOptions& queue, const DeadLetterFilter& filter) override;
  Result<std::vector<std::string>> DeleteDead(const SourceOptions& queue,
                                              const std::vector<std::string>& ids) override;
  Result<size_t> DeleteMatching(const SourceOptions& queue, const DeadLetterFilter& filter) override;
  Result<std::vector<ScheduledJob>> ListScheduled(const SourceOptions& queue, size_t limit) override;

 private:
  // Runs one command, connecting first when needed; drops the connection
  // when it fails (the next call connects again).
  Result<RedisReplyPtr> Run(const RedisCommand& command);
  // Walks the dead letters newest first, calling `visit(id, fields)` for
  // each until it returns false or `max` were seen; returns how many.
  Result<size_t> Walk(const std::string& dlq, size_t max,
                      const std::function<bool(const std::string&, const redisReply*)>& visit);
  // The ids of every dead letter whose reason matches.
  Result<std::vector<std::string>> Matching(const SourceOptions& queue,
                                            const DeadLetterFilter& filter);

  RedisBackendOptions options_;
  std::unique_ptr<RedisConnection> conn_;
};

}  // namespace foxworker

#endif  // FOXWORKER_BACKENDS_REDIS_REDIS_INSPECTOR_H_
