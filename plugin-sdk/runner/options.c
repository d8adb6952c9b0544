#include "options.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

static const char kUsage[] =
    "usage: foxworker-plugin-run [options] PLUGIN.so\n"
    "\n"
    "Loads a foxworker plugin with foxworkerd's checks on what it declares (ABI,\n"
    "magic block, config schema, init, one instance), runs one handler on one\n"
    "message, prints what it did, then destroys the instance and shuts the plugin\n"
    "down. No daemon, no broker. Unlike foxworkerd it does not check the file's\n"
    "owner and mode or its ELF exports before dlopen.\n"
    "\n"
    "Choosing the handler (as a queue does):\n"
    "  --handler NAME          the handler named NAME (a queue's `handler:`)\n"
    "  --type TYPE             the message type: the handler named TYPE, else \"*\";\n"
    "                          with no handler for it the message is rejected as by\n"
    "                          the daemon. Without either: \"*\", or the only handler.\n"
    "The message:\n"
    "  --payload TEXT          the payload\n"
    "  --payload-file FILE     the payload read from FILE; \"-\" reads stdin\n"
    "                          (default: an empty payload; stdin is never read\n"
    "                          unless asked)\n"
    "  --header NAME=VALUE     a header (repeatable, kept in order)\n"
    "  --null-header NAME      a header sent as null (AMQP void), in order\n"
    "  --property NAME=VALUE   a property: content_type, content_encoding,\n"
    "                          message_type, correlation_id, reply_to, app_id,\n"
    "                          user_id, expiration, message_id, cluster_id\n"
    "                          (repeatable)\n"
    "  --attempt N             the delivery attempt, from 1 (default 1)\n"
    "  --id ID                 the message id (default runner-1)\n"
    "  --queue NAME            the queue it came from (default test)\n"
    "  --priority N            0..255 (default: not set, reads 0)\n"
    "  --timestamp-ms MS       the producer's timestamp (default: not set, 0)\n"
    "  --delivery-mode N       1 or 2, as AMQP sends it (default: not set)\n"
    "  --timeout DURATION      the message's deadline, from the handler call on:\n"
    "                          250ms, 30s, 1.5s, 2m, 1h, 1d; 0 = none (default 30s).\n"
    "                          A handler returning FOXW_PENDING must call\n"
    "                          host->complete() (from any thread) within it.\n"
    "The plugin's config (what `config:` holds in foxworker.yaml, as JSON):\n"
    "  --config FILE           a JSON object read from FILE (\"-\" = stdin)\n"
    "  --config-json TEXT      a JSON object (default {})\n"
    "                          The plugin's schema is applied as by the daemon:\n"
    "                          unknown keys and missing required keys are refused,\n"
    "                          defaults added, values converted.\n"
    "Output:\n"
    "  --json                  one JSON object on stdout instead of lines\n"
    "  --log-level LEVEL       trace, debug, info, warn or error: what the plugin's\n"
    "                          log_enabled() reports (default trace)\n"
    "  -h, --help              this text\n"
    "  --version               the runner's plugin ABI\n"
    "\n"
    "Output lines (stdout): \"plugin:\", \"handler:\", \"log: LEVEL [phase] text\",\n"
    "\"publish: ...\", \"publish-header: NAME=VALUE\", \"note: ...\" (plugin bugs the\n"
    "daemon would log), \"verdict: ACK|RETRY|REJECT\" (or \"verdict: invalid verdict N\n"
    "-> RETRY\", \"verdict: TIMEOUT -> RETRY\"), \"reason: ...\", \"retry_delay_ms: N\",\n"
    "\"metric: NAME KIND VALUE\". Errors go to stderr.\n"
    "\n"
    "Exit status:\n"
    "  0   ACK\n"
    "  1   RETRY\n"
    "  2   REJECT (also: no handler for --type, as the daemon rejects it)\n"
    "  3   plugin bug: an invalid verdict (0, FOXW_PENDING in a batch, ...);\n"
    "      the daemon would retry the message\n"
    "  4   timeout: FOXW_PENDING and no complete() before --timeout, or the\n"
    "      handler returned after it; the daemon would retry the message\n"
    "  5   the plugin refused or failed to load: dlopen, magic block, ABI version,\n"
    "      config schema, init, create, or no handler named --handler\n"
    "  64  usage error: bad option, unreadable file, config not a JSON object\n"
    "  70  internal error (out of memory)\n";

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...) {
  va_list ap;
  fputs("foxworker-plugin-run: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputs("\n(see foxworker-plugin-run --help)\n", stderr);
  return EXIT_USAGE;
}

static const char *const kPropertyNames[RUNNER_PROPERTY_COUNT] = {
    "content_type", "content_encoding", "message_type", "correlation_id", "reply_to",
    "app_id",       "user_id",          "expiration",   "message_id",     "cluster_id"};

/* An unsigned decimal in [0, max]. */
static bool parse_uint(const char *text, uint64_t max, uint64_t *out) {
  char *end = NULL;
  unsigned long long n;
  if (text[0] < '0' || text[0] > '9') return false;
  errno = 0;
  n = strtoull(text, &end, 10);
  if (errno != 0 || *end != '\0' || n > max) return false;
  *out = n;
  return true;
}

static int add_header(runner_options *o, const char *arg, bool null_value) {
  const char *eq = null_value ? arg + strlen(arg) : strchr(arg, '=');
  runner_header *grown;
  if (null_value && eq == arg) return usage_error("--null-header wants a NAME");
  if (eq == NULL || eq == arg) return usage_error("--header wants NAME=VALUE, got \"%s\"", arg);
  grown = realloc(o->headers, (o->header_count + 1) * sizeof *grown);
  if (grown == NULL) return EXIT_INTERNAL;
  o->headers = grown;
  grown = &o->headers[o->header_count++];
  grown->name_len = (size_t)(eq - arg);
  grown->name = malloc(grown->name_len + 1);
  if (grown->name == NULL) return EXIT_INTERNAL;
  memcpy(grown->name, arg, grown->name_len);
  grown->name[grown->name_len] = '\0';
  grown->null_value = null_value;
  if (null_value) {
    grown->value = (char *)(uintptr_t)eq; /* "" at the end of argv's string */
    grown->value_len = 0;
  } else {
    grown->value = (char *)(uintptr_t)(eq + 1); /* argv outlives the run */
    grown->value_len = strlen(eq + 1);
  }
  return -1;
}

static int set_property(runner_options *o, const char *arg) {
  const char *eq = strchr(arg, '=');
  size_t i;
  if (eq == NULL) return usage_error("--property wants NAME=VALUE, got \"%s\"", arg);
  for (i = 0; i < RUNNER_PROPERTY_COUNT; ++i) {
    if (strlen(kPropertyNames[i]) == (size_t)(eq - arg) &&
        memcmp(kPropertyNames[i], arg, (size_t)(eq - arg)) == 0) {
      o->properties[i] = eq + 1;
      return -1;
    }
  }
  return usage_error("--property: unknown property in \"%s\" (known: content_type, "
                     "content_encoding, message_type, correlation_id, reply_to, app_id, "
                     "user_id, expiration, message_id, cluster_id)", arg);
}

int parse_options(int argc, char **argv, runner_options *o) {
  int i;
  o->id = "runner-1";
  o->queue = "test";
  o->attempt = 1;
  o->timeout_ms = 30000;
  o->log_level = FOXW_LOG_TRACE;
  for (i = 1; i < argc; ++i) {
    const char *arg = argv[i];
    const char *value = NULL;
    char name[32];
    const char *eq;
    uint64_t n;
    int rc = -1;
    if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
      fputs(kUsage, stdout);
      return 0;
    }
    if (strcmp(arg, "--version") == 0) {
      printf("foxworker-plugin-run: plugin ABI %d.%d\n", FOXW_ABI_MAJOR, FOXW_ABI_MINOR);
      return 0;
    }
    if (strcmp(arg, "--json") == 0) {
      o->json = true;
      continue;
    }
    if (strcmp(arg, "--") == 0) {
      if (i + 1 < argc) {
        if (o->plugin_path != NULL || i + 2 < argc)
          return usage_error("%s", "exactly one PLUGIN.so is expected");
        o->plugin_path = argv[i + 1];
      }
      break;
    }
    if (arg[0] != '-' || arg[1] == '\0') {
      if (o->plugin_path != NULL) return usage_error("%s", "exactly one PLUGIN.so is expected");
      o->plugin_path = arg;
      continue;
    }
    /* --name VALUE or --name=VALUE */
    eq = strchr(arg, '=');
    if (eq != NULL && (size_t)(eq - arg) < sizeof name) {
      memcpy(name, arg, (size_t)(eq - arg));
      name[eq - arg] = '\0';
      value = eq + 1;
    } else if (strlen(arg) < sizeof name) {
      strcpy(name, arg);
    } else {
      return usage_error("unknown option %s", arg);
    }
    if (value == NULL) {
      if (i + 1 >= argc) return usage_error("%s needs a value", name);
      value = argv[++i];
    }
    if (strcmp(name, "--handler") == 0) {
      o->handler = value;
    } else if (strcmp(name, "--type") == 0) {
      o->properties[FOXW_PROP_MESSAGE_TYPE - 1] = value;
    } else if (strcmp(name, "--payload") == 0) {
      o->payload = value;
      o->payload_file = NULL;
    } else if (strcmp(name, "--payload-file") == 0) {
      o->payload_file = value;
      o->payload = NULL;
    } else if (strcmp(name, "--header") == 0) {
      rc = add_header(o, value, false);
    } else if (strcmp(name, "--null-header") == 0) {
      rc = add_header(o, value, true);
    } else if (strcmp(name, "--property") == 0) {
      rc = set_property(o, value);
    } else if (strcmp(name, "--attempt") == 0) {
      if (!parse_uint(value, UINT32_MAX, &n) || n == 0)
        return usage_error("--attempt wants an integer from 1, got \"%s\"", value);
      o->attempt = (uint32_t)n;
    } else if (strcmp(name, "--id") == 0) {
      o->id = value;
    } else if (strcmp(name, "--queue") == 0) {
      o->queue = value;
    } else if (strcmp(name, "--priority") == 0) {
      if (!parse_uint(value, 255, &n))
        return usage_error("--priority wants an integer 0..255, got \"%s\"", value);
      o->priority = (uint8_t)n;
      o->priority_set = true;
    } else if (strcmp(name, "--delivery-mode") == 0) {
      if (!parse_uint(value, 255, &n) || n == 0)
        return usage_error("--delivery-mode wants an integer 1..255, got \"%s\"", value);
      o->delivery_mode = (uint8_t)n;
    } else if (strcmp(name, "--timestamp-ms") == 0) {
      if (!parse_uint(value, INT64_MAX, &n))
        return usage_error("--timestamp-ms wants milliseconds since the epoch, got \"%s\"", value);
      o->timestamp_ms = (int64_t)n;
      o->timestamp_set = true;
    } else if (strcmp(name, "--timeout") == 0) {
      char err[300];
      if (!parse_duration(value, strlen(value), &o->timeout_ms, err, sizeof err))
        return usage_error("--timeout: %s", err);
    } else if (strcmp(name, "--config") == 0) {
      o->config_file = value;
      o->config_json = NULL;
    } else if (strcmp(name, "--config-json") == 0) {
      o->config_json = value;
      o->config_file = NULL;
    } else if (strcmp(name, "--log-level") == 0) {
      static const char *const levels[] = {"trace", "debug", "info", "warn", "error"};
      int l;
      for (l = 0; l < 5 && strcmp(levels[l], value) != 0; ++l) {
      }
      if (l == 5)
        return usage_error("--log-level wants trace, debug, info, warn or error, got \"%s\"",
                           value);
      o->log_level = l;
    } else {
      return usage_error("unknown option %s", name);
    }
    if (rc != -1) return rc;
  }
  if (o->plugin_path == NULL) return usage_error("%s", "no PLUGIN.so given");
  if (o->payload_file != NULL && o->config_file != NULL && strcmp(o->payload_file, "-") == 0 &&
      strcmp(o->config_file, "-") == 0)
    return usage_error("%s", "--payload-file and --config cannot both read stdin");
  return -1;
}
