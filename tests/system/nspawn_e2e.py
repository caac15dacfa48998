#!/usr/bin/env python3
"""Proof on the real thing: the Debian package, installed on a running node, under a
real systemd (PID 1 in a systemd-nspawn container with a private network), seen the
way an operator sees it.

The package is built from the working tree with `dpkg-buildpackage -us -uc -b` (in a
copy of the tree, DEB_BUILD_OPTIONS=nocheck: the unit suite runs elsewhere) and
must be clean under lintian (no error, no warning). The container is a Debian
bookworm rootfs (debootstrap --variant=minbase with exactly the package's Depends,
cached as a tarball under $CU_TEST_CACHE, default /var/cache/calico-underlay-test).
A setup unit builds the node's network at boot: a veth uplink eth0 with
192.168.10.11/24 and a default route, forwarding on, and a vxlan.calico device.
The container boots (`--register=no --keep-unit --private-network --volatile=overlay`)
and every check runs from the host through `nsenter -t <container init> -a`:

 0. `dpkg -i` on the running node: its Depends are met by the rootfs, the unit is
    installed but neither enabled nor started, the host is untouched (no route of
    ours, proxy_arp as it was, vxlan.calico still there), and systemd's trigger
    made `journalctl --list-catalog` list every MESSAGE_ID; then the operator's
    act: the bundled example as /etc/calico-underlay (config.yaml and its
    resources.d) and `systemctl enable --now calico-underlay`;
 1. the unit is active (Type=notify: READY=1 came), no restarts;
 2. `systemctl show -p StatusText` is the one-line summary;
 3. the journal (`journalctl -u calico-underlay -o json`) has the documented
    MESSAGE_IDs with their fields (UNDERLAY_ROUTE=, INTERFACE=, UNDERLAY_TUNNEL=,
    UNDERLAY_VALUE=, UNDERLAY_FINDING=), and field filters answer as the man page says;
 4. the kernel: routes proto 211, proxy_arp=1, proxy_delay 0, vxlan.calico gone,
    the runtime record of the original values;
 5. the sandbox is live (dynamic user, only CAP_NET_ADMIN, no new privileges,
    seccomp, no /proc/sys in its mount namespace), so 1-4 were done under it;
 6. the man pages are installed and `calico-underlayd --check` says ready;
 7. drift (our route deleted, proxy_arp reset by hand) is repaired at once;
 8. a resource file added and removed (atomic rename) is followed: route and journal;
 9. a bad file is rejected (journal with file:line:column, StatusText), and a pool
    change made while it is there changes nothing;
10. once the bad file goes, the valid pool change applies: overlay, routes withdrawn,
    proxy_arp and its delay restored from the record;
11. the pool restored: underlay again;
12. `systemctl reload` and `systemctl restart` keep everything in place: no route,
    link (a proxy_arp change raises one) or netconf event at all, watched with
    `ip monitor route netconf link`; the new process makes 0 changes; the runtime
    record is preserved;
13. watchdog keep-alives: with WatchdogSec=2s (a runtime drop-in) the daemon lives on
    and systemd records its pings;
14. no action failed, nothing logged at err or worse but configuration rejections;
15. `journalctl -x` explains the daemon's entries from the catalog; the metrics
    file (metricsFile in /run/calico-underlay) is written under the sandbox and
    readable by another user;
16. `dpkg --purge`: the daemon is stopped, the host keeps its routes, proxy_arp and
    delay, the runtime record stays, the operator's files stay, the package's go.

Exit 0 pass, 1 fail, 77 skipped (not root, or debootstrap / systemd-nspawn /
dpkg-buildpackage cannot be installed or the Debian mirror cannot be reached).
Usage: sudo tests/system/nspawn_e2e.py [--builddir DIR] [--keep]
"""
import argparse
import fcntl
import glob
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CACHE = os.environ.get("CU_TEST_CACHE", "/var/cache/calico-underlay-test")
SUITE = "bookworm"
SKIP = 77
UNIT = "calico-underlay.service"
RES = "/etc/calico-underlay/resources.d"

# calico-underlayd(8), LOGGING
MID = {
    "started": "5d0b1c6e2a8f4f0c9a3d7e21b4c8f001",
    "reconciled": "5d0b1c6e2a8f4f0c9a3d7e21b4c8f002",
    "route_added": "5d0b1c6e2a8f4f0c9a3d7e21b4c8f003",
    "route_removed": "5d0b1c6e2a8f4f0c9a3d7e21b4c8f004",
    "proxy_arp": "5d0b1c6e2a8f4f0c9a3d7e21b4c8f005",
    "tunnel": "5d0b1c6e2a8f4f0c9a3d7e21b4c8f006",
    "rejected": "5d0b1c6e2a8f4f0c9a3d7e21b4c8f007",
    "drift": "5d0b1c6e2a8f4f0c9a3d7e21b4c8f008",
    "conflict": "5d0b1c6e2a8f4f0c9a3d7e21b4c8f009",
    "failed": "5d0b1c6e2a8f4f0c9a3d7e21b4c8f00a",
    "finding": "5d0b1c6e2a8f4f0c9a3d7e21b4c8f00b",
    "reloaded": "5d0b1c6e2a8f4f0c9a3d7e21b4c8f00c",
    "stopped": "5d0b1c6e2a8f4f0c9a3d7e21b4c8f00d",
}

STATUS_UNDERLAY = "underlay: 1 pool, proxy_arp on eth0, 2 block routes, tunnels removed"
STATUS_OVERLAY = "overlay: no underlay pool applies, tunnels removed"
# What the example wants on node1: its own block blackholed, node2's routed directly.
ROUTES = {
    "192.168.10.128/28": ("blackhole", None, None),
    "192.168.10.144/28": ("unicast", "192.168.10.12", "eth0"),
}
ORIGINAL_DELAY_JIFFIES = "80"  # the kernel default, 800 ms (USER_HZ units in /proc)

