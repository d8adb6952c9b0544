#!/bin/sh
# Builds the .deb (in a tree configured for /usr), checks that every file
# has its FHS place (and nothing else is in it), the control files and the
# maintainer scripts, unpacks it into a temp root and validates the
# installed default config with the installed daemon and plugins; as root,
# it also runs postinst/prerm/postrm in a chroot scratch root and checks the
# user, directories and permissions they leave.
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
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)
listing=$(dpkg-deb -c "$deb")
# Regular files and symlinks (not directories), as absolute paths.
files=$(echo "$listing" | awk '$1 !~ /^d/ { print $6 }' | sed 's|^\./|/|')
libdir=/usr/lib/$multiarch
sdkcmake=$libdir/cmake/FoxworkerPluginSDK
for f in /usr/sbin/foxworkerd /usr/bin/foxworkerctl /usr/bin/foxworker-plugin-run \
         /usr/libexec/foxworker/foxworker-child \
         $libdir/foxworker/plugins/libfoxworker_log.so \
         $libdir/foxworker/plugins/libfoxworker_exec.so \
         /usr/include/foxworker/plugin.h /usr/include/foxworker/plugin.hpp \
         $libdir/pkgconfig/foxworker-plugin-sdk.pc /usr/share/foxworker-plugin-sdk/plugin-exports.map \
         $sdkcmake/FoxworkerPluginSDKConfig.cmake $sdkcmake/FoxworkerPluginSDKConfigVersion.cmake \
         $sdkcmake/FoxworkerPluginSDKTargets.cmake $sdkcmake/FoxworkerPlugin.cmake \
         /usr/lib/systemd/system/foxworkerd.service /usr/lib/sysusers.d/foxworker.conf \
         /usr/lib/tmpfiles.d/foxworker.conf /etc/foxworker/foxworker.yaml \
         /usr/share/doc/foxworker/operations.md; do
  echo "$files" | grep -qx "$f" || fail "$f is not in the package"
done
# Every file has its FHS place: nothing outside these.
unexpected=$(echo "$files" | grep -vE "^(/usr/sbin/foxworkerd|/usr/bin/foxworkerctl|/usr/bin/foxworker-plugin-run|/usr/libexec/foxworker/foxworker-child|$libdir/foxworker/plugins/libfoxworker_[a-z_]+\.so|/usr/include/foxworker/plugin\.(h|hpp)|$libdir/pkgconfig/foxworker-plugin-sdk\.pc|/usr/share/foxworker-plugin-sdk/plugin-exports\.map|$sdkcmake/[A-Za-z-]+\.cmake|/usr/lib/systemd/system/foxworkerd\.service|/usr/lib/(sysusers|tmpfiles)\.d/foxworker\.conf|/etc/foxworker/foxworker\.yaml|/usr/share/doc/foxworker/[A-Za-z-]+\.md)$" || true)
[ -z "$unexpected" ] || fail "files outside their FHS places: $unexpected"
# Owners and modes: root everywhere; executables 0755, the config 0640.
echo "$listing" | awk '{ print $2 }' | grep -vqx 'root/root' && fail "a file not owned by root/root"
mode_of() { echo "$listing" | awk -v f=".$1" '$6 == f { print $1 }'; }
[ "$(mode_of /usr/sbin/foxworkerd)" = "-rwxr-xr-x" ] || fail "foxworkerd mode $(mode_of /usr/sbin/foxworkerd)"
[ "$(mode_of /usr/bin/foxworkerctl)" = "-rwxr-xr-x" ] || fail "foxworkerctl mode"
[ "$(mode_of /usr/bin/foxworker-plugin-run)" = "-rwxr-xr-x" ] || fail "foxworker-plugin-run mode"
[ "$(mode_of /usr/libexec/foxworker/foxworker-child)" = "-rwxr-xr-x" ] || fail "foxworker-child mode"
for p in log exec; do
  [ "$(mode_of $libdir/foxworker/plugins/libfoxworker_$p.so)" = "-rwxr-xr-x" ] || fail "plugin $p mode"
