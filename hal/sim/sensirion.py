# The I2C behaviour shared by Sensirion chips with 16-bit commands (SPS30, SCD4x):
# a write is a 16-bit command, optionally followed by argument words each with its
# CRC-8 (checked here: a wrong CRC and the command is NACKed and not executed); a
# read returns (word, CRC) triples answering the last command. While the chip
# executes a command it NACKs its address ("commands must not be sent while a
# previous command is being processed", SCD4x datasheet 3.3); a read with nothing
# to answer NACKs the read header. A hung chip NACKs everything until power_cycle().
#
# NACKs surface as machine.I2C raises them: OSError ENODEV for an address (or read
# header) that is not acknowledged, OSError EIO for a data byte that is not.
#
# The CRC here is the bitwise definition, independent of drivers/sensirion.py's table.

from errno import EIO, ENODEV

from hal.sim.bus import SimDevice


def crc8(buf, start=0, end=None):
    """Sensirion CRC-8 (polynomial 0x31, init 0xFF), bit by bit."""
    if end is None:
        end = len(buf)
    crc = 0xFF
    for i in range(start, end):
        crc ^= buf[i]
        for _ in range(8):
            crc = ((crc << 1) ^ 0x31) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


class SensirionChip(SimDevice):
    """Base of the Sensirion models. A subclass implements:

      command(cmd, args, n_args, now)  execute a write (args: the frame, argument word i at
                                       args[2 + 3*i]); call self.busy(ms) for its execution
                                       time, self.refuse(cmd, why) to NACK it, and
                                       self.point(cmd, ms) for a command answered by a read
      answer(cmd, now)                 fill the reply with self.put_word(i, value) (or
                                       put_bytes) and return the number of words
      update(now)                      advance measurements to simulated time `now` (ms)
      reset_state()                    power-on state
      before_write(now, data) / before_read(now)   hooks before the liveness check
                                       (a sleeping chip whose interface is off)

    The reply buffer is preallocated: answering a read allocates nothing.
    """

    address_hint = "sensirion"

    def __init__(self, clock=None, reply_words=20):
        super().__init__(clock)
        self._reply = bytearray(3 * reply_words)
        self.crc_rejects = 0  # host writes NACKed for a wrong CRC
        self.refusals = 0  # commands NACKed as not allowed in the current state
        self.hung = False
        self._pointer = -1  # command a read answers, -1: none
        self._busy_until = 0
        self.power_cycle()

    # -- power ------------------------------------------------------------------------

    def power_cycle(self):
        """Power off and on: clears a hang, back to the power-on state."""
        self.hung = False
        self._pointer = -1
        self._busy_until = self.elapsed_ms()
        self.reset_state()

    def hang(self):
        """The chip's firmware locks up: it NACKs every transaction until power_cycle()."""
        self.hung = True

    def reset_state(self):
        pass

    # -- helpers for subclasses ------------------------------------------------------------

    def busy(self, ms):
        """The command just received executes for `ms`: the address is NACKed until then."""
        self._busy_until = self.elapsed_ms() + ms

    def point(self, cmd, ms):
        """A read command: the next reads answer `cmd` once `ms` have passed."""
        self._pointer = cmd
        self.busy(ms)

    def refuse(self, cmd, why):
        self.refusals += 1
        self._pointer = -1
        raise OSError(EIO, "I2C: %s NACKed command 0x%04x (%s)" % (self.name, cmd, why))

    def nack_address(self, why):
        raise OSError(ENODEV, "I2C: no ACK from %s (%s)" % (self.name, why))

    def put_word(self, index, value):
        r = self._reply
        i = 3 * index
        r[i] = (value >> 8) & 0xFF
        r[i + 1] = value & 0xFF
        r[i + 2] = crc8(r, i, i + 2)

    def put_bytes(self, index, data, n_words):
        """Words index.. holding the bytes of `data`, zero-padded to n_words words."""
        r = self._reply
        for w in range(n_words):
            for k in (0, 1):
                j = 2 * w + k
                r[3 * (index + w) + k] = data[j] if j < len(data) else 0
            r[3 * (index + w) + 2] = crc8(r, 3 * (index + w), 3 * (index + w) + 2)

    @staticmethod
    def arg(args, i):
        """Argument word i of a write frame."""
        return (args[2 + 3 * i] << 8) | args[3 + 3 * i]

    # -- the bus side ------------------------------------------------------------------------

    def _alive(self, now):
        if self.hung:
            self.nack_address("hung: no answer until power-cycled")
        if now < self._busy_until:
            self.nack_address("busy for %d ms more" % (self._busy_until - now))

    def on_write(self, data):
        now = self.elapsed_ms()
        self.update(now)
        self.before_write(now, data)
        self._alive(now)
        n = len(data)
        if n == 0:
            return  # a write header alone (an address probe)
        if n < 2 or (n - 2) % 3:
            self._pointer = -1
            raise OSError(EIO, "I2C: %s NACKed a %d-byte write (not a command + whole words)" % (self.name, n))
        cmd = (data[0] << 8) | data[1]
        n_args = (n - 2) // 3
        for i in range(n_args):
            j = 2 + 3 * i
            if crc8(data, j, j + 2) != data[j + 2]:
                self.crc_rejects += 1
                self._pointer = -1
                raise OSError(
                    EIO, "I2C: %s NACKed command 0x%04x: CRC of argument word %d wrong" % (self.name, cmd, i)
                )
        self._pointer = -1
        self.command(cmd, data, n_args, now)

    def before_write(self, now, data):
        """Hook before the liveness check (the SPS30's wake-up needs it)."""

    def before_read(self, now):
        """Hook before the liveness check of a read."""

    def on_read_into(self, buf):
        now = self.elapsed_ms()
        self.update(now)
        self.before_read(now)
        self._alive(now)
        if self._pointer < 0:
            self.nack_address("read header NACKed: no command to answer")
        n_words = self.answer(self._pointer, now)
        r = self._reply
        n = 3 * n_words
        for i in range(len(buf)):
            # Past the answer the chip lets SDA go: the pull-up reads ones.
            buf[i] = r[i] if i < n else 0xFF

    # -- for subclasses ---------------------------------------------------------------

    def update(self, now):
        pass

    def command(self, cmd, args, n_args, now):
        self.refuse(cmd, "unknown command")

    def answer(self, cmd, now):
        return 0
