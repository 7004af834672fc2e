"""hal.blinka: the Pi's adapters (Blinka busio/digitalio -> machine.*) against fakes
that record every call, and the reverse adapters of the peer tests and benchmarks
(machine.* -> CircuitPython busio/digitalio, streetnode.bench.circuitpython) against
the simulator's buses."""

import sys
import types
from errno import EACCES, EIO, ENODEV, ETIMEDOUT

import pytest

from drivers.bme280 import BME280
from hal import blinka, clock
from hal.blinka import BlinkaI2C, BlinkaPin, BlinkaSPI, BlinkaUART, PiBuses
from hal.sim.bme280 import SimBME280
from hal.sim.bus import RegisterDevice, SimI2C, SimPin, SimSPI, SimUART, SimUARTDevice
from hal.sim.environment import Environment
from streetnode.bench import circuitpython
from streetnode.bench.circuitpython import CircuitPythonI2C, CircuitPythonPin, CircuitPythonSPI, CircuitPythonUART
from streetnode.common import mpy
from streetnode.common.paths import REPO


@pytest.fixture(autouse=True)
def virtual_clock():
    clk = clock.install(clock.VirtualClock())
    yield clk
    clock.install(None)


# -- fakes of Blinka's objects ---------------------------------------------------------


class FakeBusio:
    """Records (method, args, locked-at-call-time) for every call; `fail` maps a method
    name to the OSError errno it raises; `busy` is how many try_lock() calls fail first."""

    def __init__(self, busy=0, fail=None):
        self.calls = []
        self.locked = False
        self.busy = busy
        self.fail = fail or {}
        self.lock_attempts = 0
        self.deinited = False

    def try_lock(self):
        self.lock_attempts += 1
        if self.busy:
            self.busy -= 1
            return False
        if self.locked:
            return False
        self.locked = True
        return True

    def unlock(self):
        self.calls.append(("unlock", (), self.locked))
        self.locked = False

    def deinit(self):
        self.deinited = True

    def _call(self, name, *args, **kwargs):
        self.calls.append((name, args + tuple(sorted(kwargs.items())), self.locked))
        if name in self.fail:
            raise OSError(self.fail[name], "fake %s failed" % name)

    def ops(self):
        return [c for c in self.calls if c[0] != "unlock"]


class FakeBusioI2C(FakeBusio):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.answer = b""

    def scan(self):
        self._call("scan")
        return [0x44, 0x76]

    def writeto(self, address, buffer, *, start=0, end=None):
        self._call("writeto", address, bytes(buffer))

    def readfrom_into(self, address, buffer, *, start=0, end=None):
        self._call("readfrom_into", address, len(buffer))
        buffer[:] = self.answer[: len(buffer)]

    def writeto_then_readfrom(self, address, out, into, *, out_start=0, out_end=None, in_start=0, in_end=None):
        self._call("writeto_then_readfrom", address, bytes(out), len(into))
        into[:] = self.answer[: len(into)]


class FakeBusioSPI(FakeBusio):
    def configure(self, *, baudrate=100000, polarity=0, phase=0, bits=8):
        self._call("configure", baudrate=baudrate, polarity=polarity, phase=phase, bits=bits)

    def write(self, buf, start=0, end=None):
        self._call("write", bytes(buf))

    def readinto(self, buf, start=0, end=None, write_value=0):
        self._call("readinto", len(buf), write_value)
        for i in range(len(buf)):
            buf[i] = 0xA5

    def write_readinto(self, out, into, out_start=0, out_end=None, in_start=0, in_end=None):
        self._call("write_readinto", bytes(out))
        into[:] = bytes(reversed(bytes(out)))


class FakeDigitalInOut:
    def __init__(self, pin=None):
        self.pin = pin
        self.value = False
        self.history = []

    def switch_to_output(self, value=False, drive_mode=None):
        self.history.append(("output", value, repr(drive_mode)))
        self.value = value

    def switch_to_input(self, pull=None):
        self.history.append(("input", repr(pull)))


def fake_digitalio():
    return types.SimpleNamespace(
        DigitalInOut=FakeDigitalInOut, Direction=circuitpython.Direction, Pull=circuitpython.Pull, DriveMode=circuitpython.DriveMode
    )


