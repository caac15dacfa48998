#!/usr/bin/env python3
"""Host side, on the real kernel (DESIGN.md sections 3, 4 and 7).

Every case gets fresh namespaces: a node (node1, uplink veth eth0 192.168.10.11/24,
default route proto boot, a vxlan.calico device, foreign routes proto bird and
proto static in main and in table 100, the kernel's connected routes) and a
'switch' holding the other end of eth0 with the addresses of the gateway and the
peers. The resources describe one underlay pool 192.168.10.128/25 (blockSize 28,
natOutgoing false, Never/Never) and three nodes with a block each.

Every daemon run goes through HostCase.daemon(), which also checks item 5 of the
issue: the foreign routes (every protocol but ours, every table, IPv4 and IPv6) are
byte-for-byte the same `ip -d -j` JSON before and after; only the routes of a tunnel
device the run removed may go, and they go with it.

No IPIP here (this kernel has neither IPIP nor dummy links): the tunl0 paths are
unit-tested in tests/test-tunnel.c.

Run: meson test -C BUILD integration-host, or as root:
    DAEMON=BUILD/daemon/calico-underlayd python3 tests/integration/test_host.py [-k NAME]
"""
import os
import shutil
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import cuit  # noqa: E402
from cuit import PROTO, METRIC

T = str(cuit.TABLE)

NODE1, NODE2, NODE3, GW = "192.168.10.11", "192.168.10.12", "192.168.10.13", "192.168.10.1"
BLOCK1, BLOCK2, BLOCK3 = "192.168.10.128/28", "192.168.10.144/28", "192.168.10.160/28"
POOL = "192.168.10.128/25"

# Foreign routes every case starts with (item 5): `ip route add` arguments.
FOREIGN = [
    ["10.233.96.0/26", "via", NODE2, "dev", "eth0", "proto", "bird"],
    ["172.16.0.0/16", "via", GW, "dev", "eth0", "proto", "static"],
    ["blackhole", "10.250.0.0/16", "proto", "static"],
    ["10.99.0.0/24", "via", GW, "dev", "eth0", "proto", "bird", "table", "100"],
    ["192.168.10.128/25", "via", GW, "dev", "eth0", "proto", "static", "table", "100"],
]

CHANGE_ACTIONS = {"set-proxy-arp", "set-proxy-delay", "add-route", "delete-route", "remove-tunnel", "add-rule",
                  "delete-rule"}
ROUTE_TYPES = {"unicast", "blackhole", "unreachable"}
SEVERITIES = {"blocking", "warning", "info"}


def check_doc_problems(doc):
    """The documented --check --format json keys and types; a list of problems."""
    p = []

    def need(obj, key, types, where):
        if not isinstance(obj, dict) or key not in obj:
            p.append("%s: no key %r" % (where, key))
            return None
        if not isinstance(obj[key], types):
            p.append("%s.%s: %r is not %s" % (where, key, obj[key], types))
        return obj[key]

    need(doc, "node", str, "doc")
    up = need(doc, "uplink", (dict, type(None)), "doc")
    if isinstance(up, dict):
        need(up, "name", str, "uplink")
        addrs = need(up, "addresses", list, "uplink")
        if isinstance(addrs, list) and not all(isinstance(a, str) and "/" in a for a in addrs):
            p.append("uplink.addresses: %r" % addrs)
    need(doc, "underlay", bool, "doc")
    need(doc, "routeTable", int, "doc")
    if need(doc, "rulePriorities", list, "doc") not in ([32700, 32701], None):
        p.append("rulePriorities: %r" % doc.get("rulePriorities"))
    for i, pool in enumerate(need(doc, "pools", list, "doc") or []):
        w = "pools[%d]" % i
        need(pool, "name", str, w)
        need(pool, "cidr", str, w)
        need(pool, "applies", bool, w)
        need(pool, "underlay", bool, w)
        need(pool, "reason", str, w)
    for i, c in enumerate(need(doc, "changes", list, "doc") or []):
        w = "changes[%d]" % i
        a = need(c, "action", str, w)
        if a not in CHANGE_ACTIONS:
            p.append("%s.action: %r" % (w, a))
        # Every change has all five documented keys; null where they do not apply.
        need(c, "dev", (str, type(None)), w)
        if a in ("add-route", "delete-route"):
            need(c, "dst", str, w)
            if need(c, "type", str, w) not in ROUTE_TYPES:
                p.append("%s.type: %r" % (w, c.get("type")))
            need(c, "gateway", (str, type(None)), w)
        elif a in ("add-rule", "delete-rule"):
            need(c, "dst", str, w)
            for key in ("type", "gateway", "dev"):
                need(c, key, type(None), w)
            for key in ("table", "priority", "protocol"):
                need(c, key, int, w)
            need(c, "suppress_prefixlength", (int, type(None)), w)
        else:
            for key in ("dst", "type", "gateway"):
                need(c, key, type(None), w)
            need(c, "dev", str, w)
        if a in ("set-proxy-arp", "set-proxy-delay"):
            need(c, "value", int, w)
    for i, f in enumerate(need(doc, "findings", list, "doc") or []):
        w = "findings[%d]" % i
        if need(f, "severity", str, w) not in SEVERITIES:
            p.append("%s.severity: %r" % (w, f.get("severity")))
        need(f, "code", str, w)
        need(f, "message", str, w)
    need(doc, "ready", bool, "doc")
    return p


