/* foxworker-plugin-run: runs one handler of a foxworker plugin on one
 * message, without a daemon or a broker, for a plugin's own tests.
 * `foxworker-plugin-run --help` and docs/plugin-guide.md describe it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <foxworker/plugin.h>

#include "config.h"
#include "host.h"
#include "json.h"
#include "loader.h"
#include "options.h"

/* As the daemon's consumer. */
#define REASON_CAP 2048
/* Payload and config files larger than this are refused. */
#define MAX_INPUT (256u * 1024 * 1024)

/* What the handler's run came to. */
typedef struct run_result {
  const char *verdict_text; /* "ACK", "RETRY", "REJECT", "INVALID", "TIMEOUT" */
  foxw_verdict raw;         /* what the plugin returned (or completed with) */
  char *reason;
  size_t reason_len;
  uint64_t retry_delay_ms;
  bool deferred;
  int exit_code;
} run_result;

static bool read_input(const char *path, char **data, size_t *len, char *err, size_t cap) {
  FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
  json_buf b = {0};
  char chunk[65536];
  size_t n;
  if (f == NULL) {
    snprintf(err, cap, "cannot open %s", path);
    return false;
  }
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
    json_buf_append(&b, chunk, n);
    if (b.len > MAX_INPUT) break;
  }
  if (ferror(f) || b.failed || b.len > MAX_INPUT) {
    snprintf(err, cap, "cannot read %s%s", strcmp(path, "-") == 0 ? "stdin" : path,
             b.len > MAX_INPUT ? " (larger than 256 MiB)" : "");
    if (f != stdin) fclose(f);
    json_buf_free(&b);
    return false;
  }
  if (f != stdin) fclose(f);
  *data = b.data != NULL ? b.data : calloc(1, 1);
  *len = b.len;
  return *data != NULL;
}

static void print_line(const char *key, const char *text, size_t len) {
  printf("%s: ", key);
  print_escaped(text, len);
  putchar('\n');
}

static void set_reason(run_result *r, const char *text, size_t len) {
  free(r->reason);
  r->reason = malloc(len + 1);
  if (r->reason == NULL) {
    r->reason_len = 0;
    return;
  }
  memcpy(r->reason, text, len);
  r->reason[len] = '\0';
  r->reason_len = len;
}

/* Maps a final verdict onto the result as the daemon's consumer does. */
static void settle(run_result *r, foxw_verdict v) {
  r->raw = v;
  switch (v) {
    case FOXW_ACK: r->verdict_text = "ACK"; r->exit_code = EXIT_ACK; break;
    case FOXW_RETRY: r->verdict_text = "RETRY"; r->exit_code = EXIT_RETRY; break;
    case FOXW_REJECT: r->verdict_text = "REJECT"; r->exit_code = EXIT_REJECT; break;
    default: r->verdict_text = "INVALID"; r->exit_code = EXIT_PLUGIN_BUG; break;
  }
}

static void format_ms(char *buf, size_t cap, uint64_t ms) {
  if (ms % 1000 == 0) snprintf(buf, cap, "%llus", (unsigned long long)(ms / 1000));
  else snprintf(buf, cap, "%llums", (unsigned long long)ms);
}

