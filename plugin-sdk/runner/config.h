/* A plugin's config as foxworkerd gives it: the schema applied (unknown keys
 * refused, required keys enforced, defaults added, values converted to the
 * schema's types) and the typed reads of foxw_host_api (config_string ...
 * config_item) over the result. */
#ifndef FOXWORKER_RUNNER_CONFIG_H_
#define FOXWORKER_RUNNER_CONFIG_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <foxworker/plugin.h>

#include "json.h"

/* The grammar of foxworkerd's durations (daemon/base/units.cc): "0", or a
 * non-negative decimal ("1", "1.5", at most 18 digits) followed by one of
 * ms, s, m, h, d, naming a whole number of milliseconds up to INT64_MAX.
 * Returns true with *ms, or false with a message in err. */
bool parse_duration(const char *text, size_t len, uint64_t *ms, char *err,
                    size_t err_cap);

/* Applies `keys` (the plugin's schema, copied out of its array) to `config`
 * (a JSON object) in place, as foxworkerd's loader does. Returns true, or
 * false with a message in err. */
bool config_apply_schema(json_value *config, const foxw_config_key *keys,
                         size_t key_count, char *err, size_t err_cap);

/* The typed reads: FOXW_CONFIG_OK, _ABSENT or _WRONG_TYPE, with the
 * conversions plugin.h documents. A key whose value is null reads as
 * absent. Strings point into `config`. */
int32_t config_read_string(const json_value *config, const char *key, foxw_str *value);
int32_t config_read_int(const json_value *config, const char *key, int64_t *value);
int32_t config_read_double(const json_value *config, const char *key, double *value);
int32_t config_read_bool(const json_value *config, const char *key, bool *value);
int32_t config_read_duration_ms(const json_value *config, const char *key, uint64_t *value);
int32_t config_read_count(const json_value *config, const char *key, size_t *count);
int32_t config_read_item(const json_value *config, const char *key, size_t index,
                         foxw_str *name, foxw_str *value);

#endif /* FOXWORKER_RUNNER_CONFIG_H_ */
