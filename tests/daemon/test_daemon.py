#!/usr/bin/env python3
"""Daemon mode on a real kernel (DESIGN.md §4, §5): calico-underlayd runs inside a
throwaway network namespace with a veth uplink eth0, reporting to a NOTIFY_SOCKET
this test owns. Every case polls kernel state (routes, proxy_arp, links) with a
timeout; none sleeps to let the daemon "catch up".

Run: meson test -C BUILD daemon   (or: sudo DAEMON=BUILD/daemon/calico-underlayd
python3 tests/daemon/test_daemon.py -v [TestDaemon.test_name]). Needs root; exit
77 (skipped) otherwise.
"""
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cudaemon as cu  # noqa: E402

STATUS_2 = "underlay: 1 pool, proxy_arp on eth0, 2 block routes, tunnels removed"
STATUS_3 = "underlay: 1 pool, proxy_arp on eth0, 3 block routes, tunnels removed"
WANT_2 = [
    "192.168.10.128/28 blackhole - - 1024",
    "192.168.10.144/28 unicast 192.168.10.12 eth0 1024",
]
WANT_3 = WANT_2 + ["192.168.10.160/28 unicast 192.168.10.12 eth0 1024"]
EXTRA = cu.affinity("node2", cu.EXTRA_BLOCK)
BAD_POOL = cu.POOL.replace("blockSize: 28", "blockSize: banana").replace("name: underlay", "name: broken")


def stays(fn, duration=0.5, interval=0.02):
    """fn() stays truthy for `duration` seconds, scaled (used only for "nothing happens")."""
    end = time.monotonic() + cu.scaled(duration)
    while time.monotonic() < end:
        if not fn():
            return False
        time.sleep(interval)
    return True


class DaemonCase(unittest.TestCase):
    """One namespace, one fixture per test; the daemon is started by each test."""

    fixture_args = {}

    def setUp(self):
        self.ns = cu.Netns()
        self.addCleanup(self.ns.close)
        self.ns.setup_uplink()
        self.fx = cu.Fixture(**self.fixture_args)
        self.addCleanup(self.fx.close)
        self.daemons = []

    def tearDown(self):
        failed = self._outcome_failed()
        errors = cu.close_daemons(self.daemons, failed)
        if errors and not failed:  # a failed case has shown the daemon's stderr already
            raise AssertionError("\n\n".join(errors))

    def _outcome_failed(self):
        res = getattr(self, "_outcome", None)
        if res is None:
            return False
        result = getattr(res, "result", None)
        errs = list(getattr(result, "errors", [])) + list(getattr(result, "failures", []))
        return any(t is self for t, _ in errs)

    def start(self, **kw):
        d = cu.Daemon(self.ns, self.fx, **kw)
        self.daemons.append(d)
        return d

    def start_converged(self, status=STATUS_2, want=WANT_2, **kw):
        d = self.start(**kw).wait_ready()
        d.notify.wait_status(lambda s: s == status)
        self.wait_routes(want)
        cu.wait_until(lambda: self.ns.proxy_arp() == 1, what="proxy_arp=1")
        self.wait_idle(d)
        return d

    def wait_routes(self, want, timeout=10.0):
        return cu.wait_until(lambda: self.ns.route_summary() == want, timeout,
                             what=f"routes {want} (have {self.ns.route_summary()})")

    def assert_one_repair(self, d, n):
        """The passes since the n-th: one that changed something, then at most one
        that found nothing to do (our own change coming back), then none."""
        self.wait_idle(d)
        passes = d.stderr_lines("reconcile pass")[n:]
        self.assertTrue(1 <= len(passes) <= 2, passes)
        self.assertNotIn(": 0 changes", passes[0], passes)
        for p in passes[1:]:
            self.assertIn(": 0 changes", p, passes)

    def wait_idle(self, d, quiet=0.3, timeout=10.0):
        """Until no reconcile pass has been logged for `quiet` seconds (scaled)."""
        quiet = cu.scaled(quiet)
        state = {"n": d.passes(), "t": time.monotonic()}

        def idle():
            n = d.passes()
            if n != state["n"]:
                state.update(n=n, t=time.monotonic())
                return False
            return time.monotonic() - state["t"] >= quiet
        cu.wait_until(idle, timeout, interval=0.05, what="the daemon to go idle")
        return d.passes()


