# SPDX-License-Identifier: MIT
"""The Django server under change and trouble: reload without downtime, a reload that fails, crash
restarts and the crash-loop limit, restart, and orphans left by a daemon that was killed."""

import os
import signal
import threading
import time

import pytest

from conftest import RpcError, connect
from servertools import (START_TIMEOUT, Events, add_workspace, group_members, http_get, proc_stat,
                         wait_status, wait_until)

# Reload tests write the same file several times within a second: keep stale bytecode out of the picture.
NO_PYC = {"PYTHONDONTWRITEBYTECODE": "1"}


class Client(threading.Thread):
    """Requests / in a loop (a new connection each time) and counts what went wrong."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.stop_flag = threading.Event()
        self.ok = 0
        self.failures = []
        self.versions = set()

    def run(self):
        while not self.stop_flag.is_set():
            try:
                status, headers, body = http_get(self.port, "/", timeout=10)
                if status != 200 or b"Atlas Telemetry Studio" not in body:
                    self.failures.append(f"status {status}")
                else:
                    self.ok += 1
                    self.versions.add(headers.get("X-Djdesk-Version"))
            except Exception as e:      # refused, reset, timed out: all failures
                self.failures.append(repr(e))

    def finish(self):
        self.stop_flag.set()
        self.join(timeout=20)
        assert not self.is_alive()


def tag_views(project, version):
    """Wraps the dashboard view so that responses carry X-Djdesk-Version (each version a different size)."""
    path = os.path.join(project, "catalog", "views.py")
    with open(path) as f:
        text = f.read().split("\n# djdesk-test\n")[0]
    text += ("\n# djdesk-test\n_dashboard = dashboard\n\n\ndef dashboard(request):\n"
             "    response = _dashboard(request)\n"
             f"    response['X-Djdesk-Version'] = {version!r}\n"
             "    return response\n")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def break_views(project):
    with open(os.path.join(project, "catalog", "views.py"), "a") as f:
        f.write("\n# djdesk-test\n\ndef broken(:\n    pass\n")


def started(tree, env=None, **ws_params):
    tree.start(env=env)
    ev = Events(tree)
    rpc = connect(tree.socket_path, timeout=START_TIMEOUT)
    project = tree.copy_sample("atlas")
    slug = add_workspace(rpc, project, **ws_params)["slug"]
    st = rpc.call("server.start", {"workspace": slug})
    ev.wait_state(slug, "ready")
    return ev, rpc, project, slug, st


def test_code_change_reloads_without_a_failed_request(tree):
    ev, rpc, project, slug, st = started(tree, env=NO_PYC)
    client = Client(st["port"])
    client.start()
    try:
        wait_until(lambda: client.ok >= 5, timeout=20, what="the client running")
        for version in ("2", "33"):
            tag_views(project, version)
            ev.wait_state(slug, "reloading")
            ready = ev.wait_state(slug, "ready", previous="reloading")
            assert "reload_failed" not in ready
            assert ready["pid"] != st["pid"] and ready["port"] == st["port"] and ready["last_error"] is None
            n = client.ok
            wait_until(lambda: client.ok >= n + 5, timeout=20, what="requests after the reload")
    finally:
        client.finish()
    assert client.failures == []
    assert client.ok > 20
    assert {"2", "33"} <= client.versions
    assert http_get(st["port"])[1]["X-Djdesk-Version"] == "33"
    now = rpc.call("server.status", {"workspace": slug})
    assert now["state"] == "ready" and now["port"] == st["port"] and now["url"] == st["url"]
    # the old processes are gone (they finished their requests and exited)
    wait_until(lambda: group_members(st["pid"]) == [], timeout=15, what="the first process gone")


def test_a_reload_that_fails_keeps_the_old_server(tree):
    ev, rpc, project, slug, st = started(tree, env=NO_PYC)
    break_views(project)
    ev.wait_state(slug, "reloading")
    ready = ev.wait_state(slug, "ready", previous="reloading")
    assert ready["reload_failed"] is True
    assert "SyntaxError" in ready["last_error"]
    assert ready["pid"] == st["pid"]
    status = rpc.call("server.status", {"workspace": slug})
    assert status["state"] == "ready" and "SyntaxError" in status["last_error"] and status["pid"] == st["pid"]
    for _ in range(5):
        assert http_get(st["port"])[0] == 200

    # fixed: the next reload goes through and clears the error
    tag_views(project, "fixed")
    ready = ev.wait_state(slug, "ready", previous="reloading")
    assert "reload_failed" not in ready and ready["last_error"] is None and ready["pid"] != st["pid"]
    assert http_get(st["port"])[1]["X-Djdesk-Version"] == "fixed"


def test_a_change_during_a_reload_triggers_one_more(tree):
    tree.write_config("[server]\nreload_debounce_ms = 10\n")
    ev, rpc, project, slug, st = started(tree, env=NO_PYC)
    tag_views(project, "first")
    ev.wait_state(slug, "reloading")
    tag_views(project, "second")          # lands while the first reload is starting (debounce 10 ms)
    first = ev.wait_state(slug, "ready", previous="reloading")
    second = ev.wait_state(slug, "ready", previous="reloading")
    assert "reload_failed" not in first and "reload_failed" not in second
    assert len({st["pid"], first["pid"], second["pid"]}) == 3
    assert http_get(st["port"])[1]["X-Djdesk-Version"] == "second"


def test_kill_9_restarts_on_the_same_port(tree):
    ev, rpc, project, slug, st = started(tree)
    os.kill(st["pid"], signal.SIGKILL)
    crashed = ev.wait_state(slug, "crashed")
    assert crashed["reason"] == "killed by SIGKILL"
    assert crashed["port"] == st["port"]
    ready = ev.wait_state(slug, "ready")
    assert ready["pid"] != st["pid"] and ready["port"] == st["port"] and ready["restarts"] == 1
    assert http_get(st["port"])[0] == 200
    assert ev.states(slug)[-4:] == ["crashed", "starting", "migrating", "ready"] or \
        ev.states(slug)[-3:] == ["crashed", "starting", "ready"]


def test_restart_gives_a_new_process(tree):
    ev, rpc, project, slug, st = started(tree)
    again = rpc.call("server.restart", {"workspace": slug})
    assert again["state"] == "ready" and again["pid"] != st["pid"] and again["port"] == st["port"]
    assert group_members(st["pid"]) == []
    assert http_get(again["port"])[0] == 200


def test_settings_that_raise_end_failed_after_the_crash_loop_without_cpu(tree):
    d = tree.start()
    ev = Events(tree)
    rpc = connect(tree.socket_path, timeout=START_TIMEOUT)
    project = tree.copy_sample("atlas")
    with open(os.path.join(project, "atlas", "settings.py"), "a") as f:
        f.write('\nraise RuntimeError("boom")\n')
    slug = add_workspace(rpc, project)["slug"]
    starter = connect(tree.socket_path, timeout=START_TIMEOUT)
    starter.send({"jsonrpc": "2.0", "id": 1, "method": "server.start", "params": {"workspace": slug}})

    # the 4th crash waits 4 s, the 5th 8 s: measure the daemon's CPU time across 2 s of back-off
    for i in range(4):
        crashed = ev.wait_state(slug, "crashed")
        assert "boom" in crashed["reason"] and "boom" in crashed["last_error"]
    before = proc_stat(d.pid)[3]
    t0 = time.monotonic()
    time.sleep(2.0)     # a measurement window, not a wait for readiness
    used = proc_stat(d.pid)[3] - before
    assert time.monotonic() - t0 < 4.0, "the measurement overlapped a restart"
    assert used < 0.2, f"the daemon used {used:.2f} s of CPU in 2 s while crashed"

    failed = ev.wait_state(slug, "failed", timeout=60)
    assert "boom" in failed["reason"]
    assert failed["restarts"] == 5
    reply = starter.response(1)
    assert reply["error"]["code"] == -32603 and "boom" in reply["error"]["message"]
    states = ev.states(slug)
    assert states.count("crashed") == 5 and states[-1] == "failed"
    st = rpc.call("server.status", {"workspace": slug})
    assert st["state"] == "failed" and st["restarts"] == 5 and "boom" in st["last_error"] and st["pid"] == 0


def test_migration_failure_fails_without_a_crash_loop(tree):
    tree.start()
    ev = Events(tree)
    rpc = connect(tree.socket_path, timeout=START_TIMEOUT)
    project = tree.copy_sample("atlas")
    with open(os.path.join(project, "ledger", "migrations", "0003_explode.py"), "w") as f:
        f.write("from django.db import migrations\n\n\n"
                "def explode(apps, schema_editor):\n"
                "    raise RuntimeError('deliberate failure in 0003_explode')\n\n\n"
                "class Migration(migrations.Migration):\n"
                "    dependencies = [('ledger', '0002_batch_checksum')]\n"
                "    operations = [migrations.RunPython(explode)]\n")
    slug = add_workspace(rpc, project)["slug"]
    with pytest.raises(RpcError) as e:
        rpc.call("server.start", {"workspace": slug})
    want = "djdesk-serve: error: migrate failed: RuntimeError: deliberate failure in 0003_explode"
    assert e.value.error["message"] == want
    failed = ev.wait_state(slug, "failed")
    assert failed["reason"] == want and failed["restarts"] == 0
    assert "crashed" not in ev.states(slug)
    assert ev.states(slug) == ["starting", "migrating", "failed"]


def test_orphans_of_a_killed_daemon_are_ended_and_autostart_comes_back(tree):
    # What outlives a daemon killed with SIGKILL? Its servers get SIGTERM (their parent-death signal) and
    # stop, and Django's autoreloader takes its child down with it; but a process the project itself
    # started and that ignores SIGTERM stays behind in the server's process group: an orphan.
    tree.write_config("[server]\nstop_timeout_sec = 1\n")
    d = tree.start()
    rpc = connect(tree.socket_path, timeout=START_TIMEOUT)
    project = tree.copy_sample("atlas")
    with open(os.path.join(project, "atlas", "settings.py"), "a") as f:
        f.write("\nimport subprocess as _sp, sys as _sys\n"
                "_sp.Popen([_sys.executable, '-c', 'import signal, time; "
                "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)'])\n")
    # No seed scans: the probe loads these settings too, and whether its group is still running (with a
    # helper of its own) when the daemon is killed would depend on timing.
    slug = add_workspace(rpc, project, autostart=True, migrate_on_start=False, seed_scans=False)["slug"]
    st = rpc.call("server.start", {"workspace": slug})
    pgid = st["pid"]
    helper = wait_until(lambda: [p for p in group_members(pgid) if p != pgid], timeout=10,
                        what="the project's helper process")
    rpc.close()

    d.kill()
    # The server gets SIGTERM (its parent-death signal) and exits; init reaps it only up to a second or so
    # later. Start again as soon as it is dead, reaped or not: a zombie leader whose group still has
    # members is a group of ours.
    wait_until(lambda: (lambda st: st is None or st[0] == "Z")(proc_stat(pgid)), timeout=20,
               what="the server dead")
    assert group_members(pgid) == helper, "expected the helper that ignores SIGTERM to outlive the daemon"

    d2 = tree.start()
    left = group_members(pgid)
    for pid in left:                      # never leave it behind, even when the test fails
        os.kill(pid, signal.SIGKILL)
    assert left == []                     # ended before the new daemon said READY=1
    d2.wait_stderr(r"Ended 1 process group\(s\) left by the previous djdeskd")
    ev = Events(tree)
    ready = wait_status(tree, ev, slug, "ready")
    assert ready["port"] == st["port"]    # the bookmark
    assert ready["pid"] != pgid
    status, _, body = http_get(st["port"])
    assert status == 200 and b"Atlas Telemetry Studio" in body


def test_runserver_leaves_nothing_behind_a_killed_daemon(tree):
    d = tree.start()
    rpc = connect(tree.socket_path, timeout=START_TIMEOUT)
    slug = add_workspace(rpc, tree.copy_sample("atlas"), mode="runserver")["slug"]
    st = rpc.call("server.start", {"workspace": slug})
    pgid = st["pid"]
    wait_until(lambda: len(group_members(pgid)) >= 2, timeout=10, what="the autoreloader's child")
    d.kill()
    wait_until(lambda: group_members(pgid) == [], timeout=10, what="runserver and its child gone")


def test_a_start_with_migrations_to_apply_does_not_reload(tree):
    # A start writes in the project: the database and its journal (migrations), bytecode caches, and more of
    # both on the first requests (sessions, lazily imported modules). None of it is a change of code: no
    # reload may follow. (Bytecode is written: the daemon does not pass PYTHONDONTWRITEBYTECODE on.) Nor
    # from code opened for writing and left as it was: atlas's settings "make sure local_settings.py
    # exists" the usual way, at every start of every process, a reload's included.
    debounce = 0.3
    tree.write_config(f"[server]\nreload_debounce_ms = {int(debounce * 1000)}\n")
    d = tree.start(env={"DJDESK_LOG_LEVEL": "debug"})
    ev = Events(tree)
    rpc = connect(tree.socket_path, timeout=START_TIMEOUT)
    started = []
    for name in ("atlas", "polls"):
        project = tree.copy_sample(name)
        if name == "atlas":
            with open(os.path.join(project, "atlas", "local_settings.py"), "w") as f:
                f.write("LOCAL = True\n")
            with open(os.path.join(project, "atlas", "settings.py"), "a") as f:
                f.write("\nopen(BASE_DIR / 'atlas' / 'local_settings.py', 'a').close()\n"
                        "from .local_settings import *  # noqa\n")
        slug = add_workspace(rpc, project)["slug"]
        st = rpc.call("server.start", {"workspace": slug})
        ev.wait_state(slug, "ready")
        assert ev.states(slug) == ["starting", "migrating", "ready"]
        for path in ("/", "/admin/login/", "/admin/login/?next=/admin/"):
            http_get(st["port"], path)
        assert os.path.exists(os.path.join(project, "db.sqlite3"))
        assert any("__pycache__" in dirs for _, dirs, _ in os.walk(project)), "no bytecode was written"
        started.append((slug, st["pid"]))

    # twice the debounce, and more: a window in which a reload would have begun, not a wait for readiness
    with pytest.raises(TimeoutError):
        ev.wait(lambda e: e["topic"] == "server.state" and e["data"]["state"] == "reloading",
                timeout=2 * debounce + 1.0, what="a reload")
    for slug, pid in started:
        st = rpc.call("server.status", {"workspace": slug})
        assert st["state"] == "ready" and st["pid"] == pid
    assert "reloading:" not in d.stderr_text and "reloading once ready" not in d.stderr_text
