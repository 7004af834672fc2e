# firmware/filehash.py: the sha256 of a file read in 512-byte pieces, as the OTA receiver
# checks what it wrote and `streetnode deploy` surveys a board. On CPython and MicroPython.

import binascii
import hashlib

from firmware.filehash import sha256_file
from host_tests.device.scratch import ScratchDir, write_bytes


def _hex(data):
    return binascii.hexlify(hashlib.sha256(data).digest()).decode()


def test_sha256_file_at_every_piece_boundary():
    with ScratchDir("fh") as d:
        for n in (0, 1, 511, 512, 513, 1024, 3000):
            data = bytes((i * 7 + n) & 0xFF for i in range(n))
            write_bytes(d + "/f", data)
            assert sha256_file(d + "/f") == _hex(data), n


def test_sha256_file_of_a_missing_file_is_an_oserror():
    with ScratchDir("fh") as d:
        try:
            sha256_file(d + "/none")
        except OSError:
            return
        raise AssertionError("no OSError for a missing file")
