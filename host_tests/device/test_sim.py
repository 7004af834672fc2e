# The simulator itself: buses, faults, clock and the BME280 model's register behaviour.
# Runs on CPython and inside MicroPython.

from errno import EIO, ENODEV, ETIMEDOUT

from hal import clock
from drivers.bh1750 import BH1750
from hal.sim.bh1750 import SimBH1750
from hal.sim.bme280 import SimBME280
from hal.sim.bus import RegisterDevice, SimDevice, SimI2C, SimPin, SimSPI, SimUART, SimUARTDevice
from hal.sim.environment import Environment, StreetEnvironment
from host_tests.device.support import raises, virtual_clock


def _chip():
    clk = virtual_clock()
    i2c = SimI2C()
    chip = i2c.attach(SimBME280(Environment()), 0x77)
    clk.sleep_ms(3)
    return i2c, chip, clk


# -- clock ---------------------------------------------------------------------------------


def test_virtual_clock_wraps_like_a_board():
    clk = clock.VirtualClock(start_ms=(1 << 30) - 5)
    t0 = clk.ticks_ms()
    clk.sleep_ms(10)
    t1 = clk.ticks_ms()
    assert t1 < t0  # the counter wrapped
    assert clk.ticks_diff(t1, t0) == 10
    assert clk.ticks_diff(t0, t1) == -10
    assert clk.ticks_add(t0, 10) == t1


def test_installed_clock_is_used_by_hal_clock():
    clk = virtual_clock(1000)
    t0 = clock.ticks_ms()
    clock.sleep_ms(250)
    assert clock.ticks_diff(clock.ticks_ms(), t0) == 250
    assert clk.now_ms == 1250
    clock.install(None)
    assert clock.current() is clock.system
    a = clock.ticks_ms()
    clock.sleep_ms(2)
    assert clock.ticks_diff(clock.ticks_ms(), a) >= 1


# -- I2C bus -----------------------------------------------------------------------------


def test_i2c_scan_lists_present_devices_only():
    i2c, chip, clk = _chip()
    other = i2c.attach(RegisterDevice(), 0x23)
    assert i2c.scan() == [0x23, 0x77]
    other.faults.absent = True
    assert i2c.scan() == [0x77]


def test_i2c_address_checks():
    i2c, chip, clk = _chip()
    raises(ValueError, i2c.attach, RegisterDevice(), 0x77)
    raises(ValueError, i2c.attach, RegisterDevice(), 0x78)


def test_i2c_no_ack_is_enodev():
    i2c, chip, clk = _chip()
    raises(ENODEV, i2c.readfrom_mem, 0x76, 0xD0, 1)
    raises(ENODEV, i2c.writeto, 0x10, b"\x00")


def test_i2c_methods_match_machine_i2c():
    i2c, chip, clk = _chip()
    assert i2c.readfrom_mem(0x77, 0xD0, 1) == b"\x60"
    assert i2c.writeto(0x77, b"\xD0") == 1
    assert i2c.readfrom(0x77, 1) == b"\x60"
    buf = bytearray(2)
    i2c.writeto(0x77, b"\x88")
    i2c.readfrom_into(0x77, buf)
    assert buf == chip.regs[0x88:0x8A]
    i2c.writeto_mem(0x77, 0xF5, b"\x10")
    assert i2c.readfrom_mem(0x77, 0xF5, 1) == b"\x10"
    assert [entry[1] for entry in i2c.log] == [
        "read_mem", "write", "read", "write", "read", "write_mem", "read_mem"]


def test_fault_on_nth_transaction_counts_from_now():
    i2c, chip, clk = _chip()
    chip.faults.fail(3, EIO)
    i2c.readfrom_mem(0x77, 0xD0, 1)
    i2c.readfrom_mem(0x77, 0xD0, 1)
    raises(EIO, i2c.readfrom_mem, 0x77, 0xD0, 1)
    assert i2c.readfrom_mem(0x77, 0xD0, 1) == b"\x60"
    chip.faults.fail(1, ETIMEDOUT, count=2)
    raises(ETIMEDOUT, i2c.readfrom_mem, 0x77, 0xD0, 1)
    raises(ETIMEDOUT, i2c.readfrom_mem, 0x77, 0xD0, 1)
    assert i2c.readfrom_mem(0x77, 0xD0, 1) == b"\x60"
    raises(ValueError, chip.faults.fail, 0)


def test_corruption_modes():
    i2c, chip, clk = _chip()
    chip.faults.corrupt(1, "ones")
    assert i2c.readfrom_mem(0x77, 0x88, 3) == b"\xff\xff\xff"
    good = i2c.readfrom_mem(0x77, 0x88, 3)
    chip.faults.corrupt(1, "flip")
    bad = i2c.readfrom_mem(0x77, 0x88, 3)
    assert bytes(a ^ b for a, b in zip(good, bad)) == b"\x01\x02\x04"
    raises(ValueError, chip.faults.corrupt, 1, "melt")


# -- BME280 model ----------------------------------------------------------------------


