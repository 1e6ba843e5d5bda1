# SPDX-License-Identifier: MIT
"""Workspaces on the bus: Manager.AddWorkspace/RemoveWorkspace/ListWorkspaces, one object per workspace with
live properties, InterfacesAdded/InterfacesRemoved and PropertiesChanged, Start/Stop/Restart through the
server operations, and the Workspace interface's introspection against dbus/io.djdesk.Desk1.xml."""

import os
import socket
import urllib.request
import xml.etree.ElementTree as ET

import pytest

from conftest import DJANGO_PYTHON, busctl, busctl_json, connect, needs_bus
from dbuswatch import (BUS, MANAGER, MANAGER_PATH, OBJECT_MANAGER, WORKSPACE, WORKSPACE_PREFIX, Watcher,
                       dbus, is_properties_changed)
from test_dbus import XML, describe_interface, interfaces

pytestmark = needs_bus

SERVER_TIMEOUT = 60.0  # a start runs migrations; generous for sanitizer builds

BUILTIN_INTERFACES = {"org.freedesktop.DBus.Peer", "org.freedesktop.DBus.Introspectable",
                      "org.freedesktop.DBus.Properties"}


@pytest.fixture
def watcher():
    with Watcher() as w:
        yield w


def add_with_busctl(*options):
    """AddWorkspace through busctl; options are (key, type, value) triples. Returns the object path."""
    args = []
    for key, t, value in options:
        args += [key, t, str(value)]
    v = busctl_json("call", BUS, MANAGER_PATH, MANAGER, "AddWorkspace", "a{sv}", str(len(options)), *args,
                    timeout=60)
    assert v["type"] == "o", v
    return v["data"][0]


def options(**kw):
    """An a{sv} for dbus-python; ints are sent as the given dbus type (e.g. port=dbus.UInt16(80))."""
    return dbus.Dictionary(kw, signature="sv")


def get_property(path, prop):
    return busctl_json("get-property", BUS, path, WORKSPACE, prop)


def list_workspaces(w):
    return [tuple(x) for x in w.call(MANAGER_PATH, MANAGER, "ListWorkspaces")]


def managed_objects(w):
    return w.call(MANAGER_PATH, OBJECT_MANAGER, "GetManagedObjects")


def is_interfaces_added(path):
    return lambda s: (s.member == "InterfacesAdded" and s.interface == OBJECT_MANAGER and
                      s.path == MANAGER_PATH and s.args[0] == path)


def is_interfaces_removed(path):
    return lambda s: (s.member == "InterfacesRemoved" and s.interface == OBJECT_MANAGER and
                      s.path == MANAGER_PATH and s.args[0] == path)


# ---------------------------------------------------------------------------------------------------------


def test_add_workspace_with_busctl(tree, daemon, watcher):
    project = tree.copy_sample("polls")
    path = add_with_busctl(("path", "s", project), ("python", "s", DJANGO_PYTHON))
    assert path == WORKSPACE_PREFIX + "/polls"

    # Every property, read live.
    want = {
        "Slug": ("s", "polls"),
        "Name": ("s", "polls"),
        "ProjectPath": ("s", os.path.realpath(project)),
        "SettingsModule": ("s", "mysite.settings"),
        "Python": ("s", DJANGO_PYTHON),
        "ServerState": ("s", "stopped"),
        "URL": ("s", ""),
        "Port": ("q", 0),
        "Pid": ("u", 0),
        "Restarts": ("u", 0),
        "LastError": ("s", ""),
    }
    for prop, (t, value) in want.items():
        assert get_property(path, prop) == {"type": t, "data": value}, prop
    dv = get_property(path, "DjangoVersion")
    assert dv["type"] == "s" and dv["data"].split(".")[0].isdigit(), dv

    # The same through the socket.
    with connect(tree.socket_path) as c:
        ws = c.call("workspace.get", {"workspace": "polls"})
    assert ws["object_path"] == path
    assert ws["django_version"] == dv["data"]

    # InterfacesAdded came with the properties.
    s = watcher.wait_for(is_interfaces_added(path), what="InterfacesAdded")
    assert WORKSPACE in s.args[1], s
    assert s.args[1][WORKSPACE]["Slug"] == "polls"
    assert s.args[1][WORKSPACE]["ServerState"] == "stopped"
    assert BUILTIN_INTERFACES <= set(s.args[1]), s


