# SPDX-License-Identifier: MIT
"""djdeskctl ws / server / url / open / logs / sample, and the desktop entry, against a real daemon.

Outputs, exit codes (0 ok, 1 the daemon said no, 2 usage, 3 unreachable) and --json are checked through
the client only; the daemon's own behaviour is tested elsewhere (test_workspace.py, test_server*.py).
"""

import configparser
import http.client
import json
import os
import re
import shlex
import signal
import socket
import stat
import subprocess
import threading
import time
import urllib.parse

import pytest

from conftest import DJANGO_PYTHON, DJDESKCTL, SOURCE_ROOT, connect, read_line

START_TIMEOUT = 90          # djdeskctl server start waits for Django; sanitizer builds are slow
READY_LINE = re.compile(r"^(?P<slug>[a-z0-9-]+): ready (?P<url>http://127\.0\.0\.1:\d+/)$")
LOG_LINE = re.compile(r"^\d\d:\d\d:\d\d [ WE] ")
DESKTOP_FILE = os.path.join(SOURCE_ROOT, "data", "djdesk.desktop")


# ---------------------------------------------------------------------------------------------------------
# helpers


def start_daemon(tree, **env):
    """A daemon whose children use Debian's python3 (the python3 first on PATH has no Django)."""
    e = {"DJDESK_PYTHON": DJANGO_PYTHON}
    e.update(env)
    return tree.start("--no-bus", env=e)


def ctl(tree, *args, rc=0, timeout=START_TIMEOUT, env=None):
    p = tree.ctl(*args, timeout=timeout, env=env)
    out, err = p.stdout.decode(), p.stderr.decode()
    assert p.returncode == rc, f"djdeskctl {' '.join(args)}: exit {p.returncode}, expected {rc}\n" \
                               f"stdout:\n{out}\nstderr:\n{err}"
    return out, err


def ctl_json(tree, *args, **kw):
    out, _ = ctl(tree, "--json", *args, **kw)
    return json.loads(out)


def http_get(url, timeout=10):
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        conn.request("GET", u.path + (("?" + u.query) if u.query else ""))
        r = conn.getresponse()
        return r.status, r.read().decode(errors="replace")
    finally:
        conn.close()


def add(tree, sample, *opts):
    path = tree.copy_sample(sample)
    out, _ = ctl(tree, "ws", "add", path, *opts)
    return path, out


def start(tree, *slugs, expect=None):
    """server start SLUGS...: every line must be "SLUG: ready URL"; returns {slug: url}."""
    out, _ = ctl(tree, "server", "start", *slugs)
    urls = {}
    for line in out.splitlines():
        m = READY_LINE.match(line)
        assert m, f"not 'SLUG: ready URL': {line!r}"
        urls[m["slug"]] = m["url"]
    assert set(urls) == set(expect or slugs), out
    return urls


def recorder(tree, name, exit_code=0):
    """A program that appends its arguments (a JSON array per call) to a log file and exits."""
    bindir = os.path.join(tree.root, "bin")
    os.makedirs(bindir, exist_ok=True)
    log = os.path.join(tree.root, name + ".log")
    prog = os.path.join(bindir, name)
    with open(prog, "w") as f:
        f.write(f"#!{DJANGO_PYTHON}\nimport json, sys\n"
                f"with open({log!r}, 'a') as f:\n    f.write(json.dumps(sys.argv[1:]) + '\\n')\n"
                f"sys.exit({exit_code})\n")
    os.chmod(prog, 0o755)
    return prog, log


def recorded_calls(log):
    if not os.path.exists(log):
        return []
    with open(log) as f:
        return [json.loads(line) for line in f]


# ---------------------------------------------------------------------------------------------------------
# no daemon needed


