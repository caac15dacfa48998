#!/usr/bin/env python3
"""Seed corpus for tests/fuzz-etcd.c: answers Debian's etcd-server really gives on its
JSON gateway (the one daemon/etcd.c speaks).

Usage (root): python3 tests/fuzz-etcd-capture.py CORPUS_DIR

Starts etcd (plain HTTP on 127.0.0.1, data in a temporary folder) in a throwaway
network namespace, stores Calico keys under the prefixes the client lists (IPPools,
Nodes, FelixConfigurations, affinities with and without a value, IPAM blocks), then
captures, byte for byte as the gateway sends them:

- range answers: pages with "more" (limit 2), the last page, an empty prefix, a count,
  a page at an older revision; errors: a compacted revision, a bad request;
- watch streams: the "created" message then PUT and DELETE events, several events of one
  transaction in one message, a watch from a compacted revision, a bad create_request;
- authentication: a token, and the error for a wrong password.

Each answer (or whole watch stream) becomes one corpus file named by its content. The
namespace and etcd are removed on exit, even on failure. Standard library only.
"""
import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

NS = f"cu-fuzzetcd-{os.getpid()}"
URL = "http://127.0.0.1:2379"


def b64(s):
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


def run(*args, input=None, check=True):
    return subprocess.run(["ip", "netns", "exec", NS, *args], input=input, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, check=check)


def post(path, body, timeout=5):
    """One POST on the gateway; the raw answer body (bytes), whatever the status."""
    r = run("curl", "-sS", "--max-time", str(timeout), "-H", "Content-Type: application/json", "-d",
            json.dumps(body), URL + path, check=False)
    return r.stdout


def ctl(*args, user=None):
    extra = ["--user", user] if user else []
    return run("etcdctl", "--endpoints", URL, *extra, *args).stdout.decode()


def prefix_end(p):
    b = bytearray(p.encode())
    b[-1] += 1
    return bytes(b)


def watch(body, during, seconds=2.5):
    """The raw stream of a watch while during() runs (curl's output, unbuffered)."""
    out = tempfile.NamedTemporaryFile(delete=False)
    out.close()
    p = subprocess.Popen(["ip", "netns", "exec", NS, "curl", "-sN", "--max-time", str(seconds), "-H",
                          "Content-Type: application/json", "-d", json.dumps(body), "-o", out.name,
                          URL + "/v3/watch"])
    time.sleep(0.5)
    during()
    p.wait()
    with open(out.name, "rb") as f:
        data = f.read()
    os.unlink(out.name)
    return data


