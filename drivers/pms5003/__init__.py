# Plantower PMS5003 (also PMSA003, PMS7003: same frames) particulate-matter sensor on a
# UART at 9600 baud. Data manual V2.3 (2016): appendix I and II for the frames.
#
#     sensor = PMS5003(uart)                  # passive mode; PMS5003(uart, power_pin=pin)
#     sensor.read()   # {"pm1_0": 5, "pm2_5": 8, "pm10": 12}  µg/m³, atmospheric environment
#
# read() gives the "atmospheric environment" mass concentrations (data words 4-6),
# the values meant for ambient air; the "CF=1 standard particle" ones (words 1-3, for
# factory calibration, and the input of the US EPA correction in drivers.pm_correction)
# come from values_cf1(), and the particle counts from counts().
#
# Passive mode (the default): read() writes the 7-byte read command and reads the
# 32-byte answer: two UART transactions, no allocation in measure(). Active mode: the
# sensor sends a frame every 2.3 s by the data manual (about 1 s is reported from the
# field; 200-800 ms while the air changes fast); read() throws away what piled up in
# the UART buffer (a full buffer keeps the oldest bytes, so they can be minutes old)
# and waits up to 5 s for the next frame. In passive mode, frames nobody asked for
# mean the sensor restarted (a power glitch: active mode is its power-on default), so
# it is set up again and warms up again, rather than trusted.
#
# Warm-up: "stable data should be got at least 30 seconds after the sensor wakeup"
# (Circuit Attentions 4). During warm-up, after wake() and after power-on, read()
# raises OSError(EAGAIN) instead of returning numbers: a reading that does not count
# is not a None channel (the contract's None means "this chip has no such channel").
#
# Field lesson: a PMS5003 can stop sending or freeze on one frame. A read with no valid
# frame (or the same frame for stale_s) triggers sleep/wake commands, then, if the
# board can switch the sensor's 5 V (`power_pin`), a power cycle; `recoveries` and
# `last_fault` tell the health report.

from errno import ENODEV, ETIMEDOUT

from drivers.pm_uart import UARTSensor

from . import frames as fr

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_PASSIVE_WAIT_MS = const(1000)  # answer to the read command: ~35 ms on the wire
_ACTIVE_WAIT_MS = const(5000)  # two stable-mode intervals (2.3 s) and a margin
_READ_TRIES = const(2)  # passive mode: ask once more when the answer was damaged

MODES = ("passive", "active")

_CMD_READ = fr.command(fr.CMD_READ, 0)
_CMD_PASSIVE = fr.command(fr.CMD_MODE, 0)
_CMD_ACTIVE = fr.command(fr.CMD_MODE, 1)
_CMD_SLEEP = fr.command(fr.CMD_SLEEP, 0)
_CMD_WAKE = fr.command(fr.CMD_SLEEP, 1)


