# Sensirion SPS30 particulate matter sensor on I2C (SEL pin to GND; 5 V supply, 3.3 V
# or 5 V bus levels; Sensirion recommends 100 kHz). Datasheet: "SPS30" version 1.0
# (March 2020), section 6 for the I2C commands.
#
#     sensor = SPS30(i2c)          # 0x69; checks the product type, reads serial and
#                                  # firmware, starts measuring (fan on, float output)
#     sensor.read()                # {"pm1_0": 4.98, "pm2_5": 8.02, "pm10": 12.1}
#     sensor.concentrations()      # all ten values: + pm4_0, nc0_5 .. nc10 (#/cm³),
#                                  # typical_particle_size (µm)
#
# Warm-up. The chip makes a new set of values every second, the first one second after
# the start, but the datasheet's start-up time (table 1) before the concentrations
# are within specification grows as the air gets cleaner: 8 s at 200..3000 #/cm³,
# up to 30 s at 50..100 #/cm³. Street air at 5..15 µg/m³ PM2.5 is around 30..100 #/cm³,
# so warm_up_ms defaults to 30000: until then read() returns None for every channel
# (no number rather than a wrong one) without touching the bus. A node that switches the
# fan off between readings (stop() or sleep()) calls start() at least warm_up_ms before
# it reads; warming_up_ms() says how long is left.
#
# read() costs 4 bus transactions: the data-ready flag (command, 3-byte read) and, when
# it is set, the measured values (command, 60-byte read). The flag is what detects a
# sensor that stopped producing values (fan blocked: ETIMEDOUT after 3 s without a new
# set, the status register's reason in the message), and a sensor that was reset or
# re-powered behind the driver's back (idle mode refuses the flag command): it is
# started again and warms up again (counted in `recoveries`). measure() allocates nothing.

from errno import EIO, ENODEV, ETIMEDOUT

from drivers.sensirion import SensirionI2C, unpack_words, word
from hal import clock

from . import conversion as conv

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_CMD_START = const(0x0010)
_CMD_STOP = const(0x0104)
_CMD_DATA_READY = const(0x0202)
_CMD_READ_VALUES = const(0x0300)
_CMD_SLEEP = const(0x1001)
_CMD_WAKE_UP = const(0x1103)
_CMD_FAN_CLEANING = const(0x5607)
_CMD_AUTO_CLEANING = const(0x8004)
_CMD_PRODUCT_TYPE = const(0xD002)
_CMD_SERIAL = const(0xD033)
_CMD_VERSION = const(0xD100)
_CMD_STATUS = const(0xD206)
_CMD_CLEAR_STATUS = const(0xD210)
_CMD_RESET = const(0xD304)
_FORMAT_FLOAT = const(0x0300)  # big-endian IEEE754 floats ("Start Measurement")

# Execution times, ms (section 6, per command).
_T_START_STOP = const(20)
_T_SHORT = const(5)  # sleep, wake-up, fan cleaning, read auto-cleaning interval, clear status
_T_WRITE_INTERVAL = const(20)
_T_RESET = const(100)
_STALL_MS = const(3000)  # three missed 1-s updates: the sensor has stopped measuring

_NONE = {"pm1_0": None, "pm2_5": None, "pm10": None}


