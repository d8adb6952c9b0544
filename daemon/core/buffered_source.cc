#include "daemon/core/buffered_source.h"

#include <utility>

namespace foxworker {

std::function<void()> BufferedSourceState::RefilledLocked() {
  buffered.store(buffer.size(), std::memory_order_relaxed);
  switch (wake_on) {
    case WakeOn::kRefill:
      if (!buffer.empty()) return wake;
      break;
    case WakeOn::kStarved:
      if (starved) {
        starved = false;
        return wake;
      }
      break;
  }
  return nullptr;
}

bool BufferedSourceState::TakeUnstarted(Buffer* out, bool stop) {
  std::lock_guard<std::mutex> l(mu);
  if (stopped) return false;
  if (stop) stopped = true;
  out->swap(buffer);
  buffered.store(0, std::memory_order_relaxed);
  return true;
}

BufferedSource::BufferedSource(std::string name, std::shared_ptr<BufferedSourceState> state)
    : name_(std::move(name)), state_(std::move(state)) {}

BufferedSource::~BufferedSource() {
  std::lock_guard<std::mutex> l(state_->mu);
  state_->wake = nullptr;
}

Status BufferedSource::Start(std::function<void()> wake) {
  std::function<void()> wake_now;
  {
    std::lock_guard<std::mutex> l(state_->mu);
    if (state_->started) return Status::InvalidArgument(name_ + ": already started");
    state_->wake = std::move(wake);
    state_->started = true;
    if (!state_->buffer.empty()) wake_now = state_->wake;
  }
  if (wake_now) wake_now();
  OnStarted();
  return Status::Ok();
}

size_t BufferedSource::Fetch(size_t max, std::vector<std::unique_ptr<Delivery>>& out) {
  std::lock_guard<std::mutex> l(state_->mu);
  // The RabbitMQ backend marks its sources stopped when it stops, and leaves
  // their buffers to the broker's redelivery.
  if (state_->stopped) return 0;
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

void BufferedSource::StopFetching() {
  BufferedSourceState::Buffer unstarted;
  if (!state_->TakeUnstarted(&unstarted, /*stop=*/true)) return;
  OnStopFetching(std::move(unstarted));
}

bool BufferedSource::MaybeReady() const {
  return state_->buffered.load(std::memory_order_relaxed) > 0;
}

}  // namespace foxworker
