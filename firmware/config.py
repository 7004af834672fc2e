"""The node's config file: config.json in the node's directory on flash.

A node on a lamp post must not brick itself from a typo: load() validates every key,
names the exact key path that is wrong and why, and keeps the node running on the last
good config (config.good.json, refreshed whenever config.json validates).

    {
      "node_id": "lamp-0042",                       required: 1-32 of a-z 0-9 -
      "site": "Siegen, Koblenzer Strasse",          free text, up to 64 characters ("")
      "location": {"lat": 50.8748, "lon": 8.0243},  lat -90..90, lon -180..180, optional
                                                    "alt_m" -500..9000 (default: null)
      "board": "esp32-devkitc",                     required: esp32-devkitc, pico-w,
                                                    unix-sim or pi
      "wifi": {"ssid": "city-iot",                  1-32 characters; required on
               "password": "...",                   esp32-devkitc and pico-w; password
               "timeout_s": 20},                    "" (open) or 8-63 characters;
                                                    timeout_s 1..300 (20)
      "mqtt": {"host": "mqtt.siegen.de",            required: a host name or IP address
               "port": 8883,                        1..65535 (1883, or 8883 with tls)
               "user": "lamp-0042",                 optional (null)
               "password": "...",                   optional, only with a user (null)
               "prefix": "streetnode",              topic levels of A-Z a-z 0-9 _ -
                                                    joined by / ("streetnode")
               "keepalive_s": 60,                   5..3600 (60)
               "tls": true,                         (false)
               "ca": "city-ca.der"},                the DER CA certificate, a file name in
                                                    the node's directory; required with
                                                    tls, refused without it (null)
      "interval_s": 60,                             seconds per sampling cycle, 1..86400, on
                                                    unix-sim from 0.05 (60)
      "health_every": 10,                           cycles per health report, 1..10000 (10)
      "outbox": {"max_records": 1000},              records kept while offline, 1..100000
                                                    (1000)
      "watchdog_s": 60,                             0 = off, else 1..3600; at most 8.3 on
                                                    pico-w (default 60 on esp32-devkitc,
                                                    8 on pico-w, 0 on unix-sim and pi)
      "deep_sleep": false,                          wake, sample, publish or commit, sleep;
                                                    not on pi (false)
      "ntp": {"host": "pool.ntp.org"},              "" = no NTP (default pool.ntp.org on
                                                    esp32-devkitc and pico-w, "" on
                                                    unix-sim and pi, whose OS keeps time)
      "sensors": [                                  up to 16 ([])
        {"name": "air",                             required, unique: 1-32 of a-z 0-9 _ -
         "driver": "bme280",                        required: bme280, bh1750, pms5003,
                                                    scd4x, sds011, sht4x, sps30
         "bus": "i2c0",                             required: i2c<N>, spi<N> or uart<N>,
                                                    one the board has and the driver can use
         "address": 118,                            I2C only: 0x08..0x77 or "auto";
                                                    null = the driver's default (null)
         "options": {"iir_filter": 4},              driver options, up to 16 keys of
                                                    a-z 0-9 _ with a number, string (64),
                                                    true/false or null; checked by the
                                                    driver, whose error names the option ({})
         "interval_s": 300,                         like the node's; null = the node's (null)
         "warmup_s": 30,                            0..600; null = the driver's (null)
         "window": {"n": 5, "agg": "median"},       n 1..60 samples per interval, agg
                                                    "median" or "mean" (1, "median")
         "enabled": true,                           (true)
         "rh_correction": {"humidity_from": "air",  PM sensors only: publish, next to each raw
                           "kappa": 0.3}},          pm value, <name>_rh_corrected, dried by the
                                                    kappa-Koehler growth factor with the
                                                    humidity of that sensor (null: none)
      ],
      "sim": {"seed": 1,                            unix-sim only: the simulated street's
              "start_hour": 8.0,                    seed (null: from node_id), start hour
              "faults": [{"sensor": "air",          0..24 (8.0) and up to 64 sensor faults
                          "kind": "eio",            (absent, eio, stuck_busy, corrupt,
                          "at_s": 60,               hang, frozen, brownout) from at_s
                                                    for for_s seconds
                          "for_s": 30}]}            (0: to the end) ([])
    }

Required: node_id, board, mqtt.host, and each sensor's name, driver and bus (plus wifi
on the Wi-Fi boards, lat and lon in a location, ca with tls). The values in brackets
are the defaults, filled in by validate(). Unknown keys are errors (a typo must not
pass silently), and so are wrong types, numbers out of range, NaN and Infinity. null stands for "the default" everywhere. A board's limits are checked: two
sensors on one UART, two I2C sensors at one address, or a bus the board lacks are errors.

Remote changes are JSON merge patches (RFC 7396): patch() applies one to the running
config and validates the result, so {"interval_s": 30} changes one key, null removes a
key (back to its default), and a list such as "sensors" is replaced as a whole.

Hostile input is bounded before it is parsed: at most MAX_BYTES bytes, nesting at most
MAX_DEPTH deep and MAX_CONTAINERS objects and lists in all.
"""

