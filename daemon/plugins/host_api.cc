// The host-services table (foxw_host_api, ABI 1.1) over foxworker::Delivery.
//
// Logging maps plugin levels onto glog: TRACE = VLOG(2), DEBUG = VLOG(1),
// INFO, WARN = WARNING, ERROR. The daemon turns its configured log level into
// FLAGS_v / FLAGS_minloglevel, so log_enabled() is a flag comparison.
// Metrics go to MetricsRegistry::Default() as foxworker_plugin_<plugin>_<name>.
#include "daemon/plugins/host_api.h"

#include <glog/logging.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstddef>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "daemon/base/clock.h"
#include "daemon/base/units.h"
#include "daemon/core/metrics.h"

namespace foxworker {

// One version of a plugin's config as the typed reads see it: the parsed
// JSON object, and the text of every number and boolean at the top level
// (config_string hands those out as borrowed strings). Immutable.
class PluginConfigValues {
 public:
  explicit PluginConfigValues(const std::string& json) : json_(json) {
    doc_.Parse(json.c_str(), json.size());
    if (doc_.HasParseError() || !doc_.IsObject()) doc_.SetObject();
    for (const auto& m : std::as_const(doc_).GetObject()) {
      if (!m.value.IsNumber() && !m.value.IsBool()) continue;
      rapidjson::StringBuffer sb;
      rapidjson::Writer<rapidjson::StringBuffer> w(sb);
      m.value.Accept(w);
      text_.emplace(m.name.GetString(), std::string(sb.GetString(), sb.GetSize()));
    }
  }
  // The value of a top-level key; null when absent or JSON null.
  const rapidjson::Value* Find(const char* key) const {
    if (key == nullptr) return nullptr;
    auto it = doc_.FindMember(key);
    if (it == doc_.MemberEnd() || it->value.IsNull()) return nullptr;
    return &it->value;
  }
  const std::string* Text(const char* key) const {
    auto it = text_.find(key);
    return it != text_.end() ? &it->second : nullptr;
  }
  const std::string& json() const { return json_; }

