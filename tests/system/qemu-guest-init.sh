#!/bin/busybox sh
# /init of the QEMU guest that tests/system/qemu_ipip.sh boots: Debian's kernel, which
# has IPIP (this machine's kernel has not), a busybox userland, iproute2's ip, the
# staged calico-underlayd and the bundled example as /etc/calico-underlay (node1).
#
# It builds node1's network (veth uplink eth0 192.168.10.11/24, default route,
# forwarding on, a vxlan.calico device), then, with the example's pools (ipipMode and
# vxlanMode Never), checks DESIGN.md §3.3 on the real IPIP fallback device:
#   1. tunl0 with Calico addresses only: --check plans both removals; --once asks the
#      kernel to delete tunl0, sees it kept, takes the Calico addresses off and sets
#      it down; vxlan.calico is deleted; a second --once and --check change nothing;
#   2. tunl0 with a foreign address too: --check reports it; --once takes only the
#      Calico address off and leaves the device up with the foreign one;
#   3. after `rmmod ipip`, --check, --once and the daemon (events, SIGHUP) never
#      bring tunl0 back (by-name lookups would: a control proves it here);
#   4. a fresh fallback tunl0 (down, no address) counts as removed: left alone;
#   5. the daemon against tunl0 drift: a Calico address put back is taken off (the
#      device set down, or left up for a foreign address), then the daemon is quiet.
# Checks never look a device up by name: /sys/class/net and dumps only.
#
# TAP-like lines go to the second serial port (ttyS1); the verdict leaves through
# isa-debug-exit (port 0xf4: 0 = pass, 1 = fail).

/bin/busybox mkdir -p /proc /sys /dev /run /tmp /sbin
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
/bin/busybox mount -t devtmpfs dev /dev
/bin/busybox --install -s /bin
# The kernel's module requests (request_module("netdev-tunl0")) run /sbin/modprobe.
ln -sf /bin/busybox /sbin/modprobe
export PATH=/usr/sbin:/bin:/sbin
# Debian's static busybox runs its own applets before anything in PATH: iproute2's ip
# (veth, vxlan, -o dumps) has to be named in full.
ip() { /usr/sbin/ip "$@"; }
stty -F /dev/ttyS1 -opost 2>/dev/null
exec 3>/dev/ttyS1

n=0
fails=0
out=/tmp/out
pass() { n=$((n + 1)); echo "ok $n - $*" >&3; }
fail() { n=$((n + 1)); fails=$((fails + 1)); echo "not ok $n - $*" >&3; }
expect() {
        desc=$1
        shift
        if "$@"; then pass "$desc"; else fail "$desc"; fi
}
note() { echo "# $*" >&3; }
finish() {
        if [ "$fails" -eq 0 ] && [ "$n" -gt 0 ]; then
                echo "RESULT pass ($n checks, guest up $(cut -d" " -f1 /proc/uptime)s)" >&3
                code='\000'
        else
                echo "RESULT fail ($fails of $n checks failed)" >&3
                code='\001'
        fi
        exec 3>&- # closing the tty waits until its output has drained
        # shellcheck disable=SC2059 # the format is the byte
        printf "$code" | dd of=/dev/port bs=1 seek=244 count=1 2>/dev/null
        poweroff -f
}
must() {
        "$@" >/tmp/must 2>&1 && return 0
        fail "setup: $* ($(cat /tmp/must))"
        finish
}

# State, never by name: a by-name lookup of a missing tunl0 loads ipip again.
present() { [ -e "/sys/class/net/$1" ]; }
absent() { ! present "$1"; }
is_up() { present "$1" && [ $(($(cat "/sys/class/net/$1/flags") & 1)) -eq 1 ]; }
is_down() { present "$1" && ! is_up "$1"; }
addrs() { ip -o -4 addr show | awk -v d="$1" '$2 == d { print $4 }'; }
has_addr() { addrs "$1" | grep -qx "$2"; }
lacks_addr() { ! has_addr "$1" "$2"; }
ipip_unloaded() { [ ! -e /sys/module/ipip ]; }
says() { grep -q -- "$1" "$out"; }
never_says() { ! grep -q -- "$1" "$out"; }
rc_is() { [ "$rc" = "$1" ]; }
wait_until() {
        i=0
        while ! "$@"; do
                i=$((i + 1))
                [ "$i" -ge 100 ] && return 1
                sleep 0.1
        done
}

