#include "daemon/middleware/dedup/dedup.h"

#include <glog/logging.h>
#include <rapidjson/document.h>
#include <rapidjson/pointer.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

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

Dedup::Dedup(std::string queue, DedupConfig config, std::unique_ptr<KeyStore> store,
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