import json

from firmware import atomic

CONFIG_FILE = "config.json"
GOOD_FILE = "config.good.json"
MAX_BYTES = 16384
MAX_DEPTH = 6
MAX_CONTAINERS = 256
MAX_SENSORS = 16

BOARDS = ("esp32-devkitc", "pico-w", "unix-sim", "pi")
# driver -> the bus kinds it can use (CONTRACT.md section 2)
DRIVERS = {
    "bme280": ("i2c", "spi"),
    "bh1750": ("i2c",),
    "pms5003": ("uart",),
    "scd4x": ("i2c",),
    "sds011": ("uart",),
    "sht4x": ("i2c",),
    "sps30": ("i2c",),
}
_DEFAULT_ADDRESS = {"bme280": 0x76, "bh1750": 0x23, "scd4x": 0x62, "sht4x": 0x44, "sps30": 0x69}
_WATCHDOG_DEFAULT = {"esp32-devkitc": 60, "pico-w": 8, "unix-sim": 0, "pi": 0}
_WATCHDOG_MAX_PICO = 8.3  # the RP2040 watchdog counts to 8.388 s
_NTP_DEFAULT = {"esp32-devkitc": "pool.ntp.org", "pico-w": "pool.ntp.org", "unix-sim": "", "pi": ""}
_WIFI_BOARDS = ("esp32-devkitc", "pico-w")
_AGGREGATES = ("median", "mean")

_LOWER = "abcdefghijklmnopqrstuvwxyz"
_DIGITS = "0123456789"
_NODE_CHARS = _LOWER + _DIGITS + "-"
_NAME_CHARS = _LOWER + _DIGITS + "_-"
_OPTION_CHARS = _LOWER + _DIGITS + "_"
_TOPIC_CHARS = _LOWER + _LOWER.upper() + _DIGITS + "_-"
_FILE_CHARS = _TOPIC_CHARS + "."
_HOST_CHARS = _FILE_CHARS + ":"

_REQUIRED = object()


class ConfigError(ValueError):
    """A config (or patch) that is not valid: str() is "key.path: why"; .path is the key
    path ("" when the whole document is wrong)."""

    def __init__(self, path, why):
        super().__init__("%s: %s" % (path, why) if path else why)
        self.path = path


# -- parsing untrusted bytes ------------------------------------------------------------------


def parse_json(data, max_bytes=MAX_BYTES, max_depth=MAX_DEPTH, max_containers=MAX_CONTAINERS):
    """Parse untrusted JSON (bytes or str) with the size, nesting and container count
    checked first, so that neither interpreter can be made to run out of memory or
    stack. Raises ConfigError saying what is wrong."""
    if isinstance(data, str):
        data = data.encode()
    if len(data) > max_bytes:
        raise ConfigError("", "%d bytes, more than the %d allowed" % (len(data), max_bytes))
    depth = containers = 0
    in_string = escaped = False
    for c in data:
        if in_string:
            if escaped:
                escaped = False
            elif c == 0x5C:  # backslash
                escaped = True
            elif c == 0x22:
                in_string = False
        elif c == 0x22:
            in_string = True
        elif c == 0x7B or c == 0x5B:  # { [
            depth += 1
            containers += 1
            if depth > max_depth:
                raise ConfigError("", "nested more than %d deep" % max_depth)
            if containers > max_containers:
                raise ConfigError("", "more than %d objects and lists" % max_containers)
        elif c == 0x7D or c == 0x5D:
            depth -= 1
    try:
        return json.loads(data)
    except MemoryError:
        raise ConfigError("", "too large to parse in the memory free")
    except ValueError:  # also bad UTF-8 (UnicodeError is a ValueError)
        if not data.strip():
            raise ConfigError("", "empty")
        if in_string or depth > 0:
            raise ConfigError("", "not valid JSON: it ends early (truncated?)")
        raise ConfigError("", "not valid JSON")


