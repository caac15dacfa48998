#!/usr/bin/env python3
"""A hostile or broken etcd gRPC server (etcdserverpb.KV/Range), HTTP/2 by prior
knowledge (h2c) on 127.0.0.1:PORT (run it inside the test's namespace), for the cases
a real etcd will not play on the daemon's gRPC list path (daemon/etcd.c,
daemon/etcd-grpc.c). Usage: fake_grpc.py MODE PORT KVS, KVS a JSON file {"key": value}
(Calico's layout, tests/etcd/cuetcd.py), read again at each request.

Every range is answered ONE KEY A PAGE (more: true while keys remain; count the whole
range), so each prefix with two keys takes two pages, the second asked at the first
page's revision. A request at revision 0 (a list starting) takes a new revision (101,
102, ...); a later page is answered at the revision it asks for. Modes:

  ok                 every request answered as a real etcd would;
  compacted-once     the first request for a prefix's later page (at the list's revision,
                     from a key ending in NUL) is answered grpc-status 11 (trailers only)
                     "etcdserver: mvcc: required revision has been compacted", as etcd
                     does after a compaction between two pages; all others as ok;
  compacted-always   every request for a later page is answered so;
  trailers-only      every request: HEADERS only, :status 200, grpc-status 14
                     "unavailable", END_STREAM, no DATA;
  no-status          an answer (valid message) whose stream ends with the DATA: no
                     trailers, no grpc-status;
  http-503           :status 503, content-type text/plain, a body (a proxy before etcd);
  huge-length        a message prefix claiming 2 GiB, then 64 bytes, grpc-status 0;
  compressed         a valid message with the compressed flag set, grpc-status 0;
  truncated          the prefix says 50 bytes more than the DATA holds, grpc-status 0;
  bad-wiretype       a message whose kvs (field 2) has wire type 0, grpc-status 0;
  bad-varint         a message ending in a varint that runs off its end, grpc-status 0;
  rst-stream         headers, half the message, then RST_STREAM INTERNAL_ERROR;
  stall              headers, half the message, then nothing, held until the client
                     hangs up (a wedged etcd or proxy);
  goaway             the first request answered (then GOAWAY NO_ERROR on its connection);
                     on every later connection GOAWAY (last stream 0) as soon as the
                     request's headers come, nothing answered, the connection closed.

A client that does not open with HTTP/2's preface speaks HTTP/1.1 (the JSON gateway, the
daemon's fallback and its watches): POST /v3/watch is confirmed (200, a `created`
message) and then held silent until the client hangs up; anything else is answered 404
{"error": "no JSON gateway here", "code": 5}. Each request is printed on stdout, flushed:
"RANGE <revision asked>" and "AUTH <name>" for gRPC, "GATEWAY <path>" for HTTP/1.1, so the test counts
them. Framing by hand (standard library only): the client's frames are read whole
(SETTINGS acknowledged, PING answered, WINDOW_UPDATE and the HPACK of its headers
ignored: a request without a limit is an Authenticate, answered with a token whatever
the name and password; every other one is a Range), answers' headers are HPACK literals without
indexing and without Huffman. Stops on SIGTERM.
"""
import json
import socket
import socketserver
import struct
import sys
import threading
import time

MODE, PORT, KVS = sys.argv[1], int(sys.argv[2]), sys.argv[3]
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 0, 1, 3, 4, 6, 7, 8, 9
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY = 0x1, 0x1, 0x4, 0x8, 0x20
COMPACTED = "etcdserver: mvcc: required revision has been compacted"

lock = threading.Lock()
state = {"revision": 100, "requests": 0, "compacted": 0}


def say(line):
    with lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


# ---- protobuf, by hand ----

def varint(v):
    out = bytearray()
    while True:
        out.append((v & 0x7f) | (0x80 if v > 0x7f else 0))
        v >>= 7
        if not v:
            return bytes(out)


def field_bytes(num, data):
    return varint(num << 3 | 2) + varint(len(data)) + data


def field_int(num, v):
    return varint(num << 3) + varint(v)


def read_varint(b, i):
    v = shift = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7f) << shift
        shift += 7
        if not c & 0x80:
            return v, i


def parse_range_request(msg):
    """{field number: value} of a RangeRequest (key 1, range_end 2, limit 3, revision 4)."""
    out, i = {}, 0
    while i < len(msg):
        tag, i = read_varint(msg, i)
        num, wt = tag >> 3, tag & 7
        if wt == 0:
            out[num], i = read_varint(msg, i)
        elif wt == 2:
            n, i = read_varint(msg, i)
            out[num], i = msg[i:i + n], i + n
        else:
            raise ValueError(f"wire type {wt}")
    return out


