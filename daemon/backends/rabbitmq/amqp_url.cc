#include "daemon/backends/rabbitmq/amqp_url.h"

#include <cctype>

namespace foxworker {
namespace {

// Scans from `*i` to the next delimiter, stepping over %XX escapes, and
// returns it ('\0' at the end; '%' for a broken escape). ':' and '@'
// delimit only when `colon_and_at` is set.
char NextDelim(std::string_view s, size_t* i, bool colon_and_at) {
  for (; *i < s.size(); ++*i) {
    char c = s[*i];
    if (c == '%') {
      if (*i + 2 >= s.size() || !std::isxdigit(static_cast<unsigned char>(s[*i + 1])) ||
          !std::isxdigit(static_cast<unsigned char>(s[*i + 2])))
        return '%';
      *i += 2;
      continue;
    }
    if (c == '/' || c == '?' || c == '#' || c == '[' || c == ']') return c;
    if (colon_and_at && (c == ':' || c == '@')) return c;
  }
  return '\0';
}

bool ValidPort(std::string_view digits) {
  if (digits.empty() || digits.size() > 5) return false;
  long v = 0;
  for (char c : digits) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
    v = v * 10 + (c - '0');
  }
  return v < 65536;
}

}  // namespace

bool IsValidAmqpUrl(std::string_view url) {
  size_t i;
  if (url.substr(0, 7) == "amqp://") {
    i = 7;
  } else if (url.substr(0, 8) == "amqps://") {
    i = 8;
  } else {
    return false;
  }
  // [user[:password]@]host[:port]
  size_t start = i;
  char d = NextDelim(url, &i, true);
  if (d == ':' || d == '@') {
    if (d == ':') {
      ++i;
      size_t second = i;
      d = NextDelim(url, &i, true);
      if (d == '@') {
        // user:password@ ; the host follows.
      } else if (d == '\0' || d == '/') {
        // host:port (an empty host is the library's default, localhost)
        if (!ValidPort(url.substr(second, i - second))) return false;
        goto vhost;
      } else {
        return false;
      }
    }
    // After '@': the host.
    ++i;
    start = i;
    d = NextDelim(url, &i, true);
  }
  if (d == '[') {
    // An IPv6 literal: the host is between the brackets.
    if (i != start) return false;
    ++i;
    size_t inner = i;
    d = NextDelim(url, &i, false);
    if (d != ']' || i == inner) return false;
    ++i;
    d = NextDelim(url, &i, true);
    if (d != ':' && d != '/' && d != '\0') return false;
    start = i;  // the host was not empty
  } else if (d != ':' && d != '/' && d != '\0') {
    return false;
  }
  if (d == ':') {
    ++i;
    size_t p = i;
    d = NextDelim(url, &i, true);
    if (d != '/' && d != '\0') return false;
    if (!ValidPort(url.substr(p, i - p))) return false;
  }
vhost:
  if (d == '/') {
    ++i;
    d = NextDelim(url, &i, true);
    if (d != '\0') return false;
  }
  return true;
}

}  // namespace foxworker
