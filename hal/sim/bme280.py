# A BME280 / BMP280 at register level (BST-BME280-DS002):
# chip id, soft reset (0xB6 to 0xE0) and the NVM copy flag, calibration NVM,
# ctrl_hum latched by the next ctrl_meas write, forced mode that converts for the
# typical measurement time with status.measuring set and returns to sleep, normal
# mode with standby, the IIR filter, oversampling resolution, burst auto-increment,
# and 0x80000/0x8000 in skipped channels. Raw values come from the environment,
# through the datasheet's floating-point formulas (section 8.1) run backwards:
# independent of the driver's integer code.

import struct

from hal.sim.bus import RegisterDevice
from hal.sim.environment import Environment

# Calibration of a real part: T/P are the BMP280 datasheet's worked example (3.12),
# H a typical BME280's.
DEFAULT_CALIBRATION = (27504, 26435, -1000, 36477, -10685, 3024, 2855, 140, -7, 15500, -14600, 6000,
                       75, 362, 0, 313, 50, 30)

_OSRS_FACTOR = (0, 1, 2, 4, 8, 16, 16, 16)
_FILTER_COEF = (1, 2, 4, 8, 16, 16, 16, 16)
_STANDBY_US_BME = (500, 62500, 125000, 250000, 500000, 1000000, 10000, 20000)
_STANDBY_US_BMP = (500, 62500, 125000, 250000, 500000, 1000000, 2000000, 4000000)
_RESET_STARTUP_US = 2000


def encode_calibration(cal):
    """(26 bytes for 0x88..0xA1, 7 bytes for 0xE1..0xE7) holding `cal`."""
    tp = struct.pack("<HhhHhhhhhhhh", *cal[:12]) + bytes((0, cal[12] & 0xFF))
    h4, h5 = cal[15] & 0xFFF, cal[16] & 0xFFF
    h = struct.pack("<hB", cal[13], cal[14]) + bytes(
        ((h4 >> 4) & 0xFF, (h4 & 0x0F) | ((h5 & 0x0F) << 4), (h5 >> 4) & 0xFF, cal[17] & 0xFF)
    )
    return tp, h


# -- the datasheet's double-precision formulas (8.1), and their inverses -------------


def float_t_fine(cal, adc_t):
    var1 = (adc_t / 16384.0 - cal[0] / 1024.0) * cal[1]
    d = adc_t / 131072.0 - cal[0] / 8192.0
    return var1 + d * d * cal[2]


def float_pressure_pa(cal, t_fine, adc_p):
    var1 = t_fine / 2.0 - 64000.0
    var2 = var1 * var1 * cal[8] / 32768.0
    var2 = var2 + var1 * cal[7] * 2.0
    var2 = var2 / 4.0 + cal[6] * 65536.0
    var1 = (cal[5] * var1 * var1 / 524288.0 + cal[4] * var1) / 524288.0
    var1 = (1.0 + var1 / 32768.0) * cal[3]
    if var1 == 0:
        return 0.0
    p = 1048576.0 - adc_p
    p = (p - var2 / 4096.0) * 6250.0 / var1
    return p + (cal[11] * p * p / 2147483648.0 + p * cal[10] / 32768.0 + cal[9]) / 16.0


def float_humidity(cal, t_fine, adc_h):
    v = t_fine - 76800.0
    v = (adc_h - (cal[15] * 64.0 + cal[16] / 16384.0 * v)) * (
        cal[13] / 65536.0 * (1.0 + cal[17] / 67108864.0 * v * (1.0 + cal[14] / 67108864.0 * v))
    )
    v = v * (1.0 - cal[12] * v / 524288.0)
    return min(100.0, max(0.0, v))


def _secant(f, target, x0, lo, hi):
    """Where f meets target near x0, by two secant steps: the compensation formulas are
    nearly straight over a few hundred counts, so this lands within a count or two."""
    x1 = x0 + 64 if x0 + 64 <= hi else x0 - 64
    f0, f1 = f(x0), f(x1)
    for _ in range(2):
        if f1 == f0:
            break
        x2 = int(x1 + (target - f1) * (x1 - x0) / (f1 - f0) + 0.5)
        x2 = min(hi - 1, max(lo + 1, x2))
        if x2 == x1:
            break
        x0, f0, x1, f1 = x1, f1, x2, f(x2)
    return x1


