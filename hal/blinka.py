# The Raspberry Pi gateway's buses: the CircuitPython busio/digitalio objects that
# Adafruit Blinka implements on Linux, given the interface of MicroPython's machine.I2C,
# machine.SPI, machine.UART and machine.Pin (positional arguments, OSError with an errno).
#
# Forward (a Raspberry Pi gateway runs our drivers on CPython):
#     buses = default_buses()               # opens nothing yet
#     sensor = BME280(buses.i2c, 0x76)      # busio.I2C(board.SCL, board.SDA), wrapped
#     BlinkaI2C / BlinkaSPI / BlinkaUART / BlinkaPin wrap busio/digitalio objects;
#     BlinkaPlatform serves the node its buses by name ("i2c1", "spi0", "uart0").
#
# Blinka is only imported when a default bus is opened, so this module imports without
# it. (The reverse direction, CircuitPython drivers on our buses, serves the peer tests
# and benchmarks: tools/streetnode/bench/circuitpython.py.)

from errno import EIO, ENODEV, ETIMEDOUT


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
