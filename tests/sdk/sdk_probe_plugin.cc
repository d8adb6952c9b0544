// A plugin that exercises every corner of plugin.hpp, one handler per case,
// for tests/sdk/plugin_hpp_test.cc.
#include <foxworker/plugin.hpp>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using foxworker::Batch;
using foxworker::Completion;
using foxworker::Message;
using foxworker::PluginContext;
using foxworker::Verdict;

class Probe {
 public:
  static constexpr const char* kDescription = "SDK probe";
  static constexpr foxw_config_key kConfigSchema[] = {
      foxworker::ConfigKey("refuse", FOXW_CONFIG_STRING, false, nullptr, "Refuse with this"),
      foxworker::ConfigKey("bad_metric", FOXW_CONFIG_BOOL, false, "false", "Define a bad metric"),
  };

  Probe(PluginContext& ctx, std::string_view config) : ctx_(ctx) {
    // Test configs are tiny and flat: {"refuse": "why"} or {"bad_metric": true}.
    if (size_t at = config.find("\"refuse\": \""); at != std::string_view::npos) {
      std::string_view rest = config.substr(at + 11);
      throw std::runtime_error(std::string(rest.substr(0, rest.find('"'))));
    }
    if (config.find("\"bad_metric\": true") != std::string_view::npos) {
      ctx.counter("not a metric name", "help");
    }
    if (config.find("\"throw_int\"") != std::string_view::npos) throw 7;
    handled_ = ctx.counter("handled_total", "Messages handled");
  }

  ~Probe() {
    for (auto& t : threads_) t.join();
  }

  Verdict Ack(const Message&) {
    handled_.Increment();
    return Verdict::Ack();
  }
  Verdict Retry(const Message&) const {
    return Verdict::Retry("later", std::chrono::milliseconds(1500));
  }
  Verdict Reject(const Message&) { return Verdict::Reject("bad input"); }
  Verdict Throw(const Message&) { throw std::runtime_error("boom"); }
  Verdict ThrowInt(const Message&) { throw 42; }
  Verdict PendingWithoutDefer(const Message&) { return Verdict::Pending(); }

  // Completes from another thread, as a real asynchronous handler would.
  Verdict Defer(const Message& msg) {
    Completion done = msg.Defer();
    std::lock_guard<std::mutex> lock(mu_);
    threads_.emplace_back([done = std::move(done)]() mutable {
      std::string reason = "async " + std::string(done.message().payload());
      done.Complete(Verdict::Retry(reason, std::chrono::milliseconds(250)));
      done.Complete(Verdict::Ack());  // a second completion is a no-op
    });
    return Verdict::Pending();
  }

  Verdict DeferAndDrop(const Message& msg) {
    Completion dropped = msg.Defer();
    return Verdict::Pending();
  }

  Verdict DeferTwice(const Message& msg) {
    Completion first = msg.Defer();
    Completion second = msg.Defer();  // throws std::logic_error
    return Verdict::Pending();
  }

  // Hands the Completion to a thread, then (wrongly) returns a final verdict.
  Verdict DeferThenAck(const Message& msg) {
    Completion done = msg.Defer();
    std::lock_guard<std::mutex> lock(mu_);
    threads_.emplace_back([done = std::move(done)]() mutable {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      done.Complete(Verdict::Reject("completed by the worker"));
    });
    return Verdict::Ack();
  }

  // Every accessor, flattened into the reason.
  Verdict Echo(const Message& msg) {
    std::string out;
    out += std::string(msg.id()) + "|" + std::string(msg.queue()) + "|" +
           std::string(msg.payload()) + "|" + std::string(msg.message_type()) + "|" +
           std::string(msg.content_type()) + "|" + std::string(msg.correlation_id()) + "|" +
           std::to_string(msg.priority()) + "|" + std::to_string(msg.attempt()) + "|" +
           std::to_string(msg.timestamp_ms()) + "|" + std::to_string(msg.enqueued_at_ms()) + "|";
    out += std::string(msg.header("x").value_or("<none>")) + "|";
    out += std::string(msg.header("missing").value_or("<none>")) + "|";
    for (const auto& [name, value] : msg.headers()) {
      out += std::string(name) + "=" + std::string(value) + ",";
    }
    out += "|" + std::to_string(msg.header_count());
    out += "|" + std::string(msg.has_deadline() ? "deadline" : "no-deadline");
    out += "|" + std::string(msg.cancelled() ? "cancelled" : "live");
    out += "|" + std::to_string(msg.reason_capacity());
    return Verdict::Reject(out);
  }

