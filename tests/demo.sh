#!/bin/sh
# The main job on the bundled example, in a throwaway network namespace:
# a veth uplink "eth0" (192.168.10.11/24, node1 of the example cluster) and a
# vxlan.calico device; then --check, then --once, showing the host before and after.
# Usage: sudo tests/demo.sh
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
sh tests/deps.sh
[ -d build ] || meson setup build >/dev/null
ninja -C build >/dev/null
bin=$top/build/daemon/calico-underlayd
ns=cu-demo-$$
run=$(mktemp -d)
cleanup() {
        ip netns del "$ns" 2>/dev/null || true
        rm -rf "$run"
}
trap cleanup EXIT INT TERM
ip netns add "$ns"
nsx() { ip netns exec "$ns" "$@"; }
nsx ip link set lo up
nsx ip link add eth0 type veth peer name lan0
nsx ip addr add 192.168.10.11/24 dev eth0
nsx ip link set eth0 up
nsx ip link set lan0 up
nsx ip route add default via 192.168.10.1 dev eth0
nsx ip link add vxlan.calico type vxlan id 4096 dstport 4789 dev eth0
nsx ip addr add 192.168.10.129/32 dev vxlan.calico
nsx ip link set vxlan.calico up
nsx ip route add 10.233.96.0/26 via 192.168.10.12 dev eth0 proto bird

show() {
        echo "--- links"; nsx ip -br link
        echo "--- routes (main)"; nsx ip route show
        echo "--- policy rules"; nsx ip rule show
        echo "--- routes (table 252, ours)"; nsx ip route show table 252 2>/dev/null || true
        echo "--- eth0: proxy_arp=$(nsx cat /proc/sys/net/ipv4/conf/eth0/proxy_arp)" \
                "proxy_delay=$(nsx cat /proc/sys/net/ipv4/neigh/eth0/proxy_delay) (jiffies)" \
                "forwarding=$(nsx cat /proc/sys/net/ipv4/conf/eth0/forwarding)"
}
echo "=== host before"; show
echo; echo "=== calico-underlayd --check (changes nothing)"
nsx env RUNTIME_DIRECTORY="$run" "$bin" --config config/example/config.yaml --check || echo "(exit $?)"
echo; echo "=== the operator turns forwarding on, as the check asks"
nsx sysctl -q -w net.ipv4.ip_forward=1
echo; echo "=== calico-underlayd --once"
nsx env RUNTIME_DIRECTORY="$run" "$bin" --config config/example/config.yaml --once
echo; echo "=== host after"; show
echo "--- runtime record"; cat "$run/state"
echo; echo "=== a second --once changes nothing"
nsx env RUNTIME_DIRECTORY="$run" "$bin" --config config/example/config.yaml --once
