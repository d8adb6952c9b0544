#include "daemon/middleware/dedup.h"

#include <glog/logging.h>
#include <rapidjson/document.h>
#include <rapidjson/pointer.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <sqlite3.h>

namespace foxworker {

bool MemoryDedupStore::Seen(const std::string& key, int64_t now_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = keys_.find(key);
  if (it == keys_.end()) return false;
  if (it->second.first > now_ms) return true;
  order_.erase(it->second.second);
  keys_.erase(it);
  return false;
}

void MemoryDedupStore::Record(const std::string& key, int64_t expires_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = keys_.find(key);
  if (it != keys_.end()) {
    order_.erase(it->second.second);
    keys_.erase(it);
  }
  order_.push_back(key);
  keys_.emplace(key, std::make_pair(expires_ms, std::prev(order_.end())));
  while (keys_.size() > max_keys_) {
    keys_.erase(order_.front());
    order_.pop_front();
  }
}

size_t MemoryDedupStore::size() {
  std::lock_guard<std::mutex> lock(mu_);
  return keys_.size();
}

bool SqliteDedupStore::EnsureOpenLocked() {
  if (db_ != nullptr) return true;
  if (failed_) return false;
  std::string error;
  if (sqlite3_open_v2(path_.c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
    error = db_ ? sqlite3_errmsg(db_) : "out of memory";
  } else {
    sqlite3_busy_timeout(db_, 5000);
    // A lost key after a power cut means one more run of an at-least-once
    // message; not worth an fsync per message.
    const char* setup =
        "PRAGMA synchronous=NORMAL;"
        "CREATE TABLE IF NOT EXISTS dedup_keys(queue TEXT NOT NULL, key TEXT NOT NULL,"
        " expires_ms INTEGER NOT NULL, PRIMARY KEY(queue, key)) WITHOUT ROWID;";
    char* err = nullptr;
    if (sqlite3_exec(db_, setup, nullptr, nullptr, &err) != SQLITE_OK) {
      error = err ? err : "?";
      sqlite3_free(err);
    }
  }
  if (error.empty()) return true;
  LOG(ERROR) << "dedup for queue " << queue_ << ": cannot use " << path_ << ": " << error
             << "; duplicates will not be skipped";
  sqlite3_close(db_);
  db_ = nullptr;
  failed_ = true;
  return false;
}

SqliteDedupStore::~SqliteDedupStore() { sqlite3_close(db_); }

bool SqliteDedupStore::Seen(const std::string& key, int64_t now_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!EnsureOpenLocked()) return false;
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db_, "SELECT 1 FROM dedup_keys WHERE queue=?1 AND key=?2 AND expires_ms>?3",
                     -1, &st, nullptr);
  sqlite3_bind_text(st, 1, queue_.data(), static_cast<int>(queue_.size()), SQLITE_STATIC);
  sqlite3_bind_text(st, 2, key.data(), static_cast<int>(key.size()), SQLITE_STATIC);
  sqlite3_bind_int64(st, 3, now_ms);
  bool seen = sqlite3_step(st) == SQLITE_ROW;
  sqlite3_finalize(st);
  return seen;
}

void SqliteDedupStore::Record(const std::string& key, int64_t expires_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!EnsureOpenLocked()) return;
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db_,
                     "INSERT INTO dedup_keys(queue, key, expires_ms) VALUES(?1, ?2, ?3)"
                     " ON CONFLICT(queue, key) DO UPDATE SET expires_ms=excluded.expires_ms",
                     -1, &st, nullptr);
  sqlite3_bind_text(st, 1, queue_.data(), static_cast<int>(queue_.size()), SQLITE_STATIC);
  sqlite3_bind_text(st, 2, key.data(), static_cast<int>(key.size()), SQLITE_STATIC);
  sqlite3_bind_int64(st, 3, expires_ms);
  if (sqlite3_step(st) != SQLITE_DONE)
    LOG(WARNING) << "dedup: cannot record key for queue " << queue_ << ": " << sqlite3_errmsg(db_);
  sqlite3_finalize(st);
  if (++records_ % 1024 == 0) {
    sqlite3_stmt* purge = nullptr;
    sqlite3_prepare_v2(db_, "DELETE FROM dedup_keys WHERE queue=?1 AND expires_ms<=?2", -1, &purge,
                       nullptr);
    sqlite3_bind_text(purge, 1, queue_.data(), static_cast<int>(queue_.size()), SQLITE_STATIC);
    sqlite3_bind_int64(purge, 2, expires_ms - 1);  // anything older than what we just wrote
    sqlite3_step(purge);
    sqlite3_finalize(purge);
  }
}

std::string DedupKeyOf(const std::string& spec, const Message& m) {
  if (spec.rfind("header:", 0) == 0) {
    const std::string* v = m.FindHeader(std::string_view(spec).substr(7));
    return v ? *v : std::string();
  }
  if (spec.rfind("property:", 0) == 0) {
    std::string_view p = std::string_view(spec).substr(9);
    if (p == "message_id") return m.props.message_id;
    if (p == "correlation_id") return m.props.correlation_id;
    if (p == "type") return m.props.message_type;
    if (p == "content_type") return m.props.content_type;
    if (p == "app_id") return m.props.app_id;
    if (p == "user_id") return m.props.user_id;
    if (p == "reply_to") return m.props.reply_to;
    return {};
  }
  if (spec.rfind("json:", 0) == 0) {
    rapidjson::Document doc;
    doc.Parse(m.payload.data(), m.payload.size());
    if (doc.HasParseError()) return {};
    const rapidjson::Value* v = rapidjson::Pointer(spec.c_str() + 5).Get(doc);
    if (v == nullptr) return {};
    if (v->IsString()) return std::string(v->GetString(), v->GetStringLength());
    rapidjson::StringBuffer sb;
    rapidjson::Writer<rapidjson::StringBuffer> w(sb);
    v->Accept(w);
    return std::string(sb.GetString(), sb.GetSize());
  }
  return {};
}

Dedup::Dedup(std::string queue, DedupConfig config, std::unique_ptr<DedupStore> store,
             std::function<int64_t()> wall_ms)
    : queue_(std::move(queue)),
      config_(std::move(config)),
      store_(std::move(store)),
      wall_ms_(std::move(wall_ms)) {}

std::optional<Outcome> Dedup::Before(const Delivery& d) {
  std::string key = DedupKeyOf(config_.key, d.msg);
  if (key.empty() || !store_->Seen(key, wall_ms_())) return std::nullopt;
  skipped_.fetch_add(1, std::memory_order_relaxed);
  VLOG(1) << "queue " << queue_ << ": message " << d.msg.id << " skipped: key \"" << key
          << "\" was processed within " << config_.ttl.count() << "ms";
  return Outcome::Ack();
}

void Dedup::After(const Delivery& d, const Outcome& outcome, const CallInfo& call) {
  if (!call.handler_ran || outcome.kind != Outcome::Kind::kAck) return;
  std::string key = DedupKeyOf(config_.key, d.msg);
  if (!key.empty()) store_->Record(key, wall_ms_() + config_.ttl.count());
}

}  // namespace foxworker
