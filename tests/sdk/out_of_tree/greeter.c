/* An out-of-tree plugin in C, built against the installed SDK only: acks
 * "hello" and rejects anything else. */
#include <foxworker/plugin.h>
#include <string.h>

static const foxw_host_api *host;

static foxw_verdict greet(void *instance, const foxw_message *msg, foxw_outcome *out) {
  foxw_str payload = host->msg_payload(msg);
  (void)instance;
  if (payload.len == 5 && memcmp(payload.ptr, "hello", 5) == 0) return FOXW_ACK;
  return foxw_reject(out, "expected hello");
}

static int32_t create(foxw_plugin_ctx *ctx, const char *json, size_t len, void **instance,
                      char *err, size_t cap) {
  (void)ctx; (void)json; (void)len; (void)err; (void)cap;
  *instance = NULL;
  return 0;
}

static void destroy(void *instance) { (void)instance; }

static const foxw_handler_def handlers[] = {FOXW_HANDLER("*", greet)};
static const foxw_plugin_v1 plugin = {sizeof(foxw_plugin_v1), FOXW_INSTANCE_SHARED, 0, handlers,
                                      sizeof(handlers) / sizeof(handlers[0]),
                                      sizeof(foxw_handler_def), create, destroy, NULL};

FOXW_DECLARE_PLUGIN("greeter", "1.0.0", "out-of-tree test plugin", NULL, 0)

FOXW_EXPORT const foxw_plugin_v1 *foxworker_plugin_init_v1(const foxw_host_api *h,
                                                           foxw_plugin_ctx *ctx, char *err,
                                                           size_t cap) {
  (void)ctx;
  if (!foxw_host_usable(h, err, cap)) return NULL;
  host = h;
  return &plugin;
}
