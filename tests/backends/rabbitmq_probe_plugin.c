/* Test plugin for the RabbitMQ tests: every handler appends one JSON line
 * describing the message as the plugin saw it (id, attempt, every property,
 * every header, payload; with ABI 1.1 each header's type and the numeric
 * properties as sent, null when not sent) to $FOXWORKER_PROBE_FILE, then
 * returns its verdict:
 *   probe         ack
 *   probe_fail    retry ("probe asked to fail"); delay hint from header delay_ms;
 *                 acks instead once the attempt reaches header succeed_at
 *   probe_reject  reject ("probe rejects")
 *   probe_slow    sleep <payload> ms, then ack
 *   probe_hang    record first, then sleep <payload> ms and ack (for kill -9)
 */
#include <foxworker/plugin.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const foxw_host_api *host;

typedef struct buffer {
  char *data;
  size_t len, cap;
} buffer;

static void put(buffer *b, const char *s, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1) cap *= 2;
    b->data = realloc(b->data, cap);
    b->cap = cap;
  }
  memcpy(b->data + b->len, s, n);
  b->len += n;
}

static void put_str(buffer *b, const char *s) { put(b, s, strlen(s)); }

static void put_json(buffer *b, foxw_str s) {
  put(b, "\"", 1);
  for (size_t i = 0; i < s.len; ++i) {
    unsigned char c = (unsigned char)s.ptr[i];
    char esc[8];
    if (c == '"' || c == '\\') {
      esc[0] = '\\';
      esc[1] = (char)c;
      put(b, esc, 2);
    } else if (c < 0x20) {
      snprintf(esc, sizeof esc, "\\u%04x", c);
      put(b, esc, 6);
    } else {
      put(b, (const char *)&s.ptr[i], 1);
    }
  }
  put(b, "\"", 1);
}

static void put_field(buffer *b, const char *name, foxw_str value) {
  put_str(b, ",\"");
  put_str(b, name);
  put_str(b, "\":");
  put_json(b, value);
}

static void record(const foxw_message *msg) {
  static const char *names[] = {"", "content_type", "content_encoding", "message_type",
                                "correlation_id", "reply_to", "app_id", "user_id",
                                "expiration", "message_id", "cluster_id"};
  buffer b = {0};
  char num[64];
  put_str(&b, "{\"attempt\":");
  snprintf(num, sizeof num, "%u", host->msg_attempt(msg));
  put_str(&b, num);
  put_str(&b, ",\"priority\":");
  snprintf(num, sizeof num, "%u", host->msg_priority(msg));
  put_str(&b, num);
  put_str(&b, ",\"timestamp_ms\":");
  snprintf(num, sizeof num, "%lld", (long long)host->msg_timestamp_ms(msg));
  put_str(&b, num);
  put_str(&b, ",\"enqueued_at_ms\":");
  snprintf(num, sizeof num, "%lld", (long long)host->msg_enqueued_at_ms(msg));
  put_str(&b, num);
  put_field(&b, "id", host->msg_id(msg));
  put_field(&b, "queue", host->msg_queue(msg));
  put_field(&b, "payload", host->msg_payload(msg));
  for (int p = 1; p <= 10; ++p) put_field(&b, names[p], host->msg_property(msg, p));
  static const struct {
    int32_t property;
    const char *name;
  } ints[] = {{FOXW_PROP_PRIORITY, "sent_priority"},
              {FOXW_PROP_TIMESTAMP_MS, "sent_timestamp_ms"},
              {FOXW_PROP_DELIVERY_MODE, "delivery_mode"}};
  for (size_t i = 0; i < sizeof ints / sizeof ints[0]; ++i) {
    int64_t v = 0;
    put_str(&b, ",\"");
    put_str(&b, ints[i].name);
    put_str(&b, "\":");
    if (host->msg_property_int(msg, ints[i].property, &v)) {
      snprintf(num, sizeof num, "%lld", (long long)v);
      put_str(&b, num);
    } else {
      put_str(&b, "null");
    }
  }
  put_str(&b, ",\"headers\":[");
  size_t n = host->msg_header_count(msg);
  for (size_t i = 0; i < n; ++i) {
    foxw_str name, value;
    if (!host->msg_header_at(msg, i, &name, &value)) continue;
    if (i > 0) put_str(&b, ",");
    put_str(&b, "[");
    put_json(&b, name);
    put_str(&b, ",");
    put_json(&b, value);
    put_str(&b, "]");
  }
  put_str(&b, "],\"header_types\":[");
  for (size_t i = 0; i < n; ++i) {
    snprintf(num, sizeof num, "%s%d", i > 0 ? "," : "", (int)host->msg_header_type(msg, i));
    put_str(&b, num);
  }
  put_str(&b, "]}\n");
  const char *path = getenv("FOXWORKER_PROBE_FILE");
  if (path != NULL) {
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) {
      ssize_t w = write(fd, b.data, b.len);
      (void)w;
      close(fd);
    }
  }
  free(b.data);
}

