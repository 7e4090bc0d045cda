#!/usr/bin/env bash
# nodelet's containerd test rig: a private containerd 1.6 + runc + Debian CNI plugins, with its
# own root, state, socket, runc root, bridge, pod CIDR and cgroup parent, so it never touches a
# system containerd or another rig.
#
#   rig.sh setup      build + import the images, write configs, start containerd (idempotent)
#   rig.sh teardown   stop everything and remove all it left: shims, mounts, netns, veths, the
#                     bridge, iptables chains, IPAM state, CNI result cache, pod cgroups, files.
#                     Safe after kill -9 and safe to repeat; exits 1 if anything is left.
#   rig.sh restart    kill -9 containerd and start it again (pods survive, as in production)
#   rig.sh stop       stop containerd only (SIGTERM)
#   rig.sh start      start containerd only
#   rig.sh env        print the variables tests read
#
# Two settings are required on this VM (root lacks CAP_SYS_RESOURCE; no systemd as PID 1):
# restrict_oom_score_adj = true, and the cgroupfs driver (SystemdCgroup = false).
set -uo pipefail

RIG_ROOT=${RIG_ROOT:-/var/lib/nodelet-rig}
RIG_RUN=${RIG_RUN:-/run/nodelet-rig}
RIG_BRIDGE=${RIG_BRIDGE:-nodelet-rig0}
RIG_NET=${RIG_NET:-nodelet-rig}
RIG_CIDR=${RIG_CIDR:-10.86.0.0/16}
RIG_CGROUP=${RIG_CGROUP:-nodelet-rig}
CNI_BIN=${CNI_BIN:-/usr/lib/cni}
SOCK=$RIG_RUN/containerd.sock
PIDFILE=$RIG_RUN/containerd.pid
CONFIG=$RIG_ROOT/containerd.toml
LOG=$RIG_ROOT/containerd.log
CNI_CONF_DIR=$RIG_ROOT/cni/net.d
IPAM_DIR=$RIG_ROOT/cni/networks
IMAGES=$RIG_ROOT/images
here=$(cd "$(dirname "$0")" && pwd)

say() { echo "rig: $*"; }
alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }
our_pid() {  # the containerd pid from the pidfile, only if it really is our containerd
  local p; p=$(cat "$PIDFILE" 2>/dev/null) || return 1
  alive "$p" && tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q -- "--config $CONFIG" && echo "$p"
}
answering() { [ -S "$SOCK" ] && ctr -a "$SOCK" version >/dev/null 2>&1; }

