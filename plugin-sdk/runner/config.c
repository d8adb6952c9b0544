#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- durations (the grammar of daemon/base/units.cc ParseDuration) ------- */

static uint64_t gcd_u64(uint64_t a, uint64_t b) {
  while (b != 0) {
    uint64_t t = a % b;
    a = b;
    b = t;
  }
  return a;
}

bool parse_duration(const char *text, size_t len, uint64_t *ms, char *err,
                    size_t err_cap) {
  static const struct {
    const char *suffix;
    uint64_t multiplier;
  } units[] = {{"ms", 1},          {"s", 1000},           {"m", 60 * 1000},
               {"h", 3600 * 1000}, {"d", 24 * 3600 * 1000}};
  const char *why = NULL;
  uint64_t mantissa = 0, scale = 1;
  int digits = 0;
  size_t i = 0, u;
  if (len == 1 && text[0] == '0') {
    *ms = 0;
    return true;
  }
  if (len > 0 && text[0] == '-') {
    why = "must not be negative";
    goto fail;
  }
  /* At most 18 significant digits keeps the mantissa and scale below 2^63. */
  while (i < len && text[i] >= '0' && text[i] <= '9') {
    if (++digits > 18) {
      why = "out of range";
      goto fail;
    }
    mantissa = mantissa * 10 + (uint64_t)(text[i] - '0');
    ++i;
  }
  if (i == 0) {
    why = "expected a number followed by ms, s, m, h or d";
    goto fail;
  }
  if (i < len && text[i] == '.') {
    size_t start = ++i;
    while (i < len && text[i] >= '0' && text[i] <= '9') {
      if (++digits > 18) {
        why = "out of range";
        goto fail;
      }
      mantissa = mantissa * 10 + (uint64_t)(text[i] - '0');
      scale *= 10;
      ++i;
    }
    if (i == start) {
      why = "expected a number followed by ms, s, m, h or d";
      goto fail;
    }
  }
  if (i == len) {
    why = "a unit is required; expected a number followed by ms, s, m, h or d";
    goto fail;
  }
  for (u = 0; u < sizeof units / sizeof units[0]; ++u) {
    size_t n = strlen(units[u].suffix);
    uint64_t g, m, s, whole;
    if (len - i != n || memcmp(text + i, units[u].suffix, n) != 0) continue;
    /* mantissa * multiplier / scale without 128-bit arithmetic: reduce the
     * fraction first; then it is whole exactly when scale divides. */
    g = gcd_u64(units[u].multiplier, scale);
    m = units[u].multiplier / g;
    s = scale / g;
    if (mantissa % s != 0) {
      why = "not a whole number of milliseconds";
      goto fail;
    }
    whole = mantissa / s;
    if (whole > (uint64_t)INT64_MAX / m) {
      why = "out of range";
      goto fail;
    }
    *ms = whole * m;
    return true;
  }
  why = "expected a number followed by ms, s, m, h or d";
fail:
  if (err != NULL && err_cap > 0)
    snprintf(err, err_cap, "invalid duration \"%.*s\": %s", (int)(len > 200 ? 200 : len), text,
             why);
  return false;
}

/* ---- the schema ---------------------------------------------------------- */

static const char *type_name(int32_t type) {
  switch (type) {
    case FOXW_CONFIG_STRING: return "a string";
    case FOXW_CONFIG_INT: return "an integer";
    case FOXW_CONFIG_DOUBLE: return "a number";
    case FOXW_CONFIG_BOOL: return "a boolean";
    case FOXW_CONFIG_DURATION: return "a duration like 30s";
    case FOXW_CONFIG_STRING_LIST: return "a list of strings";
    case FOXW_CONFIG_MAP: return "a mapping of strings";
  }
  return "an unknown type";
}

