# Bridges between MicroPython's machine.* buses (CONTRACT.md section 1) and the
# CircuitPython busio/digitalio API that Adafruit Blinka implements on Linux.
#
# Forward (a Raspberry Pi gateway runs our drivers on CPython):
#     buses = default_buses()               # opens nothing yet
#     sensor = BME280(buses.i2c, 0x76)      # busio.I2C(board.SCL, board.SDA), wrapped
#     BlinkaI2C / BlinkaSPI / BlinkaUART / BlinkaPin wrap busio/digitalio objects;
#     BlinkaPlatform serves the node its buses by name ("i2c1", "spi0", "uart0").
#
# Reverse (CircuitPython drivers on our buses, the simulator's included):
#     bus = CircuitPythonI2C(SimI2C())      # try_lock/writeto/readfrom_into/...
#     adafruit_bme280.advanced.Adafruit_BME280_I2C(bus, 0x76)
#     CircuitPythonSPI / CircuitPythonPin / CircuitPythonUART likewise.
#
# Blinka is only imported when a default bus is opened, so this module imports (and the
# reverse adapters work) without it, on CPython and on MicroPython.

from errno import EIO, ENODEV, ETIMEDOUT

from hal import clock

# Linux errnos (i2c-dev, spidev) that Blinka passes up. The numbers are Linux's: Blinka
# only drives buses on Linux, and a host's errno module may number them differently.
_EREMOTEIO = 121  # NACK (i2c-bcm2835 on the Raspberry Pi, and many other adapters)
_ENXIO = 6  # no ACK in the address phase (the kernel's I2C fault codes; i2c-algo-bit)
_EAGAIN = 11  # arbitration lost / bus busy
_EPROTO = 71  # protocol violation seen by the adapter
_EBADMSG = 74  # SMBus PEC mismatch
_I2C_ABSENT = (_EREMOTEIO, _ENXIO, ENODEV)
_I2C_FAULT = (_EAGAIN, _EPROTO, _EBADMSG)


def _span(buf, start, end):
    """buf[start:end] without a copy (CircuitPython's start/end keywords)."""
    if start == 0 and (end is None or end >= len(buf)):
        return buf
    return memoryview(buf)[start:end]


def _monotonic_s():
    import time

    return time.monotonic() if hasattr(time, "monotonic") else time.ticks_ms() / 1000


def _i2c_error(e, addr):
    """The machine.I2C-style OSError for an OSError from a Linux I2C bus: a NACK becomes
    ENODEV, an adapter-level fault EIO; EIO and ETIMEDOUT stay; a host problem (no
    permission on /dev/i2c-1, bus closed) keeps its errno so it is not mistaken for a
    faulty sensor."""
    code = e.args[0] if e.args and isinstance(e.args[0], int) else EIO
    if code in _I2C_ABSENT:
        return OSError(ENODEV, "I2C: no ACK from 0x%02x (Linux errno %d)" % (addr, code))
    if code in _I2C_FAULT:
        return OSError(EIO, "I2C: bus fault at 0x%02x (Linux errno %d)" % (addr, code))
    if code in (EIO, ETIMEDOUT):
        return OSError(code, "I2C: %s at 0x%02x" % ("bus error" if code == EIO else "timeout", addr))
    return e


# -- forward: busio/digitalio objects with the machine.* interface ---------------------


class _Locking:
    """Takes a busio object's lock (try_lock/unlock) around each transaction."""

    def __init__(self, bus, lock_timeout_s):
        self.bus = bus
        self.lock_timeout_s = lock_timeout_s

    def _acquire(self, what):
        bus = self.bus
        if bus.try_lock():
            return
        import time

        deadline = _monotonic_s() + self.lock_timeout_s
        while not bus.try_lock():
            if _monotonic_s() >= deadline:
                raise OSError(ETIMEDOUT, "%s: bus still locked by another user after %.3f s" % (what, self.lock_timeout_s))
            time.sleep(0.0002)

    def deinit(self):
        self.bus.deinit()


