#!/usr/bin/env python3
"""The etcd datastore on a real kernel and a real etcd (Debian's etcd-server): each
case has a network namespace of its own with a veth uplink eth0 (as tests/daemon), an
etcd inside it on 127.0.0.1 with TLS and client certificates made by openssl, the
Calico keys of a small cluster, and calico-underlayd reading them. Every case polls
kernel state or the daemon's STATUS= with a timeout.

Run: meson test -C BUILD etcd   (or: sudo DAEMON=BUILD/daemon/calico-underlayd
python3 tests/etcd/test_etcd.py -v [TestDaemon.test_name]). Needs root, etcd, etcdctl
and openssl; exit 77 (skipped) otherwise.
"""
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cuetcd as ce  # noqa: E402
from cuetcd import cu  # noqa: E402

STATUS_2 = "underlay: 1 pool, proxy_arp on eth0, 2 block routes, tunnels removed"
STATUS_3 = "underlay: 1 pool, proxy_arp on eth0, 3 block routes, tunnels removed"
WANT_2 = [
    "192.168.10.128/28 blackhole - - 1024",
    "192.168.10.144/28 unicast 192.168.10.12 eth0 1024",
]
WANT_3 = WANT_2 + ["192.168.10.160/28 unicast 192.168.10.12 eth0 1024"]


def stays(fn, duration=1.0, interval=0.05):
    """fn() stays truthy for `duration` seconds, scaled (only for "nothing happens")."""
    end = time.monotonic() + cu.scaled(duration)
    while time.monotonic() < end:
        if not fn():
            return False
        time.sleep(interval)
    return True


class EtcdCase(unittest.TestCase):
    """A namespace with an uplink, PKI, a running etcd loaded with the cluster."""

    def setUp(self):
        self.ns = cu.Netns()
        self.addCleanup(self.ns.close)
        self.ns.setup_uplink()
        self.ns.add_vxlan()
        self.fx = cu.Fixture(files={}, settings=ce.settings())
        self.addCleanup(self.fx.close)
        self.pki = ce.make_pki(os.path.join(self.fx.dir, "pki"))
        self.etcd = ce.Etcd(self.ns, self.fx.dir, self.pki).start()
        self.addCleanup(self.etcd.close)
        ce.load_cluster(self.etcd)
        self.daemons = []

    def tearDown(self):
        failed = self._failed()
        errors = cu.close_daemons(self.daemons, failed)
        if failed:
            sys.stderr.write(f"--- etcd log:\n{self.etcd.log()}\n")
        elif errors:  # a failed case has shown the daemon's stderr already
            raise AssertionError("\n\n".join(errors))

    def _failed(self):
        result = getattr(getattr(self, "_outcome", None), "result", None)
        errs = list(getattr(result, "errors", [])) + list(getattr(result, "failures", []))
        return any(t is self for t, _ in errs)

    def write_settings(self, body):
        cu.write_file(self.fx.config, body)

    def write_calicoctl(self, text):
        path = os.path.join(self.fx.etc, "calicoctl.cfg")
        cu.write_file(path, text)
        return path

    def start(self, env=None, **kw):
        d = cu.Daemon(self.ns, self.fx, env=env, **kw)
        self.daemons.append(d)
        return d

    def start_converged(self, env=None, status=STATUS_2, want=WANT_2):
        d = self.start(env=env).wait_ready()
        d.notify.wait_status(lambda s: s == status, timeout=20)
        self.wait_routes(want)
        cu.wait_until(lambda: self.ns.proxy_arp() == 1, what="proxy_arp=1")
        return d

    def wait_routes(self, want, timeout=15.0):
        return cu.wait_until(lambda: self.ns.route_summary() == want, timeout,
                             what=f"routes {want} (have {self.ns.route_summary()})")

    def env_endpoints(self, endpoints=None):
        return ce.etcd_env(endpoints or self.etcd.url, self.pki)


