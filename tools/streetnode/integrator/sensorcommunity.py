"""sensor.community (formerly luftdaten.info): readings pushed as the airRohr firmware pushes
them, for the nodes the register opts in (column sensor_community: the id the node is
registered under, e.g. "esp32-3245619").

    POST https://api.sensor.community/v1/push-sensor-data/
    X-Sensor: esp32-3245619     X-Pin: 1        Content-Type: application/json
    {"software_version": "streetnode-bridge 0.1.0",
     "sensordatavalues": [{"value_type": "P1", "value": "12.40"}, {"value_type": "P2", "value": "8.10"}]}

One request per sensor family (X-Pin), values as strings, never NaN; pressure in Pa. The
service has no way to ask what it holds, so a redelivery is recognised only by the bridge's
own state (state.json).
"""

import math

from streetnode.integrator.target import Target, TargetUnavailable

DEFAULT_URL = "https://api.sensor.community/v1/push-sensor-data/"

# driver -> (X-Pin, {quantity: (value_type, factor, decimals)}), as the airRohr firmware sends them
FAMILIES = {
    "sds011": (1, {"pm10": ("P1", 1, 2), "pm2_5": ("P2", 1, 2)}),
    "pms5003": (1, {"pm1_0": ("P0", 1, 2), "pm10": ("P1", 1, 2), "pm2_5": ("P2", 1, 2)}),
    "sps30": (1, {"pm1_0": ("P0", 1, 2), "pm10": ("P1", 1, 2), "pm2_5": ("P2", 1, 2)}),
    "bme280": (11, {"temperature": ("temperature", 1, 2), "pressure": ("pressure", 100, 2),
                    "humidity": ("humidity", 1, 2)}),  # fmt: skip
    "sht4x": (7, {"temperature": ("temperature", 1, 2), "humidity": ("humidity", 1, 2)}),
}


def pushes(reading, drivers):
    """[(sensor, pin, sensordatavalues)] for one reading; drivers: sensor name -> driver."""
    out = []
    for sensor in sorted({s for s, _, _ in reading.values}):
        driver = drivers.get(sensor)
        if driver == "bme280" and not any(s == sensor and q == "humidity" for s, q, _ in reading.values):
            pin, table = 3, FAMILIES["bme280"][1]  # a BMP280 (no humidity) is its own family: pin 3
        elif driver in FAMILIES:
            pin, table = FAMILIES[driver]
        else:
            continue
        values = []
        for s, q, v in reading.values:
            if s != sensor or q not in table:
                continue
            value_type, factor, decimals = table[q]
            x = float(v) * factor
            if math.isfinite(x):
                values.append({"value_type": value_type, "value": "%.*f" % (decimals, x)})
        if values:
            out.append((sensor, pin, values))
    return out


class SensorCommunity(Target):
    name = "sensor-community"

    def __init__(self, register, url=DEFAULT_URL, software_version="streetnode-bridge", timeout=(5.0, 20.0),
                 log=print):  # fmt: skip
        import requests

        self.register = register or {}
        self.url = url
        self.software_version = software_version
        self.timeout = timeout
        self.http = requests.Session()
        self._requests = requests
        self.log = log
        self.pushed = 0

    def _sensor_id(self, info, sensor):
        return info.sensor_community.get(sensor) or info.sensor_community.get("*")

    def deliver(self, readings, uncertain):
        outcome = {}
        for r in readings:
            info = self.register.get(r.node)
            if info is None or not info.sensor_community:
                outcome[r.key] = None  # not opted in: nothing to do
                continue
            refused = None
            for sensor, pin, values in pushes(r, info.drivers):
                sid = self._sensor_id(info, sensor)
                if not sid:
                    continue
                body = {"software_version": self.software_version, "sensordatavalues": values}
                try:
                    resp = self.http.post(self.url, json=body, timeout=self.timeout,
                                          headers={"X-Sensor": sid, "X-Pin": str(pin)})  # fmt: skip
                except self._requests.RequestException as e:
                    raise TargetUnavailable("sensor.community push: %s" % type(e).__name__) from None
                code = resp.status_code
                if code >= 500 or code in (401, 403, 408, 429):
                    raise TargetUnavailable("sensor.community answered %d" % code)
                if code >= 400:
                    refused = "sensor.community answered %d for pin %d: %s" % (code, pin, resp.text[:200].strip())
                else:
                    self.pushed += 1
            outcome[r.key] = refused
        return outcome
