# The node's side of an update over the air: the transfer into the INACTIVE slot, the
# checks, the switch onto a trial, and the confirmation or rollback of that trial.
#
# Topics under <prefix>/<node>/ (docs/node.md):
#   ota/offer   in, QoS 1: {"release": sha256 hex of the manifest bytes, "size": its length,
#               "sig": base64 of the 64-byte Ed25519 signature}
#   ota/chunk   in, QoS 1, binary: 8 bytes release id (the first 8 of that sha256), file
#               index (uint16 big-endian, 0xFFFF = the manifest itself), offset (uint32),
#               then up to CHUNK_MAX bytes of data
#   ota/status  out, retained: {"state", "version", "from", "reason", "progress", "release",
#               "next": [file index, offset] or null, "fw", "slot"}
# The node asks for what it needs (`next`); the sender sends that chunk and waits for the
# next status (one chunk in flight). Anything else (another release, a repeat, a gap, a
# truncated or oversized chunk) is ignored and counted in "ignored". Resuming is the same
# exchange: after a disconnect, broker restart or reboot the node's status names what it
# has; the offer of the same release goes on from there.
#
# Order: the manifest goes to data/ota/ (never into a slot), its signature is verified
# against ota.pubkeys and it is checked (target, downgrade, loader, free flash) BEFORE the
# inactive slot is touched. Each file is appended chunk by chunk and read back from flash
# when complete (sha256); then every file once more (one per loop pass), then the switch
# (loader.start_trial: trial record, then the pointer) and a reboot. The new version
# confirms itself after confirm_cycles published cycles without step errors; the loader
# rolls it back otherwise (boot.py, main.py, loader.py at the board root).

# The transfer itself (offer, chunks, the checks, the switch) is firmware/ota/transfer.py,
# loaded when an OTA message arrives or a transfer is resumed at boot and let go again
# on MicroPython once the transfer has ended: a node that is not being updated carries
# only this module (its status, the trial's verdict) in its heap.

import json
import os
import sys

from hal import clock

CHUNK_MAX = 3072  # data bytes per chunk: with the header well under the link's 4096-byte limit
MANIFEST = 0xFFFF
_TRANSFER = "firmware.ota.transfer"


def _exists(p):
    try:
        os.stat(p)
        return True
    except OSError:
        return False


def _remove(p):
    try:
        os.remove(p)
    except OSError:
        pass


def _mkdirs(path):
    at = ""
    for part in path.split("/"):
        at = at + "/" + part if at else part
        if at and not _exists(at):
            try:
                os.mkdir(at)
            except OSError:
                pass


def _read_json(p):
    try:
        with open(p) as f:
            doc = json.loads(f.read())
        return doc if type(doc) is dict else None
    except (OSError, ValueError):
        return None


def _write_json(p, doc):
    with open(p + ".tmp", "w") as f:
        f.write(json.dumps(doc))
    try:
        os.rename(p + ".tmp", p)
    except OSError:
        _remove(p)
        os.rename(p + ".tmp", p)


