# Small persistent node state in state.json beside config.json: the boot counter
# (incremented once per boot) and the reset cause of this boot and the one before,
# written with the same atomic helper as the config and the outbox state.
#
#     st = state.boot("/data", "watchdog")   # once per boot
#     st["boot_count"], st["reset_cause"], st["previous_reset_cause"]
#     st["last_ntp"] = 1764270000; state.save("/data", st)   # more keys as needed
#
# A missing file starts the count at 0; an unreadable one too, and says why in
# st["state_error"] (kept in RAM only): the counter is for diagnosis, never a reason
# not to boot.

import json

from firmware import atomic

STATE_FILE = "state.json"
_MAX_BYTES = 4096
_ERROR_KEY = "state_error"
_booted = {}  # directory -> the state of this boot: boot() counts once per boot


def _path(directory):
    return (directory.rstrip("/") or "") + "/" + STATE_FILE


def load(directory):
    """The saved state (a dict with at least boot_count, reset_cause and
    previous_reset_cause); defaults when there is none or it cannot be used."""
    st = {"boot_count": 0, "reset_cause": None, "previous_reset_cause": None}
    try:
        data = atomic.read(_path(directory), _MAX_BYTES)
        saved = None if data is None else json.loads(data)
        if saved is not None:
            if type(saved) is not dict:
                raise ValueError("not a JSON object")
            count = saved.get("boot_count", 0)
            if type(count) is not int or count < 0:
                raise ValueError("boot_count is not a count")
            for k in ("reset_cause", "previous_reset_cause"):
                if saved.get(k) is not None and type(saved[k]) is not str:
                    raise ValueError("%s is not a string" % k)
            for k in saved:
                st[k] = saved[k]
    except (ValueError, OSError) as e:  # ValueError: too large, bad JSON, bad UTF-8
        st[_ERROR_KEY] = "%s unusable, counting from 0: %s" % (STATE_FILE, e)
    return st


def save(directory, st):
    """Write the state atomically (a power cut leaves the old or the new file)."""
    atomic.write(_path(directory), json.dumps({k: st[k] for k in st if k != _ERROR_KEY}))


def boot(directory, reset_cause=None):
    """Count this boot and record its reset cause (a string such as "power_on",
    "watchdog", "deep_sleep"); calling it again in the same boot changes nothing.
    A failure to write is reported in st["state_error"], never raised."""
    key = directory.rstrip("/") or "/"
    st = _booted.get(key)
    if st is not None:
        return st
    st = load(directory)
    st["boot_count"] += 1
    st["previous_reset_cause"] = st["reset_cause"]
    st["reset_cause"] = reset_cause
    try:
        save(directory, st)
    except OSError as e:
        st[_ERROR_KEY] = "%s not written: %s" % (STATE_FILE, e)
    _booted[key] = st
    return st
