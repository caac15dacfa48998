#!/usr/bin/env python3
"""Scale benchmark of calico-underlayd on a real kernel (run on demand, as root).

Builds a synthetic cluster as the operator's tools print it (`kubectl get
blockaffinities.crd.projectcalico.org -o yaml`, `kubectl get
ipamblocks.crd.projectcalico.org -o yaml`, `calicoctl get node -o yaml`, an underlay
pool beside an IPIP overlay pool) with N nodes on one /16, k blocks each, and
measures, each in a fresh network namespace (veth uplink eth0 with the node's address,
a default route, some foreign `proto bird`/`proto static` routes):

  * cold `--once` (load, observe, plan, apply, print: CALICO_UNDERLAY_TIMINGS=1);
  * the same routes installed by `ip -batch` and by tests/bench/rtnl-writer (the
    kernel floor: 256 KiB batches, an ack on each batch's last message only);
  * a bare libyaml event scan of the same YAML (tests/bench/yaml-scan: the floor of
    any loader), so a cold `--once` compares with floor + scan;
  * a no-op `--once` with everything in place, against bare dumps (rtnl-writer's
    dump; its dump compared with a hash set of the wanted routes, which is a no-op
    reconcile and nothing more; and `ip -4 route show table all | wc -l`);
  * the daemon (no flags): start to converged, then one BlockAffinity file changed
    (atomic rename) until the new route is in the kernel, its CPU time while idle;
  * peak RSS of each process.

`--family 6` (or `both`, the default: IPv4 then IPv6) runs the IPv6 half: the underlay
pool is fd00:10::/48 in /122 blocks, every node also has `spec.bgp.ipv6Address` on
fd00:172:20::/64, which the uplink holds too (peers on-link), with an IPv6 default
route and the same kind of foreign routes; borrowed addresses become /128s. It reports
the same rows (the kernel floor writes the IPv6 routes; the bare dumps are `rtnl-writer
dump6` and `ip -6 route show table all | wc -l`) except two: rtnl-writer has no IPv6
hash-set compare (every wanted route is checked with ip instead, untimed) and its
`wait` follows IPv4 routes only, so the IPv6 half has no daemon mode.

Prints medians with min-max over several runs, and the ratios the "Scale" issue sets
targets for. Usage (root; an optimised build without sanitizers):

    meson setup /tmp/b-bench --buildtype=release && ninja -C /tmp/b-bench
    sudo python3 tests/bench/bench_scale.py --build /tmp/b-bench

or `meson test -C /tmp/b-bench --benchmark scale -v`. See --help for the knobs.

`--change-cost` (first, with bench_change.py's own options) runs tests/bench/
bench_change.py instead: what one change costs the running daemon, from etcd (a real
etcd-server) and from files, with the full-reload path beside it.
"""
import argparse
import ipaddress
import os
import platform
import re
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

PROTO = 211                      # calico-underlayd's default routeProtocol
METRIC = 1024                    # and routeMetric
TABLE = 252                      # and routeTable
UNDERLAY_NET = (10 << 24)        # 10.0.0.0/9: 131,072 /26 blocks
OVERLAY_NET = (10 << 24) | (128 << 16)  # 10.128.0.0/9, IPIP Always, natOutgoing true
NODE_NET = (172 << 24) | (20 << 16)     # 172.20.0.0/16: every node on one L2 segment
NODE_FIRST = 10                  # node i has 172.20.0.10 + i
GATEWAY = "172.20.255.254"
BORROW_EVERY = 200               # every 200th block lends one address to the next node
BLOCK_LEN = 26
MAX_BLOCKS = 1 << (BLOCK_LEN - 9)
# The IPv6 half (--family 6): the underlay pool is IPv6 (the IPIP overlay pool and the
# nodes' IPv4 addresses stay), nodes carry spec.bgp.ipv6Address on the uplink's /64.
UNDERLAY_NET6 = int(ipaddress.IPv6Address("fd00:10::"))   # fd00:10::/48 in /122 blocks
BLOCK_LEN6 = 122
NODE_NET6 = int(ipaddress.IPv6Address("fd00:172:20::"))   # fd00:172:20::/64, on-link
GATEWAY6 = "fd00:172:20::fffe"


def ip4(a):
    return f"{a >> 24}.{(a >> 16) & 255}.{(a >> 8) & 255}.{a & 255}"


def block(net, i):
    return net + (i << (32 - BLOCK_LEN))


def node_name(i):
    return f"node-{i:04d}"


def node_addr(i):
    return ip4(NODE_NET + NODE_FIRST + i)


def node_addr6(i):
    return str(ipaddress.IPv6Address(NODE_NET6 + NODE_FIRST + i))


