#include "daemon/backends/local/local_source.h"

#include <utility>

namespace foxworker {

LocalBackend::SettleOp LocalBackend::ReleaseOp(const std::shared_ptr<SourceState>& source,
                                               const Delivery& d) {
  SettleOp op;
  op.source = source;
  op.id = static_cast<int64_t>(d.tag);
  op.token = d.generation;
  op.kind = Outcome::Kind::kRelease;
  return op;
}

std::vector<LocalBackend::SettleOp> LocalBackend::ReleaseOps(
    const std::shared_ptr<SourceState>& source, const BufferedSourceState::Buffer& unstarted) {
  std::vector<SettleOp> ops;
  ops.reserve(unstarted.size());
  for (const auto& d : unstarted) ops.push_back(ReleaseOp(source, *d));
  return ops;
}

std::vector<LocalBackend::SettleOp> LocalBackend::TakeUnstarted(
    const std::shared_ptr<SourceState>& source, bool stop) {
  BufferedSourceState::Buffer unstarted;
  source->TakeUnstarted(&unstarted, stop);
  return ReleaseOps(source, unstarted);
}

LocalBackend::LocalSource::~LocalSource() {
  StopFetching();
  state_->closed.store(true);
  backend_->Kick();
}

void LocalBackend::LocalSource::OnStarted() { backend_->Kick(); }

void LocalBackend::LocalSource::Settle(std::vector<Settlement>& batch) {
  std::vector<SettleOp> ops;
  ops.reserve(batch.size());
  for (Settlement& s : batch) {
    SettleOp op;
    op.source = state_;
    op.id = static_cast<int64_t>(s.delivery->tag);
    op.token = s.delivery->generation;
    op.kind = s.outcome.kind;
    op.delay = s.outcome.delay;
    op.reason = std::move(s.outcome.reason);
    ops.push_back(std::move(op));
  }
  batch.clear();
  backend_->SubmitSettlements(std::move(ops));
}

void LocalBackend::LocalSource::OnStopFetching(BufferedSourceState::Buffer unstarted) {
  backend_->SubmitSettlements(ReleaseOps(state_, unstarted));
}

}  // namespace foxworker
