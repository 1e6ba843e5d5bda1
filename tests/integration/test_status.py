# SPDX-License-Identifier: MIT
"""The workspace status document (workspace.status) and workspace.changed, black box: every document read
is validated against docs/workspace-status.schema.json; seq grows by one per workspace.changed and equals
the document's; the document is cached (two reads without a change are the same); the server, tasks,
log_excerpt, activity, docs and data_lab parts follow the daemon; the state is seeded from the store after a
restart; and, from the scans, insights/apps/schema of the atlas sample match samples/README.md. Real
daemon, real Django (/usr/bin/python3), real child processes, private bus."""

import datetime
import json
import os
import re
import time

import pytest

from conftest import DJANGO_PYTHON, SOURCE_ROOT, connect
from runtools import (RUN_TIMEOUT, RunWatch, echo_preset, parse_iso, refused, script_preset, start,
                      write_preset)
from servertools import START_TIMEOUT, add_workspace

try:
    import jsonschema
except ImportError:  # pragma: no cover - python3-jsonschema is a test dependency
    jsonschema = None

SCHEMA_PATH = os.path.join(SOURCE_ROOT, "docs", "workspace-status.schema.json")
INSIGHT_KEYS = ["pending_migrations", "models", "apps", "check_warnings", "check_errors", "last_run",
                "server_uptime"]
PARTS = ["workspace", "server", "insights", "apps", "schema", "activity", "log_excerpt", "scans", "tasks",
         "docs", "data_lab"]
DATA_LAB_TEMPLATES = ["log-study", "migration-review", "schema-audit", "task-history"]
PUBLISH_INTERVAL = 0.2   # STATUS_PUBLISH_INTERVAL_USEC
SCAN_TIMEOUT = 90.0

# A script printing N numbered lines ("line 1" ... "line N"), the last one on stderr with "Error:".
# With a pause every 8 lines: several run.log batches (they are flushed every 100 ms).
LINES_SRC = """\
import sys, time
n = int(sys.argv[1])
for i in range(1, n):
    print("line", i, flush=True)
    if i % 8 == 0:
        time.sleep(0.15)
print("ValueError: line", n, file=sys.stderr, flush=True)
"""


@pytest.fixture(scope="module")
def validator():
    if jsonschema is None:
        pytest.skip("python3-jsonschema is not installed")
    with open(SCHEMA_PATH) as f:
        schema = json.load(f)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def check_data_lab(part, live):
    """A workspace with nothing exported: the shipped templates, no notebooks, live_enabled from the flag."""
    assert [t["slug"] for t in part["templates"]] == DATA_LAB_TEMPLATES, part
    assert part["notebooks"] == [] and part["live_enabled"] is live, part


