# SPDX-License-Identifier: MIT
"""djdeskctl status / scan / schema against a real daemon, the real probe and the atlas sample (real Django,
/usr/bin/python3): the dashboard and its --json (the workspace.status document), scans started and waited
for, the schema as text and as Graphviz DOT (fed to Debian's `dot`), colour only on a terminal without
NO_COLOR, and the errors (unknown workspace, bad kind, failed scan, no daemon)."""

import json
import os
import pty
import re
import select
import shutil
import subprocess
import time

import pytest

from conftest import DJANGO_PYTHON, DJDESKCTL, connect
from runtools import stable_status

SCAN_TIMEOUT = 120.0  # a probe run is one Django start; generous for sanitizer builds
KINDS = ("schema", "migrations", "checks")
ESC = "\x1b"
SCAN_LINE = re.compile(r"^scan (\d+) (schema|migrations|checks) (pending|running|completed|failed)(?:: (.*))?$")
# samples/atlas: its own apps and models, and the relations between them (cross-app and to auth.User).
ATLAS_APPS = {"catalog": 2, "alerts": 2, "ledger": 3}
ATLAS_MODELS = {"catalog.Instrument", "catalog.Sensor", "alerts.AlertRule", "alerts.Alert", "ledger.Reading",
                "ledger.Batch", "ledger.Calibration", "auth.User", "auth.Group", "auth.Permission",
                "admin.LogEntry", "contenttypes.ContentType", "sessions.Session"}
ATLAS_RELATIONS = [
    "Sensor.instrument -> catalog.Instrument (fk)",
    "Reading.sensor -> catalog.Sensor (fk)",
    "Batch.readings -> ledger.Reading (many_to_many)",
    "Calibration.sensor -> catalog.Sensor (one_to_one)",
    "AlertRule.sensor -> catalog.Sensor (fk)",
    "Alert.rule -> alerts.AlertRule (fk)",
    "Alert.acknowledged_by -> auth.User (fk)",
]
# Unapplied migrations of a fresh copy (no database): alerts 1, catalog 1, ledger 2, and Django's own.
ATLAS_OWN_PENDING = {"alerts": 1, "catalog": 1, "ledger": 2}


# ---------------------------------------------------------------------------------------------------------
# helpers


def ctl(tree, *args, rc=0, timeout=SCAN_TIMEOUT, env=None):
    p = tree.ctl(*args, timeout=timeout, env=env)
    out, err = p.stdout.decode(), p.stderr.decode()
    assert p.returncode == rc, f"djdeskctl {' '.join(args)}: exit {p.returncode}, expected {rc}\n" \
                               f"stdout:\n{out}\nstderr:\n{err}"
    return out, err


def ctl_tty(tree, *args, env=None, timeout=60):
    """Runs djdeskctl with stdout on a pseudo-terminal; returns (exit status, what the terminal got)."""
    e = dict(tree.env)
    e.pop("NO_COLOR", None)
    e["TERM"] = "xterm-256color"
    if env:
        e.update(env)
    master, slave = pty.openpty()
    try:
        p = subprocess.Popen([DJDESKCTL, *args], env=e, stdin=subprocess.DEVNULL, stdout=slave,
                             stderr=subprocess.PIPE, cwd=tree.root)
        os.close(slave)
        slave = -1
        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r, _, _ = select.select([master], [], [], 0.5)
            if not r:
                if p.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed its side
                break
            if not chunk:
                break
            out += chunk
        rc = p.wait(timeout=10)
        err = p.stderr.read().decode()
        assert "Sanitizer" not in err, err
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
    return rc, out.decode(errors="replace").replace("\r\n", "\n")


def wait_scans(sub, slug, ids=None, timeout=SCAN_TIMEOUT):
    """Reads scan.finished events until one per kind (or one per id in ids) arrived for slug."""
    done = {}
    deadline = time.monotonic() + timeout
    while (set(done) != set(KINDS)) if ids is None else not set(ids) <= {r["id"] for r in done.values()}:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"scans of {slug} did not finish within {timeout}s (done: {done})"
        e = sub.next_event(remaining)
        if e["topic"] == "scan.finished" and e["data"]["workspace"] == slug:
            done[e["data"]["scan"]["kind"]] = e["data"]["scan"]
    return done


