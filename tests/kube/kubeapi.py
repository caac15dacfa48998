#!/usr/bin/env python3
"""A small Kubernetes API server for the test suite: what calico-underlayd (and, to
prove the protocol, kubectl and the official Python client) use of a real one.

Standard library only (ssl for TLS). It serves, over HTTPS with HTTP/1.1:
- discovery: /version, /api, /api/v1, /apis, /apis/GROUP, /apis/GROUP/VERSION, with
  the groups a test chooses (crd.projectcalico.org/v1, projectcalico.org/v3 or both);
- core v1 Nodes and Calico's IPPools, BlockAffinities, IPAMBlocks and
  FelixConfigurations in both Calico groups (cluster-scoped);
- list with pagination: `limit` and `continue`, every page from the same snapshot
  (the resourceVersion of the first page), `metadata.continue` and
  `remainingItemCount`; items of a list carry no kind and apiVersion unless asked
  (a raw list's items do not have to);
- watch (`watch=true`): a chunked stream of JSON lines, one event each (ADDED,
  MODIFIED, DELETED, BOOKMARK with `allowWatchBookmarks=true`, ERROR), from the
  given resourceVersion (with none or "0": synthetic ADDED events for what exists
  first), ended after `timeoutSeconds`;
- 410 Gone: a watch from a resourceVersion older than the last compaction gets an
  ERROR event with a 410 Status (as the API server's watch cache answers), or an
  HTTP 410 (a knob); a continue token older than the compaction gets HTTP 410
  with reason Expired;
- authentication: bearer tokens (a set the test replaces to rotate or expire them)
  or client certificates signed by the CA (`--ca`); 401 otherwise; 403 for the
  verb/resource pairs a test denies;
- create (POST), replace (PUT) and delete (DELETE) of single objects.

Knobs for fault injection come over a control socket (a Unix stream socket, so a
test outside the server's network namespace reaches it): one JSON request per line,
one JSON answer per line. Operations: put, delete (objects; each a new
resourceVersion), compact (older versions expire), drop_watches (close every watch
stream without its end chunk), wedge_next (the next N watches of a resource get their
headers and then nothing, not even their end at timeoutSeconds, held until the client
hangs up: a wedged server or proxy; `watches` marks them "wedged"), tokens (the valid set), deny, fail (answer the next N
requests with an HTTP status), groups, bookmark_interval, watch_timeout, watch_410_http,
items_kind, gone_watch (a kind's watches answer their next events with a 410
instead), stop_listening / start_listening (go away and come back on the same
port), requests (the request log), watches (the open watch streams), rv, quit.

Run: kubeapi.py --listen 127.0.0.1:6443 --cert S.crt --key S.key --ca CA.crt
     --control /path/ctl.sock [--token T]...
"""
import argparse
import base64
import http.server
import json
import os
import socket
import socketserver
import ssl
import sys
import threading
import time
import urllib.parse
import uuid

CORE = ("", "v1")
CALICO_KINDS = {
    "ippools": "IPPool",
    "blockaffinities": "BlockAffinity",
    "ipamblocks": "IPAMBlock",
    "felixconfigurations": "FelixConfiguration",
}
VERSION_OF = {"crd.projectcalico.org": "v1", "projectcalico.org": "v3"}
MAX_LOG = 20000


def truthy(v):
    """A query flag as Go's strconv.ParseBool reads it."""
    return v in ("1", "t", "T", "true", "TRUE", "True")


def status(code, reason, message):
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}


