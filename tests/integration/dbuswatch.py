# SPDX-License-Identifier: MIT
"""A small D-Bus client for the tests: records every signal on the session bus and waits for one that
matches, without sleeping (a GLib main context iterated with a timeout source), and calls methods with the
error name kept. Needs Debian's python3-dbus and python3-gi (python3-dbusmock depends on both)."""

import time

import pytest

dbus = pytest.importorskip("dbus")
dbus_glib = pytest.importorskip("dbus.mainloop.glib")
GLib = pytest.importorskip("gi.repository.GLib")

BUS = "io.djdesk.Desk1"
MANAGER_PATH = "/io/djdesk/Desk1"
MANAGER = "io.djdesk.Desk1.Manager"
WORKSPACE = "io.djdesk.Desk1.Workspace"
WORKSPACE_PREFIX = "/io/djdesk/Desk1/workspace"
OBJECT_MANAGER = "org.freedesktop.DBus.ObjectManager"
PROPERTIES = "org.freedesktop.DBus.Properties"


class Signal:
    def __init__(self, sender, path, interface, member, args):
        self.sender = sender
        self.path = str(path)
        self.interface = str(interface)
        self.member = str(member)
        self.args = [unwrap(a) for a in args]

    def __repr__(self):
        return f"<{self.interface}.{self.member} {self.path} {self.args!r}>"


def unwrap(v):
    """dbus-python values into plain Python ones."""
    if isinstance(v, (dbus.Dictionary, dict)):
        return {unwrap(k): unwrap(x) for k, x in v.items()}
    if isinstance(v, (dbus.Array, dbus.Struct, list, tuple)):
        return [unwrap(x) for x in v]
    if isinstance(v, dbus.Boolean):
        return bool(v)
    if isinstance(v, (dbus.String, dbus.ObjectPath, dbus.Signature)):
        return str(v)
    if isinstance(v, (dbus.Byte, dbus.Int16, dbus.UInt16, dbus.Int32, dbus.UInt32, dbus.Int64, dbus.UInt64)):
        return int(v)
    if isinstance(v, dbus.Double):
        return float(v)
    return v


class Watcher:
    """A private session bus connection that records all signals from the moment it is created."""

    def __init__(self):
        dbus_glib.DBusGMainLoop(set_as_default=True)
        self.ctx = GLib.MainContext.default()
        self.bus = dbus.SessionBus(private=True)
        # libdbus _exit(1)s the process when a connection it made is disconnected, even by close(), as
        # soon as the main loop dispatches the disconnection: not what a test suite wants.
        self.bus.set_exit_on_disconnect(False)
        self.signals = []
        self.bus.add_signal_receiver(self._on_signal, sender_keyword="sender", path_keyword="path",
                                     interface_keyword="interface", member_keyword="member")
        # A round trip, so the match rule is in place before the test acts.
        self.bus.get_unique_name()
        self.bus.call_blocking("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                               "GetId", "", [])

    def close(self):
        self.bus.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def _on_signal(self, *args, sender=None, path=None, interface=None, member=None):
        self.signals.append(Signal(sender, path, interface, member, args))

    def pump(self, timeout):
        """Dispatches what arrives within timeout seconds (at least one iteration)."""
        fired = []

        def on_timeout():
            fired.append(True)
            return False

        tid = GLib.timeout_add(max(1, int(timeout * 1000)), on_timeout)
        self.ctx.iteration(True)
        if not fired:
            GLib.source_remove(tid)
        while self.ctx.iteration(False):
            pass

    def find(self, pred):
        return [s for s in self.signals if pred(s)]

    def wait_for(self, pred, timeout=10.0, what="a matching signal"):
        deadline = time.monotonic() + timeout
        while True:
            while self.ctx.iteration(False):
                pass
            for s in self.signals:
                if pred(s):
                    return s
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {what} within {timeout}s; signals seen: {self.signals!r}")
            self.pump(remaining)

    def call(self, path, interface, member, signature="", args=(), timeout=30.0, bus_name=BUS):
        """A blocking method call; returns the unwrapped result (None, a value, or a list)."""
        r = self.bus.call_blocking(bus_name, path, interface, member, signature, list(args), timeout=timeout)
        return unwrap(r)

    def call_error(self, path, interface, member, signature="", args=(), timeout=30.0, bus_name=BUS):
        """A call that must fail: returns (error name, message)."""
        with pytest.raises(dbus.exceptions.DBusException) as e:
            self.call(path, interface, member, signature, args, timeout, bus_name)
        return e.value.get_dbus_name(), e.value.get_dbus_message()

    def get_all(self, path, interface=WORKSPACE):
        return self.call(path, PROPERTIES, "GetAll", "s", [interface])

    def get(self, path, prop, interface=WORKSPACE):
        return self.call(path, PROPERTIES, "Get", "ss", [interface, prop])


def is_properties_changed(path, **want):
    """A PropertiesChanged of the Workspace interface on path carrying these values."""
    def pred(s):
        if s.member != "PropertiesChanged" or s.interface != PROPERTIES or s.path != path:
            return False
        if s.args[0] != WORKSPACE:
            return False
        changed = s.args[1]
        return all(k in changed and changed[k] == v for k, v in want.items())
    return pred
