# BME280/BMP280 driver against the simulated chip: runs on CPython (pytest) and inside
# MicroPython (host_tests/test_on_micropython.py).

from errno import EIO, ENODEV, ETIMEDOUT

from drivers.bme280 import BME280
from drivers.bme280 import compensation as comp
from hal.sim.bme280 import DEFAULT_CALIBRATION, SimBME280, encode_calibration
from hal.sim.bus import SimI2C, SimPin, SimSPI
from hal.sim.environment import Environment
from host_tests.device.support import close, heap_allocated, message, raises, virtual_clock

# The BMP280 datasheet's worked example (BST-BMP280-DS001, 3.12).
EXAMPLE_CAL = (27504, 26435, -1000, 36477, -10685, 3024, 2855, 140, -7, 15500, -14600, 6000, 0, 0, 0, 0, 0, 0)


def _setup(variant="bme280", env=None, log=True, **options):
    clk = virtual_clock()
    env = env if env is not None else Environment(temperature=21.53, humidity=45.21, pressure=1013.25)
    i2c = SimI2C(log=log)
    chip = i2c.attach(SimBME280(env, variant=variant), 0x76)
    sensor = BME280(i2c, 0x76, **options)
    return sensor, chip, i2c, env, clk


# -- compensation: datasheet numbers ---------------------------------------------------


def test_datasheet_example_temperature():
    tf = comp.t_fine(EXAMPLE_CAL, 519888)
    assert tf == 128422
    assert comp.temperature_centi(tf) == 2508


def test_datasheet_example_pressure_64_and_32_bit():
    tf = comp.t_fine(EXAMPLE_CAL, 519888)
    # The datasheet gives 100653.27 Pa (double precision); Q24.8 resolves 1/256 Pa.
    q = comp.pressure_q24_8(EXAMPLE_CAL, tf, 415148)
    assert abs(q / 256 - 100653.27) < 0.05, q
    # The 32-bit formula trades a few Pa of accuracy for no 64-bit arithmetic.
    assert abs(comp.pressure_pa_32(EXAMPLE_CAL, tf, 415148) - 100653.27) < 4


def test_pressure_guard_against_division_by_zero():
    cal = list(EXAMPLE_CAL)
    cal[comp.P1] = 0
    assert comp.pressure_q24_8(tuple(cal), 128422, 415148) == 0
    assert comp.pressure_pa_32(tuple(cal), 128422, 415148) == 0


def test_humidity_is_clamped_to_0_and_100():
    cal = DEFAULT_CALIBRATION
    tf = comp.t_fine(cal, 519888)
    assert comp.humidity_q22_10(cal, tf, 0) == 0
    assert comp.humidity_q22_10(cal, tf, 0xFFFF) == 100 * 1024


def test_calibration_nvm_round_trip_with_negative_h4_h5():
    cal = (28000, 26000, 50, 36000, -10000, 3000, 8000, -100, -7, 9900, -10230, 4285, 75, 362, 0, -313, -50, -30)
    tp, h = encode_calibration(cal)
    assert len(tp) == 26 and len(h) == 7
    assert comp.parse_calibration(tp, h) == cal
    assert comp.parse_calibration(tp, None)[12:] == (0, 0, 0, 0, 0, 0)


def test_unpack_adc_assembles_20_and_16_bit_values():
    buf = bytes((0x65, 0x5A, 0xC0, 0x7E, 0xED, 0x00, 0x6E, 0x5B))
    assert comp.unpack_adc(buf) == (0x655AC, 0x7EED0, 0x6E5B)


def test_measurement_time_is_the_datasheet_maximum():
    # Appendix B: 1.25 + 2.3*T + (2.3*P + 0.575) + (2.3*H + 0.575) ms.
    assert comp.measurement_time_max_us(1, 1, 1) == 9300
    assert comp.measurement_time_max_us(16, 16, 16) == 1250 + 3 * 36800 + 2 * 575
    assert comp.measurement_time_max_us(1, 0, 0) == 3550
    sensor = _setup(oversampling_temperature=2, oversampling_pressure=16, oversampling_humidity=1)[0]
    assert sensor.wait_ms == (comp.measurement_time_max_us(2, 16, 1) + 999) // 1000


# -- reading the simulated chip ----------------------------------------------------------


def test_read_returns_the_contract_dict_within_resolution():
    sensor, chip, i2c, env, clk = _setup()
    for t, h, p in ((21.53, 45.21, 1013.25), (-12.4, 88.0, 960.0), (38.0, 12.5, 1040.1), (0.0, 100.0, 1013.25)):
        env.set(temperature=t, humidity=h, pressure=p)
        v = sensor.read()
        assert sorted(v) == ["humidity", "pressure", "temperature"]
        assert close(v["temperature"], t, 0.011), (t, v)
        assert close(v["humidity"], h, 0.03), (h, v)
        assert close(v["pressure"], p, 0.02), (p, v)


