"""Helpers for calico-underlayd's real-kernel integration tests.

Everything a test touches lives in network namespaces of its own, named
cu-it-<pid>-<n>-<role>, created with `ip netns add` and wired with veth, bridge
and VXLAN links (never in the host's namespace: veth pairs are created inside a
test namespace with their peer placed straight into another one). Namespaces,
background processes and temporary folders are registered when they are made and
removed by the test's cleanup, by atexit, and by the SIGTERM/SIGINT/SIGHUP
handlers, so a failing or killed run leaves nothing behind.

The host is read the way an operator reads it: `ip -j` JSON (routes of every table,
links with details, addresses) and /proc/sys read inside the namespace through
`ip netns exec NS cat ...`. Waits poll state with a deadline; there are no fixed
sleeps.

This kernel has no IPIP and no dummy links, so the tunl0 paths (the fallback
device that survives RTM_DELLINK, DESIGN.md section 7) are covered by the unit
tests (tests/test-tunnel.c), not here; the VXLAN device vxlan.calico is real.

Standard library only.
"""
import atexit
import contextlib
import difflib
import itertools
import json
import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

SKIP = 77           # meson's "skipped" exit code
PROTO = 211         # the daemon's default routeProtocol
METRIC = 1024       # its default routeMetric
TABLE = 252         # its default routeTable
RULE_PRIOS = (32700, 32701)  # its policy rules: main with suppress_prefixlength, then TABLE
PREFIX = "cu-it-%d-" % os.getpid()

# Under valgrind (`meson test --setup valgrind`, tests/meson.build): DAEMON_WRAPPER is an
# argv prefix for every run of the daemon and CU_TIMEOUT_SCALE stretches the time a run
# may take. An exit with the wrapper's --error-exitcode fails the run whatever the test
# expected; the wrapper's report is in the daemon's stderr, shown in the failure.
DAEMON_WRAPPER = shlex.split(os.environ.get("DAEMON_WRAPPER", ""))
TIMEOUT_SCALE = float(os.environ.get("CU_TIMEOUT_SCALE") or 1)
WRAPPER_ERROR_RC = next((int(a.split("=", 1)[1]) for a in DAEMON_WRAPPER
                         if a.startswith("--error-exitcode=")), None)

# ---------------------------------------------------------------- registry and cleanup

_namespaces = []    # names, in creation order
_procs = []         # subprocess.Popen objects we started
_tmpdirs = []
_counter = itertools.count(1)


def _stop_proc(p):
    if p.poll() is None:
        p.kill()        # only processes this module started, by their object (pid)
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
    for f in (p.stdout, p.stderr):
        if f:
            f.close()


