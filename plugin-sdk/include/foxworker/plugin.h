/*
 * foxworker plugin ABI 1.1. ABI 1.0 is frozen: its layouts and meanings never
 * change within major 1; later minors only append (1.1: typed property and
 * header reads, cluster_id, and message_id, app_id and content_encoding on
 * publish; see docs/plugin-abi.md, "Changelog").
 *
 * A plugin is a shared object that exports exactly two functions:
 *
 *   const foxw_plugin_info *foxworker_plugin_magic(void);
 *   const foxw_plugin_v1   *foxworker_plugin_init_v1(const foxw_host_api *host,
 *                                                    foxw_plugin_ctx *ctx,
 *                                                    char *err, size_t err_cap);
 *
 * Loading, in order:
 *  1. Before dlopen(), the host reads the file's ELF header and dynamic symbol
 *     table and refuses, without running any of its code, a file that is not
 *     a shared object for this machine or does not export both functions.
 *  2. dlopen() runs the plugin's constructors (C++ static initialisers,
 *     __attribute__((constructor))). Keep them trivial: they also run in
 *     `foxworkerd --check-config`, before the magic block is checked.
 *  3. The host calls foxworker_plugin_magic() and checks the block: magic
 *     constant, ABI major, the minor the plugin needs, sizes. Then it
 *     validates the plugin's config against the declared schema.
 *  4. The host calls foxworker_plugin_init_v1(), then create() per instance.
 * A later major version gets a new init symbol (foxworker_plugin_init_v2),
 * so one host can serve two majors.
 *
 * Compatibility, both ways (docs/plugin-abi.md has the table):
 *  - A plugin states in foxw_plugin_info.abi_minor the OLDEST host minor it
 *    needs: FOXW_TARGET_ABI_MINOR, which defaults to the SDK's FOXW_ABI_MINOR.
 *    Define it before including this header to target an older host (for
 *    example 0 to load in every 1.x host); the plugin must then check
 *    FOXW_HOST_HAS() before calling a host service newer than its target.
 *    A host loads every plugin whose abi_minor is not newer than its own.
 *  - Structs that may grow start with `size_t struct_size`, set by the side
 *    that fills the struct to its own sizeof. They only grow at the end. The
 *    reader touches a field only when struct_size covers it, treats an
 *    uncovered field as absent (zero), and ignores bytes beyond what it
 *    knows. The 1.0 size of each (FOXW_*_SIZE_1_0 below) is the smallest a
 *    reader accepts; it never changes. 1.0 layouts end without trailing
 *    padding (their 1.0 size is their sizeof), so a field appended later
 *    never lands in bytes an older writer left unset.
 *  - Arrays of growable structs that the host reads from a plugin carry
 *    their element size (config_key_size, handler_size): the host steps
 *    through them with the plugin's stride, never its own sizeof. Arrays the
 *    host hands to a plugin are arrays of pointers (a batch's `outs`).
 *  - foxw_str and foxw_header are fixed pairs, frozen as they are: they have
 *    no struct_size and never grow.
 *  - Unknown flag bits are refused by the side that reads them. Unknown enum
 *    values read as empty or absent (see each enum).
 *  - The host-services table is append-only.
 *
 * Memory: whoever allocates frees; no allocation crosses the boundary.
 * Every pointer field below says who owns it and until when it is valid.
 * "Host-owned, borrowed until X": the plugin may read it until X and must not
 * write or free it. "Plugin-owned, read until X": the host reads it until X
 * and never writes or frees it. Strings in foxw_str are not NUL-terminated
 * unless stated. Errors are written into buffers the caller provides (always
 * NUL-terminated, truncated to fit).
 *
 * Threads: the host has one control thread (the thread that loads the config
 * and applies reloads; never a handler thread). It calls the magic function,
 * init, create, destroy and shutdown, one at a time. Handlers run on the
 * queue's handler threads, also while the control thread runs create for a
 * reload. Host services may be called from any thread unless their comment
 * says otherwise.
 *
 * Statics are per file: two plugin entries of one config naming the same
 * file share one copy of the plugin's code and statics, and init runs once
 * per entry. Keep per-entry state in what init and create receive (the ctx,
 * the instance), not in statics, if that can happen.
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

/* The ABI this header describes. */
#define FOXW_ABI_MAJOR 1
#define FOXW_ABI_MINOR 1