/* "true"/"yes"/"on" -> 1, "false"/"no"/"off" -> 0, else -1. */
static int bool_word(const char *s, size_t len) {
  static const char *const yes[] = {"true", "yes", "on"};
  static const char *const no[] = {"false", "no", "off"};
  size_t i;
  for (i = 0; i < 3; ++i) {
    if (strlen(yes[i]) == len && memcmp(s, yes[i], len) == 0) return 1;
    if (strlen(no[i]) == len && memcmp(s, no[i], len) == 0) return 0;
  }
  return -1;
}

/* The whole string as a base-10 integer (strtoll's grammar, as the daemon). */
static bool string_int(const json_value *v, int64_t *n) {
  char *end = NULL;
  long long x;
  if (v->len == 0 || strlen(v->text) != v->len) return false;
  errno = 0;
  x = strtoll(v->text, &end, 10);
  if (errno != 0 || end == v->text || *end != '\0') return false;
  *n = x;
  return true;
}

/* The whole string as a finite double (strtod's grammar, as the daemon). */
static bool string_double(const json_value *v, double *d) {
  char *end = NULL;
  double x;
  if (v->len == 0 || strlen(v->text) != v->len) return false;
  errno = 0;
  x = strtod(v->text, &end);
  if (errno != 0 || end == v->text || *end != '\0' || !isfinite(x)) return false;
  *d = x;
  return true;
}

/* Marks a number as a double, keeping its text ("3" becomes "3.0"). */
static bool make_double(json_value *v) {
  char *text;
  if (!v->is_int) return true;
  if (strpbrk(v->text, ".eE") != NULL) {
    v->is_int = false;
    return true;
  }
  text = malloc(v->len + 3);
  if (text == NULL) return false;
  memcpy(text, v->text, v->len);
  memcpy(text + v->len, ".0", 3);
  free(v->text);
  v->text = text;
  v->len += 2;
  v->is_int = false;
  return true;
}

/* Converts `v` in place to `type` as the daemon's CoerceToType does; false
 * (with *why set when there is more to say) when it cannot be. A default is
 * YAML scalar text, so always a string here. */
static bool coerce(int32_t type, json_value *v, char *why, size_t why_cap) {
  size_t i;
  int64_t n;
  double d;
  uint64_t ms;
  switch (type) {
    case FOXW_CONFIG_STRING:
      if (v->type == JSON_STRING) return true;
      if (v->type == JSON_NUMBER) return json_set_string(v, v->text, v->len);
      if (v->type == JSON_BOOL)
        return v->boolean ? json_set_string(v, "true", 4) : json_set_string(v, "false", 5);
      return false;
    case FOXW_CONFIG_INT:
      if (v->type == JSON_NUMBER && v->is_int) return true;
      if (v->type == JSON_STRING && string_int(v, &n)) return json_set_int(v, n);
      return false;
    case FOXW_CONFIG_DOUBLE:
      if (v->type == JSON_NUMBER) return make_double(v);
      /* A default, or a config value given as a string ("1.5"). */
      if (v->type == JSON_STRING && string_double(v, &d)) return json_set_double(v, d);
      return false;
    case FOXW_CONFIG_BOOL:
      if (v->type == JSON_BOOL) return true;
      if (v->type == JSON_STRING && bool_word(v->text, v->len) >= 0) {
        json_set_bool(v, bool_word(v->text, v->len) == 1);
        return true;
      }
      return false;
    case FOXW_CONFIG_DURATION:
      if (v->type == JSON_NUMBER && v->is_int && v->integer == 0) return true;
      if (v->type != JSON_STRING) return false;
      if (!parse_duration(v->text, v->len, &ms, why, why_cap)) return false;
      return json_set_int(v, (int64_t)ms);
    case FOXW_CONFIG_STRING_LIST:
      if (v->type != JSON_ARRAY) return false;
      for (i = 0; i < v->count; ++i)
        if (!coerce(FOXW_CONFIG_STRING, v->items[i], why, why_cap)) return false;
      return true;
    case FOXW_CONFIG_MAP:
      if (v->type != JSON_OBJECT) return false;
      for (i = 0; i < v->count; ++i)
        if (!coerce(FOXW_CONFIG_STRING, v->members[i].value, why, why_cap)) return false;
      return true;
  }
  return false;
}

