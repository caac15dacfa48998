#!/bin/sh
# Install what building and testing calico-underlay needs on Debian 12 (idempotent).
# With an argument, one of the optional lists below instead.
set -eu
pkgs="meson ninja-build pkg-config gcc clang libclang-rt-14-dev libc6-dev libmnl-dev libnl-3-dev libnl-route-3-dev
libyaml-dev libsystemd-dev libcmocka-dev libcurl4-openssl-dev libjson-c-dev iproute2 iputils-ping procps valgrind
python3 systemd etcd-server etcd-client openssl util-linux mount python3-kubernetes python3-yaml bird"
# libclang-rt-14-dev: clang only recommends it, and it holds libFuzzer and the sanitizer
# runtimes tests/fuzz.sh links. procps: sysctl, used by the demo and the tests.
# util-linux (nsenter, setpriv, unshare) and mount: tests/daemon, tests/faults and
# tests/etcd; both come with every Debian system, named here all the same.
# etcd-server and etcd-client: tests/etcd runs its own etcd in each case's namespace
# (Debian's package may also start one as a service; the tests do not use it).
# python3-kubernetes: the official Kubernetes Python client; tests/kube proves against
# it (and against kubectl, when installed: Debian 12 has no kubectl package, the
# Kubernetes project's apt repository does) that its test API server speaks the real
# protocol. Those cases skip without the client.
# bird (BIRD 1.6, what Calico's calico-node runs): tests/integration/test_bird.py runs
# one per node namespace with Calico's configuration, each with its own socket, pid
# file and config (the service the package may start is not used).
# Optional lists, installed only by the tests/system/ scripts and tests/upstream
# themselves and tests/daemon/test_metrics.py (`sh tests/deps.sh nspawn|qemu|upstream|metrics`),
# never by default.
# upstream: FRR (zebra, staticd, vtysh) plays the upstream router; strace proves
# --upstream-routes opens no netlink socket. BIRD 2 (package bird2) conflicts with
# BIRD 1.6 (package bird, which the suite runs as Calico's BIRD), so it is not
# installed: its package and the one library it lacks (libssh-gcrypt-4) are
# downloaded and unpacked into $BIRD2_ROOT, and the test runs it from there.
BIRD2_ROOT=/var/cache/calico-underlay-test/bird2
case "${1:-}" in
nspawn) pkgs="debootstrap systemd-container iproute2 python3 dpkg-dev debhelper lintian" ;;
qemu) pkgs="qemu-system-x86 qemu-system-data busybox-static cpio kmod iproute2" ;;
upstream) pkgs="frr iproute2 iputils-ping strace util-linux" ;;
# promtool (in prometheus) and node_exporter for tests/daemon/test_metrics.py; both
# packages start a service of their own when installed, which the test does not use.
metrics) pkgs="prometheus prometheus-node-exporter" ;;
esac
bird2_unpacked() {
        [ "${1:-}" != upstream ] && return 0
        [ -x "$BIRD2_ROOT/usr/sbin/bird" ] && [ -e "$BIRD2_ROOT/usr/lib/x86_64-linux-gnu/libssh-gcrypt.so.4" ] && return 0
        [ "$(id -u)" -eq 0 ] || { echo "bird2 is not unpacked in $BIRD2_ROOT (run as root)" >&2; return 1; }
        dl=$(mktemp -d) && chmod 755 "$dl"
        (cd "$dl" && apt-get -q -o APT::Sandbox::User=root download bird2 libssh-gcrypt-4 >/dev/null) || {
                apt-get update -qq && (cd "$dl" && apt-get -q -o APT::Sandbox::User=root download bird2 libssh-gcrypt-4 >/dev/null)
        } || { rm -rf "$dl"; return 1; }
        mkdir -p "$BIRD2_ROOT"
        for deb in "$dl"/*.deb; do dpkg-deb -x "$deb" "$BIRD2_ROOT"; done
        rm -rf "$dl"
}
missing=""
for p in $pkgs; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
        bird2_unpacked "${1:-}"
        exit
fi
if [ "$(id -u)" -ne 0 ]; then
        echo "missing packages:$missing (run as root to install them)" >&2
        exit 1
fi
echo "installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
bird2_unpacked "${1:-}"