def test_add_list_remove_with_signals(tree, daemon, watcher):
    project = tree.copy_sample("polls")
    path = watcher.call(MANAGER_PATH, MANAGER, "AddWorkspace", "a{sv}",
                        [options(path=project, python=DJANGO_PYTHON, name="Polls Two")], timeout=60)
    assert path == WORKSPACE_PREFIX + "/polls_2dtwo"
    added = watcher.wait_for(is_interfaces_added(path), what="InterfacesAdded")
    assert added.args[1][WORKSPACE]["Name"] == "Polls Two"

    assert list_workspaces(watcher) == [("polls-two", "Polls Two", path)]
    objs = managed_objects(watcher)
    assert path in objs, objs
    assert objs[path][WORKSPACE]["Slug"] == "polls-two"
    assert objs[path][WORKSPACE]["ProjectPath"] == os.path.realpath(project)

    # busctl tree lists it (the node enumerator), and introspecting the object works.
    out = busctl("tree", BUS).stdout
    assert path in out, out
    out = busctl("introspect", BUS, path).stdout
    assert WORKSPACE in out and ".Start" in out and ".ServerState" in out, out

    assert watcher.call(MANAGER_PATH, MANAGER, "RemoveWorkspace", "sb", ["polls-two", False], timeout=60) \
        is None
    removed = watcher.wait_for(is_interfaces_removed(path), what="InterfacesRemoved")
    assert WORKSPACE in removed.args[1], removed
    # What was announced is what is withdrawn (the daemon lists the interfaces itself at removal).
    assert sorted(removed.args[1]) == sorted(added.args[1]), (added, removed)

    # The object is gone everywhere.
    assert list_workspaces(watcher) == []
    assert path not in managed_objects(watcher)
    name, _ = watcher.call_error(path, "org.freedesktop.DBus.Properties", "Get", "ss", [WORKSPACE, "Slug"])
    assert name in ("org.freedesktop.DBus.Error.UnknownObject", "io.djdesk.Desk1.Error.NotFound"), name
    p = busctl("get-property", BUS, path, WORKSPACE, "Slug", check=False)
    assert p.returncode != 0
    # The project directory is untouched.
    assert os.path.exists(os.path.join(project, "manage.py"))


def test_slug_with_dash_is_path_encoded(tree, daemon):
    project = tree.copy_sample("polls", dest=os.path.join(tree.home, "projects", "my-site"))
    path = add_with_busctl(("path", "s", project), ("python", "s", DJANGO_PYTHON))
    assert path == "/io/djdesk/Desk1/workspace/my_2dsite"
    assert get_property(path, "Slug") == {"type": "s", "data": "my-site"}
    assert get_property(path, "Name") == {"type": "s", "data": "my-site"}
    v = busctl_json("call", BUS, MANAGER_PATH, MANAGER, "ListWorkspaces")
    assert v == {"type": "a(sso)", "data": [[["my-site", "my-site", path]]]}


def test_workspaces_from_the_store_are_exported(tree):
    project = tree.copy_sample("polls")
    d = tree.start()
    path = add_with_busctl(("path", "s", project), ("python", "s", DJANGO_PYTHON))
    assert d.stop() == 0
    tree.start()
    assert get_property(path, "Slug") == {"type": "s", "data": "polls"}
    v = busctl_json("call", BUS, MANAGER_PATH, MANAGER, "ListWorkspaces")
    assert v["data"] == [[["polls", "polls", path]]]


