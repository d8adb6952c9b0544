#!/bin/sh
# Builds the .deb (in a tree configured for /usr), checks its files and
# maintainer scripts, unpacks it into a temp root and validates the
# installed default config with the installed daemon and plugins.
# usage: deb_package_test.sh SOURCE_DIR WORK_DIR
set -eu
src=$1
work=$2
build=$work/deb-build
mkdir -p "$build"
cmake -S "$src" -B "$build" -DCMAKE_INSTALL_PREFIX=/usr -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DFOXWORKER_BUILD_TESTS=OFF -DFOXWORKER_BUILD_BENCH=OFF >"$work/deb-cmake.log"
nice cmake --build "$build" -j"${FOXWORKER_TEST_JOBS:-2}" >"$work/deb-build.log" 2>&1 ||
  { tail -n 30 "$work/deb-build.log"; exit 1; }
rm -f "$build"/foxworker_*.deb
(cd "$build" && cpack -G DEB >"$work/deb-cpack.log" 2>&1) || { cat "$work/deb-cpack.log"; exit 1; }
deb=$(ls "$build"/foxworker_*.deb)
echo "built $deb"

fail() { echo "FAIL: $*"; exit 1; }
files=$(dpkg-deb -c "$deb" | awk '{ print $6 }' | sed 's|^\./|/|')
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)
for f in /usr/sbin/foxworkerd /usr/bin/foxworkerctl \
         /usr/lib/systemd/system/foxworkerd.service /usr/lib/sysusers.d/foxworker.conf \
         /usr/lib/tmpfiles.d/foxworker.conf /etc/foxworker/foxworker.yaml \
         /usr/lib/$multiarch/foxworker/plugins/libfoxworker_log.so \
         /usr/lib/$multiarch/foxworker/plugins/libfoxworker_exec.so \
         /usr/include/foxworker/plugin.h /usr/share/doc/foxworker/operations.md; do
  echo "$files" | grep -qx "$f" || fail "$f is not in the package"
done
echo "$files" | grep -q '^/usr/local' && fail "files under /usr/local"

control=$work/deb-control
rm -rf "$control"
dpkg-deb -e "$deb" "$control"
grep -q '^Package: foxworker$' "$control/control" || fail "package name"
grep -q '^Depends:.*libevent' "$control/control" || fail "no libevent in Depends"
grep -q '^Depends:.*systemd' "$control/control" || fail "no systemd in Depends"
grep -qx '/etc/foxworker/foxworker.yaml' "$control/conffiles" || fail "config is not a conffile"
for s in postinst prerm postrm; do
  [ -x "$control/$s" ] || fail "$s missing or not executable"
  sh -n "$control/$s" || fail "$s: syntax"
done
grep -q 'systemd-sysusers /usr/lib/sysusers.d/foxworker.conf' "$control/postinst" || fail "postinst sysusers"
grep -q 'systemd-tmpfiles --create /usr/lib/tmpfiles.d/foxworker.conf' "$control/postinst" || fail "postinst tmpfiles"
grep -q '/usr/sbin/foxworkerd --check-config' "$control/postinst" || fail "postinst check-config"

root=$work/deb-root
rm -rf "$root"
mkdir -p "$root"
dpkg -x "$deb" "$root"
grep -q '^ExecStart=/usr/sbin/foxworkerd --config' "$root/usr/lib/systemd/system/foxworkerd.service" ||
  fail "unit ExecStart"
grep -q 'state_dir: /var/lib/foxworker' "$root/etc/foxworker/foxworker.yaml" || fail "installed state_dir"
# sysusers and tmpfiles lines parse (against the temp root, touching nothing else).
systemd-sysusers --root="$root" --dry-run "$root/usr/lib/sysusers.d/foxworker.conf" >/dev/null 2>&1 ||
  systemd-sysusers --root="$root" "$root/usr/lib/sysusers.d/foxworker.conf" || fail "sysusers file"
FOXWORKER_PLUGIN_DIR="$root/usr/lib/$multiarch/foxworker/plugins" \
  "$root/usr/sbin/foxworkerd" --check-config "$root/etc/foxworker/foxworker.yaml" >"$work/deb-check.out" ||
  fail "installed foxworkerd --check-config failed on the installed config"
grep -q 'listen: "127.0.0.1:9090"' "$work/deb-check.out" || fail "admin endpoint not in the effective config"
"$root/usr/sbin/foxworkerd" --version
echo "PASS: $deb"
