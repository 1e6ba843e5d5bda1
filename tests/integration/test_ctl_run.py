# SPDX-License-Identifier: MIT
"""djdeskctl presets / run / runs / run-log / cancel, and watch's run events, against a real daemon.

Test presets (argv ["{python}", ...], never a shell) go into $XDG_CONFIG_HOME/djdesk/presets.d before the
daemon starts; the atlas sample is the workspace. Outputs and exit codes (0 ok, 1 refused or the run did not
succeed, 2 usage, 3 unreachable) are checked through the client; the queue itself is tested in test_runs.py.
"""

import json
import os
import pty
import re
import select
import signal
import subprocess
import time

import pytest

from conftest import DJANGO_PYTHON, DJDESKCTL, connect, publish, read_line

ID_LINE = re.compile(r"^[1-9][0-9]*\n$")
SUMMARY = re.compile(r"^djdeskctl: run (\d+) (\S+): (\w+)(?: after \S+)?(?:: (.*))?$", re.M)
WATCH_LINE = re.compile(r"^(\d+)  (\d\d:\d\d:\d\d\.\d\d\d)  (\S+)  (.*)$")
CUT = "\u2026 40 earlier lines were cut \u2026"
FLOOD_LINES = 30000


# ---------------------------------------------------------------------------------------------------------
# helpers


def preset_defs(tree):
    """The test presets; FLAG files let a test decide when a run goes on."""
    flag = os.path.join(tree.root, "go")
    flood = os.path.join(tree.root, "flood")

    def py(code, **kw):
        return dict({"argv": ["{python}", "-u", "-c", code]}, **kw)

    return {
        "t-ok": py("import sys; print('hello out'); print('hello err', file=sys.stderr); print('bye')",
                   label="Test: succeeds", category="test", read_only=True),
        "t-fail": py("import sys; print('about to fail'); print('Error: it broke', file=sys.stderr); "
                     "sys.exit(3)", label="Test: fails", category="test"),
        "t-echo": {"argv": ["{python}", "-c", "import sys; print(repr(sys.argv[1:]))", "{word}"],
                   "label": "Test: echo a word", "category": "test",
                   "params": {"word": {"regex": "[a-z ;~/-]{1,40}", "default": "none"}}},
        "t-confirm": py("print('confirmed')", label="Test: needs confirmation", category="test",
                        requires_confirmation=True),
        "t-many": py("for i in range(1, 51): print('line', i)", label="Test: 50 lines", category="test",
                     max_output_lines=10),
        "t-slow": py("import time; print('started'); time.sleep(60)", label="Test: slow", category="test"),
        "t-wait": py(f"import os, time\nprint('first')\nwhile not os.path.exists({flag!r}): time.sleep(0.05)\n"
                     "print('second')", label="Test: waits for a flag", category="test"),
        "t-long": py("import sys\nfor i in range(400): sys.stdout.write('%03d ' % i + 'y' * 4000 + '\\n')",
                     label="Test: long lines", category="test"),
        "t-flood": py(f"import os, sys, time\nprint('ready')\n"
                      f"while not os.path.exists({flood!r}): time.sleep(0.05)\n"
                      f"w = sys.stdout.write\nfor i in range(1, {FLOOD_LINES + 1}): w('flood %05d %s\\n' % (i, 'x' * 80))\n",
                      label="Test: floods", category="test", timeout_s=100),
    }


def write_presets(tree):
    d = os.path.join(tree.config, "djdesk", "presets.d")
    os.makedirs(d, exist_ok=True)
    for key, p in preset_defs(tree).items():
        p = dict(p, key=key)
        p.setdefault("label", key)
        with open(os.path.join(d, key + ".json"), "w") as f:
            json.dump(p, f)


def ctl(tree, *args, rc=0, timeout=60, env=None):
    p = tree.ctl(*args, timeout=timeout, env=env)
    out, err = p.stdout.decode(), p.stderr.decode()
    assert p.returncode == rc, f"djdeskctl {' '.join(args)}: exit {p.returncode}, expected {rc}\n" \
                               f"stdout:\n{out}\nstderr:\n{err}"
    return out, err