done
[ "$(mode_of /etc/foxworker/foxworker.yaml)" = "-rw-r-----" ] || fail "config mode $(mode_of /etc/foxworker/foxworker.yaml)"
[ "$(mode_of /usr/lib/systemd/system/foxworkerd.service)" = "-rw-r--r--" ] || fail "unit mode"

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
# The SDK's pkg-config file and CMake package point at the installed places.
# Both are relocatable: resolve them inside the unpacked root.
pc() { PKG_CONFIG_PATH="$root$libdir/pkgconfig" PKG_CONFIG_LIBDIR= pkg-config "$@" foxworker-plugin-sdk; }
if command -v pkg-config >/dev/null; then
  [ "$(readlink -f "$(pc --variable=includedir)")" = "$root/usr/include" ] || fail ".pc includedir"
  [ "$(readlink -f "$(pc --variable=plugindir)")" = "$root$libdir/foxworker/plugins" ] ||
    fail ".pc plugindir: $(pc --variable=plugindir)"
  pc --cflags | grep -q -- "-I" || fail ".pc Cflags"
  [ "$(readlink -f "$(pc --variable=exportmap)")" = "$root/usr/share/foxworker-plugin-sdk/plugin-exports.map" ] ||
    fail ".pc exportmap: $(pc --variable=exportmap)"
fi
grep -q "$libdir/foxworker/plugins" "$root$sdkcmake/FoxworkerPluginSDKConfig.cmake" ||
  grep -q 'lib/'"$multiarch"'/foxworker/plugins' "$root$sdkcmake/FoxworkerPluginSDKConfig.cmake" ||
  fail "CMake package: plugin dir"

# The maintainer scripts, run for real in a scratch root: the unpacked
# package plus the host's sh, coreutils, systemd-sysusers/-tmpfiles and the
# libraries they and foxworkerd load, entered with chroot (needs root; the
# rest of the test does not). postinst must create the user and directories
# and leave a config that the installed daemon accepts from its real paths.
if [ "$(id -u)" != 0 ] || ! unshare --mount --pid --fork --mount-proc true 2>/dev/null; then
  echo "SKIP (needs root and unshare): running the maintainer scripts in a scratch root"
  echo "PASS: $deb"
  exit 0
fi
scratch=$work/deb-scratch
rm -rf "$scratch"
mkdir -p "$scratch/usr/bin" "$scratch/usr/sbin" "$scratch/usr/lib" "$scratch/usr/lib64" \
  "$scratch/var/lib/dpkg/info" "$scratch/run" "$scratch/tmp" "$scratch/proc"
