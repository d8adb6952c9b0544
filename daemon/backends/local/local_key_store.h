// LocalKeyStore: the local backend's durable KeyStore (Backend::
// OpenDurableKeyStore), keys in its SQLite file: they survive restarts and
// are shared by every daemon on that file. Dedup keeps message keys here.
#ifndef FOXWORKER_BACKENDS_LOCAL_LOCAL_KEY_STORE_H_
#define FOXWORKER_BACKENDS_LOCAL_LOCAL_KEY_STORE_H_

#include <cstdint>
#include <mutex>
#include <string>
#include <utility>

#include "daemon/core/backend.h"

struct sqlite3;

namespace foxworker {

// Safe for concurrent use (one connection behind a mutex). Table
// `dedup_keys(queue, key, expires_ms)` in the local backend's file, opened
// on first use: by then the backend has created or checked the file.
// When the file cannot be opened, every key reads as unseen (messages run:
// at-least-once still holds) and the error is logged once.
class LocalKeyStore : public KeyStore {
 public:
  LocalKeyStore(std::string path, std::string queue)
      : path_(std::move(path)), queue_(std::move(queue)) {}
  ~LocalKeyStore() override;
  bool Seen(const std::string& key, int64_t now_ms) override;
  void Record(const std::string& key, int64_t expires_ms) override;

 private:
  bool EnsureOpenLocked();
  const std::string path_;
  const std::string queue_;
  std::mutex mu_;
  sqlite3* db_ = nullptr;  // GUARDED_BY(mu_)
  bool failed_ = false;    // GUARDED_BY(mu_)
  uint64_t records_ = 0;   // GUARDED_BY(mu_): purge expired keys now and then
};

}  // namespace foxworker

#endif  // FOXWORKER_BACKENDS_LOCAL_LOCAL_KEY_STORE_H_