def main():
    corpus = sys.argv[1]
    os.makedirs(corpus, exist_ok=True)
    d = tempfile.mkdtemp(prefix="cu-fuzzetcd-")
    subprocess.run(["ip", "netns", "add", NS], check=True)
    etcd = None
    seeds = []
    try:
        subprocess.run(["ip", "netns", "exec", NS, "ip", "link", "set", "lo", "up"], check=True)
        log = open(os.path.join(d, "etcd.log"), "w")
        etcd = subprocess.Popen(["ip", "netns", "exec", NS, "etcd", "--name", "cu", "--data-dir",
                                 os.path.join(d, "data"), "--listen-client-urls", URL,
                                 "--advertise-client-urls", URL, "--listen-peer-urls", "http://127.0.0.1:2380",
                                 "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
                                 "--initial-cluster", "cu=http://127.0.0.1:2380", "--log-level", "warn"],
                                stdout=log, stderr=log)
        for _ in range(100):
            if run("etcdctl", "--endpoints", URL, "endpoint", "health", check=False).returncode == 0:
                break
            time.sleep(0.2)
        else:
            sys.exit("etcd did not start")
        pools = "/calico/resources/v3/projectcalico.org/ippools/"
        nodes = "/calico/resources/v3/projectcalico.org/nodes/"
        felix = "/calico/resources/v3/projectcalico.org/felixconfigurations/"
        aff = "/calico/ipam/v2/host/"
        blocks = "/calico/ipam/v2/assignment/ipv4/block/"
        ctl("put", pools + "underlay", json.dumps({
            "kind": "IPPool", "apiVersion": "projectcalico.org/v3", "metadata": {"name": "underlay"},
            "spec": {"cidr": "192.168.10.128/25", "blockSize": 28, "ipipMode": "Never", "vxlanMode": "Never"}}))
        ctl("put", pools + "v6", json.dumps({
            "kind": "IPPool", "apiVersion": "projectcalico.org/v3", "metadata": {"name": "v6"},
            "spec": {"cidr": "fd00:244::/48", "blockSize": 122}}))
        for i in (1, 2, 3):
            ctl("put", nodes + f"node{i}", json.dumps({
                "kind": "Node", "apiVersion": "projectcalico.org/v3", "metadata": {"name": f"node{i}"},
                "spec": {"bgp": {"ipv4Address": f"192.168.1.1{i}/24"}}}))
            ctl("put", aff + f"node{i}/ipv4/block/192.168.10.{128 + 16 * i}-28", "{\"state\":\"confirmed\"}")
            ctl("put", blocks + f"192.168.10.{128 + 16 * i}-28", json.dumps({
                "cidr": f"192.168.10.{128 + 16 * i}/28", "affinity": f"host:node{i}",
                "allocations": [0] + [None] * 15, "unallocated": list(range(1, 16)),
                "attributes": [{"handle_id": "h", "secondary": {"node": f"node{i}"}}]}))
        ctl("put", aff + "node4/ipv4/block/192.168.10.224-28", "")  # Calico's old affinities: no value
        ctl("put", felix + "default", json.dumps({
            "kind": "FelixConfiguration", "apiVersion": "projectcalico.org/v3", "metadata": {"name": "default"},
            "spec": {"deviceRouteProtocol": 80}}))
        rev = json.loads(post("/v3/kv/range", {"key": b64("/")}))["header"]["revision"]

        # Range answers.
        for p in (pools, nodes, felix, aff, blocks):
            seeds.append(post("/v3/kv/range", {"key": b64(p), "range_end": b64(prefix_end(p)), "limit": 2000}))
        first = post("/v3/kv/range", {"key": b64(aff), "range_end": b64(prefix_end(aff)), "limit": 2})
        seeds.append(first)
        last = base64.b64decode(json.loads(first)["kvs"][-1]["key"]) + b"\0"
        seeds.append(post("/v3/kv/range", {"key": b64(last), "range_end": b64(prefix_end(aff)), "limit": 2,
                                           "revision": rev}))
        seeds.append(post("/v3/kv/range", {"key": b64("/nothing/"), "range_end": b64("/nothing0")}))
        seeds.append(post("/v3/kv/range", {"key": b64(nodes), "range_end": b64(prefix_end(nodes)),
                                           "count_only": True}))
        seeds.append(post("/v3/kv/range", {"key": "not base64!"}))

        # Watch streams: created, PUTs, a DELETE, a transaction's events in one message.
        def changes():
            ctl("put", nodes + "node5", json.dumps({"kind": "Node", "metadata": {"name": "node5"},
                                                    "spec": {"bgp": {"ipv4Address": "192.168.1.15/24"}}}))
            ctl("del", nodes + "node1")
            post("/v3/kv/txn", {"success": [
                {"request_put": {"key": b64(nodes + "node6"), "value": b64('{"kind":"Node"}')}},
                {"request_put": {"key": b64(nodes + "node7"), "value": b64("{}")}},
                {"request_delete_range": {"key": b64(nodes + "node2")}}]})
        seeds.append(watch({"create_request": {"key": b64(nodes), "range_end": b64(prefix_end(nodes)),
                                               "start_revision": int(rev) + 1}}, changes))
        seeds.append(watch({"create_request": {"key": b64(aff), "range_end": b64(prefix_end(aff))}},
                           lambda: (ctl("put", aff + "node9/ipv4/block/10.0.0.0-26", ""),
                                    ctl("del", aff + "node9/ipv4/block/10.0.0.0-26"))))
        seeds.append(watch({"create_request": {"key": "not base64!"}}, lambda: None, seconds=1))

        # A compacted revision: a range at it, a watch from it.
        now = json.loads(post("/v3/kv/range", {"key": b64("/")}))["header"]["revision"]
        ctl("compact", now)
        seeds.append(post("/v3/kv/range", {"key": b64(pools), "range_end": b64(prefix_end(pools)),
                                           "revision": int(rev)}))
        seeds.append(watch({"create_request": {"key": b64(pools), "range_end": b64(prefix_end(pools)),
                                               "start_revision": 2}}, lambda: None, seconds=1))

        # Authentication: a token, a wrong password.
        ctl("user", "add", "root:rootpw")
        ctl("user", "add", "calico:secret")
        ctl("role", "add", "calico")
        ctl("user", "grant-role", "calico", "calico")
        ctl("auth", "enable")
        seeds.append(post("/v3/auth/authenticate", {"name": "calico", "password": "secret"}))
        seeds.append(post("/v3/auth/authenticate", {"name": "calico", "password": "wrong"}))
        seeds.append(post("/v3/kv/range", {"key": b64(pools)}))  # no token
    finally:
        if etcd:
            etcd.terminate()
            etcd.wait()
        subprocess.run(["ip", "netns", "del", NS])
        shutil.rmtree(d, ignore_errors=True)
    n = 0
    for s in seeds:
        if s:
            with open(os.path.join(corpus, "seed-etcd-" + hashlib.sha1(s).hexdigest()[:16]), "wb") as f:
                f.write(s)
            n += 1
    print(f"fuzz-etcd-capture: {n} answers into {corpus}")


if __name__ == "__main__":
    main()
