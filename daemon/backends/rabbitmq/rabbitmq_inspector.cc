#include "daemon/backends/rabbitmq/rabbitmq_inspector.h"

#include <amqp_framing.h>
#include <sys/time.h>

#include <algorithm>
#include <cstdio>
#include <set>
#include <utility>

#include "daemon/backends/rabbitmq/amqp_message_codec.h"
#include "daemon/core/backend.h"
#include "daemon/core/dead_letter.h"

namespace foxworker {
namespace {

std::string DlqOf(const SourceOptions& q) {
  return ExpandQueuePattern(RabbitMqQueueOptionsOf(q.queue_options.get()).dead_letter_queue,
                            q.source);
}

// The header `name` as text, "" when absent.
std::string Header(const amqp_basic_properties_t& p, std::string_view name) {
  if ((p._flags & AMQP_BASIC_HEADERS_FLAG) == 0) return {};
  for (int i = 0; i < p.headers.num_entries; ++i) {
    const amqp_table_entry_t& e = p.headers.entries[i];
    if (std::string_view(static_cast<const char*>(e.key.bytes), e.key.len) == name) {
      return FieldValueToString(e.value);
    }
  }
  return {};
}

std::string Property(const amqp_basic_properties_t& p, amqp_flags_t flag, amqp_bytes_t value) {
  return (p._flags & flag) != 0 ? BytesToString(value) : std::string();
}

// FNV-1a, 64 bits, over the parts with a separator.
std::string LetterId(const amqp_basic_properties_t& p) {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&](const std::string& s) {
    for (unsigned char c : s) {
      h ^= c;
      h *= 1099511628211ull;
    }
    h ^= 0xff;
    h *= 1099511628211ull;
  };
  mix(Property(p, AMQP_BASIC_MESSAGE_ID_FLAG, p.message_id));
  mix(Header(p, kHeaderFailedAt));
  mix(Header(p, kHeaderFailureReason));
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

// "2026-11-22T22:53:51.123Z" -> Unix ms; 0 when not that.
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

DeadLetterSummary Summarize(const SourceOptions& q, const std::string& id,
                            const amqp_basic_properties_t& p, size_t body_bytes) {
  DeadLetterSummary s;
  s.id = id;
  s.queue = q.queue;
  s.message_id = Property(p, AMQP_BASIC_MESSAGE_ID_FLAG, p.message_id);
  if (s.message_id.empty()) s.message_id = Header(p, kHeaderOriginalId);
  s.type = Property(p, AMQP_BASIC_TYPE_FLAG, p.type);
  if (s.type.empty()) s.type = Header(p, kHeaderMessageType);
  s.reason = Header(p, kHeaderFailureReason);
  s.attempts = std::atoi(Header(p, kHeaderFinalAttempt).c_str());
  s.first_seen_ms = ParseIso8601Ms(Header(p, kHeaderFirstSeenAt));
  s.failed_at_ms = ParseIso8601Ms(Header(p, kHeaderFailedAt));
  s.payload_bytes = body_bytes;
  return s;
}

bool Matches(const std::string& lowered, const amqp_basic_properties_t& p) {
  return lowered.empty() ||
         LowerAscii(Header(p, kHeaderFailureReason)).find(lowered) != std::string::npos;
}

bool IsDeadLetterHeader(std::string_view name) {
  return name == kHeaderOriginalQueue || name == kHeaderMessageType ||
         name == kHeaderFailureReason || name == kHeaderFinalAttempt || name == kHeaderFailedAt ||
         name == kHeaderFirstSeenAt || name == kHeaderOriginalId ||
         name == kHeaderOriginalRoutingKey || name == kHeaderOriginalExchange ||
         name == kHeaderDeliveryCount;
}

}  // namespace

RabbitMqInspector::RabbitMqInspector(RabbitMqBackendOptions options, InspectorOptions inspector)
    : options_(std::move(options)), inspector_(inspector) {
  options_.connection_name += " (inspector)";
  // Calls come seconds or hours apart and nothing reads the socket in
  // between: with heartbeats the broker would close an idle inspector.
  options_.heartbeat = Duration(0);
}

RabbitMqInspector::~RabbitMqInspector() {
  if (conn_ != nullptr) conn_->Close();
}

Result<AmqpConnection*> RabbitMqInspector::Connection() {
  if (conn_ != nullptr) return conn_.get();
  auto c = AmqpConnection::Open(options_, inspector_.timeout, nullptr);
  if (!c.ok()) return Status::Unavailable(c.status().message());
  conn_ = std::move(c).value();
  next_publish_seq_ = 1;
  return conn_.get();
}

Status RabbitMqInspector::Fail(Status s) {
  conn_.reset();  // a closed channel or a broken socket: start again next call
  return s;
}

Result<QueueDepth> RabbitMqInspector::Depth(const SourceOptions& queue) {
  // A connection kept from an earlier call may have been closed meanwhile
  // (a broker restart): then once more on a new one.
  const bool reused = conn_ != nullptr;
  Result<QueueDepth> d = ReadDepth(queue);
  if (!d.ok() && reused) d = ReadDepth(queue);
  return d;
}

Result<QueueDepth> RabbitMqInspector::ReadDepth(const SourceOptions& queue) {
  auto c = Connection();
  if (!c.ok()) return c.status();
  amqp_table_t none = amqp_empty_table;
  QueueDepth d;
  auto ready = (*c)->DeclareQueue(queue.source, none, /*passive=*/true);
  if (!ready.ok()) return Fail(ready.status());
  d.backlog = *ready;
  auto dead = (*c)->DeclareQueue(DlqOf(queue), none, /*passive=*/true);
  if (!dead.ok()) return Fail(dead.status());
  d.dead_letters = *dead;
  return d;
}

Status RabbitMqInspector::PublishRetry(const std::string& queue, const Letter& letter) {
  OwnedProperties copy(*letter.props);
  for (std::string_view h :
       {std::string_view(kHeaderOriginalQueue), std::string_view(kHeaderMessageType),
        std::string_view(kHeaderFailureReason), std::string_view(kHeaderFinalAttempt),
        std::string_view(kHeaderFailedAt), std::string_view(kHeaderDeliveryCount),
        std::string_view(kHeaderRetryAttempt)}) {
    copy.Remove(h);
  }
  copy.SetPersistent();
  amqp_connection_state_t st = conn_->state();
  int rc = amqp_basic_publish(st, kAmqpChannel, amqp_empty_bytes,
                              amqp_cstring_bytes(queue.c_str()), /*mandatory=*/1, /*immediate=*/0,
                              &copy.props(),
                              amqp_bytes_t{letter.body.size(), const_cast<char*>(letter.body.data())});
  if (rc != AMQP_STATUS_OK) {
    return Status::Unavailable("basic.publish to " + queue + ": " + amqp_error_string2(rc));
  }
  const uint64_t seq = next_publish_seq_++;
  bool returned = false;
  for (;;) {
    amqp_frame_t frame;
    timeval tv{static_cast<time_t>(inspector_.timeout.count() / 1000),
               static_cast<suseconds_t>(inspector_.timeout.count() % 1000 * 1000)};
    rc = amqp_simple_wait_frame_noblock(st, &frame, &tv);
    if (rc != AMQP_STATUS_OK) {
      return Status::Unavailable("waiting for the confirm of the retry to " + queue + ": " +
                                 amqp_error_string2(rc));
    }
    if (frame.frame_type != AMQP_FRAME_METHOD || frame.channel != kAmqpChannel) continue;
    const amqp_method_number_t id = frame.payload.method.id;
    if (id == AMQP_BASIC_RETURN_METHOD) {
      returned = true;
      amqp_message_t m;
      amqp_rpc_reply_t r = amqp_read_message(st, kAmqpChannel, &m, 0);
      if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        return Status::Unavailable("reading a returned retry: " + AmqpReplyError(r));
      }
      amqp_destroy_message(&m);
    } else if (id == AMQP_BASIC_ACK_METHOD || id == AMQP_BASIC_NACK_METHOD) {
      uint64_t tag = 0;
      bool multiple = false;
      if (id == AMQP_BASIC_ACK_METHOD) {
        auto* a = static_cast<amqp_basic_ack_t*>(frame.payload.method.decoded);
        tag = a->delivery_tag;
        multiple = a->multiple;
      } else {
        auto* n = static_cast<amqp_basic_nack_t*>(frame.payload.method.decoded);
        tag = n->delivery_tag;
        multiple = n->multiple;
      }
      if (tag == seq || (multiple && tag >= seq)) {
        if (id == AMQP_BASIC_NACK_METHOD) return Status::Unavailable("the broker nacked the retry to " + queue);
        if (returned) return Status::Unavailable("the retry to " + queue + " was unroutable (no such queue)");
        return Status::Ok();
      }
    } else if (id == AMQP_CHANNEL_CLOSE_METHOD || id == AMQP_CONNECTION_CLOSE_METHOD) {
      return Status::Unavailable("the broker closed the channel while a retry to " + queue +
                                 " waited for its confirm");
    }
  }
}