/* The oldest host minor this plugin needs. Define it before including this
 * header to load in older hosts than the SDK's; never above FOXW_ABI_MINOR. */
#ifndef FOXW_TARGET_ABI_MINOR
#define FOXW_TARGET_ABI_MINOR FOXW_ABI_MINOR
#endif
#if FOXW_TARGET_ABI_MINOR > FOXW_ABI_MINOR
#error "FOXW_TARGET_ABI_MINOR is newer than this SDK's FOXW_ABI_MINOR"
#endif

/* "FOXWPLUG" in ASCII. */
#define FOXW_PLUGIN_MAGIC_VALUE 0x464f5857504c5547ULL

#if defined(_WIN32)
#define FOXW_EXPORT __declspec(dllexport)
#else
#define FOXW_EXPORT __attribute__((visibility("default")))
#endif

/* The end of `field` in a struct: a reader's test for "struct_size covers". */
#define FOXW_END_OF(type, field) (offsetof(type, field) + sizeof(((type *)0)->field))

/* ------------------------------------------------------------------------ */
/* Opaque handles owned by the host.                                        */

/* One delivered message. Host-owned, valid from the start of the handler
 * call until the handler returns, or, when it returned FOXW_PENDING, until it
 * calls host->complete(). */
typedef struct foxw_message foxw_message;
/* The host's record of one loaded plugin; passed back on host calls so logs,
 * metrics and config reads are the plugin's. Host-owned, valid from init
 * until shutdown returns. */
typedef struct foxw_plugin_ctx foxw_plugin_ctx;
/* A metric the plugin defined. Host-owned, valid for the life of the
 * process (a reload that keeps the plugin keeps its metrics). */
typedef struct foxw_metric foxw_metric;

/* A byte string: a fixed pair, frozen (no struct_size, never grows).
 * `ptr` may be NULL only when `len` is 0. Who owns it is stated where it is
 * used: returned by a host service it is host-owned and borrowed; inside a
 * struct the plugin fills (foxw_publish) it is plugin-owned. */
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

/* Where a handler writes the reason and retry hint of its verdict.
 * Host-owned (struct_size is the host's), borrowed until the handler call
 * returns; the plugin writes reason, reason_len and retry_delay_ms. */
typedef struct foxw_outcome {
  size_t struct_size;
  char *reason;          /* host buffer of reason_cap bytes (reason_cap >= 1) */
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
  FOXW_PROP_MESSAGE_ID = 9,
  /* 1.1 (a 1.0 host reads them as empty / not set): */
  FOXW_PROP_CLUSTER_ID = 10,    /* AMQP cluster-id: a string */
  FOXW_PROP_PRIORITY = 11,      /* a number, read with msg_property_int */
  FOXW_PROP_TIMESTAMP_MS = 12,  /* the producer's timestamp, Unix ms (AMQP
                                   sends seconds: the value is seconds*1000) */
  FOXW_PROP_DELIVERY_MODE = 13  /* AMQP: 1 transient, 2 persistent */
  /* New properties are appended; an unknown one reads as empty. */
} foxw_property;

/* The type a header was sent with (1.1, host->msg_header_type()). Every
 * header's value still reads as text through msg_header/msg_header_at; the
 * type says how that text was made. Redis stream fields and the local
 * backend's headers are always STRING. */