def test_bme280_model_reset_values_and_chip_ids():
    i2c, chip, clk = _chip()
    assert i2c.readfrom_mem(0x77, 0xF7, 8) == b"\x80\x00\x00\x80\x00\x00\x80\x00"
    assert i2c.readfrom_mem(0x77, 0xF2, 4) == b"\x00\x00\x00\x00"
    i2c.attach(SimBME280(variant="bmp280"), 0x76)
    assert i2c.readfrom_mem(0x76, 0xD0, 1) == b"\x58"
    raises(ValueError, SimBME280, None, (0,) * 18, "bme680")


def test_bme280_model_soft_reset_and_nvm_copy_flag():
    i2c, chip, clk = _chip()
    i2c.writeto_mem(0x77, 0xF5, b"\x08")
    i2c.writeto_mem(0x77, 0xE0, b"\x00")  # not the reset word: ignored
    assert i2c.readfrom_mem(0x77, 0xF5, 1) == b"\x08"
    i2c.writeto_mem(0x77, 0xE0, b"\xb6")
    assert i2c.readfrom_mem(0x77, 0xF3, 1)[0] & 0x01  # im_update while copying
    assert i2c.readfrom_mem(0x77, 0xF5, 1) == b"\x00"
    clk.sleep_ms(2)
    assert i2c.readfrom_mem(0x77, 0xF3, 1) == b"\x00"


def test_bme280_model_ctrl_hum_latched_by_ctrl_meas_write():
    i2c, chip, clk = _chip()
    i2c.writeto_mem(0x77, 0xF2, b"\x01")  # humidity x1, not yet effective
    i2c.writeto_mem(0x77, 0xF4, b"\x25")  # forced, T x1, P x1: latches ctrl_hum
    clk.sleep_ms(10)
    assert i2c.readfrom_mem(0x77, 0xFD, 2) != b"\x80\x00"
    chip.power_cycle()
    clk.sleep_ms(3)
    i2c.writeto_mem(0x77, 0xF4, b"\x25")  # ctrl_hum still 0 when ctrl_meas was written
    i2c.writeto_mem(0x77, 0xF2, b"\x01")  # too late for this conversion
    clk.sleep_ms(10)
    assert i2c.readfrom_mem(0x77, 0xFD, 2) == b"\x80\x00"  # skipped


def test_bme280_model_forced_conversion_timing():
    i2c, chip, clk = _chip()
    i2c.writeto_mem(0x77, 0xF2, b"\x01")
    i2c.writeto_mem(0x77, 0xF4, b"\x25")
    typ_ms = chip.measurement_time_us() / 1000  # 1 + 2 + 2.5 + 2.5 = 8 ms
    assert typ_ms == 8
    clk.sleep_ms(7)
    assert i2c.readfrom_mem(0x77, 0xF3, 1)[0] & 0x08  # measuring
    assert i2c.readfrom_mem(0x77, 0xF7, 3) == b"\x80\x00\x00"  # not yet updated
    assert i2c.readfrom_mem(0x77, 0xF4, 1) == b"\x25"
    clk.sleep_ms(1)
    assert i2c.readfrom_mem(0x77, 0xF3, 1) == b"\x00"
    assert i2c.readfrom_mem(0x77, 0xF4, 1) == b"\x24"  # back to sleep
    assert i2c.readfrom_mem(0x77, 0xF7, 3) != b"\x80\x00\x00"
    assert chip.conversions == 1


def test_bme280_model_oversampling_sets_resolution():
    i2c, chip, clk = _chip()
    i2c.writeto_mem(0x77, 0xF4, b"\x25")  # x1: 16 bits, xlsb always 0
    clk.sleep_ms(10)
    assert i2c.readfrom_mem(0x77, 0xF9, 1)[0] == 0
    assert i2c.readfrom_mem(0x77, 0xFC, 1)[0] == 0
    chip.env.set(temperature=21.37, pressure=1001.11)
    i2c.writeto_mem(0x77, 0xF4, b"\xb5")  # x16: 20 bits
    clk.sleep_ms(80)
    assert i2c.readfrom_mem(0x77, 0xF9, 1)[0] & 0xF0 or i2c.readfrom_mem(0x77, 0xFC, 1)[0] & 0xF0


def test_bme280_model_normal_mode_cycles_with_standby():
    i2c, chip, clk = _chip()
    i2c.writeto_mem(0x77, 0xF2, b"\x01")  # humidity x1: 8 ms per measurement
    i2c.writeto_mem(0x77, 0xF5, b"\xa0")  # t_sb 1000 ms
    i2c.writeto_mem(0x77, 0xF4, b"\x27")  # normal
    i2c.writeto_mem(0x77, 0xF5, b"\x00")  # ignored in normal mode
    assert i2c.readfrom_mem(0x77, 0xF5, 1) == b"\xa0"
    clk.sleep_ms(6)
    assert chip.conversions == 0 and i2c.readfrom_mem(0x77, 0xF3, 1)[0] & 0x08
    clk.sleep_ms(2)
    i2c.readfrom_mem(0x77, 0xF7, 8)
    assert chip.conversions == 1
    clk.sleep_ms(900)
    i2c.readfrom_mem(0x77, 0xF7, 8)
    assert chip.conversions == 1  # still in standby
    clk.sleep_ms(200)
    i2c.readfrom_mem(0x77, 0xF7, 8)
    assert chip.conversions == 2


