#include "header_environment.h"

#include <iterator>

namespace foxworker::exec_plugin {
namespace {

constexpr std::string_view kReadablePrefix = "FOXWORKER_HEADER_";
constexpr std::string_view kNumberedPrefix = "FOXWORKER_HEADERS_";

std::string Hex(std::string_view bytes, const char* digits) {
  std::string text;
  text.reserve(bytes.size() * 2);
  for (char c : bytes) {
    unsigned char u = static_cast<unsigned char>(c);
    text += digits[u >> 4];
    text += digits[u & 0x0f];
  }
  return text;
}

bool HasNul(std::string_view s) { return s.find('\0') != std::string_view::npos; }

// Sets FOXWORKER_HEADERS_<what>_<i>, or its _HEX_ form when `bytes` has a NUL.
void SetNumbered(std::string_view what, size_t i, std::string_view bytes,
                 std::map<std::string, std::string>& env) {
  std::string name = std::string(kNumberedPrefix) + std::string(what);
  if (HasNul(bytes)) {
    env[name + "_HEX_" + std::to_string(i)] = Hex(bytes, "0123456789abcdef");
  } else {
    env[name + "_" + std::to_string(i)] = std::string(bytes);
  }
}

}  // namespace

std::string ReadableKey(std::string_view name) {
  std::string key;
  bool in_non_ascii_run = false;
  for (char c : name) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u >= 0x80) {
      if (!in_non_ascii_run) key += '_';
      key += Hex(std::string_view(&c, 1), "0123456789ABCDEF");
      in_non_ascii_run = true;
      continue;
    }
    in_non_ascii_run = false;
    if (c >= 'a' && c <= 'z') {
      key += static_cast<char>(c - 'a' + 'A');
    } else if ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
      key += c;
    } else {
      key += '_';
    }
  }
  return key;
}

void RemoveHeaderVariables(std::map<std::string, std::string>& env) {
  for (auto it = env.begin(); it != env.end();) {
    std::string_view name = it->first;
    bool ours = name.substr(0, kReadablePrefix.size()) == kReadablePrefix ||
                name.substr(0, kNumberedPrefix.size()) == kNumberedPrefix;
    it = ours ? env.erase(it) : std::next(it);
  }
}

void AddHeaderVariables(const HeaderList& headers, std::map<std::string, std::string>& env) {
  env[std::string(kNumberedPrefix) + "COUNT"] = std::to_string(headers.size());
  // How many headers map to each readable key: only a key used once is set.
  std::map<std::string, size_t> key_uses;
  std::vector<std::string> keys;
  keys.reserve(headers.size());
  for (const auto& header : headers) {
    keys.push_back(ReadableKey(header.first));
    ++key_uses[keys.back()];
  }
  for (size_t i = 0; i < headers.size(); ++i) {
    const auto& [name, value] = headers[i];
    SetNumbered("NAME", i + 1, name, env);
    SetNumbered("VALUE", i + 1, value, env);
    if (!name.empty() && key_uses[keys[i]] == 1 && !HasNul(name) && !HasNul(value)) {
      env[std::string(kReadablePrefix) + keys[i]] = std::string(value);
    }
  }
}

}  // namespace foxworker::exec_plugin
