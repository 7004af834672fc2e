"""Differential tests: other people's SCD4x/SPS30 drivers against our simulated chips
(hal/sim/scd4x.py, hal/sim/sps30.py), and our drivers against the same chips. Same chip,
same air, same numbers; and the peers' command sequences must be ones the models accept,
which checks the models against drivers written from the same datasheets by others.

Peers (CPython only, pinned in the project's test extras):
- adafruit-circuitpython-scd4x, through the CircuitPython bus adapter streetnode.bench.circuitpython.CircuitPythonI2C;
- Sensirion's own sensirion-i2c-scd4x and sensirion-i2c-sps30 (with sensirion-i2c-driver
  and sensirion-driver-adapters), through an I2C transceiver on our SimI2C.

Their delays (time.sleep) are redirected to the simulation's VirtualClock, so the chips'
timing is honoured and the tests take milliseconds.
"""

import adafruit_scd4x
import pytest
import sensirion_i2c_driver.connection
import sensirion_i2c_scd4x.device as scd4x_device
from sensirion_driver_adapters.i2c_adapter.i2c_channel import I2cChannel
from sensirion_i2c_driver import CrcCalculator, I2cConnection
from sensirion_i2c_driver.transceiver_v1 import I2cTransceiverV1
from sensirion_i2c_scd4x.device import Scd4xDevice
from sensirion_i2c_sps30.commands import OutputFormat
from sensirion_i2c_sps30.device import Sps30Device

from drivers.scd4x import SCD4x
from drivers.sps30 import SPS30
from hal import clock
from streetnode.bench import circuitpython
from hal.sim.bus import SimI2C
from hal.sim.environment import Environment, StreetEnvironment
from hal.sim.scd4x import SimSCD4x
from hal.sim.sps30 import SimSPS30


class _VirtualTime:
    """Stands in for the `time` module of a peer driver: sleep() advances the VirtualClock."""

    def __init__(self, clk):
        self.clk = clk

    def sleep(self, seconds):
        self.clk.sleep_ms(int(seconds * 1000 + 0.5))

    def monotonic(self):
        return self.clk.now_ms / 1000


class SimTransceiver(I2cTransceiverV1):
    """sensirion-i2c-driver's transceiver interface (API v1) over a SimI2C: a write, the
    read delay in simulated time, a read; a NACK or bus error is a status, as on hardware."""

    def __init__(self, i2c, clk):
        super().__init__()
        self.i2c = i2c
        self.clk = clk

    @property
    def description(self):
        return "SimI2C"

    @property
    def channel_count(self):
        return None

    def transceive(self, slave_address, tx_data, rx_length, read_delay, timeout):
        try:
            if tx_data is not None:
                self.i2c.writeto(slave_address, tx_data)
            if rx_length is None:
                return self.STATUS_OK, None, b""
            self.clk.sleep_ms(int(read_delay * 1000 + 0.5))
            buf = bytearray(rx_length)
            self.i2c.readfrom_into(slave_address, buf)
            return self.STATUS_OK, None, bytes(buf)
        except OSError as e:
            return self.STATUS_NACK, e, None


@pytest.fixture
def clk(monkeypatch):
    c = clock.install(clock.VirtualClock())
    fake = _VirtualTime(c)
    monkeypatch.setattr(adafruit_scd4x, "time", fake)
    monkeypatch.setattr(sensirion_i2c_driver.connection, "time", fake)
    monkeypatch.setattr(scd4x_device, "time", fake)
    yield c
    clock.install(None)


def _sensirion_channel(i2c, clk, address):
    crc = CrcCalculator(8, 0x31, 0xFF, 0x00)
    return I2cChannel(I2cConnection(SimTransceiver(i2c, clk)), slave_address=address, crc=crc)


def _writes(i2c):
    return [e[4] for e in i2c.log if e[1] == "write"]


# -- SCD4x: Adafruit -----------------------------------------------------------------------------


def _scd4x_bus(clk, env, **chip):
    i2c = SimI2C()
    model = i2c.attach(SimSCD4x(env, **chip), 0x62)
    clk.sleep_ms(1000)  # power-up
    return i2c, model


