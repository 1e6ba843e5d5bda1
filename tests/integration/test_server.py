# SPDX-License-Identifier: MIT
"""The Django server's life: start, port, environment, migrations, logs, stop (real daemon, real Django)."""

import os
import socket
import sqlite3
import threading
import time

import pytest

from conftest import RpcError, connect
from servertools import (START_TIMEOUT, Events, add_workspace, environ_of, free_port, group_members,
                         http_get, port_closed, proc_stat, wait_until)


def test_start_serves_the_page_then_stop_ends_the_group(tree):
    tree.start()
    ev = Events(tree)
    rpc = connect(tree.socket_path, timeout=START_TIMEOUT)
    project = tree.copy_sample("atlas")
    ws = add_workspace(rpc, project)
    slug = ws["slug"]
    assert ws["server"]["state"] == "stopped" and ws["server"]["pid"] == 0

    st = rpc.call("server.start", {"workspace": slug})
    assert st["state"] == "ready"
    port = st["port"]
    assert st["url"] == f"http://127.0.0.1:{port}/"
    assert st["pid"] > 0 and st["restarts"] == 0 and st["last_error"] is None and st["mode"] == "serve"
    assert st["started_at"] and st["ready_at"]

    status, _, body = http_get(port, "/")
    assert status == 200
    assert b"Atlas Telemetry Studio" in body

    # every transition was published, with what D-Bus needs
    ready = ev.wait_state(slug, "ready")
    assert ready["previous"] == "migrating" and ready["pid"] == st["pid"] and ready["port"] == port
    assert ready["url"] == st["url"] and ready["restarts"] == 0 and ready["last_error"] is None
    assert ev.states(slug) == ["starting", "migrating", "ready"]

    # starting again is a no-op that answers at once; status agrees
    assert rpc.call("server.start", {"workspace": slug})["pid"] == st["pid"]
    status_now = rpc.call("server.status", {"workspace": slug})
    assert status_now["state"] == "ready" and status_now["pid"] == st["pid"]
    # the bookmark is stored
    assert rpc.call("workspace.get", {"workspace": slug})["last_port"] == port

    pgid = st["pid"]
    assert pgid in group_members(pgid)
    stopped = rpc.call("server.stop", {"workspace": slug})
    assert stopped["state"] == "stopped" and stopped["pid"] == 0 and stopped["url"] is None
    assert group_members(pgid) == []
    assert port_closed(port)
    ev.wait_state(slug, "stopped", previous="stopping")
    # stopping a stopped server is fine
    assert rpc.call("server.stop", {"workspace": slug})["state"] == "stopped"


def test_unknown_workspace_is_not_found(tree):
    tree.start()
    rpc = connect(tree.socket_path)
    for method in ("server.start", "server.stop", "server.restart", "server.status", "server.logs"):
        with pytest.raises(RpcError) as e:
            rpc.call(method, {"workspace": "nope"})
        assert e.value.code == -32001, method
        assert e.value.error["message"] == "no workspace 'nope'"
    with pytest.raises(RpcError) as e:
        rpc.call("server.start", {})
    assert e.value.code == -32602


def test_forced_port_is_honoured_and_a_busy_one_is_a_clear_failure(tree):
    port = free_port()
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", port))
    holder.listen()
    tree.start(env={"DJDESK_FORCE_PORT": str(port)})
    ev = Events(tree)
    rpc = connect(tree.socket_path, timeout=START_TIMEOUT)
    slug = add_workspace(rpc, tree.copy_sample("atlas"))["slug"]

    with pytest.raises(RpcError) as e:
        rpc.call("server.start", {"workspace": slug})
    message = f"port {port} is already in use (DJDESK_FORCE_PORT)"
    assert e.value.code == -32003
    assert e.value.error["message"] == message
    assert e.value.error["data"]["kind"] == "busy"
    failed = ev.wait_state(slug, "failed")
    assert failed["reason"] == message and failed["last_error"] == message
    st = rpc.call("server.status", {"workspace": slug})
    assert st["state"] == "failed" and st["last_error"] == message and st["pid"] == 0

    holder.close()
    st = rpc.call("server.start", {"workspace": slug})
    assert st["state"] == "ready" and st["port"] == port and st["last_error"] is None
    assert http_get(port)[0] == 200


