# SPS30 driver against the simulated chip (hal/sim/sps30.py): runs on CPython (pytest)
# and inside MicroPython (host_tests/test_on_micropython.py).

import struct
from errno import EIO, ENODEV, ETIMEDOUT

from drivers.sensirion import crc8
from drivers.sps30 import SPS30
from drivers.sps30 import conversion as conv
from hal.sim.bus import SimI2C
from hal.sim.environment import Environment
from hal.sim.sps30 import SimSPS30, derived
from host_tests.device.support import close, heap_allocated, message, raises, virtual_clock

PM = {"pm1_0": 4.98, "pm2_5": 8.02, "pm10": 12.1}


def _setup(env=None, log=True, chip_options=None, **options):
    clk = virtual_clock()
    env = env if env is not None else Environment(**PM)
    i2c = SimI2C(log=log)
    chip = i2c.attach(SimSPS30(env, **(chip_options or {})), 0x69)
    sensor = SPS30(i2c, 0x69, **options)
    return sensor, chip, i2c, env, clk


def _warm(sensor, clk):
    clk.sleep_ms(sensor.warming_up_ms())


def _close_pm(v, expect, tol=0.006):
    return all(close(v[k], expect[k], tol) for k in ("pm1_0", "pm2_5", "pm10"))


def _writes(i2c):
    return [e[4] for e in i2c.log if e[1] == "write"]


# -- conversion ------------------------------------------------------------------------------


def test_ieee754_words_to_floats():
    assert conv.float_from_words(0x4120, 0x0000) == 10.0
    assert conv.float_from_words(0x3F80, 0x0000) == 1.0
    assert conv.float_from_words(0x0000, 0x0000) == 0.0
    assert close(conv.float_from_words(0x4100, 0x51EC), 8.02, 1e-6)
    data = struct.pack(">ff", 8.02, 12.1)
    assert close(conv.float_at(data, 0), 8.02, 1e-6) and close(conv.float_at(data, 1), 12.1, 1e-6)


def test_identity_strings_and_version():
    assert conv.ascii_string(b"00080000") == "00080000"
    assert conv.ascii_string(b"AB12\x00\x00junk") == "AB12"
    assert conv.firmware_version(0x0202) == (2, 2) and conv.firmware_version(0x0100) == (1, 0)
    assert conv.status_problems(0) == []
    assert conv.status_problems(conv.STATUS_FAN_ERROR | conv.STATUS_LASER_ERROR) == [
        "laser current out of range",
        "fan switched on but not running",
    ]


def test_the_model_keeps_masses_and_numbers_cumulative():
    values = derived(4.98, 8.02, 12.1)
    pm1, pm25, pm4, pm10 = values[:4]
    assert pm1 <= pm25 <= pm4 <= pm10 and close(pm4, 9.04, 1e-9)
    numbers = values[4:9]
    assert all(numbers[i] <= numbers[i + 1] for i in range(4))
    assert 30 < numbers[-1] < 100  # street air: tens of particles per cm³
    assert 0.3 < values[9] < 1.0  # typical particle size, µm


# -- set-up --------------------------------------------------------------------------------


def test_setup_identifies_the_sensor_and_starts_float_output():
    sensor, chip, i2c, env, clk = _setup()
    assert sensor.product_type == "00080000"
    assert sensor.serial == "F7C5A2B1D3E4F601" and sensor.firmware == (2, 2)
    assert i2c.transactions == 7, i2c.log
    # "Start Measurement": with big-endian floats is 0x0010, 0x03 0x00, CRC 0xAC.
    assert _writes(i2c) == [b"\xd0\x02", b"\xd0\x33", b"\xd1\x00", b"\x00\x10\x03\x00\xac"]
    assert chip.mode_name == "measurement mode"


def test_absent_sensor_names_the_address():
    clk = virtual_clock()
    e = raises(ENODEV, SPS30, SimI2C(), 0x69)
    assert "0x69" in message(e) and "0xd002" in message(e)


def test_wrong_product_type_is_named():
    clk = virtual_clock()
    i2c = SimI2C()
    i2c.attach(SimSPS30(product_type="00080099"), 0x69)
    e = raises(ENODEV, SPS30, i2c, 0x69)
    assert "00080099" in message(e) and "0x69" in message(e)


def test_a_measurement_left_running_by_an_earlier_boot_is_restarted():
    sensor, chip, i2c, env, clk = _setup()
    again = SPS30(i2c, 0x69, warm_up_ms=0)  # the board rebooted, the fan kept running
    assert chip.refusals == 1  # the start refused in measurement mode, then stop + start
    clk.sleep_ms(1000)
    assert _close_pm(again.read(), PM)


