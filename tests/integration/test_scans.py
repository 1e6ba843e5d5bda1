# SPDX-License-Identifier: MIT
"""Scans, black box: the real daemon runs python/djdesk-probe (DJDESK_PROBE, set by conftest) in copies of the
samples with real Django (/usr/bin/python3). Covers the seed scans of workspace.add and sample.install, their
scan.started / scan.finished events, scan.start / list / get / result / cancel and their refusals, the
automatic rescans (a run of a "rescan" preset, a changed migration file, debounced), timeouts, cancelling, a
project that does not load, what a restart keeps, ids never reused, and that the probe never creates the
project's database."""

import json
import os
import time

import pytest

from conftest import DJANGO_PYTHON, connect
from runtools import RunWatch, echo_preset, parse_iso, refused, start, wait_gone, write_preset
from servertools import add_workspace

SCAN_TIMEOUT = 60.0      # a probe of a sample, request to scan.finished (ASan daemon: slower)
KINDS = ["schema", "migrations", "checks"]
RECORD_KEYS = {"id", "workspace", "kind", "status", "progress", "summary", "trigger", "requested_at", "started_at",
               "completed_at", "error"}
PROGRESS = {"pending": 0, "running": 10, "completed": 100, "failed": 100}
RESULT_KEYS = {
    "schema": {"django_version", "python_version", "apps", "models", "settings", "guides"},
    "migrations": {"database", "migrations"},
    "checks": {"checks"},
}
ATLAS_MODELS = {"catalog.Instrument", "catalog.Sensor", "alerts.AlertRule", "alerts.Alert", "ledger.Reading",
                "ledger.Batch", "ledger.Calibration"}
ATLAS_SECRET = "django-insecure-atlas-sample-not-secret-9d2e61b0c7f54a83"
SETTINGS = {"atlas": os.path.join("atlas", "settings.py"), "polls": os.path.join("mysite", "settings.py")}

# A migration of ledger that changes nothing; {after} is the one it follows.
MIGRATION_SRC = """\
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("ledger", "{after}")]
    operations = []
"""


# ---------------------------------------------------------------------------------------------------------
# helpers


def check_record(r, slug, kind=None, status=None, trigger=None):
    """The shape of a scan record, consistent with its status; returns it."""
    assert set(r) in (RECORD_KEYS, RECORD_KEYS | {"error_info"}), r
    assert isinstance(r["id"], int) and r["id"] > 0, r
    assert r["workspace"] == slug, r
    assert r["kind"] in KINDS and (kind is None or r["kind"] == kind), r
    assert status is None or r["status"] == status, r
    assert trigger is None or r["trigger"] == trigger, r
    st = r["status"]
    assert r["progress"] == PROGRESS[st], r
    requested = parse_iso(r["requested_at"])
    if st == "pending":
        assert r["started_at"] is None and r["completed_at"] is None, r
    if st == "running":
        assert parse_iso(r["started_at"]) >= requested and r["completed_at"] is None, r
    if st in ("running", "pending"):
        assert r["summary"] is None and r["error"] is None and "error_info" not in r, r
    if st == "completed":
        assert isinstance(r["summary"], str) and r["summary"], r
        assert r["error"] is None and "error_info" not in r, r
        assert parse_iso(r["started_at"]) >= requested, r
    if st == "failed":
        assert isinstance(r["error"], str) and r["error"], r
        assert r["summary"] is None, r
    if st in ("completed", "failed"):
        done = parse_iso(r["completed_at"])
        assert done >= requested, r
        if r["started_at"] is not None:
            assert done >= parse_iso(r["started_at"]), r
    return r


class ScanWatch(RunWatch):
    """A connection subscribed to scan.* and run.finished (subscribed before anything is requested)."""

    def __init__(self, tree, topics=("scan.*", "run.finished")):
        super().__init__(tree, topics=topics)

    def scan_events(self, slug=None, topic=None):
        return [e for e in self.seen if e["topic"].startswith("scan.") and
                (slug is None or e["data"]["workspace"] == slug) and (topic is None or e["topic"] == topic)]

    def finished(self, slug, kind=None, pred=None, timeout=SCAN_TIMEOUT):
        """The first scan.finished of slug (of kind, satisfying pred on the record), read or to come."""
        def match(e):
            if e["topic"] != "scan.finished" or e["data"]["workspace"] != slug:
                return False
            r = e["data"]["scan"]
            return (kind is None or r["kind"] == kind) and (pred is None or pred(r))
        e = self.wait(match, timeout, f"scan.finished of {slug} {kind or ''}")
        assert set(e["data"]) == {"workspace", "scan"}, e
        return check_record(e["data"]["scan"], slug)

    def finished_ids(self, slug, ids, timeout=SCAN_TIMEOUT):
        """The scan.finished records of these ids, {id: record}."""
        return {i: self.finished(slug, pred=lambda r, i=i: r["id"] == i, timeout=timeout) for i in ids}

    def started(self, slug, kind=None, pred=None, timeout=SCAN_TIMEOUT):
        def match(e):
            if e["topic"] != "scan.started" or e["data"]["workspace"] != slug:
                return False
            r = e["data"]["scan"]
            return (kind is None or r["kind"] == kind) and (pred is None or pred(r))
        e = self.wait(match, timeout, f"scan.started of {slug} {kind or ''}")
        assert set(e["data"]) == {"workspace", "scan"}, e
        return check_record(e["data"]["scan"], slug, status="running")

    def brief(self):
        return [(e["topic"], e["data"].get("workspace"),
                 *((e["data"]["scan"]["id"], e["data"]["scan"]["kind"], e["data"]["scan"]["status"],
                    e["data"]["scan"]["trigger"]) if "scan" in e["data"] else (e["data"].get("id"),)))
                for e in self.seen][-40:]

    def quiet(self, slug, seconds=1.0):
        """Asserts that no scan event of slug comes within `seconds` (after what was published before)."""
        self.sync()
        n = len(self.scan_events(slug))
        time.sleep(seconds)
        self.sync()
        later = self.scan_events(slug)[n:]
        assert not later, f"unexpected scan events: {[(e['topic'], e['data']['scan']) for e in later]}"


