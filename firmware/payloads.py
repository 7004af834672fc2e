# The JSON payloads a node publishes (status, data, health, cmd/result under
# <prefix>/<node_id>/), built in one place.
#
# A data record is committed to the outbox without its seq (the outbox assigns it in
# the same write); with_seq() splices it in front when the record is published, so
# the stored bytes and the published ones cannot disagree about anything but seq.

import gc
import json

from firmware.version import FW_VERSION


def data_body(ts, synced, sensors):
    """A sampling cycle without seq: {"ts": ..., "synced": ..., "sensors": {...}}."""
    return json.dumps({"ts": ts, "synced": synced, "sensors": sensors}).encode()


def with_seq(seq, body):
    """The published data payload: body with "seq" as its first member."""
    return b'{"seq": %d, ' % seq + bytes(body[1:])


def status(state, boot_count=None, reset_cause=None):
    return json.dumps(
        {"state": state, "fw": FW_VERSION, "boot_count": boot_count, "reset_cause": reset_cause}
    ).encode()


def memory():
    """(mem_free, mem_alloc) in bytes on MicroPython; (None, None) on CPython."""
    if hasattr(gc, "mem_free"):
        return gc.mem_free(), gc.mem_alloc()
    return None, None


def health(uptime_s, outbox, dropped, reconnects, errors, extra=None):
    free, alloc = memory()
    out = {
        "uptime_s": uptime_s,
        "mem_free": free,
        "mem_alloc": alloc,
        "outbox": outbox,
        "dropped": dropped,
        "reconnects": reconnects,
        "errors": errors,
        "fw": FW_VERSION,
    }
    if extra:
        for k in extra:
            out[k] = extra[k]
    return json.dumps(out).encode()
