# Sensirion SHT40 / SHT41 / SHT43 / SHT45 (temperature, relative humidity) on I2C.
# Datasheet: Sensirion SHT4x, version 6 (section numbers below).
#
#     sensor = SHT4x(i2c)              # 0x44 (SHT4x-A), 0x45 (-B) or 0x46 (-C)
#     sensor.read()                    # {"temperature": 21.53, "humidity": 45.21}
#
# The chip has no registers: every action is a one-byte command (4.5). A reading is
# two bus transactions, the measurement command and, after the datasheet's maximum
# duration for the precision, one 6-byte read (T word, CRC, RH word, CRC). Until the
# measurement is done the chip does not acknowledge a read (4.3): such a NACK after
# the wait is a chip that hangs, reported as ETIMEDOUT. Every word's CRC-8 is checked,
# so a damaged byte is an OSError(EIO), never a number. measure() allocates nothing.
#
# The serial number (command 0x89, two words with CRCs) is the identity check at
# construction: the SHT4x has no chip-id, but only a Sensirion chip answers 0x89 with
# two CRC-valid words.
#
# Heater (4.9): heat() runs one of the six heater pulses (20/110/200 mW for 0.1 s or
# 1 s); the chip then measures with high precision and switches the heater off. The
# datasheet designs the heater for a duty cycle of at most 10 % (total heater-on time
# no more than a tenth of the sensor's lifetime). The driver enforces it per pulse:
# after a pulse of maximum length t_max (110 ms or 1.1 s), the next one may start only
# t_max / heater_duty_max after this one started (11 s after a 1 s pulse at 10 %), so
# that over any run of pulses the heater is on at most that fraction of the time. The
# limit is per driver instance: a new SHT4x object (a reboot) starts with none.
# An early heat() is OSError(EAGAIN) naming the wait; heater_ready_in_ms() tells it.
# The datasheet also limits heater use to ambient temperatures below 65 °C.

from errno import EAGAIN, EIO, ENODEV, ETIMEDOUT

from hal import clock

from drivers import sensirion

from . import conversion as conv

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_CMD_MEASURE_HIGH = const(0xFD)
_CMD_MEASURE_MEDIUM = const(0xF6)
_CMD_MEASURE_LOW = const(0xE0)
_CMD_SERIAL = const(0x89)
_CMD_SOFT_RESET = const(0x94)
_RESET_MS = const(1)  # soft reset time, maximum (table 7)
_POWER_UP_MS = const(1)  # power-up time, maximum (table 5): the chip may have just been switched on
_SERIAL_MS = const(10)  # no duration in the datasheet; Sensirion's own driver waits 10 ms
_HIGH_PRECISION_MS = const(9)  # the measurement that ends every heater pulse (8.3 ms max)

PRECISIONS = {"high": _CMD_MEASURE_HIGH, "medium": _CMD_MEASURE_MEDIUM, "low": _CMD_MEASURE_LOW}

# Heater commands (table 7), keyed by (power mW, duration ms).
HEATER_COMMANDS = {
    (200, 1000): 0x39,
    (200, 100): 0x32,
    (110, 1000): 0x2F,
    (110, 100): 0x24,
    (20, 1000): 0x1E,
    (20, 100): 0x15,
}
HEATER_DUTY_MAX = 0.1  # datasheet 4.9


