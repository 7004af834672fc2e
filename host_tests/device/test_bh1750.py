# BH1750 driver against the simulated chip: runs on CPython (pytest) and inside
# MicroPython (host_tests/test_on_micropython.py).

from errno import EIO, ENODEV, ETIMEDOUT

from drivers.bh1750 import BH1750
from drivers.bh1750 import conversion as conv
from hal.sim.bh1750 import SimBH1750, counts_for
from hal.sim.bus import RegisterDevice, SimI2C
from hal.sim.environment import Environment
from host_tests.device.support import close, heap_allocated, message, raises, virtual_clock


def _setup(env=None, address=0x23, log=True, slow=False, **options):
    clk = virtual_clock()
    env = env if env is not None else Environment(illuminance=412.5)
    i2c = SimI2C(log=log)
    chip = i2c.attach(SimBH1750(env, slow=slow, log=log), address)
    sensor = BH1750(i2c, address, **options)
    return sensor, chip, i2c, env, clk


# -- conversion: datasheet numbers -----------------------------------------------------------


def test_datasheet_example_count_to_lux():
    # I2C Bus Access example: high byte 1000_0011, low byte 1001_0000 -> 28067 lx.
    assert round(conv.lux(0x8390)) == 28067


def test_lux_scales_with_mtreg_and_halves_in_mode2():
    assert abs(conv.lux(1200) - 1000.0) < 1e-9
    assert abs(conv.lux(1200, 138) - 500.0) < 1e-9  # twice the integration time, twice the count
    assert abs(conv.lux(1200, 69, "high2") - 500.0) < 1e-9
    assert abs(conv.lux(1200, 69, "low") - 1000.0) < 1e-9  # same count unit, coarser steps
    # The datasheet's range: 0.11 lx per count at best, about 100000 lx at most.
    assert round(conv.lux_step(254, "high2"), 2) == 0.11
    assert round(conv.lux_step()) == 1
    assert 100000 < conv.lux(0xFFFF, 31) < 125000


def test_measurement_time_is_the_maximum_scaled_by_mtreg():
    assert conv.wait_ms("high") == conv.wait_ms("high2") == 180
    assert conv.wait_ms("low") == 24
    assert conv.wait_ms("high", 254) == 663  # 180 * 254 / 69 = 662.6
    assert conv.wait_ms("low", 31) == 11  # 24 * 31 / 69 = 10.8
    assert conv.wait_ms("high", 138) == 360


def test_mtreg_instructions():
    # 01000_MT[7:5] and 011_MT[4:0]
    assert conv.mtreg_opcodes(69) == (0x42, 0x65)
    assert conv.mtreg_opcodes(254) == (0x47, 0x7E)
    assert conv.mtreg_opcodes(31) == (0x40, 0x7F)


# -- set-up ----------------------------------------------------------------------------------------


def test_constructor_sanity_check_and_setup_instructions():
    sensor, chip, i2c, env, clk = _setup()
    # power down, power on, reset, (read the cleared register), MTreg high, low, power down
    assert chip.instructions == [0x00, 0x01, 0x07, 0x42, 0x65, 0x00]
    assert i2c.transactions == 7
    assert [entry[1] for entry in i2c.log] == ["write"] * 3 + ["read"] + ["write"] * 3
    assert chip.state == "down" and chip.mtreg == 69


def test_absent_device_names_the_address():
    clk = virtual_clock()
    e = raises(ENODEV, BH1750, SimI2C(), 0x5C)
    assert "0x5c" in message(e) and "sanity" in message(e)


def test_a_chip_whose_register_is_not_cleared_by_reset_is_refused():
    clk = virtual_clock()
    i2c = SimI2C()
    other = i2c.attach(RegisterDevice(), 0x23)  # some register chip: 0x07 sets its pointer
    other.regs[0x07] = 0x12
    e = raises(ENODEV, BH1750, i2c)
    assert "0x1200" in message(e) and "not a BH1750" in message(e)


def test_options_are_validated_with_the_bad_value_named():
    sensor, chip, i2c, env, clk = _setup()
    for kwargs, bad in (
        ({"mode": "sometimes"}, "sometimes"),
        ({"resolution": "ultra"}, "ultra"),
        ({"mtreg": 30}, "30"),
        ({"mtreg": 255}, "255"),
        ({"mtreg": 69.5}, "69.5"),
    ):
        e = raises(ValueError, BH1750, i2c, 0x23, **kwargs)
        assert bad in message(e), (kwargs, message(e))
    e = raises(ValueError, BH1750, i2c, 0x24)
    assert "36" in message(e)  # 0x24, as %r prints it
    n = len(chip.instructions)
    raises(ValueError, sensor.configure, "continuous", "high", 300)
    assert len(chip.instructions) == n  # nothing sent