def status(rpc, validator, slug):
    """workspace.status, validated against the JSON Schema."""
    doc = rpc.call("workspace.status", {"workspace": slug})
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    assert not errors, "the document does not validate:\n" + "\n".join(
        f"  at {'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors[:20])
    assert [i["key"] for i in doc["insights"]] == INSIGHT_KEYS
    return doc


class Changes:
    """A connection subscribed to workspace.changed (plus the topics given); checks that seq grows by one
    per event of a workspace, and that parts are known, unique and in order."""

    def __init__(self, tree, topics=("run.finished", "scan.*")):
        self.watch = RunWatch(tree, topics=("workspace.changed",) + tuple(topics))
        self.last_seq = {}
        self.times = {}

    def close(self):
        self.watch.close()

    def _check(self, e):
        if e["topic"] != "workspace.changed" or e.get("_checked"):
            return
        e["_checked"] = True
        d = e["data"]
        assert set(d) == {"workspace", "seq", "parts"}, d
        assert d["parts"] and d["parts"] == [p for p in PARTS if p in d["parts"]], d
        slug = d["workspace"]
        if slug in self.last_seq:
            assert d["seq"] == self.last_seq[slug] + 1, (self.last_seq[slug], d)
        self.last_seq[slug] = d["seq"]
        self.times.setdefault(slug, []).append(parse_iso(e["time"]))

    def wait(self, slug, part=None, pred=None, timeout=RUN_TIMEOUT):
        """The next workspace.changed of slug (with part in its parts) that was not returned yet."""
        def match(e):
            if e["topic"] != "workspace.changed":
                return False
            self._check(e)
            d = e["data"]
            return (not e.get("_taken") and d["workspace"] == slug and (part is None or part in d["parts"])
                    and (pred is None or pred(d)))
        e = self.watch.wait(match, timeout, f"workspace.changed of {slug} with {part}")
        # Every earlier one is taken too: the next wait looks only at what came after.
        for o in self.watch.seen:
            if o["topic"] == "workspace.changed":
                self._check(o)
                o["_taken"] = True
            if o is e:
                break
        self.last_time = parse_iso(e["time"])
        return e["data"]

    def sync(self):
        self.watch.sync()
        for e in self.watch.seen:
            self._check(e)

    def take_all(self):
        """Marks every workspace.changed read so far as taken: wait() looks only at what comes next."""
        for e in self.watch.seen:
            if e["topic"] == "workspace.changed":
                self._check(e)
                e["_taken"] = True

    def topic(self, topic, pred=lambda d: True, timeout=RUN_TIMEOUT):
        """The first event of another topic (scan.finished...) satisfying pred, read or to come."""
        return self.watch.wait(lambda e: e["topic"] == topic and pred(e["data"]), timeout, topic)["data"]

    def events(self, slug):
        self.sync()
        return [e["data"] for e in self.watch.seen
                if e["topic"] == "workspace.changed" and e["data"]["workspace"] == slug]


def settle(changes, rpc, validator, slug, quiet=0.6):
    """Waits until no workspace.changed of slug came for `quiet` seconds; returns the document then (its
    seq is the last event's), every event read so far taken."""
    n = -1
    while True:
        time.sleep(quiet)
        events = changes.events(slug)
        if len(events) == n:
            doc = status(rpc, validator, slug)
            assert doc["seq"] == (events[-1]["seq"] if events else 0), (doc["seq"], events[-1:])
            changes.take_all()
            return doc
        n = len(events)


def quiet(changes, slug, seconds=0.6):
    """Asserts no workspace.changed of slug comes within `seconds`."""
    n = len(changes.events(slug))
    time.sleep(seconds)
    later = changes.events(slug)
    assert len(later) == n, f"unexpected workspace.changed: {later[n:]}"


def boot(tree, env=None, sample="polls", config=None, seed_scans=False):
    """The daemon (presets written before) and one workspace; returns (rpc, changes, slug)."""
    if config is not None:
        tree.write_config(config)
    tree.start(env=env)
    changes = Changes(tree)
    rpc = connect(tree.socket_path, timeout=RUN_TIMEOUT)
    path = tree.copy_sample(sample)
    w = add_workspace(rpc, path, seed_scans=seed_scans)
    return rpc, changes, w["slug"]


def server_status(rpc, slug):
    """server.status without its "workspace" key: the document's server part."""
    st = rpc.call("server.status", {"workspace": slug})
    st.pop("workspace", None)
    return st


# ---------------------------------------------------------------------------------------------------------
# the document


def test_document_of_a_new_workspace_validates_and_is_cached(tree, validator):
    rpc, changes, slug = boot(tree)
    doc = status(rpc, validator, slug)
    w = rpc.call("workspace.get", {"workspace": slug})
    assert (doc["workspace"], doc["name"], doc["path"]) == (slug, w["name"], w["path"])
    assert doc["django_version"] == w["django_version"]
    assert doc["server"] == server_status(rpc, slug)
    assert doc["server"]["state"] == "stopped"
    assert doc["tasks"] == [] and doc["log_excerpt"] == []
    assert [a["kind"] for a in doc["activity"]] == ["workspace.added"]
    assert doc["activity"][0]["detail"] == w["path"]
    check_data_lab(doc["data_lab"], live=False)
    last_run = doc["insights"][INSIGHT_KEYS.index("last_run")]
    assert (last_run["value"], last_run["severity"]) == ("none", "info")
    uptime = doc["insights"][INSIGHT_KEYS.index("server_uptime")]
    assert (uptime["value"], uptime["since"]) == ("stopped", None)
    # seed_scans false: nothing scanned, so the scan insights are unknown and the scan parts empty
    for key in INSIGHT_KEYS[:5]:
        i = doc["insights"][INSIGHT_KEYS.index(key)]
        assert (i["value"], i["severity"]) == ("unknown", "info"), i
    assert doc["scans"] == [] and doc["apps"] == [] and doc["schema"] == {"nodes": [], "connections": []}

    # the workspace.added activity and the docs (computed off the request path) are announced; the
    # activity only when the document read above did not show it yet (that read may come first)
    e = changes.wait(slug)
    assert e["seq"] == 1 and e["parts"] in (["activity", "docs"], ["docs"]), e
    doc = settle(changes, rpc, validator, slug)
    assert doc["seq"] == changes.last_seq[slug]
    parse_iso(doc["updated_at"])

    # nothing changed: the same document, seq and all (several times, and from another connection)
    again = status(rpc, validator, slug)
    assert again == doc
    with connect(tree.socket_path) as other:
        assert other.call("workspace.status", {"workspace": slug}) == doc
    quiet(changes, slug)
    assert status(rpc, validator, slug) == doc
    assert changes.events(slug)[-1]["seq"] == doc["seq"]
    # the D-Bus-side text form is the same document (djdeskctl status --json prints it)
    out = tree.ctl("status", slug, "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == doc


def test_unknown_workspace_and_bad_params(tree, validator):
    tree.start()
    with connect(tree.socket_path) as rpc:
        e = refused(rpc, "workspace.status", {"workspace": "nope"})
        assert e["code"] == -32001, e
        assert e["data"]["kind"] == "not_found" or e["data"].get("value") == "nope", e
        assert refused(rpc, "workspace.status", {})["code"] == -32602
        assert refused(rpc, "workspace.status", {"workspace": 3})["code"] == -32602
        assert refused(rpc, "workspace.status", {"workspace": "x", "extra": 1})["code"] == -32602


def test_workspace_update_publishes_the_workspace_part(tree, validator):
    rpc, changes, slug = boot(tree)
    before = settle(changes, rpc, validator, slug)
    rpc.call("workspace.update", {"workspace": slug, "name": "Renamed Polls"})
    e = changes.wait(slug, "workspace")
    assert e["parts"] == ["workspace"], e  # the name only: the server part did not change
    assert e["seq"] == before["seq"] + 1
    doc = status(rpc, validator, slug)
    assert doc["seq"] == e["seq"] and doc["name"] == "Renamed Polls"
    assert parse_iso(doc["updated_at"]) >= parse_iso(before["updated_at"])


# ---------------------------------------------------------------------------------------------------------
# runs: tasks, log excerpt, activity, last run


def test_run_finished_publishes_tasks_and_the_document_follows(tree, validator):
    echo_preset(tree)
    rpc, changes, slug = boot(tree)
    settle(changes, rpc, validator, slug)
    run = start(rpc, slug, "echo", {"text": "hello-status"})
    e = changes.wait(slug, "tasks", pred=lambda d: True)
    finished = changes.watch.finished(run["id"])
    assert finished["status"] == "succeeded"
    # the event announcing the finished run (it may be the first one, when queued..finished coalesced)
    e = changes.wait(slug, "insights") if "insights" not in e["parts"] else e
    assert {"tasks", "insights", "activity"} <= set(e["parts"]), e
    doc = status(rpc, validator, slug)
    assert doc["seq"] >= e["seq"]
    doc = settle(changes, rpc, validator, slug)
    assert doc["seq"] == changes.last_seq[slug]

    assert [t["id"] for t in doc["tasks"]] == [run["id"]]
    task = doc["tasks"][0]
    assert task == rpc.call("run.get", {"id": run["id"]})
    assert task["status"] == "succeeded"

    assert doc["activity"][0]["kind"] == "run.finished"
    assert doc["activity"][0]["severity"] == "ok"
    assert doc["activity"][0]["timestamp"] == task["finished_at"]
    last_run = doc["insights"][INSIGHT_KEYS.index("last_run")]
    assert (last_run["value"], last_run["severity"]) == ("succeeded", "ok")
    assert task["finished_at"] in last_run["caption"]

    src = f"run:{run['id']}"
    lines = [(l["message"], l["source"]) for l in doc["log_excerpt"]]
    assert ("hello-status", src) in lines, lines


def test_every_change_bumps_seq_by_one_and_publishes_are_coalesced(tree, validator):
    echo_preset(tree)
    rpc, changes, slug = boot(tree)
    settle(changes, rpc, validator, slug)
    ids = [start(rpc, slug, "echo", {"text": f"n{i}"})["id"] for i in range(6)]
    for i in ids:
        changes.watch.finished(i)
    doc = settle(changes, rpc, validator, slug)
    events = changes.events(slug)   # checked: seq +1 each
    assert doc["seq"] == events[-1]["seq"] == len(events)
    # 6 runs make 18 run events, but at most one workspace.changed per 200 ms per workspace
    times = changes.times[slug]
    gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:])]
    assert all(g >= PUBLISH_INTERVAL - 0.02 for g in gaps), gaps
    assert len(events) < 18


