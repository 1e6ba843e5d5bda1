# SPDX-License-Identifier: MIT
"""Black-box tests of python/djdesk-serve: real child processes on a real inherited socket."""

import http.client
import json
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import DJANGO_VERSION, PYTHON, SERVE, add_test_urls, child_env, http_get, manage

REQUEST_LOG = r'"%s %s HTTP/1\.1" %d \d+'


def port_of(listener):
    return listener.getsockname()[1]


def no_ready(server):
    return not any(m.get("READY") == "1" for m in server.ready_messages())


def start_slow_request(server, port, marker, seconds):
    """GET of the test view that takes `seconds`, in a thread; returns (thread, result) once the view runs.
    result gets "response" (status, headers, body) and "at" (when it came back), or "error"."""
    result = {}

    def slow_request():
        try:
            result["response"] = http_get(port, "/djdesk-test/slow/?seconds=%s&marker=%s" % (seconds, marker),
                                          timeout=20)
            result["at"] = time.monotonic()
        except (OSError, http.client.HTTPException) as exc:
            result["error"] = exc

    client = threading.Thread(target=slow_request)
    client.start()
    deadline = time.monotonic() + 10
    while not marker.exists():
        assert time.monotonic() < deadline, server.output()
        time.sleep(0.01)
    return client, result


# ------------------------------------------------------------------------------------------------
# Serving

def test_ready_then_serves_atlas_page_and_static(sample, listener, serve):
    project = sample("atlas")
    port = port_of(listener)
    server = serve(project, listener, args=["--migrate"])
    ready = server.wait_ready()

    assert ready["READY"] == "1"
    assert ready["STATUS"] == "serving"
    assert ready["MAINPID"] == str(server.pid)

    # runserver-style startup line with the real URL (from getsockname()) and the settings module
    line = server.wait_stderr(r"Django version (\S+), using settings '([\w.]+)', serving at (\S+)")
    assert line.group(1) == DJANGO_VERSION
    assert line.group(2) == "atlas.settings"            # manage.py's default
    assert line.group(3) == "http://127.0.0.1:%d/" % port

    status, headers, body = http_get(port, "/")
    assert status == 200
    assert headers["content-type"].startswith("text/html")
    assert b"<h1>Atlas Telemetry Studio</h1>" in body
    assert b"<th scope=\"row\">Instruments</th><td>0</td>" in body   # counts come from the migrated db

    status, headers, body = http_get(port, "/static/atlas.css")
    assert status == 200
    assert headers["content-type"].startswith("text/css")
    assert b"Atlas Telemetry Studio" in body and b"h1 {" in body

    status, _, _ = http_get(port, "/no-such-page/")
    assert status == 404

    server.wait_stderr(REQUEST_LOG % ("GET", "/", 200))
    server.wait_stderr(REQUEST_LOG % ("GET", "/static/atlas.css", 200))
    server.wait_stderr(REQUEST_LOG % ("GET", "/no-such-page/", 404))

    assert server.stop() == 0
    assert re.search(r"SIGTERM: stopped accepting", "\n".join(server.stderr()))
    # the listening socket belongs to the test (the daemon) and is still listening
    assert listener.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1


def test_environment_handed_to_the_application_is_clean(sample, listener, serve):
    project = sample("atlas")
    settings = add_test_urls(project, "atlas")
    server = serve(project, listener, args=["--settings", settings], env={"DJANGO_SETTINGS_MODULE": "atlas.settings"})
    server.wait_ready()

    status, _, body = http_get(port_of(listener), "/djdesk-test/env/")
    assert status == 200, body
    info = json.loads(body)
    # LISTEN_* and NOTIFY_SOCKET are consumed and unset; --settings beats the environment
    assert info["environ"] == ["DJANGO_SETTINGS_MODULE"]
    assert info["settings"] == settings
    assert info["sys_path0"] == str(project)
    assert info["cwd"] == str(project)
    assert info["pid"] == server.pid
    # fd 3 stays open for serving but is close-on-exec: programs the app spawns do not inherit it
    assert info["fd3"] == {"open": True, "inheritable": False}
    assert server.stop() == 0


