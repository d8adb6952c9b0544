// The core's Handler and HandlerSet interfaces over a loaded plugin's C ABI:
// one PluginHandler per foxw_handler_def, one PluginHandlerSet per queue
// (the plugin's handlers plus the queue's InstancePool).
#ifndef FOXWORKER_PLUGINS_PLUGIN_HANDLERS_H_
#define FOXWORKER_PLUGINS_PLUGIN_HANDLERS_H_

#include <foxworker/plugin.h>

#include <memory>
#include <string>
#include <vector>

#include "daemon/core/handler.h"
#include "daemon/plugins/plugin_loader.h"

namespace foxworker {

// OK when the queue names no handler, or one `plugin` has (by its exact
// name); else the config error that says which handlers it has.
Status CheckQueueHandler(const QueueConfig& queue, const LoadedPlugin& plugin);

// The core verdict for what a plugin returned (unknown values: kUnknown).
Verdict VerdictOf(foxw_verdict v);

class PluginHandler : public Handler {
 public:
  explicit PluginHandler(const foxw_handler_def* def);
  const std::string& name() const override { return name_; }
  bool batched() const override { return batch_ != nullptr; }
  HandlerReply Handle(HandlerInstance instance, Delivery& d, char* reason_buf,
                      size_t reason_cap) const override;
  void HandleBatch(HandlerInstance instance, Delivery* const* batch, size_t n,
                   HandlerReply* replies, char* reason_bufs, size_t reason_cap) const override;
  const foxw_handler_def* def() const { return def_; }

 private:
  const foxw_handler_def* const def_;
  const foxw_handle_batch_fn batch_;
  const std::string name_;
};

// Safe for concurrent use, as HandlerSet requires. `plugin` must outlive it.
class PluginHandlerSet : public HandlerSet {
 public:
  PluginHandlerSet(const LoadedPlugin& plugin, std::unique_ptr<InstancePool> instances);

  // The instances for a queue of `concurrency` on an executor of `threads`,
  // per the plugin's instance model. Errors name the queue.
  static Result<std::unique_ptr<PluginHandlerSet>> Create(const LoadedPlugin& plugin,
                                                          const std::string& queue,
                                                          int concurrency, int threads);

  const std::string& provider() const override { return provider_; }
  const std::vector<const Handler*>& handlers() const override { return views_; }
  const Handler* Find(std::string_view type) const override;
  std::string HandlerNames() const override { return plugin_.HandlerNames(); }
  HandlerInstance Acquire() override { return instances_->Acquire(); }
  void Release(HandlerInstance instance) override { instances_->Release(instance); }
  Result<std::unique_ptr<Growth>> PrepareResize(int concurrency) override;
  void Resize(std::unique_ptr<Growth> growth) override;
  void Trim(int workers) override { instances_->Trim(workers); }

  const LoadedPlugin& plugin() const { return plugin_; }
  const InstancePool& instances() const { return *instances_; }

 private:
  const LoadedPlugin& plugin_;
  const std::string provider_;
  std::unique_ptr<InstancePool> instances_;
  std::vector<std::unique_ptr<PluginHandler>> handlers_;
  std::vector<const Handler*> views_;
};

}  // namespace foxworker

#endif  // FOXWORKER_PLUGINS_PLUGIN_HANDLERS_H_
