// The parts of LocalBackend that its sources and its SQLite thread share.
// Internal to daemon/backends/local/: include only from its .cc files.
#ifndef FOXWORKER_BACKENDS_LOCAL_LOCAL_SOURCE_H_
#define FOXWORKER_BACKENDS_LOCAL_LOCAL_SOURCE_H_

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "daemon/backends/local/local_backend.h"

namespace foxworker {

// What a LocalSource and the backend's thread share.
struct LocalBackend::SourceState {
  explicit SourceState(SourceOptions o) : options(std::move(o)) {}

  const SourceOptions options;

  std::mutex mu;
  std::deque<std::unique_ptr<Delivery>> buffer;  // GUARDED_BY(mu): claimed, not handed out
  std::function<void()> wake;                    // GUARDED_BY(mu)
  bool started = false;                          // GUARDED_BY(mu)
  bool stopped = false;                          // GUARDED_BY(mu): StopFetching was called
  bool starved = true;              // GUARDED_BY(mu): a Fetch came up short (or none yet)
  std::atomic<size_t> buffered{0};  // buffer.size(), for MaybeReady
  std::atomic<bool> closed{false};  // the LocalSource is gone

  // Owned by the backend's thread.
  int64_t held = 0;   // claimed and not yet settled: buffered + handed out
  bool idle = false;  // the last claim found fewer due jobs than it asked for
};

struct LocalBackend::SettleOp {
  std::shared_ptr<SourceState> source;
  int64_t id = 0;
  uint64_t token = 0;
  Outcome::Kind kind = Outcome::Kind::kAck;
  Duration delay{0};
  std::string reason;
};

struct LocalBackend::EnqueueOp {
  std::vector<NewJob> jobs;
  std::vector<EnqueueResult> results;
  Status status;
  bool done = false;  // GUARDED_BY(LocalBackend::mu_)
};

struct LocalBackend::ClaimPlan {
  std::shared_ptr<SourceState> source;
  int want = 0;
};

// A queue of the file as the dispatch core sees it. Fetch and Settle only
// touch memory; the backend's thread does the SQLite work.
class LocalBackend::LocalSource final : public Source {
 public:
  LocalSource(LocalBackend* backend, std::shared_ptr<SourceState> state)
      : backend_(backend), state_(std::move(state)) {}
  // Releases what is still buffered.
  ~LocalSource() override;

  Status Start(std::function<void()> wake) override;
  size_t Fetch(size_t max, std::vector<std::unique_ptr<Delivery>>& out) override;
  void Settle(std::vector<Settlement>& batch) override;
  void StopFetching() override;
  bool MaybeReady() const override;

 private:
  LocalBackend* const backend_;
  const std::shared_ptr<SourceState> state_;
};

}  // namespace foxworker

#endif  // FOXWORKER_BACKENDS_LOCAL_LOCAL_SOURCE_H_