/* Runs `h` on `msg` and waits for a deferred completion. */
static void run_handler(runner_host *host, const foxw_handler_def *h, void *instance,
                        foxw_message *msg, uint64_t timeout_ms, run_result *r) {
  static char reason_buf[REASON_CAP];
  foxw_outcome out;
  foxw_outcome *outs[1];
  const foxw_message *msgs[1];
  foxw_verdict verdict = 0;
  foxw_handle_batch_fn batch = plugin_batch_fn(h);
  uint64_t now;
  char limit[32];

  memset(&out, 0, sizeof out);
  out.struct_size = sizeof out;
  out.reason = reason_buf;
  out.reason_cap = sizeof reason_buf;
  reason_buf[0] = '\0';
  format_ms(limit, sizeof limit, timeout_ms);

  host_set_phase(host, "handle");
  now = host_api()->monotonic_ns();
  /* A timeout too long to count in nanoseconds from now is no deadline. */
  msg->deadline_ns = timeout_ms == 0 || timeout_ms > (UINT64_MAX - now) / 1000000u
                         ? UINT64_MAX
                         : now + timeout_ms * 1000000u;
  msg->state = MESSAGE_IN_CALL;
  if (batch != NULL) {
    /* A batch of one; `outs` is an array of pointers. */
    msgs[0] = msg;
    outs[0] = &out;
    batch(instance, msgs, 1, &verdict, outs);
  } else {
    verdict = h->handle(instance, msg, &out);
  }
  now = host_api()->monotonic_ns();
  set_reason(r, reason_buf, out.reason_len < sizeof reason_buf ? out.reason_len
                                                                 : sizeof reason_buf - 1);
  r->retry_delay_ms = out.retry_delay_ms;

  if (verdict == FOXW_PENDING && batch == NULL) {
    r->deferred = true;
    host_set_phase(host, "wait");
    if (!host_wait_for_completion(host, msg)) {
      char text[128];
      int n = snprintf(text, sizeof text, "timeout after %s", limit);
      r->raw = FOXW_PENDING;
      r->verdict_text = "TIMEOUT";
      r->exit_code = EXIT_TIMEOUT;
      r->retry_delay_ms = 0;
      set_reason(r, text, (size_t)n);
      host_note(host, "the handler returned FOXW_PENDING and complete() was not called within "
                "%s; the daemon retries the message", limit);
      return;
    }
    settle(r, msg->completed_verdict);
    set_reason(r, msg->completed_reason != NULL ? msg->completed_reason : "",
               msg->completed_reason_len);
    r->retry_delay_ms = msg->completed_retry_delay_ms;
  } else {
    if (host_finish_call(host, msg))
      host_note(host, "the handler completed message %s and also returned a verdict; the "
                "returned verdict wins", msg->id);
    settle(r, verdict);
    if (verdict == FOXW_PENDING)
      host_note(host, "FOXW_PENDING is not allowed from a batch handler; the daemon retries");
  }
  if (r->exit_code == EXIT_PLUGIN_BUG) {
    char text[64];
    int n = snprintf(text, sizeof text, "plugin returned unknown verdict %d", (int)r->raw);
    set_reason(r, text, (size_t)n);
    r->retry_delay_ms = 0;
  }
  if (msg->deadline_ns != UINT64_MAX && now > msg->deadline_ns && !r->deferred) {
    char text[128];
    int n = snprintf(text, sizeof text, "timeout after %s", limit);
    host_note(host, "the handler returned after its %s timeout; the daemon ignores the late "
              "verdict and retries the message", limit);
    r->verdict_text = "TIMEOUT";
    r->exit_code = EXIT_TIMEOUT;
    r->retry_delay_ms = 0;
    set_reason(r, text, (size_t)n);
  }
}

static void print_result(const run_result *r) {
  if (strcmp(r->verdict_text, "INVALID") == 0)
    printf("verdict: invalid verdict %d -> RETRY\n", (int)r->raw);
  else if (strcmp(r->verdict_text, "TIMEOUT") == 0)
    printf("verdict: TIMEOUT -> RETRY\n");
  else
    printf("verdict: %s\n", r->verdict_text);
  print_line("reason", r->reason != NULL ? r->reason : "", r->reason_len);
  printf("retry_delay_ms: %llu\n", (unsigned long long)r->retry_delay_ms);
  fflush(stdout);
}

static json_value *str_value(const char *s) { return json_new_string(s, s != NULL ? strlen(s) : 0); }

static void print_json_report(runner_host *host, const loaded_plugin *p, const char *handler,
                              bool batch, const run_result *r, const char *error, int exit_code) {
  json_value *o = json_new(JSON_OBJECT);
  json_buf b = {0};
  if (o == NULL) return;
  if (p->info.name != NULL) {
    json_value *pl = json_new(JSON_OBJECT);
    json_object_add(pl, "name", str_value(p->info.name));
    json_object_add(pl, "version", str_value(p->info.version));
    json_object_add(pl, "description", str_value(p->info.description));
    json_object_add(pl, "abi_minor", json_new_int(p->info.abi_minor));
    json_object_add(pl, "sdk_minor", json_new_int(p->info.sdk_minor));
    json_object_add(o, "plugin", pl);
  } else {
    json_object_add(o, "plugin", json_new(JSON_NULL));
  }
  json_object_add(o, "handler", handler != NULL ? str_value(handler) : json_new(JSON_NULL));
  json_object_add(o, "batch", json_new(JSON_BOOL));
  json_set_bool(json_object_get(o, "batch"), batch);
  if (r != NULL && r->verdict_text != NULL) {
    json_object_add(o, "verdict", str_value(r->verdict_text));
    json_object_add(o, "raw_verdict", json_new_int(r->raw));
    json_object_add(o, "reason", json_new_string(r->reason != NULL ? r->reason : "", r->reason_len));
    json_object_add(o, "retry_delay_ms", json_new_int((int64_t)r->retry_delay_ms));
    json_object_add(o, "deferred", json_new(JSON_BOOL));
    json_set_bool(json_object_get(o, "deferred"), r->deferred);
  } else {
    json_object_add(o, "verdict", json_new(JSON_NULL));
  }
  pthread_mutex_lock(&host->mu);
  json_object_add(o, "logs", host->logs);
  json_object_add(o, "publishes", host->publishes);
  json_object_add(o, "notes", host->notes);
  host->logs = host->publishes = host->notes = NULL;
  pthread_mutex_unlock(&host->mu);
  json_object_add(o, "metrics", host_metrics_json(host));
  json_object_add(o, "error", error != NULL ? str_value(error) : json_new(JSON_NULL));
  json_object_add(o, "exit_code", json_new_int(exit_code));
  json_write(&b, o);
  if (b.data != NULL) printf("%s\n", b.data);
  fflush(stdout);
  json_buf_free(&b);
  /* The host's arrays belong to `o` now, and go with it: nothing reads
   * them after the report. */
  json_free(o);
}

