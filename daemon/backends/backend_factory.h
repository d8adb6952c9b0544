// Builds a Backend from its config entry, by type.
#ifndef FOXWORKER_BACKENDS_BACKEND_FACTORY_H_
#define FOXWORKER_BACKENDS_BACKEND_FACTORY_H_

#include <memory>

#include "daemon/config/config.h"
#include "daemon/core/backend.h"

namespace foxworker {

Result<std::unique_ptr<Backend>> MakeBackend(const BackendConfig& config);

}  // namespace foxworker

#endif  // FOXWORKER_BACKENDS_BACKEND_FACTORY_H_