class Store:
    """Every object of every resource, with its history (for paginated snapshots)
    and the event log (for watches), under one lock and one resourceVersion counter."""

    def __init__(self):
        self.cond = threading.Condition()
        self.rv = 100
        self.compacted = 0        # versions below this have expired
        self.history = {}         # (group, plural) -> name -> [(rv, obj or None)]
        self.events = []          # (rv, (group, plural), type, obj)

    def _versions(self, res, name):
        return self.history.setdefault(res, {}).setdefault(name, [])

    def current(self, res, name):
        v = self.history.get(res, {}).get(name)
        return v[-1][1] if v else None

    def put(self, res, obj):
        with self.cond:
            name = obj["metadata"]["name"]
            old = self.current(res, name)
            self.rv += 1
            obj = json.loads(json.dumps(obj))
            meta = obj["metadata"]
            meta["resourceVersion"] = str(self.rv)
            meta.setdefault("uid", old["metadata"]["uid"] if old else str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
            self._versions(res, name).append((self.rv, obj))
            self.events.append((self.rv, res, "MODIFIED" if old else "ADDED", obj))
            self.cond.notify_all()
            return obj, old is None

    def delete(self, res, name):
        with self.cond:
            old = self.current(res, name)
            if old is None:
                return None
            self.rv += 1
            gone = json.loads(json.dumps(old))
            gone["metadata"]["resourceVersion"] = str(self.rv)
            self._versions(res, name).append((self.rv, None))
            self.events.append((self.rv, res, "DELETED", gone))
            self.cond.notify_all()
            return gone

    def compact(self):
        """Everything before now expires: old watches and continue tokens get 410."""
        with self.cond:
            self.compacted = self.rv
            self.events = []
            self.cond.notify_all()
            for names in self.history.values():
                for name, versions in names.items():
                    names[name] = versions[-1:]

    def snapshot(self, res, at):
        """The objects of res at version `at`, sorted by name (the last one kept: a
        paginated list asks for the same snapshot page after page)."""
        memo = getattr(self, "_memo", {})
        self._memo = memo
        if memo.get(res, (None,))[0] == (at, self.rv):
            return memo[res][1]
        out = []
        for name, versions in sorted(self.history.get(res, {}).items()):
            obj = None
            for rv, o in versions:
                if rv <= at:
                    obj = o
            if obj is not None:
                out.append(obj)
        memo[res] = ((at, self.rv), out)
        return out


class State:
    def __init__(self, args):
        self.store = Store()
        self.tokens = set(args.token or [])
        self.groups = ["crd.projectcalico.org"]
        self.deny = set()                 # (verb, plural)
        self.rbac = None                  # ClusterRole rules: when set, only what they grant
        self.fail = []                    # [code, remaining]
        self.bookmark_interval = 1.0
        self.watch_timeout = 1800.0
        self.watch_410_http = False
        self.items_kind = False
        self.fail_continue = False        # the next continue token is "expired"
        self.gone_next = set()            # plurals whose watches answer their next events with a 410
        self.watch_gen = 0                # drop_watches increments it
        self.wedge_next = {}              # plural -> watches still to wedge
        self.watches = {}                 # id -> {"path", "rv", "user"}
        self.requests = []
        self.lock = threading.Lock()


def api_version(group, version):
    return f"{group}/{version}" if group else version


def kind_of(group, plural):
    return "Node" if not group else CALICO_KINDS[plural]


def with_kind(obj, group, version, plural):
    o = dict(obj)
    o["kind"] = kind_of(group, plural)
    o["apiVersion"] = api_version(group, version)
    return {"kind": o.pop("kind"), "apiVersion": o.pop("apiVersion"), **o}


def resource_list(group, version):
    if not group:
        names = [("nodes", "Node", False)]
    else:
        names = [(p, k, False) for p, k in CALICO_KINDS.items()]
    verbs = ["create", "delete", "get", "list", "patch", "update", "watch"]
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": api_version(group, version),
            "resources": [{"name": p, "singularName": k.lower(), "namespaced": ns, "kind": k, "verbs": verbs}
                          for p, k, ns in names]}