def test_notify_socket_path_and_sigint(sample, listener, serve):
    project = sample("generated")
    server = serve(project, listener, args=["--migrate"], abstract=False)
    assert server.notify.address.startswith("/")
    assert server.wait_ready()["MAINPID"] == str(server.pid)
    status, _, body = http_get(port_of(listener), "/")
    assert status == 200
    assert body.decode().splitlines() == ["generated sample: gamma.C -> beta.B -> alpha.A",
                                          "alpha.A: 0", "beta.B: 0", "gamma.C: 0"]
    assert server.stop(signal.SIGINT) == 0
    assert any("SIGINT: stopped accepting" in line for line in server.stderr())
    assert any(m.get("STOPPING") == "1" for m in server.ready_messages())


def test_polls_sample_serves_questions(sample, listener, serve):
    project = sample("polls")
    server = serve(project, listener, args=["--migrate"])
    server.wait_ready()
    port = port_of(listener)

    status, _, body = http_get(port, "/")
    assert status == 200 and b"No polls are available." in body

    manage(project, "shell", "-c",
           "from django.utils import timezone; from polls.models import Question;"
           "q = Question.objects.create(question_text=\"What's new?\", pub_date=timezone.now());"
           "q.choice_set.create(choice_text='Not much')")
    status, _, body = http_get(port, "/")
    assert status == 200 and b"What&#x27;s new?" in body
    status, _, body = http_get(port, "/1/")
    assert status == 200 and b"Not much" in body
    status, _, _ = http_get(port, "/admin/login/")
    assert status == 200
    assert server.stop() == 0


def test_static_switches(sample, listener, serve):
    project = sample("atlas")
    port = port_of(listener)

    # --no-static: runserver --nostatic
    server = serve(project, listener, args=["--migrate", "--no-static"])
    server.wait_ready()
    assert http_get(port, "/static/atlas.css")[0] == 404
    assert http_get(port, "/")[0] == 200
    assert server.stop() == 0

    # DEBUG off: no static files, unless --static (runserver --insecure)
    settings = project / "atlas" / "settings.py"
    settings.write_text(settings.read_text() + "\nDEBUG = False\n")
    server = serve(project, listener)
    server.wait_ready()
    assert http_get(port, "/static/atlas.css")[0] == 404
    assert server.stop() == 0

    server = serve(project, listener, args=["--static"])
    server.wait_ready()
    status, _, body = http_get(port, "/static/atlas.css")
    assert status == 200 and b"h1 {" in body
    assert server.stop() == 0


def test_bind_fallback_for_manual_use(sample, serve):
    project = sample("generated")
    server = serve(project, None, args=["--bind", "127.0.0.1:0"])
    server.wait_ready()
    port = int(server.wait_stderr(r"serving at http://127\.0\.0\.1:(\d+)/").group(1))
    assert port > 0
    status, _, body = http_get(port, "/")
    assert status == 200 and body.startswith(b"generated sample")
    assert server.stop() == 0


# ------------------------------------------------------------------------------------------------
# Migrations

def test_migrate_applies_everything_before_ready(sample, listener, serve):
    project = sample("atlas")
    assert not (project / "db.sqlite3").exists()
    server = serve(project, listener, args=["--migrate"])
    server.wait_ready()

    assert (project / "db.sqlite3").is_file()
    out = server.stdout()                       # Django's own migrate output, on stdout
    assert "Running migrations:" in out
    assert "  Applying catalog.0001_initial... OK" in out
    assert "  Applying ledger.0002_batch_checksum... OK" in out
    # every migration line was printed before READY=1 was sent
    applied = [t for t, line in server.stdout_lines if line.startswith("  Applying ")]
    assert len(applied) == 22 and max(applied) <= server.ready_at
    assert not any("unapplied migration" in line for line in server.stderr())
    assert server.stop() == 0

    shown = manage(project, "showmigrations").stdout
    assert "[ ]" not in shown
    assert shown.count("[X]") == 22
    for name in ("catalog", "alerts", "ledger"):
        assert re.search(r"^%s\n \[X\] 0001_initial" % name, shown, re.M)
    assert " [X] 0002_batch_checksum" in shown


