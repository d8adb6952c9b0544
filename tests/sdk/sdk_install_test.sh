#!/usr/bin/env bash
# Installs foxworker into a temporary prefix, builds tests/sdk/out_of_tree
# against the installed SDK only (find_package), and runs the plugin.
set -euo pipefail
build_dir=$1 source_dir=$2 run_plugin=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build_dir" --prefix "$work/prefix" >/dev/null
test -f "$work/prefix/include/foxworker/plugin.h"
cmake -S "$source_dir/tests/sdk/out_of_tree" -B "$work/build" \
  -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/build" >/dev/null
plugin="$work/build/libfoxworker_greeter.so"
test -f "$plugin"
# Only the two ABI symbols are exported.
exported=$(nm -D --defined-only "$plugin" | awk '$2 == "T" {print $3}' | sort | tr '\n' ' ')
[ "$exported" = "foxworker_plugin_init_v1 foxworker_plugin_magic " ] || {
  echo "unexpected exports: $exported" >&2; exit 1; }
# The pkg-config file works too.
PKG_CONFIG_PATH="$work/prefix/share/pkgconfig" pkg-config --cflags foxworker-plugin-sdk | grep -q "prefix/share/pkgconfig/../../include"
chmod 755 "$work" "$work/build"
"$run_plugin" "$plugin"
