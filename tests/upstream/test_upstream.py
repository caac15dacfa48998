#!/usr/bin/env python3
"""--upstream-routes against real routers and a real kernel (root; exit 77 otherwise).

Each case builds, in network namespaces of its own (tests/integration/cuit.py):

    ext (172.16.9.2) --- sw (172.16.9.1, router; bridge br0 192.168.50.1/24) --- n1, n2, n3

n1..n3 are nodes (eth0 192.168.50.1x/24, default route via the router) with pods in
namespaces of their own, wired as Calico wires them (a cali* veth with proxy ARP and a
/32 route on the node); ext is a host behind the router. The router knows nothing about the
pools: only the routes calico-underlayd prints make the pods reachable from ext.

- FRR (zebra + staticd, `vtysh -f` of the frr output; FRR's -N pathspace keeps its
  sockets in /var/run/frr/<namespace>/) and BIRD 2 (the bird output included in a
  configuration with a kernel protocol) route ext's pings to a pod on every node,
  a borrowed address to the node that hosts it, not to its block's node.
- --since over a sequence of claims, releases, borrowed addresses moving and a node
  changing address: for every syntax, applying the change to the previous routes (a
  model of each syntax's commands, strict: a removal must find its route, an addition
  must not) gives exactly the full output; the ip-batch form is applied to a real
  router namespace as well, with `ip -batch`, and the kernel's routes compared.
- The mode opens no netlink socket (strace) and runs as an unprivileged user.
- The daemon keeps upstreamRoutesFile: the same JSON, replaced (rename) when a block is
  claimed, untouched (same inode) on a reload that changes nothing.

Needs frr, strace and BIRD 2 unpacked by `sh tests/deps.sh upstream` (run here; the
case skips when that fails). Standard library only.
"""
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import cuit  # noqa: E402
from cuit import Netns, veth, ping, wait_for  # noqa: E402

SRCDIR = os.environ.get("SRCDIR") or os.path.join(os.path.dirname(__file__), "..", "..")
BIRD2_ROOT = "/var/cache/calico-underlay-test/bird2"
SYNTAXES = ["text", "json", "ios", "vrp", "junos", "frr", "bird", "ip-batch"]
POOL = "10.244.0.0/24"


def deps():
    """frr, strace and BIRD 2 (unpacked, it conflicts with BIRD 1.6): a reason to skip, or None."""
    p = subprocess.run(["sh", os.path.join(SRCDIR, "tests", "deps.sh"), "upstream"],
                       capture_output=True, text=True)
    if p.returncode != 0:
        return "tests/deps.sh upstream failed: %s" % (p.stderr or p.stdout).strip()
    for tool in ("/usr/lib/frr/zebra", "/usr/lib/frr/staticd", "/usr/bin/vtysh",
                 BIRD2_ROOT + "/usr/sbin/bird"):
        if not os.access(tool, os.X_OK):
            return "%s missing" % tool
    return None


# ---------------------------------------------------------------- resources

def ipam_block(cidr, affine, hosts):
    """An IPAMBlock as kubectl prints it: hosts maps an ordinal to the node hosting it."""
    ordinals = sorted(hosts)
    allocations = ["null"] * ipaddress.ip_network(cidr).num_addresses
    for i, o in enumerate(ordinals):
        allocations[o] = str(i)
    attrs = "".join("  - secondary: {node: %s}\n" % hosts[o] for o in ordinals)
    return ("---\napiVersion: crd.projectcalico.org/v1\nkind: IPAMBlock\n"
            "metadata: {name: %s}\nspec:\n  cidr: %s\n  affinity: 'host:%s'\n"
            "  allocations: [%s]\n  attributes:\n%s" % (
                cidr.replace(".", "-").replace("/", "-"), cidr, affine, ", ".join(allocations), attrs))


