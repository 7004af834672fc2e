# Nova Fitness SDS011 frames: pure functions and the stream parser.
# Source: "Laser Dust Sensor Control Protocol V1.3" (Nova Fitness, 2015-07-20).
#
# From the sensor, 10 bytes: 0xAA | 0xC0 (data) or 0xC5 (reply) | 6 data bytes |
# checksum = low 8 bits of the sum of the 6 data bytes | 0xAB.
#   Data (0xC0): PM2.5 low, high; PM10 low, high (0.1 µg/m³); device ID high, low.
#   Reply (0xC5): command id; for 2/6/8: 0 query or 1 set, value, 0; ID high, low.
#                 For 7 (firmware): year, month, day; ID high, low.
# To the sensor, 19 bytes: 0xAA 0xB4 | data bytes 1..13 (byte 1: command id) |
# device ID high, low (0xFFFF: any) | checksum of data bytes 1..15 | 0xAB.

from drivers.pm_uart import BAD, SKIP, FrameParser

HEAD = 0xAA
TAIL = 0xAB
DATA = 0xC0
REPLY = 0xC5
COMMAND = 0xB4
FRAME = 10
COMMAND_FRAME = 19

CMD_REPORT_MODE = 2  # value 0: active reporting, 1: query ("report query mode")
CMD_QUERY = 4
CMD_SET_ID = 5
CMD_SLEEP_WORK = 6  # value 0: sleep, 1: work
CMD_FIRMWARE = 7
CMD_WORKING_PERIOD = 8  # value 0: continuous, 1..30: work 30 s every n minutes
OP_QUERY = 0
OP_SET = 1
ANY_ID = 0xFFFF


def checksum(buf, start, end):
    s = 0
    for i in range(start, end):
        s += buf[i]
    return s & 0xFF


def command(cmd, op=0, value=0, device_id=ANY_ID, new_id=None):
    """The 19-byte command frame: data bytes 1..3 are (cmd, op, value); set-ID puts the
    new ID in data bytes 12, 13."""
    f = bytearray(COMMAND_FRAME)
    f[0] = HEAD
    f[1] = COMMAND
    f[2] = cmd
    f[3] = op
    f[4] = value
    if new_id is not None:
        f[13] = (new_id >> 8) & 0xFF
        f[14] = new_id & 0xFF
    f[15] = (device_id >> 8) & 0xFF
    f[16] = device_id & 0xFF
    f[17] = checksum(f, 2, 17)
    f[18] = TAIL
    return bytes(f)


def pm_tenths(frame):
    """(PM2.5, PM10) of a data frame in 0.1 µg/m³."""
    return frame[2] | (frame[3] << 8), frame[4] | (frame[5] << 8)


def frame_id(frame):
    return (frame[6] << 8) | frame[7]


def check(win, k, device_id=None):
    """FrameParser.check for the first k bytes of win; frames that carry another
    device ID than `device_id` (once known) are damaged."""
    if win[0] != HEAD:
        return SKIP
    if k < 2:
        return 0
    c = win[1]
    if c != DATA and c != REPLY:
        return SKIP
    if k < FRAME:
        return 0
    if win[9] != TAIL or checksum(win, 2, 8) != win[8]:
        return BAD
    if device_id is not None and frame_id(win) != device_id:
        return BAD
    return FRAME


class Parser(FrameParser):
    """Data frames land in `data`; replies in `reply` (10 bytes) with reply_cmd and
    reply_val (data byte 3: the mode, state or period). The device ID is learnt from
    the first reply."""

    size = FRAME
    start = HEAD

    def __init__(self):
        super().__init__()
        self.reply = bytearray(FRAME)
        self.reply_cmd = 0
        self.reply_val = 0
        self.device_id = None

    def check(self, win, k):
        return check(win, k, self.device_id)

    def accept(self, win, length):
        if win[1] == DATA:
            data = self.data
            for i in range(FRAME):
                data[i] = win[i]
            self.frames += 1
        else:
            reply = self.reply
            for i in range(FRAME):
                reply[i] = win[i]
            if self.device_id is None:
                self.device_id = frame_id(win)
            self.reply_cmd = win[2]
            self.reply_val = win[4]
            self.replies += 1
