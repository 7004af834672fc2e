# I2C chip detection (drivers/detect.py) on simulated buses: runs on CPython (pytest)
# and inside MicroPython (host_tests/test_on_micropython.py).

from errno import EIO, ENODEV

from drivers import detect
from drivers.bh1750 import BH1750
from drivers.bme280 import BME280
from drivers.sht4x import SHT4x
from hal.sim.bh1750 import SimBH1750
from hal.sim.bme280 import SimBME280
from hal.sim.bus import RegisterDevice, SimI2C
from hal.sim.environment import Environment
from hal.sim.scd4x import SimSCD4x
from hal.sim.sensirion import SensirionChip
from hal.sim.sht4x import SimSHT4x
from hal.sim.sps30 import SimSPS30
from host_tests.device.support import close, raises, virtual_clock


def _bus():
    """A street node's bus: BME280, BMP280, SHT4x, BH1750, SCD4x and SPS30."""
    clk = virtual_clock()
    env = Environment()
    i2c = SimI2C()
    chips = {
        "bme280": i2c.attach(SimBME280(env), 0x76),
        "bmp280": i2c.attach(SimBME280(env, variant="bmp280"), 0x77),
        "sht4x": i2c.attach(SimSHT4x(env, serial=0x12345678), 0x44),
        "bh1750": i2c.attach(SimBH1750(env), 0x23),
        "scd4x": i2c.attach(SimSCD4x(env, serial=0x0C7A4F6E3B21), 0x62),
        "sps30": i2c.attach(SimSPS30(env), 0x69),
    }
    clk.sleep_ms(1000)  # the SCD4x's power-up time
    return i2c, chips, clk


def test_scan_names_every_chip_with_its_evidence():
    i2c, chips, clk = _bus()
    assert detect.scan(i2c) == [
        (0x23, "bh1750", None),  # identity-less: recognised by its address only
        (0x44, "sht4x", "serial 0x12345678"),
        (0x62, "scd4x", "serial 0x0c7a4f6e3b21"),
        (0x69, "sps30", "product type 00080000"),
        (0x76, "bme280", "chip id 0x60"),
        (0x77, "bmp280", "chip id 0x58"),
    ]


def test_alternative_addresses():
    clk = virtual_clock()
    i2c = SimI2C()
    i2c.attach(SimSHT4x(serial=1), 0x45)
    i2c.attach(SimSHT4x(serial=2), 0x46)
    i2c.attach(SimBH1750(), 0x5C)
    clk.sleep_ms(1)
    assert detect.scan(i2c) == [(0x45, "sht4x", "serial 0x00000001"), (0x46, "sht4x", "serial 0x00000002"), (0x5C, "bh1750", None)]


def test_probes_do_not_disturb_the_chips():
    i2c, chips, clk = _bus()
    bme = chips["bme280"]
    bme.regs[0xF4] = 0x25  # a forced measurement configured by its driver
    regs = bytes(bme.regs)
    sps = chips["sps30"]
    i2c.writeto(0x69, b"\x00\x10\x03\x00\xac")  # start measurement, float format
    clk.sleep_ms(20)
    detect.scan(i2c)
    assert chips["bh1750"].instructions == []  # nothing written to the BH1750
    assert chips["sht4x"].commands == [0x89]  # only the serial number read
    assert bytes(bme.regs) == regs  # only read
    assert sps.mode == 1  # still measuring
    assert chips["scd4x"].state_name == "idle"


def test_scd4x_in_periodic_measurement_is_found_and_keeps_measuring():
    i2c, chips, clk = _bus()
    scd = chips["scd4x"]
    i2c.writeto(0x62, b"\x21\xb1")  # start_periodic_measurement
    clk.sleep_ms(1)
    found = detect.scan(i2c)
    assert (0x62, "scd4x", "data-ready status 0x8000 (measuring: serial number not readable)") in found
    assert scd.state_name == "periodic measurement"  # no stop_periodic_measurement was sent
    assert scd.refusals == 1  # the serial number command, refused as the datasheet says
    clk.sleep_ms(5000)
    i2c.writeto(0x62, b"\xec\x05")  # read_measurement: a value is there as usual
    clk.sleep_ms(1)
    assert len(i2c.readfrom(0x62, 9)) == 9