def test_a_burst_of_changes_makes_one_event(tree, validator):
    echo_preset(tree)
    rpc, changes, slug = boot(tree)
    before = settle(changes, rpc, validator, slug)
    rpc.call("workspace.update", {"workspace": slug, "name": "First"})
    e1 = changes.wait(slug, "workspace")      # after a quiet time: published at once
    t1 = changes.last_time
    assert e1["seq"] == before["seq"] + 1
    # within the next 200 ms: three changes of different parts
    rpc.call("workspace.update", {"workspace": slug, "name": "Second"})
    run = start(rpc, slug, "echo", {"text": "burst"})
    rpc.call("workspace.update", {"workspace": slug, "name": "Third"})
    fast = (datetime.datetime.now(datetime.timezone.utc) - t1).total_seconds() < PUBLISH_INTERVAL * 0.75
    e2 = changes.wait(slug)
    t2 = changes.last_time
    assert e2["seq"] == e1["seq"] + 1
    assert (t2 - t1).total_seconds() >= PUBLISH_INTERVAL - 0.02, (t1, t2)
    if fast:   # (a very slow machine may have needed more than the interval for the three calls)
        assert {"workspace", "tasks"} <= set(e2["parts"]), e2
    changes.watch.finished(run["id"])
    doc = settle(changes, rpc, validator, slug)
    assert doc["name"] == "Third" and [t["id"] for t in doc["tasks"]] == [run["id"]]


def test_tasks_are_the_five_newest_runs_newest_first(tree, validator):
    echo_preset(tree)
    rpc, changes, slug = boot(tree)
    ids = [start(rpc, slug, "echo", {"text": f"r{i}"})["id"] for i in range(7)]
    for i in ids:
        changes.watch.finished(i)
    doc = settle(changes, rpc, validator, slug)
    assert [t["id"] for t in doc["tasks"]] == sorted(ids, reverse=True)[:5]
    assert all(t["status"] == "succeeded" for t in doc["tasks"])
    assert doc["tasks"] == [rpc.call("run.get", {"id": i}) for i in sorted(ids, reverse=True)[:5]]
    assert [a["kind"] for a in doc["activity"]] == ["run.finished"] * 7 + ["workspace.added"]
    finished = {i: rpc.call("run.get", {"id": i})["finished_at"] for i in ids}
    assert [a["timestamp"] for a in doc["activity"][:7]] == sorted(finished.values(), reverse=True)

    # the activity keeps the newest 20 entries
    more = [start(rpc, slug, "echo", {"text": f"m{i}"})["id"] for i in range(14)]
    for i in more:
        changes.watch.finished(i)
    doc = settle(changes, rpc, validator, slug)
    assert len(doc["activity"]) == 20
    assert [a["kind"] for a in doc["activity"]] == ["run.finished"] * 20
    assert [t["id"] for t in doc["tasks"]] == sorted(more, reverse=True)[:5]