def _check_shape(obj, path, depth=0, counter=None):
    # The same bounds for an object that is already parsed (a remote patch).
    if counter is None:
        counter = [0]
    t = type(obj)
    if t is dict or t is list:
        counter[0] += 1
        if depth >= MAX_DEPTH:
            raise ConfigError(path, "nested more than %d deep" % MAX_DEPTH)
        if counter[0] > MAX_CONTAINERS:
            raise ConfigError(path, "more than %d objects and lists" % MAX_CONTAINERS)
        for v in obj.values() if t is dict else obj:
            _check_shape(v, path, depth + 1, counter)


# -- messages ---------------------------------------------------------------------------------


def _show(v):
    """A value as the error message shows it: JSON spelling, long strings cut short."""
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    t = type(v)
    if t is str:
        return json.dumps(v if len(v) <= 40 else v[:37] + "...")
    if t is int or t is float:
        return repr(v)
    if t is list:
        return "a list"
    if t is dict:
        return "an object"
    return "a value of type %s" % t.__name__


def _distance(a, b):
    # Edit distance with adjacent swaps (hots -> host is 1), for "did you mean".
    before, prev = None, list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if before is not None and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], before[j - 2] + 1)
        before, prev = prev, cur
    return prev[len(b)]


def _join(path, key):
    if len(key) > 40:  # a hostile key must not make a hostile message
        key = key[:37] + "..."
    return path + "." + key if path else key


# -- checks -----------------------------------------------------------------------------------


def _object(v, path, known):
    """v must be an object whose keys are all in `known`."""
    if type(v) is not dict:
        raise ConfigError(path or "config", "must be an object, not %s" % _show(v))
    bad = []
    for k in v:
        if type(k) is not str:
            raise ConfigError(path or "config", "keys must be strings, not %s" % _show(k))
        if k not in known:
            bad.append(k)
    if bad:
        bad.sort()
        k = bad[0]
        best = None
        limit = 1 if len(k) <= 5 else 2
        for cand in known:
            d = _distance(k.lower(), cand)
            if d <= limit and (best is None or d < best[0]):
                best = (d, cand)
        hint = 'did you mean "%s"?' % best[1] if best else "known keys: " + ", ".join(known)
        raise ConfigError(_join(path, k), "unknown key (%s)" % hint)
    return v


def _num(v, path, lo, hi=None, what="a number"):
    t = type(v)
    ok = (t is int or (t is float and v - v == 0)) and v >= lo and (hi is None or v <= hi)
    if what == "an integer":
        ok = ok and t is int
    if not ok:
        rng = ">= %s" % lo if hi is None else "from %s to %s" % (lo, hi)
        raise ConfigError(path, "must be %s %s, not %s" % (what, rng, _show(v)))
    return v


def _int(v, path, lo, hi=None):
    return _num(v, path, lo, hi, "an integer")


def _bool(v, path):
    if v is not True and v is not False:
        raise ConfigError(path, "must be true or false, not %s" % _show(v))
    return v


def _str(v, path, lo, hi, chars=None, chars_text=""):
    if type(v) is not str or not lo <= len(v) <= hi:
        size = "%d to %d characters" % (lo, hi) if lo != hi else "%d characters" % lo
        raise ConfigError(path, "must be a string of %s%s, not %s" % (size, chars_text, _show(v)))
    if chars is not None:
        for c in v:
            if c not in chars:
                raise ConfigError(path, "must be %d to %d characters%s, not %s (%s)" % (
                    lo, hi, chars_text, _show(v), json.dumps(c)))  # fmt: skip
    return v


def _choice(v, path, choices):
    if type(v) is not str or v not in choices:
        raise ConfigError(path, "must be one of %s, not %s" % (", ".join(json.dumps(c) for c in choices), _show(v)))
    return v


