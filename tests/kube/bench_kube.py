#!/usr/bin/env python3
"""Memory and time of the Kubernetes datastore at scale (not a test): the test API
server (kubeapi.py) holding N core Nodes (with the managedFields, status and
annotations a real kubelet writes) and M BlockAffinities on one /10 overlay pool,
and calico-underlayd --check reading it (peak RSS from /usr/bin/time), then the
daemon converging on it (VmHWM from /proc), then --changes BlockAffinity watch events
(each waited for in the kernel): the daemon's CPU per event and VmHWM after them.

Run: sudo python3 tests/kube/bench_kube.py --build BUILD [--nodes 5000] [--affinities 100000]
"""
import argparse
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cukube as ck  # noqa: E402
from cukube import cu  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--nodes", type=int, default=5000)
    ap.add_argument("--affinities", type=int, default=100000)
    ap.add_argument("--changes", type=int, default=20, help="BlockAffinity events after convergence (0: none)")
    a = ap.parse_args()
    daemon = os.path.join(a.build, "daemon", "calico-underlayd")
    cu.DAEMON = daemon  # the Daemon helper's too
    cu.require_root()
    ns = cu.Netns()
    ns.setup_uplink()
    fx = cu.Fixture(files={})
    try:
        pki = ck.make_pki(os.path.join(fx.dir, "pki"))
        api = ck.KubeAPI(ns, fx.dir, pki)
        ck.load_cluster(api)
        api.put("ippools", ck.ippool("overlay-big", "10.0.0.0/8", block_size=26, nat=True))
        t = time.monotonic()
        nodes = [ck.k8s_node(f"n{i:05d}", f"10.200.{i // 250}.{i % 250 + 1}/16") for i in range(a.nodes)]
        for i in range(0, len(nodes), 1000):
            api.put_many("nodes", nodes[i:i + 1000])
        bas = [ck.block_affinity(f"n{i % a.nodes:05d}", f"10.{i // 1024}.{i // 4 % 256}.{i % 4 * 64}/26")
               for i in range(a.affinities)]
        for i in range(0, len(bas), 5000):
            api.put_many("blockaffinities", bas[i:i + 5000])
        print(f"loaded {a.nodes} nodes, {a.affinities} affinities into the server in {time.monotonic() - t:.1f} s")
        kc = ck.kubeconfig(os.path.join(fx.etc, "kubeconfig"), api.url, pki, token=ck.TOKEN)
        cu.write_file(fx.config, f"nodeName: node1\nresyncSeconds: 0\ndatastore: kubernetes\nkubeconfig: {kc}\n"
                                 f"calicoctlConfig: {fx.etc}/none.cfg\n")
        t = time.monotonic()
        r = subprocess.run(["ip", "netns", "exec", ns.name, "/usr/bin/time", "-v", daemon, "--check", "--config",
                            fx.config], capture_output=True, text=True)
        rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr)
        print(f"--check: exit {r.returncode}, {time.monotonic() - t:.2f} s, peak RSS "
              f"{int(rss.group(1)) / 1024:.1f} MB" if rss else r.stderr[-2000:])
        print("  " + next((l for l in r.stdout.splitlines() if l.startswith("source:")), "(no source line)"))
        d = cu.Daemon(ns, fx)
        d.wait_ready(timeout=300)
        d.notify.wait_status("underlay", timeout=300)
        for i in range(int(os.environ.get("BENCH_SAMPLES", "0"))):
            with open(f"/proc/{d.pid}/status") as f:
                print("  sample", i, re.search(r"VmRSS:\s+(\d+)", f.read()).group(1), "kB", flush=True)
            time.sleep(1)
        if os.environ.get("BENCH_SMAPS"):
            subprocess.run(f"awk '/^[0-9a-f]/{{m=$0}} /^Rss:/{{if ($2>1000) print $2, m}}' /proc/{d.pid}/smaps", shell=True)
        time.sleep(2)
        with open(f"/proc/{d.pid}/status") as f:
            st = f.read()
        hwm = re.search(r"VmHWM:\s+(\d+)", st).group(1)
        rss_now = re.search(r"VmRSS:\s+(\d+)", st).group(1)
        print(f"daemon: converged, VmHWM {int(hwm) / 1024:.1f} MB, VmRSS {int(rss_now) / 1024:.1f} MB")
        # Watch events: node2's extra block (load_cluster()'s underlay pool, node2 on-link)
        # put and deleted in turn, each waited for in the kernel; then the peak again.
        if a.changes:
            ba = ck.block_affinity("node2", cu.EXTRA_BLOCK)

            def cpu_ms():
                with open(f"/proc/{d.pid}/stat") as f:
                    v = f.read().rsplit(")", 1)[1].split()
                return (int(v[11]) + int(v[12])) * 1000 / os.sysconf("SC_CLK_TCK")

            cpu0 = cpu_ms()
            t = time.monotonic()
            for i in range(a.changes):
                if i % 2 == 0:
                    api.put("blockaffinities", ba)
                else:
                    api.delete("blockaffinities", ba["metadata"]["name"])
                cu.wait_until(lambda: (cu.EXTRA_BLOCK.split("/")[0] in ns.ip("route", "show", "table", "all"))
                              == (i % 2 == 0), 120, what=f"change {i}")
            with open(f"/proc/{d.pid}/status") as f:
                hwm = re.search(r"VmHWM:\s+(\d+)", f.read()).group(1)
            passes = d.stderr_lines("reconcile pass (")
            print(f"daemon: after {a.changes} BlockAffinity events ({(time.monotonic() - t) / a.changes * 1e3:.0f} ms "
                  f"each, {(cpu_ms() - cpu0) / a.changes:.0f} ms of daemon CPU each, {sum('; delta pass over' in p for p in passes)} delta passes of {len(passes)}), "
                  f"VmHWM {int(hwm) / 1024:.1f} MB")
        if os.environ.get("BENCH_VERBOSE"):
            print("\n".join(l for l in d.stderr().splitlines() if "kubernetes" in l or "configuration" in l)[-3000:])
        d.close()
        api.close()
    finally:
        ns.close()
        fx.close()


if __name__ == "__main__":
    main()
