# Sensirion I2C framing, shared by the SPS30, SCD4x and SHT4x drivers.
#
# Every 16-bit word a Sensirion chip sends is followed by a CRC-8 of its two bytes;
# every word the host sends with a command carries one too (SCD4x datasheet 3.11
# "checksum calculation"; the SPS30 and SHT4x datasheets define the same). CRC-8: polynomial 0x31 (x^8+x^5+x^4+1),
# init 0xFF, no reflection, no final XOR; CRC(0xBE 0xEF) = 0x92.
#
# The API (all functions allocate nothing; buffers are the caller's, preallocated):
#   crc8(buf, start=0, end=None) -> int     CRC of buf[start:end]
#   pack_word(value, buf, offset) -> int    value big-endian + CRC at buf[offset:offset+3],
#                                            returns offset + 3 (where the next word goes)
#   pack_command(cmd, buf, offset=0) -> int 16-bit command big-endian, returns offset + 2
#   word(buf, index) -> int                 data word number `index` of a (hi, lo, crc) buffer
#   bad_word(buf, n_words) -> int           index of the first word with a wrong CRC, or -1
#   check_words(buf, n_words, where)        raises OSError(EIO, "<where>: CRC mismatch in
#                                            word i of n ...") naming the failing word
#   unpack_words(buf, n_words, out, where)  check_words, then the 2*n data bytes into `out`
#   SensirionI2C(i2c, address, name)        command transport for chips with 16-bit
#                                            commands (SPS30, SCD4x): send, write,
#                                            read_into, write_read_into, check; bus errors
#                                            become OSError(errno, "<name> at I2C address
#                                            0x..: command 0x.... failed: ...")
#
# Table or loop, measured on the MicroPython 1.29 unix port (host_tests, 2026-11):
#   256-byte table   4.8 µs per 20 words (an SPS30 reading), +288 B heap when imported
#                    from .py (0 frozen: the bytes literal stays in flash), .mpy 363 B
#   4-bit table      7.3 µs, +64 B heap
#   bitwise loop    18.9 µs, .mpy 119 B
# The table is 4x faster than the loop for 288 bytes of RAM (none when frozen): table.

from errno import EIO

from hal import clock

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


CRC8_POLYNOMIAL = const(0x31)
CRC8_INIT = const(0xFF)

# _CRC_TABLE[i] = the CRC register after shifting byte i through it from 0 (polynomial 0x31).
# host_tests/device/test_sensirion.py recomputes it bit by bit.
_CRC_TABLE = (
    b"\x00\x31\x62\x53\xc4\xf5\xa6\x97\xb9\x88\xdb\xea\x7d\x4c\x1f\x2e"
    b"\x43\x72\x21\x10\x87\xb6\xe5\xd4\xfa\xcb\x98\xa9\x3e\x0f\x5c\x6d"
    b"\x86\xb7\xe4\xd5\x42\x73\x20\x11\x3f\x0e\x5d\x6c\xfb\xca\x99\xa8"
    b"\xc5\xf4\xa7\x96\x01\x30\x63\x52\x7c\x4d\x1e\x2f\xb8\x89\xda\xeb"
    b"\x3d\x0c\x5f\x6e\xf9\xc8\x9b\xaa\x84\xb5\xe6\xd7\x40\x71\x22\x13"
    b"\x7e\x4f\x1c\x2d\xba\x8b\xd8\xe9\xc7\xf6\xa5\x94\x03\x32\x61\x50"
    b"\xbb\x8a\xd9\xe8\x7f\x4e\x1d\x2c\x02\x33\x60\x51\xc6\xf7\xa4\x95"
    b"\xf8\xc9\x9a\xab\x3c\x0d\x5e\x6f\x41\x70\x23\x12\x85\xb4\xe7\xd6"
    b"\x7a\x4b\x18\x29\xbe\x8f\xdc\xed\xc3\xf2\xa1\x90\x07\x36\x65\x54"
    b"\x39\x08\x5b\x6a\xfd\xcc\x9f\xae\x80\xb1\xe2\xd3\x44\x75\x26\x17"
    b"\xfc\xcd\x9e\xaf\x38\x09\x5a\x6b\x45\x74\x27\x16\x81\xb0\xe3\xd2"
    b"\xbf\x8e\xdd\xec\x7b\x4a\x19\x28\x06\x37\x64\x55\xc2\xf3\xa0\x91"
    b"\x47\x76\x25\x14\x83\xb2\xe1\xd0\xfe\xcf\x9c\xad\x3a\x0b\x58\x69"
    b"\x04\x35\x66\x57\xc0\xf1\xa2\x93\xbd\x8c\xdf\xee\x79\x48\x1b\x2a"
    b"\xc1\xf0\xa3\x92\x05\x34\x67\x56\x78\x49\x1a\x2b\xbc\x8d\xde\xef"
    b"\x82\xb3\xe0\xd1\x46\x77\x24\x15\x3b\x0a\x59\x68\xff\xce\x9d\xac"
)