def api_group(group):
    gv = {"groupVersion": f"{group}/{VERSION_OF[group]}", "version": VERSION_OF[group]}
    return {"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": [gv], "preferredVersion": gv}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "cu-kubeapi/1"

    def log_message(self, fmt, *args):  # quiet: the request log is in the state
        pass

    def setup(self):
        super().setup()
        self.user = None

    # ------------------------------------------------------------ plumbing

    def send_json(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        self.wfile.write(body)

    def send_status(self, code, reason, message):
        self.send_json(code, status(code, reason, message))

    def record(self, code):
        st = self.server.state
        with st.lock:
            if len(st.requests) < MAX_LOG:
                st.requests.append({"method": self.command, "path": self.path, "user": self.user, "code": code,
                                    "time": time.time()})

    def authenticate(self):
        st = self.server.state
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            tok = auth[7:].strip()
            with st.lock:
                ok = tok in st.tokens
            if ok:
                self.user = "token:" + tok[:6]
                return True
            return False
        cert = self.connection.getpeercert() if hasattr(self.connection, "getpeercert") else None
        if cert:
            cn = [v for rdn in cert.get("subject", ()) for k, v in rdn if k == "commonName"]
            self.user = "cert:" + (cn[0] if cn else "?")
            return True
        return False

    def injected_failure(self):
        st = self.server.state
        with st.lock:
            if st.fail and st.fail[1] > 0:
                st.fail[1] -= 1
                return st.fail[0]
        return None

    # ------------------------------------------------------------ routing

    def parse(self):
        """(group, version, plural, name) for a resource path, or a discovery document,
        or None."""
        u = urllib.parse.urlsplit(self.path)
        self.query = {k: v[-1] for k, v in urllib.parse.parse_qs(u.query, keep_blank_values=True).items()}
        parts = [p for p in u.path.split("/") if p]
        st = self.server.state
        if parts == ["version"]:
            return ("doc", {"major": "1", "minor": "32", "gitVersion": "v1.32.0-cu-test", "platform": "linux/amd64"})
        if parts == ["api"]:
            return ("doc", {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": self.server.server_address[0]}]})
        if parts == ["api", "v1"]:
            return ("doc", resource_list(*CORE))
        if parts == ["apis"]:
            with st.lock:
                groups = list(st.groups)
            return ("doc", {"kind": "APIGroupList", "apiVersion": "v1", "groups": [api_group(g) for g in groups]})
        if parts[:1] == ["apis"] and len(parts) >= 2:
            g = parts[1]
            with st.lock:
                served = g in st.groups
            if not served:
                return None
            if len(parts) == 2:
                return ("doc", api_group(g))
            if parts[2] != VERSION_OF[g]:
                return None
            if len(parts) == 3:
                return ("doc", resource_list(g, parts[2]))
            if parts[3] in CALICO_KINDS and len(parts) <= 5:
                return ("res", g, parts[2], parts[3], parts[4] if len(parts) == 5 else None)
            return None
        if parts[:2] == ["api", "v1"] and len(parts) in (3, 4) and parts[2] == "nodes":
            return ("res", "", "v1", "nodes", parts[3] if len(parts) == 4 else None)
        return None

    def handle_any(self):
        try:
            self.body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if not self.authenticate():
                self.record(401)
                return self.send_status(401, "Unauthorized", "Unauthorized")
            code = self.injected_failure()
            if code:
                self.record(code)
                return self.send_status(code, "InternalError" if code >= 500 else "TooManyRequests",
                                        f"injected failure {code}")
            r = self.parse()
            if r is None:
                self.record(404)
                return self.send_status(404, "NotFound", "the server could not find the requested resource")
            if r[0] == "doc":
                self.record(200)
                return self.send_json(200, r[1])
            _, g, v, plural, name = r
            verb = self.verb(name)
            with self.server.state.lock:
                denied = (verb, plural) in self.server.state.deny
                rules = self.server.state.rbac
            if rules is not None and not any(
                    g in r.get("apiGroups", []) and plural in r.get("resources", []) and verb in r.get("verbs", [])
                    for r in rules):
                denied = True
            if denied:
                self.record(403)
                return self.send_status(403, "Forbidden", f'{plural} is forbidden: User "{self.user}" cannot '
                                        f'{verb} resource "{plural}" in API group "{g}" at the cluster scope')
            getattr(self, "do_" + verb)(g, v, plural, name)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.close_connection = True

    def verb(self, name):
        m = self.command
        if m == "GET":
            if name:
                return "get"
            return "watch" if truthy(self.query.get("watch")) else "list"
        return {"POST": "create", "PUT": "update", "DELETE": "delete"}.get(m, "unknown")

    do_GET = do_POST = do_PUT = do_DELETE = handle_any

    # ------------------------------------------------------------ verbs

    def do_unknown(self, g, v, plural, name):
        self.record(405)
        self.send_status(405, "MethodNotAllowed", "method not allowed")

    def do_get(self, g, v, plural, name):
        obj = self.server.state.store.current((g, plural), name)
        if obj is None:
            self.record(404)
            return self.send_status(404, "NotFound", f'{plural} "{name}" not found')
        self.record(200)
        self.send_json(200, with_kind(obj, g, v, plural))

    def do_list(self, g, v, plural, name):
        st = self.server.state
        store = st.store
        limit = int(self.query.get("limit") or 0)
        cont = self.query.get("continue")
        with store.cond:
            with st.lock:
                fail_cont, st.fail_continue = bool(cont) and st.fail_continue, st.fail_continue and not cont
            if cont:
                try:
                    tok = json.loads(base64.urlsafe_b64decode(cont.encode()))
                    at, start = int(tok["rv"]), tok["start"]
                except (ValueError, KeyError, TypeError):
                    self.record(400)
                    return self.send_status(400, "BadRequest", "continue key is not valid")
                if at < store.compacted or fail_cont:
                    self.record(410)
                    return self.send_status(
                        410, "Expired", "The provided continue parameter is too old to display a consistent list "
                        "result. You can start a new list without the continue parameter, or use the continue token "
                        "in this response to retrieve the remainder of the results.")
            else:
                at, start = store.rv, ""
            snap = store.snapshot((g, plural), at)
            lo, hi = 0, len(snap)
            while lo < hi:  # the first name after start
                mid = (lo + hi) // 2
                if snap[mid]["metadata"]["name"] <= start:
                    lo = mid + 1
                else:
                    hi = mid
            items = snap[lo:lo + limit + 1] if limit else snap[lo:]
            rest_total = len(snap) - lo
        meta = {"resourceVersion": str(at)}
        if limit and len(items) > limit:
            rest = rest_total - limit
            items = items[:limit]
            meta["continue"] = base64.urlsafe_b64encode(json.dumps(
                {"rv": at, "start": items[-1]["metadata"]["name"]}).encode()).decode()
            meta["remainingItemCount"] = rest
        with st.lock:
            keep_kind = st.items_kind
        out = [with_kind(o, g, v, plural) if keep_kind else o for o in items]
        self.record(200)
        self.send_json(200, {"kind": kind_of(g, plural) + "List", "apiVersion": api_version(g, v), "metadata": meta,
                             "items": out})

    def do_create(self, g, v, plural, name):
        obj = self.read_object(g, v, plural)
        if obj is None:
            return
        if self.server.state.store.current((g, plural), obj["metadata"]["name"]) is not None:
            self.record(409)
            return self.send_status(409, "AlreadyExists", f'{plural} "{obj["metadata"]["name"]}" already exists')
        obj, _ = self.server.state.store.put((g, plural), obj)
        self.record(201)
        self.send_json(201, with_kind(obj, g, v, plural))

    def do_update(self, g, v, plural, name):
        obj = self.read_object(g, v, plural)
        if obj is None:
            return
        obj["metadata"]["name"] = name
        obj, _ = self.server.state.store.put((g, plural), obj)
        self.record(200)
        self.send_json(200, with_kind(obj, g, v, plural))

    def do_delete(self, g, v, plural, name):
        gone = self.server.state.store.delete((g, plural), name)
        if gone is None:
            self.record(404)
            return self.send_status(404, "NotFound", f'{plural} "{name}" not found')
        self.record(200)
        self.send_json(200, with_kind(gone, g, v, plural))

    def read_object(self, g, v, plural):
        try:
            obj = json.loads(self.body)
            if not isinstance(obj.get("metadata", {}).get("name"), str):
                raise ValueError("metadata.name")
        except (ValueError, AttributeError) as e:
            self.record(400)
            self.send_status(400, "BadRequest", f"bad object: {e}")
            return None
        obj.pop("kind", None)
        obj.pop("apiVersion", None)
        return obj

    # ------------------------------------------------------------ watch

    def chunk(self, obj):
        data = (json.dumps(obj) + "\n").encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def do_watch(self, g, v, plural, name):
        st = self.server.state
        store = st.store
        res = (g, plural)
        rv_arg = self.query.get("resourceVersion", "")
        bookmarks = truthy(self.query.get("allowWatchBookmarks"))
        with st.lock:
            timeout = min(float(self.query.get("timeoutSeconds") or st.watch_timeout), st.watch_timeout)
            gen = st.watch_gen
            wedged = st.wedge_next.get(plural, 0) > 0
            if wedged:
                st.wedge_next[plural] -= 1
            http410 = st.watch_410_http
        try:
            since = int(rv_arg) if rv_arg not in ("", "0") else None
        except ValueError:
            self.record(400)
            return self.send_status(400, "BadRequest", f"invalid resourceVersion {rv_arg!r}")
        with store.cond:
            expired = since is not None and since < store.compacted
            compacted = store.compacted
        if expired and http410:
            self.record(410)
            return self.send_status(410, "Expired", f"too old resource version: {since} ({compacted})")
        self.record(200)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        self.wfile.flush()
        if expired:
            self.chunk({"type": "ERROR", "object": status(410, "Expired",
                                                          f"too old resource version: {since} ({compacted})")})
            return self.end_stream()
        wid = id(self)
        with st.lock:
            st.watches[wid] = {"path": self.path, "user": self.user, "since": rv_arg, "wedged": wedged}
        try:
            if wedged:
                # Nothing more, not even the end: held until the client hangs up.
                self.close_connection = True
                try:
                    while self.rfile.read(1):
                        pass
                except OSError:
                    pass
                return
            self.stream(store, res, g, v, plural, since, bookmarks, timeout, gen)
        finally:
            with st.lock:
                st.watches.pop(wid, None)

    def stream(self, store, res, g, v, plural, since, bookmarks, timeout, gen):
        st = self.server.state
        end = time.monotonic() + timeout
        next_bm = time.monotonic() + st.bookmark_interval
        with store.cond:
            if since is None:
                pending = [("ADDED", o) for o in store.snapshot(res, store.rv)]
                last = store.rv
            else:
                pending, last = [], since
        while True:
            for typ, obj in pending:
                self.chunk({"type": typ, "object": with_kind(obj, g, v, plural)})
            pending = []
            now = time.monotonic()
            if bookmarks and now >= next_bm:
                self.chunk({"type": "BOOKMARK", "object": {"kind": kind_of(g, plural), "apiVersion":
                                                           api_version(g, v), "metadata": {
                                                               "resourceVersion": str(last)}}})
                next_bm = now + st.bookmark_interval
            if now >= end:
                return self.end_stream()
            with store.cond:
                # Only when nothing came while the last events were written (a notify
                # then found nobody waiting).
                if store.rv == last and store.compacted <= last and st.watch_gen == gen:
                    store.cond.wait(min(end, next_bm if bookmarks else end) - now + 0.001)
                with st.lock:
                    dropped = st.watch_gen != gen
                if dropped:
                    # Gone without the end chunk, as a broken connection looks.
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
                if store.compacted > last:
                    pending = []
                    self.chunk({"type": "ERROR", "object": status(410, "Expired", "too old resource version: "
                                                                  f"{last} ({store.compacted})")})
                    return self.end_stream()
                for rv, r, typ, obj in store.events:
                    if rv > last and r == res:
                        pending.append((typ, obj))
                with st.lock:
                    gone = bool(pending) and plural in st.gone_next
                    st.gone_next.discard(plural if gone else None)
                if gone:
                    # Compacted away before they were sent (as for one kind's slow watcher).
                    self.chunk({"type": "ERROR", "object": status(410, "Expired", "too old resource version: "
                                                                  f"{last} ({store.rv})")})
                    return self.end_stream()
                last = store.rv

    def end_stream(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, ctx, state):
        self.ctx, self.state = ctx, state
        super().__init__(addr, Handler)

    def get_request(self):
        sock, addr = self.socket.accept()
        return sock, addr

    def finish_request(self, request, client_address):
        """The TLS handshake in the connection's own thread (a stalled client must
        not block accept())."""
        request.settimeout(30)
        try:
            tls = self.ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        tls.settimeout(None)
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            tls.close()

    def shutdown_request(self, request):
        try:
            request.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        request.close()


# ---------------------------------------------------------------- control


class Control:
    def __init__(self, state, args, ctx):
        self.state, self.args, self.ctx = state, args, ctx
        self.server = None
        self.quit = threading.Event()

    def listen(self):
        host, port = self.args.listen.rsplit(":", 1)
        self.server = Server((host, int(port)), self.ctx, self.state)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def unlisten(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def op(self, req):
        st, store = self.state, self.state.store
        op = req.get("op")
        res = (req.get("group", ""), req.get("resource", ""))
        if op == "put":
            obj, created = store.put(res, req["object"])
            return {"resourceVersion": obj["metadata"]["resourceVersion"], "created": created}
        if op == "put_many":
            for o in req["objects"]:
                store.put(res, o)
            return {"resourceVersion": str(store.rv)}
        if op == "delete":
            gone = store.delete(res, req["name"])
            return {"deleted": gone is not None, "resourceVersion": str(store.rv)}
        if op == "compact":
            store.compact()
            return {"compacted": store.compacted}
        if op == "rv":
            return {"resourceVersion": str(store.rv)}
        if op == "wedge_next":
            with st.lock:
                st.wedge_next[req["resource"]] = int(req["count"])
            return {}
        if op == "drop_watches":
            with st.lock:
                st.watch_gen += 1
                n = len(st.watches)
            with store.cond:
                store.cond.notify_all()
            return {"dropped": n}
        if op == "requests":
            with st.lock:
                return {"requests": list(st.requests)}
        if op == "watches":
            with st.lock:
                return {"watches": list(st.watches.values())}
        if op == "stop_listening":
            with st.lock:
                st.watch_gen += 1
            with store.cond:
                store.cond.notify_all()
            self.unlisten()
            return {}
        if op == "start_listening":
            if not self.server:
                self.listen()
            return {}
        if op == "quit":
            self.quit.set()
            return {}
        with st.lock:
            if op == "tokens":
                st.tokens = set(req["tokens"])
            elif op == "rbac":
                st.rbac = req["rules"]
            elif op == "deny":
                st.deny = {tuple(x) for x in req["pairs"]}
            elif op == "fail":
                st.fail = [int(req["code"]), int(req["count"])]
            elif op == "groups":
                st.groups = list(req["groups"])
            elif op == "bookmark_interval":
                st.bookmark_interval = float(req["seconds"])
            elif op == "watch_timeout":
                st.watch_timeout = float(req["seconds"])
            elif op == "watch_410_http":
                st.watch_410_http = bool(req["on"])
            elif op == "gone_watch":
                st.gone_next.add(req["resource"])
            elif op == "fail_continue_once":
                st.fail_continue = True
            elif op == "items_kind":
                st.items_kind = bool(req["on"])
            else:
                return {"error": f"unknown op {op!r}"}
        return {}

    def serve(self, path):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        ls.bind(path)
        ls.listen(8)
        ls.settimeout(0.2)
        print("ready", flush=True)
        while not self.quit.is_set():
            try:
                c, _ = ls.accept()
            except socket.timeout:
                continue
            threading.Thread(target=self.client, args=(c,), daemon=True).start()
        ls.close()

    def client(self, c):
        with c, c.makefile("rwb") as f:
            for line in f:
                try:
                    ans = self.op(json.loads(line))
                except Exception as e:  # report it to the test, keep serving
                    ans = {"error": f"{type(e).__name__}: {e}"}
                f.write((json.dumps(ans) + "\n").encode())
                f.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--listen", default="127.0.0.1:6443")
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--ca", required=True, help="CA of accepted client certificates")
    ap.add_argument("--control", required=True, help="Unix socket for the test's knobs")
    ap.add_argument("--token", action="append", help="a valid bearer token (repeatable)")
    ap.add_argument("--groups", default="crd.projectcalico.org")
    args = ap.parse_args()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    ctx.load_verify_locations(args.ca)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.set_alpn_protocols(["http/1.1"])
    state = State(args)
    state.groups = [g for g in args.groups.split(",") if g]
    ctl = Control(state, args, ctx)
    ctl.listen()
    ctl.serve(args.control)
    ctl.unlisten()


if __name__ == "__main__":
    sys.exit(main())
