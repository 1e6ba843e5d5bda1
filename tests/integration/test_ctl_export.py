# SPDX-License-Identifier: MIT
"""djdeskctl templates / export / exports / preview against a real daemon, the real export helper
(<build>/datalab/djdesk-export), the Data Lab templates of the source tree (data/datalab) and the atlas sample
(real Django): the template table, an export queued and waited for (the notebook on disk is nbformat 4 JSON
with the size and sha256 printed), the notebook listing, the HTML preview, --json, refusals and a failed
export, and --open with a stand-in xdg-open on PATH that records what it was given."""

import hashlib
import json
import os
import re

import pytest

from conftest import DATALAB_TEMPLATES, EXPORT_HELPER, connect
from test_ctl_status import add_atlas, ctl

TEMPLATES = {"schema-audit", "log-study", "migration-review", "task-history"}
QUEUED = re.compile(r"^Export '([a-z0-9-]+)' of (\S+) queued as run ([1-9][0-9]*): (/\S+\.ipynb)$")
WROTE = re.compile(r"^Wrote (/\S+\.ipynb) \(([0-9]+) bytes, sha256 ([0-9a-f]{64})\)$")


# ---------------------------------------------------------------------------------------------------------
# helpers


@pytest.fixture
def daemon(tree):
    assert EXPORT_HELPER and os.access(EXPORT_HELPER, os.X_OK), f"no export helper at {EXPORT_HELPER}"
    # conftest points every daemon at the source tree's templates and the built helper; say it again here so
    # that this file does not depend on that.
    tree.start("--no-bus", env={"DJDESK_DATALAB_TEMPLATES": DATALAB_TEMPLATES, "DJDESK_EXPORT": EXPORT_HELPER})
    return tree


@pytest.fixture
def atlas(daemon):
    """A daemon with the atlas sample registered as 'atlas', its seeded scans finished (schema-audit reads the
    schema scan, migration-review the migrations scan)."""
    add_atlas(daemon)
    return daemon


def notebooks_dir(tree, slug="atlas"):
    with connect(tree.socket_path) as rpc:
        return rpc.call("export.list", {"workspace": slug})["directory"]


def human_size(n):
    """What the client prints for a size: "512 B", "12.3 KiB"."""
    if n < 1024:
        return f"{n} B"
    v, units = n / 1024, ["KiB", "MiB", "GiB", "TiB"]
    u = 0
    while v >= 1023.95 and u + 1 < len(units):
        v /= 1024
        u += 1
    return f"{v:.1f} {units[u]}"


def table(out):
    """The rows of a table printed with two spaces between columns: a list of column lists, header first."""
    return [re.split(r"  +", line.strip()) for line in out.splitlines() if line.strip()]


def export_wait(tree, template, *args, env=None, rc=0):
    """export atlas TEMPLATE --wait ARGS...; returns (notebook path, run id, size, sha256, stderr)."""
    out, err = ctl(tree, "export", "atlas", template, "--wait", *args, env=env, rc=rc)
    lines = out.splitlines()
    assert len(lines) == 2, out
    q, w = QUEUED.match(lines[0]), WROTE.match(lines[1])
    assert q and w, out
    assert q.group(1) == template and q.group(2) == "atlas", out
    assert q.group(4) == w.group(1), out
    return w.group(1), int(q.group(3)), int(w.group(2)), w.group(3), err


def recorder(tmp_path, name="xdg-open", exit_code=0):
    """A directory holding an executable NAME that appends its arguments (one per line, then "--") to a log
    and exits exit_code: the desktop's opener, as a test sees it. Returns (directory, log path)."""
    bindir = tmp_path / f"bin-{name}-{exit_code}"
    bindir.mkdir()
    log = tmp_path / f"{name}-{exit_code}.log"
    script = bindir / name
    script.write_text(f"#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done >> '{log}'\n"
                      f"echo -- >> '{log}'\nexit {exit_code}\n")
    script.chmod(0o755)
    return str(bindir), str(log)


def recorded_calls(log):
    if not os.path.exists(log):
        return []
    calls, cur = [], []
    with open(log) as f:
        for line in f.read().splitlines():
            if line == "--":
                calls.append(cur)
                cur = []
            else:
                cur.append(line)
    return calls


# ---------------------------------------------------------------------------------------------------------
# templates


