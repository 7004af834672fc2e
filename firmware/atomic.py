# Atomic replacement of small files on flash: the one implementation used by the
# outbox state, the config file and the node state (and by the outbox to rewrite a
# segment after a repair).
#
# write(path, data) puts data in `path + ".tmp"`, flushes it to the medium, then renames
# it over `path`. littlefs (the ESP32 and RP2040 default) renames atomically and POSIX
# does too, so after a power cut `path` holds the old or the new content, never a mix;
# a temp left behind by a cut is removed by the next read(). FAT (VfsFat) refuses to
# rename onto an existing file: there the old file is removed first, and a cut in that
# window leaves only the complete temp, which read() promotes to `path`.
#
# Only open, os.rename/remove/stat, f.flush and (where the interpreter has them)
# os.fsync / os.sync are used: MicroPython file objects have no truncate and its os
# has no fsync.

import os

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


TMP_SUFFIX = ".tmp"
_ENOENT = const(2)
_EEXIST = const(17)
_EACCES = const(13)

_fsync = getattr(os, "fsync", None)  # CPython: per-file, makes a machine power cut safe too
_os_sync = getattr(os, "sync", None)  # MicroPython ports that have it (absent on the unix port)
_O_RDONLY = getattr(os, "O_RDONLY", None)
_chmod = getattr(os, "chmod", None)  # CPython (a Pi gateway): a board's flash has no modes
_rename = os.rename  # a test stands in a FAT-like rename here (MicroPython's os is read-only)


def size(path):
    """Size of the file in bytes, or -1 when it does not exist."""
    try:
        return os.stat(path)[6]
    except OSError as e:
        if e.args[0] == _ENOENT:
            return -1
        raise


def exists(path):
    return size(path) >= 0


def remove(path):
    """Remove a file; a file that is already gone is not an error."""
    try:
        os.remove(path)
    except OSError as e:
        if e.args[0] != _ENOENT:
            raise


def sync(f):
    """Push what was written to f onto the medium (flush is the commit on littlefs)."""
    f.flush()
    if _fsync is not None:
        _fsync(f.fileno())
    elif _os_sync is not None:
        _os_sync()


def _sync_directory(path):
    # CPython on a Raspberry Pi: a rename is durable only once its directory is synced.
    if _fsync is None or _O_RDONLY is None:
        return
    cut = path.rfind("/")
    directory = path[:cut] if cut > 0 else ("/" if cut == 0 else ".")
    try:
        fd = os.open(directory, _O_RDONLY)
    except OSError:
        return
    try:
        _fsync(fd)
    except OSError:
        pass  # some file systems cannot sync a directory; the rename itself is atomic
    finally:
        os.close(fd)


def replace(src, dst):
    """Rename src over dst (atomic where the file system can; see the FAT note above)."""
    try:
        _rename(src, dst)
    except OSError as e:
        if e.args[0] not in (_EEXIST, _EACCES) or not exists(dst):
            raise
        os.remove(dst)  # FAT: a cut here leaves only the complete temp; read() promotes it
        _rename(src, dst)
    _sync_directory(dst)


def write(path, data, mode=None):
    """Replace the file's content with `data` (bytes or str) atomically. `mode` (e.g.
    0o600 for a file holding passwords) is set on the temp before it is renamed, where
    the platform has chmod: the file is never readable by others, not even for a moment."""
    tmp = path + TMP_SUFFIX
    f = open(tmp, "wb")
    try:
        if mode is not None and _chmod is not None:
            _chmod(tmp, mode)
        f.write(data.encode() if isinstance(data, str) else data)
        sync(f)
    finally:
        f.close()
    replace(tmp, path)


def read(path, max_bytes):
    """The file's content as bytes, or None when there is none.

    A temp left by a write that a power cut interrupted is removed; a temp with no
    file beside it (the FAT window of replace) becomes the file. The caller checks
    the content (checksum, JSON, schema): a promoted temp may be incomplete when the
    very first write of the file was cut. Raises ValueError when the file is larger
    than max_bytes, before reading any of it.
    """
    tmp = path + TMP_SUFFIX
    if exists(tmp):
        try:
            if exists(path):
                remove(tmp)
            else:
                os.rename(tmp, path)
        except OSError:  # a read-only flash: read what is there, the temp stays
            if not exists(path):
                path = tmp
    n = size(path)
    if n < 0:
        return None
    if n > max_bytes:
        raise ValueError("%s is %d bytes, more than the %d allowed" % (path, n, max_bytes))
    f = open(path, "rb")
    try:
        # The size it had, and one byte more to see it grow: a buffer of max_bytes would
        # need that much contiguous heap (16 KiB for a config of a few hundred bytes).
        data = f.read(n + 1)
        if len(data) > n:  # it grew since: the rest, up to the limit
            data += f.read(max_bytes + 1 - len(data))
    finally:
        f.close()
    if len(data) > max_bytes:
        raise ValueError("%s is more than the %d bytes allowed" % (path, max_bytes))
    return data