def cluster_yaml(nodes, blocks, borrowed=()):
    """nodes: {name: address or None}; blocks: [(cidr, node)]; borrowed: [(block cidr,
    affine node, address, hosting node)]."""
    docs = [cuit.yaml_list("IPPoolList", [cuit.ippool("underlay", POOL)])]
    docs.append(cuit.yaml_list("NodeList", [
        cuit.calico_node(n, a + "/24") if a else
        "- apiVersion: projectcalico.org/v3\n  kind: Node\n  metadata:\n    name: %s" % n
        for n, a in sorted(nodes.items())]))
    docs.append(cuit.yaml_list("BlockAffinityList", [cuit.block_affinity(n, c) for c, n in blocks],
                               api="crd.projectcalico.org/v1"))
    text = "---\n".join(docs)
    for cidr, affine, addr, host in borrowed:
        net = ipaddress.ip_network(cidr)
        text += ipam_block(cidr, affine, {int(ipaddress.ip_address(addr)) - int(net.network_address): host})
    return text


class Tool:
    """calico-underlayd with its settings and resources in a folder of its own."""

    def __init__(self, extra_settings=""):
        self.dir = tempfile.mkdtemp(prefix=cuit.PREFIX)
        cuit._tmpdirs.append(self.dir)
        os.chmod(self.dir, 0o755)
        os.mkdir(os.path.join(self.dir, "resources.d"))
        self.config = os.path.join(self.dir, "config.yaml")
        with open(self.config, "w") as f:
            f.write("nodeName: n1\nresources: [resources.d]\ndatastore: files\n" + extra_settings)

    def write(self, text):
        path = os.path.join(self.dir, "resources.d", "cluster.yaml")
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.chmod(path + ".tmp", 0o644)
        os.rename(path + ".tmp", path)

    def path(self, name):
        return os.path.join(self.dir, name)

    def run(self, *args, rc=0, prefix=(), env=None):
        cmd = list(prefix) + cuit.DAEMON_WRAPPER + [cuit.daemon_path(), "--config", self.config,
                                                     "--upstream-routes"] + list(args)
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60 * cuit.TIMEOUT_SCALE,
                           env=dict(os.environ, **(env or {})))
        res = cuit.Result(cmd, p)
        if cuit.WRAPPER_ERROR_RC is not None and p.returncode == cuit.WRAPPER_ERROR_RC:
            raise AssertionError("DAEMON_WRAPPER reported errors\n%s" % res)
        if rc is not None and p.returncode != rc:
            raise AssertionError("expected exit %d\n%s" % (rc, res))
        return res


# ---------------------------------------------------------------- a model of each syntax

def mask_len(mask):
    return ipaddress.ip_network("0.0.0.0/%s" % mask).prefixlen


def canon(prefix):
    return str(ipaddress.ip_network(prefix))


def parse_line(syntax, line):
    """One command: ('add'|'del', prefix, via or None), or None for a comment or a
    blank line. Anything else is an error."""
    line = line.strip()
    if not line or line[0] in "#!":
        return None
    pats = {
        "ios": [(r"ip route (\S+) (\S+) (\S+) name (\S+)$", "add4m"), (r"no ip route (\S+) (\S+) (\S+)$", "del4m"),
                (r"ipv6 route (\S+) (\S+) name (\S+)$", "add"), (r"no ipv6 route (\S+) (\S+)$", "del")],
        "vrp": [(r"ipv?6? ?route-static (\S+) (\d+) (\S+) description (\S+)$", "addl"),
                (r"undo ipv?6? ?route-static (\S+) (\d+) (\S+)$", "dell")],
        "junos": [(r"set routing-options (?:rib inet6\.0 )?static route (\S+) next-hop (\S+)$", "add"),
                  (r"delete routing-options (?:rib inet6\.0 )?static route (\S+)$", "delp")],
        "frr": [(r"ipv?6? route (\S+) (\S+)$", "add"), (r"no ipv?6? route (\S+) (\S+)$", "del")],
        "ip-batch": [(r"route replace (\S+) via (\S+) proto static$", "add"),
                     (r"route del (\S+) via (\S+)$", "del")],
        "text": [(r"\+ (\S+) via (\S+) node (\S+)( \(borrowed\))?$", "add"),
                 (r"- (\S+) via (\S+) node (\S+)( \(borrowed\))?$", "del"),
                 (r"(\S+) via (\S+) node (\S+)( \(borrowed\))?$", "add")],
    }[syntax]
    for pat, kind in pats:
        m = re.match(pat, line)
        if not m:
            continue
        g = m.groups()
        if kind in ("add4m", "del4m"):
            return (kind[:3], canon("%s/%d" % (g[0], mask_len(g[1]))), g[2])
        if kind in ("addl", "dell"):
            return (kind[:3], canon("%s/%s" % (g[0], g[1])), g[2])
        if kind == "delp":
            return ("del", canon(g[0]), None)
        return (kind, canon(g[0]), g[1])
    raise AssertionError("%s: not a command of that syntax: %r" % (syntax, line))