# calico-underlayd MODE...: output in $out (and on ttyS1), exit status in $rc.
cu() {
        calico-underlayd "$@" >"$out" 2>&1
        rc=$?
        note "\$ calico-underlayd $* (exit $rc)"
        sed 's/^/#   /' "$out" >&3
}

note "kernel $(uname -r) up $(cut -d" " -f1 /proc/uptime)s; ipip available as a module: $(modinfo -n ipip 2>/dev/null || echo no)"

# ---- node1's network
must modprobe veth
must modprobe vxlan
must ip link set lo up
must ip link add eth0 type veth peer name lan0
must ip addr add 192.168.10.11/24 dev eth0
must ip link set eth0 up
must ip link set lan0 up
must ip route add default via 192.168.10.1 dev eth0
echo 1 >/proc/sys/net/ipv4/ip_forward
must ip link add vxlan.calico type vxlan id 4096 dstport 4789 dev eth0
must ip addr add 192.168.10.129/32 dev vxlan.calico
must ip link set vxlan.calico up

# ---- 1. tunl0 with Calico addresses only
must modprobe ipip
expect "modprobe ipip creates the fallback device tunl0" present tunl0
must ip addr add 192.168.10.130/32 dev tunl0 # inside pool underlay-az1
must ip addr add 10.233.90.0/32 dev tunl0    # node1's ipv4IPIPTunnelAddr
must ip link set tunl0 up

cu --check
expect "--check: exit 0 (ready)" rc_is 0
expect "--check: plans remove-tunnel tunl0" says "remove-tunnel tunl0"
expect "--check: plans remove-tunnel vxlan.calico" says "remove-tunnel vxlan.calico"
expect "--check: changed nothing (tunl0 up with its addresses, vxlan.calico there)" \
        eval 'is_up tunl0 && has_addr tunl0 192.168.10.130/32 && present vxlan.calico'
cu --check --format json
expect "--check --format json: the remove-tunnel action for tunl0" \
        grep -q '"action":"remove-tunnel"[^}]*"dev":"tunl0"' "$out"

cu --once
expect "--once: exit 0" rc_is 0
expect "--once: delete requested, the kernel kept tunl0" says "remove-tunnel tunl0.*kernel kept tunl0"
expect "--once: reports the Calico addresses removed and the device set down" \
        eval 'says "removed .*192.168.10.130/32" && says "removed .*10.233.90.0/32" && says "set down"'
expect "tunl0 is still there (only a module unload removes it)" present tunl0
expect "tunl0 is down" is_down tunl0
expect "tunl0 lost 192.168.10.130/32" lacks_addr tunl0 192.168.10.130/32
expect "tunl0 lost 10.233.90.0/32 (the node's IPIP tunnel address)" lacks_addr tunl0 10.233.90.0/32
expect "vxlan.calico is gone" absent vxlan.calico
expect "--once: says vxlan.calico was deleted" says "remove-tunnel vxlan.calico.*deleted"
expect "proxy_arp=1 on eth0" [ "$(cat /proc/sys/net/ipv4/conf/eth0/proxy_arp)" = 1 ]
ip route show table 252 proto 211 >/tmp/routes
expect "blackhole route for node1's block" grep -q "^blackhole 192.168.10.128/28" /tmp/routes
expect "route to node2's block via node2" grep -q "^192.168.10.144/28 via 192.168.10.12 dev eth0" /tmp/routes

cu --once
expect "a second --once: exit 0, no tunnel action (down without Calico addresses counts as removed)" \
        eval 'rc_is 0 && never_says remove-tunnel'
cu --check
expect "--check afterwards: exit 0, 0 changes" eval 'rc_is 0 && says "changes: 0"'

# ---- 2. someone else's address on tunl0 as well
must ip link set tunl0 up
must ip addr add 192.168.10.131/32 dev tunl0 # Calico's
must ip addr add 172.16.5.1/32 dev tunl0     # the site's own
cu --check
expect "--check: plans remove-tunnel tunl0" says "remove-tunnel tunl0"
expect "--check: reports the foreign address (tunnel-foreign-addresses, 172.16.5.1)" \
        says "tunnel-foreign-addresses.*172.16.5.1"
cu --once
expect "--once: exit 0" rc_is 0
expect "--once: Calico address removed, device kept up for the foreign one" \
        eval 'says "removed 192.168.10.131/32" && says "kept up: foreign addresses remain"'
