#!/usr/bin/env python3
"""Metrics for node_exporter's textfile collector (setting metricsFile), from the
real daemon on a real kernel, checked with the real tools:

- the file the daemon writes in daemon mode passes `promtool check metrics` (Debian
  `prometheus`) with no complaint, is mode 0644 whatever the umask, is replaced
  atomically (no temporary file is left, none ends in .prom), and says what the host
  is: underlay mode, proxy_arp on eth0 with delay 0, 2 block routes of ours, the
  vxlan.calico device gone, the changes by kind, the datastore up, timestamps;
- drift repairs are counted; a burst of passes is written at most every 5 s and the
  last state always lands;
- a real `prometheus-node-exporter` (every default collector off, the textfile
  collector pointed at the folder) serves the metrics on its /metrics, scraped on
  127.0.0.1 inside the test's network namespace;
- off by default (no metricsFile: no file), and the file goes when the setting goes.

Run: meson test -C BUILD metrics-textfile (root; tools from `sh tests/deps.sh metrics`).
Exit 77 when not root or a tool cannot be installed.
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cudaemon as cu  # noqa: E402

SRC = cu.SRCDIR
INTERVAL = 5.0  # METRICS_FILE_INTERVAL_USEC
STATUS = "underlay: 1 pool, proxy_arp on eth0, 2 block routes, tunnels removed"


def parse(text):
    """{'name{labels}': value} of the sample lines."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, _, v = line.rpartition(" ")
            out[k] = float(v)
    return out


