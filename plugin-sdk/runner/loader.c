#include "loader.h"

/* The longest array (config keys, handlers) and the widest element a plugin
 * may declare, as foxworkerd: a count or stride past these is a corrupt or
 * hostile block, refused before any of it is read. */
#define MAX_ARRAY_LENGTH 4096
#define MAX_ELEMENT_SIZE 4096

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Copies min(size, cap) bytes of `src` into a zeroed `dst` of cap bytes: the
 * fields a smaller (older) struct lacks read as zero, and what a larger
 * (newer) struct appended is ignored. */
static void copy_struct(void *dst, size_t cap, const void *src, size_t size) {
  memset(dst, 0, cap);
  memcpy(dst, src, size < cap ? size : cap);
}

static bool valid_plugin_name(const char *name) {
  const char *c;
  if (name == NULL || *name == '\0') return false;
  for (c = name; *c; ++c)
    if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_')) return false;
  return true;
}

bool plugin_open(const char *path, loaded_plugin *p, char *err, size_t err_cap) {
  foxw_magic_fn magic;
  const foxw_plugin_info *info;
  const char *e;
  size_t i;
  /* RTLD_NOW: unresolved symbols fail here, not mid-message. */
  p->handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (p->handle == NULL) {
    e = dlerror();
    snprintf(err, err_cap, "cannot load: %s", e != NULL ? e : "?");
    return false;
  }
  /* ISO C forbids converting void* to a function pointer; POSIX requires it
   * to work for dlsym. Copy the bytes to stay warning-free. */
  {
    void *sym = dlsym(p->handle, FOXW_MAGIC_SYMBOL);
    if (sym == NULL) {
      snprintf(err, err_cap, "not a foxworker plugin (no " FOXW_MAGIC_SYMBOL " symbol; build it "
               "with the SDK's FOXW_DECLARE_PLUGIN or FOXW_PLUGIN)");
      return false;
    }
    memcpy(&magic, &sym, sizeof magic);
  }
  info = magic();
  if (info == NULL || info->struct_size < offsetof(foxw_plugin_info, name) ||
      info->magic != FOXW_PLUGIN_MAGIC_VALUE) {
    snprintf(err, err_cap, "not a foxworker plugin (bad magic block)");
    return false;
  }
  if (info->abi_major != FOXW_ABI_MAJOR) {
    snprintf(err, err_cap, "built for plugin ABI %u.%u, but this runner speaks ABI major %d; "
             "rebuild it against this SDK", (unsigned)info->abi_major, (unsigned)info->abi_minor,
             FOXW_ABI_MAJOR);
    return false;
  }
  if (info->abi_minor > FOXW_ABI_MINOR) {
    snprintf(err, err_cap, "needs plugin ABI 1.%u, newer than this runner's 1.%d; use the "
             "runner of a newer foxworker plugin SDK, or build the plugin with "
             "FOXW_TARGET_ABI_MINOR=%d", (unsigned)info->abi_minor, FOXW_ABI_MINOR,
             FOXW_ABI_MINOR);
    return false;
  }
  if (info->struct_size < FOXW_PLUGIN_INFO_SIZE_1_0) {
    snprintf(err, err_cap, "magic block too small (%zu bytes; ABI 1.0 has %zu)",
             info->struct_size, (size_t)FOXW_PLUGIN_INFO_SIZE_1_0);
    return false;
  }
  copy_struct(&p->info, sizeof p->info, info, info->struct_size);
  if (!valid_plugin_name(p->info.name)) {
    snprintf(err, err_cap, "plugin name must match [a-z0-9_]+");
    return false;
  }
  if (p->info.config_key_count > MAX_ARRAY_LENGTH) {
    snprintf(err, err_cap, "config schema claims %zu keys; the limit is %d",
             p->info.config_key_count, MAX_ARRAY_LENGTH);
    return false;
  }
  if (p->info.config_key_count == 0) return true;
  if (p->info.config_schema == NULL) {
    snprintf(err, err_cap, "config schema has keys but no array");
    return false;
  }
  if (p->info.config_key_size < FOXW_CONFIG_KEY_SIZE_1_0) {
    snprintf(err, err_cap, "config_key_size is %zu, smaller than the %zu bytes of ABI 1.0",
             p->info.config_key_size, (size_t)FOXW_CONFIG_KEY_SIZE_1_0);
    return false;
  }
  if (p->info.config_key_size > MAX_ELEMENT_SIZE) {
    snprintf(err, err_cap, "config schema entries are %zu bytes apart; the limit is %d",
             p->info.config_key_size, MAX_ELEMENT_SIZE);
    return false;
  }
  p->schema = calloc(p->info.config_key_count, sizeof *p->schema);
  if (p->schema == NULL) {
    snprintf(err, err_cap, "out of memory");
    return false;
  }
  for (i = 0; i < p->info.config_key_count; ++i) {
    /* The plugin's stride, never ours. */
    const char *entry = (const char *)p->info.config_schema + i * p->info.config_key_size;
    foxw_config_key *k = &p->schema[i];
    copy_struct(k, sizeof *k, entry, p->info.config_key_size);
    if (k->struct_size < FOXW_CONFIG_KEY_SIZE_1_0 || k->name == NULL) {
      snprintf(err, err_cap, "config schema entry %zu is malformed", i);
      return false;
    }
    if (k->type < FOXW_CONFIG_STRING || k->type > FOXW_CONFIG_MAP) {
      snprintf(err, err_cap, "config key %s has unknown type %d", k->name, (int)k->type);
      return false;
    }
  }
  return true;
}

