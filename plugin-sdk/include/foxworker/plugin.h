/*
 * foxworker plugin ABI, major version 1.
 *
 * A plugin is a shared object that exports two functions:
 *
 *   const foxw_plugin_info *foxworker_plugin_magic(void);
 *   const foxw_plugin_v1   *foxworker_plugin_init_v1(const foxw_host_api *host,
 *                                                    foxw_plugin_ctx *ctx,
 *                                                    char *err, size_t err_cap);
 *
 * The host calls the magic function first and checks the block it returns
 * (struct size, magic constant, ABI major and minor) before any other plugin
 * code runs. A later major version gets a new init symbol
 * (foxworker_plugin_init_v2), so one host can serve two majors.
 *
 * Rules that keep old plugins loading in new hosts and the reverse:
 *  - Every struct that crosses the boundary starts with `size_t struct_size`
 *    and only grows at the end. Each side reads a field only when the other
 *    side's struct_size covers it.
 *  - Unknown flag bits are refused by the side that reads them.
 *  - The host-services table is append-only.
 *  - Whoever allocates frees. No allocation crosses the boundary. Strings
 *    returned by the host are borrowed (pointer, length) pairs, not
 *    NUL-terminated unless stated. Errors are written into buffers the caller
 *    provides (always NUL-terminated, truncated to fit).
 *
 * Names: foxw_* types; hooks the plugin implements live in foxw_plugin_v1 and
 * foxw_handler_def; callbacks the host implements live in foxw_host_api.
 *
 * This header is pure C99 and depends on stdint.h, stddef.h and stdbool.h only.
 */
#ifndef FOXWORKER_PLUGIN_H_
#define FOXWORKER_PLUGIN_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FOXW_ABI_MAJOR 1
#define FOXW_ABI_MINOR 0
/* "FOXWPLUG" in ASCII. */
#define FOXW_PLUGIN_MAGIC_VALUE 0x464f5857504c5547ULL

#if defined(_WIN32)
#define FOXW_EXPORT __declspec(dllexport)
#else
#define FOXW_EXPORT __attribute__((visibility("default")))
#endif

/* ------------------------------------------------------------------------ */
/* Opaque handles owned by the host.                                        */

/* One delivered message. Valid from the start of the handler call until the
 * handler returns, or, when it returned FOXW_PENDING, until it calls
 * host->complete(). */
typedef struct foxw_message foxw_message;
/* The host's record of one loaded plugin; passed back on host calls so logs
 * and metrics carry the plugin's name. Valid until shutdown returns. */
typedef struct foxw_plugin_ctx foxw_plugin_ctx;
/* A metric the plugin defined. Valid until the plugin's shutdown returns. */
typedef struct foxw_metric foxw_metric;

/* A borrowed byte string. `ptr` may be NULL only when `len` is 0. */
typedef struct foxw_str {
  const char *ptr;
  size_t len;
} foxw_str;

/* ------------------------------------------------------------------------ */
/* Verdicts: the handler's return value.                                    */

typedef int32_t foxw_verdict;
/* Done: the message is acknowledged and removed. */
#define FOXW_ACK 1
/* Transient failure: the queue's retry policy decides the delay and whether
 * attempts remain. out->retry_delay_ms may ask for a delay (clamped). */
#define FOXW_RETRY 2
/* Permanent failure: dead-lettered at once with out's reason, no retries. */
#define FOXW_REJECT 3
/* Deferred: the plugin will call host->complete() exactly once, from any
 * thread. The queue's deadline still applies. */
#define FOXW_PENDING 4
/* Zero and every other value are plugin bugs: the host logs them and treats
 * the message as FOXW_RETRY. */

/* Where a handler writes the reason and retry hint of its verdict. Owned by
 * the host; valid during the handler call only. */
typedef struct foxw_outcome {
  size_t struct_size;
  char *reason;          /* host buffer of reason_cap bytes */
  size_t reason_cap;
  size_t reason_len;     /* set by the plugin: bytes written to reason */
  uint64_t retry_delay_ms; /* 0 = let the retry policy decide */
} foxw_outcome;

/* ------------------------------------------------------------------------ */
/* Message properties, read with host->msg_property().                      */

