# What the PMS5003 and SDS011 models share: a particulate-matter sensor on a UART.
#
# Bytes take their time on the wire (10 bits at 9600 baud: 1.04 ms each), so a host
# that reads while a frame is being sent gets half of it. The sensor's power can come
# through a switch (a SimPin the model watches): off loses everything in flight and
# clears a hang, on boots the sensor, which ignores commands while it boots. After
# power-on and wake-up the fan spins up: readings start low and reach the air's value
# after warmup_ms.
#
# Faults (PMFaults): those of every device (absent: the UART hears nothing; corrupt:
# damaged bytes on read) and the PM sensor's own: garbage between frames, a byte lost
# from a frame, frames with a bad checksum, a hang that only a power cycle cures, and
# a frozen sensor that repeats one frame.

from hal.sim.bus import Faults
from hal.sim.uart import SimUARTDevice
from hal.sim.environment import Environment

_MAX_BURST = 4096  # bytes generated per poll after a long pause: more would overrun any rxbuf


class PMFaults(Faults):
    """Faults of a PM sensor on a UART, beside Faults' absent and corrupt:

    garbage(n):        n random bytes go out before the next frame.
    drop(frames=1):    one byte of each of the next `frames` frames is lost.
    bad_checksum(frames=1): the next frames carry a damaged data byte (checksum unchanged).
    hang():            no frame, no reply, until the power switch goes off and on.
    freeze(until):     the sensor repeats its last data frame until sleep/wake cures it
                       (until="wake") or only a power cycle does (until="power").
    """

    def __init__(self):
        super().__init__()
        self.garbage_bytes = 0
        self.drop_frames = 0
        self.bad_frames = 0
        self.hung = False
        self.frozen = None

    def garbage(self, n):
        self.garbage_bytes += n

    def drop(self, frames=1):
        self.drop_frames += frames

    def bad_checksum(self, frames=1):
        self.bad_frames += frames

    def hang(self):
        self.hung = True

    def freeze(self, until="wake"):
        if until not in ("wake", "power"):
            raise ValueError("freeze: until must be 'wake' or 'power', not %r" % (until,))
        self.frozen = until


