#!/bin/sh
# Tests foxworker-plugin-run: builds the C test plugins with plain compiler
# flags against the SDK header (as a plugin author's CI does), runs the
# runner on them and checks its output and exit codes.
#
# usage: runner_test.sh RUNNER SDK_INCLUDE_DIR CC WORK_DIR
set -u

RUNNER=$1
SDK_INCLUDE=$2
CC=$3
WORK=$4
HERE=$(cd "$(dirname "$0")" && pwd)

mkdir -p "$WORK" || exit 1
FAILED=0
OUT=$WORK/out
ERR=$WORK/err

fail() {
  echo "FAIL: $CASE: $*"
  echo "--- stdout"; cat "$OUT"
  echo "--- stderr"; cat "$ERR"
  FAILED=1
}

# build NAME SOURCE [FLAGS...]
build() {
  name=$1
  src=$2
  shift 2
  "$CC" -std=c99 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror -fPIC -shared \
    -I"$SDK_INCLUDE" "$@" -o "$WORK/$name.so" "$HERE/$src" -lpthread || {
    echo "FAIL: cannot build $name"
    exit 1
  }
}

# run CASE EXPECTED_EXIT ARGS...: runs the runner, checks its exit code.
run() {
  CASE=$1
  expected=$2
  shift 2
  "$RUNNER" "$@" >"$OUT" 2>"$ERR" </dev/null
  code=$?
  [ "$code" -eq "$expected" ] || fail "exit code $code, expected $expected"
}

# has TEXT / lacks TEXT: a fixed string in stdout; err_has TEXT: in stderr.
has() { grep -qF -- "$1" "$OUT" || fail "stdout lacks: $1"; }
lacks() { ! grep -qF -- "$1" "$OUT" || fail "stdout has: $1"; }
err_has() { grep -qF -- "$1" "$ERR" || fail "stderr lacks: $1"; }

build test_plugin test_plugin.c
build future_plugin future_plugin.c
build future_needs_newer future_plugin.c -DFUTURE_NEEDS_NEWER_MINOR
build not_a_plugin not_a_plugin.c
build test_plugin_bare test_plugin.c -DRUNNER_TEST_BARE
build future_reserved future_plugin.c -DFUTURE_HANDLER_RESERVED=1
build future_many_keys future_plugin.c -DFUTURE_KEY_COUNT=4097
build future_wide_keys future_plugin.c -DFUTURE_KEY_SIZE=4097
build future_many_handlers future_plugin.c -DFUTURE_HANDLER_COUNT=4097
build future_wide_handlers future_plugin.c -DFUTURE_HANDLER_SIZE=8192
P=$WORK/test_plugin.so
BARE=$WORK/test_plugin_bare.so
C='{"endpoint":"db:5432"}'

# ---- verdicts ---------------------------------------------------------------
run ack 0 --handler ack --payload hello --config-json "$C" "$P"
has "plugin: runner_test 1.2.3 (needs ABI 1.1, built with SDK 1.1; runner ABI 1.1)"
has "handler: ack"
has "log: INFO [handle] ack: payload=hello"
has 'log: DEBUG [handle] a debug line\nwith a newline'
has "verdict: ACK"
has "retry_delay_ms: 0"
has "log: INFO [destroy] destroy"
has "log: INFO [shutdown] shutdown"
# Metrics: a negative counter update is ignored, as by the daemon.
has "metric: foxworker_plugin_runner_test_handled_total counter 1"
has "metric: foxworker_plugin_runner_test_last_size_bytes gauge 5"
has "metric: foxworker_plugin_runner_test_latency_seconds histogram count=2 sum=0.75"
# metric_define: same name and kind is the same metric; another kind, a bad
# name, or a handler thread are refused.
has "define again, same kind: same metric"
has 'is already defined as a counter, not as a gauge'
has 'invalid metric name "foxworker_plugin_runner_test_bad name"'

run log-level 0 --handler ack --log-level info --config-json "$C" "$P"
has "log: INFO [handle] ack: payload="
lacks "log: DEBUG"

run retry 1 --handler retry --config-json "$C" "$P"
has "verdict: RETRY"
has "reason: backend busy"
has "retry_delay_ms: 1500"

run reject 2 --handler reject --config-json "$C" "$P"
has "verdict: REJECT"
has "reason: bad payload"

run invalid-verdict 3 --handler invalid --config-json "$C" "$P"
has "verdict: invalid verdict 7 -> RETRY"
has "reason: plugin returned unknown verdict 7"