class TestDaemon(EtcdCase):
    def test_converges_from_environment_with_failover(self):
        # The variables of kubespray's calicoctl.sh, and a first endpoint that is down.
        dead = f"https://127.0.0.1:{ce.DEAD_PORT}"
        d = self.start_converged(env=self.env_endpoints(f"{dead},{self.etcd.url}"))
        self.assertFalse(self.ns.link_exists("vxlan.calico"))
        self.assertTrue(d.stderr_lines(f"configuration loaded from etcdv3 {self.etcd.url} revision"), d.stderr())
        self.assertTrue(d.stderr_lines("from the environment"), d.stderr())

    def test_converges_from_calicoctl_cfg(self):
        cfg = self.write_calicoctl(ce.calicoctl_cfg(self.etcd.url, self.pki))
        self.write_settings(ce.settings(calicoctl_cfg=cfg))
        d = self.start_converged()
        self.assertTrue(d.stderr_lines(f"(from {cfg})"), d.stderr())

    def test_pool_change_reaches_host(self):
        d = self.start_converged(env=self.env_endpoints())
        key, value = ce.pool(nat=True)
        self.etcd.put(key, value)
        # natOutgoing: true: no underlay pool applies; our routes go, proxy_arp is restored.
        d.notify.wait_status(lambda s: s.startswith("overlay: no underlay pool applies"), timeout=10)
        self.wait_routes([])
        cu.wait_until(lambda: self.ns.proxy_arp() == 0, what="proxy_arp restored to 0")
        key, value = ce.pool(nat=False)
        self.etcd.put(key, value)
        d.notify.wait_status(lambda s: s == STATUS_2, timeout=10)
        self.wait_routes(WANT_2)

    def test_resync_repairs_proxy_delay_drift(self):
        # Issue 14: with etcd the first pass has no model (the list is pending), and the
        # periodic re-check was never armed afterwards: a proxy delay set by hand (no
        # rtnetlink event) stayed for ever.
        self.write_settings("nodeName: node1\nuplink: auto\nresyncSeconds: 2\n")
        self.start_converged(env=self.env_endpoints())
        self.ns.sysctl_set("net.ipv4.neigh.eth0.proxy_delay", 50)
        cu.wait_until(lambda: self.ns.sysctl("net.ipv4.neigh.eth0.proxy_delay") == 0, timeout=10,
                      what="the proxy delay set by hand repaired by the periodic re-check")

    def test_affinity_added_and_deleted(self):
        d = self.start_converged(env=self.env_endpoints())
        key = ce.affinity_key("node2", cu.EXTRA_BLOCK)
        self.etcd.put(key, ce.CONFIRMED)
        self.wait_routes(WANT_3)
        d.notify.wait_status(lambda s: s == STATUS_3)
        self.etcd.delete(key)
        self.wait_routes(WANT_2)
        d.notify.wait_status(lambda s: s == STATUS_2)
        # A pending affinity is no block of the node's.
        self.etcd.put(key, {"state": "pending", "deleted": False})
        self.assertTrue(stays(lambda: self.ns.route_summary() == WANT_2, 1.0))

    def test_burst_of_watch_events_is_one_pass(self):
        """Issue 16: a watch's changes wait 20 ms of quiet (at most 50 ms), far less than
        files' 200 ms, yet a burst of puts (several keys, each its own revision and
        watch event, a few milliseconds apart) is still gathered into one pass."""
        d = self.start_converged(env=self.env_endpoints())
        time.sleep(0.3)  # the no-op pass that proxy_arp's own netconf event may cost
        n = d.passes()
        extra = ["192.168.10.160/28", "192.168.10.176/28", "192.168.10.192/28", "192.168.10.208/28"]
        t0 = time.monotonic()
        self.etcd.put_many([(ce.affinity_key("node2", c), ce.CONFIRMED) for c in extra])
        span = time.monotonic() - t0
        self.wait_routes(sorted(WANT_2 + [f"{c} unicast 192.168.10.12 eth0 1024" for c in extra]))
        self.assertTrue(stays(lambda: True, 0.3))
        passes = d.stderr_lines("reconcile pass")[n:]
        changed = [p for p in passes if ": 0 changes" not in p]
        self.assertEqual(len(changed), 1, f"burst of {len(extra)} puts (posted in {span * 1000:.0f} ms, with "
                                          f"the helper's start) gave {passes}")

    def test_ipam_block_borrowed_address_and_states(self):
        """Issue 12 through etcd: a borrowed address of node1's block, hosted by node2,
        gets its host route (the IPAM block keys are watched too); a pendingDeletion
        affinity still counts; a key whose value names another resource is refused,
        naming the key, and changes nothing."""
        d = self.start_converged(env=self.env_endpoints())
        key, value = ce.ipam_block(cu.OWN_BLOCK, "node1", [0, None, None, 1] + [None] * 12, ["node1", "node2"])
        self.etcd.put(key, value)
        borrowed = "192.168.10.131 unicast 192.168.10.12 eth0 1024"  # ip -j prints host routes bare
        self.wait_routes(sorted(WANT_2 + [borrowed]))
        self.etcd.put(ce.affinity_key("node2", cu.EXTRA_BLOCK), {"state": "pendingDeletion", "deleted": False})
        self.wait_routes(sorted(WANT_3 + [borrowed]))
        self.etcd.put(ce.affinity_key("node2", cu.EXTRA_BLOCK), {"state": "pending", "deleted": False})
        self.wait_routes(sorted(WANT_2 + [borrowed]))
        evil, value = ce.node("node2", "192.168.10.99/24")
        evil = evil.replace("/node2", "/evil")
        self.etcd.put(evil, value)
        status = d.notify.wait_status("last error")
        self.assertIn(f"etcd:{evil}:1:", status)
        self.assertIn('metadata.name "node2" differs from the key\'s name "evil"', status)
        self.assertTrue(stays(lambda: self.ns.route_summary() == sorted(WANT_2 + [borrowed]), 1.0))
        self.etcd.delete(evil)
        d.notify.wait_status(lambda s: "last error" not in s, timeout=10)
        self.assertEqual(self.ns.route_summary(), sorted(WANT_2 + [borrowed]))

    def test_large_datastore_is_listed_in_pages(self):
        # More affinities than one range page (5,000 keys, ETCD_PAGE): an overlay pool
        # of 10,500 blocks of node2's, read in three pages at one revision, over gRPC (the
        # default) and over the JSON gateway (CALICO_UNDERLAY_ETCD_GATEWAY=1), alike.
        big = [ce.pool(name="overlay-big", cidr="10.64.0.0/12", block_size=26, nat=True)]
        big += [(ce.affinity_key("node2", f"10.{64 + i // 1024}.{i // 4 % 256}.{i % 4 * 64}/26"), ce.CONFIRMED)
                for i in range(10500)]
        self.etcd.put_many(big)
        for env, transport in (({}, "gRPC"), ({"CALICO_UNDERLAY_ETCD_GATEWAY": "1"}, "the JSON gateway")):
            d = self.start_converged(env=dict(self.env_endpoints(), CALICO_UNDERLAY_LOG_LEVEL="debug", **env))
            self.assertTrue(d.stderr_lines("node node1, 2 pools, 10502 blocks"), d.stderr()[-3000:])
            listed = re.compile(r"etcd: listed \d+ keys at revision \d+ from \S+ over " + transport + "$")
            self.assertTrue(any(listed.search(l) for l in d.stderr().splitlines()), d.stderr()[-3000:])
            self.assertEqual(self.ns.route_summary(), WANT_2)
            d.stop()

    def test_invalid_value_is_reported_and_changes_nothing(self):
        d = self.start_converged(env=self.env_endpoints())
        key, value = ce.pool(name="broken", cidr="10.9.0.1/16")
        self.etcd.put(key, value)
        status = d.notify.wait_status("last error")
        self.assertTrue(status.startswith(STATUS_2), status)
        m = re.search(r"etcd:(/calico/resources/v3/projectcalico\.org/ippools/broken):1:(\d+): cidr 10\.9\.0\.1/16 "
                      r"has host bits set", status)
        self.assertTrue(m, status)
        self.assertTrue(d.stderr_lines("etcd:/calico/resources/v3/projectcalico.org/ippools/broken:1:"), d.stderr())
        self.assertTrue(stays(lambda: self.ns.route_summary() == WANT_2, 1.0))
        # Later changes are held back too (the whole set is refused), until it is fixed.
        self.etcd.put(ce.affinity_key("node2", cu.EXTRA_BLOCK), ce.CONFIRMED)
        self.assertTrue(stays(lambda: self.ns.route_summary() == WANT_2, 1.0))
        self.etcd.delete(key)
        self.wait_routes(WANT_3)
        d.notify.wait_status(lambda s: s == STATUS_3)

    def test_etcd_stopped_keeps_host_then_converges(self):
        # With metrics: datastore_up follows etcd (the file at most every 5 s).
        prom = os.path.join(self.fx.dir, "calico-underlay.prom")
        up = 'calico_underlay_datastore_up{datastore="etcdv3"}'
        self.write_settings(ce.settings(extra=f"metricsFile: {prom}\n"))
        d = self.start_converged(env=self.env_endpoints())
        cu.wait_until(lambda: cu.metric(prom, up) == 1, cu.scaled(10), what=f"{up} 1")
        self.etcd.stop()
        cu.wait_until(lambda: cu.metric(prom, up) == 0, cu.scaled(20), what=f"{up} 0 while etcd is away")
        self.assertEqual(cu.metric(prom, "calico_underlay_underlay_mode"), 1, "the last model still applies")
        status = d.notify.wait_status("datastore unreachable", timeout=15)
        self.assertTrue(status.startswith(STATUS_2), status)
        self.assertIn("(keeping the last model)", status)
        self.assertIn(self.etcd.url, status)
        self.assertTrue(d.stderr_lines("datastore unreachable"), d.stderr())
        self.assertTrue(stays(lambda: self.ns.route_summary() == WANT_2 and self.ns.proxy_arp() == 1, 2.0),
                        "nothing is withdrawn while the datastore is away")
        # Drift is still repaired from the last model.
        self.ns.ip("route", "del", cu.PEER_BLOCK, "table", str(cu.TABLE))
        self.wait_routes(WANT_2)
        self.etcd.start()
        # Back within the retry delay (at most 30 s), and watching again.
        d.notify.wait_status(lambda s: s == STATUS_2, timeout=45)
        self.assertTrue(d.stderr_lines("datastore reachable again"), d.stderr())
        cu.wait_until(lambda: cu.metric(prom, up) == 1, cu.scaled(10), what=f"{up} 1 again")
        self.etcd.put(ce.affinity_key("node2", cu.EXTRA_BLOCK), ce.CONFIRMED)
        self.wait_routes(WANT_3)

    def test_idle_watching_uses_no_cpu_and_sigterm_leaves_host(self):
        d = self.start_converged(env=self.env_endpoints())
        time.sleep(cu.scaled(0.5))  # let the first pass settle
        before = d.cpu_ticks()
        time.sleep(3)  # the measurement itself: watching an idle datastore
        self.assertLessEqual(d.cpu_ticks() - before, 1, "CPU time while idle (clock ticks)")
        self.assertEqual(d.stop(signal.SIGTERM, timeout=5), 0, d.stderr())
        self.assertEqual(self.ns.route_summary(), WANT_2)
        self.assertEqual(self.ns.proxy_arp(), 1)
        # Started again on a host that matches: the model comes after the start pass,
        # and its first pass says so (a restart must not look like a daemon still waiting).
        d2 = self.start_converged(env=self.env_endpoints())
        cu.wait_until(lambda: d2.stderr_lines("reconciled: 0 changes"), what="reconciled: 0 changes")
        self.assertEqual(len(d2.stderr_lines("reconciled:")), 1, d2.stderr())

    def test_waits_for_datastore_at_start(self):
        self.etcd.stop()
        d = self.start(env=self.env_endpoints()).wait_ready()
        status = d.notify.wait_status("datastore unreachable", timeout=15)
        self.assertIn("waiting for the datastore", status)
        self.assertIn("(keeping the host as it is)", status)
        self.assertTrue(self.ns.link_exists("vxlan.calico"), "nothing changes without a model")
        self.assertEqual(self.ns.route_summary(), [])
        self.etcd.start()
        d.notify.wait_status(lambda s: s == STATUS_2, timeout=45)
        self.wait_routes(WANT_2)


