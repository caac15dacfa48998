"""Helpers for the Kubernetes datastore tests: the test API server (kubeapi.py) inside
a test's network namespace on 127.0.0.1:6443, with TLS made by openssl (the same CA,
server and client certificates as the etcd tests), its fault knobs over a Unix
control socket, kubeconfig files of every kind the daemon reads, and Calico objects
in the form the API serves them (crd.projectcalico.org/v1 CRDs, core v1 Nodes).

Standard library only. Builds on tests/daemon/cudaemon.py (namespaces, cleanup) and
tests/etcd/cuetcd.py (certificates): every process and folder made here is registered
for cleanup.
"""
import json
import os
import shutil
import socket
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "daemon"))
sys.path.insert(0, os.path.join(HERE, "..", "etcd"))
import cudaemon as cu  # noqa: E402
import cuetcd as ce  # noqa: E402

API_PORT = 6443
CRD = "crd.projectcalico.org"
V3 = "projectcalico.org"
TOKEN = "cu-test-token-0123456789abcdef"


def require():
    """Exit 77 (skipped) without root or openssl."""
    cu.require_root()
    if not shutil.which("openssl"):
        print("SKIP: needs openssl", file=sys.stderr)
        sys.exit(cu.SKIP)


make_pki = ce.make_pki


def named_server_cert(pki, name):
    """A server certificate from the same CA for the DNS name `name` alone (not for
    127.0.0.1): a pki dict with it as server.crt/server.key."""
    d = os.path.dirname(pki["ca.crt"])
    base = "named-" + name
    with open(os.path.join(d, base + ".ext"), "w") as f:
        f.write(f"subjectAltName=DNS:{name}\nextendedKeyUsage=serverAuth\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    ce._openssl("req", *ec, "-keyout", base + ".key", "-out", base + ".csr", "-subj", f"/CN={name}", cwd=d)
    ce._openssl("x509", "-req", "-in", base + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", base + ".crt", "-days", "1", "-extfile", base + ".ext", cwd=d)
    for ext in (".crt", ".key"):
        os.chmod(os.path.join(d, base + ext), 0o644)
    return dict(pki, **{"server.crt": os.path.join(d, base + ".crt"), "server.key": os.path.join(d, base + ".key")})


class KubeAPI:
    """kubeapi.py in namespace ns, state and control socket in d."""

    def __init__(self, ns, d, pki, tokens=(TOKEN,), groups=(CRD,)):
        self.ns, self.dir, self.pki = ns, d, pki
        self.url = f"https://127.0.0.1:{API_PORT}"
        self.ctl_path = os.path.join(d, "kubeapi.sock")
        self.log_path = os.path.join(d, "kubeapi.log")
        args = [sys.executable, os.path.join(HERE, "kubeapi.py"), "--listen", f"127.0.0.1:{API_PORT}",
                "--cert", pki["server.crt"], "--key", pki["server.key"], "--ca", pki["ca.crt"],
                "--control", self.ctl_path, "--groups", ",".join(groups)]
        for t in tokens:
            args += ["--token", t]
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen(["ip", "netns", "exec", ns.name, *args], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=log, text=True)
        log.close()
        cu._procs.add(self.proc)
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            raise AssertionError(f"kubeapi.py did not start:\n{self.log()}")

    def log(self):
        with open(self.log_path) as f:
            return f.read()[-4000:]

    def ctl(self, op, **kw):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(30)
            s.connect(self.ctl_path)
            s.sendall((json.dumps({"op": op, **kw}) + "\n").encode())
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(1 << 20)
                if not chunk:
                    break
                buf += chunk
        ans = json.loads(buf)
        if "error" in ans:
            raise RuntimeError(f"kubeapi {op}: {ans['error']}")
        return ans

    def put(self, resource, obj, group=CRD):
        return self.ctl("put", group=group if resource != "nodes" else "", resource=resource, object=obj)

    def put_many(self, resource, objs, group=CRD):
        return self.ctl("put_many", group=group if resource != "nodes" else "", resource=resource, objects=objs)

    def delete(self, resource, name, group=CRD):
        return self.ctl("delete", group=group if resource != "nodes" else "", resource=resource, name=name)

    def rv(self):
        return int(self.ctl("rv")["resourceVersion"])

    def requests(self):
        return self.ctl("requests")["requests"]

    def watches(self):
        return self.ctl("watches")["watches"]

    def close(self):
        if self.proc.poll() is None:
            try:
                self.ctl("quit")
                self.proc.wait(10)
            except (OSError, RuntimeError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        cu._procs.discard(self.proc)


# ---------------------------------------------------------------- kubeconfig


def _yaml_str(v):
    return json.dumps(v)  # a JSON string is a YAML scalar


def kubeconfig(path, server, pki=None, token=None, token_file=None, client_cert=False, inline=False,
               context="cu", extra_contexts=(), current=None, insecure=False, tls_server_name=None):
    """Write a kubeconfig the way kubectl writes one (YAML). CA and client certificate
    as file paths or inline base64 data."""
    import base64

    def data_or_file(key, p):
        if inline:
            with open(p, "rb") as f:
                return f"    {key}-data: {base64.b64encode(f.read()).decode()}\n"
        return f"    {key}: {_yaml_str(p)}\n"

    lines = ["apiVersion: v1\nkind: Config\npreferences: {}\nclusters:\n", "- name: cu-cluster\n  cluster:\n",
             f"    server: {server}\n"]
    if insecure:
        lines.append("    insecure-skip-tls-verify: true\n")
    elif pki:
        lines.append(data_or_file("certificate-authority", pki["ca.crt"]))
    if tls_server_name:
        lines.append(f"    tls-server-name: {_yaml_str(tls_server_name)}\n")
    lines.append("users:\n- name: cu-user\n  user:\n")
    if token:
        lines.append(f"    token: {_yaml_str(token)}\n")
    if token_file:
        lines.append(f"    tokenFile: {_yaml_str(token_file)}\n")
    if client_cert:
        lines.append(data_or_file("client-certificate", pki["client.crt"]))
        lines.append(data_or_file("client-key", pki["client.key"]))
    if not (token or token_file or client_cert):
        lines.append("    {}\n")
    lines.append("contexts:\n")
    for c in (context, *extra_contexts):
        lines.append(f"- name: {c}\n  context:\n    cluster: cu-cluster\n    user: cu-user\n")
    lines.append(f"current-context: {current or context}\n")
    cu.write_file(path, "".join(lines))
    os.chmod(path, 0o600)
    return path


# ---------------------------------------------------------------- Calico objects


def ippool(name="underlay", cidr="192.168.10.128/25", block_size=28, nat=False, **extra):
    spec = {"cidr": cidr, "blockSize": block_size, "ipipMode": "Never", "vxlanMode": "Never",
            "nodeSelector": "all()"}
    if nat:
        spec["natOutgoing"] = True
    spec.update(extra)
    return {"metadata": {"name": name, "generation": 1,
                         "annotations": {"projectcalico.org/metadata": '{"creationTimestamp":null}'}},
            "spec": spec}


def block_affinity(node, cidr, state="confirmed", deleted="false"):
    name = f"{node}-{cidr.replace('.', '-').replace('/', '-').replace(':', '-')}"
    return {"metadata": {"name": name, "generation": 1,
                         "annotations": {"projectcalico.org/metadata": '{"creationTimestamp":null}'}},
            "spec": {"cidr": cidr, "deleted": deleted, "node": node, "state": state}}


def k8s_node(name, addr, labels=None, heartbeat="2026-12-01T00:00:00Z", addr6=None, internal_ip=None):
    """A core v1 Node as the API serves it, managedFields and status included (the
    daemon must keep only what the model needs). addr: the projectcalico.org/IPv4Address
    annotation (None: none, the InternalIP counts), addr6 the IPv6 one; internal_ip:
    status.addresses' InternalIP (default: addr's address)."""
    lab = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}
    lab.update(labels or {})
    ip = internal_ip or (addr or "").split("/")[0]
    ann = {"node.alpha.kubernetes.io/ttl": "0", "volumes.kubernetes.io/controller-managed-attach-detach": "true"}
    if addr:
        ann["projectcalico.org/IPv4Address"] = addr
    if addr6:
        ann["projectcalico.org/IPv6Address"] = addr6
    return {
        "metadata": {
            "name": name, "labels": lab,
            "annotations": ann,
            "managedFields": [{"manager": "kubelet", "operation": "Update", "apiVersion": "v1",
                               "time": heartbeat, "fieldsType": "FieldsV1",
                               "fieldsV1": {"f:status": {"f:conditions": {}}}}],
        },
        "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"]},
        "status": {
            "addresses": ([{"type": "InternalIP", "address": ip}] if ip else []) +
                         [{"type": "Hostname", "address": name}],
            "conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": heartbeat,
                            "lastTransitionTime": "2026-11-01T00:00:00Z", "reason": "KubeletReady",
                            "message": "kubelet is posting ready status"}],
            "nodeInfo": {"architecture": "amd64", "bootID": "6f1c", "containerRuntimeVersion": "containerd://1.7.24",
                         "kernelVersion": "6.1.0-28-amd64", "kubeProxyVersion": "v1.32.0",
                         "kubeletVersion": "v1.32.0", "machineID": "0f7e", "operatingSystem": "linux",
                         "osImage": "Debian GNU/Linux 12 (bookworm)", "systemUUID": "5b1e"},
        },
    }