class TestStartup(DaemonCase):
    def setUp(self):
        super().setUp()
        self.ns.add_vxlan()

    def test_ready_status_and_host(self):
        d = self.start().wait_ready()
        status = d.notify.wait_status(lambda s: s == STATUS_2)
        self.assertEqual(status, STATUS_2)
        self.wait_routes(WANT_2)
        self.assertEqual(self.ns.proxy_arp(), 1)
        self.assertEqual(self.ns.sysctl("net.ipv4.neigh.eth0.proxy_delay"), 0)
        self.assertFalse(self.ns.link_exists("vxlan.calico"))
        with open(os.path.join(self.fx.run, "state")) as f:
            rec = f.read()
        self.assertIn("ifname=eth0", rec)
        self.assertIn("proxy_arp=0", rec)
        # READY=1 comes after the first reconcile: the host was already converged.
        ready_at = [t for t, f, _ in d.notify.snapshot() if f.get("READY") == "1"][0]
        self.assertEqual(d.notify.values("WATCHDOG"), [], "no pings without WATCHDOG_USEC")
        self.assertTrue(ready_at)

    def test_watchdog_pings(self):
        d = self.start(watchdog_usec=200000).wait_ready()
        n0 = len(d.notify.values("WATCHDOG"))
        cu.wait_until(lambda: len(d.notify.values("WATCHDOG")) >= n0 + 5, timeout=3,
                      what="5 WATCHDOG=1 pings within 3 s at WATCHDOG_USEC=200 ms")
        self.assertTrue(all(v == "1" for v in d.notify.values("WATCHDOG")))

    def test_idle_uses_no_cpu(self):
        d = self.start_converged()
        before = d.cpu_ticks()
        n = d.passes()
        time.sleep(3)  # the measurement itself: an idle period
        self.assertLessEqual(d.cpu_ticks() - before, 1, "CPU time while idle (clock ticks)")
        self.assertEqual(d.passes(), n, "no reconcile pass while nothing changes")

    def test_invalid_at_start_then_fixed(self):
        cu.write_file(self.fx.path("10-pools.yaml"), BAD_POOL)
        d = self.start().wait_ready()
        status = d.notify.wait_status("waiting for a valid configuration")
        self.assertRegex(status, r"10-pools\.yaml:\d+:\d+: ", status)
        self.assertTrue(d.stderr_lines("10-pools.yaml:"), d.stderr())
        self.assertEqual(self.ns.route_summary(), [])
        self.assertEqual(self.ns.proxy_arp(), 0)
        self.assertTrue(self.ns.link_exists("vxlan.calico"), "invalid input never changes the host")
        cu.write_renamed(self.fx.path("10-pools.yaml"), cu.POOL)
        d.notify.wait_status(lambda s: s == STATUS_2)
        self.wait_routes(WANT_2)
        self.assertEqual(self.ns.proxy_arp(), 1)