def bird_routes(text):
    return {canon(p): v for p, v in re.findall(r"route (\S+) via (\S+);", text)}


def state_of(syntax, text):
    """The routes a full output sets up: {prefix: via}."""
    if syntax == "json":
        return {canon(r["prefix"]): r["via"] for r in json.loads(text)["routes"]}
    if syntax == "bird":
        return bird_routes(text)
    state = {}
    for line in text.splitlines():
        c = parse_line(syntax, line)
        if c:
            assert c[0] == "add", "%s: a removal in a full output: %r" % (syntax, line)
            assert c[1] not in state, "%s: %s twice" % (syntax, c[1])
            state[c[1]] = c[2]
    return state


def apply_change(syntax, state, text):
    """Apply a --since output to state, strictly; the new state."""
    state = dict(state)
    if syntax == "json":
        doc = json.loads(text)
        for r in doc["removed"]:
            assert state.pop(canon(r["prefix"])) == r["via"]
        for r in doc["added"]:
            assert canon(r["prefix"]) not in state
            state[canon(r["prefix"])] = r["via"]
        return state
    if syntax == "bird":
        assert "BIRD has no incremental form" in text
        return bird_routes(text)
    seen_add = False
    for line in text.splitlines():
        c = parse_line(syntax, line)
        if not c:
            continue
        kind, prefix, via = c
        if kind == "del":
            assert not seen_add, "%s: a removal after an addition: %r" % (syntax, line)
            assert prefix in state, "%s: removes %s, which is not there" % (syntax, prefix)
            if via:
                assert state[prefix] == via, "%s: removes %s via %s, it is via %s" % (
                    syntax, prefix, via, state[prefix])
            del state[prefix]
        else:
            seen_add = True
            assert prefix not in state, "%s: adds %s, which is already there" % (syntax, prefix)
            state[prefix] = via
    return state


# ---------------------------------------------------------------- the topology

NODES = {"n1": "192.168.50.11", "n2": "192.168.50.12", "n3": "192.168.50.13"}


