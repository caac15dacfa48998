#!/usr/bin/env python3
"""The test API server (kubeapi.py) speaks the real protocol: Kubernetes' own clients,
kubectl and the official Python client (python3-kubernetes), list it with pagination
and watch it, over TLS with a bearer token or a client certificate, in a network
namespace of each case's own. If these pass, what the daemon's tests prove against
the server holds against a real API server too.

Run: meson test -C BUILD kube-protocol   (or: sudo python3 tests/kube/test_protocol.py -v).
Needs root and openssl (exit 77 otherwise); the kubectl cases skip without kubectl,
the Python client's without python3-kubernetes.
"""
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cukube as ck  # noqa: E402
from cukube import cu  # noqa: E402

KUBECTL = shutil.which("kubectl")


def python_with_kubernetes():
    for py in (sys.executable, "/usr/bin/python3"):
        if py and os.access(py, os.X_OK) and subprocess.run(
                [py, "-c", "import kubernetes"], stderr=subprocess.DEVNULL).returncode == 0:
            return py
    return None


PYK = python_with_kubernetes()


def json_stream(text):
    """The concatenated JSON documents `kubectl -w -o json` prints."""
    dec, i, out = json.JSONDecoder(), 0, []
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return out
        try:
            obj, i = dec.raw_decode(text, i)
        except ValueError:
            return out  # an incomplete last document
        out.append(obj)