@pytest.mark.parametrize("args", [
    ["ws"], ["ws", "frob"], ["ws", "add"], ["ws", "add", "a", "b"], ["ws", "add", "x", "--port", "0"],
    ["ws", "add", "x", "--port", "65536"], ["ws", "add", "x", "--mode", "gunicorn"], ["ws", "add", "x", "--name"],
    ["ws", "add", "x", "--bogus"], ["ws", "show"], ["ws", "show", "a", "b"], ["ws", "rm"], ["ws", "ls", "x"],
    ["ws", "rm", "a", "--force"], ["server"], ["server", "launch", "a"], ["server", "start"],
    ["server", "stop"], ["server", "start", "a", "--all"], ["url"], ["url", "a", "b"], ["open"],
    ["logs"], ["logs", "a", "-n", "-1"], ["logs", "a", "-n", "x"], ["logs", "a", "-n"], ["logs", "a", "b"],
    ["sample"], ["sample", "install"], ["sample", "install", "a", "b"], ["sample", "ls", "x"],
])
def test_usage_errors_exit_2(tree, args):
    p = tree.ctl(*args)
    assert p.returncode == 2, (args, p.returncode, p.stdout, p.stderr)
    err = p.stderr.decode()
    assert err.startswith("djdeskctl: ") and "--help" in err, err


@pytest.mark.parametrize("args", [
    ["ws", "ls"], ["ws", "show", "a"], ["ws", "add", "/tmp"], ["ws", "rm", "a"], ["server", "status"],
    ["server", "start", "a", "b"], ["server", "stop", "--all"], ["url", "a"], ["open", "a"], ["logs", "a"],
    ["logs", "a", "-f"], ["sample", "ls"], ["sample", "install", "atlas"],
])
def test_unreachable_daemon_exits_3(tree, args):
    p = tree.ctl(*args)
    assert p.returncode == 3, (args, p.returncode, p.stderr)
    assert b"is djdeskd running?" in p.stderr


def test_help(tree):
    for args in (["ws", "--help"], ["help", "ws"], ["ws", "add", "--help"], ["ws", "ls", "-h"],
                 ["ws", "show", "--help"], ["ws", "rm", "--help"], ["server", "--help"],
                 ["server", "start", "--help"], ["help", "server"], ["url", "--help"], ["open", "--help"],
                 ["logs", "--help"], ["sample", "--help"], ["sample", "install", "--help"],
                 ["sample", "ls", "--help"]):
        p = tree.ctl(*args)
        assert p.returncode == 0, (args, p.stderr)
        assert p.stdout.decode().startswith("Usage: djdeskctl "), (args, p.stdout)
    top = tree.ctl("--help").stdout.decode()
    for verb in ("ws", "server", "url", "open", "logs", "sample"):
        assert re.search(rf"^  {verb} ", top, re.M), (verb, top)
    assert "DJDESK_OPENER" in tree.ctl("open", "--help").stdout.decode()


def test_notify_when_unreachable(tree):
    notify_send, log = recorder(tree, "notify-send")
    env = {"PATH": os.path.dirname(notify_send) + ":" + tree.env["PATH"]}
    p = tree.ctl("ws", "add", "--notify", tree.home, env=env)
    assert p.returncode == 3, p.stderr
    calls = recorded_calls(log)
    assert len(calls) == 1, calls
    assert calls[0][-2] == f"djdesk: cannot add {tree.home}", calls
    assert "daemon" in calls[0][-1], calls


class FakeDaemon:
    """Answers server.status on a socket of its own with a canned server object: lets the test give
    'open' URLs a real daemon never serves."""

    def __init__(self, path, server):
        self.server = server
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(4)
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn, conn.makefile("rwb") as f:
                for line in f:
                    req = json.loads(line)
                    if req.get("method") == "server.status":
                        resp = {"jsonrpc": "2.0", "id": req["id"], "result": self.server}
                    else:
                        resp = {"jsonrpc": "2.0", "id": req["id"],
                                "error": {"code": -32601, "message": "Method not found"}}
                    f.write(json.dumps(resp).encode() + b"\n")
                    f.flush()

    def close(self):
        self.sock.close()


@pytest.mark.parametrize("url", ["file:///etc/passwd", "https://example.com/", "javascript:alert(1)",
                                 "http://127.0.0.1:8000/ --new-window", "http://", "-http://x/",
                                 "http://x/\x1b[2J"])
