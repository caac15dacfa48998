#!/usr/bin/env python3
"""What one change costs the running daemon at cluster scale (issue 16), on a real
kernel and a real etcd (run on demand, as root; `bench_scale.py --change-cost` runs it).

Every figure is taken twice, side by side: with the daemon as it is (the incremental
path, where it has one) and with CALICO_UNDERLAY_FULL_PASSES=1 (every change reloads
every resource, rebuilds the model, dumps and plans everything: the reference path). A
daemon that does not know the variable runs its only path in both columns.

The cluster is bench_scale.py's (N blocks, 20 per node on one /16, an underlay and an
IPIP overlay pool, IPAMBlocks with a borrowed address every 200 blocks, foreign BIRD and
static routes), beside a 40-block cluster (2 nodes) that gives a change's fixed cost:

  * etcd: a real etcd-server (Debian's) in the namespace on 127.0.0.1 with TLS and
    client certificates, the keys in Calico's layout (ippools, nodes, BlockAffinities
    /calico/ipam/v2/host/NODE/ipv4/block/CIDR, IPAM blocks /calico/ipam/v2/assignment/
    ipv4/block/CIDR), loaded in transactions of 1,000 keys over the JSON gateway.
      - one BlockAffinity put (a new block of node-0001's) to its route in the kernel,
        at N blocks and at 40, and the daemon's CPU per change (/proc/PID/stat utime +
        stime over --changes changes, divided);
      - a sustained stream (--rate changes a second for --sustain seconds, a new block
        each): the daemon's CPU in % of one core, p50/p99 put-to-kernel latency, routes
        that never came, and every other rtnetlink notification in the window (routes,
        links, addresses, rules, netconf: "nothing else touched" means 0);
      - peak RSS (VmHWM) after all that (well over 1,000 changes), idle CPU;
      - the daemon started again on the converged node (every route already in the
        kernel): time to its "reconciled: 0 changes", and its peak RSS;
      - cold and no-op `--once` against `etcdctl get --prefix /calico` of the same keys
        (the client's floor) plus rtnl-writer writing the same routes (the kernel's), and
        the peak RSS of both.
  * files, one file per node (5,000 files at 100k: the node, its BlockAffinities and
    IPAM blocks): one node's file rewritten (atomic rename, one more block) to the route
    in the kernel, at N blocks and at 40, CPU per change.
  * files, one big export (bench_scale.py's files): the BlockAffinity list rewritten with
    one more block; the daemon's CPU per change against tests/bench/yaml-scan of that
    file (a bare libyaml event scan: what parsing it again costs at the least).
  * --kube: tests/kube/bench_kube.py's daemon peak RSS at 100k BlockAffinities.

The kernel is watched by nsagent.py listen (rtnetlink notifications, timestamped on
receipt); etcd is written by nsagent.py etcd (one TLS connection, timestamps before the
request). Everything runs in network namespaces named cu-bench-PID-N, deleted (and etcd
and the daemons stopped) on the way out, failures included.

    sudo python3 tests/bench/bench_change.py --build BUILD            (100k, 3 runs)
    sudo python3 tests/bench/bench_change.py --build BUILD --quick    (10k, 1 run, short)
    sudo python3 tests/bench/bench_change.py --build BUILD --only files   (the files rows alone)
"""
import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "etcd"))
import bench_scale as bs  # noqa: E402
import cuetcd as ce  # noqa: E402

AGENT = os.path.join(HERE, "nsagent.py")
ETCD_PORT, PEER_PORT = 2379, 2380
RES = "/calico/resources/v3/projectcalico.org/"
FULL_ENV = {"CALICO_UNDERLAY_FULL_PASSES": "1"}
MODES = (("full", FULL_ENV), ("incr", {}))
WATCH_DEBOUNCE_MAX_MS = 50      # daemon/loop.c: a watch's changes wait at most this
CHANGE_NODE = 1                 # changes add blocks of node-0001's

_procs = []


def kill_all():
    for p in _procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def spawn(argv, **kw):
    p = subprocess.Popen(argv, **kw)
    _procs.append(p)
    return p


def stop(p, sig=signal.SIGTERM, timeout=30):
    if p.poll() is None:
        p.send_signal(sig)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def nsexec(ns, argv):
    return ["ip", "netns", "exec", ns] + argv


# ---------------------------------------------------------------- the agents