def codes(doc, severity=None):
    return [f["code"] for f in doc["findings"] if severity is None or f["severity"] == severity]


def route_changes(doc, action=None):
    return [c for c in doc["changes"]
            if c["action"] in ("add-route", "delete-route") and (action is None or c["action"] == action)]


def resources(nat=False, ipip="Never", vxlan="Never"):
    pools = cuit.yaml_list("IPPoolList", [
        cuit.ippool("underlay-az1", POOL, nat=nat, ipip=ipip, vxlan=vxlan,
                    selector='topology.kubernetes.io/zone == "az1"')])
    nodes = cuit.yaml_list("NodeList", [
        cuit.calico_node(n, a + "/24", {"topology.kubernetes.io/zone": "az1"})
        for n, a in (("node1", NODE1), ("node2", NODE2), ("node3", NODE3))])
    blocks = cuit.yaml_list("List", [
        cuit.block_affinity(n, b) for n, b in (("node1", BLOCK1), ("node2", BLOCK2), ("node3", BLOCK3))],
        api="v1")
    return {"10-ippools.yaml": pools, "20-nodes.yaml": nodes, "30-blockaffinities.yaml": blocks}


class HostCase(cuit.NsTestCase):

    def setUp(self):
        super().setUp()
        self.node = self.new_ns("node1")
        self.switch = self.new_ns("switch", describe=False)
        cuit.veth(self.node, "eth0", self.switch, "port1")
        self.node.ip("addr", "add", NODE1 + "/24", "dev", "eth0")
        for a in (GW, NODE2, NODE3):
            self.switch.ip("addr", "add", a + "/24", "dev", "port1")
        self.node.ip("route", "add", "default", "via", GW, "dev", "eth0", "proto", "boot")
        self.node.ip("link", "add", "vxlan.calico", "type", "vxlan", "id", "4096", "dstport", "4789",
                     "dev", "eth0")
        self.node.ip("addr", "add", "192.168.10.129/32", "dev", "vxlan.calico")
        self.node.ip("link", "set", "vxlan.calico", "up")
        self.node.ip("-6", "route", "add", "2001:db8:99::/64", "via", "fe80::1", "dev", "eth0",
                     "proto", "bird")
        for r in FOREIGN:
            self.node.ip("route", "add", *r)
        self.node.wait_link_up("eth0")
        self.node.wait_link_up("vxlan.calico")
        self.d = cuit.Daemon(self.node, "node1")
        self.set_resources()

    # -- helpers

    def set_resources(self, **kw):
        self.d.clear_resources()
        for name, text in resources(**kw).items():
            self.d.write_resource(name, text)

    def forwarding(self, on):
        # ip_forward sets every device's value only when it changes: set eth0's too
        self.node.write_sysctl("net/ipv4/ip_forward", 1 if on else 0)
        self.node.write_sysctl("net/ipv4/conf/eth0/forwarding", 1 if on else 0)

    def daemon(self, *args, rc=0):
        """Run the daemon; assert its exit code and that foreign routes are untouched."""
        links_before = {l["ifname"] for l in self.node.links()}
        before = self.node.routes()
        res = self.d.run(*args)
        after = self.node.routes()
        gone = links_before - {l["ifname"] for l in self.node.links()}
        self.log("%s -> exit %d" % (" ".join(args), res.rc))
        if rc is not None:
            self.assertRc(res, rc)
        f_before = cuit.foreign_routes(before, ignore_devs=gone)
        f_after = cuit.foreign_routes(after)
        if f_before != f_after:
            raise AssertionError("foreign routes changed by %s:\n%s\n%s" % (
                " ".join(args), cuit.json_diff(f_before, f_after), res))
        leaked = [r for r in after if r.get("dev") in gone]
        self.assertEqual(leaked, [], "routes of removed devices %s remain" % sorted(gone))
        return res

    def check_json(self, rc=0):
        res = self.daemon("--check", "--format", "json", rc=rc)
        doc = res.json()
        problems = check_doc_problems(doc)
        if problems:
            raise AssertionError("--check JSON does not have the documented shape:\n  %s\n%s"
                                 % ("\n  ".join(problems), res))
        return doc

    def ours(self):
        return cuit.our_routes(self.node.routes())

    def assert_ours(self, expected):
        """Our routes (proto 211, any table) are exactly `expected`: (dst, type, gateway, table)."""
        got = sorted((r["dst"], r["type"], r.get("gateway"), str(r.get("table", "main")))
                     for r in self.ours())
        self.assertEqual(got, sorted(expected), "our routes:\n" + cuit.fmt_routes(self.ours()))

    def our_full_state(self):
        """After convergence in underlay mode with the base resources."""
        return [(BLOCK1, "blackhole", None, T),
                (BLOCK2, "unicast", NODE2, T),
                (BLOCK3, "unicast", NODE3, T)]

    def assert_rules(self, present):
        """Our two policy rules for the pool, exactly, or none at all."""
        want = [(cuit.RULE_PRIOS[0], POOL, "main", 27), (cuit.RULE_PRIOS[1], POOL, T, None)] if present else []
        self.assertEqual(cuit.our_rules(self.node), want, self.node.ip("rule", "show").stdout)

    def lookup(self, addr):
        """(table, gateway, type) the kernel picks for addr, through the rules."""
        r = self.node.ipj("route", "get", addr)[0]
        return (str(r.get("table", "main")), r.get("gateway"), r.get("type", "unicast"))


