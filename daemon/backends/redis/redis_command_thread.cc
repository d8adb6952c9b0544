// RedisBackend's command thread: settlements, enqueues, due retries, claims

#include <glog/logging.h>
// of idle entries and renewal of long-running ones.
#include <algorithm>
#include <deque>
#include <random>
#include <unordered_map>

#include "daemon/backends/redis/redis_backend.h"
#include "daemon/backends/redis/redis_codec.h"
#include "daemon/backends/redis/redis_scripts.h"
#include "daemon/backends/redis/redis_source.h"
#include "daemon/backends/redis/redis_url.h"
#include "daemon/base/clock.h"
#include "daemon/base/crash_stack.h"
#include "daemon/core/dead_letter.h"

namespace foxworker {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kMaxSettlesPerRound = 4096;
constexpr int kMoveBatch = 256;
// How long a retry too large for a script's XADD is kept from other
// daemons while this one moves it back in a transaction.
constexpr std::chrono::milliseconds kBigMoveLease{60000};

// The reply itself when it is an error, else the first error in it (EXEC
// answers with the replies of its commands); null when there is none.
const redisReply* FirstError(const redisReply* r) {
  if (IsError(r)) return r;
  if (r != nullptr && r->type == REDIS_REPLY_ARRAY) {
    for (size_t i = 0; i < r->elements; ++i) {
      if (IsError(r->element[i])) return r->element[i];
    }
  }
  return nullptr;
}

// The bookkeeping fields of a copy, as the copy scripts take them (see
// kCopyLua): their count, then (mode, name, value) each.
class Bookkeeping {
 public:
  void Add(std::string_view mode, std::string_view name, std::string value) {
    args_.emplace_back(mode);
    args_.emplace_back(name);
    args_.push_back(std::move(value));
  }
  void AppendTo(RedisCommand& cmd) {
    cmd.push_back(std::to_string(args_.size() / 3));
    AppendArgs(cmd, std::move(args_));
  }

 private:
  std::vector<std::string> args_;
};

}  // namespace