class ValueLog:
    """A digitalio-like chip select that logs its levels and the bus lock state."""

    def __init__(self, bus):
        self.bus = bus
        self.levels = []
        self._value = True

    @property
    def value(self):
        return self._value

    @value.setter
    def value(self, v):
        self._value = v
        self.levels.append((v, self.bus.locked))

    def switch_to_output(self, value=False, drive_mode=None):
        self._value = value


# -- forward: BlinkaI2C ----------------------------------------------------------------


def test_blinka_i2c_register_read_is_one_locked_write_then_read():
    bus = FakeBusioI2C()
    bus.answer = b"\x60\x01\x02"
    i2c = BlinkaI2C(bus)
    buf = bytearray(3)
    i2c.readfrom_mem_into(0x76, 0xD0, buf)
    assert bus.ops() == [("writeto_then_readfrom", (0x76, b"\xd0", 3), True)]
    assert buf == b"\x60\x01\x02"
    assert bus.calls[-1] == ("unlock", (), True) and not bus.locked
    assert i2c.readfrom_mem(0x76, 0xD0, 1) == b"\x60"


def test_blinka_i2c_every_call_is_its_own_locked_transaction():
    bus = FakeBusioI2C()
    bus.answer = b"\x11\x22"
    i2c = BlinkaI2C(bus)
    i2c.writeto_mem(0x76, 0xF4, b"\x25\x26")
    assert i2c.writeto(0x76, b"\x01\x02\x03") == 3
    got = bytearray(2)
    i2c.readfrom_into(0x76, got)
    assert i2c.readfrom(0x76, 1) == b"\x11"
    assert i2c.scan() == [0x44, 0x76]
    assert [c[:2] for c in bus.ops()] == [
        ("writeto", (0x76, b"\xf4\x25\x26")),  # register and data in one START..STOP
        ("writeto", (0x76, b"\x01\x02\x03")),
        ("readfrom_into", (0x76, 2)),
        ("readfrom_into", (0x76, 1)),
        ("scan", ()),
    ]
    assert all(locked for _, _, locked in bus.ops())
    assert [c[0] for c in bus.calls] == ["writeto", "unlock"] * 2 + ["readfrom_into", "unlock"] * 2 + ["scan", "unlock"]
    assert got == b"\x11\x22"


def test_blinka_i2c_writeto_mem_longer_than_the_scratch_buffer():
    bus = FakeBusioI2C()
    data = bytes(range(40))
    BlinkaI2C(bus).writeto_mem(0x50, 0x00, data)
    assert bus.ops()[0][1] == (0x50, b"\x00" + data)


@pytest.mark.parametrize(
    "linux_errno,expected",
    [(121, ENODEV), (6, ENODEV), (ENODEV, ENODEV), (EIO, EIO), (ETIMEDOUT, ETIMEDOUT), (11, EIO), (71, EIO), (74, EIO)],
    ids=["EREMOTEIO", "ENXIO", "ENODEV", "EIO", "ETIMEDOUT", "EAGAIN", "EPROTO", "EBADMSG"],
)
def test_blinka_i2c_maps_linux_errnos_to_machine_i2c_ones(linux_errno, expected):
    bus = FakeBusioI2C(fail={"writeto_then_readfrom": linux_errno, "writeto": linux_errno})
    i2c = BlinkaI2C(bus)
    with pytest.raises(OSError) as info:
        i2c.readfrom_mem_into(0x76, 0xD0, bytearray(1))
    assert info.value.args[0] == expected
    assert "0x76" in str(info.value)
    assert info.value.__context__ is None  # no chained traceback
    assert not bus.locked  # released on the error path too
    with pytest.raises(OSError) as info:
        i2c.writeto_mem(0x76, 0xF4, b"\x01")
    assert info.value.args[0] == expected
    assert not bus.locked


def test_blinka_i2c_keeps_a_host_problem_errno():
    bus = FakeBusioI2C(fail={"readfrom_into": EACCES})
    with pytest.raises(OSError) as info:
        BlinkaI2C(bus).readfrom_into(0x76, bytearray(1))
    assert info.value.args[0] == EACCES  # permission on /dev/i2c-1 is not a faulty sensor
    assert not bus.locked


