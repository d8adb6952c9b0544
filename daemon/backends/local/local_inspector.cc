#include "daemon/backends/local/local_inspector.h"

#include <algorithm>
#include <charconv>
#include <limits>
#include <utility>

#include "daemon/backends/local/job_codec.h"
#include "daemon/core/backend.h"

namespace foxworker {
namespace {

// A row id from its text; nullopt for anything else (an unknown id).
std::optional<int64_t> ParseId(const std::string& id) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(id.data(), id.data() + id.size(), v);
  if (ec != std::errc() || p != id.data() + id.size() || v <= 0) return std::nullopt;
  return v;
}

std::vector<int64_t> ParseIds(const std::vector<std::string>& ids) {
  std::vector<int64_t> out;
  for (const std::string& id : ids) {
    if (auto v = ParseId(id)) out.push_back(*v);
  }
  return out;
}

std::vector<std::string> IdsText(const std::vector<int64_t>& ids) {
  std::vector<std::string> out;
  out.reserve(ids.size());
  for (int64_t id : ids) out.push_back(std::to_string(id));
  return out;
}

int64_t Clamp(size_t n) {
  return static_cast<int64_t>(std::min<size_t>(n, std::numeric_limits<int64_t>::max()));
}

DeadLetterSummary Summarize(const std::string& queue, const JobRecord& job, size_t payload_bytes) {
  DeadLetterSummary s;
  s.id = std::to_string(job.id);
  s.queue = queue;
  // The id a handler saw: the producer's when it set one, else the row id.
  s.message_id = job.props.message_id.empty() ? s.id : job.props.message_id;
  s.type = job.props.message_type;
  s.reason = job.last_error;
  s.attempts = static_cast<int>(job.attempts);
  s.first_seen_ms = job.enqueued_at_ms;
  s.failed_at_ms = job.failed_at_ms;
  s.payload_bytes = payload_bytes;
  return s;
}

}  // namespace

LocalInspector::LocalInspector(std::string path, Durability durability, InspectorOptions options)
    : path_(std::move(path)), durability_(durability), options_(options) {}

Result<LocalStore*> LocalInspector::Store() {
  if (store_ != nullptr) return store_.get();
  LocalStoreOptions o;
  o.path = path_;
  o.durability = durability_;
  o.create = false;
  o.busy_timeout = options_.timeout;
  auto store = LocalStore::Open(std::move(o));
  if (!store.ok()) return Status::Unavailable(store.status().message());
  store_ = std::move(store).value();
  return store_.get();
}

template <typename T>
Result<T> LocalInspector::Checked(Result<T> r) {
  if (!r.ok() && r.status().code() != Status::Code::kNotFound) store_.reset();
  return r;
}

Result<QueueDepth> LocalInspector::Depth(const SourceOptions& queue) {
  auto store = Store();
  if (!store.ok()) return store.status();
  auto counts = Checked((*store)->QueueDepth(queue.source));
  if (!counts.ok()) return counts.status();
  QueueDepth d;
  d.backlog = counts->waiting;
  d.unacked = counts->running;
  d.scheduled = counts->scheduled;
  d.dead_letters = counts->dead;
  d.oldest_age_seconds =
      counts->oldest_waiting_age_ms < 0 ? 0.0 : counts->oldest_waiting_age_ms / 1000.0;
  return d;
}

Result<DeadLetterPage> LocalInspector::ListDead(const SourceOptions& queue,
                                                const DeadLetterFilter& filter, size_t offset,
                                                size_t limit) {
  auto store = Store();
  if (!store.ok()) return store.status();
  int64_t total = 0;
  auto rows = Checked((*store)->ListDeadPage(queue.source, LowerAscii(filter.reason_contains),
                                             Clamp(offset), Clamp(limit), &total));
  if (!rows.ok()) return rows.status();
  DeadLetterPage page;
  page.total = static_cast<size_t>(total);
  for (const auto& row : *rows) page.letters.push_back(Summarize(queue.queue, row.job, row.payload_bytes));
  return page;
}

