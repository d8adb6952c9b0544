// Dedup: skips (acks without running the handler) a message whose key was
// processed successfully within `ttl`. Keys are scoped by queue. They live in
// the queue's backend when it keeps keys durably (Backend::
// OpenDurableKeyStore: the local backend's SQLite file, where they survive
// restarts and are shared by daemons on that file), else in a bounded
// in-memory LRU table that a restart forgets.
#ifndef FOXWORKER_MIDDLEWARE_DEDUP_DEDUP_H_
#define FOXWORKER_MIDDLEWARE_DEDUP_DEDUP_H_

#include <atomic>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "daemon/core/backend.h"
#include "daemon/base/status.h"
#include "daemon/middleware/dedup/dedup_config.h"
#include "daemon/core/middleware.h"

namespace foxworker {

// Safe for concurrent use. Evicts the least recently recorded key beyond
// `max_keys`.
class MemoryDedupStore : public KeyStore {
 public:
  explicit MemoryDedupStore(size_t max_keys) : max_keys_(max_keys) {}
  bool Seen(const std::string& key, int64_t now_ms) override;
  void Record(const std::string& key, int64_t expires_ms) override;
  size_t size();

 private:
  const size_t max_keys_;
  std::mutex mu_;
  std::list<std::string> order_;  // GUARDED_BY(mu_): most recent at the back
  std::unordered_map<std::string, std::pair<int64_t, std::list<std::string>::iterator>> keys_;
};

// Extracts a message's dedup key per DedupConfig::key; empty when absent.
std::string DedupKeyOf(const std::string& spec, const Message& m);

class Dedup : public Middleware {
 public:
  Dedup(std::string queue, DedupConfig config, std::unique_ptr<KeyStore> store,
        std::function<int64_t()> wall_ms);
  std::string_view name() const override { return "dedup"; }
  std::optional<Outcome> Before(const Delivery& d) override;
  void After(const Delivery& d, const Outcome& outcome, const CallInfo& call) override;
  uint64_t skipped() const { return skipped_.load(); }

 private:
  const std::string queue_;
  const DedupConfig config_;
  std::unique_ptr<KeyStore> store_;
  std::function<int64_t()> wall_ms_;
  std::atomic<uint64_t> skipped_{0};
};

}  // namespace foxworker

#endif  // FOXWORKER_MIDDLEWARE_DEDUP_DEDUP_H_
