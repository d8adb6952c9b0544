/* Command line of foxworker-plugin-run. */
#ifndef FOXWORKER_RUNNER_OPTIONS_H_
#define FOXWORKER_RUNNER_OPTIONS_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "host.h"

/* Exit codes (also in --help and docs/plugin-guide.md). */
#define EXIT_ACK 0
#define EXIT_RETRY 1
#define EXIT_REJECT 2
#define EXIT_PLUGIN_BUG 3   /* an invalid verdict: the daemon would retry */
#define EXIT_TIMEOUT 4      /* not finished before --timeout: the daemon would retry */
#define EXIT_REFUSED 5      /* the plugin or its config would not load */
#define EXIT_USAGE 64       /* bad options, unreadable input */
#define EXIT_INTERNAL 70    /* out of memory, no threads */

typedef struct runner_options {
  const char *plugin_path;
  const char *handler;      /* --handler, or NULL */
  const char *payload;      /* --payload, or NULL */
  const char *payload_file; /* --payload-file, or NULL ("-" = stdin) */
  const char *config_json;  /* --config-json, or NULL */
  const char *config_file;  /* --config, or NULL ("-" = stdin) */
  const char *id;
  const char *queue;
  const char *properties[RUNNER_PROPERTY_COUNT]; /* --property, --type */
  runner_header *headers;   /* --header, in order */
  size_t header_count;
  uint32_t attempt;
  uint8_t priority;
  bool priority_set;
  int64_t timestamp_ms;
  bool timestamp_set;
  uint8_t delivery_mode;    /* --delivery-mode, 0 = not set */
  uint64_t timeout_ms;      /* 0 = no deadline */
  int32_t log_level;
  bool json;
} runner_options;

/* Parses argv. Returns -1 to go on, or an exit code (0 after --help or
 * --version, EXIT_USAGE after a message on stderr). */
int parse_options(int argc, char **argv, runner_options *options);

#endif /* FOXWORKER_RUNNER_OPTIONS_H_ */
