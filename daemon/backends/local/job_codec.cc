#include "daemon/backends/local/job_codec.h"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <array>
#include <utility>

namespace foxworker {
namespace {

// The string properties, by their JSON key. Order is the stored order.
using StringField = std::string Properties::*;
constexpr std::array<std::pair<const char*, StringField>, 9> kStringFields = {{
    {"content_type", &Properties::content_type},
    {"content_encoding", &Properties::content_encoding},
    {"message_type", &Properties::message_type},
    {"correlation_id", &Properties::correlation_id},
    {"reply_to", &Properties::reply_to},
    {"app_id", &Properties::app_id},
    {"user_id", &Properties::user_id},
    {"expiration", &Properties::expiration},
    {"message_id", &Properties::message_id},
}};
constexpr char kTimestampKey[] = "timestamp_ms";

void WriteString(rapidjson::Writer<rapidjson::StringBuffer>& w, const std::string& s) {
  w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

Status ParseObject(std::string_view json, const char* what, rapidjson::Document* doc) {
  doc->Parse(json.data(), json.size());
  if (doc->HasParseError() || !doc->IsObject()) {
    return Status::InvalidArgument(std::string("stored ") + what +
                                   " are not a JSON object: " + std::string(json.substr(0, 200)));
  }
  return Status::Ok();
}

}  // namespace

std::string EncodeProperties(const Properties& props) {
  bool any = props.timestamp_ms != 0;
  for (const auto& [key, field] : kStringFields) any = any || !(props.*field).empty();
  if (!any) return {};

  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  w.StartObject();
  for (const auto& [key, field] : kStringFields) {
    if ((props.*field).empty()) continue;
    w.Key(key);
    WriteString(w, props.*field);
  }
  if (props.timestamp_ms != 0) {
    w.Key(kTimestampKey);
    w.Int64(props.timestamp_ms);
  }
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

Status DecodeProperties(std::string_view json, Properties* out) {
  if (json.empty()) return Status::Ok();
  rapidjson::Document parsed;
  if (Status s = ParseObject(json, "properties", &parsed); !s.ok()) return s;
  // Const iterators: comparing mutable rapidjson iterators is ambiguous in
  // C++20 (clang's -Wambiguous-reversed-operator).
  const rapidjson::Document& doc = parsed;
  for (const auto& [key, field] : kStringFields) {
    auto it = doc.FindMember(key);
    if (it != doc.MemberEnd() && it->value.IsString()) {
      out->*field = std::string(it->value.GetString(), it->value.GetStringLength());
    }
  }
  auto ts = doc.FindMember(kTimestampKey);
  if (ts != doc.MemberEnd() && ts->value.IsInt64()) {
    out->timestamp_ms = ts->value.GetInt64();
    out->timestamp_set = true;
  }
  return Status::Ok();
}

std::string EncodeHeaders(const Headers& headers) {
  if (headers.empty()) return {};
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  w.StartObject();
  for (const auto& [name, value] : headers) {
    w.Key(name.data(), static_cast<rapidjson::SizeType>(name.size()));
    WriteString(w, value);
  }
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

Status DecodeHeaders(std::string_view json, Headers* out) {
  out->clear();
  if (json.empty()) return Status::Ok();
  rapidjson::Document doc;
  if (Status s = ParseObject(json, "headers", &doc); !s.ok()) return s;
  out->reserve(doc.MemberCount());
  for (const auto& m : std::as_const(doc).GetObject()) {
    std::string name(m.name.GetString(), m.name.GetStringLength());
    if (m.value.IsString()) {
      out->emplace_back(std::move(name),
                        std::string(m.value.GetString(), m.value.GetStringLength()));
    } else {
      // Written by hand with sqlite3: keep the value as its JSON text.
      rapidjson::StringBuffer buf;
      rapidjson::Writer<rapidjson::StringBuffer> w(buf);
      m.value.Accept(w);
      out->emplace_back(std::move(name), std::string(buf.GetString(), buf.GetSize()));
    }
  }
  return Status::Ok();
}

}  // namespace foxworker