def cleanup_all():
    """Stop our background processes, delete our namespaces and folders.
    Idempotent: called by each test's cleanup, atexit and the signal handlers."""
    while _procs:
        _stop_proc(_procs.pop())
    while _namespaces:
        subprocess.run(["ip", "netns", "del", _namespaces.pop()],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while _tmpdirs:
        shutil.rmtree(_tmpdirs.pop(), ignore_errors=True)


def _on_signal(signum, _frame):
    cleanup_all()
    sys.stderr.write("integration: interrupted by signal %d, namespaces removed\n" % signum)
    os._exit(128 + signum)


atexit.register(cleanup_all)
for _sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(_sig, _on_signal)


def stop(p):
    """Stop a background process started by Netns.popen()."""
    _stop_proc(p)
    if p in _procs:
        _procs.remove(p)


def leftover_namespaces():
    """Namespaces of this process that still exist (should be none after a test)."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(PREFIX)]


def sweep_stale():
    """Delete cu-it-<pid>-* namespaces and temporary folders of test processes that no
    longer exist (a run killed with SIGKILL cannot clean up after itself)."""
    for name in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split():
        m = re.match(r"cu-it-(\d+)-\d+-", name)
        if m and not os.path.exists("/proc/%s" % m.group(1)):
            sys.stderr.write("integration: removing stale namespace %s\n" % name)
            subprocess.run(["ip", "netns", "del", name], stderr=subprocess.DEVNULL)
    tmp = tempfile.gettempdir()
    for name in os.listdir(tmp):
        m = re.match(r"cu-it-(\d+)-", name)
        if m and not os.path.exists("/proc/%s" % m.group(1)):
            shutil.rmtree(os.path.join(tmp, name), ignore_errors=True)


def require_root():
    """Exit 77 (skipped) unless we can make network namespaces."""
    if os.geteuid() != 0:
        print("integration tests need root (network namespaces): skipped")
        sys.exit(SKIP)
    if not shutil.which("ip") or not shutil.which("ping"):
        print("integration tests need iproute2 and ping: skipped")
        sys.exit(SKIP)


def daemon_path():
    path = os.environ.get("DAEMON")
    if not path or not os.access(path, os.X_OK):
        sys.exit("integration: set DAEMON to the built calico-underlayd (meson test does), got %r" % path)
    return path


def fixtures_dir():
    return os.environ.get("FIXTURES") or os.path.join(os.path.dirname(__file__), "..", "fixtures")


def main():
    """Entry point of a test file: skip without root, run, 0 or 1."""
    require_root()
    daemon_path()
    sweep_stale()
    t0 = time.monotonic()
    prog = unittest.main(exit=False, verbosity=2)
    cleanup_all()
    left = leftover_namespaces()
    if left:
        print("LEFTOVER NAMESPACES: %s" % " ".join(left))
    print("integration: %.1f s" % (time.monotonic() - t0))
    sys.exit(0 if prog.result.wasSuccessful() and not left else 1)


# ---------------------------------------------------------------- commands

class CommandFailed(AssertionError):
    pass


def run(cmd, check=True, timeout=30, input=None):
    """Run a command (list), capture its output; CommandFailed with everything on error."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input)
    except subprocess.TimeoutExpired as e:
        raise CommandFailed("timed out after %ss: %s" % (timeout, " ".join(cmd))) from e
    if check and p.returncode != 0:
        raise CommandFailed("exit %d: %s\nstdout:\n%s\nstderr:\n%s"
                            % (p.returncode, " ".join(cmd), p.stdout, p.stderr))
    return p


def wait_for(predicate, what, timeout=10.0, interval=0.02):
    """Poll predicate() until it returns a true value; AssertionError naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1f s waiting for %s" % (timeout, what))
        time.sleep(interval)


def scaled(seconds):
    """A wait stretched by CU_TIMEOUT_SCALE (valgrind, a loaded machine)."""
    return seconds * TIMEOUT_SCALE


def make_tmpdir():
    """A temporary folder removed by cleanup_all()."""
    d = tempfile.mkdtemp(prefix=PREFIX)
    _tmpdirs.append(d)
    return d


def popen_logged(ns, logfile, *args, env=None):
    """A background process in namespace ns writing stdout and stderr to the open file
    logfile (no pipe to fill up); stopped by cleanup_all()."""
    cmd = ["ip", "netns", "exec", ns.name]
    if env:
        cmd += ["env"] + ["%s=%s" % kv for kv in env.items()]
    p = subprocess.Popen(cmd + [str(a) for a in args], stdin=subprocess.DEVNULL, stdout=logfile,
                         stderr=subprocess.STDOUT)
    _procs.append(p)
    return p


def json_diff(a, b, label_a="before", label_b="after"):
    sa = json.dumps(a, indent=1, sort_keys=True).splitlines()
    sb = json.dumps(b, indent=1, sort_keys=True).splitlines()
    return "\n".join(difflib.unified_diff(sa, sb, label_a, label_b, lineterm="", n=2))


# ---------------------------------------------------------------- namespaces

class Netns:
    """A named network namespace of ours."""

    def __init__(self, role):
        self.name = "%s%d-%s" % (PREFIX, next(_counter), role)
        self.role = role
        run(["ip", "netns", "add", self.name])
        _namespaces.append(self.name)
        # Explicit settings, not inherited ones: IPv4 devconf of a new namespace is
        # copied from the host's (net.core.devconf_inherit_init_net=0). No IPv6 DAD,
        # so link-local addresses do not change state under a before/after compare.
        self.write_sysctl("net/ipv4/ip_forward", 0)
        for scope in ("all", "default"):
            self.write_sysctl("net/ipv4/conf/%s/proxy_arp" % scope, 0)
            self.write_sysctl("net/ipv4/conf/%s/rp_filter" % scope, 0)
            self.write_sysctl("net/ipv6/conf/%s/accept_dad" % scope, 0)
        self.ip("link", "set", "lo", "up")

    def __repr__(self):
        return self.name

    def delete(self):
        if self.name in _namespaces:
            _namespaces.remove(self.name)
            run(["ip", "netns", "del", self.name], check=False)

    # -- running things inside

    def exec(self, *args, check=True, timeout=30, env=None, input=None):
        cmd = ["ip", "netns", "exec", self.name]
        if env:
            cmd += ["env"] + ["%s=%s" % kv for kv in env.items()]
        return run(cmd + [str(a) for a in args], check=check, timeout=timeout, input=input)

    def popen(self, *args):
        """A background process in the namespace, stopped by cleanup_all()."""
        p = subprocess.Popen(["ip", "netns", "exec", self.name] + [str(a) for a in args],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        _procs.append(p)
        return p

    def ip(self, *args, check=True):
        return run(["ip", "-n", self.name] + [str(a) for a in args], check=check)

    def ipj(self, *args):
        out = run(["ip", "-n", self.name, "-j"] + [str(a) for a in args]).stdout.strip()
        return json.loads(out) if out else []

    # -- reading state

    def routes(self):
        """Every route of every table, IPv4 and IPv6, with details."""
        return self.ipj("-d", "route", "show", "table", "all")

    def links(self):
        return self.ipj("-d", "link", "show")

    def addrs(self):
        return self.ipj("addr", "show")

    def link(self, name):
        """The link called name, found in a full dump (never a by-name lookup)."""
        for l in self.links():
            if l["ifname"] == name:
                return l
        return None

    def sysctl(self, path):
        """/proc/sys/<path> read inside the namespace (path with slashes:
        device names may contain dots)."""
        return self.exec("cat", "/proc/sys/" + path).stdout.strip()

    def write_sysctl(self, path, value):
        self.exec("sh", "-c", 'echo "$1" > "/proc/sys/$2"', "sh", str(value), path)

    def proxy_arp(self, dev):
        return int(self.sysctl("net/ipv4/conf/%s/proxy_arp" % dev))

    def proxy_delay(self, dev):
        """In USER_HZ (jiffies of 10 ms) as /proc shows it; the kernel default is 80."""
        return int(self.sysctl("net/ipv4/neigh/%s/proxy_delay" % dev))

    def dev_sysctls(self, dev):
        """Every readable IPv4 setting of a device: conf/<dev>/* and neigh/<dev>/*."""
        out = self.exec("sh", "-c",
                        'cd /proc/sys/net/ipv4 && grep -r . conf/"$1" neigh/"$1" 2>/dev/null; true',
                        "sh", dev).stdout
        return sorted(out.splitlines())

    def wait_link_up(self, name, timeout=10):
        def up():
            l = self.link(name)
            return l and l.get("operstate") in ("UP", "UNKNOWN")
        wait_for(up, "%s: %s operstate UP" % (self.name, name), timeout)

    def neigh_state(self, dev, addr):
        for n in self.ipj("neigh", "show", "dev", dev):
            if n.get("dst") == addr:
                return n.get("state", [])
        return None

    def describe(self, devs=("eth0",)):
        """Readable state for failure messages."""
        parts = ["=== %s" % self.name]
        for title, args in (("links", ["-br", "link"]), ("addresses", ["-br", "-4", "addr"]),
                            ("routes (IPv4, all tables but local)", ["-4", "route", "show", "table", "all"]),
                            ("neighbours", ["neigh", "show"])):
            p = self.ip(*args, check=False)
            lines = [l for l in p.stdout.splitlines() if "table local" not in l]
            parts.append("--- %s\n%s" % (title, "\n".join(lines) or "(none)"))
        for dev in devs:
            vals = []
            for key in ("conf/%s/proxy_arp" % dev, "neigh/%s/proxy_delay" % dev,
                        "conf/%s/forwarding" % dev):
                p = self.exec("cat", "/proc/sys/net/ipv4/" + key, check=False)
                vals.append("%s=%s" % (key.split("/")[-1], p.stdout.strip() or "?"))
            parts.append("--- %s: %s" % (dev, " ".join(vals)))
        return "\n".join(parts)


def veth(ns_a, name_a, ns_b, name_b, up=True):
    """A veth pair created inside ns_a with its peer put straight into ns_b."""
    ns_a.ip("link", "add", name_a, "type", "veth", "peer", "name", name_b, "netns", ns_b.name)
    if up:
        ns_a.ip("link", "set", name_a, "up")
        ns_b.ip("link", "set", name_b, "up")


# ---------------------------------------------------------------- traffic

def ping(ns, addr, wait=1):
    """One bounded ping: (ok, rtt in ms or None, output)."""
    p = ns.exec("ping", "-n", "-c", "1", "-W", str(wait), addr, check=False, timeout=wait + 10)
    m = re.search(r"time=([0-9.]+) ms", p.stdout)
    ok = p.returncode == 0 and m is not None
    return ok, float(m.group(1)) if ok else None, p.stdout + p.stderr


def wait_ping(ns, addr, timeout=10):
    """Poll until addr answers from ns (for readiness, never for a measurement)."""
    wait_for(lambda: ping(ns, addr)[0], "%s to answer ping from %s" % (addr, ns.name), timeout, 0.05)


_ECHO_SERVER = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1])))
print("ready", flush=True)
while True:
    data, peer = s.recvfrom(2048)
    s.sendto(("%s %s" % (peer[0], data.decode())).encode(), peer)
"""

_ECHO_CLIENT = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(float(sys.argv[3]))
s.sendto(b"hello", (sys.argv[1], int(sys.argv[2])))
try:
    data, peer = s.recvfrom(2048)
except socket.timeout:
    sys.exit("no answer from %s:%s within %s s" % tuple(sys.argv[1:4]))
print(peer[0], data.decode())
"""


def start_echo(ns, port=7777, timeout=10):
    """A UDP listener in ns that answers each datagram with the sender's address."""
    p = ns.popen(sys.executable, "-c", _ECHO_SERVER, port)
    ready, _, _ = select.select([p.stdout], [], [], timeout)
    if not ready or p.stdout.readline().strip() != "ready":
        raise AssertionError("UDP echo listener in %s did not start: %s" % (ns.name, p.stderr.read()
                                                                          if p.poll() is not None else ""))
    return p


def udp_echo(ns, addr, port=7777, wait=2.0):
    """Send one datagram from ns to addr:port. (ok, the peer address the listener
    saw, output). ok is False when nothing came back in `wait` seconds."""
    p = ns.exec(sys.executable, "-c", _ECHO_CLIENT, addr, port, wait, check=False, timeout=wait + 20)
    if p.returncode != 0:
        return False, None, p.stdout + p.stderr
    server, seen, _ = p.stdout.split()
    if server != addr:
        return False, None, "answer from %s, not %s" % (server, addr)
    return True, seen, p.stdout


# ---------------------------------------------------------------- route helpers

def proto_of(r):
    return str(r.get("protocol", ""))


def is_ours(r, proto=PROTO):
    return proto_of(r) == str(proto)


def foreign_routes(routes, proto=PROTO, ignore_devs=()):
    """Routes not carrying our protocol, minus those of devices in ignore_devs."""
    return [r for r in routes if not is_ours(r, proto) and r.get("dev") not in ignore_devs]


def our_routes(routes, proto=PROTO):
    return [r for r in routes if is_ours(r, proto)]


def our_rules(ns, proto=PROTO):
    """Our policy rules in ns (IPv4), as (priority, "dst/len", table, suppress_prefixlen)."""
    return [(r["priority"], "%s/%d" % (r["dst"], r["dstlen"]) if "dst" in r else "all", str(r["table"]),
             r.get("suppress_prefixlen"))
            for r in ns.ipj("rule", "show") if str(r.get("protocol")) == str(proto)]


def table_name(t):
    return {254: "main", 255: "local", 253: "default"}.get(int(t), str(t))


def find_route(routes, dst, table="main", proto=None):
    """Routes for dst in one table (ours live in TABLE: pass table=TABLE)."""
    return [r for r in routes if r.get("dst") == dst and str(r.get("table", "main")) == str(table)
            and (proto is None or proto_of(r) == str(proto))]


def route_matches_change(r, c):
    """Does a kernel route (ip -j) carry everything an add-route change promises?"""
    return (r.get("dst") == c["dst"] and r.get("type") == c["type"] and
            r.get("gateway") == c["gateway"] and r.get("dev") == c["dev"] and
            str(r.get("table", "main")) == table_name(c.get("table", 254)) and
            proto_of(r) == str(c.get("protocol", PROTO)) and
            int(r.get("metric", 0)) == int(c.get("metric", METRIC)))


def fmt_routes(routes):
    return "\n".join("  " + json.dumps(r, sort_keys=True) for r in routes) or "  (none)"


# ---------------------------------------------------------------- Calico resources

def ippool(name, cidr, block_size=28, nat=False, ipip="Never", vxlan="Never",
           selector="all()", disabled=False):
    """An IPPool as `calicoctl get ippool -o yaml` prints it (an item of a List)."""
    lines = ["- apiVersion: projectcalico.org/v3",
             "  kind: IPPool",
             "  metadata:",
             "    name: %s" % name,
             "  spec:",
             "    blockSize: %d" % block_size,
             "    cidr: %s" % cidr,
             "    ipipMode: %s" % ipip,
             "    vxlanMode: %s" % vxlan,
             "    nodeSelector: %s" % json.dumps(selector)]
    if nat:
        lines.append("    natOutgoing: true")     # Calico omits false fields
    if disabled:
        lines.append("    disabled: true")
    return "\n".join(lines)


def calico_node(name, ipv4, labels=None):
    labels = dict(labels or {})
    labels.setdefault("kubernetes.io/hostname", name)
    lines = ["- apiVersion: projectcalico.org/v3",
             "  kind: Node",
             "  metadata:",
             "    labels:"]
    lines += ["      %s: %s" % (k, json.dumps(v)) for k, v in sorted(labels.items())]
    lines += ["    name: %s" % name,
              "  spec:",
              "    bgp:",
              "      ipv4Address: %s" % ipv4]
    return "\n".join(lines)


def block_affinity(node, cidr, state="confirmed"):
    return "\n".join([
        "- apiVersion: crd.projectcalico.org/v1",
        "  kind: BlockAffinity",
        "  metadata:",
        "    name: %s-%s" % (node, cidr.replace(".", "-").replace("/", "-")),
        "  spec:",
        "    cidr: %s" % cidr,
        '    deleted: "false"',
        "    node: %s" % node,
        "    state: %s" % state])


def yaml_list(kind, items, api="projectcalico.org/v3"):
    return "apiVersion: %s\nitems:\n%s\nkind: %s\nmetadata:\n  resourceVersion: \"1\"\n" % (
        api, "\n".join(items), kind)


# ---------------------------------------------------------------- the daemon

class Result:
    def __init__(self, cmd, p):
        self.cmd, self.rc, self.stdout, self.stderr = cmd, p.returncode, p.stdout, p.stderr

    def __str__(self):
        return "$ %s\nexit %d\n--- stdout\n%s--- stderr\n%s" % (
            " ".join(self.cmd), self.rc, self.stdout, self.stderr)

    def json(self):
        try:
            return json.loads(self.stdout)
        except ValueError as e:
            raise AssertionError("output is not one JSON document (%s):\n%s" % (e, self)) from e


class Daemon:
    """calico-underlayd for one node: its settings, resources and runtime folder in a
    temporary directory, run inside the node's namespace."""

    def __init__(self, ns, node_name, uplink="eth0", **settings):
        self.ns = ns
        self.bin = daemon_path()
        self.dir = tempfile.mkdtemp(prefix=PREFIX)
        _tmpdirs.append(self.dir)
        self.resources = os.path.join(self.dir, "resources.d")
        self.runtime = os.path.join(self.dir, "run")
        os.mkdir(self.resources)
        os.mkdir(self.runtime)
        self.config = os.path.join(self.dir, "config.yaml")
        self.settings = {"nodeName": node_name, "uplink": uplink, "resources": ["resources.d"]}
        self.settings.update(settings)
        self.write_settings()

    def write_settings(self, **changes):
        self.settings.update(changes)
        with open(self.config, "w") as f:
            for k, v in self.settings.items():
                f.write("%s: %s\n" % (k, json.dumps(v)))   # JSON is YAML

    def write_resource(self, name, text):
        with open(os.path.join(self.resources, name), "w") as f:
            f.write(text)

    def clear_resources(self):
        for n in os.listdir(self.resources):
            os.unlink(os.path.join(self.resources, n))

    @property
    def record_path(self):
        return os.path.join(self.runtime, "state")

    def record(self):
        """The runtime record as a dict, or None when there is none."""
        if not os.path.exists(self.record_path):
            return None
        with open(self.record_path) as f:
            return dict(l.strip().split("=", 1) for l in f if "=" in l and not l.startswith("#"))

    def env(self):
        env = {"RUNTIME_DIRECTORY": self.runtime}
        for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
            if k in os.environ:
                env[k] = os.environ[k]
        return env

    def start_background(self):
        """Daemon mode, in the background, its log (stderr: no journal here) in a file."""
        self.stop_background()
        self.bg_log = open(os.path.join(self.dir, "daemon.log"), "a")
        self.bg = popen_logged(self.ns, self.bg_log, *(DAEMON_WRAPPER + [self.bin, "--config", self.config]),
                               env=self.env())

    def stop_background(self):
        """SIGTERM (the host is left as it is), then wait."""
        bg = getattr(self, "bg", None)
        if bg is not None:
            if bg.poll() is None:
                bg.send_signal(signal.SIGTERM)
                try:
                    bg.wait(timeout=20 * TIMEOUT_SCALE)
                except subprocess.TimeoutExpired:
                    pass
            stop(bg)
            self.bg_log.close()
            self.bg = None

    def background_log(self):
        """The background daemon's log lines so far."""
        path = os.path.join(self.dir, "daemon.log")
        if not os.path.exists(path):
            return []
        with open(path) as f:
            return f.read().splitlines()

    def run(self, *args, timeout=60):
        cmd = DAEMON_WRAPPER + [self.bin, "--config", self.config] + list(args)
        env = self.env()
        p = self.ns.exec(*cmd, check=False, timeout=timeout * TIMEOUT_SCALE, env=env)
        res = Result(["(in %s)" % self.ns.name] + cmd, p)
        if WRAPPER_ERROR_RC is not None and res.rc == WRAPPER_ERROR_RC:
            raise AssertionError("DAEMON_WRAPPER reported errors (exit %d)\n%s" % (res.rc, res))
        return res


# ---------------------------------------------------------------- snapshots

def snapshot(ns, devs=("eth0",)):
    """Everything --check must leave alone, as comparable values."""
    snap = {"routes": ns.routes(), "links": ns.links(), "addrs": ns.addrs()}
    names = {l["ifname"] for l in snap["links"]}
    for dev in devs:
        # None for a device that is gone, so the comparison shows it instead of failing here
        present = dev in names
        snap["proxy_arp " + dev] = ns.proxy_arp(dev) if present else None
        snap["proxy_delay " + dev] = ns.proxy_delay(dev) if present else None
        snap["sysctls " + dev] = ns.dev_sysctls(dev) if present else None
    snap["ip_forward"] = ns.sysctl("net/ipv4/ip_forward")
    return snap


# ---------------------------------------------------------------- test case base

class Lan:
    """The LAN and Calico's pod wiring, for an NsTestCase with a bridge br0 in self.lan
    (test_traffic.py, test_bird.py)."""

    def uplink(self, ns, port, addr):
        veth(ns, "eth0", self.lan, port)
        self.lan.ip("link", "set", port, "master", "br0")
        ns.ip("addr", "add", addr + "/24", "dev", "eth0")
        ns.wait_link_up("eth0")

    def pod(self, node, cali, pod_ip, role):
        """A pod as Calico's CNI plugin wires it."""
        pod = self.new_ns(role)
        veth(pod, "eth0", node, cali)
        pod.ip("addr", "add", pod_ip + "/32", "dev", "eth0")
        pod.ip("route", "add", "169.254.1.1", "dev", "eth0", "scope", "link")
        pod.ip("route", "add", "default", "via", "169.254.1.1", "dev", "eth0")
        node.write_sysctl("net/ipv4/conf/%s/proxy_arp" % cali, 1)
        node.write_sysctl("net/ipv4/neigh/%s/proxy_delay" % cali, 0)
        node.ip("route", "add", pod_ip + "/32", "dev", cali, "scope", "link")
        pod.wait_link_up("eth0")
        node.wait_link_up(cali)
        return pod


class NsTestCase(unittest.TestCase):
    """One fresh set of namespaces per test; `with self.step(...)` names the step
    in a failure together with the `ip` state of the namespaces involved."""

    maxDiff = None

    def setUp(self):
        self._watch = []
        self.addCleanup(self._cleanup_namespaces)

    def _cleanup_namespaces(self):
        for ns in self._watch:
            ns.delete()
        left = [n for n in leftover_namespaces() if any(n == ns.name for ns in self._watch)]
        self._watch = []
        if left:
            raise AssertionError("namespaces left behind: %s" % left)

    def new_ns(self, role, describe=True):
        ns = Netns(role)
        self._watch.append(ns)
        ns._describe = describe
        return ns

    def log(self, msg):
        sys.stderr.write("    %s\n" % msg)
        sys.stderr.flush()

    @contextlib.contextmanager
    def step(self, what, devs=("eth0",)):
        self.log("step: " + what)
        try:
            yield
        except AssertionError as e:
            state = "\n".join(ns.describe(devs) for ns in self._watch if ns._describe)
            raise AssertionError("STEP FAILED: %s\n%s\n\n%s" % (what, e, state)) from None

    # -- assertions used by several files

    def assertRc(self, result, rc):
        if result.rc != rc:
            raise AssertionError("expected exit %d\n%s" % (rc, result))

    def assertSame(self, before, after, what):
        if before != after:
            raise AssertionError("%s changed:\n%s" % (what, json_diff(before, after)))
