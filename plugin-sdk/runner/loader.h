/* Loading a plugin with foxworkerd's checks from dlopen on: the magic block
 * and its version and size checks, the config schema, init and the
 * definition's checks. The daemon also checks the file's owner and mode and
 * its ELF exports before dlopen; this does not. Every struct the plugin declares is copied into a zeroed local of
 * this runner's layout (min(its size, ours) bytes), and arrays are read with
 * the plugin's element size, so a plugin built from a newer SDK that targets
 * an older minor loads too. */
#ifndef FOXWORKER_RUNNER_LOADER_H_
#define FOXWORKER_RUNNER_LOADER_H_

#include <stdbool.h>
#include <stddef.h>

#include <foxworker/plugin.h>

#include "json.h"

typedef struct loaded_plugin {
  void *handle;
  foxw_plugin_info info;      /* a copy of the magic block */
  foxw_config_key *schema;    /* info.config_key_count copies */
  foxw_plugin_v1 def;         /* a copy of init's definition */
  foxw_handler_def *handlers; /* def.handler_count copies */
  bool initialized;           /* init succeeded: shutdown is due */
} loaded_plugin;

/* dlopen and the magic block's checks. False with err filled. */
bool plugin_open(const char *path, loaded_plugin *p, char *err, size_t err_cap);

/* Calls init and checks the definition. False with err filled (init's own
 * message after "init refused: "). */
bool plugin_init(loaded_plugin *p, const foxw_host_api *host, foxw_plugin_ctx *ctx, char *err,
                 size_t err_cap);

/* The handler named `name`, or NULL. */
const foxw_handler_def *plugin_handler_named(const loaded_plugin *p, const char *name);
/* The daemon's routing: the handler named `type`, else "*", else NULL. */
const foxw_handler_def *plugin_handler_for_type(const loaded_plugin *p, const char *type);
/* "a, b, c" into buf. */
void plugin_handler_names(const loaded_plugin *p, char *buf, size_t cap);

/* The handler's batch function when its struct covers it and it is set. */
foxw_handle_batch_fn plugin_batch_fn(const foxw_handler_def *h);

#endif /* FOXWORKER_RUNNER_LOADER_H_ */
