// Drives a real plugin .so the way the daemon does (dlopen, magic, init_v1,
// create, handle, destroy) without a consumer, for plugin and SDK tests.
#ifndef FOXWORKER_TESTS_PLUGINS_PLUGIN_HARNESS_H_
#define FOXWORKER_TESTS_PLUGINS_PLUGIN_HARNESS_H_

#include <dlfcn.h>
#include <foxworker/plugin.h>
#include <glog/logging.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "daemon/base/clock.h"
#include "daemon/core/message.h"
#include "daemon/base/status.h"
#include "daemon/plugins/host_api.h"
#include "daemon/plugins/plugin_loader.h"

namespace foxworker::testing {

// What one handler call returned.
struct HandlerRun {
  foxw_verdict verdict = 0;
  std::string reason;
  uint64_t retry_delay_ms = 0;
};

class PluginHarness {
 public:
  static constexpr size_t kReasonCap = 2048;  // what the consumer gives handlers

  // Opens `path` and runs magic and init_v1 against `host`. The handle is
  // never closed: the daemon never dlcloses either.
  static Result<std::unique_ptr<PluginHarness>> Load(const std::string& path,
                                                     const std::string& name,
                                                     const foxw_host_api* host = HostApi()) {
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) return Status::NotFound(std::string("dlopen: ") + dlerror());
    auto magic = reinterpret_cast<foxw_magic_fn>(dlsym(handle, FOXW_MAGIC_SYMBOL));
    auto init = reinterpret_cast<foxw_init_v1_fn>(dlsym(handle, FOXW_INIT_V1_SYMBOL));
    if (magic == nullptr || init == nullptr) return Status::NotFound("missing ABI symbols");
    std::unique_ptr<PluginHarness> h(new PluginHarness());
    h->info_ = magic();
    if (h->info_ == nullptr || h->info_->magic != FOXW_PLUGIN_MAGIC_VALUE) {
      return Status::InvalidArgument("bad magic block");
    }
    h->ctx_.plugin_name = name;
    char err[512] = {0};
    {
      DefiningScope defining(&h->ctx_);
      h->def_ = init(host, &h->ctx_, err, sizeof(err));
    }
    if (h->def_ == nullptr) return Status::InvalidArgument(std::string("init refused: ") + err);
    return h;
  }

  const foxw_plugin_info& info() const { return *info_; }
  const foxw_plugin_v1& def() const { return *def_; }
  foxw_plugin_ctx& ctx() { return ctx_; }

  // create() with `config_json` checked and completed against the plugin's
  // schema first, as the daemon does; the error is the schema's or the
  // plugin's refusal message. `as_converted`: the JSON is what the schema
  // hands over already (durations in milliseconds), passed on unchanged.
  Result<void*> Create(std::string_view config_json, bool as_converted = false) {
    PluginConfig config;
    config.name = ctx_.plugin_name;
    config.config_json = std::string(config_json);
    auto applied = as_converted ? Result<std::string>(config.config_json)
                                : ApplyPluginSchema(config, *info_);
    if (!applied.ok()) return applied.status();
    std::string json = std::move(*applied);
    void* instance = nullptr;
    char err[1024] = {0};
    SetPluginConfig(&ctx_, json);  // what the typed config reads see, as in the daemon
    CommitPluginConfig(&ctx_);
    int32_t rc = 0;
    {
      DefiningScope defining(&ctx_);
      rc = def_->create(&ctx_, json.c_str(), json.size(), &instance, err, sizeof(err));
    }
    if (rc != 0) return Status::InvalidArgument(err);
    return instance;
  }

  void Destroy(void* instance) { def_->destroy(instance); }

  const foxw_handler_def* FindHandler(std::string_view name) const {
    // The plugin's stride, as the daemon's loader reads it.
    for (size_t i = 0; i < def_->handler_count; ++i) {
      const auto* h = reinterpret_cast<const foxw_handler_def*>(
          reinterpret_cast<const char*>(def_->handlers) + i * def_->handler_size);
      if (name == h->name) return h;
    }
    return nullptr;
  }

  // Runs handler `name` (must exist) on `d`, as the consumer would.
  HandlerRun Handle(void* instance, std::string_view name, Delivery& d) {
    const foxw_handler_def* h = FindHandler(name);
    if (h == nullptr) return HandlerRun{-1, "no handler named " + std::string(name), 0};
    char reason[kReasonCap];
    reason[0] = '\0';
    foxw_outcome out{sizeof(foxw_outcome), reason, kReasonCap, 0, 0};
    d.started_ns = MonotonicNs();
    HandlerRun run;
    run.verdict = h->handle(instance, AsForeign(&d), &out);
    run.reason.assign(reason, std::min(out.reason_len, kReasonCap - 1));
    run.retry_delay_ms = out.retry_delay_ms;
    return run;
  }

 private:
  PluginHarness() = default;
  const foxw_plugin_info* info_ = nullptr;
  const foxw_plugin_v1* def_ = nullptr;
  foxw_plugin_ctx ctx_;
};

// A delivery as a backend would hand it over, on queue "jobs".
inline std::unique_ptr<Delivery> MakeDelivery(std::string payload, std::string type = "job",
                                              std::string id = "m-1") {
  static const std::string kQueue = "jobs";
  auto d = std::make_unique<Delivery>();
  d->msg.id = std::move(id);
  d->msg.payload = std::move(payload);
  d->msg.props.message_type = std::move(type);
  d->queue = &kQueue;
  return d;
}

// Collects what is logged through glog while it exists.
class LogCapture : public google::LogSink {
 public:
  LogCapture() { google::AddLogSink(this); }
  ~LogCapture() override { google::RemoveLogSink(this); }

  using google::LogSink::send;
  void send(google::LogSeverity severity, const char* /*full_filename*/,
            const char* /*base_filename*/, int /*line*/, const google::LogMessageTime& /*time*/,
            const char* message, size_t message_len) override {
    std::lock_guard<std::mutex> lock(mu_);
    lines_.push_back({severity, std::string(message, message_len)});
  }

  std::vector<std::pair<google::LogSeverity, std::string>> lines() const {
    std::lock_guard<std::mutex> lock(mu_);
    return lines_;
  }
  // Every line containing `needle`.
  std::vector<std::string> Matching(std::string_view needle) const {
    std::vector<std::string> out;
    for (const auto& [severity, text] : lines()) {
      if (text.find(needle) != std::string::npos) out.push_back(text);
    }
    return out;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::pair<google::LogSeverity, std::string>> lines_;
};

}  // namespace foxworker::testing

#endif  // FOXWORKER_TESTS_PLUGINS_PLUGIN_HARNESS_H_
