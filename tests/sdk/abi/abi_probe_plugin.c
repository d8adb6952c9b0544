/*
 * A plugin that exercises the whole ABI, built three times by
 * tests/CMakeLists.txt:
 *   abi_probe_1_0            against the frozen 1.0 header (tests/sdk/abi/1.0)
 *   abi_probe_future_1_0     against a "future" 1.2 header (the 1.1 header
 *                            with a field appended to every growable
 *                            struct), targeting 1.0
 *                            (FOXW_TARGET_ABI_MINOR=0): loads in this host
 *   abi_probe_future_1_2     the same, needing 1.2: refused by this host
 * The future builds fill their appended fields with non-zero values, so a
 * host that read them, or stepped through the arrays with its own sizeof,
 * would go wrong visibly.
 *
 * Handlers: "ack" (checks the typed config reads), "retry", "reject",
 * "defer" (completes from another thread), "publish" (publishes to queue
 * "out"), "batch" (a batch handler).
 */
#include <foxworker/plugin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef FOXW_FUTURE_TEST_HEADER
#define FUTURE_FIELD(value) , value
#else
#define FUTURE_FIELD(value)
#endif

static const foxw_host_api *host;
static foxw_plugin_ctx *g_ctx;

#if FOXW_ABI_MINOR == 0
/* 1.0 layouts have no trailing padding: their sizeof is their frozen size. */
_Static_assert(sizeof(foxw_outcome) == FOXW_OUTCOME_SIZE_1_0, "foxw_outcome");
_Static_assert(sizeof(foxw_publish) == FOXW_PUBLISH_SIZE_1_0, "foxw_publish");
_Static_assert(sizeof(foxw_host_api) == FOXW_HOST_API_SIZE_1_0, "foxw_host_api");
_Static_assert(sizeof(foxw_config_key) == FOXW_CONFIG_KEY_SIZE_1_0, "foxw_config_key");
_Static_assert(sizeof(foxw_plugin_info) == FOXW_PLUGIN_INFO_SIZE_1_0, "foxw_plugin_info");
_Static_assert(sizeof(foxw_handler_def) == FOXW_HANDLER_DEF_SIZE_1_0, "foxw_handler_def");
_Static_assert(sizeof(foxw_plugin_v1) == FOXW_PLUGIN_V1_SIZE_1_0, "foxw_plugin_v1");
#endif

static const foxw_config_key kSchema[] = {
    {sizeof(foxw_config_key), "greeting", FOXW_CONFIG_STRING, false, "hello",
     "word to greet with" FUTURE_FIELD("example: hi")},
    {sizeof(foxw_config_key), "retry_delay", FOXW_CONFIG_DURATION, false, "250ms",
     "delay asked for by the retry handler" FUTURE_FIELD("example: 1s")},
    {sizeof(foxw_config_key), "tags", FOXW_CONFIG_STRING_LIST, false, NULL,
     "tags" FUTURE_FIELD("example: [a]")},
};

FOXW_EXPORT const foxw_plugin_info *foxworker_plugin_magic(void) {
  static const foxw_plugin_info info = {
      sizeof(foxw_plugin_info), FOXW_PLUGIN_MAGIC_VALUE, FOXW_ABI_MAJOR, FOXW_TARGET_ABI_MINOR,
      FOXW_ABI_MINOR, 0, "abi_probe", "1.0.0", "exercises the plugin ABI", kSchema,
      sizeof(kSchema) / sizeof(kSchema[0]), sizeof(foxw_config_key)
      FUTURE_FIELD("https://example.invalid/abi_probe")};
  return &info;
}

/* Fails the message with what the typed reads returned unless they match
 * the config the test gives: greeting "hi", retry_delay default 250ms, tags
 * [red, blue]. */
static foxw_verdict handle_ack(void *self, const foxw_message *msg, foxw_outcome *out) {
  foxw_str greeting = {NULL, 0}, tag = {NULL, 0};
  uint64_t delay = 0;
  size_t tags = 0;
  char why[256];
  (void)self;
  (void)msg;
  if (host->config_string(g_ctx, "greeting", &greeting) != FOXW_CONFIG_OK ||
      host->config_duration_ms(g_ctx, "retry_delay", &delay) != FOXW_CONFIG_OK ||
      host->config_count(g_ctx, "tags", &tags) != FOXW_CONFIG_OK ||
      host->config_item(g_ctx, "tags", 1, NULL, &tag) != FOXW_CONFIG_OK ||
      host->config_int(g_ctx, "missing", NULL) != FOXW_CONFIG_ABSENT ||
      host->config_int(g_ctx, "greeting", NULL) != FOXW_CONFIG_WRONG_TYPE) {
    return foxw_reject(out, "a typed config read failed");
  }
  if (greeting.len != 2 || memcmp(greeting.ptr, "hi", 2) != 0 || delay != 250 || tags != 2 ||
      tag.len != 4 || memcmp(tag.ptr, "blue", 4) != 0) {
    snprintf(why, sizeof why, "config read as greeting=%.*s retry_delay=%llu tags=%zu",
             (int)greeting.len, greeting.ptr, (unsigned long long)delay, tags);
    return foxw_reject(out, why);
  }
#ifdef FOXW_FUTURE_TEST_HEADER
  /* A newer field of the host's outcome is written only when it is there. */
  if (out->struct_size >= FOXW_END_OF(foxw_outcome, future_outcome_hint))
    out->future_outcome_hint = 7;
#endif
  return FOXW_ACK;
}

