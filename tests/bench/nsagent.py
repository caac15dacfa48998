#!/usr/bin/env python3
"""Small agents that bench_change.py runs inside a network namespace (standard library
only; every time is CLOCK_MONOTONIC in ns, which time.monotonic_ns() reads alike in
every process, so times from here compare with the benchmark's own):

  listen
      Print "ready", then one line per rtnetlink notification of routes, links,
      addresses, rules and netconf (IPv4 and IPv6): "T +route TABLE PROTO DST/LEN",
      "T -route ...", "T link", "T addr", "T rule", "T netconf", "T other TYPE", and
      "T overrun" when the socket overflowed (ENOBUFS).

  etcd CA CERT KEY PORT
      Print "ready", then read JSON lines from stdin, each one etcd transaction sent to
      etcd's JSON gateway (POST /v3/kv/txn) over one TLS connection:
      {"put": [[key, value], ...]} or {"del": [key, ...]}, with "at": a monotonic time
      in ns to wait for before sending (paced streams). Prints "T_SEND T_DONE" for each.
"""
import base64
import errno
import http.client
import json
import socket
import ssl
import struct
import sys
import time

RTMGRP = 0x1 | 0x10 | 0x40 | 0x80 | 0x100 | 0x400   # link, v4 addr/route/rule, v6 addr/route
RTNLGRP_NETCONF = (24, 25)                          # IPv4, IPv6 netconf
KINDS = {16: "link", 17: "link", 20: "addr", 21: "addr", 32: "rule", 33: "rule", 80: "netconf", 81: "netconf"}


def route(msg, t):
    family, dst_len, _, _, table, proto = struct.unpack_from("BBBBBB", msg, 16)
    dst = None
    off = 16 + 12
    while off + 4 <= len(msg):
        alen, atype = struct.unpack_from("HH", msg, off)
        if alen < 4:
            break
        body = msg[off + 4:off + alen]
        if atype == 1:     # RTA_DST
            dst = socket.inet_ntop(socket.AF_INET6 if family == socket.AF_INET6 else socket.AF_INET, body)
        elif atype == 15:  # RTA_TABLE
            table = struct.unpack("I", body[:4])[0]
        off += (alen + 3) & ~3
    if dst is None:
        dst = "::" if family == socket.AF_INET6 else "0.0.0.0"
    return f"{t} {'+' if struct.unpack_from('H', msg, 4)[0] == 24 else '-'}route {table} {proto} {dst}/{dst_len}"


def listen():
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
    s.setsockopt(socket.SOL_SOCKET, 33, 32 << 20)   # SO_RCVBUFFORCE (root)
    s.bind((0, RTMGRP))
    for g in RTNLGRP_NETCONF:
        s.setsockopt(270, 1, g)                      # SOL_NETLINK, NETLINK_ADD_MEMBERSHIP
    out = sys.stdout
    out.write("ready\n")
    out.flush()
    while True:
        try:
            data = s.recv(1 << 20)
        except OSError as e:
            if e.errno == errno.ENOBUFS:
                out.write(f"{time.monotonic_ns()} overrun\n")
                out.flush()
                continue
            raise
        t = time.monotonic_ns()
        off = 0
        lines = []
        while off + 16 <= len(data):
            mlen, mtype = struct.unpack_from("IH", data, off)
            if mlen < 16:
                break
            msg = data[off:off + mlen]
            if mtype in (24, 25):
                lines.append(route(msg, t))
            else:
                lines.append(f"{t} {KINDS.get(mtype, 'other')} {mtype}")
            off += (mlen + 3) & ~3
        out.write("\n".join(lines) + "\n")
        out.flush()


def b64(s):
    return base64.b64encode(s.encode()).decode()


def etcd(ca, cert, key, port):
    ctx = ssl.create_default_context(cafile=ca)
    ctx.load_cert_chain(cert, key)
    conn = http.client.HTTPSConnection("127.0.0.1", int(port), context=ctx, timeout=120)
    out = sys.stdout
    out.write("ready\n")
    out.flush()
    for line in sys.stdin:
        req = json.loads(line)
        if "put" in req:
            ops = [{"requestPut": {"key": b64(k), "value": b64(v)}} for k, v in req["put"]]
        else:
            ops = [{"requestDeleteRange": {"key": b64(k)}} for k in req["del"]]
        body = json.dumps({"success": ops})
        at = req.get("at", 0)
        while True:
            now = time.monotonic_ns()
            if now >= at:
                break
            time.sleep(min((at - now) / 1e9, 0.5))
        t = time.monotonic_ns()
        conn.request("POST", "/v3/kv/txn", body, {"Content-Type": "application/json"})
        r = conn.getresponse()
        answer = r.read()
        if r.status != 200:
            sys.exit(f"etcd txn: HTTP {r.status}: {answer[:300]!r}")
        out.write(f"{t} {time.monotonic_ns()}\n")
        out.flush()


if __name__ == "__main__":
    if sys.argv[1:2] == ["listen"]:
        listen()
    elif sys.argv[1:2] == ["etcd"] and len(sys.argv) == 6:
        etcd(*sys.argv[2:])
    else:
        sys.exit(__doc__)
