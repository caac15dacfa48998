#!/usr/bin/env python3
"""End to end: pods become first-class hosts on the LAN (DESIGN.md section 1).

    outside 192.168.10.1/24 --+
    node1 192.168.10.11/24 ---+-- br0 (in namespace 'lan': the LAN switch)
    node2 192.168.10.12/24 ---+

Each node forwards (ip_forward=1), has a vxlan.calico device, and one pod wired
the way Calico wires pods: a veth whose node end (cali...) has no address, proxy_arp
1 and proxy_delay 0, and a host route `<podIP>/32 dev cali... scope link`; the pod
end has `<podIP>/32` and a default route via the link-local gateway 169.254.1.1
(answered by the node's proxy ARP). The pod addresses come from an underlay pool
inside the LAN subnet: 192.168.10.128/25, blockSize 28, natOutgoing false,
Never/Never; node1 has block 192.168.10.128/28 (pod 192.168.10.130), node2 has
192.168.10.144/28 (pod 192.168.10.146).

Before calico-underlayd runs, the outside host cannot reach the pods (nobody answers
ARP for them). After `--once` on both nodes: outside -> pod, pod -> pod across nodes
(over our block route), pod -> outside with the pod's own source address (a UDP echo
listener in 'outside' reports the sender), and an unallocated address of a node's
block stays silent (the blackhole route: no proxy ARP answer). The first-contact
latency (ARP caches flushed, time of the first ping reply) is printed as a figure,
with proxy_delay 0 and, for comparison, with the kernel's default delay.

Run: meson test -C BUILD integration-traffic, or as root:
    DAEMON=BUILD/daemon/calico-underlayd python3 tests/integration/test_traffic.py
"""
import statistics
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import cuit  # noqa: E402

OUTSIDE = "192.168.10.1"
NODES = {"node1": ("192.168.10.11", "192.168.10.128/28", "192.168.10.130", "calia1b2c3d4e5f"),
         "node2": ("192.168.10.12", "192.168.10.144/28", "192.168.10.146", "cali0f1e2d3c4b5")}
UNALLOCATED = {"node1": "192.168.10.140", "node2": "192.168.10.150"}
POOL = "192.168.10.128/25"
SAMPLES = 5


def resources():
    return {
        "10-ippools.yaml": cuit.yaml_list("IPPoolList", [cuit.ippool("underlay-lan", POOL)]),
        "20-nodes.yaml": cuit.yaml_list("NodeList", [
            cuit.calico_node(n, a + "/24") for n, (a, _, _, _) in NODES.items()]),
        "30-blockaffinities.yaml": cuit.yaml_list("List", [
            cuit.block_affinity(n, b) for n, (_, b, _, _) in NODES.items()], api="v1"),
    }


def figure(text):
    """Figures go to stdout with a fixed prefix so they are easy to find in the log."""
    sys.stdout.write("FIGURE: %s\n" % text)
    sys.stdout.flush()