# ---- handler selection --------------------------------------------------------
run type-exact 1 --type retry --config-json "$C" "$P"
has "handler: retry"
run type-wildcard 2 --type unheard_of --config-json "$C" "$P"
has "handler: *"
has "reason: wildcard got type unheard_of"
run future-no-handler-for-type 2 --type third "$WORK/future_plugin.so"
has "verdict: REJECT"
has 'reason: unknown message type "third": plugin future has handlers first, second'
run unknown-handler 5 --handler nope --config-json "$C" "$P"
err_has 'plugin runner_test has no handler "nope" (it has: ack, retry,'

# ---- batch ------------------------------------------------------------------
run batch 2 --handler batch --payload one --config-json "$C" "$P"
has "handler: batch (batch)"
has "verdict: REJECT"
has "reason: batch of 1: one"
run batch-pending 3 --handler batch_pending --config-json "$C" "$P"
has "note: FOXW_PENDING is not allowed from a batch handler"
has "verdict: invalid verdict 4 -> RETRY"

# ---- deferred completion ----------------------------------------------------
run deferred 0 --handler defer --header x-delay-ms=50 --config-json "$C" "$P"
has "log: INFO [wait] completing after 50 ms (cancelled: no)"
has "verdict: ACK"
has "reason: completed from another thread"
has "retry_delay_ms: 250"
run deferred-reject 2 --handler defer --header x-verdict=3 --config-json "$C" "$P"
has "verdict: REJECT"
run deferred-invalid 3 --handler defer --header x-verdict=0 --config-json "$C" "$P"
has "verdict: invalid verdict 0 -> RETRY"
run deferred-timeout 4 --handler defer --header x-delay-ms=2000 --timeout 100ms \
  --config-json "$C" "$P"
has "verdict: TIMEOUT -> RETRY"
has "reason: timeout after 100ms"
has "complete() was not called within 100ms"
run sync-timeout 4 --handler slow --timeout 50ms --config-json "$C" "$P"
has "verdict: TIMEOUT -> RETRY"
has "the handler returned after its 50ms timeout"

# ---- ABI 1.1: what the producer set, header types, publish ids --------------
run typed-unset 0 --handler typed --header a=1 --config-json "$C" "$P"
has "log: INFO [handle] priority: unset -7"
has "log: INFO [handle] timestamp_ms: unset -7"
has "log: INFO [handle] delivery_mode: unset -7"
has "log: INFO [handle] content_type: unset -7"
has "log: INFO [handle] header 0 type 1: a"
has "log: INFO [handle] header 1 type 0: "
has "publish: queue=next message_type= content_type= correlation_id= message_id=my-id-1 app_id=billing content_encoding=gzip priority=0"
run typed-set 0 --handler typed --priority 0 --timestamp-ms 0 --delivery-mode 2 \
  --property cluster_id=c9 --header e= --null-header n --config-json "$C" "$P"
has "log: INFO [handle] priority: set 0"
has "log: INFO [handle] timestamp_ms: set 0"
has "log: INFO [handle] delivery_mode: set 2"
has "log: INFO [handle] cluster_id: c9"
has "log: INFO [handle] header 0 type 1: e"
has "log: INFO [handle] header 1 type 2: n"

# ---- the message ------------------------------------------------------------
printf 'from\nstdin' >"$WORK/payload.txt"
run message 0 --handler message --type mytype --property content_type=text/plain \
  --property correlation_id=c-1 --header x-trace=abc --header x-b=2 --attempt 3 \
  --priority 9 --id m-7 --queue jobs --timestamp-ms 123 --config-json "$C" "$P"
has "message: id=m-7 queue=jobs attempt=3 priority=9 timestamp=123 enqueued=yes content_type=text/plain type=mytype correlation_id=c-1 unknown_len=0"
has "header 0: x-trace=abc"
has "header 1: x-b=2"
has "x-trace: found, x-missing: absent"
has "deadline: ahead, cancelled: no"
has "wall clock: ok"
has "metric_define in a handler: metric_define: metrics can only be defined during init or create"
has "the handler completed message m-7 and also returned a verdict; the returned verdict wins"
run no-deadline 0 --handler message --timeout 0 --config-json "$C" "$P"
has "deadline: none, cancelled: no"
has "message: id=runner-1 queue=test attempt=1 priority=0"
# A timeout too long to count in nanoseconds from now is no deadline, not a
# wrapped one.
run huge-timeout 0 --handler message --timeout 100000000d --config-json "$C" "$P"
has "deadline: none, cancelled: no"
has "verdict: ACK"
"$RUNNER" --handler ack --payload-file - --config-json "$C" "$P" <"$WORK/payload.txt" \
  >"$OUT" 2>"$ERR" || { CASE=stdin; fail "exit code $?"; }
CASE=stdin has 'ack: payload=from\nstdin'
run payload-file 0 --handler ack --payload-file "$WORK/payload.txt" --config-json "$C" "$P"
has 'ack: payload=from\nstdin'

