# SPDX-License-Identifier: MIT
"""The workspace registry: workspace.add/list/get/update/remove, interpreter detection, samples."""

import json
import os
import re
import socket

import pytest

from conftest import DJANGO_PYTHON, SAMPLES_DIR, RpcError, connect

VERSION_RE = re.compile(r"^\d+\.\d+(\.\d+)?")


def add(rpc, path, **params):
    p = {"path": path}
    p.setdefault("python", DJANGO_PYTHON)
    p.update(params)
    if p["python"] is None:
        del p["python"]
    return rpc.call("workspace.add", p)


def refused(rpc, method, params):
    with pytest.raises(RpcError) as e:
        rpc.call(method, params)
    return e.value.error


def subscribed(tree, topics):
    rpc = connect(tree.socket_path)
    rpc.call("subscribe", {"topics": topics})
    return rpc


def make_project(root, name, settings="mysite.settings", manage_default=True):
    """A minimal Django project directory (never run: enough for the registry)."""
    path = os.path.join(root, name)
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "manage.py"), "w") as f:
        f.write("#!/usr/bin/env python3\nimport os\nimport sys\n\n\ndef main():\n")
        if manage_default:
            f.write(f"    os.environ.setdefault(\"DJANGO_SETTINGS_MODULE\", \"{settings}\")\n")
        f.write("    from django.core.management import execute_from_command_line\n"
                "    execute_from_command_line(sys.argv)\n\n\nmain()\n")
    return path


def fake_path_without_django(tree):
    """A PATH holding only a python3 that cannot import Django (site-packages off), like pyenv's."""
    d = os.path.join(tree.root, "fakebin")
    os.makedirs(d, exist_ok=True)
    p = os.path.join(d, "python3")
    with open(p, "w") as f:
        f.write("#!/bin/sh\nexec /usr/bin/python3 -S -E \"$@\"\n")
    os.chmod(p, 0o755)
    return d


# ---------------------------------------------------------------------------------------------------------
# add


def test_add_polls(tree, daemon):
    path = tree.copy_sample("polls")
    with connect(tree.socket_path) as rpc, subscribed(tree, ["workspace.*"]) as sub:
        w = add(rpc, path)
        assert w["slug"] == "polls"
        assert w["name"] == "polls"
        assert w["path"] == os.path.realpath(path)
        assert w["settings_module"] == "mysite.settings"
        assert w["settings_source"] == "manage.py"
        assert w["python"] == DJANGO_PYTHON
        assert w["interpreter"] == DJANGO_PYTHON
        assert VERSION_RE.match(w["django_version"]), w
        assert w["port"] is None and w["last_port"] is None
        assert w["autostart"] is False and w["autoreload"] is True and w["migrate_on_start"] is True
        assert w["mode"] == "serve"
        assert w["object_path"] == "/io/djdesk/Desk1/workspace/polls"
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", w["created_at"])
        assert "server" in w
        e = sub.wait_event("workspace.added")
        assert e["data"]["workspace"]["slug"] == "polls"
        assert e["data"]["workspace"]["path"] == w["path"]
        assert rpc.call("workspace.get", {"workspace": "polls"}) == w
        assert [x["slug"] for x in rpc.call("workspace.list")["workspaces"]] == ["polls"]


def test_add_options(tree, daemon):
    path = tree.copy_sample("atlas")
    with connect(tree.socket_path) as rpc:
        w = add(rpc, path, name="My Atlas", port=8765, autostart=True, autoreload=False,
                migrate_on_start=False, mode="runserver", settings_module="atlas.settings")
        assert w["slug"] == "my-atlas"
        assert w["name"] == "My Atlas"
        assert w["port"] == 8765
        assert (w["autostart"], w["autoreload"], w["migrate_on_start"]) == (True, False, False)
        assert w["mode"] == "runserver"
        assert w["settings_module"] == "atlas.settings"
        assert w["settings_source"] == "given"
        assert w["object_path"] == "/io/djdesk/Desk1/workspace/my_2datlas"


# ---------------------------------------------------------------------------------------------------------
# refusals


