# A release manifest on the node (firmware/ota/release.py): the signature against the
# node's keys, every field, and whether this node may install it; always a reason, never
# an exception. Runs on CPython and inside MicroPython.

import binascii
import json

from firmware.ota import release
from host_tests.device import ed25519_data
from host_tests.device.support import message, raises

PK, DATA, SIG = [binascii.unhexlify(x) for x in ed25519_data.RELEASE]
OTHER_PK = binascii.unhexlify(ed25519_data.MADE[0][1])


def _manifest(**changes):
    m = json.loads(DATA)
    for k in changes:
        if changes[k] is _DROP:
            del m[k]
        else:
            m[k] = changes[k]
    return m


_DROP = object()


def _bytes(m):
    return json.dumps(m).encode()


def _why(m):
    return message(raises(release.ReleaseError, release.parse, m if isinstance(m, bytes) else _bytes(m)))


def test_a_signed_release_is_accepted():
    m, why = release.accept(DATA, SIG, [PK], "unix-sim", "0.1.0", 1)
    assert why is None
    assert m["version"] == "0.2.0" and m["target"] == "unix" and len(m["files"]) == 4
    assert release.total_size(m) == 900 + 21000 + 7000 + 200
    assert release.blocks_needed(m, 4096) == 1 + 6 + 2 + 1
    # the second key (a rotation) signs as well
    assert release.accept(DATA, SIG, [OTHER_PK, PK], "unix-sim", "0.1.0", 1)[1] is None
    assert release.signed_by(DATA, SIG, [OTHER_PK, PK]) == 1
    assert release.accept(DATA, bytearray(SIG), [PK], "unix-sim", "0.2.0", 3)[1] is None  # same version: a repair


def test_bad_signatures_and_missing_keys_are_refused():
    assert release.accept(DATA, SIG, None, "unix-sim", "0.1.0", 1) == (
        None, "no ota.pubkeys in the node's config: updates are refused (provision with --ota-pubkey)")
    assert release.accept(DATA, SIG, [], "unix-sim", "0.1.0", 1)[1].startswith("no ota.pubkeys")
    bad = "bad signature: the manifest is not signed by any of the node's 1 ota.pubkeys"
    assert release.accept(DATA, SIG, [OTHER_PK], "unix-sim", "0.1.0", 1) == (None, bad)
    edited = DATA.replace(b'"allow_downgrade":false', b'"allow_downgrade":true ')
    assert edited != DATA and release.accept(edited, SIG, [PK], "unix-sim", "0.1.0", 1) == (None, bad)
    flipped = bytearray(SIG)
    flipped[40] ^= 4
    assert release.accept(DATA, bytes(flipped), [PK], "unix-sim", "0.1.0", 1) == (None, bad)
    assert release.accept(DATA, SIG[:63], [PK], "unix-sim", "0.1.0", 1) == (None, "signature must be 64 bytes, not 63")
    assert release.accept(DATA, None, [PK], "unix-sim", "0.1.0", 1) == (None, "signature must be 64 bytes, not a NoneType")
    huge = DATA + b" " * release.MAX_BYTES
    assert release.accept(huge, SIG, [PK], "unix-sim", "0.1.0", 1)[1] == (
        "manifest of %d bytes, more than the 32768 allowed" % len(huge))


def test_what_this_node_may_not_install():
    m = release.parse(DATA)
    assert release.refusal(m, "unix-sim", "0.1.0", 1) is None
    assert release.refusal(m, "esp32-devkitc", "0.1.0", 1) == (
        "release is for target unix, this node (board esp32-devkitc) runs esp32")
    assert release.refusal(m, "pi", "0.1.0", 1) == "board pi takes no over-the-air updates"
    assert release.refusal(m, "unix-sim", "0.1.0", 0) == (
        "release needs boot loader 1, this node has 0 (update the loader with streetnode deploy)")
    assert release.refusal(m, "unix-sim", "0.10.0", 1) == (
        "version 0.2.0 is older than the running 0.10.0 and the release does not allow a downgrade")
    assert release.refusal(_manifest(allow_downgrade=True), "unix-sim", "0.10.0", 1) is None
    assert release.accept(DATA, SIG, [PK], "pico-w", "0.1.0", 1)[1].startswith("release is for target unix")


def test_versions_compare_as_numbers():
    assert release.parse_version("0.2.0") == (0, 2, 0)
    assert release.parse_version("2026.12.1.7") == (2026, 12, 1, 7)
    for bad in ("", "1.", ".1", "1..2", "01.2", "1.2.3.4.5", "v1", "1.2-rc1", "123456", None, 1):
        assert release.parse_version(bad) is None, bad
    assert release.compare_versions("0.10.0", "0.9.9") == 1
    assert release.compare_versions("1.2", "1.2.0") == 0
    assert release.compare_versions("1.2.0", "1.2.1") == -1
    assert release.compare_versions("dev", "0.0.1") == -1


def test_malformed_manifests_say_what_is_wrong():
    assert _why(b"{nope") == "manifest is not valid JSON"
    assert _why(b"\xff\xfe") == "manifest is not valid JSON"
    assert _why(b"[1]") == "manifest must be a JSON object"
    assert _why(_manifest(format=2)) == "manifest format 2, this node reads format 1"
    assert _why(_manifest(format=True)) == "manifest format true, this node reads format 1"
    assert _why(_manifest(extra=1)) == 'manifest has an unknown key "extra"'
    assert _why(_manifest(made=_DROP)) == "manifest has no made"
    assert _why(_manifest(version="1.2-rc1")) == 'version "1.2-rc1" is not 1 to 4 dot-separated numbers'
    assert _why(_manifest(target="avr")) == 'target "avr" is none of esp32, rp2, unix'
    assert _why(_manifest(loader="1")) == "loader must be an integer from 0 to 1000"
    assert _why(_manifest(made="2026-12-02 04:05:19")) == "made must be a UTC time like 2026-12-02T04:05:19Z"
    assert _why(_manifest(allow_downgrade=1)) == "allow_downgrade must be true or false"
    assert _why(_manifest(files=[])) == "files must be a list of 1 to 256 files"
    files = json.loads(DATA)["files"]

    def with_file(i, **kw):
        fs = json.loads(json.dumps(files))
        fs[i].update(kw)
        return _manifest(files=fs)

    assert _why(with_file(1, path="../boot.py")) == 'files[1]: path "../boot.py" must be relative, without empty, . or .. parts'
    assert _why(with_file(1, path="/firmware/x.mpy")).startswith('files[1]: path "/firmware/x.mpy" must be relative')
    assert _why(with_file(1, path="firmware/n ode.mpy")) == (
        'files[1]: path "firmware/n ode.mpy" has a character outside A-Z a-z 0-9 _ . -')
    assert _why(with_file(1, path="a" * 97)) == "files[1]: path must be a string of 1 to 96 characters"
    assert _why(with_file(2, path="board.json")) == 'files[2]: "board.json" is not after "firmware/node.mpy" (paths sorted, each once)'
    assert _why(with_file(0, size=-1)) == "files[0]: size must be an integer from 0 to 4194304"
    assert _why(with_file(0, size=1.5)) == "files[0]: size must be an integer from 0 to 4194304"
    assert _why(with_file(0, sha256="AB" * 32)) == "files[0]: sha256 must be 64 lowercase hex digits"
    assert _why(with_file(0, mode=1)) == 'files[0]: unknown key "mode"'
    assert _why(_manifest(files=files[:3])) == "not a firmware slot: no node_main.mpy"
    assert _why(_manifest(files=[1] + files)) == "files[0] must be an object"