class TestConfigChanges(DaemonCase):
    def test_new_file_written_in_place(self):
        d = self.start_converged()
        cu.write_file(self.fx.path("40-extra.yaml"), EXTRA)
        self.wait_routes(WANT_3)
        d.notify.wait_status(lambda s: s == STATUS_3)

    def test_existing_file_rewritten_in_place(self):
        self.start_converged()
        cu.write_file(self.fx.path("30-blocks.yaml"), cu.BLOCKS + "---\n" + EXTRA)
        self.wait_routes(WANT_3)
        cu.write_file(self.fx.path("30-blocks.yaml"), cu.affinities(("node1", cu.OWN_BLOCK)))
        self.wait_routes(WANT_2[:1])

    def test_new_file_renamed_into_place(self):
        d = self.start_converged()
        cu.write_renamed(self.fx.path("40-extra.yaml"), EXTRA)
        self.wait_routes(WANT_3)
        d.notify.wait_status(lambda s: s == STATUS_3)
        os.unlink(self.fx.path("40-extra.yaml"))
        self.wait_routes(WANT_2)

    def test_settings_file_renamed(self):
        self.start_converged()
        with open(self.fx.config) as f:
            body = f.read()
        cu.write_renamed(self.fx.config, body + "localBlockRoute: unreachable\n")
        self.wait_routes(["192.168.10.128/28 unreachable - - 1024", WANT_2[1]])

    def test_malformed_file_changes_nothing(self):
        d = self.start_converged()
        cu.write_file(self.fx.path("40-bad.yaml"), BAD_POOL.replace("192.168.10.128/25", "10.9.0.0/16"))
        status = d.notify.wait_status("last error")
        m = re.search(r"(\S*40-bad\.yaml):(\d+):(\d+): ", status)
        self.assertTrue(m, status)
        self.assertTrue(status.startswith(STATUS_2), status)
        self.assertEqual(m.group(1), self.fx.path("40-bad.yaml"))
        self.assertTrue([l for l in d.stderr_lines("40-bad.yaml:") if l.startswith("error:")], d.stderr())
        self.assertTrue(stays(lambda: self.ns.route_summary() == WANT_2, 0.5))
        # Drift is still repaired from the last valid model, and the error stays in
        # STATUS= until the input is fixed.
        self.ns.ip("route", "del", cu.PEER_BLOCK, "table", str(cu.TABLE))
        self.wait_routes(WANT_2)
        self.wait_idle(d)
        self.assertIn("40-bad.yaml:", d.notify.status())
        os.unlink(self.fx.path("40-bad.yaml"))
        d.notify.wait_status(lambda s: s == STATUS_2)

    def test_broken_yaml_syntax(self):
        d = self.start_converged()
        cu.write_file(self.fx.path("30-blocks.yaml"), cu.BLOCKS + "  - [unclosed\n")
        status = d.notify.wait_status("last error")
        self.assertRegex(status, r"30-blocks\.yaml:\d+:\d+: ")
        self.assertTrue(stays(lambda: self.ns.route_summary() == WANT_2, 0.5))

    def test_empty_or_missing_resources_keep_last_model(self):
        d = self.start_converged()
        for name in list(os.listdir(self.fx.res)):
            os.unlink(self.fx.path(name))
        status = d.notify.wait_status("no IPPool found")
        self.assertTrue(status.startswith(STATUS_2), status)
        self.assertTrue(stays(lambda: self.ns.route_summary() == WANT_2, 0.3))
        os.rmdir(self.fx.res)
        d.notify.wait_status("cannot read resources")
        self.assertTrue(stays(lambda: self.ns.route_summary() == WANT_2, 0.3))
        self.assertEqual(self.ns.proxy_arp(), 1)
        # The folder comes back: its watch must come back too.
        os.mkdir(self.fx.res)
        self.wait_idle(d)
        for name, text in cu.DEFAULT_FILES.items():
            cu.write_file(self.fx.path(name), text)
        d.notify.wait_status(lambda s: s == STATUS_2)
        cu.write_file(self.fx.path("40-extra.yaml"), EXTRA)
        self.wait_routes(WANT_3)

    def test_symlinked_file_target_edited(self):
        # Issue 14: a resource file that is a symlink to a file elsewhere: edits of the
        # target (in place, or renamed over it) are seen, and so is the link pointing
        # to another file (whose edits are seen from then on).
        real = os.path.join(self.fx.dir, "real")
        os.makedirs(real)
        target = os.path.join(real, "blocks.yaml")
        shutil.move(self.fx.path("30-blocks.yaml"), target)
        os.symlink(target, self.fx.path("30-blocks.yaml"))
        d = self.start_converged()
        cu.write_file(target, cu.BLOCKS + "---\n" + EXTRA)
        self.wait_routes(WANT_3)
        cu.write_renamed(target, cu.BLOCKS)
        self.wait_routes(WANT_2)
        real2 = os.path.join(self.fx.dir, "real2")
        os.makedirs(real2)
        target2 = os.path.join(real2, "blocks.yaml")
        cu.write_file(target2, cu.BLOCKS + "---\n" + EXTRA)
        tmp = self.fx.path(".30-blocks.yaml.tmp")
        os.symlink(target2, tmp)
        os.rename(tmp, self.fx.path("30-blocks.yaml"))
        self.wait_routes(WANT_3)
        cu.write_file(target2, cu.BLOCKS)
        self.wait_routes(WANT_2)
        d.notify.wait_status(lambda s: s == STATUS_2)

    def test_symlinked_settings_and_resources_entry(self):
        # The settings file and a resources entry naming one file, both links.
        real = os.path.join(self.fx.dir, "real")
        os.makedirs(real)
        pools = os.path.join(real, "pools.yaml")
        shutil.move(self.fx.path("10-pools.yaml"), pools)
        link = os.path.join(self.fx.etc, "pools-link.yaml")
        os.symlink(pools, link)
        cfg = os.path.join(real, "config.yaml")
        cu.write_file(cfg, f"nodeName: node1\nuplink: auto\nresources:\n  - {self.fx.res}\n  - {link}\n"
                           "resyncSeconds: 0\n")
        os.unlink(self.fx.config)
        os.symlink(cfg, self.fx.config)
        d = self.start_converged()
        cu.write_file(pools, cu.POOL.replace("natOutgoing: false", "natOutgoing: true"))
        d.notify.wait_status(lambda s: s.startswith("overlay"))
        self.wait_routes([])
        cu.write_file(pools, cu.POOL)
        d.notify.wait_status(lambda s: s == STATUS_2)
        cu.write_file(cfg, f"nodeName: node1\nuplink: auto\nresources:\n  - {self.fx.res}\n  - {link}\n"
                           "resyncSeconds: 0\nlocalBlockRoute: unreachable\n")
        cu.wait_until(lambda: "192.168.10.128/28 unreachable - - 1024" in self.ns.route_summary(),
                      what="the edit of the linked settings file")


    def test_resources_folder_elsewhere_deleted_and_recreated(self):
        # The resources live outside the settings file's folder: deleting their
        # parent must not leave the daemon deaf.
        self.fx.close()
        self.fx = cu.Fixture(resources=None)
        self.addCleanup(self.fx.close)
        other = os.path.join(self.fx.dir, "other")
        res = os.path.join(other, "res.d")
        shutil.copytree(self.fx.res, res)
        cu.write_renamed(self.fx.config, f"nodeName: node1\nresources:\n  - {res}\nresyncSeconds: 0\n")
        d = self.start_converged()
        shutil.rmtree(other)
        d.notify.wait_status("cannot read resources")
        self.wait_idle(d)
        os.makedirs(res)
        self.wait_idle(d)
        for name, text in cu.DEFAULT_FILES.items():
            cu.write_file(os.path.join(res, name), text)
        cu.write_file(os.path.join(res, "40-extra.yaml"), EXTRA)
        self.wait_routes(WANT_3)
        d.notify.wait_status(lambda s: s == STATUS_3)

    def test_settings_folder_deleted_and_recreated(self):
        d = self.start_converged()
        saved = dict(cu.DEFAULT_FILES)
        with open(self.fx.config) as f:
            settings = f.read()
        shutil.rmtree(self.fx.etc)
        d.notify.wait_status("last error")
        self.assertTrue(stays(lambda: self.ns.route_summary() == WANT_2, 0.3))
        # Back one step at a time, as a configuration tool would recreate it.
        os.makedirs(self.fx.res)
        self.wait_idle(d)
        for name, text in saved.items():
            cu.write_file(self.fx.path(name), text)
        cu.write_file(self.fx.path("40-extra.yaml"), EXTRA)
        self.wait_idle(d)
        cu.write_renamed(self.fx.config, settings)
        self.wait_routes(WANT_3)
        d.notify.wait_status(lambda s: s == STATUS_3)

    def test_sighup_reloads(self):
        # A file the daemon reads through a hard link in a folder it does not watch:
        # writing through the other name raises no inotify event in the watched
        # folder, so only SIGHUP can make the daemon see the change.
        hidden = os.path.join(self.fx.dir, "hidden")
        os.mkdir(hidden)
        cu.write_file(os.path.join(hidden, "40-extra.yaml"), "# nothing yet\n")
        os.link(os.path.join(hidden, "40-extra.yaml"), self.fx.path("40-extra.yaml"))
        d = self.start_converged()
        cu.write_file(os.path.join(hidden, "40-extra.yaml"), EXTRA)
        self.assertTrue(stays(lambda: self.ns.route_summary() == WANT_2, 0.5),
                        "a change inotify cannot see is not picked up")
        since = d.notify.count()
        d.send(signal.SIGHUP)
        d.notify.wait_for("RELOADING", lambda v: v == "1", since=since)
        self.wait_routes(WANT_3)
        d.notify.wait_status(lambda s: s == STATUS_3, since=since)
        msgs = d.notify.snapshot(since)
        order = [k for _, f, _ in msgs for k in ("RELOADING", "READY") if k in f]
        self.assertEqual(order[:2], ["RELOADING", "READY"], msgs)
        self.assertTrue(d.stderr_lines("configuration reloaded"), d.stderr())