 private:
  const std::string json_;
  rapidjson::Document doc_;
  std::map<std::string, std::string, std::less<>> text_;
};

void SetPluginConfig(foxw_plugin_ctx* ctx, const std::string& json) {
  std::lock_guard<std::mutex> lock(ctx->config_mu);
  for (const auto& v : ctx->versions) {
    if (v->json() == json) {
      ctx->staged = v.get();
      return;
    }
  }
  ctx->versions.push_back(std::make_unique<const PluginConfigValues>(json));
  ctx->staged = ctx->versions.back().get();
}

void CommitPluginConfig(foxw_plugin_ctx* ctx) {
  std::lock_guard<std::mutex> lock(ctx->config_mu);
  if (ctx->staged != nullptr) ctx->committed = ctx->staged;
}

namespace {
thread_local const foxw_plugin_ctx* t_defining = nullptr;
}  // namespace

DefiningScope::DefiningScope(const foxw_plugin_ctx* ctx) : previous_(t_defining) {
  t_defining = ctx;
}
DefiningScope::~DefiningScope() { t_defining = previous_; }
bool IsDefining(const foxw_plugin_ctx* ctx) { return ctx != nullptr && t_defining == ctx; }

namespace {

constexpr foxw_str kEmpty = {"", 0};

foxw_str Borrow(const std::string& s) { return foxw_str{s.data(), s.size()}; }

const Delivery* AsDelivery(const foxw_message* msg) {
  return reinterpret_cast<const Delivery*>(msg);
}

void SetError(char* err, size_t cap, const std::string& text) {
  foxw_set_error(err, cap, text.c_str());
}

std::string_view PluginName(const foxw_plugin_ctx* ctx) {
  return ctx != nullptr ? std::string_view(ctx->plugin_name) : std::string_view("?");
}

// ---- logging ---------------------------------------------------------------

int32_t ClampLevel(int32_t level) {
  if (level < FOXW_LOG_TRACE) return FOXW_LOG_TRACE;
  if (level > FOXW_LOG_ERROR) return FOXW_LOG_ERROR;
  return level;
}

bool HostLogEnabled(const foxw_plugin_ctx* /*ctx*/, int32_t level) {
  switch (ClampLevel(level)) {
    case FOXW_LOG_TRACE:
      return VLOG_IS_ON(2);
    case FOXW_LOG_DEBUG:
      return VLOG_IS_ON(1);
    case FOXW_LOG_INFO:
      return FLAGS_minloglevel <= google::GLOG_INFO;
    case FOXW_LOG_WARN:
      return FLAGS_minloglevel <= google::GLOG_WARNING;
    default:
      return FLAGS_minloglevel <= google::GLOG_ERROR;
  }
}

void HostLog(const foxw_plugin_ctx* ctx, int32_t level, const char* text, size_t len) {
  if (!HostLogEnabled(ctx, level)) return;
  std::string_view line = text != nullptr ? std::string_view(text, len) : std::string_view();
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  google::LogSeverity severity = google::GLOG_INFO;
  switch (ClampLevel(level)) {
    case FOXW_LOG_WARN:
      severity = google::GLOG_WARNING;
      break;
    case FOXW_LOG_ERROR:
      severity = google::GLOG_ERROR;
      break;
    default:
      break;
  }
  google::LogMessage(__FILE__, __LINE__, severity).stream()
      << "[plugin " << PluginName(ctx) << "] " << line;
}

// ---- metrics ---------------------------------------------------------------

std::mutex& MetricHandlesMutex() {
  static std::mutex* mu = new std::mutex();
  return *mu;
}

// Full metric name -> handle. GUARDED_BY(MetricHandlesMutex())
std::map<std::string, std::unique_ptr<foxw_metric>>& MetricHandles() {
  static auto* handles = new std::map<std::string, std::unique_ptr<foxw_metric>>();
  return *handles;
}

foxw_metric* HostMetricDefine(foxw_plugin_ctx* ctx, int32_t kind, const char* name,
                              const char* help, char* err, size_t err_cap) {
  if (ctx == nullptr) {
    SetError(err, err_cap, "metric_define: no plugin context");
    return nullptr;
  }
  if (!IsDefining(ctx)) {
    SetError(err, err_cap, "metric_define: metrics can only be defined during init or create");
    return nullptr;
  }
  if (name == nullptr || name[0] == '\0') {
    SetError(err, err_cap, "metric_define: the metric name is empty");
    return nullptr;
  }
  if (kind != FOXW_METRIC_COUNTER && kind != FOXW_METRIC_GAUGE && kind != FOXW_METRIC_HISTOGRAM) {
    SetError(err, err_cap,
             "metric_define: unknown metric kind " + std::to_string(kind) + " for \"" + name +
                 "\" (expected FOXW_METRIC_COUNTER, FOXW_METRIC_GAUGE or FOXW_METRIC_HISTOGRAM)");
    return nullptr;
  }
  std::string error;
  foxw_metric* metric =
      DefineMetric("foxworker_plugin_" + ctx->plugin_name + "_" + name, kind,
                   help != nullptr ? std::string_view(help) : std::string_view(), &error);
  if (metric == nullptr) SetError(err, err_cap, "metric_define: " + error);
  return metric;
}

void HostMetricUpdate(foxw_metric* metric, double value) {
  if (metric == nullptr) return;
  switch (metric->kind) {
    case FOXW_METRIC_COUNTER:
      metric->counter->Increment(value);
      break;
    case FOXW_METRIC_GAUGE:
      metric->gauge->Set(value);
      metric->gauge_set.store(true, std::memory_order_release);
      break;
    case FOXW_METRIC_HISTOGRAM:
      metric->histogram->Observe(value);
      break;
    default:
      break;
  }
}

// ---- clocks ----------------------------------------------------------------

uint64_t HostMonotonicNs() { return MonotonicNs(); }

int64_t HostWallTimeMs() { return WallMs(); }

// ---- message accessors -----------------------------------------------------

foxw_str HostMsgId(const foxw_message* msg) {
  return msg != nullptr ? Borrow(AsDelivery(msg)->msg.id) : kEmpty;
}

foxw_str HostMsgQueue(const foxw_message* msg) {
  if (msg == nullptr || AsDelivery(msg)->queue == nullptr) return kEmpty;
  return Borrow(*AsDelivery(msg)->queue);
}

foxw_str HostMsgPayload(const foxw_message* msg) {
  return msg != nullptr ? Borrow(AsDelivery(msg)->msg.payload) : kEmpty;
}

foxw_str HostMsgProperty(const foxw_message* msg, int32_t property) {
  if (msg == nullptr) return kEmpty;
  const Properties& p = AsDelivery(msg)->msg.props;
  switch (property) {
    case FOXW_PROP_CONTENT_TYPE:
      return Borrow(p.content_type);
    case FOXW_PROP_CONTENT_ENCODING:
      return Borrow(p.content_encoding);
    case FOXW_PROP_MESSAGE_TYPE:
      return Borrow(p.message_type);
    case FOXW_PROP_CORRELATION_ID:
      return Borrow(p.correlation_id);
    case FOXW_PROP_REPLY_TO:
      return Borrow(p.reply_to);
    case FOXW_PROP_APP_ID:
      return Borrow(p.app_id);
    case FOXW_PROP_USER_ID:
      return Borrow(p.user_id);
    case FOXW_PROP_EXPIRATION:
      return Borrow(p.expiration);
    case FOXW_PROP_MESSAGE_ID:
      return Borrow(p.message_id);
    case FOXW_PROP_CLUSTER_ID:
      return Borrow(p.cluster_id);
    default:
      return kEmpty;
  }
}

bool HostMsgPropertyInt(const foxw_message* msg, int32_t property, int64_t* value) {
  if (msg == nullptr) return false;
  const Properties& p = AsDelivery(msg)->msg.props;
  int64_t v = 0;
  switch (property) {
    case FOXW_PROP_PRIORITY:
      if (!p.priority_set) return false;
      v = p.sent_priority;
      break;
    case FOXW_PROP_TIMESTAMP_MS:
      if (!p.timestamp_set) return false;
      v = p.timestamp_ms;
      break;
    case FOXW_PROP_DELIVERY_MODE:
      if (p.delivery_mode == 0) return false;
      v = p.delivery_mode;
      break;
    default:
      return false;
  }
  if (value != nullptr) *value = v;
  return true;
}

uint8_t HostMsgPriority(const foxw_message* msg) {
  return msg != nullptr ? AsDelivery(msg)->msg.props.priority : 0;
}

int64_t HostMsgTimestampMs(const foxw_message* msg) {
  return msg != nullptr ? AsDelivery(msg)->msg.props.timestamp_ms : 0;
}

int64_t HostMsgEnqueuedAtMs(const foxw_message* msg) {
  return msg != nullptr ? AsDelivery(msg)->msg.enqueued_at_ms : 0;
}

uint32_t HostMsgAttempt(const foxw_message* msg) {
  return msg != nullptr ? AsDelivery(msg)->msg.attempt : 0;
}

bool HostMsgHeader(const foxw_message* msg, const char* name, size_t name_len, foxw_str* value) {
  if (msg == nullptr || (name == nullptr && name_len != 0)) return false;
  std::string_view key = name != nullptr ? std::string_view(name, name_len) : std::string_view();
  const std::string* found = AsDelivery(msg)->msg.FindHeader(key);
  if (found == nullptr) return false;
  if (value != nullptr) *value = Borrow(*found);
  return true;
}

size_t HostMsgHeaderCount(const foxw_message* msg) {
  return msg != nullptr ? AsDelivery(msg)->msg.headers.size() : 0;
}

bool HostMsgHeaderAt(const foxw_message* msg, size_t index, foxw_str* name, foxw_str* value) {
  if (msg == nullptr) return false;
  const Headers& headers = AsDelivery(msg)->msg.headers;
  if (index >= headers.size()) return false;
  if (name != nullptr) *name = Borrow(headers[index].first);
  if (value != nullptr) *value = Borrow(headers[index].second);
  return true;
}

int32_t HostMsgHeaderType(const foxw_message* msg, size_t index) {
  if (msg == nullptr) return FOXW_HEADER_NONE;
  const Message& m = AsDelivery(msg)->msg;
  if (index >= m.headers.size()) return FOXW_HEADER_NONE;
  return static_cast<int32_t>(m.TypeOfHeader(index));
}

uint64_t HostMsgDeadlineNs(const foxw_message* msg) {
  return msg != nullptr ? AsDelivery(msg)->deadline_ns : Delivery::kNoDeadline;
}

bool HostMsgCancelled(const foxw_message* msg) {
  if (msg == nullptr) return true;
  return AsDelivery(msg)->IsCancelled(MonotonicNs());
}

// ---- completion and publishing ----------------------------------------------

int32_t HostComplete(const foxw_message* msg, foxw_verdict verdict, const char* reason,
                     size_t reason_len, uint64_t retry_delay_ms) {
  if (msg == nullptr) return -1;
  std::string_view text =
      reason != nullptr ? std::string_view(reason, reason_len) : std::string_view();
  return CompleteDeferred(FromForeign(msg), verdict, text, retry_delay_ms);
}

constexpr size_t kPublishV1Size = FOXW_PUBLISH_SIZE_1_0;

int32_t HostPublish(foxw_plugin_ctx* ctx, const foxw_message* parent, const foxw_publish* publish,
                    char* err, size_t err_cap) {
  if (ctx == nullptr) {
    SetError(err, err_cap, "publish: no plugin context");
    return -1;
  }
  if (publish == nullptr) {
    SetError(err, err_cap, "publish: no message given");
    return -1;
  }
  if (publish->struct_size < kPublishV1Size) {
    SetError(err, err_cap,
             "publish: foxw_publish.struct_size is " + std::to_string(publish->struct_size) +
                 ", smaller than the " + std::to_string(kPublishV1Size) + " bytes of ABI 1.0");
    return -1;
  }
  if (publish->queue.len == 0 || publish->queue.ptr == nullptr) {
    SetError(err, err_cap, "publish: the queue name is empty");
    return -1;
  }
  if (publish->header_count != 0 && publish->headers == nullptr) {
    SetError(err, err_cap, "publish: header_count is set but headers is NULL");
    return -1;
  }
  if (IsDefining(ctx)) {
    SetError(err, err_cap, "publish is not available during init or create");
    return -1;
  }
  if (!ctx->publish) {
    SetError(err, err_cap, "publishing is not available");
    return -1;
  }
  // Read only the fields this host knows, whatever the plugin's struct size.
  foxw_publish copy;
  std::memset(&copy, 0, sizeof(copy));
  std::memcpy(&copy, publish, std::min(publish->struct_size, sizeof(copy)));
  copy.struct_size = sizeof(copy);
  const std::pair<const char*, const foxw_str*> strings[] = {
      {"payload", &copy.payload},       {"message_type", &copy.message_type},
      {"content_type", &copy.content_type}, {"correlation_id", &copy.correlation_id},
      {"message_id", &copy.message_id}, {"app_id", &copy.app_id},
      {"content_encoding", &copy.content_encoding}};
  for (const auto& [field, str] : strings) {
    if (str->len != 0 && str->ptr == nullptr) {
      SetError(err, err_cap, std::string("publish: ") + field + ".len is set but its ptr is NULL");
      return -1;
    }
  }
  Status status = ctx->publish(copy, parent != nullptr ? FromForeign(parent) : nullptr);
  if (!status.ok()) {
    SetError(err, err_cap,
             "publish to \"" + std::string(publish->queue.ptr, publish->queue.len) +
                 "\": " + status.message());
    return -1;
  }
  return 0;
}

// ---- typed config ----------------------------------------------------------

// The config the calling thread's reads see now; null without a ctx.
const PluginConfigValues* CurrentConfig(const foxw_plugin_ctx* ctx) {
  if (ctx == nullptr) return nullptr;
  auto* mutable_ctx = const_cast<foxw_plugin_ctx*>(ctx);
  std::lock_guard<std::mutex> lock(mutable_ctx->config_mu);
  // Every version lives in `versions` until the ctx dies, so the pointer
  // outlives this call.
  if (t_defining == ctx && mutable_ctx->staged != nullptr) return mutable_ctx->staged;
  return mutable_ctx->committed;
}

const rapidjson::Value* ConfigValue(const foxw_plugin_ctx* ctx, const char* key) {
  const PluginConfigValues* c = CurrentConfig(ctx);
  return c != nullptr ? c->Find(key) : nullptr;
}

int32_t HostConfigString(const foxw_plugin_ctx* ctx, const char* key, foxw_str* value) {
  const PluginConfigValues* config = CurrentConfig(ctx);  // once: a reload may commit meanwhile
  const rapidjson::Value* v = config != nullptr ? config->Find(key) : nullptr;
  if (v == nullptr) return FOXW_CONFIG_ABSENT;
  if (v->IsString()) {
    if (value != nullptr) *value = foxw_str{v->GetString(), v->GetStringLength()};
    return FOXW_CONFIG_OK;
  }
  const std::string* text = config->Text(key);
  if (text == nullptr) return FOXW_CONFIG_WRONG_TYPE;
  if (value != nullptr) *value = Borrow(*text);
  return FOXW_CONFIG_OK;
}

bool ParseWholeInt(const char* text, int64_t* out) {
  if (text == nullptr || *text == '\0') return false;
  char* end = nullptr;
  errno = 0;
  long long n = strtoll(text, &end, 10);
  if (errno != 0 || end == nullptr || *end != '\0') return false;
  *out = n;
  return true;
}

int32_t HostConfigInt(const foxw_plugin_ctx* ctx, const char* key, int64_t* value) {
  const rapidjson::Value* v = ConfigValue(ctx, key);
  if (v == nullptr) return FOXW_CONFIG_ABSENT;
  int64_t n = 0;
  if (v->IsInt64()) {
    n = v->GetInt64();
  } else if (!v->IsString() || !ParseWholeInt(v->GetString(), &n)) {
    return FOXW_CONFIG_WRONG_TYPE;
  }
  if (value != nullptr) *value = n;
  return FOXW_CONFIG_OK;
}

int32_t HostConfigDouble(const foxw_plugin_ctx* ctx, const char* key, double* value) {
  const rapidjson::Value* v = ConfigValue(ctx, key);
  if (v == nullptr) return FOXW_CONFIG_ABSENT;
  if (!v->IsNumber()) return FOXW_CONFIG_WRONG_TYPE;
  if (value != nullptr) *value = v->GetDouble();
  return FOXW_CONFIG_OK;
}

int32_t HostConfigBool(const foxw_plugin_ctx* ctx, const char* key, bool* value) {
  const rapidjson::Value* v = ConfigValue(ctx, key);
  if (v == nullptr) return FOXW_CONFIG_ABSENT;
  bool b = false;
  if (v->IsBool()) {
    b = v->GetBool();
  } else if (v->IsString()) {
    std::string_view s(v->GetString(), v->GetStringLength());
    if (s == "true" || s == "yes" || s == "on") {
      b = true;
    } else if (s == "false" || s == "no" || s == "off") {
      b = false;
    } else {
      return FOXW_CONFIG_WRONG_TYPE;
    }
  } else {
    return FOXW_CONFIG_WRONG_TYPE;
  }
  if (value != nullptr) *value = b;
  return FOXW_CONFIG_OK;
}

int32_t HostConfigDurationMs(const foxw_plugin_ctx* ctx, const char* key, uint64_t* value) {
  const rapidjson::Value* v = ConfigValue(ctx, key);
  if (v == nullptr) return FOXW_CONFIG_ABSENT;
  uint64_t ms = 0;
  if (v->IsUint64()) {
    ms = v->GetUint64();
  } else if (v->IsString()) {
    auto d = ParseDuration(std::string_view(v->GetString(), v->GetStringLength()));
    if (!d.ok() || d->count() < 0) return FOXW_CONFIG_WRONG_TYPE;
    ms = static_cast<uint64_t>(d->count());
  } else {
    return FOXW_CONFIG_WRONG_TYPE;
  }
  if (value != nullptr) *value = ms;
  return FOXW_CONFIG_OK;
}

int32_t HostConfigCount(const foxw_plugin_ctx* ctx, const char* key, size_t* count) {
  const rapidjson::Value* v = ConfigValue(ctx, key);
  if (v == nullptr) return FOXW_CONFIG_ABSENT;
  size_t n = 0;
  if (v->IsArray()) {
    n = v->Size();
  } else if (v->IsObject()) {
    n = v->MemberCount();
  } else {
    return FOXW_CONFIG_WRONG_TYPE;
  }
  if (count != nullptr) *count = n;
  return FOXW_CONFIG_OK;
}

int32_t HostConfigItem(const foxw_plugin_ctx* ctx, const char* key, size_t index, foxw_str* name,
                       foxw_str* value) {
  const rapidjson::Value* v = ConfigValue(ctx, key);
  if (v == nullptr) return FOXW_CONFIG_ABSENT;
  const rapidjson::Value* item = nullptr;
  const rapidjson::Value* item_name = nullptr;
  if (v->IsArray()) {
    if (index >= v->Size()) return FOXW_CONFIG_ABSENT;
    item = &(*v)[static_cast<rapidjson::SizeType>(index)];
  } else if (v->IsObject()) {
    if (index >= v->MemberCount()) return FOXW_CONFIG_ABSENT;
    auto it = v->MemberBegin() + static_cast<std::ptrdiff_t>(index);
    item_name = &it->name;
    item = &it->value;
  } else {
    return FOXW_CONFIG_WRONG_TYPE;
  }
  if (!item->IsString()) return FOXW_CONFIG_WRONG_TYPE;
  if (name != nullptr)
    *name = item_name != nullptr ? foxw_str{item_name->GetString(), item_name->GetStringLength()}
                                 : kEmpty;
  if (value != nullptr) *value = foxw_str{item->GetString(), item->GetStringLength()};
  return FOXW_CONFIG_OK;
}

const foxw_host_api kHostApi = {
    sizeof(foxw_host_api),
    FOXW_ABI_MAJOR,
    FOXW_ABI_MINOR,
    &HostLogEnabled,
    &HostLog,
    &HostMetricDefine,
    &HostMetricUpdate,
    &HostMonotonicNs,
    &HostWallTimeMs,
    &HostMsgId,
    &HostMsgQueue,
    &HostMsgPayload,
    &HostMsgProperty,
    &HostMsgPriority,
    &HostMsgTimestampMs,
    &HostMsgEnqueuedAtMs,
    &HostMsgAttempt,
    &HostMsgHeader,
    &HostMsgHeaderCount,
    &HostMsgHeaderAt,
    &HostMsgDeadlineNs,
    &HostMsgCancelled,
    &HostComplete,
    &HostPublish,
    &HostConfigString,
    &HostConfigInt,
    &HostConfigDouble,
    &HostConfigBool,
    &HostConfigDurationMs,
    &HostConfigCount,
    &HostConfigItem,
    &HostMsgPropertyInt,
    &HostMsgHeaderType,
};
static_assert(sizeof(foxw_host_api) == FOXW_HOST_API_SIZE_1_1,
              "this host is ABI 1.1: its table ends at msg_header_type");
static_assert(FOXW_ABI_MINOR == 1, "a new minor needs its services in kHostApi");

}  // namespace

const foxw_host_api* HostApi() { return &kHostApi; }

foxw_metric* DefineMetric(const std::string& full_name, int32_t kind, std::string_view help,
                          std::string* error) {
  std::lock_guard<std::mutex> lock(MetricHandlesMutex());
  auto& handles = MetricHandles();
  auto it = handles.find(full_name);
  if (it != handles.end() && it->second->kind == kind) return it->second.get();

  auto handle = std::make_unique<foxw_metric>();
  handle->kind = kind;
  handle->name = full_name;
  handle->help = std::string(help);
  Status status;
  MetricsRegistry& registry = MetricsRegistry::Default();
  if (kind == FOXW_METRIC_COUNTER) {
    Result<Counter*> r = registry.DefineCounter(full_name, help);
    status = r.status();
    if (r.ok()) handle->counter = *r;
  } else if (kind == FOXW_METRIC_GAUGE) {
    Result<Gauge*> r = registry.DefineGauge(full_name, help);
    status = r.status();
    if (r.ok()) handle->gauge = *r;
  } else if (kind == FOXW_METRIC_HISTOGRAM) {
    Result<Histogram*> r = registry.DefineHistogram(full_name, help);
    status = r.status();
    if (r.ok()) handle->histogram = *r;
  } else {
    status = Status::InvalidArgument("unknown metric kind " + std::to_string(kind));
  }
  if (!status.ok()) {
    if (error != nullptr) *error = status.message();
    return nullptr;
  }
  foxw_metric* result = handle.get();
  handles[full_name] = std::move(handle);
  return result;
}

std::vector<foxw_metric*> DefinedMetrics() {
  std::lock_guard<std::mutex> lock(MetricHandlesMutex());
  std::vector<foxw_metric*> out;
  out.reserve(MetricHandles().size());
  for (const auto& [name, handle] : MetricHandles()) out.push_back(handle.get());
  return out;
}

}  // namespace foxworker

foxw_plugin_ctx::foxw_plugin_ctx() = default;
foxw_plugin_ctx::~foxw_plugin_ctx() = default;
