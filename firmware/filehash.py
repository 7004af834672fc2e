# The sha256 of a file on flash, read in 512-byte pieces into one buffer (no allocation per
# piece): the OTA receiver's read-back check (firmware/ota/receiver.py) and, sent as source
# over the raw REPL, `streetnode deploy`'s survey of a board (technician/deploy/board_code.py),
# which may hold no firmware yet. So this file is self-contained MicroPython.

import binascii
import hashlib


def sha256_file(p):
    """Hex sha256 of the file at path p."""
    d = hashlib.sha256()
    b = bytearray(512)
    m = memoryview(b)
    with open(p, "rb") as f:
        while True:
            n = f.readinto(b)
            if not n:
                break
            d.update(m[:n])
    return binascii.hexlify(d.digest()).decode()
