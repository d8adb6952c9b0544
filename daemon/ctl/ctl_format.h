// How foxworkerctl prints: aligned tables and short ages for people, JSON
// for scripts.
#ifndef FOXWORKER_CTL_CTL_FORMAT_H_
#define FOXWORKER_CTL_CTL_FORMAT_H_

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cstdint>
#include <iosfwd>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/backends/local/local_store.h"

namespace foxworker {

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

// "850ms", "4.2s", "3m05s", "2h10m", "3d4h".
std::string FormatAge(int64_t ms);

// True when `s` is valid UTF-8 without control characters other than tab,
// newline and carriage return: safe to print to a terminal as it is.
bool IsPrintableText(std::string_view s);

// Prints `rows` (the first is the header) with columns padded to line up.
void PrintTable(std::ostream& out, const std::vector<std::vector<std::string>>& rows);

void WriteJsonString(JsonWriter& w, std::string_view s);
// An ISO 8601 time, or null for 0.
void WriteJsonTime(JsonWriter& w, int64_t unix_ms);
// The job as a JSON object; with `with_payload`, the payload as "payload"
// when it is printable text, else as "payload_base64".
void WriteJobJson(JsonWriter& w, const JobRecord& job, bool with_payload);

// The job as indented "name: value" lines followed by its payload.
void PrintJob(std::ostream& out, const JobRecord& job);

}  // namespace foxworker

#endif  // FOXWORKER_CTL_CTL_FORMAT_H_
