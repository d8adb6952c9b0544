#include "json.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ---- values -------------------------------------------------------------- */

json_value *json_new(json_type type) {
  json_value *v = calloc(1, sizeof *v);
  if (v != NULL) v->type = type;
  return v;
}

static void json_clear(json_value *v) {
  size_t i;
  free(v->text);
  v->text = NULL;
  v->len = 0;
  for (i = 0; v->items != NULL && i < v->count; ++i) json_free(v->items[i]);
  for (i = 0; v->members != NULL && i < v->count; ++i) {
    free(v->members[i].key);
    json_free(v->members[i].value);
  }
  free(v->items);
  free(v->members);
  v->items = NULL;
  v->members = NULL;
  v->count = v->cap = 0;
  v->is_int = false;
}

void json_free(json_value *v) {
  if (v == NULL) return;
  json_clear(v);
  free(v);
}

static char *copy_bytes(const char *text, size_t len) {
  char *s = malloc(len + 1);
  if (s == NULL) return NULL;
  if (len > 0) memcpy(s, text, len);
  s[len] = '\0';
  return s;
}

bool json_set_string(json_value *v, const char *text, size_t len) {
  char *s = copy_bytes(text, len);
  if (s == NULL) return false;
  json_clear(v);
  v->type = JSON_STRING;
  v->text = s;
  v->len = len;
  return true;
}

bool json_set_int(json_value *v, int64_t n) {
  char buf[32];
  int len = snprintf(buf, sizeof buf, "%lld", (long long)n);
  char *s = copy_bytes(buf, (size_t)len);
  if (s == NULL) return false;
  json_clear(v);
  v->type = JSON_NUMBER;
  v->is_int = true;
  v->integer = n;
  v->number = (double)n;
  v->text = s;
  v->len = (size_t)len;
  return true;
}

bool json_set_double(json_value *v, double d) {
  char buf[40];
  int len;
  char *s;
  int precision;
  if (!isfinite(d)) d = 0;
  /* The shortest text that reads back as the same double. */
  for (precision = 15; precision < 17; ++precision) {
    len = snprintf(buf, sizeof buf, "%.*g", precision, d);
    if (strtod(buf, NULL) == d) break;
  }
  len = snprintf(buf, sizeof buf, "%.*g", precision, d);
  /* Keep it a double for a reader: "3" would read back as an integer. */
  if (strspn(buf, "-0123456789") == (size_t)len) len += snprintf(buf + len, sizeof buf - (size_t)len, ".0");
  s = copy_bytes(buf, (size_t)len);
  if (s == NULL) return false;
  json_clear(v);
  v->type = JSON_NUMBER;
  v->number = d;
  v->text = s;
  v->len = (size_t)len;
  return true;
}

void json_set_bool(json_value *v, bool b) {
  json_clear(v);
  v->type = JSON_BOOL;
  v->boolean = b;
}

json_value *json_new_string(const char *text, size_t len) {
  json_value *v = json_new(JSON_STRING);
  if (v != NULL && !json_set_string(v, text, len)) {
    free(v);
    return NULL;
  }
  return v;
}

json_value *json_new_int(int64_t n) {
  json_value *v = json_new(JSON_NUMBER);
  if (v != NULL && !json_set_int(v, n)) {
    free(v);
    return NULL;
  }
  return v;
}

json_value *json_new_double(double d) {
  json_value *v = json_new(JSON_NUMBER);
  if (v != NULL && !json_set_double(v, d)) {
    free(v);
    return NULL;
  }
  return v;
}

static bool grow(json_value *v, size_t elem) {
  size_t cap;
  void *p;
  if (v->count < v->cap) return true;
  cap = v->cap ? v->cap * 2 : 4;
  if (cap > SIZE_MAX / elem) return false;
  if (v->type == JSON_ARRAY) {
    p = realloc(v->items, cap * elem);
    if (p == NULL) return false;
    v->items = p;
  } else {
    p = realloc(v->members, cap * elem);
    if (p == NULL) return false;
    v->members = p;
  }
  v->cap = cap;
  return true;
}

bool json_array_append(json_value *array, json_value *item) {
  if (item == NULL || array == NULL || !grow(array, sizeof(json_value *))) {
    json_free(item);
    return false;
  }
  array->items[array->count++] = item;
  return true;
}

static bool object_add_n(json_value *object, const char *key, size_t key_len,
                         json_value *value) {
  char *k;
  if (value == NULL || object == NULL || !grow(object, sizeof(json_member))) {
    json_free(value);
    return false;
  }
  k = copy_bytes(key, key_len);
  if (k == NULL) {
    json_free(value);
    return false;
  }
  object->members[object->count].key = k;
  object->members[object->count].key_len = key_len;
  object->members[object->count].value = value;
  ++object->count;
  return true;
}