def test_forced_read_is_two_transactions_trigger_and_one_burst():
    sensor, chip, i2c, env, clk = _setup()
    i2c.clear_log()
    sensor.read()
    assert i2c.transactions == 2
    (_, op1, addr1, reg1, data1), (_, op2, addr2, reg2, data2) = i2c.log
    assert (op1, addr1, reg1, data1) == ("write_mem", 0x76, 0xF4, bytes(((1 << 5) | (1 << 2) | 1,)))
    assert (op2, addr2, reg2, len(data2)) == ("read_mem", 0x76, 0xF2, 13)


def test_forced_read_waits_the_maximum_time_without_polling():
    sensor, chip, i2c, env, clk = _setup(oversampling_temperature=16, oversampling_pressure=16, oversampling_humidity=16)
    t0 = clk.now_ms
    i2c.clear_log()
    sensor.read()
    assert clk.now_ms - t0 == sensor.wait_ms
    assert i2c.log[1][0] - i2c.log[0][0] == sensor.wait_ms
    assert chip.regs[0xF4] & 0x03 == 0  # back to sleep after the forced conversion


def test_setup_costs_at_most_eight_transactions():
    sensor, chip, i2c, env, clk = _setup()
    assert i2c.transactions <= 8, i2c.log


def test_normal_mode_read_is_one_burst():
    sensor, chip, i2c, env, clk = _setup(mode="normal", standby_ms=0.5)
    clk.sleep_ms(20)
    i2c.clear_log()
    v = sensor.read()
    assert i2c.transactions == 1
    assert close(v["temperature"], 21.53, 0.011)


def test_normal_mode_first_read_before_any_conversion_is_a_clear_error():
    sensor, chip, i2c, env, clk = _setup(mode="normal", standby_ms=1000)
    e = raises(EIO, sensor.read)
    assert "no conversion" in message(e)
    clk.sleep_ms(20)
    assert close(sensor.read()["pressure"], 1013.25, 0.02)


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


def test_edges_of_the_operating_range_read_and_beyond_them_is_damage():
    sensor, chip, i2c, env, clk = _setup()
    for t, p in ((-40.0, 1100.0), (85.0, 300.0), (-10.0, 300.0)):
        env.set(temperature=t, pressure=p)
        v = sensor.read()
        assert close(v["temperature"], t, 0.011) and close(v["pressure"], p, 0.02), (t, p, v)
    env.set(temperature=20.0, pressure=200.0)  # no street is up there: the data are damaged
    e = raises(EIO, sensor.read)
    assert "implausible pressure" in message(e)


def test_bmp280_has_no_humidity_and_reads_ten_bytes():
    sensor, chip, i2c, env, clk = _setup(variant="bmp280")
    assert sensor.chip_id == 0x58
    i2c.clear_log()
    v = sensor.read()
    assert v["humidity"] is None
    assert close(v["temperature"], 21.53, 0.011) and close(v["pressure"], 1013.25, 0.02)
    assert i2c.log[1][2:4] == (0x76, 0xF3) and len(i2c.log[1][4]) == 10


def test_disabled_pressure_channel_is_none():
    sensor, chip, i2c, env, clk = _setup(oversampling_pressure=0)
    v = sensor.read()
    assert v["pressure"] is None and close(v["humidity"], 45.21, 0.03)


def test_iir_filter_smooths_a_step():
    sensor, chip, i2c, env, clk = _setup(iir_filter=16)
    sensor.read()
    env.set(temperature=31.53)
    first = sensor.read()["temperature"]
    assert 21.6 < first < 23.0, first  # one sixteenth of the step
    for _ in range(200):  # (15/16)**200 of the step is left
        last = sensor.read()["temperature"]
    assert close(last, 31.53, 0.02), last


def test_spi_read_is_two_frames():
    clk = virtual_clock()
    spi = SimSPI()
    cs = SimPin("cs", value=1)
    env = Environment(temperature=5.0, humidity=70.0, pressure=990.0)
    spi.attach(SimBME280(env), cs)
    sensor = BME280(spi, cs)
    spi.clear_log()
    v = sensor.read()
    assert spi.transactions == 2
    assert close(v["temperature"], 5.0, 0.011) and close(v["humidity"], 70.0, 0.03)
    assert spi.log[0][4] == bytes((0xF4 & 0x7F, 0x25))  # write: address with bit 7 clear
    assert spi.log[1][4][0] == 0xF2  # read: address with bit 7 set
    assert cs.value() == 1


def test_spi_absent_chip_reads_ones_and_is_named():
    clk = virtual_clock()
    spi = SimSPI()
    cs = SimPin("cs5", value=1)
    e = raises(ENODEV, BME280, spi, cs)
    assert "0xff" in message(e) and "cs5" in message(e)


def test_spi_needs_a_chip_select_pin():
    raises(TypeError, BME280, SimSPI(), 0x76)


# -- identity and options ------------------------------------------------------------------