def test_blinka_i2c_waits_for_a_busy_lock_then_times_out():
    bus = FakeBusioI2C(busy=3)
    bus.answer = b"\x60"
    i2c = BlinkaI2C(bus, lock_timeout_s=5.0)
    assert i2c.readfrom_mem(0x76, 0xD0, 1) == b"\x60"
    assert bus.lock_attempts == 4
    bus.busy = 10**9
    slow = BlinkaI2C(bus, lock_timeout_s=0.01)
    with pytest.raises(OSError) as info:
        slow.scan()
    assert info.value.args[0] == ETIMEDOUT and "locked" in str(info.value)
    assert bus.ops()[-1][0] == "writeto_then_readfrom"  # the scan never reached the bus


def test_our_bme280_driver_through_blinka_i2c_over_the_reverse_adapter():
    # drivers.bme280 -> BlinkaI2C -> CircuitPythonI2C -> SimI2C: the round trip keeps
    # the transaction count (a register read stays one repeated-start transaction).
    i2c = SimI2C()
    i2c.attach(SimBME280(Environment(temperature=21.53, humidity=45.21, pressure=1013.25)), 0x76)
    sensor = BME280(BlinkaI2C(CircuitPythonI2C(i2c)), 0x76)
    i2c.clear_log()
    v = sensor.read()
    assert abs(v["temperature"] - 21.53) <= 0.011 and abs(v["pressure"] - 1013.25) <= 0.02
    assert i2c.transactions == 2
    # On the wire a register write is one write of [register, value]: Blinka has no writeto_mem.
    assert [e[1:4] for e in i2c.log] == [("write", 0x76, None), ("read_mem", 0x76, 0xF2)]
    assert i2c.log[0][4] == bytes((0xF4, (1 << 5) | (1 << 2) | 1))
    with pytest.raises(OSError) as info:
        BME280(BlinkaI2C(CircuitPythonI2C(i2c)), 0x77)
    assert info.value.args[0] == ENODEV and "0x77" in str(info.value)


# -- forward: BlinkaSPI, BlinkaPin, BlinkaUART -----------------------------------------


def test_blinka_spi_locks_and_configures_around_each_call():
    bus = FakeBusioSPI()
    spi = BlinkaSPI(bus, baudrate=2000000, polarity=1, phase=1)
    spi.write(b"\x01\x02")
    buf = bytearray(2)
    spi.readinto(buf, 0xFF)
    assert spi.read(1) == b"\xa5"
    out = bytearray(3)
    spi.write_readinto(b"\x01\x02\x03", out)
    assert buf == b"\xa5\xa5" and out == b"\x03\x02\x01"
    names = [c[0] for c in bus.calls]
    assert names == ["configure", "write", "unlock", "configure", "readinto", "unlock", "configure", "readinto", "unlock",
                     "configure", "write_readinto", "unlock"]
    assert bus.calls[0][1] == (("baudrate", 2000000), ("bits", 8), ("phase", 1), ("polarity", 1))
    assert bus.calls[4][1] == (2, 0xFF)  # write_byte became write_value
    assert all(locked for _, _, locked in bus.calls)
    with pytest.raises(ValueError):
        spi.write_readinto(b"\x01", bytearray(2))


def test_blinka_spi_chip_select_holds_the_lock_for_the_whole_frame(monkeypatch):
    monkeypatch.setitem(sys.modules, "digitalio", fake_digitalio())
    bus = FakeBusioSPI()
    spi = BlinkaSPI(bus)
    dio = ValueLog(bus)
    cs = spi.chip_select(dio)
    assert cs.value() == 1 and not bus.locked
    cs.value(0)
    spi.write(b"\xd0")
    spi.readinto(bytearray(1), 0)
    cs.value(1)
    # One lock and one configure for the frame, the CS edges inside the locked region.
    assert [c[0] for c in bus.calls] == ["configure", "write", "readinto", "unlock"]
    assert dio.levels == [(False, True), (True, True)]
    assert not bus.locked
    spi.write(b"\x00")  # outside a frame: locked per call again
    assert [c[0] for c in bus.calls][-3:] == ["configure", "write", "unlock"]