def ipam_block(cidr, host, hosts, deleted=False):
    """An IPAMBlock as Calico's IPAM writes it (the CRD form): affine to host (None: no
    affinity), hosts[i] the node of the pod at ordinal i (None: free), each allocation
    an attribute of its own (handle, secondary.node/namespace/pod), unallocated the
    free ordinals."""
    allocs, attrs = [], []
    for i, h in enumerate(hosts):
        if h is None:
            allocs.append(None)
            continue
        allocs.append(len(attrs))
        attrs.append({"handle_id": f"k8s-pod-network.{cidr}-{i}",
                      "secondary": {"namespace": "default", "node": h, "pod": f"pod-{i}"}})
    spec = {"cidr": cidr, "allocations": allocs, "attributes": attrs, "deleted": deleted, "strictAffinity": False,
            "unallocated": [i for i, h in enumerate(hosts) if h is None]}
    if host:
        spec["affinity"] = f"host:{host}"
    name = cidr.replace(".", "-").replace(":", "-").replace("/", "-")
    return {"metadata": {"name": name, "generation": 1,
                         "annotations": {"projectcalico.org/metadata": '{"creationTimestamp":null}'}},
            "spec": spec}


def load_cluster(api, group=CRD):
    """The cluster of the etcd tests: an underlay pool, node1 (us) and node2, a block
    each (in the v3 CRDs, BlockAffinity's deleted is a bool)."""
    deleted = False if group == V3 else "false"
    api.put("ippools", ippool(), group=group)
    api.put("nodes", k8s_node("node1", "192.168.10.11/24"))
    api.put("nodes", k8s_node("node2", "192.168.10.12/24"))
    api.put("blockaffinities", block_affinity("node1", "192.168.10.128/28", deleted=deleted), group=group)
    api.put("blockaffinities", block_affinity("node2", "192.168.10.144/28", deleted=deleted), group=group)
