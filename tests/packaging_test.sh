#!/usr/bin/env bash
# The .deb as a user installs it: built with cpack from the build directory, unpacked into a
# scratch root (dpkg -x), its control fields and files checked, the unit verified by systemd.
#   tests/packaging_test.sh <build-dir>
set -euo pipefail
build=$(cd "$1" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "packaging_test: $*" >&2; exit 1; }

(cd "$work" && cpack -G DEB --config "$build/CPackConfig.cmake" >cpack.log 2>&1) ||
  { cat "$work/cpack.log" >&2; fail "cpack failed"; }
deb=$(ls "$work"/*.deb) || fail "no .deb produced"
[ "$(dpkg-deb -f "$deb" Package)" = nodelet ] || fail "Package field"
deps=$(dpkg-deb -f "$deb" Depends)
for d in containerd runc containernetworking-plugins libgrpc++1.51 libsystemd0; do
  echo "$deps" | grep -qw -- "$d" || fail "Depends lacks $d: $deps"
done
# Every Depends entry is a package Debian knows.
for d in $(echo "$deps" | tr ',' '\n' | awk '{print $1}'); do
  apt-cache show "$d" >/dev/null 2>&1 || fail "Depends names an unknown package: $d"
done
dpkg-deb --ctrl-tarfile "$deb" | tar -t | grep -q conffiles || fail "no conffiles"

root="$work/root"
dpkg -x "$deb" "$root"
[ -x "$root/usr/bin/nodelet" ] || fail "no /usr/bin/nodelet"
unit=""
for u in "$root"/usr/lib/systemd/system/nodelet.service "$root"/lib/systemd/system/nodelet.service; do
  [ -f "$u" ] && unit=$u
done
[ -n "$unit" ] || fail "no unit"
[ -f "$root/etc/nodelet/config.yaml" ] || fail "no /etc/nodelet/config.yaml"
ls "$root"/usr/share/nodelet/examples/*.yaml >/dev/null || fail "no examples"
[ -f "$root/usr/share/doc/nodelet/README.md" ] || fail "no README"

# The packaged binary runs, and reads the packaged config as the unit starts it.
"$root/usr/bin/nodelet" --help | grep -q -- "--kubeconfig" || fail "--help"
sed "s#/etc/kubernetes/manifests#$work/manifests#" "$root/etc/nodelet/config.yaml" >"$work/config.yaml"
mkdir -p "$work/manifests"
"$root/usr/bin/nodelet" check --config "$work/config.yaml" "$root"/usr/share/nodelet/examples/*.yaml \
  >/dev/null || fail "the examples do not pass nodelet check"

# systemd's own verdict on the unit (ExecStart must exist: point it into the scratch root).
if command -v systemd-analyze >/dev/null; then
  sed "s#/usr/bin/nodelet#$root/usr/bin/nodelet#" "$unit" >"$work/nodelet.service"
  out=$(systemd-analyze verify "$work/nodelet.service" 2>&1 || true)
  # Outside a systemd-booted machine verify may add notes about the manager itself; what counts
  # is that nothing names our unit.
  if echo "$out" | grep -q "nodelet.service"; then
    echo "$out" >&2
    fail "systemd-analyze verify found problems in the unit"
  fi
  echo "packaging_test: systemd-analyze verify: ok"
else
  fail "systemd-analyze not installed"
fi
echo "packaging_test: ok ($(basename "$deb"), $(du -k "$deb" | cut -f1) KiB)"
