# The air-quality sensor drivers (SHT4x, BH1750, SCD4x, SPS30, PMS5003) on their simulated
# chips: bus transactions, heap and time per reading, for tools/streetnode/bench/sensors.py.
#
#   MICROPYPATH=<repo>:.frozen micropython tools/streetnode/bench/device/sensors_micropython.py 200
#
# prints one JSON object: {"interpreter": ..., "rows": [...]} with a row for each of our
# drivers (SHT4x, BH1750, SCD4x, SPS30, PMS5003). tools/streetnode/bench/sensors.py also
# imports this file on CPython, runs the same rows there and adds the peers' rows through
# measure() (the peers only run on CPython).
#
# Every driver gets a fresh simulated chip in the same constant Environment, on a bus with
# the log off, under a VirtualClock: the drivers' sleeps advance simulated time and cost
# no real time. Before each reading the clock is advanced by the sensor's INTERVAL_MS (the
# time the chip needs for a new value), so every counted reading returns a fresh value.

import gc
import json
import sys

from measure import heap_bytes, interpreter, ticks_us as _ticks_us, us_since as _us_since
from hal import clock
from hal.sim.bh1750 import SimBH1750
from hal.sim.bus import SimI2C, SimUART
from hal.sim.environment import Environment
from hal.sim.pms5003 import SimPMS5003
from hal.sim.scd4x import SimSCD4x
from hal.sim.sht4x import SimSHT4x
from hal.sim.sps30 import SimSPS30

ENV = {
    "temperature": 21.53,
    "humidity": 45.21,
    "pressure": 1013.25,
    "illuminance": 412.5,
    "co2": 731.0,
    "pm1_0": 6.0,
    "pm2_5": 9.0,
    "pm10": 15.0,
}
ADDRESS = {"SHT4x": 0x44, "BH1750": 0x23, "SCD4x": 0x62, "SPS30": 0x69}
POWER_UP_MS = {"SHT4x": 2, "BH1750": 0, "SCD4x": 1000, "SPS30": 0, "PMS5003": 1000}
# Waited once after set-up, before the first reading (our SPS30 and PMS5003 drivers refuse
# readings in the sensor's 30 s warm-up; the same wait is given to every driver).
WARM_UP_MS = {"SHT4x": 0, "BH1750": 0, "SCD4x": 0, "SPS30": 30000, "PMS5003": 30000}
# Advanced before every reading: one new value of the chip. SHT4x: a measurement per
# command; BH1750 continuous H-resolution mode 2: a cycle (120 ms typical, 180 max);
# SCD4x periodic: 5 s; SPS30: 1 s; PMS5003 active: the drivers wait for the next frame.
INTERVAL_MS = {"SHT4x": 0, "BH1750": 200, "SCD4x": 5000, "SPS30": 1000, "PMS5003": 0}
SENSORS = ("SHT4x", "BH1750", "SCD4x", "SPS30", "PMS5003")


def chip(sensor, clk):
    """A fresh simulated chip of `sensor` in the constant air, powered up: its bus
    (SimI2C, or SimUART for the PMS5003), the log off."""
    env = Environment(**ENV)
    if sensor == "PMS5003":
        bus = SimUART(SimPMS5003(env, noise=False), log=False)
    else:
        bus = SimI2C(log=False)
        if sensor == "SHT4x":
            model = SimSHT4x(env, log=False)
        elif sensor == "BH1750":
            model = SimBH1750(env, log=False)
        elif sensor == "SCD4x":
            model = SimSCD4x(env)
        else:
            model = SimSPS30(env)
        bus.attach(model, ADDRESS[sensor])
    clk.sleep_ms(POWER_UP_MS[sensor])
    return bus