def test_our_bme280_driver_over_blinka_spi_and_pins_over_the_reverse_adapters(monkeypatch):
    monkeypatch.setitem(sys.modules, "digitalio", fake_digitalio())
    spi = SimSPI()
    cs = SimPin("cs")
    spi.attach(SimBME280(Environment(temperature=-5.0, humidity=80.0, pressure=990.0)), cs)
    bus = CircuitPythonSPI(spi)
    blinka_spi = BlinkaSPI(bus)
    sensor = BME280(blinka_spi, blinka_spi.chip_select(CircuitPythonPin(cs)))
    spi.clear_log()
    v = sensor.read()
    assert abs(v["temperature"] + 5.0) <= 0.011 and abs(v["humidity"] - 80.0) <= 0.03
    assert spi.transactions == 2 and not bus._locked


def test_blinka_pin_is_a_machine_pin(monkeypatch):
    monkeypatch.setitem(sys.modules, "digitalio", fake_digitalio())
    dio = FakeDigitalInOut("D5")
    pin = BlinkaPin(dio, BlinkaPin.OUT, None, 1)
    assert dio.history == [("output", True, "digitalio.DriveMode.PUSH_PULL")]
    assert pin.value() == 1 and pin() == 1
    pin.off()
    assert dio.value is False and pin.value() == 0
    pin.on()
    pin(0)
    assert dio.value is False
    pin.init(BlinkaPin.IN, BlinkaPin.PULL_UP)
    pin.init(BlinkaPin.OPEN_DRAIN, None, 0)
    assert dio.history[1:] == [("input", "digitalio.Pull.UP"), ("output", False, "digitalio.DriveMode.OPEN_DRAIN")]
    with pytest.raises(ValueError):
        pin.init(7)


class FakeBusioUART:
    def __init__(self, incoming=b""):
        self.incoming = bytearray(incoming)
        self.written = []

    @property
    def in_waiting(self):
        return len(self.incoming)

    def read(self, nbytes=None):
        n = len(self.incoming) if nbytes is None else nbytes
        out, self.incoming = bytes(self.incoming[:n]), self.incoming[n:]
        return out  # pyserial: b"" on timeout

    def readinto(self, buf):
        n = min(len(buf), len(self.incoming))
        buf[:n] = self.incoming[:n]
        self.incoming = self.incoming[n:]
        return n

    def write(self, buf):
        self.written.append(bytes(buf))
        return len(buf)

    def deinit(self):
        pass


def test_blinka_uart_returns_none_like_machine_uart_when_nothing_came():
    fake = FakeBusioUART(b"\x42\x4d\x00\x1c")
    uart = BlinkaUART(fake)
    assert uart.any() == 4
    assert uart.read(2) == b"\x42\x4d"
    buf = bytearray(8)
    assert uart.readinto(buf, 1) == 1 and buf[0] == 0
    assert uart.read() == b"\x1c"
    assert uart.read() is None and uart.read(4) is None and uart.readinto(buf) is None
    assert uart.write(b"\x42\x4d\xe1\x00\x00\x01\x70") == 7 and fake.written == [b"\x42\x4d\xe1\x00\x00\x01\x70"]


# -- forward: the Pi's default buses, opened lazily ------------------------------------


def _fake_blinka(monkeypatch):
    opened = []

    class I2C(FakeBusioI2C):
        def __init__(self, scl, sda, frequency=100000):
            super().__init__()
            opened.append(("I2C", scl, sda, frequency))

    class SPI(FakeBusioSPI):
        def __init__(self, clock, MOSI=None, MISO=None):
            super().__init__()
            opened.append(("SPI", clock, MOSI, MISO))

    class UART(FakeBusioUART):
        def __init__(self, tx, rx, baudrate=9600, timeout=1):
            super().__init__()
            opened.append(("UART", tx, rx, baudrate, timeout))

    board = types.SimpleNamespace(SCL="SCL", SDA="SDA", SCLK="SCLK", MOSI="MOSI", MISO="MISO", TX="TX", RX="RX",
                                  CE0="CE0", D5="D5")
    monkeypatch.setitem(sys.modules, "board", board)
    monkeypatch.setitem(sys.modules, "busio", types.SimpleNamespace(I2C=I2C, SPI=SPI, UART=UART))
    monkeypatch.setitem(sys.modules, "digitalio", fake_digitalio())
    return opened


