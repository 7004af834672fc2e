# The driver registry (drivers/registry.py) against what it describes: every entry's
# driver module and class exist, the class's own default address is the registry's,
# read() gives the registry's quantities, the simulator has a model for it, and the
# config schema, chip detection and the sensor slots offer exactly the registry's
# drivers. Runs on CPython and inside MicroPython.

import os

from drivers import detect, registry
from firmware.config import ConfigError, validate
from firmware.sensors import Sensors
from hal.sim.board import SimPlatform
from hal.sim.bus import SimI2C
from hal.sim.environment import Environment
from host_tests.device.support import message, raises, virtual_clock

KEYS = ("cls", "buses", "address", "addresses", "quantities", "role", "pins", "sim")
QUANTITIES = ("temperature", "humidity", "pressure", "pm1_0", "pm2_5", "pm10", "co2", "illuminance")


def _is_dir(path):
    try:
        return os.stat(path)[0] & 0x4000 != 0
    except OSError:
        return False


def test_every_driver_folder_has_an_entry_and_every_entry_its_folder():
    folders = sorted(n for n in os.listdir("drivers") if _is_dir("drivers/" + n) and n != "__pycache__")
    assert folders == registry.names()
    for name in registry.names():
        e = registry.DRIVERS[name]
        assert sorted(e) == sorted(KEYS), name
        assert e["buses"] and [b for b in e["buses"] if b not in ("i2c", "spi", "uart")] == [], name
        assert [q for q in e["quantities"] if q not in QUANTITIES] == [], name
        assert e["role"] in (None, "rh", "pm"), name
        assert (e["role"] == "rh") == ("humidity" in e["quantities"]), name
        assert (e["role"] == "pm") == ("pm2_5" in e["quantities"]), name
        if "i2c" in e["buses"]:
            assert e["address"] == e["addresses"][0] and 0x08 <= e["address"] <= 0x77, name
        else:
            assert e["address"] is None and e["addresses"] == (), name


def test_each_class_exists_and_its_default_address_is_the_registrys():
    for name in registry.names():
        e = registry.DRIVERS[name]
        cls = registry.driver_class(name)
        assert cls.__name__ == e["cls"]
        if e["address"] is None:
            continue
        virtual_clock()
        model = registry.model_class(name)
        i2c = SimI2C()
        i2c.attach(model(), e["address"])
        cls(i2c)  # the driver's own default address: nothing else answers on this bus
        other = SimI2C()
        other.attach(model(), 0x08)
        raises(OSError, cls, other)  # and the check can fail


def test_read_gives_the_registrys_quantities_on_the_simulated_board():
    for name in registry.names():
        e = registry.DRIVERS[name]
        kind = e["buses"][0]
        spec = {"name": "s", "driver": name, "bus": kind + ("1" if kind == "uart" else "0"), "address": None}
        if e["role"] == "pm" and e["buses"] == ("uart",):
            spec["options"] = {"warmup_s": 1}
        for pin in e["pins"]:  # options naming a board pin: the slot hands the driver the pin
            spec.setdefault("options", {})[pin] = "p-" + pin
        clk = virtual_clock()
        platform = SimPlatform([spec], env=Environment(temperature=18.0, humidity=60.0, pressure=1000.0))
        sensors = Sensors({"interval_s": 1, "sensors": [spec]}, platform)
        values = None
        for _ in range(600):  # up to a minute of simulated time: the slowest warm-up is the PM fans'
            now = clk.ticks_ms()
            platform.tick(now)
            sensors.poll(now)
            clk.sleep_ms(100)
            slot = sensors.slots[0]
            if slot.state == "ok":
                values = slot.driver.read()
                if [q for q in values if values[q] is None] == []:
                    break
        assert values is not None, (name, slot.state, slot.last_error)
        assert sorted(values) == sorted(e["quantities"]), name
        assert type(platform.chips["s"]).__name__ == e["sim"]
        for pin in e["pins"]:
            assert getattr(slot.driver, pin) is platform.pin("p-" + pin), (name, pin)


def test_config_detection_and_slots_offer_the_registrys_drivers():
    e = raises(ConfigError, validate, {"node_id": "n", "board": "unix-sim", "mqtt": {"host": "h"},
                                       "sensors": [{"name": "x", "driver": "dht22", "bus": "i2c0"}]})  # fmt: skip
    assert message(e) == "sensors[0].driver: must be one of %s, not \"dht22\"" % ", ".join('"%s"' % n for n in registry.names())
    i2c_drivers = [n for n in registry.names() if "i2c" in registry.DRIVERS[n]["buses"]]
    assert sorted(n for n in detect.DRIVERS if n not in registry.ALIASES) == i2c_drivers
    for name in i2c_drivers:
        for address in registry.DRIVERS[name]["addresses"]:
            assert name in detect.CANDIDATES[address], (name, address)
    assert detect.driver_class("bmp280") is registry.driver_class("bme280")
    assert registry.entry("bmp280") is registry.DRIVERS["bme280"]
    assert "known: bh1750, bme280" in message(raises(ValueError, registry.entry, "dht22"))
    raises(ImportError, registry.load, "drivers.bme280", "NoSuchClass")
    raises(ImportError, registry.load, "drivers.no_such_driver", "X")
    assert registry.names("pm") == ["pms5003", "sds011", "sps30"]
    assert registry.names("rh") == ["bme280", "scd4x", "sht4x"]