def _solve(f, target, lo, hi, rising, guess=None):
    """The integer x in [lo, hi] where the monotonic f(x) comes closest to target.

    With a guess (the last answer: the air changes little between conversions) secant
    steps from it and a bracket galloped out from there cost a handful of evaluations
    instead of a bisection of the whole 20-bit range (each evaluation allocates floats)."""
    if guess is not None and lo < guess < hi:
        guess = _secant(f, target, guess, lo, hi)
        step = 1
        if (f(guess) < target) == rising:  # the answer is above the guess
            lo = guess
            while lo + step < hi and (f(lo + step) < target) == rising:
                lo += step
                step *= 2
            hi = min(hi, lo + step)
        else:
            hi = guess
            while hi - step > lo and (f(hi - step) < target) != rising:
                hi -= step
                step *= 2
            lo = max(lo, hi - step)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if (f(mid) < target) == rising:
            lo = mid
        else:
            hi = mid
    return lo if abs(f(lo) - target) <= abs(f(hi) - target) else hi


def raw_for(cal, temperature_c, pressure_hpa, humidity_rh, guess=None):
    """(adc_t, adc_p, adc_h) that the chip with calibration `cal` reports for these
    conditions; `guess` is an earlier answer to search from."""
    g = guess or (None, None, None)
    adc_t = _solve(lambda a: float_t_fine(cal, a) / 5120.0, temperature_c, 0, 0xFFFFF, True, g[0])
    tf = int(float_t_fine(cal, adc_t))
    adc_p = _solve(lambda a: float_pressure_pa(cal, tf, a), pressure_hpa * 100.0, 0, 0xFFFFF, False, g[1])
    adc_h = _solve(lambda a: float_humidity(cal, tf, a), humidity_rh, 0, 0xFFFF, True, g[2])
    return adc_t, adc_p, adc_h


