# Nova Fitness SDS011 particulate-matter sensor on a UART at 9600 baud.
# Control protocol V1.3 (2015): frames in drivers/sds011/frames.py.
#
#     sensor = SDS011(uart)                 # query mode; SDS011(uart, power_pin=pin)
#     sensor.read()   # {"pm1_0": None, "pm2_5": 8.3, "pm10": 12.1}  µg/m³
#
# The SDS011 measures PM2.5 and PM10 only: pm1_0 is None, as the contract wants for a
# channel the chip does not have.
#
# Query mode (the default): read() writes the 19-byte query command and reads the
# 10-byte answer: two UART transactions, no allocation in measure(). Active mode: the
# sensor reports every second; read() discards what piled up and waits for the next
# frame. With a working period of n minutes the sensor runs its fan 30 s, reports once
# and sleeps for the rest of the n minutes; read() then returns the newest report that
# came since the last read and raises OSError(EAGAIN) when none came yet.
#
# Set-up asks for the reporting mode and working period first and writes them only when
# they differ: both are kept in the sensor's flash ("still effective after power off").
# The sleep state is not: a sensor that lost power works again. A sleeping sensor
# ignores every command but "work" (found in the field), so set-up starts with it.
#
# Warm-up, errors and recovery are those of drivers/pm_uart.py: readings in the first
# 30 s after wake-up raise OSError(EAGAIN) ("The data is stable when the sensor works
# after 30 seconds", protocol V1.3, set sleep and work).

from errno import EAGAIN, ENODEV, ETIMEDOUT

from drivers.pm_uart import UARTSensor

from . import frames as fr

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_QUERY_WAIT_MS = const(1000)
_ACTIVE_WAIT_MS = const(2500)  # two report intervals (1 s) and a margin
_READ_TRIES = const(2)
_ANY = const(-1)

MODES = ("query", "active")

_CMD_QUERY = fr.command(fr.CMD_QUERY)
_CMD_WORK = fr.command(fr.CMD_SLEEP_WORK, fr.OP_SET, 1)
_CMD_SLEEP = fr.command(fr.CMD_SLEEP_WORK, fr.OP_SET, 0)
_CMD_FIRMWARE = fr.command(fr.CMD_FIRMWARE)


def _check_period(minutes):
    if not isinstance(minutes, int) or not 0 <= minutes <= 30:
        raise ValueError("SDS011: working_period must be 0 (continuous) to 30 minutes, not %r" % (minutes,))
    return minutes


