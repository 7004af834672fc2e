# SCD4x driver against the simulated chip (hal/sim/scd4x.py): runs on CPython (pytest)
# and inside MicroPython (host_tests/test_on_micropython.py).

from errno import EIO, ENODEV, ETIMEDOUT

from drivers.scd4x import SCD4x
from drivers.scd4x import conversion as conv
from drivers.sensirion import crc8
from hal.sim.bus import SimI2C
from hal.sim.environment import Environment
from hal.sim.scd4x import SimSCD4x, raw_humidity, raw_temperature
from host_tests.device.support import close, heap_allocated, message, raises, virtual_clock


def _setup(env=None, log=True, powered_for_ms=1000, variant="scd41", variant_command=True, **options):
    clk = virtual_clock()
    env = env if env is not None else Environment(co2=612.0, temperature=21.53, humidity=45.21, pressure=1013.25)
    i2c = SimI2C(log=log)
    chip = i2c.attach(SimSCD4x(env, variant=variant, variant_command=variant_command), 0x62)
    clk.sleep_ms(powered_for_ms)  # the chip needs 1 s from power-up to idle (3.1)
    sensor = SCD4x(i2c, 0x62, **options)
    return sensor, chip, i2c, env, clk


def _writes(i2c):
    return [e[4] for e in i2c.log if e[1] == "write"]


def _next(sensor, clk):
    """The next periodic value: wait until it is due (read() itself never waits)."""
    clk.sleep_ms(sensor.ready_in_ms())
    return sensor.read()


# -- conversion: datasheet numbers ---------------------------------------------------------


def test_read_measurement_example_of_the_datasheet():
    # 3.5.2: 0x01f4 0x33 / 0x6667 0xa2 / 0x5eb9 0x3c is 500 ppm, 25 °C, 37 %RH (the
    # datasheet's example divides by 2**16, the formula by 65535: 25.0027 °C).
    assert close(conv.temperature_c(0x6667), 25.0, 0.003)
    assert close(conv.humidity_rh(0x5EB9), 37.0, 0.002)
    assert conv.temperature_c(0) == -45.0 and conv.temperature_c(0xFFFF) == 130.0
    assert conv.humidity_rh(0xFFFF) == 100.0


def test_setting_words_of_the_datasheet_examples():
    assert conv.temperature_offset_word(5.4) == 0x07E6  # 3.6.1
    assert conv.altitude_word(1950) == 0x079E  # 3.6.3
    assert conv.ambient_pressure_word(987.4) == 987  # hPa, Pa / 100
    assert close(conv.temperature_offset_c(0x07E6), 5.4, 0.002)
    for bad, fn in ((25, conv.temperature_offset_word), (-1, conv.temperature_offset_word),
                    (650, conv.ambient_pressure_word), (1300, conv.ambient_pressure_word),
                    (-5, conv.altitude_word), (3500, conv.altitude_word)):
        e = raises(ValueError, fn, bad)
        assert str(bad) in message(e)


def test_data_ready_looks_at_the_lower_11_bits():
    assert not conv.data_ready(0x8000) and not conv.data_ready(0x0000) and not conv.data_ready(0xF800)
    assert conv.data_ready(0x8006) and conv.data_ready(0x0001) and conv.data_ready(0x0400)


def test_serial_variant_and_frc_words():
    assert conv.serial_number(0x0C7A, 0x4F6E, 0x3B21) == 0x0C7A4F6E3B21
    assert conv.variant_name(0x0000) == "SCD40" and conv.variant_name(0x1000) == "SCD41"
    assert conv.variant_name(0x5000) == "SCD43" and "0x2" in conv.variant_name(0x2000)
    assert conv.frc_correction_ppm(0x8000 + 25) == 25 and conv.frc_correction_ppm(0x8000 - 30) == -30
    assert conv.frc_correction_ppm(0xFFFF) is None


def test_model_encoding_round_trips_through_the_driver_conversion():
    for t in (-10.0, 0.0, 21.53, 45.0):
        assert close(conv.temperature_c(raw_temperature(t)), t, 175 / 65535)
    for rh in (0.0, 45.21, 99.9):
        assert close(conv.humidity_rh(raw_humidity(rh)), rh, 100 / 65535)


# -- set-up ------------------------------------------------------------------------------------


def test_setup_stops_reads_serial_and_variant_then_starts_in_six_transactions():
    sensor, chip, i2c, env, clk = _setup()
    assert i2c.transactions == 6, i2c.log
    assert sensor.serial == 0x0C7A4F6E3B21 and sensor.variant == "SCD41"
    assert _writes(i2c) == [b"\x3f\x86", b"\x36\x82", b"\x20\x2f", b"\x21\xb1"]
    assert chip.state_name == "periodic measurement"


