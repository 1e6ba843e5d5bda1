# SPDX-License-Identifier: MIT
"""The task queue on the bus: Manager.ListPresets/StartRun/CancelRun and the RunFinished signal, one object
per run in memory (io.djdesk.Desk1.Run) whose properties follow the run through PropertiesChanged (one
signal per event), Cancel and GetLog, InterfacesAdded/InterfacesRemoved through the ObjectManager, the error
names of refusals, and the Run interface's introspection against dbus/io.djdesk.Desk1.xml.

The presets are the test's own, written to $XDG_CONFIG_HOME/djdesk/presets.d before the daemon starts;
none of them uses a shell."""

import datetime
import json
import os
import xml.etree.ElementTree as ET

import pytest

from conftest import DJANGO_PYTHON, busctl, busctl_json, connect, needs_bus
from dbuswatch import BUS, MANAGER, MANAGER_PATH, OBJECT_MANAGER, PROPERTIES, Watcher, dbus
from servertools import add_workspace
from test_dbus import XML, describe_interface, interfaces

pytestmark = needs_bus

RUN = "io.djdesk.Desk1.Run"
RUN_PREFIX = "/io/djdesk/Desk1/run"
RUN_TIMEOUT = 60.0  # queued to finished, for a trivial command (sanitizer builds are slower)
RUN_KEEP_FINISHED = 64  # run.h: finished runs kept in memory, and so on the bus

BUILTIN_INTERFACES = {"org.freedesktop.DBus.Peer", "org.freedesktop.DBus.Introspectable",
                      "org.freedesktop.DBus.Properties"}
ALL_PROPERTIES = {"Id", "Workspace", "Preset", "Label", "Status", "Progress", "ExitCode", "QueuedAt",
                  "StartedAt", "FinishedAt", "OutputLines"}

# Three lines on stdout, one on stderr, exit status 3 (no braces: a preset refuses literal ones).
LINES_SRC = "import sys; print('one'); print('two'); print('three', flush=True); " \
            "print('four', file=sys.stderr); sys.exit(3)"

TEST_PRESETS = {
    "hello": {"label": "Say hello", "argv": ["/bin/echo", "hello"]},
    "lines": {"label": "Print some lines", "argv": ["{python}", "-c", LINES_SRC]},
    "say": {"label": "Say a word", "argv": ["/bin/echo", "{word}"],
            "params": {"word": {"regex": "[a-z]+"}}},
    "nap": {"label": "Sleep a while", "argv": ["/bin/sleep", "{secs}"],
            "params": {"secs": {"regex": "[0-9]+", "default": "60"}}, "timeout_s": 300},
    "danger": {"label": "Dangerous", "argv": ["/bin/true"], "requires_confirmation": True,
               "read_only": False},
    "true": {"label": "Nothing", "argv": ["/bin/true"]},
}


def write_presets(tree):
    d = os.path.join(tree.config, "djdesk", "presets.d")
    os.makedirs(d, exist_ok=True)
    for key, fields in TEST_PRESETS.items():
        with open(os.path.join(d, key + ".json"), "w") as f:
            json.dump({"key": key, **fields}, f, indent=2)


@pytest.fixture
def desk(tree):
    """A daemon with the test presets and one workspace, "polls"."""
    write_presets(tree)
    tree.start()
    with connect(tree.socket_path) as c:
        add_workspace(c, tree.copy_sample("polls"))
    return tree


@pytest.fixture
def watcher():
    with Watcher() as w:
        yield w


def run_path(id):
    return f"{RUN_PREFIX}/{id}"


def start_run(w, preset, params=None, confirm=False, note="", workspace="polls"):
    """StartRun; returns (id, path)."""
    r = w.call(MANAGER_PATH, MANAGER, "StartRun", "ssa{ss}bs",
               [workspace, preset, dbus.Dictionary(params or {}, signature="ss"), confirm, note])
    assert isinstance(r, list) and len(r) == 2, r
    return r[0], r[1]


def start_run_error(w, preset, params=None, confirm=False, note="", workspace="polls"):
    return w.call_error(MANAGER_PATH, MANAGER, "StartRun", "ssa{ss}bs",
                        [workspace, preset, dbus.Dictionary(params or {}, signature="ss"), confirm, note])