class Fam:
    """What differs between the halves: the underlay pool's blocks and the peers."""

    def __init__(self, v6):
        self.v6 = v6
        self.name = "IPv6" if v6 else "IPv4"
        self.blen = BLOCK_LEN6 if v6 else BLOCK_LEN
        self.host_len = 128 if v6 else 32
        self.net = UNDERLAY_NET6 if v6 else UNDERLAY_NET

    def addr(self, i, k=0):
        """Address k of underlay block i."""
        a = self.net + (i << (self.host_len - self.blen)) + k
        return str(ipaddress.IPv6Address(a)) if self.v6 else ip4(a)

    def block(self, i):
        return f"{self.addr(i)}/{self.blen}"

    def peer(self, i):
        return node_addr6(i) if self.v6 else node_addr(i)

    def gateway(self):
        return GATEWAY6 if self.v6 else GATEWAY

    def pool(self):
        return "fd00:10::/48" if self.v6 else f"{ip4(UNDERLAY_NET)}/9"


# ---------------------------------------------------------------- the cluster

class Cluster:
    """Files of one scale: settings, resources, the routes the daemon will add."""

    def __init__(self, top, routes, per_node, n_foreign, ipam=True, v6=False):
        self.fam = Fam(v6)
        self.dir = os.path.join(top, f"cluster-{routes}{'-v6' if v6 else ''}")
        self.res = os.path.join(self.dir, "resources.d")
        self.routes = routes
        self.key = (6 if v6 else 4, routes)
        self.nodes = max(2, -(-routes // per_node))
        if (not v6 and routes > MAX_BLOCKS - 64) or self.nodes > 60000:
            sys.exit(f"bench_scale: {routes} routes do not fit the /9 pool or the /16 node subnet")
        os.makedirs(self.res)
        self.config = os.path.join(self.dir, "config.yaml")
        self.batch = os.path.join(self.dir, "routes.batch")        # what the daemon adds
        self.setup = os.path.join(self.dir, "namespace.batch")     # uplink + foreign routes
        self.change = os.path.join(self.res, "40-change.yaml")
        self.next_change = routes
        owner = [i // per_node if i // per_node < self.nodes else i % self.nodes for i in range(routes)]
        self.foreign = self._foreign(owner, n_foreign)
        self._write_config()
        self._write_pools()
        self._write_nodes()
        self._write_affinities(owner)
        # Borrowed addresses (Calico's default strictAffinity: false): ordinal 1 of every
        # BORROW_EVERY-th block is hosted by the next node.
        self.borrowed = {i: (owner[i] + 1) % self.nodes for i in range(0, routes, BORROW_EVERY)} if ipam else {}
        if ipam:
            self._write_ipamblocks(owner)
        tmp, _ = self.write_change()
        os.rename(tmp, self.change)
        self._write_batches(owner)

    def yaml_files(self):
        return sorted(os.path.join(self.res, f) for f in os.listdir(self.res) if f.endswith(".yaml"))

    def _foreign(self, owner, n):
        """Block indices with a BIRD route: same path (satisfies ours) or another gateway."""
        peers = [i for i in range(len(owner)) if owner[i] != 0]
        step = max(1, len(peers) // max(1, n // 2))
        picked = peers[::step][: n // 2]
        return {b: ("same" if k % 2 == 0 else "other") for k, b in enumerate(picked)}

    def _write_config(self):
        with open(self.config, "w") as f:
            f.write(f"nodeName: {node_name(0)}\nuplink: auto\nresources:\n  - resources.d\n")

    def _write_pools(self):
        with open(os.path.join(self.res, "10-ippools.yaml"), "w") as f:
            f.write(f"""apiVersion: projectcalico.org/v3
items:
- apiVersion: projectcalico.org/v3
  kind: IPPool
  metadata:
    creationTimestamp: "2024-03-01T10:00:00Z"
    name: overlay-default
    resourceVersion: "1001"
    uid: 0a7c7a52-0b7e-11ea-8d71-52540045a0c1
  spec:
    allowedUses:
    - Workload
    - Tunnel
    blockSize: {BLOCK_LEN}
    cidr: {ip4(OVERLAY_NET)}/9
    ipipMode: Always
    natOutgoing: true
    nodeSelector: all()
    vxlanMode: Never
- apiVersion: projectcalico.org/v3
  kind: IPPool
  metadata:
    creationTimestamp: "2024-03-01T10:00:05Z"
    name: underlay-dc1
    resourceVersion: "1002"
    uid: 1b7c7a52-0b7e-11ea-8d71-52540045a0c1
  spec:
    allowedUses:
    - Workload
    blockSize: {self.fam.blen}
    cidr: {self.fam.pool()}
    ipipMode: Never
    nodeSelector: all()
    vxlanMode: Never
kind: IPPoolList
metadata:
  resourceVersion: "1003"
""")

    def _write_nodes(self):
        with open(os.path.join(self.res, "20-nodes.yaml"), "w") as f:
            f.write("apiVersion: projectcalico.org/v3\nitems:\n")
            for i in range(self.nodes):
                n = node_name(i)
                f.write(f"""- apiVersion: projectcalico.org/v3
  kind: Node
  metadata:
    creationTimestamp: "2024-03-01T09:{i // 60 % 60:02d}:{i % 60:02d}Z"
    labels:
      beta.kubernetes.io/arch: amd64
      beta.kubernetes.io/os: linux
      kubernetes.io/hostname: {n}
      topology.kubernetes.io/zone: az{1 + i % 3}
    name: {n}
    resourceVersion: "{20000 + i}"
    uid: {i:08x}-fec1-11e9-a1d8-52540045a0c1
  spec:
    bgp:
      ipv4Address: {node_addr(i)}/16
      ipv4IPIPTunnelAddr: {ip4(block(OVERLAY_NET, i))}
{f"      ipv6Address: {node_addr6(i)}/64{chr(10)}" if self.fam.v6 else ""}    orchRefs:
    - nodeName: {n}
      orchestrator: k8s
""")
            f.write('kind: NodeList\nmetadata:\n  resourceVersion: "99999"\n')

    @staticmethod
    def _affinity(f, node, net, i, rv, fam=None):
        a, blen = (fam.addr(i), fam.blen) if fam else (ip4(block(net, i)), BLOCK_LEN)
        f.write(f"""- apiVersion: crd.projectcalico.org/v1
  kind: BlockAffinity
  metadata:
    annotations:
      projectcalico.org/metadata: '{{"creationTimestamp":null}}'
    creationTimestamp: "2024-03-0{1 + rv % 9}T{rv % 24:02d}:{rv // 24 % 60:02d}:{rv % 60:02d}Z"
    generation: 1
    name: {node_name(node)}-{a.replace('.', '-').replace(':', '-')}-{blen}
    resourceVersion: "{rv}"
    uid: {rv * 2654435761 % (1 << 32):08x}-0b81-11ea-8d71-52540045a0c1
  spec:
    cidr: {a}/{blen}
    deleted: "false"
    node: {node_name(node)}
    state: confirmed
""")

    def _write_affinities(self, owner):
        with open(os.path.join(self.res, "30-blockaffinities.yaml"), "w") as f:
            f.write("apiVersion: v1\nitems:\n")
            for i, node in enumerate(owner):
                self._affinity(f, node, UNDERLAY_NET, i, 100000 + i, self.fam)
            for node in range(self.nodes):   # one overlay block each: no route (IPIP)
                self._affinity(f, node, OVERLAY_NET, node, 300000 + node)
            f.write('kind: List\nmetadata:\n  resourceVersion: ""\n')

    def _write_ipamblocks(self, owner):
        """Every underlay block as its IPAMBlock (what kubectl prints: 64 allocation
        slots, the pod at ordinal 0, a borrowed address at ordinal 1 where one is)."""
        free_62 = "".join("    - null\n" for _ in range(62))
        unalloc_62 = "".join(f"    - {k}\n" for k in range(2, 64))
        with open(os.path.join(self.res, "35-ipamblocks.yaml"), "w") as f:
            f.write("apiVersion: v1\nitems:\n")
            for i, node in enumerate(owner):
                a = self.fam.addr(i)
                host = self.borrowed.get(i)
                rv = 700000 + i
                f.write(f"""- apiVersion: crd.projectcalico.org/v1
  kind: IPAMBlock
  metadata:
    annotations:
      projectcalico.org/metadata: '{{"creationTimestamp":null}}'
    creationTimestamp: "2024-03-0{1 + rv % 9}T{rv % 24:02d}:{rv // 24 % 60:02d}:{rv % 60:02d}Z"
    generation: {3 if host is None else 4}
    name: {a.replace('.', '-').replace(':', '-')}-{self.fam.blen}
    resourceVersion: "{rv}"
    uid: {rv * 2654435761 % (1 << 32):08x}-0b81-11ea-8d71-52540045a0c1
  spec:
    affinity: host:{node_name(node)}
    allocations:
    - 0
    - {"null" if host is None else 1}
{free_62}    attributes:
    - handle_id: k8s-pod-network.{rv * 40503 % (1 << 32):08x}c0ffee{i:08x}
      secondary:
        namespace: default
        node: {node_name(node)}
        pod: app-{i:06d}
""")
                if host is not None:
                    f.write(f"""    - handle_id: k8s-pod-network.{rv * 48271 % (1 << 32):08x}beef{i:08x}
      secondary:
        namespace: default
        node: {node_name(host)}
        pod: borrowed-{i:06d}
""")
                f.write(f"""    cidr: {a}/{self.fam.blen}
    deleted: false
    strictAffinity: false
    unallocated:
{"    - 1" + chr(10) if host is None else ""}{unalloc_62}""")
            f.write('kind: List\nmetadata:\n  resourceVersion: ""\n')

    def write_change(self):
        """40-change.yaml: one BlockAffinity of node-0001, a new block each time (atomic rename)."""
        i = self.next_change
        self.next_change += 1
        tmp = os.path.join(self.dir, ".40-change.tmp")
        with open(tmp, "w") as f:
            f.write("apiVersion: v1\nitems:\n")
            self._affinity(f, 1, UNDERLAY_NET, i, 500000 + i, self.fam)
            f.write('kind: List\nmetadata:\n  resourceVersion: ""\n')
        return tmp, self.fam.block(i)

    def _write_batches(self, owner):
        with open(self.setup, "w") as f:
            f.write("link set lo up\n"
                    "link add eth0 type veth peer name lan0\n"
                    f"address add {node_addr(0)}/16 dev eth0\n"
                    "link set eth0 up\nlink set lan0 up\n"
                    f"route add default via {GATEWAY} dev eth0\n")
            fam = self.fam
            if fam.v6:   # peers on-link on the uplink's /64, a default route for the gateway guard
                f.write(f"address add {node_addr6(0)}/64 dev eth0 nodad\n"
                        f"route add ::/0 via {GATEWAY6} dev eth0\n")
            for b, kind in sorted(self.foreign.items()):
                gw = fam.peer(owner[b]) if kind == "same" else fam.gateway()
                f.write(f"route add {fam.block(b)} via {gw} dev eth0 proto bird\n")
            for k in range(len(self.foreign)):   # unrelated static routes
                dst = (f"fd00:192:168:{k:x}::/64" if fam.v6 else f"192.168.{k % 256}.{k // 256 * 16 % 256}/28")
                f.write(f"route add {dst} via {fam.gateway()} dev eth0 proto static\n")
        with open(self.batch, "w") as f:
            # Every block, BIRD's too: its route in main wins by lookup, ours stands by in
            # our table (DESIGN.md section 3.2).
            fam = self.fam
            for i, node in enumerate(owner):
                dst = fam.block(i)
                if node == 0:
                    f.write(f"route add blackhole {dst} proto {PROTO} metric {METRIC} table {TABLE}\n")
                else:
                    f.write(f"route add {dst} via {fam.peer(node)} dev eth0 proto {PROTO} metric {METRIC}"
                            f" table {TABLE}\n")
            for i, host in sorted(self.borrowed.items()):
                if host != 0:   # node-0000 routes its own pods (Felix), not a borrowed one
                    f.write(f"route add {fam.addr(i, 1)}/{fam.host_len} via {fam.peer(host)} dev eth0 "
                            f"proto {PROTO} metric {METRIC} table {TABLE}\n")
        with open(self.batch) as f:
            self.n_batch = sum(1 for _ in f)


# ---------------------------------------------------------------- namespaces and processes

class Bench:
    def __init__(self, args):
        self.args = args
        self.daemon = os.path.abspath(args.daemon)
        self.writer = os.path.abspath(args.writer)
        self.scan = os.path.abspath(args.scan)
        self.seq = 0
        self.live = set()
        self.top = tempfile.mkdtemp(prefix="cu-bench-")

    def netns(self, cluster):
        """A fresh namespace: uplink eth0 with node-0000's address, foreign routes."""
        self.seq += 1
        name = f"cu-bench-{os.getpid()}-{self.seq}"
        subprocess.run(["ip", "netns", "add", name], check=True)
        self.live.add(name)
        subprocess.run(["ip", "-n", name, "-batch", cluster.setup], check=True)
        subprocess.run(["ip", "netns", "exec", name, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"], check=True)
        if cluster.fam.v6:
            subprocess.run(["ip", "netns", "exec", name, "sysctl", "-q", "-w",
                            "net.ipv6.conf.all.forwarding=1"], check=True)
        return name

    def drop(self, name):
        """Delete eth0 first: the kernel flushes its routes right there, not in the
        background work of the namespace's teardown, which would steal a core from
        the next measurement."""
        subprocess.run(["ip", "-n", name, "link", "del", "eth0"], stderr=subprocess.DEVNULL)
        subprocess.run(["ip", "netns", "del", name], stderr=subprocess.DEVNULL)
        self.live.discard(name)

    def cleanup(self):
        for name in list(self.live):
            self.drop(name)
        if not self.args.keep:
            shutil.rmtree(self.top, ignore_errors=True)

    def run(self, ns, argv, env=None, stdout=subprocess.DEVNULL):
        """Run argv in ns under rtnl-writer's runner: wall ms, peak RSS, CPU, stderr."""
        e = dict(os.environ)
        e.update(env or {})
        e.pop("MALLOC_PERTURB_", None)   # meson sets it; it would be measured too
        p = subprocess.run([self.writer, "-n", ns, "run"] + argv, env=e, stdout=stdout,
                           stderr=subprocess.PIPE, text=True)
        m = re.search(r"^run: wall_ms=(\S+) maxrss_kb=(\d+) user_ms=(\S+) sys_ms=(\S+) exit=(\d+)$",
                      p.stderr, re.M)
        if not m:
            raise RuntimeError(f"{argv[0]}: no run line:\n{p.stderr[-2000:]}")
        res = {"wall": float(m[1]), "rss": int(m[2]) / 1024, "user": float(m[3]), "sys": float(m[4]),
               "exit": int(m[5]), "stderr": p.stderr, "stdout": p.stdout}
        t = re.search(r"^timing: (.*)$", p.stderr, re.M)
        if t:
            for k, v in re.findall(r"(\w+)=([\d.]+)", t[1]):
                res[k] = float(v)
        return res

    def once(self, ns, cluster, run_dir):
        r = self.run(ns, [self.daemon, "--config", cluster.config, "--once"],
                     env={"CALICO_UNDERLAY_TIMINGS": "1", "RUNTIME_DIRECTORY": run_dir})
        if r["exit"] != 0 or r.get("failed", 0):
            raise RuntimeError(f"--once failed (exit {r['exit']}):\n{r['stderr'][-3000:]}")
        return r

    def run_dir(self):
        return tempfile.mkdtemp(dir=self.top, prefix="run-")

    # ------------------------------------------------------------ one round

    def round(self, cluster):
        out = {}
        ns = self.netns(cluster)
        try:
            run_dir = self.run_dir()
            out["cold"] = self.once(ns, cluster, run_dir)
            out["noop"] = self.once(ns, cluster, run_dir)
            if out["noop"].get("actions", 0):
                raise RuntimeError(f"no-op --once still changed {out['noop']['actions']:.0f} things")
            (self._round6 if cluster.fam.v6 else self._round4)(ns, cluster, out)
        finally:
            self.drop(ns)
        return self._batches(cluster, out)

    def _round4(self, ns, cluster, out):
        """The IPv4 half after the two --once: rtnl-writer's bare dumps, ip's, the scan."""
        out["dump"] = self.run(ns, [self.writer, "dump"], stdout=subprocess.PIPE)
        out["dump"]["dump_ms"] = float(re.search(r"dump_ms=(\S+)", out["dump"]["stdout"])[1])
        out["dump"]["routes"] = int(re.search(r"routes=(\d+)", out["dump"]["stdout"])[1])
        out["cmp"] = self.run(ns, [self.writer, "dump", cluster.batch], stdout=subprocess.PIPE)
        m = re.search(r"routes=(\d+) matched=(\d+) wanted=(\d+) dump_ms=(\S+)", out["cmp"]["stdout"])
        if not m or m[2] != m[3]:
            raise RuntimeError("rtnl-writer dump FILE: not every wanted route is in place:\n"
                               + out["cmp"]["stdout"] + out["cmp"]["stderr"][-2000:])
        out["cmp"]["dump_ms"] = float(m[4])
        out["ipshow"] = self.run(ns, ["sh", "-c", "ip -4 route show table all | wc -l"],
                                 stdout=subprocess.PIPE)
        self._scan(ns, cluster, out)

    def _scan(self, ns, cluster, out):
        out["scan"] = self.run(ns, [self.scan] + cluster.yaml_files(), stdout=subprocess.PIPE)
        m = re.search(r"scan_ms=(\S+)", out["scan"]["stdout"])
        if out["scan"]["exit"] != 0 or not m:
            raise RuntimeError("yaml-scan failed:\n" + out["scan"]["stdout"] + out["scan"]["stderr"][-2000:])
        out["scan"]["scan_ms"] = float(m[1])

    def _round6(self, ns, cluster, out):
        """The IPv6 half after the two --once: rtnl-writer's bare IPv6 dump (it has no IPv6
        hash-set compare), ip's, the scan; that every wanted route is in place is checked
        with ip (untimed)."""
        out["dump"] = self.run(ns, [self.writer, "dump6"], stdout=subprocess.PIPE)
        out["dump"]["dump_ms"] = float(re.search(r"dump_ms=(\S+)", out["dump"]["stdout"])[1])
        out["dump"]["routes"] = int(re.search(r"routes=(\d+)", out["dump"]["stdout"])[1])
        out["ipshow"] = self.run(ns, ["sh", "-c", "ip -6 route show table all | wc -l"],
                                 stdout=subprocess.PIPE)
        p = subprocess.run(["ip", "-n", ns, "-6", "route", "show", "table", str(TABLE), "proto", str(PROTO)],
                           stdout=subprocess.PIPE, text=True, check=True)
        def dst(words):
            d = words[1] if words[0] in ("blackhole", "unreachable") else words[0]
            return d if "/" in d else d + "/128"   # ip prints a /128 bare
        have = {dst(line.split()) for line in p.stdout.splitlines() if line.strip()}
        with open(cluster.batch) as f:
            missing = [d for d in (dst(line.split()[2:]) for line in f) if d not in have]
        if missing:
            raise RuntimeError(f"IPv6: {len(missing)} wanted routes not in table {TABLE}, e.g. {missing[:3]}")
        self._scan(ns, cluster, out)

    def _batches(self, cluster, out):
        ns = self.netns(cluster)
        try:
            out["ipbatch"] = self.run(ns, ["ip", "-batch", cluster.batch])
            if out["ipbatch"]["exit"] != 0:
                raise RuntimeError("ip -batch failed:\n" + out["ipbatch"]["stderr"][-2000:])
        finally:
            self.drop(ns)
        ns = self.netns(cluster)
        try:
            w = self.run(ns, [self.writer, "add", cluster.batch], stdout=subprocess.PIPE)
            m = re.search(r"routes=(\d+) failed=(\d+) datagrams=(\d+) parse_ms=(\S+) apply_ms=(\S+)", w["stdout"])
            if w["exit"] != 0 or not m:
                raise RuntimeError("rtnl-writer add failed:\n" + w["stdout"] + w["stderr"][-2000:])
            w["apply"] = float(m[5])
            out["floor"] = w
        finally:
            self.drop(ns)
        return out

    # ------------------------------------------------------------ the daemon

    def daemon_round(self, cluster, changes, idle):
        """Daemon mode: start to converged, `changes` single-block changes, idle CPU."""
        out = {"start": [], "change": [], "change_cpu": [], "overruns": 0}
        ns = self.netns(cluster)
        run_dir = self.run_dir()
        log_path = os.path.join(self.top, f"daemon-{cluster.routes}.log")
        env = dict(os.environ, RUNTIME_DIRECTORY=run_dir)
        env.pop("MALLOC_PERTURB_", None)
        env.pop("JOURNAL_STREAM", None)
        log = open(log_path, "w")
        t0 = time.monotonic()
        p = subprocess.Popen([self.writer, "-n", ns, "exec", self.daemon, "--config", cluster.config],
                             env=env, stdout=log, stderr=log)
        try:
            self._wait_log(log_path, r"reconciled: (\d+) changes?", 1, p, 120)
            out["start"].append((time.monotonic() - t0) * 1e3)
            time.sleep(0.5)   # let our own route notifications come and go
            for _ in range(changes):
                tmp, prefix = cluster.write_change()
                w = subprocess.Popen([self.writer, "-n", ns, "wait", prefix, "60000"],
                                     stdout=subprocess.PIPE, text=True)
                if w.stdout.readline().strip() != "ready":
                    raise RuntimeError("rtnl-writer wait did not start")
                cpu = self._cpu_ms(p.pid)
                t = time.monotonic_ns()
                os.rename(tmp, cluster.change)
                line = w.stdout.readline()
                w.wait()
                m = re.match(r"seen_ns=(\d+)", line)
                if not m:
                    raise RuntimeError(f"the changed block's route did not appear ({line.strip()}); "
                                       f"see {log_path}")
                out["change"].append((int(m[1]) - t) / 1e6)
                time.sleep(0.5)   # and whatever passes the change sets off
                out["change_cpu"].append(self._cpu_ms(p.pid) - cpu)
            time.sleep(1.0)
            cpu0 = self._cpu_ms(p.pid)
            time.sleep(idle)
            out["idle_cpu"] = self._cpu_ms(p.pid) - cpu0
            out["idle_s"] = idle
            out["rss"] = self._hwm_mb(p.pid)
        finally:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            log.close()
            self.drop(ns)
        with open(log_path) as f:
            text = f.read()
        out["overruns"] = text.count("overrun")
        out["passes"] = len(re.findall(r"reconciled:", text))
        return out

    @staticmethod
    def _wait_log(path, pattern, count, proc, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(path) as f:
                if len(re.findall(pattern, f.read())) >= count:
                    return
            if proc.poll() is not None:
                raise RuntimeError(f"the daemon exited ({proc.returncode}); see {path}")
            time.sleep(0.005)
        raise RuntimeError(f"the daemon did not converge in {timeout} s; see {path}")

    @staticmethod
    def _cpu_ms(pid):
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _hwm_mb(pid):
        with open(f"/proc/{pid}/status") as f:
            return int(re.search(r"VmHWM:\s+(\d+)", f.read())[1]) / 1024


# ---------------------------------------------------------------- report

def vals(f, rs):
    """f over the runs, skipping a figure a half does not measure (IPv6: the writer's)."""
    out = []
    for r in rs:
        try:
            out.append(f(r))
        except KeyError:
            pass
    return out


def stat(values):
    if not values:
        return None
    return statistics.median(values), min(values), max(values)


def fmt_time(s):
    if s is None:
        return "-"
    med, lo, hi = s
    if med >= 100:
        return f"{med:7.0f} ({lo:.0f}-{hi:.0f})"
    return f"{med:7.1f} ({lo:.1f}-{hi:.1f})"


def fmt_rss(s):
    return "-" if s is None else f"{s[0]:6.1f}"


def label(n):
    return f"{n // 1000}k routes" if n % 1000 == 0 else f"{n} routes"


def report(args, clusters, results, daemon):
    rows = [
        ("cold --once: total (wall)", lambda r: r["cold"]["wall"], lambda r: r["cold"]["rss"]),
        ("  load (YAML -> model)", lambda r: r["cold"]["load"], None),
        ("  observe (dumps)", lambda r: r["cold"]["observe"], None),
        ("  plan", lambda r: r["cold"]["plan"], None),
        ("  apply (netlink)", lambda r: r["cold"]["apply"], None),
        ("  print (stdout)", lambda r: r["cold"]["print"], None),
        ("  CPU user+sys", lambda r: r["cold"]["user"] + r["cold"]["sys"], None),
        ("ip -batch, same routes (wall)", lambda r: r["ipbatch"]["wall"], lambda r: r["ipbatch"]["rss"]),
        ("kernel floor: rtnl-writer apply", lambda r: r["floor"]["apply"], lambda r: r["floor"]["rss"]),
        ("bare libyaml scan of the YAML", lambda r: r["scan"]["scan_ms"], lambda r: r["scan"]["rss"]),
        ("no-op --once: total (wall)", lambda r: r["noop"]["wall"], lambda r: r["noop"]["rss"]),
        ("  load", lambda r: r["noop"]["load"], None),
        ("  observe+plan+apply", lambda r: r["noop"]["observe"] + r["noop"]["plan"] + r["noop"]["apply"], None),
        ("bare dump: rtnl-writer (in-process)", lambda r: r["dump"]["dump_ms"], lambda r: r["dump"]["rss"]),
        ("bare dump + hash-set compare (writer)", lambda r: r["cmp"]["dump_ms"], lambda r: r["cmp"]["rss"]),
        ("bare dump: ip route show | wc -l", lambda r: r["ipshow"]["wall"], lambda r: r["ipshow"]["rss"]),
    ]
    w0, wc = 38, 30
    head = "".join(f"{label(c.routes):>{wc}}{'':8}" for c in clusters)
    print()
    print(f"calico-underlayd scale benchmark, {clusters[0].fam.name} underlay pool: {os.cpu_count()} cores, kernel {platform.release()}, "
          f"{args.blocks_per_node} blocks/node, "
          f"{'no IPAMBlocks' if args.no_ipam_blocks else 'IPAMBlocks with a borrowed address every %d blocks' % BORROW_EVERY}, "
          f"runs {','.join(str(r) for r in args.runs_list)}, "
          f"load average {args.load_before:.2f} before, {os.getloadavg()[0]:.2f} after")
    print(f"{'':{w0}}{head}")
    print(f"{'measurement':{w0}}" + "".join(f"{'ms median (min-max)':>{wc}}{'RSS MB':>8}" for _ in clusters))
    for name, t, rss in rows:
        line = f"{name:{w0}}"
        for c in clusters:
            rs = results[c.key]
            line += f"{fmt_time(stat(vals(t, rs))):>{wc}}"
            line += f"{fmt_rss(stat(vals(rss, rs))) if rss else '':>8}"
        print(line)
    drows = [
        ("daemon: start -> converged", lambda d: d["start"], lambda d: [d["rss"]]),
        ("daemon: 1 block changed -> in kernel", lambda d: d["change"], None),
        ("  daemon CPU for it (10 ms ticks)", lambda d: d["change_cpu"], None),
    ]
    for name, t, rss in drows:
        line = f"{name:{w0}}"
        for c in clusters:
            d = daemon.get(c.key)
            line += f"{fmt_time(stat(t(d)) if d else None):>{wc}}"
            line += f"{fmt_rss(stat(rss(d))) if d and rss else '':>8}"
        print(line)
    line = f"{'daemon: CPU while idle':{w0}}"
    for c in clusters:
        d = daemon.get(c.key)
        txt = f"{d['idle_cpu']:.0f} ms in {d['idle_s']:.0f} s" if d and "idle_cpu" in d else "-"
        line += f"{txt:>{wc}}{'':8}"
    print(line)
    line = f"{'daemon: passes / event overruns':{w0}}"
    for c in clusters:
        d = daemon.get(c.key)
        txt = f"{d['passes']} / {d['overruns']}" if d else "-"
        line += f"{txt:>{wc}}{'':8}"
    print(line)
    line = f"{'routes: ours / in table after --once':{w0}}"
    for c in clusters:
        r = results[c.key][0]
        line += f"{str(c.n_batch) + ' / ' + str(r['dump']['routes']):>{wc}}{'':8}"
    print(line)
    print()
    print("ratios, per run (each run's pair measured back to back), median (min-max)")
    print(f"{'':{w0 + 4}}" + "".join(f"{label(c.routes):>{wc}}" for c in clusters))

    def ratio(name, num, den, target):
        line = f"{name:{w0 + 4}}"
        for c in clusters:
            v = vals(lambda r: num(r) / den(r), [r for r in results[c.key] if vals(den, [r]) and den(r)])
            line += f"{fmt_ratio(stat(v)):>{wc}}"
        print(line + f"   target {target}")

    ratio("apply / kernel floor", lambda r: r["cold"]["apply"], lambda r: r["floor"]["apply"], "<= 1.3")
    ratio("whole cold --once / (floor + yaml scan)", lambda r: r["cold"]["wall"],
          lambda r: r["floor"]["apply"] + r["scan"]["scan_ms"], "<= 1.3")
    ratio("whole cold --once / ip -batch", lambda r: r["cold"]["wall"], lambda r: r["ipbatch"]["wall"], "well < 1")
    ratio("no-op --once / bare dump (ip | wc)", lambda r: r["noop"]["wall"], lambda r: r["ipshow"]["wall"],
          "close to 1")
    ratio("no-op reconcile / dump + compare (writer)",
          lambda r: r["noop"]["observe"] + r["noop"]["plan"] + r["noop"]["apply"],
          lambda r: r["cmp"]["dump_ms"], "<= 2")
    line = f"{'peak RSS of cold --once, MB':{w0 + 4}}"
    for c in clusters:
        line += f"{fmt_time(stat([r['cold']['rss'] for r in results[c.key]])):>{wc}}"
    print(line + "   target <= 32 at 100k")
    if clusters[0].fam.v6:
        print("(IPv6: rtnl-writer has no IPv6 hash-set compare and waits for IPv4 routes only:"
              " no dump + compare row, no daemon mode; routes in table count IPv6 routes of every table)")


def fmt_ratio(s):
    return "-" if s is None else f"{s[0]:.2f} ({s[1]:.2f}-{s[2]:.2f})"


# ---------------------------------------------------------------- main

def main():
    if "--change-cost" in sys.argv[1:]:   # the running daemon's cost per change: bench_change.py
        sys.argv.remove("--change-cost")
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import bench_change
        return bench_change.main()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", help="meson build dir (sets --daemon and --writer)")
    ap.add_argument("--daemon", help="calico-underlayd binary")
    ap.add_argument("--writer", help="rtnl-writer binary")
    ap.add_argument("--scan", help="yaml-scan binary")
    ap.add_argument("--scales", default="10000,100000", help="block routes per scale (default 10000,100000)")
    ap.add_argument("--runs", default="5,3", help="runs per scale (default 5,3)")
    ap.add_argument("--blocks-per-node", type=int, default=20, help="default 20 (100k routes: 5,000 nodes)")
    ap.add_argument("--foreign", type=int, default=100, help="foreign routes: half BIRD block routes, half static")
    ap.add_argument("--changes", type=int, default=5, help="single-block changes timed in daemon mode")
    ap.add_argument("--idle", type=float, default=60, help="seconds of idle daemon CPU (largest scale)")
    ap.add_argument("--no-daemon", action="store_true", help="skip daemon mode")
    ap.add_argument("--keep", action="store_true", help="keep the generated files")
    ap.add_argument("--no-ipam-blocks", action="store_true",
                    help="no IPAMBlocks (and so no borrowed addresses) in the cluster")
    ap.add_argument("--family", choices=("4", "6", "both"), default="both",
                    help="underlay pool: IPv4 (10.0.0.0/9, /26 blocks), IPv6 (fd00:10::/48, /122 "
                         "blocks, nodes' ipv6Address on the uplink's /64) or both halves (default)")
    args = ap.parse_args()
    if args.build:
        args.daemon = args.daemon or os.path.join(args.build, "daemon", "calico-underlayd")
        args.writer = args.writer or os.path.join(args.build, "tests", "bench", "rtnl-writer")
        args.scan = args.scan or os.path.join(args.build, "tests", "bench", "yaml-scan")
    if not args.daemon or not args.writer or not args.scan:
        ap.error("give --build DIR (or --daemon, --writer and --scan)")
    for path in (args.daemon, args.writer, args.scan):
        if not os.access(path, os.X_OK):
            ap.error(f"{path}: not built")
    if os.geteuid() != 0:
        print("bench_scale: needs root (network namespaces); skipped")
        return 77
    scales = [int(s) for s in args.scales.split(",")]
    runs = [int(r) for r in args.runs.split(",")]
    args.runs_list = [runs[min(i, len(runs) - 1)] for i in range(len(scales))]

    args.load_before = os.getloadavg()[0]   # other work on the machine shows in the spread
    b = Bench(args)
    t_all = time.monotonic()
    results, daemon, clusters = {}, {}, []
    families = {"4": [False], "6": [True], "both": [False, True]}[args.family]
    try:
        for v6 in families:
            for i, n in enumerate(scales):
                t = time.monotonic()
                c = Cluster(b.top, n, args.blocks_per_node, args.foreign, ipam=not args.no_ipam_blocks, v6=v6)
                clusters.append(c)
                tag = f"[{n} routes{', IPv6' if v6 else ''}]"
                print(f"{tag} {c.nodes} nodes, files written in {time.monotonic() - t:.1f} s", file=sys.stderr)
                results[c.key] = []
                for k in range(args.runs_list[i]):
                    results[c.key].append(b.round(c))
                    r = results[c.key][-1]
                    floor = f"{r['floor']['apply']:.0f} ms" if "floor" in r else "-"
                    print(f"{tag} run {k + 1}: --once {r['cold']['wall']:.0f} ms (apply "
                          f"{r['cold']['apply']:.0f}), ip -batch {r['ipbatch']['wall']:.0f} ms, floor "
                          f"{floor}, no-op {r['noop']['wall']:.0f} ms", file=sys.stderr)
                if not args.no_daemon and not v6:   # rtnl-writer wait follows IPv4 routes only
                    idle = args.idle if i == len(scales) - 1 else 0
                    daemon[c.key] = b.daemon_round(c, args.changes, idle)
                    print(f"{tag} daemon: changes {['%.0f' % x for x in daemon[c.key]['change']]} ms",
                          file=sys.stderr)
    finally:
        b.cleanup()
    if not args.no_daemon:
        for n in scales[:-1]:
            daemon.get((4, n), {}).pop("idle_cpu", None)
    for v6 in families:
        report(args, [c for c in clusters if c.fam.v6 == v6], results, daemon)
    print(f"\n(total benchmark time {time.monotonic() - t_all:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