def test_open_refuses_anything_but_http(tree, url):
    opener, log = recorder(tree, "opener")
    sock = os.path.join(tree.root, "fake.sock")
    fake = FakeDaemon(sock, {"state": "ready", "url": url, "port": 8000, "pid": 1, "restarts": 0,
                             "last_error": None})
    try:
        p = tree.ctl("--socket", sock, "open", "x", env={"DJDESK_OPENER": opener})
        assert p.returncode == 1, (p.returncode, p.stderr)
        assert b"refusing to open" in p.stderr, p.stderr
        assert recorded_calls(log) == []
        # The same fake with a good URL is opened: the refusal above was about the URL.
        fake.server = dict(fake.server, url="http://127.0.0.1:8000/")
        p = tree.ctl("--socket", sock, "open", "x", env={"DJDESK_OPENER": opener})
        assert p.returncode == 0, p.stderr
        assert recorded_calls(log) == [["http://127.0.0.1:8000/"]]
    finally:
        fake.close()


def test_desktop_entry():
    cp = configparser.ConfigParser(interpolation=None)
    cp.optionxform = str
    cp.read(DESKTOP_FILE)
    e = cp["Desktop Entry"]
    assert e["Type"] == "Application"
    assert "inode/directory" in e["MimeType"].split(";")
    assert "Development" in e["Categories"].split(";")
    argv = shlex.split(e["Exec"])
    assert argv[0] == "djdeskctl" and argv[1:3] == ["ws", "add"] and "--notify" in argv, argv
    assert argv[-1] == "%f", argv


# ---------------------------------------------------------------------------------------------------------
# ws


def test_ws_add_ls_show_rm(tree):
    start_daemon(tree)
    path = tree.copy_sample("polls", os.path.join(tree.home, "projects", "polls"))
    # A relative path is made absolute by the client.
    p = tree.ctl("ws", "add", "home/projects/polls", "--name", "Mes Sondages", "--no-migrate")
    out, err = p.stdout.decode(), p.stderr.decode()
    assert p.returncode == 0, err
    assert out.splitlines()[0] == f"Added workspace 'mes-sondages' ({path})", out
    assert re.search(r"^Settings: +mysite\.settings \(from manage\.py\)$", out, re.M), out
    assert re.search(rf"^Interpreter: +{re.escape(DJANGO_PYTHON)} \(Django \d+\.\d+[.\w]*\)$", out, re.M), out
    assert "djdeskctl server start mes-sondages" in out

    atlas = tree.copy_sample("atlas")
    out, _ = ctl(tree, "ws", "add", atlas, "--settings", "atlas.settings", "--mode", "runserver",
                 "--no-autoreload", "--autostart", "--port", "8123")
    assert re.search(r"^Settings: +atlas\.settings \(given\)$", out, re.M), out

    out, _ = ctl(tree, "ws", "ls")
    lines = out.splitlines()
    assert lines[0].split() == ["SLUG", "NAME", "STATE", "URL", "PATH"], out
    assert len(lines) == 3, out
    cols = [lines[0].index(h) for h in ("NAME", "STATE", "URL", "PATH")]
    rows = {}
    for line in lines[1:]:
        # Aligned: cut at the headings' columns, every cell is whole.
        cells = [line[:cols[0]], line[cols[0]:cols[1]], line[cols[1]:cols[2]], line[cols[2]:cols[3]],
                 line[cols[3]:]]
        assert all(c.endswith("  ") for c in cells[:-1]), line
        cells = [c.strip() for c in cells]
        rows[cells[0]] = cells
    assert rows["mes-sondages"] == ["mes-sondages", "Mes Sondages", "stopped", "-", path], rows
    assert rows["atlas"] == ["atlas", "atlas", "stopped", "-", atlas], rows

    out, _ = ctl(tree, "ws", "show", "atlas")
    fields = dict(re.match(r"^([A-Za-z -]+): +(.*)$", line).groups() for line in out.splitlines())
    assert fields["Slug"] == "atlas" and fields["Path"] == atlas
    assert fields["Settings module"] == "atlas.settings (given)"
    assert fields["Interpreter"].startswith(DJANGO_PYTHON + " (Django ")
    assert fields["Mode"] == "runserver" and fields["Port"] == "8123 (fixed)"
    assert (fields["Autostart"], fields["Autoreload"], fields["Migrate on start"]) == ("yes", "no", "yes")
    assert (fields["State"], fields["URL"], fields["Last error"]) == ("stopped", "-", "-")
    assert fields["D-Bus object"] == "/io/djdesk/Desk1/workspace/atlas"

    j = ctl_json(tree, "ws", "show", "mes-sondages")
    assert (j["slug"], j["name"], j["path"], j["migrate_on_start"]) == ("mes-sondages", "Mes Sondages", path,
                                                                          False)
    assert j["server"]["state"] == "stopped"
    j = ctl_json(tree, "ws", "ls")
    assert [w["slug"] for w in j["workspaces"]] == ["mes-sondages", "atlas"]

    # Registered twice: a conflict, reported with its kind.
    _, err = ctl(tree, "ws", "add", path, rc=1)
    assert err.startswith("djdeskctl: ") and err.rstrip().endswith("(busy)"), err

    out, _ = ctl(tree, "ws", "rm", "mes-sondages")
    assert out == "Removed workspace 'mes-sondages'.\n", out
    assert os.path.exists(os.path.join(path, "manage.py")), "the project must be left alone"
    _, err = ctl(tree, "ws", "show", "mes-sondages", rc=1)
    assert "mes-sondages" in err and err.rstrip().endswith("(not_found)"), err
    _, err = ctl(tree, "ws", "rm", "mes-sondages", rc=1)
    assert err.rstrip().endswith("(not_found)"), err
    j = ctl_json(tree, "ws", "rm", "atlas", "--purge")
    assert j == {"slug": "atlas", "purged": True}, j
    out, _ = ctl(tree, "ws", "ls")
    assert out.startswith("No workspaces."), out
    assert ctl_json(tree, "ws", "ls") == {"workspaces": []}