def is_run_finished(id):
    return lambda s: (s.member == "RunFinished" and s.interface == MANAGER and s.path == MANAGER_PATH and
                      s.args[0] == id)


def is_run_changed(path, **want):
    """A PropertiesChanged of the Run interface on path carrying these values."""
    def pred(s):
        if s.member != "PropertiesChanged" or s.interface != PROPERTIES or s.path != path or s.args[0] != RUN:
            return False
        return all(k in s.args[1] and s.args[1][k] == v for k, v in want.items())
    return pred


def run_changes(w, path):
    return [s for s in w.signals if is_run_changed(path)(s)]


def is_interfaces_added(path):
    return lambda s: (s.member == "InterfacesAdded" and s.interface == OBJECT_MANAGER and
                      s.path == MANAGER_PATH and s.args[0] == path)


def is_interfaces_removed(path):
    return lambda s: (s.member == "InterfacesRemoved" and s.interface == OBJECT_MANAGER and
                      s.path == MANAGER_PATH and s.args[0] == path)


def wait_finished(w, id, timeout=RUN_TIMEOUT):
    return w.wait_for(is_run_finished(id), timeout=timeout, what=f"RunFinished for run {id}")


def run_get(tree, id):
    with connect(tree.socket_path) as c:
        return c.call("run.get", {"id": id})


def usec_of_iso(iso):
    """The microseconds since the epoch of an ISO 8601 time (milliseconds, with an offset)."""
    epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    return (datetime.datetime.fromisoformat(iso) - epoch) // datetime.timedelta(microseconds=1)


def get_all(w, path):
    return w.get_all(path, interface=RUN)


# ---------------------------------------------------------------------------------------------------------


def test_run_object_follows_the_run(desk, watcher):
    with connect(desk.socket_path) as events:
        events.call("subscribe", {"topics": ["run.*"]})
        id, path = start_run(watcher, "lines")
        assert isinstance(id, int) and id > 0, id
        assert path == run_path(id)

        done = wait_finished(watcher, id)
        assert done.args == [id, "polls", "lines", "failed", 3], done
        # The socket's events for the same run, up to its run.finished.
        seen = []
        while not seen or seen[-1]["topic"] != "run.finished":
            e = events.next_event(RUN_TIMEOUT)
            if e["data"].get("id") == id:
                seen.append(e)
    topics = [e["topic"] for e in seen]
    assert topics[0] == "run.queued" and topics[1] == "run.started", topics
    assert topics.count("run.finished") == 1 and topics.count("run.log") >= 1, topics

    # InterfacesAdded first, with every property of the queued run.
    added = watcher.wait_for(is_interfaces_added(path), what="InterfacesAdded")
    assert BUILTIN_INTERFACES | {RUN} == set(added.args[1]), added
    props = added.args[1][RUN]
    assert set(props) == ALL_PROPERTIES, props
    assert props["Id"] == id and props["Workspace"] == "polls" and props["Preset"] == "lines"
    assert props["Label"] == "Print some lines"
    assert props["Status"] == "queued" and props["Progress"] == 0 and props["ExitCode"] == -1
    assert props["QueuedAt"] > 0 and props["StartedAt"] == 0 and props["FinishedAt"] == 0
    assert props["OutputLines"] == 0

    # One PropertiesChanged per event after run.queued, in the same order, nothing invalidated.
    changes = run_changes(watcher, path)
    assert len(changes) == len(topics) - 1, (topics, changes)
    for s in changes:
        assert s.args[2] == [], s
    started = changes[0].args[1]
    assert set(started) == {"Status", "Progress", "StartedAt"}, started
    assert started["Status"] == "running" and started["Progress"] == 5
    assert started["StartedAt"] >= props["QueuedAt"]
    for s in changes[1:-1]:
        assert set(s.args[1]) == {"Progress", "OutputLines"}, s
    assert changes[-2].args[1]["OutputLines"] == 4, changes
    final = changes[-1].args[1]
    assert final == {"Status": "failed", "Progress": 100, "ExitCode": 3, "StartedAt": started["StartedAt"],
                     "FinishedAt": final["FinishedAt"], "OutputLines": 4}, final
    assert final["FinishedAt"] >= started["StartedAt"]
    # Everything before the signal that says it is over, which comes exactly once.
    assert watcher.signals.index(added) < watcher.signals.index(changes[0])
    assert watcher.signals.index(changes[-1]) < watcher.signals.index(done)
    watcher.pump(0.2)
    assert len(watcher.find(is_run_finished(id))) == 1

    # The object agrees with the socket's run.get.
    now = get_all(watcher, path)
    run = run_get(desk, id)
    assert now == {"Id": id, "Workspace": "polls", "Preset": "lines", "Label": run["label"],
                   "Status": "failed", "Progress": 100, "ExitCode": 3, "QueuedAt": props["QueuedAt"],
                   "StartedAt": started["StartedAt"], "FinishedAt": final["FinishedAt"], "OutputLines": 4}, now
    assert run["status"] == "failed" and run["exit_code"] == 3 and run["output_lines"] == 4
    for prop, key in (("QueuedAt", "queued_at"), ("StartedAt", "started_at"), ("FinishedAt", "finished_at")):
        assert now[prop] // 1000 * 1000 == usec_of_iso(run[key]), (prop, now[prop], run[key])
    # And busctl says the same.
    assert busctl_json("get-property", BUS, path, RUN, "Status") == {"type": "s", "data": "failed"}
    assert busctl_json("get-property", BUS, path, RUN, "ExitCode") == {"type": "i", "data": 3}