class CheckChangesNothing(HostCase):
    """1. --check changes nothing; its exit codes and its JSON."""

    def assert_unchanged(self, before, label):
        after = cuit.snapshot(self.node, ("eth0", "vxlan.calico"))
        for key in before:
            self.assertSame(before[key], after[key], "%s by %s" % (key, label))

    def test_check(self):
        snap = lambda: cuit.snapshot(self.node, ("eth0", "vxlan.calico"))

        with self.step("--check (text) with forwarding off: exit 1, forwarding-off, nothing changed"):
            before = snap()
            res = self.daemon("--check", rc=1)
            self.assertIn("forwarding-off", res.stdout, str(res))
            self.assertIn("ready: no", res.stdout, str(res))
            self.assert_unchanged(before, "--check")
            self.assertEqual(os.listdir(self.d.runtime), [], "--check wrote in the runtime folder")

        with self.step("--check --format json with forwarding off: exit 1, blocking forwarding-off"):
            before = snap()
            doc = self.check_json(rc=1)
            self.assertFalse(doc["ready"])
            self.assertIn("forwarding-off", codes(doc, "blocking"), doc["findings"])
            self.assert_unchanged(before, "--check --format json")

        with self.step("forwarding on globally but off on eth0: still exit 1, forwarding-off"):
            self.forwarding(True)
            self.node.write_sysctl("net/ipv4/conf/eth0/forwarding", 0)
            before = snap()
            doc = self.check_json(rc=1)
            self.assertEqual([f for f in doc["findings"] if f["code"] == "forwarding-off"
                              and "eth0" not in f["message"]], [], "global forwarding is on")
            self.assertIn("forwarding-off", codes(doc, "blocking"), doc["findings"])
            self.assert_unchanged(before, "--check --format json")

        with self.step("--check --format json with forwarding on: exit 0, ready, the documented plan"):
            self.forwarding(True)
            before = snap()
            doc = self.check_json(rc=0)
            self.assert_unchanged(before, "--check --format json")
            self.assertTrue(doc["ready"])
            self.assertEqual(codes(doc, "blocking"), [])
            self.assertEqual(doc["node"], "node1")
            self.assertEqual(doc["uplink"]["name"], "eth0")
            self.assertIn(NODE1 + "/24", doc["uplink"]["addresses"])
            self.assertTrue(doc["underlay"])
            self.assertEqual([(p["name"], p["cidr"], p["applies"], p["underlay"]) for p in doc["pools"]],
                             [("underlay-az1", POOL, True, True)])
            plan = [(c["action"], c.get("dst"), c.get("type"), c.get("gateway"), c.get("dev"))
                    for c in doc["changes"]]
            self.assertEqual(sorted(plan, key=repr), sorted([
                ("set-proxy-delay", None, None, None, "eth0"),
                ("set-proxy-arp", None, None, None, "eth0"),
                ("add-rule", POOL, None, None, None),
                ("add-rule", POOL, None, None, None),
                ("add-route", BLOCK1, "blackhole", None, None),
                ("add-route", BLOCK2, "unicast", NODE2, "eth0"),
                ("add-route", BLOCK3, "unicast", NODE3, "eth0"),
                ("remove-tunnel", None, None, None, "vxlan.calico"),
            ], key=repr), "planned changes")
            kinds = [c["action"] for c in doc["changes"]]
            self.assertLess(kinds.index("set-proxy-delay"), kinds.index("set-proxy-arp"),
                            "the delay must be set before proxy ARP answers (felix PR 1938)")
            rules = [(c["priority"], c["table"], c["suppress_prefixlength"], c["protocol"])
                     for c in doc["changes"] if c["action"] == "add-rule"]
            self.assertEqual(rules, [(32700, 254, 27, PROTO), (32701, cuit.TABLE, None, PROTO)])
            self.assertLess(max(i for i, k in enumerate(kinds) if k == "add-rule"), kinds.index("add-route"),
                            "rules before routes")
            self.assertEqual((doc["routeTable"], doc["rulePriorities"]), (cuit.TABLE, list(cuit.RULE_PRIOS)))

        with self.step("--check (text) with forwarding on: exit 0, ready: yes, nothing changed"):
            before = snap()
            res = self.daemon("--check", rc=0)
            self.assertIn("ready: yes", res.stdout, str(res))
            self.assertIn("routes: table 252, consulted for underlay pool destinations after main", res.stdout)
            self.assertIn("add-rule to %s lookup main suppress_prefixlength 27 pref 32700 proto 211" % POOL,
                          res.stdout)
            self.assertIn("add-rule to %s lookup 252 pref 32701 proto 211" % POOL, res.stdout)
            self.assert_unchanged(before, "--check")

    def test_bad_config(self):
        self.forwarding(True)
        cases = [("bad-mode.yaml", 8, 13), ("host-bits.yaml", 7, 9)]
        for name, line, col in cases:
            self.set_resources()
            dst = os.path.join(self.d.resources, "40-" + name)
            shutil.copy(os.path.join(cuit.fixtures_dir(), "bad", name), dst)
            where = "%s:%d:%d" % (dst, line, col)
            with self.step("bad config %s: --check exits 2 and names %s" % (name, where)):
                before = cuit.snapshot(self.node, ("eth0", "vxlan.calico"))
                res = self.daemon("--check", rc=2)
                self.assertIn(where, res.stdout + res.stderr, str(res))
                # the settings are valid: the node is theirs, not the host name
                self.assertIn("node: node1\n", res.stdout, str(res))
                res = self.daemon("--check", "--format", "json", rc=2)
                doc = res.json()
                self.assertFalse(doc["ready"], str(res))
                self.assertEqual(doc["node"], "node1", str(res))
                self.assertTrue(any(where in e for e in doc.get("errors", [])), str(res))
            with self.step("bad config %s: --once exits 2, names it, changes nothing" % name):
                res = self.daemon("--once", rc=2)
                self.assertIn(where, res.stdout + res.stderr, str(res))
                after = cuit.snapshot(self.node, ("eth0", "vxlan.calico"))
                for key in before:
                    self.assertSame(before[key], after[key], "%s by a bad config" % key)
                self.assertIsNone(self.d.record(), "runtime record written with a bad config")


