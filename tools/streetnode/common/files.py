"""Files the host tool writes: atomically, with their permissions set before they hold anything."""

import os
import shutil
import tempfile
from pathlib import Path


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


def replace_dir(stage, out):
    """Put the complete directory `stage` in the place of `out` (beside it, on the same file
    system): `out` is renamed aside, `stage` renamed to `out`, then the old one removed."""
    stage, out = Path(stage), Path(out)
    if not out.exists():
        os.rename(stage, out)
        return
    old = Path(tempfile.mkdtemp(prefix=".old-", dir=str(out.parent)))
    os.rename(out, old / out.name)
    os.rename(stage, out)
    shutil.rmtree(old, ignore_errors=True)