def test_pi_buses_open_each_bus_on_first_use_and_share_it(monkeypatch):
    opened = _fake_blinka(monkeypatch)
    buses = PiBuses(i2c_frequency=400000, uart_baudrate=9600, uart_timeout_s=0.5)
    assert opened == []
    i2c = buses.i2c
    assert isinstance(i2c, BlinkaI2C) and buses.i2c is i2c
    assert opened == [("I2C", "SCL", "SDA", 400000)]
    assert isinstance(buses.spi, BlinkaSPI) and isinstance(buses.uart, BlinkaUART)
    assert opened[1:] == [("SPI", "SCLK", "MOSI", "MISO"), ("UART", "TX", "RX", 9600, 0.5)]
    cs = buses.chip_select("CE0")
    assert cs.dio.pin == "CE0" and cs.value() == 1
    led = buses.pin("D5", BlinkaPin.OUT, None, 0)
    assert led.dio.pin == "D5" and led.value() == 0
    assert len(opened) == 3  # the pins reused the open SPI bus
    spi_bus = buses.spi.bus
    buses.deinit()
    assert spi_bus.deinited and buses._i2c is None
    assert blinka.default_buses() is blinka.default_buses()


def test_blinka_platform_serves_the_pi_board_by_name(monkeypatch):
    opened = _fake_blinka(monkeypatch)
    platform = blinka.BlinkaPlatform("pi")
    assert opened == []
    assert isinstance(platform.bus("i2c1"), BlinkaI2C) and platform.bus("i2c1") is platform.bus("i2c1")
    uart = platform.bus("uart0", baudrate=9600)
    assert isinstance(uart, BlinkaUART)
    assert opened == [("I2C", "SCL", "SDA", 100000), ("UART", "TX", "RX", 9600, 0)]  # never blocks
    cs = platform.chip_select("spi0")
    assert cs is platform.chip_select("spi0") and cs.dio.pin == "CE0" and cs.value() == 1
    monkeypatch.setattr(sys.modules["board"], "D17", "D17", raising=False)
    power = platform.pin("pm_power")
    assert power.dio.pin == "D17" and power.value() == 0 and platform.pin("pm_power") is power
    with pytest.raises(ValueError, match="no pin named 'led'"):
        platform.pin("led")
    with pytest.raises(ValueError, match="no i2c0"):
        platform.bus("i2c0")
    with pytest.raises(ValueError, match="not an SPI bus"):
        platform.chip_select("i2c1")
    with pytest.raises(ValueError):
        blinka.BlinkaPlatform("no-such-board")


def test_module_imports_and_reverse_adapters_work_without_blinka():
    code = (
        "import sys\n"
        "for name in ('busio', 'digitalio', 'board', 'adafruit_blinka'):\n"
        "    sys.modules[name] = None  # import raises ImportError\n"
        "from hal.blinka import default_buses\n"
        "from streetnode.bench.circuitpython import CircuitPythonI2C\n"
        "from hal.sim.bus import SimI2C, RegisterDevice\n"
        "i2c = SimI2C(); i2c.attach(RegisterDevice(), 0x40)\n"
        "bus = CircuitPythonI2C(i2c); assert bus.try_lock(); print(bus.scan())\n"
        "buses = default_buses()\n"
        "try:\n"
        "    buses.i2c\n"
        "except ImportError:\n"
        "    print('no blinka')\n"
    )
    import subprocess

    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:2] == ["[64]", "no blinka"]


def test_reverse_adapters_also_run_on_micropython():
    code = (
        "from streetnode.bench.circuitpython import CircuitPythonI2C, CircuitPythonPin\n"
        "from hal.sim.bus import SimI2C, SimPin, RegisterDevice\n"
        "i2c = SimI2C(); dev = i2c.attach(RegisterDevice(), 0x40); dev.regs[0x10] = 0x5A\n"
        "bus = CircuitPythonI2C(i2c); bus.try_lock()\n"
        "out = bytearray(3); bus.writeto_then_readfrom(0x40, b'\\x00\\x10', out, out_start=1, in_start=1, in_end=2)\n"
        "pin = CircuitPythonPin(SimPin('cs')); pin.switch_to_output(value=True)\n"
        "print(bus.scan(), list(out), pin.value, i2c.transactions)\n"
    )
    proc = mpy.run_code(code, path=[REPO / "tools"], capture=True, timeout=600)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert proc.stdout.strip() == "[64] [0, 90, 0] True 2"


# -- reverse: CircuitPythonI2C ---------------------------------------------------------