class Listener:
    """nsagent.py listen in ns: the kernel's notifications, in order, with times."""

    def __init__(self, ns):
        self.p = spawn(nsexec(ns, [sys.executable, AGENT, "listen"]), stdout=subprocess.PIPE, text=True,
                       bufsize=1)
        if self.p.stdout.readline().strip() != "ready":
            raise RuntimeError("nsagent listen did not start")
        self.events = []
        self.added = {}          # prefix -> first time its route of ours appeared in our table
        self.cv = threading.Condition()
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.p.stdout:
            w = line.split()
            with self.cv:
                self.events.append(w)
                if len(w) == 5 and w[1] == "+route" and w[2] == str(bs.TABLE) and w[3] == str(bs.PROTO):
                    self.added.setdefault(w[4], int(w[0]))
                self.cv.notify_all()

    def wait_route(self, prefix, timeout=60.0):
        deadline = time.monotonic() + timeout
        with self.cv:
            while prefix not in self.added:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cv.wait(left)
            return self.added[prefix]

    def mark(self):
        with self.cv:
            return len(self.events)

    def since(self, mark):
        with self.cv:
            return list(self.events[mark:])

    def close(self):
        stop(self.p)


class EtcdWriter:
    """nsagent.py etcd in ns: transactions over one TLS connection."""

    def __init__(self, ns, pki):
        self.p = spawn(nsexec(ns, [sys.executable, AGENT, "etcd", pki["ca.crt"], pki["client.crt"],
                                   pki["client.key"], str(ETCD_PORT)]),
                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        if self.p.stdout.readline().strip() != "ready":
            raise RuntimeError("nsagent etcd did not start")

    def send(self, req):
        self.p.stdin.write(json.dumps(req) + "\n")
        self.p.stdin.flush()

    def result(self):
        line = self.p.stdout.readline()
        if not line:
            raise RuntimeError(f"nsagent etcd exited ({self.p.wait()})")
        a, b = line.split()
        return int(a), int(b)

    def txn(self, req):
        self.send(req)
        return self.result()

    def put_many(self, items, batch=1000):
        for i in range(0, len(items), batch):
            self.txn({"put": items[i:i + batch]})

    def delete(self, keys, batch=1000):
        for i in range(0, len(keys), batch):
            self.txn({"del": keys[i:i + batch]})

    def close(self):
        self.p.stdin.close()
        stop(self.p)


class EtcdServer:
    def __init__(self, ns, top):
        self.ns = ns
        self.pki = ce.make_pki(os.path.join(top, "pki"))
        # The data on tmpfs: the benchmark measures the daemon, not the disk's fsync.
        self.data = tempfile.mkdtemp(prefix=f"cu-bench-etcd-{os.getpid()}-", dir="/dev/shm")
        self.url = f"https://127.0.0.1:{ETCD_PORT}"
        peer = f"http://127.0.0.1:{PEER_PORT}"
        self.log = os.path.join(top, "etcd.log")
        p = self.pki
        with open(self.log, "w") as log:
            self.p = spawn(nsexec(ns, [
                "etcd", "--name", "cu", "--data-dir", self.data, "--listen-client-urls", self.url,
                "--advertise-client-urls", self.url, "--listen-peer-urls", peer,
                "--initial-advertise-peer-urls", peer, "--initial-cluster", f"cu={peer}",
                "--cert-file", p["server.crt"], "--key-file", p["server.key"], "--client-cert-auth",
                "--trusted-ca-file", p["ca.crt"], "--log-level", "warn", "--max-txn-ops", "1000",
                "--max-request-bytes", str(16 << 20), "--quota-backend-bytes", str(8 << 30),
                "--snapshot-count", "1000000"]), stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while self.ctl("endpoint", "health").returncode != 0:
            if self.p.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"etcd did not start; see {self.log}")
            time.sleep(0.2)

    def ctl_argv(self, *args):
        p = self.pki
        return ["etcdctl", "--endpoints", self.url, "--cacert", p["ca.crt"], "--cert", p["client.crt"],
                "--key", p["client.key"], "--command-timeout", "60s", *args]

    def ctl(self, *args):
        return subprocess.run(nsexec(self.ns, self.ctl_argv(*args)), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=dict(os.environ, ETCDCTL_API="3"))

    def close(self):
        stop(self.p)
        shutil.rmtree(self.data, ignore_errors=True)


# ---------------------------------------------------------------- Calico's keys

def js(v):
    return json.dumps(v, separators=(",", ":"))


def owners(c, per_node):
    return [i // per_node if i // per_node < c.nodes else i % c.nodes for i in range(c.routes)]


def affinity_key(node, cidr):
    return f"/calico/ipam/v2/host/{node}/ipv4/block/{cidr.replace('/', '-')}"


AFFINITY = js({"state": "confirmed", "deleted": False})


def etcd_keys(c, per_node):
    """The same cluster as c's files, in libcalico-go's etcd layout (values as JSON)."""
    meta = {"creationTimestamp": "2024-03-01T10:00:00Z"}

    def pool(name, cidr, ipip, nat):
        return (RES + "ippools/" + name, js({
            "kind": "IPPool", "apiVersion": "projectcalico.org/v3",
            "metadata": dict(meta, name=name, uid=f"{len(name):08x}-0b7e-11ea-8d71-52540045a0c1"),
            "spec": {"cidr": cidr, "blockSize": bs.BLOCK_LEN, "ipipMode": ipip, "vxlanMode": "Never",
                     "natOutgoing": nat, "nodeSelector": "all()", "allowedUses": ["Workload", "Tunnel"]}}))

    keys = [pool("overlay-default", f"{bs.ip4(bs.OVERLAY_NET)}/9", "Always", True),
            pool("underlay-dc1", f"{bs.ip4(bs.UNDERLAY_NET)}/9", "Never", False)]
    for i in range(c.nodes):
        n = bs.node_name(i)
        keys.append((RES + "nodes/" + n, js({
            "kind": "Node", "apiVersion": "projectcalico.org/v3",
            "metadata": dict(meta, name=n, uid=f"{i:08x}-fec1-11e9-a1d8-52540045a0c1",
                             labels={"kubernetes.io/hostname": n, "kubernetes.io/os": "linux",
                                     "topology.kubernetes.io/zone": f"az{1 + i % 3}"}),
            "spec": {"bgp": {"ipv4Address": f"{bs.node_addr(i)}/16",
                             "ipv4IPIPTunnelAddr": bs.ip4(bs.block(bs.OVERLAY_NET, i))},
                     "orchRefs": [{"nodeName": n, "orchestrator": "k8s"}]}})))
        keys.append((affinity_key(n, f"{bs.ip4(bs.block(bs.OVERLAY_NET, i))}/{bs.BLOCK_LEN}"), AFFINITY))
    for i, node in enumerate(owners(c, per_node)):
        cidr = c.fam.block(i)
        keys.append((affinity_key(bs.node_name(node), cidr), AFFINITY))
        host = c.borrowed.get(i)
        alloc = [0, None if host is None else 1] + [None] * 62
        attrs = [{"handle_id": f"k8s-pod-network.c0ffee{i:08x}",
                  "secondary": {"namespace": "default", "node": bs.node_name(node), "pod": f"app-{i:06d}"}}]
        if host is not None:
            attrs.append({"handle_id": f"k8s-pod-network.beef{i:08x}",
                          "secondary": {"namespace": "default", "node": bs.node_name(host),
                                        "pod": f"borrowed-{i:06d}"}})
        keys.append((f"/calico/ipam/v2/assignment/ipv4/block/{cidr.replace('/', '-')}", js({
            "cidr": cidr, "affinity": f"host:{bs.node_name(node)}", "strictAffinity": False,
            "allocations": alloc, "unallocated": [k for k in range(64) if alloc[k] is None],
            "attributes": attrs, "deleted": False})))
    return keys


# ---------------------------------------------------------------- files, one per node

def split_items(path):
    """The items of a List file bench_scale.py wrote, as text."""
    with open(path) as f:
        text = f.read()
    body = text.split("\nitems:\n", 1)[1].rsplit("\nkind: ", 1)[0]
    return ["- " + it + "\n" for it in body[2:].split("\n- ")]


def per_node_files(c, top):
    """c's resources as one file per node (its Node, BlockAffinities, IPAM blocks) and
    the pools' file; returns (config path, resources dir, node-0001's items)."""
    d = tempfile.mkdtemp(dir=top, prefix=f"pernode-{c.routes}-")
    res = os.path.join(d, "resources.d")
    os.makedirs(res)
    shutil.copy(os.path.join(c.res, "10-ippools.yaml"), res)
    by_node = {}
    for name, pat in (("20-nodes.yaml", r"\n    name: (node-\d+)\n"),
                      ("30-blockaffinities.yaml", r"\n    node: (node-\d+)\n"),
                      ("35-ipamblocks.yaml", r"\n    affinity: host:(node-\d+)\n")):
        path = os.path.join(c.res, name)
        if not os.path.exists(path):
            continue
        for it in split_items(path):
            by_node.setdefault(re.search(pat, it)[1], []).append(it)
    for n, items in by_node.items():
        write_list(os.path.join(res, f"{n}.yaml"), items)
    config = os.path.join(d, "config.yaml")
    with open(config, "w") as f:
        f.write(f"nodeName: {bs.node_name(0)}\nuplink: auto\nresources:\n  - resources.d\n")
    return config, res, by_node[bs.node_name(CHANGE_NODE)]


def write_list(path, items, tmp=None):
    with open(tmp or path, "w") as f:
        f.write("apiVersion: v1\nitems:\n")
        f.write("".join(items))
        f.write('kind: List\nmetadata:\n  resourceVersion: ""\n')
    if tmp:
        os.rename(tmp, path)


def affinity_item(c, i):
    import io
    f = io.StringIO()
    bs.Cluster._affinity(f, CHANGE_NODE, bs.UNDERLAY_NET, i, 500000 + i, c.fam)
    return f.getvalue()


# ---------------------------------------------------------------- the daemon

class Daemon:
    def __init__(self, b, ns, config, env, tag, ready=r"reconciled: [1-9]\d* changes?"):
        self.b = b
        self.log_path = os.path.join(b.top, f"daemon-{tag}.log")
        e = dict(os.environ, RUNTIME_DIRECTORY=b.run_dir(), CALICO_UNDERLAY_LOG_LEVEL="info")
        e.update(env)
        for k in ("MALLOC_PERTURB_", "JOURNAL_STREAM", "NOTIFY_SOCKET"):
            e.pop(k, None)
        if not env:
            e.pop("CALICO_UNDERLAY_FULL_PASSES", None)
        with open(self.log_path, "w") as log:
            t0 = time.monotonic()
            self.p = spawn([b.writer, "-n", ns, "exec", b.daemon, "--config", config], env=e, stdout=log,
                           stderr=log)
        bs.Bench._wait_log(self.log_path, ready, 1, self.p, 600)
        self.start_ms = (time.monotonic() - t0) * 1e3

    def cpu(self):
        return bs.Bench._cpu_ms(self.p.pid)

    def rss(self):
        return bs.Bench._hwm_mb(self.p.pid)

    def close(self):
        stop(self.p)


def flush(ns):
    subprocess.run(["ip", "-n", ns, "route", "flush", "table", str(bs.TABLE)], stderr=subprocess.DEVNULL)


def pct(values, q):
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q / 100 * (len(v) - 1))))]