def test_ws_add_refusals(tree):
    start_daemon(tree)
    # A protected location: the daemon refuses, djdeskctl shows its message and kind, exit 1.
    _, err = ctl(tree, "ws", "add", "/etc", rc=1)
    assert "'/etc'" in err and err.rstrip().endswith("(not_allowed)"), err
    # A directory without manage.py.
    empty = os.path.join(tree.home, "empty")
    os.mkdir(empty)
    _, err = ctl(tree, "ws", "add", empty, rc=1)
    assert empty in err and "manage.py" in err, err
    # A path that does not exist is sent as given, so the message names what the user typed.
    _, err = ctl(tree, "ws", "add", "no/such/project", rc=1)
    assert "no/such/project" in err, err
    assert ctl_json(tree, "ws", "ls") == {"workspaces": []}


def test_ws_add_start_json(tree):
    start_daemon(tree)
    path = tree.copy_sample("polls")
    j = ctl_json(tree, "ws", "add", path, "--start")
    assert j["slug"] == "polls" and j["path"] == path
    assert j["server"]["state"] == "ready", j
    status, body = http_get(j["server"]["url"])
    assert status == 200 and "No polls are available." in body


def test_ws_add_notify(tree):
    start_daemon(tree)
    notify_send, log = recorder(tree, "notify-send")
    env = {"PATH": os.path.dirname(notify_send) + ":" + tree.env["PATH"]}
    path = tree.copy_sample("polls")
    out, _ = ctl(tree, "ws", "add", "--notify", path, env=env)
    assert out.startswith("Added workspace 'polls'"), out
    calls = recorded_calls(log)
    assert len(calls) == 1, calls
    assert "--" in calls[0]
    summary, body = calls[0][-2:]
    assert summary == "djdesk: added polls", calls
    assert path in body and "mysite.settings" in body and DJANGO_PYTHON in body, body

    _, err = ctl(tree, "ws", "add", "--notify", "/etc", env=env, rc=1)
    calls = recorded_calls(log)
    assert len(calls) == 2 and calls[1][-2] == "djdesk: cannot add /etc", calls
    assert "/etc" in calls[1][-1], calls

    # Without notify-send the command still works and says why there is no notification.
    empty_bin = os.path.join(tree.root, "empty-bin")
    os.mkdir(empty_bin)
    other = tree.copy_sample("atlas")
    p = tree.ctl("ws", "add", "--notify", other, env={"PATH": empty_bin})
    assert p.returncode == 0, p.stderr
    assert b"notify-send not found" in p.stderr


