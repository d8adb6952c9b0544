// hello_cpp: a foxworker plugin written against the C++ wrapper.
//
// Handler "greet": logs "<greeting>, <name>!" and acks; an empty name is
// rejected. Handler "greet.later": defers the message and greets from a
// worker thread after `delay`, showing asynchronous completion.
//
// Build: foxworker_add_plugin(hello_cpp SOURCES hello.cpp)
#include <rapidjson/document.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <foxworker/plugin.hpp>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>

namespace {

using foxworker::Completion;
using foxworker::Message;
using foxworker::PluginContext;
using foxworker::Verdict;

class Greeter {
 public:
  static constexpr const char* kDescription = "Greets people (C++ example)";
  // Checked by `foxworkerd --check-config` before init runs; create()
  // then receives the config with defaults filled in and durations
  // in milliseconds.
  static constexpr foxw_config_key kConfigSchema[] = {
      foxworker::ConfigKey("greeting", FOXW_CONFIG_STRING, false, "hello", "Word to greet with"),
      foxworker::ConfigKey("delay", FOXW_CONFIG_DURATION, false, "100ms",
                           "How long greet.later waits before it greets"),
  };

  // Throwing refuses the instance; the message is what the daemon logs.
  Greeter(PluginContext& ctx, std::string_view config_json)
      : ctx_(ctx),
        greetings_(ctx.counter("greetings_total", "People greeted")),
        latency_(ctx.histogram("greet_later_seconds", "Time from defer to greeting")) {
    rapidjson::Document config;
    config.Parse(config_json.data(), config_json.size());
    if (config.HasParseError() || !config.IsObject()) {
      throw std::invalid_argument("config must be a JSON object");
    }
    if (auto it = config.FindMember("greeting"); it != config.MemberEnd()) {
      if (!it->value.IsString()) throw std::invalid_argument("greeting: must be a string");
      greeting_ = it->value.GetString();
    }
    if (auto it = config.FindMember("delay"); it != config.MemberEnd()) {
      if (!it->value.IsInt64() || it->value.GetInt64() < 0) {
        throw std::invalid_argument("delay: must be a duration such as 250ms");
      }
      delay_ = std::chrono::milliseconds(it->value.GetInt64());
    }
    worker_ = std::thread([this] { GreetLaterLoop(); });
  }

  // The host destroys an instance only when none of its handlers runs.
  ~Greeter() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    wake_.notify_one();
    worker_.join();
  }

  // SHARED instance model: handlers run on several threads at once, so the
  // members they use are immutable or guarded by mu_.
  Verdict Greet(const Message& msg) {
    if (msg.payload().empty()) return Verdict::Reject("empty payload: expected a name");
    ctx_.log(FOXW_LOG_INFO, greeting_, ", ", msg.payload(), "! (attempt ", msg.attempt(), ")");
    greetings_.Increment();
    return Verdict::Ack();
  }

  Verdict GreetLater(const Message& msg) {
    if (msg.payload().empty()) return Verdict::Reject("empty payload: expected a name");
    auto now = std::chrono::steady_clock::now();
    Job job{msg.Defer(), now, now + delay_};
    {
      std::lock_guard<std::mutex> lock(mu_);
      jobs_.push_back(std::move(job));
    }
    wake_.notify_one();
    return Verdict::Pending();  // the worker thread completes it
  }

 private:
  struct Job {
    Completion done;  // completes the message exactly once, from any thread
    std::chrono::steady_clock::time_point deferred_at;
    std::chrono::steady_clock::time_point due;
  };

  void GreetLaterLoop() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      if (jobs_.empty()) {
        if (stopping_) return;
        wake_.wait(lock);
        continue;
      }
      Job& next = jobs_.front();
      if (!stopping_ && std::chrono::steady_clock::now() < next.due &&
          !next.done.message().cancelled()) {
        wake_.wait_until(lock, next.due);
        continue;
      }
      Job job = std::move(next);
      jobs_.pop_front();
      bool stopping = stopping_;
      lock.unlock();
      Finish(job, stopping);
      lock.lock();
    }
  }

  void Finish(Job& job, bool stopping) {
    Message msg = job.done.message();  // valid until Complete() returns
    if (stopping) {
      job.done.Complete(Verdict::Retry("hello_cpp is shutting down"));
    } else if (msg.cancelled()) {
      job.done.Complete(Verdict::Retry("deadline passed before the greeting"));
    } else {
      ctx_.log(FOXW_LOG_INFO, greeting_, ", ", msg.payload(), "! (deferred)");
      greetings_.Increment();
      latency_.Observe(std::chrono::steady_clock::now() - job.deferred_at);
      job.done.Complete(Verdict::Ack());
    }
  }

  PluginContext& ctx_;
  std::string greeting_ = "hello";
  std::chrono::milliseconds delay_{100};
  foxworker::Counter greetings_;
  foxworker::Histogram latency_;

  std::mutex mu_;
  std::condition_variable wake_;
  std::deque<Job> jobs_;   // GUARDED_BY(mu_)
  bool stopping_ = false;  // GUARDED_BY(mu_)
  std::thread worker_;
};

}  // namespace

FOXWORKER_PLUGIN(Greeter, "hello_cpp", "1.0.0", FOXW_INSTANCE_SHARED,
                 FOXWORKER_HANDLER(Greeter, Greet, "greet"),
                 FOXWORKER_HANDLER(Greeter, GreetLater, "greet.later"));