void RedisBackend::RunCommands() {
  InstallThreadCrashStack();
  commands_heartbeat_.Register("backend redis " + name_ + ": commands");
  // A turn may connect and then run commands, each bounded by its timeout.
  const auto grace = options_.connect_timeout + options_.command_timeout;
  int failures = 0;
  TimePoint next_connect{};
  std::vector<SettleOp> settles;
  std::vector<EnqueueOp*> enqueues;
  bool stop_seen = false;
  while (true) {
    SourceList sources;
    bool stopping, unblock, reader_done;
    TimePoint deadline;
    {
      std::unique_lock<std::mutex> l(mu_);
      TimePoint wake_at = Clock::now() + std::chrono::seconds(1);
      if (commands_ == nullptr) {
        wake_at = std::min(wake_at, next_connect);
      } else {
        for (const auto& s : sources_) {
          wake_at = std::min({wake_at, s->next_move, s->next_renew});
        }
      }
      if (stop_requested_) wake_at = std::min(wake_at, stop_deadline_);
      cv_.wait_until(l, wake_at, [&] {
        return (stop_requested_ && !stop_seen) || commands_kicked_ || !pending_enqueues_.empty() ||
               (!pending_settles_.empty() && commands_ != nullptr);
      });
      commands_kicked_ = false;
      commands_heartbeat_.Beat(grace);
      while (!pending_settles_.empty() && settles.size() < kMaxSettlesPerRound) {
        settles.push_back(std::move(pending_settles_.front()));
        pending_settles_.pop_front();
      }
      enqueues.insert(enqueues.end(), pending_enqueues_.begin(), pending_enqueues_.end());
      pending_enqueues_.clear();
      stopping = stop_seen = stop_requested_;
      reader_done = reader_done_;
      deadline = stop_deadline_;
      unblock = unblock_reader_;
      unblock_reader_ = false;
      sources = sources_;
    }
    const auto now = Clock::now();
    Status s;
    if (unblock && commands_ != nullptr && reader_blocking_.load() &&
        reader_client_id_.load() >= 0) {
      // Ends the reader's XREADGROUP BLOCK now (a new source, room for a
      // stream left out of it, or Stop).
      auto r = commands_->Run({"CLIENT", "UNBLOCK", std::to_string(reader_client_id_.load())});
      s = r.ok() ? Status::Ok() : r.status();
    }
    if (stopping && reader_done && settles.empty() && enqueues.empty()) break;  // all flushed
    if (stopping && now >= deadline) {
      size_t left = settles.size();
      {
        std::lock_guard<std::mutex> l(mu_);
        left += pending_settles_.size();
      }
      if (left > 0) {
        LOG(WARNING) << "redis backend " << name_ << ": stop deadline passed with " << left
                     << " outcome(s) not written; those entries stay pending and are claimed "
                     << "again after min_idle";
      }
      FailEnqueues(enqueues, Status::Unavailable("redis backend " + name_ + ": stopped"));
      break;
    }
    if (commands_ == nullptr) {
      if (now < next_connect) {
        FailEnqueues(enqueues, Status::Unavailable("redis backend " + name_ +
                                                   ": not connected to Redis"));
      } else {
        auto conn = Connect(Link::kCommands);
        if (conn.ok()) {
          commands_ = std::move(*conn);
          failures = 0;
        } else {
          next_connect = Clock::now() + Backoff(++failures);
          FailEnqueues(enqueues, conn.status());
        }
      }
      if (commands_ == nullptr) {
        std::lock_guard<std::mutex> l(mu_);
        for (auto it = settles.rbegin(); it != settles.rend(); ++it) {
          pending_settles_.push_front(std::move(*it));
        }
        settles.clear();
        continue;
      }
    }
    if (s.ok() && !settles.empty()) s = ApplySettlements(settles);
    if (s.ok()) {
      settles.clear();
      ApplyEnqueues(enqueues);
    }
    if (s.ok() && !stopping) {
      for (const auto& src : sources) {
        {
          std::lock_guard<std::mutex> l(src->mu);
          if (!src->started || src->stopped) continue;
        }
        if (!src->group_ready.load()) continue;  // the reader creates it first
        commands_heartbeat_.Beat(grace);
        const auto t = Clock::now();
        if (s.ok() && t >= src->next_move) s = MoveDue(*src, t);
        if (s.ok() && t >= src->next_renew) s = RenewHeld(*src, t);
        if (!s.ok()) break;
      }
    }
    if (!s.ok()) {
      commands_.reset();
      RecordFailure(Link::kCommands, s);
      next_connect = Clock::now() + Backoff(++failures);
      FailEnqueues(enqueues, s);
      std::lock_guard<std::mutex> l(mu_);
      for (auto it = settles.rbegin(); it != settles.rend(); ++it) {
        pending_settles_.push_front(std::move(*it));
      }
      settles.clear();
      continue;
    }
    if (stopping) {
      // Not before the reader is gone: it hands over the acks it had not
      // sent yet when it returns (AbandonRounds).
      std::lock_guard<std::mutex> l(mu_);
      if (reader_done_ && pending_settles_.empty() && pending_enqueues_.empty()) break;
    }
  }
  commands_.reset();
  commands_heartbeat_.Unregister();
  std::lock_guard<std::mutex> l(mu_);
  commands_connected_ = false;
  // Entries still held stay pending in Redis: they are claimed again after
  // min_idle (by this consumer name at its next start, at once).
  pending_settles_.clear();
}

void RedisBackend::FailEnqueues(std::vector<EnqueueOp*>& ops, const Status& status) {
  if (ops.empty()) return;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (EnqueueOp* op : ops) {
      op->status = status;
      op->done = true;
    }
  }
  ops.clear();
  done_cv_.notify_all();
}