def test_desktop_entry_registers_and_starts(tree):
    """What a file manager does with "Open with djdesk": the Exec line with %f replaced."""
    start_daemon(tree)
    notify_send, log = recorder(tree, "notify-send")
    cp = configparser.ConfigParser(interpolation=None)
    cp.optionxform = str
    cp.read(DESKTOP_FILE)
    path = tree.copy_sample("polls")
    argv = [path if a == "%f" else a for a in shlex.split(cp["Desktop Entry"]["Exec"])]
    p = tree.ctl(*argv[1:], timeout=START_TIMEOUT,
                 env={"PATH": os.path.dirname(notify_send) + ":" + tree.env["PATH"]})
    assert p.returncode == 0, p.stderr
    calls = recorded_calls(log)
    assert len(calls) == 1 and calls[0][-2] == "djdesk: added polls", calls
    m = re.search(r"Serving at (http://127\.0\.0\.1:\d+/)", calls[0][-1])
    assert m, calls
    assert http_get(m.group(1))[0] == 200


# ---------------------------------------------------------------------------------------------------------
# server, url, open


def test_server_one(tree):
    start_daemon(tree)
    add(tree, "polls")
    url = start(tree, "polls")["polls"]
    status, body = http_get(url)
    assert status == 200 and "No polls are available." in body

    out, _ = ctl(tree, "url", "polls")
    assert out == url + "\n"
    out, _ = ctl(tree, "server", "status", "polls")
    assert out == f"polls: ready {url}\n", out
    j = ctl_json(tree, "server", "status", "polls")
    assert (j["state"], j["url"]) == ("ready", url) and j["pid"] > 0, j
    # Starting a ready server is not an error: it is ready.
    assert start(tree, "polls")["polls"] == url

    out, _ = ctl(tree, "server", "stop", "polls")
    assert out == "polls: stopped\n", out
    out, err = ctl(tree, "url", "polls", rc=1)
    assert out == "" and "polls: not running (stopped)" in err, err
    _, err = ctl(tree, "server", "status", "nosuch", rc=1)
    _, err = ctl(tree, "--json", "server", "start", "nosuch", rc=1)
    assert err.rstrip().endswith("(not_found)"), err