def boot(tree, config=None, env=None):
    """The daemon (config and presets written before) and a watch subscribed to scan.*; returns (rpc, watch)."""
    if config is not None:
        tree.write_config(config)
    tree.start(env=env)
    watch = ScanWatch(tree)
    rpc = connect(tree.socket_path, timeout=SCAN_TIMEOUT)
    return rpc, watch


def add(tree, rpc, sample="atlas", name=None, prepare=None, **params):
    """A fresh copy of a sample added as a workspace (prepare(path) runs first); returns (slug, path)."""
    name = name or sample
    path = tree.copy_sample(sample, os.path.join(tree.home, "projects", name))
    if prepare:
        prepare(path)
    w = add_workspace(rpc, path, name=name, **params)
    assert w["interpreter"] == DJANGO_PYTHON, w
    return w["slug"], w["path"]


def seeded(tree, rpc, watch, sample="atlas", name=None, prepare=None):
    """add() with the seed scans, waited for; returns (slug, path, [the three finished records])."""
    slug, path = add(tree, rpc, sample, name, prepare)
    records = [watch.finished(slug, kind, lambda r: r["trigger"] == "added") for kind in KINDS]
    return slug, path, records


def scan_list(rpc, slug):
    r = rpc.call("scan.list", {"workspace": slug})
    assert set(r) == {"workspace", "scans"} and r["workspace"] == slug, r
    for rec in r["scans"]:
        check_record(rec, slug)
    assert [s["kind"] for s in r["scans"]] == [k for k in KINDS if k in {s["kind"] for s in r["scans"]}], r
    return r["scans"]


def result(rpc, slug, kind):
    r = rpc.call("scan.result", {"workspace": slug, "kind": kind})
    assert set(r) == {"workspace", "kind", "scan", "result"} and (r["workspace"], r["kind"]) == (slug, kind), r
    if r["scan"] is not None:
        check_record(r["scan"], slug, kind)
    if r["result"] is not None:
        assert set(r["result"]) == RESULT_KEYS[kind], sorted(r["result"])
    return r


def scan_start(rpc, slug, kind=None):
    p = {"workspace": slug}
    if kind is not None:
        p["kind"] = kind
    r = rpc.call("scan.start", p)
    assert set(r) == {"workspace", "scans"} and r["workspace"] == slug, r
    want = KINDS if kind in (None, "all") else [kind]
    assert [s["kind"] for s in r["scans"]] == want, r
    for s in r["scans"]:
        # pending, or (merged into the next probe) pending as well: never running yet, never finished
        check_record(s, slug, status="pending", trigger=s["trigger"])
    return r["scans"]


def wait_list(rpc, slug, pred, timeout=SCAN_TIMEOUT):
    """Polls scan.list until pred(records) (for what happened before a subscription could exist)."""
    deadline = time.monotonic() + timeout
    while True:
        records = scan_list(rpc, slug)
        if pred(records):
            return records
        assert time.monotonic() < deadline, f"scan.list never matched: {records}"
        time.sleep(0.1)


def by_kind(records):
    return {r["kind"]: r for r in records}


def apps_migrations(res):
    return {entry["app"]: entry for entry in res["result"]["migrations"]}


def slow_settings(seconds):
    """prepare(): the project's settings sleep before they finish loading (a probe that takes a while)."""
    def prepare(path):
        name = os.path.basename(path)
        settings = os.path.join(path, SETTINGS["polls" if os.path.isdir(os.path.join(path, "mysite")) else "atlas"])
        with open(settings, "a") as f:
            f.write(f"\nimport time as _t\n_t.sleep({seconds})  # {name}: slow on purpose\n")
    return prepare


def probe_pids(path):
    """Pids of djdesk-probe processes of the project at path."""
    pids = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if any(a.endswith(b"djdesk-probe") for a in argv) and path.encode() in argv:
            pids.append(int(pid))
    return pids


def running_probe_pids(path, timeout=5.0):
    """probe_pids() of a probe that was just reported started. Its /proc/PID/cmdline can be empty for an
    instant: the daemon is released from vfork when the probe's execve() replaced its memory, before the
    kernel has set up the new argv."""
    deadline = time.monotonic() + timeout
    while True:
        pids = probe_pids(path)
        if pids or time.monotonic() > deadline:
            return pids
        time.sleep(0.02)


