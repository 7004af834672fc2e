# Sensirion SCD40 / SCD41 / SCD43 (photoacoustic CO2, temperature, humidity) on I2C.
# Datasheet: "SCD4x" (Sensirion), section numbers below; table 9 lists the commands,
# their execution times and which of them the chip accepts during a periodic measurement.
#
#     sensor = SCD4x(i2c)                       # 0x62; stops a measurement left running,
#                                               # reads the serial number, starts measuring
#     sensor.set_ambient_pressure(bme.read()["pressure"])   # pressure compensation, hPa
#     sensor.read()        # {"co2": 612, "temperature": 21.53, "humidity": 45.21}
#
# Modes: "periodic" (a value every 5 s, the default), "low_power" (every 30 s),
# "single_shot" (SCD41/SCD43: each read() triggers a 5 s measurement) and "idle".
#
# read() never waits for a periodic value: once one signal update interval has passed
# since the last value it fetches the new one (read_measurement: command, 1 ms, 9-byte
# read: 2 bus transactions, no data-ready poll needed); before that it returns the last
# value again without touching the bus; until the first value after a start (5 s; the
# pauses for idle-only commands below restart it too) every channel is None. A single shot costs 3 transactions (trigger, command, read)
# and waits its 5 s. Command execution times are waited with hal.clock.sleep_ms.
# measure() allocates nothing.
#
# The chip NACKs most commands while it measures (table 9): the methods that need idle
# mode (settings, serial, reset, self test) stop the measurement (500 ms), run, and
# start it again. A chip that lost power or was reset behind the driver's back (it is
# idle, its RAM settings gone) is found when a value is due: its settings are restored
# and its measurement restarted (counted in `recoveries`). A chip that measures but
# produces nothing for two intervals is an ETIMEDOUT.

from errno import EIO, ENODEV, ETIMEDOUT

from drivers.sensirion import SensirionI2C, unpack_words, word
from hal import clock

from . import conversion as conv

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_CMD_START_PERIODIC = const(0x21B1)
_CMD_READ_MEASUREMENT = const(0xEC05)
_CMD_STOP_PERIODIC = const(0x3F86)
_CMD_SET_TEMPERATURE_OFFSET = const(0x241D)
_CMD_GET_TEMPERATURE_OFFSET = const(0x2318)
_CMD_SET_ALTITUDE = const(0x2427)
_CMD_GET_ALTITUDE = const(0x2322)
_CMD_AMBIENT_PRESSURE = const(0xE000)
_CMD_FORCED_RECALIBRATION = const(0x362F)
_CMD_SET_ASC = const(0x2416)
_CMD_GET_ASC = const(0x2313)
_CMD_START_LOW_POWER = const(0x21AC)
_CMD_DATA_READY = const(0xE4B8)
_CMD_PERSIST = const(0x3615)
_CMD_SERIAL = const(0x3682)
_CMD_SELF_TEST = const(0x3639)
_CMD_FACTORY_RESET = const(0x3632)
_CMD_REINIT = const(0x3646)
_CMD_VARIANT = const(0x202F)
_CMD_SINGLE_SHOT = const(0x219D)
_CMD_SINGLE_SHOT_RHT = const(0x2196)
_CMD_POWER_DOWN = const(0x36E0)
_CMD_WAKE_UP = const(0x36F6)

# Execution times, ms (table 9).
_T_READ = const(1)
_T_STOP = const(500)
_T_FRC = const(400)
_T_PERSIST = const(800)
_T_SELF_TEST = const(10000)
_T_FACTORY_RESET = const(1200)
_T_REINIT = const(30)  # 20 ms in datasheet 1.3, 30 ms from 1.5 on: the longer
_T_SINGLE_SHOT = const(5000)
_T_SINGLE_SHOT_RHT = const(50)
_T_WAKE_UP = const(30)
_T_POWER_UP = const(1000)  # power-up to idle (3.1)

MODES = {"periodic": 5000, "low_power": 30000, "single_shot": 0, "idle": 0}


def _check_mode(mode):
    if mode not in MODES:
        raise ValueError("SCD4x: mode must be one of %s, not %r" % (", ".join(sorted(MODES)), mode))