class Traffic(cuit.Lan, cuit.NsTestCase):

    def setUp(self):
        super().setUp()
        self.lan = self.new_ns("lan", describe=False)
        self.lan.ip("link", "add", "br0", "type", "bridge", "stp_state", "0")
        self.lan.ip("link", "set", "br0", "up")
        self.outside = self.new_ns("outside")
        self.uplink(self.outside, "p-outside", OUTSIDE)
        self.nodes, self.pods, self.daemons = {}, {}, {}
        for name, (addr, _, pod_ip, cali) in NODES.items():
            node = self.nodes[name] = self.new_ns(name)
            self.uplink(node, "p-" + name, addr)
            node.ip("route", "add", "default", "via", OUTSIDE, "dev", "eth0")
            node.ip("link", "add", "vxlan.calico", "type", "vxlan", "id", "4096", "dstport", "4789",
                    "dev", "eth0")
            node.ip("link", "set", "vxlan.calico", "up")
            self.pods[name] = self.pod(node, cali, pod_ip, name.replace("node", "pod"))
            node.write_sysctl("net/ipv4/ip_forward", 1)
            d = self.daemons[name] = cuit.Daemon(node, name, uplink="auto")
            for f, text in resources().items():
                d.write_resource(f, text)

    def flush_neighbours(self):
        for ns in [self.outside] + list(self.nodes.values()) + list(self.pods.values()):
            ns.ip("neigh", "flush", "all")

    def first_contact(self, addr, samples=SAMPLES, wait=1):
        """Cold-cache ping RTTs (ms) from outside to addr; None for a lost one."""
        rtts = []
        for _ in range(samples):
            self.flush_neighbours()
            ok, rtt, _out = cuit.ping(self.outside, addr, wait)
            rtts.append(rtt if ok else None)
        return rtts

    def describe_latency(self, rtts):
        got = [r for r in rtts if r is not None]
        if not got:
            return "all %d lost" % len(rtts)
        return "median %.3f ms, min %.3f ms, max %.3f ms (%d samples%s)" % (
            statistics.median(got), min(got), max(got), len(rtts),
            ", %d lost" % (len(rtts) - len(got)) if len(got) < len(rtts) else "")

    def test_pods_on_the_lan(self):
        echo = cuit.start_echo(self.outside)

        with self.step("the LAN and the pods' wiring work (outside -> nodes, pods -> their node)"):
            for name, (addr, _, _, _) in NODES.items():
                cuit.wait_ping(self.outside, addr)
                cuit.wait_ping(self.pods[name], addr)

        with self.step("before calico-underlayd: the outside host cannot reach the pods"):
            for name, (_, _, pod_ip, _) in NODES.items():
                ok, _, out = cuit.ping(self.outside, pod_ip)
                self.assertFalse(ok, "outside reached %s before any change:\n%s" % (pod_ip, out))
                ok, seen, out = cuit.udp_echo(self.pods[name], OUTSIDE, wait=1)
                self.assertFalse(ok, "pod %s got an answer from outside before any change:\n%s"
                                 % (pod_ip, out))

        with self.step("--check on both nodes: ready"):
            for name, d in self.daemons.items():
                res = d.run("--check", "--format", "json")
                self.assertRc(res, 0)
                doc = res.json()
                self.assertTrue(doc["ready"], str(res))
                self.assertEqual(doc["uplink"]["name"], "eth0", "uplink auto must pick eth0")

        with self.step("--once on both nodes"):
            for name, d in self.daemons.items():
                res = d.run("--once")
                self.assertRc(res, 0)
                self.log("%s: %s" % (name, res.stdout.strip().splitlines()[-1]))
                node = self.nodes[name]
                self.assertEqual(node.proxy_arp("eth0"), 1)
                self.assertEqual(node.proxy_delay("eth0"), 0)
                self.assertIsNone(node.link("vxlan.calico"))

        with self.step("first contact from outside (ARP caches flushed): the first ping answers"):
            for name, (_, _, pod_ip, _) in NODES.items():
                rtts = self.first_contact(pod_ip)
                self.assertNotIn(None, rtts, "a first ping to %s was lost: %s" % (pod_ip, rtts))
                figure("first-contact latency outside -> %s (%s's pod), proxy_delay 0: %s"
                       % (pod_ip, name, self.describe_latency(rtts)))

        with self.step("outside -> pods, and the answers come from the right node's MAC"):
            for name, (_, _, pod_ip, _) in NODES.items():
                ok, _, out = cuit.ping(self.outside, pod_ip)
                self.assertTrue(ok, out)
                mac = self.nodes[name].link("eth0")["address"]
                entry = [n for n in self.outside.ipj("neigh", "show", "dev", "eth0") if n["dst"] == pod_ip]
                self.assertEqual([n.get("lladdr") for n in entry], [mac],
                                 "%s should be answered by %s's uplink %s" % (pod_ip, name, mac))

        with self.step("pod -> outside keeps the pod's own source address"):
            for name, (_, _, pod_ip, _) in NODES.items():
                ok, seen, out = cuit.udp_echo(self.pods[name], OUTSIDE)
                self.assertTrue(ok, out)
                self.assertEqual(seen, pod_ip, "outside saw the datagram from %s" % seen)
                self.log("outside saw %s's datagram from %s" % (name, seen))

        with self.step("pod -> pod across nodes, over our block route"):
            pod1_ip, pod2_ip = NODES["node1"][2], NODES["node2"][2]
            got = self.nodes["node1"].ipj("route", "get", pod2_ip)
            self.assertEqual((got[0].get("gateway"), got[0].get("dev")), (NODES["node2"][0], "eth0"), got)
            echo2 = cuit.start_echo(self.pods["node2"])
            ok, seen, out = cuit.udp_echo(self.pods["node1"], pod2_ip)
            self.assertTrue(ok, out)
            self.assertEqual(seen, pod1_ip)
            for a, b in (("node1", pod2_ip), ("node2", pod1_ip)):
                ok, _, out = cuit.ping(self.pods[a], b)
                self.assertTrue(ok, out)
            cuit.stop(echo2)

        with self.step("unallocated addresses of the nodes' blocks get no ARP answer"):
            for name, addr in UNALLOCATED.items():
                ok, _, out = cuit.ping(self.outside, addr)
                self.assertFalse(ok, "%s (unallocated, %s's block) answered:\n%s" % (addr, name, out))
                state = self.outside.neigh_state("eth0", addr)
                self.assertTrue(state and set(state) & {"FAILED", "INCOMPLETE"},
                                "neighbour entry of %s on outside: %s" % (addr, state))

        with self.step("traffic to an unallocated address ends at its node's blackhole"):
            # pod2 -> 192.168.10.140: node2 sends it to node1 (our block route), where
            # the blackhole drops it; without it node1 would forward it back out of
            # its uplink and ARP for it on the LAN.
            addr, node1 = UNALLOCATED["node1"], self.nodes["node1"]
            # (`ip route get` of a blackholed address fails with EINVAL: list the matches
            # in our table, which the rules consult for pool addresses after main)
            match = node1.ipj("route", "show", "table", str(cuit.TABLE), "match", addr)
            best = max(match, key=lambda r: int(r["dst"].partition("/")[2] or 32) if r["dst"] != "default" else 0)
            self.assertEqual((best["dst"], best["type"]), (NODES["node1"][1], "blackhole"), match)
            ok, _, out = cuit.ping(self.pods["node2"], addr)
            self.assertFalse(ok, out)
            self.assertIsNone(node1.neigh_state("eth0", addr),
                              "node1 resolved %s on its uplink: forwarded back out" % addr)
        cuit.stop(echo)

        with self.step("for comparison: the kernel's default proxy_delay (proxyDelay: keep)"):
            d, node = self.daemons["node1"], self.nodes["node1"]
            self.assertRc(d.run("--cleanup"), 0)
            self.assertEqual(node.proxy_delay("eth0"), 80, "the recorded default delay restored")
            d.write_settings(proxyDelay="keep")
            self.assertRc(d.run("--once"), 0)
            self.assertEqual((node.proxy_arp("eth0"), node.proxy_delay("eth0")), (1, 80))
            rtts = self.first_contact(NODES["node1"][2], samples=3, wait=2)
            figure("first-contact latency outside -> %s, kernel default proxy_delay (80 jiffies): %s"
                   % (NODES["node1"][2], self.describe_latency(rtts)))