def test_adafruit_scd4x_reads_the_same_values_as_ours(clk):
    env = StreetEnvironment(seed=3)
    i2c, model = _scd4x_bus(clk, env)
    theirs = adafruit_scd4x.SCD4X(circuitpython.CircuitPythonI2C(i2c))
    serial = model.serial
    assert theirs.serial_number == tuple(serial.to_bytes(6, "big"))
    assert theirs.sensor_variant_name == "SCD41"
    theirs.start_periodic_measurement()
    for _ in range(5):
        clk.sleep_ms(5000)
        assert theirs.data_ready
        co2, t, rh = theirs.CO2, theirs.temperature, theirs.relative_humidity
        words = model._data[:]  # what the chip sent, for ours to decode the same way
        # Ours reads the same chip's next measurement of the same air (StreetEnvironment
        # moves slowly): compare the conversion of identical words instead.
        assert co2 == words[0]
        assert t == pytest.approx(-45 + 175 * words[1] / 65535, abs=1e-9)
        assert rh == pytest.approx(100 * words[2] / 65535, abs=1e-9)
    theirs.stop_periodic_measurement()
    ours = SCD4x(i2c)  # takes over the same chip
    assert ours.serial == serial and ours.variant == "SCD41"
    clk.sleep_ms(ours.ready_in_ms())  # its first value, 5 s after its start
    values = ours.read()
    assert values["co2"] == model._data[0]
    assert values["temperature"] == round(-45 + 175 * model._data[1] / 65535, 2)
    assert values["humidity"] == round(100 * model._data[2] / 65535, 2)


def test_adafruit_and_ours_agree_on_one_measurement_in_steady_air(clk):
    env = Environment(co2=731.0, temperature=18.25, humidity=63.4, pressure=1013.25)
    i2c, model = _scd4x_bus(clk, env)
    theirs = adafruit_scd4x.SCD4X(circuitpython.CircuitPythonI2C(i2c))
    theirs.start_periodic_measurement()
    clk.sleep_ms(5000)
    reading = (theirs.CO2, round(theirs.temperature, 2), round(theirs.relative_humidity, 2))
    theirs.stop_periodic_measurement()
    ours = SCD4x(i2c)
    clk.sleep_ms(ours.ready_in_ms())
    ours = ours.read()
    assert reading == (ours["co2"], ours["temperature"], ours["humidity"]) == (731, 18.25, 63.4)


def test_adafruit_and_ours_send_the_same_ambient_pressure_frame(clk):
    env = Environment(co2=600.0, pressure=912.0)
    i2c, model = _scd4x_bus(clk, env)
    theirs = adafruit_scd4x.SCD4X(circuitpython.CircuitPythonI2C(i2c))
    i2c.clear_log()
    theirs.ambient_pressure = 912
    theirs_frame = _writes(i2c)
    assert model.ambient_pressure_hpa == 912 and theirs.ambient_pressure == 912
    ours = SCD4x(i2c)
    i2c.clear_log()
    ours.set_ambient_pressure(912.2)
    assert _writes(i2c) == theirs_frame
    clk.sleep_ms(ours.ready_in_ms())
    assert ours.read()["co2"] == 600  # compensated for the real pressure


def test_adafruit_settings_and_maintenance_commands_are_accepted_by_the_model(clk):
    env = Environment(co2=500.0)
    i2c, model = _scd4x_bus(clk, env)
    theirs = adafruit_scd4x.SCD4X(circuitpython.CircuitPythonI2C(i2c))
    theirs.temperature_offset = 5.4
    assert theirs.temperature_offset == pytest.approx(5.4, abs=0.01)
    theirs.altitude = 250
    assert theirs.altitude == 250
    theirs.self_calibration_enabled = False
    assert theirs.self_calibration_enabled is False and model.asc == 0
    theirs.persist_settings()
    assert model.eeprom["altitude_m"] == 250
    theirs.reinit()
    theirs.self_test()  # raises RuntimeError on a failed test
    theirs.factory_reset()
    assert model.eeprom["altitude_m"] == 0 and theirs.self_calibration_enabled is True
    theirs.measure_single_shot()
    assert theirs.data_ready and theirs.CO2 == 500


def test_adafruit_sees_our_model_refuse_commands_during_measurement(clk):
    i2c, model = _scd4x_bus(clk, Environment())
    theirs = adafruit_scd4x.SCD4X(circuitpython.CircuitPythonI2C(i2c))
    theirs.start_periodic_measurement()
    with pytest.raises(RuntimeError, match="not available in periodic measurement mode"):
        theirs.self_calibration_enabled = True
    assert model.refusals == 1
    theirs.ambient_pressure = 1000  # allowed during measurement
    theirs.stop_periodic_measurement()
    theirs.self_calibration_enabled = True


# -- SCD4x: Sensirion's driver -----------------------------------------------------------------