def test_requested_by_uid_and_note(desk, watcher):
    id, _ = start_run(watcher, "hello", note="from the bus")
    wait_finished(watcher, id)
    run = run_get(desk, id)
    assert run["requested_by"] == "dbus:" + watcher.bus.get_unique_name(), run
    assert run["metadata"]["command"]["requested_by"] == run["requested_by"]
    assert run["uid"] == os.getuid()
    assert run["note"] == "from the bus"
    assert run["argv"] == ["/bin/echo", "hello"]
    # An empty note is no note.
    id2, _ = start_run(watcher, "hello")
    assert id2 > id
    wait_finished(watcher, id2)
    assert run_get(desk, id2)["note"] is None


def test_succeeded_run_and_get_log(desk, watcher):
    id, path = start_run(watcher, "say", {"word": "bonjour"})
    done = wait_finished(watcher, id)
    assert done.args == [id, "polls", "say", "succeeded", 0], done
    assert watcher.get(path, "ExitCode", interface=RUN) == 0

    log = json.loads(watcher.call(path, RUN, "GetLog", "tu", [0, 0]))
    assert log["id"] == id and log["status"] == "succeeded", log
    assert [(x["n"], x["stream"], x["text"]) for x in log["lines"]] == [(1, "stdout", "bonjour")], log
    assert log["next"] == 1
    # The same as the socket's run.logs.
    with connect(desk.socket_path) as c:
        assert log == c.call("run.logs", {"id": id})
    # Nothing after the last line.
    assert json.loads(watcher.call(path, RUN, "GetLog", "tu", [1, 0]))["lines"] == []
    # A since beyond any line number is not an error either.
    assert json.loads(watcher.call(path, RUN, "GetLog", "tu", [2**64 - 1, 0]))["lines"] == []


def test_get_log_pages(desk, watcher):
    id, path = start_run(watcher, "lines")
    wait_finished(watcher, id)
    first = json.loads(watcher.call(path, RUN, "GetLog", "tu", [0, 2]))
    assert [x["text"] for x in first["lines"]] == ["one", "two"], first
    assert first["next"] == 2
    rest = json.loads(watcher.call(path, RUN, "GetLog", "tu", [first["next"], 0]))
    assert [(x["n"], x["text"], x["stream"]) for x in rest["lines"]] == \
        [(3, "three", "stdout"), (4, "four", "stderr")], rest
    assert rest["output_lines"] == 4 and rest["truncated"] is False
    # With busctl.
    v = busctl_json("call", BUS, path, RUN, "GetLog", "tu", "0", "1")
    assert v["type"] == "s" and [x["text"] for x in json.loads(v["data"][0])["lines"]] == ["one"], v


