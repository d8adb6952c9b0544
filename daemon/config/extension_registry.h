// The extension registry: every backend type and middleware type, by name,
// with what the daemon needs of it: the keys of its YAML block, its parse,
// its --check-config format, its checks against the whole config and its
// factory. The config parser, FormatConfig, the Supervisor and the admin
// endpoint work from here and name no extension.
//
// Each extension folder provides one Register...() function that adds its
// entry; RegisterBuiltinExtensions() (daemon/builtin_extensions.cc) calls
// them, one line each, and foxworkerd, foxworkerctl and the tests call it
// before they read a config. Registration is explicit, not done by static
// initializers: those are dropped by the linker from static libraries.
//
// Thread-safety: filled at startup before any config is read; read-only
// afterwards, so concurrent reads are safe.
#ifndef FOXWORKER_CONFIG_EXTENSION_REGISTRY_H_
#define FOXWORKER_CONFIG_EXTENSION_REGISTRY_H_

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/config/config.h"
#include "daemon/config/yaml_reader.h"
#include "daemon/config/yaml_writer.h"
#include "daemon/core/backend.h"
#include "daemon/base/status.h"
#include "daemon/core/middleware.h"

namespace foxworker {

// ---- backends ----

struct BackendExtension {
  std::string type;  // the `type:` value
  // Every key of a `backends.NAME` block of this type, "type" included.
  std::span<const std::string_view> keys;

  // Reads the block `item` (its entries, each one of `keys`, are `entries`)
  // into this type's options. Errors name file:line:column and the key path.
  std::function<Result<std::shared_ptr<const BackendOptions>>(
      const YamlFile& file, const MappingEntry& item, const std::vector<MappingEntry>& entries)>
      parse;
  // Writes the options' keys (but "type") at `depth`, every default written
  // out, so that parsing the text gives the same options.
  std::function<void(const BackendOptions& options, YamlWriter& w, int depth)> format;
  // Optional: after every file was read, before references are checked.
  // May rewrite the options of this type's backends (resolve paths against
  // daemon.state_dir) and check them against each other.
  std::function<Status(Config& config)> finish;

  // Optional: the key of a queue's own block for this backend type
  // (`rabbitmq:`), its parse and format. A queue may write the block only
  // when its backend is of this type.
  std::string queue_key;
  std::function<Result<std::shared_ptr<const BackendQueueOptions>>(const YamlFile& file,
                                                                   const MappingEntry& entry)>
      parse_queue;
  // Writes the queue's block for a queue on backend `backend` of this type;
  // `options` is null when the queue wrote none (the defaults apply).
  std::function<void(const BackendQueueOptions* options, const BackendConfig& backend,
                     YamlWriter& w, int depth)>
      format_queue;
  // Optional: after references are checked, every queue on a backend of this
  // type against its backend and the others.
  std::function<Status(const Config& config)> check_queues;

  // Builds the backend (not started). Set apart from the rest
  // (ExtensionRegistry::SetBackendFactory) by the backend's runtime code, so
  // that a program that only reads configs (foxworkerctl) links no broker
  // client; null in such a program.
  std::function<Result<std::unique_ptr<Backend>>(const BackendConfig& config)> make;
};

using BackendFactory = std::function<Result<std::unique_ptr<Backend>>(const BackendConfig&)>;

// ---- middleware ----

// State that middleware of several queues share, by the name that
// MiddlewareOptions::shared_state() gives (a shared rate limit's token
// bucket). Created by the first queue that needs it.
class SharedMiddlewareState {
 public:
  virtual ~SharedMiddlewareState() = default;
};
using SharedMiddlewareStates = std::map<std::string, std::shared_ptr<SharedMiddlewareState>>;

// What building a queue's middleware may use beyond its own settings.
struct MiddlewareContext {
  const Config* config = nullptr;
  Backend* backend = nullptr;  // the queue's backend (for durable storage)
  SharedMiddlewareStates* shared = nullptr;
  MonotonicClock clock;
};

// A metric family a middleware type reports (Middleware::Samples()).
struct MiddlewareMetricFamily {
  std::string_view name;
  std::string_view type;  // "counter" or "gauge"
  std::string_view help;
};

struct MiddlewareExtension {
  std::string type;  // the item's key in `middleware:`
  std::span<const std::string_view> keys;  // of its settings
  bool once_per_queue = false;             // at most one per queue

  // Reads the settings `item` (its entries, each one of `keys`, are
  // `entries`).
  std::function<Result<std::shared_ptr<const MiddlewareOptions>>(
      const YamlFile& file, const MappingEntry& item, const std::vector<MappingEntry>& entries)>
      parse;
  // Writes the settings at `depth`, every default written out.
  std::function<void(const MiddlewareOptions& options, YamlWriter& w, int depth)> format;
  // Optional: the settings of queue `queue`'s item `index` against the whole
  // config (a shared rate limit exists), after references are checked.
  std::function<Status(const Config& config, const QueueConfig& queue, size_t index)> check;
  // Builds the middleware for `queue`.
  std::function<Result<std::unique_ptr<Middleware>>(
      const QueueConfig& queue, const MiddlewareConfig& config, MiddlewareContext& context)>
      make;
  // The families its Samples() report, in the order /metrics lists them.
  std::vector<MiddlewareMetricFamily> metric_families;
};

class ExtensionRegistry {
 public:
  // The registry the daemon, foxworkerctl and the tests use.
  static ExtensionRegistry& Global();

  // REQUIRES: the type is not registered yet.
  void AddBackend(BackendExtension extension);
  void AddMiddleware(MiddlewareExtension extension);
  // Sets the factory of a registered backend type. REQUIRES: none set yet.
  void SetBackendFactory(std::string_view type, BackendFactory make);

  // Null when not registered.
  const BackendExtension* FindBackend(std::string_view type) const;
  const MiddlewareExtension* FindMiddleware(std::string_view type) const;

  // In registration order (the order error messages list them in).
  const std::deque<BackendExtension>& backends() const { return backends_; }
  const std::deque<MiddlewareExtension>& middleware() const { return middleware_; }

  // Their names, in registration order.
  std::vector<std::string_view> BackendTypes() const;
  std::vector<std::string_view> MiddlewareTypes() const;

 private:
  std::deque<BackendExtension> backends_;  // a deque: Find's pointers stay valid
  std::deque<MiddlewareExtension> middleware_;
};

// Builds the backend of `config` with its registered factory.
Result<std::unique_ptr<Backend>> MakeBackend(const BackendConfig& config);

}  // namespace foxworker

#endif  // FOXWORKER_CONFIG_EXTENSION_REGISTRY_H_