Status RedisBackend::ApplySettlements(std::vector<SettleOp>& ops) {
  // Commands as views: each source's XACK points at the ids of its
  // deliveries, the other commands at `owned` (a deque: never moves them).
  std::vector<RedisArgs> cmds;
  std::deque<RedisCommand> owned;
  std::vector<size_t> op_of_cmd;  // which op a command belongs to (acks: the first of them)
  std::vector<std::pair<SourceState*, size_t>> ack_cmd;  // per source, its XACK command
  auto add_owned = [&](RedisCommand cmd, size_t op) {
    owned.push_back(std::move(cmd));
    cmds.emplace_back(owned.back().begin(), owned.back().end());
    op_of_cmd.push_back(op);
  };
  const int64_t now_ms = WallMs();
  const std::string min_idle_ms = std::to_string(options_.min_idle.count());
  std::vector<std::pair<SourceState*, int64_t>> retry_due;
  // The stream entry ids, in their held slots (which stay put until the
  // entries are released below): one lock per run of a source's ops.
  std::vector<std::string_view> entry_ids(ops.size());
  {
    std::unique_lock<std::mutex> lock;
    const SourceState* locked = nullptr;
    for (size_t i = 0; i < ops.size(); ++i) {
      if (ops[i].source != locked) {
        if (lock.owns_lock()) lock.unlock();
        lock = std::unique_lock<std::mutex>(ops[i].source->mu);
        locked = ops[i].source;
      }
      entry_ids[i] = ops[i].source->EntryIdLocked(*ops[i].delivery);
    }
  }
  for (size_t i = 0; i < ops.size(); ++i) {
    SettleOp& op = ops[i];
    SourceState& src = *op.source;
    const Delivery& d = *op.delivery;
    const std::string_view entry_id = entry_ids[i];
    const std::string& stream = src.options.source;
    switch (op.outcome.kind) {
      case Outcome::Kind::kAck: {
        auto it = std::find_if(ack_cmd.begin(), ack_cmd.end(),
                               [&](const auto& a) { return a.first == &src; });
        if (it == ack_cmd.end()) {
          cmds.push_back(RedisArgs{"XACK", stream, options_.group});
          op_of_cmd.push_back(i);
          it = ack_cmd.emplace(ack_cmd.end(), &src, cmds.size() - 1);
        }
        cmds[it->second].push_back(entry_id);
        break;
      }
      case Outcome::Kind::kRetry: {
        // The copy is made from the entry in Redis; these are only its
        // bookkeeping fields, and its fields as decoded in case the entry
        // is gone from the stream.
        int64_t due = WallMsCeil() + std::max<int64_t>(0, op.outcome.delay.count());
        RedisCommand cmd = {"EVAL", kRetryScript, "2", stream, src.retry_key, options_.group,
                            std::string(entry_id), std::to_string(due)};
        Bookkeeping book;
        // The message id of every later copy: set once, by the first retry.
        book.Add("add", kHeaderOriginalId, d.msg.id);
        if (d.msg.enqueued_at_ms > 0) {
          book.Add("add", kHeaderFirstSeenAt, FormatIso8601Utc(d.msg.enqueued_at_ms));
        }
        book.Add("set", kCopyAttemptField, std::to_string(d.msg.attempt + 1));
        book.AppendTo(cmd);
        AppendArgs(cmd, EncodeMessage(d.msg, options_.payload_field, 1));
        add_owned(std::move(cmd), i);
        retry_due.emplace_back(&src, due);
        break;
      }
      case Outcome::Kind::kDeadLetter: {
        RedisCommand cmd = {"EVAL", kDeadLetterScript, "2", stream, src.dlq_key, options_.group,
                            std::string(entry_id), std::to_string(options_.dlq_maxlen)};
        // x-original-queue names the stream, as it names the AMQP queue on
        // RabbitMQ; the first time seen is never overwritten. The dead copy
        // carries its history in x-final-attempt: a dead letter added back
        // to the stream starts again at attempt 1.
        Bookkeeping book;
        for (const DeadLetterField& f : DeadLetterFieldsFor(d, stream, op.outcome.reason, now_ms)) {
          const std::string_view name = f.name;
          const bool once = name == kHeaderFirstSeenAt || name == kHeaderOriginalId;
          book.Add(once ? "add" : "set", f.name, f.ToText());
        }
        book.Add("del", kCopyAttemptField, "");
        book.AppendTo(cmd);
        AppendArgs(cmd, EncodeMessage(d.msg, options_.payload_field, 1));
        add_owned(std::move(cmd), i);
        break;
      }
      case Outcome::Kind::kRelease: {
        // Back to "idle for min_idle" with the delivery count it had before
        // this delivery, so the next claim (ours or another consumer's)
        // takes it at once and counts no attempt for it.
        uint32_t before = d.tag > 0 ? static_cast<uint32_t>(d.tag) - 1 : 0;
        add_owned({"XCLAIM", stream, options_.group, consumer_, "0", std::string(entry_id), "IDLE",
                   min_idle_ms,
                   "RETRYCOUNT", std::to_string(before), "JUSTID"},
                  i);
        break;
      }
    }
  }
  std::vector<RedisReplyPtr> replies;
  Status s = commands_->Pipeline(cmds, &replies);
  if (!s.ok()) return s;
  for (const auto& r : replies) {
    // Apply them all again after a backoff: every command here is idempotent.
    if (IsTransientError(r.get())) {
      return Status::Unavailable("settling on " + RedactedRedisUrl(options_) + ": " +
                                 std::string(ReplyText(r.get())));
    }
  }
  // Dead letters with too many fields for a script come back as their
  // fields: written here, each with its ack, in a transaction.
  std::vector<RedisArgs> big;
  std::vector<size_t> big_cmd;  // the script command each transaction finishes
  const std::string dlq_maxlen = std::to_string(options_.dlq_maxlen);
  for (size_t c = 0; c < replies.size(); ++c) {
    const redisReply* r = replies[c].get();
    const SettleOp& op = ops[op_of_cmd[c]];
    if (op.outcome.kind != Outcome::Kind::kDeadLetter || r->type != REDIS_REPLY_ARRAY) continue;
    const SourceState& src = *op.source;
    big.push_back({"MULTI"});
    RedisArgs& add = big.emplace_back(RedisArgs{"XADD", src.dlq_key});
    if (options_.dlq_maxlen > 0) add.insert(add.end(), {"MAXLEN", "~", dlq_maxlen});
    add.push_back("*");
    for (size_t f = 0; f < r->elements; ++f) add.push_back(ReplyText(r->element[f]));
    // cmds[c] is {EVAL, script, 2, stream, dlq, group, entry id, ...}.
    big.push_back({"XACK", src.options.source, options_.group, cmds[c][6]});
    big.push_back({"EXEC"});
    big_cmd.push_back(c);
  }
  if (!big.empty()) {
    std::vector<RedisReplyPtr> big_replies;
    if (Status b = commands_->Pipeline(big, &big_replies); !b.ok()) return b;
    for (size_t t = 0; t < big_cmd.size(); ++t) {
      for (size_t k = 4 * t; k < 4 * t + 4 && k < big_replies.size(); ++k) {
        const redisReply* e = FirstError(big_replies[k].get());
        if (e == nullptr) continue;
        if (IsTransientError(e)) {
          return Status::Unavailable("dead-lettering on " + RedactedRedisUrl(options_) + ": " +
                                     std::string(ReplyText(e)));
        }
        const SettleOp& op = ops[op_of_cmd[big_cmd[t]]];
        LOG(WARNING) << "redis backend " << name_ << ": stream " << op.source->options.source
                     << ": dead letter of entry " << entry_ids[op_of_cmd[big_cmd[t]]] << " failed: "
                     << ReplyText(e);
        break;
      }
    }
  }
  for (size_t c = 0; c < replies.size(); ++c) {
    if (!IsError(replies[c].get())) continue;
    const SettleOp& op = ops[op_of_cmd[c]];
    // The entry stays pending (or its stream is gone): it is claimed and run
    // again after min_idle, so nothing is lost.
    LOG(WARNING) << "redis backend " << name_ << ": stream " << op.source->options.source << ": "
                 << OutcomeKindName(op.outcome.kind) << " of entry " << entry_ids[op_of_cmd[c]]
                 << (cmds[c][0] == "XACK" ? " (and others of its batch)" : "")
                 << " failed: " << ReplyText(replies[c].get());
  }
  // Forget the settled entries and keep their deliveries for reuse, one
  // lock per run of a source's ops; kick the reader when a source wants a
  // read (see WantsReadLocked) after this.
  const auto now = Clock::now();
  bool kick = false, newly_wanted = false;
  SourceState* locked = nullptr;
  bool wanted_before = false;
  std::unique_lock<std::mutex> lock;
  auto finish_source = [&] {
    if (locked == nullptr || !locked->WantsReadLocked()) return;
    kick = true;
    if (!wanted_before) newly_wanted = true;
  };
  for (SettleOp& op : ops) {
    SourceState* src = op.source;
    if (src != locked) {
      finish_source();
      if (lock.owns_lock()) lock.unlock();
      lock = std::unique_lock<std::mutex>(src->mu);
      locked = src;
      wanted_before = src->WantsReadLocked();
    }
    src->ReleaseLocked(*op.delivery);
    src->RecycleLocked(std::move(op.delivery));
  }
  finish_source();
  if (lock.owns_lock()) lock.unlock();
  for (auto& [src, due] : retry_due) {
    auto at = now + std::chrono::milliseconds(std::max<int64_t>(0, due - now_ms));
    src->next_move = std::min(src->next_move, at);
  }
  ops.clear();
  if (kick) {
    // The buffer may have run empty since the last settlement (Fetch does
    // not kick): kick whenever a read is wanted, it is cheap.
    KickReader();
    std::lock_guard<std::mutex> l(mu_);
    // Another stream's blocking read may hold the reader: end it for this room.
    if (newly_wanted && sources_.size() > 1) unblock_reader_ = true;
  }
  return Status::Ok();
}

