"""`streetnode release`: a signed firmware release, for the nodes to install over the air.

    streetnode release --target esp32 --key keys/fleet.key --out releases/0.2.0 --version 0.2.0
    streetnode release verify releases/0.2.0 --pub keys/fleet.pub

A release directory:

    bundle/          the bundle exactly as `streetnode bundle` builds it (boot.py, main.py,
                     app/, its manifest.json), with --version as the firmware version
    manifest.json    what the node installs: canonical JSON (sorted keys, no spaces, UTF-8)
                     {"allow_downgrade": false, "files": [{"path": "firmware/node.mpy",
                      "sha256": "<hex>", "size": 1234}, ...], "format": 1, "loader": 1,
                      "made": "2026-12-02T04:05:19Z", "target": "esp32", "version": "0.2.0"}
                     files: every file of a firmware slot, paths relative to the slot,
                     sorted: bundle/app/* and the bundle's manifest.json (which `deploy`
                     puts into a slot as well); loader: the boot loader version the
                     firmware needs (firmware/version.py LOADER); made: SOURCE_DATE_EPOCH,
                     else the last git commit's time, so a rebuild is byte-identical
    manifest.sig     the raw 64-byte Ed25519 signature of manifest.json's exact bytes

The node checks the signature with firmware/ota/ed25519.py against its config's
ota.pubkeys and the manifest with firmware/ota/release.py, the same rules check() below
applies before anything is sent.
"""

import argparse
import datetime
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from streetnode.common.errors import EXIT_INPUT, EXIT_KEY, EXIT_USAGE, EXIT_VERIFY, Failure
from streetnode.common.files import replace_dir
from streetnode.common.paths import REPO, device_code
from streetnode.ota import keys
from streetnode.technician import bundle

MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
BUNDLE = "bundle"


def _device():
    device_code()
    from firmware.ota import release as device_release

    return device_release


def manifest_bytes(manifest):
    """Canonical JSON: sorted keys, no spaces, UTF-8 (what is signed)."""
    return json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def made_time(env=None):
    """The release's time as 2026-12-02T04:05:19Z: SOURCE_DATE_EPOCH, else the time of
    the repository's last commit (so the same tree gives the same bytes)."""
    env = os.environ if env is None else env
    text = env.get("SOURCE_DATE_EPOCH")
    if text is not None:
        try:
            epoch = int(text)
        except ValueError:
            raise Failure("SOURCE_DATE_EPOCH=%r is not a whole number of seconds" % text, EXIT_USAGE) from None
    else:
        try:
            out = subprocess.run(["git", "-C", str(REPO), "log", "-1", "--format=%ct"], capture_output=True,
                                 text=True, timeout=30)  # fmt: skip
            epoch = int(out.stdout.strip())
        except (OSError, ValueError, subprocess.SubprocessError):
            raise Failure("no SOURCE_DATE_EPOCH and no git commit to take the release's time from; "
                          "set SOURCE_DATE_EPOCH (seconds since 1970)", EXIT_USAGE) from None  # fmt: skip
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_version(text):
    """`text` if the node can compare it (1 to 4 dot-separated numbers), else Failure."""
    if _device().parse_version(text) is None:
        raise Failure("--version %r: must be 1 to 4 dot-separated numbers like 0.2.0 (the node compares "
                      "versions to refuse downgrades)" % text, EXIT_USAGE)  # fmt: skip
    return text


def slot_files(bundle_dir):
    """{path in the slot: file in the bundle}: app/* and the bundle's manifest.json."""
    bundle_dir = Path(bundle_dir)
    files = {MANIFEST: bundle_dir / bundle.MANIFEST}
    app = bundle_dir / bundle.APP
    for p in sorted(app.rglob("*")):
        if p.is_file():
            files[p.relative_to(app).as_posix()] = p
    return files


def source(release_dir, path):
    """The file in a release directory that slot path `path` is copied from."""
    base = Path(release_dir) / BUNDLE
    return base / bundle.MANIFEST if path == MANIFEST else base / bundle.APP / path