class TestConfigMap(DaemonCase):
    fixture_args = {"layout": "configmap"}

    def test_configmap_swap(self):
        d = self.start_converged()
        files = dict(cu.DEFAULT_FILES)
        files["40-extra.yaml"] = EXTRA
        self.fx.configmap_swap(files)
        self.wait_routes(WANT_3)
        d.notify.wait_status(lambda s: s == STATUS_3)
        files["30-blocks.yaml"] = cu.affinities(("node1", cu.OWN_BLOCK))
        self.fx.configmap_swap(files)
        self.wait_routes([WANT_2[0], WANT_3[2]])


class TestDrift(DaemonCase):
    def test_own_routes_deleted_are_restored(self):
        d = self.start_converged()
        for dst in (cu.OWN_BLOCK, cu.PEER_BLOCK):
            n = d.passes()
            self.ns.ip("route", "del", dst, "table", str(cu.TABLE))
            self.wait_routes(WANT_2)
            self.assert_one_repair(d, n)
        self.assertEqual(len(d.stderr_lines("repaired drift: add-route")), 2, d.stderr())

    def test_own_route_replaced_by_hand_is_restored(self):
        self.start_converged()
        self.ns.ip("route", "replace", cu.PEER_BLOCK, "via", "192.168.10.13", "dev", "eth0", "proto", "211",
                   "metric", "1024", "table", str(cu.TABLE))
        self.wait_routes(WANT_2)

    def test_proxy_arp_reset_is_restored(self):
        d = self.start_converged()
        for _ in range(3):
            n = d.passes()
            self.ns.sysctl_set("net.ipv4.conf.eth0.proxy_arp", 0)
            cu.wait_until(lambda: self.ns.proxy_arp() == 1, what="proxy_arp back to 1")
            self.assert_one_repair(d, n)
        self.assertTrue(d.stderr_lines("repaired drift: set-proxy-arp eth0 1"), d.stderr())

    def test_uplink_deleted_and_recreated(self):
        d = self.start_converged()
        self.ns.ip("link", "del", "eth0")
        d.notify.wait_status(lambda s: "eth0" not in s.split(";")[0])
        self.wait_idle(d)
        self.ns.setup_uplink()
        cu.wait_until(lambda: self.ns.proxy_arp() == 1, what="proxy_arp=1 on the new eth0")
        self.wait_routes(WANT_2)
        d.notify.wait_status(lambda s: s == STATUS_2)
        self.assertEqual(self.ns.sysctl("net.ipv4.neigh.eth0.proxy_delay"), 0)

    def test_foreign_events_are_dropped(self):
        d = self.start_converged()
        n = d.passes()
        batch = []
        for i in range(200):
            batch.append(f"route add 10.99.{i}.0/24 via 192.168.10.1 dev eth0 proto static")
        for i in range(200):
            batch.append(f"route del 10.99.{i}.0/24 via 192.168.10.1 dev eth0 proto static")
        batch.append("link add other0 type veth peer name other1")
        batch.append("link set other0 up")
        batch.append("link del other0")
        self.ns.run("ip", "-batch", "-", input="\n".join(batch) + "\n")
        self.assertTrue(stays(lambda: d.passes() == n, 0.5), d.stderr())
        # Nor does a foreign route inside a pool in main: it wins by lookup while ours
        # stands by (DESIGN.md section 3.2), so BIRD coming and going starts no pass.
        self.ns.ip("route", "add", cu.EXTRA_BLOCK, "via", "192.168.10.12", "dev", "eth0", "proto", "bird")
        self.ns.ip("route", "add", cu.PEER_BLOCK, "via", "192.168.10.12", "dev", "eth0", "proto", "bird")
        self.ns.ip("route", "del", cu.PEER_BLOCK, "proto", "bird")
        self.assertTrue(stays(lambda: d.passes() == n, 0.5), d.stderr())
        # A rule of ours deleted by hand is: repaired.
        self.ns.ip("rule", "del", "pref", "32701", "proto", "211")
        cu.wait_until(lambda: "lookup 252 proto 211" in self.ns.run("ip", "rule", "show"),
                      what="our rule back")
        self.assertTrue(d.stderr_lines("repaired drift: add-rule"), d.stderr())

    def test_bgp_route_wins_by_lookup_ours_stands_by(self):
        d = self.start_converged()
        n = d.passes()
        self.ns.ip("route", "add", cu.PEER_BLOCK, "via", "192.168.10.12", "dev", "eth0", "proto", "bird")
        self.assertTrue(stays(lambda: d.passes() == n and self.ns.route_summary() == WANT_2, 0.5), d.stderr())
        self.assertIn(cu.PEER_BLOCK, self.ns.routes(proto="bird"))
        d.notify.wait_status(lambda s: s == STATUS_2)  # still wanted, ours in place
        self.ns.ip("route", "del", cu.PEER_BLOCK, "proto", "bird")
        self.assertTrue(stays(lambda: d.passes() == n and self.ns.route_summary() == WANT_2, 0.5), d.stderr())

    def settings(self, resync):
        return f"nodeName: node1\nuplink: auto\nresources:\n  - {self.fx.res}\nresyncSeconds: {resync}\n"

    def assert_delay_drift_repaired(self, d, within):
        """proxy_delay raises no rtnetlink event: only the periodic re-check repairs it."""
        self.ns.sysctl_set("net.ipv4.neigh.eth0.proxy_delay", 50)
        cu.wait_until(lambda: self.ns.sysctl("net.ipv4.neigh.eth0.proxy_delay") == 0, timeout=within,
                      what="the proxy delay set by hand repaired by the periodic re-check")

    def test_resync_after_invalid_first_configuration(self):
        # Issue 14: the timer was armed only after the first pass, which had no model.
        cu.write_file(self.fx.config, self.settings(2))
        cu.write_file(self.fx.path("10-pools.yaml"), BAD_POOL)
        d = self.start().wait_ready()
        d.notify.wait_status("waiting for a valid configuration")
        cu.write_renamed(self.fx.path("10-pools.yaml"), cu.POOL)
        d.notify.wait_status(lambda s: s == STATUS_2)
        self.wait_idle(d)
        self.assert_delay_drift_repaired(d, within=10)

    def test_resync_seconds_changed_at_run_time(self):
        # Issue 14: a new resyncSeconds waited for the old timer (an hour here).
        cu.write_file(self.fx.config, self.settings(3600))
        d = self.start_converged()
        n = d.stderr_lines("configuration reloaded")
        cu.write_renamed(self.fx.config, self.settings(2))
        cu.wait_until(lambda: len(d.stderr_lines("configuration reloaded")) > len(n), what="the reload")
        self.wait_idle(d)
        self.assert_delay_drift_repaired(d, within=10)


    def test_event_socket_overrun_resyncs(self):
        d = self.start_converged()
        d.send(signal.SIGSTOP)
        try:
            # Far more notifications than the 8 MiB event socket holds, then a
            # deletion that is lost with them.
            lines = []
            for i in range(60000):
                lines.append(f"route add 10.{64 + i // 65536}.{(i // 256) % 256}.{i % 256}/32 dev lan0")
            self.ns.run("ip", "-batch", "-", input="\n".join(lines) + "\n")
            self.ns.ip("route", "flush", "dev", "lan0")
            self.ns.ip("route", "del", cu.OWN_BLOCK, "table", str(cu.TABLE))
        finally:
            d.send(signal.SIGCONT)
        self.wait_routes(WANT_2, timeout=30)
        self.assertTrue(d.stderr_lines("overrun"), d.stderr()[-2000:])