def test_a_sensor_left_asleep_by_an_earlier_boot_is_woken():
    sensor, chip, i2c, env, clk = _setup()
    sensor.sleep()
    assert chip.mode_name == "sleep mode"
    raises(ENODEV, i2c.writeto, 0x69, b"\xd0\x02")
    clk.sleep_ms(500)
    again = SPS30(i2c, 0x69, warm_up_ms=0)
    assert chip.mode_name == "measurement mode"
    clk.sleep_ms(1000)
    assert _close_pm(again.read(), PM)


def test_options_are_validated_naming_the_bad_value():
    sensor, chip, i2c, env, clk = _setup()
    e = raises(ValueError, SPS30, i2c, 0x69, -5)
    assert "-5" in message(e)
    e = raises(ValueError, sensor.set_auto_cleaning_interval, 1 << 32)
    assert str(1 << 32) in message(e)


# -- warm-up and reading ---------------------------------------------------------------------


def test_no_numbers_during_the_warm_up_and_no_bus_traffic():
    sensor, chip, i2c, env, clk = _setup()
    assert sensor.warm_up_ms == 30000 and sensor.warming_up_ms() == 30000
    i2c.clear_log()
    for _ in range(29):
        clk.sleep_ms(1000)
        assert sensor.read() == {"pm1_0": None, "pm2_5": None, "pm10": None}
    assert i2c.transactions == 0
    assert sensor.concentrations()["nc10"] is None
    clk.sleep_ms(1000)
    assert sensor.warming_up_ms() == 0
    assert _close_pm(sensor.read(), PM)


def test_without_warm_up_the_first_values_come_one_second_after_the_start():
    sensor, chip, i2c, env, clk = _setup(warm_up_ms=0)
    clk.sleep_ms(500)
    assert sensor.read()["pm2_5"] is None  # the chip has no values yet (it would send zeros)
    clk.sleep_ms(500)
    assert _close_pm(sensor.read(), PM)


def test_read_returns_the_contract_dict_within_float_precision():
    sensor, chip, i2c, env, clk = _setup()
    _warm(sensor, clk)
    for pm in (PM, {"pm1_0": 0.0, "pm2_5": 0.4, "pm10": 0.9}, {"pm1_0": 180.5, "pm2_5": 260.25, "pm10": 420.0}):
        env.set(**pm)
        clk.sleep_ms(1000)
        v = sensor.read()
        assert sorted(v) == ["pm10", "pm1_0", "pm2_5"]
        assert _close_pm(v, pm), (pm, v)


def test_read_is_four_transactions_flag_and_values():
    sensor, chip, i2c, env, clk = _setup()
    _warm(sensor, clk)
    i2c.clear_log()
    sensor.read()
    assert i2c.transactions == 4
    ops = [(e[1], e[4] if e[1] == "write" else len(e[4])) for e in i2c.log]
    assert ops == [("write", b"\x02\x02"), ("read", 3), ("write", b"\x03\x00"), ("read", 60)]


def test_reading_again_within_a_second_costs_two_transactions_and_agrees():
    sensor, chip, i2c, env, clk = _setup()
    _warm(sensor, clk)
    first = sensor.read()
    i2c.clear_log()
    clk.sleep_ms(300)
    env.set(pm2_5=50.0)  # the chip has not measured since
    assert sensor.read() == first
    assert i2c.transactions == 2
    clk.sleep_ms(700)
    assert close(sensor.read()["pm2_5"], 50.0, 0.001)


def test_all_ten_values():
    sensor, chip, i2c, env, clk = _setup()
    _warm(sensor, clk)
    sensor.measure()
    c = sensor.concentrations()
    assert sorted(c) == sorted(conv.FIELDS)
    expect = derived(4.98, 8.02, 12.1)
    for i, name in enumerate(conv.FIELDS):
        assert close(c[name], expect[i], 0.002 + 1e-6 * expect[i]), (name, c[name], expect[i])


def test_values_twice_agree_and_do_not_touch_the_bus():
    sensor, chip, i2c, env, clk = _setup()
    _warm(sensor, clk)
    sensor.measure()
    n = i2c.transactions
    assert sensor.values() == sensor.values()
    assert i2c.transactions == n


def test_measure_allocates_no_heap_memory():
    sensor, chip, i2c, env, clk = _setup(log=False, warm_up_ms=0)

    def one_second():
        clk.sleep_ms(1000)
        sensor.measure()

    one_second()
    used = heap_allocated(one_second, repeat=10)
    assert used in (None, 0), "measure() allocated %d bytes in 10 calls" % used


