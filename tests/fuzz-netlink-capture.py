#!/usr/bin/env python3
"""Seed corpus for tests/fuzz-netlink.c: rtnetlink datagrams the kernel really sends.

Usage (root): python3 tests/fuzz-netlink-capture.py CORPUS_DIR

Builds a throwaway network namespace shaped like a Calico node (a veth uplink eth0
with IPv4 and IPv6 addresses and a default route, vxlan.calico, a bridge; blackhole,
unreachable, prohibit, gateway, multipath, other-table, IPv6 and IPv4-via-IPv6
routes of several protocols), then, inside it, over raw NETLINK_ROUTE sockets set up
the way netlink/nl.c sets up its own (NETLINK_EXT_ACK, NETLINK_CAP_ACK,
NETLINK_GET_STRICT_CHK) and netlink/monitor.c its event socket:

- dumps: links, IPv4/IPv6 addresses, IPv4/IPv6 routes, IPv4/IPv6 policy rules
  (ours and others' with selectors we never set), netconf, the ARP neighbour table;
- single requests: the route to an address (can-reach), netconf for "all";
- acks and errors with extended-ack text, capped and not (a failed route add, a
  delete of a missing route, a duplicate, a bad neightbl change, a strict-check dump
  error), and a batch of route messages with one ack on the last one;
- notifications: routes, links, addresses and policy rules added, changed and
  removed, proxy_arp flipped (RTM_NEWNETCONF).

Each datagram becomes one corpus file named by its content. The namespace is removed
on exit, even on failure. Standard library only.
"""
import hashlib
import os
import socket
import struct
import subprocess
import sys
import time

NETLINK_ADD_MEMBERSHIP = 1
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10
NETLINK_EXT_ACK = 11
NETLINK_GET_STRICT_CHK = 12

NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK = 0x1, 0x2, 0x4
NLM_F_ROOT, NLM_F_MATCH = 0x100, 0x200
NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH
NLM_F_EXCL, NLM_F_CREATE = 0x200, 0x400
NLMSG_ERROR, NLMSG_DONE = 2, 3

RTM_NEWLINK, RTM_GETLINK, RTM_SETLINK = 16, 18, 19
RTM_GETADDR = 22
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
RTM_GETNEIGHTBL, RTM_SETNEIGHTBL = 66, 67
RTM_GETNETCONF = 82
RTM_GETRULE = 34
RTNLGRP_IPV4_RULE, RTNLGRP_IPV6_RULE = 8, 19

RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY = 1, 4, 5, 6
NETCONFA_IFINDEX = 1
NDTA_NAME, NDTA_PARMS = 1, 6
NDTPA_IFINDEX, NDTPA_PROXY_DELAY = 1, 12
IFLA_AF_SPEC = 26
IFLA_INET_CONF = 1
IPV4_DEVCONF_PROXY_ARP = 2

RTMGRP_LINK, RTMGRP_IPV4_IFADDR, RTMGRP_IPV4_ROUTE = 0x1, 0x10, 0x40
RTNLGRP_IPV4_NETCONF = 24

SETUP = """\
link add eth0 type veth peer name lan0
addr add 192.168.10.11/24 dev eth0
addr add 2001:db8::11/64 dev eth0 nodad
link set eth0 up
link set lan0 up
route add default via 192.168.10.1 dev eth0
link add vxlan.calico type vxlan id 4096 dstport 4789 dev eth0
addr add 10.244.0.1/32 dev vxlan.calico
link set vxlan.calico up
link add br0 type bridge
route add blackhole 10.1.0.0/26 proto 211 metric 1024
route add unreachable 10.1.0.64/26 proto 211 metric 1024
route add prohibit 10.1.0.128/26 proto static
route add 10.1.1.0/26 via 192.168.10.12 dev eth0 proto bird
route add 10.1.1.64/26 via 192.168.10.12 dev eth0 proto 211 metric 1024
route add 10.1.2.0/24 proto bird nexthop via 192.168.10.12 dev eth0 nexthop via 192.168.10.13 dev eth0
route add 10.1.4.0/24 via 192.168.10.14 dev eth0 table 100
route add 2001:db8:1::/64 via 2001:db8::1 dev eth0 proto bird
route add blackhole 2001:db8:2::/122 proto 211
"""


def nlmsg(mtype, flags, seq, payload):
    return struct.pack("=IHHII", 16 + len(payload), mtype, flags, seq, 0) + payload


def rtattr(atype, data):
    n = 4 + len(data)
    return struct.pack("=HH", n, atype) + data + b"\0" * ((4 - n % 4) % 4)


def rtmsg(family, dst_len=0, table=254, proto=0, scope=0, rtype=0):
    return struct.pack("=BBBBBBBBI", family, dst_len, 0, 0, table, proto, scope, rtype, 0)


