# SPDX-License-Identifier: MIT
"""The task queue's core path, kept small (the broad suite is test_runs.py): enqueue -> dispatch -> child
-> lines stored and published -> exit -> run.finished; refusals that create nothing; cancel and timeout of
a process group; the tail kept under max_output_lines; kill -9 of the daemon mid-run."""

import os
import signal
import time

from conftest import connect
from runtools import (RunWatch, add_atlas, all_logs, echo_preset, gone, integrity_check, refused, start,
                      script_preset, sleep_preset, texts, wait_gone)
from servertools import group_members, wait_until

# Prints its pid, starts a grandchild in the same group that prints its own pid, then sleeps.
FORKER_SRC = """\
import os, subprocess, sys, time
print("leader", os.getpid(), flush=True)
p = subprocess.Popen([sys.executable, "-c", "import os, time; print('grandchild', os.getpid(), flush=True); time.sleep(600)"])
time.sleep(600)
"""

LINES_SRC = """\
import sys
n = int(sys.argv[1])
out = sys.stdout
for i in range(1, n + 1):
    out.write("line %d\\n" % i)
out.flush()
"""


def pids_in(lines, word):
    return [int(t.split()[1]) for t in texts(lines) if t.startswith(word + " ")]


def test_core_path(tree):
    echo_preset(tree)
    d = tree.start("--no-bus")
    rpc = connect(tree.socket_path)
    add_atlas(tree, rpc)
    watch = RunWatch(tree)

    t0 = time.monotonic()
    r = start(rpc, "atlas", "echo", {"text": "x-1"}, note="a note")
    assert time.monotonic() - t0 < 1.0
    assert r["requested_by"] == "cli" and r["uid"] == os.getuid() and r["note"] == "a note"
    assert r["argv"][-1] == "x-1" and r["params"] == {"text": "x-1"}
    fin = watch.finished(r["id"])
    assert fin["status"] == "succeeded" and fin["exit_code"] == 0 and fin["progress"] == 100, fin
    assert fin["output_lines"] == 1 and fin["duration_seconds"] is not None
    assert fin["metadata"]["command"]["exit_code"] == 0
    watch.sync()
    assert watch.topics(r["id"]) == ["run.queued", "run.started", "run.log", "run.finished"]
    ev = watch.of(r["id"], "run.log")[0]["data"]
    assert ev["log_line"] == "x-1" and ev["lines"][0]["n"] == 1 and ev["lines"][0]["stream"] == "stdout"

    lines, reply = all_logs(rpc, r["id"])
    assert texts(lines) == ["x-1"] and reply["first"] == 1 and not reply["truncated"]
    got = rpc.call("run.get", {"id": r["id"]})
    assert got["status"] == "succeeded"
    listed = rpc.call("run.list", {"workspace": "atlas"})["runs"]
    assert [x["id"] for x in listed] == [r["id"]]
    info = rpc.call("daemon.info")
    assert info["counts"]["runs_queued"] == 0 and info["counts"]["runs_running"] == 0

    # A real Django command against the sample.
    c = start(rpc, "atlas", "check")
    fin = watch.finished(c["id"])
    assert fin["status"] == "succeeded", fin
    assert any("System check identified" in t for t in texts(all_logs(rpc, c["id"])[0]))
    watch.close()
    rpc.close()
    assert d.stop() == 0


def test_refusals_create_nothing(tree):
    echo_preset(tree)
    tree.start("--no-bus")
    rpc = connect(tree.socket_path)
    add_atlas(tree, rpc)

    assert refused(rpc, "run.start", {"workspace": "nope", "preset": "check"})["code"] == -32001
    assert refused(rpc, "run.start", {"workspace": "atlas", "preset": "rm-rf"})["code"] == -32001
    assert refused(rpc, "run.start", {"workspace": "atlas", "preset": "echo",
                                      "params": {"other": "x"}})["code"] == -32602
    assert refused(rpc, "run.start", {"workspace": "atlas", "preset": "echo",
                                      "params": {"text": "x; rm -rf ~"}})["code"] == -32602
    assert refused(rpc, "run.start", {"workspace": "atlas", "preset": "echo",
                                      "note": "é" * 281})["code"] == -32602
    assert refused(rpc, "run.start", {"workspace": "atlas", "preset": "migrate"})["code"] == -32002
    assert refused(rpc, "run.list", {"status": "bogus"})["code"] == -32602
    assert refused(rpc, "run.get", {"id": 12345})["code"] == -32001
    assert rpc.call("run.list")["runs"] == []
    # 280 characters is fine.
    start(rpc, "atlas", "echo", note="é" * 280)