def _refusal_cases(tree):
    home = tree.home
    projects = os.path.join(home, "projects")
    os.makedirs(projects, exist_ok=True)
    afile = os.path.join(projects, "afile")
    with open(afile, "w") as f:
        f.write("x")
    nomanage = os.path.join(projects, "nomanage")
    os.makedirs(nomanage, exist_ok=True)
    ssh = make_project(os.path.join(home, ".ssh"), "x")
    gnupg = make_project(os.path.join(home, ".gnupg"), "y")
    in_runtime = make_project(tree.runtime, "proj")
    missing = os.path.join(projects, "missing")
    return [
        # (params, code, value, message fragment)
        ({"path": missing}, -32004, missing, "does not exist"),
        ({"path": afile}, -32004, afile, "not a directory"),
        ({"path": nomanage}, -32004, nomanage, "manage.py"),
        ({"path": "/"}, -32004, "/", "root directory"),
        ({"path": home}, -32004, home, "home directory"),
        ({"path": "/etc"}, -32004, "/etc", "/etc"),
        ({"path": "/usr/lib"}, -32004, "/usr/lib", "/usr"),
        ({"path": "/proc"}, -32004, "/proc", "/proc"),
        ({"path": tree.runtime}, -32004, tree.runtime, "runtime directory"),
        ({"path": in_runtime}, -32004, in_runtime, "runtime directory"),
        ({"path": ssh}, -32004, ssh, ".ssh"),
        ({"path": gnupg}, -32004, gnupg, ".gnupg"),
        ({"path": "projects/polls"}, -32004, "projects/polls", "absolute"),
        ({"path": ""}, -32004, "", None),
    ]


def test_add_refusals(tree, daemon):
    polls = tree.copy_sample("polls")
    with connect(tree.socket_path) as rpc:
        for params, code, value, fragment in _refusal_cases(tree):
            err = refused(rpc, "workspace.add", dict(params, python=DJANGO_PYTHON))
            assert err["code"] == code, (params, err)
            assert err["data"]["kind"] == "not_allowed", err
            assert err["data"].get("value") == value, (params, err)
            if value:
                assert value in err["message"] or os.path.realpath(value) in err["message"], err
            if fragment:
                assert fragment in err["message"], (params, err)

        bad = [
            ({"port": 70000}, "70000", "port"),
            ({"mode": "fast"}, "fast", "mode 'fast'"),
            ({"settings_module": "my site.settings"}, "my site.settings", "my site.settings"),
            ({"settings_module": "mysite..settings"}, "mysite..settings", "mysite..settings"),
            ({"name": ""}, "", "name"),
            ({"name": "tab\there"}, "tab\there", "control character"),
            ({"name": "x" * 129}, "x" * 129, "128"),
            ({"python": "bin/python3"}, "bin/python3", "bin/python3"),
            ({"bogus": 1}, "bogus", "unknown parameter 'bogus'"),
            ({"port": -1}, "port", "port"),
            ({"autostart": "yes"}, "autostart", "autostart"),
        ]
        for extra, value, fragment in bad:
            params = {"path": polls, "python": DJANGO_PYTHON}
            params.update(extra)
            err = refused(rpc, "workspace.add", params)
            assert err["code"] == -32602, (extra, err)
            assert err["data"]["kind"] == "invalid"
            assert err["data"].get("value") == value, (extra, err)
            assert fragment in err["message"], (extra, err)

        err = refused(rpc, "workspace.add", {"python": DJANGO_PYTHON})
        assert err["code"] == -32602 and "path" in err["message"]
        # nothing was registered by any of these
        assert rpc.call("workspace.list")["workspaces"] == []


def test_add_already_registered(tree, daemon):
    polls = tree.copy_sample("polls")
    link = os.path.join(tree.home, "polls-link")
    os.symlink(polls, link)
    with connect(tree.socket_path) as rpc:
        w = add(rpc, polls)
        for p in (polls, polls + "/", link, os.path.join(tree.home, "projects", "..", "projects", "polls")):
            err = refused(rpc, "workspace.add", {"path": p, "python": DJANGO_PYTHON, "name": "other"})
            assert err["code"] == -32003, err
            assert err["data"]["kind"] == "busy"
            assert w["slug"] in err["message"] and w["path"] in err["message"], err
        assert len(rpc.call("workspace.list")["workspaces"]) == 1


def test_not_owned_refused(tree, daemon):
    if os.getuid() != 0:
        pytest.skip("needs root to make a directory owned by someone else")
    p = make_project(os.path.join(tree.home, "projects"), "foreign")
    os.chown(p, 65534, 65534)
    with connect(tree.socket_path) as rpc:
        err = refused(rpc, "workspace.add", {"path": p, "python": DJANGO_PYTHON})
        assert err["code"] == -32004 and "owned by uid 65534" in err["message"], err