class Changes:
    """New blocks of node-0001's, numbered past the cluster's own."""

    def __init__(self, c):
        self.c, self.next = c, c.routes + 1000

    def take(self):
        i = self.next
        self.next += 1
        return i, self.c.fam.block(i)


def single_changes(d, lst, n, do_change, settle=0.2):
    """n changes one at a time: put-to-kernel ms each, daemon CPU ms per change."""
    time.sleep(0.5)
    lat, missing = [], 0
    cpu0 = d.cpu()
    for _ in range(n):
        t_send, prefix = do_change()
        t = lst.wait_route(prefix)
        if t is None:
            missing += 1
        else:
            lat.append((t - t_send) / 1e6)
        time.sleep(settle)
    time.sleep(0.5)
    return {"lat": lat, "cpu": (d.cpu() - cpu0) / n, "missing": missing}


def etcd_round(b, ns, srv, c, env, tag, a, sustained):
    """A daemon on etcd: single changes, then (sustained) the stream, idle CPU, RSS."""
    out = {}
    flush(ns)
    w = EtcdWriter(ns, srv.pki)
    ch = Changes(c)
    added = []
    # A fresh node (the --once rows before set proxy_arp): the start then takes a second
    # full pass over every route, for the kernel's own RTM_NEWLINK after that change.
    subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.conf.eth0.proxy_arp=0"], check=True)
    d = Daemon(b, ns, srv.config, env, tag)
    lst = Listener(ns)
    try:
        out["start"] = d.start_ms
        time.sleep(2)  # the second pass (above) included
        out["rss_start"] = d.rss()

        def one():
            i, prefix = ch.take()
            key = affinity_key(bs.node_name(CHANGE_NODE), prefix)
            added.append(key)
            t_send, _ = w.txn({"put": [[key, AFFINITY]]})
            return t_send, prefix

        out.update(single_changes(d, lst, a.changes, one))
        if sustained:
            out.update(sustain(d, lst, w, ch, added, a))
            time.sleep(1)
            cpu0 = d.cpu()
            time.sleep(a.idle)
            out["idle"] = d.cpu() - cpu0
        out["rss"] = d.rss()
        out["n_changes"] = len(added)
        if sustained:
            # Started again with every route in place: the whole dump is read, nothing
            # is written (what a restart or an upgrade costs on a converged node).
            d.close()
            d = Daemon(b, ns, srv.config, env, tag + "-restart", ready=r"reconciled: 0 changes")
            out["restart"], out["rss_restart"] = d.start_ms, d.rss()
    finally:
        d.close()
        lst.close()
        w.delete(added)
        w.close()
    return out