write_config() {
  mkdir -p "$RIG_ROOT" "$RIG_RUN" "$CNI_CONF_DIR" "$IPAM_DIR"
  cat >"$CONFIG" <<TOML
version = 2
root = "$RIG_ROOT/containerd"
state = "$RIG_RUN/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$RIG_ROOT/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/nodelet/pause:1.0"
  netns_mounts_under_state_dir = true
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "/usr/bin/runc"
        Root = "$RIG_RUN/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN"
    conf_dir = "$CNI_CONF_DIR"
    max_conf_num = 1
TOML
  # Written before containerd starts. With NODELET_BIN (tests/run.sh sets it) the network is the
  # one nodelet writes (`nodelet cni-config`, the agent's own code), so every e2e test runs on it;
  # without, the conflist proven in ../shared/lab/containerd.
  rm -f "$CNI_CONF_DIR"/*.conflist
  if [ -n "${NODELET_BIN:-}" ] && [ -x "$NODELET_BIN" ]; then
    "$NODELET_BIN" cni-config --pod-cidr "$RIG_CIDR" --cni-conf-dir "$CNI_CONF_DIR" \
      --cni-network "$RIG_NET" --cni-bridge "$RIG_BRIDGE" --cni-ipam-dir "$IPAM_DIR" \
      --cni-bin-dir "$CNI_BIN" >/dev/null || return 1
    say "CNI network written by $NODELET_BIN"
    return 0
  fi
  cat >"$CNI_CONF_DIR/10-$RIG_NET.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "$RIG_NET",
  "plugins": [
    {"type": "bridge", "bridge": "$RIG_BRIDGE", "isGateway": true, "ipMasq": true,
     "hairpinMode": true,
     "ipam": {"type": "host-local", "dataDir": "$IPAM_DIR",
              "ranges": [[{"subnet": "$RIG_CIDR"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON
}

start() {
  if answering; then say "containerd already answering on $SOCK"; return 0; fi
  rm -f "$SOCK" "$SOCK.ttrpc"
  setsid containerd --config "$CONFIG" </dev/null >>"$LOG" 2>&1 &
  echo $! >"$PIDFILE"
  for _ in $(seq 1 300); do
    answering && { say "containerd $(cat "$PIDFILE") on $SOCK"; return 0; }
    alive "$(cat "$PIDFILE")" || break
    sleep 0.05
  done
  echo "rig: containerd did not start; last lines of $LOG:" >&2
  tail -n 30 "$LOG" >&2
  return 1
}

stop() {  # $1: signal (TERM or KILL)
  local p; p=$(our_pid) || return 0
  kill -"${1:-TERM}" "$p"
  for _ in $(seq 1 150); do alive "$p" || break; sleep 0.1; done
  alive "$p" && { kill -KILL "$p"; sleep 0.2; }
  rm -f "$PIDFILE"
}

setup() {
  write_config || return 1
  if [ ! -f "$IMAGES/busybox.oci.tar" ] || [ "$here/make-images.sh" -nt "$IMAGES/busybox.oci.tar" ]; then
    OUT=$IMAGES "$here/make-images.sh" || return 1
  fi
  start || return 1
  for i in pause busybox; do
    ctr -a "$SOCK" -n k8s.io images import --snapshotter overlayfs "$IMAGES/$i.oci.tar" >/dev/null || return 1
  done
  say "images: $(ctr -a "$SOCK" -n k8s.io images ls -q | grep -v '^sha256:' | tr '\n' ' ')"
}

teardown() {
  stop TERM
  rm -f "$SOCK" "$SOCK.ttrpc"
  # Containers and shims that outlived containerd (kill -9, crashed tests).
  local runc_root=$RIG_RUN/runc/k8s.io
  if [ -d "$runc_root" ]; then
    for id in $(runc --root "$runc_root" list -q 2>/dev/null); do
      runc --root "$runc_root" kill "$id" KILL 2>/dev/null
      runc --root "$runc_root" delete --force "$id" 2>/dev/null
    done
  fi
  for p in /proc/[0-9]*; do  # shims of this rig only: "-address <our socket>"
    case "$( { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null)" in  # processes may exit meanwhile
      *containerd-shim*"-address $SOCK "*) kill -KILL "${p#/proc/}" 2>/dev/null ;;
    esac
  done
  # Mounts: rootfs overlays, /dev/shm, netns bind mounts (deepest first, a few passes).
  for _ in 1 2 3; do
    local m; m=$(awk -v a="$RIG_RUN" -v b="$RIG_ROOT" 'index($2,a)==1 || index($2,b)==1 {print $2}' /proc/self/mounts | sort -r)
    [ -z "$m" ] && break
    for x in $m; do umount "$x" 2>/dev/null || umount -l "$x" 2>/dev/null; done
  done
  # Network: veths on our bridge, the bridge, our network's iptables rules and chains.
  if ip link show "$RIG_BRIDGE" >/dev/null 2>&1; then
    for v in $(ip -o link show master "$RIG_BRIDGE" | awk -F': ' '{print $2}' | cut -d@ -f1); do
      ip link del "$v" 2>/dev/null
    done
    ip link del "$RIG_BRIDGE" 2>/dev/null
  fi
  # iptables -S prints the CNI comment's quotes escaped: name: \"nodelet-rig\"
  local chains="" line target net_re="name: \\\\?\"$RIG_NET\\\\?\""
  while read -r line; do
    [ -n "$line" ] || continue
    target=$(sed -n 's/.* -j \(CNI-[A-Za-z0-9-]*\).*/\1/p' <<<"$line")
    eval "iptables -t nat -D ${line#-A }" 2>/dev/null
    case "$target" in CNI-HOSTPORT-*|"") ;; *) chains="$chains $target" ;; esac
  done < <(iptables -t nat -S 2>/dev/null | grep -E "$net_re")
  for c in $chains; do iptables -t nat -F "$c" 2>/dev/null; iptables -t nat -X "$c" 2>/dev/null; done
  # libcni's result cache is a fixed path shared by every CNI user: remove only our entries
  # (ours and containerd's per-sandbox loopback ones: their netns is under our run dir).
  grep -lE "\"networkName\":\"$RIG_NET\"|\"$RIG_RUN/" /var/lib/cni/results/* 2>/dev/null | xargs -r rm -f
  # Pod cgroups: containerd never removes pod-level cgroups (the kubelet does).
  for h in /sys/fs/cgroup/* /sys/fs/cgroup; do
    [ -d "$h/$RIG_CGROUP" ] && find "$h/$RIG_CGROUP" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
  local keep_images=""
  [ -d "$IMAGES" ] && keep_images=$(mktemp -d) && mv "$IMAGES" "$keep_images/"
  rm -rf "$RIG_RUN" "$RIG_ROOT"
  if [ -n "$keep_images" ]; then mkdir -p "$RIG_ROOT"; mv "$keep_images/images" "$IMAGES"; rmdir "$keep_images"; fi
  # Verify.
  local left=""
  grep -qE " ($RIG_RUN|$RIG_ROOT/)" /proc/self/mounts && left="$left mounts"
  ip link show "$RIG_BRIDGE" >/dev/null 2>&1 && left="$left bridge"
  iptables -t nat -S 2>/dev/null | grep -qE "$net_re" && left="$left iptables"
  ls -d /sys/fs/cgroup/*/"$RIG_CGROUP" >/dev/null 2>&1 && left="$left cgroups"
  if [ -n "$left" ]; then echo "rig: teardown left:$left" >&2; return 1; fi
  say "teardown complete"
}

case "${1:-}" in
  setup) setup ;;
  teardown) teardown ;;
  start) start ;;
  stop) stop TERM ;;
  restart) stop KILL; start ;;
  env)
    echo "NODELET_E2E_CRI_ENDPOINT=unix://$SOCK"
    echo "NODELET_E2E_RIG=$here/rig.sh"
    echo "NODELET_E2E_CGROUP_PARENT=/$RIG_CGROUP"
    echo "NODELET_E2E_POD_CIDR=$RIG_CIDR"
    echo "NODELET_E2E_BRIDGE=$RIG_BRIDGE"
    echo "NODELET_E2E_CNI_CONF_DIR=$CNI_CONF_DIR"
    echo "NODELET_E2E_CNI_NETWORK=$RIG_NET"
    echo "NODELET_E2E_CNI_BIN=$CNI_BIN"
    echo "NODELET_E2E_IPAM_DIR=$IPAM_DIR"
    echo "NODELET_E2E_APP_IMAGE=localhost/nodelet/busybox:1.35"
    echo "NODELET_E2E_PAUSE_IMAGE=localhost/nodelet/pause:1.0" ;;
  *) echo "usage: $0 setup|teardown|start|stop|restart|env" >&2; exit 2 ;;
esac