class BlinkaI2C(_Locking):
    """machine.I2C over a Blinka busio.I2C: each call is one locked transaction, and a
    missing device or a bus fault raises OSError(ENODEV/EIO/ETIMEDOUT) like machine.I2C."""

    def __init__(self, i2c, lock_timeout_s=1.0):
        super().__init__(i2c, lock_timeout_s)
        self._reg = bytearray(1)
        self._scratch = bytearray(33)  # register address + up to 32 data bytes for writeto_mem

    def _run(self, addr, op, *args):
        self._acquire("I2C")
        try:
            try:
                return op(*args)
            except OSError as e:
                err = _i2c_error(e, addr)
            raise err  # outside the except block: no chained traceback
        finally:
            self.bus.unlock()

    def scan(self):
        self._acquire("I2C")
        try:
            return list(self.bus.scan())
        finally:
            self.bus.unlock()

    def readfrom_mem_into(self, addr, memaddr, buf):
        # Register address, repeated start, read: one transaction (i2c-dev I2C_RDWR).
        self._reg[0] = memaddr
        self._run(addr, self.bus.writeto_then_readfrom, addr, self._reg, buf)

    def readfrom_mem(self, addr, memaddr, nbytes):
        buf = bytearray(nbytes)
        self.readfrom_mem_into(addr, memaddr, buf)
        return bytes(buf)

    def writeto_mem(self, addr, memaddr, buf):
        # One write of [memaddr, data...]: the register address and the data in one START..STOP.
        n = len(buf) + 1
        if n > len(self._scratch):
            self._scratch = bytearray(n)
        out = self._scratch
        out[0] = memaddr
        out[1:n] = buf
        self._run(addr, self.bus.writeto, addr, memoryview(out)[:n])

    def readfrom_into(self, addr, buf):
        self._run(addr, self.bus.readfrom_into, addr, buf)

    def readfrom(self, addr, nbytes):
        buf = bytearray(nbytes)
        self.readfrom_into(addr, buf)
        return bytes(buf)

    def writeto(self, addr, buf):
        self._run(addr, self.bus.writeto, addr, buf)
        return len(buf)  # machine.I2C: the number of data bytes ACKed; a NACK raised above


def _ident():
    try:
        from _thread import get_ident
    except ImportError:
        return 0
    return get_ident()


class BlinkaSPI(_Locking):
    """machine.SPI over a Blinka busio.SPI: locks and configures the bus for each call.

    Pins made with chip_select() hold the lock from their falling to their rising edge,
    so a driver's frame (CS low, write, read, CS high) is not interleaved with another
    thread's traffic to a different chip on the same bus."""

    def __init__(self, spi, baudrate=1000000, polarity=0, phase=0, bits=8, lock_timeout_s=1.0):
        super().__init__(spi, lock_timeout_s)
        self.baudrate = baudrate
        self.polarity = polarity
        self.phase = phase
        self.bits = bits
        self._frame_owner = None

    def _begin(self):
        if self._frame_owner is not None and self._frame_owner == _ident():
            return False  # inside our own chip-select frame: the lock is held already
        self._acquire("SPI")
        try:
            self.bus.configure(baudrate=self.baudrate, polarity=self.polarity, phase=self.phase, bits=self.bits)
        except BaseException:
            self.bus.unlock()
            raise
        return True

    def _end(self, owned):
        if owned:
            self.bus.unlock()

    def frame_begin(self):
        owned = self._begin()
        if owned:
            self._frame_owner = _ident()

    def frame_end(self):
        if self._frame_owner is not None and self._frame_owner == _ident():
            self._frame_owner = None
            self.bus.unlock()

    def chip_select(self, dio, active_low=True):
        """A BlinkaPin for the chip select `dio` (a digitalio.DigitalInOut), driven to its
        idle level, that holds this bus's lock while the chip is selected."""
        return BlinkaPin(dio, BlinkaPin.OUT, None, 1 if active_low else 0, self, active_low)

    def write(self, buf):
        owned = self._begin()
        try:
            self.bus.write(buf)
        finally:
            self._end(owned)

    def readinto(self, buf, write_byte=0):
        owned = self._begin()
        try:
            self.bus.readinto(buf, write_value=write_byte)
        finally:
            self._end(owned)

    def read(self, nbytes, write_byte=0):
        buf = bytearray(nbytes)
        self.readinto(buf, write_byte)
        return bytes(buf)

    def write_readinto(self, wbuf, rbuf):
        if len(wbuf) != len(rbuf):
            raise ValueError("SPI write_readinto: buffers of %d and %d bytes" % (len(wbuf), len(rbuf)))
        owned = self._begin()
        try:
            self.bus.write_readinto(wbuf, rbuf)
        finally:
            self._end(owned)