def _get(d, path, key, check, default, *args):
    """d[key] checked by check(value, key path, *args); absent or null gives default."""
    v = d.get(key)
    if v is None:
        if default is _REQUIRED:
            raise ConfigError(_join(path, key), "required")
        return default
    return check(v, _join(path, key), *args)


# -- sections ---------------------------------------------------------------------------------


def _location(v, path):
    _object(v, path, ("lat", "lon", "alt_m"))
    return {
        "lat": _get(v, path, "lat", _num, _REQUIRED, -90, 90),
        "lon": _get(v, path, "lon", _num, _REQUIRED, -180, 180),
        "alt_m": _get(v, path, "alt_m", _num, None, -500, 9000),
    }


def _wifi(v, path):
    _object(v, path, ("ssid", "password", "timeout_s"))
    password = _get(v, path, "password", _str, "", 0, 63)
    if 0 < len(password) < 8:
        raise ConfigError(_join(path, "password"), "must be empty (an open network) or 8 to 63 characters")
    return {
        "ssid": _get(v, path, "ssid", _str, _REQUIRED, 1, 32),
        "password": password,
        "timeout_s": _get(v, path, "timeout_s", _num, 20, 1, 300),
    }


def _prefix(v, path):
    _str(v, path, 1, 64)
    for level in v.split("/"):
        if not level:
            raise ConfigError(path, "must not have empty topic levels (a leading, trailing or double /)")
        _str(level, path, 1, 64, _TOPIC_CHARS, " of A-Z a-z 0-9 _ - per topic level")
    return v


def _file_name(v, path):
    _str(v, path, 1, 64, _FILE_CHARS, " of A-Z a-z 0-9 . _ - (a file in the node's directory)")
    if v[0] == ".":
        raise ConfigError(path, "must not start with a dot, not %s" % _show(v))
    return v


def _mqtt(v, path):
    _object(v, path, ("host", "port", "user", "password", "prefix", "keepalive_s", "tls", "ca"))
    tls = _get(v, path, "tls", _bool, False)
    out = {
        "host": _get(v, path, "host", _str, _REQUIRED, 1, 253, _HOST_CHARS, " of a host name or IP address"),
        "port": _get(v, path, "port", _int, 8883 if tls else 1883, 1, 65535),
        "user": _get(v, path, "user", _str, None, 1, 128),
        "password": _get(v, path, "password", _str, None, 0, 128),
        "prefix": _get(v, path, "prefix", _prefix, "streetnode"),
        "keepalive_s": _get(v, path, "keepalive_s", _int, 60, 5, 3600),
        "tls": tls,
        "ca": _get(v, path, "ca", _file_name, None),
    }
    if out["password"] is not None and out["user"] is None:
        raise ConfigError(_join(path, "password"), "needs mqtt.user as well (MQTT sends no password alone)")
    if tls and out["ca"] is None:
        raise ConfigError(_join(path, "ca"), "required with tls: the broker's CA certificate (DER file name)")
    if not tls and out["ca"] is not None:
        raise ConfigError(_join(path, "ca"), "only used with tls: set mqtt.tls to true as well")
    return out


def _outbox(v, path):
    _object(v, path, ("max_records",))
    return {"max_records": _get(v, path, "max_records", _int, 1000, 1, 100000)}


def _ntp(v, path):
    _object(v, path, ("host",))
    host = v.get("host")
    if host is None:
        raise ConfigError(_join(path, "host"), 'required ("" for no NTP)')
    if type(host) is not str:
        raise ConfigError(_join(path, "host"), 'must be a host name, or "" for no NTP, not %s' % _show(host))
    if host:
        _str(host, _join(path, "host"), 1, 253, _HOST_CHARS, " of a host name or IP address")
    return {"host": host}


