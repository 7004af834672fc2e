# The transfer of a release into the inactive slot (firmware/ota/receiver.py describes the
# exchange and its order): the offer, the chunks, the manifest's checks, each file read
# back, the final check and the switch. Functions of the node's Receiver `r`, loaded by
# it only while an update is under way.

import binascii
import hashlib
import json
import os
import struct

from firmware.filehash import sha256_file
from firmware.ota.receiver import CHUNK_MAX, MANIFEST, _mkdirs, _remove, _write_json

_HEADER = ">8sHI"
_HEADER_LEN = 14
_RETRIES = 2  # a file whose read-back hash is wrong is written again this often, then refused
_BLOCK = 4096


def _size(p):
    try:
        return os.stat(p)[6]
    except OSError:
        return None


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


def offer(r, payload):
    try:
        offer = json.loads(payload)
        release_id = offer["release"]
        size = offer["size"]
        sig = binascii.a2b_base64(offer["sig"])
        if type(release_id) is not str or len(release_id) != 64 or type(size) is not int:
            raise ValueError("bad fields")
    except (ValueError, KeyError, TypeError):
        r.ignored += 1
        r._republish()
        return
    if r.why_not:
        r._set("rejected", r.why_not, release=release_id)
        return
    if r.status["state"] == "trial":
        r._republish()  # one update at a time: the trial decides first
        return
    rx = r._rx
    if rx is not None and rx.get("release") == release_id:
        r._republish()  # the same release again: go on where it stands (or stays refused)
        return
    from firmware.ota import keys, release

    if not keys.pubkeys(r.node.config):
        r._set("rejected", keys.NO_KEYS, release=release_id, version=None)
        return
    if not 0 < size <= release.MAX_BYTES:
        r._set("rejected", "manifest of %d bytes, more than the %d allowed" % (size, release.MAX_BYTES),
                  release=release_id, version=None)  # fmt: skip
        return
    abandon(r)
    _mkdirs(r.dir)
    _remove(r.dir + "/manifest.json")
    r._rx = {"release": release_id, "size": size, "sig": offer["sig"], "state": "receiving", "file": -1}
    _write_json(r.dir + "/rx.json", r._rx)
    r._set("receiving", None, release=release_id, version=None, progress=0, next=[MANIFEST, 0])
    r.status["from"] = r.fw


def chunk(r, payload):
    rx = r._rx
    st = r.status
    if rx is None or st["state"] != "receiving" or len(payload) <= _HEADER_LEN or st["next"] is None:
        r.ignored += 1
        return
    rid, index, offset = struct.unpack_from(_HEADER, payload, 0)
    if binascii.hexlify(rid).decode() != rx["release"][:16]:
        r.ignored += 1  # another release
        return
    n = len(payload) - _HEADER_LEN
    want_index, want_offset = st["next"]
    total = rx["size"] if index == MANIFEST else (r._files[index][1] if r._files and index < len(r._files) else -1)
    if index != want_index or offset != want_offset or n > CHUNK_MAX or offset + n > total:
        r.ignored += 1  # a repeat, a gap, too long, past the end: the sender follows "next"
        return
    path = file_path(r, index)
    with open(path, "ab") as f:
        f.write(memoryview(payload)[_HEADER_LEN:])
    offset += n
    if offset < total:
        st["next"] = [index, offset]
        progress(r)
        r._status_qos = 0
        return
    if index == MANIFEST:
        manifest_done(r)
    else:
        file_done(r, index)


def file_path(r, index):
    if index == MANIFEST:
        return r.dir + "/manifest.json"
    return r.loader.inactive() + "/" + r._files[index][0]