def test_two_workspaces_serve_at_once(tree):
    tree.start()
    rpc = connect(tree.socket_path, timeout=START_TIMEOUT)
    atlas = add_workspace(rpc, tree.copy_sample("atlas"))["slug"]
    polls = add_workspace(rpc, tree.copy_sample("polls"))["slug"]
    a = rpc.call("server.start", {"workspace": atlas})
    p = rpc.call("server.start", {"workspace": polls})
    assert a["port"] != p["port"]
    assert a["pid"] != p["pid"]
    status, _, body = http_get(a["port"])
    assert status == 200 and b"Atlas Telemetry Studio" in body
    assert http_get(p["port"], "/")[0] == 200
    assert rpc.call("server.stop", {"workspace": atlas})["state"] == "stopped"
    assert rpc.call("server.status", {"workspace": polls})["state"] == "ready"
    assert http_get(p["port"], "/")[0] == 200


def test_child_environment_is_clean(tree):
    tree.start(env={"DJANGO_SETTINGS_MODULE": "bogus.settings", "PYTHONPATH": "/nonexistent"})
    rpc = connect(tree.socket_path, timeout=START_TIMEOUT)
    ws = add_workspace(rpc, tree.copy_sample("atlas"))
    assert ws["settings_module"] == "atlas.settings"
    st = rpc.call("server.start", {"workspace": ws["slug"]})
    env = environ_of(st["pid"])
    assert env["DJANGO_SETTINGS_MODULE"] == "atlas.settings"
    assert "PYTHONPATH" not in env
    assert env["PYTHONUNBUFFERED"] == "1"
    assert http_get(st["port"])[0] == 200


