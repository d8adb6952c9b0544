// The parts of LocalBackend that its sources and its SQLite thread share.
// Internal to daemon/backends/local/: include only from its .cc files.
#ifndef FOXWORKER_BACKENDS_LOCAL_LOCAL_SOURCE_H_
#define FOXWORKER_BACKENDS_LOCAL_LOCAL_SOURCE_H_

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "daemon/backends/local/local_backend.h"
#include "daemon/core/buffered_source.h"

namespace foxworker {

// What a LocalSource and the backend's thread share. The buffer holds jobs
// claimed and not handed out; a claim wakes the consumer only when a Fetch
// came up short since the last claim (the consumer fetches again by itself
// after a full batch).
struct LocalBackend::SourceState : BufferedSourceState {
  explicit SourceState(SourceOptions o)
      : BufferedSourceState(WakeOn::kStarved), options(std::move(o)) {}

  const SourceOptions options;

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
class LocalBackend::LocalSource final : public BufferedSource {
 public:
  LocalSource(LocalBackend* backend, std::shared_ptr<SourceState> state)
      : BufferedSource("local source " + state->options.source, state),
        backend_(backend),
        state_(std::move(state)) {}
  // Releases what is still buffered.
  ~LocalSource() override;

  void Settle(std::vector<Settlement>& batch) override;

 private:
  void OnStarted() override;
  void OnStopFetching(BufferedSourceState::Buffer unstarted) override;

  LocalBackend* const backend_;
  const std::shared_ptr<SourceState> state_;
};

}  // namespace foxworker

#endif  // FOXWORKER_BACKENDS_LOCAL_LOCAL_SOURCE_H_