class TestDeltaEquivalence(EtcdCase):
    """Issue 16: the running daemon plans a change of blocks alone (a delta pass over
    the prefixes it touched); after random sequences of changes the host must be what
    the full path (--once) makes of the same final keys. Seeded: CU_SEED=N repeats a
    run (the seed is in every failure message)."""

    SLOTS = [f"192.168.10.{128 + 16 * i}/28" for i in range(8)] + [f"10.20.0.{16 * i}/28" for i in range(16)]
    # IPv6 (DESIGN.md §3 "IPv6"): an underlay pool fd00:10::/119 of eight /122 blocks,
    # the uplink's prefix fd00:1::/64, nodes' IPv6 addresses on-link or not.
    SLOTS6 = [f"fd00:10::{64 * i:x}/122" for i in range(8)]
    NODES = ["node1", "node2", "node3", "node4"]
    ADDRS = [("192.168.10.13/24", "fd00:1::13/64"), ("192.168.10.23/24", "fd00:1::23/64"),
             ("192.168.20.4/24", "fd00:2::4/64")]

    def routes6(self):
        return sorted(f"{r['dst']} {r.get('type', 'unicast')} {r.get('gateway', '-')} {r.get('dev', '-')}"
                      for r in self.ns.ipj("-6", "route", "show", "table", "all", "proto", str(cu.PROTO))
                      if str(r.get("table", "main")) == str(cu.TABLE))

    def host_state(self):
        """Our routes (table 252, IPv4 and IPv6), our rules, the uplink's proxy settings."""
        rules = sorted(json.dumps(r, sort_keys=True) for r in self.ns.ipj("rule", "show") + self.ns.ipj("-6", "rule", "show")
                       if str(r.get("protocol")) in (str(cu.PROTO), "211"))
        return {"routes": self.ns.route_summary(), "routes6": self.routes6(), "rules": rules,
                "proxy_arp": self.ns.proxy_arp(), "proxy_delay": self.ns.sysctl("net.ipv4.neigh.eth0.proxy_delay")}

    def settle(self, seed):
        """The daemon done with the last change: our routes unchanged for a second."""
        last = [None]

        def quiet():
            now = self.ns.route_summary() + self.routes6()
            same, last[0] = now == last[0], now
            return same
        cu.wait_until(lambda: stays(quiet, 1.0, 0.1), timeout=30, what=f"the daemon settled (seed {seed})")

    def random_step(self, rng, owner, ipam):
        """One change of Calico's IPAM keys (a block claimed, moved or released, an IPAM
        block with borrowed addresses written or removed) or of a node's address."""
        op = rng.randrange(10)
        owned = sorted(s for s in owner if owner[s] and ":" not in s)  # IPAM blocks: IPv4 here
        if op == 4 and any(owner.values()):  # released
            slot = rng.choice(sorted(s for s in owner if owner[s]))
            self.etcd.delete(ce.affinity_key(owner.pop(slot), slot))
            if ipam.pop(slot, None):
                self.etcd.delete(ce.block_key(slot))
        elif 5 <= op <= 7 and owned:  # pods of other nodes borrow addresses there
            slot = rng.choice(owned)
            hosts = [owner[slot]] + [rng.choice(self.NODES) for _ in range(3)]
            allocs = [0] + [i if rng.random() < 0.6 else None for i in (1, 2, 3)] + [None] * 12
            self.etcd.put(*ce.ipam_block(slot, owner[slot], allocs, hosts))
            ipam[slot] = True
        elif op == 8 and ipam:  # the IPAM block gone, the affinity stays
            slot = rng.choice(sorted(ipam))
            del ipam[slot]
            self.etcd.delete(ce.block_key(slot))
        elif op == 9:  # a node's address changed (not this node's)
            name = rng.choice(["node3", "node4"])
            self.etcd.put(*ce.node(name, *rng.choice(self.ADDRS)))
        else:  # a block claimed, or moved to another node
            slot, new = rng.choice(self.SLOTS + self.SLOTS6), rng.choice(self.NODES)
            if owner.get(slot) and owner[slot] != new:
                self.etcd.delete(ce.affinity_key(owner[slot], slot))
                if ipam.pop(slot, None):
                    self.etcd.delete(ce.block_key(slot))
            owner[slot] = new
            self.etcd.put(ce.affinity_key(new, slot), ce.CONFIRMED)
        return self.ns.route_summary() + self.routes6()

    def test_delta_passes_equal_full_once(self):
        seed = int(os.environ.get("CU_SEED", str(time.time_ns() % 1000000)))
        rng = random.Random(seed)
        self.ns.ip("-6", "addr", "add", "fd00:1::11/64", "dev", "eth0", "nodad")
        self.etcd.put(*ce.pool(name="underlay-2", cidr="10.20.0.0/24"))
        self.etcd.put(*ce.pool(name="underlay-6", cidr="fd00:10::/119", block_size=122))
        self.etcd.put(*ce.node("node1", "192.168.10.11/24", "fd00:1::11/64"))
        self.etcd.put(*ce.node("node2", "192.168.10.12/24", "fd00:1::12/64"))
        self.etcd.put(*ce.node("node3", "192.168.10.13/24", "fd00:1::13/64"))
        self.etcd.put(*ce.node("node4", "192.168.20.4/24", "fd00:2::4/64"))
        owner = {cu.OWN_BLOCK: "node1", cu.PEER_BLOCK: "node2"}
        # An IPv6 block of node2's (on-link, its address never moves) from the start, so
        # that every seed has an IPv6 peer route for the steps to move or release (a
        # random sequence alone missed it for some seeds, e.g. 785138).
        owner[self.SLOTS6[1]] = "node2"
        self.etcd.put(ce.affinity_key("node2", self.SLOTS6[1]), ce.CONFIRMED)
        ipam, seen = {}, set()
        d = self.start(env=self.env_endpoints()).wait_ready()
        cu.wait_until(lambda: self.ns.proxy_arp() == 1, what="proxy_arp=1")
        self.settle(seed)
        seen |= set(self.ns.route_summary() + self.routes6())
        for seq in range(4):
            for _ in range(12):
                seen |= set(self.random_step(rng, owner, ipam))
                time.sleep(rng.choice([0, 0, 0.01, 0.03, 0.08]))
            self.settle(seed)
            state = self.host_state()
            # The full path from the same keys finds nothing to change.
            r = ce.run_cli(self.ns, self.fx, "--once", env=self.env_endpoints())
            self.assertEqual(r.returncode, 0, f"seed {seed}, sequence {seq}:\n{r.stdout}{r.stderr}")
            self.assertIn("0 changes, 0 failed", r.stdout,
                          f"seed {seed}, sequence {seq}: the full path differs from the daemon's host:\n"
                          f"{r.stdout}\n--- daemon:\n{d.stderr()[-6000:]}")
            self.assertEqual(self.host_state(), state, f"seed {seed}, sequence {seq}")
        deltas = [p for p in d.stderr_lines("reconcile pass (") if "; delta pass over" in p]
        self.assertTrue(deltas, f"seed {seed}: no delta pass ran:\n{d.stderr()[-4000:]}")
        # The sequences reached borrowed addresses' host routes too, and IPv6 blocks.
        self.assertTrue(any(r.split()[0].count(".") == 3 and "/" not in r.split()[0] for r in seen),
                        f"seed {seed}: no borrowed address was routed: {sorted(seen)}")
        self.assertTrue(any(r.startswith("fd00:10::") and " unicast fd00:1::" in r for r in seen),
                        f"seed {seed}: no IPv6 block was routed: {sorted(seen)}")
        # A fresh full path: our routes gone, --once rebuilds them from the same keys.
        final = self.host_state()
        d.stop()
        self.ns.ip("route", "flush", "table", str(cu.TABLE), "proto", str(cu.PROTO))
        self.ns.ip("-6", "route", "flush", "table", str(cu.TABLE), "proto", str(cu.PROTO))
        self.assertEqual(self.ns.route_summary() + self.routes6(), [])
        r = ce.run_cli(self.ns, self.fx, "--once", env=self.env_endpoints())
        self.assertEqual(r.returncode, 0, f"seed {seed}:\n{r.stdout}{r.stderr}")
        self.assertEqual(self.host_state(), final, f"seed {seed}: a fresh --once differs from the daemon's host")
        sys.stderr.write(f"[seed {seed}: {len(deltas)} delta passes, {len(d.stderr_lines('reconcile pass'))} "
                         f"passes in all]\n")