def test_log_excerpt_shows_the_last_lines_of_a_run(tree, validator):
    script_preset(tree, "lines", LINES_SRC, ["{n}"], params={"n": {"regex": "[0-9]+", "default": "30"}})
    rpc, changes, slug = boot(tree)
    run = start(rpc, slug, "lines")
    assert changes.watch.finished(run["id"])["status"] == "succeeded"
    doc = settle(changes, rpc, validator, slug)
    excerpt = doc["log_excerpt"]
    assert len(excerpt) == 20
    assert [l["message"] for l in excerpt] == [f"line {i}" for i in range(11, 30)] + ["ValueError: line 30"]
    assert {l["source"] for l in excerpt} == {f"run:{run['id']}"}
    assert excerpt[-1]["level"] == "error" and excerpt[0]["level"] == "info"
    stamps = [parse_iso(l["timestamp"]) for l in excerpt]
    assert stamps == sorted(stamps)


def test_state_is_seeded_from_the_store_after_a_restart(tree, validator):
    script_preset(tree, "lines", LINES_SRC, ["{n}"], params={"n": {"regex": "[0-9]+", "default": "25"}})
    echo_preset(tree)
    rpc, changes, slug = boot(tree)
    first = start(rpc, slug, "echo")
    changes.watch.finished(first["id"])
    run = start(rpc, slug, "lines")
    changes.watch.finished(run["id"])
    before = settle(changes, rpc, validator, slug)
    rpc.close()
    changes.close()
    tree.daemons[-1].stop()

    tree.start()
    with connect(tree.socket_path) as rpc:
        doc = status(rpc, validator, slug)
        assert doc["seq"] == 0
        assert doc["tasks"] == before["tasks"]
        assert doc["log_excerpt"] == before["log_excerpt"]
        assert [a["kind"] for a in doc["activity"]] == ["run.finished", "run.finished", "workspace.added"]
        assert [a["timestamp"] for a in doc["activity"][:2]] == [run_["finished_at"] for run_ in before["tasks"]]
        assert doc["insights"][INSIGHT_KEYS.index("last_run")] == \
            before["insights"][INSIGHT_KEYS.index("last_run")]


# ---------------------------------------------------------------------------------------------------------
# the server part


def test_server_part_follows_start_and_stop(tree, validator):
    rpc, changes, slug = boot(tree)
    settle(changes, rpc, validator, slug)
    rpc.timeout = START_TIMEOUT
    st = rpc.call("server.start", {"workspace": slug})
    assert st["state"] == "ready"
    e = changes.wait(slug, "server", pred=lambda d: True)
    doc = settle(changes, rpc, validator, slug)
    assert doc["server"] == server_status(rpc, slug)
    assert doc["server"]["state"] == "ready" and doc["server"]["url"] == st["url"]
    uptime = doc["insights"][INSIGHT_KEYS.index("server_uptime")]
    assert (uptime["value"], uptime["severity"]) == ("running", "ok")
    assert uptime["since"] == doc["server"]["ready_at"] and uptime["caption"] == f"since {uptime['since']}"
    # (a server that migrated on start also has its migrations scanned again: a scan.finished entry)
    server_activity = [a for a in doc["activity"] if a["kind"] == "server.state"]
    assert [a["title"] for a in server_activity] == ["Server ready"], doc["activity"]
    assert server_activity[0]["detail"] == st["url"] and server_activity[0]["severity"] == "ok"
    assert any(l["source"] == "server" for l in doc["log_excerpt"]), doc["log_excerpt"]
    assert e["seq"] >= 1

    # a request: its line (a 404: a warning) reaches the excerpt, announced as log_excerpt only
    import urllib.error
    import urllib.request
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(st["url"] + "no-such-page-status", timeout=10)  # noqa: S310
    assert err.value.code == 404
    err.value.close()
    e = changes.wait(slug, "log_excerpt", pred=lambda d: d["seq"] > doc["seq"])
    assert e["parts"] == ["log_excerpt"], e
    doc = settle(changes, rpc, validator, slug)
    line = [l for l in doc["log_excerpt"] if "no-such-page-status" in l["message"]]
    assert line and line[-1]["source"] == "server" and line[-1]["level"] == "warning", doc["log_excerpt"]

    # cached while nothing changes, even though the server is up (no value depends on the time)
    quiet(changes, slug)
    assert status(rpc, validator, slug) == doc

    rpc.call("server.stop", {"workspace": slug})
    changes.wait(slug, "server", pred=lambda d: d["seq"] > doc["seq"])
    doc = settle(changes, rpc, validator, slug)
    assert doc["server"]["state"] == "stopped"
    assert [a["title"] for a in doc["activity"] if a["kind"] == "server.state"] == \
        ["Server stopped", "Server ready"], doc["activity"]
    uptime = doc["insights"][INSIGHT_KEYS.index("server_uptime")]
    assert (uptime["value"], uptime["since"]) == ("stopped", None)


