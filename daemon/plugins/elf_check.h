// Reading a plugin file before dlopen(): dlopen runs the file's constructors,
// so a file that is not a plugin at all is refused here, before any of its
// code runs.
#ifndef FOXWORKER_PLUGINS_ELF_CHECK_H_
#define FOXWORKER_PLUGINS_ELF_CHECK_H_

#include <string>
#include <vector>

#include "daemon/base/status.h"

namespace foxworker {

// Checks that `path` is an ELF shared object for this machine (class, byte
// order, machine) whose dynamic symbol table defines every function in
// `required`. The error says what the file is instead, without the path.
// A file without section headers (stripped with sstrip) passes the symbol
// check; dlsym() checks it after dlopen.
Status CheckElfPlugin(const std::string& path, const std::vector<std::string>& required);

}  // namespace foxworker

#endif  // FOXWORKER_PLUGINS_ELF_CHECK_H_