def _sim_i2c():
    i2c = SimI2C()
    dev = i2c.attach(RegisterDevice(), 0x40)
    for i in range(16):
        dev.regs[0x20 + i] = 0xA0 + i
    return i2c, dev


def test_circuitpython_i2c_needs_the_lock_like_circuitpython():
    i2c, _ = _sim_i2c()
    bus = CircuitPythonI2C(i2c)
    with pytest.raises(RuntimeError):
        bus.scan()
    with pytest.raises(RuntimeError):
        bus.writeto(0x40, b"\x00")
    assert bus.try_lock() is True
    assert bus.try_lock() is False
    bus.unlock()
    assert bus.try_lock() is True
    assert i2c.transactions == 0


def test_circuitpython_i2c_scan_lists_the_devices_that_answer():
    i2c, _ = _sim_i2c()
    absent = i2c.attach(RegisterDevice(), 0x44)
    i2c.attach(RegisterDevice(), 0x23)
    absent.faults.absent = True
    bus = CircuitPythonI2C(i2c)
    bus.try_lock()
    assert bus.scan() == [0x23, 0x40]
    assert bus.probe(0x40) is True and bus.probe(0x44) is False and bus.probe(0x10) is False


def test_circuitpython_i2c_one_byte_write_then_read_is_one_repeated_start_read():
    i2c, _ = _sim_i2c()
    bus = CircuitPythonI2C(i2c)
    bus.try_lock()
    into = bytearray(4)
    i2c.clear_log()
    bus.writeto_then_readfrom(0x40, bytes((0x22,)), into)
    assert into == bytes((0xA2, 0xA3, 0xA4, 0xA5))
    assert i2c.transactions == 1
    assert [e[1:4] for e in i2c.log] == [("read_mem", 0x40, 0x22)]


def test_circuitpython_i2c_longer_write_then_read_is_write_plus_read():
    i2c, dev = _sim_i2c()
    bus = CircuitPythonI2C(i2c)
    bus.try_lock()
    into = bytearray(2)
    i2c.clear_log()
    bus.writeto_then_readfrom(0x40, b"\x21\x77", into)  # a command with an argument, then the answer
    assert [e[1] for e in i2c.log] == ["write", "read"] and i2c.transactions == 2
    assert i2c.log[0][4] == b"\x21\x77"
    assert dev.regs[0x21] == 0x77 and into == bytes((0xA2, 0xA3))


def test_circuitpython_i2c_start_end_slicing():
    i2c, dev = _sim_i2c()
    bus = CircuitPythonI2C(i2c)
    bus.try_lock()
    i2c.clear_log()
    # The register sits in the middle of a bigger buffer; only a window of `into` is filled.
    out = bytearray(b"\xff\x24\xff")
    into = bytearray(b"\x00" * 6)
    bus.writeto_then_readfrom(0x40, out, into, out_start=1, out_end=2, in_start=2, in_end=5)
    assert into == bytes((0, 0, 0xA4, 0xA5, 0xA6, 0))
    assert i2c.log[-1][1:4] == ("read_mem", 0x40, 0x24)
    # writeto with start/end sends only the slice; end beyond the buffer is clamped.
    bus.writeto(0x40, b"\x99\x30\x01\x02\x99", start=1, end=4)
    assert i2c.log[-1][4] == b"\x30\x01\x02" and dev.regs[0x30:0x32] == b"\x01\x02"
    bus.writeto(0x40, b"\x99\x32\x03", start=1, end=1000)
    assert i2c.log[-1][4] == b"\x32\x03"
    # readfrom_into continues from the register pointer into the window only.
    got = bytearray(b"\xee" * 4)
    bus.writeto(0x40, b"\x20")
    bus.readfrom_into(0x40, got, start=1, end=3)
    assert got == bytes((0xEE, 0xA0, 0xA1, 0xEE))
    # start/end of a one-byte window keep the one-transaction path.
    n = i2c.transactions
    bus.writeto_then_readfrom(0x40, b"\x00\x20\x00", bytearray(1), out_start=1, out_end=2)
    assert i2c.transactions == n + 1