# ---------------------------------------------------------------------------------------------------------
# docs and data lab


def django_docs_version():
    import subprocess
    out = subprocess.run([DJANGO_PYTHON, "-c", "import django; print(django.get_version())"],
                         capture_output=True, text=True, check=True).stdout.strip()
    return ".".join(out.split(".")[:2])


def docs_entry(doc, title):
    found = [d for d in doc["docs"] if d["title"] == title]
    assert len(found) == 1, (title, doc["docs"])
    return found[0]


def test_docs_point_at_local_docs_when_installed(tree, validator):
    docs_dir = os.path.join(tree.root, "django-docs")
    os.makedirs(os.path.join(docs_dir, "ref"))
    with open(os.path.join(docs_dir, "ref", "django-admin.html"), "w") as f:
        f.write("<html></html>")
    write_preset(tree, "testing-docs", ["{python}", "{manage}", "check"], label="Testing docs",
                 docs_url="https://docs.djangoproject.com/en/stable/topics/testing/#top", icon="x-test",
                 description="How to test")
    rpc, changes, slug = boot(tree, env={"DJDESK_DOCS_DIR": docs_dir})
    doc = settle(changes, rpc, validator, slug)
    check = docs_entry(doc, "Check project")
    assert check["url"] == f"file://{docs_dir}/ref/django-admin.html#check", check
    assert check["pane_target"] == "docs"
    assert check["icon"] == "dialog-information"
    presets = {p["key"]: p for p in rpc.call("preset.list")["presets"]}
    assert check["description"] == presets["check"]["description"]
    assert len(doc["docs"]) == len([p for p in presets.values() if p.get("docs_url")])
    migrate = docs_entry(doc, "Apply migrations")
    assert migrate["url"] == f"file://{docs_dir}/ref/django-admin.html#migrate", migrate
    # pages that are not installed locally go online
    testing = docs_entry(doc, "Testing docs")
    assert testing == {"title": "Testing docs", "icon": "x-test", "pane_target": "browser",
                       "description": "How to test",
                       "url": f"https://docs.djangoproject.com/en/{django_docs_version()}/topics/testing/#top"}


def test_docs_go_online_without_local_docs_and_follow_the_base_url(tree, validator):
    empty = os.path.join(tree.root, "no-docs")
    os.makedirs(empty)
    rpc, changes, slug = boot(tree, env={"DJDESK_DOCS_DIR": empty})
    doc = settle(changes, rpc, validator, slug)
    check = docs_entry(doc, "Check project")
    assert check["url"] == f"https://docs.djangoproject.com/en/{django_docs_version()}/ref/django-admin/#check"
    assert check["pane_target"] == "browser"
    rpc.close()
    changes.close()
    tree.daemons[-1].stop()

    tree.start(env={"DJDESK_DOCS_DIR": empty, "DJDESK_DOCS_URL": "https://mirror.example/django/{version}/"})
    with connect(tree.socket_path) as rpc:
        doc = status(rpc, validator, slug)
        check = docs_entry(doc, "Check project")
        assert check["url"] == f"https://mirror.example/django/{django_docs_version()}/ref/django-admin/#check"
        assert check["pane_target"] == "browser"


def test_preset_reload_recomputes_the_docs(tree, validator):
    empty = os.path.join(tree.root, "no-docs")
    os.makedirs(empty)
    rpc, changes, slug = boot(tree, env={"DJDESK_DOCS_DIR": empty})
    before = settle(changes, rpc, validator, slug)
    write_preset(tree, "with-docs", ["{python}", "{manage}", "check"], label="Docs test",
                 docs_url="https://docs.djangoproject.com/en/stable/topics/testing/", icon="x-test")
    rpc.call("preset.reload")
    e = changes.wait(slug, "docs")
    assert e["seq"] == before["seq"] + 1 and e["parts"] == ["docs"], e
    doc = status(rpc, validator, slug)
    entry = docs_entry(doc, "Docs test")
    assert entry["url"] == f"https://docs.djangoproject.com/en/{django_docs_version()}/topics/testing/"
    assert (entry["icon"], entry["pane_target"], entry["description"]) == ("x-test", "browser", "")
    assert [d for d in doc["docs"] if d != entry] == before["docs"]

    # a reload that changes nothing the document shows publishes nothing
    rpc.call("preset.reload")
    quiet(changes, slug)
    assert status(rpc, validator, slug) == doc


def test_config_reload_recomputes_the_docs_only_when_they_change(tree, validator):
    empty = os.path.join(tree.root, "no-docs")
    os.makedirs(empty)
    config = "[docs]\ndjango_url = https://one.example/{version}/\ndjango_dir = " + empty + "\n"
    rpc, changes, slug = boot(tree, config=config)
    before = settle(changes, rpc, validator, slug)
    version = django_docs_version()
    assert docs_entry(before, "Check project")["url"] == f"https://one.example/{version}/ref/django-admin/#check"

    rpc.call("daemon.reload")
    quiet(changes, slug)
    assert status(rpc, validator, slug) == before

    tree.write_config(config.replace("one.example", "two.example"))
    rpc.call("daemon.reload")
    e = changes.wait(slug, "docs")
    assert e["parts"] == ["docs"] and e["seq"] == before["seq"] + 1, e
    doc = status(rpc, validator, slug)
    assert doc["seq"] == e["seq"]
    assert docs_entry(doc, "Check project")["url"] == f"https://two.example/{version}/ref/django-admin/#check"
    assert all("one.example" not in d["url"] for d in doc["docs"])


