# A Plantower PMS5003 / PMSA003 at the byte level (data manual V2.3, appendices I, II):
# active mode after power-up, a 32-byte frame every 2.3 s while the air is steady and
# every 200-800 ms (shorter the dirtier) while it changes fast; passive mode answers
# the read command; 7-byte commands with their checksum (others are ignored); the mode
# and sleep commands answered with the 8-byte echo, wake-up unanswered; asleep it hears
# only the wake-up. SET pin low sleeps, RESET pin low holds it in reset.
#
# Frames are built here, not with the driver's code. Mass concentrations come from the
# environment (atmospheric environment values); CF=1 values equal them below 30 µg/m³
# and exceed them above (as PurpleAir's PMS5003 data show); the particle counts follow
# the masses with a typical urban size distribution. All of this is a model of the
# protocol and its timing, not of the optics.

from hal.sim.pm_uart import SimPMSensor

START1 = 0x42
START2 = 0x4D
STABLE_INTERVAL_MS = 2300
FAST_INTERVAL_MS = (200, 800)


def checksum(data):
    return sum(data) & 0xFFFF


def encode_data(words):
    """The 32-byte data frame carrying 13 words."""
    f = bytearray(32)
    f[0], f[1], f[2], f[3] = START1, START2, 0, 28
    for i, w in enumerate(words):
        f[4 + 2 * i] = (w >> 8) & 0xFF
        f[5 + 2 * i] = w & 0xFF
    s = checksum(f[:30])
    f[30], f[31] = s >> 8, s & 0xFF
    return bytes(f)


def encode_reply(cmd, data):
    f = bytearray((START1, START2, 0, 4, cmd, data, 0, 0))
    s = checksum(f[:6])
    f[6], f[7] = s >> 8, s & 0xFF
    return bytes(f)


def _cf1(atm):
    return atm if atm <= 30 else int(30 + (atm - 30) * 1.5 + 0.5)


def words_for(pm1, pm25, pm10, counts_from=None, reserved=0):
    """13 data words for these atmospheric mass concentrations (µg/m³)."""
    a1 = max(0, min(0xFFFF, int(pm1 + 0.5)))
    a25 = max(a1, min(0xFFFF, int(pm25 + 0.5)))
    a10 = max(a25, min(0xFFFF, int(pm10 + 0.5)))
    c = counts_from if counts_from is not None else (pm1, pm25, pm10)
    m1, m25, m10 = c
    n03 = 150.0 * m1 + 40.0 * (m25 - m1) + 5.0 * (m10 - m25) + 30.0
    n05 = 0.3 * n03
    n10_ = 0.06 * n03 + 2.0 * (m25 - m1)
    n25 = 0.004 * n03 + 0.2 * (m10 - m25)
    n50 = 0.4 * n25
    n100 = 0.3 * n50
    counts = []
    prev = 0xFFFF
    for n in (n03, n05, n10_, n25, n50, n100):
        v = max(0, min(prev, int(n + 0.5)))
        counts.append(v)
        prev = v
    return [min(0xFFFF, _cf1(a1)), min(0xFFFF, _cf1(a25)), min(0xFFFF, _cf1(a10)), a1, a25, a10] + counts + [reserved]


