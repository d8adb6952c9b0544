#include "daemon/config/env_interpolation.h"

#include <cstdlib>

namespace foxworker {
namespace {

bool IsNameStart(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; }
bool IsNameChar(char c) { return IsNameStart(c) || (c >= '0' && c <= '9'); }

}  // namespace

Result<std::string> InterpolateEnvironment(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    char c = text[i];
    if (c != '$' || i + 1 == text.size()) {
      out += c;
      ++i;
      continue;
    }
    char next = text[i + 1];
    if (next == '$') {
      out += '$';
      i += 2;
      continue;
    }
    if (IsNameStart(next)) {
      size_t end = i + 1;
      while (end < text.size() && IsNameChar(text[end])) ++end;
      std::string name(text.substr(i + 1, end - i - 1));
      return Status::InvalidArgument("\"$" + name + "\" is not expanded: write ${" + name +
                                     "} for the environment variable, or $$ for a literal \"$\"");
    }
    if (next != '{') {
      out += c;
      ++i;
      continue;
    }
    size_t close = text.find('}', i + 2);
    if (close == std::string_view::npos) {
      return Status::InvalidArgument("unterminated \"${\": expected ${NAME} or ${NAME:-default}");
    }
    std::string_view inside = text.substr(i + 2, close - i - 2);
    size_t name_end = 0;
    while (name_end < inside.size() && IsNameChar(inside[name_end])) ++name_end;
    std::string name(inside.substr(0, name_end));
    std::string_view rest = inside.substr(name_end);
    bool has_default = rest.substr(0, 2) == ":-";
    if (name.empty() || !IsNameStart(name[0]) || (!rest.empty() && !has_default)) {
      return Status::InvalidArgument("invalid reference \"${" + std::string(inside) +
                                     "}\": expected ${NAME} or ${NAME:-default}, where NAME is "
                                     "letters, digits and _ not starting with a digit");
    }
    const char* value = std::getenv(name.c_str());
    if (has_default) {
      out += (value != nullptr && value[0] != '\0') ? std::string_view(value) : rest.substr(2);
    } else if (value == nullptr) {
      return Status::InvalidArgument("environment variable " + name + " is not set");
    } else {
      out += value;
    }
    i = close + 1;
  }
  return out;
}

}  // namespace foxworker
