#include "daemon/core/payload_validation.h"

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>

#include <string>
#include <string_view>

namespace foxworker {
namespace {

bool IsJsonContentType(const std::string& ct) {
  std::string_view t(ct);
  t = t.substr(0, t.find(';'));
  while (!t.empty() && t.back() == ' ') t.remove_suffix(1);
  return t == "application/json" || (t.size() > 5 && t.substr(t.size() - 5) == "+json");
}

}  // namespace

std::optional<Outcome> ValidatePayload(const Delivery& d) {
  if (d.msg.props.content_type.empty() || !IsJsonContentType(d.msg.props.content_type))
    return std::nullopt;
  rapidjson::Document doc;
  doc.Parse(d.msg.payload.data(), d.msg.payload.size());
  if (!doc.HasParseError()) return std::nullopt;
  return Outcome::Reject("payload is not valid JSON (content type " + d.msg.props.content_type +
                         "): " + rapidjson::GetParseError_En(doc.GetParseError()) +
                         " at offset " + std::to_string(doc.GetErrorOffset()));
}

}  // namespace foxworker