static foxw_verdict handle_probe(void *inst, const foxw_message *msg, foxw_outcome *out) {
  (void)inst; (void)out;
  record(msg);
  return FOXW_ACK;
}

static long header_number(const foxw_message *msg, const char *name) {
  foxw_str v;
  if (!host->msg_header(msg, name, strlen(name), &v)) return -1;
  char buf[24] = {0};
  memcpy(buf, v.ptr, v.len < 23 ? v.len : 23);
  return strtol(buf, NULL, 10);
}

static foxw_verdict handle_fail(void *inst, const foxw_message *msg, foxw_outcome *out) {
  (void)inst;
  record(msg);
  long succeed_at = header_number(msg, "succeed_at");
  if (succeed_at > 0 && host->msg_attempt(msg) >= (uint32_t)succeed_at) return FOXW_ACK;
  foxw_set_reason(out, "probe asked to fail", 19);
  foxw_str delay;
  if (host->msg_header(msg, "delay_ms", 8, &delay)) {
    char buf[24] = {0};
    memcpy(buf, delay.ptr, delay.len < 23 ? delay.len : 23);
    out->retry_delay_ms = strtoull(buf, NULL, 10);
  }
  return FOXW_RETRY;
}

static foxw_verdict handle_reject(void *inst, const foxw_message *msg, foxw_outcome *out) {
  (void)inst;
  record(msg);
  foxw_set_reason(out, "probe rejects", 13);
  return FOXW_REJECT;
}

static foxw_verdict handle_slow(void *inst, const foxw_message *msg, foxw_outcome *out) {
  (void)inst; (void)out;
  foxw_str p = host->msg_payload(msg);
  char buf[24] = {0};
  memcpy(buf, p.ptr, p.len < 23 ? p.len : 23);
  long ms = strtol(buf, NULL, 10);
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
  record(msg);
  return FOXW_ACK;
}

static foxw_verdict handle_hang(void *inst, const foxw_message *msg, foxw_outcome *out) {
  (void)inst; (void)out;
  record(msg);
  foxw_str p = host->msg_payload(msg);
  char buf[24] = {0};
  memcpy(buf, p.ptr, p.len < 23 ? p.len : 23);
  long ms = strtol(buf, NULL, 10);
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
  return FOXW_ACK;
}

static const foxw_handler_def handlers[] = {
    FOXW_HANDLER("probe", handle_probe),
    FOXW_HANDLER("probe_fail", handle_fail),
    FOXW_HANDLER("probe_reject", handle_reject),
    FOXW_HANDLER("probe_slow", handle_slow),
    FOXW_HANDLER("probe_hang", handle_hang),
};

static int32_t create(foxw_plugin_ctx *ctx, const char *json, size_t len, void **out, char *err,
                      size_t cap) {
  static int the_instance;
  (void)ctx; (void)json; (void)len; (void)err; (void)cap;
  *out = &the_instance;
  return 0;
}

static void destroy(void *inst) { (void)inst; }

static const foxw_plugin_v1 plugin = {sizeof(foxw_plugin_v1), FOXW_INSTANCE_SHARED, 0, handlers,
                                      sizeof handlers / sizeof handlers[0],
                                      sizeof(foxw_handler_def), create, destroy, NULL};

FOXW_DECLARE_PLUGIN("rabbitmq_probe", "1.0.0", "records what the RabbitMQ backend delivers", NULL, 0)

FOXW_EXPORT const foxw_plugin_v1 *foxworker_plugin_init_v1(const foxw_host_api *h,
                                                           foxw_plugin_ctx *ctx, char *err,
                                                           size_t cap) {
  (void)ctx; (void)err; (void)cap;
  host = h;
  return &plugin;
}