@pytest.mark.parametrize("value,expected", [("1", True), ("yes", True), ("true", True), ("0", False),
                                            ("off", False), (None, False)])
def test_data_lab_live_follows_the_flag(tree, validator, value, expected):
    rpc, changes, slug = boot(tree, env={"DJDESK_FLAG_DATA_LAB_LIVE": value})
    doc = status(rpc, validator, slug)
    check_data_lab(doc["data_lab"], live=expected)


# ---------------------------------------------------------------------------------------------------------
# scans: insights, apps, schema, activity, docs of the atlas sample


ATLAS_MODELS = {
    "catalog.Instrument": [],
    "catalog.Sensor": [("instrument", "fk", "catalog.Instrument")],
    "alerts.AlertRule": [("sensor", "fk", "catalog.Sensor")],
    "alerts.Alert": [("rule", "fk", "alerts.AlertRule"), ("acknowledged_by", "fk", "auth.User")],
    "ledger.Reading": [("sensor", "fk", "catalog.Sensor")],
    "ledger.Batch": [("readings", "many_to_many", "ledger.Reading")],
    "ledger.Calibration": [("sensor", "one_to_one", "catalog.Sensor")],
}
ATLAS_MIGRATIONS = {"catalog": 1, "alerts": 1, "ledger": 2}   # the project's own migration files
KIND_TITLES = {"schema": "Schema", "migrations": "Migrations", "checks": "Checks"}


def wait_scanned(changes, rpc, validator, slug, timeout=SCAN_TIMEOUT, pred=None):
    """Waits until every kind has a finished scan in the document (and pred(doc)); returns the settled
    document."""
    deadline = time.monotonic() + timeout
    while True:
        doc = status(rpc, validator, slug)
        if (len(doc["scans"]) == 3 and all(s["status"] in ("completed", "failed") for s in doc["scans"]) and
                (pred is None or pred(doc))):
            return settle(changes, rpc, validator, slug)
        assert time.monotonic() < deadline, f"scans never finished: {doc['scans']}"
        try:
            changes.wait(slug, timeout=max(0.1, min(5.0, deadline - time.monotonic())))
        except AssertionError:
            pass


def insights_of(doc):
    return {i["key"]: i for i in doc["insights"]}


def boot_atlas(tree, validator, guides=True):
    """The daemon and the atlas sample (with a README and docs/ pages), added with its seed scans; returns
    (rpc, changes, slug, path, the document once the scans finished)."""
    tree.start()
    changes = Changes(tree)
    rpc = connect(tree.socket_path, timeout=RUN_TIMEOUT)
    path = tree.copy_sample("atlas")
    if guides:
        with open(os.path.join(path, "README.md"), "w") as f:
            f.write("Intro text\n\n# Atlas Telemetry Studio  \n\nMore.\n")
        os.makedirs(os.path.join(path, "docs"))
        with open(os.path.join(path, "docs", "sensors.md"), "w") as f:
            f.write("# Adding sensors\n")
        with open(os.path.join(path, "docs", "alerts.md"), "w") as f:
            f.write("no heading here\n")
        with open(os.path.join(path, "docs", "notes.txt"), "w") as f:
            f.write("# not a guide page\n")
    w = add_workspace(rpc, path)  # seed_scans defaults to true
    doc = wait_scanned(changes, rpc, validator, w["slug"])
    return rpc, changes, w["slug"], path, doc