typedef enum foxw_header_type {
  FOXW_HEADER_NONE = 0,      /* no header at that index */
  FOXW_HEADER_STRING = 1,    /* text as sent (AMQP longstr) */
  FOXW_HEADER_NULL = 2,      /* AMQP void: its text is empty, as for "" */
  FOXW_HEADER_BOOL = 3,      /* "true" or "false" */
  FOXW_HEADER_INT = 4,       /* any width, signed or not: decimal digits */
  FOXW_HEADER_FLOAT = 5,     /* float or double, as shortest JSON number */
  FOXW_HEADER_DECIMAL = 6,   /* AMQP decimal, exact: "-3.14" */
  FOXW_HEADER_TIMESTAMP = 7, /* AMQP timestamp: Unix seconds, decimal */
  FOXW_HEADER_BYTES = 8,     /* AMQP byte array: the raw bytes */
  FOXW_HEADER_TABLE = 9,     /* a nested table, rendered as a JSON object */
  FOXW_HEADER_ARRAY = 10     /* an array, rendered as a JSON array */
  /* New types are appended; treat an unknown one as STRING. */
} foxw_header_type;

/* ------------------------------------------------------------------------ */
/* Logging and metrics.                                                     */

typedef enum foxw_log_level {
  FOXW_LOG_TRACE = 0,
  FOXW_LOG_DEBUG = 1,
  FOXW_LOG_INFO = 2,
  FOXW_LOG_WARN = 3,
  FOXW_LOG_ERROR = 4
  /* An unknown level is clamped to TRACE or ERROR. */
} foxw_log_level;

typedef enum foxw_metric_kind {
  FOXW_METRIC_COUNTER = 1,   /* update() adds a non-negative value */
  FOXW_METRIC_GAUGE = 2,     /* update() sets the value */
  FOXW_METRIC_HISTOGRAM = 3  /* update() observes a value (seconds advised) */
  /* An unknown kind is refused by metric_define. */
} foxw_metric_kind;

/* ------------------------------------------------------------------------ */
/* Publishing a follow-up message.                                          */

/* A header name and value: a fixed pair, frozen (no struct_size). */
typedef struct foxw_header {
  foxw_str name;
  foxw_str value;
} foxw_header;

/* Filled by the plugin for host->publish(). Plugin-owned, and every pointer
 * in it (strings, the headers array and its strings) is read by the host
 * only until publish() returns. */
typedef struct foxw_publish {
  size_t struct_size;
  foxw_str queue;        /* a queue name from the daemon's config */
  foxw_str payload;
  foxw_str message_type; /* optional */
  foxw_str content_type; /* optional */
  foxw_str correlation_id; /* optional; defaults to the parent's */
  const foxw_header *headers; /* header_count frozen pairs, or NULL */
  size_t header_count;
  uint8_t priority;
  uint64_t delay_ms;
  /* 1.1 (ignored by a 1.0 host): */
  foxw_str message_id;       /* optional; default: a fresh unique id */
  foxw_str app_id;           /* optional */
  foxw_str content_encoding; /* optional */
} foxw_publish;

/* Typed config reads (host->config_*): results. */
#define FOXW_CONFIG_OK 0          /* *value was set */
#define FOXW_CONFIG_ABSENT 1      /* no such key and no default; *value untouched */
#define FOXW_CONFIG_WRONG_TYPE 2  /* the value cannot be read as asked; untouched */

/* ------------------------------------------------------------------------ */
/* Host services: the plugin's only way into the daemon. Append-only.       */
/* Host-owned and static: valid for the life of the process. Every function
 * may be called from any thread unless its comment says otherwise. */