# -- reading ------------------------------------------------------------------------------------------


def test_one_time_read_is_two_transactions_and_powers_down():
    sensor, chip, i2c, env, clk = _setup()
    i2c.clear_log()
    v = sensor.read()
    assert v == {"illuminance": 412.5}  # 495 counts exactly
    assert i2c.transactions == 2
    (t1, op1, addr1, _, data1), (t2, op2, addr2, _, data2) = i2c.log
    assert (op1, addr1, data1) == ("write", 0x23, b"\x20")
    assert (op2, addr2, data2) == ("read", 0x23, bytes((495 >> 8, 495 & 0xFF)))
    assert t2 - t1 == 180  # the maximum H-resolution time
    assert chip.state == "down"  # one-time mode powered the chip down


def test_one_time_read_waits_long_enough_for_the_slowest_chip():
    for resolution, mtreg in (("high", 69), ("high2", 254), ("low", 31), ("low", 69), ("high", 138)):
        sensor, chip, i2c, env, clk = _setup(slow=True, resolution=resolution, mtreg=mtreg)
        env.set(illuminance=250.0)
        v = sensor.read()["illuminance"]
        assert chip.measurements == 1
        assert close(v, 250.0, conv.lux_step(mtreg, resolution) * (4 if resolution == "low" else 1)), (resolution, v)


def test_a_driver_that_waited_too_little_would_read_the_old_value():
    # Why the wait matters: the chip has no busy flag, it answers with its last result.
    sensor, chip, i2c, env, clk = _setup()
    sensor.read()
    env.set(illuminance=1000.0)
    sensor.start()
    clk.sleep_ms(60)
    sensor.fetch()
    assert sensor.values()["illuminance"] == 412.5
    clk.sleep_ms(120)
    sensor.fetch()
    assert sensor.values()["illuminance"] == 1000.0


def test_continuous_read_is_one_transaction_after_the_first_result():
    sensor, chip, i2c, env, clk = _setup(mode="continuous")
    assert chip.state == "continuous"
    t0 = clk.now_ms
    assert sensor.read() == {"illuminance": 412.5}
    assert clk.now_ms - t0 == 180  # the first result takes a whole measurement
    i2c.clear_log()
    env.set(illuminance=800.0)
    clk.sleep_ms(130)  # the chip has measured again
    t1 = clk.now_ms
    assert sensor.read() == {"illuminance": 800.0}
    assert i2c.transactions == 1 and clk.now_ms == t1


def test_resolutions_and_mtreg_change_counts_and_steps():
    sensor, chip, i2c, env, clk = _setup(mode="continuous")
    env.set(illuminance=100.3)
    for resolution, mtreg, step in (("high", 69, 0.84), ("high2", 69, 0.42), ("high2", 254, 0.12), ("low", 69, 3.34)):
        sensor.configure("continuous", resolution, mtreg)
        assert chip.mtreg == mtreg
        v = sensor.read()["illuminance"]
        assert sensor.raw() == counts_for(100.3, resolution, mtreg)
        assert 100.3 - step < v <= 100.3, (resolution, mtreg, v)
    sensor.configure("one_time", "high", 138)
    sensor.read()
    assert sensor.raw() == 240  # 100.3 * 1.2 * 2: twice the count of MTreg 69 (120)


def test_low_mtreg_reaches_direct_sun_high_mtreg_saturates():
    sensor, chip, i2c, env, clk = _setup()
    env.set(illuminance=100000.0)
    v = sensor.read()
    assert sensor.saturated and v["illuminance"] == 54612.5  # full scale at MTreg 69
    sensor.configure("one_time", "low", 31)
    v = sensor.read()
    assert not sensor.saturated and close(v["illuminance"], 100000.0, 8.0), v


def test_dark_reads_zero():
    sensor, chip, i2c, env, clk = _setup(resolution="high2", mtreg=254)
    env.set(illuminance=0.0)
    assert sensor.read() == {"illuminance": 0.0}
    env.set(illuminance=0.25)
    assert close(sensor.read()["illuminance"], 0.25, 0.11)


