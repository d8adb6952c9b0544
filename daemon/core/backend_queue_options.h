// BackendQueueOptions: a backend's own settings for one queue (the queue's
// `<backend type>:` block, such as `rabbitmq:`), opaque to the core. The
// backend that parsed the block is the one that reads it, by downcasting to
// its own type. Part of core/backend.h's interface; a header of its own so
// that daemon/config/ can hold one without the rest of backend.h.
#ifndef FOXWORKER_CORE_BACKEND_QUEUE_OPTIONS_H_
#define FOXWORKER_CORE_BACKEND_QUEUE_OPTIONS_H_

namespace foxworker {

class BackendQueueOptions {
 public:
  virtual ~BackendQueueOptions() = default;
  // Same dynamic type and same values (reload compares old and new).
  virtual bool Equals(const BackendQueueOptions& other) const = 0;
};

}  // namespace foxworker

#endif  // FOXWORKER_CORE_BACKEND_QUEUE_OPTIONS_H_