expect "tunl0 lost 192.168.10.131/32" lacks_addr tunl0 192.168.10.131/32
expect "tunl0 keeps 172.16.5.1/32" has_addr tunl0 172.16.5.1/32
expect "tunl0 is still up" is_up tunl0
cu --once
expect "a second --once: no tunnel action, the foreign address untouched" \
        eval 'rc_is 0 && never_says remove-tunnel && has_addr tunl0 172.16.5.1/32 && is_up tunl0'
cu --check
expect "--check afterwards: exit 0, 0 changes, the foreign address reported" \
        eval 'rc_is 0 && says "changes: 0" && says "tunnel-foreign-addresses"'

# ---- 3. module unloaded: nothing of ours brings tunl0 back
must rmmod ipip
expect "rmmod ipip removes tunl0" absent tunl0
cu --check
expect "--check: exit 0, tunl0 not re-created, ipip not loaded" \
        eval 'rc_is 0 && absent tunl0 && ipip_unloaded'
cu --once
expect "--once: exit 0, tunl0 not re-created, ipip not loaded" \
        eval 'rc_is 0 && absent tunl0 && ipip_unloaded'
calico-underlayd >/tmp/daemon.log 2>&1 &
pid=$!
expect "daemon: first pass done" wait_until grep -q "reconciled:" /tmp/daemon.log
ip route del 192.168.10.144/28 table 252 proto 211
expect "daemon: repairs a deleted route (rtnetlink events handled)" \
        wait_until eval 'ip route show table 252 proto 211 | grep -q "^192.168.10.144/28"'
kill -HUP "$pid"
expect "daemon: SIGHUP reloads" wait_until grep -q "reloaded" /tmp/daemon.log
kill -TERM "$pid"
wait "$pid"
drc=$?
note "daemon log:"
sed 's/^/#   /' /tmp/daemon.log >&3
expect "daemon: exit 0 on SIGTERM" [ "$drc" = 0 ]
expect "daemon: tunl0 not re-created, ipip not loaded" eval 'absent tunl0 && ipip_unloaded'
# The control: this kernel does re-create tunl0 on a by-name lookup, so the checks
# above would have seen it.
ip link show tunl0 >/dev/null 2>&1
expect "control: a by-name lookup (ip link show tunl0) loads ipip and re-creates tunl0" present tunl0

# ---- 4. a fresh fallback tunl0: down, no address
cu --once
expect "--once: a down tunl0 without addresses is left alone" \
        eval 'rc_is 0 && never_says "remove-tunnel tunl0" && is_down tunl0'

# ---- 5. the daemon against tunl0 drift (Felix or a person putting an address back)
calico-underlayd >/tmp/daemon2.log 2>&1 &
pid=$!
passes() { grep -c "reconciled:" /tmp/daemon2.log; }
quiet() { # no further pass within a second: our own changes did not start a loop
        a=$(passes)
        sleep 1
        [ "$(passes)" = "$a" ]
}
expect "daemon: first pass done, tunl0 left alone" \
        eval 'wait_until grep -q "reconciled:" /tmp/daemon2.log && is_down tunl0'
must ip addr add 192.168.10.132/32 dev tunl0
must ip link set tunl0 up
expect "daemon: a Calico address put back on tunl0 is taken off and tunl0 set down" \
        wait_until eval 'is_down tunl0 && lacks_addr tunl0 192.168.10.132/32'
expect "daemon: the repair is logged as drift" grep -q "repaired drift: remove-tunnel tunl0.*kernel kept tunl0" /tmp/daemon2.log
expect "daemon: then quiet (the kept tunl0 does not start a loop)" quiet
must ip addr add 172.16.5.1/32 dev tunl0
must ip addr add 192.168.10.133/32 dev tunl0
must ip link set tunl0 up
expect "daemon: with a foreign address too, only the Calico one is taken off; tunl0 stays up" \
        wait_until eval 'lacks_addr tunl0 192.168.10.133/32 && has_addr tunl0 172.16.5.1/32 && is_up tunl0'
expect "daemon: then quiet" quiet
expect "daemon: no action failed" eval '! grep -q "failed:" /tmp/daemon2.log'
kill -TERM "$pid"
wait "$pid"
drc=$?
note "daemon log:"
sed 's/^/#   /' /tmp/daemon2.log >&3
expect "daemon: exit 0 on SIGTERM" [ "$drc" = 0 ]

finish