class BlinkaUART:
    """machine.UART over a Blinka busio.UART (pyserial on Linux). read() and readinto()
    return None when nothing arrived within the UART's timeout, as machine.UART does."""

    def __init__(self, uart):
        self.uart = uart

    def write(self, buf):
        n = self.uart.write(buf)
        return len(buf) if n is None else n

    def any(self):
        return self.uart.in_waiting

    def read(self, nbytes=None):
        if nbytes is None:
            nbytes = self.uart.in_waiting
            if not nbytes:
                return None
        data = self.uart.read(nbytes)
        return bytes(data) if data else None

    def readinto(self, buf, nbytes=None):
        if nbytes is not None and nbytes < len(buf):
            buf = memoryview(buf)[:nbytes]
        n = self.uart.readinto(buf)
        return n if n else None

    def flush(self):
        pass

    def deinit(self):
        self.uart.deinit()


class BlinkaPin:
    """machine.Pin over a Blinka digitalio.DigitalInOut: value(), on(), off(), calling it."""

    IN = 0
    OUT = 1
    OPEN_DRAIN = 2
    PULL_UP = 1
    PULL_DOWN = 2

    def __init__(self, dio, mode=None, pull=None, value=None, spi=None, active_low=True):
        self.dio = dio
        self._spi = spi  # set for a chip select: the bus it frames
        self._active = 0 if active_low else 1
        if mode is not None:
            self.init(mode, pull, value)

    def init(self, mode=None, pull=None, value=None):
        import digitalio

        if mode in (self.OUT, self.OPEN_DRAIN):
            drive = digitalio.DriveMode.OPEN_DRAIN if mode == self.OPEN_DRAIN else digitalio.DriveMode.PUSH_PULL
            self.dio.switch_to_output(value=bool(value) if value is not None else bool(self.dio.value), drive_mode=drive)
        elif mode == self.IN:
            p = {self.PULL_UP: digitalio.Pull.UP, self.PULL_DOWN: digitalio.Pull.DOWN}.get(pull)
            self.dio.switch_to_input(pull=p)
        elif mode is not None:
            raise ValueError("Pin mode must be IN, OUT or OPEN_DRAIN, not %r" % (mode,))

    def value(self, v=None):
        if v is None:
            return 1 if self.dio.value else 0
        v = 1 if v else 0
        spi = self._spi
        if spi is not None and v == self._active:
            spi.frame_begin()  # selected: hold the bus until deselected
        self.dio.value = bool(v)
        if spi is not None and v != self._active:
            spi.frame_end()

    def __call__(self, v=None):
        return self.value(v)

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def __repr__(self):
        return "BlinkaPin(%r)" % (getattr(self.dio, "_pin", self.dio),)