def test_a_measurement_left_running_by_an_earlier_boot_is_stopped_first():
    sensor, chip, i2c, env, clk = _setup()
    # The board reboots; the sensor kept measuring and refuses get_serial_number now.
    raises(EIO, i2c.writeto, 0x62, b"\x36\x82")
    assert chip.refusals == 1
    again = SCD4x(i2c, 0x62)
    assert again.serial == sensor.serial
    assert _next(again, clk)["co2"] == 612


def test_a_sensor_still_powering_up_is_waited_for():
    sensor, chip, i2c, env, clk = _setup(powered_for_ms=0)  # board and sensor powered together
    assert sensor.serial == 0x0C7A4F6E3B21
    assert _next(sensor, clk)["co2"] == 612


def test_firmware_without_the_variant_command_gives_none():
    sensor, chip, i2c, env, clk = _setup(variant="scd40", variant_command=False)
    assert sensor.variant is None
    assert _next(sensor, clk)["co2"] == 612


def test_absent_sensor_names_the_address():
    clk = virtual_clock()
    e = raises(ENODEV, SCD4x, SimI2C(), 0x62)
    assert "0x62" in message(e)


def test_blank_serial_number_is_not_an_scd4x():
    clk = virtual_clock()
    i2c = SimI2C()
    i2c.attach(SimSCD4x(serial=0), 0x62)
    clk.sleep_ms(1000)
    e = raises(ENODEV, SCD4x, i2c, 0x62)
    assert "serial" in message(e) and "0x62" in message(e)


def test_options_are_validated_naming_the_bad_value():
    sensor, chip, i2c, env, clk = _setup()
    e = raises(ValueError, SCD4x, i2c, 0x62, "turbo")
    assert "turbo" in message(e)
    e = raises(ValueError, sensor.set_ambient_pressure, 1500)
    assert "1500" in message(e)
    e = raises(ValueError, sensor.set_temperature_offset, 30)
    assert "30" in message(e)


# -- reading ---------------------------------------------------------------------------------


def test_read_returns_the_contract_dict_within_resolution():
    sensor, chip, i2c, env, clk = _setup()
    for co2, t, rh in ((612.0, 21.53, 45.21), (420.0, -8.2, 91.0), (1800.0, 35.7, 12.5)):
        env.set(co2=co2, temperature=t, humidity=rh)
        v = _next(sensor, clk)
        assert sorted(v) == ["co2", "humidity", "temperature"]
        assert v["co2"] == int(co2 + 0.5), v
        assert close(v["temperature"], t, 0.005), v
        assert close(v["humidity"], rh, 0.005), v


def test_read_is_two_transactions_read_measurement_and_nine_bytes():
    sensor, chip, i2c, env, clk = _setup()
    _next(sensor, clk)
    clk.sleep_ms(5000)
    i2c.clear_log()
    sensor.read()
    assert i2c.transactions == 2
    (_, op1, addr1, _, data1), (_, op2, addr2, _, data2) = i2c.log
    assert (op1, addr1, data1) == ("write", 0x62, b"\xec\x05")
    assert (op2, addr2, len(data2)) == ("read", 0x62, 9)
    assert i2c.log[1][0] - i2c.log[0][0] == 1  # the command's 1 ms execution time


def test_read_never_waits_and_asks_the_chip_only_when_a_value_is_due():
    sensor, chip, i2c, env, clk = _setup()
    t0 = clk.now_ms
    i2c.clear_log()
    assert sensor.read() == {"co2": None, "temperature": None, "humidity": None}  # first value at 5 s
    assert i2c.transactions == 0 and clk.now_ms == t0
    assert sensor.ready_in_ms() == 5000
    clk.sleep_ms(5000)
    first = sensor.read()
    assert first["co2"] == 612 and i2c.transactions == 2 and clk.now_ms - t0 == 5001
    env.set(co2=700.0)
    clk.sleep_ms(3000)
    assert sensor.read() == first  # the chip has nothing newer yet: the same value, no bus
    assert i2c.transactions == 2
    clk.sleep_ms(2000)
    assert sensor.read()["co2"] == 700 and i2c.transactions == 4
    clk.sleep_ms(60000)
    t1 = clk.now_ms
    assert sensor.read()["co2"] == 700 and clk.now_ms - t1 == 1  # the 1 ms execution time
    assert sensor.ready_in_ms() == 5000 - 1


