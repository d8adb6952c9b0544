#include "daemon/middleware/chain.h"

#include <utility>


namespace foxworker {

Result<std::vector<std::unique_ptr<Middleware>>> BuildMiddleware(const QueueConfig& queue,
                                                                 MiddlewareContext& context) {
  std::vector<std::unique_ptr<Middleware>> chain;
  const ExtensionRegistry& registry = ExtensionRegistry::Global();
  for (const auto& m : queue.middleware) {
    const MiddlewareExtension* type = registry.FindMiddleware(m.type);
    if (type == nullptr)
      return Status::InvalidArgument(m.mark.ToString() + ": queues." + queue.name +
                                     ".middleware: unknown middleware \"" + m.type + "\"");
    auto made = type->make(queue, m, context);
    if (!made.ok()) return made.status();
    chain.push_back(std::move(*made));
  }
  return chain;
}

}  // namespace foxworker