def test_bme280_model_burst_auto_increments_and_wraps():
    i2c, chip, clk = _chip()
    data = i2c.readfrom_mem(0x77, 0xFE, 3)
    assert data == bytes((0x00, chip.regs[0x00], chip.regs[0x01]))


def test_bme280_model_on_spi_writes_pairs_in_one_frame():
    clk = virtual_clock()
    spi = SimSPI()
    cs = SimPin("cs")
    chip = spi.attach(SimBME280(), cs)
    clk.sleep_ms(3)
    cs.value(0)
    spi.write(bytes((0x75, 0x08, 0x72, 0x01)))  # config = 0x08, ctrl_hum = 1
    cs.value(1)
    assert chip.regs[0xF5] == 0x08 and chip.regs[0xF2] == 0x01
    cs.value(0)
    spi.write(b"\xd0")
    assert spi.read(1) == b"\x60"
    cs.value(1)
    buf = bytearray(3)
    cs.value(0)
    spi.write_readinto(b"\xf2\x00\x00", buf)
    cs.value(1)
    assert buf == bytearray((0xFF, 0x01, 0x00))
    assert spi.transactions == 3


# -- UART, pins, environment -------------------------------------------------------------


class _Echo(SimUARTDevice):
    def __init__(self):
        super().__init__()
        self.pending = bytearray()

    def on_rx(self, data):
        self.pending.extend(data)

    def poll(self, out):
        out.extend(self.pending)
        self.pending = bytearray()


def test_uart_read_write_any_and_overrun():
    clk = virtual_clock()
    uart = SimUART(_Echo(), rxbuf=8)
    assert uart.read(4) is None and uart.any() == 0
    uart.write(b"hello")
    assert uart.any() == 5
    buf = bytearray(3)
    assert uart.readinto(buf) == 3 and buf == b"hel"
    assert uart.read() == b"lo"
    uart.write(b"0123456789")
    assert uart.any() == 8 and uart.overruns == 2
    uart.device.faults.absent = True
    uart.read()
    uart.write(b"zz")
    assert uart.any() == 0


def test_pin_watchers_see_changes():
    seen = []
    pin = SimPin(5, value=0)
    pin.watchers.append(lambda p, v: seen.append(v))
    pin.on()
    pin.on()
    pin(0)
    assert seen == [1, 0] and pin.value() == 0


def test_street_environment_has_a_day():
    env = StreetEnvironment(seed=3, start_hour=0.0)
    night = env.sample("temperature", 3 * 3600000)
    afternoon = env.sample("temperature", 15 * 3600000)
    assert afternoon - night > 10
    assert env.sample("illuminance", 2 * 3600000) < 10 < env.sample("illuminance", 13 * 3600000)
    assert env.sample("pm2_5", 8 * 3600000) > 2 * env.sample("pm2_5", 3 * 3600000)
    assert StreetEnvironment(seed=4).sample("temperature", 0) != env.sample("temperature", 8 * 3600000)
    raises(ValueError, env.set, rain=1)


class _BootClock:
    """A real clock as the unix port has it: ticks counted from the machine's boot, no
    now_ms (here moved by sleep_ms, so that the test is exact). The tick arithmetic is
    hal.clock.VirtualClock's; only its now_ms, which marks a virtual clock, is hidden."""

    def __init__(self, ticks):
        v = clock.VirtualClock(ticks)
        self.ticks_ms, self.ticks_diff, self.ticks_add, self.sleep_ms = v.ticks_ms, v.ticks_diff, v.ticks_add, v.sleep_ms


def test_on_a_real_clock_a_chip_counts_from_its_first_look_across_the_wrap():
    clk = _BootClock((1 << 30) - 1500)  # 12.4 days up: the ticks wrap in 1.5 s
    dev = SimDevice(clk)
    assert dev.elapsed_ms() == 0
    clk.sleep_ms(1000)
    assert dev.elapsed_ms() == 1000
    clk.sleep_ms(1000)
    assert dev.elapsed_ms() == 2000  # across the wrap, still counting up


def test_the_street_keeps_its_own_hour_whatever_the_machines_uptime():
    """A node's street starts at its start_hour (8:00, daylight) on a machine up 13.5 h:
    the chip must not take the uptime for the time of day (21:30, dark)."""
    clk = clock.install(_BootClock(int(13.5 * 3600000)))
    try:
        i2c = SimI2C()
        i2c.attach(SimBH1750(StreetEnvironment(seed=1, start_hour=8.0), clock=clk), 0x23)
        lux = BH1750(i2c, 0x23).read()["illuminance"]
        assert lux > 1000, lux  # 8:00 in the street; 21:30 would read the lamp's 5 lx
    finally:
        clock.install(None)