typedef struct foxw_host_api {
  size_t struct_size;
  uint16_t abi_major;
  uint16_t abi_minor; /* the host's minor */

  /* Logging into the daemon's log, tagged with the plugin's name. `text` is
   * plugin-owned, read until log() returns; it need not be NUL-terminated. */
  bool (*log_enabled)(const foxw_plugin_ctx *ctx, int32_t level);
  void (*log)(const foxw_plugin_ctx *ctx, int32_t level, const char *text,
              size_t len);

  /* Metrics. define() only during init or create (control thread); the host
   * adds the prefix foxworker_plugin_<plugin>_ and no queue label. Defining a
   * name again with the same kind returns the same metric (every instance's
   * create may define it); a bad name, an unknown kind, or a name defined
   * with another kind returns NULL and fills err. update() is safe from any
   * thread. */
  foxw_metric *(*metric_define)(foxw_plugin_ctx *ctx, int32_t kind,
                                const char *name, const char *help, char *err,
                                size_t err_cap);
  void (*metric_update)(foxw_metric *metric, double value);

  /* Clocks. */
  uint64_t (*monotonic_ns)(void);
  int64_t (*wall_time_ms)(void); /* Unix epoch, milliseconds */

  /* Message accessors. Every foxw_str they return is host-owned, borrowed
   * as long as the message is valid (see foxw_message). */
  foxw_str (*msg_id)(const foxw_message *msg);
  foxw_str (*msg_queue)(const foxw_message *msg);
  foxw_str (*msg_payload)(const foxw_message *msg);
  foxw_str (*msg_property)(const foxw_message *msg, int32_t property);
  uint8_t (*msg_priority)(const foxw_message *msg);
  int64_t (*msg_timestamp_ms)(const foxw_message *msg);   /* 0 = unknown */
  int64_t (*msg_enqueued_at_ms)(const foxw_message *msg); /* 0 = unknown */
  uint32_t (*msg_attempt)(const foxw_message *msg);       /* starts at 1 */
  /* Header lookup by exact name (plugin-owned, read during the call); false
   * when absent. Nested values (AMQP tables and arrays) are rendered as
   * JSON. */
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

  /* Completes a message whose handler returns or returned FOXW_PENDING.
   * Exactly once, from any thread, also before the handler has returned;
   * `reason` is read during the call. Returns 0, after which msg is
   * invalid; or -1 when the message was completed before (msg stays as it
   * was). A completion after the daemon gave up on the message (its
   * deadline passed and it was retried) returns 0 and its verdict is
   * ignored with a warning. A call for a handler that then returns a verdict
   * other than FOXW_PENDING is ignored with a warning: the returned verdict
   * wins. */
  int32_t (*complete)(const foxw_message *msg, foxw_verdict verdict,
                      const char *reason, size_t reason_len,
                      uint64_t retry_delay_ms);

  /* Publishes a new message to a configured queue. `parent` may be NULL; when
   * set, its correlation id is inherited. Returns 0, or -1 with err filled.
   * The message is durably enqueued when this returns 0. Available on any
   * thread at any time except inside init and create, where it returns -1
   * ("publish is not available during init or create"). */
  int32_t (*publish)(foxw_plugin_ctx *ctx, const foxw_message *parent,
                     const foxw_publish *publish, char *err, size_t err_cap);

  /* Typed reads of the plugin's config (the `config:` mapping of its YAML
   * entry, with the schema's defaults applied and values converted to the
   * schema's types). Available from init on, from any thread. Inside init
   * and create they read the config that create receives; elsewhere the
   * config of the running daemon (after a reload that changed the config,
   * the new one once the reload is committed). `key` is a NUL-terminated
   * top-level key. Returns a
   * FOXW_CONFIG_* result. Strings are host-owned, borrowed until the
   * plugin's shutdown returns. Conversions: string reads a string, number or
   * boolean (as its text); int reads an integer or a string of one; double
   * reads any number; bool reads true/false or "true", "yes", "on", "false",
   * "no", "off"; duration_ms reads a duration ("250ms", "30s", "1h") or an
   * integer of milliseconds (what the schema turns a DURATION key into; in
   * the YAML a duration needs its unit). */
  int32_t (*config_string)(const foxw_plugin_ctx *ctx, const char *key,
                           foxw_str *value);
  int32_t (*config_int)(const foxw_plugin_ctx *ctx, const char *key,
                        int64_t *value);
  int32_t (*config_double)(const foxw_plugin_ctx *ctx, const char *key,
                           double *value);
  int32_t (*config_bool)(const foxw_plugin_ctx *ctx, const char *key,
                         bool *value);
  int32_t (*config_duration_ms)(const foxw_plugin_ctx *ctx, const char *key,
                                uint64_t *value);
  /* Lists and mappings of strings: the number of items, then item `index`
   * (0-based; ABSENT past the end). For a mapping `name` receives the
   * entry's name; for a list it is set empty. `name` may be NULL. */
  int32_t (*config_count)(const foxw_plugin_ctx *ctx, const char *key,
                          size_t *count);
  int32_t (*config_item)(const foxw_plugin_ctx *ctx, const char *key,
                         size_t index, foxw_str *name, foxw_str *value);

  /* ---- 1.1: check FOXW_HOST_HAS() first when targeting 1.0 ---- */

  /* A numeric property as the producer sent it: FOXW_PROP_PRIORITY (not
   * clamped: a Redis field "priority" of 300 reads 300, where msg_priority
   * reads 255), FOXW_PROP_TIMESTAMP_MS, FOXW_PROP_DELIVERY_MODE. Returns
   * false, leaving *value untouched, when the producer did not set it (or
   * the property is not numeric), so 0 sent and nothing sent differ. */
  bool (*msg_property_int)(const foxw_message *msg, int32_t property,
                           int64_t *value);
  /* The type header `index` was sent with (foxw_header_type); NONE past the
   * end. Tells a null header (NULL) from an empty string (STRING). */
  int32_t (*msg_header_type)(const foxw_message *msg, size_t index);
} foxw_host_api;

