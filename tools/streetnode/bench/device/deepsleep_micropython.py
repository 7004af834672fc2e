# Bench only (python -m streetnode.bench.deepsleep): one wake-up of a deep-sleep node as
# `streetnode sim` runs it (firmware/main_unix.py: the flash image mounted, the board's
# loader, the firmware from its slot), with the time of each phase until the node calls
# machine.deepsleep(). The node's code is not changed and carries no timing hooks: this
# script wraps its functions as their modules are imported (builtins.__import__), and
# `machine` is a stand-in whose deepsleep() stops the clock and prints the figures.
#
#   micropython deepsleep_micropython.py STATE_DIR RESET_CAUSE
#
# Prints one line "@@{json}": wall0_ns (this script's first line, time.time_ns(), the
# host's clock), sleep_ns (the deepsleep call), awake_us (from the first line to the call,
# ticks_us) and phases {name: microseconds}, each phase's own time (what it called that is
# a phase of its own is counted there), so the phases add up to awake_us.
import time

_T0 = time.ticks_us()
_WALL0 = time.time_ns()

import builtins  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402

_acc = {}
_stack = ["wrapper"]  # the phase the time goes to now
_last = [_T0]


def _charge():
    now = time.ticks_us()
    k = _stack[-1]
    _acc[k] = _acc.get(k, 0) + time.ticks_diff(now, _last[0])
    _last[0] = now


def _timed(label, fn):
    """fn, its time going to `label`; a label starting with '>' is appended to the phase
    it is called from (the same backend call at connect, for health, at close)."""

    def wrapped(*args, **kwargs):
        _charge()
        _stack.append(_stack[-1] + label[1:] if label[0] == ">" else label)
        try:
            return fn(*args, **kwargs)
        finally:
            _charge()
            _stack.pop()

    return wrapped


# module -> [(class or None for a module function, attribute, phase)], wrapped on import
_PATCHES = {
    "firmware.main_unix": [(None, "mount_flash", "mount"), (None, "boot_loader", "loader")],
    "loader": [(None, "boot", "loader")],
    "firmware.node": [
        ("Node", "boot", "boot"), ("Node", "run", "loop"), ("Node", "_make_link", "objects"),
        ("Node", "health", "health"), (None, "make_platform", "platform"), (None, "_unload", "unload"),
    ],
    "firmware.state": [(None, "boot", "state")],
    "firmware.config": [(None, "load", "config")],
    "firmware.outbox": [(None, "adopt", "outbox_open"), ("Outbox", "__init__", "outbox_open"),
                        ("Outbox", "append", "commit"), ("Outbox", "sync", "sync"),
                        ("Outbox", "free_bytes", "flash_free")],
    "firmware.sensors": [("Sensors", "__init__", "sensors_init"), ("Sensors", "take", "sensor_read"),
                         ("Sensors", "poll", "sensor_read")],
    "firmware.net": [("Net", "__init__", "objects"), ("Net", "ensure", "wifi_ntp")],
    "firmware.ota.receiver": [("Receiver", "__init__", "objects")],
    "firmware.mqtt": [("MQTTLink", "connect", "connect"), ("MQTTLink", "close", "close"),
                      ("MQTTLink", "send", "publish"), ("MQTTLink", "pump", "publish"),
                      ("MQTTLink", "publish", "health"), ("MQTTLink", "wait", "waits")],
    "firmware.mqtt_umqtt": [("UmqttBackend", "open", ">/connack"), ("UmqttBackend", "subscribe", ">/subscribe"),
                            ("UmqttBackend", "publish", ">/publish")],
}  # fmt: skip
_done = {}
_real_import = builtins.__import__


def _patch():
    for name in _PATCHES:
        m = sys.modules.get(name)
        if m is None or _done.get(name) is m:
            continue
        try:  # a module still being imported (its own imports come first) is wrapped later
            owners = [m if cls is None else getattr(m, cls) for cls, _, _ in _PATCHES[name]]
            fns = [getattr(o, attr) for o, (_, attr, _) in zip(owners, _PATCHES[name])]
        except AttributeError:
            continue
        _done[name] = m
        for o, fn, (_, attr, label) in zip(owners, fns, _PATCHES[name]):
            setattr(o, attr, _timed(label, fn))


def _import(name, globals=None, locals=None, fromlist=None, level=0):
    # An import's own time (running the module's body, reading its file) goes to
    # "import:<module>"; the modules it imports count for themselves.
    _charge()
    _stack.append("import:" + name)
    try:
        return _real_import(name, globals, locals, fromlist, level)
    finally:
        _charge()
        _stack.pop()
        _patch()


import machine as _port_machine  # noqa: E402  (the unix port's own, without deepsleep)


class _Machine:
    """`machine` for the node: the port's own, and a deepsleep() that ends the wake-up."""

    def __getattr__(self, name):
        return getattr(_port_machine, name)

    def deepsleep(self, ms=0):
        _charge()
        now = time.ticks_us()
        out = {"wall0_ns": _WALL0, "sleep_ns": time.time_ns(), "awake_us": time.ticks_diff(now, _T0),
               "phases": _acc, "sleep_ms": ms}  # fmt: skip
        print("@@" + json.dumps(out))


sys.modules["machine"] = _Machine()
builtins.__import__ = _import

if __name__ == "__main__":
    from firmware import main_unix

    where, attach = main_unix.mount_flash(sys.argv[1])
    if not main_unix.boot_loader(where, sys.argv[2], attach):
        print("deepsleep bench: no board loader in %s" % sys.argv[1])
        sys.exit(2)
