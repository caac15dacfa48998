#!/usr/bin/env python3
"""A hostile or broken etcd JSON gateway, plain HTTP on 127.0.0.1:PORT (run it inside
the test's namespace), for the cases a real etcd will not play:

  watch-ends    lists answer (no keys), every watch ends at once (a broken proxy or
                load balancer, an expired token): the daemon must back off;
  more-forever  every range answer says "more": true, with a new key each time;
  huge-page     every range answer is a valid empty page padded to one byte over the
                client's cap of 64 MiB (ETCD_MAX_BODY) for one answer;
  watch-silent  lists answer with the keys of the JSON file KVS (argv[3], {"key": value},
                read again at each range request, its revision the count of range
                requests so far); every watch request is read and never answered (no
                headers, no created message), held until the client closes it: a wedged
                gateway or proxy;
  watch-quiet   lists as watch-silent; every watch is confirmed (200, a `created`
                message) and then says nothing more, no event and no progress
                notification, held until the client closes it: an etcd or proxy that
                wedged after the watch began.

Each request is printed on stdout as "RANGE" or "WATCH" (flushed), so the test counts
them. Standard library only; stops on SIGTERM.
"""
import base64
import http.server
import itertools
import json
import socket
import sys
import threading

MODE, PORT = sys.argv[1], int(sys.argv[2])
KVS = sys.argv[3] if len(sys.argv) > 3 else None
counter = itertools.count()
said = threading.Lock()


def say(word):
    """One line per request: whole even when requests come at once (print() writes the
    word and its newline apart, so two threads could make "WATCHWATCH")."""
    with said:
        sys.stdout.write(word + "\n")
        sys.stdout.flush()
MAX_BODY = 64 << 20


def b64(s):
    return base64.b64encode(s.encode()).decode()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def setup(self):
        super().setup()
        # Headers and body go out in two writes: without this, every answer waits for
        # the client's delayed ACK (40 ms).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def answer(self, obj):
        body = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client stopped reading
            self.close_connection = True

    def range_from_file(self, req):
        """The keys of KVS in [key, range_end), in key order, in one page."""
        with open(KVS) as f:
            kvs = json.load(f)
        lo = base64.b64decode(req["key"])
        hi = base64.b64decode(req.get("range_end", ""))
        revision = str(5 + next(counter))
        page = [{"key": b64(k), "value": b64(v if isinstance(v, str) else json.dumps(v)),
                 "mod_revision": revision}
                for k, v in sorted(kvs.items()) if lo <= k.encode() and (not hi or k.encode() < hi)]
        return {"header": {"revision": revision}, "count": str(len(page)), "kvs": page}

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        req = json.loads(self.rfile.read(n) or b"{}")
        if self.path == "/v3/kv/range":
            say("RANGE")
            if MODE == "more-forever":
                key = base64.b64decode(req["key"]).decode().split("\0")[0] + "k%08d" % next(counter)
                return self.answer({"header": {"revision": "5"}, "more": True, "count": "1",
                                    "kvs": [{"key": b64(key), "value": b64("{}"), "mod_revision": "5"}]})
            if MODE == "huge-page":
                head, tail = b'{"header":{"revision":"5"},"count":"0","pad":"', b'"}'
                return self.answer(head + b"x" * (MAX_BODY + 1 - len(head) - len(tail)) + tail)
            if MODE in ("watch-silent", "watch-quiet"):
                return self.answer(self.range_from_file(req))
            return self.answer({"header": {"revision": "5"}, "count": "0"})
        if self.path == "/v3/watch":
            say("WATCH")
            if MODE == "watch-silent":
                # Nothing is sent; the read returns when the client hangs up.
                self.rfile.read(1)
                self.close_connection = True
                return
            if MODE == "watch-quiet":
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                msg = json.dumps({"result": {"header": {"revision": "5"}, "created": True}}).encode() + b"\n"
                try:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(msg), msg))
                    self.wfile.flush()
                    self.rfile.read(1)  # returns when the client hangs up
                except (BrokenPipeError, ConnectionResetError):
                    pass
                self.close_connection = True
                return
            # 200 and an empty stream that ends at once.
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "0")
            self.end_headers()
            self.close_connection = True
            return
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()


http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
