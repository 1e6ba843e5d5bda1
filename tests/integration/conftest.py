# SPDX-License-Identifier: MIT
"""Fixtures for the black-box integration tests of djdeskd and djdeskctl.

The binaries come from the environment (the meson test sets them):
  DJDESKD, DJDESKCTL        the built daemon and client
  DJDESK_SOURCE_ROOT        the repository (for dbus/io.djdesk.Desk1.xml)
  DJDESK_UNITS              colon-separated generated systemd units (optional)

Every test gets a fresh XDG tree under a short /tmp directory, and every daemon it starts gets its own
NOTIFY_SOCKET, which the fixture listens on: readiness is READY=1, never a sleep. Daemons are always
stopped and reaped in teardown; a daemon that does not exit 0 on SIGTERM there, or that printed a
sanitizer report, fails the test.
"""

import json
import os
import re
import select
import shutil
import signal
import signal as _sig
import socket
import stat
import subprocess
import tempfile
import threading
import time

import pytest

DJDESKD = os.environ.get("DJDESKD")
DJDESKCTL = os.environ.get("DJDESKCTL")
SOURCE_ROOT = os.environ.get("DJDESK_SOURCE_ROOT") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
UNITS = [u for u in (os.environ.get("DJDESK_UNITS") or "").split(":") if u]
# The children's side: the helper and the samples straight from the source tree, and an interpreter that
# can import Django (Debian's: the pyenv python3 first on PATH on these machines has no Django).
SERVE_HELPER = os.path.join(SOURCE_ROOT, "python", "djdesk-serve")
PROBE_HELPER = os.path.join(SOURCE_ROOT, "python", "djdesk-probe")
SAMPLES_DIR = os.path.join(SOURCE_ROOT, "samples")
PRESETS_DIR = os.path.join(SOURCE_ROOT, "data", "presets.d")
DATALAB_TEMPLATES = os.path.join(SOURCE_ROOT, "data", "datalab")
# The Data Lab's writer, built beside the daemon (<build>/datalab/djdesk-export).
EXPORT_HELPER = os.environ.get("DJDESK_EXPORT") or (
    os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(DJDESKD))), "datalab", "djdesk-export")
    if DJDESKD else None)
DJANGO_PYTHON = os.environ.get("DJDESK_TEST_PYTHON") or "/usr/bin/python3"

READY_TIMEOUT = 20.0   # seconds; generous for sanitizer builds
STOP_TIMEOUT = 15.0
RPC_TIMEOUT = 15.0
TEST_DEADLINE = 120    # a hard per-test limit (SIGALRM), so that nothing can hang the run

SANITIZER_MARKERS = (b"ERROR: AddressSanitizer", b"ERROR: LeakSanitizer", b"runtime error:",
                     b"SUMMARY: UndefinedBehaviorSanitizer", b"ThreadSanitizer")

# Variables passed through from the test environment to the daemon; everything else is dropped so that a
# developer's DJDESK_* or DJANGO_SETTINGS_MODULE cannot change the outcome.
PASSTHROUGH_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "DBUS_SESSION_BUS_ADDRESS", "ASAN_OPTIONS", "UBSAN_OPTIONS",
                   "LSAN_OPTIONS", "MALLOC_PERTURB_", "MALLOC_CHECK_")


def have_bus():
    return bool(os.environ.get("DBUS_SESSION_BUS_ADDRESS"))


needs_bus = pytest.mark.skipif(not have_bus(), reason="no session bus (run inside dbus-run-session)")


@pytest.fixture(autouse=True)
def _binaries_given():
    if not DJDESKD or not DJDESKCTL:
        pytest.skip("DJDESKD and DJDESKCTL must point at the built binaries (run through 'meson test')")
    for b in (DJDESKD, DJDESKCTL):
        assert os.access(b, os.X_OK), f"{b} is not an executable"


@pytest.fixture(autouse=True)
def _deadline():
    """A hard per-test deadline: raises in the test (interrupting any blocking call) after TEST_DEADLINE s."""
    def on_alarm(signum, frame):
        raise TimeoutError(f"test exceeded its {TEST_DEADLINE}s deadline")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(TEST_DEADLINE)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# ---------------------------------------------------------------------------------------------------------
# the XDG tree