typedef enum foxw_property {
  FOXW_PROP_CONTENT_TYPE = 1,
  FOXW_PROP_CONTENT_ENCODING = 2,
  FOXW_PROP_MESSAGE_TYPE = 3,
  FOXW_PROP_CORRELATION_ID = 4,
  FOXW_PROP_REPLY_TO = 5,
  FOXW_PROP_APP_ID = 6,
  FOXW_PROP_USER_ID = 7,
  FOXW_PROP_EXPIRATION = 8,
  FOXW_PROP_MESSAGE_ID = 9
  /* New properties are appended; an unknown one reads as empty. */
} foxw_property;

/* ------------------------------------------------------------------------ */
/* Logging and metrics.                                                     */

typedef enum foxw_log_level {
  FOXW_LOG_TRACE = 0,
  FOXW_LOG_DEBUG = 1,
  FOXW_LOG_INFO = 2,
  FOXW_LOG_WARN = 3,
  FOXW_LOG_ERROR = 4
} foxw_log_level;

typedef enum foxw_metric_kind {
  FOXW_METRIC_COUNTER = 1,   /* update() adds a non-negative value */
  FOXW_METRIC_GAUGE = 2,     /* update() sets the value */
  FOXW_METRIC_HISTOGRAM = 3  /* update() observes a value (seconds advised) */
} foxw_metric_kind;

/* ------------------------------------------------------------------------ */
/* Publishing a follow-up message.                                          */

typedef struct foxw_header {
  foxw_str name;
  foxw_str value;
} foxw_header;

typedef struct foxw_publish {
  size_t struct_size;
  foxw_str queue;        /* a queue name from the daemon's config */
  foxw_str payload;
  foxw_str message_type; /* optional */
  foxw_str content_type; /* optional */
  foxw_str correlation_id; /* optional; defaults to the parent's */
  const foxw_header *headers;
  size_t header_count;
  uint8_t priority;
  uint64_t delay_ms;
} foxw_publish;

/* ------------------------------------------------------------------------ */
/* Host services: the plugin's only way into the daemon. Append-only.       */
/* Every function may be called from any thread unless its comment says
 * otherwise. Borrowed strings stay valid as long as the message does. */

typedef struct foxw_host_api {
  size_t struct_size;
  uint16_t abi_major;
  uint16_t abi_minor;

  /* Logging into the daemon's log, tagged with the plugin's name. */
  bool (*log_enabled)(const foxw_plugin_ctx *ctx, int32_t level);
  void (*log)(const foxw_plugin_ctx *ctx, int32_t level, const char *text,
              size_t len);

  /* Metrics. define() is only valid during init or create (control thread);
   * returns NULL and fills err on a bad name or a name clash. The host adds
   * the prefix foxworker_plugin_<plugin>_ and a queue label is not added.
   * update() is safe from any thread. */
  foxw_metric *(*metric_define)(foxw_plugin_ctx *ctx, int32_t kind,
                                const char *name, const char *help, char *err,
                                size_t err_cap);
  void (*metric_update)(foxw_metric *metric, double value);

  /* Clocks. */
  uint64_t (*monotonic_ns)(void);
  int64_t (*wall_time_ms)(void); /* Unix epoch, milliseconds */

  /* Message accessors. */
  foxw_str (*msg_id)(const foxw_message *msg);
  foxw_str (*msg_queue)(const foxw_message *msg);
  foxw_str (*msg_payload)(const foxw_message *msg);
  foxw_str (*msg_property)(const foxw_message *msg, int32_t property);
  uint8_t (*msg_priority)(const foxw_message *msg);
  int64_t (*msg_timestamp_ms)(const foxw_message *msg);   /* 0 = unknown */
  int64_t (*msg_enqueued_at_ms)(const foxw_message *msg); /* 0 = unknown */
  uint32_t (*msg_attempt)(const foxw_message *msg);       /* starts at 1 */
  /* Header lookup by exact name; false when absent. Nested values (AMQP
   * tables and arrays) are rendered as JSON. */
  bool (*msg_header)(const foxw_message *msg, const char *name,
                     size_t name_len, foxw_str *value);
  size_t (*msg_header_count)(const foxw_message *msg);
  bool (*msg_header_at)(const foxw_message *msg, size_t index, foxw_str *name,
                        foxw_str *value);
  /* Deadline on the monotonic_ns clock; UINT64_MAX = none. */
  uint64_t (*msg_deadline_ns)(const foxw_message *msg);
  /* True once the deadline passed or the daemon gave up on the message
   * (shutdown timeout). A long handler should poll it and return. */
  bool (*msg_cancelled)(const foxw_message *msg);

  /* Completes a message whose handler returned FOXW_PENDING. Exactly once,
   * from any thread. Returns 0, or -1 when the message is not pending (never
   * deferred, or already completed). After it returns, msg is invalid. */
  int32_t (*complete)(const foxw_message *msg, foxw_verdict verdict,
                      const char *reason, size_t reason_len,
                      uint64_t retry_delay_ms);

  /* Publishes a new message to a configured queue. `parent` may be NULL; when
   * set, its correlation id is inherited. Returns 0, or -1 with err filled.
   * The message is durably enqueued when this returns 0. */
  int32_t (*publish)(foxw_plugin_ctx *ctx, const foxw_message *parent,
                     const foxw_publish *publish, char *err, size_t err_cap);
} foxw_host_api;

