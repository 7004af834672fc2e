"""The fleet register (fleet-register.csv, written by `streetnode provision`) as the bridge
reads it: where a node stands and what it carries.

Columns used: id, site, lat, lon, board, sensors ("name:driver@bus;..."), firmware, and the
optional `sensor_community` (the node's sensor.community id, e.g. "esp32-3245619", or per
sensor "pm=esp32-3245619;air=esp32-3245619"). A node missing from the register is bridged
from its messages alone.
"""

from streetnode.common.errors import Failure


class NodeInfo:
    __slots__ = ("node", "site", "lat", "lon", "board", "drivers", "firmware", "sensor_community", "interval_s")

    def __init__(self, node, site="", lat=None, lon=None, board="", drivers=None, firmware="",
                 sensor_community=None, interval_s=None):  # fmt: skip
        self.node = node
        self.site = site
        self.lat = lat
        self.lon = lon
        self.board = board
        self.drivers = drivers or {}  # sensor name -> driver (chip model)
        self.firmware = firmware
        self.sensor_community = sensor_community or {}  # sensor name or "*" -> X-Sensor id
        self.interval_s = interval_s

    @property
    def located(self):
        return self.lat is not None and self.lon is not None


def _float(row, key, path, lo, hi):
    text = (row.get(key) or "").strip()
    if not text:
        return None
    try:
        v = float(text)
    except ValueError:
        raise Failure("register %s: node %s: %s %r is not a number" % (path, row.get("id"), key, text)) from None
    if not lo <= v <= hi:
        raise Failure("register %s: node %s: %s %s is outside %s..%s" % (path, row.get("id"), key, text, lo, hi))
    return v


def _drivers(text):
    out = {}
    for item in (text or "").split(";"):
        name, _, rest = item.strip().partition(":")
        if name and rest:
            out[name] = rest.partition("@")[0].strip().lower()
    return out


def _sensor_community(text):
    text = (text or "").strip()
    if not text:
        return {}
    if "=" not in text:
        return {"*": text}
    out = {}
    for item in text.split(";"):
        name, _, sid = item.partition("=")
        if name.strip() and sid.strip():
            out[name.strip()] = sid.strip()
    return out


def load(path):
    """{node id: NodeInfo} from the register at `path` (Failure when it cannot be read)."""
    from streetnode.technician.provision import read_register

    nodes = {}
    for row in read_register(path):
        node = (row.get("id") or "").strip().lower()
        if not node:
            continue
        nodes[node] = NodeInfo(
            node,
            site=(row.get("site") or "").strip(),
            lat=_float(row, "lat", path, -90, 90),
            lon=_float(row, "lon", path, -180, 180),
            board=(row.get("board") or "").strip(),
            drivers=_drivers(row.get("sensors")),
            firmware=(row.get("firmware") or "").strip(),
            sensor_community=_sensor_community(row.get("sensor_community")),
            interval_s=_float(row, "interval_s", path, 0.01, 86400 * 7),
        )
    return nodes
