# A Sensirion SPS30 particulate matter sensor on I2C (address 0x69), after the SPS30
# datasheet (version 1.0, March 2020), section 6 "Operation and communication through
# the I2C interface":
#
# - Idle after power-up; start measurement (0x0010, argument 0x0300 for big-endian
#   IEEE754 floats or 0x0500 for unsigned 16-bit integers) enters measurement mode,
#   where a new set of values is made every second, the first one second after the
#   start; stop measurement (0x0104) returns to idle.
# - Commands only allowed in one mode are NACKed in the other (section 6): start and sleep
#   only in idle; stop, read data-ready flag, read measured values and start fan
#   cleaning only in measurement mode.
# - The data-ready flag (0x0202) reads 0x0001 when a set of values has been made
#   since the last read of the values (0x0300), which clears it; the values are the
#   latest set (zeros before the first). "Set pointer" semantics: every read after a
#   read command answers it again.
# - Sleep (0x1001, firmware >= 2.0) switches the I2C interface off: every transaction
#   is NACKed. A transaction (a start/stop pulse, or a first wake-up that is NACKed)
#   activates the interface for 100 ms; a wake-up command (0x1103) in that window
#   returns to idle ("Wake-up").
# - Auto-cleaning interval (0x8004): 2 words, read or written in either mode; before
#   firmware 2.2 a read returns the old value until the next reset or start.
# - Fan cleaning (0x5607) runs for 10 s; device status register (0xD206, 0xD210 clears).
# - Product type (0xD002) "00080000", serial number (0xD033, 32 ASCII bytes), firmware
#   version (0xD100), device reset (0xD304, 100 ms).
#
# Mass concentrations come from env.sample("pm1_0"/"pm2_5"/"pm10"); PM4 lies a quarter of
# the way from PM2.5 to PM10. Number concentrations are derived from the masses per size
# bin (spheres of density 1.65 g/cm³ at each bin's typical diameter), the typical
# particle size is the count-weighted mean diameter.
# Faults: the bus's Faults; faults.stuck_busy (the measurement stalls: no new values,
# the flag stays 0); fan_error() sets the fan-error bit and freezes values; hang().

import struct

from hal.sim.environment import Environment
from hal.sim.sensirion import SensirionChip, crc8

IDLE = 0
MEASURING = 1
ASLEEP = 2

_MODE_NAMES = ("idle mode", "measurement mode", "sleep mode")
_FLOAT = 0x0300
_UINT16 = 0x0500

# Execution times in ms (section 6, per command); reads without one answer at once.
EXEC_MS = {
    0x0010: 20,  # start measurement
    0x0104: 20,  # stop measurement
    0x0202: 0,  # read data-ready flag
    0x0300: 0,  # read measured values
    0x1001: 5,  # sleep
    0x1103: 5,  # wake-up
    0x5607: 5,  # start fan cleaning
    0x8004: 5,  # read auto-cleaning interval (20 ms to write it)
    0xD002: 0,  # read product type
    0xD033: 0,  # read serial number
    0xD100: 0,  # read firmware version
    0xD206: 0,  # read device status register
    0xD210: 5,  # clear device status register
    0xD304: 100,  # device reset
}
_MEASURING_ONLY = (0x0104, 0x0202, 0x0300, 0x5607)
_IDLE_ONLY = (0x0010, 0x1001)
_READS = (0x0202, 0x0300, 0xD002, 0xD033, 0xD100, 0xD206)
PERIOD_MS = 1000
CLEANING_MS = 10000
WAKE_WINDOW_MS = 100
DEFAULT_AUTO_CLEANING_S = 604800  # one week

STATUS_FAN_SPEED_WARNING = 1 << 21
STATUS_FAN_CLEANING = 1 << 19
STATUS_LASER_ERROR = 1 << 5
STATUS_FAN_ERROR = 1 << 4

# (diameter µm of the bin's typical particle, upper size of the bin in µm)
_BINS = ((0.4, 0.5), (0.75, 1.0), (1.6, 2.5), (3.0, 4.0), (6.0, 10.0))
_DENSITY_UG_PER_UM3 = 1.65e-6


