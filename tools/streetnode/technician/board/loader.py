# streetnode boot loader library (board root, beside boot.py and main.py): the slot pointer
# and the trial of a new firmware version. Not updated over the air: a release names the
# LOADER_VERSION it needs (manifest "loader") and a node with an older loader refuses it;
# a new loader reaches a board over the cable (`streetnode deploy`).
#
# Files in the board root (the working directory at boot):
#   slot        "a" or "b": the active slot, replaced atomically (slot.tmp, rename)
#   trial       JSON {"slot", "prev", "boots", "version", "from", "trial_boots",
#               "timeout_s"} while a new version is on trial; written BEFORE the pointer
#               switches, removed when it is confirmed or rolled back
#   data/ota/result.json   the last outcome ({"state": "confirmed" | "rolled_back",
#               "version", "from", "reason"}), read by the firmware for ota/status
#
# A cut at any moment leaves a consistent pair: a trial whose slot is not the active one
# is a switch that never happened (or a rollback that finished) and is removed at boot.
import json
import os
import sys

LOADER_VERSION = 1
RESULT = "data/ota/result.json"
TRIAL_BOOTS = 3  # defaults of the config's ota section
TRIAL_TIMEOUT_S = 600
EXIT_REBOOT = 3  # the unix port's "reset" (firmware/node.py)


def _read(name):
    try:
        with open(name) as f:
            return f.read().strip()
    except OSError:
        return ""


def _exists(name):
    try:
        os.stat(name)
        return True
    except OSError:
        return False


def _replace(src, dst):
    try:
        os.rename(src, dst)
    except OSError:
        os.remove(dst)  # FAT: no rename onto a file; the readers promote a lone temp
        os.rename(src, dst)


def write_atomic(name, text):
    with open(name + ".tmp", "w") as f:
        f.write(text)
    _replace(name + ".tmp", name)


def _mkdirs(path):
    at = ""
    for part in path.split("/"):
        at = at + "/" + part if at else part
        if at and not _exists(at):
            os.mkdir(at)


def _remove(name):
    try:
        os.remove(name)
    except OSError:
        pass


def active():
    """The active slot ("a" or "b"), or None on a board without firmware."""
    s = _read("slot")
    if s in ("a", "b"):
        return s
    s = _read("slot.tmp")  # FAT: a cut between remove and rename leaves the complete temp
    return s if s in ("a", "b") else None


def inactive():
    s = active()
    return "b" if s == "a" else "a"


def set_pointer(slot):
    write_atomic("slot", slot)


def trial():
    """The trial record, or None."""
    t = _read("trial") or _read("trial.tmp")
    if not t:
        return None
    try:
        t = json.loads(t)
    except ValueError:
        return None
    return t if type(t) is dict and t.get("slot") in ("a", "b") else None


def _result(state, t, reason=None):
    _mkdirs(RESULT.rsplit("/", 1)[0])
    doc = {"state": state, "version": t.get("version"), "from": t.get("from"), "reason": reason}
    write_atomic(RESULT, json.dumps(doc))


def _drop_trial():
    _remove("trial")
    _remove("trial.tmp")


def start_trial(slot, version, from_version, trial_boots=TRIAL_BOOTS, timeout_s=TRIAL_TIMEOUT_S):
    """Switch to `slot` (complete and verified) on trial: the record first, then the pointer."""
    prev = active()
    doc = {"slot": slot, "prev": prev, "boots": 0, "version": version, "from": from_version,
           "trial_boots": trial_boots, "timeout_s": timeout_s}  # fmt: skip
    write_atomic("trial", json.dumps(doc))
    _remove(RESULT)
    set_pointer(slot)


def confirm():
    t = trial()
    if t is None:
        return False
    _result("confirmed", t)
    _drop_trial()
    return True


def rollback(reason):
    """Back to the previous slot; the reason lands in data/ota/result.json. Then reset()."""
    t = trial()
    if t is None:
        return False
    _result("rolled_back", t, reason)
    if t.get("prev") in ("a", "b"):
        set_pointer(t["prev"])
    _drop_trial()
    return True


def trial_expired(uptime_s):
    """The reason to roll back when a trial ran `uptime_s` in this boot without being
    confirmed, else None."""
    t = trial()
    if t is None:
        return None
    limit = t.get("timeout_s") or TRIAL_TIMEOUT_S
    if uptime_s >= limit:
        return "not confirmed within %d s" % limit
    return None


def boot():
    """Called by boot.py: count a trial boot (rolling back after too many) and put the
    active slot on sys.path. Returns the slot."""
    t = trial()
    s = active()
    if t is not None:
        if t["slot"] != s:
            _drop_trial()  # the switch never happened, or the rollback finished
        elif t.get("boots", 0) >= (t.get("trial_boots") or TRIAL_BOOTS):
            rollback("not confirmed after %d boots" % t.get("boots", 0))
            s = active()
        else:
            t["boots"] = t.get("boots", 0) + 1
            write_atomic("trial", json.dumps(t))
    if s:
        sys.path.insert(0, s + "/lib")
        sys.path.insert(0, s)
    return s


def arm_trial_timer():
    """On a board, a hardware-independent backstop for a trial: a timer that rolls back
    and resets when the version is not confirmed within its timeout, even if the new
    firmware's loop never gets to check. Nothing on the unix port (the firmware checks)."""
    t = trial()
    if t is None:
        return
    try:
        from machine import Timer
        import micropython
    except (ImportError, AttributeError):
        return

    def expire(_):
        if trial() is not None:
            rollback("not confirmed within %d s (loader timer)" % (t.get("timeout_s") or TRIAL_TIMEOUT_S))
            reset()

    try:
        tm = Timer(0)
        tm.init(mode=Timer.ONE_SHOT, period=int((t.get("timeout_s") or TRIAL_TIMEOUT_S) * 1000) + 30000,
                callback=lambda tmr: micropython.schedule(expire, 0))  # fmt: skip
    except (ValueError, TypeError, OSError):
        pass


def reset():
    try:
        import machine

        machine.reset()
    except (ImportError, AttributeError):
        pass
    sys.exit(EXIT_REBOOT)  # the unix port: the sim's supervisor starts the node again