class Capture:
    def __init__(self, outdir):
        self.outdir = outdir
        self.seq = int(time.time()) & 0xffff
        self.saved = 0

    def save(self, data):
        if not data:
            return
        name = "seed-nl-" + hashlib.sha1(data).hexdigest()[:16]
        path = os.path.join(self.outdir, name)
        if not os.path.exists(path):
            with open(path, "wb") as f:
                f.write(data)
            self.saved += 1

    def sock(self, ext_ack=True, cap_ack=True, strict=True, groups=0):
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE)
        for opt, on in ((NETLINK_EXT_ACK, ext_ack), (NETLINK_CAP_ACK, cap_ack), (NETLINK_GET_STRICT_CHK, strict)):
            if on:
                try:
                    s.setsockopt(SOL_NETLINK, opt, 1)
                except OSError:
                    pass
        s.bind((0, groups))
        s.settimeout(2)
        return s

    def request(self, s, mtype, flags, payload, until_done=False):
        """Send one request; save every reply datagram until its ack, error or DONE."""
        self.seq += 1
        s.send(nlmsg(mtype, flags | NLM_F_REQUEST, self.seq, payload))
        self.read_replies(s, until_done)

    def read_replies(self, s, until_done):
        while True:
            try:
                data = s.recv(1 << 16)
            except socket.timeout:
                return
            self.save(data)
            off = 0
            while off + 16 <= len(data):
                ln, t, fl = struct.unpack_from("=IHH", data, off)
                if ln < 16:
                    return
                if t in (NLMSG_DONE, NLMSG_ERROR):
                    if not until_done or t == NLMSG_DONE or (t == NLMSG_ERROR and not fl & NLM_F_MULTI):
                        return
                off += (ln + 3) & ~3

    def dump(self, s, mtype, payload):
        self.request(s, mtype, NLM_F_DUMP, payload, until_done=True)


def ifindex(name):
    with open(f"/sys/class/net/{name}/ifindex") as f:
        return int(f.read())


