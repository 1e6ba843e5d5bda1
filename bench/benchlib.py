# SPDX-License-Identifier: MIT
"""What the bench/ scripts share: finding a build, clean environments, a djdeskd on a private XDG tree,
a small JSON-RPC client, HTTP probes and medians. Benchmarks, not tests: BenchError means a program
misbehaved (crashed, stalled, answered wrongly), and the script exits 1."""

import glob
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DJANGO_PYTHON = os.environ.get("DJDESK_BENCH_PYTHON") or "/usr/bin/python3"


class BenchError(Exception):
    pass


def find_build_dir(arg, need):
    """The first build dir (--build-dir, $DJDESK_BUILD_DIR, build-bench/, build/, newest build*/) with
    every program in need."""
    if arg:
        cands = [arg]
    else:
        cands = [os.environ.get("DJDESK_BUILD_DIR"), os.path.join(REPO, "build-bench"), os.path.join(REPO, "build")]
        cands += sorted(glob.glob(os.path.join(REPO, "build*")), key=os.path.getmtime, reverse=True)
    for d in cands:
        if d and all(os.access(os.path.join(d, n), os.X_OK) for n in need):
            return os.path.abspath(d)
    raise BenchError("no build dir with %s; build with: meson setup build-bench -Dbuildtype=release && "
                     "ninja -C build-bench (or pass --build-dir)" % ", ".join(need))


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def parse_kv(line):
    out = {}
    for tok in line.split():
        k, _, v = tok.partition("=")
        try:
            out[k] = float(v) if "." in v else int(v)
        except ValueError:
            out[k] = v
    return out


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def xdg_tree(root):
    """A private XDG tree under root; returns the environment entries."""
    env = {}
    for var, sub in (("XDG_RUNTIME_DIR", "run"), ("XDG_STATE_HOME", "state"), ("XDG_CONFIG_HOME", "config"),
                     ("XDG_DATA_HOME", "data"), ("HOME", "home")):
        path = os.path.join(root, sub)
        os.makedirs(path, mode=0o700, exist_ok=True)
        env[var] = path
    return env


def base_env(root):
    """PATH, LANG and a private XDG tree: nothing of the caller's DJDESK_* or DJANGO_* leaks in."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": os.environ.get("LANG", "C.UTF-8")}
    env.update(xdg_tree(root))
    return env


def pin(cpu):
    """Pins this process, and so everything it starts, to one CPU (None: leave it)."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_status(port, path="/", timeout=5.0):
    """The status of GET path on 127.0.0.1:port; raises OSError (refused, reset) like any client sees it."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        r.read()
        return r.status
    finally:
        c.close()


def copy_sample(name, dest):
    shutil.copytree(os.path.join(REPO, "samples", name), dest,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "db.sqlite3*", "meson.build"))
    return dest


class Rpc:
    """A blocking JSON-RPC client on the daemon's socket."""

    def __init__(self, path, timeout=120.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b""
        self.id = 0
        self.events = []

    def close(self):
        self.sock.close()

    def _line(self):
        while b"\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise BenchError("djdeskd closed the connection")
            self.buf += data
        line, _, self.buf = self.buf.partition(b"\n")
        return json.loads(line)

    def call(self, method, params=None):
        self.id += 1
        msg = {"jsonrpc": "2.0", "id": self.id, "method": method}
        if params is not None:
            msg["params"] = params
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            m = self._line()
            if m.get("id") == self.id:
                if "error" in m:
                    raise BenchError("%s: %s" % (method, m["error"].get("message")))
                return m["result"]
            if m.get("method") == "event":
                self.events.append(m["params"])

    def wait_event(self, pred, timeout=60.0):
        """The first event (queued or new) for which pred(params) is true."""
        deadline = time.monotonic() + timeout
        while True:
            for i, e in enumerate(self.events):
                if pred(e):
                    del self.events[:i + 1]
                    return e
            self.events.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError("no matching event within %gs" % timeout)
            self.sock.settimeout(left)
            m = self._line()
            if m.get("method") == "event":
                self.events.append(m["params"])


def proc_status(pid):
    """/proc/PID/status as {key: value}; the kB sizes (VmRSS, VmHWM, ...) as ints in KiB."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            v = v.strip()
            out[k] = int(v.split()[0]) if v.endswith(" kB") else v
    return out


def reset_peak_rss(pid):
    """Resets VmHWM to the current VmRSS (writes 5 to /proc/PID/clear_refs); False when not allowed."""
    try:
        with open("/proc/%d/clear_refs" % pid, "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class Djdeskd:
    """djdeskd on a private tree, without the bus, its children run by Debian's python3.

    config: the text of $XDG_CONFIG_HOME/djdesk/djdesk.conf; presets: {key: preset object}, written as the
    user's presets.d/KEY.json. The built-in presets are the source tree's data/presets.d."""

    def __init__(self, build, root, extra_env=None, config=None, presets=None):
        self.root = root
        self.env = base_env(root)
        self.env.update({"DJDESK_PYTHON": DJANGO_PYTHON,
                         "DJDESK_SERVE": os.path.join(REPO, "python", "djdesk-serve"),
                         "DJDESK_SAMPLES_DIR": os.path.join(REPO, "samples"),
                         "DJDESK_PRESETS_DIR": os.path.join(REPO, "data", "presets.d")})
        self.env.update(extra_env or {})
        confdir = os.path.join(self.env["XDG_CONFIG_HOME"], "djdesk")
        if config is not None:
            os.makedirs(confdir, exist_ok=True)
            with open(os.path.join(confdir, "djdesk.conf"), "w") as f:
                f.write(config)
        for key, preset in (presets or {}).items():
            os.makedirs(os.path.join(confdir, "presets.d"), exist_ok=True)
            with open(os.path.join(confdir, "presets.d", key + ".json"), "w") as f:
                json.dump(dict(preset, key=key), f, indent=2)
        self.socket = os.path.join(self.env["XDG_RUNTIME_DIR"], "djdesk", "daemon.sock")
        notify_path = os.path.join(root, "notify.sock")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(notify_path)
        self.notify.settimeout(30)
        env = dict(self.env, NOTIFY_SOCKET=notify_path)
        self.log = open(os.path.join(root, "djdeskd.log"), "wb")
        self.proc = subprocess.Popen([os.path.join(build, "daemon", "djdeskd"), "--no-bus"], env=env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.log)
        while b"READY=1" not in self.notify.recv(4096):
            pass

    def rpc(self):
        return Rpc(self.socket)

    def stop(self):
        self.proc.terminate()
        rc = self.proc.wait(timeout=30)
        self.notify.close()
        self.log.close()
        if rc != 0:
            raise BenchError("djdeskd exited with %d (log: %s)" % (rc, self.log.name))


def temp_root(prefix):
    return tempfile.mkdtemp(prefix=prefix, dir="/tmp")