class TestRuntimeRecord(DaemonCase):
    def test_damaged_record_is_an_error_and_kept(self):
        # Issue 14: a record that does not parse is an error in the log (the journal
        # under systemd) and in STATUS=, kept as it is; routes still converge, the
        # uplink's settings are left alone.
        text = "ifname=eth0\nproxy_arp=banana\n"
        cu.write_file(os.path.join(self.fx.run, "state"), text)
        d = self.start().wait_ready()
        status = d.notify.wait_status(lambda s: "damaged" in s or "does not parse" in s)
        self.assertIn("line 2 does not parse", status)
        self.wait_routes(WANT_2)
        self.wait_idle(d)
        self.assertEqual(len(d.stderr_lines("error: runtime record")), 1, d.stderr())
        self.assertEqual(self.ns.proxy_arp(), 0, "proxy_arp set with no record to restore it from")
        with open(os.path.join(self.fx.run, "state")) as f:
            self.assertEqual(f.read(), text)
        # The operator removes it: the daemon records the uplink's values and goes on.
        os.unlink(os.path.join(self.fx.run, "state"))
        d.send(signal.SIGHUP)
        cu.wait_until(lambda: self.ns.proxy_arp() == 1, what="proxy_arp=1 once the record is gone")
        d.notify.wait_status(lambda s: s == STATUS_2)


class TestStopAndRestart(DaemonCase):
    def test_sigterm_leaves_host(self):
        d = self.start_converged(watchdog_usec=1000000)
        before = (self.ns.route_summary(), self.ns.proxy_arp())
        since = d.notify.count()
        t0 = time.monotonic()
        self.assertEqual(d.stop(signal.SIGTERM, timeout=5), 0, d.stderr())
        self.assertLess(time.monotonic() - t0, cu.scaled(2.0), "SIGTERM exits promptly")
        self.assertIn("STOPPING", [k for _, f, _ in d.notify.snapshot(since) for k in f])
        self.assertEqual((self.ns.route_summary(), self.ns.proxy_arp()), before)
        self.assertEqual(self.ns.sysctl("net.ipv4.neigh.eth0.proxy_delay"), 0)
        self.assertTrue(os.path.exists(os.path.join(self.fx.run, "state")))

    def test_sigint_leaves_host(self):
        d = self.start_converged()
        self.assertEqual(d.stop(signal.SIGINT, timeout=5), 0, d.stderr())
        self.assertEqual(self.ns.route_summary(), WANT_2)
        self.assertEqual(self.ns.proxy_arp(), 1)

    def test_restart_adopts_routes(self):
        d = self.start_converged()
        self.assertEqual(d.stop(), 0)
        mon_path = os.path.join(self.fx.dir, "monitor")
        with open(mon_path, "w") as out:
            mon = subprocess.Popen(["stdbuf", "-oL", "ip", "-n", self.ns.name, "monitor", "route"], stdout=out,
                                   stderr=subprocess.STDOUT)
        try:
            def seen(text):
                with open(mon_path) as f:
                    return text in f.read()
            # Markers bracket the restart so the monitor is known to be listening
            # (it may subscribe only after the first one: repeat it until seen).
            def marker():
                self.ns.ip("route", "add", "198.51.100.0/24", "via", "192.168.10.1", "dev", "eth0")
                self.ns.ip("route", "del", "198.51.100.0/24")
                return seen("198.51.100.0/24")
            cu.wait_until(marker, interval=0.1, what="the monitor to start")
            d2 = self.start_converged()
            self.assertEqual(len(d2.stderr_lines("reconciled: 0 changes")), 1, d2.stderr())
            self.ns.ip("route", "add", "198.51.101.0/24", "via", "192.168.10.1", "dev", "eth0")
            cu.wait_until(lambda: seen("198.51.101.0/24"), what="the closing marker")
        finally:
            mon.terminate()
            mon.wait()
        with open(mon_path) as f:
            events = f.read()
        for dst in (cu.OWN_BLOCK, cu.PEER_BLOCK):
            self.assertNotIn(dst, events, f"the restarted daemon touched {dst}:\n{events}")
        self.assertEqual(self.ns.route_summary(), WANT_2)