# The node's network, ordered before the daemon (After=network-online.target).
SETUP_UNIT = """[Unit]
Description=calico-underlay system test: uplink eth0 and a vxlan.calico device
DefaultDependencies=no
After=systemd-journald.socket
Before=calico-underlay.service network-online.target
Wants=network-online.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/sbin/ip link set lo up
ExecStart=/sbin/ip link add eth0 type veth peer name lan0
ExecStart=/sbin/ip addr add 192.168.10.11/24 dev eth0
ExecStart=/sbin/ip link set eth0 up
ExecStart=/sbin/ip link set lan0 up
ExecStart=/sbin/ip route add default via 192.168.10.1 dev eth0
ExecStart=/sbin/ip link add vxlan.calico type vxlan id 4096 dstport 4789 dev eth0
ExecStart=/sbin/ip addr add 192.168.10.129/32 dev vxlan.calico
ExecStart=/sbin/ip link set vxlan.calico up
ExecStart=/bin/sh -c 'echo 1 > /proc/sys/net/ipv4/ip_forward'

[Install]
WantedBy=multi-user.target
"""

NEW_BLOCK = """apiVersion: crd.projectcalico.org/v1
kind: BlockAffinity
metadata:
  name: node2-192-168-10-176-28
spec:
  cidr: 192.168.10.176/28
  deleted: "false"
  node: node2
  state: confirmed
"""

# Line 7, column 14: the value of blockSize.
BAD_FILE = """apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: broken
spec:
  cidr: 10.99.0.0/16
  blockSize: many
"""
BAD_POS = "50-bad.yaml:7:14"


class Skip(Exception):
    pass


def log(msg):
    print(msg, flush=True)


def sh(cmd, check=True, **kw):
    return subprocess.run(cmd, check=check, text=True, capture_output=True, **kw)


def wait_for(what, fn, timeout=10.0, interval=0.05):
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = fn()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what} (last: {last!r})")
        time.sleep(interval)


def check(cond, what):
    if not cond:
        raise AssertionError(what)


# ---------------------------------------------------------------- preparation

def install_tools():
    r = subprocess.run(["sh", os.path.join(TOP, "tests", "deps.sh"), "nspawn"], text=True)
    if r.returncode != 0:
        raise Skip("cannot install debootstrap/systemd-container (tests/deps.sh nspawn)")
    for tool in ("debootstrap", "systemd-nspawn", "nsenter", "tar", "dpkg-buildpackage", "lintian"):
        if not shutil.which(tool):
            raise Skip(f"{tool} not found")


def tree_files():
    """The working tree as the repository has it: tracked and new files, not ignored
    ones (build directories), so the package is built from what would be committed."""
    r = sh(["git", "-C", TOP, "ls-files", "-z", "--cached", "--others", "--exclude-standard"], check=False)
    if r.returncode == 0:
        return [f for f in r.stdout.split("\0") if f and os.path.lexists(os.path.join(TOP, f))]
    out = []
    for dirpath, dirs, files in os.walk(TOP):
        dirs[:] = [d for d in dirs if not d.startswith(("build", ".git", "obj-"))]
        out += [os.path.relpath(os.path.join(dirpath, f), TOP) for f in files]
    return out


def build_package(builddir):
    """dpkg-buildpackage -us -uc -b in a fresh copy of the tree (it writes into
    debian/ and next to the tree); returns the .deb. The build is logged to
    BUILDDIR/dpkg-buildpackage.log."""
    shutil.rmtree(builddir, ignore_errors=True)
    src = os.path.join(builddir, "calico-underlay")
    os.makedirs(src)
    for f in tree_files():
        os.makedirs(os.path.dirname(os.path.join(src, f)), exist_ok=True)
        shutil.copy2(os.path.join(TOP, f), os.path.join(src, f), follow_symlinks=False)
    logf = os.path.join(builddir, "dpkg-buildpackage.log")
    env = dict(os.environ, DEB_BUILD_OPTIONS="nocheck")
    with open(logf, "w") as lf:
        r = subprocess.run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=src, env=env, stdout=lf,
                           stderr=subprocess.STDOUT)
    if r.returncode != 0:
        sys.stdout.write(open(logf).read()[-4000:])
        raise AssertionError(f"dpkg-buildpackage failed (exit {r.returncode})")
    debs = glob.glob(os.path.join(builddir, "calico-underlay_*.deb"))
    check(len(debs) == 1, f"one calico-underlay .deb: {debs}")
    return debs[0], glob.glob(os.path.join(builddir, "calico-underlay_*.changes"))[0]


def lintian_clean(changes):
    """No error and no warning (overrides, if any, are explained in debian/)."""
    r = sh(["lintian", "--fail-on", "error,warning", "--no-tag-display-limit", changes], check=False)
    tags = [ln for ln in r.stdout.splitlines() if re.match(r"^[EW]: ", ln)]
    check(r.returncode == 0 and not tags, f"lintian (exit {r.returncode}): {r.stdout}{r.stderr}")
    return [ln for ln in r.stdout.splitlines() if re.match(r"^[A-Z]: ", ln)]


def deb_depends(deb):
    """The package names in the .deb's Depends (alternatives: the first), so the
    rootfs holds exactly what the package asks for and dpkg -i proves it enough."""
    dep = sh(["dpkg-deb", "-f", deb, "Depends"]).stdout
    return {alt.split("|")[0].split("(")[0].split(":")[0].strip() for alt in dep.split(",") if alt.strip()}


def debian_mirror():
    """The Debian mirror apt already uses (deb822 .sources or sources.list): the first
    non-security URI whose path ends in /debian, else the first non-security one."""
    if os.environ.get("CU_DEBIAN_MIRROR"):
        return os.environ["CU_DEBIAN_MIRROR"]
    files = sorted(glob.glob("/etc/apt/sources.list.d/*.sources")) + ["/etc/apt/sources.list"] + sorted(
        glob.glob("/etc/apt/sources.list.d/*.list"))
    uris = []
    for f in files:
        try:
            text = open(f).read()
        except OSError:
            continue
        for m in re.finditer(r"^(?:URIs:|deb\s+(?:\[[^]]*\])?)\s*(\S+)", text, re.M):
            uri = m.group(1)
            if uri.startswith("http") and "security" not in uri:
                uris.append(uri)
    for uri in uris:
        if uri.rstrip("/").endswith("/debian"):
            return uri
    return uris[0] if uris else "http://deb.debian.org/debian"


