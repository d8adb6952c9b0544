#include "daemon/app/depth_poller.h"

#include <glog/logging.h>
#include <pthread.h>

#include <algorithm>
#include <set>
#include <utility>
#include <vector>

#include "daemon/app/supervisor.h"
#include "daemon/base/clock.h"
#include "daemon/config/config.h"

namespace foxworker {

SourceOptions QueueSourceOptions(const Config& config, const QueueConfig& queue) {
  SourceOptions so;
  so.queue = queue.name;
  so.source = queue.source;
  so.prefetch = queue.prefetch;
  if (const RetryPolicyConfig* policy = config.FindRetryPolicy(queue.retry_policy)) {
    so.max_attempts = policy->max_attempts;
    so.retry_policy = *policy;
  }
  so.queue_options = queue.backend_block.options.shared();
  return so;
}

DepthPoller::DepthPoller(std::function<std::shared_ptr<const RuntimeSnapshot>()> snapshot,
                         Duration interval)
    : snapshot_(std::move(snapshot)), interval_(interval) {}

DepthPoller::~DepthPoller() { Stop(); }

void DepthPoller::Start() {
  std::lock_guard<std::mutex> l(mu_);
  if (thread_.joinable() || stop_) return;
  thread_ = std::thread([this] { Run(); });
}

void DepthPoller::Stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  inspectors_.clear();
}

std::map<std::string, DepthReading> DepthPoller::Snapshot() const {
  std::lock_guard<std::mutex> l(mu_);
  return readings_;
}

DepthReading DepthPoller::Reading(const std::string& queue) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = readings_.find(queue);
  return it == readings_.end() ? DepthReading{} : it->second;
}

uint64_t DepthPoller::rounds() const {
  std::lock_guard<std::mutex> l(mu_);
  return rounds_;
}

void DepthPoller::Run() {
  pthread_setname_np(pthread_self(), "fw-depth");
  std::unique_lock<std::mutex> l(mu_);
  while (!stop_) {
    l.unlock();
    Round();
    l.lock();
    ++rounds_;
    cv_.wait_for(l, interval_, [this] { return stop_; });
  }
}

void DepthPoller::Round() {
  std::shared_ptr<const RuntimeSnapshot> snap = snapshot_();
  if (snap == nullptr || snap->config == nullptr) return;
  const Config& config = *snap->config;
  // The poller's own calls are bounded so that Stop never waits long.
  InspectorOptions io;
  io.timeout = std::clamp<Duration>(interval_, Duration(1000), Duration(5000));

  // Inspectors of backends that went away or were replaced are closed.
  for (auto it = inspectors_.begin(); it != inspectors_.end();) {
    auto b = snap->backends.find(it->first);
    if (b == snap->backends.end() || b->second != it->second.backend.lock()) {
      it = inspectors_.erase(it);
    } else {
      ++it;
    }
  }

  std::set<std::string> queues;
  for (const QueueConfig& q : config.queues) {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (stop_) return;
    }
    queues.insert(q.name);
    auto b = snap->backends.find(q.backend);
    if (b == snap->backends.end()) continue;
    BackendInspector& bi = inspectors_[q.backend];
    if (bi.inspector == nullptr) {
      bi.backend = b->second;
      auto opened = b->second->OpenInspector(io);
      if (opened.ok()) {
        bi.inspector = std::move(opened).value();
        bi.error.clear();
      } else {
        bi.error = opened.status().message();
      }
    }
    Result<QueueDepth> depth = bi.inspector != nullptr
                                   ? bi.inspector->Depth(QueueSourceOptions(config, q))
                                   : Result<QueueDepth>(Status::Unavailable(bi.error));
    std::lock_guard<std::mutex> l(mu_);
    DepthReading& r = readings_[q.name];
    if (depth.ok()) {
      r.depth = *depth;
      r.ok = true;
      r.error.clear();
      r.read_at_ms = WallMs();
    } else {
      r.ok = false;
      r.error = depth.status().message();
    }
  }
  std::lock_guard<std::mutex> l(mu_);
  for (auto it = readings_.begin(); it != readings_.end();) {
    it = queues.count(it->first) != 0 ? std::next(it) : readings_.erase(it);
  }
}

}  // namespace foxworker
