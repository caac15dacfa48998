#!/usr/bin/env python3
"""The Kubernetes datastore on a real kernel: each case has a network namespace of its
own with a veth uplink eth0 (as tests/daemon), the test API server (kubeapi.py, which
kube-protocol proves against kubectl and the Python client) inside it on 127.0.0.1
with TLS, the cluster of the etcd tests as Calico CRDs and core Nodes, and
calico-underlayd reading it. Every case polls kernel state, the daemon's STATUS= or
the server's request log with a timeout.

Run: meson test -C BUILD kube   (or: sudo DAEMON=BUILD/daemon/calico-underlayd
python3 tests/kube/test_kube.py -v [TestKube.test_name]). Needs root and openssl;
exit 77 (skipped) otherwise.
"""
import json
import os
import random
import re
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cukube as ck  # noqa: E402
from cukube import cu  # noqa: E402

SERVER = f"https://127.0.0.1:{ck.API_PORT}"
STATUS_2 = f"underlay: 1 pool, proxy_arp on eth0, 2 block routes, tunnels removed; from kubernetes {SERVER}"
STATUS_3 = f"underlay: 1 pool, proxy_arp on eth0, 3 block routes, tunnels removed; from kubernetes {SERVER}"
WANT_2 = [
    "192.168.10.128/28 blackhole - - 1024",
    "192.168.10.144/28 unicast 192.168.10.12 eth0 1024",
]
WANT_3 = WANT_2 + ["192.168.10.160/28 unicast 192.168.10.12 eth0 1024"]
CRD_BASE = "/apis/crd.projectcalico.org/v1/"


def stays(fn, duration=1.0, interval=0.05):
    """fn() stays truthy for `duration` seconds, scaled (only for "nothing happens")."""
    end = time.monotonic() + cu.scaled(duration)
    while time.monotonic() < end:
        if not fn():
            return False
        time.sleep(interval)
    return True