def test_manage_py_symlink_refused(tree, daemon):
    p = os.path.join(tree.home, "projects", "linked")
    os.makedirs(p)
    real = make_project(os.path.join(tree.home, "projects"), "real")
    os.symlink(os.path.join(real, "manage.py"), os.path.join(p, "manage.py"))
    with connect(tree.socket_path) as rpc:
        err = refused(rpc, "workspace.add", {"path": p, "python": DJANGO_PYTHON})
        assert err["code"] == -32004 and "not a regular file" in err["message"], err


# ---------------------------------------------------------------------------------------------------------
# slugs


def test_slug_unique_and_folded(tree, daemon):
    a = make_project(os.path.join(tree.home, "a"), "shop")
    b = make_project(os.path.join(tree.home, "b"), "shop")
    c = make_project(os.path.join(tree.home, "c"), "shop")
    d = make_project(os.path.join(tree.home, "d"), "cafe")
    e = make_project(os.path.join(tree.home, "e"), "rocket")
    with connect(tree.socket_path) as rpc:
        assert add(rpc, a)["slug"] == "shop"
        assert add(rpc, b)["slug"] == "shop-2"
        assert add(rpc, c)["slug"] == "shop-3"
        w = add(rpc, d, name="Café Straße Łódź Ærø")
        assert w["slug"] == "cafe-strasse-lodz-aero"
        assert w["name"] == "Café Straße Łódź Ærø"
        assert add(rpc, e, name="🚀🚀")["slug"] == "workspace"
        slugs = [w["slug"] for w in rpc.call("workspace.list")["workspaces"]]
        assert slugs == ["shop", "shop-2", "shop-3", "cafe-strasse-lodz-aero", "workspace"]


# ---------------------------------------------------------------------------------------------------------
# settings module


def test_settings_sources(tree):
    tree.start(env={"DJANGO_SETTINGS_MODULE": "fromenv.settings"})
    withdefault = make_project(os.path.join(tree.home, "p"), "withdefault", settings="proj.settings.dev")
    nodefault = make_project(os.path.join(tree.home, "p"), "nodefault", manage_default=False)
    given = make_project(os.path.join(tree.home, "p"), "given", manage_default=False)
    with connect(tree.socket_path) as rpc:
        w = add(rpc, withdefault)
        assert (w["settings_module"], w["settings_source"]) == ("proj.settings.dev", "manage.py")
        w = add(rpc, nodefault)
        assert (w["settings_module"], w["settings_source"]) == ("fromenv.settings", "environment")
        w = add(rpc, given, settings_module="given.settings")
        assert (w["settings_module"], w["settings_source"]) == ("given.settings", "given")


def test_settings_unknown(tree, daemon):
    nodefault = make_project(os.path.join(tree.home, "p"), "nodefault", manage_default=False)
    with connect(tree.socket_path) as rpc:
        err = refused(rpc, "workspace.add", {"path": nodefault, "python": DJANGO_PYTHON})
        assert err["code"] == -32602, err
        assert "cannot tell the settings module" in err["message"], err
        assert nodefault in err["message"]


# ---------------------------------------------------------------------------------------------------------
# interpreter detection


def test_interpreter_none_can_import_django(tree):
    fake = fake_path_without_django(tree)
    tree.start(env={"PATH": fake, "DJDESK_PYTHON": None})
    polls = tree.copy_sample("polls")
    with connect(tree.socket_path) as rpc:
        err = refused(rpc, "workspace.add", {"path": polls})
        assert err["code"] == -32602, err
        msg = err["message"]
        assert "cannot import django" in msg, msg
        assert "ModuleNotFoundError" in msg, msg
        assert os.path.join(fake, "python3") in msg, msg
        assert ".venv/bin/python" in msg and "venv/bin/python" in msg, msg
        assert "python (PATH): not found" in msg, msg
        tried = json.loads(err["data"]["value"])
        sources = [t["source"] for t in tried]
        assert sources == ["project .venv", "project venv", "bundled", "PATH", "PATH"], tried
        py3 = [t for t in tried if t["python"] == "python3"][0]
        assert py3["path"] == os.path.join(fake, "python3")
        assert py3["reason"].startswith("cannot import django"), py3
        assert rpc.call("workspace.list")["workspaces"] == []

        # The workspace's own python is tried first, and named.
        err = refused(rpc, "workspace.add", {"path": polls, "python": "/nonexistent/python3"})
        assert "/nonexistent/python3 (workspace): not found" in err["message"], err