class TestDeltaKnowsHost(EtcdCase):
    """Issue 16: between full passes a delta pass plans against what it knows of the
    kernel's routes: our own changes, others' routes in main as their route events
    arrive, and the default route (its gateway no route of ours may cover: a change of
    it starts a full pass)."""

    PEER_VIA = "192.168.10.144/28 unicast 192.168.10.12 eth0 1024"

    def start_with_deltas(self, extra="", uplink="auto"):
        """Converged, with the context of a full pass kept (since bfd290e the first
        change through the source is a delta pass too), two changes made."""
        self.write_settings(ce.settings(extra=extra).replace("uplink: auto", f"uplink: {uplink}"))
        d = self.start_converged(env=self.env_endpoints())
        n = len(d.stderr_lines("reconcile pass ("))
        self.etcd.put(ce.affinity_key("node2", "192.168.10.208/28"), ce.CONFIRMED)
        self.wait_routes(sorted(WANT_2 + ["192.168.10.208/28 unicast 192.168.10.12 eth0 1024"]))
        # The route is in the kernel before its pass's line is logged: wait for the line,
        # or the next delta() could take it for its own pass (seen under valgrind).
        cu.wait_until(lambda: len(d.stderr_lines("reconcile pass (")) > n, what="the pass of the first change")
        self.delta(d, "192.168.10.224/28")
        return d

    def delta(self, d, cidr, routed=True):
        """A block of node2's claimed; the delta pass that planned it (a later line than
        any pass before the put; a routed block's route in the kernel too)."""
        n = len(self.deltas(d))
        route = f"{cidr} unicast 192.168.10.12 eth0 1024"
        self.etcd.put(ce.affinity_key("node2", cidr), ce.CONFIRMED)
        cu.wait_until(lambda: len(self.deltas(d)) > n and (route in self.ns.route_summary()) == routed,
                      what=f"a delta pass for {cidr}:\n{d.stderr()[-3000:]}")
        self.assertEqual(route in self.ns.route_summary(), routed, self.ns.route_summary())

    @staticmethod
    def deltas(d):
        return [p for p in d.stderr_lines("reconcile pass (") if "; delta pass over" in p]

    def route_states(self, prom):
        return {s: cu.metric(prom, f'calico_underlay_block_routes{{state="{s}"}}')
                for s in ("ours", "other_protocol", "conflicting", "needs_upstream")}

    def wait_states(self, prom, want, what):
        cu.wait_until(lambda: self.route_states(prom) == want, cu.scaled(15),
                      what=f"{what}: block_routes {want} (have {self.route_states(prom)})")

    def full_pass_agrees(self, d, prom, want):
        """SIGHUP: a full pass (a fresh dump) changes nothing and counts the same."""
        n = len(d.stderr_lines("reconcile pass (reload)"))
        routes = self.ns.route_summary()
        d.send(signal.SIGHUP)
        cu.wait_until(lambda: len(d.stderr_lines("reconcile pass (reload)")) > n, what="the full pass of SIGHUP")
        self.assertTrue(d.stderr_lines("reconcile pass (reload)")[-1].find(": 0 changes") > 0,
                        d.stderr_lines("reconcile pass (reload)")[-1])
        self.assertEqual(self.ns.route_summary(), routes)
        self.wait_states(prom, want, "after the full pass")

    def test_upstream_routes_file_gathers_changes(self):
        """upstreamRoutesFile after changes the source applied in place: gathered for a
        second (the whole set costs ~26 ms of CPU at 100k blocks, more than ten changes'
        worth), so changes in a row are fewer computations and writes; the routes do
        not wait for it; a change still gathering is written before the daemon exits."""
        target = os.path.join(self.fx.dir, "upstream.json")
        d = self.start_with_deltas(extra=f"upstreamRoutesFile: {target}\n")

        def cli():
            r = ce.run_cli(self.ns, self.fx, "--upstream-routes", "--format", "json", env=self.env_endpoints())
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            return r.stdout

        def content():
            try:
                with open(target) as f:
                    return f.read()
            except FileNotFoundError:
                return None

        want = cli()
        cu.wait_until(lambda: content() == want, what="the upstream routes file")
        time.sleep(cu.scaled(1.5))  # past any gathering still due, and its log line
        updated = len(d.stderr_lines("upstream routes file"))
        extra = ["192.168.10.160/28", "192.168.10.176/28", "192.168.10.192/28", "192.168.10.240/28"]
        for cidr in extra:
            self.delta(d, cidr)  # each its own delta pass, its route in the kernel at once
        want = cli()
        cu.wait_until(lambda: content() == want, what="the gathered upstream routes")
        cu.wait_until(lambda: len(d.stderr_lines("upstream routes file")) > updated, what="the write's log line")
        writes = len(d.stderr_lines("upstream routes file")) - updated
        self.assertTrue(1 <= writes < len(extra), f"{writes} writes for {len(extra)} changes:\n{d.stderr()[-3000:]}")
        self.etcd.delete(ce.affinity_key("node2", extra[-1]))
        cu.wait_until(lambda: f"{extra[-1]} unicast" not in " ".join(self.ns.route_summary()), what="the release")
        self.assertEqual(d.stop(signal.SIGTERM, timeout=5), 0, d.stderr())
        self.assertEqual(content(), cli(), "the change still gathering, written at exit")

    def test_foreign_main_routes_between_deltas(self):
        prom = os.path.join(self.fx.dir, "calico-underlay.prom")
        d = self.start_with_deltas(extra=f"metricsFile: {prom}\n")
        self.wait_states(prom, {"ours": 4, "other_protocol": 0, "conflicting": 0, "needs_upstream": 0}, "converged")
        passes = d.passes()
        # BIRD's route for node2's block (the same path as ours: "other protocol"), a
        # static one for another with another next hop (a conflict), one for no block.
        self.ns.ip("route", "add", "192.168.10.144/28", "via", "192.168.10.12", "dev", "eth0", "proto", "bird")
        self.ns.ip("route", "add", "192.168.10.208/28", "via", "192.168.10.13", "dev", "eth0", "proto", "static")
        self.ns.ip("route", "add", "192.168.10.240/28", "via", "192.168.10.13", "dev", "eth0", "proto", "bird")
        self.assertTrue(stays(lambda: d.passes() == passes, 0.5), "others' routes in main start no pass")
        self.delta(d, "192.168.10.176/28")
        want = {"ours": 3, "other_protocol": 1, "conflicting": 1, "needs_upstream": 0}
        self.wait_states(prom, want, "after the delta pass")
        self.assertTrue(d.stderr_lines("192.168.10.208/28: a route of protocol 4"), d.stderr()[-3000:])
        self.full_pass_agrees(d, prom, want)
        # ... and gone again (BIRD withdraws, the static route is deleted), then a delta.
        # (The first change after SIGHUP may come with the source's new list: a full
        # pass. It leaves the context for the next one.)
        self.etcd.put(ce.affinity_key("node2", "192.168.10.192/28"), ce.CONFIRMED)
        cu.wait_until(lambda: "192.168.10.192/28 unicast 192.168.10.12 eth0 1024" in self.ns.route_summary(),
                      what="the route of 192.168.10.192/28")
        time.sleep(cu.scaled(0.5))  # the source settled after its reload
        self.ns.ip("route", "del", "192.168.10.144/28", "proto", "bird")
        self.ns.ip("route", "del", "192.168.10.208/28", "proto", "static")
        self.delta(d, cu.EXTRA_BLOCK)
        want = {"ours": 7, "other_protocol": 0, "conflicting": 0, "needs_upstream": 0}
        self.wait_states(prom, want, "after the delta pass")
        self.full_pass_agrees(d, prom, want)

    def test_default_gateway_change_is_a_full_pass(self):
        # The uplink named: the default route does not choose it, yet its gateway counts.
        d = self.start_with_deltas(uplink="eth0")
        # The gateway moves into the pool, inside a block node2 is about to claim: no
        # route of ours may cover it (it would cut this node off).
        n = len(d.stderr_lines("reconcile pass (host event)"))
        self.ns.ip("route", "replace", "default", "via", "192.168.10.170", "dev", "eth0")
        cu.wait_until(lambda: len(d.stderr_lines("reconcile pass (host event)")) > n,
                      what="a full pass for the new default route")
        self.delta(d, "192.168.10.176/28")
        n = d.passes()
        self.etcd.put(ce.affinity_key("node2", cu.EXTRA_BLOCK), ce.CONFIRMED)
        cu.wait_until(lambda: d.passes() > n, what="the pass for the block around the gateway")
        self.delta(d, "192.168.10.192/28")
        self.assertNotIn(f"{cu.EXTRA_BLOCK} unicast 192.168.10.12 eth0 1024", self.ns.route_summary(),
                         "a route over the default gateway")
        r = ce.run_cli(self.ns, self.fx, "--once", env=self.env_endpoints())
        self.assertIn("0 changes, 0 failed", r.stdout, r.stdout + r.stderr)
        # Back: the block's route comes with the full pass the default route starts.
        before = self.ns.route_summary()
        self.ns.ip("route", "replace", "default", "via", "192.168.10.1", "dev", "eth0")
        self.wait_routes(sorted(before + [f"{cu.EXTRA_BLOCK} unicast 192.168.10.12 eth0 1024"]))


