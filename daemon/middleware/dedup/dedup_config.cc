#include "daemon/middleware/dedup/dedup_config.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "daemon/config/extension_registry.h"
#include "daemon/base/units.h"
#include "daemon/base/clock.h"
#include "daemon/middleware/dedup/dedup.h"

namespace foxworker {
namespace {

constexpr std::string_view kKeys[] = {"key", "ttl", "max_keys"};
constexpr std::string_view kProperties[] = {
    "message_id", "correlation_id", "type", "content_type", "app_id", "user_id", "reply_to"};
constexpr int64_t kMaxCount = 1000000000;

// A dedup `key`: "header:NAME", "property:NAME" or "json:/pointer".
Status CheckKey(const YamlFile& file, const MappingEntry& e, std::string_view key) {
  auto fail = [&](const std::string& why) {
    return ErrorAt(file, e.value_mark, e.path,
                   "invalid dedup key \"" + std::string(key) + "\": " + why);
  };
  if (key.starts_with("header:")) {
    if (key.size() == std::string_view("header:").size()) return fail("the header name is missing");
    return Status::Ok();
  }
  if (key.starts_with("property:")) {
    std::string_view name = key.substr(std::string_view("property:").size());
    if (std::find(std::begin(kProperties), std::end(kProperties), name) != std::end(kProperties)) {
      return Status::Ok();
    }
    std::string hint = DidYouMean(name, kProperties);
    if (hint.empty()) {
      std::string all;
      for (std::string_view p : kProperties) all += (all.empty() ? "" : ", ") + std::string(p);
      hint = " (expected one of: " + all + ")";
    }
    return fail("unknown property \"" + std::string(name) + "\"" + hint);
  }
  if (key.starts_with("json:")) {
    std::string_view pointer = key.substr(std::string_view("json:").size());
    if (pointer.empty() || pointer[0] != '/') {
      return fail("a JSON pointer starts with \"/\" (json:/order/id)");
    }
    for (size_t i = 0; i < pointer.size(); ++i) {
      if (pointer[i] == '~' &&
          (i + 1 == pointer.size() || (pointer[i + 1] != '0' && pointer[i + 1] != '1'))) {
        return fail("in a JSON pointer \"~\" is followed by 0 or 1 (~0 is \"~\", ~1 is \"/\")");
      }
    }
    return Status::Ok();
  }
  return fail("expected header:NAME, property:NAME or json:/POINTER");
}

Result<std::shared_ptr<const MiddlewareOptions>> Parse(const YamlFile& file,
                                                       const MappingEntry& item,
                                                       const std::vector<MappingEntry>& entries) {
  auto dedup = std::make_shared<DedupConfig>();
  bool has_key = false;
  for (const MappingEntry& e : entries) {
    Status status;
    if (e.key == "key") {
      has_key = true;
      status = Assign(ReadNonEmptyString(file, e), &dedup->key);
      if (status.ok()) status = CheckKey(file, e, dedup->key);
    } else if (e.key == "ttl") {
      status = AssignPositiveDuration(file, e, &dedup->ttl);
    } else if (e.key == "max_keys") {
      status = Assign(ReadInteger(file, e, 1, kMaxCount), &dedup->max_keys);
    } else {
      return Status::Internal(e.path + ": not a key of a dedup");  // keys were checked
    }
    if (!status.ok()) return status;
  }
  if (!has_key) {
    return ErrorAt(file, item.key_mark, item.path,
                   "missing required key \"key\" (header:NAME, property:NAME or json:/POINTER)");
  }
  return std::shared_ptr<const MiddlewareOptions>(std::move(dedup));
}

void Format(const MiddlewareOptions& options, YamlWriter& w, int depth) {
  const auto& dedup = static_cast<const DedupConfig&>(options);
  w.Line(depth, "key", Quote(dedup.key));
  w.Line(depth, "ttl", FormatDuration(dedup.ttl));
  w.Line(depth, "max_keys", std::to_string(dedup.max_keys));
}

// Keys go to the backend's durable store when it has one, else to memory.
Result<std::unique_ptr<Middleware>> Make(const QueueConfig& queue, const MiddlewareConfig& m,
                                         MiddlewareContext& c) {
  const auto* options = m.options.As<DedupConfig>();
  if (options == nullptr) return Status::InvalidArgument("dedup without its settings");
  std::unique_ptr<KeyStore> store;
  if (c.backend != nullptr) store = c.backend->OpenDurableKeyStore(queue.name);
  if (store == nullptr) store = std::make_unique<MemoryDedupStore>(options->max_keys);
  return std::unique_ptr<Middleware>(new Dedup(queue.name, *options, std::move(store), WallMs));
}

}  // namespace

void RegisterDedup(ExtensionRegistry& registry) {
  MiddlewareExtension dedup;
  dedup.type = "dedup";
  dedup.keys = kKeys;
  dedup.once_per_queue = true;
  dedup.parse = Parse;
  dedup.format = Format;
  dedup.make = Make;
  registry.AddMiddleware(std::move(dedup));
}

}  // namespace foxworker
