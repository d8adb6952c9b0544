#!/usr/bin/env bash
# foxworkerctl works on a local backend's SQLite file: it must not load a
# broker client, libevent or libsystemd.
set -euo pipefail
ctl=$1
libs=$(ldd "$ctl")
echo "$libs"
if echo "$libs" | grep -E 'libhiredis|librabbitmq|libevent|libsystemd'; then
  echo "FAIL: $ctl links a library it does not use (above)" >&2
  exit 1
fi
echo "OK: $ctl links no broker client, libevent or libsystemd"
