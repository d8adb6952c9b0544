#include "daemon/backends/redis/redis_url.h"

#include <charconv>

namespace foxworker {
namespace {

constexpr int kDefaultPort = 6379;
constexpr int kMaxDb = 1000000;

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool PercentDecode(std::string_view in, std::string* out) {
  out->clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out->push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size()) return false;
    int hi = HexValue(in[i + 1]), lo = HexValue(in[i + 2]);
    if (hi < 0 || lo < 0) return false;
    out->push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return true;
}

bool ParseNumber(std::string_view text, int min, int max, int* out) {
  if (text.empty()) return false;
  int value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return false;
  if (value < min || value > max) return false;
  *out = value;
  return true;
}

bool NeedsBrackets(const std::string& host) { return host.find(':') != std::string::npos; }

Status Invalid(std::string_view what) {
  return Status::InvalidArgument("invalid Redis URL: " + std::string(what) +
                                 " (expected redis://[[user]:password@]host[:port][/db] or "
                                 "unix:///path/to/socket[?db=N])");
}

// "db=N" out of a query string; other parameters are errors.
Status ParseQuery(std::string_view query, int* db) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view param = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (param.substr(0, 3) != "db=") {
      return Invalid("unknown query parameter \"" + std::string(param.substr(0, param.find('='))) +
                     "\" (only db=N is known)");
    }
    if (!ParseNumber(param.substr(3), 0, kMaxDb, db)) return Invalid("db must be a number");
  }
  return Status::Ok();
}

}  // namespace

Status ParseRedisUrl(std::string_view url, RedisBackendOptions* out) {
  size_t colon = url.find("://");
  if (colon == std::string_view::npos) return Invalid("no scheme");
  std::string_view scheme = url.substr(0, colon);
  std::string_view rest = url.substr(colon + 3);
  if (scheme == "rediss") {
    return Status::InvalidArgument(
        "rediss:// (TLS) is not supported: this foxworkerd is built with hiredis 0.14 "
        "(Debian 12), which has no TLS; use a TLS tunnel (stunnel, spiped) and redis://");
  }
  if (scheme != "redis" && scheme != "unix") {
    return Invalid("unknown scheme \"" + std::string(scheme) + "\"");
  }
  std::string user, password;
  size_t at = rest.rfind('@', rest.find('/') == std::string_view::npos ? std::string_view::npos
                                                                        : rest.find('/'));
  if (scheme == "redis" && at != std::string_view::npos) {
    std::string_view userinfo = rest.substr(0, at);
    rest = rest.substr(at + 1);
    size_t sep = userinfo.find(':');
    std::string_view raw_user = sep == std::string_view::npos ? std::string_view() : userinfo.substr(0, sep);
    std::string_view raw_password = sep == std::string_view::npos ? userinfo : userinfo.substr(sep + 1);
    if (!PercentDecode(raw_user, &user)) return Invalid("bad %-escape in the user name");
    if (!PercentDecode(raw_password, &password)) return Invalid("bad %-escape in the password");
  }
  int db = 0;
  std::string host, unix_path;
  int port = kDefaultPort;
  size_t q = rest.find('?');
  std::string_view query = q == std::string_view::npos ? std::string_view() : rest.substr(q + 1);
  rest = rest.substr(0, q);
  if (scheme == "unix") {
    if (rest.empty() || rest[0] != '/') return Invalid("a unix socket URL needs an absolute path");
    unix_path = std::string(rest);
  } else {
    size_t slash = rest.find('/');
    std::string_view authority = rest.substr(0, slash);
    if (slash != std::string_view::npos) {
      std::string_view path = rest.substr(slash + 1);
      if (!path.empty() && !ParseNumber(path, 0, kMaxDb, &db)) {
        return Invalid("the database after '/' must be a number");
      }
    }
    std::string_view port_text;
    if (!authority.empty() && authority[0] == '[') {
      size_t close = authority.find(']');
      if (close == std::string_view::npos) return Invalid("unclosed '[' in the host");
      host = std::string(authority.substr(1, close - 1));
      std::string_view after = authority.substr(close + 1);
      if (!after.empty()) {
        if (after[0] != ':') return Invalid("unexpected text after ']'");
        port_text = after.substr(1);
      }
    } else {
      size_t pc = authority.rfind(':');
      host = std::string(authority.substr(0, pc));
      if (pc != std::string_view::npos) port_text = authority.substr(pc + 1);
    }
    if (host.empty()) return Invalid("no host");
    if (!port_text.empty() && !ParseNumber(port_text, 1, 65535, &port)) {
      return Invalid("the port must be a number from 1 to 65535");
    }
  }
  Status s = ParseQuery(query, &db);
  if (!s.ok()) return s;
  out->url = std::string(url);
  out->host = std::move(host);
  out->port = port;
  out->unix_path = std::move(unix_path);
  out->db = db;
  out->user = std::move(user);
  out->password = std::move(password);
  return Status::Ok();
}

std::string RedactedRedisUrl(const RedisBackendOptions& o) {
  std::string userinfo;
  if (!o.user.empty() || !o.password.empty()) {
    userinfo = o.user + (o.password.empty() ? "" : ":***") + "@";
  }
  if (!o.unix_path.empty()) {
    return "unix://" + userinfo + o.unix_path + (o.db != 0 ? "?db=" + std::to_string(o.db) : "");
  }
  std::string host = NeedsBrackets(o.host) ? "[" + o.host + "]" : o.host;
  return "redis://" + userinfo + host + ":" + std::to_string(o.port) + "/" + std::to_string(o.db);
}

}  // namespace foxworker