def test_every_new_value_is_a_new_measurement():
    sensor, chip, i2c, env, clk = _setup()
    n = chip.measurements
    for co2 in (500.0, 900.0, 1300.0):
        env.set(co2=co2)
        assert _next(sensor, clk)["co2"] == co2
    assert chip.measurements == n + 3


def test_values_twice_agree_and_do_not_touch_the_bus():
    sensor, chip, i2c, env, clk = _setup()
    clk.sleep_ms(5000)
    assert sensor.measure() is True
    n = i2c.transactions
    assert sensor.values() == sensor.values()
    co2, t, rh = sensor.raw()
    assert co2 == 612 and close(conv.temperature_c(t), 21.53, 0.005) and rh == raw_humidity(45.21)
    assert i2c.transactions == n


def test_measure_allocates_no_heap_memory():
    sensor, chip, i2c, env, clk = _setup(log=False)

    def next_value():
        clk.sleep_ms(5000)
        sensor.measure()

    next_value()
    used = heap_allocated(next_value, repeat=10)
    assert used in (None, 0), "measure() allocated %d bytes in 10 fetches" % used
    used = heap_allocated(sensor.measure, repeat=10)  # nothing due: no bus, no allocation
    assert used in (None, 0), "measure() allocated %d bytes in 10 calls" % used


def test_data_ready_status():
    sensor, chip, i2c, env, clk = _setup()
    assert not sensor.data_ready()
    clk.sleep_ms(5000)
    assert sensor.data_ready()
    sensor.measure()
    assert not sensor.data_ready()  # read-out empties the buffer


# -- pressure compensation ---------------------------------------------------------------------


def test_ambient_pressure_is_sent_in_hpa_with_its_crc_during_measurement():
    sensor, chip, i2c, env, clk = _setup()
    i2c.clear_log()
    sensor.set_ambient_pressure(987.4)  # e.g. a BME280's reading
    assert i2c.transactions == 1
    assert _writes(i2c) == [b"\xe0\x00\x03\xdb" + bytes((crc8(b"\x03\xdb"),))]
    assert chip.ambient_pressure_hpa == 987
    assert chip.state_name == "periodic measurement"  # no stop needed
    assert sensor.ambient_pressure() == 987


def test_pressure_compensation_corrects_the_co2_reading():
    env = Environment(co2=600.0, pressure=900.0)  # a high street or a storm
    sensor, chip, i2c, env, clk = _setup(env=env)
    uncompensated = _next(sensor, clk)["co2"]
    assert uncompensated == int(600 * 900 / 1013.25 + 0.5)  # 533: 11 % low
    sensor.set_ambient_pressure(900.0)
    assert _next(sensor, clk)["co2"] == 600


def test_pressure_given_to_the_constructor():
    env = Environment(co2=800.0, pressure=955.0)
    sensor, chip, i2c, env, clk = _setup(env=env, ambient_pressure_hpa=955)
    assert _next(sensor, clk)["co2"] == 800


def test_altitude_compensation_until_a_pressure_overrides_it():
    env = Environment(co2=700.0, pressure=983.4)  # ~250 m, Siegen
    sensor, chip, i2c, env, clk = _setup(env=env)
    sensor.set_sensor_altitude(250)
    assert sensor.sensor_altitude() == 250
    assert close(_next(sensor, clk)["co2"], 700, 2)


# -- commands that need idle mode ---------------------------------------------------------------


def test_the_model_refuses_idle_only_commands_during_measurement():
    sensor, chip, i2c, env, clk = _setup()
    for frame in (b"\x36\x82", b"\x23\x13", b"\x36\x46", b"\x24\x16\x00\x00\x81"):
        e = raises(EIO, i2c.writeto, 0x62, frame)
        assert "not allowed during periodic measurement" in message(e)
    assert chip.refusals == 4


def test_idle_only_commands_pause_and_resume_the_measurement():
    sensor, chip, i2c, env, clk = _setup()
    assert sensor.serial_number() == sensor.serial
    assert sensor.automatic_self_calibration() is True
    sensor.set_automatic_self_calibration(False)
    assert chip.asc == 0 and sensor.automatic_self_calibration() is False
    assert chip.state_name == "periodic measurement"
    assert chip.refusals == 0
    assert _next(sensor, clk)["co2"] == 612


