#include "daemon/plugins/plugin_handlers.h"

#include <algorithm>
#include <atomic>

#include "daemon/core/consumer.h"
#include "daemon/plugins/host_api.h"

namespace foxworker {
namespace {

// The plugin's growth (PER_SLOT instances made ahead) behind core's type.
class PluginGrowth : public HandlerSet::Growth {
 public:
  explicit PluginGrowth(InstancePool::Growth g) : growth(std::move(g)) {}
  InstancePool::Growth growth;
};

}  // namespace

Status CheckQueueHandler(const QueueConfig& queue, const LoadedPlugin& plugin) {
  if (queue.handler.empty()) return Status::Ok();
  const foxw_handler_def* h = plugin.FindHandler(queue.handler);
  if (h != nullptr && queue.handler == h->name) return Status::Ok();
  return Status::InvalidArgument(queue.mark.ToString() + ": queues." + queue.name +
                                 ".handler: plugin " + plugin.name() + " has no handler \"" +
                                 queue.handler + "\" (it has: " + plugin.HandlerNames() + ")");
}

Verdict VerdictOf(foxw_verdict v) {
  switch (v) {
    case FOXW_ACK: return Verdict::kAck;
    case FOXW_RETRY: return Verdict::kRetry;
    case FOXW_REJECT: return Verdict::kReject;
    case FOXW_PENDING: return Verdict::kPending;
    default: return Verdict::kUnknown;
  }
}

namespace {
std::atomic<DeferredSink> g_deferred_sink{nullptr};
}  // namespace

void SetDeferredSink(DeferredSink sink) { g_deferred_sink.store(sink); }

int32_t CompleteDeferred(Delivery* d, foxw_verdict verdict, std::string_view reason,
                         uint64_t retry_delay_ms) {
  if (d == nullptr) return -1;
  const HandlerReply reply{VerdictOf(verdict), verdict, reason, retry_delay_ms};
  if (d->consumer == nullptr) {
    DeferredSink sink = g_deferred_sink.load();
    return sink != nullptr ? sink(d, reply) : -1;
  }
  return d->consumer->Complete(d, reply);
}

PluginHandler::PluginHandler(const foxw_handler_def* def)
    : def_(def), batch_(def->handle_batch), name_(def->name) {}

HandlerReply PluginHandler::Handle(HandlerInstance instance, Delivery& d, char* reason_buf,
                                   size_t reason_cap) const {
  foxw_outcome out{sizeof(foxw_outcome), reason_buf, reason_cap, 0, 0};
  reason_buf[0] = '\0';
  foxw_verdict v = def_->handle(instance, AsForeign(&d), &out);
  return HandlerReply{VerdictOf(v), v,
                      std::string_view(reason_buf, std::min(out.reason_len, reason_cap - 1)),
                      out.retry_delay_ms};
}

void PluginHandler::HandleBatch(HandlerInstance instance, Delivery* const* batch, size_t n,
                                HandlerReply* replies, char* reason_bufs,
                                size_t reason_cap) const {
  std::vector<const foxw_message*> msgs(n);
  std::vector<foxw_verdict> verdicts(n, 0);
  std::vector<foxw_outcome> outs(n);
  std::vector<foxw_outcome*> out_ptrs(n);
  for (size_t i = 0; i < n; ++i) {
    msgs[i] = AsForeign(batch[i]);
    reason_bufs[i * reason_cap] = '\0';
    outs[i] = foxw_outcome{sizeof(foxw_outcome), reason_bufs + i * reason_cap, reason_cap, 0, 0};
    out_ptrs[i] = &outs[i];
  }
  batch_(instance, msgs.data(), n, verdicts.data(), out_ptrs.data());
  for (size_t i = 0; i < n; ++i)
    replies[i] = HandlerReply{
        VerdictOf(verdicts[i]), verdicts[i],
        std::string_view(outs[i].reason, std::min(outs[i].reason_len, reason_cap - 1)),
        outs[i].retry_delay_ms};
}

PluginHandlerSet::PluginHandlerSet(const LoadedPlugin& plugin,
                                   std::unique_ptr<InstancePool> instances)
    : plugin_(plugin), provider_("plugin " + plugin.name()), instances_(std::move(instances)) {
  for (const foxw_handler_def* def : plugin_.handlers()) {
    handlers_.push_back(std::make_unique<PluginHandler>(def));
    views_.push_back(handlers_.back().get());
  }
}

Result<std::unique_ptr<PluginHandlerSet>> PluginHandlerSet::Create(const LoadedPlugin& plugin,
                                                                   const std::string& queue,
                                                                   int concurrency, int threads) {
  auto pool = InstancePool::Create(plugin, concurrency, threads);
  if (!pool.ok()) return Status::InvalidArgument("queue " + queue + ": " + pool.status().message());
  return std::make_unique<PluginHandlerSet>(plugin, std::move(*pool));
}

const Handler* PluginHandlerSet::Find(std::string_view type) const {
  const foxw_handler_def* def = plugin_.FindHandler(type);
  if (def == nullptr) return nullptr;
  for (const auto& h : handlers_)
    if (h->def() == def) return h.get();
  return nullptr;
}

Result<std::unique_ptr<HandlerSet::Growth>> PluginHandlerSet::PrepareResize(int concurrency) {
  auto g = instances_->PrepareResize(concurrency);
  if (!g.ok()) return g.status();
  return std::unique_ptr<Growth>(std::make_unique<PluginGrowth>(std::move(*g)));
}

void PluginHandlerSet::Resize(std::unique_ptr<Growth> growth) {
  auto* g = static_cast<PluginGrowth*>(growth.get());
  instances_->Resize(std::move(g->growth));
}

}  // namespace foxworker