def test_interpreter_djdesk_python(tree):
    fake = fake_path_without_django(tree)
    tree.start(env={"PATH": fake, "DJDESK_PYTHON": DJANGO_PYTHON})
    polls = tree.copy_sample("polls")
    with connect(tree.socket_path) as rpc:
        w = add(rpc, polls, python=None)
        assert w["python"] is None
        assert w["interpreter"] == DJANGO_PYTHON
        assert VERSION_RE.match(w["django_version"])


def test_interpreter_project_venv_preferred(tree):
    fake = fake_path_without_django(tree)
    tree.start(env={"PATH": fake, "DJDESK_PYTHON": None})
    polls = tree.copy_sample("polls")
    os.makedirs(os.path.join(polls, ".venv", "bin"))
    os.symlink(DJANGO_PYTHON, os.path.join(polls, ".venv", "bin", "python"))
    with connect(tree.socket_path) as rpc:
        w = add(rpc, polls, python=None)
        assert w["interpreter"] == os.path.join(polls, ".venv", "bin", "python")
        assert VERSION_RE.match(w["django_version"])


def test_interpreter_cached(tree):
    d = tree.start("--log-level=debug", env={"DJDESK_PYTHON": DJANGO_PYTHON})
    a = tree.copy_sample("polls")
    b = tree.copy_sample("atlas")
    with connect(tree.socket_path) as rpc:
        add(rpc, a, python=None)
        d.wait_stderr(re.escape(f"interpreter '{DJANGO_PYTHON}': checking"))
        assert f"interpreter '{DJANGO_PYTHON}': cached" not in d.stderr_text
        add(rpc, b, python=None)
        d.wait_stderr(re.escape(f"interpreter '{DJANGO_PYTHON}': cached"))
        assert d.stderr_text.count(f"interpreter '{DJANGO_PYTHON}': checking") == 1


def test_peer_gone_during_add(tree, daemon):
    polls = tree.copy_sample("polls")
    with subscribed(tree, ["workspace.added"]) as sub:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(tree.socket_path)
        s.sendall(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "workspace.add",
                              "params": {"path": polls, "python": DJANGO_PYTHON}}).encode() + b"\n")
        s.close()
        e = sub.wait_event("workspace.added", timeout=20)
        assert e["data"]["workspace"]["slug"] == "polls"
    with connect(tree.socket_path) as rpc:
        assert [w["slug"] for w in rpc.call("workspace.list")["workspaces"]] == ["polls"]
    assert daemon.alive()


# ---------------------------------------------------------------------------------------------------------
# list / get / update / remove


def test_get_unknown(tree, daemon):
    with connect(tree.socket_path) as rpc:
        for method, params in (("workspace.get", {"workspace": "nope"}),
                               ("workspace.update", {"workspace": "nope", "name": "x"}),
                               ("workspace.remove", {"workspace": "nope"})):
            err = refused(rpc, method, params)
            assert err["code"] == -32001, err
            assert err["message"] == "no workspace 'nope'"
            assert err["data"]["value"] == "nope"


def test_update(tree):
    # python "" goes back to detection: DJDESK_PYTHON makes that deterministic (PATH's python3 may lack Django)
    tree.start(env={"DJDESK_PYTHON": DJANGO_PYTHON})
    polls = tree.copy_sample("polls")
    with connect(tree.socket_path) as rpc, subscribed(tree, ["workspace.changed"]) as sub:
        add(rpc, polls)
        w = rpc.call("workspace.update", {"workspace": "polls", "name": "Polls Renamed", "port": 8123,
                                          "mode": "runserver", "autostart": True, "autoreload": False,
                                          "migrate_on_start": False, "settings_module": "other.settings"})
        assert w["slug"] == "polls"
        assert w["name"] == "Polls Renamed"
        assert w["port"] == 8123 and w["mode"] == "runserver"
        assert (w["autostart"], w["autoreload"], w["migrate_on_start"]) == (True, False, False)
        assert (w["settings_module"], w["settings_source"]) == ("other.settings", "given")
        # workspace.changed names the slug and the parts of the status document that changed (the first
        # ones announce the workspace's addition); seq grows by one per event of the workspace
        seqs = []
        while True:
            e = sub.wait_event("workspace.changed")
            assert set(e["data"]) == {"workspace", "seq", "parts"}, e
            assert e["data"]["workspace"] == "polls"
            seqs.append(e["data"]["seq"])
            if "workspace" in e["data"]["parts"]:
                break
        assert seqs == list(range(1, len(seqs) + 1)), seqs
        assert e["data"]["parts"][0] == "workspace", e
        doc = rpc.call("workspace.status", {"workspace": "polls"})
        assert doc["seq"] >= e["data"]["seq"] and doc["name"] == "Polls Renamed"
        assert rpc.call("workspace.get", {"workspace": "polls"}) == w

        # port 0, python "" and settings_module "" go back to the defaults
        w = rpc.call("workspace.update", {"workspace": "polls", "port": 0, "python": "",
                                          "settings_module": ""})
        assert w["port"] is None
        assert w["python"] is None
        assert (w["settings_module"], w["settings_source"]) == ("mysite.settings", "manage.py")

        # the same validation as add, and nothing changes on a refusal
        for extra, code in (({"port": 65536}, -32602), ({"mode": "x"}, -32602), ({"name": ""}, -32602),
                            ({"settings_module": "a b"}, -32602), ({"python": "rel/python"}, -32602),
                            ({"path": "/tmp"}, -32602)):
            err = refused(rpc, "workspace.update", dict({"workspace": "polls"}, **extra))
            assert err["code"] == code, (extra, err)
        assert rpc.call("workspace.get", {"workspace": "polls"}) == w

        # a new python means a new detection: the workspace's own first, then the others
        w = rpc.call("workspace.update", {"workspace": "polls", "python": "/nonexistent/python"})
        assert w["python"] == "/nonexistent/python" and w["interpreter"] == DJANGO_PYTHON
        w = rpc.call("workspace.update", {"workspace": "polls", "python": DJANGO_PYTHON})
        assert w["python"] == DJANGO_PYTHON and w["interpreter"] == DJANGO_PYTHON