def test_templates(daemon):
    out, err = ctl(daemon, "templates")
    rows = table(out)
    assert rows[0] == ["SLUG", "TITLE", "DATA", "DESCRIPTION"], out
    by_slug = {r[0]: r for r in rows[1:]}
    assert set(by_slug) == TEMPLATES, out

    doc = json.loads(ctl(daemon, "templates", "--json")[0])
    assert {t["slug"] for t in doc["templates"]} == TEMPLATES, doc
    for t in doc["templates"]:
        assert {"slug", "title", "description", "tags", "data"} <= set(t), t
        # Not a terminal: one line per template, with the whole description.
        assert by_slug[t["slug"]] == [t["slug"], t["title"], ",".join(t["data"]), t["description"]], out
    assert by_slug["schema-audit"][2] == "schema", out

    # The global --json before the command gives the same.
    assert json.loads(ctl(daemon, "--json", "templates")[0]) == doc


def test_help_names_the_data_lab_commands(tree):
    out = tree.ctl("--help").stdout.decode()
    for verb in ("templates", "export", "exports", "preview"):
        assert re.search(rf"^  {verb}\b", out, re.M), out
        p = tree.ctl(verb, "--help")
        assert p.returncode == 0 and p.stdout.decode().startswith(f"Usage: djdeskctl {verb}"), p
    assert "--open" in tree.ctl("export", "--help").stdout.decode()


# ---------------------------------------------------------------------------------------------------------
# export, exports, preview


def test_export_wait_then_exports_and_preview(atlas):
    directory = notebooks_dir(atlas)
    out, _ = ctl(atlas, "exports", "atlas")
    assert out == f"No notebooks yet in {directory}.\n", out

    path, run_id, size, sha, _ = export_wait(atlas, "schema-audit")
    assert path == os.path.join(directory, "schema-audit.ipynb"), path
    with open(path, "rb") as f:
        data = f.read()
    assert len(data) == size and hashlib.sha256(data).hexdigest() == sha
    nb = json.loads(data)
    assert nb["nbformat"] == 4 and isinstance(nb["cells"], list) and nb["cells"], list(nb)

    # The run is an ordinary run of kind "export".
    with connect(atlas.socket_path) as rpc:
        run = rpc.call("run.get", {"id": run_id})
    assert run["kind"] == "export" and run["preset"] == "schema-audit" and run["status"] == "succeeded", run

    out, _ = ctl(atlas, "exports", "atlas")
    rows = table(out)
    assert rows[0] == ["NAME", "TITLE", "SIZE", "MODIFIED", "TEMPLATE"], out
    assert len(rows) == 2, out
    name, title, shown, modified, template = rows[1]
    assert (name, title, shown, template) == ("schema-audit", "Schema audit", human_size(size), "schema-audit"), out
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$", modified), out

    listing = json.loads(ctl(atlas, "exports", "atlas", "--json")[0])
    assert listing["directory"] == directory, listing
    [nbinfo] = listing["notebooks"]
    assert nbinfo["file"] == path and nbinfo["size"] == size and nbinfo["sha256"] == sha, nbinfo

    out, _ = ctl(atlas, "preview", "atlas", "schema-audit")
    html = out.rstrip("\n")
    assert out.endswith("\n") and "\n" not in html, out
    assert html == os.path.join(directory, "schema-audit.html"), out
    assert os.path.isfile(html) and os.path.getsize(html) > 0, html
    # The notebook's file name works as well.
    assert ctl(atlas, "preview", "atlas", "schema-audit.ipynb")[0] == out


def test_export_without_wait_then_json(atlas):
    directory = notebooks_dir(atlas)
    out, _ = ctl(atlas, "export", "atlas", "migration-review")
    m = QUEUED.match(out.rstrip("\n"))
    assert m and out.count("\n") == 1, out
    assert m.group(4) == os.path.join(directory, "migration-review.ipynb"), out

    doc = json.loads(ctl(atlas, "export", "atlas", "log-study", "--json")[0])
    assert set(doc) == {"run", "file"}, doc
    assert doc["file"] == os.path.join(directory, "log-study.ipynb"), doc
    run = doc["run"]
    assert run["kind"] == "export" and run["workspace"] == "atlas" and run["preset"] == "log-study", run
    assert isinstance(run["id"], int) and run["id"] > int(m.group(3)), run

    doc = json.loads(ctl(atlas, "export", "atlas", "task-history", "--wait", "--json")[0])
    assert set(doc) == {"run", "file", "ready"}, doc
    run, ready = doc["run"], doc["ready"]
    assert run["kind"] == "export" and run["status"] == "succeeded" and run["preset"] == "task-history", run
    assert ready["run"] == run["id"] and ready["workspace"] == "atlas" and ready["template"] == "task-history"
    assert ready["file"] == doc["file"] == os.path.join(directory, "task-history.ipynb"), doc
    with open(ready["file"], "rb") as f:
        data = f.read()
    assert ready["size"] == len(data) and ready["sha256"] == hashlib.sha256(data).hexdigest(), ready
    assert json.loads(data)["nbformat"] == 4