def test_server_many(tree):
    start_daemon(tree)
    add(tree, "polls")
    add(tree, "atlas")

    with connect(tree.socket_path) as rpc:
        rpc.call("subscribe", {"topics": ["server.state"]})
        urls = start(tree, "polls", "atlas", "polls")   # a repeated workspace is handled once
        # Pipelined: both requests were sent at once, so both servers were starting before either was
        # ready (one after the other, polls would be ready before atlas starts).
        states = []
        while sum(st == "ready" for _, st in states) < 2:
            e = rpc.wait_event("server.state")
            states.append((e["data"]["workspace"], e["data"]["state"]))
        first_ready = min(i for i, (_, st) in enumerate(states) if st == "ready")
        assert {w for w, st in states[:first_ready] if st == "starting"} == {"polls", "atlas"}, states
    assert urls["polls"] != urls["atlas"]
    assert "Atlas Telemetry Studio" in http_get(urls["atlas"])[1]
    assert http_get(urls["polls"])[0] == 200

    out, _ = ctl(tree, "server", "status")            # no workspace: all of them
    assert sorted(out.splitlines()) == sorted(f"{s}: ready {u}" for s, u in urls.items()), out
    j = ctl_json(tree, "server", "status", "--all")
    assert set(j) == {"polls", "atlas"} and all(v["state"] == "ready" for v in j.values()), j

    out, _ = ctl(tree, "server", "stop", "--all")
    assert sorted(out.splitlines()) == ["atlas: stopped", "polls: stopped"], out
    for u in urls.values():
        with pytest.raises(OSError):
            http_get(u, timeout=2)

    urls = start(tree, "--all", expect={"polls", "atlas"})
    j = ctl_json(tree, "server", "restart", "polls", "atlas")
    assert set(j) == {"polls", "atlas"} and all(v["state"] == "ready" for v in j.values()), j

    # One unknown workspace among good ones: the others are still handled, the exit status is 1.
    out, _ = ctl(tree, "server", "stop", "polls", "nosuch", "atlas", rc=1)
    assert sorted(out.splitlines()) == ["atlas: stopped", "nosuch: failed: no workspace 'nosuch'",
                                        "polls: stopped"], out
    j = ctl_json(tree, "server", "status", "polls", "nosuch", rc=1)
    assert j["polls"]["state"] == "stopped" and j["nosuch"]["error"]["code"] == -32001, j


def test_server_start_failure(tree):
    start_daemon(tree)
    path, _ = add(tree, "polls")
    with open(os.path.join(path, "mysite", "settings.py"), "a") as f:
        f.write("\nraise RuntimeError('broken on purpose')\n")
    p = tree.ctl("server", "start", "polls", timeout=START_TIMEOUT)
    out = p.stdout.decode()
    assert p.returncode == 1, (out, p.stderr)
    assert out.startswith("polls: failed: "), out


def test_open(tree):
    start_daemon(tree)
    add(tree, "polls")
    opener, log = recorder(tree, "opener")
    _, err = ctl(tree, "open", "polls", env={"DJDESK_OPENER": opener}, rc=1)
    assert "polls: not running (stopped)" in err and recorded_calls(log) == []
    url = start(tree, "polls")["polls"]
    out, _ = ctl(tree, "open", "polls", env={"DJDESK_OPENER": opener})
    assert recorded_calls(log) == [[url]]

    failing, _ = recorder(tree, "failing-opener", exit_code=4)
    _, err = ctl(tree, "open", "polls", env={"DJDESK_OPENER": failing}, rc=1)
    assert "status 4" in err, err
    _, err = ctl(tree, "open", "polls", env={"DJDESK_OPENER": "no-such-opener-here"}, rc=1)
    assert "not found" in err and url in err, err


# ---------------------------------------------------------------------------------------------------------
# logs


def test_logs(tree):
    start_daemon(tree)
    add(tree, "polls")
    url = start(tree, "polls")["polls"]
    assert http_get(url + "?first=1")[0] == 200

    def request_seen():
        out, _ = ctl(tree, "logs", "polls", "-n", "5")
        return "/?first=1" in out and out

    # The request line reaches the log when the server has written it: wait for it, bounded.
    deadline = time.monotonic() + 10
    while not (out := request_seen()):
        assert time.monotonic() < deadline, ctl(tree, "logs", "polls")[0]
        time.sleep(0.1)
    lines = out.splitlines()
    assert 1 <= len(lines) <= 5, lines
    for line in lines:
        assert LOG_LINE.match(line), f"not 'HH:MM:SS L TEXT': {line!r}"
    assert any('"GET /?first=1 HTTP/1.1" 200' in line for line in lines), lines

    out, _ = ctl(tree, "logs", "polls", "-n", "0")
    assert out == ""
    j = ctl_json(tree, "logs", "polls", "-n", "3")
    assert j["workspace"] == "polls" and 1 <= len(j["lines"]) <= 3, j
    assert all({"n", "time", "stream", "level", "text"} <= set(line) for line in j["lines"]), j
    _, err = ctl(tree, "logs", "nosuch", rc=1)
    assert err.rstrip().endswith("(not_found)"), err