def ip(*args):
    subprocess.run(["ip", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def capture_inside(outdir):
    c = Capture(outdir)
    eth0 = ifindex("eth0")
    # Events first: the socket listens before anything below changes.
    ev = c.sock(groups=RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE)
    ev.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, RTNLGRP_IPV4_NETCONF)
    ev.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, RTNLGRP_IPV4_RULE)
    ev.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, RTNLGRP_IPV6_RULE)
    # Policy rules like ours and others' (selectors we never set), for the rule dump.
    for cmd in ("rule add to 10.9.0.0/16 lookup main suppress_prefixlength 25 pref 32700 proto 211",
                "rule add to 10.9.0.0/16 lookup 252 pref 32701 proto 211",
                "rule add from 10.8.0.0/16 iif eth0 fwmark 0x10/0xff lookup 70000 pref 100",
                "-6 rule add to fd00:9::/64 lookup 252 pref 32701 proto 211"):
        ip(*cmd.split())

    s = c.sock()
    # Dumps, as kern_observe() asks for them.
    c.dump(s, RTM_GETLINK, struct.pack("=BxHiII", 0, 0, 0, 0, 0))
    for fam in (socket.AF_INET, socket.AF_INET6):
        c.dump(s, RTM_GETADDR, struct.pack("=BBBBI", fam, 0, 0, 0, 0))
        c.dump(s, RTM_GETROUTE, rtmsg(fam, table=0))
    c.dump(s, RTM_GETNETCONF, struct.pack("=Bxxx", socket.AF_INET))
    for fam in (socket.AF_INET, socket.AF_INET6):
        c.dump(s, RTM_GETRULE, struct.pack("=BBBBBBBBI", fam, 0, 0, 0, 0, 0, 0, 0, 0))
    c.request(s, RTM_GETNETCONF, 0, struct.pack("=Bxxx", socket.AF_INET) + rtattr(NETCONFA_IFINDEX, struct.pack("=i", -1)))
    c.request(s, RTM_GETNETCONF, 0, struct.pack("=Bxxx", socket.AF_INET) + rtattr(NETCONFA_IFINDEX, struct.pack("=i", eth0)))
    c.dump(s, RTM_GETNEIGHTBL, struct.pack("=Bxxx", socket.AF_INET))
    # can-reach: one route, a unicast one and a local one.
    for addr in ("192.168.10.12", "192.168.10.11", "10.1.0.5"):
        c.request(s, RTM_GETROUTE, 0, rtmsg(socket.AF_INET, 32, table=0) + rtattr(RTA_DST, socket.inet_aton(addr)))

    # Acks and errors, with extack and capped (nl.c's socket options).
    def route(dst, plen, gw=None, flags=NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, mtype=RTM_NEWROUTE, rtype=1):
        body = rtmsg(socket.AF_INET, plen, proto=211, rtype=rtype) + rtattr(RTA_DST, socket.inet_aton(dst))
        body += rtattr(RTA_PRIORITY, struct.pack("=I", 1024))
        if gw:
            body += rtattr(RTA_GATEWAY, socket.inet_aton(gw)) + rtattr(RTA_OIF, struct.pack("=I", eth0))
        return mtype, flags, body

    for sk in (s, c.sock(cap_ack=False), c.sock(ext_ack=False)):
        c.request(sk, *route("10.5.0.0", 24, "172.16.0.1"))          # gateway not on-link
        c.request(sk, *route("10.5.1.0", 24, "192.168.10.12"))       # ok: a plain ack
        c.request(sk, *route("10.5.1.0", 24, "192.168.10.12"))       # EEXIST
        c.request(sk, *route("10.5.9.0", 24, mtype=RTM_DELROUTE, flags=NLM_F_ACK, rtype=6))  # ESRCH
        c.request(sk, *route("10.5.1.0", 24, "192.168.10.12", mtype=RTM_DELROUTE, flags=NLM_F_ACK))
        c.request(sk, RTM_SETNEIGHTBL, NLM_F_ACK, struct.pack("=Bxxx", socket.AF_INET) + rtattr(NDTA_NAME, b"nosuch\0"))
        c.dump(sk, RTM_GETROUTE, rtmsg(socket.AF_INET, 24, table=0))  # strict check: refused
    # proxy_arp and proxy_delay, as nl.c sets them (acks; the netconf event follows).
    conf = rtattr(IPV4_DEVCONF_PROXY_ARP, struct.pack("=I", 1))
    spec = rtattr(IFLA_AF_SPEC, rtattr(socket.AF_INET, rtattr(IFLA_INET_CONF, conf)))
    c.request(s, RTM_SETLINK, NLM_F_ACK, struct.pack("=BxHiII", 0, 0, eth0, 0, 0) + spec)
    parms = rtattr(NDTA_PARMS, rtattr(NDTPA_IFINDEX, struct.pack("=I", eth0)) +
                   rtattr(NDTPA_PROXY_DELAY, struct.pack("=Q", 0)))
    c.request(s, RTM_SETNEIGHTBL, NLM_F_ACK, struct.pack("=Bxxx", socket.AF_INET) + rtattr(NDTA_NAME, b"arp_cache\0") + parms)
    # A datagram of route messages with one ack, on the last (nl.c's batches): the
    # failing ones answer with errors on their own.
    batch = b""
    for i, gw in enumerate(("192.168.10.12", "172.16.0.1", "192.168.10.13", "172.16.0.2")):
        mtype, _, body = route(f"10.6.{i}.0", 24, gw)
        c.seq += 1
        batch += nlmsg(mtype, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL | (NLM_F_ACK if i == 3 else 0), c.seq, body)
    s.send(batch)
    for _ in range(3):
        try:
            c.save(s.recv(1 << 16))
        except socket.timeout:
            break

    # Notifications: what the monitor reads.
    for cmd in ("route add 10.7.0.0/24 via 192.168.10.12 dev eth0 proto bird",
                "route replace 10.7.0.0/24 via 192.168.10.13 dev eth0 proto bird",
                "route del 10.7.0.0/24",
                "route add blackhole 10.7.1.0/26 proto 211 metric 1024",
                "route add 10.7.2.0/24 via 192.168.10.14 dev eth0 table 100",
                "rule del to 10.9.0.0/16 lookup 252 pref 32701 proto 211",
                "rule add to 10.9.0.0/16 lookup 252 pref 32701 proto 211",
                "addr add 192.168.10.21/24 dev eth0",
                "addr del 192.168.10.21/24 dev eth0",
                "link set lan0 down", "link set lan0 up",
                "link add other0 type veth peer name other1",
                "link set other0 name other9", "link del other9"):
        ip(*cmd.split())
    for v in (0, 1):
        with open("/proc/sys/net/ipv4/conf/eth0/proxy_arp", "w") as f:
            f.write(str(v))
    with open("/proc/sys/net/ipv4/conf/all/forwarding", "w") as f:
        f.write("1")
    ev.settimeout(0.5)
    while True:
        try:
            c.save(ev.recv(1 << 16))
        except socket.timeout:
            break
    print(f"fuzz-netlink-capture: {c.saved} new seeds in {outdir}")


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--inside":
        capture_inside(sys.argv[2])
        return 0
    if len(sys.argv) != 2:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    outdir = os.path.abspath(sys.argv[1])
    os.makedirs(outdir, exist_ok=True)
    ns = f"cu-fz-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        for line in SETUP.splitlines():
            subprocess.run(["ip", "-n", ns, *line.split()], stderr=subprocess.DEVNULL)
        # IPv4 via an IPv6 next hop (RTA_VIA), where the kernel has it (5.2+).
        subprocess.run(["ip", "-n", ns, "route", "add", "10.1.3.0/24", "via", "inet6", "2001:db8::1", "dev", "eth0"],
                       stderr=subprocess.DEVNULL)
        r = subprocess.run(["ip", "netns", "exec", ns, sys.executable, os.path.abspath(__file__), "--inside", outdir])
        return r.returncode
    finally:
        subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)


if __name__ == "__main__":
    sys.exit(main())
