# ROHM BH1750FVI ambient light sensor (illuminance in lx) on I2C, address 0x23 (ADDR
# low) or 0x5C (ADDR high). Datasheet: ROHM BH1750FVI technical note (2009.04 rev. B).
#
#     sensor = BH1750(i2c)                     # one-time H-resolution, MTreg 69
#     sensor.read()                            # {"illuminance": 412.5}
#     BH1750(i2c, 0x5C, mode="continuous", resolution="high2", mtreg=254)  # 0.11 lx steps
#
# The chip has no registers: the host writes one-byte instructions (one per START..STOP)
# and reads the 16-bit result. Modes: "one_time" (the default: measure once and power
# down, 0.01 µA between readings; read() is 2 transactions, the instruction and the
# result) or "continuous" (the chip measures over and over; read() is 1 transaction).
# Resolutions: "high" (H-resolution, 1 lx at MTreg 69), "high2" (H-resolution mode 2,
# 0.5 lx) and "low" (L-resolution, 4 lx, 8x faster). MTreg (31..254, default 69) sets
# the sensitivity: lx = count / 1.2 * (69 / MTreg), halved in "high2".
#
# The driver waits the datasheet's maximum measurement time scaled by MTreg (180 ms or
# 24 ms at MTreg 69): the chip cannot say when it is done, it just returns its last result.
#
# Identity: the BH1750 has no chip-id register, nothing to read that names it. The
# constructor makes a sanity check instead: power down, power on and reset must be
# acknowledged, and the data register must then read 0, as the datasheet says reset
# leaves it. Any chip at 0x23/0x5C that acknowledges writes and reads 0 passes.
#
# Integrity: the chip sends no checksum, so damaged bytes on the bus cannot be told
# from light. A count of 0xFFFF is full scale: `saturated` is then True (direct sun at
# MTreg 69 is beyond the 54612 lx the chip can count; lower MTreg to measure it).
#
# Recovery: after any bus error the driver sets the chip up again before the next
# reading (power on, MTreg, mode), because a chip that stopped answering may have lost
# power and with it MTreg. measure() allocates nothing.

from errno import EIO, ENODEV

from hal import clock

from . import conversion as conv

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_POWER_DOWN = const(0x00)
_POWER_ON = const(0x01)
_RESET = const(0x07)  # clears the data register; ignored in power-down

ADDRESSES = (0x23, 0x5C)
MODES = ("one_time", "continuous")
RESOLUTIONS = ("high", "high2", "low")
# Measurement instructions, keyed by (mode, resolution).
INSTRUCTIONS = {
    ("continuous", "high"): 0x10,
    ("continuous", "high2"): 0x11,
    ("continuous", "low"): 0x13,
    ("one_time", "high"): 0x20,
    ("one_time", "high2"): 0x21,
    ("one_time", "low"): 0x23,
}