def test_measure_allocates_no_heap_memory_in_both_modes():
    for mode in ("one_time", "continuous"):
        sensor, chip, i2c, env, clk = _setup(log=False, mode=mode)
        sensor.measure()  # warm-up
        used = heap_allocated(sensor.measure, repeat=20)
        assert used in (None, 0), "%s measure() allocated %d bytes in 20 calls" % (mode, used)


def test_values_twice_agree_and_do_not_touch_the_bus():
    sensor, chip, i2c, env, clk = _setup()
    sensor.measure()
    n = i2c.transactions
    assert sensor.values() == sensor.values()
    assert i2c.transactions == n


def test_power_down_in_continuous_mode_restarts_on_the_next_read():
    sensor, chip, i2c, env, clk = _setup(mode="continuous", mtreg=100)
    sensor.read()
    sensor.power_down()
    assert chip.state == "down"
    env.set(illuminance=50.0)
    v = sensor.read()
    assert chip.state == "continuous" and close(v["illuminance"], 50.0, 0.6)


def test_second_address():
    sensor, chip, i2c, env, clk = _setup(address=0x5C)
    assert sensor.read() == {"illuminance": 412.5}


# -- faults: a clear error, then a driver that works again ---------------------------------------


def test_eio_on_the_nth_transaction_then_recovers():
    sensor, chip, i2c, env, clk = _setup(mtreg=138)
    chip.faults.fail(2, EIO)  # the result read
    e = raises(EIO, sensor.read)
    assert "0x23" in message(e) and "read" in message(e)
    assert close(sensor.read()["illuminance"], 412.5, 0.5)
    assert sensor.setups == 2  # set up again after the error
    chip.faults.fail(1, ETIMEDOUT)
    raises(ETIMEDOUT, sensor.read)
    assert close(sensor.read()["illuminance"], 412.5, 0.5)


def test_hung_chip_is_named_and_after_a_power_cycle_its_mtreg_is_restored():
    sensor, chip, i2c, env, clk = _setup(mode="continuous", mtreg=138)
    sensor.read()
    chip.hang()
    for _ in range(2):
        e = raises(ENODEV, sensor.read)
        assert "hung" in message(e) and "0x23" in message(e)
    chip.power_cycle()  # back at MTreg 69, powered down
    assert chip.mtreg == 69 and chip.state == "down"
    env.set(illuminance=300.0)
    v = sensor.read()
    assert chip.mtreg == 138 and chip.state == "continuous"
    assert close(v["illuminance"], 300.0, 0.5)


class _SoftI2C(SimI2C):
    """A bit-banged machine.SoftI2C: a NACKed data byte is not raised, writeto returns
    the number of data bytes ACKed (here: none, as if the chip refused the instruction)."""

    refuse = False

    def writeto(self, addr, buf):
        if self.refuse:
            self.transactions += 1  # the address is ACKed, the first data byte is not
            return 0
        return super().writeto(addr, buf)


def test_a_refused_instruction_on_a_soft_i2c_is_an_error():
    clk = virtual_clock()
    i2c = _SoftI2C()
    i2c.attach(SimBH1750(), 0x23)
    sensor = BH1750(i2c)
    i2c.refuse = True
    e = raises(EIO, sensor.read)
    assert "not acknowledged" in message(e) and "0x23" in message(e)
    raises(EIO, BH1750, i2c)
    i2c.refuse = False
    assert sensor.read() == {"illuminance": 300.0}


def test_device_that_disappears_and_comes_back():
    sensor, chip, i2c, env, clk = _setup()
    chip.faults.absent = True
    e = raises(ENODEV, sensor.read)
    assert "0x23" in message(e)
    chip.faults.absent = False
    assert sensor.read() == {"illuminance": 412.5}


def test_damaged_bytes_cannot_be_detected_ones_look_like_full_scale():
    # The BH1750 sends no checksum (documented in the driver): SDA stuck high reads as
    # 0xFFFF, which is also what direct sun gives. The driver flags it as saturated.
    sensor, chip, i2c, env, clk = _setup()
    chip.faults.corrupt(1, "ones")
    v = sensor.read()
    assert sensor.saturated and v["illuminance"] == 54612.5
    assert sensor.read() == {"illuminance": 412.5} and not sensor.saturated