class TestStreams(EtcdCase):
    """Through a relay that breaks the daemon's streams on command."""

    def setUp(self):
        super().setUp()
        self.proxy = ce.Proxy(self.ns, self.fx.dir)
        self.addCleanup(self.proxy.close)

    def test_broken_stream_lists_again(self):
        d = self.start_converged(env=self.env_endpoints(self.proxy.url))
        self.proxy.command("cut")
        cu.wait_until(lambda: d.stderr_lines("broke"), what="the daemon to see its streams break")
        self.etcd.put(ce.affinity_key("node2", cu.EXTRA_BLOCK), ce.CONFIRMED)
        self.wait_routes(WANT_3)
        d.notify.wait_status(lambda s: s == STATUS_3)

    def test_compacted_revision_lists_again(self):
        d = self.start_converged(env=self.env_endpoints(self.proxy.url))
        accepted = int(self.proxy.command("count"))
        # Break the streams; the daemon lists again on the one relayed connection, and
        # its new watches (from the listed revision + 1) wait in the relay.
        self.proxy.command("cut-hold")
        cu.wait_until(lambda: int(self.proxy.command("count")) >= accepted + 3,
                      what="the daemon's new watch connections")
        # Meanwhile the keys move on and the history is compacted away.
        self.etcd.put(ce.affinity_key("node2", cu.EXTRA_BLOCK), ce.CONFIRMED)
        self.etcd.put(ce.affinity_key("node9", "10.200.0.0/26"), {"state": "pending", "deleted": False})
        self.etcd.compact(self.etcd.revision())
        self.proxy.command("release")
        cu.wait_until(lambda: d.stderr_lines("is compacted"), timeout=15,
                      what="the daemon to be told its revision is compacted")
        self.wait_routes(WANT_3)
        d.notify.wait_status(lambda s: s == STATUS_3)
        self.assertNotIn("unreachable", d.notify.status())


    def test_unanswered_watch_handshake_is_given_up(self):
        # A watch whose endpoint takes the TCP connection and never answers the TLS
        # handshake (a wedged proxy or etcd) is given up after the stream connect
        # timeout (STREAM_CONNECT_TIMEOUT_MS, 30 s, daemon/http.c) and the source lists
        # and watches again; without that timeout the watch waited for ever and no
        # change reached the host. (The watches' deadline, WATCH_CREATED_USEC in
        # daemon/etcd.c, also 30 s and armed just before the connects, may fire first.)
        d = self.start_converged(env=self.env_endpoints(self.proxy.url))
        accepted = int(self.proxy.command("count"))
        # Break the streams: the list goes over the one relayed connection, the new
        # watches' connections are held unanswered; new connections after them relay.
        self.proxy.command("cut-hold")
        cu.wait_until(lambda: int(self.proxy.command("count")) >= accepted + 3,
                      what="the daemon's new watch connections")
        self.proxy.command("relay-new")
        t0 = time.monotonic()
        self.etcd.put(ce.affinity_key("node2", cu.EXTRA_BLOCK), ce.CONFIRMED)
        # 30 s of handshake, then at most the watch back-off (1-2 s, jittered) and a list.
        self.wait_routes(WANT_3, timeout=50)
        took = time.monotonic() - t0
        self.assertGreater(took, 25, "the change came through before the watch's connect timeout: "
                           "the held connections were not the watches'")
        self.assertLess(took, cu.scaled(45), f"{took:.1f} s")
        d.notify.wait_status(lambda s: s == STATUS_3)
        gave_up = [l for l in d.stderr_lines("watch") if re.search(r"[Tt]ime[d ]* ?out", l)]
        self.assertTrue(gave_up, d.stderr()[-3000:])
        self.assertNotIn("unreachable", d.notify.status())


class TestProgress(EtcdCase):
    def test_progress_keeps_a_quiet_watch(self):
        # The other side of test_quiet_watch_is_given_up: a real etcd sends progress
        # notifications to the daemon's watches (progress_notify; every second here, 10
        # minutes by default), so watches with nothing to tell for longer than the
        # silence are kept: no list again, and the next change still comes by the watch.
        self.etcd.stop()
        self.etcd.extra = ["--experimental-watch-progress-notify-interval", "1s"]
        self.etcd.start()
        d = self.start_converged(env=dict(self.env_endpoints(), CALICO_UNDERLAY_ETCD_WATCH_SILENCE="5",
                                          CALICO_UNDERLAY_LOG_LEVEL="debug"))
        time.sleep(12)
        self.assertEqual(d.stderr_lines("went silent"), [], d.stderr()[-3000:])
        self.assertEqual(d.stderr_lines("listing again"), [], d.stderr()[-3000:])
        self.etcd.put(ce.affinity_key("node2", cu.EXTRA_BLOCK), ce.CONFIRMED)
        self.wait_routes(WANT_3)
        self.assertEqual(d.stderr_lines("listing again"), [], d.stderr()[-3000:])