def sustain(d, lst, w, ch, added, a):
    n = int(a.rate * a.sustain)
    prefixes = []
    t0 = time.monotonic_ns() + 200_000_000
    mark = lst.mark()
    cpu0, wall0 = d.cpu(), time.monotonic()
    reqs = []
    for k in range(n):
        i, prefix = ch.take()
        key = affinity_key(bs.node_name(CHANGE_NODE), prefix)
        added.append(key)
        prefixes.append(prefix)
        reqs.append({"put": [[key, AFFINITY]], "at": t0 + int(k * 1e9 / a.rate)})
    # Written from a thread: the agent paces them and answers meanwhile (no pipe deadlock).
    feeder = threading.Thread(target=lambda: [w.send(r) for r in reqs], daemon=True)
    feeder.start()
    sends = [w.result()[0] for _ in range(n)]
    feeder.join()
    deadline = time.monotonic() + 15   # after the last put, for every route still missing
    seen = [lst.wait_route(p, timeout=max(0.0, deadline - time.monotonic())) for p in prefixes]
    time.sleep(0.2)
    cpu, wall = d.cpu() - cpu0, time.monotonic() - wall0
    lat = [(t - s) / 1e6 for t, s in zip(seen, sends) if t is not None]
    expected = {p for p in prefixes}
    others = [e for e in lst.since(mark)
              if not (len(e) == 5 and e[1] == "+route" and e[2] == str(bs.TABLE) and e[4] in expected)]
    return {"s_cpu_pct": 100 * cpu / 1000 / wall, "s_p50": pct(lat, 50), "s_p99": pct(lat, 99),
            "s_missing": sum(1 for t in seen if t is None), "s_others": len(others),
            "s_others_sample": [" ".join(e[1:]) for e in others[:5]], "s_rate": n / (sends[-1] - sends[0]) * 1e9}


