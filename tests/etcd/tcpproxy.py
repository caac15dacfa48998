#!/usr/bin/env python3
"""A TCP relay the etcd tests put between calico-underlayd and etcd, to break the
daemon's streams on command. Bytes are relayed as they are (TLS passes through).

    python3 tcpproxy.py LISTEN_PORT TARGET_PORT CONTROL_SOCKET

Runs inside the test's network namespace, on 127.0.0.1. Commands on the unix control
socket, one line each, answered "ok":
  cut          close every relayed connection (the daemon sees its streams break)
  cut-hold     the same, then relay the next new connection only; later ones wait,
               accepted but not relayed, until `release` (the daemon lists on the
               relayed one, and its watches wait on the others)
  release      relay the waiting connections
  relay-new    relay new connections again; the waiting ones stay accepted and
               unanswered for ever (a peer that takes the TCP connection and never
               answers the TLS handshake)
  count        answer the number of connections accepted so far

Standard library only; stops when its control socket's folder goes away or on SIGTERM.
"""
import os
import selectors
import socket
import sys


def main():
    listen_port, target_port, control = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    sel = selectors.DefaultSelector()
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", listen_port))
    lsock.listen(64)
    sel.register(lsock, selectors.EVENT_READ, "listen")
    csock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    csock.bind(control)
    csock.listen(4)
    sel.register(csock, selectors.EVENT_READ, "control")
    peers = {}      # socket -> its other end
    held = []       # accepted client sockets waiting for `release`
    state = {"relay_next": None, "accepted": 0}   # None: relay all

    def close_pair(s):
        other = peers.pop(s, None)
        for x in (s, other):
            if x is None:
                continue
            peers.pop(x, None)
            try:
                sel.unregister(x)
            except (KeyError, ValueError):
                pass
            x.close()

    def relay(client):
        up = socket.create_connection(("127.0.0.1", target_port))
        peers[client] = up
        peers[up] = client
        sel.register(client, selectors.EVENT_READ, "data")
        sel.register(up, selectors.EVENT_READ, "data")

    def command(conn):
        line = conn.recv(256).decode().strip()
        reply = "ok"
        if line in ("cut", "cut-hold"):
            for s in list(peers):
                if s in peers:
                    close_pair(s)
            state["relay_next"] = 1 if line == "cut-hold" else None
        elif line == "release":
            state["relay_next"] = None
            while held:
                relay(held.pop(0))
        elif line == "relay-new":
            state["relay_next"] = None
        elif line == "count":
            reply = str(state["accepted"])
        else:
            reply = "unknown command"
        conn.sendall((reply + "\n").encode())
        conn.close()

    while os.path.exists(os.path.dirname(control)):
        for key, _ in sel.select(timeout=1.0):
            s, kind = key.fileobj, key.data
            if kind == "listen":
                client, _ = s.accept()
                state["accepted"] += 1
                if state["relay_next"] is None:
                    relay(client)
                elif state["relay_next"] > 0:
                    state["relay_next"] -= 1
                    relay(client)
                else:
                    held.append(client)
            elif kind == "control":
                conn, _ = s.accept()
                command(conn)
            elif s in peers:
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    close_pair(s)
                    continue
                try:
                    peers[s].sendall(data)
                except OSError:
                    close_pair(s)


if __name__ == "__main__":
    main()
