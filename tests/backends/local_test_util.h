// Helpers shared by the local backend's tests: a temporary directory that is
// removed afterwards, and a fake clock for LocalStore.
#ifndef FOXWORKER_TESTS_BACKENDS_LOCAL_TEST_UTIL_H_
#define FOXWORKER_TESTS_BACKENDS_LOCAL_TEST_UTIL_H_

#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "daemon/backends/local/local_store.h"

namespace foxworker {

// A fresh directory under $TMPDIR (or /tmp), deleted with its files.
class TempDir {
 public:
  TempDir() {
    const char* base = getenv("TMPDIR");
    std::string tmpl =
        std::string(base != nullptr && *base ? base : "/tmp") + "/foxworker-local-test-XXXXXX";
    char* made = mkdtemp(tmpl.data());
    EXPECT_NE(made, nullptr) << "mkdtemp " << tmpl;
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Unix ms that only moves when told to.
class FakeClock {
 public:
  int64_t Now() const { return now_.load(); }
  void Advance(int64_t ms) { now_.fetch_add(ms); }
  std::function<int64_t()> AsFunction() {
    return [this] { return now_.load(); };
  }

 private:
  std::atomic<int64_t> now_{1'700'000'000'000};
};

inline std::unique_ptr<LocalStore> OpenStore(const std::string& path,
                                             std::function<int64_t()> clock = nullptr,
                                             Durability durability = Durability::kNormal) {
  LocalStoreOptions options;
  options.path = path;
  options.durability = durability;
  options.clock = std::move(clock);
  auto store = LocalStore::Open(std::move(options));
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  return store.ok() ? std::move(store).value() : nullptr;
}

inline NewJob Job(const std::string& queue, const std::string& payload, int64_t priority = 0) {
  NewJob job;
  job.queue = queue;
  job.payload = payload;
  job.priority = priority;
  return job;
}

}  // namespace foxworker

#endif  // FOXWORKER_TESTS_BACKENDS_LOCAL_TEST_UTIL_H_