/* True when the host's table has `member`: check it before calling a service
 * added in a minor newer than FOXW_TARGET_ABI_MINOR. */
#define FOXW_HOST_HAS(host, member) \
  ((host)->struct_size >= FOXW_END_OF(foxw_host_api, member))

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
  /* An unknown type is refused at load. */
} foxw_config_type;

/* One config key. Plugin-owned (a static array), read until the plugin's
 * shutdown returns; so are the strings it points to (NUL-terminated). */
typedef struct foxw_config_key {
  size_t struct_size;
  const char *name;
  int32_t type;              /* foxw_config_type */
  bool required;
  const char *default_value; /* YAML scalar text, or NULL */
  const char *description;
} foxw_config_key;

/* Returned by foxworker_plugin_magic(). Plugin-owned and static: read for
 * as long as the plugin is loaded (the process's life); so are the strings
 * (NUL-terminated) and the schema it points to. */
typedef struct foxw_plugin_info {
  size_t struct_size;
  uint64_t magic;      /* FOXW_PLUGIN_MAGIC_VALUE */
  uint16_t abi_major;  /* FOXW_ABI_MAJOR */
  uint16_t abi_minor;  /* the oldest host minor needed: FOXW_TARGET_ABI_MINOR */
  uint16_t sdk_minor;  /* the SDK's FOXW_ABI_MINOR it was built with (logged) */
  uint16_t reserved;   /* 0 */
  const char *name;    /* [a-z0-9_]+ */
  const char *version;
  const char *description;
  /* Optional config schema: config_key_count entries of config_key_size
   * bytes each (sizeof(foxw_config_key) of the plugin's SDK). When set, the
   * host validates the plugin's YAML subtree against it (unknown keys
   * refused) and applies its defaults. */
  const foxw_config_key *config_schema;
  size_t config_key_count;
  size_t config_key_size;
} foxw_plugin_info;

/* Instance models. */
/* Default: an instance never runs two messages at once; the host creates as
 * many instances as the queues' concurrency needs. */
#define FOXW_INSTANCE_PER_SLOT 0
/* One instance per queue, called concurrently from several threads. */
#define FOXW_INSTANCE_SHARED 1
/* One instance per handler thread and queue; each used by its thread only. */
#define FOXW_INSTANCE_PER_THREAD 2

/* A handler runs one message, on a handler thread, never concurrently with
 * the same instance unless the model is SHARED. `msg` and `out` are
 * host-owned (see foxw_message, foxw_outcome). */
typedef foxw_verdict (*foxw_handle_fn)(void *instance, const foxw_message *msg,
                                       foxw_outcome *out);