class OnceConverges(HostCase):
    """2. --once converges to exactly the planned state."""

    def test_once(self):
        self.forwarding(True)
        # A route of ours for a block nobody has (delete-route) and one with the
        # wrong gateway for node3's block (replaced).
        self.node.ip("route", "add", "192.168.10.176/28", "via", NODE2, "dev", "eth0",
                     "proto", PROTO, "metric", METRIC)
        self.node.ip("route", "add", BLOCK3, "via", NODE2, "dev", "eth0", "proto", PROTO, "metric", METRIC)
        before_arp, before_delay = self.node.proxy_arp("eth0"), self.node.proxy_delay("eth0")

        with self.step("--check --format json: the plan"):
            doc = self.check_json(rc=0)
            plan = doc["changes"]
            actions = {c["action"] for c in plan}
            self.assertTrue({"set-proxy-arp", "set-proxy-delay", "add-route", "delete-route",
                             "remove-tunnel", "add-rule"} <= actions, plan)

        with self.step("--once applies every planned change"):
            res = self.daemon("--once", rc=0)
            self.assertIn("%d change%s, 0 failed" % (len(plan), "" if len(plan) == 1 else "s"),
                          res.stdout, str(res))
            self.assertNotIn("FAILED", res.stdout, str(res))

        with self.step("every change of the plan is visible in the kernel"):
            routes = self.node.routes()
            for c in plan:
                if c["action"] == "add-route":
                    hits = [r for r in routes if cuit.route_matches_change(r, c)]
                    self.assertEqual(len(hits), 1, "add-route %s: not in the kernel as planned "
                                     "(proto %d, metric %d):\n%s" % (c, PROTO, METRIC, cuit.fmt_routes(
                                         cuit.find_route(routes, c["dst"]))))
                elif c["action"] == "delete-route":
                    hits = [r for r in cuit.find_route(routes, c["dst"], proto=PROTO)
                            if r.get("gateway") == c["gateway"] and r["type"] == c["type"]]
                    self.assertEqual(hits, [], "delete-route %s: still there" % c)
                elif c["action"] == "remove-tunnel":
                    self.assertIsNone(self.node.link(c["dev"]), "remove-tunnel %s: still there" % c)
            last = {c["action"]: c["value"] for c in plan if c["action"].startswith("set-proxy")}
            self.assertEqual(self.node.proxy_arp("eth0"), last["set-proxy-arp"])
            self.assertEqual(self.node.proxy_arp("eth0"), 1)
            self.assertEqual(self.node.proxy_delay("eth0"), 0)
            self.assertEqual(last["set-proxy-delay"], 0)
            self.assertIsNone(self.node.link("vxlan.calico"))
            self.assert_ours(self.our_full_state())
            self.assert_rules(True)
            for r in self.ours():
                self.assertEqual(int(r.get("metric", 0)), METRIC, r)
            # Through the rules: pool addresses from our table, the rest from main.
            self.assertEqual(self.lookup("192.168.10.150"), (T, NODE2, "unicast"))
            self.assertEqual(self.lookup("192.168.10.100"), ("main", None, "unicast"))
            self.assertEqual(self.lookup("172.16.0.9"), ("main", GW, "unicast"))

        with self.step("the runtime record holds the values found before the first change"):
            self.assertEqual(self.d.record(), {"ifname": "eth0", "proxy_arp": str(before_arp),
                                               "proxy_delay_ms": str(before_delay * 10),
                                               "ifindex": str(self.node.link("eth0")["ifindex"]),
                                               "route_protocol": str(PROTO), "route_table": T})

        with self.step("a second --once: 0 changes; --check: nothing to do, ready"):
            res = self.daemon("--once", rc=0)
            self.assertIn("0 changes, 0 failed", res.stdout, str(res))
            doc = self.check_json(rc=0)
            self.assertEqual(doc["changes"], [])
            self.assertTrue(doc["ready"])


