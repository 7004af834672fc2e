# BME280 drivers on the same simulated chip: bus transactions, heap and time per reading.
#
#   MICROPYPATH=<peers>:<repo>:.frozen micropython tools/streetnode/bench/device/bme280_micropython.py 200
#
# prints one JSON object: {"interpreter": ..., "rows": [...]} with a row for our driver
# and, when bme280-upy is on the path (tools/streetnode/bench/bme280.py copies it into a temp
# dir at run time), one for it. tools/streetnode/bench/bme280.py also imports this file on
# CPython and runs the same harness there (our driver and adafruit_bme280).
#
# Every driver gets a fresh SimBME280 with the default calibration in the same constant
# Environment, on a SimI2C with the log off, under a VirtualClock: the drivers' sleeps
# advance simulated time and cost no real time, so the microseconds are the driver's
# own work (and the simulator's), not the conversion wait.

import gc
import json
import sys

from measure import heap_bytes, interpreter, ticks_us as _ticks_us, us_since as _us_since
from hal import clock
from hal.sim.bme280 import SimBME280
from hal.sim.bus import SimI2C
from hal.sim.environment import Environment

ADDRESS = 0x76
ENV = {"temperature": 21.53, "humidity": 45.21, "pressure": 1013.25}


def measure(name, make, read, readings, heap_readings, fetch=None, values=None, bus_class=SimI2C):
    """One row: `make(i2c)` builds the driver, `read(sensor)` takes one full reading
    (temperature, humidity, pressure), `fetch(sensor)` only the bus part if the driver
    has one, `values(result)` turns a reading into (°C, %RH, hPa)."""
    clk = clock.install(clock.VirtualClock())
    i2c = bus_class(log=False)
    i2c.attach(SimBME280(Environment(**ENV)), ADDRESS)
    sensor = make(i2c)
    ctor_tx = i2c.transactions
    read(sensor)  # the first reading may finish a lazy set-up (bme280-upy resets then)
    first_tx = i2c.transactions - ctor_tx

    gc.collect()
    tx0 = i2c.transactions
    ms0 = clk.now_ms
    t0 = _ticks_us()
    for _ in range(readings):
        read(sensor)
    us = _us_since(t0)
    tx = (i2c.transactions - tx0) / readings
    sim_ms = (clk.now_ms - ms0) / readings

    row = {
        "driver": name,
        "interpreter": interpreter(),
        "setup_tx": ctor_tx + first_tx - tx,
        "tx_per_reading": tx,
        "heap_per_reading": heap_bytes(lambda: read(sensor), heap_readings),
        "heap_per_fetch": None,
        "us_per_reading": us / readings,
        "sim_ms_per_reading": sim_ms,
        "readings": readings,
    }
    if fetch is not None:
        f = fetch(sensor)
        f()  # warm-up
        row["heap_per_fetch"] = heap_bytes(f, heap_readings)
    result = read(sensor)
    row["values"] = list(values(result)) if values is not None else None
    clock.install(None)
    return row


# -- our driver --------------------------------------------------------------------


def ours(readings, heap_readings):
    from drivers.bme280 import BME280

    def values(v):
        return v["temperature"], v["humidity"], v["pressure"]

    return measure(
        "streetnode drivers.bme280",
        lambda i2c: BME280(i2c, ADDRESS),
        lambda s: s.read(),
        readings,
        heap_readings,
        fetch=lambda s: s.measure,
        values=values,
    )


# -- bme280-upy (Michael Büsch), MicroPython only here ----------------------------------
# It wants a machine.I2C (an isinstance check) and asyncio.sleep for its polling: the
# shim below gives it our SimI2C under machine's names, and an asyncio whose sleep
# advances the VirtualClock (its default poll interval is 50 ms).


class _I2C(SimI2C):
    pass


class _SPI:
    MSB = 0


class _Pin:
    OPEN_DRAIN = 2
    OUT = 1
    IN = 0


class _machine:
    I2C = _I2C
    SoftI2C = _I2C
    SPI = _SPI
    SoftSPI = _SPI
    Pin = _Pin


class _VirtualAsyncio:
    run = None  # asyncio.run, set by upy()

    @staticmethod
    async def sleep(seconds):
        clock.sleep_ms(int(seconds * 1000 + 0.999))


def upy(readings, heap_readings, version=""):
    import asyncio

    sys.modules["machine"] = _machine
    import bme280

    _VirtualAsyncio.run = staticmethod(asyncio.run)
    drv = sys.modules["bme280.bme280"]
    drv.asyncio = _VirtualAsyncio
    calc = {bme280.CALC_FLOAT: "float", bme280.CALC_INT32: "int32", bme280.CALC_INT64: "int64"}

    def make(i2c):
        s = bme280.BME280(i2cBus=i2c, i2cAddr=ADDRESS)
        return s

    def values(r):
        t, h, p = r
        return t, h * 100, p / 100

    default_calc = 1 if sys.implementation.name == "micropython" else 0
    return measure(
        "bme280-upy %s (%s)" % (version, calc[default_calc]),
        make,
        lambda s: s.readForced(),
        readings,
        heap_readings,
        values=values,
        bus_class=_I2C,
    )


def main(argv):
    readings = int(argv[1]) if len(argv) > 1 else 200
    heap_readings = min(readings, 20)
    upy_version = argv[2] if len(argv) > 2 else ""
    rows = [ours(readings, heap_readings)]
    skipped = {}
    try:
        import bme280  # noqa: F401 - only present when the host put it on MICROPYPATH

        have_upy = True
    except ImportError:
        have_upy = False
    if have_upy:
        rows.append(upy(readings, heap_readings, upy_version))
    else:
        skipped["bme280-upy"] = "not on MICROPYPATH"
    print(json.dumps({"interpreter": interpreter(), "rows": rows, "skipped": skipped}))


if __name__ == "__main__":
    main(sys.argv)