def listing(path):
    """Every file and directory under path (relative), __pycache__ left out."""
    out = []
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        rel = os.path.relpath(dirpath, path)
        out += [os.path.normpath(os.path.join(rel, n)) for n in dirnames + filenames]
    return sorted(out)


def write_migration(path, name, after="0002_batch_checksum"):
    with open(os.path.join(path, "ledger", "migrations", name + ".py"), "w") as f:
        f.write(MIGRATION_SRC.format(after=after))


# ---------------------------------------------------------------------------------------------------------
# seed scans and events


def test_seed_scans_on_workspace_add(tree):
    copied = []
    rpc, watch = boot(tree)
    slug, path = add(tree, rpc, "atlas", prepare=lambda p: copied.append(listing(p)))
    finished = {k: watch.finished(slug, k) for k in KINDS}
    watch.quiet(slug, 0.5)

    # exactly one scan.started and one scan.finished per kind, started first, the same record id
    events = watch.scan_events(slug)
    assert sorted(e["topic"] for e in events) == ["scan.finished"] * 3 + ["scan.started"] * 3, events
    for kind in KINDS:
        mine = [e for e in events if e["data"]["scan"]["kind"] == kind]
        assert [e["topic"] for e in mine] == ["scan.started", "scan.finished"], mine
        started = check_record(mine[0]["data"]["scan"], slug, kind, "running", "added")
        done = check_record(mine[1]["data"]["scan"], slug, kind, "completed", "added")
        assert started["id"] == done["id"]
        assert (started["requested_at"], started["started_at"]) == (done["requested_at"], done["started_at"])
    assert len({finished[k]["id"] for k in KINDS}) == 3

    # the summaries say what was found
    schema = result(rpc, slug, "schema")["result"]
    relations = sum(len(m["relations"]) for m in schema["models"])
    assert finished["schema"]["summary"] == \
        f"{len(schema['models'])} models in {len(schema['apps'])} apps, {relations} relations"
    migrations = result(rpc, slug, "migrations")["result"]
    n = sum(len(e["migrations"]) for e in migrations["migrations"])
    assert finished["migrations"]["summary"] == f"{n} migrations, {n} pending (database not created yet)"
    assert finished["checks"]["summary"] == "1 warning, 0 errors"

    # scan.list: the newest of each kind, the records of the events; scan.get finds each
    listed = scan_list(rpc, slug)
    assert listed == [finished[k] for k in KINDS]
    for r in listed:
        assert rpc.call("scan.get", {"id": r["id"]}) == r
    # the probe created nothing in the project: no database, no file at all (bytecode caches aside)
    assert listing(path) == copied[0]
    assert not [n for n in os.listdir(path) if n.startswith("db.sqlite3")]


def test_seed_scans_of_sample_install(tree):
    rpc, watch = boot(tree, env={"DJDESK_PYTHON": DJANGO_PYTHON})   # sample.install finds the interpreter
    w = rpc.call("sample.install", {"name": "polls"})
    slug = w["slug"]
    done = [watch.finished(slug, k) for k in KINDS]
    assert [(r["status"], r["trigger"]) for r in done] == [("completed", "added")] * 3, done
    models = {f"{m['app']}.{m['name']}" for m in result(rpc, slug, "schema")["result"]["models"]}
    assert {"polls.Question", "polls.Choice"} <= models
    assert not os.path.exists(os.path.join(w["path"], "db.sqlite3"))


def test_seed_scans_false_seeds_nothing(tree):
    rpc, watch = boot(tree)
    slug, path = add(tree, rpc, "polls", seed_scans=False)
    watch.quiet(slug, 1.0)
    assert scan_list(rpc, slug) == []
    for kind in KINDS:
        assert result(rpc, slug, kind) == {"workspace": slug, "kind": kind, "scan": None, "result": None}
    assert probe_pids(path) == []

    # on request it scans, only the kind asked for
    [pending] = scan_start(rpc, slug, "checks")
    assert pending["trigger"] == "request"
    done = watch.finished(slug, "checks")
    assert done["id"] == pending["id"] and done["status"] == "completed"
    assert [s["kind"] for s in scan_list(rpc, slug)] == ["checks"]
    assert result(rpc, slug, "schema")["result"] is None
    assert isinstance(result(rpc, slug, "checks")["result"]["checks"], list)
    assert [e["data"]["scan"]["kind"] for e in watch.scan_events(slug)] == ["checks", "checks"]


# ---------------------------------------------------------------------------------------------------------
# scan.start, scan.get and the refusals