class SHT4x:
    def __init__(self, i2c, address=0x44, precision="high", heater_duty_max=HEATER_DUTY_MAX):
        self.i2c = i2c
        self.address = address
        self._buf = bytearray(6)  # the one read buffer: (T, CRC, RH, CRC) or the serial
        self._cmd = bytearray(1)
        self.configure(precision, heater_duty_max)
        self._heater_started = None  # ticks of the last heater pulse (duty-cycle limit)
        self._heater_lock_ms = 0
        self._started = None  # ticks of the last measurement command, for fetch()'s message
        self.serial_number = self._identify()

    # -- set-up -------------------------------------------------------------------------

    def _fail(self, errno, what):
        raise OSError(errno, "SHT4x at I2C address 0x%02x: %s" % (self.address, what))

    def configure(self, precision="high", heater_duty_max=HEATER_DUTY_MAX):
        """Validate the options (each error names the bad value). precision: "high",
        "medium" or "low" (repeatability 0.04/0.07/0.1 °C, 8.3/4.5/1.6 ms at most);
        heater_duty_max: the largest heater duty cycle allowed, 0 < x <= 0.1."""
        if precision not in PRECISIONS:
            raise ValueError("SHT4x: precision must be 'high', 'medium' or 'low', not %r" % (precision,))
        if not isinstance(heater_duty_max, (int, float)) or not 0 < heater_duty_max <= HEATER_DUTY_MAX:
            raise ValueError(
                "SHT4x: heater_duty_max must be above 0 and at most 0.1 (datasheet 4.9), not %r" % (heater_duty_max,)
            )
        self.precision = precision
        self.heater_duty_max = heater_duty_max
        self._measure_cmd = PRECISIONS[precision]
        self.wait_ms = conv.wait_ms(precision)

    def _identify(self):
        """Read the serial number: two words with valid CRCs, or OSError(ENODEV/EIO)."""
        clock.sleep_ms(_POWER_UP_MS)
        try:
            self._command(_CMD_SERIAL)
        except OSError as e:
            self._fail(e.args[0] if e.args and isinstance(e.args[0], int) else ENODEV, "no answer (%s)" % (e,))
        clock.sleep_ms(_SERIAL_MS)
        buf = self._buf
        try:
            self.i2c.readfrom_into(self.address, buf)
        except OSError as e:
            self._fail(ENODEV, "serial number command 0x89 acknowledged, but no data (%s): not an SHT4x?" % (e,))
        w = sensirion.bad_word(buf, 2)
        if w >= 0:
            self._fail(EIO, "serial number word %d fails its CRC (%s): damaged bytes, or not an SHT4x" % (w, bytes(buf)))
        return (sensirion.word(buf, 0) << 16) | sensirion.word(buf, 1)

    def reset(self):
        """Soft reset (0x94): the chip restarts as at power-up, in 1 ms at most."""
        try:
            self._command(_CMD_SOFT_RESET)
        except OSError as e:
            self._bus_error(e, "soft reset command")
        clock.sleep_ms(_RESET_MS)

    # -- bus ------------------------------------------------------------------------------

    def _command(self, cmd):
        self._cmd[0] = cmd
        acks = self.i2c.writeto(self.address, self._cmd)
        # machine.I2C.writeto returns the data bytes ACKed (a NACKed address raises
        # ENODEV): 0 here is the command byte refused.
        if isinstance(acks, int) and acks < 1:
            raise OSError(EIO, "I2C: command 0x%02x not acknowledged" % cmd)

    # -- fetch: one command, one read -----------------------------------------------------

    def start(self):
        """Send the measurement command; returns the milliseconds to wait before fetch()
        (the datasheet's maximum for the precision, rounded up)."""
        try:
            self._command(self._measure_cmd)
        except OSError as e:
            self._bus_error(e, "measurement command")
        self._started = clock.ticks_ms()
        return self.wait_ms

    def fetch(self):
        """Read the 6 result bytes and check both CRCs (OSError EIO on a damaged word).
        A NACK here means the chip is still measuring: OSError(ETIMEDOUT)."""
        try:
            self.i2c.readfrom_into(self.address, self._buf)
        except OSError as e:
            if e.args and e.args[0] == ENODEV:
                since = clock.ticks_diff(clock.ticks_ms(), self._started) if self._started is not None else -1
                self._fail(
                    ETIMEDOUT,
                    "read not acknowledged %d ms after the command: still measuring (a chip that keeps "
                    "doing this hangs: power-cycle it)" % since,
                )
            self._bus_error(e, "result read")
        w = sensirion.bad_word(self._buf, 2)
        if w >= 0:
            self._fail(EIO, "%s word fails its CRC: damaged on the bus (%s)" % (("temperature", "humidity")[w], bytes(self._buf)))

    def _bus_error(self, e, what):
        errno = e.args[0] if e.args and isinstance(e.args[0], int) else EIO
        if errno == ENODEV:
            self._fail(ENODEV, "%s not acknowledged: absent, unpowered or hung (%s)" % (what, e))
        self._fail(errno, "%s failed (%s)" % (what, e))

    def measure(self):
        """One measurement into the driver's buffer: command, wait, read. Two bus
        transactions; allocates no heap memory on success."""
        clock.sleep_ms(self.start())
        self.fetch()

    # -- get: pure conversion of what was fetched -----------------------------------------

    def raw(self):
        """(S_T, S_RH), the 16-bit ticks of the last fetch."""
        buf = self._buf
        return (buf[0] << 8) | buf[1], (buf[3] << 8) | buf[4]

    def values(self):
        """The contract's dict from the last fetch: temperature °C, humidity %RH."""
        st, srh = self.raw()
        return {"temperature": round(conv.temperature_c(st), 3), "humidity": round(conv.humidity_rh(srh), 3)}

    def read(self):
        self.measure()
        return self.values()

    # -- heater (4.9) ---------------------------------------------------------------------

    def heater_ready_in_ms(self):
        """Milliseconds until the duty-cycle limit allows the next heater pulse (0: now)."""
        if self._heater_started is None:
            return 0
        since = clock.ticks_diff(clock.ticks_ms(), self._heater_started)
        if since < 0 or since >= self._heater_lock_ms:
            self._heater_started = None  # long enough ago (a negative diff has wrapped)
            return 0
        return self._heater_lock_ms - since

    def start_heater(self, power_mw=200, duration_ms=1000):
        """Start a heater pulse (power 20, 110 or 200 mW; duration 100 or 1000 ms).
        Returns the milliseconds to wait before fetch() reads the measurement that ends
        the pulse. OSError(EAGAIN) if the duty-cycle limit forbids a pulse now."""
        cmd = HEATER_COMMANDS.get((power_mw, duration_ms))
        if cmd is None:
            if power_mw not in conv.HEATER_POWERS_MW:
                raise ValueError("SHT4x: heater power_mw must be 20, 110 or 200, not %r" % (power_mw,))
            raise ValueError("SHT4x: heater duration_ms must be 100 or 1000, not %r" % (duration_ms,))
        wait = self.heater_ready_in_ms()
        if wait:
            self._fail(
                EAGAIN,
                "heater duty cycle limit %g %% (datasheet 4.9): next pulse allowed in %d ms"
                % (self.heater_duty_max * 100, wait),
            )
        try:
            self._command(cmd)
        except OSError as e:
            self._bus_error(e, "heater command 0x%02x" % cmd)
        on_max = conv.HEATER_MAX_MS[duration_ms]
        self._started = self._heater_started = clock.ticks_ms()
        self._heater_lock_ms = int(on_max / self.heater_duty_max + 0.5)
        return on_max + _HIGH_PRECISION_MS

    def heat(self, power_mw=200, duration_ms=1000):
        """Run a heater pulse (blocking for its duration) and return the high-precision
        reading the chip takes at its end, as read() does: the heated sensor's values."""
        clock.sleep_ms(self.start_heater(power_mw, duration_ms))
        self.fetch()
        return self.values()
