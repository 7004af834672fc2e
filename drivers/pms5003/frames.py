# Plantower PMS5003 / PMSA003 / PMS7003 frames: pure functions and the stream parser.
# Source: "PMS5003 series data manual" V2.3 (Plantower, 2016), appendix I (transport
# protocol, active mode) and appendix II (passive mode commands).
#
# Data frame, 32 bytes:  0x42 0x4D | frame length = 2*13+2 (0x001C) | 13 data words,
# big-endian | check code = sum of the 30 bytes before it (16 bits).
# Command, 7 bytes:      0x42 0x4D CMD DATAH DATAL LRCH LRCL, LRC = sum of the first 5.
# Reply to E1 (mode) and E4 (sleep), 8 bytes: 0x42 0x4D 0x00 0x04 CMD DATA + 16-bit sum.

from drivers.pm_uart import BAD, SKIP, FrameParser

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


START1 = 0x42
START2 = 0x4D
DATA_FRAME = 32
REPLY_FRAME = 8
CMD_READ = 0xE2  # passive mode: send one data frame
CMD_MODE = 0xE1  # data 0: passive, 1: active
CMD_SLEEP = 0xE4  # data 0: sleep, 1: wake up

# Data words (appendix I): CF=1 "standard particle" mass, atmospheric-environment mass,
# then particles beyond a size in 0.1 L of air, then a reserved word (PMSA003/PMS7003:
# high byte version, low byte error code).
PM1_0_CF1 = const(0)
PM2_5_CF1 = const(1)
PM10_CF1 = const(2)
PM1_0_ATM = const(3)
PM2_5_ATM = const(4)
PM10_ATM = const(5)
N0_3 = const(6)
N0_5 = const(7)
N1_0 = const(8)
N2_5 = const(9)
N5_0 = const(10)
N10 = const(11)
RESERVED = const(12)

COUNT_NAMES = ("n0_3", "n0_5", "n1_0", "n2_5", "n5_0", "n10")


def checksum(buf, n):
    """16-bit sum of buf[0:n]."""
    s = 0
    for i in range(n):
        s += buf[i]
    return s & 0xFFFF


def command(cmd, data):
    """The 7-byte command frame."""
    frame = bytearray((START1, START2, cmd, (data >> 8) & 0xFF, data & 0xFF, 0, 0))
    s = checksum(frame, 5)
    frame[5] = s >> 8
    frame[6] = s & 0xFF
    return bytes(frame)


def word(frame, i):
    """Data word i (0..12) of a data frame."""
    return (frame[4 + 2 * i] << 8) | frame[5 + 2 * i]


def plausible(frame):
    """Mass and counts are cumulative by definition: PM1.0 <= PM2.5 <= PM10 in both mass
    sets, and fewer particles beyond each larger size. A frame that breaks this is
    damaged even if its 16-bit sum happens to match."""
    if not word(frame, PM1_0_CF1) <= word(frame, PM2_5_CF1) <= word(frame, PM10_CF1):
        return False
    if not word(frame, PM1_0_ATM) <= word(frame, PM2_5_ATM) <= word(frame, PM10_ATM):
        return False
    prev = word(frame, N0_3)
    for i in range(N0_5, N10 + 1):
        w = word(frame, i)
        if w > prev:
            return False
        prev = w
    return True


def check(win, k):
    """FrameParser.check for the first k bytes of win (see drivers/pm_uart.py)."""
    if win[0] != START1:
        return SKIP
    if k < 2:
        return 0
    if win[1] != START2:
        return SKIP
    if k < 4:
        return 0
    if win[2] != 0:
        return SKIP
    length = win[3]
    if length == 28:
        total = DATA_FRAME
    elif length == 4:
        total = REPLY_FRAME
    else:
        return SKIP  # other lengths belong to other models (PMS5003ST: 36) or to noise
    if k < total:
        return 0
    if checksum(win, total - 2) != (win[total - 2] << 8) | win[total - 1]:
        return BAD
    if total == DATA_FRAME:
        if not plausible(win):
            return BAD
    elif win[4] != CMD_MODE and win[4] != CMD_SLEEP:
        return BAD
    return total


class Parser(FrameParser):
    """Data frames land in `data` (32 bytes), replies in reply_cmd / reply_val."""

    size = DATA_FRAME
    start = START1

    def __init__(self):
        super().__init__()
        self.reply_cmd = 0
        self.reply_val = 0

    def check(self, win, k):
        return check(win, k)

    def accept(self, win, length):
        if length == DATA_FRAME:
            data = self.data
            for i in range(DATA_FRAME):
                data[i] = win[i]
            self.frames += 1
        else:
            self.reply_cmd = win[4]
            self.reply_val = win[5]
            self.replies += 1