def test_scan_start_one_kind_all_kinds_and_new_ids(tree):
    rpc, watch = boot(tree)
    slug, _, seeds = seeded(tree, rpc, watch, "polls")
    seed_ids = {r["kind"]: r["id"] for r in seeds}

    [checks] = scan_start(rpc, slug, "checks")
    assert checks["trigger"] == "request" and checks["id"] > max(seed_ids.values())
    assert watch.finished(slug, "checks", lambda r: r["id"] == checks["id"])["status"] == "completed"
    listed = by_kind(scan_list(rpc, slug))
    assert listed["checks"]["id"] == checks["id"]
    assert (listed["schema"]["id"], listed["migrations"]["id"]) == (seed_ids["schema"], seed_ids["migrations"])
    # only the newest record of a kind is kept
    e = refused(rpc, "scan.get", {"id": seed_ids["checks"]})
    assert e["code"] == -32001, e

    for kind in (None, "all"):
        scans = scan_start(rpc, slug, kind)
        assert all(s["trigger"] == "request" for s in scans)
        ids = [s["id"] for s in scans]
        assert len(set(ids)) == 3 and min(ids) > checks["id"], ids
        done = watch.finished_ids(slug, ids)
        assert all(r["status"] == "completed" for r in done.values()), done
        assert [r["id"] for r in scan_list(rpc, slug)] == ids
        checks = scans[2]


def test_a_burst_of_requests_makes_at_most_two_probes(tree):
    rpc, watch = boot(tree)
    slug, _ = add(tree, rpc, "polls", seed_scans=False)
    returned = [s for _ in range(6) for s in scan_start(rpc, slug)]
    ids = sorted({s["id"] for s in returned})
    for kind in KINDS:
        assert len({s["id"] for s in returned if s["kind"] == kind}) <= 2, returned
    # every id handed out finishes (merged requests share their record)
    done = watch.finished_ids(slug, ids)
    assert all(r["status"] == "completed" for r in done.values()), done
    watch.quiet(slug, 0.5)
    started = watch.scan_events(slug, "scan.started")
    assert 3 <= len(started) <= 6, started
    assert sorted(e["data"]["scan"]["id"] for e in started) == ids
    assert max(r["id"] for r in scan_list(rpc, slug)) == ids[-1]


def test_bad_kind_and_unknown_workspace_change_nothing(tree):
    rpc, watch = boot(tree)
    slug, _, _ = seeded(tree, rpc, watch, "polls")
    before = scan_list(rpc, slug)
    watch.sync()
    n = len(watch.scan_events())

    for kind in ("bogus", "", "Schema", "schema,checks", "all "):
        e = refused(rpc, "scan.start", {"workspace": slug, "kind": kind})
        assert e["code"] == -32602, (kind, e)
        assert e["data"]["kind"] == "invalid" and e["data"]["value"] == kind, (kind, e)
        e = refused(rpc, "scan.result", {"workspace": slug, "kind": kind})
        assert e["code"] == -32602, (kind, e)
    for params in ({"workspace": slug, "kind": 3}, {"workspace": slug, "kind": None}, {"kind": "schema"},
                   {"workspace": slug, "extra": 1}, {"workspace": 7}):
        assert refused(rpc, "scan.start", params)["code"] == -32602, params
    assert refused(rpc, "scan.result", {"workspace": slug})["code"] == -32602
    for params in ({}, {"id": "1"}, {"id": -1}, {"id": 1.5}):
        assert refused(rpc, "scan.get", params)["code"] == -32602, params

    for method, params in (("scan.start", {"workspace": "nope"}), ("scan.start", {"workspace": "nope", "kind": "schema"}),
                           ("scan.list", {"workspace": "nope"}), ("scan.cancel", {"workspace": "nope"}),
                           ("scan.result", {"workspace": "nope", "kind": "schema"})):
        e = refused(rpc, method, params)
        assert e["code"] == -32001, (method, e)
        assert e["data"]["value"] == "nope", (method, e)
    e = refused(rpc, "scan.get", {"id": 999999})
    assert e["code"] == -32001 and e["data"]["value"] == "999999", e
    assert refused(rpc, "scan.get", {"id": 0})["code"] == -32001

    # nothing was requested, nothing ran
    watch.quiet(slug, 0.5)
    assert len(watch.scan_events()) == n
    assert scan_list(rpc, slug) == before
    assert rpc.call("scan.cancel", {"workspace": slug}) == {"workspace": slug, "cancelled": 0}
    assert scan_list(rpc, slug) == before


# ---------------------------------------------------------------------------------------------------------
# what the probe found