def test_cancel_running_and_queued(desk, watcher):
    id1, path1 = start_run(watcher, "nap")
    watcher.wait_for(is_run_changed(path1, Status="running"), timeout=RUN_TIMEOUT, what="run 1 running")
    # The workspace runs one at a time: the second waits.
    id2, path2 = start_run(watcher, "nap", {"secs": "1"})
    assert watcher.get(path2, "Status", interface=RUN) == "queued"

    # Cancel() of the queued run: cancelled at once, it never started.
    assert watcher.call(path2, RUN, "Cancel") is None
    done2 = wait_finished(watcher, id2)
    assert done2.args == [id2, "polls", "nap", "cancelled", -1], done2
    props2 = get_all(watcher, path2)
    assert props2["Status"] == "cancelled" and props2["StartedAt"] == 0 and props2["ExitCode"] == -1, props2
    assert props2["Progress"] == 100 and props2["FinishedAt"] > 0
    assert watcher.get(path1, "Status", interface=RUN) == "running"

    # CancelRun of the running one: its group is killed, cancelled once it exited.
    assert watcher.call(MANAGER_PATH, MANAGER, "CancelRun", "t", [id1]) is None
    done1 = wait_finished(watcher, id1)
    run1 = run_get(desk, id1)
    assert run1["status"] == "cancelled", run1
    want_code = run1["exit_code"] if run1["exit_code"] is not None else -1
    assert done1.args == [id1, "polls", "nap", "cancelled", want_code], (done1, run1)
    watcher.wait_for(is_run_changed(path1, Status="cancelled", ExitCode=want_code, Progress=100),
                     what="run 1 cancelled")
    assert get_all(watcher, path1)["StartedAt"] > 0

    # A finished run cannot be cancelled; an unknown one is not found.
    name, message = watcher.call_error(MANAGER_PATH, MANAGER, "CancelRun", "t", [id1])
    assert name == "io.djdesk.Desk1.Error.Busy", (name, message)
    name, _ = watcher.call_error(path2, RUN, "Cancel")
    assert name == "io.djdesk.Desk1.Error.Busy", name
    for bad in (0, 424242, 2**63, 2**64 - 1):
        name, message = watcher.call_error(MANAGER_PATH, MANAGER, "CancelRun", "t", [bad])
        assert name == "io.djdesk.Desk1.Error.NotFound", (bad, name, message)
    watcher.pump(0.2)
    assert len(watcher.find(is_run_finished(id1))) == 1 and len(watcher.find(is_run_finished(id2))) == 1


def test_cancel_run_with_busctl(desk, watcher):
    id, path = start_run(watcher, "nap")
    busctl("call", BUS, MANAGER_PATH, MANAGER, "CancelRun", "t", str(id))
    assert wait_finished(watcher, id).args[3] == "cancelled"


def test_list_presets(desk, watcher):
    got = json.loads(watcher.call(MANAGER_PATH, MANAGER, "ListPresets"))
    with connect(desk.socket_path) as c:
        assert got == c.call("preset.list")
    keys = [p["key"] for p in got["presets"]]
    for key in list(TEST_PRESETS) + ["check", "migrate", "sqlmigrate"]:
        assert key in keys, keys
    say = next(p for p in got["presets"] if p["key"] == "say")
    assert say["argv"] == ["/bin/echo", "{word}"] and say["params"]["word"]["regex"] == "[a-z]+", say
    assert next(p for p in got["presets"] if p["key"] == "danger")["requires_confirmation"] is True
    v = busctl_json("call", BUS, MANAGER_PATH, MANAGER, "ListPresets")
    assert v["type"] == "s" and json.loads(v["data"][0]) == got


