#!/usr/bin/env bash
# The SDK as an outsider gets it: configures, builds and installs plugin-sdk/
# ALONE into an empty prefix, in a clean environment (env -i) and a private
# mount namespace where the daemon's dependencies (their headers, CMake
# packages and .pc files) are hidden. Then, against that prefix only (moved
# elsewhere first: it must be relocatable), builds tests/sdk/out_of_tree:
#  - with find_package(FoxworkerPluginSDK): the C plugin, installed by
#    foxworker_add_plugin() into the plugin project's own prefix, mode 0755;
#  - with plain pkg-config and cc (and c++ for the C++ plugin), the commands
#    docs/plugin-guide.md gives;
#  - the C++ plugin (plugin.hpp) with find_package.
# Every plugin must export exactly foxworker_plugin_magic and
# foxworker_plugin_init_v1. Last, the daemon core (run_plugin) runs each.
#
# usage: sdk_install_test.sh BUILD_DIR SOURCE_DIR RUN_PLUGIN
# Needs root and `unshare -m`; without them it fails, it never skips.
set -euo pipefail

if [ "${1:-}" != --in-namespace ]; then
  [ "$#" -eq 3 ] || { echo "usage: $0 BUILD_DIR SOURCE_DIR RUN_PLUGIN" >&2; exit 2; }
  if [ "$(id -u)" != 0 ] || ! unshare --mount --propagation private true; then
    echo "FAIL: needs root and unshare -m, to hide the daemon's dependencies from the SDK build" >&2
    exit 1
  fi
  exec unshare --mount --propagation private -- bash "$0" --in-namespace "$@"
fi
shift
build_dir=$1 source_dir=$2 run_plugin=$3
: "$build_dir"  # the SDK is configured from source_dir alone, never from the daemon's build

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"  # the daemon loads plugins only from directories others cannot write
mkdir "$work/home" "$work/empty"
fail() { echo "FAIL: $*" >&2; exit 1; }
# step LOG CMD...: runs CMD with its output in $work/LOG, shown on failure.
step() {
  local log=$work/$1
  shift
  "$@" >"$log" 2>&1 || { cat "$log" >&2; fail "$* (see above)"; }
}
# A clean environment: nothing from the caller's (no CMAKE_*, CC, CFLAGS,
# PKG_CONFIG_PATH, ccache), only what each command is given.
clean() { env -i PATH=/usr/bin:/bin HOME="$work/home" LC_ALL=C "$@"; }

# ---- Hide the daemon's dependencies, in this mount namespace only.
hidden=()
hide() {
  local path
  for path in "$@"; do
    if [ -d "$path" ]; then
      mount --bind "$work/empty" "$path"
    elif [ -f "$path" ]; then
      mount --bind /dev/null "$path"
    else
      continue
    fi
    hidden+=("$path")
  done
}
include_dirs=$(for lang in c c++; do
  echo | cc -E -v -x "$lang" - 2>&1 | sed -n '/^#include <...> search starts here:$/,/^End of search list\.$/p' |
    sed -n 's/^ //p'
done | sort -u)
for dir in $include_dirs; do
  hide "$dir"/{glog,gflags,rapidjson,hiredis,event2,yaml-cpp,gtest,gmock,systemd,benchmark} \
       "$dir"/amqp*.h "$dir"/sqlite3*.h "$dir"/{event,evdns,evhttp,evrpc,evutil,yaml}.h
done
# Every third-party CMake package (the SDK needs none) and the deps' .pc files.
hide /usr/lib/cmake/* /usr/lib/*/cmake/* /usr/share/cmake/*
for dir in /usr/lib/pkgconfig /usr/lib/*/pkgconfig /usr/share/pkgconfig; do
  hide "$dir"/{benchmark,gflags,hiredis,hiredis_ssl,libglog,librabbitmq,libsystemd,RapidJSON,sqlite3,yaml-cpp}.pc \
       "$dir"/gtest*.pc "$dir"/gmock*.pc "$dir"/libevent*.pc
done
for dep in glog/logging.h rapidjson/document.h hiredis/hiredis.h event2/event.h yaml-cpp/yaml.h \
           gtest/gtest.h systemd/sd-daemon.h; do
  if printf '#include <%s>\n' "$dep" | clean c++ -fsyntax-only -x c++ - 2>/dev/null; then
    fail "<$dep> is still on the compiler's include path"
  fi
done
for path in "${hidden[@]}"; do
  if [ -d "$path" ]; then [ -z "$(ls -A "$path")" ]; else [ ! -s "$path" ]; fi ||
    fail "$path is not hidden"
done
clean pkg-config --exists libglog 2>/dev/null && fail "pkg-config still finds libglog"
echo "hid ${#hidden[@]} paths of the daemon's dependencies"

# ---- The SDK alone, into an empty prefix, C compiler only.
sdk=$work/sdk-prefix
mkdir "$sdk"
step sdk-configure.log clean cmake -S "$source_dir/plugin-sdk" -B "$work/sdk-build" \
  -DCMAKE_INSTALL_PREFIX="$sdk"