  Verdict Log(const Message& msg) {
    ctx_.log(FOXW_LOG_INFO, "payload=", msg.payload(), " attempt=", msg.attempt(), " pi=", 3.5);
    ctx_.log(FOXW_LOG_DEBUG, "not shown unless -v=1");
    return Verdict::Ack();
  }

  Verdict Publish(const Message& msg) {
    foxworker::Publication p;
    p.queue = "follow-up";
    p.payload = msg.payload();
    p.headers = {{"origin", "probe"}};
    std::string error;
    if (!ctx_.publish(p, msg, &error)) return Verdict::Reject("publish failed: " + error);
    return Verdict::Ack();
  }

  // Batch handlers. The payload of each message says what to do with it.
  void BatchByPayload(Batch& batch) {
    for (size_t i = 0; i < batch.size(); ++i) {
      Message msg = batch[i];
      std::string_view what = msg.payload();
      std::string tag = std::to_string(i) + "/" + std::string(msg.id());
      if (what == "ack") {
        batch.Set(i, Verdict::Retry("replaced"));  // a later Set() wins
        batch.Set(i, Verdict::Ack());
      } else if (what == "retry") {
        batch.Set(i, Verdict::Retry("later " + tag, std::chrono::milliseconds(700)));
      } else if (what == "reject") {
        batch.Set(i, Verdict::Reject("bad " + tag + " cap=" +
                                     std::to_string(msg.reason_capacity())));
      } else if (what == "pending") {
        batch.Set(i, Verdict::Pending());
      }  // "skip": no verdict
      if (batch.has_verdict(i)) handled_.Increment();
    }
  }
  void BatchThrow(Batch& batch) {
    batch.SetAll(Verdict::Ack());
    throw std::runtime_error("bulk insert failed");
  }
  void BatchThrowInt(Batch&) const { throw 42; }
  void BatchDefer(Batch& batch) { Completion done = batch[0].Defer(); }
  void BatchOutOfRange(Batch& batch) { batch.Set(batch.size(), Verdict::Ack()); }

 private:
  PluginContext& ctx_;
  foxworker::Counter handled_;
  std::mutex mu_;
  std::vector<std::thread> threads_;
};

}  // namespace

FOXWORKER_PLUGIN(Probe, "sdk_probe", "0.0.1", FOXW_INSTANCE_PER_SLOT,
                 FOXWORKER_HANDLER(Probe, Ack, "ack"), FOXWORKER_HANDLER(Probe, Retry, "retry"),
                 FOXWORKER_HANDLER(Probe, Reject, "reject"),
                 FOXWORKER_HANDLER(Probe, Throw, "throw"),
                 FOXWORKER_HANDLER(Probe, ThrowInt, "throw_int"),
                 FOXWORKER_HANDLER(Probe, PendingWithoutDefer, "pending_without_defer"),
                 FOXWORKER_HANDLER(Probe, Defer, "defer"),
                 FOXWORKER_HANDLER(Probe, DeferAndDrop, "defer_and_drop"),
                 FOXWORKER_HANDLER(Probe, DeferTwice, "defer_twice"),
                 FOXWORKER_HANDLER(Probe, DeferThenAck, "defer_then_ack"),
                 FOXWORKER_HANDLER(Probe, Echo, "echo"), FOXWORKER_HANDLER(Probe, Log, "log"),
                 FOXWORKER_HANDLER(Probe, Publish, "publish"),
                 FOXWORKER_BATCH_HANDLER(Probe, BatchByPayload, "batch"),
                 FOXWORKER_BATCH_HANDLER(Probe, BatchThrow, "batch_throw"),
                 FOXWORKER_BATCH_HANDLER(Probe, BatchThrowInt, "batch_throw_int"),
                 FOXWORKER_BATCH_HANDLER(Probe, BatchDefer, "batch_defer"),
                 FOXWORKER_BATCH_HANDLER(Probe, BatchOutOfRange, "batch_out_of_range"));
