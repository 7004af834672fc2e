# The "sim" section of a unix-sim node's config: the simulated street's seed and start
# hour, and the faults to switch on and off while the node runs (hal/sim/board.py). It
# lives beside the simulator: validation on a board never loads it (firmware/config/
# schema.py imports it only for a config that has a "sim" section, on board unix-sim).
#
#   "sim": {"seed": 1, "start_hour": 8.0,
#           "faults": [{"sensor": "air", "kind": "eio", "at_s": 60, "for_s": 30},
#                      {"kind": "wlan_down", "at_s": 90, "for_s": 20}],
#           "wlan": {"assoc_ms": 1500, "dhcp_ms": 500, "rssi_dbm": -67, "rssi_swing_db": 6}}
# The radio's faults (hal/sim/wlan.py: wlan_down, ap_refuses, ntp_silent) name no sensor and
# need the node's "wifi" section: only a node with one has a simulated radio.

from firmware.config.checks import REQUIRED, choice, get, integer, num, obj, string
from firmware.config.messages import ConfigError, show
from hal.sim.board import FAULT_KINDS, RADIO_FAULT_KINDS

MAX_FAULTS = 64

_KIND_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_-"


def sim(v, path, sensor_names, radio=False):
    """The validated "sim" section, its defaults filled in; faults may name only the
    node's sensors (`sensor_names`); radio faults and "wlan" only where `radio` (the node
    has a "wifi" section)."""
    obj(v, path, ("seed", "start_hour", "faults", "wlan"))
    faults = get(v, path, "faults", _faults, [], sensor_names, radio)
    out = {
        "seed": get(v, path, "seed", integer, None, 0),
        "start_hour": get(v, path, "start_hour", num, 8.0, 0, 24),
        "faults": faults,
    }
    if v.get("wlan") is not None:
        if not radio:
            raise ConfigError(path + ".wlan", "a simulated radio needs the node's wifi section")
        out["wlan"] = _wlan(v["wlan"], path + ".wlan")
    return out


def _wlan(v, path):
    obj(v, path, ("assoc_ms", "dhcp_ms", "rssi_dbm", "rssi_swing_db", "ssid"))
    out = {
        "assoc_ms": get(v, path, "assoc_ms", integer, 1500, 0, 60000),
        "dhcp_ms": get(v, path, "dhcp_ms", integer, 500, 0, 60000),
        "rssi_dbm": get(v, path, "rssi_dbm", integer, -67, -100, -20),
        "rssi_swing_db": get(v, path, "rssi_swing_db", integer, 6, 0, 40),
    }
    if v.get("ssid") is not None:
        out["ssid"] = string(v["ssid"], path + ".ssid", 1, 32)
    return out


def _fault_kind(v, path):
    string(v, path, 1, 16, _KIND_CHARS, " of a-z _")
    return choice(v, path, FAULT_KINDS + RADIO_FAULT_KINDS)


def _faults(v, path, sensor_names, radio=False):
    if type(v) is not list or len(v) > MAX_FAULTS:
        raise ConfigError(path, "must be a list of at most %d faults, not %s" % (MAX_FAULTS, show(v)))
    out = []
    for i in range(len(v)):
        p = "%s[%d]" % (path, i)
        f = obj(v[i], p, ("sensor", "kind", "at_s", "for_s"))
        kind = get(f, p, "kind", _fault_kind, REQUIRED)
        spec = {"kind": kind, "at_s": get(f, p, "at_s", num, 0, 0), "for_s": get(f, p, "for_s", num, 0, 0)}
        if kind in RADIO_FAULT_KINDS:
            if f.get("sensor") is not None:
                raise ConfigError(p + ".sensor", "a %s fault is the radio's: it names no sensor" % kind)
            if not radio:
                raise ConfigError(p + ".kind", "%s needs a simulated radio: give the node a wifi section" % kind)
        else:
            spec["sensor"] = get(f, p, "sensor", choice, REQUIRED, sensor_names)
        out.append(spec)
    return out
