// Builds a Backend from its config entry, by type.
#ifndef FOXWORKER_APP_BACKEND_FACTORY_H_
#define FOXWORKER_APP_BACKEND_FACTORY_H_

#include <memory>

#include "daemon/config/config.h"
#include "daemon/core/backend.h"

namespace foxworker {

Result<std::unique_ptr<Backend>> MakeBackend(const BackendConfig& config);

}  // namespace foxworker

#endif  // FOXWORKER_APP_BACKEND_FACTORY_H_