def derived(pm1, pm25, pm10):
    """(pm1, pm2.5, pm4, pm10, nc0.5, nc1.0, nc2.5, nc4.0, nc10, typical size µm) for the masses."""
    pm1 = max(0.0, pm1)
    pm25 = max(pm1, pm25)
    pm10 = max(pm25, pm10)
    pm4 = pm25 + 0.25 * (pm10 - pm25)
    masses = (0.6 * pm1, 0.4 * pm1, pm25 - pm1, pm4 - pm25, pm10 - pm4)
    counts = []
    weighted = 0.0
    for (d, _), m in zip(_BINS, masses):
        per_particle = _DENSITY_UG_PER_UM3 * 3.141592653589793 / 6.0 * d * d * d
        n = m / per_particle / 1e6  # µg/m³ over µg per particle, per cm³
        counts.append(n)
        weighted += n * d
    cumulative = []
    total = 0.0
    for n in counts:
        total += n
        cumulative.append(total)
    size = weighted / total if total > 0 else 0.0
    return (pm1, pm25, pm4, pm10) + tuple(cumulative) + (size,)


class SimSPS30(SensirionChip):
    """Attach to a SimI2C at 0x69. firmware=(major, minor): sleep/wake-up need 2.0,
    reading back a written auto-cleaning interval needs 2.2."""

    name = "sps30"

    def __init__(self, env=None, serial="F7C5A2B1D3E4F601", firmware=(2, 2), product_type="00080000", clock=None):
        self.env = env if env is not None else Environment()
        self.serial = serial
        self.firmware = tuple(firmware)
        self.product_type = product_type
        self.auto_cleaning_s = DEFAULT_AUTO_CLEANING_S  # kept in flash across power cycles
        self.status = 0  # device status register
        self.measurements = 0
        self.fan_cleanings = 0
        super().__init__(clock, reply_words=20)

    # -- state ---------------------------------------------------------------------------

    def reset_state(self):
        self.mode = IDLE
        self.format = _FLOAT
        self._flag = False
        self._next_ms = 0
        self._cleaning_until = -1
        self._wake_until = -1
        self._auto_cleaning_reported = self.auto_cleaning_s
        self._values = bytearray(40)  # the latest set, as 20 words (float) or 10 (uint16)
        self._last_env = None
        self.status &= ~STATUS_FAN_CLEANING

    @property
    def mode_name(self):
        return _MODE_NAMES[self.mode]

    def fan_error(self, on=True):
        """The fan stops (blocked, worn out): status bit 4 set, no new values."""
        if on:
            self.status |= STATUS_FAN_ERROR
        else:
            self.status &= ~STATUS_FAN_ERROR

    def update(self, now):
        if self._cleaning_until >= 0 and now >= self._cleaning_until:
            self._cleaning_until = -1
            self.status &= ~STATUS_FAN_CLEANING
        if self.mode != MEASURING or now < self._next_ms:
            return
        while self._next_ms <= now:
            self._next_ms += PERIOD_MS
        if self.faults.stuck_busy or self.status & STATUS_FAN_ERROR:
            return
        self._measure(now)

    def _measure(self, now):
        """A new set of values. Encodes only when the air changed, so that a driver's
        fetch against steady air allocates nothing in the model either."""
        self.measurements += 1
        self._flag = True
        env = self.env
        pm1 = env.sample("pm1_0", now)
        pm25 = env.sample("pm2_5", now)
        pm10 = env.sample("pm10", now)
        last = self._last_env
        if last is not None and last[0] == pm1 and last[1] == pm25 and last[2] == pm10 and last[3] == self.format:
            return
        self._last_env = (pm1, pm25, pm10, self.format)
        values = derived(pm1, pm25, pm10)
        out = self._values
        if self.format == _FLOAT:
            for i in range(10):
                struct.pack_into(">f", out, 4 * i, values[i])
        else:
            # uint16: masses in µg/m³, numbers in #/cm³, typical size in nm.
            for i in range(10):
                v = values[i] * 1000.0 if i == 9 else values[i]
                struct.pack_into(">H", out, 2 * i, min(0xFFFF, int(v + 0.5)))

    # -- commands -----------------------------------------------------------------------------

    def before_write(self, now, data):
        # In sleep mode the interface wakes on any activity for 100 ms ("Wake-up"); the
        # transaction that woke it is not acknowledged.
        if self.mode == ASLEEP and not self.hung:
            if now >= self._wake_until:
                self._wake_until = now + WAKE_WINDOW_MS
                self.nack_address("sleep mode: interface activated, send wake-up within 100 ms")
            if len(data) >= 2 and ((data[0] << 8) | data[1]) == 0x1103:
                return  # handled by command()
            self.nack_address("sleep mode: only wake-up is heard")

    def before_read(self, now):
        if self.mode == ASLEEP and not self.hung:
            self.nack_address("sleep mode: the I2C interface is off")

    def command(self, cmd, args, n_args, now):
        mode = self.mode
        if cmd not in EXEC_MS:
            self.refuse(cmd, "unknown command")
        if mode == ASLEEP:  # only a wake-up in the activation window gets here
            self.mode = IDLE
            self._wake_until = -1
            self.busy(EXEC_MS[cmd])
            return
        if (cmd == 0x1001 or cmd == 0x1103) and self.firmware < (2, 0):
            self.refuse(cmd, "sleep/wake-up need firmware 2.0, this is %d.%d" % self.firmware)
        if cmd in _MEASURING_ONLY and mode != MEASURING:
            self.refuse(cmd, "only allowed in measurement mode, the sensor is in %s" % _MODE_NAMES[mode])
        if cmd in _IDLE_ONLY and mode != IDLE:
            self.refuse(cmd, "only allowed in idle mode, the sensor is in %s" % _MODE_NAMES[mode])
        want = 1 if cmd == 0x0010 else (2 if cmd == 0x8004 and n_args else 0)
        if n_args != want:
            self.refuse(cmd, "takes %d argument words, got %d" % (want, n_args))
        exec_ms = EXEC_MS[cmd]

        if cmd == 0x0010:
            fmt = self.arg(args, 0)
            if fmt != _FLOAT and fmt != _UINT16:
                self.refuse(cmd, "output format 0x%04x is neither 0x0300 nor 0x0500" % fmt)
            self.mode = MEASURING
            self.format = fmt
            self._last_env = None
            self._flag = False
            for i in range(len(self._values)):
                self._values[i] = 0  # no values yet
            self._next_ms = now + PERIOD_MS
            self._auto_cleaning_reported = self.auto_cleaning_s
        elif cmd == 0x0104:
            self.mode = IDLE
        elif cmd == 0x1001:
            self.mode = ASLEEP
            self._wake_until = -1
        elif cmd == 0x5607:
            self.fan_cleanings += 1
            self._cleaning_until = now + CLEANING_MS
            self.status |= STATUS_FAN_CLEANING
        elif cmd == 0x8004 and n_args:
            self.auto_cleaning_s = (self.arg(args, 0) << 16) | self.arg(args, 1)
            if self.firmware >= (2, 2):
                self._auto_cleaning_reported = self.auto_cleaning_s
            exec_ms = 20
        elif cmd == 0xD210:
            self.status = self.status & STATUS_FAN_CLEANING
        elif cmd == 0xD304:
            self.power_cycle()
        if cmd in _READS or (cmd == 0x8004 and not n_args):
            self.point(cmd, exec_ms)
        else:
            self.busy(exec_ms)

    def answer(self, cmd, now):
        if cmd == 0x0300:
            v = self._values
            n = 20 if self.format == _FLOAT else 10
            r = self._reply
            for w in range(n):
                r[3 * w] = v[2 * w]
                r[3 * w + 1] = v[2 * w + 1]
                self._crc_into(3 * w)
            self._flag = False
            return n
        if cmd == 0x0202:
            self.put_word(0, 1 if self._flag else 0)
            return 1
        if cmd == 0x8004:
            self.put_word(0, self._auto_cleaning_reported >> 16)
            self.put_word(1, self._auto_cleaning_reported & 0xFFFF)
            return 2
        if cmd == 0xD002:
            self.put_bytes(0, self.product_type.encode(), 4)
            return 4
        if cmd == 0xD033:
            self.put_bytes(0, self.serial.encode(), 16)
            return 16
        if cmd == 0xD100:
            self.put_word(0, (self.firmware[0] << 8) | self.firmware[1])
            return 1
        if cmd == 0xD206:
            self.put_word(0, self.status >> 16)
            self.put_word(1, self.status & 0xFFFF)
            return 2
        return 0

    def _crc_into(self, i):
        r = self._reply
        r[i + 2] = crc8(r, i, i + 2)