def files_round(b, ns, config, change, env, tag, a, n):
    """A daemon on files: n changes made by change() (a file rewritten), RSS."""
    flush(ns)
    d = Daemon(b, ns, config, env, tag)
    lst = Listener(ns)
    try:
        out = {"start": d.start_ms}
        out.update(single_changes(d, lst, n, change, settle=0.3))
        out["rss"] = d.rss()
    finally:
        d.close()
        lst.close()
    return out


# ---------------------------------------------------------------- one run

def etcd_section(b, c, a, big, only_once=False):
    """Every etcd figure of one run at cluster c (big: also the stream and --once;
    only_once: --once and its floors alone)."""
    res = {}
    ns = b.netns(c)
    srv = None
    try:
        srv = EtcdServer(ns, os.path.join(b.top, f"etcd-{c.routes}-{b.seq}"))
        t = time.monotonic()
        keys = etcd_keys(c, a.blocks_per_node)
        w = EtcdWriter(ns, srv.pki)
        w.put_many(keys)
        w.close()
        print(f"[etcd {c.routes}] {len(keys)} keys loaded in {time.monotonic() - t:.1f} s", file=sys.stderr)
        cfg = os.path.join(b.top, f"calicoctl-{c.routes}.cfg")
        with open(cfg, "w") as f:
            f.write(ce.calicoctl_cfg(srv.url, srv.pki))
        srv.config = os.path.join(b.top, f"etcd-{c.routes}.yaml")
        with open(srv.config, "w") as f:
            f.write(f"nodeName: {bs.node_name(0)}\nuplink: auto\ndatastore: etcdv3\ncalicoctlConfig: {cfg}\n")
        if big and not a.no_once:
            res["once"] = once_section(b, ns, srv, c)
        for mode, env in () if only_once else a.modes:
            r = etcd_round(b, ns, srv, c, env, f"etcd-{c.routes}-{mode}", a, big)
            res[mode] = r
            print(f"[etcd {c.routes} {mode}] change {med(r['lat'])} ms, cpu/change {r['cpu']:.1f} ms"
                  + (f", stream cpu {r['s_cpu_pct']:.1f}% p50 {r['s_p50']} p99 {r['s_p99']} missing "
                     f"{r['s_missing']} others {r['s_others']} {r['s_others_sample']}" if big else ""),
                  file=sys.stderr)
    finally:
        if srv:
            srv.close()
        b.drop(ns)
    return res


def once_section(b, ns, srv, c):
    """Cold and no-op --once from etcd, both paths, beside etcdctl get and the writer."""
    out = {}
    for mode, env in b.args.modes:
        flush(ns)
        run_dir = b.run_dir()
        e = dict(env, RUNTIME_DIRECTORY=run_dir, CALICO_UNDERLAY_TIMINGS="1")
        out[mode] = {}
        for kind in ("cold", "noop"):
            r = b.run(ns, [b.daemon, "--config", srv.config, "--once"], env=e)
            if r["exit"] != 0 or r.get("failed", 0):
                raise RuntimeError(f"--once from etcd failed (exit {r['exit']}):\n{r['stderr'][-3000:]}")
            out[mode][kind] = r
            phases = " ".join(line for line in r["stderr"].splitlines() if line.startswith("timing"))
            print(f"[once {mode} {kind}] {r['wall']:.0f} ms (user {r['user']:.0f} sys {r['sys']:.0f}), "
                  f"{r['rss']:.1f} MB, {phases}", file=sys.stderr)
        cmp = b.run(ns, [b.writer, "dump", c.batch], stdout=subprocess.PIPE)
        m = re.search(r"matched=(\d+) wanted=(\d+)", cmp["stdout"])
        if not m or m[1] != m[2]:
            raise RuntimeError("--once from etcd did not give the files' routes: " + cmp["stdout"])
    flush(ns)
    w = b.run(ns, [b.writer, "add", c.batch], stdout=subprocess.PIPE)
    out["floor"] = float(re.search(r"apply_ms=(\S+)", w["stdout"])[1])
    get = b.run(ns, srv.ctl_argv("get", "--prefix", "/calico"), env={"ETCDCTL_API": "3"})
    if get["exit"] != 0:
        raise RuntimeError("etcdctl get failed: " + get["stderr"][-2000:])
    out["get"], out["get_rss"] = get["wall"], get["rss"]
    print(f"[once] etcdctl get {get['wall']:.0f} ms (user {get['user']:.0f} sys {get['sys']:.0f}), kernel floor {out['floor']:.0f} ms", file=sys.stderr)
    flush(ns)
    return out


