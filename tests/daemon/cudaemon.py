"""Helpers for the daemon-mode tests and the benchmark: a throwaway network
namespace with a veth uplink, the real calico-underlayd running inside it, a
NOTIFY_SOCKET the test owns, and polling helpers that wait on kernel state.

Standard library only. Every namespace, process and temporary folder created here
is registered for cleanup (atexit as a last resort, callers clean up in finally or
addCleanup first). Nothing here touches the host's own network: every `ip` call
runs inside a namespace of ours.
"""
import atexit
import ctypes
import itertools
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

SRCDIR = os.environ.get("SRCDIR") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def _find_daemon():
    if os.environ.get("DAEMON"):
        return os.environ["DAEMON"]
    for b in ("build-asan", "build", "/tmp/b-dmn"):
        p = os.path.join(SRCDIR, b, "daemon", "calico-underlayd")
        if os.access(p, os.X_OK):
            return p
    return "calico-underlayd"


DAEMON = _find_daemon()
PROTO = 211  # the default routeProtocol
TABLE = 252  # the default routeTable: where our routes live
SKIP = 77  # meson's "skipped" exit status

# Under valgrind (`meson test --setup valgrind`, tests/meson.build): DAEMON_WRAPPER is an
# argv prefix for every daemon started here, and CU_TIMEOUT_SCALE stretches every wait on
# it (wait_until, stop) and every "nothing happens for N seconds" (scaled()): the daemon
# runs tens of times slower, so the same checks need the same amount of its work, not
# the same wall time. Daemon.close() stops a wrapped daemon with SIGTERM (not SIGKILL)
# so that the wrapper's exit checks run, and fails on its --error-exitcode.
DAEMON_WRAPPER = shlex.split(os.environ.get("DAEMON_WRAPPER", ""))
TIMEOUT_SCALE = float(os.environ.get("CU_TIMEOUT_SCALE") or 1)
WRAPPER_ERROR_RC = next((int(a.split("=", 1)[1]) for a in DAEMON_WRAPPER
                         if a.startswith("--error-exitcode=")), None)


def scaled(seconds):
    """A duration the daemon's speed matters to, stretched by CU_TIMEOUT_SCALE."""
    return seconds * TIMEOUT_SCALE

_counter = itertools.count()
_namespaces = set()
_procs = set()
_tmpdirs = set()


def require_root():
    """Exit 77 (meson: skipped) when the test cannot create namespaces."""
    if os.geteuid() != 0:
        print("SKIP: needs root (network namespaces)", file=sys.stderr)
        sys.exit(SKIP)
    if not shutil.which("ip"):
        print("SKIP: needs iproute2", file=sys.stderr)
        sys.exit(SKIP)


def wait_until(fn, timeout=10.0, interval=0.01, what="condition"):
    """Poll fn() until it returns something truthy; return that value. Raise
    AssertionError with `what` (and the last value) after `timeout` seconds (scaled)."""
    timeout = scaled(timeout)
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = fn()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
        time.sleep(interval)


def make_tmpdir(prefix="cu-dm-"):
    d = tempfile.mkdtemp(prefix=prefix)
    os.chmod(d, 0o755)
    _tmpdirs.add(d)
    return d


def remove_tmpdir(d):
    shutil.rmtree(d, ignore_errors=True)
    _tmpdirs.discard(d)


# ---------------------------------------------------------------- namespaces


