// RedisBackend's reader thread: XREADGROUP into the sources' buffers, sized

#include <glog/logging.h>
// by the room left in each source's prefetch window, with the plain acks
// pipelined ahead of the reads (see redis_backend.h).
#include <algorithm>
#include <climits>
#include <cstdint>
#include <unordered_map>
#include <unordered_set>

#include "daemon/backends/redis/redis_backend.h"
#include "daemon/backends/redis/redis_scripts.h"
#include "daemon/backends/redis/redis_source.h"
#include "daemon/base/crash_stack.h"

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

void RedisBackend::AdoptPreviousRun(PreviousRun previous) { previous_ = std::move(previous); }

Status RedisBackend::RecoverPreviousRun(RedisConnection& conn, SourceState& src) {
  const PreviousRun& p = *previous_;
  const std::string& stream = src.options.source;
  const int64_t min_idle = options_.min_idle.count();
  const std::string min_idle_ms = std::to_string(min_idle);
  std::string cursor = "-";
  std::vector<std::string> charged, refunded;
  for (;;) {
    constexpr int kPage = 1000;
    auto reply = conn.Run({"XPENDING", stream, options_.group, cursor, "+", std::to_string(kPage),
                           p.owner});
    if (!reply.ok()) return reply.status();
    const redisReply* r = reply->get();
    if (IsTransientError(r)) return Status::Unavailable("XPENDING: " + std::string(ReplyText(r)));
    if (IsError(r) || r->type != REDIS_REPLY_ARRAY) {
      if (IsErrorCode(r, "NOGROUP")) {
        src.group_ready.store(false);
        return Status::Ok();  // tried again once the group exists (then nothing is pending)
      }
      LOG(WARNING) << "redis backend " << name_ << ": XPENDING " << stream << " for consumer "
                   << p.owner << ": " << ReplyText(r)
                   << "; its entries are charged an attempt when claimed";
      break;
    }
    // [id, consumer, idle ms, delivery count] for each. The journal names
    // message ids: a retry copy's is its x-original-id field, looked up
    // for the entries whose own id the journal does not name.
    RedisCommand lookup = {"EVAL", kOriginalIdsScript, "1", stream};
    for (size_t i = 0; i < r->elements; ++i) {
      const redisReply* e = r->element[i];
      if (e->type != REDIS_REPLY_ARRAY || e->elements < 4) continue;
      if (e->element[2]->integer >= min_idle) continue;
      if (!p.WasRunning(ReplyText(e->element[0]))) lookup.emplace_back(ReplyText(e->element[0]));
    }
    std::unordered_set<std::string> running_copies;  // entry ids whose message was running
    if (lookup.size() > 4) {
      auto ids = conn.Run(lookup);
      if (!ids.ok()) return ids.status();
      const redisReply* o = ids->get();
      if (IsTransientError(o)) return Status::Unavailable("XRANGE: " + std::string(ReplyText(o)));
      if (o->type == REDIS_REPLY_ARRAY && o->elements == lookup.size() - 4) {
        for (size_t i = 0; i < o->elements; ++i) {
          const std::string_view original = ReplyText(o->element[i]);
          if (!original.empty() && p.WasRunning(original)) running_copies.insert(lookup[i + 4]);
        }
      } else if (IsError(o)) {
        LOG(WARNING) << "redis backend " << name_ << ": reading the message ids of " << stream
                     << ": " << ReplyText(o) << "; retry copies are treated as never started";
      }
    }
    std::vector<RedisCommand> claims;
    for (size_t i = 0; i < r->elements; ++i) {
      const redisReply* e = r->element[i];
      if (e->type != REDIS_REPLY_ARRAY || e->elements < 4) continue;
      // Idle for min_idle already: a release (which gave its count back)
      // or past any lease; left to the usual claims, as charged as it is.
      if (e->element[2]->integer >= min_idle) continue;
      std::string id(ReplyText(e->element[0]));
      const long long count = e->element[3]->integer;
      RedisCommand claim = {"XCLAIM", stream, options_.group, consumer_, "0", id,
                            "IDLE", min_idle_ms};
      if (p.WasRunning(id) || running_copies.count(id) > 0) {
        charged.push_back(id);
      } else {
        AppendArgs(claim, {"RETRYCOUNT", std::to_string(std::max(count - 1, 0LL))});
        refunded.push_back(id);
      }
      claim.push_back("JUSTID");  // JUSTID: the count is not raised
      claims.push_back(std::move(claim));
    }
    if (!claims.empty()) {
      std::vector<RedisReplyPtr> replies;
      if (Status s = conn.Pipeline(claims, &replies); !s.ok()) return s;
      for (const auto& c : replies) {
        if (IsTransientError(c.get())) {
          return Status::Unavailable("XCLAIM: " + std::string(ReplyText(c.get())));
        }
      }
    }
    if (r->elements < static_cast<size_t>(kPage)) break;
    cursor = "(" + std::string(ReplyText(r->element[r->elements - 1]->element[0]));
  }
  src.previous_recovered = true;
  if (charged.empty() && refunded.empty()) return Status::Ok();
  auto ids = [](const std::vector<std::string>& v) {
    std::string s;
    for (size_t i = 0; i < v.size() && i < 20; ++i) s += (i ? ", " : "") + v[i];
    if (v.size() > 20) s += ", ...";
    return s.empty() ? std::string("none") : s;
  };
  LOG(WARNING) << "redis backend " << name_ << ": stream " << stream << ": the previous daemon (pid "
               << p.evidence->pid << ", consumer " << p.owner << ") died holding "
               << charged.size() + refunded.size() << " entr"
               << (charged.size() + refunded.size() == 1 ? "y" : "ies")
               << "; running, charged an attempt: " << ids(charged)
               << "; never started, delivery count given back: " << ids(refunded);
  return Status::Ok();
}

