/*
 * The log plugin: logs every message it handles (id, queue, type, attempt and
 * the start of the payload) and acks it. For demos and failure drills it can
 * also answer every Nth message with RETRY or REJECT.
 *
 * Config (see kSchema; read with the host's typed config services):
 *   level              trace | debug | info | warn | error   (default info)
 *   fail_every         every Nth message returns RETRY        (default 0: never)
 *   reject_every       every Nth message returns REJECT       (default 0: never)
 *   max_payload_bytes  payload bytes shown per message        (default 256)
 * When both fail_every and reject_every pick a message, REJECT wins.
 *
 * Instance model SHARED: one instance per queue, its handler called from
 * several threads at once. The only mutable state is the message counter, an
 * atomic, so "every Nth" counts the queue's messages, not a slot's.
 */
#include <foxworker/plugin.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_MAX_PAYLOAD_BYTES (1024 * 1024)
/* Longest id, queue or message type shown in a log line. */
#define LOG_MAX_FIELD_BYTES 256

typedef struct log_config {
  int32_t level;
  unsigned long long fail_every;
  unsigned long long reject_every;
  size_t max_payload_bytes;
} log_config;

typedef struct log_instance {
  foxw_plugin_ctx *ctx;
  log_config config;
  atomic_ullong seen; /* messages handled, across threads */
  foxw_metric *messages;
  foxw_metric *simulated_failures;
} log_instance;

static const foxw_host_api *g_host;

/* ---- config: read with the host's typed config services ------------------ */

static int parse_level(const char *text, int32_t *level) {
  static const struct {
    const char *name;
    int32_t level;
  } kLevels[] = {{"trace", FOXW_LOG_TRACE}, {"debug", FOXW_LOG_DEBUG},  {"info", FOXW_LOG_INFO},
                 {"warn", FOXW_LOG_WARN},   {"warning", FOXW_LOG_WARN}, {"error", FOXW_LOG_ERROR}};
  for (size_t i = 0; i < sizeof(kLevels) / sizeof(kLevels[0]); ++i) {
    if (strcmp(text, kLevels[i].name) == 0) {
      *level = kLevels[i].level;
      return 0;
    }
  }
  return -1;
}

/* A whole number from 0 to max from config key `key`; *value keeps its
 * default when the key is absent. Returns 0, or -1 with err filled. */
static int read_count(foxw_plugin_ctx *ctx, const char *key, unsigned long long max,
                      unsigned long long *value, char *err, size_t err_cap) {
  int64_t n = (int64_t)*value;
  int32_t rc = g_host->config_int(ctx, key, &n);
  if (rc == FOXW_CONFIG_ABSENT) return 0;
  if (rc != FOXW_CONFIG_OK || n < 0 || (unsigned long long)n > max) {
    snprintf(err, err_cap, "config key \"%s\": must be a whole number from 0 to %llu", key, max);
    return -1;
  }
  *value = (unsigned long long)n;
  return 0;
}

/* The host already refused unknown keys and wrong types (kSchema) and filled
 * in the defaults; what is left is this plugin's own rules. */
static int read_config(foxw_plugin_ctx *ctx, log_config *cfg, char *err, size_t err_cap) {
  foxw_str level = {"info", 4};
  char text[16];
  unsigned long long max_payload = 256;
  cfg->fail_every = 0;
  cfg->reject_every = 0;
  g_host->config_string(ctx, "level", &level);
  if (level.len >= sizeof(text)) level.len = sizeof(text) - 1;
  memcpy(text, level.ptr, level.len);
  text[level.len] = '\0';
  if (parse_level(text, &cfg->level) != 0) {
    snprintf(err, err_cap,
             "config key \"level\": must be one of trace, debug, info, warn, error (got \"%s\")",
             text);
    return -1;
  }
  if (read_count(ctx, "fail_every", ULLONG_MAX, &cfg->fail_every, err, err_cap) != 0 ||
      read_count(ctx, "reject_every", ULLONG_MAX, &cfg->reject_every, err, err_cap) != 0 ||
      read_count(ctx, "max_payload_bytes", LOG_MAX_PAYLOAD_BYTES, &max_payload, err, err_cap) != 0)
    return -1;
  cfg->max_payload_bytes = (size_t)max_payload;
  return 0;
}

/* ---- log lines ------------------------------------------------------------ */

typedef struct line_buffer {
  char *buf;
  size_t len;
  size_t cap;
} line_buffer;

static void append_raw(line_buffer *b, const char *text, size_t len) {
  if (b->len + len >= b->cap) len = b->cap - b->len - 1;
  memcpy(b->buf + b->len, text, len);
  b->len += len;
  b->buf[b->len] = '\0';
}

static void append_text(line_buffer *b, const char *text) { append_raw(b, text, strlen(text)); }

/* Bytes outside printable ASCII become \xHH, so one message is one line. */
static void append_escaped(line_buffer *b, foxw_str s, size_t limit) {
  static const char kHex[] = "0123456789abcdef";
  size_t n = s.len < limit ? s.len : limit;
  for (size_t i = 0; i < n; ++i) {
    unsigned char ch = (unsigned char)s.ptr[i];
    if (ch >= 0x20 && ch < 0x7f && ch != '\\') {
      char one = (char)ch;
      append_raw(b, &one, 1);
    } else if (ch == '\\') {
      append_raw(b, "\\\\", 2);
    } else {
      char esc[4] = {'\\', 'x', kHex[ch >> 4], kHex[ch & 15]};
      append_raw(b, esc, 4);
    }
  }
  if (s.len > n) append_text(b, "...");
}