@pytest.mark.parametrize("workspace, preset, params, confirm, note, error, fragment", [
    ("polls", "nope", {}, False, "", "NotFound", "nope"),
    ("nope", "hello", {}, False, "", "NotFound", "nope"),
    ("polls", "danger", {}, False, "", "ConfirmationRequired", ""),
    ("polls", "say", {"word": "x; rm -rf ~"}, False, "", "InvalidArgs", "word"),
    ("polls", "say", {}, False, "", "InvalidArgs", "word"),
    ("polls", "say", {"word": "hi", "extra": "1"}, False, "", "InvalidArgs", "extra"),
    ("polls", "hello", {"word": "hi"}, False, "", "InvalidArgs", "word"),
    ("polls", "hello", {}, False, "n" * 281, "InvalidArgs", "note"),
])
def test_start_run_refusals(desk, watcher, workspace, preset, params, confirm, note, error, fragment):
    name, message = start_run_error(watcher, preset, params, confirm, note, workspace=workspace)
    assert name == "io.djdesk.Desk1.Error." + error, (name, message)
    assert fragment in message, message
    # A refused request creates nothing.
    with connect(desk.socket_path) as c:
        assert c.call("run.list")["runs"] == []
    assert not [s for s in watcher.signals if s.member in ("InterfacesAdded", "RunFinished") and
                (s.member == "RunFinished" or s.args[0].startswith(RUN_PREFIX))]
    assert not [p for p in watcher.call(MANAGER_PATH, OBJECT_MANAGER, "GetManagedObjects")
                if p.startswith(RUN_PREFIX)]


def test_confirmation_given(desk, watcher):
    id, _ = start_run(watcher, "danger", confirm=True)
    assert wait_finished(watcher, id).args == [id, "polls", "danger", "succeeded", 0]


def test_start_run_with_busctl(desk, watcher):
    v = busctl_json("call", BUS, MANAGER_PATH, MANAGER, "StartRun", "ssa{ss}bs", "polls", "say", "1", "word",
                    "hi", "false", "a note")
    assert v["type"] == "to", v
    id, path = v["data"]
    assert path == run_path(id)
    assert wait_finished(watcher, id).args == [id, "polls", "say", "succeeded", 0]
    run = run_get(desk, id)
    assert run["argv"] == ["/bin/echo", "hi"] and run["note"] == "a note" and run["params"] == {"word": "hi"}
    assert run["requested_by"].startswith("dbus::"), run
    # A repeated param is refused before the operation sees it.
    p = busctl("call", BUS, MANAGER_PATH, MANAGER, "StartRun", "ssa{ss}bs", "polls", "say", "2", "word", "a",
               "word", "b", "false", "", check=False)
    assert p.returncode != 0 and "given twice" in p.stderr, p.stderr


def test_objects_listed_and_introspected(desk, watcher):
    id, path = start_run(watcher, "hello")
    wait_finished(watcher, id)
    objs = watcher.call(MANAGER_PATH, OBJECT_MANAGER, "GetManagedObjects")
    assert path in objs, objs
    assert objs[path][RUN]["Status"] == "succeeded" and objs[path][RUN]["Id"] == id
    assert path in busctl("tree", BUS).stdout

    live = interfaces(ET.fromstring(busctl("--xml-interface", "introspect", BUS, path).stdout))
    with open(XML, "rb") as f:
        src = interfaces(ET.fromstring(f.read()))
    assert RUN in src, f"{XML} does not describe {RUN}"
    assert {n for n in live if n.startswith("io.djdesk.Desk1")} == {RUN}, sorted(live)
    want = describe_interface(src[RUN])
    got = describe_interface(live[RUN])
    for part in ("methods", "properties", "signals", "annotations"):
        assert got[part] == want[part], f"{RUN}: {part} differ\n  live: {got[part]}\n  xml:  {want[part]}"
    # The Manager's run members too (test_dbus.py compares the whole interface; this names them).
    mgr = describe_interface(interfaces(ET.fromstring(
        busctl("--xml-interface", "introspect", BUS, MANAGER_PATH).stdout))[MANAGER])
    assert mgr["methods"]["StartRun"]["args"] == (
        ("workspace", "s", "in"), ("preset", "s", "in"), ("params", "a{ss}", "in"), ("confirm", "b", "in"),
        ("note", "s", "in"), ("id", "t", "out"), ("run", "o", "out"))
    assert mgr["signals"]["RunFinished"]["args"] == (
        ("id", "t"), ("workspace", "s"), ("preset", "s"), ("status", "s"), ("exit_code", "i"))
    assert mgr == describe_interface(src[MANAGER])
    # The parent node lists the run.
    root = ET.fromstring(busctl("--xml-interface", "introspect", BUS, RUN_PREFIX).stdout)
    assert str(id) in [n.get("name") for n in root.findall("node")]


