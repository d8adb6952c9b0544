// A Source over a buffer of deliveries that a backend's own thread(s) fill:
// the part of the local, Redis and RabbitMQ sources that is the same.
//
// The backend's state for one queue derives from BufferedSourceState, so its
// own fields can share the one mutex (the Redis backend keeps its held
// entries under it, for example): filling the buffer takes that mutex once
// per batch, as Fetch does.
//
// A backend fills the buffer like this:
//
//   std::function<void()> wake;
//   {
//     std::lock_guard<std::mutex> l(state.mu);
//     if (state.stopped) { ...hand them back... }
//     else { for (...) state.buffer.push_back(std::move(d)); wake = state.RefilledLocked(); }
//   }
//   if (wake) wake();
#ifndef FOXWORKER_CORE_BUFFERED_SOURCE_H_
#define FOXWORKER_CORE_BUFFERED_SOURCE_H_

#include <atomic>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "daemon/base/status.h"
#include "daemon/core/backend.h"
#include "daemon/core/message.h"

namespace foxworker {

struct BufferedSourceState {
  using Buffer = std::deque<std::unique_ptr<Delivery>>;

  // When a refill wakes the consumer.
  enum class WakeOn {
    // Whenever the buffer holds something after it.
    kRefill,
    // Only when a Fetch came up short since the last wake-up (or none ran
    // yet): a consumer that took a full batch fetches again by itself.
    kStarved,
  };

  explicit BufferedSourceState(WakeOn wake_on) : wake_on(wake_on) {}
  BufferedSourceState(const BufferedSourceState&) = delete;
  BufferedSourceState& operator=(const BufferedSourceState&) = delete;

  const WakeOn wake_on;

  std::mutex mu;
  Buffer buffer;               // GUARDED_BY(mu): filled by the backend, not handed out
  std::function<void()> wake;  // GUARDED_BY(mu): the consumer's, from Start
  bool started = false;        // GUARDED_BY(mu)
  // GUARDED_BY(mu): takes no more deliveries (StopFetching, or the backend
  // stopping). A backend hands back what arrives for a stopped source.
  bool stopped = false;
  bool starved = true;              // GUARDED_BY(mu): a Fetch came up short (or none yet)
  std::atomic<size_t> buffered{0};  // buffer.size(), for MaybeReady

  // Call after pushing deliveries into `buffer`: updates the MaybeReady hint
  // and returns the wake-up to call once `mu` is released (empty when none is
  // due, see WakeOn). REQUIRES: mu held.
  std::function<void()> RefilledLocked();

  // Takes the buffered deliveries (never handed out) into `*out`, which must
  // be empty, and with `stop` marks the source stopped. A stopped source
  // gives nothing: returns false, leaving the buffer alone, when it was
  // stopped already. Locks mu.
  bool TakeUnstarted(Buffer* out, bool stop);
};

// Start, Fetch, StopFetching and MaybeReady over a BufferedSourceState. The
// backend implements Settle and the hooks. Safe for concurrent use, as Source.
class BufferedSource : public Source {
 public:
  // `name` ("redis source jobs") is for errors.
  BufferedSource(std::string name, std::shared_ptr<BufferedSourceState> state);
  // Clears the wake-up. A derived class's destructor calls StopFetching: the
  // hook cannot run from here.
  ~BufferedSource() override;

  // Fails if started before. Wakes the consumer at once when the backend
  // buffered deliveries already, then calls OnStarted.
  Status Start(std::function<void()> wake) final;
  // Takes up to `max` from the front of the buffer; none once stopped.
  size_t Fetch(size_t max, std::vector<std::unique_ptr<Delivery>>& out) final;
  // The first call marks the source stopped and gives the buffered
  // deliveries to OnStopFetching; later calls do nothing.
  void StopFetching() final;
  bool MaybeReady() const final;

 protected:
  // After Start: let the backend's thread(s) know the source wants deliveries.
  virtual void OnStarted() = 0;
  // Once, on the first StopFetching, with the deliveries buffered and never
  // handed out (maybe none): the backend releases them to the broker and
  // stops taking new ones.
  virtual void OnStopFetching(BufferedSourceState::Buffer unstarted) = 0;

 private:
  const std::string name_;
  const std::shared_ptr<BufferedSourceState> state_;
};

}  // namespace foxworker

#endif  // FOXWORKER_CORE_BUFFERED_SOURCE_H_
