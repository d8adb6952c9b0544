/*
 * hello_c: the smallest useful foxworker plugin in C.
 *
 * Handler "greet": the payload is a name. Logs "hello, <name>" (or the
 * greeting in the message's "salutation" header) and acks; an empty payload
 * is rejected, since retrying it cannot help.
 *
 * Build: foxworker_add_plugin(hello_c SOURCES hello.c)
 */
#include <foxworker/plugin.h>
#include <stdio.h>
#include <stdlib.h>

/* The host's services table: the plugin's only way into the daemon. */
static const foxw_host_api *host;

/* One instance. PER_SLOT (the default model): the host never runs two
 * messages on one instance at once, so no locking is needed here. */
typedef struct hello_instance {
  foxw_plugin_ctx *ctx;
  foxw_metric *greetings; /* counter: foxworker_plugin_<name>_greetings_total */
} hello_instance;

static foxw_verdict greet(void *instance, const foxw_message *msg, foxw_outcome *out) {
  hello_instance *self = instance;
  foxw_str name = host->msg_payload(msg);
  foxw_str salutation = {"hello", 5};
  static const char kHeader[] = "salutation";

  if (name.len == 0) {
    static const char kWhy[] = "empty payload: expected a name";
    foxw_set_reason(out, kWhy, sizeof(kWhy) - 1);
    return FOXW_REJECT;
  }
  /* Borrowed strings: valid until this handler returns, not NUL-terminated. */
  host->msg_header(msg, kHeader, sizeof(kHeader) - 1, &salutation);

  /* The level check is cheap; formatting is not. */
  if (host->log_enabled(self->ctx, FOXW_LOG_INFO)) {
    char line[256];
    int len = snprintf(line, sizeof(line), "%.*s, %.*s! (attempt %u)", (int)salutation.len,
                       salutation.ptr, (int)name.len, name.ptr, (unsigned)host->msg_attempt(msg));
    if (len > 0) {
      size_t n = (size_t)len < sizeof(line) ? (size_t)len : sizeof(line) - 1;
      host->log(self->ctx, FOXW_LOG_INFO, line, n);
    }
  }
  host->metric_update(self->greetings, 1);
  return FOXW_ACK;
}

/* Control thread. This plugin takes no config keys: it refuses any. */
static int32_t hello_create(foxw_plugin_ctx *ctx, const char *config_json, size_t config_len,
                            void **instance, char *err, size_t err_cap) {
  hello_instance *self;
  size_t i, keys = 0;
  for (i = 0; i < config_len; ++i) {
    char c = config_json[i];
    if (c != '{' && c != '}' && c != ' ' && c != '\n' && c != '\t' && c != '\r') ++keys;
  }
  if (keys != 0) {
    foxw_set_error(err, err_cap, "hello_c takes no config keys");
    return 1;
  }
  self = calloc(1, sizeof(*self));
  if (self == NULL) {
    foxw_set_error(err, err_cap, "out of memory");
    return 1;
  }
  self->ctx = ctx;
  /* Metrics are defined at create time; every instance gets the same one. */
  self->greetings = host->metric_define(ctx, FOXW_METRIC_COUNTER, "greetings_total",
                                        "People greeted", err, err_cap);
  if (self->greetings == NULL) {
    free(self);
    return 1;
  }
  *instance = self;
  return 0;
}

static void hello_destroy(void *instance) { free(instance); }

/* The magic block: checked by the host before any other code here runs. */
FOXW_DECLARE_PLUGIN("hello_c", "1.0.0", "Greets people (C example)", NULL, 0)

static const foxw_handler_def handlers[] = {
    {sizeof(foxw_handler_def), "greet", greet, 0},
};

static const foxw_plugin_v1 plugin = {sizeof(foxw_plugin_v1),
                                      FOXW_INSTANCE_PER_SLOT,
                                      0,
                                      handlers,
                                      sizeof(handlers) / sizeof(handlers[0]),
                                      hello_create,
                                      hello_destroy,
                                      NULL};

FOXW_EXPORT const foxw_plugin_v1 *foxworker_plugin_init_v1(const foxw_host_api *host_api,
                                                           foxw_plugin_ctx *ctx, char *err,
                                                           size_t err_cap) {
  (void)ctx;
  if (host_api == NULL || host_api->abi_major != FOXW_ABI_MAJOR ||
      host_api->struct_size < sizeof(foxw_host_api)) {
    foxw_set_error(err, err_cap, "needs a host with plugin ABI 1.0 or later");
    return NULL;
  }
  host = host_api;
  return &plugin;
}