Result<RabbitMqInspector::BrowseResult> RabbitMqInspector::Browse(
    const SourceOptions& queue, const std::function<Action(const Letter&)>& visit) {
  // As Depth: a kept connection that fails before anything was taken is
  // replaced once.
  const bool reused = conn_ != nullptr;
  bool took = false;
  auto r = BrowseOnce(queue, visit, &took);
  if (!r.ok() && reused && !took) r = BrowseOnce(queue, visit, &took);
  return r;
}

Result<RabbitMqInspector::BrowseResult> RabbitMqInspector::BrowseOnce(
    const SourceOptions& queue, const std::function<Action(const Letter&)>& visit, bool* took) {
  auto c = Connection();
  if (!c.ok()) return c.status();
  amqp_connection_state_t st = (*c)->state();
  const std::string dlq = DlqOf(queue);
  BrowseResult out;
  uint64_t last_tag = 0;
  std::set<uint64_t> settled;
  Status error = Status::Ok();
  while (out.seen < kMaxBrowse) {
    amqp_rpc_reply_t r =
        amqp_basic_get(st, kAmqpChannel, amqp_cstring_bytes(dlq.c_str()), /*no_ack=*/0);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
      return Fail(Status::Unavailable("basic.get from " + dlq + ": " + AmqpReplyError(r)));
    }
    if (r.reply.id == AMQP_BASIC_GET_EMPTY_METHOD) break;
    *took = true;
    auto* ok = static_cast<amqp_basic_get_ok_t*>(r.reply.decoded);
    const uint64_t tag = ok->delivery_tag;
    last_tag = tag;
    amqp_message_t m;
    amqp_rpc_reply_t rr = amqp_read_message(st, kAmqpChannel, &m, 0);
    if (rr.reply_type != AMQP_RESPONSE_NORMAL) {
      return Fail(Status::Unavailable("reading a letter of " + dlq + ": " + AmqpReplyError(rr)));
    }
    ++out.seen;
    Letter letter;
    letter.id = LetterId(m.properties);
    letter.props = &m.properties;
    letter.body = std::string_view(static_cast<const char*>(m.body.bytes), m.body.len);
    Action a = visit(letter);
    if (a == Action::kRetry) {
      Status s = PublishRetry(queue.source, letter);
      if (s.ok()) {
        amqp_basic_ack(st, kAmqpChannel, tag, /*multiple=*/0);
        settled.insert(tag);
        out.retried.push_back(letter.id);
      } else {
        error = s;
      }
    } else if (a == Action::kDelete) {
      amqp_basic_ack(st, kAmqpChannel, tag, /*multiple=*/0);
      settled.insert(tag);
      out.deleted.push_back(letter.id);
    }
    amqp_destroy_message(&m);
    amqp_maybe_release_buffers(st);
    if (!error.ok()) break;
  }
  out.complete = out.seen < kMaxBrowse;
  // The rest go back where they were, in their order.
  if (last_tag != 0 && settled.size() < out.seen) {
    if (amqp_basic_nack(st, kAmqpChannel, last_tag, /*multiple=*/1, /*requeue=*/1) !=
        AMQP_STATUS_OK) {
      // Closing the connection requeues them too.
      return Fail(Status::Unavailable("basic.nack of the browsed letters of " + dlq + " failed"));
    }
  }
  if (!error.ok()) return Fail(error);
  return out;
}

