# What the PMS5003 and SDS011 drivers share: particulate-matter sensors that talk in
# checksummed frames over a UART (they call only machine.UART's write, readinto, any).
#
# FrameParser finds frames in a byte stream that may start mid-frame and carry noise,
# dropped bytes and bad checksums, without allocating: every byte goes into a window
# as long as the window is a plausible start of a frame; when it is not, or a whole
# frame fails its checks, the window slides to the next start byte and tries again,
# so a real frame hidden behind noise or a broken frame is still found.
#
# UARTSensor holds the field lessons: warm-up after wake, a sensor that stops
# answering or repeats the same frame is detected, and recovered first with
# sleep/wake commands, then by power-cycling it through an optional switch pin
# (power_pin: a machine.Pin that switches the sensor's 5 V supply).
# `recoveries`, `recovery_attempts` and `last_fault` are for the health report.

from errno import EAGAIN, EINVAL, ETIMEDOUT

from hal import clock

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


SKIP = const(-1)  # check(): the window does not start a frame; slide to the next start byte
BAD = const(-2)  # check(): a complete frame failed its checksum or plausibility checks

_POLL_MS = const(10)  # ~10 bytes at 9600 baud between two looks at the UART
_SLEEP_WAKE_PAUSE_MS = const(500)  # fan stops before it is started again
_POWER_OFF_MS = const(1000)  # let the sensor's supply capacitors drain


class FrameParser:
    """Streaming frame finder. Subclasses set `size` (longest frame), `start` (first
    byte of every frame) and implement check(win, k) and accept(win, length).

    check(win, k) looks at the first k bytes of the window and returns 0 (a plausible
    start, need more bytes), SKIP (not a frame start), BAD (a complete frame that
    fails its checks) or the length of the valid frame at the window's start.
    accept(win, length) takes a valid frame (copy it: the window is reused).
    """

    size = 32
    start = 0x42

    def __init__(self):
        self.win = bytearray(self.size)
        self.n = 0
        self.data = bytearray(self.size)  # the newest valid data frame
        self.frames = 0  # valid data frames seen
        self.replies = 0  # valid command replies seen
        self.bad = 0  # complete frames that failed checksum or plausibility
        self.skipped = 0  # bytes that belonged to no valid frame

    def reset(self):
        """Forget a partial frame (after the sensor was restarted)."""
        self.skipped += self.n
        self.n = 0

    def feed(self, buf, count):
        win = self.win
        for i in range(count):
            k = self.n
            win[k] = buf[i]
            k += 1
            self.n = k
            while k:
                v = self.check(win, k)
                if v == 0:
                    break
                if v > 0:
                    self.accept(win, v)
                    self._shift(v)
                else:
                    if v == BAD:
                        self.bad += 1
                    self._resync()
                k = self.n

    def _shift(self, by):
        win = self.win
        k = self.n - by
        for j in range(k):
            win[j] = win[j + by]
        self.n = k

    def _resync(self):
        # The window's first byte starts no valid frame: slide to the next start byte.
        win, k, s = self.win, self.n, self.start
        i = 1
        while i < k and win[i] != s:
            i += 1
        self.skipped += i
        self._shift(i)


def _choose_power_level(power_active):
    if power_active not in (0, 1, True, False):
        raise ValueError("power_active must be 1 (switch on when the pin is high) or 0, not %r" % (power_active,))
    return 1 if power_active else 0


