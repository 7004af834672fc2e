# A Nova Fitness SDS011 at the byte level (Laser Dust Sensor Control Protocol V1.3):
# 10-byte data frames (0xAA 0xC0 ... 0xAB) every second in active reporting, or on
# the query command in query mode; 19-byte commands (0xAA 0xB4 ... checksum 0xAB) for
# reporting mode, query, device ID, sleep/work, working period and firmware version,
# each answered with a 0xC5 reply; commands for another device ID are ignored.
# Reporting mode, working period and device ID survive a power cycle (kept in flash);
# the sleep state does not. Asleep, the sensor ignores every command but "work"
# (found in the field; the protocol says any command wakes it). With a working period
# of n minutes it runs 30 s, reports once (active) and sleeps the rest of the period.
# PM2.5 and PM10 come from the environment in 0.1 µg/m³.

from hal.sim.pm_uart import SimPMSensor

HEAD = 0xAA
TAIL = 0xAB
INTERVAL_MS = 1000
WORK_MS = 30000  # working period: fan on this long before the report


def encode_frame(kind, b):
    """AA kind b0..b5 checksum AB."""
    f = bytearray(10)
    f[0], f[1], f[9] = HEAD, kind, TAIL
    for i in range(6):
        f[2 + i] = b[i] & 0xFF
    f[8] = sum(f[2:8]) & 0xFF
    return bytes(f)


class SimSDS011(SimPMSensor):
    """Attach to a SimUART: SimUART(SimSDS011(env)). power_pin: the board's switch for
    the 5 V supply (on at power_active)."""

    name = "sds011"
    boot_ms = 500  # assumption: commands are lost in the first 0.5 s after power-on
    data_bytes = (2, 8)

    def __init__(
        self,
        env=None,
        power_pin=None,
        power_active=1,
        clock=None,
        seed=1,
        noise=True,
        device_id=0xA160,
        firmware=(15, 7, 10),
        query_mode=False,
        working_period=0,
    ):
        # Kept in flash: factory default is active reporting, continuous working.
        self.device_id = device_id
        self.firmware = firmware
        self.query_mode = query_mode
        self.working_period = working_period
        self.flash_writes = 0
        self._period_start = 0
        super().__init__(env, power_pin, power_active, clock, seed, noise)

    # -- state ---------------------------------------------------------------------------

    def on_boot(self, now):
        self._restart_cycle(now + self.boot_ms)

    def _restart_cycle(self, now):
        self._period_start = now
        if self.working_period:
            self._next_ms = now + WORK_MS
        else:
            self._next_ms = now + INTERVAL_MS

    def next_report(self, t_ms):
        if self.working_period:
            return t_ms + self.working_period * 60000
        return t_ms + INTERVAL_MS

    def fan_on(self, now):
        if not self.awake(now):
            return False
        if not self.working_period:
            return True
        return (now - self._period_start) % (self.working_period * 60000) < WORK_MS

    def advance(self, now):
        if self.query_mode:
            # Query mode sends nothing by itself; keep the schedule for the working period.
            while self._next_ms is not None and self._next_ms <= now:
                self._next_ms = self.next_report(self._next_ms)
            return
        super().advance(now)

    def wake_up(self, now):
        super().wake_up(now)
        self._restart_cycle(now)

    # -- frames --------------------------------------------------------------------------

    def data_frame(self, t_ms):
        env = self.env
        k = self.spin_up(t_ms) if not self.working_period else 1.0
        pm25 = self.jitter(env.sample("pm2_5", t_ms) * k, 0.03)
        pm10 = self.jitter(env.sample("pm10", t_ms) * k, 0.03)
        a = max(0, min(9999, int(pm25 * 10 + 0.5)))
        b = max(0, min(9999, int(pm10 * 10 + 0.5)))
        i = self.device_id
        return encode_frame(0xC0, (a, a >> 8, b, b >> 8, i >> 8, i))

    def reply(self, cmd, b3, b4, b5, t):
        i = self.device_id
        self.send(encode_frame(0xC5, (cmd, b3, b4, b5, i >> 8, i)), t)

    # -- commands ------------------------------------------------------------------------

    def parse_commands(self, now):
        rx = self._rx
        i = 0
        while len(rx) - i >= 19:
            if rx[i] != HEAD or rx[i + 1] != 0xB4 or rx[i + 18] != TAIL or (sum(rx[i + 2 : i + 17]) & 0xFF) != rx[i + 17]:
                i += 1  # not a command (or a damaged one): ignored
                continue
            frame = bytes(rx[i : i + 19])
            i += 19
            target = (frame[15] << 8) | frame[16]
            if target in (0xFFFF, self.device_id):
                self.command(now, frame)
        self._rx = rx[i:]

    def command(self, now, f):
        t = now + self.reply_latency_ms
        cmd, op, value = f[2], f[3], f[4]
        if self.sleeping:
            if cmd == 6 and op == 1 and value == 1:
                self.executed(now, f)
                self.wake_up(now)
                self.reply(6, 1, 1, 0, t)
            return  # asleep, only "work" is heard
        if cmd == 2:
            self.executed(now, f)
            if op == 1:
                q = value == 1
                if q != self.query_mode:
                    self.flash_writes += 1
                self.query_mode = q
                if not q:
                    self._restart_cycle(now)
            self.reply(2, op, 1 if self.query_mode else 0, 0, t)
        elif cmd == 4:
            self.executed(now, f)
            if self.query_mode:
                self.send_data(self.data_frame(now), t)
        elif cmd == 5:
            self.executed(now, f)
            self.device_id = (f[13] << 8) | f[14]
            self.flash_writes += 1
            self.reply(5, 0, 0, 0, t)
        elif cmd == 6:
            self.executed(now, f)
            if op == 1 and value == 0:
                self.reply(6, 1, 0, 0, t)
                self.go_to_sleep(now)
                return
            self.reply(6, op, 1, 0, t)
        elif cmd == 7:
            self.executed(now, f)
            y, m, d = self.firmware
            self.reply(7, y, m, d, t)
        elif cmd == 8:
            self.executed(now, f)
            if op == 1 and 0 <= value <= 30:
                if value != self.working_period:
                    self.flash_writes += 1
                self.working_period = value
                self._restart_cycle(now)
            self.reply(8, op, self.working_period, 0, t)
