"""Helpers for the etcd datastore tests: a real etcd (Debian's etcd-server) inside the
test's network namespace on 127.0.0.1, with TLS and client certificates made here
with the openssl CLI; Calico-format keys; etcdctl to change them; a TCP relay
(tcpproxy.py) to break the daemon's streams on command.

Standard library only. Builds on tests/daemon/cudaemon.py (namespaces, the
NOTIFY_SOCKET, the daemon): every process and folder made here is registered for
cleanup (atexit as a last resort; the tests clean up in addCleanup first).
"""
import atexit
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "daemon"))
import cudaemon as cu  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ETCD_PORT = 2379   # each test has a namespace of its own: its loopback is free
PEER_PORT = 2380
PROXY_PORT = 2479
DEAD_PORT = 2399   # nothing listens there: the failover case
RES = "/calico/resources/v3/projectcalico.org/"

_procs = set()


def require():
    """Exit 77 (skipped) without root, etcd, etcdctl or openssl; install them with apt
    when they are missing and we are root (tests/deps.sh lists them)."""
    cu.require_root()
    tools = {"etcd": "etcd-server", "etcdctl": "etcd-client", "openssl": "openssl"}
    missing = [pkg for tool, pkg in tools.items() if not shutil.which(tool)]
    if missing and shutil.which("apt-get"):
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
                       env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    still = [tool for tool in tools if not shutil.which(tool)]
    if still:
        print(f"SKIP: needs {', '.join(still)} (Debian: etcd-server etcd-client openssl)", file=sys.stderr)
        sys.exit(cu.SKIP)


# ---------------------------------------------------------------- certificates


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def make_pki(d):
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all P-256,
    valid for a day. Returns {name: path}. The server's certificate is for clients too:
    etcd's JSON gateway connects to etcd's own gRPC port with it, and with
    --client-cert-auth a server-only certificate is refused there (HTTP 503)."""
    os.makedirs(d, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "1", "-subj", "/CN=cu-test-ca",
             cwd=d)
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n"),
                      ("client", "extendedKeyUsage=clientAuth\n")):
        with open(os.path.join(d, name + ".ext"), "w") as f:
            f.write(ext)
        _openssl("req", *ec, "-keyout", name + ".key", "-out", name + ".csr", "-subj", f"/CN=cu-test-{name}", cwd=d)
        _openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", name + ".crt", "-days", "1", "-extfile", name + ".ext", cwd=d)
    for f in os.listdir(d):
        os.chmod(os.path.join(d, f), 0o644)  # the daemon may run as another user
    return {n: os.path.join(d, n) for n in ("ca.crt", "server.crt", "server.key", "client.crt", "client.key")}


# ---------------------------------------------------------------- etcd


class Etcd:
    """etcd in namespace ns, TLS with client certificates, data in d/data; with pki
    None, plain HTTP (user: "name:password" for etcdctl once authentication is on)."""

    def __init__(self, ns, d, pki):
        self.ns, self.dir, self.pki = ns, d, pki
        self.url = f"{'https' if pki else 'http'}://127.0.0.1:{ETCD_PORT}"
        self.user = None
        self.proc = None
        self.extra = []  # more etcd flags for the next start()
        self.log_path = os.path.join(d, "etcd.log")

    def start(self, timeout=20.0):
        p = self.pki
        peer = f"http://127.0.0.1:{PEER_PORT}"
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns.name, "etcd", "--name", "cu", "--data-dir", os.path.join(self.dir, "data"),
             "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
             "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
             "--initial-cluster", f"cu={peer}", "--log-level", "warn",
             *(["--cert-file", p["server.crt"], "--key-file", p["server.key"], "--client-cert-auth",
                "--trusted-ca-file", p["ca.crt"]] if p else []), *self.extra],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        _procs.add(self.proc)
        cu.wait_until(lambda: self._healthy(), timeout, interval=0.1, what="etcd to answer")
        return self

    def _healthy(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"etcd exited ({self.proc.returncode}):\n{self.log()}")
        r = self.ctl("endpoint", "health", check=False)
        return r.returncode == 0

    def log(self):
        with open(self.log_path) as f:
            return f.read()[-4000:]

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            _procs.discard(self.proc)

    def ctl(self, *args, input=None, check=True):
        p = self.pki
        tls = ["--cacert", p["ca.crt"], "--cert", p["client.crt"], "--key", p["client.key"]] if p else []
        user = ["--user", self.user] if self.user else []
        r = subprocess.run(["ip", "netns", "exec", self.ns.name, "etcdctl", "--endpoints", self.url, *tls, *user,
                            "--command-timeout", "5s", *args],
                           input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env=dict(os.environ, ETCDCTL_API="3"))
        if check and r.returncode != 0:
            raise RuntimeError(f"etcdctl {' '.join(args)}: {r.stderr.strip()}")
        return r

    def put(self, key, value):
        """value: a dict (stored as compact JSON, as libcalico-go writes it) or a str."""
        if not isinstance(value, str):
            value = json.dumps(value, separators=(",", ":"))
        # After "--": a value may start with "-" (and may be empty).
        self.ctl("put", "--", key, value)

    def put_many(self, items):
        """Many keys at once: one Python process inside the namespace posts them to
        etcd's JSON gateway over one TLS connection, 100 to a transaction (etcdctl would
        be a process each)."""
        script = r"""
