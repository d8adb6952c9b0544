#!/bin/sh
# The unit's hardening, as systemd scores it: exposure 2.0 or lower.
# usage: unit_security_test.sh UNIT_FILE
set -eu
unit=$1
if ! systemd-analyze security --help 2>/dev/null | grep -q -- '--offline'; then
  echo "SKIP: this systemd-analyze has no --offline (needs systemd >= 250); cannot score $unit"
  exit 77
fi
out=$(systemd-analyze security --offline=true --no-pager "$unit" 2>&1) || true
echo "$out" | tail -n 3
score=$(echo "$out" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
if [ -z "$score" ]; then
  echo "FAIL: no exposure score in the output above"
  exit 1
fi
if awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }'; then
  echo "PASS: exposure $score <= 2.0"
else
  echo "FAIL: exposure $score > 2.0; the lines marked ✗ above say what to tighten"
  echo "$out" | grep '✗'
  exit 1
fi