def rootfs_tarball(extra):
    """A bookworm minbase rootfs with systemd, as a tarball in the cache; built once
    (debootstrap: 2-5 minutes here, most of it downloading), reused by later runs."""
    pkgs = sorted({"systemd", "systemd-sysv", "dbus", "iproute2"} | extra)
    key = hashlib.sha256(f"{SUITE}\n{' '.join(pkgs)}".encode()).hexdigest()[:12]
    os.makedirs(CACHE, exist_ok=True)
    path = os.path.join(CACHE, f"rootfs-{SUITE}-{key}.tar")
    with open(os.path.join(CACHE, "rootfs.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(path):
            return path, False
        mirror = debian_mirror()
        tmp = tempfile.mkdtemp(prefix="rootfs-", dir=CACHE)
        try:
            logf = os.path.join(tmp, "debootstrap.log")
            log(f"# debootstrap {SUITE} from {mirror} (cached afterwards as {path})")
            with open(logf, "w") as lf:
                r = subprocess.run(["debootstrap", "--variant=minbase", "--include=" + ",".join(pkgs), SUITE,
                                    os.path.join(tmp, "root"), mirror], stdout=lf, stderr=subprocess.STDOUT)
            if r.returncode != 0:
                sys.stdout.write(open(logf).read()[-3000:])
                raise Skip(f"debootstrap failed (exit {r.returncode}): no rootfs")
            sh(["tar", "-C", os.path.join(tmp, "root"), "--numeric-owner", "-cf", path + ".part", "."])
            os.rename(path + ".part", path)
            for old in glob.glob(os.path.join(CACHE, f"rootfs-{SUITE}-*.tar")):
                if old != path:
                    os.unlink(old)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return path, True


# ---------------------------------------------------------------- the container

DEB_IN_ROOT = "/var/cache/cu-test/calico-underlay.deb"
METRICS_FILE = "/run/calico-underlay-metrics/calico-underlay.prom"  # README.Debian
DROPINS = "/etc/systemd/system/calico-underlay.service.d"


class Container:
    def __init__(self, tarball, deb, workdir):
        self.tarball, self.deb, self.workdir = tarball, deb, workdir
        self.root = os.path.join(workdir, "root")
        self.console = os.path.join(workdir, "console.log")
        self.proc = None
        self.leader = None

    def prepare(self):
        os.makedirs(self.root)
        sh(["tar", "-C", self.root, "--numeric-owner", "-xf", self.tarball])
        # The package, to be installed with dpkg -i once the node runs (E2E.install).
        os.makedirs(os.path.dirname(self.root + DEB_IN_ROOT))
        shutil.copyfile(self.deb, self.root + DEB_IN_ROOT)
        with open(os.path.join(self.root, "etc", "systemd", "system", "underlay-testnet.service"), "w") as f:
            f.write(SETUP_UNIT)
        sh(["systemctl", f"--root={self.root}", "enable", "underlay-testnet.service"])
        # Nothing the test needs from these; they only cost boot time.
        sh(["systemctl", f"--root={self.root}", "mask", "apt-daily.timer", "apt-daily-upgrade.timer",
            "e2scrub_all.timer", "fstrim.timer", "dpkg-db-backup.timer", "getty@tty1.service",
            "console-getty.service"], check=False)

    def boot(self):
        name = f"cu-e2e-{os.getpid()}"
        with open(self.console, "w") as con:
            self.proc = subprocess.Popen(
                ["systemd-nspawn", "-D", self.root, f"--machine={name}", "--register=no", "--keep-unit", "--boot",
                 "--private-network", "--volatile=overlay", "--console=read-only"],
                stdin=subprocess.DEVNULL, stdout=con, stderr=subprocess.STDOUT)
        self.leader = wait_for("the container's init", self._find_leader, timeout=30)
        # systemctl fails to connect until PID 1 has set up its private socket.
        wait_for("systemd's private socket", lambda: self.run(["test", "-S", "/run/systemd/private"],
                                                              check=False).returncode == 0, timeout=60)
        return self.run(["systemctl", "is-system-running", "--wait"], check=False, timeout=90).stdout.strip()

    def _find_leader(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"systemd-nspawn exited with {self.proc.returncode}: " + self.console_tail())
        my_ns = os.readlink("/proc/self/ns/pid")
        todo = [self.proc.pid]
        while todo:
            pid = todo.pop()
            try:
                children = open(f"/proc/{pid}/task/{pid}/children").read().split()
            except OSError:
                continue
            for c in children:
                try:
                    ns = os.readlink(f"/proc/{c}/ns/pid")
                    comm = open(f"/proc/{c}/comm").read().strip()
                except OSError:
                    continue
                if ns != my_ns and comm == "systemd":
                    return int(c)
                todo.append(int(c))
        return None

    def run(self, cmd, check=True, input=None, timeout=60):
        r = subprocess.run(["nsenter", "-t", str(self.leader), "-a"] + cmd, text=True, capture_output=True,
                           input=input, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)}: exit {r.returncode}: {r.stderr.strip()}")
        return r

    def popen(self, cmd):
        return subprocess.Popen(["nsenter", "-t", str(self.leader), "-a"] + cmd, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def console_tail(self, n=3000):
        try:
            return open(self.console, errors="replace").read()[-n:]
        except OSError:
            return ""

    def shutdown(self):
        if not self.proc or self.proc.poll() is not None:
            return
        if self.leader:
            self.run(["systemctl", "poweroff", "--no-block"], check=False, timeout=20)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGTERM)  # nspawn: an orderly shutdown of the container
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    # ---- what an operator looks at

    def show(self, prop):
        return self.run(["systemctl", "show", "-p", prop, "--value", UNIT]).stdout.rstrip("\n")

    def cat(self, path):
        return self.run(["cat", path]).stdout.strip()

    def routes(self):
        """Our routes, in our own table 252: {dst: (type, gateway, dev)}. The kernel has
        no table 252 until a route is put in it ("FIB table does not exist"): none."""
        r = self.run(["ip", "-j", "route", "show", "table", "252", "proto", "211"], check=False)
        if r.returncode != 0 and "table does not exist" in r.stderr:
            return {}
        if r.returncode != 0:
            raise AssertionError(f"ip route show table 252: exit {r.returncode}: {r.stderr.strip()}")
        out = json.loads(r.stdout or "[]")
        return {r["dst"]: (r.get("type", "unicast"), r.get("gateway"), r.get("dev")) for r in out}

    def links(self):
        return set(self.run(["ls", "/sys/class/net"]).stdout.split())

    def journal(self, *matches, after=None):
        cmd = ["journalctl", "--no-pager", "-o", "json", "-u", UNIT] + list(matches)
        if after:
            cmd += ["--after-cursor", after]
        out = self.run(cmd).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def daemon_journal(self, *matches, after=None):
        """Entries the daemon wrote (not systemd's about the unit)."""
        return [e for e in self.journal(*matches, after=after) if e.get("_PID") != "1"]

    def cursor(self):
        e = self.journal("-n", "1")
        return e[-1]["__CURSOR"] if e else None

    def write(self, path, text):
        """Write like a ConfigMap or a config-management tool does: a temporary file,
        then a rename."""
        d, b = os.path.split(path)
        self.run(["sh", "-c", f'cat > "{d}/.{b}.tmp" && chmod 0644 "{d}/.{b}.tmp" && mv "{d}/.{b}.tmp" "{path}"'],
                 input=text)


def entries(js, mid, **fields):
    return [e for e in js if e.get("MESSAGE_ID") == MID[mid] and all(e.get(k) == v for k, v in fields.items())]


def one(js, mid, **fields):
    found = entries(js, mid, **fields)
    check(found, f"a journal entry MESSAGE_ID={MID[mid]} ({mid}) with {fields}; daemon entries: " +
          "; ".join(f"{e.get('MESSAGE_ID', '-')[-3:]} {e.get('MESSAGE')}" for e in js))
    return found[0]


# ---------------------------------------------------------------- the checks

class E2E:
    def __init__(self, c):
        self.c = c
        self.n = 0

    def install(self):
        """What apt install does on a running node with no settings or resources: the
        files, and nothing else (debian/README.Debian)."""
        c = self.c
        check(c.routes() == {} and c.cat("/proc/sys/net/ipv4/conf/eth0/proxy_arp") == "0", "a clean node first")
        r = c.run(["dpkg", "-i", DEB_IN_ROOT], check=False, timeout=120)
        check(r.returncode == 0, f"dpkg -i (the package's Depends must be in the rootfs): {r.stdout}{r.stderr}")
        for f in ("/usr/sbin/calico-underlayd", "/lib/systemd/system/" + UNIT,
                  "/usr/share/calico-underlay/etcd-datastore.conf", "/usr/share/calico-underlay/metrics.conf",
                  "/etc/calico-underlay/config.yaml.example",
                  "/usr/lib/systemd/catalog/calico-underlay.catalog", "/usr/share/doc/calico-underlay/README.Debian"):
            c.run(["test", "-s", f])
        c.run(["getent", "group", "calico-underlay-metrics"])  # sysusers.d, for the metrics drop-in
        check(c.run(["stat", "-c", "%a %G", "/run/calico-underlay-metrics"]).stdout.strip() ==
              "2775 calico-underlay-metrics", "the metrics folder (tmpfiles.d)")
        check(c.run(["systemctl", "is-enabled", UNIT], check=False).stdout.strip() == "disabled", "not enabled")
        check(c.show("ActiveState") == "inactive", f"not started: {c.show('ActiveState')}")
        check(not c.daemon_journal(), "the daemon never ran")
        check(c.routes() == {} and c.cat("/proc/sys/net/ipv4/conf/eth0/proxy_arp") == "0" and
              "vxlan.calico" in c.links(), "installing changed nothing on the host")
        listed = c.run(["journalctl", "--list-catalog"]).stdout
        missing = [m for m, i in MID.items() if i not in listed]
        check(not missing, f"journalctl --list-catalog after the package's trigger lacks {missing}")

    def enable(self):
        """The operator's act: settings and resources in place, then enable --now."""
        c = self.c
        etc = "/etc/calico-underlay"
        # Metrics as README.Debian says: the drop-in, and metricsFile in its folder.
        c.run(["mkdir", "-p", DROPINS])
        c.run(["cp", "/usr/share/calico-underlay/metrics.conf", f"{DROPINS}/metrics.conf"])
        c.run(["systemctl", "daemon-reload"])
        example = c.cat(f"{etc}/config.yaml.example")
        c.write(f"{etc}/config.yaml", example + f"\nmetricsFile: {METRICS_FILE}\n")
        c.run(["chmod", "0644", f"{etc}/config.yaml"])
        c.run(["mkdir", "-p", RES])
        for f in sorted(glob.glob(os.path.join(TOP, "config", "example", "resources.d", "*.yaml"))):
            c.write(f"{RES}/{os.path.basename(f)}", open(f).read())
        c.run(["systemctl", "enable", "--now", UNIT], timeout=90)
        check(c.run(["systemctl", "is-enabled", UNIT]).stdout.strip() == "enabled", "enabled")

    def step(self, desc, fn):
        t = time.monotonic()
        fn()
        self.n += 1
        log(f"ok {self.n} - {desc} ({time.monotonic() - t:.1f}s)")

    def wait_state(self, what, routes, proxy_arp, status, timeout=10):
        c = self.c

        def state():
            got = (c.routes(), c.cat("/proc/sys/net/ipv4/conf/eth0/proxy_arp"), c.show("StatusText"))
            return got if got == (routes, proxy_arp, status) else None

        try:
            wait_for(what, state, timeout=timeout)
        except AssertionError:
            raise AssertionError(f"{what}: want routes={routes} proxy_arp={proxy_arp} status={status!r}; "
                                 f"have routes={c.routes()} "
                                 f"proxy_arp={c.cat('/proc/sys/net/ipv4/conf/eth0/proxy_arp')} "
                                 f"status={c.show('StatusText')!r}")

    def active(self):
        c = self.c
        check(c.show("ActiveState") == "active" and c.show("SubState") == "running",
              f"calico-underlay is {c.show('ActiveState')}/{c.show('SubState')}")
        check(c.run(["systemctl", "is-active", "calico-underlay"]).stdout.strip() == "active", "is-active")
        check(c.show("NRestarts") == "0", f"NRestarts={c.show('NRestarts')}")
        check(c.show("Type") == "notify", "Type=notify")

    def status_line(self):
        got = self.c.show("StatusText")
        check(got == STATUS_UNDERLAY, f"StatusText={got!r}, want {STATUS_UNDERLAY!r}")

    def startup_journal(self):
        c = self.c
        js = wait_for("the startup summary in the journal",
                      lambda: (lambda j: j if entries(j, "reconciled") else None)(c.daemon_journal()))
        check(len(entries(js, "started")) == 1, "one 'started' entry")
        one(js, "reloaded")  # "configuration loaded: node node1, 2 pools, ..."
        one(js, "proxy_arp", INTERFACE="eth0", UNDERLAY_VALUE="0")  # the delay, first
        one(js, "proxy_arp", INTERFACE="eth0", UNDERLAY_VALUE="1")
        delay = js.index(one(js, "proxy_arp", UNDERLAY_VALUE="0"))
        arp = js.index(one(js, "proxy_arp", UNDERLAY_VALUE="1"))
        check(delay < arp, "proxy delay set before proxy_arp (felix PR 1938)")
        one(js, "route_added", UNDERLAY_ROUTE="192.168.10.128/28")
        one(js, "route_added", UNDERLAY_ROUTE="192.168.10.144/28", INTERFACE="eth0")
        one(js, "tunnel", UNDERLAY_TUNNEL="vxlan.calico", INTERFACE="vxlan.calico")
        one(js, "finding", UNDERLAY_FINDING="needs-upstream-routing")
        r = one(js, "reconciled")
        # 2 proxy settings, 4 rules (2 per underlay pool), 2 block routes, 1 tunnel
        check(r["MESSAGE"].startswith("reconciled: 9 changes, 0 failed; underlay mode"), r["MESSAGE"])
        check(all(e.get("_SYSTEMD_UNIT") == UNIT for e in js), "every entry carries _SYSTEMD_UNIT")
        # The man page's examples: field filters find them.
        f = c.daemon_journal("UNDERLAY_ROUTE=192.168.10.144/28")
        check(len(f) == 1 and f[0]["MESSAGE_ID"] == MID["route_added"], f"UNDERLAY_ROUTE= filter: {f}")
        f = c.daemon_journal("MESSAGE_ID=" + MID["route_added"])
        check({e["UNDERLAY_ROUTE"] for e in f} == set(ROUTES), f"MESSAGE_ID= filter: {f}")

    def kernel_state(self):
        c = self.c
        check(c.routes() == ROUTES, f"routes proto 211: {c.routes()}")
        for r in json.loads(c.run(["ip", "-j", "route", "show", "table", "252", "proto", "211"]).stdout):
            check(r.get("metric") == 1024, f"metric 1024: {r}")
        check(json.loads(c.run(["ip", "-j", "route", "show", "table", "main", "proto", "211"]).stdout or "[]") == [],
              "no route of ours in main (BIRD scans main)")
        rules = json.loads(c.run(["ip", "-j", "rule", "show"]).stdout or "[]")
        ours = sorted((r.get("priority"), f'{r.get("dst")}/{r.get("dstlen")}', str(r.get("table")))
                      for r in rules if str(r.get("protocol")) == "211")
        want = sorted((prio, pool, table) for pool in ("192.168.10.128/25", "192.168.20.128/25")
                      for prio, table in ((32700, "main"), (32701, "252")))
        check(ours == want, f"our policy rules, one pair per underlay pool: {ours}")
        check(c.cat("/proc/sys/net/ipv4/conf/eth0/proxy_arp") == "1", "proxy_arp=1 on eth0")
        check(c.cat("/proc/sys/net/ipv4/neigh/eth0/proxy_delay") == "0", "proxy_delay=0 on eth0")
        links = c.links()
        check("vxlan.calico" not in links and "eth0" in links, f"links: {sorted(links)}")
        rec = c.cat("/run/calico-underlay/state")
        for line in ("ifname=eth0", "proxy_arp=0", "proxy_delay_ms=800"):
            check(line in rec.splitlines(), f"runtime record has {line}: {rec!r}")

    def sandbox(self):
        c = self.c
        pid = c.show("MainPID")
        st = dict(line.split(":\t", 1) for line in c.cat(f"/proc/{pid}/status").splitlines() if ":\t" in line)
        uid = st["Uid"].split()[0]
        check(uid != "0", f"runs as a dynamic user, not root (Uid {uid})")
        for k in ("CapEff", "CapPrm", "CapBnd", "CapAmb"):
            check(int(st[k], 16) == 1 << 12, f"{k}={st[k]}: only CAP_NET_ADMIN")
        check(st["NoNewPrivs"].strip() == "1", "NoNewPrivs")
        check(st["Seccomp"].strip() == "2", "a seccomp filter")
        # In the daemon's own mount namespace /proc/sys cannot be written (ProcSubset=pid
        # hides it; ProtectKernelTunables= would make it read-only): proxy_arp went
        # through rtnetlink.
        r = c.run(["nsenter", "-t", pid, "-m", "sh", "-c", "echo 1 > /proc/sys/net/ipv4/conf/eth0/proxy_arp"],
                  check=False)
        check(r.returncode != 0, "/proc/sys is not writable in the unit's mount namespace")
        r = c.run(["nsenter", "-t", pid, "-m", "touch", "/etc/calico-underlay/x"], check=False)
        check(r.returncode != 0, "the file system is read-only for the unit (ProtectSystem=strict)")

    def operator_check(self):
        c = self.c
        for page in ("/usr/share/man/man8/calico-underlayd.8.gz", "/usr/share/man/man5/calico-underlay.yaml.5.gz"):
            c.run(["test", "-s", page])
        r = c.run(["calico-underlayd", "--check"], check=False)
        check(r.returncode == 0, f"--check exit {r.returncode}: {r.stdout}{r.stderr}")
        check("changes: 0" in r.stdout and "ready: yes" in r.stdout, r.stdout)
        j = json.loads(c.run(["calico-underlayd", "--check", "--format", "json"]).stdout)
        check(j["ready"] is True and j["changes"] == [] and j["uplink"]["name"] == "eth0", f"--check json: {j}")

    def drift(self):
        c = self.c
        cur = c.cursor()
        c.run(["ip", "route", "del", "192.168.10.144/28", "table", "252", "proto", "211"])
        wait_for("our deleted route to come back", lambda: c.routes() == ROUTES)
        js = wait_for("a drift entry", lambda: entries(c.daemon_journal(after=cur), "drift"))
        check(js[0].get("UNDERLAY_ROUTE") == "192.168.10.144/28", f"drift entry: {js[0]}")
        cur = c.cursor()
        c.run(["sh", "-c", "echo 0 > /proc/sys/net/ipv4/conf/eth0/proxy_arp"])
        wait_for("proxy_arp back to 1", lambda: c.cat("/proc/sys/net/ipv4/conf/eth0/proxy_arp") == "1")
        js = wait_for("a drift entry for proxy_arp",
                      lambda: entries(c.daemon_journal(after=cur), "drift", INTERFACE="eth0", UNDERLAY_VALUE="1"))
        check(not entries(c.daemon_journal(after=cur), "failed"), "no failed action")

    def resource_file(self):
        c = self.c
        cur = c.cursor()
        c.write(f"{RES}/40-new-block.yaml", NEW_BLOCK)
        more = dict(ROUTES, **{"192.168.10.176/28": ("unicast", "192.168.10.12", "eth0")})
        self.wait_state("the new block's route", more, "1", STATUS_UNDERLAY.replace("2 block", "3 block"))
        js = c.daemon_journal(after=cur)
        one(js, "reloaded")
        one(js, "route_added", UNDERLAY_ROUTE="192.168.10.176/28", INTERFACE="eth0")
        cur = c.cursor()
        c.run(["rm", f"{RES}/40-new-block.yaml"])
        self.wait_state("the block's route withdrawn", ROUTES, "1", STATUS_UNDERLAY)
        one(c.daemon_journal(after=cur), "route_removed", UNDERLAY_ROUTE="192.168.10.176/28")

    def bad_file(self):
        c = self.c
        cur = c.cursor()
        c.write(f"{RES}/50-bad.yaml", BAD_FILE)
        js = wait_for("the rejection in the journal", lambda: entries(c.daemon_journal(after=cur), "rejected"))
        check(any(BAD_POS in e["MESSAGE"] and e.get("UNDERLAY_FILE") == f"{RES}/50-bad.yaml" for e in js),
              "an entry names the file, line and column: " + " | ".join(e["MESSAGE"] for e in js))
        check(all(e["PRIORITY"] == "3" for e in js), "rejections are logged at err")
        st = c.show("StatusText")
        check(st.startswith(STATUS_UNDERLAY + "; last error: ") and BAD_POS in st, f"StatusText={st!r}")
        check(c.routes() == ROUTES and c.cat("/proc/sys/net/ipv4/conf/eth0/proxy_arp") == "1",
              "the host is unchanged")
        # A pool change made while the bad file is there changes nothing either.
        cur = c.cursor()
        c.write(f"{RES}/10-ippools.yaml", self.pools_nat)
        wait_for("the second rejection", lambda: entries(c.daemon_journal(after=cur), "rejected"))
        time.sleep(0.5)  # a pass that would wrongly apply the change has had time to run
        check(c.routes() == ROUTES and c.cat("/proc/sys/net/ipv4/conf/eth0/proxy_arp") == "1",
              f"the host is unchanged while the configuration is invalid: {c.routes()}")
        check(not entries(c.daemon_journal(after=cur), "route_removed"), "no route removed")
        check(c.show("ActiveState") == "active", "still active")

    def to_overlay(self):
        c = self.c
        cur = c.cursor()
        c.run(["rm", f"{RES}/50-bad.yaml"])
        self.wait_state("overlay mode", {}, "0", STATUS_OVERLAY)
        check(c.cat("/proc/sys/net/ipv4/neigh/eth0/proxy_delay") == ORIGINAL_DELAY_JIFFIES,
              "proxy_delay restored to the recorded 800 ms")
        js = c.daemon_journal(after=cur)
        one(js, "reloaded")
        for dst in ROUTES:
            one(js, "route_removed", UNDERLAY_ROUTE=dst)
        one(js, "proxy_arp", INTERFACE="eth0", UNDERLAY_VALUE="0")

    def back_to_underlay(self):
        c = self.c
        cur = c.cursor()
        c.write(f"{RES}/10-ippools.yaml", self.pools)
        self.wait_state("underlay mode again", ROUTES, "1", STATUS_UNDERLAY)
        check(c.cat("/proc/sys/net/ipv4/neigh/eth0/proxy_delay") == "0", "proxy_delay 0 again")
        js = c.daemon_journal(after=cur)
        for dst in ROUTES:
            one(js, "route_added", UNDERLAY_ROUTE=dst)

    def reload_and_restart(self):
        c = self.c
        record = c.cat("/run/calico-underlay/state")
        pid, inv = c.show("MainPID"), c.show("InvocationID")
        mon = Monitor(c)
        try:
            cur = c.cursor()
            c.run(["systemctl", "reload", "calico-underlay"])
            js = wait_for("the reload in the journal", lambda: entries(c.daemon_journal(after=cur), "reloaded"))
            check("reloaded" in js[0]["MESSAGE"], js[0]["MESSAGE"])
            check(c.show("MainPID") == pid, "reload keeps the process")
            c.run(["systemctl", "restart", "calico-underlay"])
            new = c.show("InvocationID")
            wait_for("the new process's summary", lambda: entries(
                c.daemon_journal("_SYSTEMD_INVOCATION_ID=" + new), "reconciled"))
        finally:
            events = mon.stop()
        # The proof first: the kernel saw no change of ours at all.
        ours = [e for e in events if any(d in e for d in ROUTES) or "proto 211" in e or "eth0" in e]
        check(not ours, "no route, link or netconf event during reload and restart: " + " | ".join(ours))
        check(new != inv and c.show("MainPID") != pid, "restart: a new process")
        check(c.show("ActiveState") == "active", "active after the restart")
        one(c.daemon_journal("_SYSTEMD_INVOCATION_ID=" + inv), "stopped")
        js = c.daemon_journal("_SYSTEMD_INVOCATION_ID=" + new)
        r = one(js, "reconciled")
        check(r["MESSAGE"].startswith("reconciled: 0 changes, 0 failed"), r["MESSAGE"])
        check(not entries(js, "route_added") and not entries(js, "route_removed") and
              not entries(js, "proxy_arp"), "the new process changed nothing")
        check(c.routes() == ROUTES and c.show("StatusText") == STATUS_UNDERLAY, "state after the restart")
        check(c.cat("/run/calico-underlay/state") == record,
              "the runtime record survived the restart (RuntimeDirectoryPreserve=yes)")

    def watchdog(self):
        """WatchdogSec=30s would take a long test to prove; a runtime drop-in makes it
        2 s: a daemon that did not send WATCHDOG=1 would be killed (Result=watchdog)."""
        c = self.c
        d = "/run/systemd/system/calico-underlay.service.d"
        c.run(["mkdir", "-p", d])
        c.write(f"{d}/50-test-watchdog.conf", "[Service]\nWatchdogSec=2s\n")
        try:
            c.run(["systemctl", "daemon-reload"])
            c.run(["systemctl", "restart", "calico-underlay"])
            pid, start = c.show("MainPID"), int(c.show("ExecMainStartTimestampMonotonic"))
            check(c.show("WatchdogUSec") in ("2s", "2000000"), f"WatchdogUSec={c.show('WatchdogUSec')}")
            time.sleep(5)
            check(c.show("MainPID") == pid and c.show("ActiveState") == "active",
                  f"still running after 5 s with WatchdogSec=2s (Result={c.show('Result')})")
            last = int(c.show("WatchdogTimestampMonotonic"))
            check(last > start + 3_000_000, f"keep-alives arrive (last {(last - start) / 1e6:.1f}s after start)")
        finally:
            c.run(["rm", "-rf", d])
            c.run(["systemctl", "daemon-reload"])

    def metrics(self):
        """The metrics file under the unit's sandbox: written by the dynamic user into
        the runtime directory, readable by another user (node_exporter's)."""
        c = self.c
        last = []

        def read():
            r = c.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "cat", METRICS_FILE],
                      check=False)
            last[:] = [r.returncode, r.stderr.strip(), c.run(["ls", "-la", "/run/calico-underlay"]).stdout]
            return r.stdout if r.returncode == 0 else None
        try:
            text = wait_for("the metrics file", read)
        except AssertionError as e:
            raise AssertionError(f"{e}: {last}")
        check("calico_underlay_underlay_mode 1" in text.splitlines(), text)
        check('calico_underlay_block_routes{state="ours"} 2' in text.splitlines(), text)
        modes = c.run(["stat", "-c", "%a %G", METRICS_FILE, "/run/calico-underlay-metrics"]).stdout.splitlines()
        check(modes == ["644 calico-underlay-metrics", "2775 calico-underlay-metrics"], f"file, folder: {modes}")
        check(c.run(["stat", "-c", "%a", "/run/calico-underlay/state"]).stdout.strip() == "600",
              "the runtime record stays private")

    def explained(self):
        """journalctl -x: the catalog's text under the daemon's entries."""
        out = self.c.run(["journalctl", "--no-pager", "-x", "-u", UNIT, "MESSAGE_ID=" + MID["route_added"]]).stdout
        check("Subject: calico-underlayd added a block route" in out and "What to do:" in out,
              f"journalctl -x shows the catalog entry: {out[-1500:]}")

    def purge(self):
        """Purge stops the daemon and leaves the host and the runtime record alone."""
        c = self.c
        record = c.cat("/run/calico-underlay/state")
        r = c.run(["dpkg", "--purge", "calico-underlay"], timeout=120)
        check("calico-underlayd --cleanup" in r.stderr, f"removal says how to undo: {r.stderr}")
        check(c.run(["test", "-e", "/usr/sbin/calico-underlayd"], check=False).returncode != 0, "binary gone")
        check(c.run(["test", "-e", "/etc/calico-underlay/config.yaml.example"], check=False).returncode != 0,
              "the conffile purged")
        c.run(["test", "-s", "/etc/calico-underlay/config.yaml"])  # the operator's own file stays
        check(c.show("ActiveState") in ("inactive", "failed") and c.show("MainPID") == "0",
              f"the daemon stopped: {c.show('ActiveState')}")
        js = c.daemon_journal()
        check(js and js[-1].get("MESSAGE_ID") == MID["stopped"], "the daemon's last entry: stopped")
        check(c.routes() == ROUTES and c.cat("/proc/sys/net/ipv4/conf/eth0/proxy_arp") == "1" and
              c.cat("/proc/sys/net/ipv4/neigh/eth0/proxy_delay") == "0", "the host is as the daemon left it")
        check(c.cat("/run/calico-underlay/state") == record, "the runtime record stays")

    def clean_record(self):
        c = self.c
        js = c.daemon_journal()
        check(not entries(js, "failed"), "no action failed: " + " | ".join(e["MESSAGE"] for e in entries(js, "failed")))
        bad = [e for e in js if int(e.get("PRIORITY", "6")) <= 3 and e.get("MESSAGE_ID") != MID["rejected"]]
        check(not bad, "nothing at err or worse but rejections: " + " | ".join(e["MESSAGE"] for e in bad))
        check(c.show("NRestarts") == "0" and c.show("Result") == "success", "no failure, no automatic restart")