def manifest_done(r):
    from firmware.ota import keys, release

    rx = r._rx
    with open(r.dir + "/manifest.json", "rb") as f:
        data = f.read()
    if binascii.hexlify(hashlib.sha256(data).digest()).decode() != rx["release"]:
        r._reject("manifest does not match the release id of the offer")
        return
    r._set("verifying", None)
    sig = binascii.a2b_base64(rx["sig"])
    m, why = release.accept(data, sig, keys.pubkeys(r.node.config), r.node.config.get("board", "unix-sim"),
                            r.fw, r.loader.LOADER_VERSION)  # fmt: skip
    data = None
    if m is None:
        r._reject(why)
        return
    rx["version"] = m["version"]
    r.status["version"] = m["version"]
    need = release.blocks_needed(m, _BLOCK) * _BLOCK + _BLOCK * 2
    target = r.loader.inactive()
    free = r.node.outbox.free_bytes()
    if free is not None:
        room = free + _tree_bytes(target) - r.node.outbox.reserve_bytes
        if need > room:
            r._reject("release needs %d KiB of flash, %d KiB are free" % (need // 1024, max(0, room) // 1024))
            return
    r._files = [(f["path"], f["size"], f["sha256"]) for f in m["files"]]
    m = None
    # Only now is the inactive slot touched: emptied, then filled file by file.
    _rmtree(target)
    rx["file"] = 0
    rx["state"] = "receiving"
    rx["tries"] = 0
    _write_json(r.dir + "/rx.json", rx)
    r._set("receiving", None)
    start_file(r, 0)


def start_file(r, index):
    files = r._files
    while index < len(files) and files[index][1] == 0:
        p = file_path(r, index)
        _mkdirs(p.rsplit("/", 1)[0])
        open(p, "wb").close()
        index += 1
    if index >= len(files):
        r._rx["state"] = "verifying"
        r._rx["file"] = index
        _write_json(r.dir + "/rx.json", r._rx)
        r._set("verifying", None, progress=100)
        r._verify_at = 0
        return
    p = file_path(r, index)
    _mkdirs(p.rsplit("/", 1)[0])
    have = _size(p)
    if have is None or have > files[index][1]:
        open(p, "wb").close()
        have = 0
    r.status["next"] = [index, have]
    progress(r)
    if have == files[index][1]:
        file_done(r, index)


def file_done(r, index):
    rx = r._rx
    path, size, sha = r._files[index]
    if sha256_file(file_path(r, index)) != sha:  # read back from flash
        rx["tries"] = rx.get("tries", 0) + 1
        if rx["tries"] > _RETRIES:
            r._reject("%s differs from the manifest after writing it %d times" % (path, rx["tries"]))
            return
        open(file_path(r, index), "wb").close()
    else:
        index += 1
        rx["tries"] = 0
    rx["file"] = index
    _write_json(r.dir + "/rx.json", rx)
    r._status_qos = 1
    start_file(r, index)


def resume(r):
    rx = r._rx
    if rx.get("file", -1) < 0:
        have = _size(r.dir + "/manifest.json") or 0
        if have >= rx["size"]:
            _remove(r.dir + "/manifest.json")
            have = 0
        r._set("receiving", None, release=rx["release"], progress=0, next=[MANIFEST, have])
        r.status["from"] = r.fw
        return
    with open(r.dir + "/manifest.json") as f:
        m = json.loads(f.read())  # verified before it was kept
    r._files = [(x["path"], x["size"], x["sha256"]) for x in m["files"]]
    m = None
    r._set("receiving", None, release=rx["release"], version=rx.get("version"))
    r.status["from"] = r.fw
    if rx["state"] == "verifying":
        r._set("verifying", None, progress=100)
        r._verify_at = 0
    else:
        start_file(r, rx["file"])


def progress(r):
    files = r._files
    nxt = r.status["next"]
    if not files or nxt is None or nxt[0] == MANIFEST:
        r.status["progress"] = 0
        return
    total = 0
    done = 0
    for i in range(len(files)):
        total += files[i][1]
        if i < nxt[0]:
            done += files[i][1]
    done += nxt[1]
    r.status["progress"] = (100 * done // total) if total else 100


def abandon(r):
    r._rx = None
    r._files = None
    r._verify_at = None
    _remove(r.dir + "/rx.json")


def verify_step(r):
    i = r._verify_at
    files = r._files
    if i < len(files):
        if sha256_file(file_path(r, i)) != files[i][2]:
            r._reject("%s differs from the manifest in the final check" % files[i][0])
            return
        r._verify_at = i + 1
        return
    # Everything is there and checked: the switch.
    r._verify_at = None
    target = r.loader.inactive()
    with open(r.dir + "/manifest.json", "rb") as f:
        data = f.read()
    with open(target + "/release.json", "wb") as f:
        f.write(data)
    data = None
    cfg = r.node.config.get("ota") or {}
    version = r._rx.get("version")
    abandon(r)
    _remove(r.dir + "/manifest.json")
    r.loader.start_trial(target, version, r.fw, cfg.get("trial_boots", 3), cfg.get("trial_timeout_s", 600))
    r._set("trial", "switched to slot %s, rebooting" % target, version=version, progress=100)
    r.status["from"] = r.fw
    r.node.reboot_soon(500)
