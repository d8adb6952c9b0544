// foxworkerctl --url: the commands against a running daemon's admin HTTP
// (/api/v1), for every backend. See docs/operations.md#the-console.
#ifndef FOXWORKER_CTL_CTL_REMOTE_H_
#define FOXWORKER_CTL_CTL_REMOTE_H_

#include <iosfwd>

#include "daemon/ctl/ctl_args.h"

namespace foxworker {

// `args.url` is set. Returns kCtlOk or kCtlError.
int RunRemoteCommand(const CtlArgs& args, std::istream& in, std::ostream& out, std::ostream& err);

}  // namespace foxworker

#endif  // FOXWORKER_CTL_CTL_REMOTE_H_