def test_atlas_after_the_seed_scans(tree, validator):
    rpc, changes, slug, path, doc = boot_atlas(tree, validator)
    assert [s["kind"] for s in doc["scans"]] == ["schema", "migrations", "checks"]
    assert all(s["status"] == "completed" and s["trigger"] == "added" for s in doc["scans"]), doc["scans"]
    assert doc["scans"] == rpc.call("scan.list", {"workspace": slug})["scans"]
    assert doc["django_version"] == rpc.call("workspace.get", {"workspace": slug})["django_version"]
    insights = insights_of(doc)

    # schema: the 7 project models and their relations (across apps, to auth.User), contrib models badged
    nodes = {n["id"]: n for n in doc["schema"]["nodes"]}
    project = {i: n for i, n in nodes.items() if n["badge"] != "contrib"}
    assert set(project) == set(ATLAS_MODELS), sorted(project)
    assert all(n["id"] == f"{n['app']}.{n['name']}" for n in nodes.values())
    assert nodes["auth.User"]["badge"] == "contrib" and nodes["contenttypes.ContentType"]["badge"] == "contrib"
    conns = {(c["source"], c["field"], c["kind"], c["target"]) for c in doc["schema"]["connections"]}
    expected = {(m, f, k, t) for m, rels in ATLAS_MODELS.items() for f, k, t in rels}
    assert expected <= conns, expected - conns
    assert {c for c in conns if c[0] in ATLAS_MODELS} == expected
    assert {"id", "checksum", "readings"} <= set(nodes["ledger.Batch"]["fields"])
    assert int(insights["models"]["value"]) == len(nodes)
    assert insights["models"]["caption"] == f"7 in project apps, {len(conns)} relations"
    assert insights["models"]["severity"] == "info"

    # migrations: no database yet, so every migration is pending, per app
    apps = {a["label"]: a for a in doc["apps"]}
    assert [a["label"] for a in doc["apps"]][:3] == ["catalog", "alerts", "ledger"], doc["apps"]
    assert {"admin", "auth", "contenttypes", "sessions", "messages", "staticfiles"} <= set(apps)
    for label, n in ATLAS_MIGRATIONS.items():
        assert apps[label]["pending_migrations"] == n, apps[label]
        assert apps[label]["status"] == "pending"
    assert (apps["ledger"]["models"], apps["catalog"]["models"], apps["alerts"]["models"]) == (3, 2, 2)
    assert apps["staticfiles"] == {"label": "staticfiles", "models": 0, "pending_migrations": 0, "status": "ok"}
    total = sum(a["pending_migrations"] for a in doc["apps"])
    assert total > 4   # the contrib apps' too
    assert (insights["pending_migrations"]["value"], insights["pending_migrations"]["severity"]) == \
        (str(total), "warning")
    assert "not created" in insights["pending_migrations"]["caption"], insights["pending_migrations"]
    assert all(n["badge"] == "pending" for n in project.values())
    assert not os.path.exists(os.path.join(path, "db.sqlite3"))
    assert int(insights["apps"]["value"]) == len(doc["apps"])
    assert insights["apps"]["caption"] == f"3 project, {len(doc['apps']) - 3} django.contrib"

    # checks: the deliberate fields.W340 warning
    assert (insights["check_warnings"]["value"], insights["check_warnings"]["severity"]) == ("1", "warning")
    assert insights["check_warnings"]["caption"] == "fields.W340"
    assert (insights["check_errors"]["value"], insights["check_errors"]["severity"]) == ("0", "ok")

    # activity: the three scans (their summaries), after the workspace's addition
    scans = [a for a in doc["activity"] if a["kind"] == "scan.finished"]
    assert sorted(a["title"] for a in scans) == sorted(f"{t} scan completed" for t in KIND_TITLES.values())
    by_title = {a["title"]: a for a in scans}
    for s in doc["scans"]:
        entry = by_title[f"{KIND_TITLES[s['kind']]} scan completed"]
        assert (entry["detail"], entry["severity"], entry["timestamp"]) == (s["summary"], "ok",
                                                                          s["completed_at"])
    assert doc["activity"][-1]["kind"] == "workspace.added" and len(doc["activity"]) == 4
    assert doc["tasks"] == [] and doc["log_excerpt"] == []
    last_run = insights["last_run"]
    assert (last_run["value"], last_run["caption"]) == ("none", "no run yet")

    # docs: the project's guide pages first (README, then docs/*.md sorted), then the presets'
    guides = [d for d in doc["docs"] if d["url"].startswith(f"file://{path}/")]
    assert doc["docs"][:len(guides)] == guides
    assert [(g["url"], g["title"], g["pane_target"]) for g in guides] == [
        (f"file://{path}/README.md", "Atlas Telemetry Studio", "docs"),
        (f"file://{path}/docs/alerts.md", "alerts.md", "docs"),
        (f"file://{path}/docs/sensors.md", "Adding sensors", "docs"),
    ], guides

    # nothing changes any more: the same document, the same seq
    quiet(changes, slug)
    assert status(rpc, validator, slug) == doc


def test_rescan_with_the_same_results_names_only_scans_and_activity(tree, validator):
    rpc, changes, slug, path, before = boot_atlas(tree, validator, guides=False)
    started = rpc.call("scan.start", {"workspace": slug, "kind": "checks"})
    scan_id = started["scans"][0]["id"]
    changes.topic("scan.finished", lambda d: d["scan"]["id"] == scan_id, timeout=SCAN_TIMEOUT)
    doc = settle(changes, rpc, validator, slug)
    events = [e for e in changes.events(slug) if e["seq"] > before["seq"]]
    assert events and doc["seq"] == before["seq"] + len(events)
    parts = {p for e in events for p in e["parts"]}
    assert parts == {"activity", "scans"}, events
    for key in ("insights", "apps", "schema", "docs", "tasks", "server"):
        assert doc[key] == before[key], key
    checks = [s for s in doc["scans"] if s["kind"] == "checks"][0]
    assert (checks["id"], checks["status"], checks["trigger"]) == (scan_id, "completed", "request")
    assert doc["activity"][0]["title"] == "Checks scan completed"