class SDS011(UARTSensor):
    name = "SDS011"
    _READ_SIZES = (32, 10, 8, 4, 2, 1)

    def __init__(self, uart, mode="query", working_period=0, power_pin=None, power_active=1, warmup_s=30, stale_s=600):
        """uart: a machine.UART at 9600 baud 8N1. mode: "query" (the driver asks for each
        frame) or "active" (the sensor reports). working_period: 0 (continuous) or 1..30
        minutes. power_pin: optional machine.Pin switching the sensor's 5 V, on at
        power_active. warmup_s: seconds after wake-up whose readings do not count.
        stale_s: the same frame for this long means a frozen sensor (None: never)."""
        if mode not in MODES:
            raise ValueError("SDS011: mode must be 'query' or 'active', not %r" % (mode,))
        self.mode = mode
        self.working_period = _check_period(working_period)
        self.firmware = None  # (year, month, day) of the sensor's firmware
        super().__init__(uart, fr.Parser(), power_pin, power_active, warmup_s, stale_s)
        self._seen = 0  # working-period reports already returned
        self._last_report = self._now()
        if not self._begin():
            self._fail(ENODEV, "no answer to the work command (wired TX to RX, 5 V supply?)")
        if self._command(_CMD_FIRMWARE, fr.CMD_FIRMWARE, _ANY):
            r = self._parser.reply
            self.firmware = (2000 + r[3], r[4], r[5])

    @property
    def device_id(self):
        """The sensor's 16-bit ID, as its replies carry it."""
        return self._parser.device_id

    # -- commands ------------------------------------------------------------------------

    def _command(self, cmd, reply, want):
        p = self._parser
        p.reply_cmd = 0
        self.uart.write(cmd)
        return self._wait(reply, want, self._REPLY_MS)

    def _reply_ok(self, reply, want):
        p = self._parser
        return p.reply_cmd == reply and (want == _ANY or p.reply_val == want)

    def _ensure(self, cmd, value):
        """Set a setting kept in flash only when it differs (saves flash wear)."""
        if not self._command(fr.command(cmd, fr.OP_QUERY), cmd, _ANY):
            return False
        if self._parser.reply_val == value:
            return True
        return self._command(fr.command(cmd, fr.OP_SET, value), cmd, value)

    def _start(self, boot_ms):
        start = self._now()
        while True:
            self._drain()
            if self._command(_CMD_WORK, fr.CMD_SLEEP_WORK, 1):
                break
            if self._elapsed(start) >= boot_ms:
                return False
        self.asleep = False
        ok = self._ensure(fr.CMD_REPORT_MODE, 1 if self.mode == "query" else 0)
        return ok and self._ensure(fr.CMD_WORKING_PERIOD, self.working_period)

    def _start_warmup(self):
        super()._start_warmup()
        if self.working_period:
            self._warm_left = 0  # the sensor runs its fan 30 s before each report itself
        self._last_report = self._now()

    def _send_sleep(self):
        self._drain()
        return self._command(_CMD_SLEEP, fr.CMD_SLEEP_WORK, 0)

    def set_mode(self, mode):
        if mode not in MODES:
            raise ValueError("SDS011: mode must be 'query' or 'active', not %r" % (mode,))
        self.mode = mode
        if not self._ensure(fr.CMD_REPORT_MODE, 1 if mode == "query" else 0):
            self._fail(ETIMEDOUT, "no answer to the reporting-mode command")

    def set_working_period(self, minutes):
        """0: continuous; 1..30: fan on 30 s and one report every `minutes`."""
        self.working_period = _check_period(minutes)
        if not self._ensure(fr.CMD_WORKING_PERIOD, minutes):
            self._fail(ETIMEDOUT, "no answer to the working-period command")
        self._start_warmup()

    def firmware_version(self):
        if not self._command(_CMD_FIRMWARE, fr.CMD_FIRMWARE, _ANY):
            self._fail(ETIMEDOUT, "no answer to the firmware-version command")
        r = self._parser.reply
        self.firmware = (2000 + r[3], r[4], r[5])
        return self.firmware

    # -- fetch ---------------------------------------------------------------------------

    def _fetch(self):
        p = self._parser
        if self.mode == "query":
            for _ in range(_READ_TRIES):
                self._drain()
                self.uart.write(_CMD_QUERY)
                if self._wait_data(_QUERY_WAIT_MS):
                    return None
            self._errno = ETIMEDOUT
            return "no valid frame in %d ms after the query command (%d bad frames, %d noise bytes so far)" % (
                _QUERY_WAIT_MS,
                p.bad,
                p.skipped,
            )
        if self.working_period:
            self._drain()
            if p.frames != self._seen:
                self._seen = p.frames
                self._last_report = self._now()
                return None
            late = self._elapsed(self._last_report) - (self.working_period * 60000 + 60000)
            if late > 0:
                self._errno = ETIMEDOUT
                return "no report for %d s in a %d-minute working period" % (
                    self._elapsed(self._last_report) // 1000,
                    self.working_period,
                )
            self._fail(EAGAIN, "no new report yet in the %d-minute working period" % self.working_period)
        self._drain()
        if self._wait_data(_ACTIVE_WAIT_MS):
            return None
        self._errno = ETIMEDOUT
        return "no valid frame for %d ms in active mode (%d bad frames, %d noise bytes so far)" % (
            _ACTIVE_WAIT_MS,
            p.bad,
            p.skipped,
        )

    # -- get -------------------------------------------------------------------------------

    def raw(self):
        """(PM2.5, PM10) of the last frame in 0.1 µg/m³."""
        return fr.pm_tenths(self._parser.data)

    def values(self):
        d = self._parser.data
        return {
            "pm1_0": None,
            "pm2_5": (d[2] | (d[3] << 8)) / 10,
            "pm10": (d[4] | (d[5] << 8)) / 10,
        }