/* A batch handler runs `count` messages at once (1 <= count <= the queue's
 * batch_size) and writes one verdict per message into verdicts[i] and its
 * reason and retry hint into *outs[i]. Every array is host-owned, borrowed
 * during the call; `outs` is an array of pointers so that foxw_outcome can
 * grow. FOXW_PENDING is not allowed in a batch (treated as a retry). Called
 * like a handler: never concurrently on one instance unless SHARED. */
typedef void (*foxw_handle_batch_fn)(void *instance,
                                     const foxw_message *const *msgs,
                                     size_t count, foxw_verdict *verdicts,
                                     foxw_outcome *const *outs);

/* One handler. Plugin-owned (usually a static array), read until the
 * plugin's shutdown returns; so is `name` (NUL-terminated). */
typedef struct foxw_handler_def {
  size_t struct_size;
  /* The message type it handles; "*" handles every type with no handler of
   * its own. Names are unique within a plugin. */
  const char *name;
  /* Runs one message. May be NULL when handle_batch is set. */
  foxw_handle_fn handle;
  /* Optional: runs several messages at once. When set, the host calls it
   * with up to the queue's batch_size messages, or with whatever arrived
   * within the queue's flush_interval, and never calls `handle`. */
  foxw_handle_batch_fn handle_batch;
  uint32_t flags;    /* none defined in 1.0: must be 0 */
  uint32_t reserved; /* 0; keeps the 1.0 size free of trailing padding */
} foxw_handler_def;

/* Returned by foxworker_plugin_init_v1(). Plugin-owned (static or
 * allocated), read until shutdown returns; so is the handlers array. */
typedef struct foxw_plugin_v1 {
  size_t struct_size;
  uint32_t instance_model; /* FOXW_INSTANCE_* */
  uint32_t flags;          /* none defined in 1.0: must be 0 */
  /* handler_count entries of handler_size bytes each
   * (sizeof(foxw_handler_def) of the plugin's SDK). */
  const foxw_handler_def *handlers;
  size_t handler_count;
  size_t handler_size;
  /* Creates one instance from the plugin's config (a JSON object,
   * host-owned, NUL-terminated, `config_len` bytes without the NUL, borrowed
   * during the call). Returns 0 and sets *instance (any value, NULL too),
   * or non-zero with err filled to refuse. Control thread. */
  int32_t (*create)(foxw_plugin_ctx *ctx, const char *config_json,
                    size_t config_len, void **instance, char *err,
                    size_t err_cap);
  /* Destroys an instance; no handler of it is running. Control thread. */
  void (*destroy)(void *instance);
  /* Called once after every instance was destroyed; may be NULL. Control
   * thread. No host service may be called with ctx after it returns. */
  void (*shutdown)(foxw_plugin_ctx *ctx);
} foxw_plugin_v1;

/* The 1.0 size of each growable struct: the smallest struct_size (or
 * element size) a reader accepts. Frozen: later minors append fields after
 * these ends and never change these values. */
#define FOXW_OUTCOME_SIZE_1_0 FOXW_END_OF(foxw_outcome, retry_delay_ms)
#define FOXW_PUBLISH_SIZE_1_0 FOXW_END_OF(foxw_publish, delay_ms)
#define FOXW_HOST_API_SIZE_1_0 FOXW_END_OF(foxw_host_api, config_item)
#define FOXW_CONFIG_KEY_SIZE_1_0 FOXW_END_OF(foxw_config_key, description)
#define FOXW_PLUGIN_INFO_SIZE_1_0 FOXW_END_OF(foxw_plugin_info, config_key_size)
#define FOXW_HANDLER_DEF_SIZE_1_0 FOXW_END_OF(foxw_handler_def, reserved)
#define FOXW_PLUGIN_V1_SIZE_1_0 FOXW_END_OF(foxw_plugin_v1, shutdown)

