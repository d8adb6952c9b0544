/* hello_c: greets the name in the payload (config key "greeting", default
 * "hello"); rejects an empty payload, since retrying it cannot help. */
#include <foxworker/plugin.h>
#include <stdio.h>

FOXW_PLUGIN("hello_c", "1.0.0", "Greets people (C example)");

static foxw_verdict greet(void *self, const foxw_message *msg, foxw_outcome *out) {
  foxw_str name = foxw_host->msg_payload(msg), greeting = {"hello", 5};
  char line[256];
  (void)self;
  if (name.len == 0) return foxw_reject(out, "empty payload: expected a name");
  foxw_host->config_string(foxw_ctx, "greeting", &greeting);
  snprintf(line, sizeof line, "%.*s, %.*s! (attempt %u)", (int)greeting.len, greeting.ptr,
           (int)name.len, name.ptr, (unsigned)foxw_host->msg_attempt(msg));
  foxw_log(foxw_host, foxw_ctx, FOXW_LOG_INFO, line);
  return FOXW_ACK;
}

FOXW_PLUGIN_HANDLERS(FOXW_HANDLER("greet", greet))
