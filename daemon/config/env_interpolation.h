// Environment interpolation for config values.
#ifndef FOXWORKER_CONFIG_ENV_INTERPOLATION_H_
#define FOXWORKER_CONFIG_ENV_INTERPOLATION_H_

#include <string>
#include <string_view>

#include "daemon/base/status.h"

namespace foxworker {

// Expands, reading the process environment:
//   ${VAR}          the value of VAR; an error when VAR is not set
//   ${VAR:-text}    the value of VAR, or `text` when VAR is unset or empty
//   $$              a literal "$"
// A "$" followed by a letter or "_" is an error (a forgotten pair of braces);
// any other "$" is kept as is. Variable names are [A-Za-z_][A-Za-z0-9_]*.
// The default text is used literally up to the first "}".
Result<std::string> InterpolateEnvironment(std::string_view text);

}  // namespace foxworker

#endif  // FOXWORKER_CONFIG_ENV_INTERPOLATION_H_
