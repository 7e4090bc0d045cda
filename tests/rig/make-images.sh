#!/usr/bin/env bash
# Builds nodelet's two test images as OCI archives, with no registry and no image builder:
#   localhost/nodelet/pause:1.0     the sandbox image (a static /pause from pause.c)
#   localhost/nodelet/busybox:1.35  busybox-static with its applets; default command: httpd on :80
# Output: $OUT/pause.oci.tar, $OUT/busybox.oci.tar. Reproducible: fixed mtimes, owners, gzip -n.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-/var/lib/nodelet-rig/images}
PAUSE_REF=${PAUSE_REF:-localhost/nodelet/pause:1.0}
APP_REF=${APP_REF:-localhost/nodelet/busybox:1.35}
BUSYBOX=/bin/busybox
if ! [ -x "$BUSYBOX" ] || LC_ALL=C ldd "$BUSYBOX" >/dev/null 2>&1; then
  echo "make-images: $BUSYBOX must be the static busybox (apt-get install busybox-static)" >&2
  exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$OUT"

digest() { sha256sum "$1" | cut -d' ' -f1; }
# blob FILE -> moves FILE into the blob store, prints "<digest> <size>"
blob() {
  local d s; d=$(digest "$1"); s=$(stat -c %s "$1")
  mv "$1" "$2/blobs/sha256/$d"; echo "$d $s"
}
tarit() { tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=gnu "$@"; }

# image NAME REF ROOTFS CONFIG  (CONFIG: the JSON body of the image config's "config" object)
image() {
  local name=$1 ref=$2 rootfs=$3 cfg=$4 lay="$work/$1-layout"
  mkdir -p "$lay/blobs/sha256"
  tarit -C "$rootfs" -cf "$work/$name.tar" .
  local diff_id; diff_id=$(digest "$work/$name.tar")
  gzip -n -6 <"$work/$name.tar" >"$work/$name.tar.gz"
  read -r ldg lsz < <(blob "$work/$name.tar.gz" "$lay")
  printf '{"architecture":"amd64","os":"linux","created":"1970-01-01T00:00:00Z","config":{%s},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
    "$cfg" "$diff_id" >"$work/$name.config"
  read -r cdg csz < <(blob "$work/$name.config" "$lay")
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' \
    "$cdg" "$csz" "$ldg" "$lsz" >"$work/$name.manifest"
  read -r mdg msz < <(blob "$work/$name.manifest" "$lay")
  # ctr import names the image from io.containerd.image.name.
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
    "$mdg" "$msz" "$ref" "$ref" >"$lay/index.json"
  echo '{"imageLayoutVersion":"1.0.0"}' >"$lay/oci-layout"
  tarit -C "$lay" -cf "$OUT/$name.oci.tar" oci-layout index.json blobs
}

env_path='"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]'
gcc -static -Os -s -o "$work/pause" "$here/pause.c"

r="$work/pause-root"; mkdir -p "$r"; install -m 0755 "$work/pause" "$r/pause"
image pause "$PAUSE_REF" "$r" "$env_path,\"Entrypoint\":[\"/pause\"],\"User\":\"65535:65535\",\"WorkingDir\":\"/\""

r="$work/busybox-root"
mkdir -p "$r"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,proc,sys,dev,run,root,var/www}
chmod 1777 "$r/tmp"
install -m 0755 "$BUSYBOX" "$r/bin/busybox"
"$BUSYBOX" --list-full | while read -r p; do
  case "$p" in ''|bin/busybox|linuxrc*) continue ;; esac
  mkdir -p "$r/$(dirname "$p")"; ln -sf /bin/busybox "$r/$p"
done
install -m 0755 "$work/pause" "$r/pause"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$r/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$r/etc/group"
: >"$r/etc/hosts"; : >"$r/etc/resolv.conf"
echo 'hello from nodelet busybox' >"$r/var/www/index.html"
image busybox "$APP_REF" "$r" "$env_path,\"Cmd\":[\"/bin/httpd\",\"-f\",\"-p\",\"80\",\"-h\",\"/var/www\"],\"WorkingDir\":\"/\""
echo "images: $OUT/pause.oci.tar ($PAUSE_REF), $OUT/busybox.oci.tar ($APP_REF)"