class Monitor:
    """`ip monitor route netconf link` inside the container, bracketed by a marker route
    so that every event in between is known to have been seen."""
    MARK = "198.51.100.0/24"

    def __init__(self, c):
        self.c = c
        self.lines = []
        # nsenter forks into the container's PID namespace: ip's PID there is what
        # stop() must signal, not nsenter's.
        self.proc = c.popen(["sh", "-c", 'echo "pid $$"; exec ip -ts monitor route netconf link'])
        first = self.proc.stdout.readline().split()
        check(len(first) == 2 and first[0] == "pid", f"monitor: {first}")
        self.pid = first[1]
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        c.run(["ip", "route", "add", "blackhole", self.MARK])
        wait_for("the monitor to see the start marker", lambda: self._seen(self.MARK, deleted=False))
        self.start = len(self.lines)

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def _seen(self, mark, deleted):
        return any(mark in ln and (ln.find("Deleted") >= 0) == deleted for ln in list(self.lines))

    def stop(self):
        try:
            self.c.run(["ip", "route", "del", "blackhole", self.MARK])
            wait_for("the monitor to see the end marker", lambda: self._seen(self.MARK, deleted=True))
        finally:
            self.c.run(["sh", "-c", f"kill {self.pid}"], check=False)  # no /bin/kill in minbase
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return [ln for ln in self.lines[self.start:] if self.MARK not in ln]