class BackToOverlay(HostCase):
    """3. Switching the resources back to overlay restores the recorded values."""

    def overlay_roundtrip(self, arp0, delay0):
        self.forwarding(True)
        self.node.write_sysctl("net/ipv4/conf/eth0/proxy_arp", arp0)
        self.node.write_sysctl("net/ipv4/neigh/eth0/proxy_delay", delay0)

        with self.step("underlay (proxy_arp=%d, proxy_delay=%d before): --once" % (arp0, delay0)):
            self.daemon("--once", rc=0)
            self.assertEqual((self.node.proxy_arp("eth0"), self.node.proxy_delay("eth0")), (1, 0))
            self.assert_ours(self.our_full_state())
            self.assertEqual(self.d.record(), {"ifname": "eth0", "proxy_arp": str(arp0),
                                               "proxy_delay_ms": str(delay0 * 10),
                                               "ifindex": str(self.node.link("eth0")["ifindex"]),
                                               "route_protocol": str(PROTO), "route_table": T})

        with self.step("natOutgoing: true: --check plans the way back"):
            self.set_resources(nat=True)
            doc = self.check_json(rc=0)
            self.assertFalse(doc["underlay"])
            self.assertEqual(sorted(c["dst"] for c in route_changes(doc, "delete-route")),
                             [BLOCK1, BLOCK2, BLOCK3])
            self.assertEqual(route_changes(doc, "add-route"), [])

        with self.step("natOutgoing: true: --once removes our routes and restores the record"):
            self.daemon("--once", rc=0)
            self.assert_ours([])
            self.assert_rules(False)
            self.assertEqual(self.node.proxy_arp("eth0"), arp0)
            self.assertEqual(self.node.proxy_delay("eth0"), delay0)
            self.assertFalse(os.path.exists(self.d.record_path), "the runtime record is still there")
            res = self.daemon("--once", rc=0)
            self.assertIn("0 changes, 0 failed", res.stdout, str(res))

    def test_overlay_from_defaults(self):
        self.overlay_roundtrip(0, 50)

    def test_overlay_from_proxy_arp_on(self):
        # proxy_arp was already on: it is paused while the delay changes, and on
        # again at the end, both ways.
        self.overlay_roundtrip(1, 30)

    def test_ipip_always(self):
        """ipipMode Always with natOutgoing false stays underlay (DESIGN §3: underlay
        = natOutgoing false): peers' blocks go through Calico's tunnel, so their
        routes are withdrawn; the local blackhole and proxy ARP stay."""
        self.forwarding(True)
        with self.step("underlay --once"):
            self.daemon("--once", rc=0)
            self.assert_ours(self.our_full_state())
        with self.step("ipipMode Always: peers' routes withdrawn, the rest kept"):
            self.set_resources(ipip="Always")
            doc = self.check_json(rc=0)
            self.assertTrue(doc["underlay"])
            self.assertEqual(sorted(c["dst"] for c in route_changes(doc, "delete-route")), [BLOCK2, BLOCK3])
            self.assertNotIn("remove-tunnel", [c["action"] for c in doc["changes"]])
            self.daemon("--once", rc=0)
            self.assert_ours([(BLOCK1, "blackhole", None, T)])
            self.assertEqual((self.node.proxy_arp("eth0"), self.node.proxy_delay("eth0")), (1, 0))
            self.assertIsNotNone(self.d.record())


