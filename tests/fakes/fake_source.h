// Test doubles for core's own interfaces: a Source fed by the test, and a
// HandlerSet whose handlers are lambdas. Never a double of a real broker.
#ifndef FOXWORKER_TESTS_FAKES_FAKE_SOURCE_H_
#define FOXWORKER_TESTS_FAKES_FAKE_SOURCE_H_

#include <algorithm>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "daemon/core/backend.h"
#include "daemon/core/handler.h"

namespace foxworker {

// A Source whose deliveries the test pushes and whose settlements it reads.
// Safe for concurrent use.
class FakeSource : public Source {
 public:
  Status Start(std::function<void()> wake) override {
    std::lock_guard<std::mutex> lock(mu_);
    wake_ = std::move(wake);
    return Status::Ok();
  }
  size_t Fetch(size_t max, std::vector<std::unique_ptr<Delivery>>& out) override {
    std::lock_guard<std::mutex> lock(mu_);
    size_t n = 0;
    while (n < max && !ready_.empty() && !stopped_) {
      out.push_back(std::move(ready_.front()));
      ready_.pop_front();
      ++n;
    }
    fetched_ += n;
    return n;
  }
  void Settle(std::vector<Settlement>& batch) override {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& s : batch) settled_.push_back(std::move(s));
    batch.clear();
  }
  void StopFetching() override {
    std::lock_guard<std::mutex> lock(mu_);
    stopped_ = true;
  }
  bool MaybeReady() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return !ready_.empty() && !stopped_;
  }

  // Makes a message available and wakes the consumer.
  void Push(std::string id, std::string payload, std::string type = {}, uint32_t attempt = 1,
            std::string content_type = {}) {
    auto d = std::make_unique<Delivery>();
    d->msg.props.content_type = std::move(content_type);
    d->msg.id = std::move(id);
    d->msg.payload = std::move(payload);
    d->msg.props.message_type = std::move(type);
    d->msg.attempt = attempt;
    std::function<void()> wake;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ready_.push_back(std::move(d));
      wake = wake_;
    }
    if (wake) wake();
  }
  // Settlements so far: (message id, outcome).
  std::vector<std::pair<std::string, Outcome>> Settled() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::pair<std::string, Outcome>> out;
    for (const auto& s : settled_) out.emplace_back(s.delivery->msg.id, s.outcome);
    return out;
  }
  size_t fetched() const {
    std::lock_guard<std::mutex> lock(mu_);
    return fetched_;
  }

 private:
  mutable std::mutex mu_;
  std::function<void()> wake_;
  std::deque<std::unique_ptr<Delivery>> ready_;
  std::vector<Settlement> settled_;
  size_t fetched_ = 0;
  bool stopped_ = false;
};

// A handler that runs a function of the delivery.
class FakeHandler : public Handler {
 public:
  using Fn = std::function<HandlerReply(Delivery&)>;
  FakeHandler(std::string name, Fn fn) : name_(std::move(name)), fn_(std::move(fn)) {}
  const std::string& name() const override { return name_; }
  bool batched() const override { return false; }
  HandlerReply Handle(HandlerInstance, Delivery& d, char* reason_buf,
                      size_t reason_cap) const override {
    HandlerReply r = fn_(d);
    // Copy the reason into the caller's buffer, as a plugin would.
    size_t n = std::min(r.reason.size(), reason_cap - 1);
    if (n > 0) std::memcpy(reason_buf, r.reason.data(), n);
    reason_buf[n] = '\0';
    r.reason = std::string_view(reason_buf, n);
    return r;
  }
  void HandleBatch(HandlerInstance instance, Delivery* const* batch, size_t n,
                   HandlerReply* replies, char* reason_bufs, size_t reason_cap) const override {
    for (size_t i = 0; i < n; ++i)
      replies[i] = Handle(instance, *batch[i], reason_bufs + i * reason_cap, reason_cap);
  }

 private:
  const std::string name_;
  const Fn fn_;
};

// Handlers by name ("*" matches any type); one shared instance.
class FakeHandlerSet : public HandlerSet {
 public:
  explicit FakeHandlerSet(std::vector<std::unique_ptr<FakeHandler>> handlers)
      : handlers_(std::move(handlers)) {
    for (const auto& h : handlers_) views_.push_back(h.get());
  }
  const std::string& provider() const override { return provider_; }
  const std::vector<const Handler*>& handlers() const override { return views_; }
  const Handler* Find(std::string_view type) const override {
    for (const Handler* h : views_)
      if (h->name() == type) return h;
    for (const Handler* h : views_)
      if (h->name() == "*") return h;
    return nullptr;
  }
  std::string HandlerNames() const override {
    std::string out;
    for (const Handler* h : views_) out += (out.empty() ? "" : ", ") + h->name();
    return out;
  }
  HandlerInstance Acquire() override { return this; }
  void Release(HandlerInstance) override {}
  Result<std::unique_ptr<Growth>> PrepareResize(int) override {
    return std::make_unique<Growth>();
  }
  void Resize(std::unique_ptr<Growth>) override {}
  void Trim(int) override {}

 private:
  const std::string provider_ = "fake handlers";
  std::vector<std::unique_ptr<FakeHandler>> handlers_;
  std::vector<const Handler*> views_;
};

}  // namespace foxworker

#endif  // FOXWORKER_TESTS_FAKES_FAKE_SOURCE_H_