def add_atlas(tree, name="atlas", seed=True, path=None):
    """Registers a copy of the atlas sample; with seed, waits for its three seeded scans to finish."""
    path = path or tree.copy_sample("atlas", os.path.join(tree.home, "projects", name))
    with connect(tree.socket_path) as rpc, connect(tree.socket_path, timeout=SCAN_TIMEOUT) as sub:
        sub.call("subscribe", {"topics": ["scan.*"]})
        w = rpc.call("workspace.add", {"path": path, "python": DJANGO_PYTHON, "name": name,
                                       "seed_scans": seed})
        assert w["slug"] == name, w
        if seed:
            done = wait_scans(sub, name)
            assert all(r["status"] == "completed" for r in done.values()), done
            # The status document follows with the next workspace.changed (coalesced, a moment later).
            deadline = time.monotonic() + 10
            while True:
                doc = rpc.call("workspace.status", {"workspace": name})
                if [(r["id"], r["status"]) for r in doc["scans"]] == \
                        [(done[k]["id"], "completed") for k in KINDS]:
                    break
                assert time.monotonic() < deadline, doc["scans"]
                time.sleep(0.05)
    return path


def stable_status_of(tree, slug, read_other):
    with connect(tree.socket_path) as rpc:
        return stable_status(rpc, slug, read_other)


def section(out, title):
    """The lines of a dashboard section (after its title line, up to the next blank line)."""
    lines = out.split("\n")
    assert title in lines, f"no section {title!r} in:\n{out}"
    i = lines.index(title) + 1
    j = i
    while j < len(lines) and lines[j].strip():
        j += 1
    return lines[i:j]


def row(lines, first):
    """The columns of the table row whose first column is first."""
    for line in lines:
        cols = line.split()
        if cols and cols[0] == first:
            return cols
    raise AssertionError(f"no row {first!r} in {lines}")


@pytest.fixture
def daemon(tree):
    tree.start("--no-bus")
    return tree


@pytest.fixture
def atlas(daemon):
    """A daemon with the atlas sample registered as 'atlas' and scanned."""
    add_atlas(daemon)
    return daemon


# ---------------------------------------------------------------------------------------------------------
# status


def test_status_json_is_the_workspace_status_document(atlas):
    doc, out = stable_status_of(atlas, "atlas", lambda: json.loads(ctl(atlas, "status", "atlas", "--json")[0]))
    assert out == doc
    assert out["workspace"] == "atlas" and out["scans"], out
    # The global --json before the command gives the same.
    doc, out = stable_status_of(atlas, "atlas", lambda: json.loads(ctl(atlas, "--json", "status", "atlas")[0]))
    assert out == doc


def test_status_json_without_ws(daemon):
    add_atlas(daemon, seed=False)
    # One workspace: its document.
    doc, out = stable_status_of(daemon, "atlas", lambda: json.loads(ctl(daemon, "status", "--json")[0]))
    assert out == doc
    # Several: an array of them, in workspace.list's order.
    add_atlas(daemon, name="beta", seed=False)
    out = json.loads(ctl(daemon, "status", "--json")[0])
    assert isinstance(out, list) and [d["workspace"] for d in out] == ["atlas", "beta"], out


def test_status_dashboard(atlas):
    with connect(atlas.socket_path) as rpc:
        schema = rpc.call("scan.result", {"workspace": "atlas", "kind": "schema"})["result"]
        migrations = rpc.call("scan.result", {"workspace": "atlas", "kind": "migrations"})["result"]
    pending = {a["app"]: sum(1 for m in a["migrations"] if not m["applied"]) for a in migrations["migrations"]}
    total = sum(pending.values())
    for app, n in ATLAS_OWN_PENDING.items():
        assert pending[app] == n, pending

    out, err = ctl(atlas, "status", "atlas")
    assert err == ""
    assert ESC not in out
    lines = out.split("\n")
    assert lines[0].startswith("atlas") and "Django " in lines[0], lines[0]
    assert lines[1].startswith("Server: stopped"), lines[1]
    assert not [line for line in lines if line != line.rstrip()], "trailing blanks"

    insights = section(out, "Insights")
    assert re.search(rf"^\s+Pending migrations\s+{total}\b", "\n".join(insights), re.M), insights
    assert re.search(rf"^\s+Models\s+{len(schema['models'])}\b", "\n".join(insights), re.M), insights
    assert re.search(r"^\s+Check warnings\s+1\b", "\n".join(insights), re.M), insights
    assert re.search(r"^\s+Check errors\s+0\b", "\n".join(insights), re.M), insights

    apps = section(out, "Apps")
    for app, n in ATLAS_APPS.items():
        assert row(apps, app) == [app, str(n), str(ATLAS_OWN_PENDING[app]), "pending"], apps
    assert row(apps, "auth")[2] == str(pending["auth"]), apps

    scans = section(out, "Scans")
    for kind in KINDS:
        assert row(scans, kind)[1] == "completed", scans
    assert section(out, "Recent runs") == ["  none"]


