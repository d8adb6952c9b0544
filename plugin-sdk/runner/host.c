#include "host.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"

struct runner_metric {
  char *name; /* with the foxworker_plugin_<plugin>_ prefix */
  char *help;
  int32_t kind;
  double value;     /* counter, gauge */
  uint64_t count;   /* histogram */
  double sum;       /* histogram */
};

/* The process's run (host_start). */
static runner_host *g_host;

static const foxw_str kEmpty = {"", 0};

static foxw_str borrow(const char *s, size_t len) {
  foxw_str out;
  out.ptr = s != NULL ? s : "";
  out.len = s != NULL ? len : 0;
  return out;
}

static void set_error(char *err, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_error(char *err, size_t cap, const char *fmt, ...) {
  va_list ap;
  if (err == NULL || cap == 0) return;
  va_start(ap, fmt);
  vsnprintf(err, cap, fmt, ap);
  va_end(ap);
}

void print_escaped(const char *text, size_t len) {
  size_t i;
  for (i = 0; i < len; ++i) {
    unsigned char c = (unsigned char)text[i];
    switch (c) {
      case '\\': fputs("\\\\", stdout); break;
      case '\n': fputs("\\n", stdout); break;
      case '\r': fputs("\\r", stdout); break;
      case '\t': fputs("\\t", stdout); break;
      default:
        if (c < 0x20 || c == 0x7f) printf("\\x%02x", c);
        else putchar(c);
    }
  }
}

/* ---- logging ------------------------------------------------------------- */

static int32_t clamp_level(int32_t level) {
  if (level < FOXW_LOG_TRACE) return FOXW_LOG_TRACE;
  if (level > FOXW_LOG_ERROR) return FOXW_LOG_ERROR;
  return level;
}

const char *host_level_name(int32_t level) {
  static const char *const names[] = {"TRACE", "DEBUG", "INFO", "WARN", "ERROR"};
  return names[clamp_level(level)];
}

static bool host_log_enabled(const foxw_plugin_ctx *ctx, int32_t level) {
  (void)ctx;
  return g_host != NULL && clamp_level(level) >= g_host->min_level;
}

static void host_log(const foxw_plugin_ctx *ctx, int32_t level, const char *text, size_t len) {
  json_value *entry;
  if (!host_log_enabled(ctx, level)) return;
  if (text == NULL) len = 0;
  while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r')) --len;
  pthread_mutex_lock(&g_host->mu);
  entry = json_new(JSON_OBJECT);
  if (entry != NULL) {
    json_object_add(entry, "level", json_new_string(host_level_name(level),
                                                    strlen(host_level_name(level))));
    json_object_add(entry, "phase", json_new_string(g_host->phase, strlen(g_host->phase)));
    json_object_add(entry, "text", json_new_string(text, len));
    json_array_append(g_host->logs, entry);
  }
  if (g_host->print_live) {
    printf("log: %s [%s] ", host_level_name(level), g_host->phase);
    print_escaped(text, len);
    putchar('\n');
    fflush(stdout);
  }
  pthread_mutex_unlock(&g_host->mu);
}

void host_note(runner_host *host, const char *fmt, ...) {
  char text[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  pthread_mutex_lock(&host->mu);
  json_array_append(host->notes, json_new_string(text, strlen(text)));
  if (host->print_live) {
    printf("note: %s\n", text);
    fflush(stdout);
  }
  pthread_mutex_unlock(&host->mu);
}

/* ---- metrics ------------------------------------------------------------- */

static const char *kind_name(int32_t kind) {
  switch (kind) {
    case FOXW_METRIC_COUNTER: return "counter";
    case FOXW_METRIC_GAUGE: return "gauge";
    default: return "histogram";
  }
}

static bool valid_metric_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '_' || c == ':';
}

static foxw_metric *host_metric_define(foxw_plugin_ctx *ctx, int32_t kind, const char *name,
                                       const char *help, char *err, size_t err_cap) {
  struct runner_metric *m, **grown;
  json_buf full = {0};
  size_t i;
  if (ctx == NULL) {
    set_error(err, err_cap, "metric_define: no plugin context");
    return NULL;
  }
  if (name == NULL || name[0] == '\0') {
    set_error(err, err_cap, "metric_define: the metric name is empty");
    return NULL;
  }
  if (kind != FOXW_METRIC_COUNTER && kind != FOXW_METRIC_GAUGE && kind != FOXW_METRIC_HISTOGRAM) {
    set_error(err, err_cap,
              "metric_define: unknown metric kind %d for \"%s\" (expected FOXW_METRIC_COUNTER, "
              "FOXW_METRIC_GAUGE or FOXW_METRIC_HISTOGRAM)",
              (int)kind, name);
    return NULL;
  }
  json_buf_printf(&full, "foxworker_plugin_%s_%s", ctx->plugin_name, name);
  if (full.failed) {
    set_error(err, err_cap, "metric_define: out of memory");
    return NULL;
  }
  for (i = 0; i < full.len; ++i) {
    if (!valid_metric_char(full.data[i])) {
      set_error(err, err_cap, "metric_define: invalid metric name \"%s\": must match "
                "[a-zA-Z_:][a-zA-Z0-9_:]*", full.data);
      json_buf_free(&full);
      return NULL;
    }
  }
  pthread_mutex_lock(&g_host->mu);
  if (!g_host->defining) {
    pthread_mutex_unlock(&g_host->mu);
    json_buf_free(&full);
    set_error(err, err_cap, "metric_define: metrics can only be defined during init or create");
    return NULL;
  }
  for (i = 0; i < g_host->metric_count; ++i) {
    m = g_host->metrics[i];
    if (strcmp(m->name, full.data) != 0) continue;
    pthread_mutex_unlock(&g_host->mu);
    if (m->kind == kind) {
      json_buf_free(&full);
      return (foxw_metric *)m;
    }
    set_error(err, err_cap, "metric_define: metric \"%s\" is already defined as a %s, not as a %s",
              full.data, kind_name(m->kind), kind_name(kind));
    json_buf_free(&full);
    return NULL;
  }
  m = calloc(1, sizeof *m);
  grown = realloc(g_host->metrics, (g_host->metric_count + 1) * sizeof *grown);
  if (m == NULL || grown == NULL) {
    pthread_mutex_unlock(&g_host->mu);
    free(m);
    json_buf_free(&full);
    set_error(err, err_cap, "metric_define: out of memory");
    return NULL;
  }
  g_host->metrics = grown;
  m->name = full.data; /* the buffer's ownership moves to the metric */
  m->help = strdup(help != NULL ? help : "");
  m->kind = kind;
  g_host->metrics[g_host->metric_count++] = m;
  pthread_mutex_unlock(&g_host->mu);
  return (foxw_metric *)m;
}

static void host_metric_update(foxw_metric *metric, double value) {
  struct runner_metric *m = (struct runner_metric *)metric;
  if (m == NULL || g_host == NULL) return;
  pthread_mutex_lock(&g_host->mu);
  switch (m->kind) {
    case FOXW_METRIC_COUNTER:
      if (value >= 0.0 && !isinf(value)) m->value += value; /* as the daemon: no NaN, no negative */
      break;
    case FOXW_METRIC_GAUGE:
      m->value = value;
      break;
    default:
      ++m->count;
      m->sum += value;
      break;
  }
  pthread_mutex_unlock(&g_host->mu);
}

void host_print_metrics(runner_host *host) {
  size_t i;
  pthread_mutex_lock(&host->mu);
  for (i = 0; i < host->metric_count; ++i) {
    const struct runner_metric *m = host->metrics[i];
    if (m->kind == FOXW_METRIC_HISTOGRAM)
      printf("metric: %s histogram count=%llu sum=%.15g\n", m->name, (unsigned long long)m->count,
             m->sum);
    else
      printf("metric: %s %s %.15g\n", m->name, kind_name(m->kind), m->value);
  }
  pthread_mutex_unlock(&host->mu);
}

json_value *host_metrics_json(runner_host *host) {
  json_value *array = json_new(JSON_ARRAY);
  size_t i;
  pthread_mutex_lock(&host->mu);
  for (i = 0; array != NULL && i < host->metric_count; ++i) {
    const struct runner_metric *m = host->metrics[i];
    json_value *o = json_new(JSON_OBJECT);
    if (o == NULL) break;
    json_object_add(o, "name", json_new_string(m->name, strlen(m->name)));
    json_object_add(o, "kind", json_new_string(kind_name(m->kind), strlen(kind_name(m->kind))));
    json_object_add(o, "help", json_new_string(m->help != NULL ? m->help : "",
                                               m->help != NULL ? strlen(m->help) : 0));
    if (m->kind == FOXW_METRIC_HISTOGRAM) {
      json_object_add(o, "count", json_new_int((int64_t)m->count));
      json_object_add(o, "sum", json_new_double(m->sum));
    } else {
      json_object_add(o, "value", json_new_double(m->value));
    }
    json_array_append(array, o);
  }
  pthread_mutex_unlock(&host->mu);
  return array;
}

/* ---- clocks -------------------------------------------------------------- */

static uint64_t host_monotonic_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int64_t host_wall_time_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- message accessors --------------------------------------------------- */

static foxw_str host_msg_id(const foxw_message *msg) {
  return msg != NULL ? borrow(msg->id, strlen(msg->id)) : kEmpty;
}

static foxw_str host_msg_queue(const foxw_message *msg) {
  return msg != NULL ? borrow(msg->queue, strlen(msg->queue)) : kEmpty;
}

static foxw_str host_msg_payload(const foxw_message *msg) {
  return msg != NULL ? borrow(msg->payload, msg->payload_len) : kEmpty;
}

static foxw_str host_msg_property(const foxw_message *msg, int32_t property) {
  const char *p;
  if (msg == NULL || property < 1 || property > RUNNER_PROPERTY_COUNT) return kEmpty;
  p = msg->properties[property - 1];
  return p != NULL ? borrow(p, strlen(p)) : kEmpty;
}

static uint8_t host_msg_priority(const foxw_message *msg) {
  return msg != NULL ? msg->priority : 0;
}

static int64_t host_msg_timestamp_ms(const foxw_message *msg) {
  return msg != NULL ? msg->timestamp_ms : 0;
}

static int64_t host_msg_enqueued_at_ms(const foxw_message *msg) {
  return msg != NULL ? msg->enqueued_at_ms : 0;
}

static uint32_t host_msg_attempt(const foxw_message *msg) {
  return msg != NULL ? msg->attempt : 0;
}

static bool host_msg_header(const foxw_message *msg, const char *name, size_t name_len,
                            foxw_str *value) {
  size_t i;
  if (msg == NULL || (name == NULL && name_len != 0)) return false;
  for (i = 0; i < msg->header_count; ++i) {
    const runner_header *h = &msg->headers[i];
    if (h->name_len != name_len || (name_len > 0 && memcmp(h->name, name, name_len) != 0))
      continue;
    if (value != NULL) *value = borrow(h->value, h->value_len);
    return true;
  }
  return false;
}

static size_t host_msg_header_count(const foxw_message *msg) {
  return msg != NULL ? msg->header_count : 0;
}

static bool host_msg_header_at(const foxw_message *msg, size_t index, foxw_str *name,
                               foxw_str *value) {
  if (msg == NULL || index >= msg->header_count) return false;
  if (name != NULL) *name = borrow(msg->headers[index].name, msg->headers[index].name_len);
  if (value != NULL) *value = borrow(msg->headers[index].value, msg->headers[index].value_len);
  return true;
}

static bool host_msg_property_int(const foxw_message *msg, int32_t property, int64_t *value) {
  int64_t v;
  if (msg == NULL) return false;
  switch (property) {
    case FOXW_PROP_PRIORITY:
      if (!msg->priority_set) return false;
      v = msg->priority;
      break;
    case FOXW_PROP_TIMESTAMP_MS:
      if (!msg->timestamp_set) return false;
      v = msg->timestamp_ms;
      break;
    case FOXW_PROP_DELIVERY_MODE:
      if (msg->delivery_mode == 0) return false;
      v = msg->delivery_mode;
      break;
    default:
      return false;
  }
  if (value != NULL) *value = v;
  return true;
}

static int32_t host_msg_header_type(const foxw_message *msg, size_t index) {
  if (msg == NULL || index >= msg->header_count) return FOXW_HEADER_NONE;
  return msg->headers[index].null_value ? FOXW_HEADER_NULL : FOXW_HEADER_STRING;
}

static uint64_t host_msg_deadline_ns(const foxw_message *msg) {
  return msg != NULL ? msg->deadline_ns : UINT64_MAX;
}

static bool host_msg_cancelled(const foxw_message *msg) {
  bool cancelled;
  if (msg == NULL) return true;
  pthread_mutex_lock(&g_host->mu);
  cancelled = msg->timed_out;
  pthread_mutex_unlock(&g_host->mu);
  return cancelled || host_monotonic_ns() >= msg->deadline_ns;
}

/* ---- completion and publishing ------------------------------------------- */

static int32_t host_complete(const foxw_message *cmsg, foxw_verdict verdict, const char *reason,
                             size_t reason_len, uint64_t retry_delay_ms) {
  /* The handle is the runner's own message: casting away const is how the
   * host finds its record again. */
  foxw_message *msg = (foxw_message *)(uintptr_t)cmsg;
  bool twice, late;
  if (msg == NULL) return -1;
  if (reason == NULL) reason_len = 0;
  pthread_mutex_lock(&g_host->mu);
  late = msg->timed_out;
  twice = msg->completed || (msg->state == MESSAGE_FINISHED && !late);
  if (!late && !twice) {
    msg->completed_reason = malloc(reason_len + 1);
    if (msg->completed_reason != NULL) {
      if (reason_len > 0) memcpy(msg->completed_reason, reason, reason_len);
      msg->completed_reason[reason_len] = '\0';
      msg->completed_reason_len = reason_len;
    }
    msg->completed = true;
    msg->completed_verdict = verdict;
    msg->completed_retry_delay_ms = retry_delay_ms;
    pthread_cond_broadcast(&g_host->completed_cv);
  }
  pthread_mutex_unlock(&g_host->mu);
  if (late) {
    /* As the daemon: a late answer is ignored (and is not an error). */
    host_note(g_host, "message %s completed after its timeout; the verdict is ignored", msg->id);
    return 0;
  }
  if (twice) {
    host_note(g_host, "complete() called for message %s that is not pending (never deferred, "
              "or completed twice); returned -1", msg->id);
    return -1;
  }
  return 0;
}

bool host_finish_call(runner_host *host, foxw_message *msg) {
  bool completed;
  pthread_mutex_lock(&host->mu);
  msg->state = MESSAGE_FINISHED;
  completed = msg->completed;
  pthread_mutex_unlock(&host->mu);
  return completed;
}

bool host_wait_for_completion(runner_host *host, foxw_message *msg) {
  bool completed;
  pthread_mutex_lock(&host->mu);
  msg->state = MESSAGE_PENDING;
  while (!msg->completed) {
    if (msg->deadline_ns == UINT64_MAX) {
      pthread_cond_wait(&host->completed_cv, &host->mu);
      continue;
    }
    {
      struct timespec at;
      at.tv_sec = (time_t)(msg->deadline_ns / 1000000000u);
      at.tv_nsec = (long)(msg->deadline_ns % 1000000000u);
      if (pthread_cond_timedwait(&host->completed_cv, &host->mu, &at) == ETIMEDOUT &&
          !msg->completed && host_monotonic_ns() >= msg->deadline_ns) {
        msg->timed_out = true;
        break;
      }
    }
  }
  msg->state = MESSAGE_FINISHED;
  completed = msg->completed;
  pthread_mutex_unlock(&host->mu);
  return completed;
}

/* A foxw_str the plugin filled: ptr may be NULL only when len is 0. */
static bool usable_str(foxw_str s) { return s.ptr != NULL || s.len == 0; }

static json_value *str_json(foxw_str s) { return json_new_string(s.ptr, s.ptr ? s.len : 0); }

static void print_publish(const json_value *p) {
  const char *fields[] = {"queue",      "message_type", "content_type", "correlation_id",
                          "message_id", "app_id",       "content_encoding"};
  const json_value *headers = json_object_get(p, "headers");
  size_t i;
  printf("publish:");
  for (i = 0; i < sizeof fields / sizeof fields[0]; ++i) {
    const json_value *v = json_object_get(p, fields[i]);
    printf(" %s=", fields[i]);
    print_escaped(v->text, v->len);
  }
  printf(" priority=%s delay_ms=%s payload=", json_object_get(p, "priority")->text,
         json_object_get(p, "delay_ms")->text);
  print_escaped(json_object_get(p, "payload")->text, json_object_get(p, "payload")->len);
  putchar('\n');
  for (i = 0; headers != NULL && i < headers->count; ++i) {
    const json_value *h = headers->items[i];
    printf("publish-header: ");
    print_escaped(json_object_get(h, "name")->text, json_object_get(h, "name")->len);
    putchar('=');
    print_escaped(json_object_get(h, "value")->text, json_object_get(h, "value")->len);
    putchar('\n');
  }
}

static int32_t host_publish(foxw_plugin_ctx *ctx, const foxw_message *parent,
                            const foxw_publish *publish, char *err, size_t err_cap) {
  foxw_publish copy;
  json_value *p, *headers;
  foxw_str correlation;
  size_t i;
  if (ctx == NULL) {
    set_error(err, err_cap, "publish: no plugin context");
    return -1;
  }
  if (publish == NULL) {
    set_error(err, err_cap, "publish: no message given");
    return -1;
  }
  if (publish->struct_size < FOXW_PUBLISH_SIZE_1_0) {
    set_error(err, err_cap,
              "publish: foxw_publish.struct_size is %zu, smaller than the %zu bytes of ABI 1.0",
              publish->struct_size, (size_t)FOXW_PUBLISH_SIZE_1_0);
    return -1;
  }
  /* Read only the fields this host knows, whatever the plugin's size. */
  memset(&copy, 0, sizeof copy);
  memcpy(&copy, publish,
         publish->struct_size < sizeof copy ? publish->struct_size : sizeof copy);
  if (copy.queue.len == 0 || copy.queue.ptr == NULL) {
    set_error(err, err_cap, "publish: the queue name is empty");
    return -1;
  }
  if (copy.header_count != 0 && copy.headers == NULL) {
    set_error(err, err_cap, "publish: header_count is set but headers is NULL");
    return -1;
  }
  if (!usable_str(copy.payload) || !usable_str(copy.message_type) ||
      !usable_str(copy.content_type) || !usable_str(copy.correlation_id) ||
      !usable_str(copy.message_id) || !usable_str(copy.app_id) ||
      !usable_str(copy.content_encoding)) {
    set_error(err, err_cap, "publish: a foxw_str has a NULL ptr and a non-zero len");
    return -1;
  }
  for (i = 0; i < copy.header_count; ++i) {
    if (!usable_str(copy.headers[i].name) || !usable_str(copy.headers[i].value)) {
      set_error(err, err_cap, "publish: header %zu has a NULL ptr and a non-zero len", i);
      return -1;
    }
  }
  correlation = copy.correlation_id;
  if (correlation.len == 0 && parent != NULL)
    correlation = host_msg_property(parent, FOXW_PROP_CORRELATION_ID);

  pthread_mutex_lock(&g_host->mu);
  if (g_host->defining || !g_host->publish_open) {
    pthread_mutex_unlock(&g_host->mu);
    set_error(err, err_cap, "publish is not available during init or create");
    return -1;
  }
  p = json_new(JSON_OBJECT);
  headers = json_new(JSON_ARRAY);
  if (p != NULL && headers != NULL) {
    json_object_add(p, "queue", str_json(copy.queue));
    json_object_add(p, "message_type", str_json(copy.message_type));
    json_object_add(p, "content_type", str_json(copy.content_type));
    json_object_add(p, "correlation_id", str_json(correlation));
    json_object_add(p, "message_id", str_json(copy.message_id));
    json_object_add(p, "app_id", str_json(copy.app_id));
    json_object_add(p, "content_encoding", str_json(copy.content_encoding));
    json_object_add(p, "priority", json_new_int(copy.priority));
    json_object_add(p, "delay_ms", json_new_int((int64_t)copy.delay_ms));
    json_object_add(p, "parent_id", parent != NULL ? json_new_string(parent->id, strlen(parent->id))
                                                   : json_new(JSON_NULL));
    json_object_add(p, "payload", str_json(copy.payload));
    for (i = 0; i < copy.header_count; ++i) {
      json_value *h = json_new(JSON_OBJECT);
      if (h == NULL) break;
      json_object_add(h, "name", str_json(copy.headers[i].name));
      json_object_add(h, "value", str_json(copy.headers[i].value));
      json_array_append(headers, h);
    }
    json_object_add(p, "headers", headers);
    headers = NULL;
    if (g_host->print_live) {
      print_publish(p);
      fflush(stdout);
    }
    json_array_append(g_host->publishes, p);
    p = NULL;
  }
  pthread_mutex_unlock(&g_host->mu);
  json_free(p);
  json_free(headers);
  return 0;
}

/* ---- typed config -------------------------------------------------------- */

static int32_t host_config_string(const foxw_plugin_ctx *ctx, const char *key, foxw_str *value) {
  (void)ctx;
  return config_read_string(g_host->config, key, value);
}

static int32_t host_config_int(const foxw_plugin_ctx *ctx, const char *key, int64_t *value) {
  (void)ctx;
  return config_read_int(g_host->config, key, value);
}

static int32_t host_config_double(const foxw_plugin_ctx *ctx, const char *key, double *value) {
  (void)ctx;
  return config_read_double(g_host->config, key, value);
}

static int32_t host_config_bool(const foxw_plugin_ctx *ctx, const char *key, bool *value) {
  (void)ctx;
  return config_read_bool(g_host->config, key, value);
}

static int32_t host_config_duration_ms(const foxw_plugin_ctx *ctx, const char *key,
                                       uint64_t *value) {
  (void)ctx;
  return config_read_duration_ms(g_host->config, key, value);
}

static int32_t host_config_count(const foxw_plugin_ctx *ctx, const char *key, size_t *count) {
  (void)ctx;
  return config_read_count(g_host->config, key, count);
}

static int32_t host_config_item(const foxw_plugin_ctx *ctx, const char *key, size_t index,
                                foxw_str *name, foxw_str *value) {
  (void)ctx;
  return config_read_item(g_host->config, key, index, name, value);
}

/* ---- the table ----------------------------------------------------------- */

static const foxw_host_api kHostApi = {
    sizeof(foxw_host_api),
    FOXW_ABI_MAJOR,
    FOXW_ABI_MINOR,
    host_log_enabled,
    host_log,
    host_metric_define,
    host_metric_update,
    host_monotonic_ns,
    host_wall_time_ms,
    host_msg_id,
    host_msg_queue,
    host_msg_payload,
    host_msg_property,
    host_msg_priority,
    host_msg_timestamp_ms,
    host_msg_enqueued_at_ms,
    host_msg_attempt,
    host_msg_header,
    host_msg_header_count,
    host_msg_header_at,
    host_msg_deadline_ns,
    host_msg_cancelled,
    host_complete,
    host_publish,
    host_config_string,
    host_config_int,
    host_config_double,
    host_config_bool,
    host_config_duration_ms,
    host_config_count,
    host_config_item,
    host_msg_property_int,
    host_msg_header_type,
};

const foxw_host_api *host_api(void) { return &kHostApi; }

bool host_start(runner_host *host) {
  pthread_condattr_t attr;
  if (pthread_mutex_init(&host->mu, NULL) != 0) return false;
  if (pthread_condattr_init(&attr) != 0) return false;
  if (pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) != 0 ||
      pthread_cond_init(&host->completed_cv, &attr) != 0) {
    pthread_condattr_destroy(&attr);
    return false;
  }
  pthread_condattr_destroy(&attr);
  host->phase = "load";
  host->logs = json_new(JSON_ARRAY);
  host->publishes = json_new(JSON_ARRAY);
  host->notes = json_new(JSON_ARRAY);
  if (host->logs == NULL || host->publishes == NULL || host->notes == NULL) return false;
  g_host = host;
  return true;
}

void host_set_phase(runner_host *host, const char *phase) {
  pthread_mutex_lock(&host->mu);
  host->phase = phase;
  host->defining = strcmp(phase, "init") == 0 || strcmp(phase, "create") == 0;
  /* The daemon refuses publish only while init or create runs; from the
   * moment create has returned, any thread may publish. */
  if (strcmp(phase, "ready") == 0 || strcmp(phase, "handle") == 0) host->publish_open = true;
  pthread_mutex_unlock(&host->mu);
}