void RedisBackend::ApplyEnqueues(std::vector<EnqueueOp*>& ops) {
  if (ops.empty()) return;
  static std::atomic<uint64_t> counter{0};
  std::vector<RedisCommand> cmds;
  for (EnqueueOp* op : ops) {
    uint32_t attempt = std::max<uint32_t>(1, op->message.attempt);
    std::vector<std::string> fields = EncodeMessage(op->message, options_.payload_field, attempt);
    if (op->delay.count() > 0) {
      std::string tag = "enqueue:" + consumer_ + ":" + std::to_string(WallMs()) + ":" +
                        std::to_string(counter.fetch_add(1));
      RedisCommand cmd = {"EVAL", kDelayScript, "1", op->stream + ":retry", tag,
                          std::to_string(WallMsCeil() + op->delay.count())};
      AppendArgs(cmd, std::move(fields));
      cmds.push_back(std::move(cmd));
    } else {
      RedisCommand cmd = {"XADD", op->stream};
      if (options_.maxlen > 0) AppendArgs(cmd, {"MAXLEN", "~", std::to_string(options_.maxlen)});
      cmd.push_back("*");
      AppendArgs(cmd, std::move(fields));
      cmds.push_back(std::move(cmd));
    }
  }
  std::vector<RedisReplyPtr> replies;
  Status s = commands_->Pipeline(cmds, &replies);
  {
    std::lock_guard<std::mutex> l(mu_);
    for (size_t i = 0; i < ops.size(); ++i) {
      if (!s.ok()) {
        ops[i]->status = s;
      } else if (IsTransientError(replies[i].get())) {
        ops[i]->status = Status::Unavailable("redis backend " + name_ + ": enqueue to " +
                                             ops[i]->stream + ": " +
                                             std::string(ReplyText(replies[i].get())));
      } else if (IsError(replies[i].get())) {
        ops[i]->status = Status::IoError("redis backend " + name_ + ": enqueue to " +
                                         ops[i]->stream + " failed: " +
                                         std::string(ReplyText(replies[i].get())));
      }
      ops[i]->done = true;
    }
  }
  ops.clear();
  done_cv_.notify_all();
  // A failed pipeline also fails the connection; the caller notices on its
  // next command.
}

