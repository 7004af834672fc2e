# A Sensirion SHT4x at command level (datasheet SHT4x v6): one-byte commands, the
# measurement durations per precision, no acknowledge while busy (a read before the
# measurement is done is NACKed, 4.3), results read once as two CRC-protected words,
# the serial number, soft reset, and the heater with a first-order thermal model:
# the die warms while the heater runs and cools afterwards, so a reading during or
# soon after a pulse is warmer, and drier in %RH, than the air.
#
# Values come from the environment, converted with the datasheet's formulas run
# backwards (the inverse lives here, independent of the driver's conversion).
#
# Faults (hal.sim.bus.Faults): absent and fail() by the bus; corrupt() damages the
# bytes read (the CRCs then disagree); hang() (faults.stuck_busy): the chip hangs,
# acknowledging nothing until power_cycle() (which clears it, as pulling the supply does).

import math
from errno import EIO, ENODEV

from hal.sim.bus import SimDevice
from hal.sim.environment import Environment
from hal.sim.sensirion import crc8  # the bitwise definition, independent of the driver's table

# Durations in µs: (typical, maximum), table 7. The model takes the typical time
# unless made `slow` (then the maximum): a driver must wait for the maximum.
_MEASURE = {0xFD: (6900, 8300), 0xF6: (3700, 4500), 0xE0: (1300, 1600)}
_HEATER = {  # command: (power mW, heating time µs typical, maximum)
    0x39: (200, 1000000, 1100000),
    0x32: (200, 100000, 110000),
    0x2F: (110, 1000000, 1100000),
    0x24: (110, 100000, 110000),
    0x1E: (20, 1000000, 1100000),
    0x15: (20, 100000, 110000),
}
_SERIAL_US = 1000
_RESET_US = 1000  # soft reset and power-up time, maximum
_POWER_UP_US = 1000

# Thermal model of the heated die (not datasheet figures; chosen so that a 200 mW,
# 1 s pulse warms it by some 40 K, as Sensirion's application notes show).
THERMAL_RESISTANCE_K_PER_MW = 0.3
THERMAL_TIME_CONSTANT_MS = 1000.0

DEFAULT_SERIAL = 0x0B5A3C7E


def ticks_for(temperature, humidity):
    """(S_T, S_RH) for these conditions: the inverse of datasheet 4.6, 16-bit, rounded."""
    st = int(round((temperature + 45.0) * 65535.0 / 175.0))
    srh = int(round((humidity + 6.0) * 65535.0 / 125.0))
    return min(max(st, 0), 0xFFFF), min(max(srh, 0), 0xFFFF)


def saturation_hpa(t):
    """Water vapour saturation pressure over water (Magnus, Sonntag 1990)."""
    return 6.112 * math.exp(17.62 * t / (243.12 + t))


def encode_words(w0, w1, out):
    out[0] = w0 >> 8
    out[1] = w0 & 0xFF
    out[2] = crc8(out, 0, 2)
    out[3] = w1 >> 8
    out[4] = w1 & 0xFF
    out[5] = crc8(out, 3, 5)