def test_start_stop_restart(tree, daemon, watcher):
    project = tree.copy_sample("polls")
    path = watcher.call(MANAGER_PATH, MANAGER, "AddWorkspace", "a{sv}",
                        [options(path=project, python=DJANGO_PYTHON)], timeout=60)

    url = watcher.call(path, WORKSPACE, "Start", timeout=SERVER_TIMEOUT)
    assert url.startswith("http://127.0.0.1:") and url.endswith("/"), url
    port = int(url.rsplit(":", 1)[1].rstrip("/"))
    props = watcher.get_all(path)
    assert props["ServerState"] == "ready"
    assert props["URL"] == url
    assert props["Port"] == port
    assert props["Pid"] > 0
    assert props["LastError"] == ""
    # PropertiesChanged said so, with the values.
    watcher.wait_for(is_properties_changed(path, ServerState="starting"), what="ServerState starting")
    s = watcher.wait_for(is_properties_changed(path, ServerState="ready"), what="ServerState ready")
    assert s.args[1]["URL"] == url and s.args[1]["Port"] == port and s.args[1]["Pid"] == props["Pid"], s
    # It serves.
    with urllib.request.urlopen(url, timeout=20) as r:
        assert r.status == 200

    # Start again: already ready, the same URL at once.
    assert watcher.call(path, WORKSPACE, "Start", timeout=SERVER_TIMEOUT) == url

    url2 = watcher.call(path, WORKSPACE, "Restart", timeout=SERVER_TIMEOUT)
    assert url2.startswith("http://127.0.0.1:"), url2
    assert watcher.get(path, "ServerState") == "ready"
    assert watcher.get(path, "URL") == url2

    n = len(watcher.signals)
    assert watcher.call(path, WORKSPACE, "Stop", timeout=SERVER_TIMEOUT) is None
    props = watcher.get_all(path)
    assert props["ServerState"] == "stopped"
    assert props["URL"] == ""
    assert props["Pid"] == 0
    assert props["Port"] == int(url2.rsplit(":", 1)[1].rstrip("/"))  # the last port, kept for next time
    s = watcher.wait_for(lambda s: s in watcher.signals[n:] and
                         is_properties_changed(path, ServerState="stopped")(s), what="ServerState stopped")
    assert s.args[1]["URL"] == "" and s.args[1]["Pid"] == 0, s


def test_start_error_is_mapped(tree, watcher):
    # A forced port that is busy: the start fails with Busy, the state is failed with a reason.
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    busy = holder.getsockname()[1]
    try:
        tree.start(env={"DJDESK_FORCE_PORT": str(busy)})
        project = tree.copy_sample("polls")
        path = watcher.call(MANAGER_PATH, MANAGER, "AddWorkspace", "a{sv}",
                            [options(path=project, python=DJANGO_PYTHON)], timeout=60)
        name, message = watcher.call_error(path, WORKSPACE, "Start", timeout=SERVER_TIMEOUT)
        assert name == "io.djdesk.Desk1.Error.Busy", (name, message)
        assert str(busy) in message, message
        props = watcher.get_all(path)
        assert props["ServerState"] == "failed", props
        assert str(busy) in props["LastError"], props
        watcher.wait_for(is_properties_changed(path, ServerState="failed"), what="ServerState failed")
    finally:
        holder.close()


def test_workspace_update_emits_properties_changed(tree, daemon, watcher):
    project = tree.copy_sample("polls")
    path = add_with_busctl(("path", "s", project), ("python", "s", DJANGO_PYTHON))
    with connect(tree.socket_path) as c:
        c.call("workspace.update", {"workspace": "polls", "name": "Renamed polls"})
    s = watcher.wait_for(is_properties_changed(path, Name="Renamed polls"), what="Name changed")
    assert s.args[1]["SettingsModule"] == "mysite.settings", s
    assert get_property(path, "Name") == {"type": "s", "data": "Renamed polls"}
    assert get_property(path, "Slug") == {"type": "s", "data": "polls"}  # the slug never changes


@pytest.mark.parametrize("opts, fragment", [
    ({"path": "P", "colour": dbus.String("red")}, "unknown option 'colour'"),
    ({"path": dbus.Int32(5)}, "option 'path' must be of type 's'"),
    ({"path": "P", "port": dbus.String("80")}, "option 'port' must be of type 'q' or 'u'"),
    ({"path": "P", "port": dbus.Int32(80)}, "option 'port'"),
    ({"path": "P", "port": dbus.UInt32(70000)}, "70000"),
    ({"path": "P", "mode": "fast"}, "fast"),
    ({"path": "P", "autostart": dbus.String("yes")}, "option 'autostart' must be of type 'b'"),
    ({"name": "nameless"}, "path"),
])
def test_add_workspace_invalid_options(tree, daemon, watcher, opts, fragment):
    project = tree.copy_sample("polls")
    opts = {k: (project if v == "P" else v) for k, v in opts.items()}
    name, message = watcher.call_error(MANAGER_PATH, MANAGER, "AddWorkspace", "a{sv}", [options(**opts)])
    assert name == "io.djdesk.Desk1.Error.InvalidArgs", (name, message)
    assert fragment in message, message
    assert list_workspaces(watcher) == []