def files_section(b, c, a, big):
    """One file per node (both scales), and (big) one big export rewritten."""
    res = {}
    ns = b.netns(c)
    try:
        config, resdir, items = per_node_files(c, b.top)
        ch = Changes(c)
        extra = []

        def node_file():
            i, prefix = ch.take()
            extra.append(affinity_item(c, i))
            t = time.monotonic_ns()
            write_list(os.path.join(resdir, f"{bs.node_name(CHANGE_NODE)}.yaml"), items + extra,
                       tmp=os.path.join(resdir, ".tmp"))
            return t, prefix

        for mode, env in a.modes:
            res["node_" + mode] = files_round(b, ns, config, node_file, env, f"files-{c.routes}-{mode}", a,
                                              a.file_changes)
        if big:
            path = os.path.join(c.res, "30-blockaffinities.yaml")
            base = split_items(path)
            ch2 = Changes(c)
            extra2 = []

            def big_file():
                i, prefix = ch2.take()
                extra2.append(affinity_item(c, i))
                t = time.monotonic_ns()
                write_list(path, base + extra2, tmp=os.path.join(c.dir, ".30.tmp"))
                return t, prefix

            for mode, env in a.modes:
                res["big_" + mode] = files_round(b, ns, c.config, big_file, env, f"big-{c.routes}-{mode}", a,
                                                 a.file_changes)
            scan = b.run(ns, [b.scan, path], stdout=subprocess.PIPE)
            res["scan"] = float(re.search(r"scan_ms=(\S+)", scan["stdout"])[1])
            res["big_mb"] = os.path.getsize(path) / 1e6
            write_list(path, base)   # as bench_scale.py wrote it
    finally:
        b.drop(ns)
    return res


# ---------------------------------------------------------------- report

def med(v):
    v = [x for x in (v or []) if x is not None]
    return statistics.median(v) if v else None


def fmt(v, unit=""):
    if v is None:
        return "-"
    if isinstance(v, int):
        return str(v)
    return f"{v:.0f}{unit}" if abs(v) >= 100 else f"{v:.1f}{unit}"


