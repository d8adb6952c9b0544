// Linked into every test binary (as an object file, not from a static
// library, so the linker keeps it): registers the built-in backends and
// middleware before any test reads a config, and pins the time zone before
// any thread exists (PinLocalTimeZone, as foxworkerd's main does).
#include "daemon/app/builtin_extensions.h"
#include "daemon/base/clock.h"

namespace {

const bool kRegistered = [] {
  foxworker::PinLocalTimeZone();
  foxworker::RegisterBuiltinExtensions();
  return true;
}();

}  // namespace