def test_scan_result_holds_the_probe_document_parts(tree):
    def guides(path):
        with open(os.path.join(path, "README.md"), "w") as f:
            f.write("# Atlas handbook\n")
        os.makedirs(os.path.join(path, "docs"))
        with open(os.path.join(path, "docs", "ops.md"), "w") as f:
            f.write("text first\n\n# Operations\n")

    rpc, watch = boot(tree)
    slug, path, records = seeded(tree, rpc, watch, "atlas", prepare=guides)
    records = by_kind(records)

    schema = result(rpc, slug, "schema")
    assert schema["scan"] == records["schema"]
    doc = schema["result"]
    assert doc["django_version"] == rpc.call("workspace.get", {"workspace": slug})["django_version"]
    models = {f"{m['app']}.{m['name']}": m for m in doc["models"]}
    assert ATLAS_MODELS <= set(models) and "auth.User" in models
    assert ("sensor", "fk", "catalog.Sensor") in {(r["field"], r["kind"], r["target"])
                                                  for r in models["ledger.Reading"]["relations"]}
    assert ("acknowledged_by", "fk", "auth.User") in {(r["field"], r["kind"], r["target"])
                                                      for r in models["alerts.Alert"]["relations"]}
    assert models["ledger.Batch"]["db_table"] == "ledger_batch"
    apps = {a["label"]: a for a in doc["apps"]}
    assert (apps["catalog"]["models"], apps["alerts"]["models"], apps["ledger"]["models"]) == (2, 2, 3)
    assert doc["settings"]["debug"] is True and doc["settings"]["installed_apps"] == len(doc["apps"])
    assert doc["guides"] == [{"title": "Atlas handbook", "path": os.path.join(path, "README.md")},
                             {"title": "Operations", "path": os.path.join(path, "docs", "ops.md")}]

    migrations = result(rpc, slug, "migrations")
    assert migrations["scan"] == records["migrations"]
    assert migrations["result"]["database"] == {"alias": "default", "vendor": "sqlite", "exists": False,
                                                "message": "database not created yet"}
    per_app = apps_migrations(migrations)
    assert {"catalog", "alerts", "ledger", "auth", "contenttypes"} <= set(per_app)
    assert all(not m["applied"] for e in per_app.values() for m in e["migrations"])
    assert per_app["ledger"]["migrations"] == [{"name": "0001_initial", "applied": False},
                                               {"name": "0002_batch_checksum", "applied": False}]
    assert per_app["ledger"]["plan"] == ["0001_initial", "0002_batch_checksum"]

    checks = result(rpc, slug, "checks")
    assert checks["scan"] == records["checks"]
    assert [c for c in checks["result"]["checks"] if c["id"] == "fields.W340"] == [
        {"level": "WARNING", "id": "fields.W340", "msg": "null has no effect on ManyToManyField.", "hint": None,
         "obj": "ledger.Batch.readings"}]

    # never a secret, and still no database
    everything = json.dumps([schema, migrations, checks, scan_list(rpc, slug)])
    assert ATLAS_SECRET not in everything and "SECRET_KEY" not in everything
    assert not os.path.exists(os.path.join(path, "db.sqlite3"))


# ---------------------------------------------------------------------------------------------------------
# automatic rescans


def test_migrate_run_triggers_a_rescan(tree):
    rpc, watch = boot(tree)
    slug, path, seeds = seeded(tree, rpc, watch, "atlas")
    presets = {p["key"]: p for p in rpc.call("preset.list")["presets"]}
    assert presets["migrate"]["rescan"] is True
    assert all(p["rescan"] is False for k, p in presets.items() if k != "migrate"), presets

    run = start(rpc, slug, "migrate", confirm=True)
    fin = watch.wait(lambda e: e["topic"] == "run.finished" and e["data"]["id"] == run["id"], SCAN_TIMEOUT,
                     "run.finished")["data"]
    assert fin["status"] == "succeeded", fin
    rescans = {k: watch.finished(slug, k, lambda r: r["trigger"] == "run") for k in KINDS}
    for kind in KINDS:
        assert rescans[kind]["status"] == "completed", rescans[kind]
        assert rescans[kind]["id"] > max(r["id"] for r in seeds)
        started = watch.started(slug, kind, lambda r: r["trigger"] == "run")
        assert started["id"] == rescans[kind]["id"]
        # the rescan was requested once the run had finished
        assert parse_iso(rescans[kind]["requested_at"]) >= parse_iso(fin["finished_at"])

    migrations = result(rpc, slug, "migrations")
    assert migrations["scan"]["id"] == rescans["migrations"]["id"]
    assert migrations["result"]["database"]["exists"] is True
    per_app = apps_migrations(migrations)
    assert all(m["applied"] for e in per_app.values() for m in e["migrations"]), per_app
    assert all(e["plan"] == [] for e in per_app.values())
    n = sum(len(e["migrations"]) for e in per_app.values())
    assert rescans["migrations"]["summary"] == f"{n} migrations, 0 pending"
    assert by_kind(scan_list(rpc, slug)) == rescans


def test_a_preset_marked_rescan_triggers_a_rescan_others_do_not(tree):
    echo_preset(tree, "echo")
    echo_preset(tree, "echo-rescan", rescan=True)
    write_preset(tree, "bad-rescan", ["/bin/true"], rescan="yes")
    rpc, watch = boot(tree)
    listed = rpc.call("preset.list")
    presets = {p["key"]: p for p in listed["presets"]}
    assert presets["echo"]["rescan"] is False and presets["echo-rescan"]["rescan"] is True
    assert "bad-rescan" not in presets
    assert [w for w in listed["warnings"] if "bad-rescan.json" in w and "'rescan'" in w], listed["warnings"]

    slug, _ = add(tree, rpc, "polls", seed_scans=False)
    run = start(rpc, slug, "echo")
    assert watch.wait(lambda e: e["topic"] == "run.finished" and e["data"]["id"] == run["id"])["data"][
        "status"] == "succeeded"
    watch.quiet(slug, 1.0)
    assert scan_list(rpc, slug) == []

    run = start(rpc, slug, "echo-rescan")
    done = {k: watch.finished(slug, k) for k in KINDS}
    assert all((r["status"], r["trigger"]) == ("completed", "run") for r in done.values()), done


