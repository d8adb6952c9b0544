/* The host side of foxworker-plugin-run: the foxw_host_api table, the one
 * message it hands a handler, and what the plugin produced (logs, metrics,
 * publishes, a deferred completion).
 *
 * One run per process: the services reach the run through a process-wide
 * pointer set by host_start(). Every service is safe from any thread (one
 * mutex guards the run's records). */
#ifndef FOXWORKER_RUNNER_HOST_H_
#define FOXWORKER_RUNNER_HOST_H_

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <foxworker/plugin.h>

#include "json.h"

/* The number of string foxw_property values (1 .. FOXW_PROP_CLUSTER_ID). */
#define RUNNER_PROPERTY_COUNT 10

typedef struct runner_header {
  char *name;
  size_t name_len;
  char *value;
  size_t value_len;
  bool null_value; /* --null-header: FOXW_HEADER_NULL, value "" */
} runner_header;

/* Where a message is in its life. */
typedef enum message_state {
  MESSAGE_IN_CALL,   /* the handler is running */
  MESSAGE_PENDING,   /* the handler returned FOXW_PENDING; waiting for complete() */
  MESSAGE_FINISHED,  /* settled (returned, completed, or timed out) */
} message_state;

struct foxw_message {
  char *id;
  char *queue;
  char *payload;
  size_t payload_len;
  char *properties[RUNNER_PROPERTY_COUNT]; /* indexed by foxw_property - 1 */
  runner_header *headers;
  size_t header_count;
  uint8_t priority;
  bool priority_set;
  int64_t timestamp_ms;
  bool timestamp_set;
  uint8_t delivery_mode; /* 0 = not set */
  int64_t enqueued_at_ms;
  uint32_t attempt;
  uint64_t deadline_ns; /* UINT64_MAX: none */

  /* Guarded by the run's mutex. */
  message_state state;
  bool timed_out;     /* the runner gave up waiting: msg_cancelled() is true */
  bool completed;     /* complete() was called and accepted */
  foxw_verdict completed_verdict;
  char *completed_reason;
  size_t completed_reason_len;
  uint64_t completed_retry_delay_ms;
};

struct foxw_plugin_ctx {
  const char *plugin_name;
};

/* What the run records and how it reports as it goes. */
typedef struct runner_host {
  pthread_mutex_t mu;
  pthread_cond_t completed_cv; /* on CLOCK_MONOTONIC */
  foxw_plugin_ctx ctx;
  bool print_live;      /* text mode: print logs and publishes as they happen */
  int32_t min_level;    /* log_enabled() is false below it */
  const json_value *config; /* the config after the schema; read by config_* */

  /* Guarded by mu. */
  /* "init", "create", "ready" (create returned, no handler call yet),
   * "handle", "wait", "destroy", "shutdown" */
  const char *phase;
  bool defining;        /* init or create: metric_define allowed, publish refused */
  bool publish_open;    /* from the moment create returned on */
  json_value *logs;      /* array of {level, phase, text} */
  json_value *publishes; /* array of {queue, payload, ...} */
  json_value *notes;     /* array of strings: plugin bugs the daemon would log */
  struct runner_metric **metrics;
  size_t metric_count;
} runner_host;

/* Sets up `host` (the caller zeroes it and fills ctx, print_live, min_level
 * and config) and makes it the process's run. Returns false when out of
 * resources. */
bool host_start(runner_host *host);
const foxw_host_api *host_api(void);

/* Enters a phase of the run (see runner_host.phase). */
void host_set_phase(runner_host *host, const char *phase);

/* Records a note (a plugin bug the daemon would log) and prints it live. */
void host_note(runner_host *host, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* After the handler returned FOXW_PENDING: waits for complete() until the
 * message's deadline. True when it was completed; false after the deadline
 * (the message is then cancelled, and a late complete() is ignored). */
bool host_wait_for_completion(runner_host *host, foxw_message *msg);

/* Marks the message settled after the handler returned a verdict; true when
 * complete() had been called during the call (the returned verdict wins). */
bool host_finish_call(runner_host *host, foxw_message *msg);

/* The log level's name ("TRACE" .. "ERROR"), clamped. */
const char *host_level_name(int32_t level);

/* Metrics' final values: printed as "metric: NAME KIND VALUE" lines, or as a
 * JSON array. */
void host_print_metrics(runner_host *host);
json_value *host_metrics_json(runner_host *host);

/* Writes `len` bytes on one line: printable bytes as they are, "\" and
 * control bytes escaped (\\, \n, \r, \t, \xNN). */
void print_escaped(const char *text, size_t len);

#endif /* FOXWORKER_RUNNER_HOST_H_ */
