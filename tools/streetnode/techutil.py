"""What the technician commands (provision, flash, gateway) share: one-line failures with
an exit code a script can rely on, files written atomically with their permissions set
before they hold anything, and the device code (firmware/, hal/) importable on the host."""

import os
import sys
import tempfile
from pathlib import Path


class Failure(Exception):
    """A refusal or failure the command reports in one line and exits with `code`."""

    def __init__(self, message, code=1):
        super().__init__(message)
        self.code = code


def one_line(text):
    """The first non-empty line of a (possibly multi-line) message, e.g. esptool's."""
    for line in str(text).splitlines():
        line = line.strip()
        if line:
            return line
    return str(text).strip() or "failed"


def guarded(command, func):
    """An argparse `func` that prints a Failure as 'streetnode COMMAND: error: ...' on
    stderr and returns its code (cli.main handles every other exception with exit 1)."""

    def run(args):
        try:
            return func(args)
        except Failure as e:
            print("streetnode %s: error: %s" % (command, one_line(e)), file=sys.stderr)
            return e.code

    return run


def write_atomic(path, data, mode=0o644):
    """Write bytes or text to `path` through a temporary file in the same directory,
    created with `mode` from the start (a secret is never readable by others, not even
    for a moment), fsynced, then renamed over `path`; the directory is fsynced too."""
    path = Path(path)
    if isinstance(data, str):
        data = data.encode()
    fd, tmp = tempfile.mkstemp(prefix="." + path.name + ".", suffix=".tmp", dir=str(path.parent))
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, str(path))
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:
        dfd = os.open(str(path.parent), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def device_code():
    """Make firmware/, drivers/ and hal/ importable: installed as packages (a Raspberry Pi
    gateway's `pip install`), or from the repository of an editable install."""
    try:
        import firmware.config  # noqa: F401
    except ImportError:
        from .paths import REPO

        sys.path.insert(0, str(REPO))
        import firmware.config  # noqa: F401