def test_logs_follow(tree):
    d = start_daemon(tree)
    add(tree, "polls")
    url = start(tree, "polls")["polls"]
    assert http_get(url + "?before=1")[0] == 200
    # Wait until that request is in the log, so that "-n 1" below has a line to print.
    deadline = time.monotonic() + 10
    while "/?before=1" not in ctl(tree, "logs", "polls", "-n", "1")[0]:
        assert time.monotonic() < deadline
        time.sleep(0.1)

    f = tree.popen([DJDESKCTL, "logs", "polls", "-f", "-n", "1"], stdout=subprocess.PIPE,
                   stderr=subprocess.PIPE, bufsize=0)
    # The first line (the newest in the log) proves -f has subscribed and read the past: every line
    # from now on must come, once.
    seen = [read_line(f)]
    for i in range(3):
        assert http_get(url + f"?after={i}")[0] == 200
        while f"/?after={i} " not in seen[-1]:
            seen.append(read_line(f))
    for line in seen:
        assert LOG_LINE.match(line), f"not 'HH:MM:SS L TEXT': {line!r}"
    for i in range(3):
        assert sum(f"/?after={i} " in line for line in seen) == 1, seen
    f.send_signal(signal.SIGINT)
    assert f.wait(timeout=10) == 0

    # -f --json: one log line object per line, numbers increasing; removing the workspace ends it with 0.
    f = tree.popen([DJDESKCTL, "--json", "logs", "polls", "-f", "-n", "1"], stdout=subprocess.PIPE,
                   stderr=subprocess.PIPE, bufsize=0)
    seen = [json.loads(read_line(f))]
    assert {"n", "time", "stream", "level", "text"} <= set(seen[0]), seen
    assert http_get(url + "?json=1")[0] == 200
    while "/?json=1 " not in seen[-1]["text"]:
        seen.append(json.loads(read_line(f)))
    assert all(a["n"] < b["n"] for a, b in zip(seen, seen[1:])), seen
    assert seen[-1]["kind"] == "request" and seen[-1]["status"] == 200, seen[-1]
    ctl(tree, "ws", "rm", "polls")
    assert f.wait(timeout=15) == 0
    assert b"polls: the workspace was removed" in f.stderr.read()
    assert d.alive()


# ---------------------------------------------------------------------------------------------------------
# samples


def test_sample_ls_install(tree):
    start_daemon(tree)
    out, _ = ctl(tree, "sample", "ls")
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "INSTALLED", "WORKSPACE", "TITLE"], out
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert {"atlas", "polls", "generated"} <= set(rows), out
    assert rows["atlas"][1:3] == ["no", "-"], rows

    out, _ = ctl(tree, "sample", "install", "atlas", "--start")
    installed = os.path.join(tree.data, "djdesk", "samples", "atlas")
    assert out.splitlines()[0] == f"Added workspace 'atlas' ({installed})", out
    assert re.search(r"^Settings: +atlas\.settings \(from manage\.py\)$", out, re.M), out
    m = READY_LINE.match(out.splitlines()[-1])
    assert m and m["slug"] == "atlas", out
    status, body = http_get(m["url"])
    assert status == 200 and "Atlas Telemetry Studio" in body
    assert os.path.exists(os.path.join(installed, "manage.py"))

    rows = {line.split()[0]: line.split() for line in ctl(tree, "sample", "ls")[0].splitlines()[1:]}
    assert rows["atlas"][1:3] == ["yes", "atlas"], rows
    j = ctl_json(tree, "sample", "ls")
    atlas = [s for s in j["samples"] if s["name"] == "atlas"][0]
    assert atlas["installed"] is True and atlas["workspace"] == "atlas", j

    _, err = ctl(tree, "sample", "install", "atlas", rc=1)
    assert err.rstrip().endswith("(busy)"), err
    _, err = ctl(tree, "sample", "install", "nosuch", rc=1)
    assert "nosuch" in err, err

    j = ctl_json(tree, "sample", "install", "polls")
    assert j["slug"] == "polls" and j["server"]["state"] == "stopped", j
