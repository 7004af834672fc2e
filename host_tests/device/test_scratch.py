# The scratch directories of the device tests (host_tests/device/scratch.py): they must
# be gone after the block, also when it failed, or the file tests leak into each other.
# Runs on CPython and inside MicroPython.

import os

from host_tests.device.scratch import ScratchDir, files, read_bytes, write_bytes
from host_tests.device.support import raises


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def test_scratch_dir_is_new_empty_and_removed_with_its_contents():
    with ScratchDir("sc") as d, ScratchDir("sc") as other:
        assert d != other and d.startswith("/tmp/streetnode-sc-")
        assert files(d) == []
        write_bytes(d + "/a", b"1")
        os.mkdir(d + "/sub")
        write_bytes(d + "/sub/b", "2")
        assert files(d) == ["a", "sub"] and read_bytes(d + "/sub/b") == b"2"
    assert not _exists(d) and not _exists(other)


def test_scratch_dir_is_removed_when_the_block_fails_and_the_error_goes_on():
    seen = []

    def failing():
        with ScratchDir("sc") as d:
            seen.append(d)
            write_bytes(d + "/a", b"1")
            raise OSError(5, "EIO")

    raises(5, failing)
    assert len(seen) == 1 and not _exists(seen[0])