class SimBME280(RegisterDevice):
    """Attach to a SimI2C (address 0x76 or 0x77) or a SimSPI (with its CS pin)."""

    name = "bme280"

    def __init__(self, env=None, calibration=DEFAULT_CALIBRATION, variant="bme280", clock=None):
        super().__init__(256, clock)
        if variant not in ("bme280", "bmp280"):
            raise ValueError("variant must be 'bme280' or 'bmp280', not %r" % (variant,))
        self.variant = variant
        self.humidity = variant == "bme280"
        self.env = env if env is not None else Environment()
        self.calibration = tuple(calibration)
        self.conversions = 0
        self.power_cycle()

    # -- power and reset ----------------------------------------------------------------

    def power_cycle(self):
        """Power-on reset: registers to their reset values, NVM copied (2 ms), filter cleared."""
        regs = self.regs
        for i in range(len(regs)):
            regs[i] = 0
        regs[0xD0] = 0x60 if self.humidity else 0x58
        tp, h = encode_calibration(self.calibration)
        regs[0x88 : 0x88 + 26] = tp
        if self.humidity:
            regs[0xE1 : 0xE1 + 7] = h
        regs[0xF7:0xFF] = b"\x80\x00\x00\x80\x00\x00\x80\x00" if self.humidity else b"\x80\x00\x00\x80\x00\x00\x00\x00"
        self._osrs_h = 0  # the latched ctrl_hum
        self._filter = None  # IIR state (adc_t, adc_p)
        self._conv_end_us = None  # forced conversion in progress until then
        self._normal_start_us = None
        self._normal_done = 0
        self._pending = bytearray(8)
        self._last_env = (None, None, None)
        self._last_raw = None  # the data registers when the forced conversion ends
        self._nvm_until_us = self._us() + _RESET_STARTUP_US

    def _us(self):
        return self.elapsed_ms() * 1000

    # -- registers ------------------------------------------------------------------------

    def after_write(self, reg, value):
        if reg == 0xE0:
            if value == 0xB6:
                self.power_cycle()
            return
        if reg == 0xF2 and self.humidity:
            self.regs[0xF2] = value & 0x07
        elif reg == 0xF5:
            if self.regs[0xF4] & 0x03 != 0x03:  # ignored in normal mode (5.4.6)
                self.regs[0xF5] = value & 0xFD
        elif reg == 0xF4:
            self._write_ctrl_meas(value)
        # every other register is read-only

    def _write_ctrl_meas(self, value):
        self._update()
        if self.humidity:
            self._osrs_h = self.regs[0xF2] & 0x07  # ctrl_hum takes effect now (5.4.3)
        self.regs[0xF4] = value
        mode = value & 0x03
        now = self._us()
        if mode in (1, 2):
            if self._conv_end_us is None:
                self._conv_end_us = now + self.measurement_time_us()
                # Sampled now rather than when the data are read, so that reading the
                # result allocates nothing in the model either.
                self._convert(self._pending)
        elif mode == 3:
            self._normal_start_us = now
            self._normal_done = 0
        else:
            self._normal_start_us = None

    def measurement_time_us(self):
        """Typical conversion time (datasheet 9.1) for the current settings."""
        ctrl = self.regs[0xF4]
        t, p, h = _OSRS_FACTOR[ctrl >> 5], _OSRS_FACTOR[(ctrl >> 2) & 7], _OSRS_FACTOR[self._osrs_h]
        us = 1000 + 2000 * t
        if p:
            us += 2000 * p + 500
        if h:
            us += 2000 * h + 500
        return us

    def before_read(self, reg, n):
        self._update()

    def _update(self):
        now = self._us()
        busy = False
        if self._conv_end_us is not None:
            if self.faults.stuck_busy:
                busy = True
            elif now >= self._conv_end_us:
                self._conv_end_us = None
                regs, pending = self.regs, self._pending
                for i in range(8 if self.humidity else 6):
                    regs[0xF7 + i] = pending[i]
                regs[0xF4] &= 0xFC  # back to sleep mode
            else:
                busy = True
        if self._normal_start_us is not None and not self.faults.stuck_busy:
            t_meas = self.measurement_time_us()
            t_sb = (_STANDBY_US_BME if self.humidity else _STANDBY_US_BMP)[self.regs[0xF5] >> 5]
            cycle = t_meas + t_sb
            elapsed = now - self._normal_start_us
            done = (elapsed - t_meas) // cycle + 1 if elapsed >= t_meas else 0
            for _ in range(min(done - self._normal_done, 64)):
                self._convert(memoryview(self.regs)[0xF7:0xFF])
            self._normal_done = done
            busy = elapsed % cycle < t_meas
        elif self._normal_start_us is not None:
            busy = True
        status = 0x08 if busy else 0
        if now < self._nvm_until_us:
            status |= 0x01
        self.regs[0xF3] = status

    def _convert(self, out):
        """One conversion of the current environment into `out`, the 8 data registers."""
        self.conversions += 1
        regs = self.regs
        ctrl = regs[0xF4]
        osrs_t, osrs_p = ctrl >> 5, (ctrl >> 2) & 7
        t_ms = self.elapsed_ms()
        env = self.env
        t = env.sample("temperature", t_ms)
        p = env.sample("pressure", t_ms)
        h = env.sample("humidity", t_ms) if self.humidity else 50.0
        if t != self._last_env[0] or p != self._last_env[1] or h != self._last_env[2]:
            # Solving is costly; steady air (a constant Environment) reuses the last answer,
            # which also keeps the model from allocating in heap measurements of a driver.
            self._last_env = (t, p, h)
            self._last_raw = raw_for(self.calibration, t, p, h, self._last_raw)
        adc_t, adc_p, adc_h = self._last_raw
        coef = _FILTER_COEF[(regs[0xF5] >> 2) & 7]
        if coef > 1:
            # IIR filter on temperature and pressure (3.4.4): full 20-bit resolution.
            # The state keeps 8 fraction bits, so the output settles on the input
            # instead of stopping short by the rounding.
            if self._filter is None:
                self._filter = (adc_t << 8, adc_p << 8)
            ft, fp = self._filter
            ft = (ft * (coef - 1) + (adc_t << 8)) // coef
            fp = (fp * (coef - 1) + (adc_p << 8)) // coef
            self._filter = (ft, fp)
            adc_t, adc_p = (ft + 128) >> 8, (fp + 128) >> 8
        else:
            # Without the filter the resolution is 16 bits plus one per oversampling step (3.4.2).
            adc_t &= ~((1 << (5 - min(osrs_t, 5))) - 1) if osrs_t else 0
            adc_p &= ~((1 << (5 - min(osrs_p, 5))) - 1) if osrs_p else 0
        if not osrs_t:
            adc_t = 0x80000
        if not osrs_p:
            adc_p = 0x80000
        out[0] = adc_p >> 12
        out[1] = (adc_p >> 4) & 0xFF
        out[2] = (adc_p & 0x0F) << 4
        out[3] = adc_t >> 12
        out[4] = (adc_t >> 4) & 0xFF
        out[5] = (adc_t & 0x0F) << 4
        if self.humidity:
            if not self._osrs_h:
                adc_h = 0x8000
            out[6] = adc_h >> 8
            out[7] = adc_h & 0xFF

    # -- SPI (6.3): bit 7 of the control byte set for a read, clear for a write -----------

    def spi_read(self, mosi, start, rbuf):
        # rbuf answers the bytes mosi[start:]; the first byte of a frame is the control byte.
        if start == 0:
            rbuf[0] = 0xFF
            if len(rbuf) > 1:
                self.spi_read(mosi, 1, memoryview(rbuf)[1:])
            return
        reg = mosi[0] | 0x80
        if not mosi[0] & 0x80:
            for i in range(len(rbuf)):
                rbuf[i] = 0xFF
            return
        self.read_mem_into((reg + start - 1) & 0xFF, rbuf)

    def spi_end(self, mosi):
        if len(mosi) >= 2 and not mosi[0] & 0x80:
            for i in range(0, len(mosi) - 1, 2):  # write: (address & 0x7F, data) pairs
                self.after_write(mosi[i] | 0x80, mosi[i + 1])
