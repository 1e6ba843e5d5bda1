# SPDX-License-Identifier: MIT
"""Desktop notifications of finished runs, observed through python3-dbusmock's notification daemon: exactly
one per finished run (summary, body, urgency, icon, app name), a burst merged (3 at once, the rest as one
when the 2 s window closes), the `notifications` modes (failures, off; read at each event, so a reload
applies), and a notification server that never answers delays no reply."""

import datetime
import json
import os
import re
import signal
import time

import pytest

from conftest import DJANGO_PYTHON, connect, needs_bus
from dbuswatch import Watcher
from test_notify import (MOCK, NOTIFICATIONS, NOTIFICATIONS_PATH, busy_port, is_notify_call, notify_calls,
                         start_notification_daemon, start_until_failed)

pytestmark = needs_bus

RUN_TIMEOUT = 60.0
NORMAL, CRITICAL = 1, 2  # the "urgency" hint
BURST_WINDOW = 2.0       # seconds (notify.c NOTIFY_BURST_USEC)

# Test presets: (key, label, icon, argv, extra fields). No braces in argv but whole placeholders.
PRESETS = {
    "ok": ("Quick success", "emblem-default", ["{python}", "-c", "print('fine')"], {}),
    "boom": ("Boom", "dialog-warning",
             ["{python}", "-c",
              "import sys; print('working'); print('RuntimeError: boom from the test', file=sys.stderr); "
              "sys.exit(3)"], {}),
    "nap": ("Nap", "media-playback-pause", ["{python}", "-c", "import time; time.sleep(60)"], {}),
    "short-nap": ("Short nap", None, ["{python}", "-c", "import time; time.sleep(60)"], {"timeout_s": 1}),
    "yes": ("Say yes", None, ["/bin/true"], {}),
    "no": ("Say no", "process-stop", ["/bin/false"], {}),
}
DEFAULT_ICON = "system-run"


@pytest.fixture
def watcher():
    with Watcher() as w:
        yield w


def write_presets(tree):
    d = os.path.join(tree.config, "djdesk", "presets.d")
    os.makedirs(d, exist_ok=True)
    for key, (label, icon, argv, extra) in PRESETS.items():
        p = {"key": key, "label": label, "description": f"{label} (a test preset)", "argv": argv,
             "category": "tests", "read_only": True, **extra}
        if icon:
            p["icon"] = icon
        with open(os.path.join(d, f"{key}.json"), "w") as f:
            json.dump(p, f)


def start_with_atlas(tree, watcher, mock=True, **start):
    """The test presets, the notification mock (unless mock=False), the daemon and the atlas workspace."""
    write_presets(tree)
    if mock:
        start_notification_daemon(tree, watcher)
    d = tree.start(**start)
    with connect(tree.socket_path, timeout=60) as c:
        ws = c.call("workspace.add", {"path": tree.copy_sample("atlas"), "python": DJANGO_PYTHON})
    return d, ws


class Runs:
    """run.start on one connection, run.started/run.finished events on another (subscribed before any run
    starts)."""

    def __init__(self, tree, ws):
        self.ws = ws
        self.events = connect(tree.socket_path, timeout=RUN_TIMEOUT)
        self.events.call("subscribe", {"topics": ["run.started", "run.finished"]})
        self.rpc = connect(tree.socket_path)
        self.seen = {"run.started": {}, "run.finished": {}}

    def close(self):
        self.events.close()
        self.rpc.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def start(self, preset):
        run = self.rpc.call("run.start", {"workspace": self.ws["slug"], "preset": preset})
        assert run["status"] == "queued", run
        return run["id"]

    def wait(self, *ids, topic="run.finished", timeout=RUN_TIMEOUT):
        """Waits for the event of each id; returns their run JSON in the order of ids."""
        deadline = time.monotonic() + timeout
        seen = self.seen[topic]
        while not all(i in seen for i in ids):
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no {topic} for all of {ids} within {timeout}s: {sorted(seen)}"
            e = self.events.next_event(remaining)
            run = e["data"]
            assert run["id"] not in self.seen[e["topic"]], f"{e['topic']} twice for run {run['id']}"
            self.seen[e["topic"]][run["id"]] = run
        return [seen[i] for i in ids]

    def run(self, preset):
        return self.wait(self.start(preset))[0]


def seen_notifies(watcher):
    """The Notify calls the watcher has seen as MethodCalled signals so far (args as in notify_calls)."""
    return [s.args[1] for s in watcher.signals if is_notify_call(s)]


def wait_notifies(watcher, n, timeout=20.0):
    """Waits until the mock has recorded at least n Notify calls; returns them."""
    deadline = time.monotonic() + timeout
    while True:
        calls = seen_notifies(watcher)
        if len(calls) >= n:
            return calls
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"{len(calls)} Notify calls within {timeout}s, expected {n}: {calls!r}"
        watcher.pump(min(remaining, 0.1))