def crc8(buf, start=0, end=None):
    """Sensirion CRC-8 of buf[start:end] (end None: to the end of buf)."""
    if end is None:
        end = len(buf)
    crc = CRC8_INIT
    table = _CRC_TABLE
    for i in range(start, end):
        crc = table[crc ^ buf[i]]
    return crc


def pack_word(value, buf, offset):
    """Put the 16-bit `value` big-endian and its CRC at buf[offset:offset + 3]; return
    offset + 3. A value outside 0..0xFFFF is a ValueError naming it."""
    if not 0 <= value <= 0xFFFF:
        raise ValueError("Sensirion word must be 0..65535, not %r" % (value,))
    buf[offset] = value >> 8
    buf[offset + 1] = value & 0xFF
    buf[offset + 2] = crc8(buf, offset, offset + 2)
    return offset + 3


def pack_command(cmd, buf, offset=0):
    """Put the 16-bit command code big-endian at buf[offset:offset + 2] (commands carry
    no CRC); return offset + 2, where its first argument word goes."""
    buf[offset] = cmd >> 8
    buf[offset + 1] = cmd & 0xFF
    return offset + 2


def word(buf, index):
    """The data word number `index` (0-based) of a buffer of (msb, lsb, crc) triples."""
    i = 3 * index
    return (buf[i] << 8) | buf[i + 1]


def bad_word(buf, n_words):
    """Index of the first of the n_words triples in buf whose CRC is wrong, or -1."""
    table = _CRC_TABLE
    for w in range(n_words):
        i = 3 * w
        if table[table[CRC8_INIT ^ buf[i]] ^ buf[i + 1]] != buf[i + 2]:
            return w
    return -1


def check_words(buf, n_words, where="Sensirion sensor"):
    """Raise OSError(EIO, "<where>: CRC mismatch in word i of n ...") if any of the first
    n_words (msb, lsb, crc) triples in buf is damaged; allocates nothing when all are good."""
    w = bad_word(buf, n_words)
    if w >= 0:
        i = 3 * w
        raise OSError(
            EIO,
            "%s: CRC mismatch in word %d of %d (bytes %d..%d: 0x%02x%02x with CRC 0x%02x, expected 0x%02x)"
            % (where, w, n_words, i, i + 2, buf[i], buf[i + 1], buf[i + 2], crc8(buf, i, i + 2)),
        )


def unpack_words(buf, n_words, out, where="Sensirion sensor"):
    """Check the n_words triples in buf (check_words), then copy their 2*n_words data
    bytes, CRCs dropped, into out[0:2*n_words]. `out` may be `buf` itself (in place)."""
    check_words(buf, n_words, where)
    for w in range(n_words):
        out[2 * w] = buf[3 * w]
        out[2 * w + 1] = buf[3 * w + 1]