def _options(v, path):
    if type(v) is not dict:
        raise ConfigError(path, "must be an object, not %s" % _show(v))
    if len(v) > 16:
        raise ConfigError(path, "more than 16 options")
    out = {}
    for k in v:
        if type(k) is not str:
            raise ConfigError(path, "keys must be strings, not %s" % _show(k))
        p = _join(path, k)
        _str(k, p, 1, 32, _OPTION_CHARS, " of a-z 0-9 _ for an option name")
        x = v[k]
        t = type(x)
        if t is str:
            _str(x, p, 0, 64)
        elif t is int or t is float:
            _num(x, p, -1000000000, 1000000000)
        elif x is not None and x is not True and x is not False:
            raise ConfigError(p, "must be a number, a string, true, false or null, not %s" % _show(x))
        out[k] = x
    return out


def _window(v, path):
    _object(v, path, ("n", "agg"))
    return {"n": _get(v, path, "n", _int, 1, 1, 60), "agg": _get(v, path, "agg", _choice, "median", _AGGREGATES)}


def _address(v, path):
    if v == "auto" and type(v) is str:
        return v
    if type(v) is not int or not 0x08 <= v <= 0x77:
        raise ConfigError(path, 'must be an I2C address from 8 to 119 (0x08 to 0x77) or "auto", not %s' % _show(v))
    return v


def _bus_name(v, path, board):
    _str(v, path, 4, 6)
    for kind in ("i2c", "spi", "uart"):
        if v.startswith(kind) and v[len(kind) :].isdigit():
            try:
                from hal import boards
            except ImportError:  # a board image without the board table: the name alone
                return v
            try:
                boards.bus_pins(board, v)
            except ValueError as e:
                raise ConfigError(path, str(e))
            return v
    raise ConfigError(path, "must be a bus name like i2c0, spi0 or uart1, not %s" % _show(v))


def _min_interval(board):
    # A simulated street may run faster than real time; a real board samples at most 1/s.
    return 0.05 if board == "unix-sim" else 1


def _sensor(v, path, board):
    _object(v, path, ("name", "driver", "bus", "address", "options", "interval_s", "warmup_s", "window", "enabled",
                      "rh_correction"))  # fmt: skip
    name = _get(v, path, "name", _str, _REQUIRED, 1, 32, _NAME_CHARS, " of a-z 0-9 _ -")
    driver = _get(v, path, "driver", _choice, _REQUIRED, sorted(DRIVERS))
    bus = _get(v, path, "bus", _bus_name, _REQUIRED, board)
    kinds = DRIVERS[driver]
    kind = bus[:3] if bus[:3] in ("i2c", "spi") else "uart"
    if kind not in kinds:
        raise ConfigError(_join(path, "bus"), "driver %s needs %s, not %s" % (
            driver, " or ".join("a %s bus" % k.upper() for k in kinds), _show(bus)))  # fmt: skip
    address = v.get("address")
    if address is not None and kind != "i2c":
        raise ConfigError(_join(path, "address"), "only for I2C sensors (this one is on %s)" % bus)
    return {
        "name": name,
        "driver": driver,
        "bus": bus,
        "address": _get(v, path, "address", _address, None),
        "options": _get(v, path, "options", _options, {}),
        "interval_s": _get(v, path, "interval_s", _num, None, _min_interval(board), 86400),
        "warmup_s": _get(v, path, "warmup_s", _num, None, 0, 600),
        "window": _get(v, path, "window", _window, {"n": 1, "agg": "median"}),
        "enabled": _get(v, path, "enabled", _bool, True),
        "rh_correction": _get(v, path, "rh_correction", _rh_correction, None, driver),
    }


_PM_DRIVERS = ("pms5003", "sds011", "sps30")
_RH_DRIVERS = ("bme280", "sht4x", "scd4x")


def _rh_correction(v, path, driver):
    if driver not in _PM_DRIVERS:
        raise ConfigError(path, "only for particulate sensors (%s), not %s" % (", ".join(_PM_DRIVERS), driver))
    _object(v, path, ("humidity_from", "kappa"))
    return {
        "humidity_from": _get(v, path, "humidity_from", _str, _REQUIRED, 1, 32, _NAME_CHARS, " of a-z 0-9 _ -"),
        "kappa": _get(v, path, "kappa", _num, 0.3, 0, 2),
    }