def test_a_new_migration_file_triggers_a_debounced_rescan(tree):
    rpc, watch = boot(tree, config="[scans]\ndebounce_ms = 200\n")
    slug, path, seeds = seeded(tree, rpc, watch, "atlas")
    seeds = by_kind(seeds)
    watch.quiet(slug, 0.5)

    # code that is not a migration: no scan
    with open(os.path.join(path, "catalog", "views.py"), "a") as f:
        f.write("\n# edited\n")
    watch.quiet(slug, 1.0)

    write_migration(path, "0003_extra")
    rescan = watch.finished(slug, "migrations", lambda r: r["trigger"] == "migrations-changed")
    assert rescan["status"] == "completed", rescan
    ledger = apps_migrations(result(rpc, slug, "migrations"))["ledger"]
    assert [m["name"] for m in ledger["migrations"]] == ["0001_initial", "0002_batch_checksum", "0003_extra"]
    assert ledger["plan"][-1] == "0003_extra"
    watch.quiet(slug, 0.6)
    # only the migrations were scanned again
    listed = by_kind(scan_list(rpc, slug))
    assert listed["migrations"]["id"] == rescan["id"]
    assert (listed["schema"], listed["checks"]) == (seeds["schema"], seeds["checks"])
    assert [e["data"]["scan"]["kind"] for e in watch.scan_events(slug, "scan.started")
            if e["data"]["scan"]["trigger"] == "migrations-changed"] == ["migrations"]

    # a burst of files within the debounce time: one rescan
    n = len(watch.scan_events(slug, "scan.started"))
    write_migration(path, "0004_more", after="0003_extra")
    write_migration(path, "0005_more", after="0004_more")
    os.unlink(os.path.join(path, "ledger", "migrations", "0003_extra.py"))
    write_migration(path, "0003_extra")
    rescan2 = watch.finished(slug, "migrations", lambda r: r["id"] > rescan["id"])
    assert rescan2["trigger"] == "migrations-changed" and rescan2["status"] == "completed"
    watch.quiet(slug, 1.0)
    assert len(watch.scan_events(slug, "scan.started")) == n + 1, watch.scan_events(slug)
    ledger = apps_migrations(result(rpc, slug, "migrations"))["ledger"]
    assert [m["name"] for m in ledger["migrations"]][-3:] == ["0003_extra", "0004_more", "0005_more"]

    # a removed migration file counts too
    os.unlink(os.path.join(path, "ledger", "migrations", "0005_more.py"))
    rescan3 = watch.finished(slug, "migrations", lambda r: r["id"] > rescan2["id"])
    assert rescan3["trigger"] == "migrations-changed"
    ledger = apps_migrations(result(rpc, slug, "migrations"))["ledger"]
    assert [m["name"] for m in ledger["migrations"]][-1] == "0004_more"


def test_models_and_a_migration_changed_in_one_burst_rescan(tree):
    """makemigrations right after editing models.py: the burst holds a migration file, so it rescans, even
    though the first file that changed was not a migration."""
    rpc, watch = boot(tree, config="[scans]\ndebounce_ms = 300\n")
    slug, path, _ = seeded(tree, rpc, watch, "atlas")
    watch.quiet(slug, 0.5)
    with open(os.path.join(path, "ledger", "models.py"), "a") as f:
        f.write("\n# a field will come here\n")
    write_migration(path, "0003_extra")
    rescan = watch.finished(slug, "migrations", lambda r: r["trigger"] == "migrations-changed", timeout=10)
    assert rescan["status"] == "completed"
    names = [m["name"] for m in apps_migrations(result(rpc, slug, "migrations"))["ledger"]["migrations"]]
    assert names[-1] == "0003_extra"


# ---------------------------------------------------------------------------------------------------------
# cancel, timeout, a project that does not load


def test_a_server_that_migrates_and_reloads_triggers_rescans(tree):
    rpc, watch = boot(tree, env={"PYTHONDONTWRITEBYTECODE": "1"})
    slug, path = add(tree, rpc, "atlas", seed_scans=False)
    rpc.call("server.start", {"workspace": slug})
    # A fresh copy has no database: the server applies the migrations as it starts (state "migrating"),
    # and once it is ready the migrations are scanned again, nothing else.
    done = watch.finished(slug, "migrations", lambda r: r["trigger"] == "migrate")
    assert done["status"] == "completed" and done["summary"].endswith(", 0 pending"), done
    assert [e for e in watch.scan_events(slug) if e["data"]["scan"]["kind"] != "migrations"] == []

    # A code change reloads the server; the reload rescans every kind.
    with open(os.path.join(path, "catalog", "views.py"), "a") as f:
        f.write("\nDJDESK_TEST_RELOAD = 1\n")
    records = [watch.finished(slug, kind, lambda r: r["trigger"] == "reload") for kind in KINDS]
    assert all(r["status"] == "completed" for r in records), records
    rpc.call("server.stop", {"workspace": slug})