class SCD4x:
    def __init__(self, i2c, address=0x62, mode="periodic", ambient_pressure_hpa=None):
        _check_mode(mode)
        self._dev = SensirionI2C(i2c, address, "SCD4x")
        self._rx = bytearray(9)  # three (word, crc) triples as read
        self._data = bytearray(6)  # co2, temperature, humidity words of the last good value
        self._one = bytearray(3)  # one-word answers
        self.recoveries = 0  # times the chip was found reset and set up again
        self.mode = mode
        self.period_ms = MODES[mode]
        self._measuring = False
        self._due = 0  # ticks when the next periodic value is ready
        self._have = False  # _data holds a value made since the last start
        self._last_new = 0  # ticks of the last new value (or the start)
        # Settings this driver made in the chip's RAM, restored after it loses them.
        self._pressure = None
        self._offset = None
        self._altitude = None
        self._asc = None
        self._stop(first=True)
        self.serial = self._read_serial()
        self.variant = self._read_variant()
        if mode == "single_shot":
            self._need_single_shot()
        if ambient_pressure_hpa is not None:
            self.set_ambient_pressure(ambient_pressure_hpa)
        self._start()

    # -- set-up -------------------------------------------------------------------------------

    def _fail(self, errno, what):
        self._dev.fail(errno, what)

    def _stop(self, first=False):
        """stop_periodic_measurement, then the 500 ms before the chip listens again. Accepted
        in idle mode too, so it also ends a measurement left running by an earlier boot. At
        construction a chip still powering up (1 s, 3.1) or powered down (SCD41) NACKs: wake
        it (wake_up is never acknowledged, 3.10.4), wait and try once more."""
        try:
            self._dev.send(_CMD_STOP_PERIODIC, _T_STOP)
        except OSError:
            if not first:
                raise
            try:
                self._dev.send(_CMD_WAKE_UP)
            except OSError:
                pass  # not acknowledged by design
            clock.sleep_ms(_T_POWER_UP)
            self._dev.send(_CMD_STOP_PERIODIC, _T_STOP)
        self._measuring = False

    def _read_serial(self):
        buf = self._rx
        self._dev.read_into(_CMD_SERIAL, buf, _T_READ)
        serial = conv.serial_number(word(buf, 0), word(buf, 1), word(buf, 2))
        if serial == 0 or serial == 0xFFFFFFFFFFFF:
            self._fail(ENODEV, "serial number 0x%012x: not an SCD4x" % serial)
        return serial

    def _read_variant(self):
        """"SCD40"/"SCD41"/"SCD43", or None where the firmware lacks get_sensor_variant
        (it NACKs the command: EIO)."""
        try:
            self._dev.read_into(_CMD_VARIANT, self._one, _T_READ, False)
        except OSError as e:
            if e.args[0] != EIO:
                raise
            return None
        self._dev.check(_CMD_VARIANT, self._one)  # a damaged answer is an error, not "no variant"
        return conv.variant_name(word(self._one, 0))

    def _need_single_shot(self):
        if self.variant == "SCD40":
            raise ValueError("SCD4x: an SCD40 has no single shot mode (SCD41/SCD43 only)")

    def _start(self):
        mode = self.mode
        if mode == "periodic" or mode == "low_power":
            self._dev.send(_CMD_START_PERIODIC if mode == "periodic" else _CMD_START_LOW_POWER)
            self._started_now()

    def _started_now(self):
        self._measuring = True
        self._have = False
        self._last_new = now = clock.ticks_ms()
        self._due = clock.ticks_add(now, self.period_ms)

    def _has_settings(self):
        return not (self._offset is None and self._altitude is None and self._asc is None
                    and self._pressure is None)

    def _apply_settings(self):
        """Write the settings this driver made again (the chip is idle)."""
        dev = self._dev
        if self._offset is not None:
            dev.write(_CMD_SET_TEMPERATURE_OFFSET, self._offset, _T_READ)
        if self._altitude is not None:
            dev.write(_CMD_SET_ALTITUDE, self._altitude, _T_READ)
        if self._asc is not None:
            dev.write(_CMD_SET_ASC, self._asc, _T_READ)
        if self._pressure is not None:
            dev.write(_CMD_AMBIENT_PRESSURE, self._pressure, _T_READ)

    def _pause(self):
        """Stop a periodic measurement for a command that needs idle mode; returns whether
        one was running (pass it to _resume)."""
        was = self._measuring
        if was:
            self._stop()
        return was

    def _resume(self, was):
        if was:
            self._start()

    # -- measurement ------------------------------------------------------------------------

    def ready_in_ms(self):
        """Milliseconds until a periodic value is due (0: now). No bus traffic."""
        if not self._measuring:
            return 0
        return max(0, clock.ticks_diff(self._due, clock.ticks_ms()))

    def measure(self):
        """Fetch a new measurement if one is due (see the module comment). Returns True
        when the driver holds a value (new or the last one), False before the first value
        after a start. Allocates nothing on success; OSError with the address on a fault."""
        dev = self._dev
        if self.mode == "single_shot":
            dev.send(_CMD_SINGLE_SHOT, _T_SINGLE_SHOT)
            self._fetch()
            return True
        if not self._measuring:
            self._fail(EIO, "not measuring (mode %r): start() or measure_single_shot()" % self.mode)
        now = clock.ticks_ms()
        if clock.ticks_diff(now, self._due) < 0:
            return self._have
        try:
            dev.read_into(_CMD_READ_MEASUREMENT, self._rx, _T_READ, False)
        except OSError as e:
            return self._recover(e, now)  # bus errors only: a damaged answer is not retried
        self._got_new(now)
        return True

    def _fetch(self):
        """read_measurement into the buffers, CRCs checked."""
        self._dev.read_into(_CMD_READ_MEASUREMENT, self._rx, _T_READ, False)
        self._got_new(clock.ticks_ms())

    def _got_new(self, now):
        # The chip made a value and emptied its buffer, even if the bytes arrive damaged:
        # the next one is an interval away either way.
        self._last_new = now
        self._due = clock.ticks_add(now, self.period_ms)
        self._dev.check(_CMD_READ_MEASUREMENT, self._rx)  # EIO naming command and damaged word
        unpack_words(self._rx, 3, self._data)
        self._have = True

    def _recover(self, err, now):
        """read_measurement failed when a value was due. Ask the chip why: a value is ready
        (the failure was the bus: read again); none is ready and the chip accepts a start
        (it was reset behind our back: restore its settings and start it, the value comes
        one interval later); none is ready and it refuses the start (it measures, the value
        is late: keep the last one and ask again a tenth of an interval later, ETIMEDOUT
        after two intervals without one). A chip that does not answer the data-ready poll
        either: the first error is raised."""
        dev = self._dev
        one = self._one
        try:
            dev.read_into(_CMD_DATA_READY, one, _T_READ)
        except OSError:
            raise err
        if conv.data_ready(word(one, 0)):
            self._fetch()
            return True
        try:
            dev.send(_CMD_START_PERIODIC if self.mode == "periodic" else _CMD_START_LOW_POWER)
        except OSError:
            late = clock.ticks_diff(now, self._last_new)
            if late > 2 * self.period_ms:
                self._fail(ETIMEDOUT, "no new measurement for %d ms (measuring but stuck?)" % late)
            self._due = clock.ticks_add(now, self.period_ms // 10)
            return self._have
        # It was idle: its RAM settings went with whatever reset it.
        self.recoveries += 1
        if self._has_settings():
            self._stop()  # settings need idle mode
            self._apply_settings()
            self._start()
        else:
            self._started_now()
        return False

    def raw(self):
        """(co2 ppm, temperature word, humidity word) of the last good fetch."""
        d = self._data
        return (d[0] << 8) | d[1], (d[2] << 8) | d[3], (d[4] << 8) | d[5]

    def values(self):
        """The contract's dict from the last fetch: co2 ppm, temperature °C, humidity %RH
        (None before the first value after a start)."""
        if not self._have:
            return {"co2": None, "temperature": None, "humidity": None}
        co2, t, rh = self.raw()
        return {
            "co2": co2,
            "temperature": round(conv.temperature_c(t), 2),
            "humidity": round(conv.humidity_rh(rh), 2),
        }

    def read(self):
        self.measure()
        return self.values()

    def data_ready(self):
        """get_data_ready_status (2 transactions): a value waits in the chip's buffer."""
        self._dev.read_into(_CMD_DATA_READY, self._one, _T_READ)
        return conv.data_ready(word(self._one, 0))

    # -- modes --------------------------------------------------------------------------

    def start(self, mode=None):
        """Enter `mode` ("periodic", "low_power", "single_shot", "idle"; default: the
        current one), stopping a running periodic measurement first."""
        if mode is None:
            mode = self.mode
        _check_mode(mode)
        if mode == "single_shot":
            self._need_single_shot()
        self._pause()
        self.mode = mode
        self.period_ms = MODES[mode]
        self._start()

    def stop(self):
        """Stop a periodic measurement (500 ms): the chip idles and accepts every command."""
        self._pause()
        self.mode = "idle"
        self.period_ms = 0

    def measure_single_shot(self, rht_only=False):
        """One on-demand measurement (SCD41/SCD43, idle mode): 5000 ms, or 50 ms for
        temperature and humidity only (co2 reads 0). Returns the contract's dict."""
        self._need_single_shot()
        was = self._pause()
        if rht_only:
            self._dev.send(_CMD_SINGLE_SHOT_RHT, _T_SINGLE_SHOT_RHT)
        else:
            self._dev.send(_CMD_SINGLE_SHOT, _T_SINGLE_SHOT)
        self._fetch()
        values = self.values()
        self._resume(was)  # a restarted periodic measurement has no value for 5 s
        return values

    def power_down(self):
        """Sleep at minimal current (SCD41/SCD43, idle mode); wake_up() or the next
        constructor wakes it."""
        self._pause()
        self._dev.send(_CMD_POWER_DOWN, 1)
        self.mode = "idle"

    def wake_up(self):
        """Wake a powered-down chip (the command is never acknowledged, 3.10.4), then check
        it answers by reading its serial number."""
        try:
            self._dev.send(_CMD_WAKE_UP)
        except OSError:
            pass  # not acknowledged by design; the serial read below is the check
        clock.sleep_ms(_T_WAKE_UP)
        if self._read_serial() != self.serial:
            self._fail(ENODEV, "a different SCD4x answers after wake-up")

    # -- compensation and calibration -----------------------------------------------------------

    def set_ambient_pressure(self, pressure_hpa):
        """Pressure compensation (3.6.5): the pressure around the sensor in hPa, e.g. from a
        BME280 on the same node. Allowed during measurement: one transaction, 1 ms."""
        value = conv.ambient_pressure_word(pressure_hpa)
        self._dev.write(_CMD_AMBIENT_PRESSURE, value, _T_READ)
        self._pressure = value

    def ambient_pressure(self):
        """The ambient pressure the chip compensates for, hPa (get_ambient_pressure)."""
        self._dev.read_into(_CMD_AMBIENT_PRESSURE, self._one, _T_READ)
        return word(self._one, 0)

    def _idle_write(self, cmd, value, wait_ms=_T_READ):
        was = self._pause()
        self._dev.write(cmd, value, wait_ms)
        self._resume(was)

    def _idle_read(self, cmd, wait_ms=_T_READ):
        was = self._pause()
        self._dev.read_into(cmd, self._one, wait_ms)
        self._resume(was)
        return word(self._one, 0)

    def set_temperature_offset(self, offset_c):
        """Temperature offset in °C (3.6.1, default 4 °C): the self-heating the chip
        subtracts from its temperature and humidity. Needs idle mode (paused for it)."""
        value = conv.temperature_offset_word(offset_c)
        self._idle_write(_CMD_SET_TEMPERATURE_OFFSET, value)
        self._offset = value

    def temperature_offset(self):
        return conv.temperature_offset_c(self._idle_read(_CMD_GET_TEMPERATURE_OFFSET))

    def set_sensor_altitude(self, altitude_m):
        """Altitude above sea level in m (3.6.3): the pressure compensation used until
        set_ambient_pressure overrides it. Siegen is about 250 m up."""
        value = conv.altitude_word(altitude_m)
        self._idle_write(_CMD_SET_ALTITUDE, value)
        self._altitude = value

    def sensor_altitude(self):
        return self._idle_read(_CMD_GET_ALTITUDE)

    def set_automatic_self_calibration(self, enabled):
        """Automatic self-calibration on or off (3.7.2; on by default): it assumes the
        sensor sees fresh air (~400 ppm) at least once a week."""
        value = 1 if enabled else 0
        self._idle_write(_CMD_SET_ASC, value)
        self._asc = value

    def automatic_self_calibration(self):
        return self._idle_read(_CMD_GET_ASC) == 1

    def perform_forced_recalibration(self, reference_ppm):
        """Forced recalibration (3.7.1) to a reference CO2 concentration, after at least 3
        minutes of measuring in that air. Returns the correction in ppm; OSError EIO when
        the chip reports failure (0xFFFF)."""
        if not 0 <= reference_ppm <= 0xFFFF:
            raise ValueError("SCD4x: reference CO2 must be 0..65535 ppm, not %r" % (reference_ppm,))
        was = self._pause()
        self._dev.write_read_into(_CMD_FORCED_RECALIBRATION, int(reference_ppm), self._one, _T_FRC)
        self._resume(was)
        correction = conv.frc_correction_ppm(word(self._one, 0))
        if correction is None:
            self._fail(EIO, "forced recalibration failed (0xffff): measure 3 minutes before it")
        return correction

    def persist_settings(self):
        """Store the RAM settings in EEPROM (800 ms; rated for 2000 writes: only after a change)."""
        was = self._pause()
        self._dev.send(_CMD_PERSIST, _T_PERSIST)
        self._resume(was)

    def perform_self_test(self):
        """The chip's self test (10 s): True when it passed (word 0)."""
        return self._idle_read(_CMD_SELF_TEST, _T_SELF_TEST) == 0

    def perform_factory_reset(self):
        """Reset the EEPROM settings and calibration to the factory's (1200 ms). The
        settings this driver made are forgotten too."""
        was = self._pause()
        self._dev.send(_CMD_FACTORY_RESET, _T_FACTORY_RESET)
        self._pressure = self._offset = self._altitude = self._asc = None
        self._resume(was)

    def reinit(self):
        """Reload the settings from EEPROM (30 ms); the ones this driver made in RAM only
        are written again."""
        was = self._pause()
        self._dev.send(_CMD_REINIT, _T_REINIT)
        self._apply_settings()
        self._resume(was)

    def serial_number(self):
        """The 48-bit serial number read from the chip now (needs idle: paused for it)."""
        was = self._pause()
        serial = self._read_serial()
        self._resume(was)
        return serial
