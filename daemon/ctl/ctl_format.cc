#include "daemon/ctl/ctl_format.h"

#include <algorithm>
#include <cstdio>
#include <ostream>

#include "daemon/base/base64.h"
#include "daemon/base/clock.h"

namespace foxworker {
namespace {

std::string TimeOrDash(int64_t unix_ms) {
  return unix_ms == 0 ? std::string("-") : FormatIso8601Utc(unix_ms);
}

// The string properties that are set, by their stored name.
std::vector<std::pair<const char*, const std::string*>> StringProperties(const Properties& p) {
  std::vector<std::pair<const char*, const std::string*>> all = {
      {"content_type", &p.content_type}, {"content_encoding", &p.content_encoding},
      {"message_type", &p.message_type}, {"correlation_id", &p.correlation_id},
      {"reply_to", &p.reply_to},         {"app_id", &p.app_id},
      {"user_id", &p.user_id},           {"expiration", &p.expiration},
      {"message_id", &p.message_id},
  };
  std::erase_if(all, [](const auto& f) { return f.second->empty(); });
  return all;
}

// "content_type=application/json, message_type=signup"
std::string DescribeProperties(const Properties& p) {
  std::string out;
  for (const auto& [name, value] : StringProperties(p)) {
    if (!out.empty()) out += ", ";
    out += std::string(name) + "=" + *value;
  }
  if (p.timestamp_ms != 0) {
    if (!out.empty()) out += ", ";
    out += "timestamp=" + FormatIso8601Utc(p.timestamp_ms);
  }
  return out.empty() ? "-" : out;
}

}  // namespace

std::string FormatAge(int64_t ms) {
  char buf[32];
  if (ms < 1000) {
    std::snprintf(buf, sizeof(buf), "%lldms", static_cast<long long>(ms));
  } else if (ms < 60'000) {
    std::snprintf(buf, sizeof(buf), "%.1fs", static_cast<double>(ms) / 1000.0);
  } else if (ms < 3'600'000) {
    std::snprintf(buf, sizeof(buf), "%lldm%02llds", static_cast<long long>(ms / 60'000),
                  static_cast<long long>(ms / 1000 % 60));
  } else if (ms < 86'400'000) {
    std::snprintf(buf, sizeof(buf), "%lldh%02lldm", static_cast<long long>(ms / 3'600'000),
                  static_cast<long long>(ms / 60'000 % 60));
  } else {
    std::snprintf(buf, sizeof(buf), "%lldd%lldh", static_cast<long long>(ms / 86'400'000),
                  static_cast<long long>(ms / 3'600'000 % 24));
  }
  return buf;
}

bool IsPrintableText(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f) return false;
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > s.size()) return false;
    for (size_t k = 1; k < len; ++k) {
      auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    // Overlong forms, surrogates and values past Unicode are not UTF-8.
    static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

void PrintTable(std::ostream& out, const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& row : rows) {
    if (width.size() < row.size()) width.resize(row.size(), 0);
    for (size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  }
  for (const auto& row : rows) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) {
      line += row[c];
      if (c + 1 < row.size()) line.append(width[c] - row[c].size() + 2, ' ');
    }
    out << line << '\n';
  }
}

void WriteJsonString(JsonWriter& w, std::string_view s) {
  w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

void WriteJsonTime(JsonWriter& w, int64_t unix_ms) {
  if (unix_ms == 0) {
    w.Null();
  } else {
    WriteJsonString(w, FormatIso8601Utc(unix_ms));
  }
}

void WriteJobJson(JsonWriter& w, const JobRecord& job, bool with_payload) {
  auto optional_string = [&](const char* key, const std::string& v) {
    w.Key(key);
    if (v.empty()) {
      w.Null();
    } else {
      WriteJsonString(w, v);
    }
  };
  w.StartObject();
  w.Key("id");
  w.Int64(job.id);
  w.Key("queue");
  WriteJsonString(w, job.queue);
  w.Key("state");
  w.String(JobStateName(job.state));
  w.Key("priority");
  w.Int64(job.priority);
  w.Key("attempts");
  w.Uint(job.attempts);
  w.Key("enqueued_at");
  WriteJsonTime(w, job.enqueued_at_ms);
  w.Key("run_at");
  WriteJsonTime(w, job.run_at_ms);
  w.Key("first_attempt_at");
  WriteJsonTime(w, job.first_attempt_at_ms);
  w.Key("failed_at");
  WriteJsonTime(w, job.failed_at_ms);
  optional_string("last_error", job.last_error);
  optional_string("unique_key", job.unique_key);
  w.Key("message_type");
  WriteJsonString(w, job.props.message_type);
  w.Key("payload_bytes");
  w.Uint64(job.payload.size());
  if (with_payload) {
    const Properties& p = job.props;
    w.Key("properties");
    w.StartObject();
    for (const auto& [name, value] : StringProperties(p)) {
      w.Key(name);
      WriteJsonString(w, *value);
    }
    if (p.timestamp_ms != 0) {
      w.Key("timestamp_ms");
      w.Int64(p.timestamp_ms);
    }
    w.EndObject();
    w.Key("headers");
    w.StartObject();
    for (const auto& [name, value] : job.headers) {
      w.Key(name.data(), static_cast<rapidjson::SizeType>(name.size()));
      WriteJsonString(w, value);
    }
    w.EndObject();
    if (IsPrintableText(job.payload)) {
      w.Key("payload");
      WriteJsonString(w, job.payload);
    } else {
      w.Key("payload_base64");
      WriteJsonString(w, Base64(job.payload));
    }
  }
  w.EndObject();
}

void PrintJob(std::ostream& out, const JobRecord& job) {
  std::vector<std::vector<std::string>> rows = {
      {"id:", std::to_string(job.id)},
      {"queue:", job.queue},
      {"state:", JobStateName(job.state)},
      {"attempts:", std::to_string(job.attempts)},
      {"priority:", std::to_string(job.priority)},
      {"enqueued at:", TimeOrDash(job.enqueued_at_ms)},
      {"run at:", TimeOrDash(job.run_at_ms)},
      {"first attempt:", TimeOrDash(job.first_attempt_at_ms)},
      {"failed at:", TimeOrDash(job.failed_at_ms)},
      {"last error:", job.last_error.empty() ? "-" : job.last_error},
      {"unique key:", job.unique_key.empty() ? "-" : job.unique_key},
      {"properties:", DescribeProperties(job.props)},
  };
  if (job.state == JobState::kRunning) {
    rows.push_back({"owner:", job.owner});
    rows.push_back({"lease until:", TimeOrDash(job.lease_until_ms)});
  }
  if (job.headers.empty()) rows.push_back({"headers:", "-"});
  for (const auto& [name, value] : job.headers) rows.push_back({"header:", name + "=" + value});
  PrintTable(out, rows);
  if (IsPrintableText(job.payload)) {
    out << "payload (" << job.payload.size() << " bytes):\n" << job.payload;
    if (!job.payload.empty() && job.payload.back() != '\n') out << '\n';
  } else {
    out << "payload (" << job.payload.size() << " bytes, binary, shown as base64):\n"
        << Base64(job.payload) << '\n';
  }
}

}  // namespace foxworker
