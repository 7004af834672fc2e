# SHT4x driver against the simulated chip: runs on CPython (pytest) and inside
# MicroPython (host_tests/test_on_micropython.py).

from errno import EAGAIN, EIO, ENODEV, ETIMEDOUT

from drivers.sht4x import HEATER_COMMANDS, SHT4x
from drivers.sht4x import conversion as conv
from hal.sim.bus import RegisterDevice, SimI2C
from hal.sim.environment import Environment
from hal.sim.sht4x import SimSHT4x
from host_tests.device.support import close, heap_allocated, message, raises, virtual_clock


def _setup(env=None, address=0x44, log=True, slow=False, start_ms=0, **options):
    clk = virtual_clock(start_ms)
    env = env if env is not None else Environment(temperature=21.53, humidity=45.21)
    i2c = SimI2C(log=log)
    chip = i2c.attach(SimSHT4x(env, slow=slow, log=log), address)
    sensor = SHT4x(i2c, address, **options)
    return sensor, chip, i2c, env, clk


# -- conversion: datasheet formulas (4.6) ------------------------------------------------


def test_temperature_formula_end_points_and_midpoint():
    assert conv.temperature_c(0) == -45.0
    assert conv.temperature_c(65535) == 130.0
    # 25 °C is 70/175 of the way: S_T = 0.4 * 65535 = 26214
    assert abs(conv.temperature_c(26214) - 25.0) < 0.002
    assert conv.temperature_milli(0) == -45000 and conv.temperature_milli(65535) == 130000


def test_humidity_formula_is_cropped_to_0_and_100():
    # The raw signal spans -6..119 %RH; the datasheet crops it to the physical range.
    assert conv.humidity_rh(0) == 0.0
    assert conv.humidity_rh(3145) == 0.0  # -6 + 125 * 3145 / 65535 = -0.0014
    assert conv.humidity_rh(65535) == 100.0
    assert abs(conv.humidity_rh(29360) - 50.0) < 0.002  # (50 + 6) / 125 * 65535 = 29359.6
    assert conv.humidity_milli(0) == 0 and conv.humidity_milli(65535) == 100000


def test_integer_and_float_conversions_agree():
    for raw in (0, 1, 3146, 12345, 26214, 29360, 50000, 65534, 65535):
        assert abs(conv.temperature_milli(raw) / 1000 - conv.temperature_c(raw)) < 0.001, raw
        assert abs(conv.humidity_milli(raw) / 1000 - conv.humidity_rh(raw)) < 0.001, raw


def test_ticks_for_inverts_the_formulas():
    st, srh = conv.ticks_for(21.53, 45.21)
    assert abs(conv.temperature_c(st) - 21.53) < 0.002
    assert abs(conv.humidity_rh(srh) - 45.21) < 0.001
    assert conv.ticks_for(-50.0, -10.0) == (0, 0)
    assert conv.ticks_for(200.0, 150.0) == (0xFFFF, 0xFFFF)


def test_waits_are_the_datasheet_maxima_rounded_up():
    # 8.3 / 4.5 / 1.6 ms (table 7)
    assert (conv.wait_ms("high"), conv.wait_ms("medium"), conv.wait_ms("low")) == (9, 5, 2)


# -- reading --------------------------------------------------------------------------------


def test_read_returns_the_contract_dict_within_resolution():
    sensor, chip, i2c, env, clk = _setup()
    for t, h in ((21.53, 45.21), (-12.4, 88.0), (38.0, 12.5), (-40.0, 0.0), (125.0, 100.0)):
        env.set(temperature=t, humidity=h)
        v = sensor.read()
        assert sorted(v) == ["humidity", "temperature"]
        assert close(v["temperature"], t, 0.0035), (t, v)  # 175/65535 = 0.0027 °C per tick
        assert close(v["humidity"], h, 0.0025), (h, v)  # 125/65535 = 0.0019 %RH per tick


def test_read_is_two_transactions_command_then_six_bytes():
    sensor, chip, i2c, env, clk = _setup()
    i2c.clear_log()
    sensor.read()
    assert i2c.transactions == 2
    (t1, op1, addr1, reg1, data1), (t2, op2, addr2, reg2, data2) = i2c.log
    assert (op1, addr1, data1) == ("write", 0x44, b"\xfd")
    assert (op2, addr2, len(data2)) == ("read", 0x44, 6)
    assert t2 - t1 == 9  # the maximum duration of a high-precision measurement


def test_each_precision_sends_its_command_and_waits_its_maximum():
    for precision, cmd, wait in (("high", 0xFD, 9), ("medium", 0xF6, 5), ("low", 0xE0, 2)):
        sensor, chip, i2c, env, clk = _setup(precision=precision, slow=True)  # the chip takes the maximum
        t0 = clk.now_ms
        v = sensor.read()
        assert clk.now_ms - t0 == wait, precision
        assert chip.commands[-1] == cmd
        assert close(v["temperature"], 21.53, 0.0035)


