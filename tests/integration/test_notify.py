# SPDX-License-Identifier: MIT
"""Desktop notifications: a server that fails (the crash-loop limit, a busy forced port) or a reload that
does not take is one notification on python3-dbusmock's notification daemon; without a notification
server the daemon says so once and goes on."""

import os
import re
import socket
import subprocess
import time

import pytest

from conftest import DJANGO_PYTHON, connect, needs_bus
from dbuswatch import Watcher

pytestmark = needs_bus

NOTIFICATIONS = "org.freedesktop.Notifications"
NOTIFICATIONS_PATH = "/org/freedesktop/Notifications"
MOCK = "org.freedesktop.DBus.Mock"
CRASH_LOOP_TIMEOUT = 90.0  # 0.5 + 1 + 2 + 4 + 8 s of back-off, plus six Python starts (sanitizer builds too)
MISSING_SERVER_WARNING = "Cannot show a desktop notification"


@pytest.fixture
def watcher():
    with Watcher() as w:
        yield w


def start_notification_daemon(tree, watcher):
    """python3-dbusmock's notification daemon on the test's session bus; returns once it owns the name."""
    p = tree.popen([DJANGO_PYTHON, "-m", "dbusmock", "--session", "-t", "notification_daemon"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    watcher.wait_for(lambda s: s.member == "NameOwnerChanged" and s.args[0] == NOTIFICATIONS and s.args[2],
                     timeout=30, what=f"{NOTIFICATIONS} on the bus")
    return p


def is_notify_call(s):
    return s.interface == MOCK and s.member == "MethodCalled" and s.args[0] == "Notify"


def notify_calls(watcher):
    """Every Notify the mock recorded: [(app_name, replaces_id, icon, summary, body, actions, hints, timeout)]."""
    calls = watcher.call(NOTIFICATIONS_PATH, MOCK, "GetMethodCalls", "s", ["Notify"], bus_name=NOTIFICATIONS)
    return [args for _, args in calls]


def crash_looping_sample(tree, name="polls"):
    """A copy of the polls sample whose settings raise at import: every start crashes."""
    project = tree.copy_sample("polls", dest=os.path.join(tree.home, "projects", name))
    with open(os.path.join(project, "mysite", "settings.py"), "a") as f:
        f.write("\nraise RuntimeError('djdesk-test: the settings exploded')\n")
    return project


def add_workspace(tree, project, **extra):
    with connect(tree.socket_path) as c:
        return c.call("workspace.add", {"path": project, "python": DJANGO_PYTHON, **extra})


def busy_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    return s


def start_until_failed(tree, slugs, timeout):
    """Asks for each server to start and waits until every one of them is failed; returns those events."""
    failed = {}
    with connect(tree.socket_path, timeout=timeout) as events, connect(tree.socket_path) as req:
        events.call("subscribe", {"topics": ["server.state"]})
        for slug in slugs:
            # The reply comes once the start succeeds or fails: it is never read, the events tell.
            req.send({"jsonrpc": "2.0", "id": slug, "method": "server.start", "params": {"workspace": slug}})
        while len(failed) < len(slugs):
            e = events.wait_event("server.state", timeout=timeout)
            if e["data"]["state"] == "failed":
                failed[e["data"]["workspace"]] = e["data"]
    return failed


def test_crash_loop_notifies_once(tree, watcher):
    start_notification_daemon(tree, watcher)
    d = tree.start()
    ws = add_workspace(tree, crash_looping_sample(tree))
    failed = start_until_failed(tree, [ws["slug"]], CRASH_LOOP_TIMEOUT)[ws["slug"]]
    assert "settings exploded" in (failed.get("reason") or ""), failed

    s = watcher.wait_for(is_notify_call, timeout=20, what="a Notify call")
    app, _, _, summary, body, _, hints, _ = s.args[1]
    assert app == "djdesk"
    assert summary == "djdesk: polls failed", summary
    assert "settings exploded" in body, body
    assert hints.get("urgency") == 2, hints  # critical: the server is down for good

    # A clean stop sends whatever is still queued: after it, the count is final.
    assert d.stop() == 0
    calls = notify_calls(watcher)
    assert len(calls) == 1, calls
    assert MISSING_SERVER_WARNING not in d.stderr_text


def test_busy_port_notifies_with_the_reason(tree, watcher):
    start_notification_daemon(tree, watcher)
    holder = busy_port()
    try:
        port = holder.getsockname()[1]
        d = tree.start()
        ws = add_workspace(tree, tree.copy_sample("polls"), name="Busy Site", port=port)
        failed = start_until_failed(tree, [ws["slug"]], 30)[ws["slug"]]
        assert str(port) in failed["reason"], failed
        s = watcher.wait_for(is_notify_call, timeout=20, what="a Notify call")
        summary, body = s.args[1][3], s.args[1][4]
        assert summary == "djdesk: Busy Site failed", summary  # the name, not the slug
        assert str(port) in body and "already in use" in body, body
        assert d.stop() == 0
        assert len(notify_calls(watcher)) == 1
    finally:
        holder.close()


def test_no_notification_server_warns_once(tree, watcher):
    holder = busy_port()
    try:
        port = holder.getsockname()[1]
        d = tree.start("--log-level=debug")
        slugs = [add_workspace(tree, tree.copy_sample("polls", dest=os.path.join(tree.home, "projects", n)),
                               port=port)["slug"] for n in ("one", "two", "three")]
        start_until_failed(tree, slugs, 30)
        # The thread tried all three (the first warns, the others only at debug level).
        d.wait_stderr(r"(?s)(Cannot show a desktop notification.*){3}", timeout=20)
        # The daemon goes on: both transports answer, and the servers can still be worked with.
        with connect(tree.socket_path) as c:
            assert c.call("daemon.info")["pid"] == d.pid
            assert c.call("server.status", {"workspace": "one"})["state"] == "failed"
        assert watcher.call("/io/djdesk/Desk1", "org.freedesktop.DBus.Properties", "Get", "ss",
                            ["io.djdesk.Desk1.Manager", "Version"])
        assert d.stop() == 0
        warnings = [ln for ln in d.stderr_text.splitlines()
                    if MISSING_SERVER_WARNING in ln and re.search(r"\bwarning\b", ln)]
        assert len(warnings) == 1, d.stderr_text
    finally:
        holder.close()


def test_notifications_come_back_with_a_server(tree, watcher):
    holder = busy_port()
    try:
        port = holder.getsockname()[1]
        d = tree.start()
        one = add_workspace(tree, tree.copy_sample("polls", dest=os.path.join(tree.home, "projects", "one")),
                            port=port)["slug"]
        two = add_workspace(tree, tree.copy_sample("polls", dest=os.path.join(tree.home, "projects", "two")),
                            port=port)["slug"]
        start_until_failed(tree, [one], 30)
        d.wait_stderr(MISSING_SERVER_WARNING, timeout=20)
        # A notification server appears: the next failure is shown.
        start_notification_daemon(tree, watcher)
        start_until_failed(tree, [two], 30)
        s = watcher.wait_for(is_notify_call, timeout=20, what="a Notify call")
        assert s.args[1][3] == "djdesk: two failed", s
        assert d.stop() == 0
        assert len(notify_calls(watcher)) == 1
        assert "Desktop notifications work again" in d.stderr_text
    finally:
        holder.close()


def test_reload_failure_notifies(tree, watcher):
    start_notification_daemon(tree, watcher)
    d = tree.start()
    project = tree.copy_sample("polls")
    ws = add_workspace(tree, project)
    with connect(tree.socket_path, timeout=60) as c:
        c.call("subscribe", {"topics": ["server.state"]})
        c.call("server.start", {"workspace": ws["slug"]})
        # A syntax error in a view: the reload fails, the old server keeps serving.
        with open(os.path.join(project, "polls", "views.py"), "a") as f:
            f.write("\ndef broken(:\n")
        while True:
            e = c.wait_event("server.state", timeout=60)
            if e["data"].get("reload_failed"):
                break
    assert e["data"]["state"] == "ready", e
    s = watcher.wait_for(is_notify_call, timeout=20, what="a Notify call")
    summary, body = s.args[1][3], s.args[1][4]
    assert summary == "djdesk: polls reload failed", summary
    assert "SyntaxError" in body or "invalid syntax" in body, body
    assert "previous code" in body, body
    assert d.stop() == 0
    assert len(notify_calls(watcher)) == 1


def test_stuck_notification_server_does_not_hold_up_shutdown(tree, watcher):
    start_notification_daemon(tree, watcher)
    # The mock now takes 30 s to answer Notify (libnotify waits 25 s for a reply).
    watcher.call(NOTIFICATIONS_PATH, MOCK, "AddMethod", "sssss",
                 [NOTIFICATIONS, "Notify", "susssasa{sv}i", "u", "import time; time.sleep(30); ret = 1"],
                 bus_name=NOTIFICATIONS)
    holder = busy_port()
    try:
        d = tree.start()
        ws = add_workspace(tree, tree.copy_sample("polls"), port=holder.getsockname()[1])
        start_until_failed(tree, [ws["slug"]], 30)
        watcher.wait_for(is_notify_call, timeout=20, what="a Notify call")  # the show is now blocked
        t0 = time.monotonic()
        assert d.stop(timeout=10) == 0
        elapsed = time.monotonic() - t0
        assert elapsed < 5, f"the daemon took {elapsed:.1f}s to stop"
        assert "A desktop notification is still being sent" in d.stderr_text, d.stderr_text
    finally:
        holder.close()
