/* A small JSON reader and writer for foxworker-plugin-run: a plugin's config
 * (an object of scalars, lists and mappings) and the runner's --json report.
 *
 * Parsing is strict RFC 8259 (no comments, no trailing commas), bounded
 * (nesting depth, input size) and refuses duplicate object keys. Every
 * string is stored NUL-terminated (it may also contain NUL bytes: use len).
 * Numbers keep the text they were written with, so that a number read as a
 * string reads as written. Not thread-safe to modify; safe to read from
 * several threads once built. */
#ifndef FOXWORKER_RUNNER_JSON_H_
#define FOXWORKER_RUNNER_JSON_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define JSON_MAX_DEPTH 64

typedef enum json_type {
  JSON_NULL,
  JSON_BOOL,
  JSON_NUMBER,
  JSON_STRING,
  JSON_ARRAY,
  JSON_OBJECT
} json_type;

typedef struct json_value json_value;

typedef struct json_member {
  char *key; /* NUL-terminated */
  size_t key_len;
  json_value *value;
} json_member;

struct json_value {
  json_type type;
  bool boolean;
  /* JSON_NUMBER: is_int when written without fraction or exponent and it
   * fits an int64; `text` holds the number as written. */
  bool is_int;
  int64_t integer;
  double number;
  /* JSON_STRING: the decoded bytes; JSON_NUMBER: the number's text. */
  char *text;
  size_t len;
  /* JSON_ARRAY: items; JSON_OBJECT: members (in input order). */
  json_value **items;
  json_member *members;
  size_t count;
  size_t cap;
};

/* Parses `len` bytes. Returns the value, or NULL with a message ("line 3,
 * column 7: ...") in err. */
json_value *json_parse(const char *text, size_t len, char *err, size_t err_cap);
void json_free(json_value *v);

/* Constructors (NULL when out of memory). json_new_string copies. */
json_value *json_new(json_type type);
json_value *json_new_string(const char *text, size_t len);
json_value *json_new_int(int64_t n);
json_value *json_new_double(double d);
/* Appends; takes ownership of `item`/`value`. False when out of memory (the
 * value is then freed). */
bool json_array_append(json_value *array, json_value *item);
bool json_object_add(json_value *object, const char *key, json_value *value);

/* The first member named `key` (NUL-terminated), or NULL. */
json_value *json_object_get(const json_value *object, const char *key);

/* Turns `v` into a string holding `text` (copied); false when out of memory. */
bool json_set_string(json_value *v, const char *text, size_t len);
bool json_set_int(json_value *v, int64_t n);
bool json_set_double(json_value *v, double d);
void json_set_bool(json_value *v, bool b);

/* A growable byte buffer; `data` is NUL-terminated when non-NULL. */
typedef struct json_buf {
  char *data;
  size_t len;
  size_t cap;
  bool failed; /* an allocation failed; the contents are incomplete */
} json_buf;

void json_buf_append(json_buf *b, const char *data, size_t len);
void json_buf_puts(json_buf *b, const char *s);
void json_buf_printf(json_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Appends `len` bytes as a quoted JSON string. */
void json_buf_string(json_buf *b, const char *s, size_t len);
/* Appends `v` in compact form. */
void json_write(json_buf *b, const json_value *v);
void json_buf_free(json_buf *b);

#endif /* FOXWORKER_RUNNER_JSON_H_ */