def test_migrate_announces_migrating_only_with_work_to_do(sample, listener, serve):
    project = sample("atlas")
    server = serve(project, listener, args=["--migrate"])
    server.wait_ready()
    statuses = [m.get("STATUS") for m in server.ready_messages()]
    assert statuses[:2] == ["migrating", "serving"], server.ready_messages()
    assert server.stop() == 0

    server = serve(project, listener, args=["--migrate"])      # nothing left to apply
    server.wait_ready()
    assert [m.get("STATUS") for m in server.ready_messages()] == ["serving"]
    assert server.stop() == 0


def test_unapplied_migration_is_reported_without_migrate(sample, listener, serve):
    project = sample("atlas")
    manage(project, "migrate")
    manage(project, "migrate", "ledger", "0001")
    shown = manage(project, "showmigrations", "ledger").stdout.splitlines()
    assert shown == ["ledger", " [X] 0001_initial", " [ ] 0002_batch_checksum"]

    server = serve(project, listener)
    server.wait_ready()
    server.wait_stderr(r"You have 1 unapplied migration\(s\).*app\(s\): ledger\.")
    # the page still renders (the dashboard does not read Batch.checksum)
    assert http_get(port_of(listener), "/")[0] == 200
    assert server.stop() == 0
    assert "[ ] 0002_batch_checksum" in manage(project, "showmigrations", "ledger").stdout


def test_failing_migration_exits_3_without_ready(sample, listener, serve):
    project = sample("atlas")
    (project / "ledger" / "migrations" / "0003_explode.py").write_text(
        "from django.db import migrations\n\n\n"
        "def explode(apps, schema_editor):\n"
        "    raise RuntimeError('deliberate failure in 0003_explode')\n\n\n"
        "class Migration(migrations.Migration):\n"
        "    dependencies = [('ledger', '0002_batch_checksum')]\n"
        "    operations = [migrations.RunPython(explode)]\n")
    server = serve(project, listener, args=["--migrate"])
    assert server.wait_exit() == 3
    assert no_ready(server)
    err = server.stderr()
    assert "Traceback (most recent call last):" in err
    assert err[-1] == "djdesk-serve: error: migrate failed: RuntimeError: deliberate failure in 0003_explode"
    assert "  Applying ledger.0002_batch_checksum... OK" in server.stdout()


# ------------------------------------------------------------------------------------------------
# Failures before READY

@pytest.mark.parametrize("name,module", [("atlas", "catalog/views.py"), ("polls", "polls/views.py")])
def test_syntax_error_in_a_view_fails_before_ready(sample, listener, serve, name, module):
    project = sample(name)
    path = project / module
    path.write_text(path.read_text() + "\n\ndef broken(:\n    pass\n")
    server = serve(project, listener)
    assert server.wait_exit() == 1
    assert no_ready(server)
    err = server.stderr()
    assert "Traceback (most recent call last):" in err
    assert re.fullmatch(r"djdesk-serve: error: cannot load the application: SyntaxError: .*\(views\.py, line \d+\)",
                        err[-1]), err[-1]


def test_settings_that_raise_fail_before_ready(sample, listener, serve):
    project = sample("atlas")
    settings = project / "atlas" / "settings.py"
    settings.write_text(settings.read_text() + "\nraise RuntimeError('settings exploded on purpose')\n")
    server = serve(project, listener)
    assert server.wait_exit() == 1
    assert no_ready(server)
    err = server.stderr()
    assert "Traceback (most recent call last):" in err
    assert err[-1] == ("djdesk-serve: error: cannot configure Django (settings 'atlas.settings'): "
                       "RuntimeError: settings exploded on purpose")


