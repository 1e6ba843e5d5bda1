# SPDX-License-Identifier: MIT
"""Black-box tests of python/djdesk-probe on copies of the samples (DJDESK_PROBE tests another copy)."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import DJANGO_VERSION, PYTHON, REPO, child_env, manage

PROBE = Path(os.environ.get("DJDESK_PROBE") or REPO / "python" / "djdesk-probe")

SECRETS = {
    "atlas": ("atlas", "django-insecure-atlas-sample-not-secret-9d2e61b0c7f54a83"),
    "generated": ("generated", "django-insecure-generated-sample-not-secret-2b7a0f5d8e134c69"),
}


def run_probe(project, *args, cwd=None):
    proc = subprocess.run([PYTHON, str(PROBE), "--project", str(project), *args],
                          cwd=str(cwd or project), capture_output=True, text=True, env=child_env(), timeout=60)
    return proc


def probe_json(project, *args):
    proc = run_probe(project, *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, proc.stdout              # one document, nothing else on stdout
    return json.loads(lines[0]), proc


def secret_of(project):
    settings = next(Path(project).glob("*/settings.py")).read_text()
    for line in settings.splitlines():
        if line.startswith("SECRET_KEY"):
            return line.split("=", 1)[1].strip().strip("'\"")
    raise AssertionError("no SECRET_KEY in %s" % project)


def migrations_of(doc):
    return {entry["app"]: entry for entry in doc["migrations"]}


@pytest.mark.parametrize("name", ["atlas", "polls", "generated"])
def test_every_sample_gives_one_document(sample, name):
    project = sample(name)
    doc, proc = probe_json(project)
    assert doc["django_version"] == DJANGO_VERSION
    assert doc["python_version"].count(".") == 2
    assert "errors" not in doc, doc.get("errors")
    assert doc["apps"] and doc["models"]
    for app in doc["apps"]:
        assert set(app) == {"label", "name", "models"}
    counts = {app["label"]: app["models"] for app in doc["apps"]}
    for model in doc["models"]:
        assert model["db_table"]
        assert counts[model["app"]] > 0
        for field in model["fields"]:
            assert {"name", "type", "null", "blank", "primary_key", "unique", "choices"} <= set(field)
    assert sum(counts.values()) == len(doc["models"])
    assert doc["settings"]["installed_apps"] == len(doc["apps"])
    assert [db["alias"] for db in doc["settings"]["databases"]] == ["default"]
    assert set(doc["settings"]["databases"][0]) == {"alias", "engine"}

    # never a secret, anywhere
    secret = secret_of(project)
    assert secret not in proc.stdout and secret not in proc.stderr
    assert "SECRET_KEY" not in proc.stdout
    assert not (project / "db.sqlite3").exists()


def test_atlas_models_and_relations(sample):
    doc, _ = probe_json(sample("atlas"))
    models = {"%s.%s" % (m["app"], m["name"]): m for m in doc["models"]}
    assert {"catalog.Instrument", "catalog.Sensor", "alerts.AlertRule", "alerts.Alert",
            "ledger.Reading", "ledger.Batch", "ledger.Calibration", "auth.User"} <= set(models)

    def relations(label):
        return {(r["field"], r["kind"], r["target"]) for r in models[label]["relations"]}

    assert ("sensor", "fk", "catalog.Sensor") in relations("ledger.Reading")          # across apps
    assert ("sensor", "fk", "catalog.Sensor") in relations("alerts.AlertRule")
    assert ("acknowledged_by", "fk", "auth.User") in relations("alerts.Alert")        # to django.contrib
    assert ("readings", "many_to_many", "ledger.Reading") in relations("ledger.Batch")
    assert ("sensor", "one_to_one", "catalog.Sensor") in relations("ledger.Calibration")
    assert ("instrument", "fk", "catalog.Instrument") in relations("catalog.Sensor")
    # forward relations only: no reverse accessors
    assert not any(r["field"] in ("sensors", "readings", "alerts") for r in models["catalog.Sensor"]["relations"]
                   + models["catalog.Instrument"]["relations"])

    fields = {f["name"]: f for f in models["ledger.Batch"]["fields"]}
    assert fields["id"]["primary_key"] and fields["id"]["unique"]
    assert fields["readings"]["type"] == "ManyToManyField" and fields["readings"]["null"]
    assert fields["label"]["type"] == "CharField" and fields["label"]["max_length"] == 100
    assert "max_length" not in fields["created_at"]
    assert models["ledger.Batch"]["db_table"] == "ledger_batch"

    apps = {a["label"]: a for a in doc["apps"]}
    assert apps["catalog"] == {"label": "catalog", "name": "catalog", "models": 2}
    assert apps["auth"]["name"] == "django.contrib.auth"


def test_missing_database_is_never_created(sample):
    project = sample("atlas")
    db = project / "db.sqlite3"
    assert not db.exists()
    doc, _ = probe_json(project)
    assert doc["database"] == {"alias": "default", "vendor": "sqlite", "exists": False,
                               "message": "database not created yet"}
    migrations = migrations_of(doc)
    assert {"catalog", "alerts", "ledger", "auth", "contenttypes", "admin", "sessions"} <= set(migrations)
    for entry in doc["migrations"]:
        assert entry["migrations"] and not any(m["applied"] for m in entry["migrations"])
        assert entry["plan"] == [m["name"] for m in entry["migrations"]]
        assert entry["conflicts"] == []
    assert migrations["ledger"]["plan"] == ["0001_initial", "0002_batch_checksum"]
    assert not db.exists()
    assert not list(project.glob("db.sqlite3*"))


def test_applied_after_migrate(sample):
    project = sample("atlas")
    manage(project, "migrate", "--noinput")
    db = project / "db.sqlite3"
    before = db.stat().st_mtime_ns, db.stat().st_size
    doc, _ = probe_json(project)
    assert doc["database"]["exists"] is True and doc["database"]["tables"] > 0
    for entry in doc["migrations"]:
        assert all(m["applied"] for m in entry["migrations"]), entry
        assert entry["plan"] == []
    assert (db.stat().st_mtime_ns, db.stat().st_size) == before          # read-only

    # Partially migrated: only what is still missing is planned, in order.
    manage(project, "migrate", "ledger", "0001", "--noinput")
    doc, _ = probe_json(project)
    ledger = migrations_of(doc)["ledger"]
    assert ledger["migrations"] == [{"name": "0001_initial", "applied": True},
                                    {"name": "0002_batch_checksum", "applied": False}]
    assert ledger["plan"] == ["0002_batch_checksum"]
    assert migrations_of(doc)["catalog"]["plan"] == []


def test_conflicting_leaves_are_reported(sample):
    project = sample("atlas")
    migrations = project / "ledger" / "migrations"
    (migrations / "0002_other.py").write_text(
        "from django.db import migrations\n\n\n"
        "class Migration(migrations.Migration):\n"
        "    dependencies = [('ledger', '0001_initial')]\n"
        "    operations = []\n")
    doc, _ = probe_json(project)
    ledger = migrations_of(doc)["ledger"]
    assert ledger["conflicts"] == [["0002_batch_checksum", "0002_other"]]
    assert migrations_of(doc)["catalog"]["conflicts"] == []


def test_checks_report_the_deliberate_warning(sample):
    doc, _ = probe_json(sample("atlas"))
    w340 = [c for c in doc["checks"] if c["id"] == "fields.W340"]
    assert w340 == [{"level": "WARNING", "id": "fields.W340", "msg": "null has no effect on ManyToManyField.",
                     "hint": None, "obj": "ledger.Batch.readings"}]


def test_project_output_does_not_pollute_stdout(sample):
    project = sample("atlas")
    settings = project / "atlas" / "settings.py"
    settings.write_text(settings.read_text() + "\nprint('hello from settings')\n")
    doc, proc = probe_json(project)
    assert "hello from settings" in proc.stderr
    assert doc["apps"]


def test_settings_option_and_cwd(sample, tmp_path):
    project = sample("atlas")
    (project / "atlas" / "other_settings.py").write_text(
        "from .settings import *  # noqa\nDEBUG = False\nTIME_ZONE = 'Europe/Paris'\n")
    proc = run_probe(project, "--settings", "atlas.other_settings", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["settings"]["debug"] is False
    assert doc["settings"]["time_zone"] == "Europe/Paris"
    assert not (project / "db.sqlite3").exists() and not (tmp_path / "db.sqlite3").exists()


def test_broken_settings_give_a_structured_error(sample):
    project = sample("atlas")
    settings = project / "atlas" / "settings.py"
    settings.write_text(settings.read_text() + "\n\ndef broken():\n    raise RuntimeError('settings exploded')\n\n\nbroken()\n")
    proc = run_probe(project)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    doc = json.loads(proc.stdout)
    error = doc["error"]
    assert error["type"] == "RuntimeError"
    assert "settings exploded" in error["message"]
    frames = error["traceback"]
    assert frames, error
    assert all(not os.path.isabs(f["file"]) and set(f) == {"file", "line", "function"} for f in frames)
    assert frames[-1]["file"] == os.path.join("atlas", "settings.py")
    assert frames[-1]["function"] == "broken"
    assert [f["function"] for f in frames][-2:] == ["<module>", "broken"]
    assert SECRETS["atlas"][1] not in proc.stdout


def test_broken_app_import_gives_a_structured_error(sample):
    project = sample("atlas")
    models = project / "ledger" / "models.py"
    models.write_text(models.read_text() + "\ndef broken(:\n")
    proc = run_probe(project)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    error = json.loads(proc.stdout)["error"]
    assert error["type"] == "SyntaxError"
    assert error["traceback"][-1]["file"] == os.path.join("ledger", "models.py")


def test_usage_errors(tmp_path):
    proc = run_probe(tmp_path / "missing", cwd=tmp_path)
    assert proc.returncode == 2
    assert "does not exist" in json.loads(proc.stdout)["error"]["message"]

    proc = run_probe(tmp_path, cwd=tmp_path)                     # no manage.py, no --settings
    assert proc.returncode == 2
    assert "no settings module" in json.loads(proc.stdout)["error"]["message"]


def test_guides_none_in_a_bare_project(sample):
    doc, _ = probe_json(sample("polls"))
    assert doc["guides"] == []


def test_guides_readme_and_docs(sample):
    project = sample("atlas")
    (project / "README.md").write_text("Some intro\n\n```sh\n# not a heading\n```\n# Atlas  guide ##\n\n# Later\n")
    (project / "README.rst").write_text("Atlas\n=====\n")              # only the first README counts
    docs = project / "docs"
    docs.mkdir()
    (docs / "b-setup.md").write_text("## Sub first\n# Setting up\n")
    (docs / "a-intro.md").write_text("no heading at all\n#also not one\n")
    (docs / "C#.md").write_text("# Using C#\n")
    (docs / "notes.txt").write_text("# not a guide\n")                  # not Markdown: left out
    (docs / ".hidden.md").write_text("# hidden\n")
    (docs / "sub.md").mkdir()                                          # not a file
    (docs / "link.md").symlink_to(project / "README.md")              # a symlink is not followed
    before = sorted(str(p.relative_to(project)) for p in project.rglob("*"))

    doc, _ = probe_json(project)
    real = os.path.realpath(project)
    assert doc["guides"] == [
        {"title": "Atlas  guide", "path": os.path.join(real, "README.md")},
        {"title": "Using C#", "path": os.path.join(real, "docs", "C#.md")},
        {"title": "a-intro.md", "path": os.path.join(real, "docs", "a-intro.md")},
        {"title": "Setting up", "path": os.path.join(real, "docs", "b-setup.md")},
    ]
    for guide in doc["guides"]:
        assert os.path.isabs(guide["path"])
    # read-only: nothing created, nothing removed
    assert sorted(str(p.relative_to(project)) for p in project.rglob("*")
                  if "__pycache__" not in p.parts) == [p for p in before if "__pycache__" not in p]


@pytest.mark.parametrize("name", ["README.rst", "README.txt", "README"])
def test_guides_other_readmes_are_titled_by_name(sample, name):
    project = sample("polls")
    (project / name).write_text("# Looks like a heading\n")
    doc, _ = probe_json(project)
    assert doc["guides"] == [{"title": name, "path": os.path.join(os.path.realpath(project), name)}]


def test_guides_readme_order(sample):
    project = sample("polls")
    for name in ("README", "README.txt", "README.rst"):
        (project / name).write_text("x\n")
    doc, _ = probe_json(project)
    assert [os.path.basename(g["path"]) for g in doc["guides"]] == ["README.rst"]
    (project / "README.md").write_text("\n\n#  Polls   \n")
    doc, _ = probe_json(project)
    assert doc["guides"] == [{"title": "Polls", "path": os.path.join(os.path.realpath(project), "README.md")}]


def test_guides_when_the_project_fails_to_load(sample):
    """No document parts at all when the project does not load: only the error."""
    project = sample("atlas")
    (project / "README.md").write_text("# Atlas\n")
    settings = project / "atlas" / "settings.py"
    settings.write_text(settings.read_text() + "\nraise RuntimeError('nope')\n")
    proc = run_probe(project)
    assert proc.returncode == 2
    assert set(json.loads(proc.stdout)) == {"error"}