/* ------------------------------------------------------------------------ */
/* What the plugin declares.                                                */

/* Config schema entry types. */
typedef enum foxw_config_type {
  FOXW_CONFIG_STRING = 1,
  FOXW_CONFIG_INT = 2,
  FOXW_CONFIG_DOUBLE = 3,
  FOXW_CONFIG_BOOL = 4,
  FOXW_CONFIG_DURATION = 5, /* "250ms", "30s": handed over in milliseconds */
  FOXW_CONFIG_STRING_LIST = 6,
  FOXW_CONFIG_MAP = 7 /* string -> string */
} foxw_config_type;

typedef struct foxw_config_key {
  size_t struct_size;
  const char *name;
  int32_t type;              /* foxw_config_type */
  bool required;
  const char *default_value; /* YAML scalar text, or NULL */
  const char *description;
} foxw_config_key;

/* Returned by foxworker_plugin_magic(): static, read before any other plugin
 * code runs. */
typedef struct foxw_plugin_info {
  size_t struct_size;
  uint64_t magic; /* FOXW_PLUGIN_MAGIC_VALUE */
  uint16_t abi_major;
  uint16_t abi_minor;
  const char *name;    /* [a-z0-9_]+ */
  const char *version;
  const char *description;
  /* Optional config schema. When set, the host validates the plugin's YAML
   * subtree against it (unknown keys refused) in --check-config. */
  const foxw_config_key *config_schema;
  size_t config_key_count;
} foxw_plugin_info;

/* Instance models. */
/* Default: an instance never runs two messages at once; the host creates as
 * many instances as the queues' concurrency needs. */
#define FOXW_INSTANCE_PER_SLOT 0
/* One instance per queue, called concurrently from several threads. */
#define FOXW_INSTANCE_SHARED 1
/* One instance per executor thread and queue; each used by its thread only. */
#define FOXW_INSTANCE_PER_THREAD 2

/* A handler runs one message. Called on an executor thread, never
 * concurrently with the same instance unless the model is SHARED. */
typedef foxw_verdict (*foxw_handle_fn)(void *instance, const foxw_message *msg,
                                       foxw_outcome *out);

/* A batch handler runs `count` messages at once (1 <= count <= the queue's
 * batch_size) and writes one verdict per message into verdicts[i] and its
 * reason and retry hint into outs[i]. Every array is the host's, valid during
 * the call. FOXW_PENDING is not allowed in a batch (treated as a retry).
 * Called like a handler: never concurrently on one instance unless SHARED. */
typedef void (*foxw_handle_batch_fn)(void *instance, const foxw_message *const *msgs,
                                     size_t count, foxw_verdict *verdicts,
                                     foxw_outcome *outs);