def _sensors(v, path, board):
    if type(v) is not list:
        raise ConfigError(path, "must be a list of sensors, not %s" % _show(v))
    if len(v) > MAX_SENSORS:
        raise ConfigError(path, "more than %d sensors" % MAX_SENSORS)
    out = []
    names = {}
    used = {}  # "i2c0@118" or "uart1" -> sensor name
    for i in range(len(v)):
        p = "%s[%d]" % (path, i)
        s = _sensor(v[i], p, board)
        if s["name"] in names:
            raise ConfigError(p + ".name", "%s is taken by %s[%d]" % (_show(s["name"]), path, names[s["name"]]))
        names[s["name"]] = i
        slot = None
        if s["bus"].startswith("uart"):
            slot = s["bus"]
        elif s["bus"].startswith("i2c"):
            a = s["address"]
            if a is None:
                a = _DEFAULT_ADDRESS[s["driver"]]
            if a != "auto":
                slot = "%s at address 0x%02x" % (s["bus"], a)
        if slot is not None and s["enabled"]:
            if slot in used:
                raise ConfigError(p, "%s is already used by sensor %s" % (slot, used[slot]))
            used[slot] = s["name"]
        out.append(s)
    drivers = {s["name"]: s["driver"] for s in out}
    for i in range(len(out)):
        corr = out[i]["rh_correction"]
        if corr is not None and drivers.get(corr["humidity_from"]) not in _RH_DRIVERS:
            raise ConfigError("%s[%d].rh_correction.humidity_from" % (path, i),
                              "must name a humidity sensor (%s) of this node, not %s"
                              % (", ".join(_RH_DRIVERS), _show(corr["humidity_from"])))  # fmt: skip
    return out


def _sim(v, path, sensor_names):
    _object(v, path, ("seed", "start_hour", "faults"))
    faults = _get(v, path, "faults", _faults, [], sensor_names)
    return {
        "seed": _get(v, path, "seed", _int, None, 0),
        "start_hour": _get(v, path, "start_hour", _num, 8.0, 0, 24),
        "faults": faults,
    }


def _fault_kind(v, path):
    _str(v, path, 1, 16, _NAME_CHARS, " of a-z _")
    try:
        from hal.sim.board import FAULT_KINDS  # the simulator's own list, where it exists
    except ImportError:
        return v
    return _choice(v, path, FAULT_KINDS)


def _faults(v, path, sensor_names):
    if type(v) is not list or len(v) > 64:
        raise ConfigError(path, "must be a list of at most 64 faults, not %s" % _show(v))
    out = []
    for i in range(len(v)):
        p = "%s[%d]" % (path, i)
        f = _object(v[i], p, ("sensor", "kind", "at_s", "for_s"))
        out.append({
            "sensor": _get(f, p, "sensor", _choice, _REQUIRED, sensor_names),
            "kind": _get(f, p, "kind", _fault_kind, _REQUIRED),
            "at_s": _get(f, p, "at_s", _num, 0, 0),
            "for_s": _get(f, p, "for_s", _num, 0, 0),
        })  # fmt: skip
    return out


_TOP = (
    "node_id", "site", "location", "board", "wifi", "mqtt", "interval_s", "health_every", "outbox",
    "watchdog_s", "deep_sleep", "ntp", "sensors", "sim",
)  # fmt: skip


def validate(obj):
    """The config with every default filled in, as a new dict (obj is not changed);
    ConfigError naming the first wrong key path otherwise."""
    _object(obj, "", _TOP)
    board = _get(obj, "", "board", _choice, _REQUIRED, BOARDS)
    cfg = {
        "node_id": _get(obj, "", "node_id", _str, _REQUIRED, 1, 32, _NODE_CHARS, " of a-z 0-9 -"),
        "site": _get(obj, "", "site", _str, "", 0, 64),
        "location": _get(obj, "", "location", _location, None),
        "board": board,
        "wifi": _get(obj, "", "wifi", _wifi, None),
        "mqtt": _get(obj, "", "mqtt", _mqtt, _REQUIRED),
        "interval_s": _get(obj, "", "interval_s", _num, 60, _min_interval(board), 86400),
        "health_every": _get(obj, "", "health_every", _int, 10, 1, 10000),
        "outbox": _get(obj, "", "outbox", _outbox, {"max_records": 1000}),
        "watchdog_s": _get(obj, "", "watchdog_s", _num, _WATCHDOG_DEFAULT[board], 0, 3600),
        "deep_sleep": _get(obj, "", "deep_sleep", _bool, False),
        "ntp": _get(obj, "", "ntp", _ntp, {"host": _NTP_DEFAULT[board]}),
        "sensors": _get(obj, "", "sensors", _sensors, [], board),
    }
    if board in _WIFI_BOARDS and cfg["wifi"] is None:
        raise ConfigError("wifi", "required on board %s (ssid and password)" % board)
    wd = cfg["watchdog_s"]
    if 0 < wd < 1:
        raise ConfigError("watchdog_s", "must be 0 (off) or from 1 to 3600, not %s" % _show(wd))
    if board == "pico-w" and wd > _WATCHDOG_MAX_PICO:
        raise ConfigError("watchdog_s", "must be at most 8.3 on board pico-w (the RP2040 watchdog's limit), not %s"
                          % _show(wd))  # fmt: skip
    if board == "pi" and cfg["deep_sleep"]:
        raise ConfigError("deep_sleep", "not available on board pi")
    if obj.get("sim") is not None:
        if board != "unix-sim":
            raise ConfigError("sim", "only for board unix-sim, not %s" % board)
        cfg["sim"] = _sim(obj["sim"], "sim", [s["name"] for s in cfg["sensors"]])
    return cfg