class Receiver:
    """One per node; `tick()` from the loop while connected, `on_message()` from the link."""

    def __init__(self, node):
        self.node = node
        self.dir = node.dir + "/ota"
        self.loader = None
        self.why_not = None
        if node.dir != "data":
            self.why_not = "this node does not boot from A/B slots (no board loader): update it over the cable"
        else:
            try:
                import loader

                self.loader = loader
            except ImportError:
                self.why_not = "no boot loader with A/B slots on this board: update it over the cable"
        self.slot = self.loader.active() if self.loader else None
        self.fw = self._slot_version(self.slot)
        self.ignored = 0
        self._files = None  # [(path, size, sha256)] of the release being received
        self._rx = None  # the transfer's persisted state (data/ota/rx.json)
        self._verify_at = None  # index of the next file to check once more
        self._published = None  # the status last published (a change publishes again)
        # Something may have changed the status since it was last compared: only then is it
        # serialized again, so an idle pass of the loop allocates nothing here.
        self._dirty = True
        self._status_qos = 1
        self._connected = False
        self._boot_published = 0
        self._boot_cycles = 0
        self.status = {"state": "idle", "version": None, "from": None, "reason": None, "progress": None,
                       "release": None, "next": None}  # fmt: skip
        self._restore()

    # -- what the node is running and what happened before this boot

    def _slot_version(self, slot):
        if slot:
            doc = _read_json(slot + "/release.json")
            if doc and type(doc.get("version")) is str:
                return doc["version"]
        from firmware.version import FW_VERSION

        return FW_VERSION

    def _set(self, state, reason=None, **kw):
        self._dirty = True
        st = self.status
        st["state"] = state
        st["reason"] = reason
        for k in kw:
            st[k] = kw[k]
        if state not in ("receiving", "verifying"):
            st["next"] = None

    def _transfer(self):
        """firmware/ota/transfer.py, imported now if it is not loaded."""
        mod = sys.modules.get(_TRANSFER)
        if mod is None:
            __import__(_TRANSFER)
            mod = sys.modules[_TRANSFER]
        return mod

    def _transfer_done(self):
        # On MicroPython the transfer's code leaves the heap with the transfer (on CPython
        # it stays: memory is plenty there). Its functions still running hold what they need.
        if sys.implementation.name == "micropython" and self.status["state"] not in ("receiving", "verifying"):
            if sys.modules.pop(_TRANSFER, None) is not None:
                pkg = sys.modules.get("firmware.ota")
                if pkg is not None and "transfer" in pkg.__dict__:
                    delattr(pkg, "transfer")

    def _restore(self):
        if self.loader is None:
            return
        t = self.loader.trial()
        if t is not None and t.get("slot") == self.slot:
            self._set("trial", None, version=t.get("version"), **{"from": t.get("from")})
            return
        res = _read_json(self.dir + "/result.json")
        if res and res.get("state") in ("confirmed", "rolled_back"):
            self._set(res["state"], res.get("reason"), version=res.get("version"), **{"from": res.get("from")})
        rx = _read_json(self.dir + "/rx.json")
        if rx and type(rx.get("release")) is str:
            self._rx = rx
            if rx.get("state") == "rejected":
                self._set("rejected", rx.get("reason"), version=rx.get("version"), release=rx["release"])
            elif rx.get("state") in ("receiving", "verifying"):
                try:
                    self._transfer().resume(self)
                except (OSError, ValueError, KeyError, TypeError) as e:
                    self._reject("could not resume the transfer: %r" % (e,))
                self._transfer_done()

    # -- messages from the link

    def on_message(self, sub, payload):
        self._dirty = True  # the transfer's steps change the status in place
        try:
            if sub == "ota/offer":
                self._transfer().offer(self, payload)
            elif sub == "ota/chunk":
                self._transfer().chunk(self, payload)
        except MemoryError:
            self._reject("out of memory while receiving")
        except Exception as e:  # noqa: BLE001 - a bad update is a reason, never a crash
            self._reject("%s: %s" % (type(e).__name__, e))
        self._transfer_done()

    # -- the pieces

    def _reject(self, reason):
        print("ota: rejected:", reason)
        rx = self._rx or {}
        rx["state"] = "rejected"
        rx["reason"] = reason
        self._rx = rx
        self._files = None
        self._verify_at = None
        try:
            if rx.get("release"):
                _mkdirs(self.dir)
                _write_json(self.dir + "/rx.json", rx)
            _remove(self.dir + "/manifest.json")
        except OSError:
            pass
        self._set("rejected", reason, release=rx.get("release"), version=rx.get("version"))
        self._status_qos = 1

    def _republish(self):
        self._published = None
        self._dirty = True

    # -- the loop

    def busy(self):
        """True while there is work for the next pass (the final check, a status to send)."""
        return self._verify_at is not None or (self._connected and self._dirty)

    def _status_text(self):
        st = self.status
        st["fw"] = self.fw
        st["slot"] = self.slot
        if self.ignored:
            st["ignored"] = self.ignored
        return json.dumps(st)

    def tick(self, now):
        """From the node's loop: the final check (one file per pass), the trial's verdict,
        and ota/status when it changed (retained)."""
        node = self.node
        link = node.link
        if self.status["state"] == "trial":
            self._trial(now)  # connected or not: a version that never connects times out
        if not link.connected:
            self._connected = False
            return
        if not self._connected:
            self._connected = True
            self._published = None  # a new session: say where we stand
            self._status_qos = 1
            self._dirty = True
        if self._verify_at is not None:
            self._dirty = True
            try:
                self._transfer().verify_step(self)
            except Exception as e:  # noqa: BLE001
                self._reject("%s: %s" % (type(e).__name__, e))
            self._transfer_done()
        if not self._dirty:
            return
        text = self._status_text()
        if text == self._published:
            self._dirty = False
        elif link.publish("ota/status", text, self._status_qos, True):
            self._published = text
            self._status_qos = 1
            self._dirty = False

    def _trial(self, now):
        node = self.node
        t = self.loader.trial()
        if t is None or t.get("slot") != self.slot:
            return  # not this boot's trial (the old version, between the switch and its reboot)
        if node.step_errors:
            self._rollback("%d step error(s) during the trial" % node.step_errors)
            return
        cycles = (self.node.config.get("ota") or {}).get("confirm_cycles", 3)
        if node.link.connected and node.published >= cycles and node.cycles >= cycles:
            self.loader.confirm()
            self._set("confirmed", None)
            print("ota: confirmed", self.status["version"])
            return
        uptime_s = clock.ticks_diff(clock.ticks_ms(), node.started_ms) // 1000
        why = self.loader.trial_expired(uptime_s)
        if why:
            self._rollback(why)

    def _rollback(self, reason):
        print("ota: rolling back:", reason)
        self.loader.rollback(reason)
        self._set("rolled_back", reason)
        self.node.reboot_soon(500)
