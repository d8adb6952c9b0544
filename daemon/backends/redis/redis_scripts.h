// The Lua scripts that make each settlement one atomic step in Redis.
// Each checks that the entry is still pending before it writes, so applying
// a settlement twice (after a lost reply) writes its copy once.
#ifndef FOXWORKER_BACKENDS_REDIS_REDIS_SCRIPTS_H_
#define FOXWORKER_BACKENDS_REDIS_REDIS_SCRIPTS_H_

#include <string>

namespace foxworker {

// Lua shared by the copy scripts. A copy is the entry's own fields, read
// with XRANGE, in order, duplicates kept (docs/backends/redis.md, "Copies"),
// with foxworker's bookkeeping fields applied: ARGV[at] is their count n,
// then n triples (mode, name, value): 'set' overwrites the first field of
// that name in place, else appends it; 'add' appends it only when absent;
// 'del' removes every field of that name. When the entry is gone from the
// stream (trimmed or deleted while it ran), the fields after the triples,
// as the daemon decoded them, stand in for it.
inline constexpr char kCopyLua[] = R"lua(
local function bookkeep(f, at)
  local n = tonumber(ARGV[at])
  for k = 0, n - 1 do
    local mode, name, value = ARGV[at + 1 + 3 * k], ARGV[at + 2 + 3 * k], ARGV[at + 3 + 3 * k]
    local found, i = false, 1
    while i < #f do
      if f[i] == name and mode == 'del' then
        table.remove(f, i); table.remove(f, i)
      else
        if f[i] == name and not found then
          found = true
          if mode == 'set' then f[i + 1] = value end
        end
        i = i + 2
      end
    end
    if not found and mode ~= 'del' then f[#f + 1] = name; f[#f + 1] = value end
  end
end
local function copy_of_entry(at)
  local f
  local e = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
  if #e == 1 then
    f = e[1][2]
  else
    f = {}
    for i = at + 1 + 3 * tonumber(ARGV[at]), #ARGV do f[#f + 1] = ARGV[i] end
  end
  bookkeep(f, at)
  return f
end
)lua";

// Schedules a retry copy and acks the original.
// KEYS: stream, retry set. ARGV: group, id, due (Unix ms), bookkeeping (at
// 4), fallback fields... The set's member is msgpack [original id, fields...]:
// the id keeps two copies with the same fields apart. Returns 1, or 0 when
// not pending.
inline const std::string kRetryScript = std::string(kCopyLua) + R"lua(
if #redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1) == 0 then return 0 end
local member = {ARGV[2]}
for _, v in ipairs(copy_of_entry(4)) do member[#member + 1] = v end
redis.call('ZADD', KEYS[2], ARGV[3], cmsgpack.pack(member))
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
return 1
)lua";

// The most arguments a script passes to one redis.call: Lua's unpack gives
// at most about 8,000 values (LUAI_MAXCSTACK), so an entry of 4,000 fields
// or more cannot be written by a script. Such copies are returned to the
// client, which writes them in a MULTI/EXEC of its own.
#define FOXWORKER_REDIS_MAX_CALL_ARGS "7000"

// Appends a dead-letter copy and acks the original.
// KEYS: stream, dead-letter stream. ARGV: group, id, dlq maxlen (0 = none),
// bookkeeping (at 4), fallback fields... Returns 1, or 0 when not pending, or the copy's fields when
// there are too many for one call from a script: then nothing was written,
// and the caller writes the copy and the ack in a transaction.
inline const std::string kDeadLetterScript = std::string(kCopyLua) + R"lua(
if #redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1) == 0 then return 0 end
local f = copy_of_entry(4)
local args = {'XADD', KEYS[2]}
if tonumber(ARGV[3]) > 0 then
  args[#args + 1] = 'MAXLEN'; args[#args + 1] = '~'; args[#args + 1] = ARGV[3]
end
args[#args + 1] = '*'
if #args + #f > )lua" + std::string(FOXWORKER_REDIS_MAX_CALL_ARGS) + R"lua( then return f end
for i = 1, #f do args[#args + 1] = f[i] end
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
// KEYS: retry set, stream, dead-letter stream. ARGV: now (Unix ms), limit,
// stream maxlen, lease (Unix ms). Returns {due members looked at,
// {member, fields, member, fields, ...}, earliest remaining due time or nil}.
// A member with too many fields for a script's XADD is leased (its score
// set to the lease time, so that no other daemon moves it meanwhile) and
// returned with its fields: the caller moves it in a transaction. A member
// that is not a msgpack [tag, field, value, ...] or that the stream refuses
// is dead-lettered with the reason, so that it never holds up the others.
inline constexpr char kMoveDueScript[] = R"lua(
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local big = {}
for _, m in ipairs(due) do
  local ok, f = pcall(cmsgpack.unpack, m)
  local reason
  if not ok or type(f) ~= 'table' or #f < 1 or #f % 2 ~= 1 then
    reason = 'retry set member is not a msgpack array of a tag and field-value pairs'
  else
    local args = {'XADD', KEYS[2]}
    if tonumber(ARGV[3]) > 0 then
      args[#args + 1] = 'MAXLEN'; args[#args + 1] = '~'; args[#args + 1] = ARGV[3]
    end
    args[#args + 1] = '*'
    if #args + #f - 1 > )lua" FOXWORKER_REDIS_MAX_CALL_ARGS R"lua( then
      redis.call('ZADD', KEYS[1], 'XX', ARGV[4], m)
      local fields = {}
      for i = 2, #f do fields[#fields + 1] = f[i] end
      big[#big + 1] = m
      big[#big + 1] = fields
    else
      for i = 2, #f do args[#args + 1] = f[i] end
      local r = redis.pcall(unpack(args))
      if type(r) == 'table' and r.err then
        reason = 'moving the retry back to stream ' .. KEYS[2] .. ' failed: ' .. r.err
      else
        redis.call('ZREM', KEYS[1], m)
      end
    end
  end
  if reason then
    redis.call('XADD', KEYS[3], '*', 'x-failure-reason', reason, 'x-original-queue', KEYS[2],
               'x-retry-member', m)
    redis.call('ZREM', KEYS[1], m)
  end
end
local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {#due, big, nxt[2]}
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

// The message id of each entry: its x-original-id field (first
// occurrence), or '' when it has none or is gone. KEYS: stream. ARGV: ids...
inline constexpr char kOriginalIdsScript[] = R"lua(
local out = {}
for i = 1, #ARGV do
  local id = ''
  local e = redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i])
  if #e == 1 then
    local f = e[1][2]
    for k = 1, #f - 1, 2 do
      if f[k] == 'x-original-id' then id = f[k + 1]; break end
    end
  end
  out[i] = id
end
return out
)lua";

}  // namespace foxworker

#undef FOXWORKER_REDIS_MAX_CALL_ARGS

#endif  // FOXWORKER_BACKENDS_REDIS_REDIS_SCRIPTS_H_