class SimPMSensor(SimUARTDevice):
    """Base of the PM sensor models. Subclasses implement data_frame(t_ms) (the frame
    for the air at t_ms), interval_ms(), on_command bytes parsing in on_rx, and
    on_boot()."""

    baudrate = 9600
    boot_ms = 800
    warmup_ms = 30000
    reply_latency_ms = 5
    data_bytes = (4, 30)  # where bad_checksum() damages a data frame (the data words)

    def __init__(self, env=None, power_pin=None, power_active=1, clock=None, seed=1, noise=True):
        super().__init__(clock)
        self.faults = PMFaults()
        self.env = env if env is not None else Environment()
        self.noise = noise
        self._rng = (seed * 2654435761) & 0xFFFFFFFF or 1
        self.byte_us = 10000000 // self.baudrate
        self._wire = []  # [start_us, bytearray]: contiguous runs of bytes on the wire
        self._wire_free_us = 0
        self._rx = bytearray()
        self.frames_sent = 0
        self.recent = []  # when the last 16 data frames went out (ms)
        self.bytes_sent = 0
        self.commands = []  # (t_ms, command bytes) the sensor acted on
        self.power_cycles = 0
        self._last_data = None
        self.power_pin = None
        self._on_level = 1 if power_active else 0
        self.powered = True
        self.sleeping = False
        self._next_ms = None
        self._boot_until = 0
        self._awake_since = 0
        self._boot(self.elapsed_ms())
        if power_pin is not None:
            self.attach_power(power_pin, power_active)

    # -- randomness and noise (deterministic, the same on CPython and MicroPython) ----------

    def rand(self):
        x = self._rng
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self._rng = x
        return x

    def jitter(self, value, fraction):
        """value * (1 ± fraction), uniformly, if noise is on."""
        if not self.noise:
            return value
        return value * (1.0 + fraction * ((self.rand() % 20001) / 10000.0 - 1.0))

    def spin_up(self, t_ms):
        """Flow through the sensor after power-on/wake-up, 0.5 .. 1: readings start low."""
        since = t_ms - self._awake_since
        if since >= self.warmup_ms:
            return 1.0
        return 0.5 + 0.5 * since / self.warmup_ms

    # -- power -------------------------------------------------------------------------

    def _power_changed(self, pin, v):
        on = v == self._on_level
        if on == self.powered:
            return
        if on:
            self.powered = True
            self.power_cycles += 1
            self._boot(self.elapsed_ms())
        else:
            self.powered = False
            self._wire = []
            self._rx = bytearray()
            self._next_ms = None
            self.faults.hung = False  # what a power cycle cures
            self.faults.frozen = None

    def attach_power(self, pin, power_active=1):
        """Supply the sensor through the switch `pin` (a SimPin), on at power_active:
        the sensor follows the pin from now on."""
        self.power_pin = pin
        self._on_level = 1 if power_active else 0
        pin.watchers.append(self._power_changed)
        self._power_changed(pin, pin.value())

    def hang(self):
        """The field fault: no frame, no reply, until the power goes off and on."""
        self.faults.hang()

    def power_cycle(self):
        """Off and on, as if the switch pin were toggled."""
        self._power_changed(None, 1 - self._on_level)
        self._power_changed(None, self._on_level)

    def _boot(self, now):
        self.sleeping = False
        self._boot_until = now + self.boot_ms
        self._awake_since = now
        self._wire_free_us = now * 1000
        self._last_data = None
        self.on_boot(now)

    def awake(self, now):
        return self.powered and not self.sleeping and not self.faults.hung and now >= self._boot_until

    def hears(self, now):
        """Whether commands get through: powered, booted and not hung."""
        return self.powered and not self.faults.hung and now >= self._boot_until

    def wake_up(self, now):
        self.sleeping = False
        self._awake_since = now
        if self.faults.frozen == "wake":
            self.faults.frozen = None

    def go_to_sleep(self, now):
        self.sleeping = True
        self._next_ms = None

    # -- the wire ----------------------------------------------------------------------

    def send(self, data, t_ms):
        """Put bytes on the wire at t_ms (after what is still being sent)."""
        start = max(t_ms * 1000, self._wire_free_us)
        self._wire.append([start, bytearray(data)])
        self.bytes_sent += len(data)
        self._wire_free_us = start + len(data) * self.byte_us

    def send_data(self, frame, t_ms):
        """A data frame through the fault switches."""
        f = self.faults
        if f.frozen and self._last_data is not None:
            frame = self._last_data
        else:
            self._last_data = bytes(frame)
        frame = bytearray(frame)
        if f.garbage_bytes:
            junk = bytearray(f.garbage_bytes)
            for i in range(len(junk)):
                junk[i] = self.rand() & 0xFF
            f.garbage_bytes = 0
            self.send(junk, t_ms)
        if f.bad_frames:
            f.bad_frames -= 1
            lo, hi = self.data_bytes
            i = lo + self.rand() % (hi - lo)
            frame[i] = (frame[i] + 1 + self.rand() % 200) & 0xFF
        if f.drop_frames:
            f.drop_frames -= 1
            i = self.rand() % len(frame)
            frame = frame[:i] + frame[i + 1 :]
        self.frames_sent += 1
        self.recent = self.recent[-15:] + [t_ms]
        self.send(frame, t_ms)

    def poll(self, out):
        now = self.elapsed_ms()
        if not self.powered:
            return
        if not self.faults.hung:
            self.advance(now)
        now_us = now * 1000
        wire = self._wire
        while wire:
            run = wire[0]
            ready = (now_us - run[0]) // self.byte_us
            if ready <= 0:
                break
            data = run[1]
            if ready >= len(data):
                out.extend(data)
                wire.pop(0)
            else:
                out.extend(data[:ready])
                run[1] = data[ready:]
                run[0] += ready * self.byte_us
                break

    def advance(self, now):
        """Send the frames due up to now (active reporting)."""
        burst = 0
        while self._next_ms is not None and self._next_ms <= now and self.awake(self._next_ms):
            t = self._next_ms
            if burst < _MAX_BURST:
                before = self.bytes_sent
                self.send_data(self.data_frame(t), t)
                burst += self.bytes_sent - before
            self._next_ms = self.next_report(t)

    def on_rx(self, data):
        now = self.elapsed_ms()
        if not self.hears(now):
            return  # booting, hung or off: the bytes are lost
        self.advance(now)
        self._rx.extend(data)
        self.parse_commands(now)

    def executed(self, now, cmd):
        self.commands.append((now, bytes(cmd)))

    # -- for the subclasses ------------------------------------------------------------

    def on_boot(self, now):
        pass

    def data_frame(self, t_ms):
        raise NotImplementedError

    def next_report(self, t_ms):
        return None

    def parse_commands(self, now):
        pass
