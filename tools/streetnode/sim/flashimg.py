"""A simulated board's flash seen from the host: a LittleFS image (hal/sim/flash.py) that
only MicroPython reads and writes here, so every operation runs hal/sim/flashtool.py
inside the real interpreter, as `mpremote fs` would on a board. Never use it on the image
of a node process that is running: one file system, one writer.

    img = FlashImage(state_dir / "flash.img")
    img.format(board_flash_size("esp32-devkitc"))
    img.put_text("config.json", json.dumps(cfg))
    img.df()  # {"size": ..., "free": ..., "used": ...}
"""

import json
import subprocess
import tempfile
from pathlib import Path

from streetnode.common import mpy
from streetnode.common.paths import REPO

# hal/sim/flash.py: the VFS partition of each board with MicroPython's stock layout.
BOARD_FLASH_BYTES = {"esp32-devkitc": 2 * 1024 * 1024, "pico-w": 848 * 1024}
BLOCK_SIZE = 4096


class FlashError(RuntimeError):
    pass


def parse_size(text):
    """'2M', '848k', '131072' or a board name -> bytes (a whole number of 4 KiB blocks)."""
    text = str(text).strip()
    if text.lower() in BOARD_FLASH_BYTES:
        return BOARD_FLASH_BYTES[text.lower()]
    scale = {"k": 1024, "m": 1024 * 1024}.get(text[-1:].lower(), 1)
    number = text[:-1] if scale != 1 else text
    try:
        size = int(float(number) * scale)
    except ValueError:
        raise ValueError("a flash size is bytes, NNk, NNM or a board (%s), not %r" % (", ".join(BOARD_FLASH_BYTES), text))
    if size < 16 * BLOCK_SIZE or size % BLOCK_SIZE:
        raise ValueError("a flash size must be a multiple of 4 KiB and at least 64 KiB, not %d bytes" % size)
    return size


class FlashImage:
    def __init__(self, path):
        self.path = Path(path)

    def exists(self):
        return self.path.exists()

    def _tool(self, *args, check=True):
        r = mpy.run(["-m", "hal.sim.flashtool", str(self.path)] + [str(a) for a in args],
                    capture_output=True, text=True, timeout=120)  # fmt: skip
        if check and r.returncode != 0:
            raise FlashError("flashtool %s: %s" % (" ".join(map(str, args)), (r.stdout + r.stderr).strip()[-500:]))
        return r

    def format(self, size):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            self.path.unlink()
        self._tool("format", size)

    def put_bytes(self, name, data):
        with tempfile.NamedTemporaryFile(dir=str(self.path.parent), delete=False) as f:
            f.write(data)
        try:
            self._tool("put", f.name, name)
        finally:
            Path(f.name).unlink()

    def push(self, directory):
        """Copy a host directory tree into the flash root (one interpreter for all files)."""
        self._tool("push", Path(directory).resolve())

    def put_text(self, name, text):
        self.put_bytes(name, text.encode())

    def get_bytes(self, name):
        """The file's content, or None when the flash has no such file."""
        with tempfile.TemporaryDirectory(dir=str(self.path.parent)) as d:
            target = Path(d) / "out"
            r = self._tool("get", name, target, check=False)
            if r.returncode == 2:
                return None
            if r.returncode != 0:
                raise FlashError("flashtool get %s: %s" % (name, (r.stdout + r.stderr).strip()[-500:]))
            return target.read_bytes()

    def remove(self, name):
        self._tool("rm", name)

    def listing(self):
        return json.loads(self._tool("ls").stdout.strip().splitlines()[-1])

    def df(self):
        return json.loads(self._tool("df").stdout.strip().splitlines()[-1])

    def pull(self, directory, folder=None):
        """Copy every file of the flash (or of its `folder`, e.g. "data/outbox") into a host
        directory, at the same paths (to inspect it on CPython)."""
        Path(directory).mkdir(parents=True, exist_ok=True)
        self._tool("pull", directory, *([folder] if folder else []))
        return Path(directory)


__all__ = ["BOARD_FLASH_BYTES", "FlashError", "FlashImage", "parse_size", "REPO"]