class MetricsCase(unittest.TestCase):
    def setUp(self):
        self.ns = cu.Netns()
        self.addCleanup(self.ns.close)
        self.ns.setup_uplink()
        self.ns.add_vxlan()
        self.fx = cu.Fixture()
        self.addCleanup(self.fx.close)
        self.textdir = os.path.join(self.fx.dir, "textfile")
        os.makedirs(self.textdir)
        self.prom = os.path.join(self.textdir, "calico-underlay.prom")
        with open(self.fx.config) as f:
            self.settings = f.read()
        cu.write_file(self.fx.config, self.settings + f"metricsFile: {self.prom}\n")
        self.daemons = []

    def tearDown(self):
        errors = cu.close_daemons(self.daemons, False)
        if errors:
            raise AssertionError("\n\n".join(errors))

    def start(self):
        d = cu.Daemon(self.ns, self.fx)
        self.daemons.append(d)
        d.wait_ready()
        d.notify.wait_status(lambda s: s == STATUS)
        return d

    def metrics(self):
        with open(self.prom) as f:
            return f.read()

    def wait_metric(self, key, pred, timeout=10.0):
        def hit():
            try:
                v = parse(self.metrics()).get(key)
            except FileNotFoundError:
                return None
            return v is not None and pred(v)
        cu.wait_until(hit, cu.scaled(timeout), what=f"{key} in {self.prom}")
        return parse(self.metrics())

    def test_file_promtool_and_values(self):
        self.start()
        m = self.wait_metric("calico_underlay_pass_duration_seconds_count", lambda v: v >= 1)
        r = subprocess.run(["promtool", "check", "metrics"], input=self.metrics(), capture_output=True, text=True)
        self.assertEqual((r.returncode, r.stdout + r.stderr), (0, ""), "promtool check metrics")
        st = os.stat(self.prom)
        self.assertEqual(st.st_mode & 0o777, 0o644, "readable by the collector's user")
        self.assertEqual(os.listdir(self.textdir), ["calico-underlay.prom"], "no temporary file left")
        self.assertEqual(m["calico_underlay_underlay_mode"], 1)
        self.assertEqual(m['calico_underlay_proxy_arp{interface="eth0"}'], 1)
        self.assertEqual(m['calico_underlay_proxy_delay_seconds{interface="eth0"}'], 0)
        self.assertEqual(m['calico_underlay_block_routes{state="ours"}'], 2)
        self.assertEqual(m['calico_underlay_block_routes{state="conflicting"}'], 0)
        self.assertEqual(m['calico_underlay_tunnels_present'], 0, "vxlan.calico removed")
        self.assertEqual(m['calico_underlay_changes_total{kind="add-route"}'], 2)
        self.assertEqual(m['calico_underlay_changes_total{kind="remove-tunnel"}'], 1)
        self.assertEqual(m['calico_underlay_failed_actions_total{kind="add-route"}'], 0)
        self.assertEqual(m['calico_underlay_drift_repairs_total'], 0)
        self.assertEqual(m['calico_underlay_datastore_up{datastore="files"}'], 1)
        now = time.time()
        self.assertLess(abs(m["calico_underlay_last_success_timestamp_seconds"] - now), 30)
        self.assertLess(abs(m["calico_underlay_model_timestamp_seconds"] - now), 30)
        self.assertGreaterEqual(m["calico_underlay_model_age_seconds"], 0)

    def test_drift_counted_and_writes_rate_limited(self):
        self.start()
        self.wait_metric("calico_underlay_pass_duration_seconds_count", lambda v: v >= 1)
        mtimes = [os.stat(self.prom).st_mtime_ns]
        # Repairs every 0.3 s for 7 s: every one is a pass, the file changes at most
        # every 5 s, and the last repair lands in it.
        end = time.monotonic() + 7
        n = 0
        while time.monotonic() < end:
            self.ns.ip("route", "del", cu.PEER_BLOCK, "table", str(cu.TABLE), "proto", str(cu.PROTO))
            n += 1
            cu.wait_until(lambda: cu.PEER_BLOCK in self.ns.routes(),
                          cu.scaled(5), what="the route repaired")
            m = os.stat(self.prom).st_mtime_ns
            if m != mtimes[-1]:
                mtimes.append(m)
            time.sleep(0.3)
        m = self.wait_metric("calico_underlay_drift_repairs_total", lambda v: v == n, timeout=INTERVAL + 5)
        self.assertEqual(m['calico_underlay_changes_total{kind="add-route"}'], 2 + n)
        gaps = [(b - a) / 1e9 for a, b in zip(mtimes, mtimes[1:])]
        self.assertTrue(gaps, "the file was rewritten while repairs happened")
        self.assertTrue(all(g >= INTERVAL - 0.2 for g in gaps), f"writes {gaps} s apart, want >= {INTERVAL}")

    def test_node_exporter_serves_them(self):
        self.start()
        self.wait_metric("calico_underlay_underlay_mode", lambda v: v == 1)
        with socket.socket() as s:  # a free port number; the exporter binds it in the namespace
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        log = open(os.path.join(self.fx.dir, "node-exporter.log"), "w")
        exporter = subprocess.Popen(
            ["ip", "netns", "exec", self.ns.name, "prometheus-node-exporter", "--collector.disable-defaults",
             "--collector.textfile", f"--collector.textfile.directory={self.textdir}",
             f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=log)

        def stop():
            exporter.terminate()
            exporter.wait(10)
            log.close()
        self.addCleanup(stop)
        url = f"http://127.0.0.1:{port}/metrics"
        scrape = ["python3", "-c", f"import urllib.request;print(urllib.request.urlopen('{url}',timeout=2).read().decode())"]

        def scraped():
            r = subprocess.run(["ip", "netns", "exec", self.ns.name, *scrape], capture_output=True, text=True)
            return r.stdout if r.returncode == 0 else None
        body = cu.wait_until(scraped, 15, what=f"node_exporter on {url} (log: {log.name})")
        m = parse(body)
        self.assertEqual(m.get("calico_underlay_underlay_mode"), 1, body[-3000:])
        self.assertEqual(m.get('calico_underlay_block_routes{state="ours"}'), 2)
        self.assertEqual(m.get('calico_underlay_proxy_arp{interface="eth0"}'), 1)
        self.assertEqual(m.get("node_textfile_scrape_error"), 0, "the collector read the file without error")
        self.assertIn(f'node_textfile_mtime_seconds{{file="{self.prom}"}}', body)
        self.assertIn("# TYPE calico_underlay_pass_duration_seconds histogram", body)
        self.assertFalse([k for k in m if k.startswith("node_cpu") or k.startswith("node_network")],
                         "the other collectors are off")

    def test_off_by_default_and_removed_when_unset(self):
        cu.write_file(self.fx.config, self.settings)
        d = self.start()
        time.sleep(cu.scaled(0.5))
        self.assertEqual(os.listdir(self.textdir), [], "no metricsFile: no file")
        # Turned on by a settings change, then off again: the file comes and goes.
        cu.write_renamed(self.fx.config, self.settings + f"metricsFile: {self.prom}\n")
        self.wait_metric("calico_underlay_underlay_mode", lambda v: v == 1)
        cu.write_renamed(self.fx.config, self.settings)
        cu.wait_until(lambda: not os.path.exists(self.prom), cu.scaled(10), what="the file removed")
        self.assertEqual(os.listdir(self.textdir), [])
        self.assertIsNone(d.proc.poll())


def main():
    if os.geteuid() != 0:
        print("SKIP: needs root")
        return cu.SKIP
    if subprocess.run(["sh", os.path.join(SRC, "tests", "deps.sh"), "metrics"]).returncode != 0:
        print("SKIP: cannot install promtool and node_exporter (tests/deps.sh metrics)")
        return cu.SKIP
    for tool in ("promtool", "prometheus-node-exporter"):
        if not shutil.which(tool):
            print(f"SKIP: {tool} not found")
            return cu.SKIP
    cu.install_signal_cleanup()
    r = unittest.main(exit=False, verbosity=2)
    return 0 if r.result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