class Tree:
    """A private set of XDG directories; env is the environment every process of the test gets."""

    def __init__(self):
        # Short paths: AF_UNIX socket paths are limited to 107 bytes.
        self.root = tempfile.mkdtemp(prefix="djt-", dir="/tmp")
        self.runtime = os.path.join(self.root, "run")
        self.state = os.path.join(self.root, "state")
        self.config = os.path.join(self.root, "config")
        self.data = os.path.join(self.root, "data")
        self.home = os.path.join(self.root, "home")
        for d in (self.runtime, self.state, self.config, self.data, self.home):
            os.mkdir(d, 0o700)
        self.env = {k: os.environ[k] for k in PASSTHROUGH_ENV if k in os.environ}
        self.env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
        self.env.update({
            "HOME": self.home,
            "XDG_RUNTIME_DIR": self.runtime,
            "XDG_STATE_HOME": self.state,
            "XDG_CONFIG_HOME": self.config,
            "XDG_DATA_HOME": self.data,
            "DJDESK_SERVE": SERVE_HELPER,
            "DJDESK_PROBE": PROBE_HELPER,
            "DJDESK_SAMPLES_DIR": SAMPLES_DIR,
            "DJDESK_PRESETS_DIR": PRESETS_DIR,
            "DJDESK_DATALAB_TEMPLATES": DATALAB_TEMPLATES,
        })
        if EXPORT_HELPER:
            self.env["DJDESK_EXPORT"] = EXPORT_HELPER
        self.daemons = []
        self.processes = []
        self._n = 0

    # default paths from the contract
    @property
    def socket_path(self):
        return os.path.join(self.runtime, "djdesk", "daemon.sock")

    @property
    def db_path(self):
        return os.path.join(self.state, "djdesk", "djdesk.db")

    @property
    def config_path(self):
        return os.path.join(self.config, "djdesk", "djdesk.conf")

    def next_name(self, what):
        self._n += 1
        return os.path.join(self.root, f"{what}{self._n}")

    def write_config(self, text, path=None):
        path = path or self.config_path
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, path)
        return path

    def copy_sample(self, name, dest=None):
        """A writable copy of samples/NAME under the tree (home/projects/NAME by default); returns its path."""
        dest = dest or os.path.join(self.home, "projects", name)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copytree(os.path.join(SAMPLES_DIR, name), dest,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "db.sqlite3", "meson.build"))
        return dest

    def start(self, *args, **kw):
        d = Daemon(self, list(args), **kw)
        self.daemons.append(d)
        d.start()
        return d

    def ctl(self, *args, timeout=20, env=None, check_sanitizer=True):
        """Runs djdeskctl to completion."""
        e = dict(self.env)
        if env:
            e.update(env)
        p = subprocess.run([DJDESKCTL, *args], env=e, stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=timeout, cwd=self.root)
        if check_sanitizer:
            assert_no_sanitizer_report(p.stderr, f"djdeskctl {' '.join(args)}")
            assert p.returncode >= 0, f"djdeskctl {' '.join(args)} died of signal {-p.returncode}: {p.stderr!r}"
        return p

    def run_daemon_to_exit(self, *args, timeout=30, env=None):
        """Runs djdeskd expecting it to exit on its own (usage errors, --print-config, bad config)."""
        e = dict(self.env)
        if env:
            e.update(env)
        p = subprocess.run([DJDESKD, *args], env=e, stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=timeout, cwd=self.root)
        assert_no_sanitizer_report(p.stderr, f"djdeskd {' '.join(args)}")
        return p

    def popen(self, argv, **kw):
        kw.setdefault("env", self.env)
        kw.setdefault("stdin", subprocess.DEVNULL)
        kw.setdefault("cwd", self.root)
        p = subprocess.Popen(argv, **kw)
        self.processes.append(p)
        return p

    def cleanup(self):
        errors = []
        for p in self.processes:
            if p.poll() is None:
                p.kill()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                errors.append(f"process {p.args!r} did not die")
            for f in (p.stdout, p.stderr):
                if f:
                    f.close()
        for d in self.daemons:
            errors.extend(d.teardown())
        shutil.rmtree(self.root, ignore_errors=True)
        return errors