/* The 1.1 sizes of the structs 1.1 grew (the others are as in 1.0). */
#define FOXW_PUBLISH_SIZE_1_1 FOXW_END_OF(foxw_publish, content_encoding)
#define FOXW_HOST_API_SIZE_1_1 FOXW_END_OF(foxw_host_api, msg_header_type)

typedef const foxw_plugin_info *(*foxw_magic_fn)(void);
typedef const foxw_plugin_v1 *(*foxw_init_v1_fn)(const foxw_host_api *host,
                                                 foxw_plugin_ctx *ctx,
                                                 char *err, size_t err_cap);

#define FOXW_MAGIC_SYMBOL "foxworker_plugin_magic"
#define FOXW_INIT_V1_SYMBOL "foxworker_plugin_init_v1"

/* The two functions a plugin exports. Declared here, inside the extern "C"
 * block, so that a definition in a C++ source file (including one written by
 * FOXW_DECLARE_PLUGIN) gets C linkage and an unmangled, exported name.
 * init runs on the control thread, once, before any create; host services
 * that take a ctx may be called from it, except publish. It returns the
 * plugin's definition, or NULL with err filled to refuse loading. */
FOXW_EXPORT const foxw_plugin_info *foxworker_plugin_magic(void);
FOXW_EXPORT const foxw_plugin_v1 *foxworker_plugin_init_v1(
    const foxw_host_api *host, foxw_plugin_ctx *ctx, char *err, size_t err_cap);

/* ------------------------------------------------------------------------ */
/* Conveniences compiled into the plugin (no link dependency).              */

/* Declares the magic function. Use once per plugin. `schema_` is a static
 * array of foxw_config_key (or NULL with `schema_count_` 0). */
#define FOXW_DECLARE_PLUGIN(name_, version_, description_, schema_,           \
                            schema_count_)                                    \
  FOXW_EXPORT const foxw_plugin_info *foxworker_plugin_magic(void) {          \
    static const foxw_plugin_info info = {                                    \
        sizeof(foxw_plugin_info), FOXW_PLUGIN_MAGIC_VALUE, FOXW_ABI_MAJOR,    \
        FOXW_TARGET_ABI_MINOR, FOXW_ABI_MINOR, 0, (name_), (version_),        \
        (description_), (schema_), (schema_count_),                           \
        sizeof(foxw_config_key)};                                             \
    return &info;                                                             \
  }

/* One foxw_handler_def entry, for a static array. */
#define FOXW_HANDLER(name_, handle_) \
  { sizeof(foxw_handler_def), (name_), (handle_), NULL, 0, 0 }
#define FOXW_BATCH_HANDLER(name_, handle_batch_) \
  { sizeof(foxw_handler_def), (name_), NULL, (handle_batch_), 0, 0 }

/* The shortest way to a plugin, for handlers that keep no per-instance
 * state:
 *
 *   FOXW_PLUGIN("hello", "1.0.0", "Greets people");
 *   static foxw_verdict greet(void *self, const foxw_message *m, foxw_outcome *out) { ... }
 *   FOXW_PLUGIN_HANDLERS(FOXW_HANDLER("greet", greet))
 *
 * FOXW_PLUGIN defines the magic function (no config schema) and two statics
 * the handlers use: `foxw_host` (the host table) and `foxw_ctx` (the
 * plugin's ctx, for log, metric_define, publish and config reads).
 * FOXW_PLUGIN_HANDLERS defines init with one SHARED instance: handlers may
 * run concurrently, so they must be thread-safe. */
#define FOXW_PLUGIN(name_, version_, description_)                   \
  static const foxw_host_api *foxw_host;                             \
  static foxw_plugin_ctx *foxw_ctx;                                  \
  FOXW_DECLARE_PLUGIN(name_, version_, description_, NULL, 0)        \
  struct foxw_plugin_semicolon_