def test_update_python_rechecks_path(tree, daemon):
    # A new python is checked by running it in the project directory: the path is re-checked first, so a
    # project swapped for a symbolic link (elsewhere) is refused before anything runs there.
    polls = tree.copy_sample("polls")
    marker = os.path.join(tree.home, "ran-in")
    wrapper = os.path.join(tree.home, "wrapped-python")
    with open(wrapper, "w") as f:
        f.write(f"#!/bin/sh\npwd -P > {marker}\nexec {DJANGO_PYTHON} \"$@\"\n")
    os.chmod(wrapper, 0o755)
    with connect(tree.socket_path) as rpc:
        add(rpc, polls)
        elsewhere = os.path.join(tree.home, "elsewhere")
        os.rename(polls, elsewhere)
        os.symlink(elsewhere, polls)
        err = refused(rpc, "workspace.update", {"workspace": "polls", "python": wrapper})
        assert err["code"] == -32004, err
        assert "symbolic link" in err["message"], err
        assert not os.path.exists(marker)
        assert rpc.call("workspace.get", {"workspace": "polls"})["python"] == DJANGO_PYTHON

        # back in place, the same update runs the check (in the project) and is taken
        os.unlink(polls)
        os.rename(elsewhere, polls)
        w = rpc.call("workspace.update", {"workspace": "polls", "python": wrapper})
        assert w["python"] == wrapper and w["interpreter"] == wrapper
        with open(marker) as f:
            assert f.read().strip() == os.path.realpath(polls)


def test_remove_and_purge(tree, daemon):
    polls = tree.copy_sample("polls")
    lab = os.path.join(tree.data, "djdesk", "data_lab", "polls")
    outside = os.path.join(tree.home, "precious.txt")
    with open(outside, "w") as f:
        f.write("keep me")
    with connect(tree.socket_path) as rpc, subscribed(tree, ["workspace.removed"]) as sub:
        add(rpc, polls)
        os.makedirs(os.path.join(lab, "sub"))
        with open(os.path.join(lab, "sub", "export.ipynb"), "w") as f:
            f.write("{}")
        os.symlink(outside, os.path.join(lab, "link-out"))
        os.symlink(tree.home, os.path.join(lab, "dirlink-out"))

        assert rpc.call("workspace.remove", {"workspace": "polls"}) == {"slug": "polls", "purged": False}
        e = sub.wait_event("workspace.removed")
        assert e["data"] == {"slug": "polls", "purged": False}
        assert refused(rpc, "workspace.get", {"workspace": "polls"})["code"] == -32001
        assert os.path.exists(os.path.join(lab, "sub", "export.ipynb"))
        assert os.path.isdir(polls)

        add(rpc, polls)
        assert rpc.call("workspace.remove", {"workspace": "polls", "purge": True}) == \
            {"slug": "polls", "purged": True}
        assert sub.wait_event("workspace.removed")["data"] == {"slug": "polls", "purged": True}
        assert not os.path.lexists(lab)
        with open(outside) as f:
            assert f.read() == "keep me"
        assert os.path.isdir(tree.home)
        assert os.path.isfile(os.path.join(polls, "manage.py"))  # the project itself is never touched
        assert rpc.call("workspace.list")["workspaces"] == []