def report(a, runs, kube_rss, out=sys.stdout):
    def col(section, mode, f):
        vals = []
        for r in runs:
            try:
                vals.append(f(r[section][mode]))
            except (KeyError, TypeError):
                pass
        return med([v for v in vals if v is not None])

    def fcol(mode, f):
        vals = []
        for r in runs:
            try:
                vals.append(f(r, mode))
            except (KeyError, TypeError, ZeroDivisionError):
                pass
        return med([v for v in vals if v is not None])

    big, small = f"etcd{a.scale}", "etcd40"
    fbig, fsmall = f"files{a.scale}", "files40"
    n = bs.label(a.scale)
    rows = [
        ("etcd: 1 put -> kernel, 40 blocks (ms)", lambda r, m: med(r[small][m]["lat"]), ""),
        (f"etcd: 1 put -> kernel, {n} (ms)", lambda r, m: med(r[big][m]["lat"]), ""),
        ("  difference (ms)", lambda r, m: med(r[big][m]["lat"]) - med(r[small][m]["lat"]), "<= +10"),
        (f"etcd: daemon CPU per change, {n} (ms)", lambda r, m: r[big][m]["cpu"], "<= 2"),
        (f"etcd stream {a.rate:g}/s for {a.sustain:g} s: CPU (% of a core)", lambda r, m: r[big][m]["s_cpu_pct"],
         "<= 10"),
        ("  put -> kernel p50 (ms)", lambda r, m: r[big][m]["s_p50"], ""),
        ("  put -> kernel p99 (ms)", lambda r, m: r[big][m]["s_p99"], f"<= {WATCH_DEBOUNCE_MAX_MS + 50}"),
        ("  routes that never came", lambda r, m: r[big][m]["s_missing"], "0"),
        ("  other kernel notifications", lambda r, m: r[big][m]["s_others"], "0"),
        ("etcd: daemon peak RSS at start, a fresh node (MB)", lambda r, m: r[big][m]["rss_start"], "<= 32"),
        ("etcd: daemon peak RSS after the changes (MB)", lambda r, m: r[big][m]["rss"], "<= 32"),
        ("etcd: daemon restarted on a converged node: to 0 changes (ms)", lambda r, m: r[big][m]["restart"], ""),
        ("  its peak RSS (MB): a full pass over every route", lambda r, m: r[big][m]["rss_restart"], "<= 32"),
        ("etcd: daemon idle CPU (ms in %gs)" % a.idle, lambda r, m: r[big][m]["idle"], "0"),
        ("etcd: cold --once (ms)", lambda r, m: r[big]["once"][m]["cold"]["wall"], ""),
        ("  / (etcdctl get + kernel floor)", lambda r, m: r[big]["once"][m]["cold"]["wall"] /
         (r[big]["once"]["get"] + r[big]["once"]["floor"]), "<= 1.3"),
        ("etcd: no-op --once (ms)", lambda r, m: r[big]["once"][m]["noop"]["wall"], ""),
        ("  / etcdctl get", lambda r, m: r[big]["once"][m]["noop"]["wall"] / r[big]["once"]["get"], "<= 1.3"),
        ("  etcdctl get --prefix /calico (ms)", lambda r, m: r[big]["once"]["get"], ""),
        ("  kernel floor: rtnl-writer (ms)", lambda r, m: r[big]["once"]["floor"], ""),
        ("etcd: --once peak RSS (MB)", lambda r, m: r[big]["once"][m]["cold"]["rss"], "<= 32"),
        ("  no-op: every route already in the kernel (MB)", lambda r, m: r[big]["once"][m]["noop"]["rss"],
         "<= 32"),
        ("files, 1 per node: 1 file -> kernel, 40 blocks (ms)", lambda r, m: med(r[fsmall]["node_" + m]["lat"]),
         ""),
        (f"files, 1 per node: 1 file -> kernel, {n} (ms)", lambda r, m: med(r[fbig]["node_" + m]["lat"]), ""),
        ("  difference (ms)", lambda r, m: med(r[fbig]["node_" + m]["lat"]) - med(r[fsmall]["node_" + m]["lat"]),
         "<= +20"),
        ("  daemon CPU per change (ms)", lambda r, m: r[fbig]["node_" + m]["cpu"], ""),
        ("  daemon peak RSS (MB)", lambda r, m: r[fbig]["node_" + m]["rss"], "<= 32"),
        ("files, 1 big export: daemon CPU per change (ms)", lambda r, m: r[fbig]["big_" + m]["cpu"], ""),
        ("  bare libyaml scan of the file (ms)", lambda r, m: r[fbig]["scan"], ""),
        ("  CPU / (1.1 x scan + 20 ms)", lambda r, m: r[fbig]["big_" + m]["cpu"] / (1.1 * r[fbig]["scan"] + 20),
         "<= 1"),
        ("  1 change -> kernel (ms)", lambda r, m: med(r[fbig]["big_" + m]["lat"]), ""),
        ("  daemon peak RSS (MB)", lambda r, m: r[fbig]["big_" + m]["rss"], "<= 32"),
    ]
    if a.only == "once":
        first = next(i for i, row in enumerate(rows) if "cold --once" in row[0])
        last = next(i for i, row in enumerate(rows) if "already in the kernel" in row[0])
        rows = rows[first:last + 1]
    w0, wc = 60, 14
    print(file=out)
    print(f"calico-underlayd change cost (issue 16): {bs.label(a.scale)} ({a.scale // a.blocks_per_node} nodes x "
          f"{a.blocks_per_node} blocks) against 40 blocks, {os.cpu_count()} cores, medians of {len(runs)} run(s), "
          f"load average {a.load_before:.2f} before, {os.getloadavg()[0]:.2f} after", file=out)
    print(f"{'measurement':{w0}}{'full path':>{wc}}{'incremental':>{wc}}   target", file=out)
    for name, f, target in rows:
        print(f"{name:{w0}}{fmt(fcol('full', f)):>{wc}}{fmt(fcol('incr', f)):>{wc}}   {target}", file=out)
    if kube_rss is not None:
        print(f"{'kubernetes: daemon peak RSS, bench_kube.py (MB)':{w0}}{'':>{wc}}{fmt(kube_rss):>{wc}}   <= 32", file=out)
    samples = {o for r in runs for m in ("full", "incr") for o in r.get(big, {}).get(m, {}).get("s_others_sample", [])}
    if samples:
        print(f"other kernel notifications seen in the stream, e.g.: {sorted(samples)[:5]}", file=out)
    print("(full path: CALICO_UNDERLAY_FULL_PASSES=1; a daemon without that variable runs one path in both "
          "columns; --once always reads everything)", file=out)