def test_circuitpython_i2c_passes_the_bus_errors_through():
    i2c, dev = _sim_i2c()
    bus = CircuitPythonI2C(i2c)
    bus.try_lock()
    with pytest.raises(OSError) as info:
        bus.writeto(0x41, b"\x00")
    assert info.value.args[0] == ENODEV
    dev.faults.fail(1, ETIMEDOUT)
    with pytest.raises(OSError) as info:
        bus.writeto_then_readfrom(0x40, b"\x20", bytearray(1))
    assert info.value.args[0] == ETIMEDOUT


def test_adafruit_bus_device_runs_on_circuitpython_i2c():
    from adafruit_bus_device.i2c_device import I2CDevice

    i2c, _ = _sim_i2c()
    bus = CircuitPythonI2C(i2c)
    device = I2CDevice(bus, 0x40)  # probes with an empty write
    got = bytearray(2)
    with device as d:
        d.write_then_readinto(bytes((0x2E,)), got)
    assert got == bytes((0xAE, 0xAF)) and not bus._locked
    with pytest.raises(ValueError):
        I2CDevice(bus, 0x50)


# -- reverse: CircuitPythonSPI and CircuitPythonPin --------------------------------------


class EchoDevice(RegisterDevice):
    """Shifts out, for every byte, the byte received before it (0xFF first)."""

    def spi_read(self, mosi, start, rbuf):
        for i in range(len(rbuf)):
            rbuf[i] = mosi[start + i - 1] if start + i else 0xFF


def _sim_spi():
    spi = SimSPI()
    cs = SimPin("cs")
    spi.attach(EchoDevice(), cs)
    return spi, cs


def test_circuitpython_spi_transfers_with_slicing_inside_a_cs_frame():
    spi, cs = _sim_spi()
    bus = CircuitPythonSPI(spi)
    pin = CircuitPythonPin(cs)
    pin.switch_to_output(value=True)
    with pytest.raises(RuntimeError):
        bus.write(b"\x00")
    assert bus.try_lock()
    bus.configure(baudrate=1000000, polarity=0, phase=0)
    assert bus.frequency == 1000000
    pin.value = False
    bus.write(b"\xee\x01\x02\xee", start=1, end=3)
    into = bytearray(4)
    bus.readinto(into, start=1, end=3, write_value=0x5A)
    out = bytearray(3)
    bus.write_readinto(b"\x07\x08\x09", out, out_start=0, out_end=2, in_start=1)
    pin.value = True
    bus.unlock()
    assert spi.log[-1][1:] == ("frame", "cs", None, b"\x01\x02\x5a\x5a\x07\x08")
    assert into == bytes((0, 0x02, 0x5A, 0)) and out == bytes((0, 0x5A, 0x07))
    assert spi.transactions == 1
    bus.try_lock()
    with pytest.raises(ValueError):
        bus.write_readinto(b"\x01\x02", bytearray(3))
    with pytest.raises(ValueError):
        bus.configure(polarity=2)


def test_circuitpython_spi_configure_reaches_a_board_bus_init():
    class BoardSPI:
        def __init__(self):
            self.inits = []

        def init(self, **kwargs):
            self.inits.append(kwargs)

    board = BoardSPI()
    bus = CircuitPythonSPI(board)
    bus.try_lock()
    bus.configure(baudrate=100000)  # the settings it already has: no re-init
    bus.configure(baudrate=500000, polarity=1, phase=1)
    assert board.inits == [{"baudrate": 500000, "polarity": 1, "phase": 1, "bits": 8}]


def test_circuitpython_pin_is_a_digital_in_out():
    sim = SimPin("d5", value=0)
    seen = []
    sim.watchers.append(lambda p, v: seen.append(v))
    pin = CircuitPythonPin(sim)
    assert repr(pin.direction) == "digitalio.Direction.INPUT" and pin.pull is None
    with pytest.raises(AttributeError):
        pin.value = True  # CircuitPython refuses to drive an input
    pin.switch_to_output(value=True)
    assert pin.value is True and sim.value() == 1 and seen == [1]
    pin.value = False
    assert sim.value() == 0 and repr(pin.drive_mode) == "digitalio.DriveMode.PUSH_PULL"
    with pytest.raises(AttributeError):
        pin.pull
    pin.drive_mode = circuitpython.DriveMode.OPEN_DRAIN
    assert pin.drive_mode is circuitpython.DriveMode.OPEN_DRAIN and pin.value is False
    pin.switch_to_input(pull=circuitpython.Pull.UP)
    assert pin.pull is circuitpython.Pull.UP and pin.direction is circuitpython.Direction.INPUT
    with pytest.raises(AttributeError):
        pin.drive_mode
    with pytest.raises(ValueError):
        pin.direction = "sideways"