def test_stop_waits_500_ms_before_the_next_command():
    sensor, chip, i2c, env, clk = _setup()
    i2c.clear_log()
    sensor.set_automatic_self_calibration(True)
    ops = [(e[0], e[4]) for e in i2c.log]
    assert ops[0][1] == b"\x3f\x86"
    assert ops[1][0] - ops[0][0] == 500  # stop_periodic_measurement's execution time
    assert ops[1][1] == b"\x24\x16\x00\x01\xb0"
    assert ops[2][1] == b"\x21\xb1"


def test_the_model_nacks_while_busy():
    sensor, chip, i2c, env, clk = _setup()
    sensor.stop()
    i2c.writeto(0x62, b"\x3f\x86")  # accepted in idle too
    e = raises(ENODEV, i2c.writeto, 0x62, b"\x36\x82")
    assert "busy" in message(e)
    clk.sleep_ms(500)
    i2c.writeto(0x62, b"\x36\x82")


def test_a_wrong_crc_from_the_host_is_refused_and_not_executed():
    sensor, chip, i2c, env, clk = _setup()
    e = raises(EIO, i2c.writeto, 0x62, b"\xe0\x00\x03\xdb\x00")
    assert "CRC" in message(e)
    assert chip.crc_rejects == 1 and chip.ambient_pressure_hpa is None


def test_factory_reset_waits_1200_ms_and_forgets_settings():
    sensor, chip, i2c, env, clk = _setup()
    sensor.set_temperature_offset(6.0)
    sensor.persist_settings()
    assert chip.eeprom["temperature_offset_raw"] == conv.temperature_offset_word(6.0)
    i2c.clear_log()
    sensor.perform_factory_reset()
    ops = [(e[0], e[4]) for e in i2c.log]
    assert ops[1][1] == b"\x36\x32" and ops[2][0] - ops[1][0] == 1200
    assert close(sensor.temperature_offset(), 4.0, 0.003)


def test_temperature_offset_and_reinit():
    env = Environment(temperature=20.0)
    sensor, chip, i2c, env, clk = _setup(env=env)
    chip.self_heating_c = 6.0  # this enclosure warms the chip by 6 °C
    assert close(_next(sensor, clk)["temperature"], 22.0, 0.01)
    sensor.set_temperature_offset(6.0)
    assert close(_next(sensor, clk)["temperature"], 20.0, 0.01)
    sensor.reinit()  # reloads the EEPROM (4 °C); the driver writes its 6 °C again
    assert close(sensor.temperature_offset(), 6.0, 0.003)


def test_self_test_and_forced_recalibration():
    sensor, chip, i2c, env, clk = _setup()
    t0 = clk.now_ms
    assert sensor.perform_self_test() is True
    assert clk.now_ms - t0 >= 10000
    assert sensor.perform_forced_recalibration(650) == 650 - 612
    raises(ValueError, sensor.perform_forced_recalibration, -1)


# -- modes ----------------------------------------------------------------------------------


def test_single_shot_is_three_transactions_and_five_seconds():
    sensor, chip, i2c, env, clk = _setup(mode="single_shot")
    assert chip.state_name == "idle"
    i2c.clear_log()
    t0 = clk.now_ms
    env.set(co2=777.0)
    v = sensor.read()
    assert v["co2"] == 777 and close(v["temperature"], 21.53, 0.005)
    assert i2c.transactions == 3 and clk.now_ms - t0 == 5001
    assert _writes(i2c) == [b"\x21\x9d", b"\xec\x05"]


def test_single_shot_rht_only_and_from_periodic_mode():
    sensor, chip, i2c, env, clk = _setup()
    v = sensor.measure_single_shot(rht_only=True)
    assert v["co2"] == 0 and close(v["humidity"], 45.21, 0.005)
    assert chip.state_name == "periodic measurement"  # resumed


def test_an_scd40_has_no_single_shot():
    sensor, chip, i2c, env, clk = _setup(variant="scd40")
    assert sensor.variant == "SCD40"
    raises(ValueError, sensor.measure_single_shot)
    raises(ValueError, SCD4x, i2c, 0x62, "single_shot")
    e = raises(EIO, i2c.writeto, 0x62, b"\x21\x9d")  # the chip itself refuses it too
    assert "SCD40" in message(e)


def test_low_power_mode_every_30_s():
    sensor, chip, i2c, env, clk = _setup(mode="low_power")
    t0 = clk.now_ms
    assert _next(sensor, clk)["co2"] == 612
    assert clk.now_ms - t0 == 30001


def test_idle_mode_read_is_a_clear_error_and_start_fixes_it():
    sensor, chip, i2c, env, clk = _setup(mode="idle")
    e = raises(EIO, sensor.read)
    assert "not measuring" in message(e)
    sensor.start("periodic")
    assert _next(sensor, clk)["co2"] == 612


