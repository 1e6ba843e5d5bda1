# SPDX-License-Identifier: MIT
"""The inspection on the bus: Workspace.GetStatus() (the same document as the socket's workspace.status),
Workspace.Scan(kind) (an id scan.get knows; a bad kind is InvalidArgs), and the scan-count properties
PendingMigrations, ModelCount, CheckWarnings, CheckErrors and LastScanAt, with PropertiesChanged once a scan
completes. Real daemon, real Django (/usr/bin/python3) and probe, private bus."""

import json
import os
import time

import pytest

from conftest import connect, needs_bus
from dbuswatch import PROPERTIES, WORKSPACE, WORKSPACE_PREFIX, Watcher, is_properties_changed
from runtools import stable_status
from servertools import add_workspace

pytestmark = needs_bus

SCAN_TIMEOUT = 90.0  # a probe run is one Django start; generous for sanitizer builds
KINDS = ("schema", "migrations", "checks")
COUNT_PROPERTIES = ("PendingMigrations", "ModelCount", "CheckWarnings", "CheckErrors", "LastScanAt")
# samples/atlas: catalog 2, alerts 2, ledger 3, admin 1, auth 3, contenttypes 1, sessions 1.
ATLAS_MODELS = 13


@pytest.fixture
def watcher():
    with Watcher() as w:
        yield w


def add_atlas(tree, rpc, seed=True, name="atlas"):
    path = tree.copy_sample("atlas", os.path.join(tree.home, "projects", name))
    w = add_workspace(rpc, path, name=name, seed_scans=seed)
    assert w["slug"] == name, w
    return WORKSPACE_PREFIX + "/" + name


def wait_scans(sub, slug, ids=None, timeout=SCAN_TIMEOUT):
    """Reads scan.finished events on the subscribed connection until one per kind (or one per id) arrived
    for slug; returns the records by kind."""
    done = {}
    deadline = time.monotonic() + timeout
    while (set(done) != set(KINDS)) if ids is None else not set(ids) <= {r["id"] for r in done.values()}:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"scans of {slug} did not finish within {timeout}s (done: {done})")
        e = sub.next_event(remaining)
        if e["topic"] == "scan.finished" and e["data"]["workspace"] == slug:
            rec = e["data"]["scan"]
            done[rec["kind"]] = rec
    return done


def get_status(watcher, path):
    text = watcher.call(path, WORKSPACE, "GetStatus")
    assert isinstance(text, str), text
    return json.loads(text)


def counts(watcher, path):
    return {p: watcher.get(path, p) for p in COUNT_PROPERTIES}


# ---------------------------------------------------------------------------------------------------------


def test_get_status_is_the_socket_document(tree, daemon, watcher):
    with connect(tree.socket_path) as rpc:
        path = add_atlas(tree, rpc, seed=False)
        sock, bus = stable_status(rpc, "atlas", lambda: get_status(watcher, path))
    assert bus == sock
    assert bus["workspace"] == "atlas"
    assert bus["server"]["state"] == "stopped"
    # Compact JSON, on one line.
    text = watcher.call(path, WORKSPACE, "GetStatus")
    assert "\n" not in text and text.startswith('{"'), text[:100]


def test_get_status_follows_changes(tree, daemon, watcher):
    with connect(tree.socket_path) as rpc:
        path = add_atlas(tree, rpc, seed=False)
        seq = get_status(watcher, path)["seq"]
        rpc.call("workspace.update", {"workspace": "atlas", "name": "Atlas Two"})
        deadline = time.monotonic() + 10
        while True:
            doc = get_status(watcher, path)
            if doc["name"] == "Atlas Two":
                break
            assert time.monotonic() < deadline, doc
            time.sleep(0.05)
        assert doc["seq"] > seq
    # The workspace part of workspace.changed: the workspace's own properties.
    watcher.wait_for(is_properties_changed(path, Name="Atlas Two"), what="PropertiesChanged(Name)")


def test_counts_are_zero_before_any_scan(tree, daemon, watcher):
    with connect(tree.socket_path) as rpc:
        path = add_atlas(tree, rpc, seed=False)
    assert counts(watcher, path) == {p: 0 for p in COUNT_PROPERTIES}
    props = watcher.get_all(path)
    for p in COUNT_PROPERTIES:
        assert props[p] == 0, (p, props)


def test_scan_returns_an_id_scan_get_knows(tree, daemon, watcher):
    with connect(tree.socket_path) as rpc, connect(tree.socket_path, timeout=SCAN_TIMEOUT) as sub:
        path = add_atlas(tree, rpc, seed=False)
        sub.call("subscribe", {"topics": ["scan.*"]})

        sid = watcher.call(path, WORKSPACE, "Scan", "s", ["checks"])
        assert isinstance(sid, int) and sid > 0, sid
        rec = rpc.call("scan.get", {"id": sid})
        assert rec["id"] == sid and rec["kind"] == "checks" and rec["workspace"] == "atlas", rec
        assert rec["trigger"] == "request", rec
        done = wait_scans(sub, "atlas", ids=[sid])
        assert done["checks"]["status"] == "completed", done

        # "" and "all": every kind, the id of the first (schema) one.
        for kind in ("", "all"):
            sid = watcher.call(path, WORKSPACE, "Scan", "s", [kind])
            rec = rpc.call("scan.get", {"id": sid})
            assert rec["kind"] == "schema", (kind, rec)
            listed = {r["kind"]: r for r in rpc.call("scan.list", {"workspace": "atlas"})["scans"]}
            assert set(listed) == set(KINDS), listed
            assert listed["schema"]["id"] == sid
            wait_scans(sub, "atlas", ids=[listed[k]["id"] for k in KINDS])


