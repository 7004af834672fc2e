# Scratch directories for device tests that write files (outbox, config, node state).
# MicroPython has no tempfile or shutil: a unique directory under /tmp from os.urandom,
# removed again with remove_tree. Tests use it as `with ScratchDir("ob") as d:`.

import os

_ENOENT = 2


def _join(a, b):
    return a + "/" + b


def _is_dir(path):
    return os.stat(path)[0] & 0o170000 == 0o040000


def scratch_dir(tag="t"):
    """Create and return a new empty directory /tmp/streetnode-<tag>-<random hex>."""
    while True:
        path = "/tmp/streetnode-%s-%s" % (tag, "".join("%02x" % b for b in os.urandom(6)))
        try:
            os.mkdir(path)
            return path
        except OSError as e:
            if e.args[0] != 17:  # EEXIST: try another name
                raise


class ScratchDir:
    """`with ScratchDir(tag) as path:` a new empty directory (scratch_dir), removed with
    everything in it when the block ends, whether it passed or raised (the exception goes on)."""

    def __init__(self, tag="t"):
        self.tag = tag
        self.path = None

    def __enter__(self):
        self.path = scratch_dir(self.tag)
        return self.path

    def __exit__(self, exc_type, exc, tb):
        remove_tree(self.path)
        return False


def remove_tree(path):
    """Remove a directory and everything in it; a missing path is not an error."""
    try:
        names = os.listdir(path)
    except OSError as e:
        if e.args[0] == _ENOENT:
            return
        raise
    for name in names:
        p = _join(path, name)
        if _is_dir(p):
            remove_tree(p)
        else:
            os.remove(p)
    os.rmdir(path)


def read_bytes(path):
    f = open(path, "rb")
    try:
        return f.read()
    finally:
        f.close()


def write_bytes(path, data, mode="wb"):
    f = open(path, mode)
    try:
        f.write(data.encode() if isinstance(data, str) else data)
    finally:
        f.close()


def copy_tree(src, dst):
    """Copy the files of directory src (one level) into the new directory dst."""
    os.mkdir(dst)
    for name in os.listdir(src):
        write_bytes(_join(dst, name), read_bytes(_join(src, name)))


def files(path):
    return sorted(os.listdir(path))