def ctl_json(tree, *args, **kw):
    out, _ = ctl(tree, "--json", *args, **kw)
    return json.loads(out)


@pytest.fixture
def atlas(tree):
    """A daemon with the test presets and the atlas sample registered as 'atlas'."""
    write_presets(tree)
    tree.start("--no-bus", env={"DJDESK_PYTHON": DJANGO_PYTHON})
    ctl(tree, "ws", "add", tree.copy_sample("atlas"))
    return tree


def run_get(tree, run_id):
    with connect(tree.socket_path) as c:
        return c.call("run.get", {"id": run_id})


def wait_status(tree, run_id, pred, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        run = run_get(tree, run_id)
        if pred(run["status"]):
            return run
        assert time.monotonic() < deadline, f"run {run_id} stayed {run['status']}"
        time.sleep(0.05)


def start_run(tree, *args):
    out, _ = ctl(tree, "run", "atlas", *args)
    assert ID_LINE.match(out), out
    return int(out)


def summary(err):
    m = SUMMARY.findall(err)
    assert m, f"no summary line in {err!r}"
    return m[-1]


# ---------------------------------------------------------------------------------------------------------
# no daemon needed


@pytest.mark.parametrize("args", [
    ["presets", "a", "b"], ["presets", "--bogus"], ["presets", ""],
    ["run"], ["run", "ws"], ["run", "ws", "p", "x"], ["run", "", "p"], ["run", "ws", ""],
    ["run", "ws", "p", "--param", "novalue"], ["run", "ws", "p", "--param", "=v"],
    ["run", "ws", "p", "-p", "a=1", "-p", "a=2"], ["run", "ws", "p", "--param"], ["run", "ws", "p", "--bogus"],
    ["run", "ws", "p", "--note"], ["run", "ws", "p", "--confirm=yes"],
    ["runs", "--status", "bogus"], ["runs", "--status"], ["runs", "--limit", "0"], ["runs", "-n", "1001"],
    ["runs", "--limit", "x"], ["runs", "a", "b"],
    ["run-log"], ["run-log", "x"], ["run-log", "0"], ["run-log", "1", "2"], ["run-log", "1", "--bogus"],
    ["run-log", "99999999999999999999"],
    ["cancel"], ["cancel", "abc"], ["cancel", "-1"], ["cancel", "1", "2"],
])
def test_usage_errors_exit_2(tree, args):
    p = tree.ctl(*args)
    assert p.returncode == 2, (args, p.returncode, p.stdout, p.stderr)
    err = p.stderr.decode()
    assert err.startswith("djdeskctl: ") and "--help" in err, err
    assert p.stdout == b"", p.stdout


@pytest.mark.parametrize("args", [
    ["presets"], ["presets", "atlas"], ["run", "atlas", "check"], ["run", "atlas", "check", "-f"],
    ["runs"], ["run-log", "1"], ["run-log", "1", "-f"], ["cancel", "1"],
])
def test_unreachable_daemon_exits_3(tree, args):
    p = tree.ctl(*args)
    assert p.returncode == 3, (args, p.returncode, p.stderr)
    assert b"is djdeskd running?" in p.stderr


def test_help(tree):
    for verb in ("presets", "run", "runs", "run-log", "cancel"):
        for args in ([verb, "--help"], ["help", verb], [verb, "-h"]):
            p = tree.ctl(*args)
            assert p.returncode == 0, (args, p.stderr)
            assert p.stdout.decode().startswith(f"Usage: djdeskctl {verb} "), (args, p.stdout)
    top = tree.ctl("--help").stdout.decode()
    for verb in ("presets", "run", "runs", "run-log", "cancel"):
        assert re.search(rf"^  {verb} ", top, re.M), (verb, top)
    assert "--confirm" in tree.ctl("run", "--help").stdout.decode()
    assert "run." in tree.ctl("watch", "--help").stdout.decode()


# ---------------------------------------------------------------------------------------------------------
# presets


def test_presets_table(atlas):
    out, err = ctl(atlas, "presets")
    lines = out.splitlines()
    assert lines[0].split() == ["KEY", "LABEL", "CATEGORY", "FLAGS", "PARAMS"], out
    rows = {line.split()[0]: line for line in lines[1:]}
    for key in ("check", "check-deploy", "migrate", "sqlmigrate", "dumpdata", "t-ok", "t-echo"):
        assert key in rows, (key, out)
    assert re.search(r"\bconfirm\b", rows["migrate"]) and "read-only" not in rows["migrate"], rows["migrate"]
    assert re.search(r"\bread-only\b", rows["check"]), rows["check"]
    assert "app,migration" in rows["sqlmigrate"], rows["sqlmigrate"]
    assert "word=none" in rows["t-echo"], rows["t-echo"]
    assert "Test: echo a word" in rows["t-echo"]
    assert err == "", err
    # The columns line up: every row's FLAGS starts where the header's does.
    col = lines[0].index("FLAGS")
    assert rows["migrate"][col:].startswith("confirm"), (lines[0], rows["migrate"])

    j = ctl_json(atlas, "presets")
    keys = [p["key"] for p in j["presets"]]
    assert "t-many" in keys and "check" in keys, keys
    assert all("command" not in p for p in j["presets"])


def test_presets_of_a_workspace(atlas):
    path = os.path.join(atlas.home, "projects", "atlas")
    out, _ = ctl(atlas, "presets", "atlas")
    lines = out.splitlines()
    assert lines[0].split() == ["KEY", "LABEL", "CATEGORY", "FLAGS", "PARAMS", "COMMAND"], out
    rows = {line.split()[0]: line for line in lines[1:]}
    assert rows["check"].endswith(f"{DJANGO_PYTHON} {path}/manage.py check"), rows["check"]
    assert rows["sqlmigrate"].endswith("sqlmigrate {app} {migration}"), rows["sqlmigrate"]
    # Arguments with spaces or quotes are shown quoted, as a shell would need them.
    assert rows["t-ok"].endswith(
        f"{DJANGO_PYTHON} -u -c 'import sys; print('\\''hello out'\\''); print('\\''hello err'\\'', "
        "file=sys.stderr); print('\\''bye'\\'')'"), rows["t-ok"]
    j = ctl_json(atlas, "presets", "atlas")
    check = next(p for p in j["presets"] if p["key"] == "check")
    assert check["command"] == [DJANGO_PYTHON, f"{path}/manage.py", "check"], check

    _, err = ctl(atlas, "presets", "nosuch", rc=1)
    assert "nosuch" in err and "(not_found)" in err, err


def test_presets_warnings_go_to_stderr(tree):
    d = os.path.join(tree.config, "djdesk", "presets.d")
    os.makedirs(d)
    with open(os.path.join(d, "bad.json"), "w") as f:
        json.dump({"key": "bad", "label": "Bad", "argv": ["sh", "-c", "true"]}, f)
    tree.start("--no-bus")
    out, err = ctl(tree, "presets")
    assert "bad.json" in err and err.startswith("djdeskctl: warning: "), err
    assert not re.search(r"^bad ", out, re.M), out


# ---------------------------------------------------------------------------------------------------------
# run


def test_run_prints_the_id(atlas):
    first = start_run(atlas, "t-ok")
    second = start_run(atlas, "t-ok", "--note", "from a test")
    assert second > first
    j = ctl_json(atlas, "run", "atlas", "t-ok")
    assert j["id"] > second and j["status"] == "queued" and j["preset"] == "t-ok", j
    assert j["workspace"] == "atlas" and j["requested_by"] == "cli", j
    run = wait_status(atlas, second, lambda s: s == "succeeded")
    assert run["note"] == "from a test", run


def test_run_follow_success(atlas):
    out, err = ctl(atlas, "run", "atlas", "t-ok", "-f")
    # The run's stdout on ours, in order and nothing else; its stderr on ours.
    assert out == "hello out\nbye\n", out
    assert "hello err\n" in err, err
    run_id, preset, status, why = summary(err)
    assert (preset, status, why) == ("t-ok", "succeeded", ""), err
    assert run_get(atlas, int(run_id))["status"] == "succeeded"


def test_run_follow_failure(atlas):
    out, err = ctl(atlas, "run", "atlas", "t-fail", "--follow", rc=1)
    assert out == "about to fail\n", out
    assert "Error: it broke" in err, err
    run_id, preset, status, why = summary(err)
    assert (preset, status) == ("t-fail", "failed"), err
    assert "3" in why, err
    run = run_get(atlas, int(run_id))
    assert run["status"] == "failed" and run["exit_code"] == 3, run


def test_run_follow_json(atlas):
    out, _ = ctl(atlas, "--json", "run", "atlas", "t-ok", "-f")
    objs = [json.loads(line) for line in out.splitlines()]
    lines, final = objs[:-1], objs[-1]
    assert [(x["n"], x["stream"], x["text"]) for x in lines] == \
        [(1, "stdout", "hello out"), (2, "stderr", "hello err"), (3, "stdout", "bye")] or \
        sorted(x["text"] for x in lines) == ["bye", "hello err", "hello out"], lines
    assert final["status"] == "succeeded" and final["preset"] == "t-ok" and final["exit_code"] == 0, final
    _, _ = ctl(atlas, "--json", "run", "atlas", "t-fail", "-f", rc=1)


def test_run_param(atlas):
    # A value with shell syntax is one argument, and nothing else runs.
    out, _ = ctl(atlas, "run", "atlas", "t-echo", "--param", "word=x; rm -rf ~", "-f")
    assert out == "['x; rm -rf ~']\n", out
    out, _ = ctl(atlas, "run", "atlas", "t-echo", "-f")
    assert out == "['none']\n", out
    out, _ = ctl(atlas, "run", "atlas", "t-echo", "-p", "word=a b", "-f")
    assert out == "['a b']\n", out

    before = ctl_json(atlas, "runs")["runs"]
    _, err = ctl(atlas, "run", "atlas", "t-echo", "--param", "word=NOT$OK", rc=1)
    assert "(invalid)" in err and "djdeskctl presets atlas" in err, err
    _, err = ctl(atlas, "run", "atlas", "t-echo", "--param", "extra=1", rc=1)
    assert "(invalid)" in err, err
    _, err = ctl(atlas, "run", "atlas", "t-echo", "--param", "word=NOT$OK", "-f", rc=1)
    assert "(invalid)" in err, err
    assert ctl_json(atlas, "runs")["runs"] == before, "a refused run was created"


def test_run_confirm(atlas):
    _, err = ctl(atlas, "run", "atlas", "t-confirm", rc=1)
    assert "(confirmation_required)" in err, err
    assert "--confirm" in err, err
    _, err = ctl(atlas, "run", "atlas", "t-confirm", "-f", rc=1)
    assert "--confirm" in err, err
    assert ctl_json(atlas, "runs", "--status", "queued")["runs"] == []
    assert not [r for r in ctl_json(atlas, "runs")["runs"] if r["preset"] == "t-confirm"]
    out, _ = ctl(atlas, "run", "atlas", "t-confirm", "--confirm", "-f")
    assert out == "confirmed\n", out


def test_run_refusals(atlas):
    _, err = ctl(atlas, "run", "atlas", "nosuch", rc=1)
    assert "(not_found)" in err and "djdeskctl presets" in err, err
    _, err = ctl(atlas, "run", "nowhere", "check", rc=1)
    assert "(not_found)" in err and "nowhere" in err, err
    _, err = ctl(atlas, "run", "atlas", "t-ok", "--note", "x" * 300, rc=1)
    assert "(invalid)" in err, err


def test_run_follow_progress_line_on_a_terminal(atlas):
    """stderr on a terminal: a progress line drawn with \\r and cleared before output and at the end."""
    master, slave = pty.openpty()
    try:
        p = atlas.popen([DJDESKCTL, "run", "atlas", "t-ok", "-f"], stdout=subprocess.PIPE, stderr=slave)
        os.close(slave)
        slave = -1
        out = p.stdout.read()
        assert p.wait(timeout=30) == 0
        tty = b""
        while True:
            r, _, _ = select.select([master], [], [], 1)
            if not r:
                break
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            tty += chunk
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
    text = tty.decode(errors="replace")
    assert out == b"hello out\nbye\n", out
    assert re.search(r"\r\x1b\[K\[(queued 0|running 5)%\] t-ok \(run \d+\): \d+ lines?", text), text
    # The progress line is cleared before a line of output and before the summary.
    assert "\r\x1b[Khello err" in text.replace("\r\n", "\n"), text
    assert re.search(r"\r\x1b\[Kdjdeskctl: run \d+ t-ok: succeeded", text), text


# ---------------------------------------------------------------------------------------------------------
# runs


def test_runs_listing(atlas):
    out, _ = ctl(atlas, "runs")
    assert out == "No runs.\n", out
    ok = start_run(atlas, "t-ok")
    wait_status(atlas, ok, lambda s: s == "succeeded")
    ctl(atlas, "run", "atlas", "t-fail", "-f", rc=1)
    fail = ok + 1

    out, _ = ctl(atlas, "runs")
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "WORKSPACE", "PRESET", "STATUS", "EXIT", "DURATION", "QUEUED", "AT"], out
    rows = [line.split() for line in lines[1:]]
    assert [r[:5] for r in rows] == [[str(fail), "atlas", "t-fail", "failed", "3"],
                                     [str(ok), "atlas", "t-ok", "succeeded", "0"]], out
    for r in rows:
        assert re.match(r"^\d+(ms|\.\d+s)$|^\d+m \d+s$", r[5]) or r[5].endswith("ms"), r
        assert re.match(r"^\d{4}-\d\d-\d\d$", r[6]) and re.match(r"^\d\d:\d\d:\d\d$", r[7]), r

    out, _ = ctl(atlas, "runs", "--status", "failed")
    assert [line.split()[0] for line in out.splitlines()[1:]] == [str(fail)], out
    out, _ = ctl(atlas, "runs", "atlas", "--limit", "1")
    assert [line.split()[0] for line in out.splitlines()[1:]] == [str(fail)], out
    out, _ = ctl(atlas, "runs", "--status", "running")
    assert out == "No runs.\n", out
    j = ctl_json(atlas, "runs", "atlas")
    assert [r["id"] for r in j["runs"]] == [fail, ok], j
    _, err = ctl(atlas, "runs", "nosuch", rc=1)
    assert "(not_found)" in err, err


