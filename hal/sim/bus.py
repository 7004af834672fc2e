# Simulated I2C, SPI and UART buses with the interface of machine.I2C/SPI/UART
# (positional arguments, OSError with ENODEV/EIO/ETIMEDOUT as the boards raise it), a
# log of every transaction, and per-device faults.
#
# The paths a driver calls every cycle (readfrom_mem_into, writeto_mem, SPI frames)
# allocate nothing when the log is off, so heap measurements of a driver on a
# simulated bus measure the driver.

from errno import EIO, ENODEV, ETIMEDOUT

from hal import clock as _clock


class Faults:
    """Fault switches of one simulated device.

    absent:       the device does not answer (I2C: no ACK, OSError ENODEV; SPI: MISO floats high).
    fail(n, errno, count): the n-th transaction from now (1 = the next) and the count-1
                  after it raise OSError(errno) (EIO by default, ETIMEDOUT for clock stretching).
    corrupt(n, mode): the next n reads return damaged bytes: mode "ones" (SDA stuck high,
                  every byte 0xFF) or "flip" (one bit flipped in every byte).
    stuck_busy:   the device's busy/data-ready flag never clears (model-specific).
    """

    def __init__(self):
        self.absent = False
        self.stuck_busy = False
        self._fail_at = 0
        self._fail_left = 0
        self.fail_errno = EIO
        self.corrupt_left = 0
        self.corrupt_mode = "ones"

    def fail(self, n=1, errno=EIO, count=1):
        if n < 1 or count < 1:
            raise ValueError("fail: n and count must be >= 1")
        self._fail_at = n
        self._fail_left = count
        self.fail_errno = errno

    def corrupt(self, n=1, mode="ones"):
        if mode not in ("ones", "flip"):
            raise ValueError("corrupt: mode must be 'ones' or 'flip', not %r" % (mode,))
        self.corrupt_left = n
        self.corrupt_mode = mode

    def clear(self):
        self.__init__()

    def check(self):
        """Called once per transaction; returns the errno to raise, or 0."""
        if self._fail_left:
            self._fail_at -= 1
            if self._fail_at <= 0:
                self._fail_left -= 1
                self._fail_at = 1
                return self.fail_errno
        return 0

    def damage(self, buf):
        if not self.corrupt_left:
            return
        self.corrupt_left -= 1
        ones = self.corrupt_mode == "ones"
        for i in range(len(buf)):
            buf[i] = 0xFF if ones else buf[i] ^ (1 << (i & 7))


class SimDevice:
    """Base of every device model: a clock, faults and a transaction count.

    Byte-level interface used by the buses (override what the chip supports):
      on_write(data)            an I2C write or the bytes an SPI master sent
      on_read_into(buf)         an I2C read continuing from the last write
      read_mem_into(reg, buf)   I2C write of the register address then repeated-start read
      write_mem(reg, data)      I2C write of the register address then data
      spi_read(mosi, start, rbuf)  inside a chip-select frame: fill rbuf with what the chip
                                shifts out for bytes mosi[start:], mosi being the frame so far
      spi_end(mosi)             chip select rose: act on the whole frame (e.g. register writes)
    """

    name = "device"

    def __init__(self, clock=None):
        self.clock = clock if clock is not None else _clock.current()
        self.faults = Faults()
        self.transactions = 0

    _run = None  # on a real clock: [ticks at the last look, ms since the first look]

    def elapsed_ms(self):
        """Simulated time in ms: a VirtualClock's unwrapped now_ms; on a real clock the ms
        since this chip was first asked, unwrapped. Not the ticks themselves: on the unix
        port they count from the machine's boot, so the street's hour of the day (and
        whether it is dark) would be the machine's uptime."""
        clk = self.clock
        if hasattr(clk, "now_ms"):
            return clk.now_ms
        now = clk.ticks_ms()
        run = self._run
        if run is None:
            self._run = [now, 0]
            return 0
        run[1] += clk.ticks_diff(now, run[0])  # small ints, in place: no heap per call
        run[0] = now
        return run[1]

    def on_write(self, data):
        raise OSError(EIO)

    def on_read_into(self, buf):
        raise OSError(EIO)

    def read_mem_into(self, reg, buf):
        self.on_write(bytes((reg,)))
        self.on_read_into(buf)

    def write_mem(self, reg, data):
        self.on_write(bytes((reg,)) + bytes(data))

    def spi_read(self, mosi, start, rbuf):
        for i in range(len(rbuf)):
            rbuf[i] = 0xFF

    def spi_end(self, mosi):
        pass