class UARTSensor:
    """Base of the UART particulate-matter drivers.

    A subclass sets `name`, `_parser`, and implements _start(boot_ms) (wake and
    configure the sensor; True if it answered), _send_sleep(), _fetch() (one fresh,
    valid data frame into the parser's `data`: returns None, or a message saying what
    failed, with the errno in self._errno) and values().
    """

    name = "PM sensor"
    _READ_SIZES = (32, 16, 8, 4, 2, 1)
    _REPLY_MS = 1000  # a command's reply arrives within this
    _BOOT_MS = 3000  # after power-on, keep asking this long for an answer

    def __init__(self, uart, parser, power_pin=None, power_active=1, warmup_s=30, stale_s=600):
        if not isinstance(warmup_s, (int, float)) or warmup_s < 0:
            raise ValueError("%s: warmup_s must be a number >= 0, not %r" % (self.name, warmup_s))
        if stale_s is not None and (not isinstance(stale_s, (int, float)) or stale_s <= 0):
            raise ValueError("%s: stale_s must be a number > 0 or None, not %r" % (self.name, stale_s))
        if power_pin is not None and not hasattr(power_pin, "value"):
            raise ValueError("%s: power_pin must be a machine.Pin-like switch (with value()), not %r" % (self.name, power_pin))
        self.uart = uart
        self._parser = parser
        self.power_pin = power_pin
        self._on = _choose_power_level(power_active)
        self.warmup_ms = int(warmup_s * 1000)
        self._stale_ms = int(stale_s * 1000) if stale_s is not None else 0
        # Scratch for reads: one buffer and views of it sized so that reading exactly
        # what the UART holds never blocks on a UART timeout and never allocates.
        self._buf = bytearray(self._READ_SIZES[0])
        mv = memoryview(self._buf)
        self._views = tuple(mv[:s] for s in self._READ_SIZES)
        self._prev = bytearray(parser.size)  # the frame before, to spot a frozen sensor
        self._first_seen = None  # ticks when the current frame content was first seen
        self._fresh = False
        self._warm_from = clock.ticks_ms()
        self._warm_left = self.warmup_ms
        self._escalation = 0  # recovery stages tried since the last good reading
        self._ready = True  # False after a failed recovery: set up again before reading
        self._errno = ETIMEDOUT
        self.asleep = False
        self.recoveries = 0  # faults that a recovery cured
        self.recovery_attempts = 0
        self.last_fault = None  # what went wrong last (str), for the health report
        self.last_recovery = None  # "sleep/wake" or "power cycle"
        if power_pin is not None:
            power_pin.value(self._on)

    def _now(self):
        return clock.ticks_ms()

    def _elapsed(self, start):
        return clock.ticks_diff(clock.ticks_ms(), start)

    # -- reporting -----------------------------------------------------------------------

    def _fail(self, errno, what):
        raise OSError(errno, "%s on UART: %s" % (self.name, what))

    @property
    def frames(self):
        """Valid data frames received."""
        return self._parser.frames

    @property
    def bad_frames(self):
        """Complete frames rejected by their checksum or plausibility checks."""
        return self._parser.bad

    @property
    def noise_bytes(self):
        """Bytes that belonged to no valid frame (noise, partial and bad frames)."""
        return self._parser.skipped

    def stats(self):
        """Counters for the health report."""
        p = self._parser
        return {
            "frames": p.frames,
            "bad_frames": p.bad,
            "noise_bytes": p.skipped,
            "recoveries": self.recoveries,
            "recovery_attempts": self.recovery_attempts,
            "last_fault": self.last_fault,
        }

    # -- UART ----------------------------------------------------------------------------

    def _pump(self):
        """Feed everything the UART holds to the parser; returns the bytes read."""
        uart, views, parser = self.uart, self._views, self._parser
        total = 0
        avail = uart.any()
        while avail > 0:
            i = 0
            while len(views[i]) > avail:
                i += 1
            got = uart.readinto(views[i])
            if not got:
                break
            parser.feed(views[i], got)
            total += got
            avail -= got
        return total

    def _done(self, reply, arg):
        if reply is None:
            return self._parser.frames != arg
        return self._reply_ok(reply, arg)

    def _wait(self, reply, arg, timeout_ms):
        """Poll the UART until a new data frame (reply None, arg the frame count
        before) or the reply to command `reply` (arg: what it must carry) came, or
        timeout_ms passed. Reads only when a whole frame is there or the line went
        quiet, so that one frame is one read."""
        uart = self.uart
        need = self._parser.size
        start = clock.ticks_ms()
        last = -1
        while True:
            avail = uart.any()
            if avail and (avail >= need or avail == last):
                self._pump()
                avail = 0
                if self._done(reply, arg):
                    return True
            last = avail
            if clock.ticks_diff(clock.ticks_ms(), start) >= timeout_ms:
                self._pump()
                return self._done(reply, arg)
            clock.sleep_ms(_POLL_MS)

    def _wait_data(self, timeout_ms):
        return self._wait(None, self._parser.frames, timeout_ms)

    def _reply_ok(self, reply, arg):
        return False

    # -- warm-up and staleness -----------------------------------------------------------

    def _start_warmup(self):
        self._warm_from = clock.ticks_ms()
        self._warm_left = self.warmup_ms

    def warmup_left_ms(self):
        """Milliseconds until readings count again after power-on or wake-up (0: ready)."""
        if self._warm_left:
            left = self._warm_left - clock.ticks_diff(clock.ticks_ms(), self._warm_from)
            if left > 0:
                return left
            self._warm_left = 0  # latched: no tick wrap-around can bring it back
        return 0

    def _reset_stale(self):
        self._first_seen = None  # the content is kept: a frozen frame stays frozen

    def _stale(self):
        """None, or a message if the same frame has come for longer than stale_s.
        self._fresh tells whether this frame differs from the one before."""
        data, prev = self._parser.data, self._prev
        now = clock.ticks_ms()
        same = True
        for i in range(len(prev)):
            if data[i] != prev[i]:
                same = False
                break
        self._fresh = not same
        if not same:
            for i in range(len(prev)):
                prev[i] = data[i]
            self._first_seen = now
            return None
        if self._first_seen is None:
            self._first_seen = now
        if self._stale_ms and clock.ticks_diff(now, self._first_seen) > self._stale_ms:
            self._errno = ETIMEDOUT
            return "the same frame for %d s (sensor frozen)" % (clock.ticks_diff(now, self._first_seen) // 1000)
        return None

    # -- measuring ----------------------------------------------------------------------

    def measure(self):
        """Fetch one fresh, valid frame. Allocates nothing when all is well.

        Raises OSError(EAGAIN) while the sensor is asleep or warming up (readings then
        do not count: the firmware counts them apart from faults), and after it cured
        a fault (the sensor then warms up again). Raises OSError(ETIMEDOUT) when the
        sensor gives no valid frame even after recovery."""
        if self.asleep:
            self._fail(EAGAIN, "asleep: wake() it and wait %d s before reading" % (self.warmup_ms // 1000))
        left = self.warmup_left_ms()
        if left:
            self._fail(EAGAIN, "warming up, %d ms left (readings in the first %d s after wake-up are not stable)"
                       % (left, self.warmup_ms // 1000))
        if not self._ready:
            # The last recovery failed: the sensor's state is unknown (it may be back
            # in its power-on defaults and warming up), so set it up before trusting it.
            self._recover(self.last_fault)
        what = self._fetch()
        if what is None:
            what = self._stale()
            if what is None:
                if self._fresh:
                    self._escalation = 0  # new data: the sensor is well again
                return
        self._recover(what)

    def read(self):
        """The contract's dict (µg/m³); see measure() for the errors."""
        self.measure()
        return self.values()

    # -- recovery ------------------------------------------------------------------------

    def _recover(self, what):
        """First sleep/wake, then (if there is a switch pin, or sleep/wake already
        failed to cure this fault) a power cycle; raises in every case."""
        self.last_fault = what
        errno = self._errno
        tried = None
        if self._escalation == 0 or self.power_pin is None:
            self._escalation = 1
            self.recovery_attempts += 1
            if self._restart(False):
                self._recovered("sleep/wake", what)
            tried = "sleep/wake"
        if self.power_pin is not None:
            self._escalation = 2
            self.recovery_attempts += 1
            if self._restart(True):
                self._recovered("a power cycle", what)
            tried = "sleep/wake and a power cycle" if tried else "a power cycle"
        self._ready = False
        self._fail(errno, "%s; no answer after %s" % (what, tried))

    def _recovered(self, how, what):
        self.recoveries += 1
        self.last_recovery = how
        self._fail(EAGAIN, "%s; recovered by %s, warming up for %d s" % (what, how, self.warmup_ms // 1000))

    def _restart(self, power):
        if power:
            self.power_pin.value(1 - self._on)
            clock.sleep_ms(_POWER_OFF_MS)
            self.power_pin.value(self._on)
            self._parser.reset()
            ok = self._start(self._BOOT_MS)
        else:
            self._send_sleep()
            clock.sleep_ms(_SLEEP_WAKE_PAUSE_MS)
            ok = self._start(0)
        if ok:
            self._ready = True
            self._reset_stale()
            self._start_warmup()
        return ok

    def power_cycle(self):
        """Switch the sensor off and on through the power pin and set it up again."""
        if self.power_pin is None:
            self._fail(EINVAL, "no power switch pin was given")
        if not self._restart(True):
            self._fail(ETIMEDOUT, "no answer after a power cycle")

    def _begin(self):
        """Constructor's start: wake and configure; power-cycle once if that fails."""
        self._start_warmup()
        if self._start(self._BOOT_MS):
            return True
        if self.power_pin is not None:
            self.recovery_attempts += 1
            if self._restart(True):
                self.recoveries += 1
                self.last_recovery = "a power cycle"
                return True
        return False

    # -- sleep ---------------------------------------------------------------------------

    def sleep(self):
        """Stop fan and laser: the sensor sends nothing and draws almost no current; only
        wake() is heard while asleep."""
        if not self._send_sleep():
            self._fail(ETIMEDOUT, "no answer to the sleep command")
        self.asleep = True

    def wake(self):
        """Start the fan and laser; readings count again after warmup_s."""
        if not self._start(0):
            self._fail(ETIMEDOUT, "no answer to the wake-up")
        self._reset_stale()
        self._start_warmup()

    def _drain(self):
        if self.uart.any():
            self._pump()