def test_sensirion_scd4x_reads_the_same_values_as_ours(clk):
    env = Environment(co2=842.0, temperature=24.4, humidity=38.2, pressure=987.0)
    i2c, model = _scd4x_bus(clk, env)
    theirs = Scd4xDevice(_sensirion_channel(i2c, clk, 0x62))
    theirs.stop_periodic_measurement()
    assert theirs.get_serial_number() == model.serial
    assert theirs.get_sensor_variant().name == "SCD41"
    theirs.set_ambient_pressure(98700)  # Pa
    assert model.ambient_pressure_hpa == 987
    theirs.start_periodic_measurement()
    clk.sleep_ms(5000)
    assert theirs.get_data_ready_status()
    co2, t, rh = theirs.read_measurement()
    reading = (co2.value, round(t.value, 2), round(rh.value, 2))
    theirs.stop_periodic_measurement()
    ours = SCD4x(i2c, ambient_pressure_hpa=987)
    clk.sleep_ms(ours.ready_in_ms())
    v = ours.read()
    assert reading == (v["co2"], v["temperature"], v["humidity"]) == (842, 24.4, 38.2)


def test_sensirion_scd4x_single_shot_and_settings(clk):
    env = Environment(co2=455.0, temperature=12.0)
    i2c, model = _scd4x_bus(clk, env)
    theirs = Scd4xDevice(_sensirion_channel(i2c, clk, 0x62))
    theirs.stop_periodic_measurement()
    theirs.set_temperature_offset(5.4)
    assert model.temperature_offset_raw == 0x07E6
    assert theirs.get_temperature_offset().value == pytest.approx(5.4, abs=0.003)
    theirs.set_sensor_altitude(1950)
    assert theirs.get_sensor_altitude() == 1950 and model.altitude_m == 0x079E
    theirs.set_automatic_self_calibration_enabled(0)
    assert theirs.get_automatic_self_calibration_enabled() == 0
    theirs.set_sensor_altitude(0)
    theirs.set_temperature_offset(4.0)
    co2, t, rh = theirs.measure_and_read_single_shot()
    assert co2.value == 455 and t.value == pytest.approx(12.0, abs=0.01)
    assert theirs.perform_forced_recalibration(480) == 480 - 455 + 0x8000
    assert theirs.perform_self_test() == 0


# -- SPS30: Sensirion's driver -----------------------------------------------------------------


def _sps30_bus(env, **chip):
    i2c = SimI2C()
    model = i2c.attach(SimSPS30(env, **chip), 0x69)
    return i2c, model


def test_sensirion_sps30_reads_the_same_values_as_ours(clk):
    env = Environment(pm1_0=6.1, pm2_5=9.7, pm10=15.3)
    i2c, model = _sps30_bus(env)
    theirs = Sps30Device(_sensirion_channel(i2c, clk, 0x69))
    assert theirs.read_product_type() == "00080000"
    assert theirs.read_serial_number() == model.serial
    assert theirs.read_firmware_version() == (2, 2)
    theirs.start_measurement(OutputFormat.OUTPUT_FORMAT_FLOAT)
    clk.sleep_ms(1000)
    assert theirs.read_data_ready_flag() == 1
    their_values = theirs.read_measurement_values_float()
    assert theirs.read_data_ready_flag() == 0  # reading the values cleared the flag
    theirs.stop_measurement()
    ours = SPS30(i2c, warm_up_ms=0)
    clk.sleep_ms(1000)
    ours.measure()
    mine = ours.concentrations()
    for name, value in zip(mine, their_values):  # same order: conversion.FIELDS
        assert mine[name] == round(value, 3), name
    assert ours.read() == {"pm1_0": 6.1, "pm2_5": 9.7, "pm10": 15.3}


def test_sensirion_sps30_uint16_output_and_maintenance(clk):
    env = Environment(pm1_0=6.1, pm2_5=9.7, pm10=15.3)
    i2c, model = _sps30_bus(env)
    theirs = Sps30Device(_sensirion_channel(i2c, clk, 0x69))
    theirs.start_measurement(OutputFormat.OUTPUT_FORMAT_UINT16)
    clk.sleep_ms(1000)
    values = theirs.read_measurement_values_uint16()
    assert values[:4] == (6, 10, 11, 15)  # masses rounded to µg/m³ (PM4: 9.7 + (15.3-9.7)/4)
    theirs.start_fan_cleaning()
    assert model.fan_cleanings == 1
    assert theirs.read_device_status_register() & (1 << 19)  # fan cleaning running
    theirs.write_auto_cleaning_interval(86400)
    assert theirs.read_auto_cleaning_interval() == 86400
    theirs.stop_measurement()
    theirs.sleep()
    assert model.mode_name == "sleep mode"
    theirs.wake_up_sequence()  # the wake-up command twice ("Wake-up")
    assert model.mode_name == "idle mode"
    theirs.device_reset()
    ours = SPS30(i2c, warm_up_ms=0)  # and ours after them
    assert ours.auto_cleaning_interval() == 86400