/* Builds the message from the options; false when out of memory. */
static bool build_message(const runner_options *o, char *payload, size_t payload_len,
                          foxw_message *msg) {
  size_t i;
  memset(msg, 0, sizeof *msg);
  msg->id = strdup(o->id);
  msg->queue = strdup(o->queue);
  msg->payload = payload;
  msg->payload_len = payload_len;
  for (i = 0; i < RUNNER_PROPERTY_COUNT; ++i)
    if (o->properties[i] != NULL && (msg->properties[i] = strdup(o->properties[i])) == NULL)
      return false;
  if (o->properties[FOXW_PROP_MESSAGE_ID - 1] == NULL)
    msg->properties[FOXW_PROP_MESSAGE_ID - 1] = strdup(o->id);
  msg->headers = o->headers;
  msg->header_count = o->header_count;
  msg->priority = o->priority;
  msg->priority_set = o->priority_set;
  msg->timestamp_ms = o->timestamp_ms;
  msg->timestamp_set = o->timestamp_set;
  msg->delivery_mode = o->delivery_mode;
  msg->enqueued_at_ms = host_api()->wall_time_ms();
  msg->attempt = o->attempt;
  msg->deadline_ns = UINT64_MAX;
  return msg->id != NULL && msg->queue != NULL;
}

