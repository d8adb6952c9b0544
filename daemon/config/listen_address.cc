#include "daemon/config/listen_address.h"

#include <arpa/inet.h>
#include <sys/un.h>

#include <charconv>

namespace foxworker {

Result<ListenAddress> ParseListenAddress(std::string_view text) {
  ListenAddress a;
  if (text.rfind("unix:", 0) == 0) {
    a.unix_path = std::string(text.substr(5));
    if (a.unix_path.empty() || a.unix_path[0] != '/')
      return Status::InvalidArgument("a unix socket needs an absolute path: unix:/run/foxworker/admin.sock");
    if (a.unix_path.size() >= sizeof(sockaddr_un{}.sun_path))
      return Status::InvalidArgument("unix socket path is too long");
    return a;
  }
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0)
    return Status::InvalidArgument("expected HOST:PORT (e.g. 127.0.0.1:9090) or unix:/path");
  std::string_view host = text.substr(0, colon), port = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  a.host = std::string(host);
  unsigned char buf[16];
  if (inet_pton(AF_INET, a.host.c_str(), buf) != 1 && inet_pton(AF_INET6, a.host.c_str(), buf) != 1)
    return Status::InvalidArgument("host must be an IP address (127.0.0.1, [::1]), not \"" +
                                   a.host + "\"");
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || value > 65535)
    return Status::InvalidArgument("port must be a number from 0 to 65535");
  a.port = static_cast<uint16_t>(value);
  return a;
}

}  // namespace foxworker