def test_cancel_timeout_and_tail(tree):
    tree.write_config("[tasks]\ncancel_grace_sec = 1\n")
    script_preset(tree, "forker", FORKER_SRC)
    script_preset(tree, "slowforker", FORKER_SRC, timeout_s=1)
    script_preset(tree, "lines", LINES_SRC, ["{n}"], max_output_lines=100,
                  params={"n": {"regex": "[0-9]+", "default": "1000"}})
    sleep_preset(tree)
    tree.start("--no-bus")
    rpc = connect(tree.socket_path)
    add_atlas(tree, rpc)
    watch = RunWatch(tree)

    # Running: SIGTERM to the group, grandchild included. A run queued behind it is cancelled at once.
    r = start(rpc, "atlas", "forker")
    q = start(rpc, "atlas", "sleep")
    watch.wait_log(r["id"], lambda t: t.startswith("grandchild"))
    pids = pids_in(watch.log_lines(r["id"]), "leader") + pids_in(watch.log_lines(r["id"]), "grandchild")
    assert len(pids) == 2
    c = rpc.call("run.cancel", {"id": q["id"]})
    assert c["status"] == "cancelled"
    assert watch.finished(q["id"])["status"] == "cancelled"
    c = rpc.call("run.cancel", {"id": r["id"]})
    assert c["status"] == "running"
    fin = watch.finished(r["id"])
    assert fin["status"] == "cancelled" and fin["exit_code"] == 128 + signal.SIGTERM, fin
    wait_gone(pids)
    assert refused(rpc, "run.cancel", {"id": r["id"]})["code"] == -32003

    # Timeout: the same sequence, then timed_out.
    t = start(rpc, "atlas", "slowforker")
    fin = watch.finished(t["id"], timeout=30)
    assert fin["status"] == "timed_out" and fin["timed_out"] is True, fin
    assert fin["metadata"]["command"]["timed_out"] is True

    # The tail is kept: 1000 lines printed, the newest 100 stored.
    n = start(rpc, "atlas", "lines")
    fin = watch.finished(n["id"])
    assert fin["status"] == "succeeded" and fin["output_lines"] == 1000, fin
    assert fin["dropped_lines"] == 900 and fin["truncated"] is True
    lines, reply = all_logs(rpc, n["id"])
    assert [x["n"] for x in lines] == list(range(901, 1001)) and reply["first"] == 901
    assert texts(lines)[-1] == "line 1000"
    watch.sync()
    assert len(watch.log_lines(n["id"])) == 1000  # the live stream saw them all


def test_kill9_interrupted_and_queued_resume(tree):
    script_preset(tree, "forker", FORKER_SRC)
    echo_preset(tree)
    d = tree.start("--no-bus")
    rpc = connect(tree.socket_path)
    add_atlas(tree, rpc)
    watch = RunWatch(tree)
    r = start(rpc, "atlas", "forker")
    q1 = start(rpc, "atlas", "echo", {"text": "first"})
    q2 = start(rpc, "atlas", "echo", {"text": "second"})
    watch.wait_log(r["id"], lambda t: t.startswith("grandchild"))
    pids = pids_in(watch.log_lines(r["id"]), "leader") + pids_in(watch.log_lines(r["id"]), "grandchild")
    watch.close()
    rpc.close()
    d.kill()
    assert not all(gone(p) for p in pids)  # the orphans outlived the daemon (no PDEATHSIG for the grandchild)

    d2 = tree.start("--no-bus")
    wait_gone(pids, timeout=15, what="the orphaned group")
    rpc = connect(tree.socket_path)
    watch = RunWatch(tree, since=0)
    got = rpc.call("run.get", {"id": r["id"]})
    assert got["status"] == "interrupted" and got["progress"] == 100, got
    assert got["error"].startswith("interrupted")
    lines, _ = all_logs(rpc, r["id"])
    assert texts(lines)[-1] == "djdeskd stopped while this run was running; it was interrupted"
    assert lines[-1]["stream"] == "stderr" and lines[-1]["level"] == "warning"
    f1 = watch.finished(q1["id"])
    f2 = watch.finished(q2["id"])
    assert f1["status"] == f2["status"] == "succeeded"
    assert f1["finished_at"] <= f2["started_at"]
    assert watch.finished(r["id"])["status"] == "interrupted"
    wait_until(lambda: not group_members(pids[0]), what="group gone")
    rpc.close()
    watch.close()
    assert d2.stop() == 0
    assert integrity_check(tree.db_path) == [("ok",)]


def test_clean_stop_interrupts_running_and_keeps_queued(tree):
    sleep_preset(tree)
    echo_preset(tree)
    d = tree.start("--no-bus")
    rpc = connect(tree.socket_path)
    add_atlas(tree, rpc)
    watch = RunWatch(tree)
    r = start(rpc, "atlas", "sleep", {"secs": "600"})
    q = start(rpc, "atlas", "echo", {"text": "later"})
    watch.wait_log(r["id"], lambda t: t.startswith("sleeping"))
    rpc.close()
    assert d.stop() == 0   # SIGTERM: the run is stopped and recorded interrupted, the queued one stays
    watch.close()

    d2 = tree.start("--no-bus")
    rpc = connect(tree.socket_path)
    watch = RunWatch(tree, since=0)
    got = rpc.call("run.get", {"id": r["id"]})
    assert got["status"] == "interrupted" and got["error"].startswith("interrupted"), got
    t = texts(all_logs(rpc, r["id"])[0])
    assert t[0] == "sleeping 600" and t.count("djdeskd stopped while this run was running; it was interrupted") == 1
    assert watch.finished(q["id"])["status"] == "succeeded"
    watch.sync()
    assert watch.of(r["id"]) == []  # nothing more about it from the new daemon
    rpc.close()
    watch.close()
    assert d2.stop() == 0