class KubeCase(unittest.TestCase):
    """A namespace with an uplink, PKI, the API server loaded with the cluster, and a
    token kubeconfig named by the settings."""

    groups = (ck.CRD,)

    def setUp(self):
        self.ns = cu.Netns()
        self.addCleanup(self.ns.close)
        self.ns.setup_uplink()
        self.ns.add_vxlan()
        self.fx = cu.Fixture(files={})
        self.addCleanup(self.fx.close)
        self.pki = ck.make_pki(os.path.join(self.fx.dir, "pki"))
        self.api = ck.KubeAPI(self.ns, self.fx.dir, self.pki, groups=self.groups)
        self.addCleanup(self.api.close)
        ck.load_cluster(self.api, group=self.groups[0])
        self.kc = ck.kubeconfig(os.path.join(self.fx.etc, "kubeconfig"), self.api.url, self.pki, token=ck.TOKEN)
        self.write_settings()
        self.daemons = []

    def tearDown(self):
        failed = self._failed()
        errors = cu.close_daemons(self.daemons, failed)
        if failed:
            sys.stderr.write(f"--- kubeapi log:\n{self.api.log()}\n")
        elif errors:
            raise AssertionError("\n\n".join(errors))

    def _failed(self):
        result = getattr(getattr(self, "_outcome", None), "result", None)
        errs = list(getattr(result, "errors", [])) + list(getattr(result, "failures", []))
        return any(t is self for t, _ in errs)

    def write_settings(self, datastore="kubernetes", kubeconfig=True, extra=""):
        body = ("nodeName: node1\nuplink: auto\nresyncSeconds: 0\n"
                f"calicoctlConfig: {self.fx.etc}/calicoctl.cfg\n")
        if datastore:
            body += f"datastore: {datastore}\n"
        if kubeconfig:
            body += f"kubeconfig: {self.kc}\n"
        cu.write_file(self.fx.config, body + extra)

    def start(self, env=None):
        d = cu.Daemon(self.ns, self.fx, env=env)
        self.daemons.append(d)
        return d

    def start_converged(self, env=None, status=STATUS_2, want=WANT_2):
        d = self.start(env=env).wait_ready()
        d.notify.wait_status(lambda s: s == status, timeout=20)
        self.wait_routes(want)
        return d

    def wait_routes(self, want, timeout=15.0):
        return cu.wait_until(lambda: self.ns.route_summary() == want, timeout,
                             what=f"routes {want} (have {self.ns.route_summary()})")

    def lists(self, since=0):
        return [r for r in self.api.requests()[since:] if r["method"] == "GET" and "limit=" in r["path"]]

    def watches_of(self, plural, since=0):
        return [r for r in self.api.requests()[since:] if "watch=1" in r["path"] and f"/{plural}?" in r["path"]]

    def check(self, *args):
        return subprocess.run(["ip", "netns", "exec", self.ns.name, *cu.DAEMON_WRAPPER, cu.DAEMON, "--check",
                               "--config", self.fx.config, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, timeout=cu.scaled(60))

    def once(self, *args):
        """A fresh --once (or another one-shot mode) from the same API server, in the
        same namespace."""
        return subprocess.run(["ip", "netns", "exec", self.ns.name, "env", f"RUNTIME_DIRECTORY={self.fx.run}",
                               *cu.DAEMON_WRAPPER, cu.DAEMON, *(args or ("--once",)), "--config", self.fx.config],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=cu.scaled(60))


class TestKube(KubeCase):
    def test_converges_from_a_list_then_follows_changes(self):
        d = self.start_converged()
        self.assertFalse(self.ns.link_exists("vxlan.calico"))
        self.assertTrue(d.stderr_lines(f"configuration loaded from kubernetes {SERVER} resourceVersion"), d.stderr())
        # Every kind listed in pages, then watched from its list's version with bookmarks.
        for plural in ("ippools", "blockaffinities", "ipamblocks", "felixconfigurations"):
            w = cu.wait_until(lambda: self.watches_of(plural), 10, what=f"a watch of {plural}")[0]
            self.assertIn("allowWatchBookmarks=true", w["path"])
            self.assertRegex(w["path"], r"resourceVersion=\d+")
        self.assertTrue(self.watches_of("nodes"))
        # Added, then deleted.
        ba = ck.block_affinity("node2", cu.EXTRA_BLOCK)
        self.api.put("blockaffinities", ba)
        self.wait_routes(WANT_3)
        d.notify.wait_status(lambda s: s == STATUS_3)
        self.api.delete("blockaffinities", ba["metadata"]["name"])
        self.wait_routes(WANT_2)
        # Changed: the pool goes overlay, and back.
        self.api.put("ippools", ck.ippool(nat=True))
        d.notify.wait_status(lambda s: s.startswith("overlay: no underlay pool applies"), timeout=10)
        self.wait_routes([])
        self.api.put("ippools", ck.ippool())
        self.wait_routes(WANT_2)
        # Node2 moves: its route follows.
        self.api.put("nodes", ck.k8s_node("node2", "192.168.10.13/24"))
        self.wait_routes(["192.168.10.128/28 blackhole - - 1024",
                          "192.168.10.144/28 unicast 192.168.10.13 eth0 1024"])

    def test_affinity_event_is_a_delta_pass(self):
        """Issue 16: a BlockAffinity watch event reaches the kernel through a delta pass
        (the changed prefixes replanned, no dump), and the host ends as a fresh --once
        leaves it."""
        d = self.start_converged()

        def deltas():
            return [p for p in d.stderr_lines("reconcile pass (") if "; delta pass over" in p]

        # The first change after the load may reload in full (a watch event that
        # comes while the source has no index yet), and the first update in place is
        # planned in full (the loop keeps what a delta pass needs from the next full
        # pass on): two changes to settle; the next ones are delta passes.
        ba = ck.block_affinity("node2", cu.EXTRA_BLOCK)
        self.api.put("blockaffinities", ba)
        self.wait_routes(WANT_3)
        self.api.delete("blockaffinities", ba["metadata"]["name"])
        self.wait_routes(WANT_2)
        self.api.put("blockaffinities", ba)
        self.wait_routes(WANT_3)
        cu.wait_until(lambda: d.stderr_lines("1 object updated in the model in place"), 10,
                      what=f"an update in place:\n{d.stderr()[-3000:]}")
        reloads = len(d.stderr_lines("configuration reloaded"))
        in_place = len(d.stderr_lines("1 object updated in the model in place"))
        for i, step in enumerate(("delete", "put", "delete", "put")):
            n = len(deltas())
            if step == "put":
                self.api.put("blockaffinities", ba)
            else:
                self.api.delete("blockaffinities", ba["metadata"]["name"])
            self.wait_routes(WANT_3 if step == "put" else WANT_2)
            cu.wait_until(lambda: len(deltas()) > n, 10, what=f"a delta pass for {step} {i}:\n{d.stderr()[-3000:]}")
            self.assertIn("; delta pass over 1 prefix", deltas()[-1])
            # In place: the one object read, not the cache loaded again.
            self.assertEqual(len(d.stderr_lines("1 object updated in the model in place")), in_place + i + 1,
                             d.stderr()[-3000:])
            self.assertEqual(len(d.stderr_lines("configuration reloaded")), reloads, d.stderr()[-3000:])
        # The full path from the same objects finds nothing to change ...
        r = self.once()
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("0 changes, 0 failed", r.stdout, f"{r.stdout}\n--- daemon:\n{d.stderr()[-4000:]}")
        # ... and from nothing it builds the daemon's routes.
        d.stop()
        self.ns.ip("route", "flush", "table", str(cu.TABLE), "proto", str(cu.PROTO))
        r = self.once()
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(self.ns.route_summary(), WANT_3)

    def test_heartbeat_only_node_update_starts_no_reconcile(self):
        d = self.start_converged()
        time.sleep(cu.scaled(0.5))

        def work():
            """Reloads, and passes for the configuration (an update in place has no
            reload of its own)."""
            return len(d.stderr_lines("configuration reloaded")) + len(d.stderr_lines("reconcile pass (configuration"))

        before = work()
        for i in range(5):
            self.api.put("nodes", ck.k8s_node("node2", "192.168.10.12/24", heartbeat=f"2026-12-01T00:0{i}:00Z"))
        self.assertTrue(stays(lambda: work() == before, 1.5), d.stderr())
        # A label change is not a heartbeat: it is followed.
        self.api.put("nodes", ck.k8s_node("node2", "192.168.10.12/24", labels={"zone": "az9"}))
        cu.wait_until(lambda: work() > before, 10, what="a reload or a pass")

    def test_dropped_watch_resumes_from_the_last_version(self):
        d = self.start_converged()
        cu.wait_until(lambda: len(self.api.watches()) == 5, 10, what="five watches")
        n_lists = len(self.lists())
        mark = len(self.api.requests())
        ba = ck.block_affinity("node2", cu.EXTRA_BLOCK)
        rv = self.api.put("blockaffinities", ba)["resourceVersion"]
        self.wait_routes(WANT_3)
        time.sleep(1.2)  # a watch that dies younger than 1 s with nothing on it is a failure (back-off)
        self.assertEqual(self.api.ctl("drop_watches")["dropped"], 5)
        cu.wait_until(lambda: self.watches_of("blockaffinities", mark), 10, what="the watch resumed")
        resumed = self.watches_of("blockaffinities", mark)[-1]
        self.assertIn(f"resourceVersion={rv}", resumed["path"])  # the last version seen
        self.assertEqual(len(self.lists()), n_lists)  # no list again
        self.api.delete("blockaffinities", ba["metadata"]["name"])
        self.wait_routes(WANT_2)
        d.notify.wait_status(lambda s: s == STATUS_2)

    def test_wedged_watch_is_ended_and_resumed(self):
        # A watch the server never ends (it was asked to, timeoutSeconds) and that says
        # nothing after its headers (an API server or proxy wedged after the watch
        # began: TCP keepalive sees nothing wrong) lost every later change until a
        # restart. The client now ends a watch a thirtieth past its timeoutSeconds (at
        # least 30 s, counted from the start of the transfer; with
        # CALICO_UNDERLAY_KUBE_WATCH_TIMEOUT=2 here, 32 s) and resumes it from the last
        # version seen, without a list.
        d = self.start_converged(env={"CALICO_UNDERLAY_KUBE_WATCH_TIMEOUT": "2"})
        cu.wait_until(lambda: len(self.api.watches()) == 5, 10, what="five watches")
        self.assertIn("timeoutSeconds=2&", self.watches_of("blockaffinities")[-1]["path"])
        n_lists = len(self.lists())
        self.api.ctl("wedge_next", resource="blockaffinities", count=1)
        cu.wait_until(lambda: any(w["wedged"] for w in self.api.watches()), cu.scaled(10),
                      what="the daemon's next watch of blockaffinities, wedged")
        mark = len(self.api.requests())
        self.api.put("blockaffinities", ck.block_affinity("node2", cu.EXTRA_BLOCK))
        time.sleep(3)  # the other kinds' watches ended and resumed meanwhile; not the wedged one
        self.assertEqual(self.ns.route_summary(), WANT_2, "the change came by the wedged watch")
        self.wait_routes(WANT_3, timeout=cu.scaled(45))
        wedged = d.stderr_lines("the watch of blockaffinities was not ended by the server 2 s after it was asked to")
        self.assertTrue(wedged, d.stderr()[-3000:])
        self.assertIn("timed out", wedged[0])
        self.assertTrue(self.watches_of("blockaffinities", mark), "no watch resumed")
        self.assertEqual(len(self.lists()), n_lists)  # resumed, no list again
        self.assertFalse(d.stderr_lines("unreachable"), d.stderr()[-3000:])
        d.notify.wait_status(lambda s: s == STATUS_3)

    def test_gone_410_lists_again(self):
        d = self.start_converged()
        cu.wait_until(lambda: len(self.api.watches()) == 5, 10, what="five watches")
        n_lists = len(self.lists())
        # A change the daemon misses (its watches dropped and compacted away).
        self.api.ctl("stop_listening")
        self.api.put("blockaffinities", ck.block_affinity("node2", cu.EXTRA_BLOCK))
        self.api.ctl("compact")
        self.api.ctl("start_listening")
        self.wait_routes(WANT_3, timeout=30)
        self.assertGreater(len(self.lists()), n_lists)
        self.assertTrue(re.search(r"listing \w+ again|datastore reachable again", d.stderr()), d.stderr())
        d.notify.wait_status(lambda s: s == STATUS_3)

    def test_gone_410_on_one_kind_lists_that_kind_again(self):
        """A 410 on the BlockAffinities' watch alone: only BlockAffinities are listed
        again (the list replaces them: one deleted, one added, neither seen on the
        watch), the other kinds' watches stay open."""
        d = self.start_converged()
        cu.wait_until(lambda: len(self.api.watches()) == 5, 10, what="five watches")
        mark = len(self.api.requests())
        self.api.ctl("gone_watch", resource="blockaffinities")
        self.api.delete("blockaffinities", ck.block_affinity("node2", "192.168.10.144/28")["metadata"]["name"])
        self.api.put("blockaffinities", ck.block_affinity("node2", cu.EXTRA_BLOCK))
        want = ["192.168.10.128/28 blackhole - - 1024", "192.168.10.160/28 unicast 192.168.10.12 eth0 1024"]
        self.wait_routes(want)
        cu.wait_until(lambda: self.watches_of("blockaffinities", mark), 10, what="the watch opened again")
        lists = [r["path"] for r in self.lists(mark)]
        self.assertTrue(lists and all("/blockaffinities?" in p for p in lists), lists)
        for plural in ("nodes", "ippools", "ipamblocks", "felixconfigurations"):
            self.assertEqual(self.watches_of(plural, mark), [], plural)
        self.assertEqual(len(self.api.watches()), 5)
        self.assertTrue(d.stderr_lines("listing blockaffinities again"), d.stderr())
        # Still followed.
        self.api.put("blockaffinities", ck.block_affinity("node2", "192.168.10.144/28"))
        self.wait_routes(WANT_3)

    def test_watches_that_end_at_once_back_off(self):
        """Every watch ends at once with nothing on it (a broken proxy, a server that
        closes them): each is a failure, and the rounds (a list of every kind, then
        watches) back off: 1 s, 2 s, 4 s (each 80-120%), not reset by the lists that
        succeed in between (only a healthy while resets it)."""
        self.api.ctl("watch_timeout", seconds=0)
        d = self.start().wait_ready()
        d.notify.wait_status(lambda s: s.startswith("underlay:"), timeout=20)
        time.sleep(cu.scaled(9))
        reqs = self.api.requests()
        starts = [i for i, r in enumerate(reqs) if r["path"] == "/apis"]  # each round begins with discovery
        lists = self.lists()
        # The delay from a round's failure (its last request: a watch that ended at
        # once) to the next round's first request.
        delays = [reqs[b]["time"] - reqs[b - 1]["time"] for b in starts[1:]]
        # At once it would be a round every few milliseconds; after 1, 2 and 4 s (each
        # 80-120%), 4 rounds in 9 s at least, and 6 at most however long the wait.
        self.assertGreaterEqual(len(starts), 4, delays)
        self.assertLessEqual(len(starts), 6, delays)
        self.assertLessEqual(len(lists), 5 * len(starts), [r["path"] for r in lists])
        self.assertGreaterEqual(delays[0], 0.75, delays)
        self.assertGreater(delays[1], delays[0], delays)  # grows: 1.6 s at least after 1.2 s at most
        self.assertGreater(delays[2], 2 * delays[0], delays)  # doubled twice (3.2 s at least)
        self.assertTrue(d.stderr_lines("datastore unreachable"), d.stderr())
        # Watches that stay up: it recovers and follows changes.
        self.api.ctl("watch_timeout", seconds=1800)
        self.api.put("blockaffinities", ck.block_affinity("node2", cu.EXTRA_BLOCK))
        self.wait_routes(WANT_3, timeout=30)

    def test_expired_continue_lists_the_kind_again(self):
        many = [ck.block_affinity("node3", f"10.{64 + i // 256}.{i % 256}.0/26") for i in range(1200)]
        self.api.put("ippools", ck.ippool("overlay-big", "10.64.0.0/12", block_size=26, nat=True))
        self.api.put_many("blockaffinities", many)
        self.api.ctl("fail_continue_once")
        d = self.start_converged(status=STATUS_2.replace("1 pool", "1 pool"))
        self.assertTrue(d.stderr_lines("continue token of blockaffinities expired"), d.stderr())
        self.assertTrue(d.stderr_lines("node node1, 2 pools, 1202 blocks"), d.stderr())

    def test_expired_token_then_rotated_kubeconfig(self):
        d = self.start_converged()
        self.api.ctl("tokens", tokens=["rotated-token"])
        self.api.ctl("drop_watches")
        status = d.notify.wait_status("HTTP 401", timeout=20)
        self.assertTrue(status.startswith(STATUS_2.split(";")[0]), status)
        self.assertIn("datastore unreachable", status)
        self.assertIn("(keeping the last model)", status)
        self.assertEqual(self.ns.route_summary(), WANT_2)
        # The node's kubeconfig is renewed: picked up without a restart.
        ck.kubeconfig(self.kc, self.api.url, self.pki, token="rotated-token")
        self.api.put("blockaffinities", ck.block_affinity("node2", cu.EXTRA_BLOCK))
        self.wait_routes(WANT_3, timeout=40)
        d.notify.wait_status(lambda s: s == STATUS_3, timeout=10)
        self.assertTrue(d.stderr_lines("datastore reachable again"), d.stderr())

    def wait_watch_users(self, user, timeout=20):
        return cu.wait_until(lambda: (lambda w: len(w) == 5 and {x["user"] for x in w} == {user})(self.api.watches()),
                             timeout, what=f"five watches as {user} (have {self.api.watches()})")

    def test_token_rotated_while_watching(self):
        """A projected token (kubelet's atomic writer: token -> ..data/token, ..data ->
        a timestamped folder, swapped by renaming a new ..data link over it), then a
        token inline in the kubeconfig: each rotation is picked up while the watches
        are healthy, though the server already refuses the old token for new requests;
        the watches are opened again with the new token from where they were (no list
        again, no 401), and changes are still followed."""
        tokdir = os.path.join(self.fx.dir, "serviceaccount")
        os.makedirs(os.path.join(tokdir, "..2026_12_01_a"))
        cu.write_file(os.path.join(tokdir, "..2026_12_01_a", "token"), ck.TOKEN)
        os.symlink("..2026_12_01_a", os.path.join(tokdir, "..data"))
        os.symlink("..data/token", os.path.join(tokdir, "token"))
        ck.kubeconfig(self.kc, self.api.url, self.pki, token_file=os.path.join(tokdir, "token"))
        d = self.start_converged()
        self.wait_watch_users("token:" + ck.TOKEN[:6])
        n_lists = len(self.lists())
        self.api.ctl("tokens", tokens=["second-token"])
        os.makedirs(os.path.join(tokdir, "..2026_12_01_b"))
        cu.write_file(os.path.join(tokdir, "..2026_12_01_b", "token"), "second-token\n")
        os.symlink("..2026_12_01_b", os.path.join(tokdir, "..data_tmp"))
        os.rename(os.path.join(tokdir, "..data_tmp"), os.path.join(tokdir, "..data"))
        self.wait_watch_users("token:second")
        self.api.put("blockaffinities", ck.block_affinity("node2", cu.EXTRA_BLOCK))
        self.wait_routes(WANT_3)
        # The kubeconfig itself rewritten with an inline token.
        self.api.ctl("tokens", tokens=["third-token"])
        ck.kubeconfig(self.kc, self.api.url, self.pki, token="third-token")
        self.wait_watch_users("token:third-")
        self.api.delete("blockaffinities", ck.block_affinity("node2", cu.EXTRA_BLOCK)["metadata"]["name"])
        self.wait_routes(WANT_2)
        d.notify.wait_status(lambda s: s == STATUS_2)
        self.assertEqual(len(self.lists()), n_lists)  # resumed, not listed again
        self.assertEqual([r for r in self.api.requests() if r["code"] == 401], [])
        self.assertFalse(d.stderr_lines("unreachable"), d.stderr())

    def test_tls_server_name(self):
        """The API server's certificate names only kube-api.cu.test: the kubeconfig's
        tls-server-name makes it valid for the server at 127.0.0.1 (connected to there,
        checked against that name); without it, or with another name, it is refused."""
        self.api.close()
        self.api = ck.KubeAPI(self.ns, self.fx.dir, ck.named_server_cert(self.pki, "kube-api.cu.test"))
        self.addCleanup(self.api.close)
        ck.load_cluster(self.api)
        for name in (None, "other.cu.test"):
            ck.kubeconfig(self.kc, self.api.url, self.pki, token=ck.TOKEN, tls_server_name=name)
            r = self.check()
            self.assertNotEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertRegex(r.stdout + r.stderr, r"(?i)certificate|SSL|subject", r.stdout + r.stderr)
            if name:
                self.assertIn(name, r.stdout + r.stderr)  # checked against it
        ck.kubeconfig(self.kc, self.api.url, self.pki, token=ck.TOKEN, tls_server_name="kube-api.cu.test")
        r = self.check()
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn(f"source: kubernetes {SERVER} resourceVersion", r.stdout)
        # The daemon too, watching through it.
        self.start_converged()
        self.api.put("blockaffinities", ck.block_affinity("node2", cu.EXTRA_BLOCK))
        self.wait_routes(WANT_3)

    def test_unreachable_api_keeps_the_host_then_converges(self):
        # With metrics: datastore_up{datastore="kubernetes"} follows the API (the file at
        # most every 5 s).
        prom = os.path.join(self.fx.dir, "calico-underlay.prom")
        up = 'calico_underlay_datastore_up{datastore="kubernetes"}'
        self.write_settings(extra=f"metricsFile: {prom}\n")
        d = self.start_converged()
        cu.wait_until(lambda: cu.metric(prom, up) == 1, cu.scaled(10), what=f"{up} 1")
        self.api.ctl("stop_listening")
        status = d.notify.wait_status("datastore unreachable", timeout=20)
        cu.wait_until(lambda: cu.metric(prom, up) == 0, cu.scaled(20), what=f"{up} 0 while the API is away")
        self.assertIn("(keeping the last model)", status)
        self.assertTrue(stays(lambda: self.ns.route_summary() == WANT_2, 1.0))
        self.assertTrue(d.stderr_lines("datastore unreachable"), d.stderr())
        # Drift is still repaired meanwhile.
        self.ns.ip("route", "del", cu.PEER_BLOCK, "table", str(cu.TABLE))
        self.wait_routes(WANT_2)
        self.api.put("blockaffinities", ck.block_affinity("node2", cu.EXTRA_BLOCK))
        self.api.ctl("start_listening")
        self.wait_routes(WANT_3, timeout=40)
        d.notify.wait_status(lambda s: s == STATUS_3, timeout=10)
        cu.wait_until(lambda: cu.metric(prom, up) == 1, cu.scaled(10), what=f"{up} 1 again")

    def test_bad_object_is_reported_with_kind_name_and_field(self):
        d = self.start_converged()
        self.api.put("ippools", ck.ippool("broken", "10.9.0.1/16"))
        status = d.notify.wait_status("last error")
        self.assertTrue(status.startswith(STATUS_2.split(";")[0]), status)
        m = re.search(r"kubernetes:ippools/broken:1:(\d+): cidr 10\.9\.0\.1/16 has host bits set", status)
        self.assertTrue(m, status)
        self.assertTrue(stays(lambda: self.ns.route_summary() == WANT_2, 1.0))
        self.api.put("blockaffinities", ck.block_affinity("node2", cu.EXTRA_BLOCK))
        self.assertTrue(stays(lambda: self.ns.route_summary() == WANT_2, 1.0))
        self.api.delete("ippools", "broken")
        self.wait_routes(WANT_3)


class TestKubeDeltaEquivalence(KubeCase):
    """Issue 16: a watch event updates the daemon's model in place (config/kvupdate.c
    through daemon/source-kube.c) and a delta pass plans only the prefixes it touched;
    the full path (--once: every object listed, the whole model built and planned
    against a fresh dump) is the reference. After each batch of random API changes the
    daemon settles, and the host (our routes in both families, our rules, proxy_arp,
    proxy_delay and proxy_ndp, the VXLAN device, the upstream routes file) must be
    what --once makes of the same objects: it finds nothing to change. The changes:
    BlockAffinities claimed, moved, released, pending, pendingDeletion, deleted, one
    renamed onto another block; IPAMBlocks affine to their claimer, to another node or
    to none, with addresses other nodes borrow, deleted, a second one for a block under
    a name before or after Calico's; Nodes' addresses (annotation or InternalIP,
    on-link, off-link, in a block) and labels, heartbeats, a Node gone and back (node0,
    which sorts first, claims and hosts addresses with or without a Node); IPPools'
    nodeSelector, disabled, natOutgoing, vxlanMode, blockSize, a pool gone and back;
    FelixConfigurations; a kind's watch answered 410 Gone, every watch dropped. Some batches start with an invalid object: the daemon keeps
    the last valid model (the host does not move while it stays) until it is fixed.
    Seeded: the seed is in every failure message; CU_SEED=N runs that seed alone,
    CU_BATCHES=N makes each sequence N batches long."""

    SEEDS = (3, 31415, 1601)  # the first two meet every kind of INVALID
    DELETED = ("false", "true")  # BlockAffinity's spec.deleted (a string in the CRD)
    BATCHES = 5
    STEPS = 9
    BROKEN_STEPS = 4  # of a batch's steps, those while an invalid object stands
    SLOTS4 = [f"192.168.10.{128 + 16 * i}/28" for i in range(8)] + [f"10.20.0.{16 * i}/28" for i in range(6)]
    SLOTS6 = [f"fd00:10::{64 * i:x}/122" for i in range(6)]
    NODES = ["node0", "node1", "node2", "node3", "node4"]  # node0: no Node at first
    # A peer's addresses: (IPv4 annotation, IPv6 annotation, InternalIP): on-link,
    # on-link again, off-link, inside node2's block 192.168.10.144/28 (pod space: never
    # a next hop, and no route may cover it), no annotation (the InternalIP counts).
    ADDRS = [("192.168.10.12/24", "fd00:1::12/64", None), ("192.168.10.23/24", "fd00:1::23/64", None),
             ("192.168.20.4/24", "fd00:2::4/64", None), ("192.168.10.150/24", None, None),
             (None, None, "192.168.10.31")]
    SELECTORS = ["all()", 'zone == "a"', 'zone != "a"', "has(rack)", "!has(zone)"]
    # Weighted towards what a watch event updates in place (a pool, a FelixConfiguration,
    # labels, a Node coming or going and an invalid object are full reloads).
    OPS = {"aff": 30, "aff_del": 10, "ipam": 16, "ipam_del": 6, "ipam_dup": 5, "addr": 10, "labels": 3,
           "heartbeat": 2, "node": 2, "pool": 5, "felix": 3, "api": 2}

    def setUp(self):
        super().setUp()
        self.upstream = os.path.join(self.fx.dir, "upstream.json")
        self.write_settings(extra=f"upstreamRoutesFile: {self.upstream}\n")
        self.ns.ip("-6", "addr", "add", "fd00:1::11/64", "dev", "eth0", "nodad")
        self.objs = {}    # (plural, name) -> the object as put
        self.aff = {}     # block -> (affinity name, node)
        self.ipam = {}    # block -> IPAMBlock name
        self.ipam_dup = {}  # block -> the name of a second IPAMBlock for it
        self.ipam_host = {}  # block -> the host its IPAMBlocks name (two would be an error)
        self.nodes = {}   # name -> k8s_node() arguments, gone: no Node
        self.pools = {}   # name -> ippool() arguments, None when deleted
        self.felix = {}   # name -> spec
        self.locked = set()  # what an invalid object of the batch stands on: no random step touches it
        self.heartbeat = 0

    # ---- the API's objects

    def put(self, plural, obj):
        self.api.put(plural, obj, group=self.groups[0])
        self.objs[(plural, obj["metadata"]["name"])] = obj

    def delete(self, plural, name):
        self.api.delete(plural, name, group=self.groups[0])
        self.objs.pop((plural, name), None)

    def put_node(self, name):
        a = self.nodes[name]
        self.heartbeat += 1
        self.put("nodes", ck.k8s_node(name, a["addr"], labels=a["labels"], addr6=a["addr6"],
                                      internal_ip=a["internal"],
                                      heartbeat=f"2026-12-01T{self.heartbeat // 3600 % 24:02}:"
                                                f"{self.heartbeat // 60 % 60:02}:{self.heartbeat % 60:02}Z"))

    def put_pool(self, name):
        a = self.pools[name]
        self.put("ippools", ck.ippool(name, a["cidr"], block_size=a["block_size"], nat=a["nat"], **a["extra"]))

    def put_felix(self, name):
        self.put("felixconfigurations", {"metadata": {"name": name, "generation": 1}, "spec": dict(self.felix[name])})

    def load(self):
        """Three pools (the cluster's, another IPv4 one off the uplink's subnet, an
        IPv6 one), four nodes (node4 off-link; node0 has none yet), a block of node1's
        and node2's in each family, one of node3's, node2's IPAM block."""
        self.pools = {"underlay": dict(cidr="192.168.10.128/25", block_size=28, nat=False, extra={}),
                      "underlay-2": dict(cidr="10.20.0.0/24", block_size=28, nat=False, extra={}),
                      "underlay-6": dict(cidr="fd00:10::/119", block_size=122, nat=False, extra={})}
        for name in self.pools:
            self.put_pool(name)
        self.nodes = {"node0": dict(addr="192.168.10.20/24", addr6="fd00:1::20/64", internal=None, labels={},
                                    gone=True),
                      "node1": dict(addr="192.168.10.11/24", addr6="fd00:1::11/64", internal=None, labels={"zone": "a"}),
                      "node2": dict(addr="192.168.10.12/24", addr6="fd00:1::12/64", internal=None, labels={}),
                      "node3": dict(addr="192.168.10.13/24", addr6="fd00:1::13/64", internal=None, labels={"zone": "b"}),
                      "node4": dict(addr="192.168.20.4/24", addr6="fd00:2::4/64", internal=None, labels={})}
        for name in self.nodes:
            if not self.nodes[name].get("gone"):
                self.put_node(name)
        for node, block in (("node1", cu.OWN_BLOCK), ("node2", cu.PEER_BLOCK), ("node1", self.SLOTS6[0]),
                            ("node2", self.SLOTS6[1]), ("node3", self.SLOTS4[8])):
            obj = ck.block_affinity(node, block, deleted=self.DELETED[0])
            self.put("blockaffinities", obj)
            self.aff[block] = (obj["metadata"]["name"], node)
        # node2's IPAM block, node3's pod at .146: every seed has a borrowed address
        # routed for the steps to change.
        obj = ck.ipam_block(cu.PEER_BLOCK, "node2", ["node2", None, "node3"] + [None] * 13)
        self.put("ipamblocks", obj)
        self.ipam[cu.PEER_BLOCK] = obj["metadata"]["name"]
        self.ipam_host[cu.PEER_BLOCK] = "node2"

    # ---- random steps, each one API change (a move: two)

    def free(self, blocks):
        return [b for b in blocks if ("block", b) not in self.locked]

    def present(self, names):
        return [n for n in names if not self.nodes[n].get("gone") and ("node", n) not in self.locked]

    def step_aff(self, rng):
        """A block claimed, its claim's state or deleted flag changed, the claim moved
        to another node (released first: two claims would be an error), or, rarely,
        one affinity's name put on another free block (its block moves)."""
        block = rng.choice(self.free(self.SLOTS4 + self.SLOTS6))
        node = rng.choice(self.NODES)
        state = rng.choice(["confirmed"] * 4 + ["", "pending", "pendingDeletion"])
        deleted = self.DELETED[rng.random() < 0.1]
        old = self.aff.get(block)
        if old and rng.random() < 0.15:
            family = self.SLOTS6 if ":" in block else self.SLOTS4
            to = [b for b in self.free(family) if b not in self.aff]
            if to:
                dest = rng.choice(to)
                obj = ck.block_affinity(old[1], dest, state=state, deleted=deleted)
                obj["metadata"]["name"] = old[0]
                self.put("blockaffinities", obj)
                self.aff[dest] = self.aff.pop(block)
                return
        obj = ck.block_affinity(node, block, state=state, deleted=deleted)
        if old and old[0] != obj["metadata"]["name"]:
            self.delete("blockaffinities", old[0])
        # The name of an affinity put on another block before: that object comes back.
        for b, (name, _) in list(self.aff.items()):
            if name == obj["metadata"]["name"] and b != block:
                del self.aff[b]
        self.put("blockaffinities", obj)
        self.aff[block] = (obj["metadata"]["name"], node)

    def step_aff_del(self, rng):
        blocks = self.free(sorted(self.aff))
        if blocks:
            self.delete("blockaffinities", self.aff.pop(rng.choice(blocks))[0])

    def step_ipam(self, rng):
        """An IPAMBlock written: affine to the block's claimer, to another node or to
        none; the first address its host's pod, three more other nodes' or free (the
        borrowed addresses); now and then marked deleted."""
        block = rng.choice(self.free(self.SLOTS4 + self.SLOTS6))
        if block in self.ipam_dup:
            host = self.ipam_host[block]
        else:
            owner = self.aff.get(block, (None, None))[1]
            r = rng.random()
            host = owner if owner and r < 0.6 else rng.choice(self.NODES) if r < 0.9 else None
        obj = self.ipam_obj(rng, block, host)
        self.put("ipamblocks", obj)
        self.ipam[block] = obj["metadata"]["name"]

    def ipam_obj(self, rng, block, host, name=None):
        size = 64 if ":" in block else 16
        hosts = ([host or rng.choice(self.NODES)] + [rng.choice(self.NODES) if rng.random() < 0.7 else None
                                                     for _ in range(3)] + [None] * (size - 4))
        obj = ck.ipam_block(block, host, hosts, deleted=rng.random() < 0.07)
        if name:
            obj["metadata"]["name"] = name
        self.ipam_host[block] = host
        return obj

    def step_ipam_dup(self, rng):
        """A second IPAMBlock for a block, named before or after Calico's name for it,
        with the same affinity and other borrowed addresses (of an address both lend,
        the first name's entry counts), or that second one deleted."""
        block = rng.choice(self.free(self.SLOTS4 + self.SLOTS6))
        if block in self.ipam_dup and rng.random() < 0.4:
            self.delete("ipamblocks", self.ipam_dup.pop(block))
            return
        base = ck.ipam_block(block, None, [])["metadata"]["name"]
        name = self.ipam_dup.get(block) or rng.choice(["a-", "z-"]) + base
        host = self.ipam_host[block] if block in self.ipam else rng.choice(self.NODES + [None])
        self.put("ipamblocks", self.ipam_obj(rng, block, host, name))
        self.ipam_dup[block] = name

    def step_ipam_del(self, rng):
        blocks = self.free(sorted(self.ipam))
        if blocks:
            self.delete("ipamblocks", self.ipam.pop(rng.choice(blocks)))

    def step_addr(self, rng):
        name = rng.choice(self.present(["node0", "node2", "node3", "node4"]))
        addr, addr6, internal = rng.choice(self.ADDRS)
        self.nodes[name].update(addr=addr, addr6=addr6, internal=internal)
        self.put_node(name)

    def step_labels(self, rng):
        """Labels of a peer, or of this node (the pools' nodeSelectors read those)."""
        name = rng.choice(self.present(self.NODES + ["node1"]))
        labels = {}
        if rng.random() < 0.7:
            labels["zone"] = rng.choice(["a", "b"])
        if rng.random() < 0.4:
            labels["rack"] = "r1"
        self.nodes[name]["labels"] = labels
        self.put_node(name)

    def step_heartbeat(self, rng):
        """Only the kubelet's heartbeat: nothing the model reads."""
        self.put_node(rng.choice(self.present(self.NODES)))

    def step_node(self, rng):
        """node0's or node4's Node deleted, or back (its blocks stay)."""
        name = rng.choice([n for n in ("node0", "node4") if ("node", n) not in self.locked])
        a = self.nodes[name]
        if a.get("gone"):
            a["gone"] = False
            self.put_node(name)
        else:
            a["gone"] = True
            self.delete("nodes", name)

    def step_pool(self, rng):
        name = rng.choice([n for n in ("underlay-2", "underlay-6", "underlay-2", "underlay")
                           if ("pool", n) not in self.locked])
        what = rng.choice(["nodeSelector", "disabled", "natOutgoing", "vxlanMode", "blockSize", "gone"])
        a = self.pools[name]
        if what == "gone" and name != "underlay":
            if a.get("deleted"):
                a["deleted"] = False
                self.put_pool(name)
            else:
                a["deleted"] = True
                self.delete("ippools", name)
            return
        a["deleted"] = False
        if what == "nodeSelector":
            a["extra"]["nodeSelector"] = rng.choice(self.SELECTORS)
        elif what == "disabled":
            a["extra"]["disabled"] = not a["extra"].get("disabled", False)
        elif what == "natOutgoing":
            a["nat"] = not a["nat"]
        elif what == "vxlanMode":
            a["extra"]["vxlanMode"] = rng.choice(["Never", "Never", "Always", "CrossSubnet"])
        else:
            a["block_size"] = rng.choice([121, 122, 123] if ":" in a["cidr"] else [27, 28, 29])
        self.put_pool(name)

    def step_felix(self, rng):
        name = rng.choice([n for n in ("default", "node.node1", "node.node2") if ("felix", n) not in self.locked])
        if name in self.felix and rng.random() < 0.3:
            del self.felix[name]
            self.delete("felixconfigurations", name)
            return
        spec = {}
        for key in ("vxlanEnabled", "ipipEnabled"):
            v = rng.choice([True, False, None])
            if v is not None:
                spec[key] = v
        if rng.random() < 0.3:
            spec["deviceRouteProtocol"] = rng.choice([3, 80])
        self.felix[name] = spec
        self.put_felix(name)

    def step_api(self, rng):
        """The API server's side: a kind's watch answered 410 Gone (that kind listed
        again while changes come), or every watch dropped (resumed from the last
        version seen)."""
        if rng.random() < 0.7:
            self.api.ctl("gone_watch", resource=rng.choice(["nodes", "ippools", "blockaffinities", "ipamblocks",
                                                            "felixconfigurations"]))
        else:
            self.api.ctl("drop_watches")

    def random_step(self, rng):
        op = rng.choices(list(self.OPS), weights=list(self.OPS.values()))[0]
        getattr(self, "step_" + op)(rng)
        return op

    # ---- invalid objects: put at the start of a batch, fixed at its end

    INVALID = ["pool-cidr", "pool-selector", "affinity-cidr", "felix-protocol", "ipam-allocations", "node-address",
               "conflict"]

    def break_something(self, rng, n):
        """The n-th invalid object of the run (a new one, or a valid one replaced; the
        kinds in turn from one the seed picks): (what, the fix)."""
        counting = [b for b in self.free(self.SLOTS4) if b in self.aff and b not in self.ipam and b not in self.ipam_dup
                    and self.objs[("blockaffinities", self.aff[b][0])]["spec"]["state"] != "pending"
                    and self.objs[("blockaffinities", self.aff[b][0])]["spec"]["deleted"] == self.DELETED[0]]
        unblocked = [b for b in self.free(self.SLOTS4) if b not in self.ipam and b not in self.ipam_dup]
        kind = self.INVALID[(self.first_invalid + n) % len(self.INVALID)]
        if (kind == "conflict" and not counting) or (kind == "ipam-allocations" and not unblocked):
            kind = "pool-cidr"
        if kind == "pool-cidr":
            self.put("ippools", ck.ippool("broken", "10.9.0.1/16"))
            return kind, lambda: self.delete("ippools", "broken")
        if kind == "pool-selector":
            a = self.pools["underlay-2"]
            self.locked.add(("pool", "underlay-2"))
            self.put("ippools", ck.ippool("underlay-2", a["cidr"], block_size=a["block_size"], nat=a["nat"],
                                          **dict(a["extra"], nodeSelector='zone == "a" &&')))
            return kind, lambda: self.delete("ippools", "underlay-2") if a.get("deleted") else self.put_pool(
                "underlay-2")
        if kind == "affinity-cidr":
            obj = ck.block_affinity("node3", "10.20.0.101/28", deleted=self.DELETED[0])
            self.put("blockaffinities", obj)
            return kind, lambda: self.delete("blockaffinities", obj["metadata"]["name"])
        if kind == "felix-protocol":
            self.locked.add(("felix", "node.node1"))
            self.put("felixconfigurations", {"metadata": {"name": "node.node1"},
                                             "spec": {"deviceRouteProtocol": cu.PROTO}})
            return kind, lambda: (self.put_felix("node.node1") if "node.node1" in self.felix
                                  else self.delete("felixconfigurations", "node.node1"))
        if kind == "ipam-allocations":
            block = rng.choice(unblocked)
            self.locked.add(("block", block))
            obj = ck.ipam_block(block, "node3", ["node3"] * 17)  # 17 addresses in a /28
            self.put("ipamblocks", obj)
            return kind, lambda: self.delete("ipamblocks", obj["metadata"]["name"])
        if kind == "node-address":
            self.locked.add(("node", "node3"))  # never gone
            self.put("nodes", ck.k8s_node("node3", "192.168.10.300/24"))
            return kind, lambda: self.put_node("node3")
        block = rng.choice(counting)  # claimed by a second node: "is also claimed as"
        self.locked.add(("block", block))
        names = {name for name, _ in self.aff.values()}
        other = next(n for n in self.NODES if n != self.aff[block][1] and
                     ck.block_affinity(n, block)["metadata"]["name"] not in names)
        obj = ck.block_affinity(other, block, deleted=self.DELETED[0])
        self.put("blockaffinities", obj)
        return kind, lambda: self.delete("blockaffinities", obj["metadata"]["name"])

    # ---- the host, and the full path's answer

    def routes6(self):
        return sorted(f"{r['dst']} {r.get('type', 'unicast')} {r.get('gateway', '-')} {r.get('dev', '-')}"
                      for r in self.ns.ipj("-6", "route", "show", "table", "all", "proto", str(cu.PROTO))
                      if str(r.get("table", "main")) == str(cu.TABLE))

    def upstream_file(self):
        try:
            with open(self.upstream) as f:
                return f.read()
        except FileNotFoundError:
            return None

    def host_state(self):
        rules = sorted(json.dumps(r, sort_keys=True) for r in self.ns.ipj("rule", "show") + self.ns.ipj("-6", "rule", "show")
                       if str(r.get("protocol")) == str(cu.PROTO))
        return {"routes": self.ns.route_summary(), "routes6": self.routes6(), "rules": rules,
                "proxy_arp": self.ns.proxy_arp(), "proxy_delay": self.ns.sysctl("net.ipv4.neigh.eth0.proxy_delay"),
                "proxy_ndp": self.ns.sysctl("net.ipv6.conf.eth0.proxy_ndp"),
                "vxlan.calico": self.ns.link_exists("vxlan.calico")}

    @staticmethod
    def activity(d):
        text = d.stderr()
        return sum(text.count(k) for k in ("reconcile pass", "configuration ", "upstream routes file"))

    def settle(self, d, seed):
        """The daemon done with the last change: its five watches open (not backing
        off), and the host, the upstream routes file and the daemon's passes and
        configuration entries unchanged for a second."""
        last = [None]

        def quiet():
            now = (self.host_state(), self.upstream_file(), self.activity(d), len(self.api.watches()))
            same, last[0] = now == last[0] and now[-1] == 5, now
            return same
        cu.wait_until(lambda: stays(quiet, 1.0, 0.1), timeout=40, what=f"the daemon settled (seed {seed})")

    def full_path_agrees(self, d, seed, batch):
        """--upstream-routes gives the file the daemon keeps, and --once finds nothing
        to change (and changes nothing)."""
        where = f"seed {seed}, batch {batch}"
        state = self.host_state()
        r = self.once("--upstream-routes", "--format", "json")
        self.assertIn(r.returncode, (0, 1), f"{where}:\n{r.stdout}{r.stderr}")  # 1: some have no next hop
        self.assertEqual(self.upstream_file(), r.stdout, f"{where}: the upstream routes file differs from the full "
                         f"path's\n--- daemon:\n{d.stderr()[-6000:]}")
        r = self.once()
        self.assertEqual(r.returncode, 0, f"{where}:\n{r.stdout}{r.stderr}")
        self.assertIn("0 changes, 0 failed", r.stdout, f"{where}: the full path differs from the daemon's host:\n"
                      f"{r.stdout}\n--- daemon:\n{d.stderr()[-8000:]}")
        self.assertEqual(self.host_state(), state, where)
        return state

    def steps(self, rng, n, ops, seen):
        for _ in range(n):
            op = self.random_step(rng)
            ops[op] = ops.get(op, 0) + 1
            seen |= set(self.ns.route_summary() + self.routes6())
            time.sleep(rng.choice([0, 0.01, 0.06, 0.1, 0.2]))

    def run_seed(self, i):
        if os.environ.get("CU_SEED"):
            if i:
                self.skipTest("CU_SEED: its one sequence runs in the first case")
            seed = int(os.environ["CU_SEED"])
        elif cu.DAEMON_WRAPPER and (i or self.groups != (ck.CRD,)):
            self.skipTest("under a wrapper (valgrind): one seed")
        else:
            seed = self.SEEDS[i]
        rng = random.Random(seed)
        self.first_invalid = rng.randrange(len(self.INVALID))
        self.load()
        d = self.start().wait_ready()
        self.settle(d, seed)
        ops, episodes, seen = {}, [], set(self.ns.route_summary() + self.routes6())
        for batch in range(int(os.environ.get("CU_BATCHES") or self.BATCHES)):
            if batch:
                # An invalid object for the batch's first steps: the last valid model
                # is kept (the host as before it, whatever valid changes follow) until
                # it is fixed.
                before = (self.host_state(), self.upstream_file())
                rejected = len(d.stderr_lines("configuration rejected"))
                what, fix = self.break_something(rng, len(episodes))
                where = f"seed {seed}, batch {batch}, invalid {what}"
                episodes.append(what)
                # Seen before the valid changes come: each kind is a watch of its own, so
                # another kind's event may reach the daemon first (a relist of the invalid
                # object's kind delays it the more), and is then rightly applied.
                cu.wait_until(lambda: len(d.stderr_lines("configuration rejected")) > rejected, 20,
                              what=f"{where}: the rejection")
                self.assertEqual((self.host_state(), self.upstream_file()), before, f"{where}: the host moved")
                self.steps(rng, self.BROKEN_STEPS, ops, seen)
                self.settle(d, seed)
                self.assertEqual((self.host_state(), self.upstream_file()), before,
                                 f"{where}: the host moved\n--- daemon:\n{d.stderr()[-6000:]}")
                self.assertGreater(len(d.stderr_lines("configuration rejected")), rejected,
                                   f"{where}: not rejected\n--- daemon:\n{d.stderr()[-6000:]}")
                self.assertIn("last error", d.notify.status() or "", where)
                fix()
                self.locked.clear()
            if rng.random() < 0.5 and not self.ns.link_exists("vxlan.calico"):
                # Removed again unless Felix or a pool keeps it (maybe before it is up).
                self.ns.ip("link", "add", "vxlan.calico", "type", "vxlan", "id", "4096", "dstport", "4789", "dev", "eth0")
                self.ns.ip("link", "set", "vxlan.calico", "up", check=False)
            self.steps(rng, self.STEPS - (self.BROKEN_STEPS if batch else 0), ops, seen)
            self.settle(d, seed)
            state = self.full_path_agrees(d, seed, batch)
            seen |= set(state["routes"] + state["routes6"])
        deltas = [p for p in d.stderr_lines("reconcile pass (") if "; delta pass over" in p]
        in_place = d.stderr_lines("updated in the model in place")
        sys.stderr.write(f"[seed {seed}: {sum(ops.values())} changes {ops}, invalid objects {episodes}; "
                         f"{len(in_place)} updates in place, {len(deltas)} delta passes, "
                         f"{len(d.stderr_lines('configuration reloaded'))} reloads, "
                         f"{len(d.stderr_lines('reconcile pass'))} passes] ")
        # The in-place path and delta passes were used, not only full reloads.
        self.assertGreaterEqual(len(in_place), 3, f"seed {seed}: updates in place:\n{d.stderr()[-4000:]}")
        self.assertGreaterEqual(len(deltas), 3, f"seed {seed}: delta passes:\n{d.stderr()[-4000:]}")
        # The sequences reached borrowed addresses' host routes, and IPv6 peer routes.
        self.assertTrue(any("/" not in r.split()[0] for r in seen), f"seed {seed}: no borrowed address: {sorted(seen)}")
        self.assertTrue(any(r.startswith("fd00:10::") and " unicast fd00:1::" in r for r in seen),
                        f"seed {seed}: no IPv6 peer route: {sorted(seen)}")
        # A fresh full path: our routes gone, --once builds the daemon's host again.
        final = self.host_state()
        d.stop()
        self.ns.ip("route", "flush", "table", str(cu.TABLE), "proto", str(cu.PROTO))
        self.ns.ip("-6", "route", "flush", "table", str(cu.TABLE), "proto", str(cu.PROTO))
        r = self.once()
        self.assertEqual(r.returncode, 0, f"seed {seed}:\n{r.stdout}{r.stderr}")
        self.assertEqual(self.host_state(), final, f"seed {seed}: a fresh --once differs from the daemon's host")

    def test_seed_a(self):
        self.run_seed(0)

    def test_seed_b(self):
        self.run_seed(1)

    def test_seed_c(self):
        self.run_seed(2)


class TestKubeDeltaEquivalenceV3(TestKubeDeltaEquivalence):
    """The same on the v3 API group (projectcalico.org/v3 alone: spec.deleted a bool),
    one seed."""
    groups = (ck.V3,)
    DELETED = (False, True)
    SEEDS = (8,)
    test_seed_b = test_seed_c = None


class TestSettings(KubeCase):
    def test_check_says_where_auto_read_it(self):
        # datastore: auto with a kubeconfig setting: the Kubernetes API.
        self.write_settings(datastore=None)
        r = self.check()
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout, rf"^source: kubernetes {re.escape(SERVER)} resourceVersion \d+$".replace("^", "(?m)^"))
        r = self.check("--format", "json")
        self.assertIn('"type":"kubernetes"', r.stdout.replace(" ", ""))

    def test_calicoctl_cfg_names_kubernetes_and_its_kubeconfig(self):
        cu.write_file(os.path.join(self.fx.etc, "calicoctl.cfg"),
                      "apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nmetadata:\nspec:\n"
                      f"  datastoreType: kubernetes\n  kubeconfig: {self.kc}\n  k8sCurrentContext: cu\n"
                      "  calicoAPIGroup: crd.projectcalico.org/v1\n  k8sClientQPS: 50\n")
        self.write_settings(datastore=None, kubeconfig=False)
        r = self.check()
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn(f"source: kubernetes {SERVER}", r.stdout)
        # calicoAPIGroup given: no discovery.
        self.assertNotIn("/apis", [q["path"] for q in self.api.requests()])

    def test_environment_and_client_certificate(self):
        kc = ck.kubeconfig(os.path.join(self.fx.etc, "cert.kubeconfig"), self.api.url, self.pki, client_cert=True,
                           inline=True)
        self.write_settings(datastore=None, kubeconfig=False)
        d = self.start_converged(env={"DATASTORE_TYPE": "kubernetes", "KUBECONFIG": kc})
        self.assertEqual({q["user"] for q in self.api.requests()}, {"cert:cu-test-client"})
        self.assertTrue(d)

    def test_token_file(self):
        tok = os.path.join(self.fx.etc, "token")
        cu.write_file(tok, ck.TOKEN + "\n")
        ck.kubeconfig(self.kc, self.api.url, self.pki, token_file=tok)
        self.start_converged()

    def test_default_kubeconfig_alone_needs_no_settings(self):
        """A node of a kdd cluster: no config.yaml, no calicoctl.cfg, only
        /etc/calico-underlay/kubeconfig (in a private mount namespace over an empty /etc)."""
        script = (f"mount -t tmpfs tmpfs /etc && mkdir /etc/calico-underlay && "
                  f"cp {self.kc} /etc/calico-underlay/kubeconfig && exec \"$@\"")
        r = subprocess.run(["ip", "netns", "exec", self.ns.name, "unshare", "-m", "sh", "-c", script, "sh",
                            *cu.DAEMON_WRAPPER, cu.DAEMON, "--check"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=cu.scaled(60))
        self.assertIn(f"source: kubernetes {SERVER} resourceVersion", r.stdout, r.stdout + r.stderr)

    def test_no_kubeconfig_is_an_error(self):
        os.unlink(self.kc)
        r = self.check()
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn(f"kubeconfig {self.kc}: No such file or directory", r.stdout + r.stderr)


def cluster_role(path):
    """The rules of the ClusterRole in a manifest (python3-yaml)."""
    import yaml
    with open(path) as f:
        return next(d for d in yaml.safe_load_all(f) if d and d.get("kind") == "ClusterRole")["rules"]


class TestRBAC(KubeCase):
    """The API server grants only what a ClusterRole grants (discovery aside)."""
    groups = (ck.CRD, ck.V3)

    def test_shipped_cluster_role_is_enough(self):
        try:
            rules = cluster_role(os.path.join(cu.SRCDIR, "units", "kubernetes-rbac.yaml"))
        except ImportError:
            self.skipTest("needs python3-yaml")
        self.api.ctl("rbac", rules=rules)
        # Both API groups: the CRD one (both listed), then v3 alone.
        self.start_converged()
        self.assertEqual([q for q in self.api.requests() if q["code"] == 403], [])
        for plural in ("ippools", "blockaffinities", "ipamblocks", "felixconfigurations", "nodes"):
            cu.wait_until(lambda: self.watches_of(plural), 10, what=f"a watch of {plural}")
        self.assertEqual([q for q in self.api.requests() if q["code"] == 403], [])
        granted = {(g, res) for r in rules for g in r["apiGroups"] for res in r["resources"]}
        self.assertEqual({tuple(sorted(r["verbs"])) for r in rules}, {("get", "list", "watch")})
        for g in ("crd.projectcalico.org", "projectcalico.org"):
            for res in ("ippools", "blockaffinities", "ipamblocks", "felixconfigurations"):
                self.assertIn((g, res), granted)

    def test_calico_cni_role_cannot_serve(self):
        # calico-cni-plugin's rules (Calico's manifests): no watch, no FelixConfigurations.
        self.api.ctl("rbac", rules=[
            {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]},
            {"apiGroups": ["crd.projectcalico.org"], "verbs": ["get", "list", "create", "update", "delete"],
             "resources": ["blockaffinities", "ipamblocks", "ipamhandles", "clusterinformations", "ippools",
                           "ipreservations", "ipamconfigs"]}])
        d = self.start().wait_ready()
        status = d.notify.wait_status("HTTP 403", timeout=20)
        self.assertIn("waiting for the datastore", status)


class TestV3Group(KubeCase):
    """Only projectcalico.org in /apis: the v3 CRDs (BlockAffinity deleted a bool)."""
    groups = (ck.V3,)

    def test_v3_crds(self):
        self.start_converged()
        cu.wait_until(lambda: self.watches_of("ippools"), 10, what="a watch of ippools")  # opened after the lists
        self.assertTrue(all(r["path"].startswith("/apis/projectcalico.org/v3/") or "nodes" in r["path"]
                            or r["path"] == "/apis" for r in self.api.requests()))


if __name__ == "__main__":
    ck.require()
    cu.install_signal_cleanup()
    unittest.main()
