// Loading, validating and printing the daemon's configuration.
//
// The YAML format, every key and its default are documented in
// docs/configuration.md. Parsing never throws: every problem comes back as a
// Status whose message is "file:line:column: key.path: what is wrong".
#ifndef FOXWORKER_CONFIG_CONFIG_PARSER_H_
#define FOXWORKER_CONFIG_CONFIG_PARSER_H_

#include <string>

#include "daemon/config/config.h"
#include "daemon/base/status.h"

namespace foxworker {

// Reads the config file at `path`, merges the files of `daemon.include_dir`,
// fills in defaults, resolves relative paths and validates the result as a
// whole. Environment references (${VAR}, ${VAR:-default}) are expanded from
// the process environment.
Result<Config> LoadConfig(const std::string& path);

// As LoadConfig, from text: `file_name_for_errors` names the text in errors
// and becomes Config::file; relative paths (plugin paths, state_dir,
// include_dir) resolve against `base_dir`.
Result<Config> ParseConfigString(const std::string& yaml, const std::string& file_name_for_errors,
                                 const std::string& base_dir);

// The effective configuration as YAML, every default written out: what
// `foxworkerd --check-config` prints. Parsing the output gives the same
// values (include_dir is written as a comment because its files are already
// merged into the output). Values are printed after environment expansion,
// so the output can contain secrets.
std::string FormatConfig(const Config& config);

}  // namespace foxworker

#endif  // FOXWORKER_CONFIG_CONFIG_PARSER_H_
