#!/usr/bin/env python3
"""Daemon latency and idle-cost benchmark (not a test: it asserts nothing).

How to run (root; it works in a throwaway network namespace and never touches the
host's network):

    meson setup /tmp/b-rel /path/to/calico-underlay -Dbuildtype=release   # no sanitizers
    ninja -C /tmp/b-rel
    sudo DAEMON=/tmp/b-rel/daemon/calico-underlayd python3 tests/daemon/bench_daemon.py \
        [--trials 50] [--idle 60] [--watchdog-usec USEC]

It starts calico-underlayd in a namespace (veth uplink eth0, one underlay pool, two
block routes, as tests/daemon/test_daemon.py does) and prints, for --trials trials
each, the median and worst of:

  route repair    one of our block routes deleted (RTM_DELROUTE sent by this script)
                  -> the daemon re-adds it (from just before the request to the
                  RTM_NEWROUTE seen on an rtnetlink socket of this script)
  proxy_arp       net.ipv4.conf.eth0.proxy_arp written to 0 -> the daemon sets 1
                  (from just before the write to the RTM_NEWLINK its RTM_SETLINK
                  raises, confirmed by reading the value back)
  config add      a resource file renamed into place with a new block -> its route
                  appears (includes the daemon's 200 ms debounce of file events)
  config remove   that file deleted -> the route is gone

and then the daemon's CPU time (utime + stime from /proc/PID/stat) over an idle
period of --idle seconds (default 60), in clock ticks and milliseconds.
A sanitizer build (ASan) works too but inflates every figure.
"""
import argparse
import os
import select
import signal
import socket
import statistics
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cudaemon as cu  # noqa: E402

RTM_NEWLINK, RTM_NEWROUTE, RTM_DELROUTE = 16, 24, 25
RTMGRP_LINK, RTMGRP_IPV4_ROUTE = 0x1, 0x40
RTA_DST, IFLA_IFNAME = 1, 3


def attrs(buf, off, end):
    while off + 4 <= end:
        alen, atype = struct.unpack_from("HH", buf, off)
        if alen < 4:
            break
        yield atype & 0x3FFF, buf[off + 4:off + alen]
        off += (alen + 3) & ~3


class Monitor:
    """An rtnetlink socket in the current network namespace (links and IPv4 routes).
    events() yields (monotonic ns, kind, key): ("route+"/"route-", "a.b.c.d/len",
    protocol) and ("link", ifname, None)."""

    def __init__(self):
        self.s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.s.bind((0, RTMGRP_LINK | RTMGRP_IPV4_ROUTE))
        self.s.setblocking(False)

    def read(self, timeout):
        """Events received within timeout seconds (at least one datagram's worth, or none)."""
        r, _, _ = select.select([self.s], [], [], max(timeout, 0))
        if not r:
            return []
        out = []
        while True:
            try:
                buf = self.s.recv(1 << 16)
            except BlockingIOError:
                return out
            t = time.monotonic_ns()
            off = 0
            while off + 16 <= len(buf):
                mlen, mtype = struct.unpack_from("IH", buf, off)
                if mlen < 16:
                    break
                body = off + 16
                if mtype in (RTM_NEWROUTE, RTM_DELROUTE):
                    fam, dlen, _, _, _, proto, _, _ = struct.unpack_from("BBBBBBBB", buf, body)
                    dst = "0.0.0.0"
                    for at, val in attrs(buf, body + 12, off + mlen):
                        if at == RTA_DST and fam == socket.AF_INET:
                            dst = socket.inet_ntoa(val)
                    kind = "route+" if mtype == RTM_NEWROUTE else "route-"
                    out.append((t, kind, f"{dst}/{dlen}", proto))
                elif mtype == RTM_NEWLINK:
                    name = None
                    for at, val in attrs(buf, body + 16, off + mlen):
                        if at == IFLA_IFNAME:
                            name = val.rstrip(b"\0").decode()
                    out.append((t, "link", name, None))
                off += (mlen + 3) & ~3

    def wait(self, pred, timeout=10.0):
        """The time (ns) of the first event satisfying pred."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for ev in self.read(end - time.monotonic()):
                if pred(ev):
                    return ev[0]
        raise TimeoutError("no matching event")

    def quiet(self, period=0.1, timeout=5.0):
        """Until no event for `period` seconds: the daemon's confirmation pass is over."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if not self.read(period):
                return