Result<DeadLetterPage> RabbitMqInspector::ListDead(const SourceOptions& queue,
                                                   const DeadLetterFilter& filter, size_t offset,
                                                   size_t limit) {
  const std::string lowered = LowerAscii(filter.reason_contains);
  std::vector<DeadLetterSummary> all;
  auto r = Browse(queue, [&](const Letter& l) {
    if (Matches(lowered, *l.props)) all.push_back(Summarize(queue, l.id, *l.props, l.body.size()));
    return Action::kKeep;
  });
  if (!r.ok()) return r.status();
  DeadLetterPage page;
  page.total = all.size();
  page.total_exact = r->complete;
  // The queue holds them oldest first.
  std::reverse(all.begin(), all.end());
  for (size_t i = offset; i < all.size() && page.letters.size() < limit; ++i) {
    page.letters.push_back(std::move(all[i]));
  }
  return page;
}

Result<DeadLetter> RabbitMqInspector::GetDead(const SourceOptions& queue, const std::string& id,
                                              size_t max_payload) {
  std::optional<DeadLetter> found;
  auto r = Browse(queue, [&](const Letter& l) {
    if (found || l.id != id) return Action::kKeep;
    const amqp_basic_properties_t& p = *l.props;
    DeadLetter d;
    d.summary = Summarize(queue, l.id, p, l.body.size());
    d.payload_truncated = l.body.size() > max_payload;
    d.payload = std::string(l.body.substr(0, max_payload));
    Message m;
    DecodeProperties(p, &m);
    for (auto& [k, v] : m.headers) {
      if (IsDeadLetterHeader(k)) {
        d.properties.emplace_back(k, v);
      } else {
        d.headers.emplace_back(k, v);
      }
    }
    d.properties.emplace_back("dead_letter_queue", DlqOf(queue));
    auto add = [&](const char* name, const std::string& v) {
      if (!v.empty()) d.properties.emplace_back(name, v);
    };
    add("content_type", m.props.content_type);
    add("content_encoding", m.props.content_encoding);
    add("type", m.props.message_type);
    add("message_id", m.props.message_id);
    add("correlation_id", m.props.correlation_id);
    add("reply_to", m.props.reply_to);
    add("app_id", m.props.app_id);
    add("user_id", m.props.user_id);
    add("expiration", m.props.expiration);
    if (m.props.priority_set) add("priority", std::to_string(m.props.sent_priority));
    if (m.props.timestamp_set) add("timestamp_ms", std::to_string(m.props.timestamp_ms));
    if (m.props.delivery_mode != 0) add("delivery_mode", std::to_string(m.props.delivery_mode));
    found = std::move(d);
    return Action::kKeep;
  });
  if (!r.ok()) return r.status();
  if (!found) return Status::NotFound("no dead letter " + id + " in queue " + queue.queue);
  return std::move(*found);
}