class SensirionI2C:
    """Commands to a Sensirion chip with 16-bit command codes (SPS30, SCD4x, SCD30, SEN5x).

    The I2C sequences of the datasheets: `send(cmd)` (a command alone), `write(cmd, value)`
    (a command with one or two argument words, each with its CRC), `read_into(cmd, buf)`
    (a command, the execution time, then a read of (word, crc) triples whose CRCs are
    checked) and `write_read_into(cmd, value, buf)` (send command and fetch result).
    Every bus error becomes OSError(errno, "<name> at I2C address 0x..: ...") naming the
    command. Waits use hal.clock.sleep_ms. Nothing allocates unless it fails.
    """

    def __init__(self, i2c, address, name):
        self.i2c = i2c
        self.address = address
        self.where = "%s at I2C address 0x%02x" % (name, address)
        self._buf = bytearray(8)  # command + up to two argument words
        self._one_arg = memoryview(self._buf)[:5]
        self._cmd = memoryview(self._buf)[:2]

    def fail(self, errno, what):
        raise OSError(errno, "%s: %s" % (self.where, what))

    def _bus_error(self, e, cmd, what):
        errno = e.args[0] if e.args and isinstance(e.args[0], int) else EIO
        self.fail(errno, "%s 0x%04x failed: %s" % (what, cmd, e))

    def _writeto(self, buf, cmd, what):
        try:
            acks = self.i2c.writeto(self.address, buf)
        except OSError as e:
            self._bus_error(e, cmd, what)
        # machine.SoftI2C returns the data bytes ACKed instead of raising when one is NACKed
        # (the address was ACKed, or it would have raised ENODEV).
        if isinstance(acks, int) and acks < len(buf):
            self.fail(EIO, "%s 0x%04x not acknowledged at byte %d of %d" % (what, cmd, acks, len(buf)))

    def send(self, cmd, wait_ms=0):
        """Send a command without data, then wait its execution time."""
        pack_command(cmd, self._buf)
        self._writeto(self._cmd, cmd, "command")
        if wait_ms:
            clock.sleep_ms(wait_ms)

    def write(self, cmd, value, wait_ms=0, value2=None):
        """Send a command with one 16-bit argument (and its CRC), or two when value2 is
        given (a 32-bit value is value = high word, value2 = low word), then wait."""
        buf = self._buf
        end = pack_word(value, buf, pack_command(cmd, buf))
        if value2 is None:
            self._writeto(self._one_arg, cmd, "command")
        else:
            pack_word(value2, buf, end)
            self._writeto(buf, cmd, "command")
        if wait_ms:
            clock.sleep_ms(wait_ms)

    def read_into(self, cmd, buf, wait_ms=0, check=True):
        """Send `cmd`, wait its execution time, read len(buf) // 3 (word, crc) triples into
        buf and check every CRC (OSError EIO naming the bad word). Returns buf."""
        self.send(cmd, wait_ms)
        return self.reply_into(cmd, buf, check)

    def write_read_into(self, cmd, value, buf, wait_ms=0):
        """"Send command and fetch result": `cmd` with one argument word, wait, read buf."""
        self.write(cmd, value, wait_ms)
        return self.reply_into(cmd, buf)

    def reply_into(self, cmd, buf, check=True):
        """Read the answer to `cmd` (already sent) into buf and check its CRCs (unless
        check is False: then the caller calls check() apart from bus errors)."""
        try:
            self.i2c.readfrom_into(self.address, buf)
        except OSError as e:
            self._bus_error(e, cmd, "read after command")
        if check:
            self.check(cmd, buf)
        return buf

    def check(self, cmd, buf):
        """OSError(EIO, "<where>, reply to command 0x....: CRC mismatch in word i of n ...")
        if any (word, crc) triple of the answer to `cmd` in buf is damaged."""
        n = len(buf) // 3
        if bad_word(buf, n) >= 0:
            check_words(buf, n, "%s, reply to command 0x%04x" % (self.where, cmd))