def test_a_read_before_the_measurement_is_done_is_nacked_and_named():
    sensor, chip, i2c, env, clk = _setup()
    sensor.start()
    clk.sleep_ms(3)  # the chip needs 6.9 ms typically
    e = raises(ETIMEDOUT, sensor.fetch)
    assert "still measuring" in message(e) and "0x44" in message(e) and "3 ms" in message(e)
    clk.sleep_ms(6)
    sensor.fetch()  # the result waits for us, once
    assert close(sensor.values()["humidity"], 45.21, 0.0025)
    raises(ETIMEDOUT, sensor.fetch)  # read already: nothing more to read


def test_measure_allocates_no_heap_memory():
    sensor, chip, i2c, env, clk = _setup(log=False)
    sensor.measure()  # warm-up
    used = heap_allocated(sensor.measure, repeat=20)
    assert used in (None, 0), "measure() allocated %d bytes in 20 calls" % used


def test_values_twice_agree_and_do_not_touch_the_bus():
    sensor, chip, i2c, env, clk = _setup()
    sensor.measure()
    n = i2c.transactions
    assert sensor.values() == sensor.values()
    assert i2c.transactions == n
    st, srh = sensor.raw()
    assert (st, srh) == conv.ticks_for(21.53, 45.21)


def test_serial_number_is_read_at_construction():
    sensor, chip, i2c, env, clk = _setup()
    assert sensor.serial_number == chip.serial
    assert chip.commands[0] == 0x89


def test_soft_reset_then_reading():
    sensor, chip, i2c, env, clk = _setup()
    sensor.reset()
    assert chip.commands[-1] == 0x94
    assert close(sensor.read()["temperature"], 21.53, 0.0035)


def test_other_addresses():
    for address in (0x45, 0x46):
        sensor, chip, i2c, env, clk = _setup(address=address)
        assert close(sensor.read()["temperature"], 21.53, 0.0035)


# -- identity and options ----------------------------------------------------------------------


def test_absent_device_names_the_address():
    clk = virtual_clock()
    e = raises(ENODEV, SHT4x, SimI2C(), 0x45)
    assert "0x45" in message(e)


def test_a_chip_that_is_not_an_sht4x_is_refused():
    clk = virtual_clock()
    i2c = SimI2C()
    other = i2c.attach(RegisterDevice(), 0x44)  # e.g. an INA219: a register pointer, no CRCs
    for i in range(256):
        other.regs[i] = i
    e = raises(EIO, SHT4x, i2c)
    assert "CRC" in message(e) and "not an SHT4x" in message(e)


def test_damaged_serial_number_is_an_error_not_an_identity():
    clk = virtual_clock()
    i2c = SimI2C()
    chip = i2c.attach(SimSHT4x(), 0x44)
    chip.faults.corrupt(1, "flip")
    e = raises(EIO, SHT4x, i2c)
    assert "serial" in message(e)
    assert SHT4x(i2c).serial_number == chip.serial


def test_options_are_validated_with_the_bad_value_named():
    sensor, chip, i2c, env, clk = _setup()
    e = raises(ValueError, SHT4x, i2c, 0x44, "ultra")
    assert "ultra" in message(e)
    e = raises(ValueError, SHT4x, i2c, 0x44, "high", 0.5)
    assert "0.5" in message(e)
    raises(ValueError, SHT4x, i2c, 0x44, "high", 0)
    e = raises(ValueError, sensor.heat, 50, 1000)
    assert "50" in message(e)
    e = raises(ValueError, sensor.heat, 200, 500)
    assert "500" in message(e)
    assert chip.commands.count(0x39) == 0  # nothing was sent


# -- faults: a clear error, then a driver that works again -------------------------------------


def test_crc_errors_never_give_a_number():
    sensor, chip, i2c, env, clk = _setup()
    for mode in ("ones", "flip", "flip", "ones"):
        chip.faults.corrupt(1, mode)
        e = raises(EIO, sensor.read)
        assert "CRC" in message(e) and "0x44" in message(e), message(e)
    assert close(sensor.read()["temperature"], 21.53, 0.0035)


def test_eio_on_the_nth_transaction_then_recovers():
    sensor, chip, i2c, env, clk = _setup()
    chip.faults.fail(2, EIO)  # the result read
    e = raises(EIO, sensor.read)
    assert "0x44" in message(e) and "read" in message(e)
    assert close(sensor.read()["humidity"], 45.21, 0.0025)
    chip.faults.fail(1, ETIMEDOUT, count=2)  # clock stretching on the command
    raises(ETIMEDOUT, sensor.read)
    raises(ETIMEDOUT, sensor.read)
    assert close(sensor.read()["humidity"], 45.21, 0.0025)


def test_hung_chip_is_named_and_works_after_a_power_cycle():
    sensor, chip, i2c, env, clk = _setup()
    chip.hang()
    for _ in range(3):
        e = raises(ENODEV, sensor.read)
        assert "hung" in message(e) and "0x44" in message(e)
    chip.power_cycle()
    clk.sleep_ms(1)  # power-up time
    assert close(sensor.read()["temperature"], 21.53, 0.0035)