bool json_object_add(json_value *object, const char *key, json_value *value) {
  return object_add_n(object, key, strlen(key), value);
}

static json_value *find_member(const json_value *object, const char *key, size_t n) {
  size_t i;
  if (object == NULL || object->type != JSON_OBJECT) return NULL;
  for (i = 0; i < object->count; ++i)
    if (object->members[i].key_len == n && memcmp(object->members[i].key, key, n) == 0)
      return object->members[i].value;
  return NULL;
}

json_value *json_object_get(const json_value *object, const char *key) {
  return find_member(object, key, strlen(key));
}

/* ---- parsing ------------------------------------------------------------- */

typedef struct parser {
  const char *p;
  const char *end;
  const char *start;
  char *err;
  size_t err_cap;
  bool failed;
} parser;

static void fail(parser *ps, const char *what) {
  size_t line = 1, col = 1;
  const char *c;
  if (ps->failed) return;
  ps->failed = true;
  for (c = ps->start; c < ps->p && c < ps->end; ++c) {
    if (*c == '\n') {
      ++line;
      col = 1;
    } else {
      ++col;
    }
  }
  if (ps->err != NULL && ps->err_cap > 0)
    snprintf(ps->err, ps->err_cap, "line %zu, column %zu: %s", line, col, what);
}

static void skip_space(parser *ps) {
  while (ps->p < ps->end &&
         (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
    ++ps->p;
}

static bool literal(parser *ps, const char *word) {
  size_t n = strlen(word);
  if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0) return false;
  ps->p += n;
  return true;
}

static int hex4(const char *s) {
  int v = 0, i;
  for (i = 0; i < 4; ++i) {
    char c = s[i];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= c - '0';
    else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
    else return -1;
  }
  return v;
}

static void put_utf8(json_buf *b, uint32_t cp) {
  char out[4];
  size_t n;
  if (cp < 0x80) {
    out[0] = (char)cp;
    n = 1;
  } else if (cp < 0x800) {
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    n = 2;
  } else if (cp < 0x10000) {
    out[0] = (char)(0xE0 | (cp >> 12));
    out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F));
    n = 3;
  } else {
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    n = 4;
  }
  json_buf_append(b, out, n);
}

/* Reads a string after its opening quote into `out`. */
static bool parse_string_into(parser *ps, json_buf *out) {
  for (;;) {
    unsigned char c;
    if (ps->p >= ps->end) {
      fail(ps, "unterminated string");
      return false;
    }
    c = (unsigned char)*ps->p;
    if (c == '"') {
      ++ps->p;
      break;
    }
    if (c < 0x20) {
      fail(ps, "control character in a string (escape it)");
      return false;
    }
    if (c != '\\') {
      const char *run = ps->p;
      while (ps->p < ps->end && *ps->p != '"' && *ps->p != '\\' &&
             (unsigned char)*ps->p >= 0x20)
        ++ps->p;
      json_buf_append(out, run, (size_t)(ps->p - run));
      continue;
    }
    ++ps->p;
    if (ps->p >= ps->end) {
      fail(ps, "unterminated string");
      return false;
    }
    switch (*ps->p++) {
      case '"': json_buf_append(out, "\"", 1); break;
      case '\\': json_buf_append(out, "\\", 1); break;
      case '/': json_buf_append(out, "/", 1); break;
      case 'b': json_buf_append(out, "\b", 1); break;
      case 'f': json_buf_append(out, "\f", 1); break;
      case 'n': json_buf_append(out, "\n", 1); break;
      case 'r': json_buf_append(out, "\r", 1); break;
      case 't': json_buf_append(out, "\t", 1); break;
      case 'u': {
        int hi, lo;
        uint32_t cp;
        if (ps->end - ps->p < 4 || (hi = hex4(ps->p)) < 0) {
          fail(ps, "bad \\u escape (expected 4 hex digits)");
          return false;
        }
        ps->p += 4;
        cp = (uint32_t)hi;
        if (hi >= 0xDC00 && hi <= 0xDFFF) {
          fail(ps, "lone low surrogate in a \\u escape");
          return false;
        }
        if (hi >= 0xD800 && hi <= 0xDBFF) {
          if (ps->end - ps->p < 6 || ps->p[0] != '\\' || ps->p[1] != 'u' ||
              (lo = hex4(ps->p + 2)) < 0 || lo < 0xDC00 || lo > 0xDFFF) {
            fail(ps, "high surrogate not followed by a low surrogate \\u escape");
            return false;
          }
          ps->p += 6;
          cp = 0x10000 + (((uint32_t)hi - 0xD800) << 10) + ((uint32_t)lo - 0xDC00);
        }
        put_utf8(out, cp);
        break;
      }
      default:
        --ps->p;
        fail(ps, "unknown escape in a string");
        return false;
    }
  }
  if (out->failed) {
    fail(ps, "out of memory");
    return false;
  }
  return true;
}