def test_status_shows_runs_and_log(atlas):
    with connect(atlas.socket_path) as rpc, connect(atlas.socket_path, timeout=SCAN_TIMEOUT) as sub:
        sub.call("subscribe", {"topics": ["run.finished"]})
        run = rpc.call("run.start", {"workspace": "atlas", "preset": "check"})
        while True:
            e = sub.next_event(SCAN_TIMEOUT)
            if e["data"]["id"] == run["id"]:
                break
        assert e["data"]["status"] in ("succeeded", "failed"), e

    def dashboard():
        return ctl(atlas, "status", "atlas")[0]

    deadline = time.monotonic() + 10
    while True:  # the document follows run.finished at most STATUS_PUBLISH_INTERVAL later
        out = dashboard()
        runs = section(out, "Recent runs")
        cols = [line.split() for line in runs[1:] if line.split()[0] == str(run["id"])]
        if cols and cols[0][2] == e["data"]["status"]:
            break
        assert time.monotonic() < deadline, out
        time.sleep(0.1)
    assert cols[0][1] == "check" and re.match(r"^\d", cols[0][3]), runs  # preset, duration
    log = section(out, "Log")
    assert log[0].split() == ["TIME", "LEVEL", "SOURCE", "MESSAGE"], log
    assert any(f"run:{run['id']}" in line for line in log[1:]), log
    assert re.search(r"^\s+Last run\s+\S+", "\n".join(section(out, "Insights")), re.M), out


def test_status_without_ws(daemon):
    out, _ = ctl(daemon, "status")
    assert out.startswith("No workspaces."), out
    add_atlas(daemon, seed=False)
    # One workspace: its dashboard.
    out, _ = ctl(daemon, "status")
    assert out.split("\n")[1].startswith("Server: stopped"), out
    # Several: one line each.
    add_atlas(daemon, name="beta")
    out, _ = ctl(daemon, "status")
    lines = out.rstrip("\n").split("\n")
    assert lines[0].split() == ["WORKSPACE", "SERVER", "PENDING", "WARNINGS", "ERRORS"], out
    assert lines[1].split() == ["atlas", "stopped", "unknown", "unknown", "unknown"], out
    beta = lines[2].split()
    assert beta[:2] == ["beta", "stopped"] and int(beta[2]) > 0 and beta[3:] == ["1", "0"], out
    assert len(lines) == 3, out


def test_status_colour_only_on_a_terminal_without_no_color(atlas):
    rc, out = ctl_tty(atlas, "status", "atlas")
    assert rc == 0, out
    assert ESC + "[1matlas" + ESC + "[0m" in out, out  # coloured on a terminal...
    assert re.search(r"Check errors +\x1b\[32m0\x1b\[0m", out), out
    rc, out = ctl_tty(atlas, "status", "atlas", env={"NO_COLOR": "1"})
    assert rc == 0 and ESC not in out and "Server: stopped" in out, out  # ... but not with NO_COLOR
    rc, out = ctl_tty(atlas, "status", "atlas", env={"TERM": "dumb"})
    assert rc == 0 and ESC not in out, out
    rc, out = ctl_tty(atlas, "status", "atlas", "--json")
    assert rc == 0 and ESC not in out, out
    json.loads(out)
    # Not a terminal: never, whatever NO_COLOR says.
    for env in (None, {"TERM": "xterm-256color"}):
        out, _ = ctl(atlas, "status", "atlas", env=env)
        assert ESC not in out, out