static void log_message(const log_instance *p, const foxw_message *msg, unsigned long long n) {
  foxw_str id = g_host->msg_id(msg);
  foxw_str queue = g_host->msg_queue(msg);
  foxw_str type = g_host->msg_property(msg, FOXW_PROP_MESSAGE_TYPE);
  foxw_str payload = g_host->msg_payload(msg);
  size_t shown =
      payload.len < p->config.max_payload_bytes ? payload.len : p->config.max_payload_bytes;
  char number[96];
  line_buffer b;

  b.cap = 256 + 3 * 4 * LOG_MAX_FIELD_BYTES + 4 * shown;
  b.buf = malloc(b.cap);
  b.len = 0;
  if (b.buf == NULL) return;
  b.buf[0] = '\0';

  snprintf(number, sizeof(number), "message #%llu id=", n);
  append_text(&b, number);
  append_escaped(&b, id, LOG_MAX_FIELD_BYTES);
  append_text(&b, " queue=");
  append_escaped(&b, queue, LOG_MAX_FIELD_BYTES);
  append_text(&b, " type=");
  append_escaped(&b, type, LOG_MAX_FIELD_BYTES);
  snprintf(number, sizeof(number), " attempt=%u payload=%zu bytes",
           (unsigned)g_host->msg_attempt(msg), payload.len);
  append_text(&b, number);
  if (shown > 0 || payload.len > 0) {
    append_text(&b, ": ");
    append_escaped(&b, payload, shown);
  }
  g_host->log(p->ctx, p->config.level, b.buf, b.len);
  free(b.buf);
}

/* ---- the plugin ------------------------------------------------------------ */

static foxw_verdict log_handle(void *instance, const foxw_message *msg, foxw_outcome *out) {
  log_instance *p = instance;
  unsigned long long n = atomic_fetch_add_explicit(&p->seen, 1, memory_order_relaxed) + 1;
  char reason[160];

  g_host->metric_update(p->messages, 1);
  if (g_host->log_enabled(p->ctx, p->config.level)) log_message(p, msg, n);

  if (p->config.reject_every != 0 && n % p->config.reject_every == 0) {
    int len = snprintf(reason, sizeof(reason),
                       "log plugin: simulated permanent failure (reject_every=%llu, "
                       "message #%llu)",
                       p->config.reject_every, n);
    foxw_set_reason(out, reason, (size_t)len);
    g_host->metric_update(p->simulated_failures, 1);
    return FOXW_REJECT;
  }
  if (p->config.fail_every != 0 && n % p->config.fail_every == 0) {
    int len = snprintf(reason, sizeof(reason),
                       "log plugin: simulated transient failure (fail_every=%llu, "
                       "message #%llu)",
                       p->config.fail_every, n);
    foxw_set_reason(out, reason, (size_t)len);
    g_host->metric_update(p->simulated_failures, 1);
    return FOXW_RETRY;
  }
  return FOXW_ACK;
}

static int32_t log_create(foxw_plugin_ctx *ctx, const char *config_json, size_t config_len,
                          void **instance, char *err, size_t err_cap) {
  log_instance *p;
  log_config cfg;
  (void)config_json; /* read through the typed config services instead */
  (void)config_len;
  if (read_config(ctx, &cfg, err, err_cap) != 0) return 1;

  p = calloc(1, sizeof(*p));
  if (p == NULL) {
    foxw_set_error(err, err_cap, "out of memory");
    return 1;
  }
  p->ctx = ctx;
  p->config = cfg;
  atomic_init(&p->seen, 0);
  p->messages = g_host->metric_define(ctx, FOXW_METRIC_COUNTER, "messages_total",
                                      "Messages the log plugin handled", err, err_cap);
  p->simulated_failures = g_host->metric_define(
      ctx, FOXW_METRIC_COUNTER, "simulated_failures_total",
      "Messages the log plugin failed on purpose (fail_every, reject_every)", err, err_cap);
  if (p->messages == NULL || p->simulated_failures == NULL) {
    free(p);
    return 1;
  }
  *instance = p;
  return 0;
}

static void log_destroy(void *instance) { free(instance); }

static const foxw_config_key kSchema[] = {
    {sizeof(foxw_config_key), "level", FOXW_CONFIG_STRING, false, "info",
     "Level of the per-message log line: trace, debug, info, warn or error"},
    {sizeof(foxw_config_key), "fail_every", FOXW_CONFIG_INT, false, "0",
     "Every Nth message of the queue returns RETRY (0 = never); for demos"},
    {sizeof(foxw_config_key), "reject_every", FOXW_CONFIG_INT, false, "0",
     "Every Nth message of the queue returns REJECT (0 = never); for demos"},
    {sizeof(foxw_config_key), "max_payload_bytes", FOXW_CONFIG_INT, false, "256",
     "How many payload bytes each log line shows (at most 1048576)"},
};

FOXW_DECLARE_PLUGIN("log", "1.0.0", "Logs every message; can fail every Nth one for demos", kSchema,
                    sizeof(kSchema) / sizeof(kSchema[0]))

static const foxw_handler_def kHandlers[] = {
    FOXW_HANDLER("*", log_handle),
};

static const foxw_plugin_v1 kPlugin = {sizeof(foxw_plugin_v1),
                                       FOXW_INSTANCE_SHARED,
                                       0,
                                       kHandlers,
                                       sizeof(kHandlers) / sizeof(kHandlers[0]),
                                       sizeof(foxw_handler_def),
                                       log_create,
                                       log_destroy,
                                       NULL};

FOXW_EXPORT const foxw_plugin_v1 *foxworker_plugin_init_v1(const foxw_host_api *host,
                                                           foxw_plugin_ctx *ctx, char *err,
                                                           size_t err_cap) {
  (void)ctx;
  if (!foxw_host_usable(host, err, err_cap)) return NULL;
  g_host = host;
  return &kPlugin;
}