import base64, http.client, json, ssl, sys
ca, cert, key, port = sys.argv[1:5]
ctx = ssl.create_default_context(cafile=ca)
ctx.load_cert_chain(cert, key)
conn = http.client.HTTPSConnection("127.0.0.1", int(port), context=ctx)
def b64(s):
    return base64.b64encode(s.encode()).decode()
items = [json.loads(line) for line in sys.stdin]
# Transactions of 100 puts (etcd's --max-txn-ops defaults to 128).
for i in range(0, len(items), 100):
    ops = [{"request_put": {"key": b64(k), "value": b64(v)}} for k, v in items[i:i + 100]]
    conn.request("POST", "/v3/kv/txn", json.dumps({"success": ops}), {"Content-Type": "application/json"})
    r = conn.getresponse()
    r.read()
    if r.status != 200:
        sys.exit("put %s...: HTTP %d" % (items[i][0], r.status))
"""
        lines = "".join(json.dumps([k, v if isinstance(v, str) else json.dumps(v, separators=(",", ":"))]) + "\n"
                        for k, v in items)
        p = self.pki
        subprocess.run(["ip", "netns", "exec", self.ns.name, sys.executable, "-c", script, p["ca.crt"],
                        p["client.crt"], p["client.key"], str(ETCD_PORT)], input=lines, text=True, check=True,
                       timeout=120)

    def delete(self, key):
        self.ctl("del", key)

    def revision(self):
        out = self.ctl("get", "/", "--prefix", "--keys-only", "--limit", "1", "-w", "json").stdout
        return int(json.loads(out)["header"]["revision"])

    def compact(self, rev):
        self.ctl("compact", str(rev), "--physical")

    def close(self):
        self.stop()


# ---------------------------------------------------------------- Calico keys


def pool(name="underlay", cidr="192.168.10.128/25", block_size=28, nat=False, **extra):
    spec = {"cidr": cidr, "blockSize": block_size, "ipipMode": "Never", "vxlanMode": "Never",
            "natOutgoing": nat, "nodeSelector": "all()", "allowedUses": ["Workload", "Tunnel"]}
    spec.update(extra)
    return RES + "ippools/" + name, {
        "kind": "IPPool", "apiVersion": "projectcalico.org/v3",
        "metadata": {"name": name, "uid": "0b4f1c2e-0000-4000-8000-000000000001",
                     "creationTimestamp": "2026-11-01T10:00:00Z"},
        "spec": spec}


def node(name, addr, addr6=None):
    bgp = {"ipv4Address": addr}
    if addr6:
        bgp["ipv6Address"] = addr6
    return RES + "nodes/" + name, {
        "kind": "Node", "apiVersion": "projectcalico.org/v3",
        "metadata": {"name": name, "uid": "0b4f1c2e-0000-4000-8000-0000000000" + name[-2:].rjust(2, "0"),
                     "creationTimestamp": "2026-11-01T10:00:00Z",
                     "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}},
        "spec": {"bgp": bgp, "orchRefs": [{"nodeName": name, "orchestrator": "k8s"}]},
        "status": {}}


def felix_default():
    return RES + "felixconfigurations/default", {
        "kind": "FelixConfiguration", "apiVersion": "projectcalico.org/v3",
        "metadata": {"name": "default", "creationTimestamp": "2026-11-01T10:00:00Z"},
        "spec": {"bpfLogLevel": "", "logSeverityScreen": "Info", "reportingInterval": "0s",
                 "ipipEnabled": False, "vxlanEnabled": False}}


def affinity_key(node_name, cidr):
    family = "ipv6" if ":" in cidr else "ipv4"
    return f"/calico/ipam/v2/host/{node_name}/{family}/block/{cidr.replace('/', '-')}"


CONFIRMED = {"state": "confirmed", "deleted": False}


def block_key(cidr):
    return f"/calico/ipam/v2/assignment/ipv4/block/{cidr.replace('/', '-')}"


def ipam_block(cidr, host, allocations, attr_nodes):
    """An IPAM block as libcalico-go stores it (lib/backend/model/block.go,
    AllocationBlock as JSON): allocations index attributes; secondary.node names the
    node that hosts the address."""
    size = len(allocations)
    return block_key(cidr), {
        "cidr": cidr, "affinity": f"host:{host}", "strictAffinity": False,
        "allocations": allocations,
        "unallocated": [i for i in range(size) if allocations[i] is None],
        "attributes": [{"handle_id": f"k8s-pod-network.{i:064x}",
                        "secondary": {"namespace": "default", "node": n, "pod": f"pod-{i}"}}
                       for i, n in enumerate(attr_nodes)],
        "sequenceNumber": 7, "sequenceNumberForAllocation": {"0": 1, "3": 6}, "deleted": False}


def load_cluster(etcd):
    """The cluster of tests/daemon: one underlay pool, node1 and node2, node1's own
    block and one of node2's (an empty value: Calico's oldest affinities), and a
    default FelixConfiguration."""
    for k, v in (pool(), node("node1", "192.168.10.11/24"), node("node2", "192.168.10.12/24"), felix_default()):
        etcd.put(k, v)
    etcd.put(affinity_key("node1", cu.OWN_BLOCK), CONFIRMED)
    etcd.put(affinity_key("node2", cu.PEER_BLOCK), "")


# ---------------------------------------------------------------- the relay


class Proxy:
    """tcpproxy.py in namespace ns: PROXY_PORT → ETCD_PORT."""

    def __init__(self, ns, d):
        self.ctl_path = os.path.join(d, "proxy.ctl")
        self.proc = subprocess.Popen(["ip", "netns", "exec", ns.name, sys.executable,
                                      os.path.join(HERE, "tcpproxy.py"), str(PROXY_PORT), str(ETCD_PORT),
                                      self.ctl_path], stdin=subprocess.DEVNULL)
        _procs.add(self.proc)
        self.url = f"https://127.0.0.1:{PROXY_PORT}"
        cu.wait_until(lambda: os.path.exists(self.ctl_path), what="the relay's control socket")

    def command(self, cmd):
        import socket
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.ctl_path)
        s.sendall((cmd + "\n").encode())
        reply = s.recv(256).decode().strip()
        s.close()
        return reply

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)
        _procs.discard(self.proc)


@atexit.register
def _cleanup():
    for p in list(_procs):
        if p.poll() is None:
            p.kill()
            p.wait()


def settings(calicoctl_cfg=None, datastore=None, extra=""):
    body = "nodeName: node1\nuplink: auto\nresyncSeconds: 0\n"
    if datastore:
        body += f"datastore: {datastore}\n"
    if calicoctl_cfg:
        body += f"calicoctlConfig: {calicoctl_cfg}\n"
    return body + extra


def calicoctl_cfg(endpoints, pki, extra=""):
    return ("apiVersion: projectcalico.org/v3\n"
            "kind: CalicoAPIConfig\n"
            "metadata:\n"
            "spec:\n"
            '  datastoreType: "etcdv3"\n'
            f'  etcdEndpoints: "{endpoints}"\n'
            f'  etcdCACertFile: "{pki["ca.crt"]}"\n'
            f'  etcdCertFile: "{pki["client.crt"]}"\n'
            f'  etcdKeyFile: "{pki["client.key"]}"\n' + extra)


def etcd_env(endpoints, pki):
    """The variables kubespray's calicoctl.sh sets."""
    return {"ETCD_ENDPOINTS": endpoints, "ETCD_CA_CERT_FILE": pki["ca.crt"],
            "ETCD_CERT_FILE": pki["client.crt"], "ETCD_KEY_FILE": pki["client.key"]}


def run_cli(ns, fixture, *args, env=None, wrap=()):
    """calico-underlayd with args inside ns, with the fixture's settings; wrap: a
    command (and its arguments) that runs the rest. Under cu.DAEMON_WRAPPER (valgrind)
    an exit with its error code is an AssertionError showing its report."""
    e = {"RUNTIME_DIRECTORY": fixture.run}
    e.update(env or {})
    cmd = [*wrap, "ip", "netns", "exec", ns.name, "env", *[f"{k}={v}" for k, v in e.items()],
           *cu.DAEMON_WRAPPER, cu.DAEMON, "--config", fixture.config, *args]
    t0 = time.monotonic()
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=cu.scaled(120))
    r.seconds = time.monotonic() - t0
    if cu.WRAPPER_ERROR_RC is not None and r.returncode == cu.WRAPPER_ERROR_RC:
        raise AssertionError(f"DAEMON_WRAPPER reported errors (exit {r.returncode}): {' '.join(cmd)}\n"
                             f"--- stdout\n{r.stdout}--- stderr\n{r.stderr}")
    return r