def assert_no_sanitizer_report(stderr, what):
    for m in SANITIZER_MARKERS:
        assert m not in stderr, f"{what}: sanitizer report:\n{stderr.decode(errors='replace')}"


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture
def tree(request):
    t = Tree()
    yield t
    signal.alarm(TEST_DEADLINE)  # teardown gets its own budget
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        # Shown under "Captured stdout teardown": what the daemons said, for the failure report.
        for d in t.daemons:
            if d.proc is not None:
                print(f"--- djdeskd {' '.join(d.args)} (pid {d.pid}, exit {d.proc.poll()}) stderr:")
                print(d.stderr_text)
    errors = t.cleanup()
    if errors:
        pytest.fail("teardown: " + "; ".join(errors), pytrace=False)


# ---------------------------------------------------------------------------------------------------------
# sd_notify listener


class DaemonExited(Exception):
    pass


class NotifySocket:
    """A NOTIFY_SOCKET (AF_UNIX datagram) that collects every assignment the daemon sends."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.sock.bind(path)
        self.messages = []  # one list of "KEY=VALUE" strings per datagram

    def _drain(self):
        while True:
            try:
                data = self.sock.recv(65536, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            self.messages.append(data.decode(errors="replace").split("\n"))

    def assignments(self):
        self._drain()
        return [a for m in self.messages for a in m if a]

    def wait_for(self, pred, timeout, pidfd=None):
        """Waits until some assignment satisfies pred; raises DaemonExited if the process exits first."""
        deadline = time.monotonic() + timeout
        while True:
            for a in self.assignments():
                if pred(a):
                    return a
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no matching sd_notify message within %.1fs (got %r)" %
                                   (timeout, self.assignments()))
            fds = [self.sock] + ([pidfd] if pidfd is not None else [])
            # Without a pidfd, wake up now and then to notice an exit.
            r, _, _ = select.select(fds, [], [], remaining if pidfd is not None else min(remaining, 0.2))
            if pidfd is not None and pidfd in r:
                for a in self.assignments():
                    if pred(a):
                        return a
                raise DaemonExited()

    def close(self):
        self.sock.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


# ---------------------------------------------------------------------------------------------------------
# the daemon


class Daemon:
    def __init__(self, tree, args, env=None, wrapper=None, notify=True, expect_exit_code=0, wait=True):
        self.tree = tree
        self.args = args
        self.extra_env = env or {}
        self.wrapper = wrapper        # e.g. ["systemd-socket-activate", "-l", PATH]
        self.use_notify = notify
        self.expect_exit_code = expect_exit_code  # checked in teardown when the test did not stop it
        self.wait = wait
        self.proc = None
        self.notify = None
        self.pidfd = None
        self._stderr = bytearray()
        self._stderr_cond = threading.Condition()
        self._reader = None
        self.torn_down = False
        self.reaped_by_test = False

    @property
    def pid(self):
        return self.proc.pid

    def start(self):
        env = dict(self.tree.env)
        for k, v in self.extra_env.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = v
        if self.use_notify:
            self.notify = NotifySocket(self.tree.next_name("notify") + ".sock")
            env["NOTIFY_SOCKET"] = self.notify.path
        argv = [DJDESKD, *self.args]
        if self.wrapper:
            w = list(self.wrapper)
            for k in sorted(env):
                w += ["-E", k]
            argv = w + argv
        self.started_at = time.time()
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, cwd=self.tree.root, start_new_session=True)
        try:
            self.pidfd = os.pidfd_open(self.proc.pid)
        except (AttributeError, OSError):
            self.pidfd = None
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        if self.wait and self.use_notify and not self.wrapper:
            self.wait_ready()

    def _read_stderr(self):
        f = self.proc.stderr
        while True:
            chunk = os.read(f.fileno(), 65536)
            with self._stderr_cond:
                if not chunk:
                    self._stderr_eof = True
                    self._stderr_cond.notify_all()
                    return
                self._stderr += chunk
                self._stderr_cond.notify_all()

    @property
    def stderr(self):
        with self._stderr_cond:
            return bytes(self._stderr)

    @property
    def stderr_text(self):
        return self.stderr.decode(errors="replace")

    def wait_stderr(self, pattern, timeout=10.0):
        """Waits until stderr matches the regular expression (bytes or str)."""
        if isinstance(pattern, str):
            pattern = pattern.encode()
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._stderr_cond:
            while not rx.search(self._stderr):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or getattr(self, "_stderr_eof", False):
                    raise AssertionError(f"stderr never matched {pattern!r}; stderr:\n{self.stderr_text}")
                self._stderr_cond.wait(remaining)
        return self.stderr_text

    def wait_ready(self, timeout=READY_TIMEOUT):
        try:
            return self.notify.wait_for(lambda a: a == "READY=1", timeout, self.pidfd)
        except DaemonExited:
            rc = self.proc.wait(timeout=5)
            self.reaped_by_test = True
            self._join_reader()
            raise AssertionError(f"djdeskd {' '.join(self.args)} exited with {rc} before READY=1; stderr:\n"
                                 f"{self.stderr_text}") from None
        except TimeoutError as e:
            raise AssertionError(f"djdeskd never sent READY=1: {e}; stderr:\n{self.stderr_text}") from None

    def wait_notify(self, pred, timeout=10.0):
        return self.notify.wait_for(pred, timeout, self.pidfd)

    def _join_reader(self):
        if self._reader:
            self._reader.join(timeout=10)

    def alive(self):
        return self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout=STOP_TIMEOUT):
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"djdeskd did not exit within {timeout}s; stderr:\n{self.stderr_text}") \
                from None
        self.reaped_by_test = True
        self._join_reader()
        return rc

    def stop(self, sig=_sig.SIGTERM, timeout=STOP_TIMEOUT):
        """Sends sig and waits for the exit code."""
        if self.alive():
            self.signal(sig)
        return self.wait_exit(timeout)

    def kill(self):
        if self.alive():
            self.proc.kill()
        return self.wait_exit()

    def vmrss_kib(self):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def sanitized(self):
        try:
            with open(f"/proc/{self.pid}/maps") as f:
                return any(s in f.read() for s in ("libasan", "libubsan"))
        except OSError:
            return False

    def teardown(self):
        """Stops the daemon (SIGTERM, then SIGKILL) and reports problems as strings."""
        if self.torn_down or self.proc is None:
            return []
        self.torn_down = True
        errors = []
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout=STOP_TIMEOUT)
                if rc != self.expect_exit_code:
                    errors.append(f"djdeskd exited with {rc} on SIGTERM in teardown (expected "
                                  f"{self.expect_exit_code})")
            except subprocess.TimeoutExpired:
                errors.append("djdeskd ignored SIGTERM for %ds in teardown; killed" % STOP_TIMEOUT)
                self.proc.kill()
                self.proc.wait(timeout=10)
        elif not self.reaped_by_test:
            rc = self.proc.wait()
            if rc != self.expect_exit_code:
                errors.append(f"djdeskd {' '.join(self.args)} exited on its own during the test with {rc}" +
                              (f" (signal {signal.Signals(-rc).name})" if rc < 0 else ""))
        self._join_reader()
        if self.proc.stderr:
            self.proc.stderr.close()
        for m in SANITIZER_MARKERS:
            if m in self.stderr:
                errors.append("sanitizer report from djdeskd:\n" + self.stderr_text)
                break
        if errors:
            errors.append("djdeskd stderr:\n" + self.stderr_text)
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None
        if self.notify:
            self.notify.close()
        return errors


@pytest.fixture
def daemon(tree):
    """A daemon with defaults, on the session bus when there is one."""
    return tree.start()


# ---------------------------------------------------------------------------------------------------------
# JSON-RPC over the socket


class RpcError(Exception):
    def __init__(self, error):
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.error = error
        self.code = error.get("code")


class Rpc:
    """A line-oriented JSON-RPC client. Notifications read while waiting for a reply are queued."""

    def __init__(self, path, timeout=RPC_TIMEOUT, connect=True):
        self.path = path
        self.timeout = timeout
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self.sock.settimeout(timeout)
        self.buf = bytearray()
        self.queue = []  # notifications not consumed yet
        self.eof = False
        self._id = 0
        if connect:
            self.sock.connect(path)

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def next_id(self):
        self._id += 1
        return self._id

    def send_raw(self, data):
        self.sock.sendall(data)

    def send(self, obj):
        self.send_raw(json.dumps(obj).encode() + b"\n")

    def read_line(self, timeout=None):
        """The next line without its newline, or None at EOF (a reset after the data counts as EOF)."""
        self.sock.settimeout(timeout if timeout is not None else self.timeout)
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 1]
                return line
            if self.eof:
                if self.buf:
                    raise AssertionError(f"EOF after a partial line: {bytes(self.buf[:200])!r}")
                return None
            try:
                chunk = self.sock.recv(1 << 20)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self.eof = True
            self.buf += chunk

    def read_msg(self, timeout=None):
        line = self.read_line(timeout)
        if line is None:
            raise EOFError("the daemon closed the connection")
        try:
            return json.loads(line)
        except ValueError:
            raise AssertionError(f"the daemon sent a line that is not JSON: {line[:300]!r}") from None

    def response(self, id, timeout=None):
        """Reads until the reply with this id; notifications are queued."""
        while True:
            m = self.read_msg(timeout)
            if isinstance(m, dict) and "method" in m and "id" not in m:
                self.queue.append(m)
                continue
            assert isinstance(m, dict) and m.get("id") == id, f"expected the reply to id {id!r}, got {m!r}"
            return m

    def call_raw(self, method, params=None, id=None):
        id = self.next_id() if id is None else id
        req = {"jsonrpc": "2.0", "id": id, "method": method}
        if params is not None:
            req["params"] = params
        self.send(req)
        return self.response(id)

    def call(self, method, params=None):
        r = self.call_raw(method, params)
        if "error" in r:
            raise RpcError(r["error"])
        assert "result" in r, r
        return r["result"]

    def next_notification(self, timeout=None):
        if self.queue:
            return self.queue.pop(0)
        m = self.read_msg(timeout)
        assert isinstance(m, dict) and m.get("method") and "id" not in m, f"expected a notification: {m!r}"
        return m

    def next_event(self, timeout=None):
        n = self.next_notification(timeout)
        assert n["method"] == "event", n
        return n["params"]

    def wait_event(self, topic, timeout=10.0):
        """Skips events until one with this topic."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {topic} event within {timeout}s")
            e = self.next_event(remaining)
            if e["topic"] == topic:
                return e

    def expect_eof(self, timeout=10.0):
        """Asserts the next thing on the connection is EOF (returns the lines skipped: none expected)."""
        line = self.read_line(timeout)
        assert line is None, f"expected EOF, got {line[:300]!r}"