def range_response(req):
    """The RangeResponse to req: one key of KVS in [key, range_end), more while others
    remain, at req's revision or a new one."""
    with open(KVS) as f:
        kvs = json.load(f)
    lo, hi = req.get(1, b""), req.get(2, b"")
    keys = sorted(k.encode() for k in kvs)
    keys = [k for k in keys if lo <= k and (not hi or k < hi)]
    with lock:
        if not req.get(4):
            state["revision"] += 1
        revision = req.get(4) or state["revision"]
    body = field_bytes(1, field_int(3, revision))  # header { revision }
    for k in keys[:1]:
        v = kvs[k.decode()]
        v = (v if isinstance(v, str) else json.dumps(v)).encode()
        body += field_bytes(2, field_bytes(1, k) + field_int(3, revision) + field_bytes(5, v))
    if len(keys) > 1:
        body += field_int(3, 1)
    return body + field_int(4, len(keys))


def grpc_frame(msg, flag=0, length=None):
    return struct.pack(">BI", flag, len(msg) if length is None else length) + msg


# ---- HTTP/2, by hand ----

def hpack(headers):
    """HPACK literals without indexing, new names, no Huffman (RFC 7541 6.2.2)."""
    def integer(v, prefix_bits, first=0):
        cap = (1 << prefix_bits) - 1
        if v < cap:
            return bytes([first | v])
        out, v = bytearray([first | cap]), v - cap
        while v >= 128:
            out.append(v % 128 + 128)
            v //= 128
        return bytes(out + bytes([v]))
    out = b""
    for name, value in headers:
        out += b"\x00" + integer(len(name), 7) + name.encode() + integer(len(value), 7) + value.encode()
    return out


class Conn:
    def __init__(self, sock):
        self.sock = sock

    def send(self, ftype, flags, sid, payload=b""):
        self.sock.sendall(struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid) + payload)

    def recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf

    def frame(self):
        head = self.recv_exact(9)
        if head is None:
            return None
        length = int.from_bytes(head[:3], "big")
        payload = self.recv_exact(length) if length else b""
        if payload is None:
            return None
        return head[3], head[4], int.from_bytes(head[5:9], "big") & 0x7fffffff, payload

    def headers(self, sid, headers, end=False):
        self.send(HEADERS, END_HEADERS | (END_STREAM if end else 0), sid, hpack(headers))

    def grpc_answer(self, sid, data, status="0", message=None):
        """An answer as grpc-go sends it: headers, DATA, trailers (status, message)."""
        self.headers(sid, [(":status", "200"), ("content-type", "application/grpc")])
        self.send(DATA, 0, sid, data)
        trailers = [("grpc-status", status)] + ([("grpc-message", message)] if message else [])
        self.headers(sid, trailers, end=True)

    def trailers_only(self, sid, status, message):
        self.headers(sid, [(":status", "200"), ("content-type", "application/grpc"),
                           ("grpc-status", status), ("grpc-message", message)], end=True)