class TestCommands(EtcdCase):
    """--check and --once read the datastore once; bad calicoctl settings are named."""

    def check(self, *args, env=None):
        return ce.run_cli(self.ns, self.fx, "--check", *args, env=env)

    def test_check_shows_source(self):
        r = self.check(env=self.env_endpoints())
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        m = re.search(r"^source: etcdv3 (\S+) revision (\d+)$", r.stdout, re.M)
        self.assertTrue(m, r.stdout)
        self.assertEqual(m.group(1), self.etcd.url)
        self.assertEqual(int(m.group(2)), self.etcd.revision())
        self.assertIn("add-route", r.stdout)
        r = self.check("--format", "json", env=self.env_endpoints())
        doc = json.loads(r.stdout)
        self.assertEqual(doc["source"], {"type": "etcdv3", "endpoint": self.etcd.url,
                                         "revision": self.etcd.revision()})
        self.assertTrue(doc["ready"], r.stdout)
        self.assertEqual(self.ns.route_summary(), [], "--check changes nothing")

    def test_credentials_never_echoed_and_clear_password_warned(self):
        # Issue 14: a password in an endpoint URL was echoed in the error; a password
        # sent over http:// went with no word.
        env = dict(self.env_endpoints(), ETCD_ENDPOINTS="https://root:S3cr3t@127.0.0.1:2379")
        r = self.check(env=env)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertNotIn("S3cr3t", r.stdout + r.stderr)
        self.assertIn("https://root:***@127.0.0.1:2379", r.stdout + r.stderr)
        env = dict(self.env_endpoints(f"http://127.0.0.1:{ce.DEAD_PORT}"), ETCD_USERNAME="root",
                   ETCD_PASSWORD="S3cr3t")
        for fmt in ("text", "json"):
            r = self.check("--format", fmt, env=env)
            self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
            self.assertNotIn("S3cr3t", r.stdout + r.stderr)
            self.assertIn(f"the etcd password is sent in clear to http://127.0.0.1:{ce.DEAD_PORT}", r.stdout)
        d = self.start(env=env).wait_ready()
        cu.wait_until(lambda: d.stderr_lines("the etcd password is sent in clear"), what="the warning logged")
        self.assertNotIn("S3cr3t", d.stderr())

    def test_upstream_routes_from_etcd(self):
        """--upstream-routes reads the same datastore as --check, and changes nothing."""
        r = ce.run_cli(self.ns, self.fx, "--upstream-routes", env=self.env_endpoints())
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual([l for l in r.stdout.splitlines() if not l.startswith("#")],
                         ["192.168.10.128/28 via 192.168.10.11 node node1",
                          "192.168.10.144/28 via 192.168.10.12 node node2"])
        self.etcd.put(ce.affinity_key("node2", cu.EXTRA_BLOCK), ce.CONFIRMED)
        r = ce.run_cli(self.ns, self.fx, "--upstream-routes", "--format", "ios", env=self.env_endpoints())
        self.assertIn("ip route 192.168.10.160 255.255.255.240 192.168.10.12 name node2\n", r.stdout)
        self.assertEqual(self.ns.route_summary(), [], "--upstream-routes changes nothing")

    def test_check_files_source(self):
        self.write_settings(ce.settings(datastore="files", extra=f"resources: {self.fx.res}\n"))
        for name, text in cu.DEFAULT_FILES.items():
            cu.write_file(self.fx.path(name), text)
        r = self.check(env=self.env_endpoints())
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("\nsource: files\n", r.stdout)
        doc = json.loads(self.check("--format", "json").stdout)
        self.assertEqual(doc["source"], {"type": "files"})

    def test_once_from_calicoctl_cfg(self):
        cfg = self.write_calicoctl(ce.calicoctl_cfg(f"https://127.0.0.1:{ce.DEAD_PORT},{self.etcd.url}", self.pki))
        self.write_settings(ce.settings(calicoctl_cfg=cfg))
        r = ce.run_cli(self.ns, self.fx, "--once")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.wait_routes(WANT_2)
        r = ce.run_cli(self.ns, self.fx, "--once")
        self.assertIn("0 changes, 0 failed", r.stdout)

    def test_datastore_down_cannot_evaluate(self):
        self.etcd.stop()
        r = self.check(env=self.env_endpoints())
        self.assertEqual(r.returncode, 2, r.stdout)
        self.assertIn(f"cannot evaluate: datastore unreachable: {self.etcd.url}: ", r.stdout)
        self.assertLess(r.seconds, 20)

    def test_bad_calicoctl_cfg_is_named(self):
        cases = [
            ('  etcdEndpoints: "127.0.0.1:2379"\n', r"calicoctl\.cfg:\d+:\d+: etcdEndpoints: endpoint \"127\.0\.0\.1:2379\""
                                                    r" must start with http:// or https://"),
            ('  etcdEndpionts: "https://127.0.0.1:2379"\n', r"calicoctl\.cfg:\d+:\d+: unknown key \"spec\.etcdEndpionts\""),
            ('  etcdKeyFile: "/nonexistent/key.pem"\n', r"calicoctl\.cfg:\d+:\d+: etcdKeyFile \"/nonexistent/key\.pem\": "
                                                        r"cannot read it: No such file or directory"),
        ]
        for line, pattern in cases:
            with self.subTest(line=line):
                text = ("apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nspec:\n"
                        '  datastoreType: "etcdv3"\n' + line)
                if "etcdEndpoints" not in line:
                    text += f'  etcdEndpoints: "{self.etcd.url}"\n'
                if "KeyFile" in line:
                    text += f'  etcdCertFile: "{self.pki["client.crt"]}"\n'
                cfg = self.write_calicoctl(text)
                self.write_settings(ce.settings(calicoctl_cfg=cfg))
                r = self.check()
                self.assertEqual(r.returncode, 2, r.stdout)
                self.assertRegex(r.stdout, pattern)

    def test_bad_environment_is_named(self):
        cases = [
            ({"ETCD_ENDPOINTS": "https://127.0.0.1:2379,"}, r"ETCD_ENDPOINTS: an empty endpoint"),
            ({"ETCD_ENDPOINTS": self.etcd.url, "ETCD_CERT_FILE": self.pki["client.crt"]},
             r"ETCD_CERT_FILE is set without a key"),
            ({"ETCD_ENDPOINTS": self.etcd.url, "ETCD_CA_CERT_FILE": "/nonexistent/ca.crt"},
             r"ETCD_CA_CERT_FILE \"/nonexistent/ca\.crt\": cannot read it"),
            ({"DATASTORE_TYPE": "etcd", "ETCD_ENDPOINTS": self.etcd.url},
             r"DATASTORE_TYPE must be etcdv3 or kubernetes, not \"etcd\""),
        ]
        for env, pattern in cases:
            with self.subTest(env=env):
                r = self.check(env=env)
                self.assertEqual(r.returncode, 2, r.stdout)
                self.assertRegex(r.stdout, pattern)

    def test_libcurl_is_loaded_for_etcd_only(self):
        # The binary does not need libcurl; the etcd client dlopen()s it (daemon/curl-dl.c).
        # LD_DEBUG=libs: the dynamic loader names each library it loads, needed or opened.
        traced = dict(self.env_endpoints(), LD_DEBUG="libs")
        r = self.check(env=traced)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("source: etcdv3 ", r.stdout)
        m = re.search(r"calling init: (/\S*/libcurl\.so\.4)$", r.stderr, re.M)
        self.assertTrue(m, "etcd: libcurl is loaded\n" + r.stderr[-3000:])
        lib = m.group(1)
        # Files, with the etcd variables set all the same: libcurl is never looked up.
        self.write_settings(ce.settings(datastore="files", extra=f"resources: {self.fx.res}\n"))
        for name, text in cu.DEFAULT_FILES.items():
            cu.write_file(self.fx.path(name), text)
        r = self.check(env=traced)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("\nsource: files\n", r.stdout)
        self.assertIn("calling init: ", r.stderr, "LD_DEBUG traces the loader")
        self.assertEqual([ln.strip() for ln in r.stderr.splitlines() if "libcurl.so" in ln], [],
                         "files: libcurl is not loaded")
        # etcd without a usable libcurl (an empty file bind-mounted over it, in a mount
        # namespace of the command's own): the operator is told what is missing.
        self.write_settings(ce.settings())
        r = ce.run_cli(self.ns, self.fx, "--check", env=self.env_endpoints(),
                       wrap=["unshare", "--mount", "sh", "-c", 'mount --bind /dev/null "$0" && exec "$@"', lib])
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("cannot evaluate: datastore unreachable: etcd datastore needs libcurl (libcurl.so.4): "
                      f"{lib}: ", r.stdout)

    def test_wrong_client_certificate_is_reported(self):
        # A CA the server does not trust: TLS fails, and the message says so.
        other = ce.make_pki(os.path.join(self.fx.dir, "other-pki"))
        env = self.env_endpoints()
        env.update(ETCD_CERT_FILE=other["client.crt"], ETCD_KEY_FILE=other["client.key"])
        r = self.check(env=env)
        self.assertEqual(r.returncode, 2, r.stdout)
        self.assertIn(f"datastore unreachable: {self.etcd.url}: ", r.stdout)


FAKE_PORT = 2391


