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

std::vector<LocalBackend::SettleOp> LocalBackend::TakeUnstarted(
    const std::shared_ptr<SourceState>& source, bool stop) {
  std::deque<std::unique_ptr<Delivery>> unstarted;
  {
    std::lock_guard<std::mutex> l(source->mu);
    if (stop) source->stopped = true;
    unstarted.swap(source->buffer);
    source->buffered.store(0, std::memory_order_relaxed);
  }
  std::vector<SettleOp> ops;
  ops.reserve(unstarted.size());
  for (const auto& d : unstarted) ops.push_back(ReleaseOp(source, *d));
  return ops;
}

LocalBackend::LocalSource::~LocalSource() {
  StopFetching();
  state_->closed.store(true);
  backend_->Kick();
}

Status LocalBackend::LocalSource::Start(std::function<void()> wake) {
  {
    std::lock_guard<std::mutex> l(state_->mu);
    if (state_->started) {
      return Status::InvalidArgument("local source " + state_->options.source +
                                     ": already started");
    }
    state_->wake = std::move(wake);
    state_->started = true;
  }
  backend_->Kick();
  return Status::Ok();
}

size_t LocalBackend::LocalSource::Fetch(size_t max, std::vector<std::unique_ptr<Delivery>>& out) {
  std::lock_guard<std::mutex> l(state_->mu);
  size_t n = 0;
  while (n < max && !state_->buffer.empty()) {
    out.push_back(std::move(state_->buffer.front()));
    state_->buffer.pop_front();
    ++n;
  }
  if (n < max) state_->starved = true;
  state_->buffered.store(state_->buffer.size(), std::memory_order_relaxed);
  return n;
}

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

void LocalBackend::LocalSource::StopFetching() {
  backend_->SubmitSettlements(TakeUnstarted(state_, /*stop=*/true));
}

bool LocalBackend::LocalSource::MaybeReady() const {
  return state_->buffered.load(std::memory_order_relaxed) > 0;
}

}  // namespace foxworker
