"""CircuitPython's busio/digitalio objects over machine.*-style buses: the reverse of
hal/blinka.py, so that Adafruit's and Sensirion's CircuitPython drivers run on the
simulator's buses (SimI2C, SimSPI, SimUART, SimPin) for the peer tests and benchmarks.
Plain Python that also runs on MicroPython (with tools/ on its path).

    bus = CircuitPythonI2C(SimI2C())      # try_lock/writeto/readfrom_into/...
    adafruit_bme280.advanced.Adafruit_BME280_I2C(bus, 0x76)
    CircuitPythonSPI / CircuitPythonPin / CircuitPythonUART likewise.
"""

from hal import clock


def _span(buf, start, end):
    """buf[start:end] without a copy (CircuitPython's start/end keywords)."""
    if start == 0 and (end is None or end >= len(buf)):
        return buf
    return memoryview(buf)[start:end]


# -- busio/digitalio over machine.* buses --------------------------------------------


class _Closable:
    """deinit() and the with-statement, as CircuitPython's objects have them."""

    def deinit(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.deinit()
        return False


class _Lockable(_Closable):
    """CircuitPython's lock: try_lock()/unlock(); bus operations require it."""

    _locked = False

    def try_lock(self):
        if self._locked:
            return False
        self._locked = True
        return True

    def unlock(self):
        self._locked = False

    def _check_lock(self):
        if not self._locked:
            raise RuntimeError("Function requires lock")

    def deinit(self):
        self._locked = False


class CircuitPythonI2C(_Lockable):
    """busio.I2C over any machine.I2C-style bus (machine.I2C, SimI2C, BlinkaI2C).

    writeto_then_readfrom with a one-byte write is one readfrom_mem_into (write the
    register, repeated start, read), as on the wire; a longer write is writeto then
    readfrom_into. Errors are the bus's OSErrors, unchanged."""

    def __init__(self, i2c, frequency=100000):
        self.i2c = i2c
        self.frequency = frequency

    def scan(self):
        self._check_lock()
        return list(self.i2c.scan())

    def probe(self, address):
        self._check_lock()
        try:
            self.i2c.writeto(address, b"")
        except OSError:
            return False
        return True

    def readfrom_into(self, address, buffer, *, start=0, end=None):
        self._check_lock()
        self.i2c.readfrom_into(address, _span(buffer, start, end))

    def writeto(self, address, buffer, *, start=0, end=None):
        self._check_lock()
        self.i2c.writeto(address, _span(buffer, start, end))

    def writeto_then_readfrom(
        self, address, buffer_out, buffer_in, *, out_start=0, out_end=None, in_start=0, in_end=None
    ):
        self._check_lock()
        out = _span(buffer_out, out_start, out_end)
        into = _span(buffer_in, in_start, in_end)
        if len(out) == 1:
            self.i2c.readfrom_mem_into(address, out[0], into)
        else:
            self.i2c.writeto(address, out)
            self.i2c.readfrom_into(address, into)


class CircuitPythonSPI(_Lockable):
    """busio.SPI over any machine.SPI-style bus. configure() is passed on to the bus's
    init() where it has one (a board's machine.SPI); the simulator has no clock to set."""

    def __init__(self, spi, baudrate=100000):
        self.spi = spi
        self._config = (baudrate, 0, 0, 8)

    @property
    def frequency(self):
        return self._config[0]

    def configure(self, *, baudrate=100000, polarity=0, phase=0, bits=8):
        self._check_lock()
        if polarity not in (0, 1) or phase not in (0, 1):
            raise ValueError("SPI polarity and phase must be 0 or 1, not %r, %r" % (polarity, phase))
        config = (baudrate, polarity, phase, bits)
        if config != self._config and hasattr(self.spi, "init"):
            self.spi.init(baudrate=baudrate, polarity=polarity, phase=phase, bits=bits)
        self._config = config

    def write(self, buffer, *, start=0, end=None):
        self._check_lock()
        self.spi.write(_span(buffer, start, end))

    def readinto(self, buffer, *, start=0, end=None, write_value=0):
        self._check_lock()
        self.spi.readinto(_span(buffer, start, end), write_value)

    def write_readinto(self, buffer_out, buffer_in, *, out_start=0, out_end=None, in_start=0, in_end=None):
        self._check_lock()
        out = _span(buffer_out, out_start, out_end)
        into = _span(buffer_in, in_start, in_end)
        if len(out) != len(into):
            raise ValueError("buffer slices must be of equal length (%d and %d)" % (len(out), len(into)))
        self.spi.write_readinto(out, into)


class _Symbol:
    def __init__(self, kind, name):
        self.kind = kind
        self.name = name

    def __repr__(self):
        return "digitalio.%s.%s" % (self.kind, self.name)


class Direction:
    INPUT = _Symbol("Direction", "INPUT")
    OUTPUT = _Symbol("Direction", "OUTPUT")


class Pull:
    UP = _Symbol("Pull", "UP")
    DOWN = _Symbol("Pull", "DOWN")


class DriveMode:
    PUSH_PULL = _Symbol("DriveMode", "PUSH_PULL")
    OPEN_DRAIN = _Symbol("DriveMode", "OPEN_DRAIN")


def _named(symbol, name):
    # Accepts our symbols and Blinka's/CircuitPython's (repr "digitalio.Direction.OUTPUT").
    return symbol is not None and repr(symbol).endswith("." + name)


class CircuitPythonPin(_Closable):
    """digitalio.DigitalInOut over a machine.Pin-style pin (machine.Pin, SimPin, BlinkaPin):
    the .value property, .direction, .pull, .drive_mode, switch_to_output/input."""

    def __init__(self, pin):
        self.pin = pin
        self._output = False
        self._pull = None
        self._open_drain = False

    def _init(self, mode_name, pull_name=None):
        pin = self.pin
        if hasattr(pin, "init") and hasattr(pin, mode_name):
            if pull_name and hasattr(pin, pull_name):
                pin.init(getattr(pin, mode_name), getattr(pin, pull_name))
            else:
                pin.init(getattr(pin, mode_name))

    def switch_to_output(self, value=False, drive_mode=DriveMode.PUSH_PULL):
        self._open_drain = _named(drive_mode, "OPEN_DRAIN")
        self._output = True
        self._pull = None
        self.pin.value(1 if value else 0)  # the level first, so the switch does not glitch
        self._init("OPEN_DRAIN" if self._open_drain else "OUT")

    def switch_to_input(self, pull=None):
        self._output = False
        self._pull = Pull.UP if _named(pull, "UP") else Pull.DOWN if _named(pull, "DOWN") else None
        self._init("IN", "PULL_UP" if self._pull is Pull.UP else "PULL_DOWN" if self._pull is Pull.DOWN else None)

    @property
    def direction(self):
        return Direction.OUTPUT if self._output else Direction.INPUT

    @direction.setter
    def direction(self, d):
        if _named(d, "OUTPUT"):
            self.switch_to_output()
        elif _named(d, "INPUT"):
            self.switch_to_input()
        else:
            raise ValueError("direction must be Direction.INPUT or Direction.OUTPUT, not %r" % (d,))

    @property
    def value(self):
        return bool(self.pin.value())

    @value.setter
    def value(self, v):
        if not self._output:
            raise AttributeError("Cannot set value when direction is input.")
        self.pin.value(1 if v else 0)

    @property
    def pull(self):
        if self._output:
            raise AttributeError("Pull not used when direction is output.")
        return self._pull

    @pull.setter
    def pull(self, p):
        if self._output:
            raise AttributeError("Pull not used when direction is output.")
        self.switch_to_input(p)

    @property
    def drive_mode(self):
        if not self._output:
            raise AttributeError("Drive mode not used when direction is input.")
        return DriveMode.OPEN_DRAIN if self._open_drain else DriveMode.PUSH_PULL

    @drive_mode.setter
    def drive_mode(self, mode):
        if not self._output:
            raise AttributeError("Drive mode not used when direction is input.")
        self.switch_to_output(self.value, mode)


class CircuitPythonUART(_Closable):
    """busio.UART over any machine.UART-style bus (machine.UART, SimUART, BlinkaUART).

    read(n)/readinto(buf)/readline() wait, as CircuitPython's do, until the bytes are
    there or `timeout` seconds pass without a new byte; the wait is hal.clock.sleep_ms,
    so under a VirtualClock a simulated device keeps sending while the driver waits and
    no real time passes. Nothing received at all: None. As on CircuitPython, read()
    without a count returns only once the line has been quiet for `timeout`."""

    def __init__(self, uart, baudrate=None, timeout=1.0, poll_ms=1):
        self.uart = uart
        self._baudrate = baudrate if baudrate is not None else getattr(uart, "baudrate", 9600)
        self.timeout = timeout
        self.poll_ms = poll_ms
        self._scratch = bytearray(32)

    @property
    def baudrate(self):
        return self._baudrate

    @baudrate.setter
    def baudrate(self, value):
        if hasattr(self.uart, "init"):
            self.uart.init(value)
        self._baudrate = value

    @property
    def in_waiting(self):
        return self.uart.any()

    def _fill(self, buf, stop_at=None):
        """Read into buf until it is full, `stop_at` (a byte value) arrives, or the timeout
        passes without a byte; returns the count."""
        uart = self.uart
        mv = memoryview(buf)
        got = 0
        n = len(buf)
        timeout_ms = int(self.timeout * 1000)
        last = clock.ticks_ms()
        while got < n:
            avail = uart.any()
            if avail:
                want = 1 if stop_at is not None else min(avail, n - got)
                k = uart.readinto(mv[got : got + want]) or 0
                if k:
                    got += k
                    last = clock.ticks_ms()
                    if stop_at is not None and buf[got - 1] == stop_at:
                        break
                    continue
            if clock.ticks_diff(clock.ticks_ms(), last) >= timeout_ms:
                break
            clock.sleep_ms(self.poll_ms)
        return got

    def read(self, nbytes=None):
        if nbytes is None:
            out = bytearray()
            while True:  # everything until the line goes quiet for `timeout`
                k = self._fill(self._scratch)
                out.extend(memoryview(self._scratch)[:k])
                if k < len(self._scratch):
                    break
            return bytes(out) if out else None
        buf = bytearray(nbytes)
        k = self._fill(buf)
        return bytes(buf[:k]) if k else None

    def readinto(self, buf, nbytes=None):
        if nbytes is not None and nbytes < len(buf):
            buf = memoryview(buf)[:nbytes]
        k = self._fill(buf)
        return k if k else None

    def readline(self):
        out = bytearray()
        one = bytearray(1)
        while self._fill(one, 0x0A):
            out.append(one[0])
            if one[0] == 0x0A:
                break
        return bytes(out) if out else None

    def write(self, buf):
        return self.uart.write(buf)

    def reset_input_buffer(self):
        uart = self.uart
        while uart.any():
            if not uart.readinto(self._scratch):
                break