def test_power_down_and_wake_up():
    sensor, chip, i2c, env, clk = _setup()
    sensor.power_down()
    assert chip.state_name == "power-down"
    raises(ENODEV, i2c.writeto, 0x62, b"\x36\x82")
    sensor.wake_up()
    assert chip.state_name == "idle"
    sensor.start("periodic")
    assert _next(sensor, clk)["co2"] == 612
    sensor.power_down()
    again = SCD4x(i2c, 0x62)  # a new boot finds it powered down and wakes it
    assert _next(again, clk)["co2"] == 612


# -- faults: a clear error, then a driver that works again ---------------------------------------


def test_absent_then_back():
    sensor, chip, i2c, env, clk = _setup()
    clk.sleep_ms(5000)
    chip.faults.absent = True
    e = raises(ENODEV, sensor.read)
    assert "0x62" in message(e) and "0xec05" in message(e)
    chip.faults.absent = False
    assert sensor.read()["co2"] == 612


def test_eio_and_timeout_then_recovers():
    sensor, chip, i2c, env, clk = _setup()
    clk.sleep_ms(5000)
    chip.faults.fail(2, EIO, count=2)  # the 9-byte read, then the data-ready poll
    e = raises(EIO, sensor.read)
    assert "0x62" in message(e) and "read after command 0xec05" in message(e), message(e)
    assert sensor.read()["co2"] == 612  # still due: asks again at once
    clk.sleep_ms(5000)
    chip.faults.fail(1, ETIMEDOUT, count=3)  # command, data-ready command: the first error stands
    raises(ETIMEDOUT, sensor.read)
    assert sensor.read()["co2"] == 612


def test_a_wrong_crc_never_gives_a_number():
    sensor, chip, i2c, env, clk = _setup()
    good = _next(sensor, clk)
    env.set(co2=999.0)
    for mode in ("ones", "flip"):
        clk.sleep_ms(5000)
        chip.faults.corrupt(1, mode)
        e = raises(EIO, sensor.read)
        assert "CRC mismatch in word 0 of 3" in message(e) and "0xec05" in message(e), message(e)
        n = i2c.transactions
        assert sensor.read() == good  # the damaged value was read out: the last good one stands
        assert i2c.transactions == n  # and the next is an interval away
    assert _next(sensor, clk)["co2"] == 999


def test_one_bus_error_with_a_value_waiting_is_read_again():
    sensor, chip, i2c, env, clk = _setup()
    for errno in (ENODEV, EIO):
        clk.sleep_ms(5000)
        chip.faults.fail(2, errno)  # the read header NACKed although a value waits
        i2c.clear_log()
        assert sensor.read()["co2"] == 612
        assert i2c.transactions == 6  # command + failed read, data-ready poll (2), again (2)
    assert sensor.recoveries == 0


def test_a_late_value_keeps_the_last_one_then_a_stuck_sensor_times_out():
    sensor, chip, i2c, env, clk = _setup()
    good = _next(sensor, clk)
    chip.faults.stuck_busy = True
    clk.sleep_ms(5000)
    assert sensor.read() == good  # late (clock drift?): the last value, asked again 500 ms later
    assert 0 < sensor.ready_in_ms() <= 500
    clk.sleep_ms(5001)
    e = raises(ETIMEDOUT, sensor.read)
    assert "no new measurement for 1000" in message(e) and "stuck" in message(e), message(e)
    chip.faults.stuck_busy = False
    env.set(co2=650.0)
    assert sensor.read()["co2"] == 650


def test_hung_sensor_until_power_cycled_then_set_up_again():
    env = Environment(co2=600.0, pressure=900.0)
    sensor, chip, i2c, env, clk = _setup(env=env)
    sensor.set_ambient_pressure(900)
    assert _next(sensor, clk)["co2"] == 600
    chip.hang()
    for _ in range(2):
        clk.sleep_ms(5000)
        e = raises(ENODEV, sensor.read)
        assert "0x62" in message(e) and "no ACK" in message(e)
    chip.power_cycle()  # the node switches the sensor's supply off and on
    e = raises(ENODEV, sensor.read)  # still within its 1 s power-up
    clk.sleep_ms(1000)
    assert sensor.read()["co2"] is None  # found idle: set up and started again
    assert sensor.recoveries == 1
    assert chip.ambient_pressure_hpa == 900 and chip.state_name == "periodic measurement"
    assert _next(sensor, clk)["co2"] == 600  # pressure compensation restored