Result<std::vector<std::string>> RabbitMqInspector::RetryDead(
    const SourceOptions& queue, const std::vector<std::string>& ids) {
  std::set<std::string> wanted(ids.begin(), ids.end());
  auto r = Browse(queue, [&](const Letter& l) {
    return wanted.count(l.id) != 0 ? Action::kRetry : Action::kKeep;
  });
  if (!r.ok()) return r.status();
  std::set<std::string> unique(r->retried.begin(), r->retried.end());
  return std::vector<std::string>(unique.begin(), unique.end());
}

Result<size_t> RabbitMqInspector::RetryMatching(const SourceOptions& queue,
                                                const DeadLetterFilter& filter) {
  const std::string lowered = LowerAscii(filter.reason_contains);
  auto r = Browse(queue, [&](const Letter& l) {
    return Matches(lowered, *l.props) ? Action::kRetry : Action::kKeep;
  });
  if (!r.ok()) return r.status();
  return r->retried.size();
}

Result<std::vector<std::string>> RabbitMqInspector::DeleteDead(
    const SourceOptions& queue, const std::vector<std::string>& ids) {
  std::set<std::string> wanted(ids.begin(), ids.end());
  auto r = Browse(queue, [&](const Letter& l) {
    return wanted.count(l.id) != 0 ? Action::kDelete : Action::kKeep;
  });
  if (!r.ok()) return r.status();
  std::set<std::string> unique(r->deleted.begin(), r->deleted.end());
  return std::vector<std::string>(unique.begin(), unique.end());
}

Result<size_t> RabbitMqInspector::DeleteMatching(const SourceOptions& queue,
                                                 const DeadLetterFilter& filter) {
  const std::string lowered = LowerAscii(filter.reason_contains);
  auto r = Browse(queue, [&](const Letter& l) {
    return Matches(lowered, *l.props) ? Action::kDelete : Action::kKeep;
  });
  if (!r.ok()) return r.status();
  return r->deleted.size();
}

Result<std::vector<ScheduledJob>> RabbitMqInspector::ListScheduled(const SourceOptions& queue,
                                                                   size_t limit) {
  (void)limit;
  return Status::Unavailable(
      "queue " + queue.queue +
      ": RabbitMQ keeps retries in per-delay TTL queues, which cannot be listed without taking "
      "their messages (and taking one resets nothing but could reorder its expiry); their "
      "count is in the broker's own queue list");
}

}  // namespace foxworker
