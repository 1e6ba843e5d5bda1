# SPDX-License-Identifier: MIT
"""Helpers for the task-queue tests (test_runs.py): test presets, the atlas workspace, run events, logs."""

import datetime
import json
import os
import re
import sqlite3
import time

import pytest

from conftest import DJANGO_PYTHON, RpcError, connect
from servertools import add_workspace, proc_stat

RUN_TIMEOUT = 60.0      # a run of a test preset or of a Django command, start to run.finished (ASan: slower)
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}([+-]\d\d:\d\d|Z)$")
TERMINAL = ("succeeded", "failed", "cancelled", "timed_out", "interrupted")

# A script for "sleep": prints a line, sleeps argv[1] seconds, prints another line.
SLEEP_SRC = """\
import sys, time
print("sleeping", sys.argv[1], flush=True)
time.sleep(float(sys.argv[1]))
print("slept", flush=True)
"""

# A script for "echo": prints argv[1] and exits 0.
ECHO_SRC = """\
import sys
print(sys.argv[1], flush=True)
"""


def presets_dir(tree):
    return os.path.join(tree.config, "djdesk", "presets.d")


def write_preset(tree, key, argv, **fields):
    """The user's preset KEY.json in $XDG_CONFIG_HOME/djdesk/presets.d (write it before starting the daemon,
    or call preset.reload)."""
    d = presets_dir(tree)
    os.makedirs(d, exist_ok=True)
    p = {"key": key, "label": fields.pop("label", f"Test {key}"), "argv": list(argv)}
    p.update(fields)
    path = os.path.join(d, key + ".json")
    with open(path + ".tmp", "w") as f:
        json.dump(p, f, indent=2)
    os.rename(path + ".tmp", path)
    return path


def script_preset(tree, key, source, args=(), **fields):
    """A preset running a Python script written under the tree: argv {python} /abs/key.py ARGS... (a
    script file, because a preset's argv refuses literal braces)."""
    d = os.path.join(tree.root, "scripts")
    os.makedirs(d, exist_ok=True)
    script = os.path.join(d, key + ".py")
    with open(script, "w") as f:
        f.write(source)
    write_preset(tree, key, ["{python}", script, *args], **fields)
    return script


def sleep_preset(tree, key="sleep", **fields):
    """{python} sleep.py {secs}: param secs (default 1)."""
    fields.setdefault("params", {"secs": {"regex": "[0-9]+(\\.[0-9]+)?", "default": "1"}})
    return script_preset(tree, key, SLEEP_SRC, ["{secs}"], **fields)


def echo_preset(tree, key="echo", **fields):
    """{python} echo.py {text}: param text (letters, digits, '-', default 'hello')."""
    fields.setdefault("params", {"text": {"regex": "[A-Za-z0-9-]*", "default": "hello"}})
    return script_preset(tree, key, ECHO_SRC, ["{text}"], **fields)


def add_atlas(tree, rpc, name="atlas"):
    """A copy of samples/atlas at home/projects/NAME, added as workspace NAME; returns the workspace."""
    path = tree.copy_sample("atlas", os.path.join(tree.home, "projects", name))
    w = add_workspace(rpc, path, name=name)
    assert w["slug"] == name, w
    assert w["interpreter"] == DJANGO_PYTHON, w
    return w


def refused(rpc, method, params):
    """The error object of a call that must fail."""
    with pytest.raises(RpcError) as e:
        rpc.call(method, params)
    return e.value.error


def start(rpc, workspace, preset, params=None, **kw):
    p = {"workspace": workspace, "preset": preset}
    if params is not None:
        p["params"] = params
    p.update(kw)
    r = rpc.call("run.start", p)
    assert r["status"] == "queued", r
    assert r["progress"] == 0, r
    return r


def all_logs(rpc, run_id, limit=10000, since=0):
    """Every stored line of a run, paging run.logs; returns (lines, last reply)."""
    lines = []
    while True:
        r = rpc.call("run.logs", {"id": run_id, "since": since, "limit": limit})
        assert r["id"] == run_id, r
        if not r["lines"]:
            return lines, r
        assert len(r["lines"]) <= limit, (len(r["lines"]), limit)
        assert r["lines"][0]["n"] > since, (since, r["lines"][0])
        assert r["next"] == r["lines"][-1]["n"], r["next"]
        lines.extend(r["lines"])
        since = r["next"]


def texts(lines, stream=None):
    return [line["text"] for line in lines if stream is None or line["stream"] == stream]


