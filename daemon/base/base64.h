// Base64 (RFC 4648, with padding), for bytes shown as text: binary payloads
// in foxworkerctl's output, non-UTF-8 values in the JSON plugins read.
#ifndef FOXWORKER_BASE_BASE64_H_
#define FOXWORKER_BASE_BASE64_H_

#include <string>
#include <string_view>

namespace foxworker {

std::string Base64(std::string_view data);

}  // namespace foxworker

#endif  // FOXWORKER_BASE_BASE64_H_
