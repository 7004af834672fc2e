"""Compile the device code to .mpy with mpy-cross: firmware/, drivers/, hal/ and the pinned
device packages (umqtt), into one tree to put on MICROPYPATH (or on a board).

Bytecode loads without the compiler's working memory, which is what lets a node run in a
heap the size of a board's (compiling the config validation from source alone needs more than
20 KB at once). Only files whose source changed are compiled again.

    python -m streetnode.common.build        # prints the tree: build/mpy
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from streetnode.common import deps
from streetnode.common.errors import Failure, script
from streetnode.common.paths import REPO

PACKAGES = ("firmware", "drivers", "hal")
SKIP = ("manifest.py",)  # micropython-lib manifests describe a package, they are not code


def mpy_cross():
    here = Path(sys.executable).with_name("mpy-cross")
    if here.exists():
        return [str(here)]
    found = shutil.which("mpy-cross")
    if found:
        return [found]
    return [sys.executable, "-m", "mpy_cross"]


def sources(lib=None):
    """(relative name, source path) of every device module."""
    out = []
    for pkg in PACKAGES:
        for path in sorted((REPO / pkg).rglob("*.py")):
            if path.name not in SKIP and "__pycache__" not in path.parts:
                out.append((path.relative_to(REPO).as_posix(), path))
    lib = Path(lib) if lib else deps.device_lib()
    for path in sorted(lib.rglob("*.py")):
        out.append((path.relative_to(lib).as_posix(), path))
    return out


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def compile_tree(dest=None, lib=None, opt=None):
    """Compile what changed into `dest` (default build/mpy); returns the tree's path."""
    dest = Path(dest) if dest else REPO / "build" / "mpy"
    dest.mkdir(parents=True, exist_ok=True)
    stamp_file = dest / ".sources.json"
    try:
        stamps = json.loads(stamp_file.read_text())
    except (OSError, ValueError):
        stamps = {}
    wanted = {}
    cross = mpy_cross()
    for rel, src in sources(lib):
        digest = _digest(src)
        out = dest / (rel[:-3] + ".mpy")
        wanted[rel] = digest
        if stamps.get(rel) == digest and out.exists():
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".mpy", dir=str(out.parent))
        os.close(fd)
        cmd = cross + (["-O%d" % opt] if opt else []) + ["-s", rel, "-o", tmp, str(src)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            os.unlink(tmp)
            raise Failure("mpy-cross failed on %s: %s" % (rel, (proc.stderr or proc.stdout).strip()))
        os.replace(tmp, out)
    for rel in set(stamps) - set(wanted):  # a module that was removed from the sources
        stale = dest / (rel[:-3] + ".mpy")
        if stale.exists():
            stale.unlink()
    stamp_file.write_text(json.dumps(wanted, indent=0, sort_keys=True))
    return dest


def romfs_image(tree, dest):
    """The compiled tree (firmware, drivers, hal, umqtt as .mpy) as a ROMFS image file."""
    stage = Path(tempfile.mkdtemp(prefix="romfs-"))
    try:
        for entry in sorted(Path(tree).iterdir()):
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                shutil.copytree(entry, stage / entry.name, ignore=shutil.ignore_patterns(".*"))
            else:
                shutil.copy2(entry, stage / entry.name)
        proc = subprocess.run(
            [sys.executable, "-m", "mpremote", "romfs", "--output", str(dest), "build", str(stage)],
            capture_output=True, text=True,
        )  # fmt: skip
        if proc.returncode != 0:
            raise Failure("mpremote romfs build failed: %s" % (proc.stderr or proc.stdout).strip())
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return Path(dest)


def image_heap_bytes(image_size):
    """The heap a ROMFS image takes on the unix port, which has no ROM partition: one
    bytearray of its size (rounded up to the heap's 16-byte blocks) and its header. A
    board-sized heap "around the image" is this plus the board's heap."""
    return -(-image_size // 16) * 16 + 32


if __name__ == "__main__":
    script("build", compile_tree)