typedef struct foxw_handler_def {
  size_t struct_size;
  /* The message type it handles; "*" handles every type with no handler of
   * its own. Names are unique within a plugin. */
  const char *name;
  /* Runs one message. May be NULL when handle_batch is set. */
  foxw_handle_fn handle;
  uint32_t flags; /* none defined in 1.0: must be 0 */
  /* Optional: runs several messages at once. When set, the host calls it
   * with up to the queue's batch_size messages, or with whatever arrived
   * within the queue's flush_interval, and never calls `handle`. */
  foxw_handle_batch_fn handle_batch;
} foxw_handler_def;

/* Returned by foxworker_plugin_init_v1(). Static or owned by the plugin,
 * valid until shutdown returns. */
typedef struct foxw_plugin_v1 {
  size_t struct_size;
  uint32_t instance_model; /* FOXW_INSTANCE_* */
  uint32_t flags;          /* none defined in 1.0: must be 0 */
  const foxw_handler_def *handlers;
  size_t handler_count;
  /* Creates one instance from the plugin's config (a JSON object, NUL
   * terminated, `config_len` bytes without the NUL). Returns 0 and sets
   * *instance, or non-zero with err filled to refuse. Control thread. */
  int32_t (*create)(foxw_plugin_ctx *ctx, const char *config_json,
                    size_t config_len, void **instance, char *err,
                    size_t err_cap);
  /* Destroys an instance; no handler of it is running. Control thread. */
  void (*destroy)(void *instance);
  /* Called once after every instance was destroyed; may be NULL. */
  void (*shutdown)(foxw_plugin_ctx *ctx);
} foxw_plugin_v1;

typedef const foxw_plugin_info *(*foxw_magic_fn)(void);
typedef const foxw_plugin_v1 *(*foxw_init_v1_fn)(const foxw_host_api *host,
                                                 foxw_plugin_ctx *ctx,
                                                 char *err, size_t err_cap);

#define FOXW_MAGIC_SYMBOL "foxworker_plugin_magic"
#define FOXW_INIT_V1_SYMBOL "foxworker_plugin_init_v1"

/* The two functions a plugin exports. Declared here, inside the extern "C"
 * block, so that a definition in a C++ source file (including one written by
 * FOXW_DECLARE_PLUGIN) gets C linkage and an unmangled, exported name. */
FOXW_EXPORT const foxw_plugin_info *foxworker_plugin_magic(void);
FOXW_EXPORT const foxw_plugin_v1 *foxworker_plugin_init_v1(
    const foxw_host_api *host, foxw_plugin_ctx *ctx, char *err, size_t err_cap);

/* ------------------------------------------------------------------------ */
/* Conveniences compiled into the plugin (no link dependency).              */

/* Declares the magic function. Use once per plugin. */
#define FOXW_DECLARE_PLUGIN(name_, version_, description_, schema_,           \
                            schema_count_)                                    \
  FOXW_EXPORT const foxw_plugin_info *foxworker_plugin_magic(void) {          \
    static const foxw_plugin_info info = {                                    \
        sizeof(foxw_plugin_info), FOXW_PLUGIN_MAGIC_VALUE, FOXW_ABI_MAJOR,    \
        FOXW_ABI_MINOR, (name_), (version_), (description_), (schema_),       \
        (schema_count_)};                                                     \
    return &info;                                                             \
  }

/* Copies a reason into the host's buffer, truncating to fit. */
static inline void foxw_set_reason(foxw_outcome *out, const char *text,
                                   size_t len) {
  size_t n;
  if (out == NULL || out->reason == NULL || out->reason_cap == 0) return;
  if (text == NULL) len = 0;
  n = len < out->reason_cap - 1 ? len : out->reason_cap - 1;
  for (size_t i = 0; i < n; ++i) out->reason[i] = text[i];
  out->reason[n] = '\0';
  out->reason_len = n;
}

/* Copies a NUL-terminated message into a caller's error buffer. */
static inline void foxw_set_error(char *err, size_t cap, const char *text) {
  size_t i = 0;
  if (err == NULL || cap == 0) return;
  if (text == NULL) text = "";
  for (; text[i] != '\0' && i + 1 < cap; ++i) err[i] = text[i];
  err[i] = '\0';
}

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* FOXWORKER_PLUGIN_H_ */