for l in bin sbin lib lib64; do ln -s usr/$l "$scratch/$l"; done
dpkg -x "$deb" "$scratch"
cp "$control/postinst" "$control/prerm" "$control/postrm" "$scratch/var/lib/dpkg/info/"
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$scratch/etc/passwd"
printf 'root:x:0:\n' >"$scratch/etc/group"
: >"$scratch/etc/shadow"
: >"$scratch/etc/gshadow"
chmod 0640 "$scratch/etc/shadow" "$scratch/etc/gshadow"
# copy_in FILE: FILE and the libraries it links, at the paths ldd names
# (/lib, /bin and /lib64 lead into usr/ as on the host).
copy_in() {
  for f in "$1" $(ldd "$1" 2>/dev/null | awk '/=> \// { print $3 } /^\t\/[^ ]+ \(/ { print $1 }'); do
    case $f in "$scratch"/*) continue ;; esac
    [ -e "$scratch$f" ] && continue
    mkdir -p "$scratch$(dirname "$f")"
    cp -L "$f" "$scratch$f"
  done
}
for b in sh chgrp chmod env systemd-sysusers systemd-tmpfiles; do
  p=$(command -v $b) || fail "$b not found on the host"
  copy_in "$p"
done
copy_in "$scratch/usr/sbin/foxworkerd"
for so in "$scratch$libdir"/foxworker/plugins/*.so; do copy_in "$so"; done
# chroot in a private mount and pid namespace with its own /proc
# (systemd-tmpfiles needs one); the mount goes away with the namespace.
in_root() {
  unshare --mount --pid --fork --root="$scratch" --mount-proc \
    /usr/bin/env -i PATH=/usr/sbin:/usr/bin "$@"
}
in_root /bin/sh /var/lib/dpkg/info/postinst configure "" >"$work/deb-postinst.out" \
  2>"$work/deb-postinst.err" ||
  { cat "$work/deb-postinst.out" "$work/deb-postinst.err"; fail "postinst configure failed in the scratch root"; }
# Besides sysusers saying what it created and the config check's verdict,
# postinst prints nothing (an invalid config would be reported here).
grep -v -e "^Creating \(group\|user\) 'foxworker'" -e '^/etc/foxworker/foxworker.yaml: config OK$' \
  "$work/deb-postinst.err" "$work/deb-postinst.out" >"$work/deb-postinst.rest" || true
[ ! -s "$work/deb-postinst.rest" ] ||
  { cat "$work/deb-postinst.out" "$work/deb-postinst.err"; fail "postinst complained"; }
cat "$work/deb-postinst.out" "$work/deb-postinst.err" | grep -q 'config OK' ||
  fail "postinst did not check the config"
grep -q '^foxworker:x:[0-9]*:[0-9]*:foxworker job daemon:/var/lib/foxworker:' "$scratch/etc/passwd" ||
  fail "postinst did not create the foxworker user"
grep -q '^foxworker:x:[0-9]*:' "$scratch/etc/group" || fail "postinst did not create the group"
uid=$(awk -F: '$1 == "foxworker" { print $3 }' "$scratch/etc/passwd")
gid=$(awk -F: '$1 == "foxworker" { print $3 }' "$scratch/etc/group")
[ "$(stat -c '%a %u %g' "$scratch/var/lib/foxworker")" = "750 $uid $gid" ] ||
  fail "/var/lib/foxworker is $(stat -c '%a %u %g' "$scratch/var/lib/foxworker")"
[ "$(stat -c '%a %u %g' "$scratch/etc/foxworker")" = "750 0 $gid" ] ||
  fail "/etc/foxworker is $(stat -c '%a %u %g' "$scratch/etc/foxworker")"
[ "$(stat -c '%a %u %g' "$scratch/etc/foxworker/foxworker.yaml")" = "640 0 $gid" ] ||
  fail "the config is $(stat -c '%a %u %g' "$scratch/etc/foxworker/foxworker.yaml")"
# The installed daemon accepts the installed config from the installed paths
# (plugin dir compiled in, no override).
in_root /usr/sbin/foxworkerd --check-config /etc/foxworker/foxworker.yaml >"$work/deb-check-root.out" 2>&1 ||
  { cat "$work/deb-check-root.out"; fail "foxworkerd --check-config failed in the scratch root"; }
# Running postinst again (reconfigure, upgrade from 0.0.1) changes nothing.
in_root /bin/sh /var/lib/dpkg/info/postinst configure 0.0.1 >/dev/null 2>&1 || fail "postinst twice"
[ "$(grep -c '^foxworker:' "$scratch/etc/passwd")" = 1 ] || fail "postinst made a second user"
in_root /bin/sh /var/lib/dpkg/info/prerm remove >/dev/null 2>&1 || fail "prerm remove"
in_root /bin/sh /var/lib/dpkg/info/postrm purge >/dev/null 2>&1 || fail "postrm purge"
[ -d "$scratch/var/lib/foxworker" ] || fail "purge must keep /var/lib/foxworker"
echo "maintainer scripts ran in $scratch"
echo "PASS: $deb"
