# SPDX-License-Identifier: MIT
"""Helpers shared by the server tests (test_server*.py): workspaces, events, HTTP, /proc."""

import http.client
import os
import socket
import time

from conftest import DJANGO_PYTHON, connect

START_TIMEOUT = 90.0    # an RPC that waits for a server to be ready (or finally failed)


def add_workspace(rpc, path, **params):
    p = {"path": path, "python": DJANGO_PYTHON}
    p.update(params)
    return rpc.call("workspace.add", p)


class Events:
    """A socket subscribed to server.* events; every event read is kept in .seen."""

    def __init__(self, tree, topics=("server.*",)):
        self.rpc = connect(tree.socket_path, timeout=START_TIMEOUT)
        self.rpc.call("subscribe", {"topics": list(topics)})
        self.seen = []

    def next(self, timeout):
        e = self.rpc.next_event(timeout)
        self.seen.append(e)
        return e

    def wait(self, pred, timeout=60.0, what="an event"):
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {what} within {timeout}s; saw {[self.brief(e) for e in self.seen]}")
            try:
                e = self.next(remaining)
            except TimeoutError:
                continue
            except OSError as ex:      # socket.timeout
                if "timed out" in str(ex):
                    continue
                raise
            if pred(e):
                return e

    def wait_state(self, slug, state, timeout=60.0, **match):
        def pred(e):
            d = e["data"]
            return (e["topic"] == "server.state" and d["workspace"] == slug and d["state"] == state
                    and all(d.get(k) == v for k, v in match.items()))
        return self.wait(pred, timeout, f"server.state {state} {match} for {slug}")["data"]

    def states(self, slug):
        return [e["data"]["state"] for e in self.seen
                if e["topic"] == "server.state" and e["data"]["workspace"] == slug]

    def log_lines(self, slug):
        return [line for e in self.seen if e["topic"] == "server.log" and e["data"]["workspace"] == slug
                for line in e["data"]["lines"]]

    @staticmethod
    def brief(e):
        d = e["data"]
        return (e["topic"], d.get("workspace"), d.get("state")) if e["topic"] == "server.state" else e["topic"]

    def close(self):
        self.rpc.close()


def wait_status(tree, events, slug, state, timeout=60.0):
    """Race-free: events is subscribed first, then the status is read; waits for the state if not there."""
    with connect(tree.socket_path) as rpc:
        st = rpc.call("server.status", {"workspace": slug})
    if st["state"] == state:
        return st
    return events.wait_state(slug, state, timeout)


def http_get(port, path="/", timeout=10.0):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.headers, r.read()
    finally:
        c.close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_closed(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def proc_stat(pid):
    """(state, ppid, pgrp, utime + stime in seconds) of a process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read()
    except OSError:
        return None
    rest = st[st.rindex(")") + 2:].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return rest[0], int(rest[1]), int(rest[2]), (int(rest[11]) + int(rest[12])) / ticks


def group_members(pgid):
    """The live (not zombie) processes of a process group."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        st = proc_stat(int(d))
        if st and st[2] == pgid and st[0] != "Z":
            out.append(int(d))
    return out


def wait_until(cond, timeout=10.0, what="a condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not met within {timeout}s")
        time.sleep(0.02)


def environ_of(pid):
    with open(f"/proc/{pid}/environ", "rb") as f:
        raw = f.read()
    return dict(e.decode(errors="replace").split("=", 1) for e in raw.split(b"\0") if b"=" in e)