def diagnostics(c):
    log("# ---- diagnostics")
    if not c.leader:
        log(c.console_tail())
        return
    for cmd in (["systemctl", "status", "--no-pager", "-l", UNIT],
                ["journalctl", "--no-pager", "-o", "short-precise", "-u", UNIT],
                ["ip", "-d", "route", "show", "table", "all"], ["ip", "-br", "link"],
                ["systemctl", "--failed", "--no-pager"]):
        r = c.run(cmd, check=False)
        log(f"# $ {' '.join(cmd)}\n{r.stdout}{r.stderr}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--builddir", default=os.path.join(tempfile.gettempdir(), "calico-underlay-system", "build"))
    ap.add_argument("--keep", action="store_true", help="keep the container's folder")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise Skip("needs root (debootstrap, systemd-nspawn)")
    t0 = time.monotonic()
    install_tools()
    t = time.monotonic()
    deb, changes = build_package(args.builddir + "-deb")
    log(f"# dpkg-buildpackage -us -uc -b: {os.path.basename(deb)} in {time.monotonic() - t:.1f}s")
    t = time.monotonic()
    info = lintian_clean(changes)
    log(f"ok - lintian: no error, no warning ({time.monotonic() - t:.1f}s)" + "".join(f"\n# {ln}" for ln in info))
    t = time.monotonic()
    tarball, fresh = rootfs_tarball(deb_depends(deb))
    log(f"# rootfs {'built' if fresh else 'reused'}: {tarball} ({time.monotonic() - t:.1f}s)")

    workdir = tempfile.mkdtemp(prefix="cu-nspawn-", dir="/var/tmp")
    c = Container(tarball, deb, workdir)
    ok = False
    try:
        t = time.monotonic()
        c.prepare()
        state = c.boot()
        log(f"# booted ({state}) in {time.monotonic() - t:.1f}s")
        if state != "running":
            log(c.run(["systemctl", "--failed", "--no-pager"], check=False).stdout)
        e = E2E(c)
        e.pools = open(os.path.join(TOP, "config", "example", "resources.d", "10-ippools.yaml")).read()
        e.pools_nat = e.pools.replace("natOutgoing: false", "natOutgoing: true", 1)  # underlay-az1
        check(e.pools_nat != e.pools, "the example has natOutgoing: false")
        e.step("dpkg -i on a running node: files in place, unit neither enabled nor started, host untouched, "
               "catalog listed", e.install)
        e.step("the operator's act: settings and resources, systemctl enable --now", e.enable)
        e.step("calico-underlay.service is active (READY=1), no restarts", e.active)
        e.step("StatusText is the one-line summary", e.status_line)
        e.step("journal: documented MESSAGE_IDs and fields; field filters work", e.startup_journal)
        e.step("kernel: routes proto 211, proxy_arp=1, delay 0, vxlan.calico gone, record kept", e.kernel_state)
        e.step("the unit's sandbox is in force (dynamic user, CAP_NET_ADMIN only, no /proc/sys)", e.sandbox)
        e.step("man pages installed; calico-underlayd --check says ready, 0 changes", e.operator_check)
        e.step("drift repaired at once: deleted route, proxy_arp reset", e.drift)
        e.step("a resource file added then removed: route and journal follow", e.resource_file)
        e.step("a bad file: rejected with file:line:column, StatusText says so, nothing changes", e.bad_file)
        e.step("bad file gone: the pending pool change applies (overlay, values restored)", e.to_overlay)
        e.step("pool restored: underlay again", e.back_to_underlay)
        e.step("systemctl reload and restart: no route/link/netconf event, 0 changes, record kept",
               e.reload_and_restart)
        e.step("watchdog keep-alives (WatchdogSec=2s for the test): not killed, pings recorded", e.watchdog)
        e.step("no failed action, no error but the rejections, no restarts", e.clean_record)
        e.step("journalctl -x explains the entries from the catalog", e.explained)
        e.step("metrics file under the unit: written, readable by another user, record still 0600", e.metrics)
        e.step("dpkg --purge: daemon stopped, routes/proxy_arp/record kept, conffile gone", e.purge)
        ok = True
    except AssertionError as err:
        log(f"not ok - {err}")
        diagnostics(c)
    finally:
        t = time.monotonic()
        c.shutdown()
        log(f"# container stopped in {time.monotonic() - t:.1f}s")
        if args.keep:
            log(f"# kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    log(f"# total {time.monotonic() - t0:.1f}s")
    return 0 if ok else 1


if __name__ == "__main__":
    # meson's timeout sends SIGTERM: leave through the finally blocks, which stop the
    # container.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(124))
    try:
        sys.exit(main())
    except Skip as s:
        print(f"SKIP: {s}", flush=True)
        sys.exit(SKIP)
