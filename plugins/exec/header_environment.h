// How the exec plugin passes a message's headers to its command's
// environment. The rule (plugins/exec/README.md, "Headers"):
//
// - Every header, in delivery order, as numbered pairs:
//   FOXWORKER_HEADERS_COUNT=<n>, and for i in 1..n FOXWORKER_HEADERS_NAME_<i>
//   and FOXWORKER_HEADERS_VALUE_<i>, byte for byte. A name or value holding a
//   NUL byte (which no environment variable can) is given instead as
//   FOXWORKER_HEADERS_NAME_HEX_<i> or FOXWORKER_HEADERS_VALUE_HEX_<i>, in
//   lower-case hex. Nothing is lost and nothing collides.
// - A readable FOXWORKER_HEADER_<KEY> for each header whose KEY no other
//   header of the message shares (see ReadableKey), whose name is not empty
//   and whose name and value hold no NUL byte. Colliding headers get none.
#ifndef FOXWORKER_PLUGINS_EXEC_HEADER_ENVIRONMENT_H_
#define FOXWORKER_PLUGINS_EXEC_HEADER_ENVIRONMENT_H_

#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace foxworker::exec_plugin {

using HeaderList = std::vector<std::pair<std::string_view, std::string_view>>;

// The KEY of FOXWORKER_HEADER_<KEY>: ASCII letters upper-cased, digits kept,
// every other ASCII byte as '_', and each run of non-ASCII bytes as '_'
// followed by the bytes in upper-case hex (`clé` -> `CL_C3A9`).
std::string ReadableKey(std::string_view name);

// Removes every FOXWORKER_HEADER_* and FOXWORKER_HEADERS_* variable, so that
// only the message's own headers appear under those names.
void RemoveHeaderVariables(std::map<std::string, std::string>& env);

// Adds the variables for `headers` (in delivery order) to `env`.
void AddHeaderVariables(const HeaderList& headers, std::map<std::string, std::string>& env);

}  // namespace foxworker::exec_plugin

#endif  // FOXWORKER_PLUGINS_EXEC_HEADER_ENVIRONMENT_H_