class Netns:
    """A network namespace `cu-dm-<pid>-<n>` with lo up and, after setup_uplink(),
    a veth pair eth0 (192.168.10.11/24, default route via .1) / lan0 inside it."""

    def __init__(self):
        self.name = f"cu-dm-{os.getpid()}-{next(_counter)}"
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        _namespaces.add(self.name)
        self.ip("link", "set", "lo", "up")

    def close(self):
        if self.name in _namespaces:
            subprocess.run(["ip", "netns", "del", self.name], stderr=subprocess.DEVNULL)
            _namespaces.discard(self.name)

    def run(self, *args, check=True, capture=True, input=None):
        r = subprocess.run(["ip", "netns", "exec", self.name, *args], check=False, input=input,
                           stdout=subprocess.PIPE if capture else None,
                           stderr=subprocess.PIPE if capture else None, text=True)
        if check and r.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({r.returncode}): {r.stderr.strip()}")
        return r.stdout if capture else r.returncode

    def ip(self, *args, check=True):
        r = subprocess.run(["ip", "-n", self.name, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
        if check and r.returncode != 0:
            raise RuntimeError(f"ip {' '.join(args)} failed: {r.stderr.strip()}")
        return r.stdout

    def ipj(self, *args):
        out = self.ip("-j", *args)
        return json.loads(out) if out.strip() else []

    def setup_uplink(self, addr="192.168.10.11/24", gw="192.168.10.1"):
        self.ip("link", "add", "eth0", "type", "veth", "peer", "name", "lan0")
        self.ip("addr", "add", addr, "dev", "eth0")
        self.ip("link", "set", "eth0", "up")
        self.ip("link", "set", "lan0", "up")
        self.ip("route", "add", "default", "via", gw, "dev", "eth0")
        self.sysctl_set("net.ipv4.ip_forward", 1)

    def add_vxlan(self, name="vxlan.calico"):
        self.ip("link", "add", name, "type", "vxlan", "id", "4096", "dstport", "4789", "dev", "eth0")
        self.ip("link", "set", name, "up")

    def sysctl_path(self, key):
        return "/proc/sys/" + key.replace(".", "/")

    def sysctl(self, key):
        return int(self.run("cat", self.sysctl_path(key)).strip())

    def sysctl_set(self, key, value):
        self.run("sh", "-c", f"echo {value} > {self.sysctl_path(key)}")

    def proxy_arp(self, dev="eth0"):
        try:
            return self.sysctl(f"net.ipv4.conf.{dev}.proxy_arp")
        except (RuntimeError, ValueError):
            return None

    def link_exists(self, name):
        # A dump matched by name: never `ip link show NAME` (a by-name lookup may load
        # a tunnel module, DESIGN.md §7).
        return any(l.get("ifname") == name for l in self.ipj("link", "show"))

    def routes(self, proto=PROTO, table=None):
        """{dst: route dict} of the routes carrying `proto` (None: every route), in `table`
        (default: ours for our protocol, main for any other). Listed from every table:
        `ip route show table 252` fails while the table does not exist yet."""
        if table is None:
            table = TABLE if proto == PROTO else "main"
        args = ["route", "show", "table", "all"]
        if proto is not None:
            args += ["proto", str(proto)]
        return {r["dst"]: r for r in self.ipj(*args)
                if str(r.get("table", "main")) == str(table) and r.get("type") != "local"}

    def route_summary(self, proto=PROTO):
        """A comparable text form of our routes: dst, type, gateway, device."""
        out = []
        for dst, r in sorted(self.routes(proto).items()):
            out.append(" ".join(str(x) for x in (dst, r.get("type", "unicast"), r.get("gateway", "-"),
                                                 r.get("dev", "-"), r.get("metric", "-"))))
        return out


# ---------------------------------------------------------------- notify socket


class NotifySocket:
    """A unix datagram socket standing in for systemd's NOTIFY_SOCKET. Every datagram
    is kept with its arrival time; wait_for() polls the list."""

    def __init__(self, directory):
        self.path = os.path.join(directory, f"notify.{next(_counter)}.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.sock.bind(self.path)
        os.chmod(self.path, 0o777)  # like systemd's: a daemon running as another user may send
        self.sock.settimeout(0.1)
        self.messages = []  # (monotonic time, {key: value}, raw text)
        self.lock = threading.Lock()
        self.running = True
        self.thread = threading.Thread(target=self._reader, daemon=True)
        self.thread.start()

    def _reader(self):
        while self.running:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            text = data.decode("utf-8", "replace")
            fields = {}
            for line in text.split("\n"):
                if "=" in line:
                    k, v = line.split("=", 1)
                    fields[k] = v
            with self.lock:
                self.messages.append((time.monotonic(), fields, text))

    def close(self):
        self.running = False
        self.thread.join(1)
        self.sock.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass

    def snapshot(self, since=0):
        with self.lock:
            return list(self.messages[since:])

    def count(self):
        with self.lock:
            return len(self.messages)

    def values(self, key, since=0):
        return [f[key] for _, f, _ in self.snapshot(since) if key in f]

    def status(self):
        v = self.values("STATUS")
        return v[-1] if v else None

    def wait_for(self, key, pred=lambda v: True, since=0, timeout=10.0, what=None):
        def hit():
            for _, f, _ in self.snapshot(since):
                if key in f and pred(f[key]):
                    return f[key]
            return None
        return wait_until(hit, timeout, what=what or f"{key}= notification")

    def wait_status(self, pred, since=0, timeout=10.0, what="STATUS="):
        """Wait until the latest STATUS= satisfies pred (a substring or a function)."""
        check = (lambda s: pred in s) if isinstance(pred, str) else pred

        def hit():
            s = self.values("STATUS", since)
            return s[-1] if s and check(s[-1]) else None
        return wait_until(hit, timeout, what=f"{what} matching {pred!r} (got {self.status()!r})")


# ---------------------------------------------------------------- configuration


POOL = """\
apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: underlay
spec:
  cidr: 192.168.10.128/25
  blockSize: 28
  ipipMode: Never
  vxlanMode: Never
  natOutgoing: false
  nodeSelector: all()
"""

NODES = """\
apiVersion: projectcalico.org/v3
kind: Node
metadata:
  name: node1
spec:
  bgp:
    ipv4Address: 192.168.10.11/24
---
apiVersion: projectcalico.org/v3
kind: Node
metadata:
  name: node2
spec:
  bgp:
    ipv4Address: 192.168.10.12/24
"""


def affinity(node, cidr):
    name = f"{node}-{cidr.replace('.', '-').replace('/', '-')}"
    return f"""\
apiVersion: crd.projectcalico.org/v1
kind: BlockAffinity
metadata:
  name: {name}
spec:
  cidr: {cidr}
  deleted: "false"
  node: {node}
  state: confirmed
"""


def affinities(*pairs):
    return "---\n".join(affinity(n, c) for n, c in pairs)


# node1's own block (a blackhole route) and one of node2's (via 192.168.10.12).
BLOCKS = affinities(("node1", "192.168.10.128/28"), ("node2", "192.168.10.144/28"))
OWN_BLOCK = "192.168.10.128/28"
PEER_BLOCK = "192.168.10.144/28"
EXTRA_BLOCK = "192.168.10.160/28"  # a block the tests add: node2's, via 192.168.10.12
DEFAULT_FILES = {"10-pools.yaml": POOL, "20-nodes.yaml": NODES, "30-blocks.yaml": BLOCKS}


def write_file(path, text):
    """Write in place (open, truncate, write, close): the editor-less way."""
    with open(path, "w") as f:
        f.write(text)


def write_renamed(path, text):
    """Write a temporary file in the same folder, then rename it over path."""
    tmp = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


class Fixture:
    """A settings file and a resources folder in a fresh temporary directory.

    layout "dir": DIR/etc/config.yaml, resources DIR/etc/resources.d/*.yaml.
    layout "configmap": resources DIR/etc/cm holding `..data -> ..<timestamp>` and
    one symlink per file through ..data, as the kubelet mounts a ConfigMap."""

    def __init__(self, files=None, layout="dir", settings=None, resources=None):
        self.dir = make_tmpdir()
        self.etc = os.path.join(self.dir, "etc")
        self.run = os.path.join(self.dir, "run")
        os.makedirs(self.etc)
        os.makedirs(self.run, mode=0o700)
        self.layout = layout
        self.config = os.path.join(self.etc, "config.yaml")
        files = DEFAULT_FILES if files is None else files
        if layout == "configmap":
            self.res = os.path.join(self.etc, "cm")
            os.makedirs(self.res)
            self._cm_gen = 0
            self.configmap_swap(files)
        else:
            self.res = resources or os.path.join(self.etc, "resources.d")
            os.makedirs(self.res, exist_ok=True)
            for name, text in files.items():
                write_file(os.path.join(self.res, name), text)
        body = settings if settings is not None else (
            "nodeName: node1\n"
            "uplink: auto\n"
            f"resources:\n  - {self.res}\n"
            "resyncSeconds: 0\n")
        write_file(self.config, body)

    def path(self, name):
        return os.path.join(self.res, name)

    def configmap_swap(self, files):
        """What the kubelet does on a ConfigMap update: a new timestamped folder,
        a new ..data_tmp symlink to it renamed over ..data, then the per-key
        symlinks (created once, they point through ..data) and the old folder removed."""
        self._cm_gen += 1
        ts = f"..2024_01_01_00_00_{self._cm_gen:02d}.{os.getpid()}"
        tsdir = os.path.join(self.res, ts)
        os.makedirs(tsdir)
        for name, text in files.items():
            write_file(os.path.join(tsdir, name), text)
        data = os.path.join(self.res, "..data")
        old = os.readlink(data) if os.path.islink(data) else None
        tmp = os.path.join(self.res, "..data_tmp")
        os.symlink(ts, tmp)
        os.rename(tmp, data)
        for name in files:
            link = os.path.join(self.res, name)
            if not os.path.islink(link):
                os.symlink(os.path.join("..data", name), link)
        for name in os.listdir(self.res):
            link = os.path.join(self.res, name)
            if os.path.islink(link) and not name.startswith("..") and name not in files:
                os.unlink(link)
        if old:
            shutil.rmtree(os.path.join(self.res, old))

    def close(self):
        remove_tmpdir(self.dir)


# ---------------------------------------------------------------- the daemon


class Daemon:
    """calico-underlayd running inside a namespace, exec'd directly (its pid is the
    Popen's), with a NotifySocket of ours and stderr in a file."""

    def __init__(self, ns, fixture, watchdog_usec=None, env=None, log_level="debug", wrapper=None, prelude=""):
        """wrapper: argv prefix the daemon is exec'd through; prelude: shell commands
        run inside the namespace (and its private mount namespace) before that."""
        self.ns = ns
        self.fixture = fixture
        self.notify = NotifySocket(fixture.dir)
        self.stderr_path = os.path.join(fixture.dir, f"stderr.{next(_counter)}")
        self.stderr_file = open(self.stderr_path, "w")
        e = {
            "RUNTIME_DIRECTORY": fixture.run,
            "NOTIFY_SOCKET": self.notify.path,
            "CALICO_UNDERLAY_LOG_LEVEL": log_level,
        }
        if watchdog_usec:
            e["WATCHDOG_USEC"] = str(watchdog_usec)
        e.update(env or {})
        assigns = [f"{k}={v}" for k, v in e.items()]
        # sd_notify() and sd_watchdog_enabled() check WATCHDOG_PID against getpid():
        # the shell exports its own pid and execs, so the daemon keeps that pid.
        wd = 'export WATCHDOG_PID=$$; ' if watchdog_usec else ''
        cmd = (wrapper or []) + DAEMON_WRAPPER + [DAEMON, "--config", fixture.config]
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns.name, "env", *assigns, "sh", "-c", wd + prelude + 'exec "$@"', "sh", *cmd],
            stdin=subprocess.DEVNULL, stdout=self.stderr_file, stderr=self.stderr_file)
        self.pid = self.proc.pid
        _procs.add(self.proc)

    def wait_ready(self, timeout=15.0):
        def ready_or_dead():
            if "1" in self.notify.values("READY"):
                return True
            if self.proc.poll() is not None:
                raise AssertionError(f"the daemon exited ({self.proc.returncode}) before READY=1:\n"
                                     f"{self.stderr()}")
            return False
        try:
            wait_until(ready_or_dead, timeout, what="READY=1")
        except AssertionError:
            raise AssertionError(f"no READY=1; exit={self.proc.poll()} stderr:\n{self.stderr()}")
        return self

    def stderr(self):
        self.stderr_file.flush()
        with open(self.stderr_path) as f:
            return f.read()

    def stderr_lines(self, needle):
        return [l for l in self.stderr().splitlines() if needle in l]

    def passes(self):
        """How many reconcile passes the daemon has logged (debug level)."""
        return len(self.stderr_lines("reconcile pass"))

    def send(self, sig):
        self.proc.send_signal(sig)

    def cpu_ticks(self):
        """utime + stime of the daemon, in clock ticks (/proc/PID/stat fields 14, 15)."""
        with open(f"/proc/{self.pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return int(rest[11]) + int(rest[12])

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Signal the daemon and return its exit status (None if it had to be killed
        after `timeout` seconds, scaled)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(scaled(timeout))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return None
        return self.proc.returncode

    def close(self):
        """Stop the daemon (SIGKILL; SIGTERM under DAEMON_WRAPPER) and release its
        files. AssertionError if the wrapper reported errors, or if the wrapped daemon
        did not exit on SIGTERM."""
        hung = bool(DAEMON_WRAPPER) and self.proc.poll() is None and self.stop(signal.SIGTERM) is None
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        _procs.discard(self.proc)
        report = self.wrapper_report(hung) if DAEMON_WRAPPER else None
        self.notify.close()
        self.stderr_file.close()
        if report:
            raise AssertionError(report)

    def wrapper_report(self, hung=False):
        """What DAEMON_WRAPPER found, or None. Its --error-exitcode says so when the
        daemon exited; after SIGKILL (the test's) there is no exit code, so any report
        line of valgrind's (`==PID== `) other than a warning counts."""
        rc = self.proc.returncode
        text = self.stderr()
        lines = re.findall(r"(?m)^==\d+== .*$", text)
        found = [l for l in lines if not re.match(r"==\d+== +Warning:", l) and l.strip("=0123456789 ")]
        if hung:
            why = f"the daemon did not exit within {scaled(10):.0f} s of SIGTERM"
        elif rc == WRAPPER_ERROR_RC:
            why = f"DAEMON_WRAPPER reported errors (exit {rc})"
        elif rc == -signal.SIGKILL and found:
            why = "DAEMON_WRAPPER reported errors before the daemon was killed"
        else:
            return None
        return (f"{why}\n--- its report:\n" + "\n".join(lines) +
                f"\n--- the end of the daemon's stderr:\n{text[-4000:]}")


def close_daemons(daemons, failed):
    """A case's tearDown: close every daemon (printing its stderr when the case
    failed) and return what DAEMON_WRAPPER reported for any of them, the others
    closed first."""
    errors = []
    for d in daemons:
        if failed:
            sys.stderr.write(f"--- daemon stderr ({d.stderr_path}):\n{d.stderr()}\n")
        try:
            d.close()
        except AssertionError as e:
            errors.append(str(e))
    return errors


@atexit.register
def _cleanup_everything():
    for p in list(_procs):
        if p.poll() is None:
            p.kill()
            p.wait()
    for ns in list(_namespaces):
        subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)
    for d in list(_tmpdirs):
        shutil.rmtree(d, ignore_errors=True)


def _on_signal(signum, frame):
    _cleanup_everything()
    sys.exit(128 + signum)


def install_signal_cleanup():
    """SIGTERM/SIGINT (meson's timeout, ^C) still clean up namespaces."""
    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, _on_signal)


# ---------------------------------------------------------------- setns, for the benchmark

CLONE_NEWNET = 0x40000000


def enter_netns(name):
    """Move the calling thread (and /proc/sys/net as it reads it) into namespace name."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))
    finally:
        os.close(fd)


def metric(path, key):
    """One sample of a Prometheus text file (the daemon's metricsFile): its value for the
    series `key` (name with labels), or None while the file or the series is absent."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return None
    for line in lines:
        k, _, v = line.rpartition(" ")
        if k == key:
            return float(v)
    return None
