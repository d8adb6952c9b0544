// How a job's message properties and headers are stored in the local
// backend's SQLite file: as JSON text, so `sqlite3` and json_extract() can
// read them. The priority is not part of the properties JSON: it has its own
// column because claims order by it.
#ifndef FOXWORKER_BACKENDS_LOCAL_JOB_CODEC_H_
#define FOXWORKER_BACKENDS_LOCAL_JOB_CODEC_H_

#include <string>
#include <string_view>

#include "daemon/core/message.h"
#include "daemon/base/status.h"

namespace foxworker {

// A JSON object with the properties that are set (non-empty strings, a
// non-zero timestamp), e.g. {"content_type":"application/json"}; "" when
// none is set (stored as NULL).
std::string EncodeProperties(const Properties& props);

// Reads what EncodeProperties wrote; unknown keys are ignored so that newer
// files stay readable. `out->priority` is left unchanged. "" decodes to
// nothing.
Status DecodeProperties(std::string_view json, Properties* out);

// A JSON object {"name":"value",...} in header order; "" when there are no
// headers. Repeated names are kept (JSON allows them; json_extract() sees
// the last).
std::string EncodeHeaders(const Headers& headers);

// Reads what EncodeHeaders wrote. "" decodes to no headers.
Status DecodeHeaders(std::string_view json, Headers* out);

}  // namespace foxworker

#endif  // FOXWORKER_BACKENDS_LOCAL_JOB_CODEC_H_