@pytest.mark.parametrize("suffix", ["0", "0{id}", "_2b{id}", "{id}x", "{id}/log", "424242",
                                    "18446744073709551617", "99999999999999999999999"])
def test_unknown_run_objects(desk, watcher, suffix):
    id, path = start_run(watcher, "hello")  # the run exists: only the spelling of its id is wrong
    wait_finished(watcher, id)
    assert watcher.get(path, "Id", interface=RUN) == id
    path = f"{RUN_PREFIX}/" + suffix.format(id=id)
    name, _ = watcher.call_error(path, PROPERTIES, "Get", "ss", [RUN, "Status"])
    assert name == "org.freedesktop.DBus.Error.UnknownObject", name
    name, _ = watcher.call_error(path, RUN, "Cancel")
    assert name == "org.freedesktop.DBus.Error.UnknownObject", name


@pytest.mark.parametrize("member, sig, args", [("Cancel", "s", ["x"]), ("GetLog", "t", ["1"])])
def test_run_methods_check_arguments(desk, watcher, member, sig, args):
    id, path = start_run(watcher, "nap")
    p = busctl("call", BUS, path, RUN, member, sig, *args, check=False)
    assert p.returncode != 0
    assert watcher.get(path, "Status", interface=RUN) in ("queued", "running")
    watcher.call(path, RUN, "Cancel")
    wait_finished(watcher, id)


def test_old_finished_runs_leave_the_bus(desk, watcher):
    n = RUN_KEEP_FINISHED + 2
    ids = [start_run(watcher, "true")[0] for _ in range(n)]
    assert ids == sorted(ids) and len(set(ids)) == n
    for id in ids:
        assert wait_finished(watcher, id).args[3] == "succeeded"
    # The two oldest are no longer in memory: their objects were withdrawn, as announced.
    for id in ids[:2]:
        added = watcher.wait_for(is_interfaces_added(run_path(id)), what=f"InterfacesAdded {id}")
        removed = watcher.wait_for(is_interfaces_removed(run_path(id)), what=f"InterfacesRemoved {id}")
        assert sorted(removed.args[1]) == sorted(added.args[1]), (added, removed)
        name, _ = watcher.call_error(run_path(id), PROPERTIES, "Get", "ss", [RUN, "Status"])
        assert name == "org.freedesktop.DBus.Error.UnknownObject", name
        assert run_get(desk, id)["status"] == "succeeded"  # still in the store
    objs = [p for p in watcher.call(MANAGER_PATH, OBJECT_MANAGER, "GetManagedObjects")
            if p.startswith(RUN_PREFIX + "/")]
    assert sorted(objs) == sorted(run_path(id) for id in ids[2:]), objs
    assert not watcher.find(lambda s: s.member == "InterfacesRemoved" and
                            s.args[0] in {run_path(id) for id in ids[2:]})


def test_runs_of_a_removed_workspace_leave_the_bus(desk, watcher):
    with connect(desk.socket_path) as c:
        add_workspace(c, desk.copy_sample("polls", os.path.join(desk.home, "projects", "other")),
                      name="other")
    done, _ = start_run(watcher, "hello", workspace="other")
    wait_finished(watcher, done)
    running, running_path = start_run(watcher, "nap", workspace="other")
    watcher.wait_for(is_run_changed(running_path, Status="running"), timeout=RUN_TIMEOUT, what="running")
    kept, kept_path = start_run(watcher, "hello")
    wait_finished(watcher, kept)

    assert watcher.call(MANAGER_PATH, MANAGER, "RemoveWorkspace", "sb", ["other", False], timeout=60) is None
    # The running run was cancelled (RunFinished once), and both runs' objects were withdrawn.
    assert wait_finished(watcher, running).args[1:4] == ["other", "nap", "cancelled"]
    for id in (done, running):
        watcher.wait_for(is_interfaces_removed(run_path(id)), what=f"InterfacesRemoved {id}")
    objs = [p for p in watcher.call(MANAGER_PATH, OBJECT_MANAGER, "GetManagedObjects")
            if p.startswith(RUN_PREFIX + "/")]
    assert objs == [kept_path], objs
    assert not watcher.find(is_interfaces_removed(kept_path))
    assert len(watcher.find(is_run_finished(running))) == 1