# ---- typed config -----------------------------------------------------------
run config-defaults 0 --handler config --config-json "$C" "$P"
has 'create: config {"endpoint":"db:5432","greeting":"hello","retries":3,"ratio":0.25,"verbose":true,"timeout":1500}'
has "config: endpoint=db:5432 greeting=hello retries=3 ratio=0.25 verbose=true timeout_ms=1500"
has "label(rc=1)="
has "tags(rc=1)= past_end=1"
has "typed: int(greeting)=2 string(nope)=1 double(retries)=0 duration(greeting)=2 count(greeting)=2 bool(greeting)=2"
printf '%s' '{"endpoint": 42, "retries": "7", "verbose": "off", "timeout": "2m",
  "ratio": 1, "tags": ["a", 2, true, "\u00e9\ud83d\ude00"], "labels": {"k": "v", "n": 1.50},
  "label": false}' >"$WORK/config.json"
run config-conversions 0 --handler config --config "$WORK/config.json" "$P"
has '"endpoint":"42","retries":7,"verbose":false,"timeout":120000,"ratio":1.0,'
has "config: endpoint=42 greeting=hello retries=7 ratio=1 verbose=false timeout_ms=120000"
has "label(rc=0)=false"
has "tags(rc=0)=a,2,true,é😀 past_end=1"
has "labels(rc=0)=k:v,n:1.50 past_end=1"
# A DOUBLE given as a string: the whole string read by strtod, finite.
run config-double-string 0 --handler config --config-json '{"endpoint":"x","ratio":"1.5e1"}' "$P"
has '"ratio":15.0'
has "ratio=15 "
run config-double-trailing 5 --handler ack --config-json '{"endpoint":"x","ratio":"1.5x"}' "$P"
err_has "config.ratio: must be a number"
run config-double-inf 5 --handler ack --config-json '{"endpoint":"x","ratio":"inf"}' "$P"
err_has "config.ratio: must be a number"
run config-double-empty 5 --handler ack --config-json '{"endpoint":"x","ratio":""}' "$P"
err_has "config.ratio: must be a number"
# config_item: only strings. With no schema the config arrives as written.
run config-item-not-string 0 --handler config \
  --config-json '{"tags":["a",2,true,null,{}],"labels":{"k":"v","n":1.5,"b":false}}' "$BARE"
has "tags(rc=0)=a,<rc=2>,<rc=2>,<rc=2>,<rc=2> past_end=1"
has "labels(rc=0)=k:v,<rc=2>,<rc=2> past_end=1"
run config-1.5s 0 --handler config --config-json '{"endpoint":"x","timeout":"1.5s","verbose":"true"}' "$P"
has "timeout_ms=1500"
has "verbose=true"
run config-missing 5 --handler ack "$P"
err_has "config: missing required key endpoint (a string)"
run config-unknown 5 --handler ack --config-json '{"endpoint":"x","nope":1}' "$P"
err_has "config.nope: unknown key (known: endpoint, greeting, label, labels, ratio, retries, tags, timeout, verbose)"
run config-wrong-int 5 --handler ack --config-json '{"endpoint":"x","retries":"many"}' "$P"
err_has "config.retries: must be an integer"
run config-wrong-duration 5 --handler ack --config-json '{"endpoint":"x","timeout":"30"}' "$P"
err_has 'config.timeout: must be a duration like 30s (invalid duration "30": a unit is required'
run config-fraction-ms 5 --handler ack --config-json '{"endpoint":"x","timeout":"0.5ms"}' "$P"
err_has "not a whole number of milliseconds"
run config-wrong-list 5 --handler ack --config-json '{"endpoint":"x","tags":"a"}' "$P"
err_has "config.tags: must be a list of strings"
run config-wrong-map 5 --handler ack --config-json '{"endpoint":"x","labels":{"a":[1]}}' "$P"
err_has "config.labels: must be a mapping of strings"
run config-not-json 64 --handler ack --config-json '{"endpoint":"x",}' "$P"
err_has "the config is not a JSON object: line 1, column 17: expected a string key"
run config-not-object 64 --handler ack --config-json '["x"]' "$P"
err_has "the config is not a JSON object"
run config-deep 64 --handler ack --config-json \
  '{"a":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}' "$P"
err_has "nested too deeply"
run config-bad-escape 64 --handler ack --config-json '{"endpoint":"\ud800"}' "$P"
err_has "high surrogate"

# ---- publish ----------------------------------------------------------------
run publish 0 --handler publish --payload hi --property correlation_id=corr-9 \
  --config-json "$C" "$P"