def test_migrate_run_and_its_automatic_rescan(tree, validator):
    rpc, changes, slug, path, before = boot_atlas(tree, validator, guides=False)
    run = rpc.call("run.start", {"workspace": slug, "preset": "migrate", "confirm": True})
    finished = changes.watch.finished(run["id"])
    assert finished["status"] == "succeeded", finished
    # the automatic rescan (trigger "run") is seen as scan.finished events, one per kind
    rescans = {}
    for kind in ("schema", "migrations", "checks"):
        rescans[kind] = changes.topic(
            "scan.finished", lambda d, k=kind: d["scan"]["kind"] == k and d["scan"]["trigger"] == "run",
            timeout=SCAN_TIMEOUT)["scan"]
        assert rescans[kind]["status"] == "completed", rescans[kind]
    doc = wait_scanned(changes, rpc, validator, slug,
                       pred=lambda d: all(s["trigger"] == "run" for s in d["scans"]))
    insights = insights_of(doc)

    # nothing pending any more, ledger's status is its warning
    assert (insights["pending_migrations"]["value"], insights["pending_migrations"]["severity"]) == ("0", "ok")
    apps = {a["label"]: a for a in doc["apps"]}
    assert all(a["pending_migrations"] == 0 for a in doc["apps"])
    assert apps["ledger"]["status"] == "warning", apps["ledger"]
    assert apps["catalog"]["status"] == "ok" and apps["alerts"]["status"] == "ok"
    assert all(n["badge"] != "pending" for n in doc["schema"]["nodes"])
    assert doc["schema"] == {**before["schema"], "nodes": [dict(n, badge=None if n["badge"] == "pending"
                                                                else n["badge"]) for n in before["schema"]["nodes"]]}
    assert insights["check_warnings"] == insights_of(before)["check_warnings"]

    # the run: tasks, last_run, its log lines, its activity entry before the rescans'
    assert [t["id"] for t in doc["tasks"]] == [run["id"]]
    assert doc["tasks"][0] == rpc.call("run.get", {"id": run["id"]})
    last_run = insights["last_run"]
    assert (last_run["value"], last_run["severity"]) == ("succeeded", "ok")
    assert last_run["caption"] == f"Apply migrations, finished {finished['finished_at']}"
    src = f"run:{run['id']}"
    messages = [l["message"] for l in doc["log_excerpt"] if l["source"] == src]
    assert len(doc["log_excerpt"]) == 20 and len(messages) == 20
    assert re.match(r"^ *Applying \w+\.\d{4}_\w+\.\.\. OK$", messages[-1]), messages
    kinds = [a["kind"] for a in doc["activity"]]
    assert kinds[:4] == ["scan.finished"] * 3 + ["run.finished"], kinds
    assert doc["activity"][3]["title"] == "Apply migrations succeeded"
    assert doc["activity"][3]["timestamp"] == finished["finished_at"]
    assert len(doc["activity"]) == 8   # + the seed scans and workspace.added

    # the events after the run named what changed, seq one by one (checked by Changes)
    events = [e for e in changes.events(slug) if e["seq"] > before["seq"]]
    parts = {p for e in events for p in e["parts"]}
    assert {"tasks", "log_excerpt", "activity", "scans", "insights", "apps", "schema"} <= parts, events
    assert "docs" not in parts and "workspace" not in parts
    assert doc["seq"] == events[-1]["seq"]


def test_failed_scan_shows_its_error(tree, validator):
    tree.start()
    changes = Changes(tree)
    rpc = connect(tree.socket_path, timeout=RUN_TIMEOUT)
    path = tree.copy_sample("polls")
    with open(os.path.join(path, "mysite", "settings.py"), "a") as f:
        f.write("\nraise RuntimeError('settings are broken on purpose')\n")
    slug = add_workspace(rpc, path)["slug"]
    doc = wait_scanned(changes, rpc, validator, slug)
    assert all(s["status"] == "failed" for s in doc["scans"]), doc["scans"]
    for s in doc["scans"]:
        assert "settings are broken on purpose" in s["error"], s
    failed = [a for a in doc["activity"] if a["kind"] == "scan.finished"]
    assert sorted(a["title"] for a in failed) == sorted(f"{t} scan failed" for t in KIND_TITLES.values())
    assert all(a["severity"] == "error" and "settings are broken on purpose" in a["detail"] for a in failed)
    # nothing was ever scanned successfully: unknown, no apps, no graph
    for key in INSIGHT_KEYS[:5]:
        assert (insights_of(doc)[key]["value"], insights_of(doc)[key]["severity"]) == ("unknown", "info")
    assert doc["apps"] == [] and doc["schema"] == {"nodes": [], "connections": []}


def test_a_pending_scan_is_announced(tree, validator):
    """A scan waiting for a free probe slot ([tasks] max_parallel) shows as pending, announced."""
    tree.write_config("[tasks]\nmax_parallel = 1\n")
    tree.start()
    changes = Changes(tree)
    rpc = connect(tree.socket_path, timeout=RUN_TIMEOUT)
    slow = tree.copy_sample("polls", os.path.join(tree.home, "projects", "slow"))
    with open(os.path.join(slow, "mysite", "settings.py"), "a") as f:
        f.write("\nimport time\ntime.sleep(4)\n")
    slow = add_workspace(rpc, slow, seed_scans=False)["slug"]
    slug = add_workspace(rpc, tree.copy_sample("polls"), seed_scans=False)["slug"]
    before = settle(changes, rpc, validator, slug)
    rpc.call("scan.start", {"workspace": slow})
    changes.topic("scan.started", lambda d: d["workspace"] == slow)
    pending = rpc.call("scan.start", {"workspace": slug})["scans"]
    assert [s["status"] for s in pending] == ["pending"] * 3, pending
    # the slow probe still runs: only the status document can announce the pending records
    e = changes.wait(slug, "scans", timeout=2.0)
    assert e["seq"] == before["seq"] + 1
    doc = status(rpc, validator, slug)
    assert doc["scans"] == pending
    assert [s["status"] for s in rpc.call("scan.list", {"workspace": slow})["scans"]] == ["running"] * 3