int main(int argc, char **argv) {
  static runner_options o;
  static runner_host host;
  static loaded_plugin plugin;
  static foxw_message msg;
  static run_result result;
  char err[2048] = "";
  /* Static: reachable until exit on every path (the plugin may borrow from
   * them until its shutdown); freed at the normal end. */
  static char *payload, *config_text;
  size_t payload_len = 0, config_len = 0;
  static json_value *config;
  static json_buf config_json;
  const foxw_handler_def *handler = NULL;
  const char *type;
  void *instance = NULL;
  int rc = parse_options(argc, argv, &o);
  bool created = false;

  if (rc != -1) return rc;
  memset(&result, 0, sizeof result);

  /* Inputs. */
  if (o.payload != NULL) {
    payload = strdup(o.payload);
    payload_len = strlen(o.payload);
  } else if (o.payload_file != NULL) {
    if (!read_input(o.payload_file, &payload, &payload_len, err, sizeof err)) {
      fprintf(stderr, "foxworker-plugin-run: --payload-file: %s\n", err);
      return EXIT_USAGE;
    }
  } else {
    payload = strdup("");
  }
  if (o.config_file != NULL) {
    if (!read_input(o.config_file, &config_text, &config_len, err, sizeof err)) {
      fprintf(stderr, "foxworker-plugin-run: --config: %s\n", err);
      return EXIT_USAGE;
    }
  } else {
    config_text = strdup(o.config_json != NULL ? o.config_json : "{}");
    config_len = config_text != NULL ? strlen(config_text) : 0;
  }
  if (payload == NULL || config_text == NULL) return EXIT_INTERNAL;
  config = json_parse(config_text, config_len, err, sizeof err);
  if (config == NULL || config->type != JSON_OBJECT) {
    fprintf(stderr, "foxworker-plugin-run: the config is not a JSON object%s%s\n",
            config == NULL ? ": " : "", config == NULL ? err : "");
    return EXIT_USAGE;
  }

  host.print_live = !o.json;
  host.min_level = o.log_level;
  host.config = config;
  if (!host_start(&host) || !build_message(&o, payload, payload_len, &msg)) return EXIT_INTERNAL;

  /* Load as the daemon does. A path without a slash is a file here, not a
   * library for dlopen to search for. */
  {
    const char *path = o.plugin_path;
    char *local = NULL;
    if (strchr(path, '/') == NULL && (local = malloc(strlen(path) + 3)) != NULL) {
      strcpy(local, "./");
      strcat(local, path);
      path = local;
    }
    rc = plugin_open(path, &plugin, err, sizeof err) ? -1 : EXIT_REFUSED;
    free(local);
  }
  if (rc == -1) {
    host.ctx.plugin_name = plugin.info.name;
    if (!o.json)
      printf("plugin: %s %s (needs ABI 1.%u, built with SDK 1.%u; runner ABI 1.%d)\n",
             plugin.info.name, plugin.info.version != NULL ? plugin.info.version : "",
             (unsigned)plugin.info.abi_minor, (unsigned)plugin.info.sdk_minor, FOXW_ABI_MINOR);
    if (!config_apply_schema(config, plugin.schema, plugin.info.config_key_count, err,
                             sizeof err))
      rc = EXIT_REFUSED;
  }
  if (rc == -1) {
    json_write(&config_json, config);
    if (config_json.failed) return EXIT_INTERNAL;
    host_set_phase(&host, "init");
    if (!plugin_init(&plugin, host_api(), &host.ctx, err, sizeof err)) rc = EXIT_REFUSED;
  }

  /* The handler, as a queue finds it. */
  type = o.properties[FOXW_PROP_MESSAGE_TYPE - 1];
  if (rc == -1) {
    char names[1024];
    plugin_handler_names(&plugin, names, sizeof names);
    if (o.handler != NULL) {
      handler = plugin_handler_named(&plugin, o.handler);
      if (handler == NULL) {
        snprintf(err, sizeof err, "plugin %s has no handler \"%s\" (it has: %s)",
                 plugin.info.name, o.handler, names);
        rc = EXIT_REFUSED;
      }
    } else if (type != NULL) {
      handler = plugin_handler_for_type(&plugin, type);
      if (handler == NULL) {
        /* The daemon rejects the message before any handler runs. */
        int n = snprintf(err, sizeof err, "unknown message type \"%s\": plugin %s has handlers %s",
                         type, plugin.info.name, names);
        set_reason(&result, err, (size_t)n < sizeof err ? (size_t)n : sizeof err - 1);
        settle(&result, FOXW_REJECT);
        err[0] = '\0';
      }
    } else {
      handler = plugin_handler_named(&plugin, "*");
      if (handler == NULL && plugin.def.handler_count == 1) handler = &plugin.handlers[0];
      if (handler == NULL) {
        fprintf(stderr, "foxworker-plugin-run: plugin %s has several handlers (%s) and no \"*\": "
                "choose one with --handler or --type\n", plugin.info.name, names);
        rc = EXIT_USAGE;
      }
    }
  }
  if (rc == -1 && !o.json && handler != NULL)
    printf("handler: %s%s\n", handler->name, plugin_batch_fn(handler) != NULL ? " (batch)" : "");

  if (rc == -1) {
    char create_err[1024] = "";
    host_set_phase(&host, "create");
    if (plugin.def.create(&host.ctx, config_json.data, config_json.len, &instance, create_err,
                          sizeof create_err) != 0) {
      snprintf(err, sizeof err, "create refused: %s",
               create_err[0] ? create_err : "(no reason given)");
      rc = EXIT_REFUSED;
    } else {
      created = true;
      /* The daemon's control thread is past create: publish is open to the
       * plugin's threads from here on, metric_define is closed. */
      host_set_phase(&host, "ready");
    }
  }

  if (rc == -1) {
    if (handler != NULL) run_handler(&host, handler, instance, &msg, o.timeout_ms, &result);
    if (!o.json) print_result(&result);
    rc = result.exit_code;
  }

  if (created) {
    host_set_phase(&host, "destroy");
    plugin.def.destroy(instance);
  }
  if (plugin.initialized && plugin.def.struct_size != 0 && plugin.def.shutdown != NULL) {
    host_set_phase(&host, "shutdown");
    plugin.def.shutdown(&host.ctx);
  }
  if (err[0] != '\0' && (rc == EXIT_REFUSED || rc == EXIT_USAGE))
    fprintf(stderr, "foxworker-plugin-run: plugin %s: %s\n", o.plugin_path, err);
  if (o.json) {
    print_json_report(&host, &plugin, handler != NULL ? handler->name : NULL,
                      handler != NULL && plugin_batch_fn(handler) != NULL,
                      rc == EXIT_REFUSED || rc == EXIT_USAGE ? NULL : &result,
                      err[0] != '\0' ? err : NULL, rc);
  } else {
    host_print_metrics(&host);
    fflush(stdout);
  }
  /* Never dlclose, as the daemon: the plugin's threads may still run. What
   * the plugin borrowed from is no longer used after its shutdown. */
  json_buf_free(&config_json);
  json_free(config);
  config = NULL;
  free(payload);
  free(config_text);
  payload = config_text = NULL;
  free(result.reason);
  result.reason = NULL;
  return rc;
}