class Topology:
    def __init__(self):
        self.sw = Netns("sw")
        self.ext = Netns("ext")
        self.sw.write_sysctl("net/ipv4/ip_forward", 1)
        self.sw.ip("link", "add", "br0", "type", "bridge")
        self.sw.ip("addr", "add", "192.168.50.1/24", "dev", "br0")
        self.sw.ip("link", "set", "br0", "up")
        veth(self.sw, "to-ext", self.ext, "eth0")
        self.sw.ip("addr", "add", "172.16.9.1/24", "dev", "to-ext")
        self.ext.ip("addr", "add", "172.16.9.2/24", "dev", "eth0")
        self.ext.ip("route", "add", "default", "via", "172.16.9.1")
        self.nodes, self.pods = {}, []
        for name, addr in NODES.items():
            ns = Netns(name)
            veth(self.sw, "to-" + name, ns, "eth0")
            self.sw.ip("link", "set", "to-" + name, "master", "br0")
            ns.ip("addr", "add", addr + "/24", "dev", "eth0")
            ns.ip("route", "add", "default", "via", "192.168.50.1")
            self.nodes[name] = ns

    def pod(self, node, addr):
        """A pod wired the way Calico wires one: its own namespace, eth0 with the /32
        and a default route via 169.254.1.1 (onlink), the host side a cali* veth with
        proxy ARP (it answers for 169.254.1.1) and a /32 route to the pod."""
        host = self.nodes[node]
        pod = Netns("pod")
        dev = "cali%d" % len(self.pods)
        self.pods.append(pod)
        veth(host, dev, pod, "eth0")
        host.write_sysctl("net/ipv4/ip_forward", 1)
        host.write_sysctl("net/ipv4/conf/%s/proxy_arp" % dev, 1)
        host.ip("route", "add", addr + "/32", "dev", dev)
        pod.ip("addr", "add", addr + "/32", "dev", "eth0")
        pod.ip("route", "add", "169.254.1.1", "dev", "eth0", "scope", "link")
        pod.ip("route", "add", "default", "via", "169.254.1.1", "dev", "eth0")
        return pod

    def kernel_routes(self, proto):
        """The router's routes of one protocol, by name: FRR's staticd installs its routes
        with protocol 196, which FRR's /etc/iproute2/rt_protos.d/frr.conf names
        "static" (so `ip route show proto static`, which means 4, does not find them)."""
        return {canon(r["dst"]): r["gateway"] for r in self.sw.ipj("route", "show")
                if r.get("protocol") == proto}

    def reach(self, addrs):
        """Every address answers ext's ping (through the router), and it is the node
        holding it that answers: the ping is checked against each node's counters."""
        for addr in addrs:
            ok, _, out = ping(self.ext, addr, wait=2)
            if not ok:
                raise AssertionError("ext cannot reach %s through the router:\n%s\nrouter:\n%s" % (
                    addr, out, self.sw.ip("route").stdout))


class FRR:
    """zebra and staticd in the router's namespace, paths under /var/run/frr/<name>/."""

    def __init__(self, ns):
        self.ns, self.name = ns, ns.name
        self.dir = tempfile.mkdtemp(prefix=cuit.PREFIX)
        cuit._tmpdirs.append(self.dir)
        os.chmod(self.dir, 0o755)
        self.pids = []
        for d in ("zebra", "staticd"):
            conf = os.path.join(self.dir, d + ".conf")
            open(conf, "w").close()
            os.chmod(conf, 0o644)
            pid = os.path.join(self.dir, d + ".pid")
            # FRR drops to user frr: the pid file's folder must be writable by it
            shutil.chown(self.dir, "frr", "frr")
            ns.exec("/usr/lib/frr/" + d, "-d", "-N", self.name, "-f", conf, "-i", pid)
            self.pids.append(pid)
        wait_for(lambda: self.vtysh("-c", "show ip route", check=False).returncode == 0,
                 "FRR to answer vtysh", 15)

    def vtysh(self, *args, check=True):
        return self.ns.exec("vtysh", "-N", self.name, *args, check=check)

    def close(self):
        for pid in self.pids:
            try:
                with open(pid) as f:
                    os.kill(int(f.read()), signal.SIGTERM)
            except (OSError, ValueError):
                pass
        shutil.rmtree("/var/run/frr/" + self.name, ignore_errors=True)