def make(target, key_path, out, version=None, allow_downgrade=False, env=None):
    """Build and sign a release into `out` (replaced as a whole if it is a release
    already); returns (out, manifest)."""
    key = keys.read_private(key_path)
    if target not in bundle.TARGETS:
        raise Failure("unknown target %r (known: %s)" % (target, ", ".join(sorted(bundle.TARGETS))), EXIT_USAGE)
    if version is not None:
        check_version(version)
    else:
        version = check_version(bundle.firmware_version())
    made = made_time(env)
    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / SIGNATURE).exists())):
        raise Failure("--out %s exists and is not a release: choose an empty or new directory" % out, EXIT_INPUT)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".release-", dir=str(out.parent)))
    try:
        bundle.make(target, stage / BUNDLE, version=version)
        files = []
        for path, src in sorted(slot_files(stage / BUNDLE).items()):
            data = src.read_bytes()
            files.append({"path": path, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()})
        manifest = {"format": _device().FORMAT, "version": version, "target": target, "loader": bundle.loader_needed(),
                    "made": made, "allow_downgrade": bool(allow_downgrade), "files": files}  # fmt: skip
        data = manifest_bytes(manifest)
        _device().parse(data)  # what the node will check: fail here, not on a lamp post
        (stage / MANIFEST).write_bytes(data)
        (stage / SIGNATURE).write_bytes(key.sign(data))
        replace_dir(stage, out)
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)
    return out, manifest


class Release:
    """A checked release: .manifest (dict), .data (the signed bytes), .signature, .key
    (the raw public key that signed it), .files [(slot path, source Path, size, sha256)]."""

    def __init__(self, path, manifest, data, signature, key, files):
        self.path, self.manifest, self.data, self.signature, self.key, self.files = (
            path, manifest, data, signature, key, files)  # fmt: skip