class BH1750:
    def __init__(self, i2c, address=0x23, mode="one_time", resolution="high", mtreg=conv.MTREG_DEFAULT):
        if address not in ADDRESSES:
            raise ValueError("BH1750: address must be 0x23 or 0x5C, not %r" % (address,))
        self.i2c = i2c
        self.address = address
        self._buf = bytearray(2)
        self._cmd = bytearray(1)
        self.saturated = False
        self.setups = 0  # how often the chip was set up (1 + recoveries)
        self._ready_at = None  # continuous mode: ticks when the first result is in
        self.configure(mode, resolution, mtreg, apply=False)
        self._setup()

    def _fail(self, errno, what):
        raise OSError(errno, "BH1750 at I2C address 0x%02x: %s" % (self.address, what))

    # -- options ------------------------------------------------------------------------

    def configure(self, mode="one_time", resolution="high", mtreg=conv.MTREG_DEFAULT, apply=True):
        """Validate the options (each error names the bad value) and send them to the chip."""
        if mode not in MODES:
            raise ValueError("BH1750: mode must be 'one_time' or 'continuous', not %r" % (mode,))
        if resolution not in RESOLUTIONS:
            raise ValueError("BH1750: resolution must be 'high', 'high2' or 'low', not %r" % (resolution,))
        if not isinstance(mtreg, int) or not conv.MTREG_MIN <= mtreg <= conv.MTREG_MAX:
            raise ValueError("BH1750: mtreg must be an integer from 31 to 254, not %r" % (mtreg,))
        self.mode = mode
        self.resolution = resolution
        self.mtreg = mtreg
        self._instruction = INSTRUCTIONS[(mode, resolution)]
        self.wait_ms = conv.wait_ms(resolution, mtreg)
        if apply:
            try:
                self._apply()
            except OSError as e:
                self._needs_setup = True
                self._bus_error(e, "configure")

    # -- bus --------------------------------------------------------------------------------

    def _send(self, instruction):
        self._cmd[0] = instruction
        acks = self.i2c.writeto(self.address, self._cmd)
        # machine.I2C.writeto returns the data bytes ACKed (a NACKed address raises
        # ENODEV): 0 here is the instruction byte refused.
        if isinstance(acks, int) and acks < 1:
            raise OSError(EIO, "instruction 0x%02x not acknowledged" % instruction)

    def _bus_error(self, e, what):
        errno = e.args[0] if e.args and isinstance(e.args[0], int) else EIO
        if errno == ENODEV:
            self._fail(ENODEV, "%s: no acknowledge, absent, unpowered or hung (%s)" % (what, e))
        self._fail(errno, "%s failed (%s)" % (what, e))

    def _setup(self):
        """Sanity check (see the top of this file), then MTreg and mode."""
        self._needs_setup = True
        try:
            self._send(_POWER_DOWN)  # stops a continuous measurement left running
            self._send(_POWER_ON)
            self._send(_RESET)
            self.i2c.readfrom_into(self.address, self._buf)
        except OSError as e:
            self._bus_error(e, "sanity check (power on, reset)")
        if self._buf[0] or self._buf[1]:
            self._fail(
                ENODEV,
                "data register reads 0x%02x%02x after reset, not 0: not a BH1750?" % (self._buf[0], self._buf[1]),
            )
        try:
            self._apply()
        except OSError as e:
            self._bus_error(e, "setting MTreg and mode")
        self.setups += 1

    def _apply(self):
        hi, lo = conv.mtreg_opcodes(self.mtreg)
        self._send(hi)
        self._send(lo)
        if self.mode == "continuous":
            self._send(self._instruction)
            self._ready_at = clock.ticks_add(clock.ticks_ms(), self.wait_ms)
        else:
            self._send(_POWER_DOWN)  # until the next one-time instruction
            self._ready_at = None
        self._needs_setup = False

    # -- fetch --------------------------------------------------------------------------------

    def start(self):
        """Start a measurement; returns the milliseconds to wait before fetch(). One-time
        mode sends the instruction; continuous mode only waits for its first result."""
        if self._needs_setup:
            self._setup()
        if self.mode == "one_time":
            try:
                self._send(self._instruction)
            except OSError as e:
                self._needs_setup = True
                self._bus_error(e, "measurement instruction")
            return self.wait_ms
        if self._ready_at is None:
            return 0
        left = clock.ticks_diff(self._ready_at, clock.ticks_ms())
        if left <= 0:
            self._ready_at = None  # forget it, or a wrapped tick counter would wait again
            return 0
        return left

    def fetch(self):
        """Read the 16-bit result into the driver's buffer (one transaction)."""
        try:
            self.i2c.readfrom_into(self.address, self._buf)
        except OSError as e:
            self._needs_setup = True
            self._bus_error(e, "result read")
        self.saturated = self._buf[0] == 0xFF and self._buf[1] == 0xFF

    def measure(self):
        """One reading: one-time mode 2 transactions, continuous mode 1. Allocates no
        heap memory on success."""
        wait = self.start()
        if wait:
            clock.sleep_ms(wait)
        self.fetch()

    # -- get ----------------------------------------------------------------------------------

    def raw(self):
        """The 16-bit count of the last fetch."""
        return (self._buf[0] << 8) | self._buf[1]

    def values(self):
        """The contract's dict from the last fetch: illuminance in lx."""
        return {"illuminance": round(conv.lux(self.raw(), self.mtreg, self.resolution), 2)}

    def read(self):
        self.measure()
        return self.values()

    def power_down(self):
        """Send the chip to power-down (0.01 µA) until the next reading."""
        try:
            self._send(_POWER_DOWN)
        except OSError as e:
            self._needs_setup = True
            self._bus_error(e, "power down")
        if self.mode == "continuous":
            self._needs_setup = True  # the next reading restarts the measurements