def test_cancel_a_running_probe(tree):
    rpc, watch = boot(tree)
    slug, path = add(tree, rpc, "polls", prepare=slow_settings(60), seed_scans=False)
    ids = [s["id"] for s in scan_start(rpc, slug)]
    for kind in KINDS:
        watch.started(slug, kind)
    assert [r["status"] for r in scan_list(rpc, slug)] == ["running"] * 3
    pids = running_probe_pids(path)
    assert len(pids) == 1, pids

    assert rpc.call("scan.cancel", {"workspace": slug}) == {"workspace": slug, "cancelled": 3}
    done = watch.finished_ids(slug, ids, timeout=15)
    for r in done.values():
        assert (r["status"], r["error"]) == ("failed", "cancelled"), r
        assert r["started_at"] is not None
    wait_gone(pids, timeout=10, what="the cancelled probe")
    assert scan_list(rpc, slug) == [done[i] for i in ids]
    for kind in KINDS:
        assert result(rpc, slug, kind)["result"] is None
    assert rpc.call("scan.cancel", {"workspace": slug}) == {"workspace": slug, "cancelled": 0}
    watch.quiet(slug, 0.5)


def test_cancel_also_ends_requests_queued_behind_a_running_probe(tree):
    """scan.start while a probe runs returns new records (they run next); scan.cancel ends those too, each with
    its scan.finished: a client waiting for the records scan.start returned (djdeskctl scan --wait) is told."""
    rpc, watch = boot(tree)
    slug, path = add(tree, rpc, "polls", prepare=slow_settings(60), seed_scans=False)
    first = [s["id"] for s in scan_start(rpc, slug)]
    for kind in KINDS:
        watch.started(slug, kind)
    queued = [s["id"] for s in scan_start(rpc, slug)]
    assert not set(queued) & set(first) and min(queued) > max(first), (first, queued)
    for i in queued:
        assert rpc.call("scan.get", {"id": i})["status"] == "pending"
    pids = running_probe_pids(path)

    assert rpc.call("scan.cancel", {"workspace": slug}) == {"workspace": slug, "cancelled": 6}
    done = watch.finished_ids(slug, first + queued, timeout=15)
    for r in done.values():
        assert (r["status"], r["error"]) == ("failed", "cancelled"), r
    wait_gone(pids, timeout=10)
    watch.quiet(slug, 0.5)
    assert watch.scan_events(slug, "scan.started")[3:] == []     # nothing ran after the cancel


def test_cancel_pending_scans_while_the_pool_is_full(tree):
    rpc, watch = boot(tree, config="[tasks]\nmax_parallel = 1\n")
    busy, busy_path = add(tree, rpc, "polls", "busy", prepare=slow_settings(60), seed_scans=False)
    slug, path = add(tree, rpc, "polls", "waiting", seed_scans=False)
    scan_start(rpc, busy, "schema")
    watch.started(busy, "schema")
    pending = scan_start(rpc, slug)
    # the pool (max_parallel 1) is taken: the other workspace's scans wait
    watch.quiet(slug, 1.0)
    assert [r["status"] for r in scan_list(rpc, slug)] == ["pending"] * 3
    assert probe_pids(path) == []

    assert rpc.call("scan.cancel", {"workspace": slug}) == {"workspace": slug, "cancelled": 3}
    done = watch.finished_ids(slug, [r["id"] for r in pending], timeout=10)
    for r in done.values():
        assert (r["status"], r["error"], r["started_at"]) == ("failed", "cancelled", None), r
    assert watch.scan_events(slug, "scan.started") == []

    # the busy one is cancelled too; then the pool is free again
    pids = probe_pids(busy_path)
    assert rpc.call("scan.cancel", {"workspace": busy}) == {"workspace": busy, "cancelled": 1}
    assert watch.finished(busy, "schema")["error"] == "cancelled"
    wait_gone(pids, timeout=10)
    [again] = scan_start(rpc, slug, "checks")
    assert watch.finished(slug, "checks", lambda r: r["id"] == again["id"])["status"] == "completed"


def test_a_probe_that_takes_too_long_times_out(tree):
    rpc, watch = boot(tree, config="[tasks]\ntimeout_sec = 2\n")
    slug, path = add(tree, rpc, "polls", prepare=slow_settings(60), seed_scans=False)
    scan_start(rpc, slug, "migrations")
    started = watch.started(slug, "migrations")
    pids = running_probe_pids(path)
    done = watch.finished(slug, "migrations", timeout=20)
    assert (done["status"], done["error"]) == ("failed", "timed out after 2 s"), done
    took = (parse_iso(done["completed_at"]) - parse_iso(started["started_at"])).total_seconds()
    assert 1.9 <= took < 10, took
    wait_gone(pids, timeout=10)


def test_a_project_that_fails_to_load_gives_failed_scans(tree):
    def broken(path):
        with open(os.path.join(path, SETTINGS["polls"]), "a") as f:
            f.write("\n\ndef explode():\n    raise RuntimeError('settings broken on purpose')\n\n\nexplode()\n")

    rpc, watch = boot(tree)
    slug, path = add(tree, rpc, "polls", prepare=broken)
    done = [watch.finished(slug, k) for k in KINDS]
    for r in done:
        assert r["status"] == "failed", r
        assert r["error"] == "RuntimeError: settings broken on purpose", r
        info = r["error_info"]
        assert info["type"] == "RuntimeError" and info["message"] == "settings broken on purpose", info
        frames = info["traceback"]
        assert frames and frames[-1] == {"file": SETTINGS["polls"], "line": frames[-1]["line"],
                                         "function": "explode"}, frames
    assert scan_list(rpc, slug) == done
    for kind in KINDS:
        assert result(rpc, slug, kind)["result"] is None

    # repaired: completed; broken again: failed, and the last completed result is kept
    settings = os.path.join(path, SETTINGS["polls"])
    with open(settings) as f:
        text = f.read()
    good = text[:text.index("\n\ndef explode")] + "\n"
    with open(settings, "w") as f:
        f.write(good)
    ids = [s["id"] for s in scan_start(rpc, slug)]
    assert all(r["status"] == "completed" for r in watch.finished_ids(slug, ids).values())
    kept = result(rpc, slug, "schema")["result"]
    assert "polls.Question" in {f"{m['app']}.{m['name']}" for m in kept["models"]}
    with open(settings, "w") as f:
        f.write(text)
    ids = [s["id"] for s in scan_start(rpc, slug, "schema")]
    assert watch.finished_ids(slug, ids)[ids[0]]["status"] == "failed"
    r = result(rpc, slug, "schema")
    assert r["result"] == kept
    assert r["scan"]["status"] == "failed"   # the newest record says what happened since


