// Linked into every test binary (as an object file, not from a static
// library, so the linker keeps it): registers the built-in backends and
// middleware before any test reads a config.
#include "daemon/app/builtin_extensions.h"

namespace {

const bool kRegistered = [] {
  foxworker::RegisterBuiltinExtensions();
  return true;
}();

}  // namespace