static foxw_verdict handle_retry(void *self, const foxw_message *msg, foxw_outcome *out) {
  uint64_t delay = 0;
  (void)self;
  (void)msg;
  host->config_duration_ms(g_ctx, "retry_delay", &delay);
  return foxw_retry(out, "try again later", delay);
}

static foxw_verdict handle_reject(void *self, const foxw_message *msg, foxw_outcome *out) {
  (void)self;
  (void)msg;
  return foxw_reject(out, "permanently bad");
}

static void *complete_later(void *arg) {
  const foxw_message *msg = arg;
  struct timespec ts = {0, 20 * 1000 * 1000};
  static const char kReason[] = "completed from another thread";
  nanosleep(&ts, NULL);
  host->complete(msg, FOXW_ACK, kReason, sizeof(kReason) - 1, 0);
  return NULL;
}

static foxw_verdict handle_defer(void *self, const foxw_message *msg, foxw_outcome *out) {
  pthread_t thread;
  (void)self;
  if (pthread_create(&thread, NULL, complete_later, (void *)msg) != 0)
    return foxw_retry(out, "cannot start a thread", 0);
  pthread_detach(thread);
  return FOXW_PENDING;
}

/* A follow-up message; the future builds' foxw_publish is larger and its
 * appended field set, which a 1.0 host must ignore. */
static foxw_verdict handle_publish(void *self, const foxw_message *msg, foxw_outcome *out) {
  foxw_publish p;
  foxw_header header = {{"x-from", 6}, {"abi_probe", 9}};
  char err[256];
  (void)self;
  memset(&p, 0, sizeof p);
  p.struct_size = sizeof p;
  p.queue.ptr = "out";
  p.queue.len = 3;
  p.payload.ptr = "follow-up";
  p.payload.len = 9;
  p.message_type.ptr = "ack";
  p.message_type.len = 3;
  p.headers = &header;
  p.header_count = 1;
#ifdef FOXW_FUTURE_TEST_HEADER
  p.future_publish_ttl_ms = 123456;
#endif
  if (host->publish(g_ctx, msg, &p, err, sizeof err) != 0) return foxw_retry(out, err, 0);
  return FOXW_ACK;
}

static void handle_batch(void *self, const foxw_message *const *msgs, size_t count,
                         foxw_verdict *verdicts, foxw_outcome *const *outs) {
  (void)self;
  for (size_t i = 0; i < count; ++i) {
    foxw_str p = host->msg_payload(msgs[i]);
    if (p.len == 3 && memcmp(p.ptr, "bad", 3) == 0) {
      verdicts[i] = foxw_reject(outs[i], "bad item in a batch");
    } else {
      verdicts[i] = FOXW_ACK;
    }
  }
}

static int32_t create(foxw_plugin_ctx *ctx, const char *config, size_t len, void **instance,
                      char *err, size_t err_cap) {
  (void)config;
  (void)len;
  (void)err;
  (void)err_cap;
  *instance = ctx;
  return 0;
}

static void destroy(void *instance) { (void)instance; }

#ifdef FOXW_FUTURE_TEST_HEADER
static void future_hook(foxw_plugin_ctx *ctx) { (void)ctx; abort(); /* a 1.0 host never calls it */ }
#endif

static const foxw_handler_def kHandlers[] = {
    {sizeof(foxw_handler_def), "ack", handle_ack, NULL, 0, 0 FUTURE_FIELD(0xfeedfacecafef00dULL)},
    {sizeof(foxw_handler_def), "retry", handle_retry, NULL, 0, 0 FUTURE_FIELD(1)},
    {sizeof(foxw_handler_def), "reject", handle_reject, NULL, 0, 0 FUTURE_FIELD(2)},
    {sizeof(foxw_handler_def), "defer", handle_defer, NULL, 0, 0 FUTURE_FIELD(3)},
    {sizeof(foxw_handler_def), "publish", handle_publish, NULL, 0, 0 FUTURE_FIELD(5)},
    {sizeof(foxw_handler_def), "batch", NULL, handle_batch, 0, 0 FUTURE_FIELD(4)},
};

static const foxw_plugin_v1 kPlugin = {
    sizeof(foxw_plugin_v1), FOXW_INSTANCE_SHARED, 0, kHandlers,
    sizeof(kHandlers) / sizeof(kHandlers[0]), sizeof(foxw_handler_def), create, destroy, NULL
    FUTURE_FIELD(future_hook)};

FOXW_EXPORT const foxw_plugin_v1 *foxworker_plugin_init_v1(const foxw_host_api *h,
                                                           foxw_plugin_ctx *ctx, char *err,
                                                           size_t err_cap) {
  if (!foxw_host_usable(h, err, err_cap)) return NULL;
#ifdef FOXW_FUTURE_TEST_HEADER
  /* A service newer than the plugin's target is called only when there. */
  if (FOXW_HOST_HAS(h, future_service)) h->future_service(ctx);
#endif
  host = h;
  g_ctx = ctx;
  foxw_log(h, ctx, FOXW_LOG_INFO, "abi_probe initialised");
  return &kPlugin;
}
