# SPDX-License-Identifier: MIT
"""djdeskctl: exit codes, watch."""

import json
import re
import signal
import subprocess

import pytest

from conftest import DJDESKCTL, connect, publish, read_line, read_project_version

HINT = "systemctl --user start djdesk.service"
WATCH_LINE = re.compile(r"^(\d+)  (\d\d:\d\d:\d\d\.\d{3})  (\S+)  (.*)$")


def test_unreachable_daemon_exits_3(tree):
    for args in (["info"], ["--json", "info"], ["reload"], ["watch"]):
        p = tree.ctl(*args)
        assert p.returncode == 3, (args, p.returncode, p.stderr)
        assert HINT in p.stderr.decode(), p.stderr


def test_unreachable_explicit_socket_exits_3(tree):
    p = tree.ctl("--socket", "/nonexistent/dir/x.sock", "info")
    assert p.returncode == 3, p.stderr
    assert HINT in p.stderr.decode()


@pytest.mark.parametrize("args", [
    [], ["--bogus"], ["nosuchcommand"], ["info", "extra"], ["watch", "--since", "abc"], ["watch", "--since"],
    ["watch", "--frobnicate"], ["--socket"], ["reload", "now"],
])
def test_usage_errors_exit_2(tree, args):
    p = tree.ctl(*args)
    assert p.returncode == 2, (args, p.returncode, p.stdout, p.stderr)
    assert p.stderr, "a usage error should say what is wrong"


def test_help_and_version(tree):
    p = tree.ctl("--version")
    assert p.returncode == 0 and read_project_version() in p.stdout.decode(), p
    for args in (["--help"], ["-h"], ["help"], ["help", "watch"], ["info", "--help"], ["watch", "--help"],
                 ["reload", "--help"], ["help", "info"]):
        p = tree.ctl(*args)
        assert p.returncode == 0, (args, p.stderr)
        assert p.stdout.strip(), args
    assert b"watch" in tree.ctl("--help").stdout


def test_daemon_error_exits_1(tree):
    tree.write_config("[daemon]\nlog_level = info\n")
    tree.start("--no-bus")
    p = tree.ctl("reload")
    assert p.returncode == 0, p.stderr
    tree.write_config("[daemon]\nmax_clients = -5\n")
    p = tree.ctl("reload")
    err = p.stderr.decode()
    assert p.returncode == 1, (p.returncode, err)
    assert re.search(r"^djdeskctl: .+ \((invalid|not_found|confirmation_required|busy|not_allowed|internal)\)$",
                     err.strip(), re.M), err


def start_watch(tree, *args):
    return tree.popen([DJDESKCTL, "watch", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)


def test_watch_json(tree):
    d = tree.start("--no-bus")
    with connect(tree.socket_path) as c:
        first = publish(c, "user.watch", {"n": 1})
        w = start_watch(tree, "--json", "--topic", "user.*", "--since", str(first - 1))
        e = json.loads(read_line(w))
        assert set(e) == {"topic", "seq", "time", "data"}, e
        assert (e["topic"], e["seq"], e["data"]) == ("user.watch", first, {"n": 1})
        # The first line proves the subscription is live: a new event shows up next.
        second = publish(c, "user.watch", {"n": 2})
        e = json.loads(read_line(w))
        assert (e["seq"], e["data"]) == (second, {"n": 2}), e
    d.signal(signal.SIGTERM)
    assert d.wait_exit() == 0
    # --topic user.* does not include daemon.shutdown; either way watch must end when the daemon goes.
    w.wait(timeout=15)


def test_watch_exits_0_on_shutdown(tree):
    d = tree.start("--no-bus")
    with connect(tree.socket_path) as c:
        first = publish(c, "user.w")
    w = start_watch(tree, "--json", "--since", str(first - 1))
    e = json.loads(read_line(w))
    assert e["seq"] == first
    d.signal(signal.SIGTERM)
    lines = []
    while True:
        try:
            lines.append(json.loads(read_line(w)))
        except EOFError:
            break
    assert lines and lines[-1]["topic"] == "daemon.shutdown", lines
    assert w.wait(timeout=15) == 0
    assert d.wait_exit() == 0


def test_watch_human_format(tree):
    tree.start("--no-bus")
    with connect(tree.socket_path) as c:
        seq = publish(c, "user.human", {"b": 2, "a": "x y"})
        w = start_watch(tree, "--topic", "user.human", "--since", str(seq - 1))
        line = read_line(w).rstrip("\n")
        m = WATCH_LINE.match(line)
        assert m, f"not 'SEQ  HH:MM:SS.mmm  TOPIC  DATA': {line!r}"
        assert int(m.group(1)) == seq and m.group(3) == "user.human"
        assert json.loads(m.group(4)) == {"b": 2, "a": "x y"}
        assert " " not in m.group(4).replace('"x y"', ""), "data should be compact JSON"
    w.send_signal(signal.SIGINT)
    w.wait(timeout=10)


def test_reload_via_ctl(tree):
    tree.write_config("[daemon]\nlog_level = info\n")
    tree.start("--no-bus")
    tree.write_config("[daemon]\nlog_level = debug\n")
    p = tree.ctl("reload")
    assert p.returncode == 0, p.stderr
    p = tree.ctl("--json", "info")
    assert json.loads(p.stdout)["log_level"] == "debug"