def test_refusals(daemon):
    add_atlas(daemon, seed=False)
    _, err = ctl(daemon, "export", "atlas", "no-such-template", rc=1)
    assert "'no-such-template'" in err and "djdeskctl templates" in err, err
    _, err = ctl(daemon, "export", "atlas", "no-such-template", "--wait", rc=1)
    assert "'no-such-template'" in err, err
    _, err = ctl(daemon, "export", "nowhere", "schema-audit", rc=1)
    assert "'nowhere'" in err and "ws ls" in err, err
    _, err = ctl(daemon, "exports", "nowhere", rc=1)
    assert "'nowhere'" in err, err
    _, err = ctl(daemon, "preview", "atlas", "no-such-notebook", rc=1)
    assert "'no-such-notebook'" in err and "djdeskctl exports atlas" in err, err

    # Usage errors: exit 2 before anything is asked.
    for args in (["export"], ["export", "atlas"], ["export", "atlas", "a", "b"], ["export", "atlas", ""],
                 ["exports"], ["preview", "atlas"], ["templates", "x"], ["export", "atlas", "x", "--bogus"]):
        p = daemon.ctl(*args)
        assert p.returncode == 2, (args, p.returncode, p.stderr)
        assert p.stderr.decode().startswith("djdeskctl: "), (args, p.stderr)
    # Nothing was queued by any of them.
    with connect(daemon.socket_path) as rpc:
        assert rpc.call("run.list", {})["runs"] == []


def test_export_failure(daemon):
    # No seed scans: schema-audit has no schema to read, so the run fails.
    add_atlas(daemon, seed=False)
    out, err = ctl(daemon, "export", "atlas", "schema-audit", "--wait", rc=1)
    m = QUEUED.match(out.rstrip("\n"))
    assert m and "Wrote" not in out, out
    assert f"(run {m.group(3)}) failed: " in err and "no schema scan of 'atlas' has completed yet" in err, err
    assert not os.path.exists(m.group(4))

    doc = json.loads(ctl(daemon, "export", "atlas", "schema-audit", "--wait", "--json", rc=1)[0])
    assert doc["run"]["status"] == "failed" and doc["ready"] is None, doc
    assert "no schema scan" in doc["run"]["error"], doc


def test_export_open(atlas, tmp_path):
    bindir, log = recorder(tmp_path)
    env = {"PATH": bindir + ":" + atlas.env["PATH"]}
    path, _, _, _, _ = export_wait(atlas, "schema-audit", "--open", env=env)
    assert recorded_calls(log) == [[path]]

    out, _ = ctl(atlas, "preview", "atlas", "schema-audit", "--open", env=env)
    assert recorded_calls(log) == [[path], [out.rstrip("\n")]]
    assert out.rstrip("\n").endswith("/schema-audit.html"), out

    # --open alone implies --wait.
    out, _ = ctl(atlas, "export", "atlas", "log-study", "--open", env=env)
    assert WROTE.match(out.splitlines()[-1]), out
    assert recorded_calls(log)[-1] == [WROTE.match(out.splitlines()[-1]).group(1)]


def test_export_open_without_an_opener(atlas, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    # The notebook is written; opening it is what fails: exit 1, and where the notebook is.
    path, _, _, _, err = export_wait(atlas, "schema-audit", "--open", env={"PATH": str(empty)}, rc=1)
    assert "xdg-open" in err and "not found" in err and path in err, err
    assert os.path.isfile(path)

    bindir, log = recorder(tmp_path, exit_code=4)
    _, err = ctl(atlas, "preview", "atlas", "schema-audit", "--open", env={"PATH": bindir}, rc=1)
    assert "status 4" in err and "schema-audit.html" in err, err
    assert len(recorded_calls(log)) == 1