# -- modes and maintenance -------------------------------------------------------------------


def test_stop_and_start_again_restarts_the_warm_up():
    sensor, chip, i2c, env, clk = _setup(warm_up_ms=5000)
    _warm(sensor, clk)
    assert _close_pm(sensor.read(), PM)
    sensor.stop()
    assert chip.mode_name == "idle mode" and sensor.warming_up_ms() == 5000
    assert sensor.read()["pm10"] is None  # read() started it again
    assert chip.mode_name == "measurement mode"
    clk.sleep_ms(5000)
    assert _close_pm(sensor.read(), PM)


def test_sleep_and_wake_up():
    sensor, chip, i2c, env, clk = _setup(warm_up_ms=0)
    sensor.sleep()
    assert chip.mode_name == "sleep mode"
    sensor.wake_up()
    assert chip.mode_name == "idle mode"
    sensor.sleep()
    sensor.start()  # wakes it on the way
    assert chip.mode_name == "measurement mode"


def test_sleep_needs_firmware_2():
    sensor, chip, i2c, env, clk = _setup(chip_options={"firmware": (1, 0)})
    e = raises(ValueError, sensor.sleep)
    assert "2.0" in message(e) and "1.0" in message(e)
    e = raises(EIO, i2c.writeto, 0x69, b"\x10\x01")  # the chip refuses it too
    assert "firmware" in message(e)


def test_fan_cleaning_only_while_measuring():
    sensor, chip, i2c, env, clk = _setup()
    sensor.start_fan_cleaning()
    assert chip.fan_cleanings == 1
    assert sensor.status() & conv.STATUS_FAN_CLEANING
    clk.sleep_ms(10000)
    assert not sensor.status() & conv.STATUS_FAN_CLEANING
    sensor.stop()
    raises(EIO, sensor.start_fan_cleaning)
    e = raises(EIO, i2c.writeto, 0x69, b"\x56\x07")
    assert "measurement mode" in message(e)


def test_auto_cleaning_interval_round_trip():
    sensor, chip, i2c, env, clk = _setup()
    assert sensor.auto_cleaning_interval() == 604800
    i2c.clear_log()
    sensor.set_auto_cleaning_interval(345600)  # 4 days = 0x00054600
    frame = b"\x80\x04\x00\x05" + bytes((crc8(b"\x00\x05"),)) + b"\x46\x00" + bytes((crc8(b"\x46\x00"),))
    assert _writes(i2c) == [frame]
    assert sensor.auto_cleaning_interval() == 345600 and chip.auto_cleaning_s == 345600


def test_auto_cleaning_interval_reads_back_late_before_firmware_2_2():
    sensor, chip, i2c, env, clk = _setup(chip_options={"firmware": (2, 1)})
    sensor.set_auto_cleaning_interval(0)
    assert sensor.auto_cleaning_interval() == 604800  # the old value until reset or start
    sensor.reset()
    assert sensor.auto_cleaning_interval() == 0


def test_reset_restarts_a_running_measurement():
    sensor, chip, i2c, env, clk = _setup(warm_up_ms=0)
    sensor.reset()
    assert chip.mode_name == "measurement mode"
    clk.sleep_ms(1000)
    assert _close_pm(sensor.read(), PM)


def test_the_model_refuses_commands_in_the_wrong_mode_and_wrong_crcs():
    sensor, chip, i2c, env, clk = _setup()
    e = raises(EIO, i2c.writeto, 0x69, b"\x10\x01")  # sleep while measuring
    assert "idle mode" in message(e)
    sensor.stop()
    e = raises(EIO, i2c.writeto, 0x69, b"\x02\x02")  # data-ready flag in idle mode
    assert "measurement mode" in message(e)
    e = raises(EIO, i2c.writeto, 0x69, b"\x00\x10\x03\x00\xad")  # start, argument CRC wrong
    assert "CRC" in message(e)
    assert chip.crc_rejects == 1 and chip.mode_name == "idle mode"
    e = raises(EIO, i2c.writeto, 0x69, b"\x00\x10\x04\x00" + bytes((crc8(b"\x04\x00"),)))
    assert "0x0400" in message(e)  # neither float nor integer output
    assert chip.refusals == 3


# -- faults: a clear error, then a driver that works again -----------------------------------------