class PMS5003(UARTSensor):
    name = "PMS5003"
    _READ_SIZES = (32, 8, 4, 2, 1)

    def __init__(self, uart, mode="passive", power_pin=None, power_active=1, warmup_s=30, stale_s=600):
        """uart: a machine.UART at 9600 baud 8N1 (any timeout; the driver reads only what
        is there). mode: "passive" (the driver asks for each frame) or "active" (the
        sensor streams). power_pin: optional machine.Pin that switches the sensor's supply,
        on at power_active. warmup_s: seconds after wake-up whose readings do not count.
        stale_s: the same frame for this long means a frozen sensor (None: never)."""
        if mode not in MODES:
            raise ValueError("PMS5003: mode must be 'passive' or 'active', not %r" % (mode,))
        self.mode = mode
        super().__init__(uart, fr.Parser(), power_pin, power_active, warmup_s, stale_s)
        if not self._begin():
            self._fail(ENODEV, "no answer to the %s-mode command (wired TX to RX, 5 V supply?)" % mode)

    # -- commands ------------------------------------------------------------------------

    def _command(self, cmd, reply, want):
        """Write a command; wait for its reply if `reply` (the command byte echoed)."""
        p = self._parser
        p.reply_cmd = 0
        self.uart.write(cmd)
        if reply is None:
            return True
        return self._wait(reply, want, self._REPLY_MS)

    def _reply_ok(self, reply, want):
        p = self._parser
        return p.reply_cmd == reply and p.reply_val == want

    def _start(self, boot_ms):
        """Wake the sensor and set the mode; True when it confirmed the mode. After
        power-on (boot_ms) it keeps asking: the sensor ignores commands while booting."""
        passive = self.mode == "passive"
        start = self._now()
        while True:
            self._drain()
            self._command(_CMD_WAKE, None, 0)  # no reply; harmless when it is awake
            if self._command(_CMD_PASSIVE if passive else _CMD_ACTIVE, fr.CMD_MODE, 0 if passive else 1):
                self.asleep = False
                return True
            if self._elapsed(start) >= boot_ms:
                return False

    def _send_sleep(self):
        self._drain()
        return self._command(_CMD_SLEEP, fr.CMD_SLEEP, 0)

    def set_mode(self, mode):
        if mode not in MODES:
            raise ValueError("PMS5003: mode must be 'passive' or 'active', not %r" % (mode,))
        self.mode = mode
        if not self.asleep and not self._start(0):
            self._fail(ETIMEDOUT, "no answer to the %s-mode command" % mode)

    # -- fetch ---------------------------------------------------------------------------

    def _fetch(self):
        if self.mode == "passive":
            before = self._parser.frames
            self._drain()
            if self._parser.frames - before >= 2:
                # Frames nobody asked for: the sensor restarted (a power glitch) and is
                # back in its power-on default, active mode, and warming up.
                self._errno = ETIMEDOUT
                return "frames nobody asked for in passive mode (the sensor restarted)"
            for _ in range(_READ_TRIES):
                self._drain()
                self.uart.write(_CMD_READ)
                if self._wait_data(_PASSIVE_WAIT_MS):
                    return None
            self._errno = ETIMEDOUT
            return "no valid frame in %d ms after the read command (%d bad frames, %d noise bytes so far)" % (
                _PASSIVE_WAIT_MS,
                self._parser.bad,
                self._parser.skipped,
            )
        self._drain()  # what piled up may be old: a full UART buffer keeps the oldest bytes
        if self._wait_data(_ACTIVE_WAIT_MS):
            return None
        self._errno = ETIMEDOUT
        return "no valid frame for %d ms in active mode (%d bad frames, %d noise bytes so far)" % (
            _ACTIVE_WAIT_MS,
            self._parser.bad,
            self._parser.skipped,
        )

    # -- get: conversions of the last frame -------------------------------------------

    def word(self, i):
        """Data word i (frames.PM1_0_CF1 ... frames.RESERVED) of the last valid frame."""
        return fr.word(self._parser.data, i)

    def values(self):
        """Atmospheric-environment PM1.0, PM2.5, PM10 in µg/m³ of the last frame."""
        d = self._parser.data
        return {
            "pm1_0": fr.word(d, fr.PM1_0_ATM),
            "pm2_5": fr.word(d, fr.PM2_5_ATM),
            "pm10": fr.word(d, fr.PM10_ATM),
        }

    def values_cf1(self):
        """CF=1 ("standard particle") PM1.0, PM2.5, PM10 in µg/m³ of the last frame."""
        d = self._parser.data
        return {
            "pm1_0": fr.word(d, fr.PM1_0_CF1),
            "pm2_5": fr.word(d, fr.PM2_5_CF1),
            "pm10": fr.word(d, fr.PM10_CF1),
        }

    def counts(self):
        """Particles beyond 0.3, 0.5, 1.0, 2.5, 5.0 and 10 µm in 0.1 L of air, last frame:
        {"n0_3": ..., "n0_5": ..., "n1_0": ..., "n2_5": ..., "n5_0": ..., "n10": ...}."""
        d = self._parser.data
        out = {}
        for i in range(6):
            out[fr.COUNT_NAMES[i]] = fr.word(d, fr.N0_3 + i)
        return out

    def version_and_error(self):
        """(version, error code) from the reserved word (PMSA003/PMS7003; 0s on a PMS5003)."""
        w = fr.word(self._parser.data, fr.RESERVED)
        return w >> 8, w & 0xFF