step sdk-build.log clean cmake --build "$work/sdk-build"
step sdk-install.log clean cmake --install "$work/sdk-build"
grep -q '^CMAKE_CXX_COMPILER:' "$work/sdk-build/CMakeCache.txt" && fail "the SDK build enabled C++"
# Relocatable: nothing may point at the prefix it was installed to.
mv "$sdk" "$work/sdk"
sdk=$work/sdk
grep -rqF "$work/sdk-prefix" "$sdk" && fail "the installed SDK names its install prefix: $(grep -rlF "$work/sdk-prefix" "$sdk")"
for f in include/foxworker/plugin.h include/foxworker/plugin.hpp; do
  [ -f "$sdk/$f" ] || fail "$f not installed"
done
pc_file=$(cd "$sdk" && find . -name foxworker-plugin-sdk.pc | sed 's|^\./||')
[ -n "$pc_file" ] || fail "no foxworker-plugin-sdk.pc installed"
pc_dir=$(dirname "$pc_file")
# In <libdir>/pkgconfig: one of the directories pkg-config searches by default
# for the prefix /usr (so also for a system prefix), not share/pkgconfig.
case $pc_dir in lib*/pkgconfig) ;; *) fail "the .pc file is in $pc_dir, not <libdir>/pkgconfig" ;; esac
clean pkg-config --variable=pc_path pkg-config | tr ':' '\n' | grep -qx "/usr/$pc_dir" ||
  fail "pkg-config does not search /usr/$pc_dir by default"
echo "SDK installed alone; pkg-config file in $pc_dir"

# Exactly the two ABI functions among the dynamic symbols, of any type.
check_exports() {
  local exported
  exported=$(nm -D --defined-only "$1" | awk 'NF { print $NF }' | sort | tr '\n' ' ')
  [ "$exported" = "foxworker_plugin_init_v1 foxworker_plugin_magic " ] ||
    fail "$1 exports more or less than the two ABI functions: $exported"
}

# ---- find_package: build, export check, install into the plugin's prefix.
plugins=$work/plugin-prefix
step c-configure.log clean cmake -S "$source_dir/tests/sdk/out_of_tree" -B "$work/c" \
  -DCMAKE_PREFIX_PATH="$sdk" -DCMAKE_INSTALL_PREFIX="$plugins"
step c-build.log clean cmake --build "$work/c"
check_exports "$work/c/libfoxworker_greeter.so"
step c-install.log clean cmake --install "$work/c"
installed=$(find "$plugins" -name libfoxworker_greeter.so)
[ -n "$installed" ] || fail "foxworker_add_plugin() did not install into the plugin's prefix $plugins"
case ${installed#"$plugins"/} in
  lib*/foxworker/plugins/libfoxworker_greeter.so) ;;
  *) fail "installed as $installed, not in <prefix>/<libdir>/foxworker/plugins" ;;
esac
[ "$(stat -c %a "$installed")" = 755 ] || fail "installed with mode $(stat -c %a "$installed"), not 0755"
[ -z "$(find "$sdk" -name '*.so')" ] || fail "a plugin was installed into the SDK's prefix"
echo "find_package: $installed, mode 0755, two exports"

# ---- pkg-config and the compiler alone, as docs/plugin-guide.md says.
pc() { clean PKG_CONFIG_PATH="$sdk/$pc_dir" pkg-config "$@" foxworker-plugin-sdk; }
[ "$(pc --path)" = "$sdk/$pc_file" ] || fail "pkg-config found $(pc --path), not $sdk/$pc_file"
[ "$(readlink -f "$(pc --variable=includedir)")" = "$sdk/include" ] || fail ".pc includedir"
# The least a user can write: the .pc file alone must limit the exports.
mkdir "$work/pc"
# shellcheck disable=SC2016 # $(pkg-config) expands in the clean environment
(cd "$work/pc" && step pc-build.log clean PKG_CONFIG_PATH="$sdk/$pc_dir" sh -c \
  'cc -shared -fPIC -o libfoxworker_greeter.so "$1" $(pkg-config --cflags --libs foxworker-plugin-sdk)' \
  sh "$source_dir/tests/sdk/out_of_tree/greeter.c")
check_exports "$work/pc/libfoxworker_greeter.so"
echo "pkg-config: two exports"

# ---- C++ (plugin.hpp): both ways, where the export map matters.
step cxx-configure.log clean cmake -S "$source_dir/tests/sdk/out_of_tree" -B "$work/cxx" \
  -DCMAKE_PREFIX_PATH="$sdk" -DGREETER_CXX=ON
step cxx-build.log clean cmake --build "$work/cxx" --target greeter_cpp
check_exports "$work/cxx/libfoxworker_greeter_cpp.so"
# shellcheck disable=SC2016
(cd "$work/pc" && step pc-cxx-build.log clean PKG_CONFIG_PATH="$sdk/$pc_dir" sh -c \
  'c++ -std=c++17 -shared -fPIC -o libfoxworker_greeter_cpp.so "$1" $(pkg-config --cflags --libs foxworker-plugin-sdk)' \
  sh "$source_dir/tests/sdk/out_of_tree/greeter_cpp.cc")
check_exports "$work/pc/libfoxworker_greeter_cpp.so"
echo "C++: two exports with find_package and with pkg-config"

# ---- The daemon core loads and runs each.
for plugin in "$installed" "$work/pc/libfoxworker_greeter.so" "$work/cxx/libfoxworker_greeter_cpp.so"; do
  "$run_plugin" "$plugin" || fail "run_plugin $plugin"
done
echo "PASS"
