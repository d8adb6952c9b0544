// The Lua scripts that make each settlement one atomic step in Redis.
// Each checks that the entry is still pending before it writes, so applying
// a settlement twice (after a lost reply) writes its copy once.
#ifndef FOXWORKER_BACKENDS_REDIS_REDIS_SCRIPTS_H_
#define FOXWORKER_BACKENDS_REDIS_REDIS_SCRIPTS_H_

namespace foxworker {

// Schedules a retry copy and acks the original.
// KEYS: stream, retry set. ARGV: group, id, due (Unix ms), fields...
// The set's member is msgpack [original id, fields...]: the id keeps two
// copies with the same fields apart. Returns 1, or 0 when not pending.
inline constexpr char kRetryScript[] = R"lua(
if #redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1) == 0 then return 0 end
local member = {ARGV[2]}
for i = 4, #ARGV do member[#member + 1] = ARGV[i] end
redis.call('ZADD', KEYS[2], ARGV[3], cmsgpack.pack(member))
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
return 1
)lua";

// Appends a dead-letter copy and acks the original.
// KEYS: stream, dead-letter stream. ARGV: group, id, dlq maxlen (0 = none),
// fields... Returns 1, or 0 when not pending.
inline constexpr char kDeadLetterScript[] = R"lua(
if #redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1) == 0 then return 0 end
local args = {'XADD', KEYS[2]}
if tonumber(ARGV[3]) > 0 then
  args[#args + 1] = 'MAXLEN'; args[#args + 1] = '~'; args[#args + 1] = ARGV[3]
end
args[#args + 1] = '*'
for i = 4, #ARGV do args[#args + 1] = ARGV[i] end
redis.call(unpack(args))
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
return 1
)lua";

// Adds a message to the retry set (a delayed enqueue).
// KEYS: retry set. ARGV: unique tag, due (Unix ms), fields...
inline constexpr char kDelayScript[] = R"lua(
local member = {ARGV[1]}
for i = 3, #ARGV do member[#member + 1] = ARGV[i] end
redis.call('ZADD', KEYS[1], ARGV[2], cmsgpack.pack(member))
return 1
)lua";

// Moves due entries of the retry set to the stream.
// KEYS: retry set, stream. ARGV: now (Unix ms), limit, stream maxlen.
// Returns {moved, earliest remaining due time or nil}.
inline constexpr char kMoveDueScript[] = R"lua(
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, m in ipairs(due) do
  local f = cmsgpack.unpack(m)
  local args = {'XADD', KEYS[2]}
  if tonumber(ARGV[3]) > 0 then
    args[#args + 1] = 'MAXLEN'; args[#args + 1] = '~'; args[#args + 1] = ARGV[3]
  end
  args[#args + 1] = '*'
  for i = 2, #f do args[#args + 1] = f[i] end
  redis.call(unpack(args))
  redis.call('ZREM', KEYS[1], m)
end
local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {#due, nxt[2]}
)lua";

// Keeps entries this consumer still holds from looking idle (so others do
// not claim a long-running one), without taking back an entry another
// consumer claimed meanwhile. KEYS: stream. ARGV: group, consumer, ids...
inline constexpr char kRenewScript[] = R"lua(
local n = 0
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if #p == 1 and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    n = n + 1
  end
end
return n
)lua";

}  // namespace foxworker

#endif  // FOXWORKER_BACKENDS_REDIS_REDIS_SCRIPTS_H_
