// Running foxworkerctl's commands against a local backend's SQLite file.
#ifndef FOXWORKER_CTL_CTL_COMMANDS_H_
#define FOXWORKER_CTL_CTL_COMMANDS_H_

#include <iosfwd>

#include "daemon/ctl/ctl_args.h"

namespace foxworker {

// Exit statuses of foxworkerctl.
inline constexpr int kCtlOk = 0;
inline constexpr int kCtlError = 1;
inline constexpr int kCtlUsage = 2;

// Runs `args` (not kHelp or kVersion): results go to `out` (a table, or one
// JSON document with --json), errors to `err`. `in` is read for a payload
// from standard input. Returns kCtlOk or kCtlError.
int RunCtlCommand(const CtlArgs& args, std::istream& in, std::ostream& out, std::ostream& err);

}  // namespace foxworker

#endif  // FOXWORKER_CTL_CTL_COMMANDS_H_