# ---------------------------------------------------------------------------------------------------------
# run-log


def test_run_log(atlas):
    ctl(atlas, "run", "atlas", "t-ok", "-f")
    run_id = ctl_json(atlas, "runs")["runs"][0]["id"]
    out, err = ctl(atlas, "run-log", str(run_id))
    assert out == "hello out\nbye\n", out
    assert err == "hello err\n", err
    j = ctl_json(atlas, "run-log", str(run_id))
    assert [(x["n"], x["stream"], x["text"]) for x in j["lines"]] == \
        [(1, "stdout", "hello out"), (2, "stderr", "hello err"), (3, "stdout", "bye")] or \
        sorted(x["text"] for x in j["lines"]) == ["bye", "hello err", "hello out"], j
    assert j["id"] == run_id and j["status"] == "succeeded" and j["truncated"] is False, j
    # Finished: -f prints the same and ends at once, with the run's outcome.
    out, err = ctl(atlas, "run-log", str(run_id), "-f")
    assert out == "hello out\nbye\n", out
    assert summary(err)[2] == "succeeded", err

    _, err = ctl(atlas, "run-log", "999999", rc=1)
    assert "(not_found)" in err, err
    _, err = ctl(atlas, "run-log", "999999", "-f", rc=1)
    assert "(not_found)" in err, err


