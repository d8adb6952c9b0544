/* A plugin for runner_test.sh: one handler per behaviour the runner must
 * show. Built by the test with plain compiler flags against the SDK header,
 * as a plugin author's CI would. Built with -DRUNNER_TEST_BARE it declares
 * no config schema (its config arrives as written) and no "*" handler. */
#include <foxworker/plugin.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const foxw_host_api *host;
static foxw_plugin_ctx *plugin_ctx;
static foxw_metric *handled;
static foxw_metric *last_size;
static foxw_metric *latency;

static void logf_(int32_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#include <stdarg.h>
static void logf_(int32_t level, const char *fmt, ...) {
  char line[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  host->log(plugin_ctx, level, line, strlen(line));
}

static void sleep_ms(long ms) {
  struct timespec ts;
  ts.tv_sec = ms / 1000;
  ts.tv_nsec = (ms % 1000) * 1000000L;
  nanosleep(&ts, NULL);
}

/* A header's value as a NUL-terminated string, or `fallback`. */
static const char *header(const foxw_message *m, const char *name, char *buf, size_t cap,
                          const char *fallback) {
  foxw_str v;
  if (!host->msg_header(m, name, strlen(name), &v)) return fallback;
  snprintf(buf, cap, "%.*s", (int)v.len, v.ptr);
  return buf;
}

static foxw_verdict ack(void *self, const foxw_message *m, foxw_outcome *out) {
  foxw_str payload = host->msg_payload(m);
  (void)self;
  (void)out;
  logf_(FOXW_LOG_INFO, "ack: payload=%.*s", (int)payload.len, payload.ptr);
  logf_(FOXW_LOG_DEBUG, "a debug line\nwith a newline");
  host->metric_update(handled, 1);
  host->metric_update(handled, -5); /* ignored: counters only grow */
  host->metric_update(last_size, (double)payload.len);
  host->metric_update(latency, 0.25);
  host->metric_update(latency, 0.5);
  return FOXW_ACK;
}

static foxw_verdict retry(void *self, const foxw_message *m, foxw_outcome *out) {
  (void)self;
  (void)m;
  return foxw_retry(out, "backend busy", 1500);
}

static foxw_verdict reject(void *self, const foxw_message *m, foxw_outcome *out) {
  (void)self;
  (void)m;
  return foxw_reject(out, "bad payload");
}

static foxw_verdict invalid(void *self, const foxw_message *m, foxw_outcome *out) {
  (void)self;
  (void)m;
  (void)out;
  return 7;
}

static void batch(void *self, const foxw_message *const *msgs, size_t count,
                  foxw_verdict *verdicts, foxw_outcome *const *outs) {
  size_t i;
  char reason[64];
  (void)self;
  for (i = 0; i < count; ++i) {
    foxw_str p = host->msg_payload(msgs[i]);
    snprintf(reason, sizeof reason, "batch of %zu: %.*s", count, (int)p.len, p.ptr);
    verdicts[i] = foxw_reject(outs[i], reason);
  }
}

static void batch_pending(void *self, const foxw_message *const *msgs, size_t count,
                          foxw_verdict *verdicts, foxw_outcome *const *outs) {
  (void)self;
  (void)msgs;
  (void)outs;
  verdicts[0] = FOXW_PENDING;
  (void)count;
}

/* ---- deferred completion ------------------------------------------------- */

struct deferred {
  const foxw_message *msg;
  long delay_ms;
  foxw_verdict verdict;
};

static void *complete_later(void *arg) {
  struct deferred *d = arg;
  const char *reason = "completed from another thread";
  int32_t rc;
  sleep_ms(d->delay_ms);
  logf_(FOXW_LOG_INFO, "completing after %ld ms (cancelled: %s)", d->delay_ms,
        host->msg_cancelled(d->msg) ? "yes" : "no");
  rc = host->complete(d->msg, d->verdict, reason, strlen(reason), 250);
  logf_(FOXW_LOG_INFO, "complete() returned %d", (int)rc);
  free(d);
  return NULL;
}

/* Headers: x-delay-ms (default 50), x-verdict (default 1 = ACK). */
static foxw_verdict defer(void *self, const foxw_message *m, foxw_outcome *out) {
  char buf[32];
  pthread_t t;
  struct deferred *d = malloc(sizeof *d);
  (void)self;
  if (d == NULL) return foxw_retry(out, "no memory", 0);
  d->msg = m;
  d->delay_ms = atol(header(m, "x-delay-ms", buf, sizeof buf, "50"));
  d->verdict = atoi(header(m, "x-verdict", buf, sizeof buf, "1"));
  if (pthread_create(&t, NULL, complete_later, d) != 0) {
    free(d);
    return foxw_retry(out, "no thread", 0);
  }
  pthread_detach(t);
  return FOXW_PENDING;
}

/* A synchronous handler that runs until its message is cancelled. */
static foxw_verdict slow(void *self, const foxw_message *m, foxw_outcome *out) {
  (void)self;
  (void)out;
  while (!host->msg_cancelled(m)) sleep_ms(5);
  sleep_ms(20);
  return FOXW_ACK;
}

/* ---- config, publish, message accessors ---------------------------------- */

static void log_list(const char *key) {
  char line[1024];
  size_t n = 0, i, len = 0;
  int32_t rc = host->config_count(plugin_ctx, key, &n);
  len += (size_t)snprintf(line, sizeof line, "%s(rc=%d)=", key, (int)rc);
  for (i = 0; i < n && len < sizeof line; ++i) {
    foxw_str name = {"", 0}, value = {"", 0};
    int32_t item_rc = host->config_item(plugin_ctx, key, i, &name, &value);
    if (item_rc != FOXW_CONFIG_OK) {
      len += (size_t)snprintf(line + len, sizeof line - len, "%s<rc=%d>", i ? "," : "",
                              (int)item_rc);
      continue;
    }
    len += (size_t)snprintf(line + len, sizeof line - len, "%s%.*s%s%.*s", i ? "," : "",
                            (int)name.len, name.ptr, name.len ? ":" : "", (int)value.len,
                            value.ptr);
  }
  if (len < sizeof line)
    snprintf(line + len, sizeof line - len, " past_end=%d",
             (int)host->config_item(plugin_ctx, key, n, NULL, NULL));
  logf_(FOXW_LOG_INFO, "%s", line);
}

static foxw_verdict config(void *self, const foxw_message *m, foxw_outcome *out) {
  foxw_str endpoint = {0, 0}, greeting = {0, 0}, label = {0, 0};
  int64_t retries = -1, wrong = 0;
  double ratio = -1;
  bool verbose = false;
  uint64_t timeout = 0;
  int32_t rc_label = host->config_string(plugin_ctx, "label", &label);
  (void)self;
  (void)m;
  (void)out;
  host->config_string(plugin_ctx, "endpoint", &endpoint);
  host->config_string(plugin_ctx, "greeting", &greeting);
  host->config_int(plugin_ctx, "retries", &retries);
  host->config_double(plugin_ctx, "ratio", &ratio);
  host->config_bool(plugin_ctx, "verbose", &verbose);
  host->config_duration_ms(plugin_ctx, "timeout", &timeout);
  logf_(FOXW_LOG_INFO,
        "config: endpoint=%.*s greeting=%.*s retries=%lld ratio=%g verbose=%s timeout_ms=%llu",
        (int)endpoint.len, endpoint.ptr, (int)greeting.len, greeting.ptr, (long long)retries,
        ratio, verbose ? "true" : "false", (unsigned long long)timeout);
  logf_(FOXW_LOG_INFO, "label(rc=%d)=%.*s", (int)rc_label, (int)label.len, label.ptr);
  log_list("tags");
  log_list("labels");
  logf_(FOXW_LOG_INFO, "typed: int(greeting)=%d string(nope)=%d double(retries)=%d "
        "duration(greeting)=%d count(greeting)=%d bool(greeting)=%d",
        (int)host->config_int(plugin_ctx, "greeting", &wrong),
        (int)host->config_string(plugin_ctx, "nope", &label),
        (int)host->config_double(plugin_ctx, "retries", &ratio),
        (int)host->config_duration_ms(plugin_ctx, "greeting", &timeout),
        (int)host->config_count(plugin_ctx, "greeting", NULL),
        (int)host->config_bool(plugin_ctx, "greeting", &verbose));
  return FOXW_ACK;
}

static foxw_verdict publish(void *self, const foxw_message *m, foxw_outcome *out) {
  foxw_publish p;
  foxw_header h[2];
  char err[256] = "";
  (void)self;
  memset(&p, 0, sizeof p);
  p.struct_size = sizeof p;
  p.queue.ptr = "replies";
  p.queue.len = 7;
  p.payload = host->msg_payload(m);
  p.message_type.ptr = "reply";
  p.message_type.len = 5;
  h[0].name.ptr = "x-one";
  h[0].name.len = 5;
  h[0].value.ptr = "1";
  h[0].value.len = 1;
  h[1].name.ptr = "x-two";
  h[1].name.len = 5;
  h[1].value.ptr = "two";
  h[1].value.len = 3;
  p.headers = h;
  p.header_count = 2;
  p.priority = 3;
  p.delay_ms = 100;
  if (host->publish(plugin_ctx, m, &p, err, sizeof err) != 0) return foxw_retry(out, err, 0);
  p.queue.len = 0;
  if (host->publish(plugin_ctx, m, &p, err, sizeof err) == 0) return foxw_retry(out, "empty queue accepted", 0);
  logf_(FOXW_LOG_INFO, "empty queue: %s", err);
  return FOXW_ACK;
}

/* ABI 1.1: numeric properties as sent, header types, cluster_id; publish
 * with message_id, app_id and content_encoding. */
static foxw_verdict typed(void *self, const foxw_message *m, foxw_outcome *out) {
  static const int32_t props[] = {FOXW_PROP_PRIORITY, FOXW_PROP_TIMESTAMP_MS,
                                  FOXW_PROP_DELIVERY_MODE, FOXW_PROP_CONTENT_TYPE};
  static const char *const names[] = {"priority", "timestamp_ms", "delivery_mode",
                                      "content_type"};
  foxw_str cluster = host->msg_property(m, FOXW_PROP_CLUSTER_ID), name, v;
  foxw_publish p;
  char err[256];
  size_t i, n = host->msg_header_count(m);
  (void)self;
  if (!FOXW_HOST_HAS(host, msg_header_type)) return foxw_reject(out, "host older than 1.1");
  for (i = 0; i < sizeof props / sizeof props[0]; ++i) {
    int64_t value = -7;
    bool set = host->msg_property_int(m, props[i], &value);
    logf_(FOXW_LOG_INFO, "%s: %s %lld", names[i], set ? "set" : "unset", (long long)value);
  }
  logf_(FOXW_LOG_INFO, "cluster_id: %.*s", (int)cluster.len, cluster.ptr);
  for (i = 0; i <= n; ++i) {
    name.len = 0;
    name.ptr = "";
    if (i < n) host->msg_header_at(m, i, &name, &v);
    logf_(FOXW_LOG_INFO, "header %zu type %d: %.*s", i, (int)host->msg_header_type(m, i),
          (int)name.len, name.ptr);
  }
  memset(&p, 0, sizeof p);
  p.struct_size = sizeof p;
  p.queue.ptr = "next";
  p.queue.len = 4;
  p.message_id.ptr = "my-id-1";
  p.message_id.len = 7;
  p.app_id.ptr = "billing";
  p.app_id.len = 7;
  p.content_encoding.ptr = "gzip";
  p.content_encoding.len = 4;
  if (host->publish(plugin_ctx, m, &p, err, sizeof err) != 0) return foxw_retry(out, err, 0);
  return FOXW_ACK;
}

static foxw_verdict message(void *self, const foxw_message *m, foxw_outcome *out) {
  foxw_str id = host->msg_id(m), q = host->msg_queue(m), v;
  foxw_str ct = host->msg_property(m, FOXW_PROP_CONTENT_TYPE);
  foxw_str mt = host->msg_property(m, FOXW_PROP_MESSAGE_TYPE);
  foxw_str cid = host->msg_property(m, FOXW_PROP_CORRELATION_ID);
  foxw_str unknown = host->msg_property(m, 99);
  foxw_str name;
  uint64_t deadline = host->msg_deadline_ns(m);
  size_t i, n = host->msg_header_count(m);
  char err[256] = "";
  (void)self;
  (void)out;
  logf_(FOXW_LOG_INFO, "message: id=%.*s queue=%.*s attempt=%u priority=%u timestamp=%lld "
        "enqueued=%s content_type=%.*s type=%.*s correlation_id=%.*s unknown_len=%zu",
        (int)id.len, id.ptr, (int)q.len, q.ptr, (unsigned)host->msg_attempt(m),
        (unsigned)host->msg_priority(m), (long long)host->msg_timestamp_ms(m),
        host->msg_enqueued_at_ms(m) > 0 ? "yes" : "no", (int)ct.len, ct.ptr, (int)mt.len, mt.ptr,
        (int)cid.len, cid.ptr, unknown.len);
  for (i = 0; i < n; ++i) {
    host->msg_header_at(m, i, &name, &v);
    logf_(FOXW_LOG_INFO, "header %zu: %.*s=%.*s", i, (int)name.len, name.ptr, (int)v.len, v.ptr);
  }
  logf_(FOXW_LOG_INFO, "x-trace: %s, x-missing: %s",
        host->msg_header(m, "x-trace", 7, &v) ? "found" : "absent",
        host->msg_header(m, "x-missing", 9, &v) ? "found" : "absent");
  logf_(FOXW_LOG_INFO, "deadline: %s, cancelled: %s",
        deadline == UINT64_MAX ? "none"
        : deadline > host->monotonic_ns() ? "ahead" : "passed",
        host->msg_cancelled(m) ? "yes" : "no");
  logf_(FOXW_LOG_INFO, "wall clock: %s", host->wall_time_ms() > 1600000000000LL ? "ok" : "wrong");
  logf_(FOXW_LOG_INFO, "metric_define in a handler: %s",
        host->metric_define(plugin_ctx, FOXW_METRIC_COUNTER, "late", "", err, sizeof err) == NULL
            ? err : "accepted");
  logf_(FOXW_LOG_INFO, "complete() on a message never deferred: %d",
        (int)host->complete(m, FOXW_ACK, NULL, 0, 0));
  return FOXW_ACK;
}

#ifndef RUNNER_TEST_BARE
static foxw_verdict wildcard(void *self, const foxw_message *m, foxw_outcome *out) {
  foxw_str t = host->msg_property(m, FOXW_PROP_MESSAGE_TYPE);
  char reason[128];
  (void)self;
  snprintf(reason, sizeof reason, "wildcard got type %.*s", (int)t.len, t.ptr);
  return foxw_reject(out, reason);
}
#endif

/* ---- publish from the plugin's own threads ----------------------------------- */

static foxw_publish bare_publish(const char *queue) {
  foxw_publish p;
  memset(&p, 0, sizeof p);
  p.struct_size = sizeof p;
  p.queue.ptr = queue;
  p.queue.len = strlen(queue);
  return p;
}

/* Publishes while create (which joins it) still runs: refused. */
static void *publish_during_create(void *arg) {
  foxw_publish p = bare_publish("replies");
  char err[256] = "";
  int32_t rc = host->publish(plugin_ctx, NULL, &p, err, sizeof err);
  (void)arg;
  logf_(FOXW_LOG_INFO, "publish from a thread during create: %d (%s)", (int)rc, err);
  return NULL;
}

/* With RUNNER_TEST_BG_PUBLISH set, create starts a thread that publishes
 * once told to (by destroy, which then joins it): after create returned,
 * with or without a handler call before. */
static pthread_mutex_t bg_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t bg_cv = PTHREAD_COND_INITIALIZER;
static bool bg_go, bg_running;
static pthread_t bg_thread;

static void *publish_in_background(void *arg) {
  foxw_publish p = bare_publish("background");
  char err[256] = "";
  int32_t rc;
  (void)arg;
  pthread_mutex_lock(&bg_mu);
  while (!bg_go) pthread_cond_wait(&bg_cv, &bg_mu);
  pthread_mutex_unlock(&bg_mu);
  p.payload.ptr = "from a thread";
  p.payload.len = 13;
  rc = host->publish(plugin_ctx, NULL, &p, err, sizeof err);
  logf_(FOXW_LOG_INFO, "publish from a thread after create: %d (%s)", (int)rc, err);
  return NULL;
}

/* ---- the plugin ---------------------------------------------------------- */

#ifdef RUNNER_TEST_BARE
FOXW_DECLARE_PLUGIN("runner_test", "1.2.3", "foxworker-plugin-run's test plugin", NULL, 0)
#else
static const foxw_config_key schema[] = {
    {sizeof(foxw_config_key), "endpoint", FOXW_CONFIG_STRING, true, NULL, "where to"},
    {sizeof(foxw_config_key), "greeting", FOXW_CONFIG_STRING, false, "hello", ""},
    {sizeof(foxw_config_key), "retries", FOXW_CONFIG_INT, false, "3", ""},
    {sizeof(foxw_config_key), "ratio", FOXW_CONFIG_DOUBLE, false, "0.25", ""},
    {sizeof(foxw_config_key), "verbose", FOXW_CONFIG_BOOL, false, "yes", ""},
    {sizeof(foxw_config_key), "timeout", FOXW_CONFIG_DURATION, false, "1.5s", ""},
    {sizeof(foxw_config_key), "tags", FOXW_CONFIG_STRING_LIST, false, NULL, ""},
    {sizeof(foxw_config_key), "labels", FOXW_CONFIG_MAP, false, NULL, ""},
    {sizeof(foxw_config_key), "label", FOXW_CONFIG_STRING, false, NULL, ""},
};

FOXW_DECLARE_PLUGIN("runner_test", "1.2.3", "foxworker-plugin-run's test plugin", schema,
                    sizeof schema / sizeof schema[0])
#endif

static int32_t create(foxw_plugin_ctx *ctx, const char *config_json, size_t config_len,
                      void **instance, char *err, size_t err_cap) {
  foxw_publish p;
  char perr[256] = "";
  char merr[256] = "";
  foxw_str greeting;
  pthread_t t;
  logf_(FOXW_LOG_INFO, "create: config %.*s", (int)config_len, config_json);
  if (pthread_create(&t, NULL, publish_during_create, NULL) == 0) pthread_join(t, NULL);
  if (getenv("RUNNER_TEST_BG_PUBLISH") != NULL &&
      pthread_create(&bg_thread, NULL, publish_in_background, NULL) == 0)
    bg_running = true;
  memset(&p, 0, sizeof p);
  p.struct_size = sizeof p;
  p.queue.ptr = "replies";
  p.queue.len = 7;
  logf_(FOXW_LOG_INFO, "publish in create: %d (%s)",
        (int)host->publish(ctx, NULL, &p, perr, sizeof perr), perr);
  logf_(FOXW_LOG_INFO, "define again, same kind: %s",
        host->metric_define(ctx, FOXW_METRIC_COUNTER, "handled_total", "", merr, sizeof merr) ==
                handled ? "same metric" : "another metric");
  logf_(FOXW_LOG_INFO, "define again, other kind: %s",
        host->metric_define(ctx, FOXW_METRIC_GAUGE, "handled_total", "", merr, sizeof merr) == NULL
            ? merr : "accepted");
  logf_(FOXW_LOG_INFO, "bad name: %s",
        host->metric_define(ctx, FOXW_METRIC_GAUGE, "bad name", "", merr, sizeof merr) == NULL
            ? merr : "accepted");
  if (host->config_string(ctx, "greeting", &greeting) == FOXW_CONFIG_OK && greeting.len == 6 &&
      memcmp(greeting.ptr, "refuse", 6) == 0) {
    foxw_set_error(err, err_cap, "greeting \"refuse\" refused");
    return 1;
  }
  *instance = ctx;
  return 0;
}

static void destroy(void *instance) {
  (void)instance;
  logf_(FOXW_LOG_INFO, "destroy");
  if (bg_running) {
    pthread_mutex_lock(&bg_mu);
    bg_go = true;
    pthread_cond_signal(&bg_cv);
    pthread_mutex_unlock(&bg_mu);
    pthread_join(bg_thread, NULL);
    bg_running = false;
  }
}

static void shutdown_plugin(foxw_plugin_ctx *ctx) {
  (void)ctx;
  logf_(FOXW_LOG_INFO, "shutdown");
}

FOXW_EXPORT const foxw_plugin_v1 *foxworker_plugin_init_v1(const foxw_host_api *h,
                                                           foxw_plugin_ctx *ctx, char *err,
                                                           size_t err_cap) {
  static const foxw_handler_def handlers[] = {
      FOXW_HANDLER("ack", ack),
      FOXW_HANDLER("retry", retry),
      FOXW_HANDLER("reject", reject),
      FOXW_HANDLER("invalid", invalid),
      FOXW_BATCH_HANDLER("batch", batch),
      FOXW_BATCH_HANDLER("batch_pending", batch_pending),
      FOXW_HANDLER("defer", defer),
      FOXW_HANDLER("slow", slow),
      FOXW_HANDLER("config", config),
      FOXW_HANDLER("publish", publish),
      FOXW_HANDLER("message", message),
      FOXW_HANDLER("typed", typed),
#ifndef RUNNER_TEST_BARE
      FOXW_HANDLER("*", wildcard),
#endif
  };
  static const foxw_plugin_v1 plugin = {
      sizeof(foxw_plugin_v1), FOXW_INSTANCE_PER_SLOT, 0, handlers,
      sizeof handlers / sizeof handlers[0], sizeof(foxw_handler_def), create, destroy,
      shutdown_plugin};
  char merr[256] = "";
  char perr[256] = "";
  foxw_publish p = bare_publish("replies");
  if (!foxw_host_usable(h, err, err_cap)) return NULL;
  host = h;
  plugin_ctx = ctx;
  logf_(FOXW_LOG_INFO, "publish in init: %d (%s)",
        (int)host->publish(ctx, NULL, &p, perr, sizeof perr), perr);
  if (getenv("RUNNER_TEST_REFUSE_INIT") != NULL) {
    foxw_set_error(err, err_cap, "asked to refuse");
    return NULL;
  }
  handled = host->metric_define(ctx, FOXW_METRIC_COUNTER, "handled_total", "Messages", merr,
                                sizeof merr);
  last_size = host->metric_define(ctx, FOXW_METRIC_GAUGE, "last_size_bytes", "", merr, sizeof merr);
  latency = host->metric_define(ctx, FOXW_METRIC_HISTOGRAM, "latency_seconds", "", merr,
                                sizeof merr);
  if (handled == NULL || last_size == NULL || latency == NULL) {
    foxw_set_error(err, err_cap, merr);
    return NULL;
  }
  return &plugin;
}