def parse_iso(s):
    assert s is not None and ISO_MS.match(s), f"not an ISO 8601 timestamp with ms and offset: {s!r}"
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))


def gone(pid):
    """True when the process no longer runs (absent, or a zombie waiting for its reaper)."""
    st = proc_stat(pid)
    return st is None or st[0] in ("Z", "X")


def wait_gone(pids, timeout=3.0, what="processes"):
    deadline = time.monotonic() + timeout
    while True:
        alive = [p for p in pids if not gone(p)]
        if not alive:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} still running {timeout}s later: {alive} "
                                 f"({[proc_stat(p) for p in alive]})")
        time.sleep(0.02)


def integrity_check(db_path):
    db = sqlite3.connect(db_path, timeout=10)
    try:
        return db.execute("PRAGMA integrity_check").fetchall()
    finally:
        db.close()


class RunWatch:
    """A connection subscribed to run events (run.* by default, plus user.sync for sync()); keeps every
    event it read in .seen."""

    def __init__(self, tree, topics=("run.*",), since=None):
        self.rpc = connect(tree.socket_path, timeout=RUN_TIMEOUT)
        p = {"topics": list(topics) + ["user.sync"]}
        if since is not None:
            p["since"] = since
        self.subscribed = self.rpc.call("subscribe", p)
        self.seen = []
        self._sync = 0

    def close(self):
        self.rpc.close()

    def _next(self, timeout):
        e = self.rpc.next_event(timeout)
        assert e["topic"] != "lagged", f"the test's own subscriber was cut off: {e}"
        self.seen.append(e)
        return e

    def wait(self, pred, timeout=RUN_TIMEOUT, what="an event"):
        for e in self.seen:
            if pred(e):
                return e
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {what} within {timeout}s; saw {self.brief()}")
            try:
                e = self._next(remaining)
            except OSError as ex:   # socket.timeout
                if "timed out" in str(ex):
                    continue
                raise
            if pred(e):
                return e

    def wait_topic(self, topic, run_id, timeout=RUN_TIMEOUT):
        return self.wait(lambda e: e["topic"] == topic and e["data"].get("id") == run_id, timeout,
                         f"{topic} for run {run_id}")["data"]

    def finished(self, run_id, timeout=RUN_TIMEOUT):
        return self.wait_topic("run.finished", run_id, timeout)

    def started(self, run_id, timeout=RUN_TIMEOUT):
        return self.wait_topic("run.started", run_id, timeout)

    def wait_log(self, run_id, pred, timeout=RUN_TIMEOUT, what="a log line"):
        """Waits for a run.log event of the run with a line whose text satisfies pred; returns the line."""
        def match(e):
            return (e["topic"] == "run.log" and e["data"].get("id") == run_id and
                    any(pred(line["text"]) for line in e["data"]["lines"]))
        e = self.wait(match, timeout, f"{what} of run {run_id}")
        return next(line for line in e["data"]["lines"] if pred(line["text"]))

    def sync(self, timeout=RUN_TIMEOUT):
        """Publishes user.sync and reads up to it: every event published before is in .seen afterwards."""
        self._sync += 1
        n = self._sync
        with connect(self.rpc.path) as pub:
            pub.call("events.publish", {"topic": "user.sync", "data": {"n": n}})
        self.wait(lambda e: e["topic"] == "user.sync" and e["data"].get("n") == n, timeout, "user.sync")

    def of(self, run_id, topic=None):
        return [e for e in self.seen if e["topic"].startswith("run.") and e["data"].get("id") == run_id
                and (topic is None or e["topic"] == topic)]

    def topics(self, run_id):
        return [e["topic"] for e in self.of(run_id)]

    def run_events(self):
        return [e for e in self.seen if e["topic"].startswith("run.")]

    def log_lines(self, run_id):
        return [line for e in self.of(run_id, "run.log") for line in e["data"]["lines"]]

    def brief(self):
        return [(e["topic"], e["data"].get("id"), e["data"].get("status")) for e in self.seen][-40:]


def stable_status(rpc, slug, read_other):
    """(socket document, other) read while the status document did not change: the socket's reads before
    and after read_other() have the same seq (the document changes at most every 200 ms)."""
    for _ in range(50):
        before = rpc.call("workspace.status", {"workspace": slug})
        other = read_other()
        after = rpc.call("workspace.status", {"workspace": slug})
        if before["seq"] == after["seq"]:
            assert before == after
            return after, other
        time.sleep(0.1)
    raise AssertionError("the status document never stayed the same for two reads")