@pytest.mark.parametrize("case,message", [
    ("no LISTEN_*", r"LISTEN_PID and LISTEN_FDS are not set.*--bind"),
    ("wrong pid", r"LISTEN_PID=1 is not this process"),
    ("two fds", r"LISTEN_FDS=2: expected exactly one"),
])
def test_socket_problems_exit_2(sample, listener, serve, case, message):
    project = sample("generated")
    if case == "no LISTEN_*":
        server = serve(project, None)
    elif case == "wrong pid":
        server = serve(project, listener, listen_pid=1)
    else:
        server = serve(project, listener, listen_fds="2")
    assert server.wait_exit() == 2
    assert no_ready(server)
    assert re.search(message, server.stderr()[-1]), server.output()


def test_fd3_that_is_not_listening_exits_2(sample, serve):
    project = sample("generated")
    unbound = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        server = serve(project, unbound)
        assert server.wait_exit() == 2
        assert server.stderr()[-1] == "djdesk-serve: error: fd 3 is not listening"
    finally:
        unbound.close()


# ------------------------------------------------------------------------------------------------
# Graceful stop and zero-downtime reload

def test_sigterm_finishes_request_in_flight(sample, listener, serve, tmp_path):
    project = sample("atlas")
    settings = add_test_urls(project, "atlas")
    port = port_of(listener)
    server = serve(project, listener, args=["--settings", settings, "--migrate"])
    server.wait_ready()

    client, result = start_slow_request(server, port, tmp_path / "slow-started", 1.5)

    sent = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    server.wait_stderr(r"SIGTERM: stopped accepting, finishing 1 open connection")

    # A connection that arrives now waits in the shared backlog: the stopping process leaves it alone.
    late = socket.create_connection(("127.0.0.1", port), timeout=10)
    late.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")

    assert server.wait_exit() == 0
    exited = time.monotonic()
    client.join(10)
    status, _, body = result["response"]
    assert status == 200 and body == b"slow done"
    assert exited - sent >= 1.0                 # it waited for the request...
    assert exited - sent < 8.0                  # ...and not for the grace period
    assert result["at"] <= exited + 0.5
    server.wait_stderr(REQUEST_LOG % ("GET", r"/djdesk-test/slow/\?\S+", 200))

    # The next process picks up the connection that queued meanwhile: nothing was refused.
    successor = serve(project, listener, args=["--settings", settings])
    successor.wait_ready()
    late.settimeout(10)
    reply = b""
    while True:
        chunk = late.recv(65536)
        if not chunk:
            break
        reply += chunk
    late.close()
    assert reply.startswith(b"HTTP/1.1 200 OK"), reply[:200]
    assert b"Atlas Telemetry Studio" in reply
    assert successor.stop() == 0


def test_idle_keepalive_connections_do_not_delay_stop(sample, listener, serve):
    project = sample("generated")
    port = port_of(listener)
    server = serve(project, listener, args=["--migrate"])
    server.wait_ready()

    # connected, never sends; accepted before the next one (one accept loop, FIFO backlog)
    silent = socket.create_connection(("127.0.0.1", port), timeout=10)
    keepalive = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    keepalive.request("GET", "/")
    resp = keepalive.getresponse()
    assert resp.status == 200 and resp.getheader("Connection") != "close"
    resp.read()
    server.wait_stderr(REQUEST_LOG % ("GET", "/", 200))

    sent = time.monotonic()
    assert server.stop() == 0
    assert time.monotonic() - sent < 3.0        # the grace period is 10 s: nobody waited for it
    assert any("finishing 2 open connection(s)" in line for line in server.stderr()), server.output()
    silent.settimeout(5)
    assert silent.recv(100) == b""              # closed cleanly, not left hanging
    silent.close()
    keepalive.close()