def test_status_errors(daemon):
    _, err = ctl(daemon, "status", "nope", rc=1)
    assert "nope" in err and "(not_found)" in err, err
    _, err = ctl(daemon, "status", "atlas", "beta", rc=2)
    assert "unexpected argument 'beta'" in err, err
    _, err = ctl(daemon, "status", "", rc=2)
    assert "empty" in err, err
    out, _ = ctl(daemon, "status", "--help")
    assert out.startswith("Usage: djdeskctl status"), out


def test_commands_without_a_daemon(tree):
    for args in (("status",), ("status", "atlas"), ("scan", "atlas"), ("scan", "atlas", "--wait"),
                 ("schema", "atlas"), ("schema", "atlas", "--dot")):
        out, err = ctl(tree, *args, rc=3)
        assert out == "", (args, out)
        assert err.startswith("djdeskctl: ") and "daemon" in err, (args, err)


# ---------------------------------------------------------------------------------------------------------
# scan


def test_scan_without_wait_prints_the_queued_scans(daemon):
    add_atlas(daemon, seed=False)
    with connect(daemon.socket_path, timeout=SCAN_TIMEOUT) as sub:
        sub.call("subscribe", {"topics": ["scan.*"]})
        out, _ = ctl(daemon, "scan", "atlas")
        lines = out.rstrip("\n").split("\n")
        got = [SCAN_LINE.match(line) for line in lines]
        assert all(got) and [m.group(2) for m in got] == list(KINDS), out
        assert all(m.group(3) == "pending" for m in got), out
        ids = [int(m.group(1)) for m in got]
        with connect(daemon.socket_path) as rpc:
            listed = {r["kind"]: r["id"] for r in rpc.call("scan.list", {"workspace": "atlas"})["scans"]}
        assert listed == dict(zip(KINDS, ids)), (listed, out)
        wait_scans(sub, "atlas", ids=ids)

        out, _ = ctl(daemon, "scan", "atlas", "checks")
        m = SCAN_LINE.match(out.rstrip("\n"))
        assert m and m.group(2) == "checks" and out.count("\n") == 1, out
        wait_scans(sub, "atlas", ids=[int(m.group(1))])

        # --json: the scan.start result.
        res = json.loads(ctl(daemon, "scan", "atlas", "migrations", "--json")[0])
        assert res["workspace"] == "atlas" and [r["kind"] for r in res["scans"]] == ["migrations"], res
        wait_scans(sub, "atlas", ids=[res["scans"][0]["id"]])


def test_scan_wait(atlas):
    out, err = ctl(atlas, "scan", "atlas", "--wait")
    lines = out.rstrip("\n").split("\n")
    got = [SCAN_LINE.match(line) for line in lines]
    assert all(got), out
    final = {m.group(2): m for m in got if m.group(3) in ("completed", "failed")}
    assert set(final) == set(KINDS), out
    assert all(m.group(3) == "completed" and m.group(4) for m in final.values()), out
    assert "1 warning" in final["checks"].group(4), out
    # Every record printed is the newest of its kind, completed.
    with connect(atlas.socket_path) as rpc:
        listed = {r["kind"]: r for r in rpc.call("scan.list", {"workspace": "atlas"})["scans"]}
    for kind, m in final.items():
        assert listed[kind]["id"] == int(m.group(1)) and listed[kind]["status"] == "completed", listed
        assert listed[kind]["summary"] == m.group(4), listed

    # One kind, as JSON: one line per finished record.
    out, _ = ctl(atlas, "scan", "atlas", "schema", "--wait", "--json")
    recs = [json.loads(line) for line in out.rstrip("\n").split("\n")]
    assert len(recs) == 1 and recs[0]["kind"] == "schema" and recs[0]["status"] == "completed", recs


def test_scan_wait_of_a_failing_project(daemon):
    path = daemon.copy_sample("atlas", os.path.join(daemon.home, "projects", "broken"))
    with open(os.path.join(path, "atlas", "settings.py"), "a") as f:
        f.write("\nfrom django.core.exceptions import ImproperlyConfigured\n"
                "raise ImproperlyConfigured('the broken sample says no')\n")
    add_atlas(daemon, name="broken", seed=False, path=path)
    out, err = ctl(daemon, "scan", "broken", "--wait", rc=1)
    assert re.search(r"^djdeskctl: scan \d+ schema failed: .*the broken sample says no", err, re.M), err
    assert "pending" in out, out
    _, err = ctl(daemon, "schema", "broken", rc=1)
    assert "the broken sample says no" in err, err


