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

import binascii
import hashlib
import json
import os
import struct

from firmware.filehash import sha256_file
from hal import clock

CHUNK_MAX = 3072  # data bytes per chunk: with the header well under the link's 4096-byte limit
MANIFEST = 0xFFFF
_HEADER = ">8sHI"
_HEADER_LEN = 14
_RETRIES = 2  # a file whose read-back hash is wrong is written again this often, then refused
_BLOCK = 4096


def _exists(p):
    try:
        os.stat(p)
        return True
    except OSError:
        return False


def _size(p):
    try:
        return os.stat(p)[6]
    except OSError:
        return None


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


def _rmtree(p):
    try:
        entries = list(os.ilistdir(p))
    except OSError:
        _remove(p)
        return
    for e in entries:
        q = p + "/" + e[0]
        if e[1] & 0x4000:
            _rmtree(q)
        else:
            _remove(q)
    try:
        os.rmdir(p)
    except OSError:
        pass


def _tree_bytes(p):
    """Flash (whole blocks) the files under p take."""
    total = 0
    try:
        entries = list(os.ilistdir(p))
    except OSError:
        return 0
    for e in entries:
        q = p + "/" + e[0]
        if e[1] & 0x4000:
            total += _tree_bytes(q)
        else:
            total += max(1, -(-(_size(q) or 0) // _BLOCK)) * _BLOCK
    return total


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
        st = self.status
        st["state"] = state
        st["reason"] = reason
        for k in kw:
            st[k] = kw[k]
        if state not in ("receiving", "verifying"):
            st["next"] = None

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
                    self._resume()
                except (OSError, ValueError, KeyError, TypeError) as e:
                    self._reject("could not resume the transfer: %r" % (e,))

    # -- messages from the link

    def on_message(self, sub, payload):
        try:
            if sub == "ota/offer":
                self._offer(payload)
            elif sub == "ota/chunk":
                self._chunk(payload)
        except MemoryError:
            self._reject("out of memory while receiving")
        except Exception as e:  # noqa: BLE001 - a bad update is a reason, never a crash
            self._reject("%s: %s" % (type(e).__name__, e))

    def _offer(self, payload):
        try:
            offer = json.loads(payload)
            release_id = offer["release"]
            size = offer["size"]
            sig = binascii.a2b_base64(offer["sig"])
            if type(release_id) is not str or len(release_id) != 64 or type(size) is not int:
                raise ValueError("bad fields")
        except (ValueError, KeyError, TypeError):
            self.ignored += 1
            self._republish()
            return
        if self.why_not:
            self._set("rejected", self.why_not, release=release_id)
            return
        if self.status["state"] == "trial":
            self._republish()  # one update at a time: the trial decides first
            return
        rx = self._rx
        if rx is not None and rx.get("release") == release_id:
            self._republish()  # the same release again: go on where it stands (or stays refused)
            return
        from firmware.ota import keys, release

        if not keys.pubkeys(self.node.config):
            self._set("rejected", keys.NO_KEYS, release=release_id, version=None)
            return
        if not 0 < size <= release.MAX_BYTES:
            self._set("rejected", "manifest of %d bytes, more than the %d allowed" % (size, release.MAX_BYTES),
                      release=release_id, version=None)  # fmt: skip
            return
        self._abandon()
        _mkdirs(self.dir)
        _remove(self.dir + "/manifest.json")
        self._rx = {"release": release_id, "size": size, "sig": offer["sig"], "state": "receiving", "file": -1}
        _write_json(self.dir + "/rx.json", self._rx)
        self._set("receiving", None, release=release_id, version=None, progress=0, next=[MANIFEST, 0])
        self.status["from"] = self.fw

    def _chunk(self, payload):
        rx = self._rx
        st = self.status
        if rx is None or st["state"] != "receiving" or len(payload) <= _HEADER_LEN or st["next"] is None:
            self.ignored += 1
            return
        rid, index, offset = struct.unpack_from(_HEADER, payload, 0)
        if binascii.hexlify(rid).decode() != rx["release"][:16]:
            self.ignored += 1  # another release
            return
        n = len(payload) - _HEADER_LEN
        want_index, want_offset = st["next"]
        total = rx["size"] if index == MANIFEST else (self._files[index][1] if self._files and index < len(self._files) else -1)
        if index != want_index or offset != want_offset or n > CHUNK_MAX or offset + n > total:
            self.ignored += 1  # a repeat, a gap, too long, past the end: the sender follows "next"
            return
        path = self._path(index)
        with open(path, "ab") as f:
            f.write(memoryview(payload)[_HEADER_LEN:])
        offset += n
        if offset < total:
            st["next"] = [index, offset]
            self._progress()
            self._status_qos = 0
            return
        if index == MANIFEST:
            self._manifest_done()
        else:
            self._file_done(index)

    # -- the pieces

    def _path(self, index):
        if index == MANIFEST:
            return self.dir + "/manifest.json"
        return self.loader.inactive() + "/" + self._files[index][0]

    def _manifest_done(self):
        from firmware.ota import keys, release

        rx = self._rx
        with open(self.dir + "/manifest.json", "rb") as f:
            data = f.read()
        if binascii.hexlify(hashlib.sha256(data).digest()).decode() != rx["release"]:
            self._reject("manifest does not match the release id of the offer")
            return
        self._set("verifying", None)
        sig = binascii.a2b_base64(rx["sig"])
        m, why = release.accept(data, sig, keys.pubkeys(self.node.config), self.node.config.get("board", "unix-sim"),
                                self.fw, self.loader.LOADER_VERSION)  # fmt: skip
        data = None
        if m is None:
            self._reject(why)
            return
        rx["version"] = m["version"]
        self.status["version"] = m["version"]
        need = release.blocks_needed(m, _BLOCK) * _BLOCK + _BLOCK * 2
        target = self.loader.inactive()
        free = self.node.outbox.free_bytes()
        if free is not None:
            room = free + _tree_bytes(target) - self.node.outbox.reserve_bytes
            if need > room:
                self._reject("release needs %d KiB of flash, %d KiB are free" % (need // 1024, max(0, room) // 1024))
                return
        self._files = [(f["path"], f["size"], f["sha256"]) for f in m["files"]]
        m = None
        # Only now is the inactive slot touched: emptied, then filled file by file.
        _rmtree(target)
        rx["file"] = 0
        rx["state"] = "receiving"
        rx["tries"] = 0
        _write_json(self.dir + "/rx.json", rx)
        self._set("receiving", None)
        self._start_file(0)

    def _start_file(self, index):
        files = self._files
        while index < len(files) and files[index][1] == 0:
            p = self._path(index)
            _mkdirs(p.rsplit("/", 1)[0])
            open(p, "wb").close()
            index += 1
        if index >= len(files):
            self._rx["state"] = "verifying"
            self._rx["file"] = index
            _write_json(self.dir + "/rx.json", self._rx)
            self._set("verifying", None, progress=100)
            self._verify_at = 0
            return
        p = self._path(index)
        _mkdirs(p.rsplit("/", 1)[0])
        have = _size(p)
        if have is None or have > files[index][1]:
            open(p, "wb").close()
            have = 0
        self.status["next"] = [index, have]
        self._progress()
        if have == files[index][1]:
            self._file_done(index)

    def _file_done(self, index):
        rx = self._rx
        path, size, sha = self._files[index]
        if sha256_file(self._path(index)) != sha:  # read back from flash
            rx["tries"] = rx.get("tries", 0) + 1
            if rx["tries"] > _RETRIES:
                self._reject("%s differs from the manifest after writing it %d times" % (path, rx["tries"]))
                return
            open(self._path(index), "wb").close()
        else:
            index += 1
            rx["tries"] = 0
        rx["file"] = index
        _write_json(self.dir + "/rx.json", rx)
        self._status_qos = 1
        self._start_file(index)

    def _resume(self):
        rx = self._rx
        if rx.get("file", -1) < 0:
            have = _size(self.dir + "/manifest.json") or 0
            if have >= rx["size"]:
                _remove(self.dir + "/manifest.json")
                have = 0
            self._set("receiving", None, release=rx["release"], progress=0, next=[MANIFEST, have])
            self.status["from"] = self.fw
            return
        with open(self.dir + "/manifest.json") as f:
            m = json.loads(f.read())  # verified before it was kept
        self._files = [(x["path"], x["size"], x["sha256"]) for x in m["files"]]
        m = None
        self._set("receiving", None, release=rx["release"], version=rx.get("version"))
        self.status["from"] = self.fw
        if rx["state"] == "verifying":
            self._set("verifying", None, progress=100)
            self._verify_at = 0
        else:
            self._start_file(rx["file"])

    def _progress(self):
        files = self._files
        nxt = self.status["next"]
        if not files or nxt is None or nxt[0] == MANIFEST:
            self.status["progress"] = 0
            return
        total = 0
        done = 0
        for i in range(len(files)):
            total += files[i][1]
            if i < nxt[0]:
                done += files[i][1]
        done += nxt[1]
        self.status["progress"] = (100 * done // total) if total else 100

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

    def _abandon(self):
        self._rx = None
        self._files = None
        self._verify_at = None
        _remove(self.dir + "/rx.json")

    def _republish(self):
        self._published = None

    # -- the loop

    def busy(self):
        """True while there is work for the next pass (the final check, a status to send)."""
        return self._verify_at is not None or (self._connected and self._published != self._status_text())

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
        if self._verify_at is not None:
            try:
                self._verify_step()
            except Exception as e:  # noqa: BLE001
                self._reject("%s: %s" % (type(e).__name__, e))
        text = self._status_text()
        if text != self._published:
            if link.publish("ota/status", text, self._status_qos, True):
                self._published = text
                self._status_qos = 1

    def _verify_step(self):
        i = self._verify_at
        files = self._files
        if i < len(files):
            if sha256_file(self._path(i)) != files[i][2]:
                self._reject("%s differs from the manifest in the final check" % files[i][0])
                return
            self._verify_at = i + 1
            return
        # Everything is there and checked: the switch.
        self._verify_at = None
        target = self.loader.inactive()
        with open(self.dir + "/manifest.json", "rb") as f:
            data = f.read()
        with open(target + "/release.json", "wb") as f:
            f.write(data)
        data = None
        cfg = self.node.config.get("ota") or {}
        version = self._rx.get("version")
        self._abandon()
        _remove(self.dir + "/manifest.json")
        self.loader.start_trial(target, version, self.fw, cfg.get("trial_boots", 3), cfg.get("trial_timeout_s", 600))
        self._set("trial", "switched to slot %s, rebooting" % target, version=version, progress=100)
        self.status["from"] = self.fw
        self.node.reboot_soon(500)

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
