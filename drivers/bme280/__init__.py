# Bosch BME280 (temperature, humidity, pressure) and BMP280 (no humidity) on I2C or SPI.
# Datasheet: BST-BME280-DS002 (section numbers below), BST-BMP280-DS001.
#
#     sensor = BME280(i2c, 0x76)          # or BME280(spi, cs_pin)
#     sensor.read()   # {"temperature": 21.53, "humidity": 45.21, "pressure": 1013.25}
#
# Forced mode (the default, section 3.3.3): read() costs two bus transactions, the
# ctrl_meas trigger and one burst from 0xF2 to 0xFE that carries ctrl_hum, status,
# ctrl_meas and config beside the eight data bytes, so a busy bit that never clears
# and a chip that lost its settings (brown-out, re-plugged) are both seen without an
# extra transaction. Normal mode: one burst. measure() allocates nothing.

from errno import EIO, ENODEV, ETIMEDOUT

from hal import clock

from . import compensation as comp
from .bus import registers_for

try:
    from micropython import const
except ImportError:  # CPython without Blinka

    def const(x):
        return x


_REG_CALIB_TP = const(0x88)  # 0x88..0xA1, 26 bytes (4.2.2, table 16)
_REG_CHIP_ID = const(0xD0)
_REG_RESET = const(0xE0)
_REG_CALIB_H = const(0xE1)  # 0xE1..0xE7
_REG_CTRL_HUM = const(0xF2)
_REG_STATUS = const(0xF3)
_REG_CTRL_MEAS = const(0xF4)
_REG_CONFIG = const(0xF5)
_RESET_WORD = const(0xB6)
_STATUS_MEASURING = const(0x08)
_STATUS_IM_UPDATE = const(0x01)
_MODE_SLEEP = const(0)
_MODE_FORCED = const(1)
_MODE_NORMAL = const(3)
_STARTUP_MS = const(2)  # t_startup (table 1)
_SETTINGS_LOST = const(-1)  # fetch() verdict: the chip was reset behind our back

CHIP_ID_BME280 = 0x60
CHIP_IDS_BMP280 = (0x56, 0x57, 0x58)  # 0x56/0x57 are BMP280 samples, 0x58 mass production

# Register codes of the options (5.4.3 to 5.4.6), keyed by the user's value.
OVERSAMPLING = {0: 0, 1: 1, 2: 2, 4: 3, 8: 4, 16: 5}
IIR_FILTER = {0: 0, 2: 1, 4: 2, 8: 3, 16: 4}
STANDBY_MS_BME280 = {0.5: 0, 62.5: 1, 125: 2, 250: 3, 500: 4, 1000: 5, 10: 6, 20: 7}
STANDBY_MS_BMP280 = {0.5: 0, 62.5: 1, 125: 2, 250: 3, 500: 4, 1000: 5, 2000: 6, 4000: 7}
MODES = ("forced", "normal")

# The operating range (table 1: -40..85 °C, 300..1100 hPa) with a margin, because a
# chip at the edge of the range quantises just past it: a compensated value further
# out than this is damaged data, not weather.
_T_MIN_CENTI = const(-4500)
_T_MAX_CENTI = const(9000)
_P_MIN_Q = const(250 * 100 * 256)
_P_MAX_Q = const(1150 * 100 * 256)


def _choose(name, value, table):
    if value not in table:
        raise ValueError(
            "BME280: %s must be one of %s, not %r" % (name, ", ".join(str(k) for k in sorted(table)), value)
        )
    return table[value]