def test_circuitpython_pin_accepts_blinkas_own_enums():
    import digitalio  # Blinka's module (Adafruit-Blinka is pinned in the test extra)

    pin = CircuitPythonPin(SimPin("d6", value=0))
    pin.direction = digitalio.Direction.OUTPUT
    assert pin.direction is circuitpython.Direction.OUTPUT
    pin.switch_to_output(value=True, drive_mode=digitalio.DriveMode.OPEN_DRAIN)
    assert pin.drive_mode is circuitpython.DriveMode.OPEN_DRAIN
    pin.switch_to_input(pull=digitalio.Pull.DOWN)
    assert pin.pull is circuitpython.Pull.DOWN


def test_adafruit_spi_device_frames_through_the_reverse_adapters():
    from adafruit_bus_device.spi_device import SPIDevice

    spi, cs = _sim_spi()
    cs.value(0)  # SPIDevice must drive it back to idle high
    cs.value(1)
    spi.clear_log()
    device = SPIDevice(CircuitPythonSPI(spi), CircuitPythonPin(cs), baudrate=500000)
    got = bytearray(2)
    with device as bus:
        bus.write(b"\x80")
        bus.readinto(got, write_value=0x11)
    assert got == bytes((0x80, 0x11)) and spi.transactions == 1 and cs.value() == 1


# -- reverse: CircuitPythonUART ------------------------------------------------------------


class Ticker(SimUARTDevice):
    """Sends b"tick N\\n" every `every_ms` of simulated time; records what it received."""

    def __init__(self, every_ms=100, limit=None):
        super().__init__()
        self.every_ms = every_ms
        self.limit = limit
        self.sent = 0
        self.received = []

    def on_rx(self, data):
        self.received.append(data)

    def poll(self, out):
        while (self.sent + 1) * self.every_ms <= self.elapsed_ms() and self.sent != self.limit:
            self.sent += 1
            out.extend(b"tick %d\n" % self.sent)


def test_circuitpython_uart_read_waits_in_simulated_time(virtual_clock):
    dev = Ticker(every_ms=100)
    uart = CircuitPythonUART(SimUART(dev), timeout=1.0)
    assert uart.in_waiting == 0
    assert uart.read(7) == b"tick 1\n"
    assert virtual_clock.now_ms == 100  # waited for the device, no real time passed
    assert uart.readline() == b"tick 2\n"
    assert uart.read(14) == b"tick 3\ntick 4\n"
    virtual_clock.advance(250)
    assert uart.in_waiting == 14
    uart.reset_input_buffer()
    assert uart.in_waiting == 0
    buf = bytearray(10)
    assert uart.readinto(buf, 3) == 3 and buf[:3] == b"tic"
    assert uart.write(b"\x42\x4d") == 2 and dev.received == [b"\x42\x4d"]


def test_circuitpython_uart_times_out_with_none(virtual_clock):
    dev = Ticker(every_ms=10000)
    uart = CircuitPythonUART(SimUART(dev), timeout=0.5)
    start = virtual_clock.now_ms
    assert uart.read(4) is None
    assert 500 <= virtual_clock.now_ms - start <= 502
    assert uart.readinto(bytearray(4)) is None and uart.readline() is None
    virtual_clock.advance(10000 - (virtual_clock.now_ms - start))
    assert uart.read(32) == b"tick 1\n"  # fewer than asked: what came before the line went quiet
    assert uart.read() is None


def test_circuitpython_uart_read_everything_until_quiet(virtual_clock):
    # read() without a count takes everything until the line is quiet for `timeout`,
    # across more than one internal chunk, and stops with the sender.
    dev = Ticker(every_ms=2, limit=12)
    uart = CircuitPythonUART(SimUART(dev, rxbuf=4096), timeout=0.005)
    virtual_clock.advance(4)
    data = uart.read()
    assert data == b"".join(b"tick %d\n" % i for i in range(1, 13))
    assert 24 + 5 <= virtual_clock.now_ms <= 24 + 6