def answer(conn, sid, body):
    """Stream sid's request (its DATA, body) answered as MODE says. False: close the
    connection."""
    if len(body) < 5:
        conn.send(RST_STREAM, 0, sid, struct.pack(">I", 1))
        return False
    req = parse_range_request(body[5:5 + struct.unpack(">I", body[1:5])[0]])
    if 3 not in req:  # no limit: an AuthenticateRequest (name 1, password 2)
        say(f"AUTH {req.get(1, b'').decode()}")
        conn.grpc_answer(sid, grpc_frame(field_bytes(1, field_int(3, state["revision"])) +
                                         field_bytes(2, b"fake-token")))
        return True
    with lock:
        state["requests"] += 1
        n = state["requests"]
    say(f"RANGE {req.get(4, 0)}")
    # A prefix's later page: asked at the first page's revision, from the last key + NUL.
    later = bool(req.get(4)) and req.get(1, b"").endswith(b"\0")
    if MODE == "compacted-always" and later or (MODE == "compacted-once" and later and state["compacted"] == 0):
        with lock:
            state["compacted"] += 1
        conn.trailers_only(sid, "11", COMPACTED)
        return True
    if MODE == "trailers-only":
        conn.trailers_only(sid, "14", "unavailable")
        return True
    msg = range_response(req)
    if MODE == "no-status":
        conn.headers(sid, [(":status", "200"), ("content-type", "application/grpc")])
        conn.send(DATA, END_STREAM, sid, grpc_frame(msg))
    elif MODE == "http-503":
        conn.headers(sid, [(":status", "503"), ("content-type", "text/plain")])
        conn.send(DATA, END_STREAM, sid, b"upstream connect error or disconnect/reset before headers\n")
    elif MODE == "huge-length":
        conn.grpc_answer(sid, grpc_frame(b"\x00" * 64, length=2 << 30))
    elif MODE == "compressed":
        conn.grpc_answer(sid, grpc_frame(msg, flag=1))
    elif MODE == "truncated":
        conn.grpc_answer(sid, grpc_frame(msg, length=len(msg) + 50))
    elif MODE == "bad-wiretype":
        conn.grpc_answer(sid, grpc_frame(field_bytes(1, field_int(3, 7)) + field_int(2, 5)))
    elif MODE == "bad-varint":
        conn.grpc_answer(sid, grpc_frame(field_bytes(1, field_int(3, 7)) + varint(4 << 3) + b"\xff\xff\xff"))
    elif MODE == "stall":
        frame = grpc_frame(msg)
        conn.headers(sid, [(":status", "200"), ("content-type", "application/grpc")])
        conn.send(DATA, 0, sid, frame[:len(frame) // 2])
        while conn.frame() is not None:  # held until the client hangs up
            pass
        return False
    elif MODE == "rst-stream":
        frame = grpc_frame(msg)
        conn.headers(sid, [(":status", "200"), ("content-type", "application/grpc")])
        conn.send(DATA, 0, sid, frame[:len(frame) // 2])
        conn.send(RST_STREAM, 0, sid, struct.pack(">I", 2))  # INTERNAL_ERROR
    else:  # ok, compacted-*, goaway (its first request)
        conn.grpc_answer(sid, grpc_frame(msg))
        if MODE in ("goaway", "goaway-late") and n == 1:
            if MODE == "goaway-late":
                time.sleep(0.3)
            conn.send(GOAWAY, 0, 0, struct.pack(">II", sid, 0))
    return True


def serve_h2(sock):
    conn = Conn(sock)
    conn.send(SETTINGS, 0, 0)
    bodies = {}
    while True:
        f = conn.frame()
        if f is None:
            return
        ftype, flags, sid, payload = f
        if ftype == SETTINGS and not flags & ACK:
            conn.send(SETTINGS, ACK, 0)
        elif ftype == PING and not flags & ACK:
            conn.send(PING, ACK, 0, payload)
        elif ftype == HEADERS:
            if MODE in ("goaway", "goaway-late") and state["requests"] >= 1:
                say("RANGE refused")
                conn.send(GOAWAY, 0, 0, struct.pack(">II", 0, 0))
                return
            bodies.setdefault(sid, bytearray())
            if flags & END_STREAM and not answer(conn, sid, bytes(bodies.pop(sid))):
                return
        elif ftype == DATA and sid in bodies:
            if flags & PADDED:
                payload = payload[1:len(payload) - payload[0]]
            bodies[sid] += payload
            if flags & END_STREAM and not answer(conn, sid, bytes(bodies.pop(sid))):
                return
        elif ftype == GOAWAY:
            return


def serve_http1(sock, first):
    """The JSON gateway's side: a held watch, or 404."""
    f = sock.makefile("rb")
    line = first + f.readline()
    path = line.split()[1].decode() if len(line.split()) > 1 else "?"
    n = 0
    while True:
        h = f.readline()
        if h in (b"\r\n", b"\n", b""):
            break
        name, _, value = h.decode().partition(":")
        if name.strip().lower() == "content-length":
            n = int(value)
    f.read(n)
    say(f"GATEWAY {path}")
    if path == "/v3/watch":
        msg = json.dumps({"result": {"header": {"revision": str(state["revision"])}, "created": True}}).encode() + b"\n"
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" +
                     b"%x\r\n%s\r\n" % (len(msg), msg))
        sock.recv(1)  # returns when the client hangs up
        return
    body = json.dumps({"error": "no JSON gateway here", "code": 5, "message": "no JSON gateway here"}).encode()
    sock.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                 b"Connection: close\r\n\r\n%s" % (len(body), body))


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        sock = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            first = Conn(sock).recv_exact(len(PREFACE))
            if first is None:
                return
            if first == PREFACE:
                serve_h2(sock)
            else:
                serve_http1(sock, first)
        except (BrokenPipeError, ConnectionResetError):
            pass


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


Server(("127.0.0.1", PORT), Handler).serve_forever()
