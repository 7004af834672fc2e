# What the node knows about each driver, in one table: config validation
# (firmware/config/), the sensor slots (firmware/sensors.py), chip detection
# (drivers/detect.py) and the simulated board (hal/sim/board.py) all read it. Pure
# data: no driver is imported here, each is imported by its module name when a sensor
# that uses it is opened, so a board loads only the drivers it has sensors for.
#
# Adding a driver: its folder drivers/<name>/ (the module drivers.<name>), its chip
# model hal/sim/<name>.py, one entry here. An entry's keys:
#
#   cls           the driver class in drivers.<name> (imported lazily by name)
#   buses         the bus kinds it can use; the first is its usual one
#   address       the default I2C address (None for a chip not on I2C)
#   addresses     every I2C address the chip can sit at, in the order detect.scan tries
#   quantities    what read() returns (the quantity names of the node's data payload)
#   role          "rh": a humidity source another sensor may be corrected with;
#                 "pm": a particulate sensor, which may take an rh_correction
#   pins          its options that name a board pin, opened with platform.pin() when
#                 the sensor is: "power_pin" switches the sensor's supply
#   sim           the chip model's class in hal.sim.<name>

_PM = ("pm1_0", "pm2_5", "pm10")
# fmt: off
DRIVERS = {
    "bh1750": {"cls": "BH1750", "buses": ("i2c",), "address": 0x23, "addresses": (0x23, 0x5C), "quantities": ("illuminance",), "role": None, "pins": (), "sim": "SimBH1750"},
    "bme280": {"cls": "BME280", "buses": ("i2c", "spi"), "address": 0x76, "addresses": (0x76, 0x77), "quantities": ("temperature", "humidity", "pressure"), "role": "rh", "pins": (), "sim": "SimBME280"},
    "pms5003": {"cls": "PMS5003", "buses": ("uart",), "address": None, "addresses": (), "quantities": _PM, "role": "pm", "pins": ("power_pin",), "sim": "SimPMS5003"},
    "scd4x": {"cls": "SCD4x", "buses": ("i2c",), "address": 0x62, "addresses": (0x62,), "quantities": ("co2", "temperature", "humidity"), "role": "rh", "pins": (), "sim": "SimSCD4x"},
    "sds011": {"cls": "SDS011", "buses": ("uart",), "address": None, "addresses": (), "quantities": _PM, "role": "pm", "pins": ("power_pin",), "sim": "SimSDS011"},
    "sht4x": {"cls": "SHT4x", "buses": ("i2c",), "address": 0x44, "addresses": (0x44, 0x45, 0x46), "quantities": ("temperature", "humidity"), "role": "rh", "pins": (), "sim": "SimSHT4x"},
    "sps30": {"cls": "SPS30", "buses": ("i2c",), "address": 0x69, "addresses": (0x69,), "quantities": _PM, "role": "pm", "pins": (), "sim": "SimSPS30"},
}
# fmt: on

# Chips a driver reads besides its own (detect names what it found): chip -> driver.
ALIASES = {"bmp280": "bme280"}


def names(role=None):
    """The driver names, sorted (dict order differs between the interpreters); only
    those of `role` ("rh" or "pm") when given."""
    return sorted(n for n in DRIVERS if role is None or DRIVERS[n]["role"] == role)


def entry(name):
    """The entry of driver `name` (an alias such as "bmp280" gives its driver's);
    ValueError naming the known drivers otherwise."""
    e = DRIVERS.get(ALIASES.get(name, name))
    if e is None:
        raise ValueError("no driver named %r (known: %s)" % (name, ", ".join(names())))
    return e


def load(module, cls):
    """The class `cls` of module `module`, imported now (ImportError if it is not on
    this board, or the module has no such class)."""
    mod = __import__(module, None, None, (cls,))
    try:
        return getattr(mod, cls)
    except AttributeError:  # a package directory without the class in it yet
        raise ImportError("%s has no %s" % (module, cls))


def driver_class(name):
    """The driver class of `name` (or of an alias), imported now."""
    name = ALIASES.get(name, name)
    return load("drivers." + name, entry(name)["cls"])


def model_class(name):
    """The simulator's chip model for driver `name`, imported now."""
    return load("hal.sim." + name, entry(name)["sim"])
