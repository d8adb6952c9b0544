// RedisBackend's reader thread: XREADGROUP ... BLOCK into the sources'
// buffers, sized by the room left in each source's prefetch window.
#include <algorithm>
#include <climits>
#include <unordered_map>
#include <unordered_set>

#include "daemon/backends/redis/redis_backend.h"
#include "daemon/backends/redis/redis_source.h"

namespace foxworker {

using Clock = std::chrono::steady_clock;

Status RedisBackend::EnsureGroup(RedisConnection& conn, SourceState& source) {
  auto reply = conn.Run({"XGROUP", "CREATE", source.options.source, options_.group,
                         options_.start, "MKSTREAM"});
  if (!reply.ok()) return reply.status();
  if (IsTransientError(reply->get()) && !IsErrorCode(reply->get(), "BUSYGROUP")) {
    return Status::Unavailable("creating group " + options_.group + ": " +
                               std::string(ReplyText(reply->get())));
  }
  if (IsError(reply->get()) && !IsErrorCode(reply->get(), "BUSYGROUP")) {
    // Not a connection problem: a wrong key type, ACL... Logged, retried later.
    return Status::InvalidArgument("cannot create group " + options_.group + " on stream " +
                                   source.options.source + ": " +
                                   std::string(ReplyText(reply->get())));
  }
  if (!IsError(reply->get())) {
    LOG(INFO) << "redis backend " << name_ << ": created group " << options_.group
              << " on stream " << source.options.source << " (start " << options_.start << ")";
  }
  source.group_ready.store(true);
  return Status::Ok();
}

Status RedisBackend::ClaimIdle(RedisConnection& conn, const std::shared_ptr<SourceState>& src) {
  src->next_claim = Clock::now() + options_.claim_interval;
  int room;
  {
    std::lock_guard<std::mutex> l(src->mu);
    room = src->RoomLocked();
    if (room <= 0) return Status::Ok();
    src->reserved += room;
  }
  auto unreserve = [&] {
    std::lock_guard<std::mutex> l(src->mu);
    src->reserved -= room;
  };
  const std::string& stream = src->options.source;
  // Our own name's leftovers (an earlier run of this consumer) are taken at
  // once; other consumers' entries only once idle for min_idle.
  const bool own = !src->own_recovered;
  RedisCommand pending = {"XPENDING", stream, options_.group};
  std::string min_idle = own ? "0" : std::to_string(options_.min_idle.count());
  if (!own) AppendArgs(pending, {"IDLE", min_idle});
  AppendArgs(pending, {own ? "-" : src->claim_cursor, "+", std::to_string(room)});
  if (own) pending.push_back(consumer_);
  auto reply = conn.Run(pending);
  if (!reply.ok()) {
    unreserve();
    return reply.status();
  }
  const redisReply* r = reply->get();
  if (IsTransientError(r)) {
    unreserve();
    return Status::Unavailable("XPENDING: " + std::string(ReplyText(r)));
  }
  if (IsError(r) || r->type != REDIS_REPLY_ARRAY) {
    unreserve();
    if (IsErrorCode(r, "NOGROUP")) src->group_ready.store(false);
    else if (IsError(r)) LOG(WARNING) << "redis backend " << name_ << ": XPENDING " << stream << ": " << ReplyText(r);
    return Status::Ok();
  }
  if (own) {
    src->own_recovered = true;
    src->next_claim = Clock::now();  // then the others' idle entries
  } else {
    src->claim_cursor = r->elements >= static_cast<size_t>(room) && r->elements > 0
                            ? "(" + std::string(ReplyText(r->element[r->elements - 1]->element[0]))
                            : "-";
  }
  // [id, consumer, idle ms, delivery count] for each; skip what we hold.
  std::unordered_map<std::string, uint32_t> counts;
  RedisCommand claim = {"XCLAIM", stream, options_.group, consumer_, min_idle};
  {
    std::lock_guard<std::mutex> l(src->mu);
    std::unordered_set<std::string_view> held;
    held.reserve(static_cast<size_t>(src->held_count));
    for (const SourceState::HeldSlot& slot : src->held) {
      if (slot.used) held.insert(slot.id);
    }
    for (size_t i = 0; i < r->elements; ++i) {
      const redisReply* p = r->element[i];
      if (p->type != REDIS_REPLY_ARRAY || p->elements < 4) continue;
      std::string id(ReplyText(p->element[0]));
      if (held.count(id) > 0) continue;
      counts[id] = static_cast<uint32_t>(p->element[3]->integer) + 1;  // XCLAIM adds one
      claim.push_back(id);
    }
  }
  if (counts.empty()) {
    unreserve();
    return Status::Ok();
  }
  auto claimed = conn.Run(claim);
  unreserve();
  if (!claimed.ok()) return claimed.status();
  const redisReply* c = claimed->get();
  if (IsError(c) || c->type != REDIS_REPLY_ARRAY) {
    if (IsError(c)) LOG(WARNING) << "redis backend " << name_ << ": XCLAIM " << stream << ": " << ReplyText(c);
    return Status::Ok();
  }
  std::vector<uint32_t> delivery_counts(c->elements, 1);
  for (size_t i = 0; i < c->elements; ++i) {
    const redisReply* e = c->element[i];
    if (e->type == REDIS_REPLY_ARRAY && e->elements >= 1) {
      auto it = counts.find(std::string(ReplyText(e->element[0])));
      if (it != counts.end()) delivery_counts[i] = it->second;
    }
  }
  if (c->elements > 0) {
    LOG(INFO) << "redis backend " << name_ << ": claimed " << c->elements << " entr"
              << (c->elements == 1 ? "y" : "ies") << " of stream " << stream
              << (own ? " left pending by an earlier run of consumer " + consumer_
                      : " idle longer than min_idle from other consumers");
  }
  Deliver(src, c, delivery_counts);
  return Status::Ok();
}

void RedisBackend::RunReader() {
  int failures = 0;
  while (true) {
    SourceList sources;
    {
      std::unique_lock<std::mutex> l(mu_);
      if (stop_requested_) break;
      sources = sources_;
    }
    if (reader_ == nullptr) {
      auto conn = Connect(Link::kReader);
      if (!conn.ok()) {
        if (!SleepUnlessStopping(Clock::now() + Backoff(++failures))) break;
        continue;
      }
      failures = 0;
      reader_ = std::move(*conn);
      reader_client_id_.store(reader_->client_id());
    }
    Status s = ReadOnce(sources);
    if (s.IsUnavailable()) {
      reader_.reset();
      reader_client_id_.store(-1);
      RecordFailure(Link::kReader, s);
      if (!SleepUnlessStopping(Clock::now() + Backoff(++failures))) break;
    } else if (!s.ok()) {
      LOG(ERROR) << "redis backend " << name_ << ": " << s.message();
      if (!SleepUnlessStopping(Clock::now() + Backoff(++failures))) break;
    } else {
      failures = 0;
    }
  }
  reader_.reset();
  std::lock_guard<std::mutex> l(mu_);
  reader_connected_ = false;
}

Status RedisBackend::ReadOnce(const SourceList& sources) {
  // Sources that can take entries now, and how many.
  SourceList ready;
  int count = INT_MAX;
  auto next_claim = Clock::now() + options_.block;
  for (const auto& s : sources) {
    int room;
    {
      std::lock_guard<std::mutex> l(s->mu);
      room = s->RoomLocked();
      if (!s->started || s->stopped || !s->WantsReadLocked()) continue;
    }
    if (!s->group_ready.load()) {
      Status g = EnsureGroup(*reader_, *s);
      if (!g.ok()) return g;
    }
    // Claims first: they are what a dead consumer left behind.
    if (Clock::now() >= s->next_claim) {
      Status c = ClaimIdle(*reader_, s);
      if (!c.ok()) return c;
      std::lock_guard<std::mutex> l(s->mu);
      room = s->RoomLocked();
      if (s->stopped || !s->WantsReadLocked()) continue;
    }
    next_claim = std::min(next_claim, s->next_claim);
    ready.push_back(s);
    count = std::min(count, room);
  }
  if (ready.empty()) {
    std::unique_lock<std::mutex> l(mu_);
    reader_cv_.wait_for(l, options_.block, [&] { return reader_kicked_ || stop_requested_; });
    reader_kicked_ = false;
    return Status::Ok();
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stop_requested_) return Status::Ok();
    reader_kicked_ = false;
  }
  for (const auto& s : ready) {
    std::lock_guard<std::mutex> l(s->mu);
    s->reserved += count;
  }
  // BLOCK 0 would wait forever: at least 1 ms, at most until the next claim.
  auto block = std::chrono::duration_cast<std::chrono::milliseconds>(next_claim - Clock::now());
  block = std::clamp(block, std::chrono::milliseconds(1), options_.block);
  RedisCommand cmd = {"XREADGROUP", "GROUP", options_.group, consumer_, "COUNT",
                      std::to_string(count), "BLOCK", std::to_string(block.count()), "STREAMS"};
  for (const auto& s : ready) cmd.push_back(s->options.source);
  for (size_t i = 0; i < ready.size(); ++i) cmd.push_back(">");
  reader_->SetTimeout(options_.command_timeout + options_.block);
  reader_blocking_.store(true);
  auto reply = reader_->Run(cmd);
  reader_blocking_.store(false);
  for (const auto& s : ready) {
    std::lock_guard<std::mutex> l(s->mu);
    s->reserved -= count;
  }
  if (!reply.ok()) return reply.status();
  const redisReply* r = reply->get();
  if (IsErrorCode(r, "NOGROUP")) {
    // The stream (and with it the group) was deleted: create them again.
    for (const auto& s : ready) s->group_ready.store(false);
    LOG(WARNING) << "redis backend " << name_ << ": " << ReplyText(r)
                 << "; re-creating the consumer group";
    return Status::Ok();
  }
  if (IsTransientError(r)) return Status::Unavailable("XREADGROUP: " + std::string(ReplyText(r)));
  if (IsError(r)) {
    return Status::Internal("XREADGROUP failed: " + std::string(ReplyText(r)));
  }
  if (r->type != REDIS_REPLY_ARRAY) return Status::Ok();  // timed out or unblocked
  for (size_t i = 0; i < r->elements; ++i) {
    const redisReply* stream = r->element[i];
    if (stream->type != REDIS_REPLY_ARRAY || stream->elements < 2) continue;
    std::string_view key = ReplyText(stream->element[0]);
    for (const auto& s : ready) {
      if (s->options.source == key) Deliver(s, stream->element[1], {});
    }
  }
  return Status::Ok();
}

}  // namespace foxworker