class SimPMS5003(SimPMSensor):
    """Attach to a SimUART: SimUART(SimPMS5003(env)). power_pin: the board's switch for
    the 5 V supply (on at power_active); set_pin / reset_pin: the sensor's SET and
    RESET inputs (pulled up inside: None means not connected)."""

    name = "pms5003"
    boot_ms = 800  # assumption: commands are lost in the first 0.8 s after power-on

    def __init__(
        self,
        env=None,
        power_pin=None,
        power_active=1,
        set_pin=None,
        reset_pin=None,
        clock=None,
        seed=1,
        noise=True,
        variant="pms5003",
        stable_interval_ms=STABLE_INTERVAL_MS,
    ):
        if variant not in ("pms5003", "pmsa003"):
            raise ValueError("variant must be 'pms5003' or 'pmsa003', not %r" % (variant,))
        self.variant = variant
        self.stable_interval_ms = stable_interval_ms
        self.mode = "active"
        self._prev_pm25 = None
        super().__init__(env, power_pin, power_active, clock, seed, noise)
        self.set_pin = set_pin
        self.reset_pin = reset_pin
        if set_pin is not None:
            set_pin.watchers.append(self._set_changed)
        if reset_pin is not None:
            reset_pin.watchers.append(self._reset_changed)

    # -- state ---------------------------------------------------------------------------

    def on_boot(self, now):
        self.mode = "active"  # "Default mode is active after power up"
        self._prev_pm25 = None
        self._next_ms = now + self.boot_ms + self.stable_interval_ms // 2

    def next_report(self, t_ms):
        return t_ms + self.interval_ms() if self.mode == "active" else None

    def interval_ms(self):
        """2.3 s in stable mode; 200-800 ms while the air changes fast, the shorter the
        higher the concentration (data manual, "Output result")."""
        pm25 = self._prev_pm25
        if pm25 is None or not self._fast:
            return self.stable_interval_ms
        lo, hi = FAST_INTERVAL_MS
        return max(lo, hi - int(pm25 * 2))

    def _set_changed(self, pin, v):
        now = self.elapsed_ms()
        if v:
            if self.sleeping:
                self.wake_up(now)
        elif self.powered and not self.sleeping:
            self.go_to_sleep(now)

    def _reset_changed(self, pin, v):
        # Low holds the sensor in reset (as good as off); high boots it again.
        if v:
            self._power_changed(None, self._on_level)
        else:
            self._power_changed(None, 1 - self._on_level)

    def wake_up(self, now):
        super().wake_up(now)
        if self.set_pin is not None and self.set_pin.value() == 0:
            self.sleeping = True  # SET held low keeps it asleep
            return
        if self.mode == "active":
            self._next_ms = now + self.stable_interval_ms // 2

    # -- frames --------------------------------------------------------------------------

    def data_frame(self, t_ms):
        env = self.env
        k = self.spin_up(t_ms)
        pm1 = env.sample("pm1_0", t_ms) * k
        pm25 = env.sample("pm2_5", t_ms) * k
        pm10 = env.sample("pm10", t_ms) * k
        prev = self._prev_pm25
        self._fast = prev is not None and abs(pm25 - prev) > max(5.0, 0.1 * prev)
        self._prev_pm25 = pm25
        counts_from = (self.jitter(pm1, 0.05), self.jitter(pm25, 0.05), self.jitter(pm10, 0.05))
        reserved = 0x9700 if self.variant == "pmsa003" else 0
        if self.noise:
            pm1, pm25, pm10 = self.jitter(pm1, 0.02), self.jitter(pm25, 0.02), self.jitter(pm10, 0.02)
        return encode_data(words_for(pm1, pm25, pm10, counts_from, reserved))

    _fast = False

    # -- commands ------------------------------------------------------------------------

    def parse_commands(self, now):
        rx = self._rx
        i = 0
        while len(rx) - i >= 7:
            if rx[i] != START1 or rx[i + 1] != START2 or (rx[i + 5] << 8 | rx[i + 6]) != checksum(rx[i : i + 5]):
                i += 1  # not a command (or a damaged one): the sensor ignores it
                continue
            frame = bytes(rx[i : i + 7])
            i += 7
            self.command(now, frame[2], (frame[3] << 8) | frame[4], frame)
        self._rx = rx[i:]

    def command(self, now, cmd, data, frame):
        t = now + self.reply_latency_ms
        if self.sleeping:
            if cmd == 0xE4 and data == 1:
                self.executed(now, frame)
                self.wake_up(now)
            return  # asleep, only the wake-up is heard
        if cmd == 0xE1 and data in (0, 1):
            self.executed(now, frame)
            self.mode = "active" if data else "passive"
            self.send(encode_reply(0xE1, data), t)
            self._next_ms = t + self.stable_interval_ms if data else None
        elif cmd == 0xE2 and self.mode == "passive":
            self.executed(now, frame)
            self.send_data(self.data_frame(now), t)
        elif cmd == 0xE4 and data == 0:
            self.executed(now, frame)
            self.send(encode_reply(0xE4, 0), t)
            self.go_to_sleep(now)
        elif cmd == 0xE4 and data == 1:
            self.executed(now, frame)  # awake already: nothing to do