Result<DeadLetter> LocalInspector::GetDead(const SourceOptions& queue, const std::string& id,
                                           size_t max_payload) {
  auto row_id = ParseId(id);
  if (!row_id) return Status::NotFound("no dead letter " + id + " in queue " + queue.queue);
  auto store = Store();
  if (!store.ok()) return store.status();
  auto job = Checked((*store)->GetJob(*row_id));
  if (!job.ok()) return job.status();
  if (!job->has_value() || (*job)->state != JobState::kDead || (*job)->queue != queue.source) {
    return Status::NotFound("no dead letter " + id + " in queue " + queue.queue);
  }
  JobRecord& r = **job;
  DeadLetter d;
  d.summary = Summarize(queue.queue, r, r.payload.size());
  d.payload_truncated = r.payload.size() > max_payload;
  d.payload = r.payload.substr(0, max_payload);
  d.headers = r.headers;
  auto add = [&](const char* name, std::string value) {
    if (!value.empty()) d.properties.emplace_back(name, std::move(value));
  };
  add("row_id", std::to_string(r.id));
  add("source", r.queue);
  add("priority", std::to_string(r.priority));
  add("enqueued_at_ms", std::to_string(r.enqueued_at_ms));
  if (r.first_attempt_at_ms > 0) add("first_attempt_at_ms", std::to_string(r.first_attempt_at_ms));
  add("failed_at_ms", std::to_string(r.failed_at_ms));
  add("unique_key", r.unique_key);
  add("content_type", r.props.content_type);
  add("content_encoding", r.props.content_encoding);
  add("message_type", r.props.message_type);
  add("message_id", r.props.message_id);
  add("correlation_id", r.props.correlation_id);
  add("reply_to", r.props.reply_to);
  add("app_id", r.props.app_id);
  add("user_id", r.props.user_id);
  add("expiration", r.props.expiration);
  if (r.props.timestamp_ms != 0) add("timestamp_ms", std::to_string(r.props.timestamp_ms));
  return d;
}

Result<std::vector<std::string>> LocalInspector::RetryDead(const SourceOptions& queue,
                                                           const std::vector<std::string>& ids) {
  auto store = Store();
  if (!store.ok()) return store.status();
  auto done = Checked((*store)->RetryDeadOf(queue.source, ParseIds(ids)));
  if (!done.ok()) return done.status();
  return IdsText(*done);
}

Result<size_t> LocalInspector::RetryMatching(const SourceOptions& queue,
                                             const DeadLetterFilter& filter) {
  auto store = Store();
  if (!store.ok()) return store.status();
  auto n = Checked((*store)->RetryDeadMatching(queue.source, LowerAscii(filter.reason_contains)));
  if (!n.ok()) return n.status();
  return static_cast<size_t>(*n);
}

Result<std::vector<std::string>> LocalInspector::DeleteDead(const SourceOptions& queue,
                                                            const std::vector<std::string>& ids) {
  auto store = Store();
  if (!store.ok()) return store.status();
  auto done = Checked((*store)->PurgeDeadOf(queue.source, ParseIds(ids)));
  if (!done.ok()) return done.status();
  return IdsText(*done);
}

Result<size_t> LocalInspector::DeleteMatching(const SourceOptions& queue,
                                              const DeadLetterFilter& filter) {
  auto store = Store();
  if (!store.ok()) return store.status();
  auto n = Checked((*store)->PurgeDeadMatching(queue.source, LowerAscii(filter.reason_contains)));
  if (!n.ok()) return n.status();
  return static_cast<size_t>(*n);
}

Result<std::vector<ScheduledJob>> LocalInspector::ListScheduled(const SourceOptions& queue,
                                                                size_t limit) {
  auto store = Store();
  if (!store.ok()) return store.status();
  auto rows = Checked((*store)->ListScheduled(queue.source, Clamp(limit)));
  if (!rows.ok()) return rows.status();
  std::vector<ScheduledJob> out;
  for (const JobRecord& r : *rows) {
    ScheduledJob j;
    j.queue = queue.queue;
    j.message_id = r.props.message_id.empty() ? std::to_string(r.id) : r.props.message_id;
    j.type = r.props.message_type;
    j.attempt = static_cast<int>(r.attempts);
    j.due_ms = r.run_at_ms;
    j.last_error = r.last_error;
    out.push_back(std::move(j));
  }
  return out;
}

}  // namespace foxworker
