// Fuzzes a plugin's config as plugins read it: the JSON object the host
// hands over (SetPluginConfig / CommitPluginConfig) and every typed read of
// the host API (config_string, _int, _double, _bool, _duration_ms, _count,
// _item) on every key of it, with the values' bytes checked by ASan.
//
// Input: the JSON text. The keys read are the object's own (when it parses)
// and a few fixed ones.
#include <foxworker/plugin.h>
#include <rapidjson/document.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "daemon/plugins/host_api.h"

namespace {

[[noreturn]] void Fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "plugin_config_fuzzer: %s\n%s\n", what, detail.c_str());
  std::abort();
}

// Touches every byte, so ASan sees a read past the end.
size_t Touch(const foxw_str& s) {
  size_t sum = 0;
  for (size_t i = 0; i < s.len; ++i) sum += static_cast<unsigned char>(s.ptr[i]);
  return sum;
}

void ReadKey(const foxw_host_api* host, const foxw_plugin_ctx* ctx, const char* key) {
  foxw_str s{};
  if (host->config_string(ctx, key, &s) == FOXW_CONFIG_OK) (void)Touch(s);
  int64_t i = 0;
  (void)host->config_int(ctx, key, &i);
  double d = 0;
  (void)host->config_double(ctx, key, &d);
  bool b = false;
  (void)host->config_bool(ctx, key, &b);
  uint64_t ms = 0;
  (void)host->config_duration_ms(ctx, key, &ms);
  size_t count = 0;
  if (host->config_count(ctx, key, &count) == FOXW_CONFIG_OK) {
    for (size_t k = 0; k <= count && k < 64; ++k) {
      foxw_str name{}, value{};
      const int32_t rc = host->config_item(ctx, key, k, &name, &value);
      if (k == count && rc != FOXW_CONFIG_ABSENT) Fail("config_item past the end", key);
      if (rc == FOXW_CONFIG_OK) {
        (void)Touch(name);
        (void)Touch(value);
      }
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string json(reinterpret_cast<const char*>(data), size);
  const foxw_host_api* host = foxworker::HostApi();
  foxw_plugin_ctx ctx;
  ctx.plugin_name = "fuzz";
  foxworker::SetPluginConfig(&ctx, json);
  // Inside init or create: the staged config.
  {
    foxworker::DefiningScope scope(&ctx);
    ReadKey(host, &ctx, "a");
  }
  foxworker::CommitPluginConfig(&ctx);

  std::vector<std::string> keys = {"", "a", "timeout", "list", "map"};
  rapidjson::Document doc;
  doc.Parse(json.c_str(), json.size());
  if (!doc.HasParseError() && doc.IsObject()) {
    for (const auto& m : std::as_const(doc).GetObject())
      keys.emplace_back(m.name.GetString(), m.name.GetStringLength());
  }
  for (const std::string& key : keys) ReadKey(host, &ctx, key.c_str());
  ReadKey(host, &ctx, nullptr);

  // A second version (a reload) keeps the first one's strings valid.
  foxworker::SetPluginConfig(&ctx, "{\"a\": 1}");
  foxworker::CommitPluginConfig(&ctx);
  ReadKey(host, &ctx, "a");
  return 0;
}