# -- files ------------------------------------------------------------------------------------


def _read(directory, name):
    """The validated config in directory/name, or ConfigError saying why not."""
    try:
        data = atomic.read(directory + "/" + name, MAX_BYTES)
    except ValueError:
        raise ConfigError("", "larger than the %d bytes allowed" % MAX_BYTES)
    except OSError as e:
        raise ConfigError("", "cannot be read (%s)" % (e,))
    if data is None:
        raise ConfigError("", "missing")
    return data, validate(parse_json(data))


def load(directory):
    """(config, error): config.json validated with its defaults filled in, and None; or,
    when config.json is missing, unreadable or invalid, the last good config and a
    message naming the problem ("config.json: sensors[1].bus: ..."). Raises
    ConfigError with both reasons when there is no usable config at all. (A valid
    config.json whose last-good copy cannot be written comes with a message too.)"""
    directory = directory.rstrip("/") or "/"
    try:
        data, cfg = _read(directory, CONFIG_FILE)
    except ConfigError as e:
        error = "%s: %s" % (CONFIG_FILE, e)
    else:
        try:
            good = atomic.read(directory + "/" + GOOD_FILE, MAX_BYTES)
        except (ValueError, OSError):
            good = None
        if good != data:  # written only when it changed: flash wears
            try:
                atomic.write(directory + "/" + GOOD_FILE, data)
            except OSError as e:  # run on the valid config all the same, and say so
                return cfg, "%s: could not be updated (%s)" % (GOOD_FILE, e)
        return cfg, None
    try:
        return _read(directory, GOOD_FILE)[1], error
    except ConfigError as e:
        raise ConfigError("", "%s; and the last good config %s: %s" % (error, GOOD_FILE, e))


def save(directory, config):
    """Validate, then write config.json atomically and make it the last good config;
    returns the validated config. ConfigError if invalid (nothing is written)."""
    cfg = validate(config)
    directory = directory.rstrip("/") or "/"
    data = json.dumps(cfg)
    atomic.write(directory + "/" + CONFIG_FILE, data)
    atomic.write(directory + "/" + GOOD_FILE, data)
    return cfg


def _copy(v):
    t = type(v)
    if t is dict:
        return {k: _copy(v[k]) for k in v}
    if t is list:
        return [_copy(x) for x in v]
    return v


def _merge(target, patch):
    # RFC 7396: objects merge key by key, null removes, anything else replaces.
    if type(patch) is not dict:
        return _copy(patch)
    out = dict(target) if type(target) is dict else {}
    for k in patch:
        v = patch[k]
        if v is None:
            out.pop(k, None)
        else:
            out[k] = _merge(out.get(k), v)
    return out


def patch(config, changes):
    """A new config: `changes` applied to `config` as a JSON merge patch (RFC 7396), then
    validated. `config` is never modified; ConfigError names what the result gets wrong."""
    if type(changes) is not dict:
        raise ConfigError("patch", "must be an object, not %s" % _show(changes))
    _check_shape(changes, "patch")
    return validate(_merge(config, changes))