class BME280:
    def __init__(
        self,
        bus,
        address=0x76,
        mode="forced",
        oversampling_temperature=1,
        oversampling_pressure=1,
        oversampling_humidity=1,
        iir_filter=0,
        standby_ms=1000,
    ):
        self._regs = registers_for(bus, address)
        # One buffer for every register read; measure() fills it, nothing else allocates.
        self._buf = bytearray(26)
        self._data = memoryview(self._buf)
        self.recoveries = 0  # settings restored after the chip lost them
        self.chip_id = self._identify()
        self.has_humidity = self.chip_id == CHIP_ID_BME280
        self.configure(
            mode,
            oversampling_temperature,
            oversampling_pressure,
            oversampling_humidity,
            iir_filter,
            standby_ms,
            apply=False,
        )
        self._reset()
        self.calibration = self._read_calibration()
        self._apply(asleep=True)

    # -- set-up -------------------------------------------------------------------------

    def _fail(self, errno, what):
        raise OSError(errno, "BME280 at %s: %s" % (self._regs.where(), what))

    def _identify(self):
        buf = self._data[:1]
        try:
            self._regs.read_into(_REG_CHIP_ID, buf)
        except OSError as e:
            self._fail(e.args[0] if e.args else EIO, "no answer (%s)" % (e,))
        chip_id = buf[0]
        if chip_id != CHIP_ID_BME280 and chip_id not in CHIP_IDS_BMP280:
            self._fail(ENODEV, "chip id 0x%02x is neither BME280 (0x60) nor BMP280 (0x58)" % chip_id)
        return chip_id

    def _reset(self):
        """Soft reset (5.4.2), then wait until the NVM has been copied (status.im_update)."""
        self._regs.write(_REG_RESET, _RESET_WORD)
        status = self._data[:1]
        for _ in range(10):
            clock.sleep_ms(_STARTUP_MS)
            self._regs.read_into(_REG_STATUS, status)
            if not status[0] & _STATUS_IM_UPDATE:
                return
        self._fail(ETIMEDOUT, "NVM copy did not finish after reset")

    def _read_calibration(self):
        tp = self._data[:26]
        self._regs.read_into(_REG_CALIB_TP, tp)
        tp = bytes(tp)
        h = None
        if self.has_humidity:
            h = self._data[:7]
            self._regs.read_into(_REG_CALIB_H, h)
            h = bytes(h)
        cal = comp.parse_calibration(tp, h)
        if cal[comp.T1] == 0 or cal[comp.P1] == 0:
            self._fail(EIO, "calibration NVM reads blank (dig_T1=%d, dig_P1=%d)" % (cal[0], cal[3]))
        return cal

    def configure(
        self,
        mode="forced",
        oversampling_temperature=1,
        oversampling_pressure=1,
        oversampling_humidity=1,
        iir_filter=0,
        standby_ms=1000,
        apply=True,
    ):
        """Validate the options (each error names the bad value) and write them to the chip."""
        if mode not in MODES:
            raise ValueError("BME280: mode must be 'forced' or 'normal', not %r" % (mode,))
        osrs_t = _choose("oversampling_temperature", oversampling_temperature, OVERSAMPLING)
        if osrs_t == 0:
            raise ValueError("BME280: oversampling_temperature 0 would leave no t_fine for the other channels")
        osrs_p = _choose("oversampling_pressure", oversampling_pressure, OVERSAMPLING)
        osrs_h = _choose("oversampling_humidity", oversampling_humidity, OVERSAMPLING)
        if not self.has_humidity:
            osrs_h = 0
        t_sb = _choose(
            "standby_ms", standby_ms, STANDBY_MS_BME280 if self.has_humidity else STANDBY_MS_BMP280
        )
        filt = _choose("iir_filter", iir_filter, IIR_FILTER)
        self.mode = mode
        self._ctrl_hum = osrs_h
        self._ctrl_meas = (osrs_t << 5) | (osrs_p << 2)
        self._config = (t_sb << 5) | (filt << 2)
        self.wait_ms = (
            comp.measurement_time_max_us(
                oversampling_temperature, oversampling_pressure, oversampling_humidity if osrs_h else 0
            )
            + 999
        ) // 1000
        self._skip_p = osrs_p == 0
        self._skip_h = osrs_h == 0
        # The burst starts at ctrl_hum (BME280) or status (BMP280: 0xF2 is reserved there).
        self._burst_reg = _REG_CTRL_HUM if self.has_humidity else _REG_STATUS
        self._burst = self._data[: 13 if self.has_humidity else 10]
        self._off = 5 if self.has_humidity else 4  # where press_msb (0xF7) sits in the burst
        if apply:
            self._apply()

    def _apply(self, asleep=False):
        """Write the settings in sleep mode: config writes are ignored in normal mode (5.4.6),
        and ctrl_hum only takes effect with the ctrl_meas write that follows it (5.4.3).
        After a reset the chip is asleep already (`asleep`), which saves a transaction."""
        if not asleep:
            self._regs.write(_REG_CTRL_MEAS, self._ctrl_meas | _MODE_SLEEP)
        self._regs.write(_REG_CONFIG, self._config)
        if self.has_humidity:
            self._regs.write(_REG_CTRL_HUM, self._ctrl_hum)
        mode = _MODE_NORMAL if self.mode == "normal" else _MODE_SLEEP
        self._regs.write(_REG_CTRL_MEAS, self._ctrl_meas | mode)

    # -- fetch: one trigger, one burst --------------------------------------------------

    def start(self):
        """Trigger a forced conversion; returns the milliseconds to wait before fetch()
        (the datasheet's maximum for these oversampling settings, appendix B). In normal
        mode there is nothing to trigger and no wait."""
        if self.mode == "normal":
            return 0
        self._regs.write(_REG_CTRL_MEAS, self._ctrl_meas | _MODE_FORCED)
        return self.wait_ms

    def fetch(self):
        """Read ctrl/status and all data registers in one burst and check them."""
        buf = self._burst
        self._regs.read_into(self._burst_reg, buf)
        return self._check(buf)

    def _check(self, buf):
        # 0 if the burst is good, else a verdict; the message is only made on failure.
        # Burst layout: [ctrl_hum,] status, ctrl_meas, config, (0xF6), press, temp[, hum].
        o = self._off
        if (buf[o + 2] | buf[o + 5]) & 0x0F:
            return EIO  # xlsb bits 3:0 always read 0 (5.4.8, 5.4.9): the bytes were damaged
        if self.has_humidity and (buf[0] & 0x07) != self._ctrl_hum:
            return _SETTINGS_LOST
        if (buf[o - 3] & 0xFC) != self._ctrl_meas or (buf[o - 2] & 0xFC) != self._config:
            return _SETTINGS_LOST  # reset, brown-out or re-plugged: registers are back at 0
        if self.mode == "forced" and buf[o - 4] & _STATUS_MEASURING:
            return ETIMEDOUT
        if ((buf[o + 3] << 12) | (buf[o + 4] << 4)) == comp.ADC_SKIPPED_20:
            return EIO
        return 0

    def measure(self):
        """Fetch one complete set of raw values into the driver's buffer. Allocates no heap
        memory on success. Raises OSError with the chip's address on a fault; a chip that
        lost its settings is set up again and measured once more."""
        err = self._measure_once()
        if err == _SETTINGS_LOST:
            self._identify()
            self._apply(asleep=True)  # its registers are at their reset values
            self.recoveries += 1
            err = self._measure_once()
        if err:
            self._raise_for(err)

    def _measure_once(self):
        wait = self.start()
        if wait:
            clock.sleep_ms(wait)
        return self.fetch()

    def _raise_for(self, err):
        if err == ETIMEDOUT:
            self._fail(ETIMEDOUT, "still measuring %d ms after the trigger (busy bit stuck)" % self.wait_ms)
        if err == _SETTINGS_LOST:
            self._fail(EIO, "settings lost again right after restoring them")
        o = self._off
        if ((self._buf[o + 3] << 12) | (self._buf[o + 4] << 4)) == comp.ADC_SKIPPED_20:
            self._fail(EIO, "no conversion has completed yet (0x80000)")
        self._fail(EIO, "data bytes damaged on the bus: %s" % bytes(self._burst))

    # -- get: pure conversion of what was fetched -------------------------------------

    def raw(self):
        """(adc_t, adc_p, adc_h) of the last fetch; adc_h is None on a BMP280."""
        adc_p, adc_t, adc_h = comp.unpack_adc(self._buf, self._off)
        return adc_t, adc_p, (adc_h if self.has_humidity else None)

    def values(self):
        """The contract's dict from the last fetch: temperature °C, humidity %RH, pressure hPa.
        A channel the chip lacks (BMP280 humidity) or that is switched off is None."""
        cal = self.calibration
        buf, o = self._buf, self._off
        # comp.unpack_adc inline: its 3-tuple is 64 bytes of heap a reading on a 64-bit port
        adc_t = (buf[o + 3] << 12) | (buf[o + 4] << 4) | (buf[o + 5] >> 4)
        tfine = comp.t_fine(cal, adc_t)
        centi = comp.temperature_centi(tfine)
        if not _T_MIN_CENTI <= centi <= _T_MAX_CENTI:
            self._fail(EIO, "implausible temperature %.2f °C (raw 0x%05x)" % (centi / 100, adc_t))
        pressure = None
        if not self._skip_p:
            adc_p = (buf[o] << 12) | (buf[o + 1] << 4) | (buf[o + 2] >> 4)
            q = comp.pressure_q24_8(cal, tfine, adc_p)
            if not _P_MIN_Q <= q <= _P_MAX_Q:
                self._fail(EIO, "implausible pressure %.2f hPa (raw 0x%05x)" % (q / 25600, adc_p))
            pressure = ((q * 5 + 64) >> 7) / 1000  # hPa to 3 decimals: q / 25600, one float
        humidity = None
        if not self._skip_h:
            h = comp.humidity_q22_10(cal, tfine, (buf[o + 6] << 8) | buf[o + 7])
            humidity = ((h * 125 + 64) >> 7) / 1000  # %RH to 3 decimals: h / 1024, one float
        return {"temperature": centi / 100, "humidity": humidity, "pressure": pressure}

    def read(self):
        self.measure()
        return self.values()