def test_chip_that_hangs_while_measuring_is_a_timeout():
    sensor, chip, i2c, env, clk = _setup()
    wait = sensor.start()
    chip.faults.stuck_busy = True  # the measurement never ends
    clk.sleep_ms(wait)
    e = raises(ETIMEDOUT, sensor.fetch)
    assert "power-cycle" in message(e)
    chip.power_cycle()
    clk.sleep_ms(1)
    assert close(sensor.read()["humidity"], 45.21, 0.0025)


class _SoftI2C(SimI2C):
    """A bit-banged machine.SoftI2C: a NACKed data byte is not raised, writeto returns
    the number of data bytes ACKed (here: none, as if the chip refused the command)."""

    refuse = False

    def writeto(self, addr, buf):
        if self.refuse:
            self.transactions += 1  # the address is ACKed, the first data byte is not
            return 0
        return super().writeto(addr, buf)


def test_a_refused_command_byte_on_a_soft_i2c_is_an_error():
    clk = virtual_clock()
    i2c = _SoftI2C()
    i2c.attach(SimSHT4x(), 0x44)
    sensor = SHT4x(i2c)
    i2c.refuse = True
    e = raises(EIO, sensor.read)
    assert "not acknowledged" in message(e) and "0x44" in message(e)
    i2c.refuse = False
    assert close(sensor.read()["temperature"], 20.0, 0.0035)


def test_device_that_disappears_and_comes_back():
    sensor, chip, i2c, env, clk = _setup()
    chip.faults.absent = True
    e = raises(ENODEV, sensor.read)
    assert "0x44" in message(e)
    chip.faults.absent = False
    env.set(temperature=30.0)
    assert close(sensor.read()["temperature"], 30.0, 0.0035)


# -- heater (4.9) ---------------------------------------------------------------------------------


def test_heater_commands_table():
    assert HEATER_COMMANDS == {
        (200, 1000): 0x39,
        (200, 100): 0x32,
        (110, 1000): 0x2F,
        (110, 100): 0x24,
        (20, 1000): 0x1E,
        (20, 100): 0x15,
    }
    for (power, duration), cmd in HEATER_COMMANDS.items():
        sensor, chip, i2c, env, clk = _setup()
        t0 = clk.now_ms
        sensor.heat(power, duration)
        assert chip.commands[-1] == cmd
        assert clk.now_ms - t0 == (1100 if duration == 1000 else 110) + 9  # heating max + measurement


def test_heater_warms_the_reading_then_it_cools():
    sensor, chip, i2c, env, clk = _setup()
    i2c.clear_log()
    hot = sensor.heat(200, 1000)
    assert i2c.transactions == 2
    assert hot["temperature"] > 21.53 + 20, hot  # the heated die, not the air
    assert hot["humidity"] < 45.21 / 3, hot  # the same water vapour at a higher temperature
    clk.sleep_ms(500)
    warm = sensor.read()
    assert 21.53 < warm["temperature"] < hot["temperature"]
    clk.sleep_ms(10000)
    assert close(sensor.read()["temperature"], 21.53, 0.01)
    # Less power, shorter pulse: less warming.
    mild = sensor.heat(20, 100)
    assert 21.53 < mild["temperature"] < 21.53 + 1.0, mild


def test_heater_duty_cycle_limit_is_enforced():
    sensor, chip, i2c, env, clk = _setup()
    assert sensor.heater_ready_in_ms() == 0
    sensor.heat(200, 1000)  # started at t0, waited 1109 ms
    left = sensor.heater_ready_in_ms()
    assert left == 11000 - 1109, left  # 1.1 s at most on, 10 %: 11 s from start to start
    n = len(chip.commands)
    e = raises(EAGAIN, sensor.heat, 20, 100)
    assert "duty cycle" in message(e) and str(left) in message(e)
    assert len(chip.commands) == n  # nothing sent
    assert close(sensor.read()["temperature"], 21.53, 40)  # plain readings go on
    clk.sleep_ms(sensor.heater_ready_in_ms())
    assert sensor.heater_ready_in_ms() == 0
    sensor.heat(200, 100)
    assert sensor.heater_ready_in_ms() == 1100 - 119


def test_heater_duty_cycle_stays_under_the_limit_when_heating_whenever_allowed():
    for duty in (0.1, 0.05):
        sensor, chip, i2c, env, clk = _setup(heater_duty_max=duty, log=False)
        t0 = clk.now_ms
        pulses = 0
        while clk.now_ms - t0 < 120000:
            if sensor.heater_ready_in_ms() == 0:
                sensor.heat(200, 1000 if pulses % 2 else 100)
                pulses += 1
            else:
                sensor.read()
                clk.sleep_ms(250)
        elapsed = clk.now_ms - t0
        assert pulses >= 2
        assert chip.heater_on_ms <= duty * elapsed, (duty, chip.heater_on_ms, elapsed)


def test_heater_lock_survives_the_tick_counter_wrapping():
    sensor, chip, i2c, env, clk = _setup(start_ms=(1 << 30) - 500)
    sensor.heat(110, 1000)
    assert clk.ticks_ms() < 1000  # wrapped during the pulse
    assert sensor.heater_ready_in_ms() == 11000 - 1109
    clk.sleep_ms(9891)
    assert sensor.heater_ready_in_ms() == 0