class ProtocolCase(unittest.TestCase):
    def setUp(self):
        self.ns = cu.Netns()
        self.addCleanup(self.ns.close)
        self.dir = cu.make_tmpdir("cu-kube-")
        self.addCleanup(cu.remove_tmpdir, self.dir)
        self.pki = ck.make_pki(os.path.join(self.dir, "pki"))
        self.api = ck.KubeAPI(self.ns, self.dir, self.pki)
        self.addCleanup(self.api.close)
        for i in range(5):
            self.api.put("ippools", ck.ippool(f"pool-{i}", f"10.{i}.0.0/16"))
        ck.load_cluster(self.api)
        self.kc_token = ck.kubeconfig(os.path.join(self.dir, "token.kubeconfig"), self.api.url, self.pki,
                                      token=ck.TOKEN)
        self.kc_cert = ck.kubeconfig(os.path.join(self.dir, "cert.kubeconfig"), self.api.url, self.pki,
                                     client_cert=True, inline=True)

    def kubectl(self, kc, *args, check=True, timeout=60):
        r = subprocess.run(["ip", "netns", "exec", self.ns.name, KUBECTL, "--kubeconfig", kc, "--cache-dir",
                            os.path.join(self.dir, "kcache"), "--request-timeout", "20s", *args],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({r.returncode}): {r.stderr}\n{self.api.log()}")
        return r

    def lists(self, path):
        return [r for r in self.api.requests() if r["method"] == "GET" and r["path"].startswith(path)
                and "watch=" not in r["path"]]


@unittest.skipUnless(KUBECTL, "needs kubectl")
class TestKubectl(ProtocolCase):
    def test_list_paginated_with_token(self):
        out = self.kubectl(self.kc_token, "get", "ippools.crd.projectcalico.org", "-o", "json",
                           "--chunk-size", "2").stdout
        names = sorted(i["metadata"]["name"] for i in json.loads(out)["items"])
        self.assertEqual(names, sorted([f"pool-{i}" for i in range(5)] + ["underlay"]))
        pages = self.lists("/apis/crd.projectcalico.org/v1/ippools")
        self.assertEqual(len(pages), 3, pages)  # 6 pools, 2 a page
        self.assertIn("limit=2", pages[0]["path"])
        self.assertTrue(all("continue=" in p["path"] for p in pages[1:]), pages)
        self.assertTrue(all(p["user"].startswith("token:") for p in pages))

    def test_nodes_with_client_certificate(self):
        out = self.kubectl(self.kc_cert, "get", "nodes", "-o", "json").stdout
        items = json.loads(out)["items"]
        self.assertEqual([i["metadata"]["name"] for i in items], ["node1", "node2"])
        self.assertEqual(items[0]["metadata"]["annotations"]["projectcalico.org/IPv4Address"], "192.168.10.11/24")
        self.assertEqual({r["user"] for r in self.api.requests()}, {"cert:cu-test-client"})

    def test_bad_token_is_refused(self):
        bad = ck.kubeconfig(os.path.join(self.dir, "bad.kubeconfig"), self.api.url, self.pki, token="nope")
        r = self.kubectl(bad, "get", "ippools.crd.projectcalico.org", "-o", "json", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("You must be logged in to the server", r.stderr)

    def test_watch_sees_an_added_pool(self):
        p = subprocess.Popen(["ip", "netns", "exec", self.ns.name, KUBECTL, "--kubeconfig", self.kc_token,
                              "--cache-dir", os.path.join(self.dir, "kcache"), "get",
                              "ippools.crd.projectcalico.org", "-w", "-o", "json", "--output-watch-events"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        cu._procs.add(p)
        out = []

        def read():
            for chunk in iter(lambda: os.read(p.stdout.fileno(), 65536), b""):
                out.append(chunk.decode())

        def names():
            return [(d["type"], d["object"]["metadata"]["name"]) for d in json_stream("".join(out))]

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            cu.wait_until(lambda: any("ippools" in w["path"] for w in self.api.watches()), 30,
                          interval=0.1, what="kubectl's watch")
            watch = next(w for w in self.api.watches() if "ippools" in w["path"])
            self.assertNotEqual(watch["since"], "")  # from the list's resourceVersion
            self.api.put("ippools", ck.ippool("added-later", "10.99.0.0/16"))
            self.assertTrue(self.api.delete("ippools", "pool-0")["deleted"])
            cu.wait_until(lambda: ("DELETED", "pool-0") in names(), 20, interval=0.1, what="kubectl to print the deletion")
        finally:
            p.terminate()
            p.wait(10)
            reader.join(10)
            p.stdout.close()
            cu._procs.discard(p)
        # --output-watch-events: every line a WatchEvent; first the list (ADDED each),
        # then the watch's events.
        events = [(d["type"], d["object"]) for d in json_stream("".join(out))]
        seen = [(t, o["metadata"]["name"]) for t, o in events]
        self.assertIn(("ADDED", "added-later"), seen, seen)
        added = [o for t, o in events if o["metadata"]["name"] == "added-later"][0]
        self.assertEqual(added["spec"]["cidr"], "10.99.0.0/16")
        self.assertEqual(added["kind"], "IPPool")
        self.assertEqual([n for n in seen if n[1] == "pool-0"], [("ADDED", "pool-0"), ("DELETED", "pool-0")])


@unittest.skipUnless(PYK, "needs python3-kubernetes")
class TestPythonClient(ProtocolCase):
    SCRIPT = r"""
import json, sys
from kubernetes import client, config, watch
config.load_kube_config(config_file=sys.argv[1])
api = client.CustomObjectsApi()
names, cont, pages = [], None, 0
while True:
    kw = {"limit": 2}
    if cont:
        kw["_continue"] = cont
    page = api.list_cluster_custom_object("crd.projectcalico.org", "v1", "ippools", **kw)
    pages += 1
    names += [i["metadata"]["name"] for i in page["items"]]
    cont = page["metadata"].get("continue")
    if not cont:
        break
rv = page["metadata"]["resourceVersion"]
nodes = [n.metadata.name for n in client.CoreV1Api().list_node().items]
print(json.dumps({"names": names, "pages": pages, "rv": rv, "nodes": nodes}), flush=True)
seen = []
w = watch.Watch()
for ev in w.stream(api.list_cluster_custom_object, "crd.projectcalico.org", "v1", "ippools",
                   resource_version=rv, allow_watch_bookmarks=True, timeout_seconds=30):
    seen.append([ev["type"], ev["raw_object"]["metadata"].get("name"), ev["raw_object"]["metadata"]["resourceVersion"]])
    if any(t == "DELETED" for t, _, _ in seen) and any(t == "BOOKMARK" for t, _, _ in seen):
        break
print(json.dumps({"events": seen}), flush=True)
# An expired continue token is a 410.
first = api.list_cluster_custom_object("crd.projectcalico.org", "v1", "ippools", limit=1)
print(json.dumps({"continue": first["metadata"]["continue"]}), flush=True)
sys.stdin.readline()   # the test compacts
try:
    api.list_cluster_custom_object("crd.projectcalico.org", "v1", "ippools", limit=1,
                                   _continue=first["metadata"]["continue"])
    print(json.dumps({"expired": None}), flush=True)
except client.exceptions.ApiException as e:
    print(json.dumps({"expired": e.status, "body": json.loads(e.body)}), flush=True)
"""

    def test_list_paginated_watch_and_expired_continue(self):
        p = subprocess.Popen(["ip", "netns", "exec", self.ns.name, PYK, "-c", self.SCRIPT, self.kc_cert],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        cu._procs.add(p)
        try:
            listed = json.loads(p.stdout.readline() or "null")
            if listed is None:
                p.wait(10)
                self.fail(f"the client printed nothing: {p.stderr.read()}")
            self.assertEqual(sorted(listed["names"]), sorted([f"pool-{i}" for i in range(5)] + ["underlay"]))
            self.assertEqual(listed["pages"], 3)
            self.assertEqual(listed["nodes"], ["node1", "node2"])
            self.assertEqual(int(listed["rv"]), self.api.rv())
            cu.wait_until(lambda: self.api.watches(), 20, interval=0.1, what="the client's watch")
            put_rv = self.api.put("ippools", ck.ippool("added-later", "10.99.0.0/16"))["resourceVersion"]
            self.api.delete("ippools", "pool-3")
            events = json.loads(p.stdout.readline())["events"]
            self.assertEqual(events[0], ["ADDED", "added-later", put_rv])
            self.assertIn("DELETED", [e[0] for e in events])
            self.assertEqual([e[1] for e in events if e[0] == "DELETED"], ["pool-3"])
            self.assertIn("BOOKMARK", [e[0] for e in events])
            json.loads(p.stdout.readline())
            self.api.put("ippools", ck.ippool("after-the-token", "10.98.0.0/16"))
            self.api.ctl("compact")  # the token's version is now older than the compaction
            p.stdin.write("go\n")
            p.stdin.flush()
            expired = json.loads(p.stdout.readline())
            self.assertEqual(expired["expired"], 410)
            self.assertEqual(expired["body"]["reason"], "Expired")
            p.wait(30)
            self.assertEqual(p.returncode, 0, p.stderr.read())
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            cu._procs.discard(p)


class TestServerAlone(ProtocolCase):
    """What the clients above do not reach: the watch's 410 and the fault knobs, with
    http.client (the daemon's view of the protocol)."""

    def raw(self, path, token=ck.TOKEN):
        script = r"""
import http.client, json, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
c = http.client.HTTPSConnection("127.0.0.1", int(sys.argv[2]), context=ctx, timeout=20)
c.request("GET", sys.argv[3], headers={"Authorization": "Bearer " + sys.argv[4]})
r = c.getresponse()
print(json.dumps({"status": r.status, "te": r.getheader("Transfer-Encoding"), "body": r.read().decode()}))
"""
        out = self.ns.run(sys.executable, "-c", script, self.pki["ca.crt"], str(ck.API_PORT), path, token)
        return json.loads(out)

    def test_watch_from_a_compacted_version_is_an_error_event_410(self):
        old = self.api.rv()
        self.api.put("ippools", ck.ippool("x", "10.77.0.0/16"))
        self.api.ctl("compact")
        r = self.raw(f"/apis/crd.projectcalico.org/v1/ippools?watch=true&resourceVersion={old}")
        self.assertEqual((r["status"], r["te"]), (200, "chunked"))
        ev = json.loads(r["body"].splitlines()[0])
        self.assertEqual(ev["type"], "ERROR")
        self.assertEqual((ev["object"]["code"], ev["object"]["reason"]), (410, "Expired"))
        self.api.ctl("watch_410_http", on=True)
        r = self.raw(f"/apis/crd.projectcalico.org/v1/ippools?watch=true&resourceVersion={old}")
        self.assertEqual(r["status"], 410)

    def test_list_items_carry_no_kind_and_tokens_rotate(self):
        body = json.loads(self.raw("/api/v1/nodes")["body"])
        self.assertEqual(body["kind"], "NodeList")
        self.assertNotIn("kind", body["items"][0])
        self.api.ctl("tokens", tokens=["new-token"])
        self.assertEqual(self.raw("/api/v1/nodes")["status"], 401)
        self.assertEqual(self.raw("/api/v1/nodes", token="new-token")["status"], 200)

    def test_discovery_follows_the_groups(self):
        self.api.ctl("groups", groups=["projectcalico.org"])
        groups = [g["name"] for g in json.loads(self.raw("/apis")["body"])["groups"]]
        self.assertEqual(groups, ["projectcalico.org"])
        self.assertEqual(self.raw("/apis/crd.projectcalico.org/v1/ippools")["status"], 404)
        self.api.put("ippools", ck.ippool("v3pool", "10.88.0.0/16"), group=ck.V3)
        body = json.loads(self.raw("/apis/projectcalico.org/v3/ippools")["body"])
        self.assertEqual((body["apiVersion"], [i["metadata"]["name"] for i in body["items"]]),
                         ("projectcalico.org/v3", ["v3pool"]))

    def test_go_away_and_come_back(self):
        self.api.ctl("stop_listening")
        r = subprocess.run(["ip", "netns", "exec", self.ns.name, sys.executable, "-c",
                            f"import socket; socket.create_connection(('127.0.0.1', {ck.API_PORT}), 2)"],
                           stderr=subprocess.PIPE, text=True)
        self.assertIn("ConnectionRefused", r.stderr)
        self.api.ctl("start_listening")
        self.assertEqual(self.raw("/api/v1/nodes")["status"], 200)
        self.api.ctl("fail", code=503, count=1)
        self.assertEqual(self.raw("/api/v1/nodes")["status"], 503)
        self.assertEqual(self.raw("/api/v1/nodes")["status"], 200)


if __name__ == "__main__":
    ck.require()
    cu.install_signal_cleanup()
    unittest.main()