class UpstreamTest(unittest.TestCase):
    def setUp(self):
        self.addCleanup(cuit.cleanup_all)

    # ------------------------------------------------------------ real routers

    def test_frr_and_bird2_route_a_host_to_a_pod_on_every_node(self):
        why = deps()
        if why:
            self.skipTest(why)
        topo = Topology()
        tool = Tool()
        # n1: four sibling /28s (one /26 exact) and three of .192/26 (two routes exact,
        # one cover-free); n2 one block, which lends .72 to n3; n3 two blocks apart; n4
        # has no address.
        blocks = [("10.244.0.0/28", "n1"), ("10.244.0.16/28", "n1"), ("10.244.0.32/28", "n1"),
                  ("10.244.0.48/28", "n1"), ("10.244.0.64/28", "n2"), ("10.244.0.96/28", "n3"),
                  ("10.244.0.128/28", "n3"), ("10.244.0.160/28", "n4"), ("10.244.0.192/28", "n1"),
                  ("10.244.0.208/28", "n1"), ("10.244.0.240/28", "n1")]
        tool.write(cluster_yaml(dict(NODES, n4=None), blocks,
                                borrowed=[("10.244.0.64/28", "n2", "10.244.0.72", "n3")]))
        pods = {"n1": ["10.244.0.5", "10.244.0.50", "10.244.0.200", "10.244.0.250"], "n2": ["10.244.0.65"],
                "n3": ["10.244.0.100", "10.244.0.130", "10.244.0.72"]}
        for node, addrs in pods.items():
            for a in addrs:
                topo.pod(node, a)
        everywhere = [a for addrs in pods.values() for a in addrs]

        frr = tool.run("--format", "frr", rc=1)
        self.assertIn("no route for block 10.244.0.160/28 of node n4", frr.stderr)
        want = state_of("frr", frr.stdout)
        self.assertEqual(want["10.244.0.72/32"], NODES["n3"])
        self.assertEqual(want["10.244.0.0/26"], NODES["n1"])

        with self.subTest("FRR"):
            r = FRR(topo.sw)
            self.addCleanup(r.close)
            # FRR refuses what it cannot parse: the check below is not vacuous
            bad = tool.path("bad.conf")
            with open(bad, "w") as f:
                f.write("ip route 10.244.0.0/26 via 192.168.50.11\n")
            self.assertNotEqual(r.vtysh("-f", bad, check=False).returncode, 0)
            conf = tool.path("frr.conf")
            with open(conf, "w") as f:
                f.write(frr.stdout)
            r.vtysh("-f", conf)
            wait_for(lambda: topo.kernel_routes("static") == want, "FRR's routes in the kernel", 15)
            topo.reach(everywhere)
            self.assertIn("ip route 10.244.0.72/32 192.168.50.13",
                          r.vtysh("-c", "show running-config").stdout)
            r.close()
            topo.sw.ip("route", "flush", "proto", "static")
            wait_for(lambda: not topo.kernel_routes("static"), "FRR's routes gone", 15)
            self.assertFalse(ping(topo.ext, "10.244.0.5")[0], "reachable without routes: the test proves nothing")

        with self.subTest("BIRD 2, cover-free"):
            bird = tool.run("--format", "bird", "--aggregate", "cover-free", rc=1)
            exact = tool.run("--format", "json", rc=1).json()
            want = bird_routes(bird.stdout)
            self.assertLess(len(want), exact["counts"]["routes"])
            self.assertIn("(%d before cover-free aggregation)" % exact["counts"]["exact"], bird.stderr)
            routes = tool.path("routes.conf")
            with open(routes, "w") as f:
                f.write(bird.stdout)
            conf = tool.path("bird.conf")
            with open(conf, "w") as f:
                f.write('router id 172.16.9.1;\nprotocol device { }\n'
                        'protocol kernel { ipv4 { export all; }; }\ninclude "%s";\n' % routes)
            env = {"LD_LIBRARY_PATH": BIRD2_ROOT + "/usr/lib/x86_64-linux-gnu"}
            b = BIRD2_ROOT + "/usr/sbin/bird"
            topo.sw.exec(b, "-p", "-c", conf, env=env)
            p = subprocess.Popen(["ip", "netns", "exec", topo.sw.name, "env",
                                  "LD_LIBRARY_PATH=" + env["LD_LIBRARY_PATH"], b, "-f", "-c", conf,
                                  "-s", tool.path("bird.ctl"), "-P", tool.path("bird.pid")],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            cuit._procs.append(p)
            wait_for(lambda: topo.kernel_routes("bird") == want, "BIRD's routes in the kernel", 15)
            topo.reach(everywhere)
            cuit.stop(p)

    def test_golden_files_parse_in_frr_and_bird2(self):
        """Every FRR and BIRD golden file (IPv6 and --since forms included) passes the
        real parsers: vtysh's dry run and BIRD 2's -p; a bad line fails both. The
        ip-batch ones load into a real kernel with `ip -batch`."""
        why = deps()
        if why:
            self.skipTest(why)
        tmp = tempfile.mkdtemp(prefix=cuit.PREFIX)
        cuit._tmpdirs.append(tmp)
        golden = os.path.join(SRCDIR, "tests", "golden", "upstream")
        env = dict(os.environ, LD_LIBRARY_PATH=BIRD2_ROOT + "/usr/lib/x86_64-linux-gnu")

        def frr_ok(path):
            return subprocess.run(["vtysh", "-C", "-f", path], capture_output=True).returncode == 0

        def bird_ok(path):
            conf = os.path.join(tmp, "bird.conf")
            with open(conf, "w") as f:
                f.write('router id 1.1.1.1;\ninclude "%s";\n' % path)
            return subprocess.run([BIRD2_ROOT + "/usr/sbin/bird", "-p", "-c", conf], env=env,
                                  capture_output=True).returncode == 0

        for name in sorted(os.listdir(golden)):
            path = os.path.join(golden, name)
            if name.startswith("frr."):
                self.assertTrue(frr_ok(path), name)
            elif name.startswith("bird."):
                self.assertTrue(bird_ok(path), name)
        # ip -batch, IPv6 included: the whole routes, then the change, on a real kernel
        router = Netns("router")
        router.ip("link", "add", "eth0", "type", "veth", "peer", "name", "eth1")
        router.ip("link", "set", "eth0", "up")
        router.ip("addr", "add", "192.168.1.1/24", "dev", "eth0")
        router.ip("addr", "add", "fd00:1::1/64", "dev", "eth0", "nodad")
        for name in ("ip-batch.exact", "ip-batch.since"):
            with open(os.path.join(golden, name)) as f:
                router.exec("ip", "-batch", "-", input=f.read())
        got = {canon(r["dst"]): r["gateway"] for r in router.ipj("route", "show", "proto", "static")}
        got.update({canon(r["dst"]): r["gateway"] for r in router.ipj("-6", "route", "show", "proto", "static")})
        with open(os.path.join(golden, "json.exact")) as f:
            exact = state_of("json", f.read())
        with open(os.path.join(golden, "json.since")) as f:
            self.assertEqual(got, apply_change("json", exact, f.read()))
        self.assertIn("fd00:244::/123", got)
        bad = os.path.join(tmp, "bad")
        with open(bad, "w") as f:
            f.write("ip route 10.0.0.0/8 via 1.1.1.1\n")
        self.assertFalse(frr_ok(bad))
        with open(bad, "w") as f:
            f.write("protocol static x { ipv4; route 10.0.0.0/8 1.1.1.1; }\n")
        self.assertFalse(bird_ok(bad))

    # ------------------------------------------------------------ --since

    STEPS = [
        # (nodes, blocks, borrowed)
        (NODES, [("10.244.0.0/28", "n1"), ("10.244.0.16/28", "n1"), ("10.244.0.32/28", "n2")], []),
        # n1 claims two more (one /26 exact), n3 its first
        (NODES, [("10.244.0.0/28", "n1"), ("10.244.0.16/28", "n1"), ("10.244.0.32/28", "n2"),
                 ("10.244.0.48/28", "n1"), ("10.244.0.64/28", "n3")], []),
        # n2's block lends an address to n3
        (NODES, [("10.244.0.0/28", "n1"), ("10.244.0.16/28", "n1"), ("10.244.0.32/28", "n2"),
                 ("10.244.0.48/28", "n1"), ("10.244.0.64/28", "n3")],
         [("10.244.0.32/28", "n2", "10.244.0.40", "n3")]),
        # n1 releases one (the /26 splits), the borrowed address moves to n1
        (NODES, [("10.244.0.0/28", "n1"), ("10.244.0.16/28", "n1"), ("10.244.0.32/28", "n2"),
                 ("10.244.0.64/28", "n3")],
         [("10.244.0.32/28", "n2", "10.244.0.40", "n1")]),
        # n2 changes address; n3 claims next to its block
        (dict(NODES, n2="192.168.50.22"),
         [("10.244.0.0/28", "n1"), ("10.244.0.16/28", "n1"), ("10.244.0.32/28", "n2"),
          ("10.244.0.64/28", "n3"), ("10.244.0.80/28", "n3")],
         [("10.244.0.32/28", "n2", "10.244.0.40", "n1")]),
        # everything released
        (NODES, [], []),
    ]

    def test_since_applies_cleanly_in_every_syntax(self):
        tool = Tool()
        router = Netns("router")
        router.ip("link", "add", "eth0", "type", "veth", "peer", "name", "eth1")
        router.ip("link", "set", "eth0", "up")
        router.ip("addr", "add", "192.168.50.1/16", "dev", "eth0")
        prev_json, prev_state = None, {}
        n_changes = 0
        for i, (nodes, blocks, borrowed) in enumerate(self.STEPS):
            tool.write(cluster_yaml(nodes, blocks, borrowed))
            full_json = tool.run("--format", "json").stdout
            want = state_of("json", full_json)
            for syntax in SYNTAXES:
                with self.subTest(step=i, syntax=syntax):
                    # every full output says what the JSON says (under valgrind, whose
                    # runs take seconds each, at the first step only)
                    if i == 0 or not cuit.DAEMON_WRAPPER:
                        full = tool.run("--format", syntax).stdout
                        self.assertEqual(state_of(syntax, full), want)
                    if prev_json is None:
                        continue
                    change = tool.run("--format", syntax, "--since", tool.path("prev.json")).stdout
                    self.assertEqual(apply_change(syntax, prev_state, change), want,
                                     "step %d, %s:\n%s" % (i, syntax, change))
            # ip -batch on a real router: the full routes first, then each change
            batch = tool.run("--format", "ip-batch", *(["--since", tool.path("prev.json")] if prev_json else []))
            router.exec("ip", "-batch", "-", input=batch.stdout)
            got = {canon(r["dst"]): r["gateway"] for r in router.ipj("route", "show", "proto", "static")}
            self.assertEqual(got, want, "step %d: the kernel after ip -batch of\n%s" % (i, batch.stdout))
            n_changes += len(batch.stdout.splitlines()) if prev_json else 0
            with open(tool.path("prev.json"), "w") as f:
                f.write(full_json)
            prev_json, prev_state = full_json, want
        self.assertGreater(n_changes, 10)

    def test_since_rejects_a_bad_file(self):
        tool = Tool()
        tool.write(cluster_yaml(NODES, [("10.244.0.0/28", "n1")]))
        with open(tool.path("bad.json"), "w") as f:
            f.write('{"routes": [\n  {"prefix": "10.244.0.0/28", "via": 7}\n]}\n')
        res = tool.run("--format", "ios", "--since", tool.path("bad.json"), rc=2)
        self.assertIn("bad.json: routes[0].via: missing or not valid", res.stderr)
        self.assertEqual(res.stdout, "")
        with open(tool.path("bad.json"), "w") as f:
            f.write('{"routes": [\n  {"prefix": \n')
        res = tool.run("--since", tool.path("bad.json"), rc=2)
        self.assertIn("bad.json:3:1: ", res.stderr)

    # ------------------------------------------------------------ no privileges, no netlink

    def test_no_netlink_socket_and_no_privilege(self):
        if not shutil.which("strace") or not shutil.which("setpriv"):
            self.skipTest("strace and setpriv needed (sh tests/deps.sh upstream)")
        if cuit.DAEMON_WRAPPER:
            self.skipTest("strace of the wrapper would trace valgrind")
        tool = Tool()
        tool.write(cluster_yaml(NODES, [("10.244.0.0/28", "n1"), ("10.244.0.16/28", "n1")]))
        trace = tool.path("strace.out")
        # LeakSanitizer cannot run under ptrace
        res = tool.run("--format", "ios", prefix=["strace", "-f", "-qq", "-e", "trace=socket", "-o", trace],
                       env={"ASAN_OPTIONS": "detect_leaks=0"})
        self.assertEqual(res.stdout, "ip route 10.244.0.0 255.255.255.224 192.168.50.11 name n1\n")
        with open(trace) as f:
            calls = f.read()
        self.assertNotIn("AF_NETLINK", calls)
        # a user with no capabilities at all, who can read the files, gets the same
        res2 = tool.run("--format", "ios", prefix=["setpriv", "--reuid=nobody", "--regid=nogroup",
                                                     "--clear-groups", "--inh-caps=-all", "--bounding-set=-all"])
        self.assertEqual(res2.stdout, res.stdout)

    # ------------------------------------------------------------ the daemon keeps the file

    def test_daemon_keeps_the_routes_file(self):
        node = Netns("node")
        node.ip("link", "add", "eth0", "type", "veth", "peer", "name", "eth1")
        node.ip("link", "set", "eth0", "up")
        node.ip("addr", "add", "192.168.50.11/24", "dev", "eth0")
        node.ip("route", "add", "default", "via", "192.168.50.1")
        out_dir = tempfile.mkdtemp(prefix=cuit.PREFIX)
        cuit._tmpdirs.append(out_dir)
        target = os.path.join(out_dir, "upstream.json")
        tool = Tool("uplink: eth0\nupstreamRoutesFile: %s\n" % target)
        blocks = [("10.244.0.0/28", "n1"), ("10.244.0.32/28", "n2")]
        tool.write(cluster_yaml(NODES, blocks))
        run_dir = tool.path("run")
        os.mkdir(run_dir)
        log = open(tool.path("daemon.log"), "w")
        p = subprocess.Popen(["ip", "netns", "exec", node.name, "env", "RUNTIME_DIRECTORY=" + run_dir]
                             + cuit.DAEMON_WRAPPER + [cuit.daemon_path(), "--config", tool.config],
                             stdout=log, stderr=subprocess.STDOUT)
        cuit._procs.append(p)
        t = 15 * cuit.TIMEOUT_SCALE

        def content():
            try:
                with open(target) as f:
                    return f.read()
            except FileNotFoundError:
                return None

        def daemon_log():
            with open(tool.path("daemon.log")) as f:
                return f.read()

        want = tool.run("--format", "json").stdout
        wait_for(lambda: content() == want, "the routes file", t)
        self.assertEqual(os.stat(target).st_mode & 0o777, 0o644)
        # The file is renamed into place before its line is logged.
        wait_for(lambda: "upstream routes file %s updated: 2 routes" % target in daemon_log(),
                 "the routes file's log line", t)
        ino = os.stat(target).st_ino

        # a block claimed: a new file (rename), the new routes
        blocks.append(("10.244.0.16/28", "n1"))
        tool.write(cluster_yaml(NODES, blocks))
        want2 = tool.run("--format", "json").stdout
        self.assertNotEqual(want2, want)
        wait_for(lambda: content() == want2, "the routes file after a claim", t)
        self.assertNotEqual(os.stat(target).st_ino, ino)
        ino = os.stat(target).st_ino
        self.assertEqual([n for n in os.listdir(out_dir)], ["upstream.json"])  # no temporary left

        # a reload that changes nothing: the file is not written again
        n_reloads = daemon_log().count("configuration reloaded")
        p.send_signal(signal.SIGHUP)
        wait_for(lambda: daemon_log().count("configuration reloaded") > n_reloads, "the reload", t)
        self.assertEqual(os.stat(target).st_ino, ino)
        self.assertEqual(daemon_log().count("updated:"), 2)
        cuit.stop(p)
        log.close()


if __name__ == "__main__":
    cuit.main()
