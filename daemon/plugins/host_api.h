// The host-services table handed to plugins (foxw_host_api), and the host's
// per-plugin record behind the opaque foxw_plugin_ctx.
#ifndef FOXWORKER_PLUGINS_HOST_API_H_
#define FOXWORKER_PLUGINS_HOST_API_H_

#include <foxworker/plugin.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>
#include <string_view>

#include "daemon/core/message.h"
#include "daemon/core/metrics.h"
#include "daemon/core/verdict.h"
#include "daemon/base/status.h"

namespace foxworker {
class PluginConfigValues;  // host_api.cc
}

// The opaque metric handle plugins hold: one per defined family, kept for the
// life of the process so a handle never dangles across reloads.
struct foxw_metric {
  int32_t kind = 0;
  std::string name;  // the full name, foxworker_plugin_<plugin>_<name>
  std::string help;
  foxworker::Counter* counter = nullptr;
  foxworker::Gauge* gauge = nullptr;
  foxworker::Histogram* histogram = nullptr;
  // A gauge was set since a handler child last reported it to the daemon
  // (a gauge is last-set-wins across children, so an unchanged value must
  // not overwrite another child's).
  std::atomic<bool> gauge_set{false};
};

// The opaque type plugins see. One per loaded plugin; lives until the
// plugin's shutdown returned.
struct foxw_plugin_ctx {
  std::string plugin_name;
  // Set by the supervisor: publishes a message to a configured queue.
  // May be empty (then publish fails with "publishing is not available").
  std::function<foxworker::Status(const foxw_publish&, const foxworker::Delivery* parent)> publish;
  // What the typed config reads see (SetPluginConfig, CommitPluginConfig):
  // `committed` everywhere, except that the control thread inside init or
  // create (a DefiningScope) sees `staged`, the config that create receives
  // during a reload not yet committed. Every distinct version stays in
  // `versions` until the ctx dies, so strings a plugin borrowed stay valid
  // until its shutdown (a reload back to an earlier config adds nothing).
  std::mutex config_mu;
  const foxworker::PluginConfigValues* committed = nullptr;  // GUARDED_BY(config_mu)
  const foxworker::PluginConfigValues* staged = nullptr;     // GUARDED_BY(config_mu)
  std::vector<std::unique_ptr<const foxworker::PluginConfigValues>> versions;  // GUARDED_BY(config_mu)
  foxw_plugin_ctx();
  ~foxw_plugin_ctx();
};

namespace foxworker {

// The table. Static, valid for the life of the process.
const foxw_host_api* HostApi();

inline const foxw_message* AsForeign(const Delivery* d) {
  return reinterpret_cast<const foxw_message*>(d);
}
inline Delivery* FromForeign(const foxw_message* m) {
  return const_cast<Delivery*>(reinterpret_cast<const Delivery*>(m));
}

// Stages `json` (the plugin's config object, schema applied): what typed
// config reads inside init and create on this ctx see from now on.
void SetPluginConfig(foxw_plugin_ctx* ctx, const std::string& json);
// Makes the staged config what every thread's reads see (a reload commits).
void CommitPluginConfig(foxw_plugin_ctx* ctx);

// Marks the calling thread as running init or create for `ctx` while it
// lives: metric_define is allowed, publish is refused, typed config reads see
// the staged config. Other threads (running handlers) are not affected.
class DefiningScope {
 public:
  explicit DefiningScope(const foxw_plugin_ctx* ctx);
  ~DefiningScope();
  DefiningScope(const DefiningScope&) = delete;
  DefiningScope& operator=(const DefiningScope&) = delete;

 private:
  const foxw_plugin_ctx* previous_;
};
// True on the thread of a DefiningScope for `ctx`.
bool IsDefining(const foxw_plugin_ctx* ctx);

// The handle of plugin metric `full_name` (foxworker_plugin_<plugin>_<name>)
// of `kind` (FOXW_METRIC_*) in MetricsRegistry::Default(), defined now unless
// it was before: what metric_define does, and what the daemon does for a
// metric a handler child defined. Null with `error` set when the registry
// refuses it (a bad name, another kind under that name).
foxw_metric* DefineMetric(const std::string& full_name, int32_t kind, std::string_view help,
                          std::string* error);
// Every metric handle defined in this process so far (a handler child
// reports them to the daemon).
std::vector<foxw_metric*> DefinedMetrics();

// Completes a delivery whose handler returned FOXW_PENDING, through its
// consumer (daemon/plugins/plugin_handlers.cc). Returns 0, or -1 when the
// delivery is not pending.
int32_t CompleteDeferred(Delivery* delivery, foxw_verdict verdict, std::string_view reason,
                         uint64_t retry_delay_ms);

// Where CompleteDeferred sends a delivery that no consumer runs: the
// handler child of isolation: process (daemon/isolation/child_main.cc)
// answers the daemon through it. Set once, before any handler runs.
using DeferredSink = int32_t (*)(Delivery* delivery, const HandlerReply& reply);
void SetDeferredSink(DeferredSink sink);

}  // namespace foxworker

#endif  // FOXWORKER_PLUGINS_HOST_API_H_