def test_migrate_on_start_applies_migrations_and_logs_them(tree):
    tree.start()
    ev = Events(tree)
    rpc = connect(tree.socket_path, timeout=START_TIMEOUT)
    project = tree.copy_sample("atlas")
    slug = add_workspace(rpc, project)["slug"]
    rpc.call("server.start", {"workspace": slug})

    with sqlite3.connect(os.path.join(project, "db.sqlite3")) as db:
        applied = {(a, n) for a, n in db.execute("SELECT app, name FROM django_migrations")}
        tables = {t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert ("catalog", "0001_initial") in applied and ("ledger", "0002_batch_checksum") in applied
    assert {"catalog_instrument", "ledger_batch", "alerts_alert"} <= tables

    logs = rpc.call("server.logs", {"workspace": slug, "limit": 1000})
    texts = [line["text"] for line in logs["lines"]]
    assert "  Applying catalog.0001_initial... OK" in texts
    line = next(line for line in logs["lines"] if line["text"] == "  Applying catalog.0001_initial... OK")
    assert line["stream"] == "stdout" and line["level"] == "info" and line["kind"] == "log"
    # the same lines went out as server.log events
    ev.wait(lambda e: e["topic"] == "server.log" and any(
        x["text"] == "  Applying ledger.0002_batch_checksum... OK" for x in e["data"]["lines"]),
        what="the migration line as an event")


def test_without_migrate_on_start_nothing_is_applied(tree):
    tree.start()
    ev = Events(tree)
    rpc = connect(tree.socket_path, timeout=START_TIMEOUT)
    project = tree.copy_sample("atlas")
    slug = add_workspace(rpc, project, migrate_on_start=False)["slug"]
    st = rpc.call("server.start", {"workspace": slug})
    assert http_get(st["port"])[0] == 200      # the dashboard copes with an empty database
    assert "migrating" not in ev.states(slug)
    db = os.path.join(project, "db.sqlite3")
    if os.path.exists(db):
        with sqlite3.connect(db) as c:
            assert not c.execute("SELECT name FROM sqlite_master WHERE name = 'django_migrations'").fetchall()
    logs = rpc.call("server.logs", {"workspace": slug})["lines"]
    warning = [x for x in logs if "unapplied migration" in x["text"]]
    assert warning and warning[0]["level"] == "warning"


def test_logs_classify_requests_and_page(tree):
    tree.start()
    rpc = connect(tree.socket_path, timeout=START_TIMEOUT)
    slug = add_workspace(rpc, tree.copy_sample("atlas"))["slug"]
    port = rpc.call("server.start", {"workspace": slug})["port"]
    assert http_get(port, "/")[0] == 200
    assert http_get(port, "/no-such-page/")[0] == 404

    def requests():
        lines = rpc.call("server.logs", {"workspace": slug, "limit": 500})["lines"]
        found = [x for x in lines if x["kind"] == "request"]
        return found if len(found) >= 2 else None

    # a request line is written once the response is sent: wait for it (polling the log, bounded)
    reqs = wait_until(requests, timeout=10, what="two request lines")
    ok = next(x for x in reqs if '"GET / HTTP/1.1"' in x["text"])
    missing = next(x for x in reqs if '"GET /no-such-page/ HTTP/1.1"' in x["text"])
    assert ok["status"] == 200 and ok["level"] == "info" and ok["stream"] == "stderr"
    assert missing["status"] == 404 and missing["level"] == "warning"
    assert "status" not in next(x for x in rpc.call("server.logs", {"workspace": slug})["lines"]
                                if x["kind"] == "log")

    # paging: numbers increase by one, since/limit/next work
    every = rpc.call("server.logs", {"workspace": slug, "limit": 10000})
    ns = [x["n"] for x in every["lines"]]
    assert ns == list(range(ns[0], ns[0] + len(ns))) and ns[0] == 1
    assert every["next"] == ns[-1] and every["workspace"] == slug
    last2 = rpc.call("server.logs", {"workspace": slug, "limit": 2})
    assert [x["n"] for x in last2["lines"]] == ns[-2:]
    after = rpc.call("server.logs", {"workspace": slug, "since": ns[-3]})
    assert [x["n"] for x in after["lines"]] == ns[-2:]
    none = rpc.call("server.logs", {"workspace": slug, "since": ns[-1]})
    assert none["lines"] == [] and none["next"] == ns[-1]


def test_log_numbers_continue_after_a_daemon_restart(tree):
    d = tree.start()
    rpc = connect(tree.socket_path, timeout=START_TIMEOUT)
    slug = add_workspace(rpc, tree.copy_sample("atlas"))["slug"]
    rpc.call("server.start", {"workspace": slug})
    rpc.call("server.stop", {"workspace": slug})
    before = rpc.call("server.logs", {"workspace": slug, "limit": 10000})["lines"]
    rpc.close()
    assert d.stop() == 0

    tree.start()
    rpc = connect(tree.socket_path, timeout=START_TIMEOUT)
    # from the store: the same lines, same numbers, same classification
    again = rpc.call("server.logs", {"workspace": slug, "limit": 10000})["lines"]
    assert [(x["n"], x["text"], x["kind"], x["level"]) for x in again] == \
        [(x["n"], x["text"], x["kind"], x["level"]) for x in before]
    rpc.call("server.start", {"workspace": slug})
    after = rpc.call("server.logs", {"workspace": slug, "since": before[-1]["n"]})["lines"]
    assert after and after[0]["n"] == before[-1]["n"] + 1


def test_start_deadline_fails_and_kills(tree):
    tree.write_config("[server]\nstart_timeout_sec = 2\n")
    tree.start()
    ev = Events(tree)
    rpc = connect(tree.socket_path, timeout=START_TIMEOUT)
    project = tree.copy_sample("atlas")
    with open(os.path.join(project, "atlas", "settings.py"), "a") as f:
        f.write("\nimport time\ntime.sleep(600)\n")
    slug = add_workspace(rpc, project, migrate_on_start=False)["slug"]
    with pytest.raises(RpcError) as e:
        rpc.call("server.start", {"workspace": slug})
    assert e.value.error["message"] == "not ready after 2 s"
    pid = ev.wait_state(slug, "starting")["pid"]
    assert ev.wait_state(slug, "failed")["reason"] == "not ready after 2 s"
    assert pid > 0
    wait_until(lambda: group_members(pid) == [], timeout=10, what="the group killed")
    assert rpc.call("server.status", {"workspace": slug})["state"] == "failed"


def test_stop_while_starting_fails_the_start(tree):
    tree.start()
    ev = Events(tree)
    project = tree.copy_sample("atlas")
    with open(os.path.join(project, "atlas", "settings.py"), "a") as f:
        f.write("\nimport time\ntime.sleep(600)\n")
    rpc = connect(tree.socket_path, timeout=START_TIMEOUT)
    slug = add_workspace(rpc, project, migrate_on_start=False)["slug"]
    starter = connect(tree.socket_path, timeout=START_TIMEOUT)
    starter.send({"jsonrpc": "2.0", "id": 1, "method": "server.start", "params": {"workspace": slug}})
    pid = ev.wait_state(slug, "starting")["pid"]
    assert rpc.call("server.stop", {"workspace": slug})["state"] == "stopped"
    reply = starter.response(1)
    assert reply["error"]["message"] == "stopped before it was ready"
    assert group_members(pid) == []


def test_runserver_mode_serves_and_stop_ends_the_autoreloader_too(tree):
    tree.start()
    ev = Events(tree)
    rpc = connect(tree.socket_path, timeout=START_TIMEOUT)
    project = tree.copy_sample("atlas")
    slug = add_workspace(rpc, project, mode="runserver")["slug"]
    st = rpc.call("server.start", {"workspace": slug})
    assert st["state"] == "ready" and st["mode"] == "runserver"
    ev.wait_state(slug, "ready")
    assert ev.states(slug) == ["starting", "migrating", "starting", "ready"]
    status, _, body = http_get(st["port"])
    assert status == 200 and b"Atlas Telemetry Studio" in body
    with sqlite3.connect(os.path.join(project, "db.sqlite3")) as db:
        assert db.execute("SELECT count(*) FROM django_migrations").fetchone()[0] >= 20
    pgid = st["pid"]
    # Django's autoreloader runs the server in a child process of the same group
    members = wait_until(lambda: len(group_members(pgid)) >= 2 and group_members(pgid), timeout=10,
                         what="the autoreloader's child")
    assert any(proc_stat(p)[1] == pgid for p in members)

    assert rpc.call("server.stop", {"workspace": slug})["state"] == "stopped"
    assert group_members(pgid) == []
    wait_until(lambda: port_closed(st["port"]), timeout=5, what="the port closed")


def test_daemon_shutdown_stops_every_server_first(tree):
    d = tree.start()
    ev = Events(tree, topics=("server.*", "daemon.*"))
    rpc = connect(tree.socket_path, timeout=START_TIMEOUT)
    slugs = [add_workspace(rpc, tree.copy_sample(name))["slug"] for name in ("atlas", "polls")]
    started = [rpc.call("server.start", {"workspace": s}) for s in slugs]
    assert d.stop() == 0
    for st in started:
        assert group_members(st["pid"]) == []
        assert port_closed(st["port"])
    # subscribers heard the servers stop before the connection closed
    try:
        while True:
            ev.next(10)
    except EOFError:
        pass
    for s in slugs:
        assert ev.states(s)[-2:] == ["stopping", "stopped"]
    topics = [e["topic"] for e in ev.seen]
    assert topics.index("daemon.shutdown") < len(topics) - 1


def test_a_server_that_does_not_stop_is_killed_after_the_stop_timeout(tree):
    # A thread the project started (not a daemon thread) keeps djdesk-serve's interpreter from exiting after
    # SIGTERM: only the SIGKILL after stop_timeout_sec ends it, and the stop waits for that.
    tree.write_config("[server]\nstop_timeout_sec = 1\n")
    d = tree.start(env={"DJDESK_LOG_LEVEL": "debug"})
    rpc = connect(tree.socket_path, timeout=START_TIMEOUT)
    project = tree.copy_sample("atlas")
    with open(os.path.join(project, "atlas", "settings.py"), "a") as f:
        f.write("\nimport threading as _th, time as _t\n"
                "_th.Thread(target=_t.sleep, args=(600,), name='djdesk-test', daemon=False).start()\n")
    slug = add_workspace(rpc, project, migrate_on_start=False)["slug"]
    st = rpc.call("server.start", {"workspace": slug})
    pgid = st["pid"]
    assert http_get(st["port"])[0] == 200

    t0 = time.monotonic()
    stopped = rpc.call("server.stop", {"workspace": slug})
    took = time.monotonic() - t0
    assert stopped["state"] == "stopped" and stopped["pid"] == 0
    assert group_members(pgid) == []
    assert 1.0 <= took < 4.0, f"the stop took {took:.2f}s with stop_timeout_sec = 1"
    d.wait_stderr(rf"process {pgid} did not stop in time, sending SIGKILL")
    d.wait_stderr(rf"process {pgid} killed by SIGKILL")
    texts = [x["text"] for x in rpc.call("server.logs", {"workspace": slug, "limit": 1000})["lines"]]
    assert any(t.startswith("djdesk-serve: SIGTERM: stopped accepting") for t in texts), texts
    assert rpc.call("server.status", {"workspace": slug})["state"] == "stopped"


def test_serve_gives_up_on_a_slow_request_before_the_stop_timeout(tree):
    # djdesk-serve's own grace for requests in flight ends half a second before the daemon's SIGKILL: it
    # exits by itself, saying so, and is never killed.
    tree.write_config("[server]\nstop_timeout_sec = 2\n")
    d = tree.start(env={"DJDESK_LOG_LEVEL": "debug"})
    ev = Events(tree)
    rpc = connect(tree.socket_path, timeout=START_TIMEOUT)
    project = tree.copy_sample("atlas")
    with open(os.path.join(project, "atlas", "urls.py"), "a") as f:
        f.write("\n\ndef _slow(request):\n"
                "    import time\n"
                "    print('djdesk-test: slow request', flush=True)\n"
                "    time.sleep(60)\n\n\n"
                "urlpatterns.append(path('slow/', _slow))\n")
    slug = add_workspace(rpc, project, migrate_on_start=False)["slug"]
    st = rpc.call("server.start", {"workspace": slug})
    pgid = st["pid"]
    argv = open(f"/proc/{pgid}/cmdline", "rb").read().split(b"\0")
    assert argv[argv.index(b"--grace") + 1] == b"1.500"

    outcome = []
    client = threading.Thread(target=lambda: outcome.append(_try_get(st["port"], "/slow/")), daemon=True)
    client.start()
    ev.wait(lambda e: e["topic"] == "server.log" and any(
        x["text"] == "djdesk-test: slow request" for x in e["data"]["lines"]), what="the slow request running")

    t0 = time.monotonic()
    stopped = rpc.call("server.stop", {"workspace": slug})
    took = time.monotonic() - t0
    assert stopped["state"] == "stopped"
    assert group_members(pgid) == []
    assert 1.4 <= took < 4.0, f"the stop took {took:.2f}s (grace 1.5 s, SIGKILL at 2 s)"
    texts = [x["text"] for x in rpc.call("server.logs", {"workspace": slug, "limit": 1000})["lines"]]
    assert "djdesk-serve: warning: 1 request(s) still running after 1.5s, exiting anyway" in texts, texts
    d.wait_stderr(rf"process {pgid} exited with status 0")
    assert "did not stop in time" not in d.stderr_text
    client.join(timeout=20)
    assert outcome and outcome[0] != 200     # the request was cut short


def _try_get(port, path):
    try:
        return http_get(port, path, timeout=30)[0]
    except Exception as e:      # the connection closed under it
        return repr(e)
