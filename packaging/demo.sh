#!/usr/bin/env bash
# nodelet's main job on a fresh Debian 12 machine, in one command:
#   sudo ./packaging/demo.sh         install dependencies, build, start a private containerd (the
#                                    test rig: runc, CNI bridge, locally built images), start
#                                    nodelet on the manifests in examples/, show the pods and the
#                                    web page they serve
#   sudo ./packaging/demo.sh stop    remove the pods, stop nodelet and containerd, clean up
# Manifests are copied to /var/lib/nodelet-demo/manifests: edit, add or remove files there and
# watch nodelet follow (`sudo build/release/agent/nodelet pods --root-dir /var/lib/nodelet-demo/root`).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo: run as root (sudo)" >&2; exit 1; }
DEMO=/var/lib/nodelet-demo
NODELET=build/release/agent/nodelet
PIDFILE=$DEMO/nodelet.pid

stop_demo() {
  if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    rm -f "$DEMO"/manifests/*
    echo "demo: removing the pods..."
    for _ in $(seq 1 100); do
      [ -z "$(ctr -a /run/nodelet-rig/containerd.sock -n k8s.io c ls -q 2>/dev/null)" ] && break
      sleep 0.2
    done
    kill -TERM "$(cat "$PIDFILE")"
    for _ in $(seq 1 50); do kill -0 "$(cat "$PIDFILE")" 2>/dev/null || break; sleep 0.1; done
  fi
  tests/rig/rig.sh teardown
  rm -rf "$DEMO"
  echo "demo: stopped and cleaned up"
}
if [ "${1:-}" = stop ]; then stop_demo; exit 0; fi

packaging/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release -j"$(nproc)" --target nodelet
NODELET_BIN=$NODELET tests/rig/rig.sh setup
mkdir -p "$DEMO/manifests"
cp examples/*.yaml "$DEMO/manifests/"
cat >"$DEMO/config.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
staticPodPath: $DEMO/manifests
containerRuntimeEndpoint: unix:///run/nodelet-rig/containerd.sock
cgroupRoot: /nodelet-rig
failSwapOn: false
readOnlyPort: 10255
address: 127.0.0.1
# The node server on https://127.0.0.1:10250 (self-signed): open to local clients for the demo
# (curl -sk https://127.0.0.1:10250/containerLogs/default/<pod>/<container>). A real node keeps
# the defaults: x509 client certificates or tokens, and Webhook authorization.
authentication: {anonymous: {enabled: true}}
authorization: {mode: AlwaysAllow}
YAML
if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
  echo "demo: nodelet already running (pid $(cat "$PIDFILE"))"
else
  setsid "$NODELET" --config "$DEMO/config.yaml" --root-dir "$DEMO/root" </dev/null >"$DEMO/nodelet.log" 2>&1 &
  echo $! >"$PIDFILE"
fi
echo "demo: nodelet started (pid $(cat "$PIDFILE"), log $DEMO/nodelet.log); waiting for the pods..."
for _ in $(seq 1 150); do
  [ "$("$NODELET" pods --root-dir "$DEMO/root" 2>/dev/null | grep -c ' Running ')" -ge 2 ] && break
  sleep 0.2
done
echo
"$NODELET" pods --root-dir "$DEMO/root"
echo
page="no answer"
for _ in $(seq 1 25); do  # httpd may take a moment after its container is running
  page=$(curl -s -m 1 http://127.0.0.1:8080/) && break
  page="no answer"; sleep 0.2
done
echo "demo: curl http://127.0.0.1:8080/  ->  $page"
echo "demo: the kubelet's read-only API: curl http://127.0.0.1:10255/pods"
echo "demo: edit $DEMO/manifests/*.yaml and run: sudo $NODELET pods --root-dir $DEMO/root"
echo "demo: stop everything with: sudo ./packaging/demo.sh stop"