has "publish: queue=replies message_type=reply content_type= correlation_id=corr-9 message_id= app_id= content_encoding= priority=3 delay_ms=100 payload=hi"
has "publish-header: x-one=1"
has "publish-header: x-two=two"
has "empty queue: publish: the queue name is empty"
has "publish in create: -1 (publish is not available during init or create)"
has "log: INFO [init] publish in init: -1 (publish is not available during init or create)"
has "log: INFO [create] publish from a thread during create: -1 (publish is not available during init or create)"
# Once create has returned, any thread may publish, with no handler call
# before (here the message is rejected without one, then destroy lets the
# plugin's thread publish).
RUNNER_TEST_BG_PUBLISH=1 run publish-after-create 2 --type nobody "$BARE"
has 'reason: unknown message type "nobody": plugin runner_test has handlers'
has "publish: queue=background message_type= content_type= correlation_id= message_id= app_id= content_encoding= priority=0 delay_ms=0 payload=from a thread"
has "publish from a thread after create: 0 ()"

# ---- init and create --------------------------------------------------------
RUNNER_TEST_REFUSE_INIT=1 run init-refused 5 --handler ack --config-json "$C" "$P"
err_has "init refused: asked to refuse"
run create-refused 5 --handler ack --config-json '{"endpoint":"x","greeting":"refuse"}' "$P"
err_has 'create refused: greeting "refuse" refused'
has "log: INFO [shutdown] shutdown"

# ---- ABI: a later SDK's plugin ----------------------------------------------
# Targets 1.0 with every struct grown: loads, reads handlers and schema at
# the plugin's stride.
run future-targets-1.0 2 --handler second "$WORK/future_plugin.so"
has "plugin: future 9.9.9 (needs ABI 1.0, built with SDK 1.2; runner ABI 1.1)"
has "alpha=1 beta_ms=2000"
has "publish: queue=next"
has "reason: second"
run future-first 0 --handler first "$WORK/future_plugin.so"
has "reason: first"
run future-needs-newer 5 --handler first "$WORK/future_needs_newer.so"
err_has "needs plugin ABI 1.2, newer than this runner's 1.1"
# ---- the loader's refusals ----------------------------------------------------
run handler-reserved 5 --handler first "$WORK/future_reserved.so"
err_has "handler second has unknown flags"
run many-keys 5 --handler first "$WORK/future_many_keys.so"
err_has "config schema claims 4097 keys; the limit is 4096"
run wide-keys 5 --handler first "$WORK/future_wide_keys.so"
err_has "config schema entries are 4097 bytes apart; the limit is 4096"
run many-handlers 5 --handler first "$WORK/future_many_handlers.so"
err_has "declares 4097 handlers; the limit is 4096"
run wide-handlers 5 --handler first "$WORK/future_wide_handlers.so"
err_has "handler entries are 8192 bytes apart; the limit is 4096"
run not-a-plugin 5 "$WORK/not_a_plugin.so"
err_has "not a foxworker plugin (no foxworker_plugin_magic symbol"
run missing-file 5 "$WORK/absent.so"
err_has "cannot load:"

# ---- --json -----------------------------------------------------------------
run json 1 --json --handler retry --config-json "$C" "$P"
has '"plugin":{"name":"runner_test","version":"1.2.3"'
has '"handler":"retry","batch":false,"verdict":"RETRY","raw_verdict":2,"reason":"backend busy","retry_delay_ms":1500'
has '"logs":[{"level":"INFO","phase":"init","text":"publish in init: -1 ('
has '{"level":"INFO","phase":"create","text":"create: config {\"endpoint\":\"db:5432\"'
has '{"name":"foxworker_plugin_runner_test_handled_total","kind":"counter","help":"Messages","value":0.0}'
has '"error":null,"exit_code":1}'
lacks "verdict: RETRY"
run json-refused 5 --json "$WORK/future_needs_newer.so"
has '"error":"needs plugin ABI 1.2, newer than this runner'"'"'s 1.1'
has '"exit_code":5}'

# ---- usage ------------------------------------------------------------------
run help 0 --help
has "usage: foxworker-plugin-run [options] PLUGIN.so"
has "Exit status:"
has "Unlike foxworkerd it does not check the file's"
run no-plugin 64 --handler ack
err_has "no PLUGIN.so given"
run bad-option 64 --frobnicate "$P"
err_has "unknown option --frobnicate"
run bad-timeout 64 --timeout 30 "$P"
err_has 'invalid duration "30": a unit is required'
run bad-attempt 64 --attempt 0 "$P"
run bad-property 64 --property colour=red "$P"
run bad-header 64 --header novalue "$P"
run bad-delivery-mode 64 --delivery-mode 0 "$P"
err_has '--delivery-mode wants an integer 1..255, got "0"'
run bad-null-header 64 --null-header "" "$P"
err_has "--null-header wants a NAME"
run two-plugins 64 "$P" "$P"

if [ "$FAILED" -ne 0 ]; then
  echo "runner_test: FAILED"
  exit 1
fi
echo "runner_test: all passed"