def connect(path, **kw):
    return Rpc(path, **kw)


def publish(rpc, topic, data=None):
    p = {"topic": topic}
    if data is not None:
        p["data"] = data
    return rpc.call("events.publish", p)["seq"]


# ---------------------------------------------------------------------------------------------------------
# busctl


def busctl(*args, timeout=20, check=True):
    p = subprocess.run(["busctl", "--user", *args], stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=timeout, text=True)
    if check:
        assert p.returncode == 0, f"busctl {' '.join(args)} failed ({p.returncode}): {p.stderr}"
    return p


def busctl_json(*args, **kw):
    p = busctl("--json=short", *args, **kw)
    return json.loads(p.stdout)


def read_project_version():
    with open(os.path.join(SOURCE_ROOT, "meson.build")) as f:
        m = re.search(r"project\([^)]*?version\s*:\s*'([^']+)'", f.read(), re.S)
    assert m, "no version in meson.build"
    return m.group(1)


def file_mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def read_line(proc, timeout=20.0):
    """A line from the stdout of a process started with stdout=PIPE, bufsize=0, within timeout."""
    deadline = time.monotonic() + timeout
    buf = b""
    fd = proc.stdout.fileno()
    while not buf.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no line from {proc.args} within {timeout}s (got {buf!r})")
        r, _, _ = select.select([fd], [], [], remaining)
        if r:
            b = os.read(fd, 1)
            if not b:
                raise EOFError(f"{proc.args} closed stdout after {buf!r}; exit {proc.poll()}")
            buf += b
    return buf.decode()


__all__ = ["Tree", "Daemon", "Rpc", "RpcError", "connect", "publish", "busctl", "busctl_json", "needs_bus",
           "have_bus", "read_project_version", "file_mode", "read_line", "DJDESKD", "DJDESKCTL", "SOURCE_ROOT", "UNITS"]