# ---------------------------------------------------------------------------------------------------------
# restart


def test_a_restart_keeps_the_newest_records_and_never_reuses_ids(tree):
    rpc, watch = boot(tree)
    slug, path, _ = seeded(tree, rpc, watch, "atlas")
    [checks] = scan_start(rpc, slug, "checks")
    watch.finished(slug, "checks", lambda r: r["id"] == checks["id"])
    before = scan_list(rpc, slug)
    results = {k: result(rpc, slug, k) for k in KINDS}
    used = {r["id"] for r in before} | {e["data"]["scan"]["id"] for e in watch.scan_events()}
    rpc.close()
    watch.close()
    assert tree.daemons[0].stop() == 0

    tree.start()
    watch = ScanWatch(tree)
    rpc = connect(tree.socket_path, timeout=SCAN_TIMEOUT)
    assert scan_list(rpc, slug) == before
    for kind in KINDS:
        assert result(rpc, slug, kind) == results[kind]
    for r in before:
        assert rpc.call("scan.get", {"id": r["id"]}) == r
    watch.quiet(slug, 0.5)      # nothing was pending: nothing runs again

    scans = scan_start(rpc, slug)
    assert min(s["id"] for s in scans) > max(used), (scans, used)
    watch.finished_ids(slug, [s["id"] for s in scans])
    # a second restart, after which a new workspace's records are new ids too
    used |= {s["id"] for s in scans}
    rpc.close()
    watch.close()
    assert tree.daemons[1].stop() == 0
    tree.start()
    watch = ScanWatch(tree)
    rpc = connect(tree.socket_path, timeout=SCAN_TIMEOUT)
    other, _ = add(tree, rpc, "polls", seed_scans=False)
    fresh = scan_start(rpc, other)
    assert min(s["id"] for s in fresh) > max(used), (fresh, used)
    assert not os.path.exists(os.path.join(path, "db.sqlite3"))


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_scans_left_running_run_again_after_a_restart(tree, how):
    # stop: the daemon kills its probe and leaves the records as they were. kill (SIGKILL): nothing is
    # recorded at the end either; the probe dies with the daemon (its parent-death signal) or is ended as
    # an orphan group by the next daemon. Either way the records stay "running" in the store.
    rpc, watch = boot(tree)
    slug, path = add(tree, rpc, "polls", prepare=slow_settings(60), seed_scans=False)
    ids = [s["id"] for s in scan_start(rpc, slug)]
    for kind in KINDS:
        watch.started(slug, kind)
    pids = running_probe_pids(path)
    assert pids
    rpc.close()
    watch.close()
    if how == "stop":
        assert tree.daemons[0].stop() == 0
    else:
        tree.daemons[0].kill()
    wait_gone(pids, timeout=10, what=f"the probe of a daemon that got {how}")

    # the project loads fast now; the next daemon runs the same scans again
    settings = os.path.join(path, SETTINGS["polls"])
    with open(settings) as f:
        text = f.read()
    with open(settings, "w") as f:
        f.write(text[:text.index("\nimport time as _t")] + "\n")
    tree.start()
    rpc = connect(tree.socket_path, timeout=SCAN_TIMEOUT)
    listed = scan_list(rpc, slug)
    assert [r["id"] for r in listed] == ids
    assert all(r["trigger"] == "restart" for r in listed), listed
    done = wait_list(rpc, slug, lambda rs: all(r["status"] in ("completed", "failed") for r in rs))
    assert [r["id"] for r in done] == ids
    assert all((r["status"], r["trigger"]) == ("completed", "restart") for r in done), done
    assert probe_pids(path) == []


def test_removing_a_workspace_kills_its_probe(tree):
    rpc, watch = boot(tree)
    slug, path = add(tree, rpc, "polls", prepare=slow_settings(60), seed_scans=False)
    scan_start(rpc, slug)
    watch.started(slug)
    pids = running_probe_pids(path)
    assert len(pids) == 1, pids
    rpc.call("workspace.remove", {"workspace": slug})
    wait_gone(pids, timeout=10, what="the probe of a removed workspace")
    assert refused(rpc, "scan.list", {"workspace": slug})["code"] == -32001
    assert refused(rpc, "scan.start", {"workspace": slug})["code"] == -32001