class Cleanup(HostCase):
    """4. --cleanup removes every route of ours and restores proxy_arp."""

    def test_cleanup(self):
        self.forwarding(True)
        self.node.write_sysctl("net/ipv4/neigh/eth0/proxy_delay", 50)
        with self.step("--once, then routes of ours placed by hand elsewhere"):
            self.daemon("--once", rc=0)
            self.assertEqual(self.node.proxy_arp("eth0"), 1)
            self.node.ip("route", "add", "192.168.10.192/28", "via", NODE2, "dev", "eth0",
                         "proto", PROTO, "table", "100")
            self.node.ip("route", "add", "blackhole", "192.168.10.208/28", "proto", PROTO, "table", "100")
            self.node.ip("route", "add", "192.168.10.224/28", "via", NODE3, "dev", "eth0",
                         "proto", PROTO, "metric", "5")
            self.node.ip("-6", "route", "add", "blackhole", "2001:db8:1::/64", "proto", PROTO)
            self.assertEqual(len(self.ours()), 7, cuit.fmt_routes(self.ours()))
        with self.step("--cleanup: no route of ours in any table, proxy_arp and delay restored"):
            res = self.daemon("--cleanup", rc=0)
            self.assertNotIn("FAILED", res.stdout, str(res))
            self.assert_ours([])
            self.assert_rules(False)
            self.assertEqual(self.node.proxy_arp("eth0"), 0)
            self.assertEqual(self.node.proxy_delay("eth0"), 50)
            self.assertIsNone(self.d.record(), "runtime record left after --cleanup")
        with self.step("a second --cleanup: 0 changes"):
            res = self.daemon("--cleanup", rc=0)
            self.assertIn("0 changes, 0 failed", res.stdout, str(res))