class SPS30:
    def __init__(self, i2c, address=0x69, warm_up_ms=30000, start=True):
        if not 0 <= warm_up_ms <= 600000:
            raise ValueError("SPS30: warm_up_ms must be 0..600000, not %r" % (warm_up_ms,))
        self.warm_up_ms = warm_up_ms
        self._dev = SensirionI2C(i2c, address, "SPS30")
        self._raw = bytearray(60)  # 20 (word, crc) triples as read
        self._data = bytearray(40)  # the ten floats of the last good read, CRCs stripped
        self._flag = bytearray(3)
        self._words2 = memoryview(self._raw)[:6]
        self.recoveries = 0  # times the sensor was found reset and started again
        self._measuring = False
        self._asleep = False
        self._valid = False  # _data holds values read since the last start
        self._started = 0
        self._last_new = 0  # ticks of the last new set of values (or the start)
        self.product_type = self._identify()
        self.serial = self._read_string(_CMD_SERIAL, 48)
        self._dev.read_into(_CMD_VERSION, self._flag)
        self.firmware = conv.firmware_version(word(self._flag, 0))
        if start:
            self.start()

    # -- set-up -------------------------------------------------------------------------

    def _fail(self, errno, what):
        self._dev.fail(errno, what)

    def _read_string(self, cmd, n):
        buf = memoryview(self._raw)[:n]
        self._dev.read_into(cmd, buf)
        data = bytearray(2 * (n // 3))
        unpack_words(buf, n // 3, data)
        return conv.ascii_string(data)

    def _identify(self):
        """Read the product type; a sensor left in sleep mode by an earlier boot has its
        interface off: wake it ("Wake-up") and ask again."""
        try:
            product = self._read_string(_CMD_PRODUCT_TYPE, 12)
        except OSError as e:
            try:
                self._wake()
                product = self._read_string(_CMD_PRODUCT_TYPE, 12)
            except OSError:
                raise e  # the first failure says most (an absent chip: no ACK)
        if product != conv.PRODUCT_TYPE:
            self._fail(ENODEV, "product type %r is not an SPS30's (%r)" % (product, conv.PRODUCT_TYPE))
        return product

    def _wake(self):
        # The wake-up command twice ("Wake-up"): the first only switches the interface on and
        # is not acknowledged (unless an earlier transaction did that already: then it
        # wakes the sensor, and the second finds it idle, where wake-up is harmless); the
        # second follows 5 ms later, well within the 100 ms the interface stays on.
        try:
            self._dev.send(_CMD_WAKE_UP, _T_SHORT)
        except OSError:
            clock.sleep_ms(_T_SHORT)  # not acknowledged by design; the second is checked
        self._dev.send(_CMD_WAKE_UP, _T_SHORT)
        self._asleep = False

    # -- modes ----------------------------------------------------------------------------

    def start(self):
        """Start measuring (fan and laser on, float output); the warm-up starts now. Wakes a
        sleeping sensor; a measurement already running (left by an earlier boot) is
        stopped and started again, so that the warm-up is known."""
        if self._asleep:
            self._wake()
        dev = self._dev
        try:
            dev.write(_CMD_START, _FORMAT_FLOAT, _T_START_STOP)
        except OSError as e:
            # Refused: measurement mode already (start is only allowed in idle mode).
            try:
                dev.send(_CMD_STOP, _T_START_STOP)
            except OSError:
                raise e
            dev.write(_CMD_START, _FORMAT_FLOAT, _T_START_STOP)
        self._started_now()

    def _started_now(self):
        self._measuring = True
        self._valid = False
        self._started = self._last_new = clock.ticks_ms()

    def stop(self):
        """Stop measuring (fan off, idle mode)."""
        if self._measuring:
            self._dev.send(_CMD_STOP, _T_START_STOP)
            self._measuring = False
            self._valid = False

    def sleep(self):
        """Sleep mode (firmware >= 2.0): minimal current, I2C interface off. start() wakes it."""
        self._need_firmware(2, 0, "sleep")
        self.stop()
        self._dev.send(_CMD_SLEEP, _T_SHORT)
        self._asleep = True

    def wake_up(self):
        """Back from sleep mode to idle mode (firmware >= 2.0)."""
        self._need_firmware(2, 0, "wake-up")
        self._wake()

    def _need_firmware(self, major, minor, what):
        if self.firmware < (major, minor):
            raise ValueError(
                "SPS30: %s needs firmware %d.%d, this sensor has %d.%d" % ((what, major, minor) + self.firmware)
            )

    def reset(self):
        """Device reset (100 ms): the sensor is back in idle mode as after power-up; a running
        measurement is started again (and warms up again)."""
        was = self._measuring
        self._dev.send(_CMD_RESET, _T_RESET)
        self._measuring = self._valid = self._asleep = False
        if was:
            self.start()

    def warming_up_ms(self):
        """Milliseconds of warm-up left (0: values are valid). No bus traffic."""
        if not self._measuring:
            return self.warm_up_ms
        return max(0, self.warm_up_ms - clock.ticks_diff(clock.ticks_ms(), self._started))

    # -- measurement ------------------------------------------------------------------------

    def measure(self):
        """Fetch the newest values (see the module comment). Returns True when the driver
        holds valid values, False while warming up. Allocates nothing on success; OSError
        with the address on a fault. A stopped or sleeping sensor is started."""
        if not self._measuring:
            self.start()
        now = clock.ticks_ms()
        if clock.ticks_diff(now, self._started) < self.warm_up_ms:
            return False
        dev = self._dev
        try:
            dev.read_into(_CMD_DATA_READY, self._flag)
        except OSError as e:
            return self._resync(e)
        if word(self._flag, 0):
            dev.read_into(_CMD_READ_VALUES, self._raw)
            unpack_words(self._raw, 20, self._data, dev.where)
            self._valid = True
            self._last_new = now
        elif clock.ticks_diff(now, self._last_new) > _STALL_MS:
            self._stalled(clock.ticks_diff(now, self._last_new))
        return self._valid

    def _resync(self, err):
        """The data-ready flag could not be read. Only idle mode refuses that command: if the
        sensor now accepts a start, it had been reset or re-powered; it warms up again.
        Otherwise the first error stands."""
        try:
            self._dev.write(_CMD_START, _FORMAT_FLOAT, _T_START_STOP)
        except OSError:
            raise err
        self.recoveries += 1
        self._started_now()
        return self.warm_up_ms == 0 and self.measure()

    def _stalled(self, ms):
        why = ""
        try:
            problems = conv.status_problems(self.status())
            if problems:
                why = " (status: %s)" % ", ".join(problems)
        except OSError:
            pass  # the missing values are the error reported
        self._fail(ETIMEDOUT, "no new values for %d ms%s" % (ms, why))

    def values(self):
        """The contract's dict from the last fetch: pm1_0, pm2_5, pm10 in µg/m³ (None
        while warming up)."""
        if not self._valid:
            return dict(_NONE)
        data = self._data
        return {
            "pm1_0": round(conv.float_at(data, 0), 2),
            "pm2_5": round(conv.float_at(data, 1), 2),
            "pm10": round(conv.float_at(data, 3), 2),
        }

    def concentrations(self):
        """All ten values of the last fetch by name (conversion.FIELDS): masses µg/m³,
        number concentrations #/cm³, typical particle size µm; None while warming up."""
        result = {}
        for i in range(10):
            result[conv.FIELDS[i]] = round(conv.float_at(self._data, i), 3) if self._valid else None
        return result

    def read(self):
        self.measure()
        return self.values()

    def data_ready(self):
        """The data-ready flag (2 transactions): a new set of values since the last read."""
        self._dev.read_into(_CMD_DATA_READY, self._flag)
        return word(self._flag, 0) == 1

    # -- maintenance --------------------------------------------------------------------------

    def start_fan_cleaning(self):
        """Run the fan at full speed for 10 s to blow out dust (measurement mode only; the
        chip also does it every auto-cleaning interval)."""
        if not self._measuring:
            self._fail(EIO, "fan cleaning needs measurement mode: start() first")
        self._dev.send(_CMD_FAN_CLEANING, _T_SHORT)

    def auto_cleaning_interval(self):
        """Seconds between automatic fan cleanings (default 604800, one week; 0: off)."""
        buf = self._words2
        self._dev.read_into(_CMD_AUTO_CLEANING, buf, _T_SHORT)
        return (word(buf, 0) << 16) | word(buf, 1)

    def set_auto_cleaning_interval(self, seconds):
        """Set the automatic fan cleaning interval in s (0 switches it off). Before firmware
        2.2 the chip reads back the old value until its next reset or start."""
        if not 0 <= seconds <= 0xFFFFFFFF:
            raise ValueError("SPS30: auto-cleaning interval must be 0..4294967295 s, not %r" % (seconds,))
        seconds = int(seconds)
        self._dev.write(_CMD_AUTO_CLEANING, seconds >> 16, _T_WRITE_INTERVAL, seconds & 0xFFFF)

    def status(self):
        """The device status register (32 bits, conversion.STATUS_*): fan speed warning,
        fan cleaning, laser error, fan error."""
        buf = self._words2
        self._dev.read_into(_CMD_STATUS, buf)
        return (word(buf, 0) << 16) | word(buf, 1)

    def clear_status(self):
        self._dev.send(_CMD_CLEAR_STATUS, _T_SHORT)