class TestFilesDeltaEquivalence(DaemonCase):
    """Issue 16: the files source reads only the files that changed and updates the
    model in place (or merges it from every file's record); after random sequences of
    node files rewritten (blocks claimed, moved, released; IPAM blocks with borrowed
    addresses; another node's address moved) the host must be what the full path
    (--once, which reads every file) makes of the same files. CU_SEED=N repeats a run."""

    SLOTS = [f"192.168.10.{128 + 16 * i}/28" for i in range(2, 8)]
    NODES = ["node1", "node2", "node3", "node4"]
    ADDRS = ["192.168.10.13/24", "192.168.10.23/24", "192.168.20.4/24"]

    def node_file(self, node, addr, blocks, ipam):
        """A node's file: its Node (node3, node4: node1 and node2 are in 20-nodes.yaml),
        its BlockAffinities, and IPAM blocks whose addresses other nodes host."""
        docs = []
        if addr:
            docs.append(f"apiVersion: projectcalico.org/v3\nkind: Node\nmetadata:\n  name: {node}\nspec:\n"
                        f"  bgp:\n    ipv4Address: {addr}\n")
        docs += [cu.affinity(node, c) for c in sorted(blocks)]
        for c in sorted(ipam):
            hosts = ipam[c]
            allocs = "".join(f"  - {i}\n" if i is not None else "  - null\n" for i in
                             [0] + [k + 1 if h else None for k, h in enumerate(hosts)])
            attrs = "".join(f"  - secondary:\n      node: {h or node}\n" for h in [node] + hosts)
            docs.append(f"apiVersion: crd.projectcalico.org/v1\nkind: IPAMBlock\nmetadata:\n"
                        f"  name: {c.replace('.', '-').replace('/', '-')}\nspec:\n  affinity: host:{node}\n"
                        f"  allocations:\n{allocs}  attributes:\n{attrs}  cidr: {c}\n")
        return "---\n".join(docs) if docs else "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: none\n"

    def write_node(self, node, st):
        cu.write_renamed(self.fx.path(f"40-{node}.yaml"),
                         self.node_file(node, st["addr"].get(node), [c for c, o in st["owner"].items() if o == node],
                                        {c: h for c, h in st["ipam"].items() if st["owner"].get(c) == node}))

    def random_step(self, rng, st):
        op = rng.randrange(10)
        owned = sorted(c for c, o in st["owner"].items() if o)
        if op <= 1 and owned:  # released
            c = rng.choice(owned)
            node = st["owner"].pop(c)
            st["ipam"].pop(c, None)
            self.write_node(node, st)
        elif 2 <= op <= 4 and owned:  # borrowed addresses (hosts of .1, .2, .3 of the block)
            c = rng.choice(owned)
            st["ipam"][c] = [rng.choice(self.NODES + [None]) for _ in range(3)]
            self.write_node(st["owner"][c], st)
        elif op == 5:  # another node's address moved
            node = rng.choice(["node3", "node4"])
            st["addr"][node] = rng.choice(self.ADDRS)
            self.write_node(node, st)
        else:  # a block claimed, or moved to another node (both files rewritten)
            c, new = rng.choice(self.SLOTS), rng.choice(["node2", "node3", "node4"])
            old = st["owner"].get(c)
            st["owner"][c] = new
            if old != new:
                st["ipam"].pop(c, None)
            if old and old != new:
                self.write_node(old, st)
            self.write_node(new, st)

    def test_files_delta_equal_full_once(self):
        seed = int(os.environ.get("CU_SEED", str(time.time_ns() % 1000000)))
        rng = random.Random(seed)
        st = {"owner": {}, "ipam": {}, "addr": {"node3": "192.168.10.13/24", "node4": "192.168.20.4/24"}}
        for node in ("node2", "node3", "node4"):
            self.write_node(node, st)
        d = self.start_converged()
        for seq in range(4):
            for _ in range(8):
                self.random_step(rng, st)
                time.sleep(rng.choice([0, 0.05, 0.3, 0.5]))
            time.sleep(cu.scaled(0.5))
            self.wait_idle(d, quiet=1.0, timeout=30)
            state = self.ns.route_summary()
            r = subprocess.run(["ip", "netns", "exec", self.ns.name, "env", f"RUNTIME_DIRECTORY={self.fx.run}",
                                *cu.DAEMON_WRAPPER, cu.DAEMON, "--config", self.fx.config, "--once"],
                               stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=cu.scaled(120))
            self.assertEqual(r.returncode, 0, f"seed {seed}, sequence {seq}:\n{r.stdout}{r.stderr}")
            self.assertIn("0 changes, 0 failed", r.stdout,
                          f"seed {seed}, sequence {seq}: the full path differs from the daemon's host:\n"
                          f"{r.stdout}\n--- daemon:\n{d.stderr()[-6000:]}")
            self.assertEqual(self.ns.route_summary(), state, f"seed {seed}, sequence {seq}")
        deltas = [p for p in d.stderr_lines("reconcile pass (") if "; delta pass over" in p]
        self.assertTrue(deltas, f"seed {seed}: no delta pass ran:\n{d.stderr()[-4000:]}")
        sys.stderr.write(f"[seed {seed}: {len(deltas)} delta passes, {len(d.stderr_lines('reconcile pass'))} "
                         f"passes in all]\n")

    def test_first_change_is_a_delta_pass(self):
        """The first change after the start is planned alone too: full passes keep what a
        delta pass needs whenever the source can update in place (it waited for a first
        update in place, so the first change of every run was a full pass)."""
        st = {"owner": {}, "ipam": {}, "addr": {"node3": "192.168.10.13/24", "node4": "192.168.20.4/24"}}
        for node in ("node2", "node3", "node4"):
            self.write_node(node, st)
        d = self.start_converged()
        n = len(d.stderr_lines("reconcile pass ("))
        st["owner"][self.SLOTS[0]] = "node3"
        self.write_node("node3", st)
        cu.wait_until(lambda: len(d.stderr_lines("reconcile pass (")) > n, 10, what="the change's pass")
        first = d.stderr_lines("reconcile pass (")[n]
        self.assertIn("; delta pass over 1 prefix", first, d.stderr()[-3000:])