bool plugin_init(loaded_plugin *p, const foxw_host_api *host, foxw_plugin_ctx *ctx, char *err,
                 size_t err_cap) {
  foxw_init_v1_fn init;
  const foxw_plugin_v1 *def;
  char init_err[1024] = "";
  size_t i, j;
  {
    void *sym = dlsym(p->handle, FOXW_INIT_V1_SYMBOL);
    if (sym == NULL) {
      snprintf(err, err_cap, "declares ABI 1 but does not export " FOXW_INIT_V1_SYMBOL);
      return false;
    }
    memcpy(&init, &sym, sizeof init);
  }
  def = init(host, ctx, init_err, sizeof init_err);
  if (def == NULL) {
    snprintf(err, err_cap, "init refused: %s", init_err[0] ? init_err : "(no reason given)");
    return false;
  }
  p->initialized = true;
  if (def->struct_size < FOXW_PLUGIN_V1_SIZE_1_0) {
    snprintf(err, err_cap, "plugin definition too small (%zu bytes; ABI 1.0 has %zu)",
             def->struct_size, (size_t)FOXW_PLUGIN_V1_SIZE_1_0);
    return false;
  }
  copy_struct(&p->def, sizeof p->def, def, def->struct_size);
  if (p->def.flags != 0) {
    snprintf(err, err_cap, "unknown plugin flags 0x%x", (unsigned)p->def.flags);
    return false;
  }
  if (p->def.instance_model > FOXW_INSTANCE_PER_THREAD) {
    snprintf(err, err_cap, "unknown instance model %u", (unsigned)p->def.instance_model);
    return false;
  }
  if (p->def.create == NULL || p->def.destroy == NULL) {
    snprintf(err, err_cap, "create and destroy are required");
    return false;
  }
  if (p->def.handler_count == 0 || p->def.handlers == NULL) {
    snprintf(err, err_cap, "declares no handlers");
    return false;
  }
  if (p->def.handler_count > MAX_ARRAY_LENGTH) {
    snprintf(err, err_cap, "declares %zu handlers; the limit is %d", p->def.handler_count,
             MAX_ARRAY_LENGTH);
    return false;
  }
  if (p->def.handler_size < FOXW_HANDLER_DEF_SIZE_1_0) {
    snprintf(err, err_cap, "handler_size is %zu, smaller than the %zu bytes of ABI 1.0",
             p->def.handler_size, (size_t)FOXW_HANDLER_DEF_SIZE_1_0);
    return false;
  }
  if (p->def.handler_size > MAX_ELEMENT_SIZE) {
    snprintf(err, err_cap, "handler entries are %zu bytes apart; the limit is %d",
             p->def.handler_size, MAX_ELEMENT_SIZE);
    return false;
  }
  p->handlers = calloc(p->def.handler_count, sizeof *p->handlers);
  if (p->handlers == NULL) {
    snprintf(err, err_cap, "out of memory");
    return false;
  }
  for (i = 0; i < p->def.handler_count; ++i) {
    const char *entry = (const char *)p->def.handlers + i * p->def.handler_size;
    foxw_handler_def *h = &p->handlers[i];
    copy_struct(h, sizeof *h, entry, p->def.handler_size);
    if (h->struct_size < FOXW_HANDLER_DEF_SIZE_1_0 || h->name == NULL ||
        (h->handle == NULL && plugin_batch_fn(h) == NULL)) {
      snprintf(err, err_cap, "handler %zu is malformed (size, name or function missing)", i);
      return false;
    }
    if (h->flags != 0 || h->reserved != 0) {
      snprintf(err, err_cap, "handler %s has unknown flags", h->name);
      return false;
    }
    for (j = 0; j < i; ++j) {
      if (strcmp(p->handlers[j].name, h->name) == 0) {
        snprintf(err, err_cap, "duplicate handler name \"%s\"", h->name);
        return false;
      }
    }
  }
  return true;
}

foxw_handle_batch_fn plugin_batch_fn(const foxw_handler_def *h) {
  if (h->struct_size < FOXW_END_OF(foxw_handler_def, handle_batch)) return NULL;
  return h->handle_batch;
}

const foxw_handler_def *plugin_handler_named(const loaded_plugin *p, const char *name) {
  size_t i;
  for (i = 0; i < p->def.handler_count; ++i)
    if (strcmp(p->handlers[i].name, name) == 0) return &p->handlers[i];
  return NULL;
}

const foxw_handler_def *plugin_handler_for_type(const loaded_plugin *p, const char *type) {
  const foxw_handler_def *h = plugin_handler_named(p, type);
  return h != NULL ? h : plugin_handler_named(p, "*");
}

void plugin_handler_names(const loaded_plugin *p, char *buf, size_t cap) {
  size_t i, len = 0;
  if (cap == 0) return;
  buf[0] = '\0';
  for (i = 0; i < p->def.handler_count && len < cap; ++i) {
    int n = snprintf(buf + len, cap - len, "%s%s", i > 0 ? ", " : "", p->handlers[i].name);
    if (n < 0) break;
    len += (size_t)n;
  }
}