def test_scan_refusals(daemon):
    add_atlas(daemon, seed=False)
    _, err = ctl(daemon, "scan", "atlas", "nope", rc=1)
    assert "(invalid)" in err, err
    _, err = ctl(daemon, "scan", "atlas", "nope", "--wait", rc=1)
    assert "(invalid)" in err, err
    _, err = ctl(daemon, "scan", "nowhere", rc=1)
    assert "nowhere" in err and "(not_found)" in err, err
    _, err = ctl(daemon, "scan", "nowhere", "--wait", rc=1)
    assert "(not_found)" in err, err
    _, err = ctl(daemon, "scan", rc=2)
    assert "missing workspace" in err, err
    _, err = ctl(daemon, "scan", "atlas", "schema", "extra", rc=2)
    assert "unexpected argument 'extra'" in err, err
    with connect(daemon.socket_path) as rpc:
        assert rpc.call("scan.list", {"workspace": "atlas"})["scans"] == []


# ---------------------------------------------------------------------------------------------------------
# schema


def test_schema_text(atlas):
    out, err = ctl(atlas, "schema", "atlas")
    assert err == "" and ESC not in out
    for rel in ATLAS_RELATIONS:
        assert re.search(rf"^\s+{re.escape(rel)}$", out, re.M), (rel, out)
    for app, n in ATLAS_APPS.items():
        assert re.search(rf"^{app}\b.*: {n} models$", out, re.M), (app, out)
    assert re.search(r"^\s+Sensor \(catalog_sensor\)$", out, re.M), out
    assert re.search(r"^\s+code: SlugField \[unique, max_length 40\]$", out, re.M), out
    assert re.search(r"^\s+kind: CharField \[max_length 20, 4 choices\]$", out, re.M), out
    m = re.search(r"^(\d+) apps, (\d+) models, (\d+) relations$", out, re.M)
    assert m and int(m.group(2)) == len(ATLAS_MODELS), out


def test_schema_json(atlas):
    res = json.loads(ctl(atlas, "schema", "atlas", "--json")[0])
    with connect(atlas.socket_path) as rpc:
        assert res == rpc.call("scan.result", {"workspace": "atlas", "kind": "schema"})
    assert {f"{m['app']}.{m['name']}" for m in res["result"]["models"]} == ATLAS_MODELS


@pytest.mark.skipif(not shutil.which("dot"), reason="Graphviz dot not installed")
def test_schema_dot_is_accepted_by_graphviz(atlas):
    out, _ = ctl(atlas, "schema", "atlas", "--dot")
    assert out.startswith('digraph "atlas" {'), out[:200]
    for model in ATLAS_MODELS:
        assert f'"{model}" [label=' in out, (model, out)
    for edge in ('"catalog.Sensor" -> "catalog.Instrument"', '"ledger.Batch" -> "ledger.Reading"',
                 '"alerts.Alert" -> "auth.User"'):
        assert edge in out, (edge, out)
    p = subprocess.run(["dot", "-Tsvg"], input=out.encode(), capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr.decode()
    assert p.stderr == b"", p.stderr.decode()  # no syntax warnings either
    svg = p.stdout.decode()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg, svg[:200]
    for title in ("catalog.Sensor", "ledger.Batch&#45;&gt;ledger.Reading", "alerts.Alert&#45;&gt;auth.User"):
        assert f"<title>{title}</title>" in svg, title
    # Never coloured, even on a terminal.
    rc, tty = ctl_tty(atlas, "schema", "atlas", "--dot")
    assert rc == 0 and ESC not in tty, tty


def test_schema_refusals(daemon):
    add_atlas(daemon, seed=False)
    _, err = ctl(daemon, "schema", "atlas", rc=1)
    assert "no schema scan yet" in err and "djdeskctl scan atlas" in err, err
    _, err = ctl(daemon, "schema", "atlas", "--dot", rc=1)
    assert "no schema scan yet" in err, err
    _, err = ctl(daemon, "schema", "nowhere", rc=1)
    assert "(not_found)" in err, err
    _, err = ctl(daemon, "schema", "atlas", "--dot", "--json", rc=2)
    assert "cannot be combined" in err, err
    _, err = ctl(daemon, "schema", rc=2)
    assert "missing workspace" in err, err
