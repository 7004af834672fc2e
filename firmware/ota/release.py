# A release manifest on the node: its signature checked against the node's keys, then
# its fields, then whether this node may install it. `streetnode release` writes it
# (tools/streetnode/ota/release.py); the bytes are canonical JSON (sorted keys, no spaces):
#
#   {"allow_downgrade": false,          may replace a higher running version
#    "files": [{"path": "firmware/node.mpy", "sha256": "<64 hex>", "size": 1234}, ...],
#                                       every file of the firmware slot, paths relative
#                                       to the slot, sorted, unique
#    "format": 1,
#    "loader": 1,                       the boot loader version the firmware needs
#    "made": "2026-12-02T04:05:19Z",    when (SOURCE_DATE_EPOCH or the last commit)
#    "target": "esp32",                 esp32, rp2 or unix
#    "version": "0.2.0"}                what the node then reports as fw
#
#   manifest, reason = release.accept(data, signature, keys, board, running, loader)
#   # (dict, None), or (None, "why not") for a bad signature, a malformed manifest, a
#   # wrong target, a downgrade the manifest does not allow or a loader that is too old
#
# Here, as everywhere on the node, a bad update is a reason, never an exception.

import json

from firmware.ota import ed25519
from firmware.ota.keys import NO_KEYS

FORMAT = 1
MAX_BYTES = 32768  # a manifest larger than this is refused before it is hashed
MAX_FILES = 256
MAX_FILE_SIZE = 4 * 1024 * 1024
MAX_PATH = 96
TARGETS = ("esp32", "rp2", "unix")
BOARD_TARGETS = {"esp32-devkitc": "esp32", "pico-w": "rp2", "unix-sim": "unix"}  # config "board"
ENTRY = "node_main.mpy"  # what the board's main.py imports from the slot
_KEYS = ("allow_downgrade", "files", "format", "loader", "made", "target", "version")
_FILE_KEYS = ("path", "sha256", "size")
_PATH_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"
_HEX = "0123456789abcdef"


class ReleaseError(ValueError):
    """A manifest that is not a valid release: str() says why."""


def parse_version(v):
    """(0, 2, 0) for "0.2.0": 1 to 4 dot-separated numbers 0..99999 without leading
    zeros; None for anything else."""
    if type(v) is not str or not 1 <= len(v) <= 32:
        return None
    parts = v.split(".")
    if len(parts) > 4:
        return None
    out = []
    for p in parts:
        if not p or not p.isdigit() or len(p) > 5 or (len(p) > 1 and p[0] == "0"):
            return None
        out.append(int(p))
    return tuple(out)


def compare_versions(a, b):
    """-1, 0 or 1 as version a is lower, equal or higher than b ("1.2" == "1.2.0"); a
    version that does not parse counts as the lowest of all."""
    va = parse_version(a) or (-1,)
    vb = parse_version(b) or (-1,)
    n = max(len(va), len(vb))
    va = va + (0,) * (n - len(va))
    vb = vb + (0,) * (n - len(vb))
    return (va > vb) - (va < vb)


def _check_path(p, where):
    if type(p) is not str or not 1 <= len(p) <= MAX_PATH:
        raise ReleaseError("%s: path must be a string of 1 to %d characters" % (where, MAX_PATH))
    for part in p.split("/"):
        if not part or part == "." or part == "..":
            raise ReleaseError("%s: path %s must be relative, without empty, . or .. parts" % (where, json.dumps(p)))
        for c in part:
            if c not in _PATH_CHARS:
                raise ReleaseError("%s: path %s has a character outside A-Z a-z 0-9 _ . -" % (where, json.dumps(p)))


def _check_file(f, where):
    if type(f) is not dict:
        raise ReleaseError("%s must be an object" % where)
    for k in f:
        if k not in _FILE_KEYS:
            raise ReleaseError("%s: unknown key %s" % (where, json.dumps(k)))
    for k in _FILE_KEYS:
        if k not in f:
            raise ReleaseError("%s: %s missing" % (where, k))
    _check_path(f["path"], where)
    size = f["size"]
    if type(size) is not int or not 0 <= size <= MAX_FILE_SIZE:
        raise ReleaseError("%s: size must be an integer from 0 to %d" % (where, MAX_FILE_SIZE))
    h = f["sha256"]
    if type(h) is not str or len(h) != 64 or [c for c in h if c not in _HEX]:
        raise ReleaseError("%s: sha256 must be 64 lowercase hex digits" % where)


def _check_made(v):
    # "2026-12-02T04:05:19Z"
    if type(v) is not str or len(v) != 20 or v[4] != "-" or v[7] != "-" or v[10] != "T" or v[13] != ":" \
            or v[16] != ":" or v[19] != "Z" or not (v[:4] + v[5:7] + v[8:10] + v[11:13] + v[14:16] + v[17:19]).isdigit():  # fmt: skip
        raise ReleaseError("made must be a UTC time like 2026-12-02T04:05:19Z")


