#!/usr/bin/env bash
# Writes seeds for fuzz/redis_entry_fuzzer: replies of a real redis-server
# to the reads the Redis backend sends, after entries were added with
# redis-cli. Each seed is a mode byte 0 (wire) and the RESP bytes.
#
# usage: fuzz/seeds/redis_replies.sh OUT_DIR
set -euo pipefail
out=$(cd "$1" && pwd)
dir=$(mktemp -d)
port=$(( 20000 + RANDOM % 20000 ))
redis-server --port "$port" --save '' --appendonly no --dir "$dir" --daemonize yes \
  --pidfile "$dir/redis.pid" >/dev/null
trap 'kill "$(cat "$dir/redis.pid")" 2>/dev/null; rm -rf "$dir"' EXIT
cli() { redis-cli -p "$port" "$@" >/dev/null; }
for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
cli XGROUP CREATE jobs workers '$' MKSTREAM
cli XADD jobs '*' data '{"n":1}' content_type application/json priority 7 timestamp 1700000000000
cli XADD jobs '*' data $'bin\x01\xff' x-attempt 3 x-original-id 1700000000000-5 x-first-seen-at 2023-11-14T22:13:20.000Z
cli XADD jobs '*' data plain attempt 2 type t message_id m-1 correlation_id c reply_to r custom-header v
cli XADD jobs '*' payload only-a-payload priority -1
# Raw RESP replies, as hiredis reads them.
raw() {  # name, command...
  local name=$1; shift
  python3 - "$port" "$out/$name" "$@" <<'PY'
import socket, sys, time
port, path, args = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
cmd = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a.encode()), a.encode()) for a in args)
s = socket.create_connection(("127.0.0.1", port))
s.sendall(cmd)
time.sleep(0.3)
s.settimeout(0.5)
data = b""
try:
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
except socket.timeout:
    pass
open(path, "wb").write(b"\x00" + data)
PY
}
raw redis-xreadgroup XREADGROUP GROUP workers c1 COUNT 10 STREAMS jobs '>'
raw redis-xreadgroup-pending XREADGROUP GROUP workers c1 COUNT 10 STREAMS jobs 0
raw redis-xautoclaim XAUTOCLAIM jobs workers c2 0 0-0 COUNT 10
raw redis-xpending XPENDING jobs workers - + 10
raw redis-nogroup XREADGROUP GROUP nosuch c1 STREAMS jobs '>'
raw redis-empty XREADGROUP GROUP workers c1 COUNT 1 STREAMS jobs '>'
