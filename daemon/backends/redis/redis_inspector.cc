#include "daemon/backends/redis/redis_inspector.h"

#include <time.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <functional>
#include <set>
#include <utility>

#include "daemon/backends/redis/redis_codec.h"
#include "daemon/base/clock.h"
#include "daemon/core/backend.h"
#include "daemon/core/dead_letter.h"

namespace foxworker {
namespace {

// Dead letters are read this many at a time.
constexpr size_t kChunk = 500;
// A filtered list or a retry/delete of all that match reads at most this
// many letters; past it the total is a floor.
constexpr size_t kMaxScan = 200000;

// Puts letters back on their stream: KEYS dead-letter stream, stream; ARGV
// maxlen, ids... Each letter's fields go back without the dead-letter
// fields, with x-attempt 1 (it wins over a producer's `attempt` field), and
// the letter is deleted; all in one script, so a letter is either still
// dead or back on the stream. Returns the ids done (a letter of more
// fields than a script may pass on is skipped).
constexpr char kRetryDeadScript[] = R"lua(
local drop = {['x-original-queue'] = true, ['x-message-type'] = true,
              ['x-failure-reason'] = true, ['x-final-attempt'] = true, ['x-failed-at'] = true,
              ['x-attempt'] = true}
local done = {}
for i = 2, #ARGV do
  local e = redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i])
  if #e == 1 then
    local f = e[1][2]
    local args = {'XADD', KEYS[2]}
    if tonumber(ARGV[1]) > 0 then
      args[#args + 1] = 'MAXLEN'; args[#args + 1] = '~'; args[#args + 1] = ARGV[1]
    end
    args[#args + 1] = '*'
    for k = 1, #f - 1, 2 do
      if not drop[f[k]] then args[#args + 1] = f[k]; args[#args + 1] = f[k + 1] end
    end
    args[#args + 1] = 'x-attempt'; args[#args + 1] = '1'
    if #args <= 7000 then
      redis.call(unpack(args))
      redis.call('XDEL', KEYS[1], ARGV[i])
      done[#done + 1] = ARGV[i]
    end
  end
end
return done
)lua";

std::string DlqKey(const SourceOptions& q) { return q.source + "-dlq"; }
std::string RetryKey(const SourceOptions& q) { return q.source + ":retry"; }

bool ParseInt64(std::string_view s, int64_t* out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

// "2026-11-22T22:53:51.123Z" (FormatIso8601Utc) -> Unix ms; 0 when not that.
int64_t ParseIso8601Ms(const std::string& s) {
  int y, mo, d, h, mi, sec, ms = 0;
  if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &y, &mo, &d, &h, &mi, &sec, &ms) < 6) {
    return 0;
  }
  struct tm t = {};
  t.tm_year = y - 1900;
  t.tm_mon = mo - 1;
  t.tm_mday = d;
  t.tm_hour = h;
  t.tm_min = mi;
  t.tm_sec = sec;
  return static_cast<int64_t>(timegm(&t)) * 1000 + ms;
}

// A valid stream entry id ("ms-seq"); anything else is not a letter's id.
bool IsEntryId(const std::string& id) {
  size_t dash = id.find('-');
  int64_t v;
  return dash != std::string::npos && ParseInt64(std::string_view(id).substr(0, dash), &v) &&
         ParseInt64(std::string_view(id).substr(dash + 1), &v);
}

struct Fields {
  std::vector<std::pair<std::string, std::string>> all;
  const std::string* Find(std::string_view name) const {
    for (const auto& [k, v] : all)
      if (k == name) return &v;
    return nullptr;
  }
};

Fields ReadFields(const redisReply* f) {
  Fields out;
  if (f == nullptr || f->type != REDIS_REPLY_ARRAY) return out;
  for (size_t i = 0; i + 1 < f->elements; i += 2) {
    out.all.emplace_back(std::string(ReplyText(f->element[i])),
                         std::string(ReplyText(f->element[i + 1])));
  }
  return out;
}

DeadLetterSummary Summarize(const SourceOptions& q, const std::string& id, const Fields& f,
                            const std::string& payload_field) {
  DeadLetterSummary s;
  s.id = id;
  s.queue = q.queue;
  auto get = [&](std::string_view name) {
    const std::string* v = f.Find(name);
    return v != nullptr ? *v : std::string();
  };
  // The producer's id when it set one, else the one the handler saw.
  s.message_id = get("message_id");
  if (s.message_id.empty()) s.message_id = get(kHeaderOriginalId);
  s.type = get("message_type");
  if (s.type.empty()) s.type = get("type");
  if (s.type.empty()) s.type = get(kHeaderMessageType);
  s.reason = get(kHeaderFailureReason);
  int64_t n = 0;
  if (ParseInt64(get(kHeaderFinalAttempt), &n)) s.attempts = static_cast<int>(n);
  s.first_seen_ms = ParseIso8601Ms(get(kHeaderFirstSeenAt));
  if (s.first_seen_ms == 0) s.first_seen_ms = EntryIdMs(get(kHeaderOriginalId));
  s.failed_at_ms = ParseIso8601Ms(get(kHeaderFailedAt));
  if (s.failed_at_ms == 0) s.failed_at_ms = EntryIdMs(id);
  if (const std::string* p = f.Find(payload_field)) s.payload_bytes = p->size();
  return s;
}

bool Matches(const DeadLetterFilter& filter, const std::string& lowered, const Fields& f) {
  if (filter.reason_contains.empty()) return true;
  const std::string* reason = f.Find(kHeaderFailureReason);
  return reason != nullptr && LowerAscii(*reason).find(lowered) != std::string::npos;
}

// Whether a field is a property of the message or foxworker's bookkeeping
// (shown with the properties, not the headers).
bool IsPropertyField(std::string_view name) {
  static const std::set<std::string_view> kNames = {
      "content_type", "content_encoding", "message_type", "type",     "correlation_id",
      "reply_to",     "app_id",           "user_id",      "expiration", "message_id",
      "priority",     "timestamp",        "attempt",      "x-attempt", kHeaderOriginalQueue,
      kHeaderMessageType, kHeaderFailureReason, kHeaderFinalAttempt, kHeaderFailedAt,
      kHeaderFirstSeenAt};
  return kNames.count(name) != 0;
}

}  // namespace

bool DecodeMsgpackStrings(std::string_view p, std::vector<std::string>* out) {
  size_t pos = 0;
  auto need = [&](size_t n) { return pos + n <= p.size(); };
  auto be = [&](size_t n) {
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) v = (v << 8) | static_cast<unsigned char>(p[pos + i]);
    pos += n;
    return v;
  };
  if (!need(1)) return false;
  unsigned char t = static_cast<unsigned char>(p[pos++]);
  uint64_t count;
  if ((t & 0xf0) == 0x90) {
    count = t & 0x0f;
  } else if (t == 0xdc && need(2)) {
    count = be(2);
  } else if (t == 0xdd && need(4)) {
    count = be(4);
  } else {
    return false;
  }
  out->clear();
  for (uint64_t i = 0; i < count; ++i) {
    if (!need(1)) return false;
    unsigned char c = static_cast<unsigned char>(p[pos++]);
    uint64_t len;
    if ((c & 0xe0) == 0xa0) {
      len = c & 0x1f;
    } else if ((c == 0xd9 || c == 0xc4) && need(1)) {
      len = be(1);
    } else if ((c == 0xda || c == 0xc5) && need(2)) {
      len = be(2);
    } else if ((c == 0xdb || c == 0xc6) && need(4)) {
      len = be(4);
    } else if (c < 0x80) {
      out->push_back(std::to_string(c));
      continue;
    } else if (c >= 0xcc && c <= 0xcf && need(size_t(1) << (c - 0xcc))) {
      out->push_back(std::to_string(be(size_t(1) << (c - 0xcc))));
      continue;
    } else if (c >= 0xd0 && c <= 0xd3 && need(size_t(1) << (c - 0xd0))) {
      size_t n = size_t(1) << (c - 0xd0);
      uint64_t raw = be(n);
      int64_t v = n == 8 ? static_cast<int64_t>(raw)
                         : static_cast<int64_t>(raw << (64 - 8 * n)) >> (64 - 8 * n);
      out->push_back(std::to_string(v));
      continue;
    } else if (c >= 0xe0) {
      out->push_back(std::to_string(static_cast<int8_t>(c)));
      continue;
    } else {
      return false;
    }
    if (!need(len)) return false;
    out->emplace_back(p.substr(pos, len));
    pos += len;
  }
  return pos == p.size();
}

RedisInspector::RedisInspector(RedisBackendOptions options, InspectorOptions inspector)
    : options_(std::move(options)) {
  options_.connect_timeout = inspector.timeout;
  options_.command_timeout = inspector.timeout;
}

Result<RedisReplyPtr> RedisInspector::Run(const RedisCommand& command) {
  // A connection kept since an earlier call may have been closed meanwhile
  // (a Redis restart, an idle timeout): a failure on it is tried once more
  // on a new one. Every command here may run twice (a script finds the
  // letters it moved gone, an XDEL deletes nothing).
  Result<RedisReplyPtr> r = Status::Unavailable("not run");
  for (int round = 0; round < 2; ++round) {
    const bool reused = conn_ != nullptr;
    if (conn_ == nullptr) {
      auto c = RedisConnection::Connect(options_, "foxworker-inspector");
      if (!c.ok()) return Status::Unavailable(c.status().message());
      conn_ = std::move(c).value();
    }
    r = conn_->Run(command);
    if (r.ok()) break;
    conn_.reset();
    if (!reused) break;
  }
  if (!r.ok()) return Status::Unavailable(r.status().message());
  if (IsError(r->get())) {
    return Status::Unavailable("redis " + command[0] + ": " + std::string(ReplyText(r->get())));
  }
  return r;
}

Result<QueueDepth> RedisInspector::Depth(const SourceOptions& queue) {
  QueueDepth d;
  auto xlen = Run({"XLEN", queue.source});
  if (!xlen.ok()) return xlen.status();
  const int64_t length = (*xlen)->integer;
  auto zcard = Run({"ZCARD", RetryKey(queue)});
  if (!zcard.ok()) return zcard.status();
  d.scheduled = (*zcard)->integer;
  auto dlq = Run({"XLEN", DlqKey(queue)});
  if (!dlq.ok()) return dlq.status();
  d.dead_letters = (*dlq)->integer;

  std::string last_delivered;
  bool group = false;
  int64_t lag = -1;
  d.unacked = 0;
  if (length > 0) {
    auto groups = Run({"XINFO", "GROUPS", queue.source});
    if (!groups.ok()) return groups.status();
    for (size_t i = 0; i < (*groups)->elements; ++i) {
      const redisReply* g = (*groups)->element[i];
      if (g->type != REDIS_REPLY_ARRAY) continue;
      std::string name;
      int64_t pending = 0, group_lag = -1;
      std::string delivered;
      for (size_t k = 0; k + 1 < g->elements; k += 2) {
        std::string_view key = ReplyText(g->element[k]);
        const redisReply* v = g->element[k + 1];
        if (key == "name") name = std::string(ReplyText(v));
        if (key == "pending" && v->type == REDIS_REPLY_INTEGER) pending = v->integer;
        if (key == "last-delivered-id") delivered = std::string(ReplyText(v));
        if (key == "lag" && v->type == REDIS_REPLY_INTEGER) group_lag = v->integer;
      }
      if (name != options_.group) continue;
      group = true;
      d.unacked = pending;
      last_delivered = delivered;
      lag = group_lag;
    }
  }
  // The first entry the group has not been given yet.
  std::string start = group ? "(" + last_delivered : "-";
  if (group && (last_delivered.empty() || last_delivered == "0-0")) start = "-";
  if (length == 0) {
    d.backlog = 0;
  } else if (!group) {
    d.backlog = length;
  } else if (lag >= 0) {
    d.backlog = lag;
  } else {
    // No lag (Redis < 7, or entries deleted in the group's range): count.
    auto rest = Run({"XRANGE", queue.source, start, "+", "COUNT", std::to_string(kMaxScan)});
    if (!rest.ok()) return rest.status();
    d.backlog = static_cast<int64_t>((*rest)->elements);
  }
  d.oldest_age_seconds = 0;
  if (d.backlog > 0) {
    auto first = Run({"XRANGE", queue.source, start, "+", "COUNT", "1"});
    if (!first.ok()) return first.status();
    if ((*first)->elements == 1) {
      int64_t ms = EntryIdMs(std::string(ReplyText((*first)->element[0]->element[0])));
      if (ms > 0) d.oldest_age_seconds = std::max<int64_t>(WallMs() - ms, 0) / 1000.0;
    }
  }
  return d;
}

Result<size_t> RedisInspector::Walk(
    const std::string& dlq, size_t max,
    const std::function<bool(const std::string&, const redisReply*)>& visit) {
  size_t seen = 0;
  std::string end = "+";
  while (seen < max) {
    size_t n = std::min(kChunk, max - seen);
    auto r = Run({"XREVRANGE", dlq, end, "-", "COUNT", std::to_string(n)});
    if (!r.ok()) return r.status();
    const redisReply* entries = r->get();
    if (entries->elements == 0) break;
    for (size_t i = 0; i < entries->elements; ++i) {
      const redisReply* e = entries->element[i];
      std::string id(ReplyText(e->element[0]));
      ++seen;
      if (!visit(id, e->element[1])) return seen;
      end = "(" + id;
    }
    if (entries->elements < n) break;
  }
  return seen;
}

Result<DeadLetterPage> RedisInspector::ListDead(const SourceOptions& queue,
                                                const DeadLetterFilter& filter, size_t offset,
                                                size_t limit) {
  DeadLetterPage page;
  const std::string lowered = LowerAscii(filter.reason_contains);
  const std::string dlq = DlqKey(queue);
  size_t matched = 0;
  const bool filtered = !filter.reason_contains.empty();
  auto walked = Walk(dlq, filtered ? kMaxScan : offset + limit,
                     [&](const std::string& id, const redisReply* fields) {
                       Fields f = ReadFields(fields);
                       if (!Matches(filter, lowered, f)) return true;
                       if (matched >= offset && page.letters.size() < limit) {
                         page.letters.push_back(Summarize(queue, id, f, options_.payload_field));
                       }
                       ++matched;
                       return true;
                     });
  if (!walked.ok()) return walked.status();
  if (filtered) {
    page.total = matched;
    page.total_exact = *walked < kMaxScan;
  } else {
    auto n = Run({"XLEN", dlq});
    if (!n.ok()) return n.status();
    page.total = static_cast<size_t>((*n)->integer);
  }
  return page;
}

Result<DeadLetter> RedisInspector::GetDead(const SourceOptions& queue, const std::string& id,
                                           size_t max_payload) {
  if (!IsEntryId(id)) return Status::NotFound("no dead letter " + id + " in queue " + queue.queue);
  auto r = Run({"XRANGE", DlqKey(queue), id, id});
  if (!r.ok()) return r.status();
  if ((*r)->elements != 1) {
    return Status::NotFound("no dead letter " + id + " in queue " + queue.queue);
  }
  Fields f = ReadFields((*r)->element[0]->element[1]);
  DeadLetter d;
  d.summary = Summarize(queue, id, f, options_.payload_field);
  d.properties.emplace_back("stream", DlqKey(queue));
  d.properties.emplace_back("entry_id", id);
  for (const auto& [k, v] : f.all) {
    if (k == options_.payload_field) {
      d.payload_truncated = v.size() > max_payload;
      d.payload = v.substr(0, max_payload);
    } else if (IsPropertyField(k)) {
      d.properties.emplace_back(k, v);
    } else {
      d.headers.emplace_back(k, v);
    }
  }
  return d;
}

Result<std::vector<std::string>> RedisInspector::RetryDead(const SourceOptions& queue,
                                                           const std::vector<std::string>& ids) {
  std::vector<std::string> done;
  // A few hundred at a time: one script runs alone on the server.
  for (size_t at = 0; at < ids.size(); at += kChunk) {
    RedisCommand cmd = {"EVAL", kRetryDeadScript, "2", DlqKey(queue), queue.source,
                        std::to_string(options_.maxlen)};
    for (size_t i = at; i < std::min(ids.size(), at + kChunk); ++i) {
      if (IsEntryId(ids[i])) cmd.push_back(ids[i]);
    }
    if (cmd.size() == 6) continue;
    auto r = Run(cmd);
    if (!r.ok()) return r.status();
    for (size_t i = 0; i < (*r)->elements; ++i) done.emplace_back(ReplyText((*r)->element[i]));
  }
  return done;
}

Result<std::vector<std::string>> RedisInspector::Matching(const SourceOptions& queue,
                                                          const DeadLetterFilter& filter) {
  std::vector<std::string> ids;
  const std::string lowered = LowerAscii(filter.reason_contains);
  auto walked = Walk(DlqKey(queue), kMaxScan, [&](const std::string& id, const redisReply* fields) {
    if (Matches(filter, lowered, ReadFields(fields))) ids.push_back(id);
    return true;
  });
  if (!walked.ok()) return walked.status();
  // Oldest first, so the stream gets them back in their order.
  std::reverse(ids.begin(), ids.end());
  return ids;
}

Result<size_t> RedisInspector::RetryMatching(const SourceOptions& queue,
                                             const DeadLetterFilter& filter) {
  auto ids = Matching(queue, filter);
  if (!ids.ok()) return ids.status();
  auto done = RetryDead(queue, *ids);
  if (!done.ok()) return done.status();
  return done->size();
}

Result<std::vector<std::string>> RedisInspector::DeleteDead(const SourceOptions& queue,
                                                            const std::vector<std::string>& ids) {
  std::vector<std::string> done;
  for (const std::string& id : ids) {
    if (!IsEntryId(id)) continue;
    auto r = Run({"XDEL", DlqKey(queue), id});
    if (!r.ok()) return r.status();
    if ((*r)->integer > 0) done.push_back(id);
  }
  return done;
}

Result<size_t> RedisInspector::DeleteMatching(const SourceOptions& queue,
                                              const DeadLetterFilter& filter) {
  auto ids = Matching(queue, filter);
  if (!ids.ok()) return ids.status();
  size_t n = 0;
  for (size_t at = 0; at < ids->size(); at += kChunk) {
    RedisCommand cmd = {"XDEL", DlqKey(queue)};
    for (size_t i = at; i < std::min(ids->size(), at + kChunk); ++i) cmd.push_back((*ids)[i]);
    auto r = Run(cmd);
    if (!r.ok()) return r.status();
    n += static_cast<size_t>((*r)->integer);
  }
  return n;
}

Result<std::vector<ScheduledJob>> RedisInspector::ListScheduled(const SourceOptions& queue,
                                                                size_t limit) {
  std::vector<ScheduledJob> out;
  if (limit == 0) return out;
  auto r = Run({"ZRANGE", RetryKey(queue), "0", std::to_string(limit - 1), "WITHSCORES"});
  if (!r.ok()) return r.status();
  std::vector<std::string> member;
  for (size_t i = 0; i + 1 < (*r)->elements; i += 2) {
    ScheduledJob j;
    j.queue = queue.queue;
    int64_t due = 0;
    std::string score(ReplyText((*r)->element[i + 1]));
    if (!ParseInt64(score, &due)) due = static_cast<int64_t>(std::strtod(score.c_str(), nullptr));
    j.due_ms = due;
    if (DecodeMsgpackStrings(ReplyText((*r)->element[i]), &member) && !member.empty()) {
      Fields f;
      for (size_t k = 1; k + 1 < member.size(); k += 2) f.all.emplace_back(member[k], member[k + 1]);
      auto get = [&](std::string_view name) {
        const std::string* v = f.Find(name);
        return v != nullptr ? *v : std::string();
      };
      j.message_id = get("message_id");
      if (j.message_id.empty()) j.message_id = get(kHeaderOriginalId);
      if (j.message_id.empty()) j.message_id = member[0];
      j.type = get("message_type");
      if (j.type.empty()) j.type = get("type");
      int64_t next = 0;
      // x-attempt is the attempt the copy will run as: one fewer were charged.
      if (ParseInt64(get("x-attempt"), &next) && next > 1) j.attempt = static_cast<int>(next - 1);
    } else {
      j.last_error = "retry set member is not a msgpack array of strings";
    }
    out.push_back(std::move(j));
  }
  return out;
}

}  // namespace foxworker
