# A ROHM BH1750FVI at instruction level (technical note 2009.04 rev. B): power down /
# power on / reset, continuous and one-time measurements in H-resolution, H-resolution
# mode 2 and L-resolution, the MTreg set by two instructions (it takes effect with the
# next measurement instruction, as the datasheet sequence has it). One-time measurements
# power the chip down when done. The data register always answers (there is no busy
# NACK): before a measurement completes it still holds the previous result, or 0 after
# power-up and reset.
#
# Counts: lux * 1.2 * MTreg / 69 (twice that in H-resolution mode 2, whose step is
# 0.5 lx), saturating at 0xFFFF. L-resolution's 4 lx is modelled as counts in steps of
# 4 (the two low bits clear). Measurement time: typical 120 ms (H) or 16 ms (L) at
# MTreg 69, scaled by MTreg/69; `slow` takes the maxima, 180 ms and 24 ms.
#
# Faults (hal.sim.bus.Faults): absent and fail() by the bus; corrupt() damages the
# bytes read (the chip has no checksum: a driver cannot tell); hang()
# (faults.stuck_busy): the chip acknowledges nothing until power_cycle() clears it.

from errno import EIO, ENODEV

from hal.sim.bus import SimDevice
from hal.sim.environment import Environment

_CONTINUOUS = {0x10: "high", 0x11: "high2", 0x13: "low"}
_ONE_TIME = {0x20: "high", 0x21: "high2", 0x23: "low"}
_TIME_US = {"high": (120000, 180000), "high2": (120000, 180000), "low": (16000, 24000)}

COUNTS_PER_LX = 1.2


def counts_for(lux, resolution, mtreg, counts_per_lx=COUNTS_PER_LX):
    """The count the chip reports for `lux` (see the top of this file)."""
    c = lux * counts_per_lx * mtreg / 69.0
    if resolution == "high2":
        c *= 2.0
    c = int(c) if c > 0 else 0
    if c > 0xFFFF:
        c = 0xFFFF
    if resolution == "low":
        c &= 0xFFFC
    return c


class SimBH1750(SimDevice):
    """Attach to a SimI2C at 0x23 or 0x5C."""

    name = "bh1750"

    def __init__(self, env=None, slow=False, counts_per_lx=COUNTS_PER_LX, log=True, clock=None):
        super().__init__(clock)
        self.env = env if env is not None else Environment()
        self.slow = slow
        self.counts_per_lx = counts_per_lx  # the part's sensitivity: 0.96..1.44, typical 1.2
        self.instructions = [] if log else None  # every instruction received, in order
        self.measurements = 0
        self._cache = (None, None, None, 0)  # (lux, resolution, mtreg, count): no allocation
        self.power_cycle()

    def power_cycle(self):
        """Supply off and on: power-down state, MTreg 69, data register 0, hang cleared."""
        self.faults.stuck_busy = False
        self.state = "down"  # "down", "on" (idle), "continuous", "one_time"
        self.mtreg = 69
        self.data = 0
        self.resolution = None
        self._start_us = 0
        self._done = 0
        self._latched_mtreg = 69

    def hang(self):
        """The chip locks up: every transaction NACKed until power_cycle()."""
        self.faults.stuck_busy = True

    def _us(self):
        return self.elapsed_ms() * 1000

    def measurement_time_us(self, resolution=None, mtreg=None):
        resolution = resolution or self.resolution
        mtreg = self._latched_mtreg if mtreg is None else mtreg
        return _TIME_US[resolution][1 if self.slow else 0] * mtreg // 69

    def _count(self, t_ms):
        self.measurements += 1
        lux = self.env.sample("illuminance", t_ms)
        c = self._cache
        if c[0] is not lux or c[1] != self.resolution or c[2] != self._latched_mtreg:
            self._cache = c = (
                lux,
                self.resolution,
                self._latched_mtreg,
                counts_for(lux, self.resolution, self._latched_mtreg, self.counts_per_lx),
            )
        return c[3]

    def _update(self):
        """Complete the measurements that have ended by now."""
        state = self.state
        if state != "continuous" and state != "one_time":
            return
        t_meas = self.measurement_time_us()
        elapsed = self._us() - self._start_us
        if state == "one_time":
            if elapsed >= t_meas:
                self.data = self._count((self._start_us + t_meas) // 1000)
                self.state = "down"  # one-time mode powers down when done
            return
        done = elapsed // t_meas
        if done > self._done:
            self._done = done
            self.data = self._count((self._start_us + done * t_meas) // 1000)

    def _start(self, state, resolution):
        self.state = state
        self.resolution = resolution
        self._latched_mtreg = self.mtreg
        self._start_us = self._us()
        self._done = 0

    # -- I2C ---------------------------------------------------------------------------------

    def on_write(self, data):
        if self.faults.stuck_busy:
            raise OSError(ENODEV, "I2C: no ACK from the BH1750 (hung)")
        if not len(data):
            return  # an address probe (scan)
        if len(data) != 1:
            # "not able to accept plural command without stop condition"
            raise OSError(EIO, "I2C: BH1750 NACKed byte 2 (one instruction per write)")
        op = data[0]
        if self.instructions is not None:
            self.instructions.append(op)
        self._update()
        if op == 0x00:
            self.state = "down"  # a measurement in progress is abandoned
        elif op == 0x01:
            if self.state == "down":
                self.state = "on"
        elif op == 0x07:
            if self.state != "down":
                self.data = 0  # not accepted in power-down mode
        elif op in _CONTINUOUS:
            self._start("continuous", _CONTINUOUS[op])
        elif op in _ONE_TIME:
            self._start("one_time", _ONE_TIME[op])
        elif op & 0xF8 == 0x40:
            self.mtreg = (self.mtreg & 0x1F) | ((op & 0x07) << 5)
        elif op & 0xE0 == 0x60:
            self.mtreg = (self.mtreg & 0xE0) | (op & 0x1F)
        else:
            raise OSError(EIO, "I2C: BH1750 NACKed unknown instruction 0x%02x" % op)

    def on_read_into(self, buf):
        if self.faults.stuck_busy:
            raise OSError(ENODEV, "I2C: no ACK from the BH1750 (hung)")
        self._update()
        if len(buf):
            buf[0] = self.data >> 8
        if len(buf) > 1:
            buf[1] = self.data & 0xFF
        for i in range(2, len(buf)):
            buf[i] = 0xFF