def test_registry_survives_restart(tree):
    d = tree.start()
    polls = tree.copy_sample("polls")
    atlas = tree.copy_sample("atlas")
    with connect(tree.socket_path) as rpc:
        a = add(rpc, polls)
        b = add(rpc, atlas, name="Atlas Ü", port=9001, mode="runserver", autoreload=False)
        before = rpc.call("workspace.list")["workspaces"]
    assert d.stop() == 0
    tree.start()
    with connect(tree.socket_path) as rpc:
        after = rpc.call("workspace.list")["workspaces"]
        strip = lambda ws: [{k: v for k, v in w.items() if k != "server"} for w in ws]
        assert strip(after) == strip(before)
        assert [w["slug"] for w in after] == [a["slug"], b["slug"]] == ["polls", "atlas-u"]
        # the slug stays taken
        other = make_project(os.path.join(tree.home, "x"), "polls")
        assert add(rpc, other)["slug"] == "polls-2"


# ---------------------------------------------------------------------------------------------------------
# samples


def _listing(root):
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        for f in filenames:
            p = os.path.join(dirpath, f)
            st = os.lstat(p)
            out.append((os.path.relpath(p, root), st.st_size, st.st_mtime_ns))
    return sorted(out)


def test_samples(tree):
    tree.start(env={"DJDESK_PYTHON": DJANGO_PYTHON})
    source = os.path.join(SAMPLES_DIR, "atlas")
    before = _listing(source)
    dest = os.path.join(tree.data, "djdesk", "samples", "atlas")
    with connect(tree.socket_path) as rpc, subscribed(tree, ["workspace.added"]) as sub:
        samples = rpc.call("sample.list")["samples"]
        names = [s["name"] for s in samples]
        assert names == sorted(names)
        assert {"atlas", "polls", "generated"} <= set(names)
        atlas = [s for s in samples if s["name"] == "atlas"][0]
        assert atlas == {"name": "atlas", "title": "Atlas Telemetry Studio", "installed": False,
                         "workspace": None}

        w = rpc.call("sample.install", {"name": "atlas"})
        assert w["slug"] == "atlas" and w["name"] == "atlas"
        assert w["path"] == os.path.realpath(dest)
        assert w["settings_module"] == "atlas.settings"
        assert w["interpreter"] == DJANGO_PYTHON
        assert sub.wait_event("workspace.added")["data"]["workspace"]["slug"] == "atlas"
        assert os.path.isfile(os.path.join(dest, "manage.py"))
        assert os.path.isfile(os.path.join(dest, "ledger", "migrations", "0002_batch_checksum.py"))
        for dirpath, dirnames, filenames in os.walk(dest):
            assert "__pycache__" not in dirnames
            for f in filenames:
                assert not f.endswith(".pyc") and not f.startswith("db.sqlite3") and f != "meson.build", f
                assert os.access(os.path.join(dirpath, f), os.W_OK)
        assert not [n for n in os.listdir(os.path.dirname(dest)) if n.startswith(".")]  # no temp left
        assert _listing(source) == before  # the shipped sample is untouched

        atlas = [s for s in rpc.call("sample.list")["samples"] if s["name"] == "atlas"][0]
        assert atlas["installed"] is True and atlas["workspace"] == "atlas"

        err = refused(rpc, "sample.install", {"name": "atlas"})
        assert err["code"] == -32003 and "atlas" in err["message"], err
        err = refused(rpc, "sample.install", {"name": "nope"})
        assert err["code"] == -32001 and "nope" in err["message"], err
        for bad in ("../atlas", "Atlas", "", "a/b"):
            err = refused(rpc, "sample.install", {"name": bad})
            assert err["code"] == -32602, (bad, err)

        # installed but no longer registered: registered again as it is, not copied over
        marker = os.path.join(dest, "my-notes.txt")
        with open(marker, "w") as f:
            f.write("mine")
        rpc.call("workspace.remove", {"workspace": "atlas"})
        atlas = [s for s in rpc.call("sample.list")["samples"] if s["name"] == "atlas"][0]
        assert atlas["installed"] is True and atlas["workspace"] is None
        w = rpc.call("sample.install", {"name": "atlas"})
        assert w["slug"] == "atlas"
        assert os.path.isfile(marker)
