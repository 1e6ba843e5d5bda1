# SPDX-License-Identifier: MIT
"""The Data Lab, black box: the real daemon exports notebooks from the templates in data/datalab through its
writer (djdesk-export, a run of kind "export") for copies of the three samples, scanned by the real probe
with real Django. Every notebook is checked with Debian's nbformat (valid 4.5, and exactly the bytes
nbformat itself writes), executed top to bottom in a real Python 3 kernel (nbclient + ipykernel), exported
again to prove byte equality, and previewed as HTML that is parsed here. Also: the digest follows the data,
a failed write keeps the previous file, a symlinked directory is refused, names cannot leave the root,
export.list / remove / templates, export.ready, the status document's data_lab part, and D-Bus."""

import base64
import hashlib
import html.parser
import json
import os
import shutil
import stat
import struct
import threading
import time
import zlib

import pytest

from conftest import EXPORT_HELPER, RpcError, busctl, busctl_json, connect, have_bus
from runtools import RunWatch, refused, script_preset, start
from servertools import add_workspace, group_members, wait_until
from test_status import status as status_doc, validator  # noqa: F401 (a fixture)

nbformat = pytest.importorskip("nbformat")

SAMPLES = ["atlas", "polls", "generated"]
TEMPLATES = ["log-study", "migration-review", "schema-audit", "task-history"]
SCAN_TIMEOUT = 90.0
EXPORT_TIMEOUT = 60.0
NOTEBOOK_KEYS = {"slug", "title", "description", "file", "size", "sha256", "modified_at", "template"}
HOSTILE = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>"]

HOSTILE_SRC = """\
import sys
print("<script>alert(1)</script>")
print("<img src=x onerror=alert(1)>", file=sys.stderr)
print("ERROR: it's a '''quoted''' \\\\ backslash and caf\\u00e9 \\u2028 here")
"""


# ---------------------------------------------------------------------------------------------------------
# helpers


def data_lab_root(tree):
    return os.path.join(tree.data, "djdesk", "data_lab")


def add_sample(tree, rpc, sample, name=None, **params):
    """A copy of samples/SAMPLE added as a workspace; returns it once its seeded scans finished."""
    path = tree.copy_sample(sample, os.path.join(tree.home, "projects", name or sample))
    watch = RunWatch(tree, topics=("scan.finished",))
    try:
        w = add_workspace(rpc, path, name=name or sample, **params)
        if params.get("seed_scans", True):
            for kind in ("schema", "migrations", "checks"):
                watch.wait(lambda e, k=kind: e["data"]["workspace"] == w["slug"] and e["data"]["scan"]["kind"] == k,
                           SCAN_TIMEOUT, f"the {kind} scan of {w['slug']}")
    finally:
        watch.close()
    return w


def export(tree, rpc, slug, template, ok=True):
    """export.create, waited for: (run.finished data, export.ready data or None)."""
    watch = RunWatch(tree, topics=("run.finished", "export.ready"))
    try:
        reply = rpc.call("export.create", {"workspace": slug, "template": template})
        run = reply["run"]
        assert run["kind"] == "export" and run["preset"] == template and run["workspace"] == slug, reply
        assert reply["file"] == os.path.join(data_lab_root(tree), slug, template + ".ipynb"), reply
        done = watch.finished(run["id"], EXPORT_TIMEOUT)
        if not ok:
            assert done["status"] == "failed", done
            return done, None
        assert done["status"] == "succeeded", (done, all_lines(rpc, run["id"]))
        ready = watch.wait(lambda e: e["topic"] == "export.ready" and e["data"]["run"] == run["id"],
                           EXPORT_TIMEOUT, "export.ready")["data"]
        assert ready["file"] == reply["file"] and ready["template"] == template, ready
        return done, ready
    finally:
        watch.close()


def all_lines(rpc, run_id):
    return [l["text"] for l in rpc.call("run.logs", {"id": run_id, "limit": 1000})["lines"]]


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def check_canonical(path):
    """Valid nbformat 4.5, and byte for byte what nbformat writes for it (what Jupyter saves)."""
    raw = read_bytes(path)
    nb = nbformat.reads(raw.decode("utf-8"), as_version=4)
    nbformat.validate(nb)
    assert nb.nbformat == 4 and nb.nbformat_minor == 5
    # nbformat.write() adds the final newline to what writes() returns
    assert (nbformat.writes(nb) + "\n").encode("utf-8") == raw, path
    ids = [c["id"] for c in nb.cells]
    assert len(set(ids)) == len(ids) and all(ids), ids
    assert nb.metadata.kernelspec.name == "python3" and nb.metadata.language_info.name == "python"
    return nb