class RegisterDevice(SimDevice):
    """A chip with an 8-bit register map and address auto-increment (BME280, BH1750-like maps)."""

    def __init__(self, size=256, clock=None):
        super().__init__(clock)
        self.regs = bytearray(size)
        self.pointer = 0

    # Hooks for the model: called before a register is read / after it is written.
    def before_read(self, reg, n):
        pass

    def after_write(self, reg, value):
        self.regs[reg] = value

    def next_reg(self, reg):
        return (reg + 1) & 0xFF

    def read_mem_into(self, reg, buf):
        self.before_read(reg, len(buf))
        regs = self.regs
        for i in range(len(buf)):
            buf[i] = regs[reg]
            reg = self.next_reg(reg)
        self.pointer = reg

    def write_mem(self, reg, data):
        for i in range(len(data)):
            self.after_write(reg, data[i])
            reg = self.next_reg(reg)
        self.pointer = reg

    def on_write(self, data):
        if len(data):
            self.pointer = data[0]
            if len(data) > 1:
                self.write_mem(data[0], memoryview(data)[1:])

    def on_read_into(self, buf):
        self.read_mem_into(self.pointer, buf)


def _raise(errno, what):
    raise OSError(errno, what)


class _Bus:
    def __init__(self, clock=None, log=True):
        self.clock = clock if clock is not None else _clock.current()
        self.log = [] if log else None
        self.transactions = 0

    def _record(self, entry):
        if self.log is not None:
            self.log.append((self.clock.ticks_ms(),) + entry)

    def clear_log(self):
        self.transactions = 0
        if self.log is not None:
            self.log = []


class SimI2C(_Bus):
    """machine.I2C over simulated devices: I2C(…).scan(), readfrom_mem_into(), …

    Each call is one bus transaction (one START … STOP), counted in `transactions`
    and, unless log=False, appended to `log` as (ticks_ms, op, addr, reg, data).
    """

    def __init__(self, clock=None, log=True, freq=400000):
        super().__init__(clock, log)
        self.freq = freq
        self.devices = {}

    def attach(self, device, addr):
        if not 0x08 <= addr <= 0x77:
            raise ValueError("I2C address 0x%02x outside 0x08..0x77" % addr)
        if addr in self.devices:
            raise ValueError("I2C address 0x%02x already taken" % addr)
        self.devices[addr] = device
        return device

    def detach(self, addr):
        return self.devices.pop(addr)

    def _device(self, addr):
        self.transactions += 1
        dev = self.devices.get(addr)
        if dev is None or dev.faults.absent:
            _raise(ENODEV, "I2C: no ACK from 0x%02x" % addr)
        dev.transactions += 1
        err = dev.faults.check()
        if err:
            _raise(err, "I2C: fault at 0x%02x" % addr)
        return dev

    def scan(self):
        self.transactions += 1
        self._record(("scan", None, None, None))
        return [a for a in sorted(self.devices) if not self.devices[a].faults.absent]

    def readfrom_mem_into(self, addr, memaddr, buf):
        dev = self._device(addr)
        dev.read_mem_into(memaddr, buf)
        dev.faults.damage(buf)
        if self.log is not None:
            self._record(("read_mem", addr, memaddr, bytes(buf)))

    def readfrom_mem(self, addr, memaddr, nbytes):
        buf = bytearray(nbytes)
        self.readfrom_mem_into(addr, memaddr, buf)
        return bytes(buf)

    def writeto_mem(self, addr, memaddr, buf):
        dev = self._device(addr)
        dev.write_mem(memaddr, buf)
        if self.log is not None:
            self._record(("write_mem", addr, memaddr, bytes(buf)))

    def readfrom_into(self, addr, buf):
        dev = self._device(addr)
        dev.on_read_into(buf)
        dev.faults.damage(buf)
        if self.log is not None:
            self._record(("read", addr, None, bytes(buf)))

    def readfrom(self, addr, nbytes):
        buf = bytearray(nbytes)
        self.readfrom_into(addr, buf)
        return bytes(buf)

    def writeto(self, addr, buf):
        dev = self._device(addr)
        dev.on_write(buf)
        if self.log is not None:
            self._record(("write", addr, None, bytes(buf)))
        return len(buf)  # machine.I2C.writeto: the number of data bytes ACKed


class SimPin:
    """machine.Pin stand-in: value(), on(), off(), and calling it; watchers see every change."""

    OUT = 1
    IN = 0
    PULL_UP = 1

    def __init__(self, pin_id=None, mode=None, pull=None, value=1):
        self.id = pin_id
        self._value = 1 if value else 0
        self.watchers = []

    def value(self, v=None):
        if v is None:
            return self._value
        v = 1 if v else 0
        if v != self._value:
            self._value = v
            for w in self.watchers:
                w(self, v)

    def __call__(self, v=None):
        return self.value(v)

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def init(self, *args, **kwargs):
        pass

    def __repr__(self):
        return "SimPin(%r)" % (self.id,)


# SimSPI (hal/sim/spi.py) and SimUART, SimUARTDevice (hal/sim/uart.py) live in modules of
# their own, imported the first time one of them is asked for here: a simulated node
# whose sensors are all on I2C does not carry the other buses' code in its heap
# (`python -m streetnode.bench.heap`).
_LAZY = {"SimSPI": "spi", "SimUART": "uart", "SimUARTDevice": "uart"}


def __getattr__(name):
    where = _LAZY.get(name)
    if where is None:
        raise AttributeError(name)
    mod = __import__("hal.sim." + where, None, None, (name,))
    return getattr(mod, name)
