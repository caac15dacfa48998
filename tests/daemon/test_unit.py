#!/usr/bin/env python3
"""The systemd unit (DESIGN.md §5): `systemd-analyze verify` passes, `systemd-analyze
security --offline=true` rates it 2.0 or lower, and the daemon still does its job
under the unit's restrictions.

No systemd needs to run: the unit is verified offline, from a temporary copy whose
ExecStart= names the built binary (verify wants it to exist) with the man pages of
Documentation= on MANPATH. The last case reproduces the unit's sandbox by hand
inside a network namespace: a user of the DynamicUser= range with only the
capabilities of AmbientCapabilities=/CapabilityBoundingSet=, no new privileges,
a read-only file system except the runtime directory (ProtectSystem=strict),
read-only /proc/sys (ProtectKernelTunables=), and a seccomp filter built from the
unit's own SystemCallFilter= and RestrictAddressFamilies= lines.

Run: meson test -C BUILD unit-file (or: sudo DAEMON=... python3 tests/daemon/test_unit.py -v).
Exit 77 (skipped) without systemd-analyze; the sandbox case also needs root,
setpriv and libseccomp.
"""
import ctypes.util
import os
import re
import shutil
import signal
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cudaemon as cu  # noqa: E402

UNIT = os.path.join(cu.SRCDIR, "units", "calico-underlay.service")
MAN = os.path.join(cu.SRCDIR, "man")
SANDBOX_UID = 61876  # inside systemd's DynamicUser= range (61184-65519)
EXPOSURE_MAX = 2.0


def parse_unit(path):
    """{key: [values]} of the [Service] section (keys may repeat)."""
    out, section = {}, None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = line.strip("[]")
                continue
            if section == "Service" and "=" in line:
                k, v = line.split("=", 1)
                out.setdefault(k.strip(), []).append(v.strip())
    return out