def test_run_log_of_a_cut_run(atlas):
    out, err = ctl(atlas, "run", "atlas", "t-many", "-f")
    assert out == "".join(f"line {i}\n" for i in range(1, 51)), out   # live: every line
    run_id = int(summary(err)[0])
    out, err = ctl(atlas, "run-log", str(run_id))
    assert out == "".join(f"line {i}\n" for i in range(41, 51)), out
    assert err == CUT + "\n", err
    # 2>&1 order: the marker first.
    merged = subprocess.run([DJDESKCTL, "run-log", str(run_id)], env=atlas.env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30).stdout.decode()
    assert merged.splitlines()[0] == CUT and merged.splitlines()[1] == "line 41", merged
    j = ctl_json(atlas, "run-log", str(run_id))
    assert j["truncated"] is True and j["dropped_lines"] == 40, j
    assert [x["text"] for x in j["lines"]] == [f"line {i}" for i in range(41, 51)], j
    out, err = ctl(atlas, "run-log", str(run_id), "-f")
    assert err.startswith(CUT + "\n"), err
    assert out == "".join(f"line {i}\n" for i in range(41, 51)), out


def test_run_log_follow(atlas):
    run_id = start_run(atlas, "t-wait")
    deadline = time.monotonic() + 30
    while ctl(atlas, "run-log", str(run_id))[0] != "first\n":
        assert time.monotonic() < deadline, "the run never printed 'first'"
        time.sleep(0.05)
    f = atlas.popen([DJDESKCTL, "run-log", str(run_id), "-f"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    bufsize=0)
    assert read_line(f) == "first\n"
    assert f.poll() is None, "run-log -f ended while the run is still running"
    open(os.path.join(atlas.root, "go"), "w").close()
    assert read_line(f) == "second\n"
    assert f.wait(timeout=30) == 0
    rest, err = f.stdout.read(), f.stderr.read().decode()
    assert rest == b"", rest
    assert summary(err)[:3] == (str(run_id), "t-wait", "succeeded"), err


def test_run_follow_catches_up_after_lagged(tree):
    """A follower that stops reading is cut off by the daemon (lagged); it reconnects and reads the lines it
    missed from the store: every line once, in order."""
    tree.write_config("[daemon]\nclient_output_limit = 64K\n")
    write_presets(tree)
    tree.start("--no-bus", env={"DJDESK_PYTHON": DJANGO_PYTHON})
    ctl(tree, "ws", "add", tree.copy_sample("atlas"))
    f = tree.popen([DJDESKCTL, "run", "atlas", "t-flood", "-f"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                   bufsize=0)
    assert read_line(f) == "ready\n"
    f.send_signal(signal.SIGSTOP)
    try:
        open(os.path.join(tree.root, "flood"), "w").close()
        run_id = ctl_json(tree, "runs", "--status", "running")["runs"][0]["id"]
        wait_status(tree, run_id, lambda s: s == "succeeded", timeout=90)
    finally:
        f.send_signal(signal.SIGCONT)
    out, err = f.communicate(timeout=90)
    assert f.returncode == 0, err
    err = err.decode()
    assert "fell behind" in err, err
    lines = out.decode().splitlines()
    expected = [f"flood {i:05d} {'x' * 80}" for i in range(1, FLOOD_LINES + 1)]
    assert len(lines) == FLOOD_LINES, (len(lines), lines[:3], err)
    assert lines == expected
    assert summary(err)[2] == "succeeded", err


def test_long_lines(atlas):
    """1.6 MB of 4 kB lines: more than one message (1 MiB) may hold, in a page of run.logs or in one run.log
    batch. The client gets every line anyway (smaller pages, or a catch-up from the store)."""
    expected = "".join(f"{i:03d} {'y' * 4000}\n" for i in range(400))
    out, err = ctl(atlas, "run", "atlas", "t-long", "-f")
    assert out == expected, (len(out), err)
    run_id = summary(err)[0]
    out, _ = ctl(atlas, "run-log", run_id)
    assert out == expected, len(out)
    j = ctl_json(atlas, "run-log", run_id)
    assert len(j["lines"]) == 400 and j["next"] == 400, (len(j["lines"]), j["next"])
    out, _ = ctl(atlas, "run-log", run_id, "-f")
    assert out == expected, len(out)


# ---------------------------------------------------------------------------------------------------------
# cancel


def test_cancel(atlas):
    slow = start_run(atlas, "t-slow")
    queued = start_run(atlas, "t-ok")  # same workspace: waits for the slow one
    wait_status(atlas, slow, lambda s: s == "running")
    assert run_get(atlas, queued)["status"] == "queued"

    out, _ = ctl(atlas, "cancel", str(queued))
    assert out == f"Run {queued} (t-ok): cancelled.\n", out
    assert run_get(atlas, queued)["status"] == "cancelled"

    f = atlas.popen([DJDESKCTL, "run-log", str(slow), "-f"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    bufsize=0)
    assert read_line(f) == "started\n"
    out, _ = ctl(atlas, "cancel", str(slow))
    assert out in (f"Run {slow} (t-slow) is being stopped; it ends as cancelled.\n",
                   f"Run {slow} (t-slow): cancelled.\n"), out
    assert f.wait(timeout=30) == 1
    err = f.stderr.read().decode()
    assert summary(err)[:3] == (str(slow), "t-slow", "cancelled"), err

    # Finished runs cannot be cancelled; unknown ones do not exist.
    _, err = ctl(atlas, "cancel", str(slow), rc=1)
    assert "(busy)" in err, err
    _, err = ctl(atlas, "cancel", "999999", rc=1)
    assert "(not_found)" in err, err
    j = ctl_json(atlas, "run-log", str(queued))
    assert j["lines"] == [], j


def test_run_follow_of_a_cancelled_run(atlas):
    f = atlas.popen([DJDESKCTL, "run", "atlas", "t-slow", "-f"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    bufsize=0)
    assert read_line(f) == "started\n"
    run_id = ctl_json(atlas, "runs", "--status", "running")["runs"][0]["id"]
    j = ctl_json(atlas, "cancel", str(run_id))
    assert j["id"] == run_id, j
    assert f.wait(timeout=30) == 1
    err = f.stderr.read().decode()
    assert summary(err)[:3] == (str(run_id), "t-slow", "cancelled"), err


def test_run_follow_interrupted(atlas):
    f = atlas.popen([DJDESKCTL, "run", "atlas", "t-slow", "-f"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    bufsize=0)
    assert read_line(f) == "started\n"
    f.send_signal(signal.SIGINT)
    assert f.wait(timeout=15) == 1
    err = f.stderr.read().decode()
    assert "it carries on" in err and "djdeskctl cancel" in err, err
    run_id = ctl_json(atlas, "runs")["runs"][0]["id"]
    assert run_get(atlas, run_id)["status"] == "running"
    ctl(atlas, "cancel", str(run_id))


# ---------------------------------------------------------------------------------------------------------
# watch


def test_watch_shows_run_events(atlas):
    with connect(atlas.socket_path) as c:
        seq = publish(c, "user.sync")
    w = atlas.popen([DJDESKCTL, "watch", "--topic", "run.*", "--topic", "user.sync", "--since", str(seq - 1)],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
    assert WATCH_LINE.match(read_line(w).rstrip("\n"))[3] == "user.sync"  # subscribed
    _, err = ctl(atlas, "run", "atlas", "t-fail", "-f", rc=1)
    run_id = summary(err)[0]
    seen = {}
    while "run.finished" not in seen:
        line = read_line(w).rstrip("\n")
        m = WATCH_LINE.match(line)
        assert m, f"not 'SEQ  HH:MM:SS.mmm  TOPIC  TEXT': {line!r}"
        seen.setdefault(m[3], []).append(m[4])
    assert seen["run.queued"] == [f"#{run_id} atlas/t-fail queued by cli"], seen
    assert seen["run.started"] == [f"#{run_id} atlas/t-fail started"], seen
    logs = seen["run.log"]
    assert all(re.match(rf"^#{run_id} atlas: \d+ lines?, last: ", x) for x in logs), logs
    assert sum(int(re.search(r": (\d+) line", x)[1]) for x in logs) == 2, logs
    fin = seen["run.finished"]
    assert len(fin) == 1 and re.match(rf"^#{run_id} atlas/t-fail failed \(exit 3, \S+\): .+", fin[0]), fin
    w.send_signal(signal.SIGINT)
    assert w.wait(timeout=10) == 0

    # --json stays the event as it came.
    w = atlas.popen([DJDESKCTL, "watch", "--json", "--topic", "run.finished", "--since", str(seq)],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
    e = json.loads(read_line(w))
    assert e["topic"] == "run.finished" and e["data"]["id"] == int(run_id) and e["data"]["status"] == "failed", e
    w.send_signal(signal.SIGINT)
    assert w.wait(timeout=10) == 0