def test_sps30_is_found_by_the_documented_command_with_a_minimal_model():
    # The detection needs only the datasheet's product-type command (0xD002): a chip
    # that answers nothing else is found too, and one with another product type is not.
    class ProductTypeOnly(SensirionChip):
        name = "sps30-like"

        def __init__(self, product_type):
            self.product_type = product_type
            super().__init__()

        def command(self, cmd, args, n_args, now):
            if cmd != 0xD002:
                self.refuse(cmd, "unknown command")
            self.point(cmd, 0)

        def answer(self, cmd, now):
            self.put_bytes(0, self.product_type, 4)
            return 4

    clk = virtual_clock()
    i2c = SimI2C()
    i2c.attach(ProductTypeOnly(b"00080000"), 0x69)
    assert detect.scan(i2c) == [(0x69, "sps30", "product type 00080000")]
    i2c.detach(0x69)
    i2c.attach(ProductTypeOnly(b"00090000"), 0x69)
    assert detect.scan(i2c) == []


def test_a_sleeping_or_hung_chip_is_not_listed():
    i2c, chips, clk = _bus()
    i2c.writeto(0x69, b"\x10\x01")  # SPS30 sleep: its I2C interface switches off
    clk.sleep_ms(10)
    chips["sht4x"].hang()
    found = detect.scan(i2c, unknown=True)
    assert (0x69, None, None) in found and (0x44, None, None) in found
    assert [f[1] for f in detect.scan(i2c)] == ["bh1750", "scd4x", "bme280", "bmp280"]


def test_other_chips_at_shared_addresses_are_not_mistaken_for_ours():
    clk = virtual_clock()
    i2c = SimI2C()
    for address in (0x44, 0x62, 0x69, 0x76):
        dev = i2c.attach(RegisterDevice(), address)  # register chips: no CRCs, other ids
        for i in range(256):
            dev.regs[i] = (i * 37 + 11) & 0xFF
    unrelated = i2c.attach(RegisterDevice(), 0x50)  # an EEPROM, say
    unrelated.regs[0] = 11
    assert detect.scan(i2c) == []
    assert detect.scan(i2c, unknown=True) == [(a, None, None) for a in (0x44, 0x50, 0x62, 0x69, 0x76)]
    assert unrelated.regs[0] == 11 and unrelated.transactions == 0  # an unknown address is left alone


def test_bus_errors_while_probing_mean_not_found():
    i2c, chips, clk = _bus()
    chips["bme280"].faults.fail(1, EIO)
    chips["sht4x"].faults.corrupt(1, "flip")  # the serial number's CRC fails
    names = [f[1] for f in detect.scan(i2c)]
    assert names == ["bh1750", "scd4x", "sps30", "bmp280"]
    assert [f[1] for f in detect.scan(i2c)] == ["bh1750", "sht4x", "scd4x", "sps30", "bme280", "bmp280"]


def test_auto_config_makes_drivers_for_what_was_found():
    i2c, chips, clk = _bus()
    sensors, errors = detect.sensors_from_config(i2c, "auto")
    assert isinstance(sensors["sht4x"], SHT4x) and sensors["sht4x"].serial_number == 0x12345678
    assert isinstance(sensors["bh1750"], BH1750) and sensors["bh1750"].address == 0x23
    assert isinstance(sensors["bme280"], BME280) and sensors["bme280"].has_humidity
    assert isinstance(sensors["bmp280"], BME280) and not sensors["bmp280"].has_humidity
    # Every chip found has a driver or an error saying why not (the SCD4x and SPS30
    # drivers are other modules: whatever their state, nothing is dropped silently).
    names = sorted(list(sensors) + [e[0] for e in errors])
    assert names == ["bh1750", "bme280", "bmp280", "scd4x", "sht4x", "sps30"], (sensors, errors)
    assert close(sensors["sht4x"].read()["temperature"], 20.0, 0.0035)
    assert sensors["bh1750"].read() == {"illuminance": 300.0}


def test_auto_config_names_several_chips_of_a_kind_by_address():
    clk = virtual_clock()
    i2c = SimI2C()
    i2c.attach(SimSHT4x(), 0x44)
    i2c.attach(SimSHT4x(), 0x45)
    i2c.attach(SimBH1750(), 0x5C)
    clk.sleep_ms(1)
    sensors, errors = detect.sensors_from_config(i2c, "auto")
    assert sorted(sensors) == ["bh1750", "sht4x_44", "sht4x_45"] and errors == []
    assert sensors["sht4x_45"].address == 0x45