def no_more_notifies(watcher, n, quiet):
    """Pumps for quiet seconds and asserts the number of Notify calls stayed n."""
    deadline = time.monotonic() + quiet
    while (remaining := deadline - time.monotonic()) > 0:
        watcher.pump(min(remaining, 0.1))
    calls = seen_notifies(watcher)
    assert len(calls) == n, calls
    return calls


def final_notifies(d, watcher):
    """Stops the daemon (which sends what is still queued or held) and returns every Notify the mock got."""
    assert d.stop() == 0
    return notify_calls(watcher)


def check_run_notification(call, ws, label, verb, urgency, icon, why=None):
    app, replaces, app_icon, summary, body, actions, hints, timeout = call
    assert app == "djdesk", call
    assert summary == f"{label} {verb}", call
    lines = body.split("\n")
    # "atlas · 0.4 s" (or "2 min 3 s" for longer runs)
    assert re.fullmatch(re.escape(ws["name"]) + r" · (\d+\.\d s|\d+ min( \d+ s)?)", lines[0]), call
    if why is None:
        assert len(lines) == 1, call
    else:
        assert len(lines) == 2 and why in lines[1], call
    assert hints.get("urgency") == urgency, call
    assert icon in (app_icon, hints.get("image-path")), call


def test_one_notification_per_finished_run(tree, watcher):
    d, ws = start_with_atlas(tree, watcher)
    with Runs(tree, ws) as runs:
        ok = runs.run("ok")
        assert ok["status"] == "succeeded", ok
        call = wait_notifies(watcher, 1)[0]
        check_run_notification(call, ws, "Quick success", "succeeded", NORMAL, "emblem-default")

        boom = runs.run("boom")
        assert boom["status"] == "failed" and boom["exit_code"] == 3, boom
        call = wait_notifies(watcher, 2)[1]
        check_run_notification(call, ws, "Boom", "failed", CRITICAL, "dialog-warning",
                               why="RuntimeError: boom from the test")

        nap = runs.start("nap")
        runs.wait(nap, topic="run.started")  # cancelled while it runs, so it has a duration
        runs.rpc.call("run.cancel", {"id": nap})
        assert runs.wait(nap)[0]["status"] == "cancelled"
        call = wait_notifies(watcher, 3)[2]
        check_run_notification(call, ws, "Nap", "cancelled", NORMAL, "media-playback-pause")

        short = runs.run("short-nap")
        assert short["status"] == "timed_out", short
        # Within the merge window of the three before it, alone: shown as itself when the window closes.
        call = wait_notifies(watcher, 4, timeout=20 + BURST_WINDOW)[3]
        check_run_notification(call, ws, "Short nap", "timed out", CRITICAL, DEFAULT_ICON,
                               why=short["last_error_line"] or short["error"])
    calls = final_notifies(d, watcher)
    assert len(calls) == 4, calls


def test_burst_is_merged(tree, watcher):
    d, ws = start_with_atlas(tree, watcher)
    order = ["yes", "no", "yes", "no", "yes", "no"]
    with Runs(tree, ws) as runs:
        ids = [runs.start(p) for p in order]
        done = runs.wait(*ids)
        assert [r["status"] for r in done] == ["succeeded", "failed"] * 3, done
        t_all_finished = time.monotonic()
    # The burst must really be one: all six finished within the window of the first.
    finished = sorted(datetime.datetime.fromisoformat(r["finished_at"]).timestamp() for r in done)
    assert finished[-1] - finished[0] < BURST_WINDOW - 0.5, f"the runs took too long to be a burst: {done}"

    # Three at once, in the order the runs finished ...
    calls = wait_notifies(watcher, 3)
    assert [c[3] for c in calls[:3]] == ["Say yes succeeded", "Say no failed", "Say yes succeeded"], calls
    assert time.monotonic() - t_all_finished < BURST_WINDOW - 0.5, "the first three were not shown at once"
    # ... the other three held until the window closes, then one notification for them.
    calls = wait_notifies(watcher, 4, timeout=10)
    assert time.monotonic() - t_all_finished > 0.5, "the merged notification came before the window closed"
    app, _, icon, summary, body, _, hints, _ = calls[3]
    assert app == "djdesk"
    assert summary == "3 more runs finished", calls[3]
    assert body == "1 succeeded, 2 failed", calls[3]
    assert hints.get("urgency") == CRITICAL, calls[3]  # one of them failed
    assert DEFAULT_ICON in (icon, hints.get("image-path")), calls[3]
    check_run_notification(calls[1], ws, "Say no", "failed", CRITICAL, "process-stop",
                           why="exited with status 1")

    # A run finishing well after the burst is shown as itself again.
    no_more_notifies(watcher, 4, BURST_WINDOW + 0.5)
    with Runs(tree, ws) as runs:
        runs.run("yes")
    call = wait_notifies(watcher, 5)[4]
    check_run_notification(call, ws, "Say yes", "succeeded", NORMAL, DEFAULT_ICON)
    assert len(final_notifies(d, watcher)) == 5