static json_value *parse_number(parser *ps) {
  const char *s = ps->p;
  bool integral = true;
  json_value *v;
  char *text, *end;
  if (ps->p < ps->end && *ps->p == '-') ++ps->p;
  if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9') {
    fail(ps, "bad number");
    return NULL;
  }
  if (*ps->p == '0') {
    ++ps->p;
  } else {
    while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') ++ps->p;
  }
  if (ps->p < ps->end && *ps->p == '.') {
    integral = false;
    ++ps->p;
    if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9') {
      fail(ps, "bad number (digits expected after the point)");
      return NULL;
    }
    while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') ++ps->p;
  }
  if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
    integral = false;
    ++ps->p;
    if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-')) ++ps->p;
    if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9') {
      fail(ps, "bad number (digits expected in the exponent)");
      return NULL;
    }
    while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') ++ps->p;
  }
  text = copy_bytes(s, (size_t)(ps->p - s));
  v = json_new(JSON_NUMBER);
  if (text == NULL || v == NULL) {
    free(text);
    free(v);
    fail(ps, "out of memory");
    return NULL;
  }
  v->text = text;
  v->len = (size_t)(ps->p - s);
  errno = 0;
  v->number = strtod(text, &end);
  if (!isfinite(v->number)) {
    json_free(v);
    fail(ps, "number out of range");
    return NULL;
  }
  if (integral) {
    long long n;
    errno = 0;
    n = strtoll(text, &end, 10);
    if (errno == 0 && *end == '\0') {
      v->is_int = true;
      v->integer = n;
    }
  }
  return v;
}

static json_value *parse_value(parser *ps, int depth);

static json_value *parse_container(parser *ps, int depth, bool object) {
  json_value *v = json_new(object ? JSON_OBJECT : JSON_ARRAY);
  char close = object ? '}' : ']';
  if (v == NULL) {
    fail(ps, "out of memory");
    return NULL;
  }
  if (depth >= JSON_MAX_DEPTH) {
    fail(ps, "nested too deeply");
    json_free(v);
    return NULL;
  }
  ++ps->p; /* the opening bracket */
  skip_space(ps);
  if (ps->p < ps->end && *ps->p == close) {
    ++ps->p;
    return v;
  }
  for (;;) {
    json_value *item;
    json_buf key = {0};
    skip_space(ps);
    if (object) {
      if (ps->p >= ps->end || *ps->p != '"') {
        fail(ps, "expected a string key");
        break;
      }
      ++ps->p;
      if (!parse_string_into(ps, &key)) {
        json_buf_free(&key);
        break;
      }
      if (find_member(v, key.data != NULL ? key.data : "", key.len) != NULL) {
        fail(ps, "duplicate key in an object");
        json_buf_free(&key);
        break;
      }
      skip_space(ps);
      if (ps->p >= ps->end || *ps->p != ':') {
        fail(ps, "expected ':' after a key");
        json_buf_free(&key);
        break;
      }
      ++ps->p;
    }
    item = parse_value(ps, depth + 1);
    if (item == NULL) {
      json_buf_free(&key);
      break;
    }
    if (object ? !object_add_n(v, key.data != NULL ? key.data : "", key.len, item)
               : !json_array_append(v, item)) {
      fail(ps, "out of memory");
      json_buf_free(&key);
      break;
    }
    json_buf_free(&key);
    skip_space(ps);
    if (ps->p < ps->end && *ps->p == ',') {
      ++ps->p;
      continue;
    }
    if (ps->p < ps->end && *ps->p == close) {
      ++ps->p;
      return v;
    }
    fail(ps, object ? "expected ',' or '}'" : "expected ',' or ']'");
    break;
  }
  json_free(v);
  return NULL;
}