#define FOXW_PLUGIN_HANDLERS(...)                                              \
  static int32_t foxw_simple_create_(foxw_plugin_ctx *ctx, const char *config, \
                                     size_t config_len, void **instance,       \
                                     char *err, size_t err_cap) {              \
    (void)config; (void)config_len; (void)err; (void)err_cap;                  \
    *instance = ctx;                                                           \
    return 0;                                                                  \
  }                                                                            \
  static void foxw_simple_destroy_(void *instance) { (void)instance; }         \
  FOXW_EXPORT const foxw_plugin_v1 *foxworker_plugin_init_v1(                  \
      const foxw_host_api *host, foxw_plugin_ctx *ctx, char *err,              \
      size_t err_cap) {                                                        \
    static const foxw_handler_def handlers[] = {__VA_ARGS__};                  \
    static const foxw_plugin_v1 plugin = {                                     \
        sizeof(foxw_plugin_v1), FOXW_INSTANCE_SHARED, 0, handlers,             \
        sizeof(handlers) / sizeof(handlers[0]), sizeof(foxw_handler_def),      \
        foxw_simple_create_, foxw_simple_destroy_, NULL};                      \
    if (!foxw_host_usable(host, err, err_cap)) return NULL;                    \
    foxw_host = host;                                                          \
    foxw_ctx = ctx;                                                            \
    return &plugin;                                                            \
  }

/* True when `host` is a 1.x table with every service of the plugin's target
 * minor; otherwise fills err and returns false. Call it first in init. */
static inline bool foxw_host_usable(const foxw_host_api *host, char *err,
                                    size_t err_cap);

/* Copies a NUL-terminated message into a caller's error buffer. */
static inline void foxw_set_error(char *err, size_t cap, const char *text) {
  size_t i = 0;
  if (err == NULL || cap == 0) return;
  if (text == NULL) text = "";
  for (; text[i] != '\0' && i + 1 < cap; ++i) err[i] = text[i];
  err[i] = '\0';
}

static inline bool foxw_host_usable(const foxw_host_api *host, char *err,
                                    size_t err_cap) {
  if (host == NULL ||
      host->struct_size < FOXW_END_OF(foxw_host_api, abi_minor) ||
      host->abi_major != FOXW_ABI_MAJOR) {
    foxw_set_error(err, err_cap, "the host does not speak plugin ABI 1");
    return false;
  }
  /* A 1.N host's table covers every service up to 1.N. */
#if FOXW_TARGET_ABI_MINOR > 0
  if (host->abi_minor < FOXW_TARGET_ABI_MINOR) {
    foxw_set_error(err, err_cap, "the host's plugin ABI minor is too old");
    return false;
  }
#endif
  if (host->struct_size < FOXW_HOST_API_SIZE_1_0) {
    foxw_set_error(err, err_cap, "the host's services table is smaller than ABI 1.0");
    return false;
  }
  return true;
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

static inline size_t foxw_strlen_(const char *text) {
  size_t n = 0;
  if (text != NULL)
    while (text[n] != '\0') ++n;
  return n;
}

/* `return foxw_reject(out, "why");`: a permanent failure with its reason. */
static inline foxw_verdict foxw_reject(foxw_outcome *out, const char *reason) {
  foxw_set_reason(out, reason, foxw_strlen_(reason));
  return FOXW_REJECT;
}

/* `return foxw_retry(out, "why", 0);`: a transient failure; delay_ms 0 lets
 * the retry policy decide. */
static inline foxw_verdict foxw_retry(foxw_outcome *out, const char *reason,
                                      uint64_t delay_ms) {
  foxw_set_reason(out, reason, foxw_strlen_(reason));
  if (out != NULL && out->struct_size >= FOXW_END_OF(foxw_outcome, retry_delay_ms))
    out->retry_delay_ms = delay_ms;
  return FOXW_RETRY;
}

/* Logs a NUL-terminated line through the host. */
static inline void foxw_log(const foxw_host_api *host,
                            const foxw_plugin_ctx *ctx, int32_t level,
                            const char *text) {
  if (host != NULL) host->log(ctx, level, text, foxw_strlen_(text));
}

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* FOXWORKER_PLUGIN_H_ */
