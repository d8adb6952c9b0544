#include "daemon/config/extension_registry.h"

#include <glog/logging.h>

#include <utility>

namespace foxworker {

ExtensionRegistry& ExtensionRegistry::Global() {
  static ExtensionRegistry* registry = new ExtensionRegistry();
  return *registry;
}

void ExtensionRegistry::AddBackend(BackendExtension extension) {
  CHECK(extension.parse && extension.format)
      << "backend type " << extension.type << ": parse and format are required";
  CHECK(FindBackend(extension.type) == nullptr)
      << "backend type " << extension.type << " is registered twice";
  backends_.push_back(std::move(extension));
}

void ExtensionRegistry::SetBackendFactory(std::string_view type, BackendFactory make) {
  for (BackendExtension& b : backends_) {
    if (b.type != type) continue;
    CHECK(!b.make) << "backend type " << type << ": factory set twice";
    b.make = std::move(make);
    return;
  }
  LOG(FATAL) << "backend type " << type << ": factory set before the type was registered";
}

void ExtensionRegistry::AddMiddleware(MiddlewareExtension extension) {
  CHECK(extension.parse && extension.format && extension.make)
      << "middleware type " << extension.type << ": parse, format and make are required";
  CHECK(FindMiddleware(extension.type) == nullptr)
      << "middleware type " << extension.type << " is registered twice";
  middleware_.push_back(std::move(extension));
}

const BackendExtension* ExtensionRegistry::FindBackend(std::string_view type) const {
  for (const BackendExtension& b : backends_) {
    if (b.type == type) return &b;
  }
  return nullptr;
}

const MiddlewareExtension* ExtensionRegistry::FindMiddleware(std::string_view type) const {
  for (const MiddlewareExtension& m : middleware_) {
    if (m.type == type) return &m;
  }
  return nullptr;
}

std::vector<std::string_view> ExtensionRegistry::BackendTypes() const {
  std::vector<std::string_view> types;
  for (const BackendExtension& b : backends_) types.push_back(b.type);
  return types;
}

std::vector<std::string_view> ExtensionRegistry::MiddlewareTypes() const {
  std::vector<std::string_view> types;
  for (const MiddlewareExtension& m : middleware_) types.push_back(m.type);
  return types;
}

Result<std::unique_ptr<Backend>> MakeBackend(const BackendConfig& config) {
  const BackendExtension* extension = ExtensionRegistry::Global().FindBackend(config.type);
  if (extension == nullptr || !extension->make) {
    return Status::InvalidArgument(config.mark.ToString() + ": backends." + config.name +
                                   ".type: backend type \"" + config.type +
                                   "\" is not built into this foxworkerd");
  }
  return extension->make(config);
}

}  // namespace foxworker