class TestHostileEtcd(unittest.TestCase):
    """An etcd gateway that misbehaves (tests/etcd/fake_etcd.py, plain HTTP inside the
    namespace): no real etcd needed."""

    def setUp(self):
        self.ns = cu.Netns()
        self.addCleanup(self.ns.close)
        self.ns.setup_uplink()
        self.fx = cu.Fixture(files={}, settings=ce.settings())
        self.addCleanup(self.fx.close)
        self.daemons = []
        self.env = {"ETCD_ENDPOINTS": f"http://127.0.0.1:{FAKE_PORT}"}

    def tearDown(self):
        cu.close_daemons(self.daemons, True)

    def fake(self, mode, *args):
        out = open(os.path.join(self.fx.dir, "fake.out"), "w")
        p = subprocess.Popen(["ip", "netns", "exec", self.ns.name, sys.executable,
                              os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake_etcd.py"),
                              mode, str(FAKE_PORT), *args], stdout=out, stderr=subprocess.STDOUT)
        out.close()
        self.addCleanup(lambda: (p.terminate(), p.wait()))
        cu.wait_until(lambda: f":{FAKE_PORT} " in self.ns.run("ss", "-ltn", check=False), what="the fake etcd to listen")
        return os.path.join(self.fx.dir, "fake.out")

    def requests(self, path, kind):
        with open(path) as f:
            return sum(1 for l in f if l.strip() == kind)

    def test_failing_watch_backs_off(self):
        # Issue 14: a watch that ends at once was followed by a full list at once, about
        # 50 a second per node, with two log lines each.
        out = self.fake("watch-ends")
        d = cu.Daemon(self.ns, self.fx, env=dict(self.env, CALICO_UNDERLAY_LOG_LEVEL="debug"))
        self.daemons.append(d)
        d.wait_ready()
        cu.wait_until(lambda: self.requests(out, "WATCH") > 0, what="a first watch")
        time.sleep(cu.scaled(6))
        ranges = self.requests(out, "RANGE")
        # 1 s, 2 s, 4 s (each 80-120%): at most 4 lists of 4 prefixes in 6 s.
        self.assertLessEqual(ranges, 16 * cu.TIMEOUT_SCALE, f"{ranges} range requests in 6 s")
        broke = d.stderr_lines("watch stream broke")
        self.assertLessEqual(len(broke), 1, "\n".join(broke))
        # The fake speaks HTTP/1.1 only: the first list asked for gRPC, fell back to the
        # JSON gateway, and every list since went there at once.
        fell_back = d.stderr_lines("does not answer gRPC")
        self.assertEqual(len(fell_back), 1, d.stderr()[-3000:])
        self.assertTrue(d.stderr_lines("listing through its JSON gateway"), d.stderr()[-3000:])

    def watched_fake(self, mode, env):
        """The fake in mode serving a two-node cluster from a file, a daemon converged on
        it and its 5 watches sent: (the file, its keys, the fake's request log, the
        daemon)."""
        kvs_path = os.path.join(self.fx.dir, "kvs.json")
        kvs = dict([ce.pool(), ce.node("node1", "192.168.10.11/24"), ce.node("node2", "192.168.10.12/24"),
                    ce.felix_default(), (ce.affinity_key("node1", cu.OWN_BLOCK), ce.CONFIRMED),
                    (ce.affinity_key("node2", cu.PEER_BLOCK), ce.CONFIRMED)])
        cu.write_file(kvs_path, json.dumps(kvs))
        out = self.fake(mode, kvs_path)
        d = cu.Daemon(self.ns, self.fx, env=env)
        self.daemons.append(d)
        d.wait_ready()
        cu.wait_until(lambda: self.ns.route_summary() == WANT_2, timeout=20,
                      what=f"routes {WANT_2} from the fake's list (have {self.ns.route_summary()})")
        cu.wait_until(lambda: self.requests(out, "WATCH") >= 5, what="the daemon's 5 watches")
        return kvs_path, kvs, out, d

    def test_silent_watch_is_given_up(self):
        # A watch whose connection is taken and which is then never answered (no
        # headers, no `created` message: a wedged gateway or proxy) waited for ever: no
        # timeout bounds a stream and TCP keepalive cannot see a live, silent peer, so
        # every later change was lost. Every watch of a round must now be confirmed
        # within WATCH_CREATED_USEC (30 s, daemon/etcd.c), else the daemon lists again
        # (after the back-off, 1 s jittered) and watches anew.
        kvs_path, kvs, out, d = self.watched_fake("watch-silent", self.env)
        t0 = time.monotonic()
        ranges = self.requests(out, "RANGE")
        # The change: served by the next list only (no watch ever tells of it).
        kvs[ce.affinity_key("node2", cu.EXTRA_BLOCK)] = ce.CONFIRMED
        cu.write_renamed(kvs_path, json.dumps(kvs))
        cu.wait_until(lambda: self.ns.route_summary() == WANT_3, timeout=60,
                      what=f"routes {WANT_3} after the silent watches (have {self.ns.route_summary()})")
        took = time.monotonic() - t0
        self.assertGreater(took, 25, "the change came through before the watches' deadline")
        self.assertLess(took, cu.scaled(60), f"{took:.1f} s")
        self.assertGreater(self.requests(out, "RANGE"), ranges)
        timed_out = d.stderr_lines(f"etcd: watch from http://127.0.0.1:{FAKE_PORT} timed out")
        self.assertTrue(timed_out, d.stderr()[-3000:])
        self.assertIn("not confirmed by etcd in 30 s", timed_out[0])
        # The daemon watches again (and the new watches are held in turn).
        cu.wait_until(lambda: self.requests(out, "WATCH") >= 10, what="the daemon's watches after the list")

    def test_quiet_watch_is_given_up(self):
        # A watch that etcd confirmed and that then says nothing, no event and no
        # progress notification (an etcd or proxy wedged after the watch began), was
        # never given up: every later change was lost. The watches ask for progress
        # notifications, and one silent for CALICO_UNDERLAY_ETCD_WATCH_SILENCE (25 min by
        # default, 4 s here) makes the daemon list again and watch anew.
        kvs_path, kvs, out, d = self.watched_fake("watch-quiet", dict(self.env, CALICO_UNDERLAY_ETCD_WATCH_SILENCE="4"))
        t0 = time.monotonic()
        ranges = self.requests(out, "RANGE")
        # The change: served by the next list only (no watch ever tells of it).
        kvs[ce.affinity_key("node2", cu.EXTRA_BLOCK)] = ce.CONFIRMED
        cu.write_renamed(kvs_path, json.dumps(kvs))
        cu.wait_until(lambda: self.ns.route_summary() == WANT_3, timeout=cu.scaled(30),
                      what=f"routes {WANT_3} after the quiet watches (have {self.ns.route_summary()})")
        took = time.monotonic() - t0
        self.assertGreater(took, 2, "the change came through before the watches' silence")
        self.assertGreater(self.requests(out, "RANGE"), ranges)
        quiet = d.stderr_lines(f"etcd: watch from http://127.0.0.1:{FAKE_PORT} went silent")
        self.assertTrue(quiet, d.stderr()[-3000:])
        self.assertIn("in 4 s, not even a progress notification", quiet[0])
        # The daemon watches again.
        cu.wait_until(lambda: self.requests(out, "WATCH") >= 10, what="the daemon's watches after the list")

    def test_more_forever_is_bounded(self):
        # Issue 14: an etcd that always answers "more": true kept the daemon listing
        # for ever; --check waited for its 30 s deadline and said only "no answer".
        self.fake("more-forever")
        t0 = time.monotonic()
        r = ce.run_cli(self.ns, self.fx, "--check", env=self.env)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("the list did not end after", r.stdout + r.stderr)
        self.assertLess(time.monotonic() - t0, cu.scaled(20))

    def test_page_over_the_cap(self):
        # Issue 14 point 4: one etcd answer is capped at 64 MiB (ETCD_MAX_BODY). The page
        # is valid JSON (an empty list padded one byte past the cap): without the cap it
        # would list fine.
        self.fake("huge-page")
        r = ce.run_cli(self.ns, self.fx, "--check", env=self.env)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("the response is too large", r.stdout + r.stderr)


GRPC_PORT = 2392


