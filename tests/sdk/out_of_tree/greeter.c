#include <foxworker/plugin.h>
#include <string.h>

static const foxw_host_api *host;

static foxw_verdict greet(void *instance, const foxw_message *msg, foxw_outcome *out) {
  (void)instance;
  foxw_str payload = host->msg_payload(msg);
  if (payload.len == 5 && memcmp(payload.ptr, "hello", 5) == 0) return FOXW_ACK;
  foxw_set_reason(out, "expected hello", 14);
  return FOXW_REJECT;
}

static int32_t create(foxw_plugin_ctx *ctx, const char *json, size_t len, void **instance,
                      char *err, size_t cap) {
  (void)ctx; (void)json; (void)len; (void)err; (void)cap;
  *instance = NULL;
  return 0;
}

static void destroy(void *instance) { (void)instance; }

static const foxw_handler_def handlers[] = {{sizeof(foxw_handler_def), "*", greet, 0}};
static const foxw_plugin_v1 plugin = {sizeof(foxw_plugin_v1), FOXW_INSTANCE_SHARED, 0, handlers, 1,
                                      create, destroy, NULL};

FOXW_DECLARE_PLUGIN("greeter", "1.0.0", "out-of-tree test plugin", NULL, 0)

FOXW_EXPORT const foxw_plugin_v1 *foxworker_plugin_init_v1(const foxw_host_api *h,
                                                           foxw_plugin_ctx *ctx, char *err,
                                                           size_t cap) {
  (void)ctx; (void)err; (void)cap;
  host = h;
  return &plugin;
}