static int compare_names(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

bool config_apply_schema(json_value *config, const foxw_config_key *keys,
                         size_t key_count, char *err, size_t err_cap) {
  size_t i, k;
  if (key_count == 0) return true;
  if (config->type != JSON_OBJECT) {
    snprintf(err, err_cap, "config: must be a mapping (a JSON object)");
    return false;
  }
  for (i = 0; i < config->count; ++i) {
    const json_member *m = &config->members[i];
    bool known = false;
    for (k = 0; k < key_count && !known; ++k)
      known = strlen(keys[k].name) == m->key_len && memcmp(keys[k].name, m->key, m->key_len) == 0;
    if (!known) {
      /* The daemon lists the known keys sorted. */
      const char **names = malloc(key_count * sizeof *names);
      json_buf list = {0};
      if (names != NULL) {
        for (k = 0; k < key_count; ++k) names[k] = keys[k].name;
        qsort(names, key_count, sizeof *names, compare_names);
        for (k = 0; k < key_count; ++k) {
          if (k > 0 && strcmp(names[k], names[k - 1]) == 0) continue;
          if (list.len > 0) json_buf_puts(&list, ", ");
          json_buf_puts(&list, names[k]);
        }
      }
      snprintf(err, err_cap, "config.%s: unknown key (known: %s)", m->key,
               list.data != NULL ? list.data : "");
      free(names);
      json_buf_free(&list);
      return false;
    }
  }
  for (k = 0; k < key_count; ++k) {
    const foxw_config_key *key = &keys[k];
    json_value *v = json_object_get(config, key->name);
    char why[256] = "";
    if (v == NULL) {
      if (key->required) {
        snprintf(err, err_cap, "config: missing required key %s (%s)", key->name,
                 type_name(key->type));
        return false;
      }
      if (key->default_value == NULL) continue;
      v = json_new_string(key->default_value, strlen(key->default_value));
      if (v == NULL || !coerce(key->type, v, why, sizeof why)) {
        json_free(v);
        snprintf(err, err_cap, "the plugin's default of key %s is not %s%s%s%s", key->name,
                 type_name(key->type), why[0] ? " (" : "", why, why[0] ? ")" : "");
        return false;
      }
      if (!json_object_add(config, key->name, v)) {
        snprintf(err, err_cap, "out of memory");
        return false;
      }
      continue;
    }
    if (!coerce(key->type, v, why, sizeof why)) {
      snprintf(err, err_cap, "config.%s: must be %s%s%s%s", key->name, type_name(key->type),
               why[0] ? " (" : "", why, why[0] ? ")" : "");
      return false;
    }
  }
  return true;
}

/* ---- typed reads --------------------------------------------------------- */

static const json_value *lookup(const json_value *config, const char *key, int32_t *rc) {
  const json_value *v = key != NULL ? json_object_get(config, key) : NULL;
  *rc = FOXW_CONFIG_OK;
  if (v == NULL || v->type == JSON_NULL) {
    *rc = FOXW_CONFIG_ABSENT;
    return NULL;
  }
  return v;
}

/* A scalar as text: strings, numbers (as written), booleans. */
static bool scalar_text(const json_value *v, foxw_str *out) {
  switch (v->type) {
    case JSON_STRING:
    case JSON_NUMBER:
      out->ptr = v->text;
      out->len = v->len;
      return true;
    case JSON_BOOL:
      out->ptr = v->boolean ? "true" : "false";
      out->len = v->boolean ? 4 : 5;
      return true;
    default:
      return false;
  }
}

int32_t config_read_string(const json_value *config, const char *key, foxw_str *value) {
  int32_t rc;
  foxw_str s;
  const json_value *v = lookup(config, key, &rc);
  if (v == NULL) return rc;
  if (!scalar_text(v, &s)) return FOXW_CONFIG_WRONG_TYPE;
  if (value != NULL) *value = s;
  return FOXW_CONFIG_OK;
}

int32_t config_read_int(const json_value *config, const char *key, int64_t *value) {
  int32_t rc;
  int64_t n;
  const json_value *v = lookup(config, key, &rc);
  if (v == NULL) return rc;
  if (v->type == JSON_NUMBER && v->is_int) n = v->integer;
  else if (v->type != JSON_STRING || !string_int(v, &n)) return FOXW_CONFIG_WRONG_TYPE;
  if (value != NULL) *value = n;
  return FOXW_CONFIG_OK;
}

int32_t config_read_double(const json_value *config, const char *key, double *value) {
  int32_t rc;
  const json_value *v = lookup(config, key, &rc);
  if (v == NULL) return rc;
  if (v->type != JSON_NUMBER) return FOXW_CONFIG_WRONG_TYPE;
  if (value != NULL) *value = v->number;
  return FOXW_CONFIG_OK;
}

int32_t config_read_bool(const json_value *config, const char *key, bool *value) {
  int32_t rc;
  int b;
  const json_value *v = lookup(config, key, &rc);
  if (v == NULL) return rc;
  if (v->type == JSON_BOOL) b = v->boolean;
  else if (v->type != JSON_STRING || (b = bool_word(v->text, v->len)) < 0)
    return FOXW_CONFIG_WRONG_TYPE;
  if (value != NULL) *value = b == 1;
  return FOXW_CONFIG_OK;
}

int32_t config_read_duration_ms(const json_value *config, const char *key, uint64_t *value) {
  int32_t rc;
  uint64_t ms;
  const json_value *v = lookup(config, key, &rc);
  if (v == NULL) return rc;
  if (v->type == JSON_NUMBER && v->is_int && v->integer >= 0) ms = (uint64_t)v->integer;
  else if (v->type != JSON_STRING || !parse_duration(v->text, v->len, &ms, NULL, 0))
    return FOXW_CONFIG_WRONG_TYPE;
  if (value != NULL) *value = ms;
  return FOXW_CONFIG_OK;
}

int32_t config_read_count(const json_value *config, const char *key, size_t *count) {
  int32_t rc;
  const json_value *v = lookup(config, key, &rc);
  if (v == NULL) return rc;
  if (v->type != JSON_ARRAY && v->type != JSON_OBJECT) return FOXW_CONFIG_WRONG_TYPE;
  if (count != NULL) *count = v->count;
  return FOXW_CONFIG_OK;
}

int32_t config_read_item(const json_value *config, const char *key, size_t index,
                         foxw_str *name, foxw_str *value) {
  int32_t rc;
  foxw_str n = {"", 0}, s;
  const json_value *item;
  const json_value *v = lookup(config, key, &rc);
  if (v == NULL) return rc;
  if (v->type != JSON_ARRAY && v->type != JSON_OBJECT) return FOXW_CONFIG_WRONG_TYPE;
  if (index >= v->count) return FOXW_CONFIG_ABSENT;
  if (v->type == JSON_ARRAY) {
    item = v->items[index];
  } else {
    item = v->members[index].value;
    n.ptr = v->members[index].key;
    n.len = v->members[index].key_len;
  }
  /* Only strings, as the daemon: a schema's list or map holds nothing else,
   * but a plugin without a schema gets its config as written. */
  if (item->type != JSON_STRING) return FOXW_CONFIG_WRONG_TYPE;
  s.ptr = item->text;
  s.len = item->len;
  if (name != NULL) *name = n;
  if (value != NULL) *value = s;
  return FOXW_CONFIG_OK;
}