def test_absent_device_names_the_address():
    clk = virtual_clock()
    e = raises(ENODEV, BME280, SimI2C(), 0x77)
    assert "0x77" in message(e)


def test_wrong_chip_id_is_named():
    sensor, chip, i2c, env, clk = _setup()
    chip.regs[0xD0] = 0x55
    e = raises(ENODEV, BME280, i2c, 0x76)
    assert "0x55" in message(e) and "0x76" in message(e)


def test_blank_calibration_is_refused():
    clk = virtual_clock()
    i2c = SimI2C()
    i2c.attach(SimBME280(calibration=(0,) * 18), 0x76)
    e = raises(EIO, BME280, i2c, 0x76)
    assert "calibration" in message(e)


def test_options_are_validated_with_the_bad_value_named():
    sensor, chip, i2c, env, clk = _setup()
    for kwargs, bad in (
        ({"oversampling_temperature": 3}, "3"),
        ({"oversampling_humidity": 32}, "32"),
        ({"iir_filter": 5}, "5"),
        ({"standby_ms": 7}, "7"),
        ({"mode": "turbo"}, "turbo"),
    ):
        e = raises(ValueError, BME280, i2c, 0x76, **kwargs)
        assert bad in message(e), (kwargs, message(e))
    raises(ValueError, BME280, i2c, 0x76, oversampling_temperature=0)


def test_bmp280_standby_table_differs():
    sensor, chip, i2c, env, clk = _setup(variant="bmp280", mode="normal", standby_ms=4000)
    raises(ValueError, sensor.configure, "normal", 1, 1, 1, 0, 10)


def test_configure_at_run_time_switches_mode():
    sensor, chip, i2c, env, clk = _setup()
    sensor.configure("normal", 2, 4, 1, 4, 0.5)
    assert chip.regs[0xF4] & 0x03 == 3
    assert chip.regs[0xF5] == (0 << 5) | (2 << 2)
    clk.sleep_ms(30)
    assert close(sensor.read()["temperature"], 21.53, 0.011)
    sensor.configure("forced")
    assert close(sensor.read()["temperature"], 21.53, 0.011)


# -- faults: a clear error, then a driver that works again ---------------------------


def test_eio_on_the_nth_transaction_then_recovers():
    sensor, chip, i2c, env, clk = _setup()
    chip.faults.fail(2, EIO)  # the burst read after the trigger
    e = raises(EIO, sensor.read)
    assert "0x76" in message(e)
    assert close(sensor.read()["temperature"], 21.53, 0.011)


def test_clock_stretching_timeout_then_recovers():
    sensor, chip, i2c, env, clk = _setup()
    chip.faults.fail(1, ETIMEDOUT, count=2)
    for _ in range(2):
        raises(ETIMEDOUT, sensor.read)
    assert close(sensor.read()["pressure"], 1013.25, 0.02)


def test_stuck_busy_bit_is_a_timeout_then_recovers():
    sensor, chip, i2c, env, clk = _setup()
    chip.faults.stuck_busy = True
    e = raises(ETIMEDOUT, sensor.read)
    assert "busy" in message(e)
    chip.faults.stuck_busy = False
    assert close(sensor.read()["humidity"], 45.21, 0.03)


def test_bytes_stuck_high_are_detected():
    sensor, chip, i2c, env, clk = _setup()
    chip.faults.corrupt(1, "ones")
    e = raises(EIO, sensor.read)
    assert "damaged" in message(e)
    assert close(sensor.read()["temperature"], 21.53, 0.011)


def test_flipped_bits_never_give_a_wrong_number():
    sensor, chip, i2c, env, clk = _setup()
    for _ in range(3):
        chip.faults.corrupt(1, "flip")
        try:
            v = sensor.read()
        except OSError as e:
            assert e.args[0] == EIO
        else:
            assert close(v["temperature"], 21.53, 0.011) and close(v["pressure"], 1013.25, 0.02), v
    assert close(sensor.read()["temperature"], 21.53, 0.011)


def test_device_that_disappears_and_comes_back_power_cycled():
    sensor, chip, i2c, env, clk = _setup(oversampling_pressure=4, iir_filter=2)
    chip.faults.absent = True
    e = raises(ENODEV, sensor.read)
    assert "0x76" in message(e)
    chip.faults.absent = False
    chip.power_cycle()  # it lost power while away: registers back at reset values
    clk.sleep_ms(5)
    v = sensor.read()
    assert sensor.recoveries == 1
    assert close(v["pressure"], 1013.25, 0.02)
    assert chip.regs[0xF5] == (5 << 5) | (1 << 2)  # standby and filter restored


def test_device_that_disappears_and_comes_back_with_settings_kept():
    sensor, chip, i2c, env, clk = _setup()
    chip.faults.absent = True
    raises(ENODEV, sensor.read)
    raises(ENODEV, sensor.read)
    chip.faults.absent = False
    assert close(sensor.read()["temperature"], 21.53, 0.011)
    assert sensor.recoveries == 0