def parse(data):
    """The manifest (a dict) of manifest bytes, every field checked; ReleaseError saying
    what is wrong otherwise. Call it on bytes whose signature verified (accept does)."""
    if len(data) > MAX_BYTES:
        raise ReleaseError("manifest of %d bytes, more than the %d allowed" % (len(data), MAX_BYTES))
    try:
        m = json.loads(data)
    except ValueError:  # also bad UTF-8
        raise ReleaseError("manifest is not valid JSON")
    if type(m) is not dict:
        raise ReleaseError("manifest must be a JSON object")
    if m.get("format") != FORMAT or type(m.get("format")) is not int:
        raise ReleaseError("manifest format %s, this node reads format %d" % (json.dumps(m.get("format")), FORMAT))
    for k in m:
        if k not in _KEYS:
            raise ReleaseError("manifest has an unknown key %s" % json.dumps(k))
    for k in _KEYS:
        if k not in m:
            raise ReleaseError("manifest has no %s" % k)
    if parse_version(m["version"]) is None:
        raise ReleaseError("version %s is not 1 to 4 dot-separated numbers" % json.dumps(m["version"]))
    if m["target"] not in TARGETS or type(m["target"]) is not str:
        raise ReleaseError("target %s is none of %s" % (json.dumps(m["target"]), ", ".join(TARGETS)))
    if type(m["loader"]) is not int or not 0 <= m["loader"] <= 1000:
        raise ReleaseError("loader must be an integer from 0 to 1000")
    _check_made(m["made"])
    if m["allow_downgrade"] is not True and m["allow_downgrade"] is not False:
        raise ReleaseError("allow_downgrade must be true or false")
    files = m["files"]
    if type(files) is not list or not 1 <= len(files) <= MAX_FILES:
        raise ReleaseError("files must be a list of 1 to %d files" % MAX_FILES)
    last = None
    for i in range(len(files)):
        where = "files[%d]" % i
        _check_file(files[i], where)
        p = files[i]["path"]
        if last is not None and p <= last:
            raise ReleaseError("%s: %s is not after %s (paths sorted, each once)" % (where, json.dumps(p), json.dumps(last)))
        last = p
    if not [f for f in files if f["path"] == ENTRY]:
        raise ReleaseError("not a firmware slot: no %s" % ENTRY)
    return m


def total_size(manifest):
    """Bytes of all the release's files."""
    return sum(f["size"] for f in manifest["files"])


def blocks_needed(manifest, block):
    """File-system blocks the files take (littlefs gives every file whole blocks)."""
    return sum(max(1, -(-f["size"] // block)) for f in manifest["files"])


def signed_by(data, signature, keys):
    """The index in `keys` of the key whose Ed25519 signature of `data` `signature` is,
    or None."""
    if len(data) > MAX_BYTES:
        return None
    for i in range(len(keys)):
        if ed25519.verify(keys[i], data, signature):
            return i
    return None


def refusal(manifest, board, running, loader):
    """Why this node (config board `board`, running version `running`, boot loader
    version `loader`) must not install a parsed manifest, or None if it may. The same
    version as the running one may be installed again (a repair)."""
    want = BOARD_TARGETS.get(board)
    if want is None:
        return "board %s takes no over-the-air updates" % board
    if manifest["target"] != want:
        return "release is for target %s, this node (board %s) runs %s" % (manifest["target"], board, want)
    if manifest["loader"] > loader:
        return "release needs boot loader %d, this node has %d (update the loader with streetnode deploy)" % (
            manifest["loader"], loader)  # fmt: skip
    if compare_versions(manifest["version"], running) < 0 and not manifest["allow_downgrade"]:
        return "version %s is older than the running %s and the release does not allow a downgrade" % (
            manifest["version"], running)  # fmt: skip
    return None


def accept(data, signature, keys, board, running, loader):
    """(manifest, None) when `data` carries a valid signature by one of `keys` (the
    node's decoded ota.pubkeys; None or [] refuses everything), is a well-formed
    manifest and may be installed on this node; (None, reason) otherwise."""
    if not keys:
        return None, NO_KEYS
    if type(signature) not in (bytes, bytearray) or len(signature) != 64:
        return None, "signature must be 64 bytes, not %s" % (
            len(signature) if type(signature) in (bytes, bytearray) else "a %s" % type(signature).__name__)
    if len(data) > MAX_BYTES:
        return None, "manifest of %d bytes, more than the %d allowed" % (len(data), MAX_BYTES)
    if signed_by(data, signature, keys) is None:
        return None, "bad signature: the manifest is not signed by any of the node's %d ota.pubkeys" % len(keys)
    try:
        m = parse(data)
    except ReleaseError as e:
        return None, str(e)
    why = refusal(m, board, running, loader)
    if why:
        return None, why
    return m, None
