# The air around a simulated node: what its sensors would measure at a given time.
#
# A device model asks env.sample("temperature", t_ms) with t_ms the simulated time
# since the simulation started. Quantity names and units are the contract's
# (temperature °C, humidity %RH, pressure hPa, pm1_0/pm2_5/pm10 µg/m³, co2 ppm,
# illuminance lx).

import math

DAY_MS = 86400000

_DEFAULTS = {
    "temperature": 20.0,
    "humidity": 50.0,
    "pressure": 1013.25,
    "pm1_0": 5.0,
    "pm2_5": 8.0,
    "pm10": 12.0,
    "co2": 420.0,
    "illuminance": 300.0,
}


class Environment:
    """Constant conditions; set(...) changes them, as a test moves the weather."""

    def __init__(self, **values):
        self.values = dict(_DEFAULTS)
        self.set(**values)

    def set(self, **values):
        for name in values:
            if name not in self.values:
                raise ValueError("unknown quantity %r" % (name,))
            self.values[name] = values[name]

    def sample(self, quantity, t_ms):
        return self.values[quantity]


class StreetEnvironment(Environment):
    """A street in Siegen over the day: temperature peaking in the afternoon, humidity
    opposite to it, slow pressure drift, particulate and CO2 peaks at rush hours,
    daylight. `seed` gives every node a slightly different street; `start_hour` is
    the local time when the simulation starts."""

    def __init__(self, seed=0, start_hour=8.0, **values):
        super().__init__(**values)
        self.start_ms = int(start_hour * 3600000)
        # A small deterministic offset per node, without the random module.
        self.offset = ((seed * 2654435761) % 1000) / 1000.0 - 0.5

    def _hour(self, t_ms):
        return ((self.start_ms + t_ms) % DAY_MS) / 3600000.0

    def sample(self, quantity, t_ms):
        base = self.values[quantity]
        h = self._hour(t_ms)
        o = self.offset
        day = math.cos(2 * math.pi * (h - 15.0) / 24.0)  # 1 at 15:00, -1 at 03:00
        rush = math.exp(-(((h - 8.0) / 1.2) ** 2)) + 0.8 * math.exp(-(((h - 17.5) / 1.5) ** 2))
        if quantity == "temperature":
            return base + 6.0 * day + o
        if quantity == "humidity":
            return min(98.0, max(5.0, base - 20.0 * day + 4.0 * o))
        if quantity == "pressure":
            return base + 4.0 * math.sin(2 * math.pi * (self.start_ms + t_ms) / (3.0 * DAY_MS)) + o
        if quantity in ("pm1_0", "pm2_5", "pm10"):
            return base * (1.0 + 2.5 * rush + 0.2 * o)
        if quantity == "co2":
            return base + 120.0 * rush + 10.0 * o
        if quantity == "illuminance":
            sun = math.sin(math.pi * (h - 6.0) / 14.0) if 6.0 <= h <= 20.0 else 0.0
            return max(0.5, 30000.0 * sun * (0.8 + 0.2 * o) + 5.0)
        return base