class ForeignRoutes(HostCase):
    """6. Equivalent and conflicting foreign routes (5 is checked on every run)."""

    def test_equivalent_foreign_first(self):
        self.forwarding(True)
        self.node.ip("route", "add", BLOCK2, "via", NODE2, "dev", "eth0", "proto", "bird")
        with self.step("BIRD already has node2's block: ours planned all the same, as the standby"):
            doc = self.check_json(rc=0)
            self.assertIn(BLOCK2, [c["dst"] for c in route_changes(doc, "add-route")])
            self.assertIn("bird-routes", codes(doc, "info"))
        with self.step("--once installs ours in our table; BIRD's in main wins by lookup"):
            self.daemon("--once", rc=0)
            self.assert_ours(self.our_full_state())
            self.assertEqual(len(cuit.find_route(self.node.routes(), BLOCK2, proto="bird")), 1)
            self.assertEqual(self.lookup("192.168.10.150"), ("main", NODE2, "unicast"))
        with self.step("BIRD withdraws: ours answers, with nothing to do"):
            self.node.ip("route", "del", BLOCK2, "proto", "bird")
            self.assertEqual(self.lookup("192.168.10.150"), (T, NODE2, "unicast"))
            res = self.daemon("--once", rc=0)
            self.assertIn("0 changes", res.stdout, str(res))

    def test_equivalent_foreign_later(self):
        self.forwarding(True)
        with self.step("--once installs ours for node2's block"):
            self.daemon("--once", rc=0)
            self.assert_ours(self.our_full_state())
        with self.step("BIRD's equivalent appears: ours stays, nothing to do"):
            self.node.ip("route", "add", BLOCK2, "via", NODE2, "dev", "eth0", "proto", "bird")
            doc = self.check_json(rc=0)
            self.assertEqual(route_changes(doc), [])
            res = self.daemon("--once", rc=0)
            self.assertIn("0 changes", res.stdout, str(res))
            self.assert_ours(self.our_full_state())
            self.assertEqual(len(cuit.find_route(self.node.routes(), BLOCK2, proto="bird")), 1)

    def conflict_findings(self, doc, dst):
        return [f for f in doc["findings"] if f["code"] == "foreign-route-conflict" and dst in f["message"]]

    def test_conflicting_foreign_first(self):
        self.forwarding(True)
        # node3's block via another gateway (BIRD), node1's own block as a static unicast
        self.node.ip("route", "add", BLOCK3, "via", GW, "dev", "eth0", "proto", "bird")
        self.node.ip("route", "add", BLOCK1, "via", GW, "dev", "eth0", "proto", "static")
        with self.step("--check: warning foreign-route-conflict; ours planned as the standby"):
            doc = self.check_json(rc=0)
            for dst in (BLOCK1, BLOCK3):
                self.assertEqual(len(self.conflict_findings(doc, dst)), 1, doc["findings"])
                self.assertEqual(self.conflict_findings(doc, dst)[0]["severity"], "warning")
                self.assertIn("wins by lookup", self.conflict_findings(doc, dst)[0]["message"])
                self.assertIn(dst, [c["dst"] for c in route_changes(doc, "add-route")])
        with self.step("--once: ours in our table, the conflicting routes in main win by lookup"):
            self.daemon("--once", rc=0)
            self.assert_ours(self.our_full_state())
            self.assertEqual(self.lookup("192.168.10.170"), ("main", GW, "unicast"))
            self.assertEqual(self.lookup("192.168.10.130"), ("main", GW, "unicast"))
            self.assertEqual(self.lookup("192.168.10.150"), (T, NODE2, "unicast"))

    def test_conflicting_foreign_later(self):
        self.forwarding(True)
        with self.step("--once installs ours"):
            self.daemon("--once", rc=0)
            self.assert_ours(self.our_full_state())
        with self.step("a conflicting BIRD route appears for node3's block: reported, ours kept"):
            self.node.ip("route", "add", BLOCK3, "via", GW, "dev", "eth0", "proto", "bird")
            doc = self.check_json(rc=0)
            self.assertEqual(len(self.conflict_findings(doc, BLOCK3)), 1, doc["findings"])
            self.assertEqual(route_changes(doc), [])
            self.daemon("--once", rc=0)
            self.assert_ours(self.our_full_state())
            self.assertEqual(len(cuit.find_route(self.node.routes(), BLOCK3, proto="bird")), 1)

    def test_covering_blackhole_in_main(self):
        self.forwarding(True)
        self.daemon("--once", rc=0)
        with self.step("a blackhole shorter than a block in main ends the lookup: --check blocks"):
            self.node.ip("route", "add", "blackhole", "192.168.10.128/26", "proto", "static")
            # (the kernel answers `ip route get` of a blackholed address with EINVAL)
            self.assertIn("Invalid argument", self.node.ip("route", "get", "192.168.10.150", check=False).stderr)
            doc = self.check_json(rc=1)
            self.assertIn("covering-route-in-main", codes(doc, "blocking"), doc["findings"])
        with self.step("a throw route of the same prefix falls through to our table: no finding"):
            self.node.ip("route", "del", "blackhole", "192.168.10.128/26")
            self.node.ip("route", "add", "throw", "192.168.10.128/26", "proto", "static")
            self.assertEqual(self.lookup("192.168.10.150"), (T, NODE2, "unicast"))
            doc = self.check_json(rc=0)
            self.assertNotIn("covering-route-in-main", codes(doc))