def test_absent_then_back():
    sensor, chip, i2c, env, clk = _setup()
    _warm(sensor, clk)
    chip.faults.absent = True
    e = raises(ENODEV, sensor.read)
    assert "0x69" in message(e) and "0x0202" in message(e)
    chip.faults.absent = False
    assert _close_pm(sensor.read(), PM)
    assert sensor.recoveries == 0


def test_eio_and_timeout_then_recovers():
    sensor, chip, i2c, env, clk = _setup()
    _warm(sensor, clk)
    chip.faults.fail(4, EIO)  # the 60-byte read
    e = raises(EIO, sensor.read)
    assert "0x69" in message(e) and "0x0300" in message(e)
    clk.sleep_ms(1000)
    assert _close_pm(sensor.read(), PM)
    chip.faults.fail(1, ETIMEDOUT)
    raises(ETIMEDOUT, sensor.read)
    assert _close_pm(sensor.read(), PM)


def test_a_wrong_crc_never_gives_a_number():
    sensor, chip, i2c, env, clk = _setup()
    _warm(sensor, clk)
    good = sensor.read()
    env.set(pm2_5=99.0)
    for mode in ("ones", "flip"):
        clk.sleep_ms(1000)
        chip.faults.corrupt(1, mode)  # the flag's 3 bytes
        e = raises(EIO, sensor.read)
        assert "CRC mismatch in word 0 of 1" in message(e) and "0x0202" in message(e), message(e)
        assert sensor.values() == good  # the last good values, nothing from the damaged read
    clk.sleep_ms(1000)
    assert close(sensor.read()["pm2_5"], 99.0, 0.001)


class _DamageRead:
    """An I2C bus that flips one bit of the n-th read's byte `index` (a glitch on one byte)."""

    def __init__(self, i2c):
        self.i2c = i2c
        self.reads = 0
        self.damage = None  # (read number, byte index)

    def writeto(self, addr, buf):
        return self.i2c.writeto(addr, buf)

    def readfrom_into(self, addr, buf):
        self.i2c.readfrom_into(addr, buf)
        self.reads += 1
        if self.damage is not None and self.damage[0] == self.reads:
            buf[self.damage[1]] ^= 0x01


def test_damaged_values_are_refused_naming_the_word():
    clk = virtual_clock()
    env = Environment(**PM)
    sim = SimI2C()
    chip = sim.attach(SimSPS30(env), 0x69)
    bus = _DamageRead(sim)
    sensor = SPS30(bus, 0x69, warm_up_ms=0)
    clk.sleep_ms(1000)
    good = sensor.read()
    clk.sleep_ms(1000)
    env.set(pm10=30.0)
    bus.damage = (bus.reads + 2, 3 * 7 + 1)  # the values' word 7: PM10's low word
    e = raises(EIO, sensor.read)
    assert "CRC mismatch in word 7 of 20" in message(e) and "0x0300" in message(e), message(e)
    assert sensor.values() == good
    clk.sleep_ms(1000)
    assert close(sensor.read()["pm10"], 30.0, 0.001)


def test_stalled_measurement_is_a_timeout_naming_the_fan():
    sensor, chip, i2c, env, clk = _setup()
    _warm(sensor, clk)
    sensor.read()
    chip.faults.stuck_busy = True
    clk.sleep_ms(2000)
    sensor.read()  # two seconds without a new value: not yet a fault
    clk.sleep_ms(2000)
    e = raises(ETIMEDOUT, sensor.read)
    assert "no new values" in message(e) and "0x69" in message(e)
    chip.faults.stuck_busy = False
    clk.sleep_ms(1000)
    assert _close_pm(sensor.read(), PM)
    chip.fan_error()
    clk.sleep_ms(4000)
    e = raises(ETIMEDOUT, sensor.read)
    assert "fan switched on but not running" in message(e)
    chip.fan_error(False)
    clk.sleep_ms(1000)
    assert _close_pm(sensor.read(), PM)


def test_hung_sensor_until_power_cycled_then_started_again():
    sensor, chip, i2c, env, clk = _setup()
    _warm(sensor, clk)
    assert _close_pm(sensor.read(), PM)
    chip.hang()
    for _ in range(2):
        clk.sleep_ms(1000)
        e = raises(ENODEV, sensor.read)
        assert "0x69" in message(e) and "no ACK" in message(e)
    chip.power_cycle()  # idle mode, fan off
    assert sensor.read()["pm2_5"] is None  # found idle: started again, warming up
    assert sensor.recoveries == 1 and chip.mode_name == "measurement mode"
    _warm(sensor, clk)
    assert _close_pm(sensor.read(), PM)