def test_two_processes_share_the_socket_for_a_zero_downtime_reload(sample, listener, serve):
    project = sample("atlas")
    port = port_of(listener)
    old = serve(project, listener, args=["--migrate"])
    old.wait_ready()
    assert http_get(port, "/")[0] == 200

    new = serve(project, listener)              # started beside the old one, same socket
    new.wait_ready()

    results = []
    stop_hammer = threading.Event()

    def hammer():
        while not stop_hammer.is_set():
            try:
                status, _, body = http_get(port, "/", timeout=10)
                results.append((time.monotonic(), status, b"Atlas Telemetry Studio" in body))
            except OSError as exc:
                results.append((time.monotonic(), repr(exc), False))
            time.sleep(0.005)

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.4)
        assert old.stop() == 0                  # the old one goes away while requests keep coming
        old_gone = time.monotonic()
        time.sleep(0.6)
    finally:
        stop_hammer.set()
        for t in threads:
            t.join(15)

    assert len(results) >= 20
    failures = [r for r in results if r[1] != 200 or not r[2]]
    assert failures == [], failures[:5]
    assert any(t > old_gone for t, _, _ in results)
    # both processes served: the old one before it stopped, the new one after
    served_by_new = sum(1 for line in new.stderr() if re.search(REQUEST_LOG % ("GET", "/", 200), line))
    assert served_by_new >= sum(1 for t, _, _ in results if t > old_gone) > 0
    assert any(re.search(REQUEST_LOG % ("GET", "/", 200), line) for line in old.stderr())
    assert new.stop() == 0


def test_grace_period_bounds_the_wait(sample, listener, serve, tmp_path):
    project = sample("atlas")
    settings = add_test_urls(project, "atlas")
    port = port_of(listener)
    server = serve(project, listener, args=["--settings", settings, "--grace", "0.5"])
    server.wait_ready()
    client, result = start_slow_request(server, port, tmp_path / "slow-started", 5)
    sent = time.monotonic()
    assert server.stop() == 0
    assert time.monotonic() - sent < 3.0        # gave up after --grace, not after the 5 s request
    assert server.stderr()[-1] == "djdesk-serve: warning: 1 request(s) still running after 0.5s, exiting anyway"
    client.join(10)
    assert "error" in result                    # the abandoned client saw the connection go away


def test_interpreter_without_django_exits_1(sample):
    project = sample("generated")
    # -S: no site-packages, so no Django (the daemon tries the next interpreter candidate)
    proc = subprocess.run([PYTHON, "-S", str(SERVE), "--project", str(project), "--bind", "127.0.0.1:0"],
                          capture_output=True, text=True, env=child_env(), timeout=30)
    assert proc.returncode == 1
    assert re.fullmatch(r"djdesk-serve: error: cannot import Django with \S+: ModuleNotFoundError: "
                        r"No module named 'django'", proc.stderr.splitlines()[-1]), proc.stderr


def test_usage_errors_exit_2(sample):
    project = sample("generated")
    (project / "manage.py").write_text("print('no settings default here')\n")
    cases = [
        (["--project", str(project / "missing")], r"project directory '.*missing' does not exist"),
        (["--project", str(project), "--bind", "127.0.0.1:0"], r"no settings module: pass --settings"),
        (["--project", str(project), "--bogus"], r"unrecognized arguments: --bogus"),
        (["--project", str(project), "--settings", "generated.settings", "--bind", "nonsense"],
         r"--bind wants HOST:PORT"),
    ]
    for args, message in cases:
        proc = subprocess.run([PYTHON, str(SERVE), *args], capture_output=True, text=True, env=child_env(),
                              timeout=30)
        assert proc.returncode == 2, (args, proc.stderr)
        assert re.search(message, proc.stderr.splitlines()[-1]), (args, proc.stderr)