def measure(sensor, name, make, read, readings, heap_readings, values, chip_bus=None, prime=None):
    """One row: `make(bus)` builds and starts the driver (its transactions are the set-up),
    `read(driver)` takes one full reading, `values(result)` turns it into the row's
    reading (a list of numbers). chip_bus(clk) may replace chip() (a peer that needs its
    own wiring); prime(driver) runs after the warm-up, before the first reading (counted
    in the set-up)."""
    clk = clock.install(clock.VirtualClock())
    bus = chip_bus(clk) if chip_bus is not None else chip(sensor, clk)
    t_setup = clk.now_ms
    driver = make(bus)
    ctor_tx = bus.transactions
    clk.sleep_ms(WARM_UP_MS[sensor])
    if prime is not None:
        prime(driver)
    wait = INTERVAL_MS[sensor]

    def one():
        clk.sleep_ms(wait)
        return read(driver)

    one()  # the first reading may finish a lazy set-up
    first_tx = bus.transactions - ctor_tx
    setup_ms = clk.now_ms - t_setup

    gc.collect()
    tx0 = bus.transactions
    ms0 = clk.now_ms
    t0 = _ticks_us()
    for _ in range(readings):
        one()
    us = _us_since(t0)
    tx = (bus.transactions - tx0) / readings
    sim_ms = (clk.now_ms - ms0) / readings
    row = {
        "sensor": sensor,
        "driver": name,
        "interpreter": interpreter(),
        "setup_tx": ctor_tx + first_tx - tx,
        "tx_per_reading": tx,
        "heap_per_reading": heap_bytes(one, heap_readings),
        "us_per_reading": us / readings,
        "sim_ms_per_reading": sim_ms,
        "setup_sim_ms": setup_ms,
        "readings": readings,
    }
    row["values"] = list(values(one()))
    clock.install(None)
    return row


# -- our drivers ---------------------------------------------------------------------------


def _pm(v):
    return v["pm1_0"], v["pm2_5"], v["pm10"]


def ours(readings, heap_readings):
    from drivers.bh1750 import BH1750
    from drivers.pms5003 import PMS5003
    from drivers.scd4x import SCD4x
    from drivers.sht4x import SHT4x
    from drivers.sps30 import SPS30

    rows = []
    rows.append(
        measure(
            "SHT4x",
            "streetnode drivers.sht4x",
            lambda i2c: SHT4x(i2c, ADDRESS["SHT4x"]),
            lambda s: s.read(),
            readings,
            heap_readings,
            lambda v: (v["temperature"], v["humidity"]),
        )
    )
    for mode in ("continuous", "one_time"):
        rows.append(
            measure(
                "BH1750",
                "streetnode drivers.bh1750 (%s)" % mode,
                lambda i2c, mode=mode: BH1750(i2c, ADDRESS["BH1750"], mode=mode, resolution="high2"),
                lambda s: s.read(),
                readings,
                heap_readings,
                lambda v: (v["illuminance"],),
            )
        )
    rows.append(
        measure(
            "SCD4x",
            "streetnode drivers.scd4x",
            lambda i2c: SCD4x(i2c, ADDRESS["SCD4x"]),
            lambda s: s.read(),
            readings,
            heap_readings,
            lambda v: (v["co2"], v["temperature"], v["humidity"]),
        )
    )
    rows.append(
        measure(
            "SPS30",
            "streetnode drivers.sps30",
            lambda i2c: SPS30(i2c, ADDRESS["SPS30"]),
            lambda s: s.read(),
            readings,
            heap_readings,
            _pm,
        )
    )
    rows.append(
        measure(
            "PMS5003",
            "streetnode drivers.pms5003 (active)",
            lambda uart: PMS5003(uart, "active"),
            lambda s: s.read(),
            readings,
            heap_readings,
            _pm,
        )
    )
    rows.append(
        measure(
            "PMS5003",
            "streetnode drivers.pms5003 (passive)",
            lambda uart: PMS5003(uart, "passive"),
            lambda s: s.read(),
            readings,
            heap_readings,
            _pm,
        )
    )
    return rows


def main(argv):
    readings = int(argv[1]) if len(argv) > 1 else 200
    heap_readings = min(readings, 20)
    print(json.dumps({"interpreter": interpreter(), "rows": ours(readings, heap_readings)}))


if __name__ == "__main__":
    main(sys.argv)