Status RedisBackend::MoveDue(SourceState& src, TimePoint now) {
  src.next_move = now + options_.block;
  const int64_t wall = WallMs();
  auto reply = commands_->Run({"EVAL", kMoveDueScript, "3", src.retry_key, src.options.source,
                               src.dlq_key, std::to_string(wall), std::to_string(kMoveBatch),
                               std::to_string(options_.maxlen),
                               std::to_string(wall + kBigMoveLease.count())});
  if (!reply.ok()) return reply.status();
  const redisReply* r = reply->get();
  if (IsTransientError(r)) {
    return Status::Unavailable("moving due retries: " + std::string(ReplyText(r)));
  }
  if (IsError(r)) {
    LOG(WARNING) << "redis backend " << name_ << ": moving due retries of " << src.options.source
                 << " failed: " << ReplyText(r);
    return Status::Ok();
  }
  if (r->type != REDIS_REPLY_ARRAY || r->elements < 1) return Status::Ok();
  if (r->elements >= 2 && r->element[1]->type == REDIS_REPLY_ARRAY) {
    Status s = MoveBig(src, r->element[1]);
    if (!s.ok()) return s;
  }
  if (r->element[0]->integer >= kMoveBatch) {
    src.next_move = now;  // more are due
  } else if (r->elements >= 3 && r->element[2]->type == REDIS_REPLY_STRING) {
    int64_t next_due = std::atoll(r->element[2]->str);
    auto at = now + std::chrono::milliseconds(std::max<int64_t>(0, next_due - WallMs()));
    src.next_move = std::min(src.next_move, at);
  }
  return Status::Ok();
}