class PiBuses:
    """The Raspberry Pi's default buses, each opened from Blinka's board pins on first use
    and shared afterwards: i2c (board.SCL/SDA), spi (board.SCLK/MOSI/MISO), uart
    (board.TX/RX), and pin(name) for a GPIO such as a chip select ("D5", "CE0")."""

    def __init__(self, i2c_frequency=100000, spi_baudrate=1000000, uart_baudrate=9600, uart_timeout_s=1.0):
        self.i2c_frequency = i2c_frequency
        self.spi_baudrate = spi_baudrate
        self.uart_baudrate = uart_baudrate
        self.uart_timeout_s = uart_timeout_s
        self._i2c = self._spi = self._uart = None

    @property
    def i2c(self):
        if self._i2c is None:
            import board
            import busio

            self._i2c = BlinkaI2C(busio.I2C(board.SCL, board.SDA, frequency=self.i2c_frequency))
        return self._i2c

    @property
    def spi(self):
        if self._spi is None:
            import board
            import busio

            self._spi = BlinkaSPI(busio.SPI(board.SCLK, board.MOSI, board.MISO), self.spi_baudrate)
        return self._spi

    @property
    def uart(self):
        if self._uart is None:
            import board
            import busio

            self._uart = BlinkaUART(
                busio.UART(board.TX, board.RX, baudrate=self.uart_baudrate, timeout=self.uart_timeout_s)
            )
        return self._uart

    def pin(self, name, mode=BlinkaPin.OUT, pull=None, value=1):
        """A GPIO by its board name, as a machine.Pin."""
        import board
        import digitalio

        return BlinkaPin(digitalio.DigitalInOut(getattr(board, name)), mode, pull, value)

    def chip_select(self, name):
        """An SPI chip select by its board name, idle high, framing self.spi."""
        import board
        import digitalio

        return self.spi.chip_select(digitalio.DigitalInOut(getattr(board, name)))

    def deinit(self):
        for bus in (self._i2c, self._spi, self._uart):
            if bus is not None:
                bus.deinit()
        self._i2c = self._spi = self._uart = None


class BlinkaPlatform:
    """What the node asks a board for (the interface of hal.machine_bus.MachinePlatform),
    on a Raspberry Pi gateway: the buses and pins of hal/boards.py's entry for the board,
    opened through Blinka on first use. The UART does not block (timeout 0), as on the
    boards: drivers poll any()."""

    def __init__(self, board_name="pi", buses=None):
        from hal.boards import board

        self.board = board_name
        self.desc = board(board_name)  # fails early on an unknown board
        self.buses = buses if buses is not None else PiBuses(uart_timeout_s=0)
        self._pins = {}

    def bus(self, name, kind=None, baudrate=None):
        from hal.boards import bus_pins

        kind, _, _ = bus_pins(self.board, name)
        if kind == "i2c":
            return self.buses.i2c
        if kind == "spi":
            return self.buses.spi
        if baudrate and self.buses._uart is None:
            self.buses.uart_baudrate = baudrate
        return self.buses.uart

    def pin(self, name):
        pins = self.desc.get("pins", {})
        if name not in pins:
            raise ValueError("board %s has no pin named %r (it has: %s)" % (self.board, name, ", ".join(sorted(pins))))
        if name not in self._pins:
            self._pins[name] = self.buses.pin(pins[name], BlinkaPin.OUT, None, 0)
        return self._pins[name]

    def chip_select(self, bus_name):
        from hal.boards import bus_pins

        kind, _, p = bus_pins(self.board, bus_name)
        if kind != "spi":
            raise ValueError("%s is not an SPI bus" % bus_name)
        key = "cs-" + bus_name
        if key not in self._pins:
            self._pins[key] = self.buses.chip_select(p["cs"])
        return self._pins[key]


_default = None


def default_buses():
    """The process's shared PiBuses (nothing is opened until a bus is used)."""
    global _default
    if _default is None:
        _default = PiBuses()
    return _default


# -- reverse: CircuitPython busio/digitalio over machine.* buses -----------------------


class _Lockable:
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

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.deinit()
        return False


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


class CircuitPythonPin:
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

    def deinit(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class CircuitPythonUART:
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

    def deinit(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