def test_add_workspace_invalid_options_with_busctl(tree, daemon):
    project = tree.copy_sample("polls")
    p = busctl("call", BUS, MANAGER_PATH, MANAGER, "AddWorkspace", "a{sv}", "2", "path", "s", project,
               "bogus", "b", "true", check=False)
    assert p.returncode != 0
    assert "unknown option 'bogus'" in p.stderr, p.stderr


def test_add_workspace_refusals_keep_their_names(tree, daemon, watcher):
    project = tree.copy_sample("polls")
    watcher.call(MANAGER_PATH, MANAGER, "AddWorkspace", "a{sv}", [options(path=project, python=DJANGO_PYTHON)],
                 timeout=60)
    # The same path again: a conflict.
    name, message = watcher.call_error(MANAGER_PATH, MANAGER, "AddWorkspace", "a{sv}",
                                       [options(path=project, python=DJANGO_PYTHON)], timeout=60)
    assert name == "io.djdesk.Desk1.Error.Busy", (name, message)
    # A protected path.
    name, message = watcher.call_error(MANAGER_PATH, MANAGER, "AddWorkspace", "a{sv}",
                                       [options(path="/etc")], timeout=60)
    assert name == "io.djdesk.Desk1.Error.NotAllowed", (name, message)


def test_unknown_workspace(tree, daemon, watcher):
    path = WORKSPACE_PREFIX + "/nope"
    name, _ = watcher.call_error(path, WORKSPACE, "Start")
    assert name in ("org.freedesktop.DBus.Error.UnknownObject", "io.djdesk.Desk1.Error.NotFound"), name
    name, message = watcher.call_error(MANAGER_PATH, MANAGER, "RemoveWorkspace", "sb", ["nope", False])
    assert name == "io.djdesk.Desk1.Error.NotFound", (name, message)
    assert "nope" in message


def test_workspace_introspection_matches_xml(tree, daemon):
    project = tree.copy_sample("polls")
    path = add_with_busctl(("path", "s", project), ("python", "s", DJANGO_PYTHON))
    live = interfaces(ET.fromstring(busctl("--xml-interface", "introspect", BUS, path).stdout))
    with open(XML, "rb") as f:
        src = interfaces(ET.fromstring(f.read()))
    assert WORKSPACE in live, sorted(live)
    assert WORKSPACE in src, f"{XML} does not describe {WORKSPACE}"
    ours = {n for n in live if n.startswith("io.djdesk.Desk1")}
    assert ours == {WORKSPACE}, sorted(ours)
    want = describe_interface(src[WORKSPACE])
    got = describe_interface(live[WORKSPACE])
    for part in ("methods", "properties", "signals", "annotations"):
        assert got[part] == want[part], f"{WORKSPACE}: {part} differ\n  live: {got[part]}\n  xml:  {want[part]}"
    # The parent node lists the workspace as a child.
    root = ET.fromstring(busctl("--xml-interface", "introspect", BUS, WORKSPACE_PREFIX).stdout)
    assert "polls" in [n.get("name") for n in root.findall("node")]


@pytest.mark.parametrize("member", ["Start", "Stop", "Restart"])
def test_workspace_methods_reject_arguments(tree, daemon, member):
    project = tree.copy_sample("polls")
    path = add_with_busctl(("path", "s", project), ("python", "s", DJANGO_PYTHON))
    p = busctl("call", BUS, path, WORKSPACE, member, "s", "extra", check=False)
    assert p.returncode != 0
    assert get_property(path, "ServerState") == {"type": "s", "data": "stopped"}