Status RedisBackend::MoveBig(SourceState& src, const redisReply* big) {
  // [member, fields, ...]: each in a transaction of its own, the XADD of
  // the copy and the ZREM of its member together.
  std::vector<RedisArgs> cmds;
  for (size_t i = 0; i + 1 < big->elements; i += 2) {
    const redisReply* fields = big->element[i + 1];
    if (fields->type != REDIS_REPLY_ARRAY) continue;
    cmds.push_back({"MULTI"});
    RedisArgs& add = cmds.emplace_back(RedisArgs{"XADD", src.options.source});
    std::string maxlen = std::to_string(options_.maxlen);
    if (options_.maxlen > 0) add.insert(add.end(), {"MAXLEN", "~", maxlen});
    add.push_back("*");
    for (size_t f = 0; f < fields->elements; ++f) add.push_back(ReplyText(fields->element[f]));
    cmds.push_back({"ZREM", src.retry_key, ReplyText(big->element[i])});
    cmds.push_back({"EXEC"});
  }
  if (cmds.empty()) return Status::Ok();
  std::vector<RedisReplyPtr> replies;
  if (Status s = commands_->Pipeline(cmds, &replies); !s.ok()) return s;
  for (size_t c = 0; c < replies.size(); ++c) {
    if (IsTransientError(replies[c].get())) {
      // The member stays leased and is moved again once its lease is over.
      return Status::Unavailable("moving a large retry back: " +
                                 std::string(ReplyText(replies[c].get())));
    }
    if (const redisReply* e = FirstError(replies[c].get())) {
      LOG(WARNING) << "redis backend " << name_ << ": moving a large retry back to stream "
                   << src.options.source << " failed: " << ReplyText(e)
                   << "; it is tried again in " << kBigMoveLease.count() / 1000 << " s";
    }
  }
  return Status::Ok();
}

Status RedisBackend::RenewHeld(SourceState& src, TimePoint now) {
  const auto half = options_.min_idle / 2;
  src.next_renew = now + std::max<std::chrono::milliseconds>(options_.min_idle / 4,
                                                             std::chrono::milliseconds(10));
  RedisCommand cmd = {"EVAL", kRenewScript, "1", src.options.source, options_.group, consumer_};
  std::vector<std::string> ids;
  {
    std::lock_guard<std::mutex> l(src.mu);
    for (SourceState::HeldSlot& slot : src.held) {
      if (!slot.used || now - slot.since < half) continue;
      cmd.push_back(slot.id);
      slot.since = now;
    }
  }
  if (cmd.size() == 6) return Status::Ok();
  auto reply = commands_->Run(cmd);
  if (!reply.ok()) return reply.status();
  if (IsTransientError(reply->get())) {
    return Status::Unavailable("renewing held entries: " + std::string(ReplyText(reply->get())));
  }
  if (IsError(reply->get())) {
    LOG(WARNING) << "redis backend " << name_ << ": renewing entries of " << src.options.source
                 << " failed: " << ReplyText(reply->get());
  }
  return Status::Ok();
}

}  // namespace foxworker