def syscall_groups():
    """{"@group": [members]} from `systemd-analyze syscall-filter`."""
    out = subprocess.run(["systemd-analyze", "syscall-filter"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True, check=True).stdout
    groups, cur = {}, None
    for line in out.splitlines():
        if line.startswith("@"):
            cur = groups.setdefault(line.strip(), [])
        elif line.startswith(" ") and cur is not None:
            item = line.strip()
            if item and not item.startswith("#"):
                cur.append(item)
        elif not line.strip():
            cur = None
    return groups


def expand(names, groups, seen=None):
    seen = set() if seen is None else seen
    out = set()
    for n in names:
        if n.startswith("@"):
            if n in seen:
                continue
            seen.add(n)
            out |= expand(groups.get(n, []), groups, seen)
        else:
            out.add(n)
    return out


def allowed_syscalls(unit):
    """The allow-list systemd builds: the first SystemCallFilter= allows (plus
    @default, which systemd always adds to an allow-list), later ~ entries deny."""
    groups = syscall_groups()
    allow = None
    for entry in unit.get("SystemCallFilter", []):
        deny = entry.startswith("~")
        names = entry.lstrip("~").split()
        if allow is None:
            if deny:
                raise unittest.SkipTest("deny-list filters are not reproduced")
            allow = expand(["@default"], groups)
        if deny:
            allow -= expand(names, groups)
        else:
            allow |= expand(names, groups)
    return allow


def unit_copy(tmp):
    """The unit with ExecStart= pointing at the built daemon, and a MANPATH holding
    its man pages in man5/ and man8/."""
    with open(UNIT) as f:
        text = f.read()
    text = re.sub(r"(?m)^ExecStart=\S+", f"ExecStart={cu.DAEMON}", text)
    path = os.path.join(tmp, "calico-underlay.service")
    with open(path, "w") as f:
        f.write(text)
    for page in os.listdir(MAN):
        m = re.search(r"\.(\d)$", page)
        if m:
            d = os.path.join(tmp, "man", "man" + m.group(1))
            os.makedirs(d, exist_ok=True)
            shutil.copy(os.path.join(MAN, page), d)
    return path, os.path.join(tmp, "man")


class TestUnitFile(unittest.TestCase):
    def setUp(self):
        self.tmp = cu.make_tmpdir()
        self.addCleanup(cu.remove_tmpdir, self.tmp)
        self.unit, self.manpath = unit_copy(self.tmp)

    def test_verify(self):
        env = dict(os.environ, MANPATH=self.manpath, SYSTEMD_LOG_LEVEL="warning")
        r = subprocess.run(["systemd-analyze", "verify", self.unit], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        self.assertEqual(r.returncode, 0, r.stdout)
        complaints = [l for l in r.stdout.splitlines() if "calico-underlay.service" in l]
        self.assertEqual(complaints, [], r.stdout)

    def test_security_exposure(self):
        r = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager", self.unit],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", r.stdout)
        self.assertTrue(m, r.stdout)
        exposure = float(m.group(1))
        print(f"exposure {exposure}", file=sys.stderr)
        self.assertLessEqual(exposure, EXPOSURE_MAX, r.stdout)

    def test_unit_keeps_what_the_daemon_needs(self):
        u = parse_unit(UNIT)
        self.assertEqual(u.get("Type"), ["notify"])
        self.assertIn("CAP_NET_ADMIN", " ".join(u.get("CapabilityBoundingSet", [])))
        self.assertEqual(sorted(" ".join(u.get("RestrictAddressFamilies", [])).split()), ["AF_NETLINK", "AF_UNIX"])
        self.assertEqual(u.get("ProtectKernelTunables"), ["yes"])
        self.assertEqual(u.get("RuntimeDirectoryPreserve"), ["yes"])
        self.assertNotIn("yes", u.get("PrivateNetwork", []) + u.get("PrivateUsers", []),
                         "the daemon must act on the host's network namespace")
        self.assertTrue(any("kill -HUP" in v for v in u.get("ExecReload", [])))


class TestSandboxedDaemon(unittest.TestCase):
    """The daemon under the unit's restrictions, reproduced without systemd."""

    def setUp(self):
        if os.geteuid() != 0:
            self.skipTest("needs root")
        for tool in ("setpriv", "mount"):
            if not shutil.which(tool):
                self.skipTest(f"needs {tool}")
        if not ctypes.util.find_library("seccomp"):
            self.skipTest("needs libseccomp")
        self.u = parse_unit(UNIT)
        self.ns = cu.Netns()
        self.addCleanup(self.ns.close)
        self.ns.setup_uplink()
        self.fx = cu.Fixture()
        self.addCleanup(self.fx.close)
        self.daemon = None

    def tearDown(self):
        if self.daemon:
            if self._outcome.result.errors or self._outcome.result.failures:
                sys.stderr.write(f"--- daemon stderr:\n{self.daemon.stderr()}\n")
            self.daemon.close()

    def caps(self):
        amb = " ".join(self.u.get("AmbientCapabilities", [])).split()
        bnd = " ".join(self.u.get("CapabilityBoundingSet", [])).split()
        fmt = lambda caps: ",".join(["-all"] + ["+" + c.lower().replace("cap_", "") for c in caps])
        return fmt(amb), fmt(bnd)

    def test_daemon_works_sandboxed(self):
        if cu.DAEMON_WRAPPER:
            # valgrind cannot start in the sandbox (it writes its files to the read-only
            # /tmp), and its own system calls are not the unit's to allow.
            self.skipTest("the daemon runs under DAEMON_WRAPPER, which the unit's sandbox does not admit")
        self.assertEqual(self.u.get("DynamicUser"), ["yes"], "the sandbox below assumes DynamicUser=yes")
        syscalls = os.path.join(self.fx.dir, "syscalls")
        with open(syscalls, "w") as f:
            f.write("\n".join(sorted(allowed_syscalls(self.u))) + "\n")
        fams = {"AF_UNIX": 1, "AF_NETLINK": 16}
        families = ",".join(str(fams[a]) for a in " ".join(self.u["RestrictAddressFamilies"]).split())
        amb, bnd = self.caps()
        os.chown(self.fx.run, SANDBOX_UID, SANDBOX_UID)
        # In the private mount namespace `ip netns exec` gives us: the runtime folder
        # stays writable, everything else read-only (ProtectSystem=strict), and
        # /proc/sys read-only (ProtectKernelTunables=yes).
        prelude = (f"mount --bind {self.fx.run} {self.fx.run} && "
                   "mount -o remount,bind,ro / && "
                   "mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys && ")
        wrapper = ["setpriv", f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_UID}", "--clear-groups",
                   "--no-new-privs", f"--inh-caps={amb}", f"--ambient-caps={amb}", f"--bounding-set={bnd}",
                   sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "sandbox_exec.py"),
                   "--syscalls", syscalls, "--families", families, "--"]
        # ASan's runtime asks for things the filter refuses (setrlimit for core
        # dumps, the personality flags): keep it from trying.
        env = {"ASAN_OPTIONS": "detect_leaks=0:disable_coredump=0:abort_on_error=1"}
        d = self.daemon = cu.Daemon(self.ns, self.fx, prelude=prelude, wrapper=wrapper, env=env)
        d.wait_ready()
        status = d.notify.wait_status(lambda s: s.startswith("underlay:"))
        self.assertEqual(status, "underlay: 1 pool, proxy_arp on eth0, 2 block routes, tunnels removed")
        cu.wait_until(lambda: self.ns.proxy_arp() == 1, what="proxy_arp=1 set through rtnetlink")
        want = ["192.168.10.128/28 blackhole - - 1024", "192.168.10.144/28 unicast 192.168.10.12 eth0 1024"]
        cu.wait_until(lambda: self.ns.route_summary() == want, what="the block routes")
        self.assertEqual(os.stat(os.path.join(self.fx.run, "state")).st_uid, SANDBOX_UID)
        with open(f"/proc/{d.pid}/status") as f:
            st = f.read()
        self.assertRegex(st, rf"Uid:\s+{SANDBOX_UID}\s")
        self.assertRegex(st, r"Seccomp:\s+2")
        self.assertRegex(st, r"CapEff:\s+0000000000001000")  # CAP_NET_ADMIN alone
        # Drift repair and reload work as well.
        self.ns.ip("route", "del", "192.168.10.128/28", "table", str(cu.TABLE))
        self.ns.sysctl_set("net.ipv4.conf.eth0.proxy_arp", 0)
        cu.wait_until(lambda: self.ns.route_summary() == want and self.ns.proxy_arp() == 1, what="repairs")
        since = d.notify.count()
        d.send(signal.SIGHUP)
        d.notify.wait_for("READY", since=since)
        self.assertEqual(d.stop(), 0, d.stderr())
        err = d.stderr()
        for bad in ("Operation not permitted", "Permission denied", "buffer is only", "error:", "failed:", "warning:"):
            self.assertNotIn(bad, err, err)


def main():
    if not shutil.which("systemd-analyze"):
        print("SKIP: systemd-analyze is missing", file=sys.stderr)
        sys.exit(cu.SKIP)
    cu.install_signal_cleanup()
    unittest.main(verbosity=2)


if __name__ == "__main__":
    main()