def execute(nb):
    nbclient = pytest.importorskip("nbclient")
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=120, allow_errors=False)
    client.execute()
    return nb


def output_text(o):
    """What an output shows as text: a stream's, or a result's text/plain (a pandas table, when pandas is
    installed)."""
    if o.output_type == "stream":
        return o.text
    return o.get("data", {}).get("text/plain", "")


class Html(html.parser.HTMLParser):
    """Every start tag with its attributes, and the text."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.tags = []
        self.text = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def named(self, tag):
        return [a for t, a in self.tags if t == tag]

    def all_text(self):
        return "".join(self.text)


def check_safe_html(path):
    """No script, no event handler, no javascript: URL, no remote resource; returns the parsed page."""
    page = Html(read_bytes(path).decode("utf-8"))
    assert page.named("script") == [], path
    for tag, attrs in page.tags:
        assert not any(k.startswith("on") for k in attrs), (tag, attrs)
        for k in ("href", "src", "action", "formaction"):
            v = (attrs.get(k) or "").strip().lower()
            assert not v.startswith(("javascript:", "vbscript:", "http:", "https:", "//")), (tag, attrs)
        if tag == "img":   # an output's PNG or JPEG, or a Markdown image that loads nothing
            src = attrs.get("src", "")
            assert src == "#" or src.startswith(("data:image/png;base64,", "data:image/jpeg;base64,")), attrs
    assert page.named("iframe") == [] and page.named("object") == [] and page.named("embed") == []
    csp = [a for a in page.named("meta") if a.get("http-equiv", "").lower() == "content-security-policy"]
    assert csp and "default-src 'none'" in csp[0]["content"], csp
    return page


def png_1x1():
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = zlib.compress(b"\x00\xff\x00\x00")
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", raw) + chunk(b"IEND", b""))


# ---------------------------------------------------------------------------------------------------------
# templates


def test_templates_are_listed_with_their_data(tree, daemon):
    rpc = connect(tree.socket_path)
    templates = rpc.call("export.templates")["templates"]
    assert [t["slug"] for t in templates] == TEMPLATES, templates
    for t in templates:
        assert set(t) == {"slug", "title", "description", "tags", "data"}, t
        assert t["title"] and t["description"] and isinstance(t["tags"], list), t
        assert set(t["data"]) <= {"schema", "migrations", "logs", "runs"} and t["data"], t
    by = {t["slug"]: t for t in templates}
    assert "schema" in by["schema-audit"]["data"] and "runs" in by["task-history"]["data"]
    assert "logs" in by["log-study"]["data"] and "migrations" in by["migration-review"]["data"]


def test_a_bad_user_template_is_skipped_and_a_good_one_added(tree):
    d = os.path.join(tree.config, "djdesk", "datalab")
    os.makedirs(d)
    good = {"slug": "mine", "title": "Mine", "description": "A user template.", "tags": [], "data": [],
            "cells": [{"cell_type": "markdown", "source": "# {{name}}"},
                      {"cell_type": "code", "source": "import json\nDATA = json.loads(r'''{{data}}''')\n"
                                                      "print(DATA['workspace']['slug'])"}]}
    with open(os.path.join(d, "mine.json"), "w") as f:
        json.dump(good, f)
    bad = dict(good, slug="evil", cells=[{"cell_type": "code", "source": "print('{{name}}')"}])
    with open(os.path.join(d, "evil.json"), "w") as f:
        json.dump(bad, f)
    with open(os.path.join(d, "other-name.json"), "w") as f:
        json.dump(dict(good, slug="mismatch"), f)
    tree.start()
    rpc = connect(tree.socket_path)
    slugs = [t["slug"] for t in rpc.call("export.templates")["templates"]]
    assert slugs == sorted(TEMPLATES + ["mine"]), slugs
    w = add_sample(tree, rpc, "polls")
    done, ready = export(tree, rpc, w["slug"], "mine")
    nb = check_canonical(ready["file"])
    assert nb.cells[0].source == "# polls"
    out = execute(nb).cells[1].outputs
    assert out[0]["text"] == "polls\n", out
    assert refused(rpc, "export.create", {"workspace": "polls", "template": "evil"})["code"] == -32001


# ---------------------------------------------------------------------------------------------------------
# every template on every sample


@pytest.mark.parametrize("sample", SAMPLES)
def test_every_template_exports_a_canonical_notebook_that_runs(tree, daemon, sample):
    rpc = connect(tree.socket_path)
    w = add_sample(tree, rpc, sample)
    slug = w["slug"]
    # some history for task-history and log-study: a real check run
    watch = RunWatch(tree)
    run = start(rpc, slug, "check")
    assert watch.finished(run["id"], EXPORT_TIMEOUT)["status"] == "succeeded"
    watch.close()

    for template in TEMPLATES:
        done, ready = export(tree, rpc, slug, template)
        path = ready["file"]
        raw = read_bytes(path)
        assert ready["sha256"] == hashlib.sha256(raw).hexdigest() and ready["size"] == len(raw), ready
        nb = check_canonical(path)
        meta = nb.metadata.djdesk
        assert meta.template == template and meta.workspace == slug, meta
        assert len(meta.data_sha256) == 64, meta
        # the embedded data is the workspace's
        first_code = next(c for c in nb.cells if c.cell_type == "code")
        assert "json.loads(r'''" in first_code.source, first_code.source
        assert w["path"] in first_code.source or json.dumps(w["path"])[1:-1] in first_code.source
        # runs top to bottom in a plain Python 3 kernel
        execute(nb)
        texts = "".join(output_text(o) for c in nb.cells if c.cell_type == "code" for o in c.outputs)
        assert texts.strip(), f"{template} printed nothing"
        if template == "schema-audit":
            for app in (a["label"] for a in rpc.call("scan.result", {"workspace": slug, "kind": "schema"})
                        ["result"]["apps"] if a["models"] > 0):
                assert app in texts, (app, texts[:2000])
        # exported again with the same data: the same bytes, the file not even rewritten
        st = os.stat(path)
        done2, ready2 = export(tree, rpc, slug, template)
        assert read_bytes(path) == raw and ready2["sha256"] == ready["sha256"]
        assert os.stat(path).st_ino == st.st_ino and os.stat(path).st_mtime_ns == st.st_mtime_ns
        assert any(l.startswith("Unchanged ") for l in all_lines(rpc, done2["id"])), all_lines(rpc, done2["id"])
    # the directory and the files are private to the user
    d = os.path.join(data_lab_root(tree), slug)
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    assert sorted(os.listdir(d)) == sorted(t + ".ipynb" for t in TEMPLATES), os.listdir(d)


def test_the_digest_follows_the_data(tree, daemon):
    rpc = connect(tree.socket_path)
    w = add_sample(tree, rpc, "atlas")
    _, first = export(tree, rpc, "atlas", "task-history")
    nb1 = nbformat.read(first["file"], as_version=4)
    watch = RunWatch(tree)
    run = start(rpc, "atlas", "check")
    watch.finished(run["id"], EXPORT_TIMEOUT)
    watch.close()
    _, second = export(tree, rpc, "atlas", "task-history")
    nb2 = nbformat.read(second["file"], as_version=4)
    assert second["sha256"] != first["sha256"]
    assert nb2.metadata.djdesk.data_sha256 != nb1.metadata.djdesk.data_sha256
    # only the data cell changed; the ids stay
    assert [c.id for c in nb1.cells] == [c.id for c in nb2.cells]
    changed = [i for i, (a, b) in enumerate(zip(nb1.cells, nb2.cells)) if a.source != b.source]
    assert len(changed) == 1, changed
    # the export runs themselves are not task history
    data = nb2.cells[changed[0]].source
    assert '"preset": "check"' in data and '"preset": "task-history"' not in data
    listed = rpc.call("run.list", {"workspace": "atlas"})["runs"]
    assert [r["kind"] for r in listed].count("export") == 2, listed


def test_export_needs_a_completed_scan(tree, daemon):
    rpc = connect(tree.socket_path)
    add_sample(tree, rpc, "polls", seed_scans=False)
    done, _ = export(tree, rpc, "polls", "schema-audit", ok=False)
    assert "no schema scan" in done["error"], done
    assert not os.path.exists(os.path.join(data_lab_root(tree), "polls", "schema-audit.ipynb"))
    # a template that needs no scan works
    export(tree, rpc, "polls", "task-history")


# ---------------------------------------------------------------------------------------------------------
# writing safely


def test_a_failed_export_leaves_the_previous_file(tree):
    # As root, file permissions bind only without CAP_DAC_OVERRIDE: the writer then runs without it (the real
    # djdesk-export, started through setpriv by a two-line script given as the export helper).
    env = {}
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if not setpriv:
            pytest.skip("running as root without setpriv")
        helper = os.path.join(tree.root, "export-unprivileged")
        with open(helper, "w") as f:
            f.write(f'#!/bin/sh\nexec {setpriv} --bounding-set -dac_override,-dac_read_search -- '
                    f'{EXPORT_HELPER} "$@"\n')
        os.chmod(helper, 0o755)
        env["DJDESK_EXPORT"] = helper
    tree.start(env=env)
    rpc = connect(tree.socket_path)
    add_sample(tree, rpc, "polls")
    _, ready = export(tree, rpc, "polls", "task-history")
    before = read_bytes(ready["file"])
    d = os.path.dirname(ready["file"])
    watch = RunWatch(tree)
    run = start(rpc, "polls", "check")   # new data: the next export must write
    watch.finished(run["id"], EXPORT_TIMEOUT)
    watch.close()
    os.chmod(d, 0o500)
    try:
        done, _ = export(tree, rpc, "polls", "task-history", ok=False)
        assert "Permission denied" in done["error"] or any("Permission denied" in l
                                                           for l in all_lines(rpc, done["id"])), done
        assert read_bytes(ready["file"]) == before
        assert os.listdir(d) == ["task-history.ipynb"], os.listdir(d)   # no temporary left behind
    finally:
        os.chmod(d, 0o700)
    _, again = export(tree, rpc, "polls", "task-history")
    assert again["sha256"] != hashlib.sha256(before).hexdigest()


def test_a_symlinked_workspace_directory_is_refused(tree, daemon):
    rpc = connect(tree.socket_path)
    add_sample(tree, rpc, "polls")
    elsewhere = os.path.join(tree.root, "elsewhere")
    os.mkdir(elsewhere)
    os.makedirs(data_lab_root(tree), exist_ok=True)   # the daemon made it, to watch it
    os.symlink(elsewhere, os.path.join(data_lab_root(tree), "polls"))
    done, _ = export(tree, rpc, "polls", "task-history", ok=False)
    assert "symbolic link" in " ".join(all_lines(rpc, done["id"])), all_lines(rpc, done["id"])
    assert os.listdir(elsewhere) == []
    e = refused(rpc, "export.list", {"workspace": "polls"})
    assert e["code"] == -32004, e
    e = refused(rpc, "export.preview", {"workspace": "polls", "name": "task-history"})
    assert e["code"] == -32004, e


@pytest.mark.parametrize("name", ["../polls", "..", "a/b", ".hidden", "", "x" * 65, "a\nb", "/etc/passwd"])
def test_names_cannot_leave_the_root(tree, daemon, name):
    rpc = connect(tree.socket_path)
    add_sample(tree, rpc, "polls", seed_scans=False)
    for method in ("export.preview", "export.remove"):
        e = refused(rpc, method, {"workspace": "polls", "name": name})
        assert e["code"] == -32602, (method, e)
    e = refused(rpc, "export.create", {"workspace": "polls", "template": name})
    assert e["code"] == -32001, e
    assert not os.path.exists(os.path.join(data_lab_root(tree), "polls"))


# ---------------------------------------------------------------------------------------------------------
# list, remove, preview


def test_list_remove_and_the_status_part(tree, daemon, validator):
    rpc = connect(tree.socket_path)
    add_sample(tree, rpc, "atlas")
    assert rpc.call("export.list", {"workspace": "atlas"})["notebooks"] == []
    watch = RunWatch(tree, topics=("workspace.changed",))
    _, ready = export(tree, rpc, "atlas", "migration-review")
    listed = rpc.call("export.list", {"workspace": "atlas"})
    assert listed["directory"] == os.path.join(data_lab_root(tree), "atlas")
    [nb] = listed["notebooks"]
    assert set(nb) == NOTEBOOK_KEYS, nb
    assert nb["slug"] == "migration-review" and nb["template"] == "migration-review", nb
    assert nb["file"] == ready["file"] and nb["sha256"] == ready["sha256"] and nb["size"] == ready["size"]
    assert nb["title"] == next(t["title"] for t in rpc.call("export.templates")["templates"]
                               if t["slug"] == "migration-review")
    # the status document shows it, and workspace.changed named data_lab
    watch.wait(lambda e: e["data"]["workspace"] == "atlas" and "data_lab" in e["data"]["parts"], 10,
               "workspace.changed naming data_lab")
    watch.close()
    status = status_doc(rpc, validator, "atlas")["data_lab"]   # validated against the JSON Schema
    assert status["notebooks"] == [nb], status
    assert [t["slug"] for t in status["templates"]] == TEMPLATES
    assert set(status["templates"][0]) == {"slug", "title", "description", "tags"}
    assert status["live_enabled"] is False

    # a notebook the user put there is listed too, without a template; other files are not
    d = os.path.dirname(ready["file"])
    mine = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# My own study\n\ntext")])
    nbformat.write(mine, os.path.join(d, "mine.ipynb"))
    with open(os.path.join(d, "notes.txt"), "w") as f:
        f.write("x")
    os.symlink(ready["file"], os.path.join(d, "link.ipynb"))
    listed = {n["slug"]: n for n in rpc.call("export.list", {"workspace": "atlas"})["notebooks"]}
    assert sorted(listed) == ["migration-review", "mine"], listed
    assert listed["mine"]["template"] is None and listed["mine"]["title"] == "My own study", listed["mine"]

    assert rpc.call("export.remove", {"workspace": "atlas", "name": "mine"})["removed"] == "mine"
    assert not os.path.exists(os.path.join(d, "mine.ipynb"))
    assert refused(rpc, "export.remove", {"workspace": "atlas", "name": "mine"})["code"] == -32001
    assert refused(rpc, "export.remove", {"workspace": "atlas", "name": "link"})["code"] == -32001
    assert os.path.exists(ready["file"])
    assert refused(rpc, "export.list", {"workspace": "nope"})["code"] == -32001
    assert refused(rpc, "export.create", {"workspace": "atlas", "template": "nope"})["code"] == -32001


def test_preview_is_safe_whatever_the_notebook_holds(tree, daemon):
    script_preset(tree, "hostile", HOSTILE_SRC)
    rpc = connect(tree.socket_path)
    rpc.call("preset.reload")
    name = "Atlas " + HOSTILE[0]
    w = add_sample(tree, rpc, "atlas", name=name)
    slug = w["slug"]
    watch = RunWatch(tree)
    run = start(rpc, slug, "hostile")
    assert watch.finished(run["id"], EXPORT_TIMEOUT)["status"] == "succeeded"
    watch.close()

    _, ready = export(tree, rpc, slug, "log-study")
    nb = check_canonical(ready["file"])
    src = "".join(c.source for c in nb.cells)
    assert HOSTILE[0] in src and HOSTILE[1] in src   # the data holds them...
    reply = rpc.call("export.preview", {"workspace": slug, "name": "log-study"})
    assert reply["file"] == ready["file"][:-len(".ipynb")] + ".html", reply
    page = check_safe_html(reply["file"])
    text = page.all_text()
    assert HOSTILE[0] in text and HOSTILE[1] in text   # ...and the page shows them as text
    assert name in text   # the workspace's name, in the title and the Markdown

    # executed, the outputs hold them too: still text
    execute(nb)
    nbformat.write(nb, os.path.join(os.path.dirname(ready["file"]), "executed.ipynb"))
    page = check_safe_html(rpc.call("export.preview", {"workspace": slug, "name": "executed"})["file"])
    assert page.all_text().count(HOSTILE[0]) >= 2


def test_preview_renders_tables_and_only_png_or_jpeg_images(tree, daemon):
    rpc = connect(tree.socket_path)
    add_sample(tree, rpc, "polls", seed_scans=False)
    d = os.path.join(data_lab_root(tree), "polls")
    os.makedirs(d, mode=0o700)
    png = base64.b64encode(png_1x1()).decode()
    svg = base64.b64encode(b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>").decode()
    md = ("# Study\n\n| app | models |\n|---|---:|\n| polls | 2 |\n| <b>x</b> | 3 |\n\n"
          "<script>alert(1)</script>\n\n[click](javascript:alert(1)) ![remote](http://example.com/x.png)\n")
    code = nbformat.v4.new_code_cell("print('<b>hi</b>')", execution_count=1, outputs=[
        nbformat.v4.new_output("stream", name="stdout", text="<script>alert(2)</script>\n"),
        nbformat.v4.new_output("display_data", data={"image/png": png, "text/plain": "<Figure>"}),
        nbformat.v4.new_output("display_data", data={"image/png": base64.b64encode(b"not a png").decode(),
                                                     "text/plain": "fake png"}),
        nbformat.v4.new_output("display_data", data={"image/svg+xml": svg, "text/plain": "an svg"}),
        nbformat.v4.new_output("display_data", data={"text/html": "<script>alert(3)</script>",
                                                     "text/plain": "html result"}),
        nbformat.v4.new_output("error", ename="ValueError", evalue="<bad>",
                               traceback=["\x1b[0;31mValueError\x1b[0m: <bad>"]),
    ])
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(md), code])
    nbformat.write(nb, os.path.join(d, "study.ipynb"))

    page = check_safe_html(rpc.call("export.preview", {"workspace": "polls", "name": "study"})["file"])
    assert len(page.named("table")) == 1 and len(page.named("th")) == 2 and len(page.named("td")) == 4
    imgs = page.named("img")
    assert [a["src"] for a in imgs] == ["#", "data:image/png;base64," + png], imgs   # the Markdown one loads nothing
    text = page.all_text()
    for s in ("<script>alert(1)</script>", "<script>alert(2)</script>", "<b>hi</b>", "<b>x</b>", "<bad>",
              "fake png", "an svg", "html result"):
        assert s in text, s
    assert "<script>alert(3)</script>" not in text   # text/html is not rendered, not even as text
    assert "\x1b" not in text and "[0;31m" not in text
    assert page.named("b") == []

    # not a notebook: a typed error, nothing written
    with open(os.path.join(d, "broken.ipynb"), "w") as f:
        f.write("{\"cells\": 3}")
    e = refused(rpc, "export.preview", {"workspace": "polls", "name": "broken"})
    assert e["code"] == -32602 and "broken.ipynb" in e["message"], e
    assert not os.path.exists(os.path.join(d, "broken.html"))
    assert refused(rpc, "export.preview", {"workspace": "polls", "name": "absent"})["code"] == -32001


@pytest.mark.parametrize("root_kind", ["default", "symlink"])
def test_notebooks_saved_or_removed_by_others_are_announced(tree, validator, root_kind):
    # Nobody lists anything here: the daemon watches the Data Lab root, so a notebook saved by Jupyter (a
    # hidden temporary renamed into place) or removed by hand reaches the status document and
    # workspace.changed by itself. The root itself may be a symbolic link (DJDESK_DATA_LAB_ROOT).
    env = {}
    if root_kind == "symlink":
        target = os.path.join(tree.root, "lab-elsewhere")
        os.mkdir(target, 0o700)
        env["DJDESK_DATA_LAB_ROOT"] = os.path.join(tree.root, "lab-link")
        os.symlink(target, env["DJDESK_DATA_LAB_ROOT"])
    tree.start(env=env)
    rpc = connect(tree.socket_path)
    add_sample(tree, rpc, "polls", seed_scans=False)
    root = env.get("DJDESK_DATA_LAB_ROOT") or data_lab_root(tree)
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o700
    watch = RunWatch(tree, topics=("workspace.changed",))

    def changed_after(seq, what):
        return watch.wait(lambda e: e["data"]["workspace"] == "polls" and "data_lab" in e["data"]["parts"]
                          and e["data"]["seq"] > seq, 10, what)

    try:
        seq = status_doc(rpc, validator, "polls")["seq"]
        d = os.path.join(root, "polls")
        os.makedirs(d, mode=0o700)
        tmp = os.path.join(d, ".~mine.ipynb")
        nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Mine\n\nBy hand.")]), tmp)
        os.rename(tmp, os.path.join(d, "mine.ipynb"))
        seq = changed_after(seq, "the saved notebook announced")["data"]["seq"]
        nbs = status_doc(rpc, validator, "polls")["data_lab"]["notebooks"]
        assert [(n["slug"], n["title"], n["template"]) for n in nbs] == [("mine", "Mine", None)], nbs
        assert nbs[0]["sha256"] == hashlib.sha256(read_bytes(os.path.join(d, "mine.ipynb"))).hexdigest()

        os.unlink(os.path.join(d, "mine.ipynb"))
        changed_after(seq, "the removed notebook announced")
        assert status_doc(rpc, validator, "polls")["data_lab"]["notebooks"] == []
    finally:
        watch.close()


def test_a_stuck_preview_writer_is_stopped_after_the_timeout(tree):
    # A writer that ignores SIGTERM and never finishes (a stand-in for a hung djdesk-export): the call is
    # answered with a typed error after the tasks' timeout, the writer's whole group is SIGKILLed after the
    # grace period, and the daemon answers other calls meanwhile.
    pidfile = os.path.join(tree.root, "stuck.pid")
    helper = os.path.join(tree.root, "export-stuck")
    with open(helper, "w") as f:
        f.write(f"#!/bin/sh\ntrap '' TERM\necho $$ > {pidfile}\nwhile :; do sleep 0.1; done\n")
    os.chmod(helper, 0o755)
    tree.write_config("[tasks]\ntimeout_sec = 1\ncancel_grace_sec = 1\n")
    d = tree.start(env={"DJDESK_EXPORT": helper, "DJDESK_LOG_LEVEL": "debug"})
    rpc = connect(tree.socket_path)
    add_sample(tree, rpc, "polls", seed_scans=False)
    nb_dir = os.path.join(data_lab_root(tree), "polls")
    os.makedirs(nb_dir, mode=0o700)
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Hi")]),
                   os.path.join(nb_dir, "hi.ipynb"))

    outcome = {}
    def preview():
        t0 = time.monotonic()
        try:
            outcome["reply"] = connect(tree.socket_path).call("export.preview", {"workspace": "polls", "name": "hi"})
        except RpcError as e:
            outcome["error"] = e.error
        outcome["took"] = time.monotonic() - t0
    caller = threading.Thread(target=preview, daemon=True)
    caller.start()
    wait_until(lambda: os.path.exists(pidfile) and os.path.getsize(pidfile) > 0, 10, "the writer started")
    pgid = int(read_bytes(pidfile))
    assert rpc.call("export.list", {"workspace": "polls"})["notebooks"]   # the loop is not blocked
    caller.join(timeout=20)
    assert not caller.is_alive()
    assert "error" in outcome, outcome
    assert outcome["error"]["code"] == -32603, outcome
    assert "timed out after 1 s" in outcome["error"]["message"] and "hi.ipynb" in outcome["error"]["message"]
    assert 1.8 <= outcome["took"] < 8.0, outcome   # 1 s, then 1 s of grace: SIGTERM is ignored
    assert group_members(pgid) == []
    d.wait_stderr(rf"process {pgid} did not stop in time, sending SIGKILL")
    assert not os.path.exists(os.path.join(nb_dir, "hi.html"))


# ---------------------------------------------------------------------------------------------------------
# D-Bus


@pytest.mark.skipif(not have_bus(), reason="no session bus")
def test_dbus_export_and_list(tree, daemon):
    rpc = connect(tree.socket_path)
    add_sample(tree, rpc, "polls")
    obj = "/io/djdesk/Desk1/workspace/polls"
    watch = RunWatch(tree, topics=("run.finished", "export.ready"))
    out = busctl("call", "io.djdesk.Desk1", obj, "io.djdesk.Desk1.Workspace", "Export", "s",
                 "schema-audit").stdout
    kind, run_id, path = out.split()
    assert kind == "to" and path == f'"/io/djdesk/Desk1/run/{run_id}"', out
    done = watch.finished(int(run_id), EXPORT_TIMEOUT)
    assert done["status"] == "succeeded" and done["kind"] == "export", done
    watch.wait(lambda e: e["topic"] == "export.ready" and e["data"]["run"] == int(run_id), EXPORT_TIMEOUT,
               "export.ready")
    watch.close()
    reply = busctl_json("call", "io.djdesk.Desk1", obj, "io.djdesk.Desk1.Workspace", "ListExports")
    listed = json.loads(reply["data"][0])
    assert [n["slug"] for n in listed["notebooks"]] == ["schema-audit"], listed
    p = busctl("call", "io.djdesk.Desk1", obj, "io.djdesk.Desk1.Workspace", "Export", "s", "nope", check=False)
    assert p.returncode != 0 and "no Data Lab template 'nope'" in p.stderr, p.stderr