def kube_rss(a):
    r = subprocess.run([sys.executable, os.path.join(HERE, "..", "kube", "bench_kube.py"), "--build", a.build,
                        "--nodes", str(a.scale // a.blocks_per_node), "--affinities", str(a.scale)],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=3600)
    m = re.search(r"VmHWM ([\d.]+) MB", r.stdout)
    print(r.stdout.strip()[-1500:], file=sys.stderr)
    return float(m[1]) if m else None


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", required=True, help="meson build dir (an optimised build without sanitizers)")
    ap.add_argument("--scale", type=int, default=100000, help="block routes (default 100000)")
    ap.add_argument("--runs", type=int, default=3, help="runs; medians are printed (default 3)")
    ap.add_argument("--blocks-per-node", type=int, default=20)
    ap.add_argument("--changes", type=int, default=50, help="single etcd changes per daemon (default 50)")
    ap.add_argument("--file-changes", type=int, default=10, help="single file changes per daemon (default 10)")
    ap.add_argument("--rate", type=float, default=50, help="changes a second in the stream (default 50)")
    ap.add_argument("--sustain", type=float, default=60, help="seconds of the stream (default 60)")
    ap.add_argument("--idle", type=float, default=10, help="seconds of idle CPU (default 10)")
    ap.add_argument("--kube", action="store_true", help="also tests/kube/bench_kube.py's peak RSS at the scale")
    ap.add_argument("--quick", action="store_true",
                    help="10k blocks, 1 run, 20 changes, a 10 s stream (overrides those options)")
    ap.add_argument("--only", choices=("etcd", "files", "once"),
                    help="only that datastore's figures (files: no etcd-server needed, no 100k etcd load); once: "
                         "only the cold and no-op --once from etcd against etcdctl get and the kernel floor")
    ap.add_argument("--keep", action="store_true", help="keep the generated files")
    ap.add_argument("--scale-only", action="store_true", help="no 40-block cluster and no --once (memory, CPU)")
    ap.add_argument("--path", choices=("full", "incr"), help="only that column (the other prints -)")
    a = ap.parse_args()
    if a.quick:
        a.scale, a.runs, a.changes, a.file_changes, a.sustain = 10000, 1, 20, 5, 10
    a.daemon = os.path.join(a.build, "daemon", "calico-underlayd")
    a.writer = os.path.join(a.build, "tests", "bench", "rtnl-writer")
    a.scan = os.path.join(a.build, "tests", "bench", "yaml-scan")
    a.foreign, a.no_ipam_blocks = 100, False
    a.modes = tuple(m for m in MODES if not a.path or m[0] == a.path)
    a.no_once = a.scale_only
    for path in (a.daemon, a.writer, a.scan):
        if not os.access(path, os.X_OK):
            ap.error(f"{path}: not built")
    if os.geteuid() != 0:
        print("bench_change: needs root (network namespaces); skipped")
        return 77
    for tool in ("etcd", "etcdctl", "openssl") if a.only != "files" else ():
        if not shutil.which(tool):
            print(f"bench_change: needs {tool} (Debian: etcd-server etcd-client openssl); skipped")
            return 77
    a.load_before = os.getloadavg()[0]
    b = bs.Bench(a)
    t_all = time.monotonic()
    runs = []

    def on_term(sig, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        big = bs.Cluster(b.top, a.scale, a.blocks_per_node, a.foreign)
        small = bs.Cluster(b.top, 40, a.blocks_per_node, a.foreign)
        for k in range(a.runs):
            r = {}
            if a.only == "once":
                r[f"etcd{a.scale}"] = etcd_section(b, big, a, True, only_once=True)
                runs.append(r)
                print(f"run {k + 1} of {a.runs} done ({time.monotonic() - t_all:.0f} s)", file=sys.stderr)
                continue
            if a.only != "files":
                if not a.scale_only:
                    r["etcd40"] = etcd_section(b, small, a, False)
                r[f"etcd{a.scale}"] = etcd_section(b, big, a, True)
            if a.only != "etcd":
                if not a.scale_only:
                    r["files40"] = files_section(b, small, a, False)
                r[f"files{a.scale}"] = files_section(b, big, a, True)
            runs.append(r)
            print(f"run {k + 1} of {a.runs} done ({time.monotonic() - t_all:.0f} s)", file=sys.stderr)
            if k + 1 < a.runs:   # the figures so far, should the rest be cut short
                report(a, runs, None, out=sys.stderr)
        kr = kube_rss(a) if a.kube else None
    finally:
        kill_all()
        b.cleanup()
    report(a, runs, kr)
    print(f"\n(total benchmark time {time.monotonic() - t_all:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