static json_value *parse_value(parser *ps, int depth) {
  json_value *v;
  skip_space(ps);
  if (ps->p >= ps->end) {
    fail(ps, "unexpected end of input");
    return NULL;
  }
  switch (*ps->p) {
    case '{':
      return parse_container(ps, depth, true);
    case '[':
      return parse_container(ps, depth, false);
    case '"': {
      json_buf b = {0};
      ++ps->p;
      if (!parse_string_into(ps, &b)) {
        json_buf_free(&b);
        return NULL;
      }
      v = json_new(JSON_STRING);
      if (v == NULL) {
        json_buf_free(&b);
        fail(ps, "out of memory");
        return NULL;
      }
      v->text = b.data != NULL ? b.data : copy_bytes("", 0);
      v->len = b.len;
      if (v->text == NULL) {
        free(v);
        fail(ps, "out of memory");
        return NULL;
      }
      return v;
    }
    case 't':
    case 'f':
    case 'n':
      if (literal(ps, "true")) {
        v = json_new(JSON_BOOL);
        if (v != NULL) v->boolean = true;
      } else if (literal(ps, "false")) {
        v = json_new(JSON_BOOL);
      } else if (literal(ps, "null")) {
        v = json_new(JSON_NULL);
      } else {
        fail(ps, "unexpected word (expected true, false or null)");
        return NULL;
      }
      if (v == NULL) fail(ps, "out of memory");
      return v;
    default:
      if (*ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9')) return parse_number(ps);
      fail(ps, "unexpected character");
      return NULL;
  }
}

json_value *json_parse(const char *text, size_t len, char *err, size_t err_cap) {
  parser ps;
  json_value *v;
  ps.p = ps.start = text;
  ps.end = text + len;
  ps.err = err;
  ps.err_cap = err_cap;
  ps.failed = false;
  v = parse_value(&ps, 0);
  if (v == NULL) return NULL;
  skip_space(&ps);
  if (ps.p != ps.end) {
    fail(&ps, "trailing characters after the value");
    json_free(v);
    return NULL;
  }
  return v;
}

/* ---- writing ------------------------------------------------------------- */

void json_buf_append(json_buf *b, const char *data, size_t len) {
  if (b->failed) return;
  if (b->len + len + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 64;
    char *p;
    while (cap < b->len + len + 1) {
      if (cap > SIZE_MAX / 2) {
        b->failed = true;
        return;
      }
      cap *= 2;
    }
    p = realloc(b->data, cap);
    if (p == NULL) {
      b->failed = true;
      return;
    }
    b->data = p;
    b->cap = cap;
  }
  if (len > 0) memcpy(b->data + b->len, data, len);
  b->len += len;
  b->data[b->len] = '\0';
}

void json_buf_puts(json_buf *b, const char *s) { json_buf_append(b, s, strlen(s)); }

void json_buf_printf(json_buf *b, const char *fmt, ...) {
  char small[256];
  va_list ap;
  int n;
  va_start(ap, fmt);
  n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n < 0) {
    b->failed = true;
    return;
  }
  if ((size_t)n < sizeof small) {
    json_buf_append(b, small, (size_t)n);
    return;
  }
  {
    char *big = malloc((size_t)n + 1);
    if (big == NULL) {
      b->failed = true;
      return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    json_buf_append(b, big, (size_t)n);
    free(big);
  }
}

void json_buf_string(json_buf *b, const char *s, size_t len) {
  size_t i, run = 0;
  json_buf_append(b, "\"", 1);
  for (i = 0; i < len; ++i) {
    unsigned char c = (unsigned char)s[i];
    const char *esc = NULL;
    char hex[8];
    if (c == '"') esc = "\\\"";
    else if (c == '\\') esc = "\\\\";
    else if (c == '\n') esc = "\\n";
    else if (c == '\r') esc = "\\r";
    else if (c == '\t') esc = "\\t";
    else if (c < 0x20 || c == 0x7f) {
      snprintf(hex, sizeof hex, "\\u%04x", c);
      esc = hex;
    }
    if (esc == NULL) continue;
    json_buf_append(b, s + run, i - run);
    json_buf_puts(b, esc);
    run = i + 1;
  }
  json_buf_append(b, s + run, len - run);
  json_buf_append(b, "\"", 1);
}

static void write_value(json_buf *b, const json_value *v) {
  size_t i;
  switch (v->type) {
    case JSON_NULL: json_buf_puts(b, "null"); break;
    case JSON_BOOL: json_buf_puts(b, v->boolean ? "true" : "false"); break;
    case JSON_NUMBER: json_buf_append(b, v->text, v->len); break;
    case JSON_STRING: json_buf_string(b, v->text, v->len); break;
    case JSON_ARRAY:
      json_buf_append(b, "[", 1);
      for (i = 0; i < v->count; ++i) {
        if (i > 0) json_buf_append(b, ",", 1);
        write_value(b, v->items[i]);
      }
      json_buf_append(b, "]", 1);
      break;
    case JSON_OBJECT:
      json_buf_append(b, "{", 1);
      for (i = 0; i < v->count; ++i) {
        if (i > 0) json_buf_append(b, ",", 1);
        json_buf_string(b, v->members[i].key, v->members[i].key_len);
        json_buf_append(b, ":", 1);
        write_value(b, v->members[i].value);
      }
      json_buf_append(b, "}", 1);
      break;
  }
}

void json_write(json_buf *b, const json_value *v) { write_value(b, v); }

void json_buf_free(json_buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
  b->failed = false;
}