class SimSHT4x(SimDevice):
    """Attach to a SimI2C at 0x44, 0x45 or 0x46."""

    name = "sht4x"

    def __init__(self, env=None, serial=DEFAULT_SERIAL, slow=False, log=True, clock=None):
        super().__init__(clock)
        self.env = env if env is not None else Environment()
        self.serial = serial
        self.slow = slow  # take the datasheet's maximum durations instead of the typical
        self.commands = [] if log else None  # every command byte received, in order
        self.measurements = 0
        self.heater_on_ms = 0  # total heater-on time, for duty-cycle checks
        self._theta = 0  # die temperature above the air, K
        self._theta_at = 0  # when _theta was last brought up to date (ms)
        self._heat_mw = 0  # heater power now
        self._pending = bytearray(6)
        self._cache = (None, None, None)  # (t, rh, ticks) for steady air: no allocation
        self.power_cycle()

    # -- power -----------------------------------------------------------------------

    def power_cycle(self):
        """Supply off and on: a hung chip recovers, any measurement or heating is lost."""
        self.faults.stuck_busy = False
        self._cool()
        self._heat_mw = 0
        self._busy_until = self._us() + _POWER_UP_US
        self._action = None  # what completes at _busy_until: "measure", "heat", "serial"
        self._data = False  # a result waiting to be read

    def hang(self):
        """The chip locks up: busy for ever, every transaction NACKed until power_cycle()."""
        self.faults.stuck_busy = True

    def _us(self):
        return self.elapsed_ms() * 1000

    def _busy(self):
        if self.faults.stuck_busy:
            return True
        if self._us() < self._busy_until:
            return True
        if self._action is not None:
            self._complete()
        return False

    def _complete(self):
        """The command finished at _busy_until (perhaps a while ago): its result then."""
        action, self._action = self._action, None
        end_ms = self._busy_until // 1000
        if action == "heat":
            self._cool(end_ms)  # heating up to the end of the pulse, then off
            self._heat_mw = 0
        if action in ("heat", "measure"):
            self._convert(end_ms)

    # -- thermal model ------------------------------------------------------------------

    def _cool(self, at_ms=None):
        """Bring the die temperature up to at_ms (default now): heating toward P * R_th
        while the heater runs, else cooling toward the air."""
        now = self.elapsed_ms() if at_ms is None else at_ms
        dt = now - self._theta_at
        if dt <= 0:
            return
        self._theta_at = now
        if not self._theta and not self._heat_mw:
            return
        target = self._heat_mw * THERMAL_RESISTANCE_K_PER_MW
        theta = target + (self._theta - target) * math.exp(-dt / THERMAL_TIME_CONSTANT_MS)
        self._theta = theta if abs(theta) > 1e-3 else 0

    def die_excess_k(self):
        """How much warmer than the air the sensor is now, in K."""
        self._busy()
        self._cool()
        return self._theta

    # -- measurement -------------------------------------------------------------------

    def _convert(self, t_ms):
        self.measurements += 1
        t = self.env.sample("temperature", t_ms)
        rh = self.env.sample("humidity", t_ms)
        self._cool(t_ms)
        if self._theta:
            # The same water vapour at the die's higher temperature: lower relative humidity.
            t_die = t + self._theta
            rh_die = rh * saturation_hpa(t) / saturation_hpa(t_die)
            st, srh = ticks_for(t_die, rh_die)
            encode_words(st, srh, self._pending)
        else:
            c = self._cache
            if c[0] is not t or c[1] is not rh:
                # Steady air (a constant Environment) reuses the last answer, which keeps
                # the model from allocating in heap measurements of a driver.
                self._cache = c = (t, rh, ticks_for(t, rh))
            encode_words(c[2][0], c[2][1], self._pending)
        self._data = True

    # -- I2C -----------------------------------------------------------------------------

    def _nack(self):
        raise OSError(ENODEV, "I2C: no ACK from the SHT4x (busy)")

    def on_write(self, data):
        if self._busy():
            self._nack()
        if not len(data):
            return  # an address probe (scan)
        if len(data) != 1:
            raise OSError(EIO, "I2C: SHT4x NACKed byte 2 (commands are one byte)")
        cmd = data[0]
        if self.commands is not None:
            self.commands.append(cmd)
        now = self._us()
        self._data = False
        if cmd in _MEASURE:
            self._busy_until = now + _MEASURE[cmd][1 if self.slow else 0]
            self._action = "measure"
        elif cmd in _HEATER:
            power, typ, mx = _HEATER[cmd]
            self._cool()  # up to now with the heater off
            self._heat_mw = power
            self.heater_on_ms += (mx if self.slow else typ) // 1000
            self._busy_until = now + (mx if self.slow else typ) + _MEASURE[0xFD][1 if self.slow else 0]
            self._action = "heat"
        elif cmd == 0x89:
            encode_words(self.serial >> 16, self.serial & 0xFFFF, self._pending)
            self._data = True
            self._busy_until = now + _SERIAL_US
        elif cmd == 0x94:
            self._busy_until = now + _RESET_US
            self._action = None
        else:
            raise OSError(EIO, "I2C: SHT4x NACKed unknown command 0x%02x" % cmd)

    def on_read_into(self, buf):
        if self._busy() or not self._data:
            self._nack()  # nothing to read: still measuring, or no command sent
        pending = self._pending
        for i in range(min(len(buf), 6)):
            buf[i] = pending[i]
        for i in range(6, len(buf)):
            buf[i] = 0xFF  # past the last byte the chip lets SDA float high
        self._data = False  # a result is read once