def test_failures_mode_and_reload(tree, watcher):
    tree.write_config("[daemon]\nnotifications = failures\n")
    d, ws = start_with_atlas(tree, watcher)
    with Runs(tree, ws) as runs, connect(tree.socket_path) as sub:
        assert runs.run("ok")["status"] == "succeeded"
        assert runs.run("boom")["status"] == "failed"
        assert runs.run("yes")["status"] == "succeeded"
        call = wait_notifies(watcher, 1)[0]
        assert call[3] == "Boom failed", call
        no_more_notifies(watcher, 1, 0.5)

        # The mode is read at each event: a reload to "all" shows successes again.
        sub.call("subscribe", {"topics": ["daemon.reloaded"]})
        tree.write_config("[daemon]\nnotifications = all\n")
        d.signal(signal.SIGHUP)
        assert sub.wait_event("daemon.reloaded")["data"]["ok"] is True
        assert runs.run("ok")["status"] == "succeeded"
        call = wait_notifies(watcher, 2)[1]
        assert call[3] == "Quick success succeeded", call
    calls = final_notifies(d, watcher)
    assert [c[3] for c in calls] == ["Boom failed", "Quick success succeeded"], calls


def test_failures_mode_from_the_environment(tree, watcher):
    d, ws = start_with_atlas(tree, watcher, env={"DJDESK_NOTIFICATIONS": "failures"})
    with Runs(tree, ws) as runs:
        ids = [runs.start(p) for p in ("yes", "no", "yes", "no")]
        runs.wait(*ids)
        wait_notifies(watcher, 2)
        no_more_notifies(watcher, 2, 0.5)
        # A run the daemon stops while it runs is interrupted: a failure, shown even on the way out.
        runs.wait(runs.start("nap"), topic="run.started")
    calls = final_notifies(d, watcher)
    assert [c[3] for c in calls] == ["Say no failed", "Say no failed", "Nap interrupted"], calls
    app, _, icon, _, body, _, hints, _ = calls[2]
    assert hints.get("urgency") == NORMAL and icon == "media-playback-pause", calls[2]
    assert body.startswith(ws["name"] + " · ") and "interrupted" in body.split("\n")[1], calls[2]


def test_off_mode_shows_nothing(tree, watcher):
    d, ws = start_with_atlas(tree, watcher, env={"DJDESK_NOTIFICATIONS": "off"})
    with Runs(tree, ws) as runs:
        ids = [runs.start(p) for p in ("ok", "boom", "no")]
        assert [r["status"] for r in runs.wait(*ids)] == ["succeeded", "failed", "failed"]
    # Not even a server failure.
    holder = busy_port()
    try:
        with connect(tree.socket_path, timeout=60) as c:
            polls = c.call("workspace.add", {"path": tree.copy_sample("polls"), "python": DJANGO_PYTHON,
                                             "port": holder.getsockname()[1]})
        start_until_failed(tree, [polls["slug"]], 30)
    finally:
        holder.close()
    no_more_notifies(watcher, 0, 0.5)
    assert final_notifies(d, watcher) == []


def test_hanging_notification_server_delays_no_reply(tree, watcher):
    start_notification_daemon(tree, watcher)
    # The mock now takes 30 s to answer Notify (libnotify waits 25 s for a reply).
    watcher.call(NOTIFICATIONS_PATH, MOCK, "AddMethod", "sssss",
                 [NOTIFICATIONS, "Notify", "susssasa{sv}i", "u", "import time; time.sleep(30); ret = 1"],
                 bus_name=NOTIFICATIONS)
    d, ws = start_with_atlas(tree, watcher, mock=False)
    with Runs(tree, ws) as runs:
        assert runs.run("boom")["status"] == "failed"
        watcher.wait_for(is_notify_call, timeout=20, what="a Notify call")  # the notify thread is now stuck

        # More runs finish (their notifications pile up behind the stuck one) while replies are timed.
        worst = {}
        ids = []
        for i in range(8):
            start = {"workspace": ws["slug"], "preset": "no" if i % 2 else "yes"}
            for method, params in (("daemon.info", {}), ("run.start", start)):
                t0 = time.monotonic()
                r = runs.rpc.call(method, params)
                worst[method] = max(worst.get(method, 0.0), time.monotonic() - t0)
                if method == "run.start":
                    ids.append(r["id"])
            runs.wait(ids[-1])
        print("worst reply times:", worst)
        assert worst["daemon.info"] < 0.1 and worst["run.start"] < 0.1, worst
        # The merged notification of that burst was queued too, never shown: nothing else waits for it.
        assert len(seen_notifies(watcher)) == 1
    t0 = time.monotonic()
    assert d.stop(timeout=10) == 0
    assert time.monotonic() - t0 < 5, "a stuck notification server held up shutdown"
    assert "A desktop notification is still being sent" in d.stderr_text, d.stderr_text