def test_scan_with_a_bad_kind_is_invalid_args(tree, daemon, watcher):
    with connect(tree.socket_path) as rpc:
        path = add_atlas(tree, rpc, seed=False)
        for kind in ("nope", "SCHEMA", "schema "):
            name, message = watcher.call_error(path, WORKSPACE, "Scan", "s", [kind])
            assert name == "io.djdesk.Desk1.Error.InvalidArgs", (kind, name, message)
        # Nothing was requested.
        assert rpc.call("scan.list", {"workspace": "atlas"})["scans"] == []


def test_scan_of_a_removed_workspace_is_unknown_object(tree, daemon, watcher):
    with connect(tree.socket_path) as rpc:
        path = add_atlas(tree, rpc, seed=False)
        rpc.call("workspace.remove", {"workspace": "atlas"})
    name, _ = watcher.call_error(path, WORKSPACE, "Scan", "s", ["schema"])
    assert name == "org.freedesktop.DBus.Error.UnknownObject", name


def test_counts_of_atlas_after_the_seeded_scans(tree, daemon, watcher):
    before = int(time.time() * 1e6)
    with connect(tree.socket_path) as rpc, connect(tree.socket_path, timeout=SCAN_TIMEOUT) as sub:
        sub.call("subscribe", {"topics": ["scan.*"]})
        path = add_atlas(tree, rpc)
        done = wait_scans(sub, "atlas")
        assert all(r["status"] == "completed" for r in done.values()), done
        migrations = rpc.call("scan.result", {"workspace": "atlas", "kind": "migrations"})["result"]
        schema = rpc.call("scan.result", {"workspace": "atlas", "kind": "schema"})["result"]
    after = int(time.time() * 1e6)

    pending = sum(1 for app in migrations["migrations"] for m in app["migrations"] if not m["applied"])
    assert pending > 0  # the copy has no database yet: nothing is applied
    assert len(schema["models"]) == ATLAS_MODELS

    # PropertiesChanged carried the values once the last scan completed...
    s = watcher.wait_for(is_properties_changed(path, ModelCount=ATLAS_MODELS, PendingMigrations=pending,
                                               CheckWarnings=1, CheckErrors=0),
                         timeout=10, what="PropertiesChanged with the scan counts")
    assert set(COUNT_PROPERTIES) <= set(s.args[1]), s
    # ... and the properties read the same.
    c = counts(watcher, path)
    assert c["ModelCount"] == ATLAS_MODELS
    assert c["PendingMigrations"] == pending
    assert c["CheckWarnings"] == 1  # ledger.Batch.readings: fields.W340
    assert c["CheckErrors"] == 0
    assert before <= c["LastScanAt"] <= after, (before, c["LastScanAt"], after)
    assert c["LastScanAt"] == s.args[1]["LastScanAt"] or c["LastScanAt"] >= s.args[1]["LastScanAt"]

    # The same numbers as the status document's insights.
    insights = {i["key"]: i for i in get_status(watcher, path)["insights"]}
    assert insights["models"]["value"] == str(ATLAS_MODELS)
    assert insights["pending_migrations"]["value"] == str(pending)
    assert insights["check_warnings"]["value"] == "1"


def test_counts_follow_a_migrate_run(tree, daemon, watcher):
    """migrate applies everything; the automatic rescan brings PendingMigrations to 0, with a signal."""
    with connect(tree.socket_path) as rpc, connect(tree.socket_path, timeout=SCAN_TIMEOUT) as sub:
        sub.call("subscribe", {"topics": ["scan.*", "run.finished"]})
        path = add_atlas(tree, rpc)
        wait_scans(sub, "atlas")
        assert watcher.get(path, "PendingMigrations") > 0
        n = len(watcher.signals)

        run = rpc.call("run.start", {"workspace": "atlas", "preset": "migrate", "confirm": True})
        deadline = time.monotonic() + SCAN_TIMEOUT
        while True:
            e = sub.next_event(max(0.1, deadline - time.monotonic()))
            if e["topic"] == "run.finished" and e["data"]["id"] == run["id"]:
                assert e["data"]["status"] == "succeeded", e
            if (e["topic"] == "scan.finished" and e["data"]["scan"]["kind"] == "migrations" and
                    e["data"]["scan"]["trigger"] == "run"):
                assert e["data"]["scan"]["status"] == "completed", e
                break

    watcher.wait_for(lambda s: s in watcher.signals[n:] and is_properties_changed(path, PendingMigrations=0)(s),
                     timeout=10, what="PropertiesChanged(PendingMigrations=0)")
    assert watcher.get(path, "PendingMigrations") == 0
    assert watcher.get(path, "ModelCount") == ATLAS_MODELS


def test_no_count_signal_for_other_parts(tree, daemon, watcher):
    """workspace.update changes the workspace part: its properties are signalled, not the counts."""
    with connect(tree.socket_path) as rpc:
        path = add_atlas(tree, rpc, seed=False)
        time.sleep(0.5)  # the workspace.changed of the add has gone out
        n = len(watcher.signals)
        rpc.call("workspace.update", {"workspace": "atlas", "name": "Renamed"})
        watcher.wait_for(is_properties_changed(path, Name="Renamed"), what="PropertiesChanged(Name)")
        watcher.pump(0.5)
    changed = [s for s in watcher.signals[n:] if s.member == "PropertiesChanged" and s.interface == PROPERTIES
               and s.path == path]
    for s in changed:
        assert not set(COUNT_PROPERTIES) & set(s.args[1]), s