def check(release_dir, pubkeys):
    """The Release in `release_dir` after checking its signature against one of `pubkeys`
    (raw 32-byte keys, or paths of fleet.pub files), the manifest as the node checks it,
    and every file's size and sha256. Failure naming what is wrong otherwise: EXIT_INPUT
    when it cannot be read, EXIT_VERIFY when it does not verify."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    path = Path(release_dir)
    raw_keys = [k if isinstance(k, (bytes, bytearray)) else keys.read_public(k, "--pub", EXIT_INPUT) for k in pubkeys]
    if not raw_keys:
        raise Failure("no public key to check the release against (--pub FILE)", EXIT_INPUT)
    try:
        data = (path / MANIFEST).read_bytes()
        signature = (path / SIGNATURE).read_bytes()
    except FileNotFoundError as e:
        raise Failure("%s is not a release: no %s (make one with `streetnode release`)"
                      % (path, Path(e.filename).name), EXIT_INPUT) from None  # fmt: skip
    except OSError as e:
        raise Failure("%s: cannot be read (%s)" % (path, e.strerror or e), EXIT_INPUT) from None
    if len(signature) != 64:
        raise Failure("%s/%s: %d bytes, an Ed25519 signature has 64" % (path, SIGNATURE, len(signature)), EXIT_VERIFY)
    signer = None
    for k in raw_keys:
        try:
            Ed25519PublicKey.from_public_bytes(bytes(k)).verify(signature, data)
            signer = bytes(k)
            break
        except InvalidSignature:
            continue
    if signer is None:
        raise Failure("%s: bad signature: manifest.json is not signed by %s" % (
            path, "this key" if len(raw_keys) == 1 else "any of the %d keys" % len(raw_keys)), EXIT_VERIFY)  # fmt: skip
    device = _device()
    try:
        manifest = device.parse(data)
    except device.ReleaseError as e:
        raise Failure("%s: %s" % (path, e), EXIT_VERIFY) from None
    files = []
    for f in manifest["files"]:
        src = source(path, f["path"])
        try:
            blob = src.read_bytes()
        except OSError:
            raise Failure("%s: %s is missing (listed in manifest.json)" % (path, src.relative_to(path)), EXIT_VERIFY) from None
        if len(blob) != f["size"] or hashlib.sha256(blob).hexdigest() != f["sha256"]:
            raise Failure("%s: %s differs from the signed manifest" % (path, src.relative_to(path)), EXIT_VERIFY)
        files.append((f["path"], src, f["size"], f["sha256"]))
    return Release(path, manifest, data, signature, signer, files)


def _run(args):
    if args.release_command == "verify":
        return _verify(args)
    missing = [o for o, v in (("--target", args.target), ("--key", args.key), ("--out", args.out)) if v is None]
    if missing:
        raise Failure("release needs %s (or: streetnode release verify DIR --pub FILE)" % ", ".join(missing),
                      EXIT_USAGE)  # fmt: skip
    out, manifest = make(args.target, args.key, args.out, args.version, args.allow_downgrade)
    size = sum(f["size"] for f in manifest["files"])
    print("release %s for %s: %s (%d files, %.1f KiB, loader %d, made %s%s)" % (
        manifest["version"], manifest["target"], out, len(manifest["files"]), size / 1024.0, manifest["loader"],
        manifest["made"], ", downgrade allowed" if manifest["allow_downgrade"] else ""))  # fmt: skip
    print("signed: %s/%s (Ed25519 over %s/%s)" % (out, SIGNATURE, out, MANIFEST))
    return 0


def _verify(args):
    rel = check(args.dir, args.pub)
    m = rel.manifest
    print("%s: release %s for %s, signed by %s, %d files verified" % (
        rel.path, m["version"], m["target"], keys.public_text(rel.key), len(rel.files)))  # fmt: skip
    return 0


def register(sub):
    r = sub.add_parser(
        "release",
        help="a signed firmware release for over-the-air updates (bundle + manifest.json + manifest.sig)",
        description="Builds the bundle for a target as `streetnode bundle` does (with --version as the "
        "firmware version the node then reports as fw) and writes RELEASE_DIR/bundle/, RELEASE_DIR/"
        "manifest.json (canonical JSON: version, target, boot loader version, time made, whether a "
        "downgrade is allowed, every slot file with size and sha256) and RELEASE_DIR/manifest.sig (the "
        "raw Ed25519 signature of manifest.json's bytes). The same tree and version give byte-identical "
        "files (the time comes from SOURCE_DATE_EPOCH or the last git commit). "
        "`release verify` checks a release's signature and every file.",
        epilog="examples:\n"
        "  streetnode release --target esp32 --key keys/fleet.key --out releases/0.2.0 --version 0.2.0\n"
        "  streetnode release --target unix --key keys/fleet.key --out /tmp/rel --version 0.1.0 --allow-downgrade\n"
        "  streetnode release verify releases/0.2.0 --pub keys/fleet.pub\n\n"
        "exit codes: 0 written (verified), 1 failed, 2 usage error (also a bad --version),\n"
        "3 the key is missing, unreadable or not Ed25519 (verify: the release or --pub cannot be read),\n"
        "5 verify: the signature or a file does not verify",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    r.add_argument("--target", choices=sorted(bundle.TARGETS), help="the chip family to build for")
    r.add_argument("--key", metavar="FILE", help="the fleet's private key (fleet.key from `streetnode keys new`)")
    r.add_argument("--out", metavar="RELEASE_DIR", help="where to write the release (replaced if it is one)")
    r.add_argument("--version", metavar="V", help="the firmware version, 1-4 dot-separated numbers (default: "
                   "firmware/version.py's)")
    r.add_argument("--allow-downgrade", action="store_true", help="nodes running a higher version install it too")
    rs = r.add_subparsers(dest="release_command", metavar="ACTION")
    v = rs.add_parser("verify", help="check a release's signature and every file",
                      description="Checks RELEASE_DIR's manifest.sig against the public key(s), the manifest "
                      "as a node checks it, and every file's size and sha256.")  # fmt: skip
    v.add_argument("dir", metavar="RELEASE_DIR")
    v.add_argument("--pub", required=True, action="append", metavar="FILE",
                   help="a public key (fleet.pub); repeat for a rotation's second key")
    r.set_defaults(func=_run, release_command=None)
    return r
