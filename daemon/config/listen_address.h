// Where the admin endpoint listens: "HOST:PORT" (an IP literal; IPv6 in
// brackets) or "unix:/absolute/path". Shared by the config parser (to
// validate) and the admin server (to bind).
#ifndef FOXWORKER_CONFIG_LISTEN_ADDRESS_H_
#define FOXWORKER_CONFIG_LISTEN_ADDRESS_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "daemon/core/status.h"

namespace foxworker {

struct ListenAddress {
  std::string host;       // IP literal without brackets; empty for a unix socket
  uint16_t port = 0;      // 0 = any free port (tests)
  std::string unix_path;  // set for "unix:/path"
};

Result<ListenAddress> ParseListenAddress(std::string_view text);

}  // namespace foxworker

#endif  // FOXWORKER_CONFIG_LISTEN_ADDRESS_H_