Status RedisBackend::ClaimIdle(RedisConnection& conn, const std::shared_ptr<SourceState>& src) {
  if (previous_ && !src->previous_recovered) {
    Status s = RecoverPreviousRun(conn, *src);
    if (!s.ok() || !src->previous_recovered) return s;
  }
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

namespace {

// Requests in flight on the reader's connection while entries flow: Redis
// has the next read queued while this thread takes in the last reply.
constexpr size_t kMaxRounds = 2;

}  // namespace

void RedisBackend::RunReader() {
  InstallThreadCrashStack();
  reader_heartbeat_.Register("backend redis " + name_ + ": reader");
  // A step may connect, run group and claim commands, wait out a BLOCK
  // read, or wait `block` for work: each bounded by its timeout.
  const auto grace = options_.connect_timeout + options_.command_timeout + options_.block;
  int failures = 0;
  while (true) {
    reader_heartbeat_.Beat(grace);
    SourceList sources;
    {
      std::unique_lock<std::mutex> l(mu_);
      if (stop_requested_ && rounds_.empty()) break;
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
      dry_ = false;
      std::lock_guard<std::mutex> l(mu_);
      reader_takes_acks_ = !stop_requested_;
    }
    Status s = ReaderStep(sources);
    if (s.IsUnavailable()) {
      AbandonRounds();
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
  AbandonRounds();
  reader_.reset();
  reader_heartbeat_.Unregister();
  std::lock_guard<std::mutex> l(mu_);
  reader_connected_ = false;
}

void RedisBackend::AbandonRounds() {
  reader_blocking_.store(false);
  std::vector<SettleOp> acks;
  for (ReadRound& round : rounds_) {
    for (size_t x = round.xacks_done; x < round.xacks.size(); ++x) {
      const ReadRound::Xack& xack = round.xacks[x];
      {
        std::lock_guard<std::mutex> l(xack.source->mu);
        xack.source->acking -= static_cast<int>(xack.end - xack.begin);
      }
      for (size_t i = xack.begin; i < xack.end; ++i) acks.push_back(std::move(round.acks[i]));
    }
    if (!round.read_done) {
      for (const auto& src : round.read) {
        std::lock_guard<std::mutex> l(src->mu);
        src->reserved -= round.count;
      }
    }
  }
  rounds_.clear();
  {
    std::lock_guard<std::mutex> l(mu_);
    reader_takes_acks_ = false;
    for (SettleOp& op : reader_acks_) acks.push_back(std::move(op));
    reader_acks_.clear();
  }
  // Every XACK is idempotent: the command thread applies them (again).
  SubmitSettlements(std::move(acks), /*to_commands=*/true);
}

Status RedisBackend::ReaderStep(const SourceList& sources) {
  bool stopping;
  {
    std::lock_guard<std::mutex> l(mu_);
    stopping = stop_requested_;
  }
  if (stopping) return rounds_.empty() ? Status::Ok() : ReceiveRound(/*wakeable=*/false);
  // Group creation and claims use the connection alone, between rounds.
  const auto now = Clock::now();
  bool maintenance = false;
  ack_batch_ = SIZE_MAX;
  for (const auto& s : sources) {
    std::lock_guard<std::mutex> l(s->mu);
    if (!s->started || s->stopped) continue;
    ack_batch_ = std::min(ack_batch_, static_cast<size_t>(std::max(1, s->options.prefetch / 4)));
    if (!s->group_ready.load() || (now >= s->next_claim && s->WantsReadLocked())) {
      maintenance = true;
    }
  }
  if (ack_batch_ == SIZE_MAX) ack_batch_ = 1;
  if (maintenance) {
    if (!rounds_.empty()) return ReceiveRound(/*wakeable=*/false);
    for (const auto& s : sources) {
      bool wants;
      {
        std::lock_guard<std::mutex> l(s->mu);
        if (!s->started || s->stopped) continue;
        wants = s->WantsReadLocked();
      }
      if (!s->group_ready.load()) {
        Status g = EnsureGroup(*reader_, *s);
        if (!g.ok()) return g;
      }
      // Claims first: they are what a dead consumer left behind.
      if (wants && Clock::now() >= s->next_claim) {
        Status c = ClaimIdle(*reader_, s);
        if (!c.ok()) return c;
      }
    }
  }
  if (rounds_.size() < kMaxRounds && (rounds_.empty() || !rounds_.back().blocking)) {
    bool sent = false;
    Status s = SendRound(sources, &sent);
    if (!s.ok() || sent) return s;
  }
  if (!rounds_.empty()) return ReceiveRound(/*wakeable=*/true);
  // Nothing in flight and nothing to send: wait for room, acks or a kick.
  std::unique_lock<std::mutex> l(mu_);
  reader_cv_.wait_for(l, options_.block, [&] {
    return reader_kicked_ || stop_requested_ || !reader_acks_.empty();
  });
  reader_kicked_ = false;
  return Status::Ok();
}

Status RedisBackend::SendRound(const SourceList& sources, bool* sent) {
  *sent = false;
  ReadRound round;
  // Behind a round in flight, another is worth it for a read, or for a
  // quarter window of acks; else they ride on the next read.
  const bool may_wait = !rounds_.empty() && (dry_ || !AnyWantsRead(sources));
  {
    std::lock_guard<std::mutex> l(mu_);
    reader_kicked_ = false;
    if (may_wait && reader_acks_.size() < ack_batch_) return Status::Ok();
    round.acks.swap(reader_acks_);
  }
  AddXacks(round, 0);
  // The read: every stream that wants one, as many entries as the tightest
  // has room for, at most half a window so that two reads fit in flight.
  int count = INT_MAX;
  auto next_claim = Clock::now() + options_.block;
  for (const auto& s : sources) {
    std::lock_guard<std::mutex> l(s->mu);
    if (!s->ReadableLocked()) continue;
    round.read.push_back(s);
    count = std::min({count, s->RoomLocked(), std::max(1, (s->options.prefetch + 1) / 2)});
    next_claim = std::min(next_claim, s->next_claim);
  }
  // After a read that found nothing the next one blocks, and goes alone.
  if (dry_ && !rounds_.empty()) round.read.clear();
  round.blocking = !round.read.empty() && dry_;
  if (round.blocking) {
    std::lock_guard<std::mutex> l(mu_);
    if (stop_requested_) {
      round.read.clear();
      round.blocking = false;
    } else {
      // Acks settled while it waits go to the command thread; the ones
      // that came until now go ahead of it.
      reader_takes_acks_ = false;
      const size_t begin = round.acks.size();
      for (SettleOp& op : reader_acks_) round.acks.push_back(std::move(op));
      reader_acks_.clear();
      AddXacks(round, begin);
    }
  }
  if (round.read.empty() && round.acks.empty()) return Status::Ok();
  std::vector<RedisArgs> cmds;
  cmds.reserve(round.xacks.size() + 1);
  for (const ReadRound::Xack& xack : round.xacks) {
    RedisArgs& args = cmds.emplace_back();
    args.reserve(3 + xack.end - xack.begin);
    args.insert(args.end(), {"XACK", xack.source->options.source, options_.group});
    for (size_t i = xack.begin; i < xack.end; ++i) args.push_back(round.entry_ids[i]);
  }
  std::string count_arg, block_arg;
  if (!round.read.empty()) {
    round.count = count;
    for (const auto& s : round.read) {
      std::lock_guard<std::mutex> l(s->mu);
      s->reserved += count;
    }
    count_arg = std::to_string(count);
    RedisArgs& args = cmds.emplace_back();
    args.insert(args.end(), {"XREADGROUP", "GROUP", options_.group, consumer_, "COUNT", count_arg});
    if (round.blocking) {
      // BLOCK 0 would wait forever: at least 1 ms, at most until the next claim.
      auto block = std::chrono::duration_cast<std::chrono::milliseconds>(next_claim - Clock::now());
      block = std::clamp(block, std::chrono::milliseconds(1), options_.block);
      block_arg = std::to_string(block.count());
      args.insert(args.end(), {"BLOCK", block_arg});
      reader_blocking_.store(true);
    }
    args.push_back("STREAMS");
    for (const auto& s : round.read) args.push_back(s->options.source);
    for (size_t i = 0; i < round.read.size(); ++i) args.push_back(">");
  }
  Status s = reader_->Send(cmds);
  // Even when the send failed: AbandonRounds undoes it.
  rounds_.push_back(std::move(round));
  *sent = true;
  return s;
}

Status RedisBackend::ReceiveReply(RedisReplyPtr* reply, bool wakeable) {
  const ReadRound& round = rounds_.front();
  reader_->SetTimeout(options_.command_timeout +
                      (round.blocking ? options_.block : std::chrono::milliseconds(0)));
  // Acks that come while this waits go out at once when another round fits.
  wakeable = wakeable && rounds_.size() < kMaxRounds && !rounds_.back().blocking;
  if (wakeable) {
    std::lock_guard<std::mutex> l(mu_);
    if (reader_takes_acks_ && reader_acks_.size() >= ack_batch_) return Status::Ok();
    reader_polling_ = reader_takes_acks_;
    reader_wake_acks_ = ack_batch_;
  }
  Status s = wakeable ? reader_->Receive(reply, reader_wake_fd_) : reader_->Receive(reply);
  if (wakeable) {
    std::lock_guard<std::mutex> l(mu_);
    reader_polling_ = false;
  }
  return s;
}

Status RedisBackend::ReceiveRound(bool wakeable) {
  ReadRound& round = rounds_.front();
  for (; round.xacks_done < round.xacks.size(); ++round.xacks_done) {
    const ReadRound::Xack& xack = round.xacks[round.xacks_done];
    RedisReplyPtr reply;
    Status s = ReceiveReply(&reply, wakeable);
    if (!s.ok() || reply == nullptr) return s;
    SourceState* src = xack.source;
    const int n = static_cast<int>(xack.end - xack.begin);
    if (IsTransientError(reply.get())) {
      // LOADING and the like: the command thread applies them after a backoff.
      std::vector<SettleOp> again;
      for (size_t i = xack.begin; i < xack.end; ++i) again.push_back(std::move(round.acks[i]));
      {
        std::lock_guard<std::mutex> l(src->mu);
        src->acking -= n;
      }
      SubmitSettlements(std::move(again), /*to_commands=*/true);
      continue;
    }
    if (IsError(reply.get())) {
      // The entries stay pending (or their stream is gone): claimed and run
      // again after min_idle, nothing is lost.
      LOG(WARNING) << "redis backend " << name_ << ": stream " << src->options.source
                   << ": ack of entry " << round.entry_ids[xack.begin]
                   << " (and others of its batch) failed: " << ReplyText(reply.get());
    }
    std::lock_guard<std::mutex> l(src->mu);
    src->acking -= n;
    for (size_t i = xack.begin; i < xack.end; ++i) {
      src->ReleaseLocked(*round.acks[i].delivery);
      src->RecycleLocked(std::move(round.acks[i].delivery));
    }
  }
  Status result;
  if (!round.read.empty() && !round.read_done) {
    RedisReplyPtr reply;
    Status s = ReceiveReply(&reply, wakeable);
    if (!s.ok() || reply == nullptr) return s;
    round.read_done = true;
    for (const auto& src : round.read) {
      std::lock_guard<std::mutex> l(src->mu);
      src->reserved -= round.count;
    }
    if (round.blocking) {
      reader_blocking_.store(false);
      std::lock_guard<std::mutex> l(mu_);
      reader_takes_acks_ = !stop_requested_;
    }
    result = TakeReadReply(round.read, reply.get());
  }
  rounds_.erase(rounds_.begin());
  return result;
}

bool RedisBackend::AnyWantsRead(const SourceList& sources) {
  for (const auto& s : sources) {
    std::lock_guard<std::mutex> l(s->mu);
    if (s->ReadableLocked()) return true;
  }
  return false;
}

Status RedisBackend::TakeReadReply(const SourceList& read, const redisReply* r) {
  if (IsErrorCode(r, "NOGROUP")) {
    // The stream (and with it the group) was deleted: create them again.
    for (const auto& s : read) s->group_ready.store(false);
    LOG(WARNING) << "redis backend " << name_ << ": " << ReplyText(r)
                 << "; re-creating the consumer group";
    return Status::Ok();
  }
  if (IsTransientError(r)) return Status::Unavailable("XREADGROUP: " + std::string(ReplyText(r)));
  if (IsError(r)) {
    return Status::Internal("XREADGROUP failed: " + std::string(ReplyText(r)));
  }
  dry_ = true;
  if (r->type != REDIS_REPLY_ARRAY) return Status::Ok();  // nothing, timed out or unblocked
  for (size_t i = 0; i < r->elements; ++i) {
    const redisReply* stream = r->element[i];
    if (stream->type != REDIS_REPLY_ARRAY || stream->elements < 2) continue;
    if (stream->element[1]->type == REDIS_REPLY_ARRAY && stream->element[1]->elements > 0) {
      dry_ = false;
    }
    std::string_view key = ReplyText(stream->element[0]);
    for (const auto& s : read) {
      if (s->options.source == key) Deliver(s, stream->element[1], {});
    }
  }
  return Status::Ok();
}

void RedisBackend::AddXacks(ReadRound& round, size_t begin) {
  std::vector<SettleOp>& ops = round.acks;
  if (begin == ops.size()) return;
  auto by_source = [](const SettleOp& a, const SettleOp& b) {
    return std::less<const SourceState*>()(a.source, b.source);
  };
  const auto first = ops.begin() + static_cast<ptrdiff_t>(begin);
  // Mostly one stream: already grouped, and nothing to sort.
  if (!std::is_sorted(first, ops.end(), by_source)) std::stable_sort(first, ops.end(), by_source);
  round.entry_ids.resize(ops.size());
  size_t i = begin;
  while (i < ops.size()) {
    size_t j = i;
    while (j < ops.size() && ops[j].source == ops[i].source) ++j;
    {
      std::lock_guard<std::mutex> l(ops[i].source->mu);
      ops[i].source->acking += static_cast<int>(j - i);
      for (size_t k = i; k < j; ++k) {
        round.entry_ids[k] = ops[i].source->EntryIdLocked(*ops[k].delivery);
      }
    }
    round.xacks.push_back({ops[i].source, i, j});
    i = j;
  }
}

}  // namespace foxworker