# A borrowed address (Calico's default strictAffinity: false): node1's block
# 192.168.10.128/28 is full of node1's own pod .130, and node2's pod got .131 from it.
# The IPAMBlock records .131 as node2's (allocations[3] -> attributes[1].secondary.node).
BORROWED_IP = "192.168.10.131"
B_NODES = {"node1": ("192.168.10.11", "192.168.10.128/28"),
           "node2": ("192.168.10.12", "192.168.10.144/28"),
           "node3": ("192.168.10.13", "192.168.10.160/28")}


def ipam_block(cidr, host, allocations, attr_nodes):
    """An IPAMBlock as `kubectl get ipamblocks.crd.projectcalico.org -o yaml` prints it
    (the shape of libcalico-go's AllocationBlock: allocations index attributes)."""
    lines = ["- apiVersion: crd.projectcalico.org/v1",
             "  kind: IPAMBlock",
             "  metadata:",
             "    name: %s" % cidr.replace(".", "-").replace("/", "-"),
             "  spec:",
             "    affinity: host:%s" % host,
             "    allocations:"]
    lines += ["    - %s" % ("null" if a is None else a) for a in allocations]
    lines += ["    attributes:"]
    for i, n in enumerate(attr_nodes):
        lines += ["    - handle_id: k8s-pod-network.%d" % i,
                  "      secondary:",
                  "        namespace: default",
                  "        node: %s" % n,
                  "        pod: pod-%d" % i]
    lines += ["    cidr: %s" % cidr, "    deleted: false", "    strictAffinity: false"]
    return "\n".join(lines)