class TestSlicedPass(DaemonCase):
    """Issue 16: the daemon's full pass plans and applies its routes by slices
    (CALICO_UNDERLAY_PASS_SLICE=3 here, 1,024 in production), so its memory does not
    grow with the number of changes. It must reach exactly the host --once makes, and
    report exactly what a pass in one piece reports: one line per change (debug past
    64 changes, info up to 64), "reconciled: N changes", the metrics by kind."""

    WIDE = ("apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: wide\nspec:\n"
            "  cidr: 10.60.0.0/16\n  blockSize: 28\n  ipipMode: Never\n  vxlanMode: Never\n"
            "  natOutgoing: false\n  nodeSelector: all()\n")
    NODE3 = ("apiVersion: projectcalico.org/v3\nkind: Node\nmetadata:\n  name: node3\nspec:\n"
             "  bgp:\n    ipv4Address: 192.168.10.13/24\n")

    def setUp(self):
        blocks = [("node2", f"10.60.{i // 16}.{(i % 16) * 16}/28") for i in range(100)]
        blocks += [("node3", f"10.60.{10 + i // 16}.{(i % 16) * 16}/28") for i in range(50)]
        blocks += [("node1", f"10.60.20.{i * 16}/28") for i in range(3)]
        self.fixture_args = {"files": {
            "10-pools.yaml": cu.POOL + "---\n" + self.WIDE,
            "20-nodes.yaml": cu.NODES + "---\n" + self.NODE3,
            "30-blocks.yaml": cu.BLOCKS + "---\n" + cu.affinities(*blocks)}}
        super().setUp()
        self.ns.add_vxlan()
        self.prom = os.path.join(self.fx.dir, "calico-underlay.prom")
        with open(self.fx.config) as f:
            settings = f.read()
        cu.write_file(self.fx.config, settings + f"metricsFile: {self.prom}\n")
        self.seed_routes(self.ns)

    def seed_routes(self, ns):
        """What the pass also finds: a route of ours to replace (wrong gateway), one
        no block wants (deleted), one of ours left in main (withdrawn after ours)."""
        ns.ip("route", "add", "10.60.0.0/28", "via", "192.168.10.13", "dev", "eth0", "proto", str(cu.PROTO),
              "table", str(cu.TABLE), "metric", "1024")
        ns.ip("route", "add", "10.60.200.0/28", "via", "192.168.10.12", "dev", "eth0", "proto",
              str(cu.PROTO), "table", str(cu.TABLE), "metric", "1024")
        ns.ip("route", "add", "10.60.201.0/28", "via", "192.168.10.12", "dev", "eth0", "proto",
              str(cu.PROTO))

    def once(self):
        return subprocess.run(["ip", "netns", "exec", self.ns.name, "env", f"RUNTIME_DIRECTORY={self.fx.run}",
                               *cu.DAEMON_WRAPPER, cu.DAEMON, "--config", self.fx.config, "--once"],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=cu.scaled(120))

    def metrics(self):
        out = {}
        with open(self.prom) as f:
            for line in f.read().splitlines():
                if line and not line.startswith("#"):
                    k, _, v = line.rpartition(" ")
                    out[k] = float(v)
        return out

    def pass_lines(self, d, since):
        """The action lines and the "reconciled:" line of the first pass logged after
        line `since` of stderr."""
        lines = d.stderr().splitlines()[since:]
        acts = []
        for line in lines:
            if "reconciled: " in line:
                return acts, line
            if re.match(r"(info|debug|error): (repaired drift: )?(add-|delete-|set-|remove-tunnel)", line):
                acts.append(line)
        self.fail(f"no reconciled line:\n{d.stderr()[-4000:]}")

    def test_sliced_pass_reaches_once(self):
        d = self.start(env={"CALICO_UNDERLAY_PASS_SLICE": "3"}).wait_ready()
        self.wait_idle(d)
        self.assertTrue(d.stderr_lines("CALICO_UNDERLAY_PASS_SLICE=3"), d.stderr()[-2000:])
        acts, done = self.pass_lines(d, 0)
        n = int(re.search(r"reconciled: (\d+) changes?, (\d+) failed", done).group(1))
        self.assertIn(", 0 failed", done)
        # 155 block routes (one a replace), 1 delete in our table, 1 in main, the
        # rules of two pools (4), proxy_arp, the VXLAN tunnel
        routes = [a for a in acts if "add-route" in a]
        self.assertEqual(len(routes), 155, "\n".join(acts))
        self.assertEqual(len([a for a in acts if "delete-route" in a]), 2, "\n".join(acts))
        self.assertEqual(len([a for a in routes if "10.60.0.0/28 " in a]), 1)
        self.assertEqual(len(acts), n, "one line per change:\n" + "\n".join(acts))
        self.assertTrue(n > 64)
        self.assertTrue(all(a.startswith("debug: ") for a in acts), "past 64 changes, debug lines")
        # in the order a pass in one piece has: settings, rules, routes (the deletes of
        # our table's unwanted route among them), main's stale route after ours, the tunnel
        kinds = [re.sub(r"^\w+: (repaired drift: )?", "", a).split(" ")[0] for a in acts]
        first_route = kinds.index("add-route")
        self.assertTrue(all(k.startswith("set-") or k == "add-rule" for k in kinds[:first_route]), kinds)
        self.assertEqual(kinds[-1], "remove-tunnel", kinds)
        self.assertIn("10.60.201.0/28", acts[-2], "main's stale route goes after ours are in")
        # the metrics count every change by kind, as the lines do
        cu.wait_until(lambda: os.path.exists(self.prom), what="the metrics file")
        m = self.metrics()
        for kind in set(kinds):
            self.assertEqual(m[f'calico_underlay_changes_total{{kind="{kind}"}}'], kinds.count(kind), kind)
        self.assertEqual(sum(v for k, v in m.items() if k.startswith("calico_underlay_failed_actions_total")), 0)
        self.assertEqual(m['calico_underlay_block_routes{state="ours"}'], 155)
        state = self.ns.route_summary()
        self.assertEqual(len(state), 155)
        # a short sliced pass: our routes deleted by hand, repaired, its lines at info
        since = len(d.stderr().splitlines())
        for i in range(5):
            self.ns.ip("route", "del", f"10.60.0.{16 * (i + 1)}/28", "table", str(cu.TABLE))
        self.wait_routes(state)
        self.wait_idle(d)
        acts, done = self.pass_lines(d, since)
        self.assertEqual(len(acts), int(re.search(r"reconciled: (\d+) changes?", done).group(1)))
        self.assertTrue(acts and all(a.startswith("info: repaired drift: add-route") for a in acts), acts)
        d.stop()
        # the full path finds nothing to do
        r = self.once()
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("0 changes, 0 failed", r.stdout, r.stdout)
        self.assertEqual(self.ns.route_summary(), state)

    def first_pass(self, ns, fx, slice_env):
        """A daemon's first pass in ns with fx: its action lines, its "reconciled:"
        line and the metrics it wrote (the daemon stopped after)."""
        d = cu.Daemon(ns, fx, env=slice_env)
        self.daemons.append(d)
        prom = os.path.join(fx.dir, "calico-underlay.prom")
        cu.wait_until(lambda: d.stderr_lines("reconciled: "), 20, what="the first pass")
        cu.wait_until(lambda: os.path.exists(prom), what="the metrics file")
        d.stop()
        acts, done = self.pass_lines(d, 0)
        self.prom = prom
        m = {k: v for k, v in self.metrics().items()
             if k.startswith(("calico_underlay_changes_total", "calico_underlay_failed_actions_total",
                              "calico_underlay_block_routes", "calico_underlay_drift"))}
        return acts, done, m

    def test_sliced_pass_with_failures_reports_as_one_piece(self):
        """Peers' routes refused by the kernel (the uplink's connected route removed:
        "Nexthop has invalid gateway"), this node's blackholes taken: slices that
        fail, after those of the settings and rules and before those that work. The daemon's pass by slices of 3 and the same
        pass in one piece, each in its own namespace, log the same lines in the same
        order, the same totals, and count the same metrics."""
        other_ns = cu.Netns()
        self.addCleanup(other_ns.close)
        other_ns.setup_uplink()
        other_ns.add_vxlan()
        self.seed_routes(other_ns)
        other_fx = cu.Fixture(**self.fixture_args)
        self.addCleanup(other_fx.close)
        with open(self.fx.config) as f:
            cu.write_file(other_fx.config, f.read().replace(self.fx.res, other_fx.res).replace(
                self.fx.dir, other_fx.dir))
        for ns in (self.ns, other_ns):
            ns.ip("route", "del", "192.168.10.0/24", "dev", "eth0", "table", "main")
        sliced = self.first_pass(self.ns, self.fx, {"CALICO_UNDERLAY_PASS_SLICE": "3"})
        whole = self.first_pass(other_ns, other_fx, {})
        failed = [a for a in sliced[0] if a.startswith("error: ")]
        self.assertTrue(len(failed) >= 100, "\n".join(sliced[0]))
        self.assertRegex(sliced[1], r"reconciled: \d+ changes, %d failed" % len(failed))
        self.assertEqual(sliced[0], whole[0])
        self.assertEqual(sliced[1], whole[1])
        self.assertEqual(sliced[2], whole[2])
        self.assertEqual(sliced[2]['calico_underlay_failed_actions_total{kind="add-route"}'], len(failed))


if __name__ == "__main__":
    cu.require_root()
    cu.install_signal_cleanup()
    unittest.main(verbosity=2)