class Upgrade(HostCase):
    """Routes of ours an earlier version left in main: withdrawn once the rules and our
    table are in place, and no lookup of a pool address fails in between."""

    def test_upgrade_from_main(self):
        self.forwarding(True)
        self.node.ip("route", "add", "blackhole", BLOCK1, "proto", PROTO, "metric", METRIC)
        self.node.ip("route", "add", BLOCK2, "via", NODE2, "dev", "eth0", "proto", PROTO, "metric", METRIC)
        self.node.ip("route", "add", BLOCK3, "via", NODE3, "dev", "eth0", "proto", PROTO, "metric", METRIC)
        with self.step("--check: rules, then our table, then the routes in main withdrawn"):
            doc = self.check_json(rc=0)
            order = [(c["action"], c.get("table")) for c in doc["changes"]
                     if c["action"] in ("add-rule", "add-route", "delete-route")]
            self.assertEqual(order, [("add-rule", 254), ("add-rule", cuit.TABLE)] +
                             [("add-route", cuit.TABLE)] * 3 + [("delete-route", 254)] * 3)
        with self.step("--once while a pod address is looked up continuously: never unroutable"):
            watcher = self.node.popen("sh", "-c", "while :; do ip route get 192.168.10.150 >/dev/null 2>&1 || "
                                                  "echo FAIL; done")
            self.daemon("--once", rc=0)
            watcher.terminate()
            out = watcher.communicate(timeout=10)[0]
            cuit.stop(watcher)
            self.assertNotIn("FAIL", out)
            self.assert_ours(self.our_full_state())
            self.assert_rules(True)
            self.assertEqual(self.lookup("192.168.10.150"), (T, NODE2, "unicast"))


class NeverCutsTheNodeOff(HostCase):
    """Issue 12, point 7: a pool equal to the node's own subnet, with node1's block
    over its own address and its gateway (192.168.10.0/26) and node2's over node2's
    address: --check blocks and names the addresses, --once installs neither block
    route, and the node still reaches its gateway and its peers."""

    def test_pool_is_the_node_subnet(self):
        self.forwarding(True)
        self.d.clear_resources()
        self.d.write_resource("10-ippools.yaml", cuit.yaml_list("IPPoolList", [
            cuit.ippool("lan", "192.168.10.0/24", block_size=26)]))
        self.d.write_resource("20-nodes.yaml", cuit.yaml_list("NodeList", [
            cuit.calico_node(n, a + "/24") for n, a in (("node1", NODE1), ("node2", NODE2))]))
        self.d.write_resource("30-blockaffinities.yaml", cuit.yaml_list("List", [
            cuit.block_affinity("node1", "192.168.10.0/26"),
            cuit.block_affinity("node3", "192.168.10.64/26")], api="v1"))
        with self.step("--check: blocking, with the addresses; exit 1"):
            doc = self.check_json(rc=1)
            self.assertFalse(doc["ready"])
            msgs = [f["message"] for f in doc["findings"] if f["code"] == "route-covers-node-address"]
            self.assertEqual(len(msgs), 1, doc["findings"])
            self.assertIn("blackhole 192.168.10.0/26 (block of node1, this node) would cover 192.168.10.1 "
                          "(this node's default gateway)", msgs[0])
            self.assertNotIn("192.168.10.0/26", [c["dst"] for c in route_changes(doc)])
            text = self.daemon("--check", rc=1)
            self.assertIn("route-covers-node-address", text.stdout)
        with self.step("--once installs no route over the node's subnet; gateway and peers answer"):
            self.daemon("--once", rc=0)
            self.assertEqual([r for r in self.ours() if r["dst"] == "192.168.10.0/26"], [])
            for a in (GW, NODE2, NODE3):
                got = self.node.ipj("route", "get", a)
                self.assertEqual(got[0].get("dev"), "eth0", got)
                ok, _, out = cuit.ping(self.node, a)
                self.assertTrue(ok, out)


if __name__ == "__main__":
    cuit.main()