def test_config_list_with_explicit_entries_and_auto():
    clk = virtual_clock()
    i2c = SimI2C()
    i2c.attach(SimSHT4x(), 0x44)
    bh = i2c.attach(SimBH1750(), 0x5C)
    clk.sleep_ms(1)
    entry = ["auto", {"driver": "bh1750", "address": 0x5C, "name": "light", "options": {"mode": "continuous", "mtreg": 138}}]
    sensors, errors = detect.sensors_from_config(i2c, entry)
    assert sorted(sensors) == ["light", "sht4x"] and errors == []  # "auto" skips the claimed 0x5C
    assert sensors["light"].mode == "continuous" and bh.mtreg == 138


def test_a_configured_sensor_with_address_auto_is_found_where_it_is():
    clk = virtual_clock()
    i2c = SimI2C()
    i2c.attach(SimSHT4x(serial=0x46), 0x46)
    i2c.attach(SimBH1750(), 0x5C)
    i2c.attach(SimBME280(variant="bmp280"), 0x77)
    clk.sleep_ms(2)
    assert detect.driver_for(i2c, "sht4x", "auto").address == 0x46
    assert detect.driver_for(i2c, "bh1750", "auto").address == 0x5C
    assert not detect.driver_for(i2c, "bme280", "auto").has_humidity  # a BMP280 at 0x77
    assert detect.driver_for(i2c, "sht4x", 0x46, {"precision": "low"}).precision == "low"
    e = raises(ENODEV, detect.driver_for, i2c, "scd4x", "auto")
    msg = str(e.args[1])
    assert "0x62" in msg and "0x46, 0x5c, 0x77" in msg, msg  # where it looked, what answers
    raises(ENODEV, detect.driver_for, i2c, "sht4x", None)  # the default 0x44 is empty


def test_config_entries_with_address_auto_take_distinct_chips():
    # The sensors list of a node's config: two SHT4x, both "auto", and one missing.
    clk = virtual_clock()
    i2c = SimI2C()
    i2c.attach(SimSHT4x(serial=1), 0x44)
    i2c.attach(SimSHT4x(serial=2), 0x45)
    clk.sleep_ms(1)
    entries = [
        {"name": "inside", "driver": "sht4x", "bus": "i2c0", "address": "auto", "interval_s": 60},
        {"name": "outside", "driver": "sht4x", "bus": "i2c0", "address": "auto", "options": {"precision": "medium"}},
        {"name": "light", "driver": "bh1750", "bus": "i2c0", "address": "auto"},
    ]
    sensors, errors = detect.sensors_from_config(i2c, entries)
    assert sensors["inside"].serial_number == 1 and sensors["outside"].serial_number == 2
    assert sensors["outside"].precision == "medium"
    assert [(n, a) for n, a, m in errors] == [("light", "auto")] and "0x23, 0x5c" in errors[0][2]


def test_drivers_that_cannot_start_are_reported_not_hidden():
    clk = virtual_clock()
    i2c = SimI2C()
    i2c.attach(SimSHT4x(), 0x44)
    clk.sleep_ms(1)
    found = [(0x44, "sht4x", "serial"), (0x23, "bh1750", None)]  # the BH1750 left since the scan
    detect.DRIVERS["fake"] = ("drivers.no_such_driver", "Fake")
    try:
        sensors, errors = detect.sensors_from_config(i2c, "auto", found + [(0x30, "fake", None)])
    finally:
        del detect.DRIVERS["fake"]
    assert list(sensors) == ["sht4x"]
    assert len(errors) == 2
    by_name = {e[0]: e for e in errors}
    assert by_name["bh1750"][1] == 0x23 and "0x23" in by_name["bh1750"][2]
    assert by_name["fake"][1] == 0x30 and "not installed" in by_name["fake"][2]


def test_bad_config_entries_are_named():
    clk = virtual_clock()
    i2c = SimI2C()
    e = raises(ValueError, detect.sensors_from_config, i2c, "everything")
    assert "everything" in str(e.args[0])
    e = raises(ValueError, detect.sensors_from_config, i2c, [{"driver": "dht22"}])
    assert "dht22" in str(e.args[0])
    e = raises(ValueError, detect.sensors_from_config, i2c, [{"driver": "sht4x"}, {"driver": "sht4x"}])
    assert "sht4x" in str(e.args[0]) and "twice" in str(e.args[0])
    e = raises(ValueError, detect.sensors_from_config, i2c, [42])
    assert "42" in str(e.args[0])
    raises(ValueError, detect.driver_class, "dht22")
    assert detect.driver_class("sht4x") is SHT4x