class TestHostileGrpc(unittest.TestCase):
    """An etcd that misbehaves on the gRPC list path (tests/etcd/fake_grpc.py: HTTP/2 by
    prior knowledge inside the namespace, one key a page, no JSON gateway but a held
    watch): a compaction between two pages, and answers a real etcd or a proxy before it
    can give that are not a usable RangeResponse. Each must end in a clear message, the
    host untouched, within seconds."""

    def setUp(self):
        self.ns = cu.Netns()
        self.addCleanup(self.ns.close)
        self.ns.setup_uplink()
        self.fx = cu.Fixture(files={}, settings=ce.settings())
        self.addCleanup(self.fx.close)
        self.daemons = []
        self.url = f"http://127.0.0.1:{GRPC_PORT}"
        self.env = {"ETCD_ENDPOINTS": self.url}
        self.kvs = os.path.join(self.fx.dir, "kvs.json")
        cu.write_file(self.kvs, json.dumps(dict([
            ce.pool(), ce.node("node1", "192.168.10.11/24"), ce.node("node2", "192.168.10.12/24"),
            ce.felix_default(), (ce.affinity_key("node1", cu.OWN_BLOCK), ce.CONFIRMED),
            (ce.affinity_key("node2", cu.PEER_BLOCK), ce.CONFIRMED)])))
        self.before = self.ns.route_summary()

    def tearDown(self):
        cu.close_daemons(self.daemons, True)

    def fake(self, mode):
        path = os.path.join(self.fx.dir, f"fake-{mode}.out")
        out = open(path, "w")
        p = subprocess.Popen(["ip", "netns", "exec", self.ns.name, sys.executable,
                              os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake_grpc.py"),
                              mode, str(GRPC_PORT), self.kvs], stdout=out, stderr=subprocess.STDOUT)
        out.close()
        self.stop_fake = lambda: (p.terminate(), p.wait())
        self.addCleanup(self.stop_fake)
        cu.wait_until(lambda: f":{GRPC_PORT} " in self.ns.run("ss", "-ltn", check=False),
                      what="the fake etcd to listen")
        return path

    def requests(self, path, line):
        with open(path) as f:
            return sum(1 for l in f if l.strip() == line)

    def once(self, mode):
        """--once against a fresh fake in mode: (result, the fake's request log)."""
        out = self.fake(mode)
        r = ce.run_cli(self.ns, self.fx, "--once", env=self.env)
        self.stop_fake()  # the next fake takes the port
        self.assertLess(r.seconds, cu.scaled(20), f"{mode}: {r.seconds:.1f} s")
        return r, out

    def assert_failed(self, mode, r, why):
        self.assertEqual(r.returncode, 2, f"{mode}: {r.stdout}{r.stderr}")
        self.assertIn(f"datastore unreachable: {self.url}: {why}", r.stderr, mode)
        self.assertEqual(self.ns.route_summary(), self.before, f"{mode}: the host changed")

    def test_compaction_between_pages_starts_over(self):
        # The affinities' second page, asked at the first page's revision, finds it
        # compacted: the list starts over at a new revision and converges.
        r, out = self.once("compacted-once")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(self.ns.route_summary(), WANT_2)
        over = [l for l in r.stderr.splitlines() if "starting over" in l]
        self.assertEqual(over, [f"notice: etcd: listing from {self.url}: gRPC status 11: etcdserver: mvcc: "
                                "required revision has been compacted; starting over"], r.stderr)
        self.assertEqual(self.requests(out, "RANGE 0"), 2)  # two lists began
        self.assertEqual(self.requests(out, "RANGE 101"), 2)  # the first: two pages, the second refused
        self.assertEqual(self.requests(out, "RANGE 102"), 6)  # the second: 1 + 2 + 1 + 1 + 2 pages, less the first

    def test_compaction_between_pages_authenticates_again(self):
        # With a user, each list begins with an Authenticate (the token is dropped
        # with the list): the list that starts over asks for a new one.
        self.env.update(ETCD_USERNAME="root", ETCD_PASSWORD="pw")
        r, out = self.once("compacted-once")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(self.ns.route_summary(), WANT_2)
        self.assertEqual(self.requests(out, "AUTH root"), 2)
        self.assertEqual(self.requests(out, "RANGE 0"), 2)
        self.assertEqual(len([l for l in r.stderr.splitlines() if l.endswith("; starting over")]), 1, r.stderr)

    def test_compaction_every_time_fails_after_three_restarts(self):
        r, out = self.once("compacted-always")
        self.assert_failed("compacted-always", r, "gRPC status 11: etcdserver: mvcc: required revision has been "
                                                   "compacted")
        self.assertEqual(len([l for l in r.stderr.splitlines() if l.endswith("; starting over")]), 3, r.stderr)
        self.assertEqual(self.requests(out, "RANGE 0"), 4)
        self.assertEqual(self.requests(out, "GATEWAY /v3/kv/range"), 0)

    def test_broken_grpc_answers_fail_the_endpoint(self):
        # gRPC answers (HTTP/2, application/grpc) that are wrong: the endpoint failed
        # with the reason, no fallback to the JSON gateway (it speaks gRPC), nothing
        # applied. One endpoint and --once: exit 2.
        cases = {
            "trailers-only": "gRPC status 14: unavailable",
            "no-status": "a gRPC answer without grpc-status",
            "huge-length": "a message of 2147483648 bytes, over the cap of 64 MiB",
            "compressed": "a compressed message (none was asked for)",
            "truncated": "a message of 56 bytes in an answer of 6",
            "bad-wiretype": "kvs (field 2) has wire type 0, not 2",
            "bad-varint": "a truncated varint",
            "rst-stream": "HTTP/2 stream 1 was not closed cleanly: INTERNAL_ERROR (err 2)",
            # GOAWAY in the same segment as the first answer's trailers: libcurl 7.88
            # (nghttp2 1.52) drops the trailers, so that answer has no grpc-status.
            "goaway": "a gRPC answer without grpc-status",
        }
        for mode, why in cases.items():
            with self.subTest(mode=mode):
                r, out = self.once(mode)
                gateway = 0
                # goaway: when libcurl meets the GOAWAY before it has handed over any of
                # the answer (the scheduler decides; seen under ASan in CI), there was
                # no HTTP/2 answer at all: the endpoint is then asked through its JSON
                # gateway once, which this fake does not serve. Failed either way.
                if mode == "goaway" and "over gRPC: no HTTP/2 answer" in r.stderr:
                    why = ("HTTP 404: no JSON gateway here (over gRPC: no HTTP/2 answer: "
                           "Error in the HTTP2 framing layer)")
                    gateway = 1
                self.assert_failed(mode, r, why)
                self.assertEqual(self.requests(out, "GATEWAY /v3/kv/range"), gateway, mode)
                self.assertEqual(self.requests(out, "RANGE 0"), 1, mode)

    def test_answers_that_are_not_grpc_fall_back_to_the_gateway(self):
        # An answer that is not gRPC at all (a proxy's 503 in text/plain; a connection
        # refused by GOAWAY before any answer, after a first page that went fine): the
        # endpoint "does not answer gRPC", the list starts over through its JSON
        # gateway, which this fake does not serve. The message names both.
        # The fake closes the connection right after its GOAWAY: libcurl reads the GOAWAY
        # ("framing layer") or first fails to send the request's body on the closed
        # socket ("Broken pipe"), as the scheduler decides; either is "no HTTP/2 answer".
        cases = {
            "http-503": ["HTTP 404: no JSON gateway here (over gRPC: HTTP/2, status 503)"],
            "goaway-late": ["HTTP 404: no JSON gateway here (over gRPC: no HTTP/2 answer: " + reason + ")"
                            for reason in ("Error in the HTTP2 framing layer", "Send failure: Broken pipe")],
        }
        for mode, whys in cases.items():
            with self.subTest(mode=mode):
                r, out = self.once(mode)
                why = next((w for w in whys if w in r.stderr), whys[0])
                self.assert_failed(mode, r, why)
                self.assertEqual(self.requests(out, "GATEWAY /v3/kv/range"), 1, mode)
        self.assertEqual(self.requests(out, "RANGE refused"), 1)

    def test_stalled_answer_is_bounded(self):
        # Headers and half a message, then silence on a live connection: --once gives
        # up at its 30 s deadline with the reason, not at the list request's 60 s.
        out = self.fake("stall")
        r = ce.run_cli(self.ns, self.fx, "--once", env=self.env)
        self.assert_failed("stall", r, "no answer in time")
        self.assertGreater(r.seconds, 29)
        self.assertLess(r.seconds, cu.scaled(45))
        self.assertEqual(self.requests(out, "RANGE 0"), 1)

    def test_daemon_converges_after_compaction_and_watches(self):
        out = self.fake("compacted-once")
        d = cu.Daemon(self.ns, self.fx, env=self.env)
        self.daemons.append(d)
        d.wait_ready()
        cu.wait_until(lambda: self.ns.route_summary() == WANT_2, timeout=20,
                      what=f"routes {WANT_2} from the fake's list (have {self.ns.route_summary()})")
        # The watches go through the JSON gateway: confirmed and held.
        cu.wait_until(lambda: self.requests(out, "GATEWAY /v3/watch") >= 5, what="the daemon's 5 watches")
        self.assertEqual(len(d.stderr_lines("; starting over")), 1, d.stderr()[-3000:])
        self.assertFalse(d.stderr_lines("does not answer gRPC"), d.stderr()[-3000:])
        self.assertEqual(self.requests(out, "GATEWAY /v3/kv/range"), 0)
        self.assertTrue(stays(lambda: self.ns.route_summary() == WANT_2 and d.proc.poll() is None))


class TestPlainEtcdWithAuth(unittest.TestCase):
    """A real etcd over plain HTTP with authentication on: the list speaks gRPC by
    prior knowledge (HTTP/2 without TLS) and authenticates over gRPC; the gateway does
    the same over JSON."""

    def setUp(self):
        self.ns = cu.Netns()
        self.addCleanup(self.ns.close)
        self.ns.setup_uplink()
        self.fx = cu.Fixture(files={}, settings=ce.settings())
        self.addCleanup(self.fx.close)
        self.etcd = ce.Etcd(self.ns, self.fx.dir, None).start()
        self.addCleanup(self.etcd.stop)
        for key, value in [ce.pool(name="underlay", cidr="192.168.10.128/25", block_size=28),
                           ce.node("node2", "192.168.10.3/24"),
                           (ce.affinity_key("node2", "192.168.10.160/28"), ce.CONFIRMED)]:
            self.etcd.put(key, value)
        self.etcd.ctl("user", "add", "root", "--new-user-password", "pw")
        self.etcd.ctl("auth", "enable")
        self.etcd.user = "root:pw"

    def check(self, password, **env):
        return ce.run_cli(self.ns, self.fx, "--check", env=dict(
            ETCD_ENDPOINTS=self.etcd.url, ETCD_USERNAME="root", ETCD_PASSWORD=password, **env))

    def test_grpc_without_tls_and_with_a_password(self):
        for env in ({}, {"CALICO_UNDERLAY_ETCD_GATEWAY": "1"}):
            r = self.check("pw", **env)
            self.assertNotEqual(r.returncode, 2, r.stdout + r.stderr)
            self.assertRegex(r.stdout, rf"source: etcdv3 {self.etcd.url} revision \d+")
            self.assertIn("192.168.10.160/28", r.stdout)
        r = self.check("wrong")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("gRPC status 3: etcdserver: authentication failed, invalid user ID or password", r.stdout)
        r = self.check("wrong", CALICO_UNDERLAY_ETCD_GATEWAY="1")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("HTTP 400: etcdserver: authentication failed, invalid user ID or password", r.stdout)


if __name__ == "__main__":
    ce.require()
    cu.install_signal_cleanup()
    unittest.main(verbosity=2)
