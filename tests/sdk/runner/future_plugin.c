/* A plugin as a later SDK (1.1, say) would build it: every growable struct it
 * fills has a field appended, and arrays carry the larger element sizes.
 * By default it targets ABI 1.0 and must load and run in this runner; built
 * with -DFUTURE_NEEDS_NEWER_MINOR it needs the next minor and must be
 * refused with a clear message. The FUTURE_* macros below break one thing
 * each, for the loader's refusals. */
#include <foxworker/plugin.h>

#include <stdio.h>
#include <string.h>

#ifdef FUTURE_NEEDS_NEWER_MINOR
#define TARGET_MINOR (FOXW_ABI_MINOR + 1)
#else
#define TARGET_MINOR 0
#endif

/* What the blocks claim; by default, the truth. */
#ifndef FUTURE_KEY_COUNT
#define FUTURE_KEY_COUNT 2
#endif
#ifndef FUTURE_KEY_SIZE
#define FUTURE_KEY_SIZE sizeof(key_next)
#endif
#ifndef FUTURE_HANDLER_COUNT
#define FUTURE_HANDLER_COUNT 2
#endif
#ifndef FUTURE_HANDLER_SIZE
#define FUTURE_HANDLER_SIZE sizeof(handler_next)
#endif
#ifndef FUTURE_HANDLER_RESERVED /* the second handler's `reserved` */
#define FUTURE_HANDLER_RESERVED 0
#endif

typedef struct { foxw_plugin_info base; uint64_t appended; } info_next;
typedef struct { foxw_config_key base; uint64_t appended; } key_next;
typedef struct { foxw_handler_def base; uint64_t appended; } handler_next;
typedef struct { foxw_plugin_v1 base; uint64_t appended; } plugin_next;
typedef struct { foxw_publish base; uint64_t appended; } publish_next;

static const foxw_host_api *host;
static foxw_plugin_ctx *plugin_ctx;

static foxw_verdict first(void *self, const foxw_message *m, foxw_outcome *out) {
  (void)self;
  (void)m;
  foxw_set_reason(out, "first", 5);
  return FOXW_ACK;
}

static foxw_verdict second(void *self, const foxw_message *m, foxw_outcome *out) {
  int64_t alpha = 0;
  uint64_t beta = 0;
  char line[128], err[128] = "";
  publish_next p;
  (void)self;
  host->config_int(plugin_ctx, "alpha", &alpha);
  host->config_duration_ms(plugin_ctx, "beta", &beta);
  snprintf(line, sizeof line, "alpha=%lld beta_ms=%llu", (long long)alpha,
           (unsigned long long)beta);
  host->log(plugin_ctx, FOXW_LOG_INFO, line, strlen(line));
  memset(&p, 0, sizeof p);
  p.base.struct_size = sizeof p;
  p.base.queue.ptr = "next";
  p.base.queue.len = 4;
  p.base.payload.ptr = "grown";
  p.base.payload.len = 5;
  p.appended = 42;
  if (host->publish(plugin_ctx, m, &p.base, err, sizeof err) != 0)
    return foxw_retry(out, err, 0);
  return foxw_reject(out, "second");
}

static const key_next keys[] = {
    {{sizeof(key_next), "alpha", FOXW_CONFIG_INT, false, "1", ""}, 0xdeadbeef},
    {{sizeof(key_next), "beta", FOXW_CONFIG_DURATION, false, "2s", ""}, 0xdeadbeef},
};

FOXW_EXPORT const foxw_plugin_info *foxworker_plugin_magic(void) {
  static const info_next info = {
      {sizeof(info_next), FOXW_PLUGIN_MAGIC_VALUE, FOXW_ABI_MAJOR, TARGET_MINOR,
       FOXW_ABI_MINOR + 1, 0, "future", "9.9.9", "built by a later SDK", &keys[0].base,
       FUTURE_KEY_COUNT, FUTURE_KEY_SIZE},
      0xdeadbeef};
  return &info.base;
}

static int32_t create(foxw_plugin_ctx *ctx, const char *config, size_t len, void **instance,
                      char *err, size_t err_cap) {
  (void)ctx;
  (void)config;
  (void)len;
  (void)err;
  (void)err_cap;
  *instance = NULL;
  return 0;
}

static void destroy(void *instance) { (void)instance; }

FOXW_EXPORT const foxw_plugin_v1 *foxworker_plugin_init_v1(const foxw_host_api *h,
                                                           foxw_plugin_ctx *ctx, char *err,
                                                           size_t err_cap) {
  static const handler_next handlers[] = {
      {{sizeof(handler_next), "first", first, NULL, 0, 0}, 0xdeadbeef},
      {{sizeof(handler_next), "second", second, NULL, 0, FUTURE_HANDLER_RESERVED}, 0xdeadbeef},
  };
  static const plugin_next plugin = {
      {sizeof(plugin_next), FOXW_INSTANCE_SHARED, 0, &handlers[0].base, FUTURE_HANDLER_COUNT,
       FUTURE_HANDLER_SIZE, create, destroy, NULL},
      0xdeadbeef};
  if (!foxw_host_usable(h, err, err_cap)) return NULL;
  host = h;
  plugin_ctx = ctx;
  return &plugin.base;
}