class Borrowed(cuit.Lan, cuit.NsTestCase):
    """A LAN host and a peer reach a borrowed address on its hosting node, through the
    affine node (whose blackhole used to swallow it) and directly."""

    def setUp(self):
        super().setUp()
        self.lan = self.new_ns("lan", describe=False)
        self.lan.ip("link", "add", "br0", "type", "bridge", "stp_state", "0")
        self.lan.ip("link", "set", "br0", "up")
        self.outside = self.new_ns("outside")
        self.uplink(self.outside, "p-outside", OUTSIDE)
        self.nodes, self.daemons = {}, {}
        allocations = [0, None, None, 1] + [None] * 12
        self.ipamblocks = cuit.yaml_list("List", [
            ipam_block("192.168.10.128/28", "node1", allocations, ["node1", "node2"])], api="v1")
        res = {
            "10-ippools.yaml": cuit.yaml_list("IPPoolList", [cuit.ippool("underlay-lan", POOL)]),
            "20-nodes.yaml": cuit.yaml_list("NodeList", [
                cuit.calico_node(n, a + "/24") for n, (a, _) in B_NODES.items()]),
            "30-blockaffinities.yaml": cuit.yaml_list("List", [
                cuit.block_affinity(n, b) for n, (_, b) in B_NODES.items()], api="v1"),
        }
        for name, (addr, _) in B_NODES.items():
            node = self.nodes[name] = self.new_ns(name)
            self.uplink(node, "p-" + name, addr)
            node.ip("route", "add", "default", "via", OUTSIDE, "dev", "eth0")
            node.write_sysctl("net/ipv4/ip_forward", 1)
            d = self.daemons[name] = cuit.Daemon(node, name, uplink="auto")
            for f, text in res.items():
                d.write_resource(f, text)
        self.pod1 = self.pod(self.nodes["node1"], "calia1b2c3d4e5f", "192.168.10.130", "pod1")
        self.pod2 = self.pod(self.nodes["node2"], "cali0f1e2d3c4b5", BORROWED_IP, "pod2")
        self.pod3 = self.pod(self.nodes["node3"], "cali9a8b7c6d5e4", "192.168.10.162", "pod3")

    def test_borrowed_address(self):
        node1 = self.nodes["node1"]
        # The LAN host as an upstream router sees it: the block routed to its node (no
        # ICMP redirect may shortcut that path).
        self.outside.ip("route", "add", B_NODES["node1"][1], "via", B_NODES["node1"][0], "dev", "eth0")
        self.outside.write_sysctl("net/ipv4/conf/all/accept_redirects", 0)
        self.outside.write_sysctl("net/ipv4/conf/eth0/accept_redirects", 0)

        with self.step("the LAN works"):
            for name, (addr, _) in B_NODES.items():
                cuit.wait_ping(self.outside, addr)

        with self.step("without the IPAMBlock: the affine node's blackhole swallows the borrowed address"):
            for d in self.daemons.values():
                self.assertRc(d.run("--once"), 0)
            match = node1.ipj("route", "show", "table", str(cuit.TABLE), "match", BORROWED_IP)
            best = max(match, key=lambda r: int(r["dst"].partition("/")[2] or 32) if r["dst"] != "default" else 0)
            self.assertEqual((best["dst"], best["type"]), (B_NODES["node1"][1], "blackhole"), match)
            for ns in (self.outside, self.pod3):
                ok, _, out = cuit.ping(ns, BORROWED_IP)
                self.assertFalse(ok, "reached %s through the blackhole:\n%s" % (BORROWED_IP, out))
            for d in self.daemons.values():
                d.write_resource("40-ipamblocks.yaml", self.ipamblocks)

        with self.step("--check lists the borrowed address, on every node"):
            for name, d in self.daemons.items():
                res = d.run("--check", "--format", "json")
                self.assertRc(res, 0)
                found = [f for f in res.json()["findings"] if f["code"] == "borrowed-addresses"]
                if name == "node2":
                    self.assertEqual(found, [], "the hosting node routes its own pod")
                    continue
                self.assertEqual(len(found), 1, str(res))
                self.assertIn("%s on node2" % BORROWED_IP, found[0]["message"])
            text = self.daemons["node1"].run("--check")
            self.assertIn("borrowed-addresses", text.stdout)
            self.assertIn(BORROWED_IP + " on node2", text.stdout)

        with self.step("--once on every node, with the IPAMBlock"):
            for name, d in self.daemons.items():
                self.assertRc(d.run("--once"), 0)

        with self.step("the affine node routes it to its host, beating its own blackhole"):
            got = node1.ipj("route", "get", BORROWED_IP)
            self.assertEqual((got[0].get("gateway"), got[0].get("dev")), (B_NODES["node2"][0], "eth0"), got)
            mine = [r for r in cuit.our_routes(node1.routes()) if r["dst"] == BORROWED_IP]
            self.assertEqual(len(mine), 1, cuit.fmt_routes(node1.routes()))
            self.assertEqual([r for r in cuit.our_routes(self.nodes["node2"].routes())
                              if r["dst"] == BORROWED_IP], [], "no route on the hosting node")

        with self.step("LAN host -> borrowed address through the affine node"):
            got = self.outside.ipj("route", "get", BORROWED_IP)
            self.assertEqual(got[0].get("gateway"), B_NODES["node1"][0], got)
            ok, _, out = cuit.ping(self.outside, BORROWED_IP)
            self.assertTrue(ok, out)

        with self.step("LAN host -> borrowed address directly (the hosting node answers ARP)"):
            self.outside.ip("route", "del", B_NODES["node1"][1])
            self.outside.ip("neigh", "flush", "all")
            ok, _, out = cuit.ping(self.outside, BORROWED_IP)
            self.assertTrue(ok, out)
            mac = self.nodes["node2"].link("eth0")["address"]
            entry = [n for n in self.outside.ipj("neigh", "show", "dev", "eth0") if n["dst"] == BORROWED_IP]
            self.assertEqual([n.get("lladdr") for n in entry], [mac], "answered by node2")

        with self.step("a peer's pod -> borrowed address directly, and the affine node's pod too"):
            got = self.nodes["node3"].ipj("route", "get", BORROWED_IP)
            self.assertEqual(got[0].get("gateway"), B_NODES["node2"][0], got)
            for pod in (self.pod3, self.pod1):
                ok, _, out = cuit.ping(pod, BORROWED_IP)
                self.assertTrue(ok, out)

        with self.step("an unallocated address of the block still ends at the affine node's blackhole"):
            ok, _, out = cuit.ping(self.pod3, "192.168.10.140")
            self.assertFalse(ok, out)


if __name__ == "__main__":
    cuit.main()