def del_route(dst):
    """RTM_DELROUTE for dst in the main table, straight over rtnetlink (no process to
    start between the clock reading and the deletion). Waits for the kernel's ack."""
    addr, plen = dst.split("/")
    rtm = struct.pack("BBBBBBBBI", socket.AF_INET, int(plen), 0, 0, 254, 0, 255, 0, 0)  # scope NOWHERE
    rta = struct.pack("HH", 8, RTA_DST) + socket.inet_aton(addr)
    body = rtm + rta
    hdr = struct.pack("IHHII", 16 + len(body), RTM_DELROUTE, 0x1 | 0x4, 1, 0)  # REQUEST|ACK
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0) as s:
        s.bind((0, 0))
        t0 = time.monotonic_ns()
        s.send(hdr + body)
        ack = s.recv(4096)
    err = struct.unpack_from("i", ack, 16)[0] if struct.unpack_from("H", ack, 4)[0] == 2 else 0
    if err:
        raise OSError(-err, f"deleting {dst}: {os.strerror(-err)}")
    return t0


def read_proxy_arp():
    with open("/proc/sys/net/ipv4/conf/eth0/proxy_arp") as f:
        return int(f.read())


def write_proxy_arp(v):
    with open("/proc/sys/net/ipv4/conf/eth0/proxy_arp", "w") as f:
        f.write(f"{v}\n")


def route_repair(mon, dst):
    mon.quiet()
    t0 = del_route(dst)
    t1 = mon.wait(lambda e: e[1] == "route+" and e[2] == dst and e[3] == cu.PROTO)
    return (t1 - t0) / 1e6


def proxy_arp_repair(mon):
    mon.quiet()
    t0 = time.monotonic_ns()
    write_proxy_arp(0)
    t1 = mon.wait(lambda e: e[1] == "link" and e[2] == "eth0" and read_proxy_arp() == 1)
    return (t1 - t0) / 1e6


def config_change(fx, mon, add):
    mon.quiet()
    path = fx.path("40-bench.yaml")
    dst = cu.EXTRA_BLOCK
    t0 = time.monotonic_ns()
    if add:
        cu.write_renamed(path, cu.affinity("node2", dst))
        t1 = mon.wait(lambda e: e[1] == "route+" and e[2] == dst and e[3] == cu.PROTO)
    else:
        os.unlink(path)
        t1 = mon.wait(lambda e: e[1] == "route-" and e[2] == dst)
    return (t1 - t0) / 1e6


def report(name, samples):
    print(f"{name:<16} n={len(samples):<4} median {statistics.median(samples):8.2f} ms   "
          f"worst {max(samples):8.2f} ms   best {min(samples):8.2f} ms")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=50, help="trials per measurement (default 50)")
    ap.add_argument("--idle", type=float, default=60.0, help="idle period for the CPU figure, s (default 60)")
    ap.add_argument("--watchdog-usec", type=int, default=0, help="run with WATCHDOG_USEC (default: off)")
    args = ap.parse_args()
    cu.require_root()
    cu.install_signal_cleanup()
    print(f"daemon: {cu.DAEMON}")
    ns = cu.Netns()
    fx = cu.Fixture()
    d = None
    try:
        ns.setup_uplink()
        cu.enter_netns(ns.name)  # this thread: /proc/sys/net and new sockets are the namespace's
        mon = Monitor()
        d = cu.Daemon(ns, fx, log_level="info", watchdog_usec=args.watchdog_usec or None)
        d.wait_ready()
        d.notify.wait_status(lambda s: s.startswith("underlay: 1 pool, proxy_arp on eth0, 2 block routes"))
        cu.wait_until(lambda: read_proxy_arp() == 1, what="proxy_arp=1")
        mon.quiet(0.3)
        res = {"route repair": [], "proxy_arp": [], "config add": [], "config remove": []}
        for i in range(args.trials):
            res["route repair"].append(route_repair(mon, cu.OWN_BLOCK if i % 2 else cu.PEER_BLOCK))
        for _ in range(args.trials):
            res["proxy_arp"].append(proxy_arp_repair(mon))
        for _ in range(args.trials):
            res["config add"].append(config_change(fx, mon, True))
            res["config remove"].append(config_change(fx, mon, False))
        for name, samples in res.items():
            report(name, samples)
        mon.quiet(0.5)
        hz = os.sysconf("SC_CLK_TCK")
        before = d.cpu_ticks()
        t0 = time.monotonic()
        time.sleep(args.idle)  # the measurement: nothing happens for args.idle seconds
        ticks = d.cpu_ticks() - before
        print(f"idle CPU         {ticks} ticks = {ticks * 1000 / hz:.0f} ms over {time.monotonic() - t0:.1f} s "
              f"(utime+stime, {hz} ticks/s{', watchdog on' if args.watchdog_usec else ''})")
        print(f"exit status on SIGTERM: {d.stop(signal.SIGTERM)}")
    finally:
        if d:
            d.close()
        ns.close()
        fx.close()


if __name__ == "__main__":
    main()
