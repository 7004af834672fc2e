"""The node's config schema: what config.json in the node's directory on flash may hold.

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
      "mqtt": {"host": "mqtt.siegen.de",            a host name or IP address; required
                                                    unless hosts is given
               "port": 8883,                        1..65535 (1883, or 8883 with tls)
               "hosts": [                           brokers tried in order, 1 to 8: failover
                 {"host": "mqtt-a.siegen.de",       (see below); each {"host", "port"}, port
                  "port": 8883},                    as mqtt.port when absent, or a string
                 "mqtt-b.siegen.de:8883"],          "host", "host:port", "[v6 address]:port"
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
      "ota": {"pubkeys": ["<base64>"],              over-the-air updates: the Ed25519 public
              "confirm_cycles": 3,                  keys (base64 of 32 bytes, up to 2, so the
              "trial_boots": 3,                     fleet key can be rotated; [] = the node
              "trial_timeout_s": 600},              refuses every update) ([]); cycles published
                                                    without step errors that confirm a new
                                                    version 1..100 (3); boots a trial may take
                                                    1..10 (3); seconds until an unconfirmed
                                                    trial rolls back 30..86400, on unix-sim
                                                    from 1 (600)
      "sim": {"seed": 1,                            unix-sim only: the simulated street's
              "start_hour": 8.0,                    seed (null: from node_id), start hour
              "faults": [{"sensor": "air",          0..24 (8.0) and up to 64 sensor faults
                          "kind": "eio",            (absent, eio, stuck_busy, corrupt,
                          "at_s": 60,               hang, frozen, brownout) from at_s
                                                    for for_s seconds
                          "for_s": 30}]}            (0: to the end) ([])
    }

The brokers: mqtt.host (with mqtt.port) is a list of one; mqtt.hosts lists several, tried
in order (a node that loses its broker goes on to the next, and stays there until that one
fails). validate() fills in both: "hosts" as {"host", "port"} objects, "host" and "port" as
the first of them. Given together, host and port must be the first of hosts; a merge patch
that sets one of the two spellings drops the other (firmware/config/merge.py).

Required: node_id, board, mqtt.host or mqtt.hosts, and each sensor's name, driver and bus (plus wifi
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

from drivers import registry
from drivers.registry import DRIVERS
from firmware.config.checks import REQUIRED, boolean, choice, get, integer, num, obj, string
from firmware.config.messages import ConfigError, join, show

MAX_SENSORS = 16

BOARDS = ("esp32-devkitc", "pico-w", "unix-sim", "pi")
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


def _location(v, path):
    obj(v, path, ("lat", "lon", "alt_m"))
    return {
        "lat": get(v, path, "lat", num, REQUIRED, -90, 90),
        "lon": get(v, path, "lon", num, REQUIRED, -180, 180),
        "alt_m": get(v, path, "alt_m", num, None, -500, 9000),
    }


def _wifi(v, path):
    obj(v, path, ("ssid", "password", "timeout_s"))
    password = get(v, path, "password", string, "", 0, 63)
    if 0 < len(password) < 8:
        raise ConfigError(join(path, "password"), "must be empty (an open network) or 8 to 63 characters")
    return {
        "ssid": get(v, path, "ssid", string, REQUIRED, 1, 32),
        "password": password,
        "timeout_s": get(v, path, "timeout_s", num, 20, 1, 300),
    }


def _prefix(v, path):
    string(v, path, 1, 64)
    for level in v.split("/"):
        if not level:
            raise ConfigError(path, "must not have empty topic levels (a leading, trailing or double /)")
        string(level, path, 1, 64, _TOPIC_CHARS, " of A-Z a-z 0-9 _ - per topic level")
    return v


def _file_name(v, path):
    string(v, path, 1, 64, _FILE_CHARS, " of A-Z a-z 0-9 . _ - (a file in the node's directory)")
    if v[0] == ".":
        raise ConfigError(path, "must not start with a dot, not %s" % show(v))
    return v


MAX_BROKERS = 8


def _host(v, path):
    return string(v, path, 1, 253, _HOST_CHARS, " of a host name or IP address")


def _broker(v, path, port):
    # {"host": h, "port": p} or "h", "h:p", "[v6]:p"; port: the one for an entry without
    if type(v) is dict:
        obj(v, path, ("host", "port"))
        return {"host": get(v, path, "host", _host, REQUIRED), "port": get(v, path, "port", integer, port, 1, 65535)}
    if type(v) is not str:
        raise ConfigError(path, 'must be {"host": ..., "port": ...} or "host:port", not %s' % show(v))
    host, p = v, None
    if v[:1] == "[":
        end = v.find("]")
        if end < 0 or (end + 1 < len(v) and v[end + 1] != ":"):
            raise ConfigError(path, 'must be "[IPv6 address]:port" with the brackets closed, not %s' % show(v))
        host, p = v[1:end], v[end + 2 :] if end + 1 < len(v) else None
    elif v.count(":") == 1:
        host, p = v.split(":")
    if p is not None:
        if not p.isdigit() or not 0 < int(p) < 65536:
            raise ConfigError(path, "must end in a port from 1 to 65535 after the colon, not %s" % show(v))
        port = int(p)
    return {"host": _host(host, path), "port": port}


def _hosts(v, path, port):
    if type(v) is not list or not 1 <= len(v) <= MAX_BROKERS:
        what = "%d" % len(v) if type(v) is list else show(v)
        raise ConfigError(path, "must be a list of 1 to %d brokers, not %s" % (MAX_BROKERS, what))
    out = []
    for i in range(len(v)):
        b = _broker(v[i], "%s[%d]" % (path, i), port)
        for j in range(len(out)):
            if out[j] == b:
                raise ConfigError("%s[%d]" % (path, i), "%s:%d is already %s[%d]" % (b["host"], b["port"], path, j))
        out.append(b)
    return out


def _mqtt(v, path):
    obj(v, path, ("host", "port", "hosts", "user", "password", "prefix", "keepalive_s", "tls", "ca"))
    tls = get(v, path, "tls", boolean, False)
    port = get(v, path, "port", integer, 8883 if tls else 1883, 1, 65535)
    host = get(v, path, "host", _host, None)
    hosts = get(v, path, "hosts", _hosts, None, port)
    if hosts is None:
        if host is None:
            raise ConfigError(join(path, "host"), "required (or mqtt.hosts, a list of brokers)")
        hosts = [{"host": host, "port": port}]
    elif host is not None and host != hosts[0]["host"]:
        raise ConfigError(join(path, "host"), "is %s but mqtt.hosts starts with %s: give the brokers in mqtt.hosts "
                          "only" % (show(host), show(hosts[0]["host"])))  # fmt: skip
    elif host is not None and port != hosts[0]["port"]:
        raise ConfigError(join(path, "port"), "is %d but mqtt.hosts starts with port %d: give the brokers' ports in "
                          "mqtt.hosts" % (port, hosts[0]["port"]))  # fmt: skip
    out = {
        "host": hosts[0]["host"],
        "port": hosts[0]["port"],
        "hosts": hosts,
        "user": get(v, path, "user", string, None, 1, 128),
        "password": get(v, path, "password", string, None, 0, 128),
        "prefix": get(v, path, "prefix", _prefix, "streetnode"),
        "keepalive_s": get(v, path, "keepalive_s", integer, 60, 5, 3600),
        "tls": tls,
        "ca": get(v, path, "ca", _file_name, None),
    }
    if out["password"] is not None and out["user"] is None:
        raise ConfigError(join(path, "password"), "needs mqtt.user as well (MQTT sends no password alone)")
    if tls and out["ca"] is None:
        raise ConfigError(join(path, "ca"), "required with tls: the broker's CA certificate (DER file name)")
    if not tls and out["ca"] is not None:
        raise ConfigError(join(path, "ca"), "only used with tls: set mqtt.tls to true as well")
    return out


def _outbox(v, path):
    obj(v, path, ("max_records",))
    return {"max_records": get(v, path, "max_records", integer, 1000, 1, 100000)}


def _ntp(v, path):
    obj(v, path, ("host",))
    host = v.get("host")
    if host is None:
        raise ConfigError(join(path, "host"), 'required ("" for no NTP)')
    if type(host) is not str:
        raise ConfigError(join(path, "host"), 'must be a host name, or "" for no NTP, not %s' % show(host))
    if host:
        string(host, join(path, "host"), 1, 253, _HOST_CHARS, " of a host name or IP address")
    return {"host": host}


def _options(v, path):
    if type(v) is not dict:
        raise ConfigError(path, "must be an object, not %s" % show(v))
    if len(v) > 16:
        raise ConfigError(path, "more than 16 options")
    out = {}
    for k in v:
        if type(k) is not str:
            raise ConfigError(path, "keys must be strings, not %s" % show(k))
        p = join(path, k)
        string(k, p, 1, 32, _OPTION_CHARS, " of a-z 0-9 _ for an option name")
        x = v[k]
        t = type(x)
        if t is str:
            string(x, p, 0, 64)
        elif t is int or t is float:
            num(x, p, -1000000000, 1000000000)
        elif x is not None and x is not True and x is not False:
            raise ConfigError(p, "must be a number, a string, true, false or null, not %s" % show(x))
        out[k] = x
    return out


def _window(v, path):
    obj(v, path, ("n", "agg"))
    return {"n": get(v, path, "n", integer, 1, 1, 60), "agg": get(v, path, "agg", choice, "median", _AGGREGATES)}


def _address(v, path):
    if v == "auto" and type(v) is str:
        return v
    if type(v) is not int or not 0x08 <= v <= 0x77:
        raise ConfigError(path, 'must be an I2C address from 8 to 119 (0x08 to 0x77) or "auto", not %s' % show(v))
    return v


def _bus_name(v, path, board):
    string(v, path, 4, 6)
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
    raise ConfigError(path, "must be a bus name like i2c0, spi0 or uart1, not %s" % show(v))


def _min_interval(board):
    # A simulated street may run faster than real time; a real board samples at most 1/s.
    return 0.05 if board == "unix-sim" else 1


def _sensor(v, path, board):
    obj(v, path, ("name", "driver", "bus", "address", "options", "interval_s", "warmup_s", "window", "enabled",
                      "rh_correction"))  # fmt: skip
    name = get(v, path, "name", string, REQUIRED, 1, 32, _NAME_CHARS, " of a-z 0-9 _ -")
    driver = get(v, path, "driver", choice, REQUIRED, registry.names())
    bus = get(v, path, "bus", _bus_name, REQUIRED, board)
    kinds = DRIVERS[driver]["buses"]
    kind = bus[:3] if bus[:3] in ("i2c", "spi") else "uart"
    if kind not in kinds:
        raise ConfigError(join(path, "bus"), "driver %s needs %s, not %s" % (
            driver, " or ".join("a %s bus" % k.upper() for k in kinds), show(bus)))  # fmt: skip
    address = v.get("address")
    if address is not None and kind != "i2c":
        raise ConfigError(join(path, "address"), "only for I2C sensors (this one is on %s)" % bus)
    return {
        "name": name,
        "driver": driver,
        "bus": bus,
        "address": get(v, path, "address", _address, None),
        "options": get(v, path, "options", _options, {}),
        "interval_s": get(v, path, "interval_s", num, None, _min_interval(board), 86400),
        "warmup_s": get(v, path, "warmup_s", num, None, 0, 600),
        "window": get(v, path, "window", _window, {"n": 1, "agg": "median"}),
        "enabled": get(v, path, "enabled", boolean, True),
        "rh_correction": get(v, path, "rh_correction", _rh_correction, None, driver),
    }


def _rh_correction(v, path, driver):
    if DRIVERS[driver]["role"] != "pm":
        raise ConfigError(path, "only for particulate sensors (%s), not %s" % (", ".join(registry.names("pm")), driver))
    obj(v, path, ("humidity_from", "kappa"))
    return {
        "humidity_from": get(v, path, "humidity_from", string, REQUIRED, 1, 32, _NAME_CHARS, " of a-z 0-9 _ -"),
        "kappa": get(v, path, "kappa", num, 0.3, 0, 2),
    }


def _sensors(v, path, board):
    if type(v) is not list:
        raise ConfigError(path, "must be a list of sensors, not %s" % show(v))
    if len(v) > MAX_SENSORS:
        raise ConfigError(path, "more than %d sensors" % MAX_SENSORS)
    out = []
    names = {}
    used = {}  # "i2c0@118" or "uart1" -> sensor name
    for i in range(len(v)):
        p = "%s[%d]" % (path, i)
        s = _sensor(v[i], p, board)
        if s["name"] in names:
            raise ConfigError(p + ".name", "%s is taken by %s[%d]" % (show(s["name"]), path, names[s["name"]]))
        names[s["name"]] = i
        slot = None
        if s["bus"].startswith("uart"):
            slot = s["bus"]
        elif s["bus"].startswith("i2c"):
            a = s["address"]
            if a is None:
                a = DRIVERS[s["driver"]]["address"]
            if a != "auto":
                slot = "%s at address 0x%02x" % (s["bus"], a)
        if slot is not None and s["enabled"]:
            if slot in used:
                raise ConfigError(p, "%s is already used by sensor %s" % (slot, used[slot]))
            used[slot] = s["name"]
        out.append(s)
    drivers = {s["name"]: s["driver"] for s in out}
    rh_drivers = registry.names("rh")
    for i in range(len(out)):
        corr = out[i]["rh_correction"]
        if corr is not None and drivers.get(corr["humidity_from"]) not in rh_drivers:
            raise ConfigError("%s[%d].rh_correction.humidity_from" % (path, i),
                              "must name a humidity sensor (%s) of this node, not %s"
                              % (", ".join(registry.names("rh")), show(corr["humidity_from"])))  # fmt: skip
    return out


OTA_DEFAULT = {"pubkeys": [], "confirm_cycles": 3, "trial_boots": 3, "trial_timeout_s": 600}
MAX_OTA_KEYS = 2  # the fleet key and the one it is rotated to
_B64_CHARS = _LOWER + _LOWER.upper() + _DIGITS + "+/"


def _pubkey(v, path):
    # An Ed25519 public key: standard base64 of exactly 32 bytes (44 characters, one "=").
    if type(v) is not str or len(v) != 44 or v[43] != "=":
        raise ConfigError(path, "must be an Ed25519 public key: base64 of 32 bytes (44 characters, as "
                          "`streetnode keys new` writes it to fleet.pub), not %s" % show(v))  # fmt: skip
    for c in v[:43]:
        if c not in _B64_CHARS:
            raise ConfigError(path, "must be base64 (A-Z a-z 0-9 + /), not %s (%s)" % (show(v), show(c)))
    if v[42] not in "AEIMQUYcgkosw048":  # 43 characters carry 258 bits: the last 2 must be zero
        raise ConfigError(path, "is not the canonical base64 of 32 bytes: %s" % show(v))
    return v


def _pubkeys(v, path):
    if type(v) is not list:
        raise ConfigError(path, "must be a list of base64 Ed25519 public keys, not %s" % show(v))
    if len(v) > MAX_OTA_KEYS:
        raise ConfigError(path, "at most %d keys (the fleet key and the one it is rotated to), not %d"
                          % (MAX_OTA_KEYS, len(v)))  # fmt: skip
    out = []
    for i in range(len(v)):
        k = _pubkey(v[i], "%s[%d]" % (path, i))
        if k in out:
            raise ConfigError("%s[%d]" % (path, i), "is the same key as %s[%d]" % (path, out.index(k)))
        out.append(k)
    return out


def _ota(v, path, board):
    obj(v, path, ("pubkeys", "confirm_cycles", "trial_boots", "trial_timeout_s"))
    d = OTA_DEFAULT
    return {
        "pubkeys": get(v, path, "pubkeys", _pubkeys, []),
        "confirm_cycles": get(v, path, "confirm_cycles", integer, d["confirm_cycles"], 1, 100),
        "trial_boots": get(v, path, "trial_boots", integer, d["trial_boots"], 1, 10),
        # a board needs time to join Wi-Fi and the broker before it can confirm
        "trial_timeout_s": get(v, path, "trial_timeout_s", num, d["trial_timeout_s"],
                               1 if board == "unix-sim" else 30, 86400),  # fmt: skip
    }


_TOP = (
    "node_id", "site", "location", "board", "wifi", "mqtt", "interval_s", "health_every", "outbox",
    "watchdog_s", "deep_sleep", "ntp", "sensors", "ota", "sim",
)  # fmt: skip


def _copy_ota():
    d = dict(OTA_DEFAULT)
    d["pubkeys"] = []
    return d


def validate(doc):
    """The config with every default filled in, as a new dict (obj is not changed);
    ConfigError naming the first wrong key path otherwise."""
    obj(doc, "", _TOP)
    board = get(doc, "", "board", choice, REQUIRED, BOARDS)
    cfg = {
        "node_id": get(doc, "", "node_id", string, REQUIRED, 1, 32, _NODE_CHARS, " of a-z 0-9 -"),
        "site": get(doc, "", "site", string, "", 0, 64),
        "location": get(doc, "", "location", _location, None),
        "board": board,
        "wifi": get(doc, "", "wifi", _wifi, None),
        "mqtt": get(doc, "", "mqtt", _mqtt, REQUIRED),
        "interval_s": get(doc, "", "interval_s", num, 60, _min_interval(board), 86400),
        "health_every": get(doc, "", "health_every", integer, 10, 1, 10000),
        "outbox": get(doc, "", "outbox", _outbox, {"max_records": 1000}),
        "watchdog_s": get(doc, "", "watchdog_s", num, _WATCHDOG_DEFAULT[board], 0, 3600),
        "deep_sleep": get(doc, "", "deep_sleep", boolean, False),
        "ntp": get(doc, "", "ntp", _ntp, {"host": _NTP_DEFAULT[board]}),
        "sensors": get(doc, "", "sensors", _sensors, [], board),
        "ota": get(doc, "", "ota", _ota, _copy_ota(), board),
    }
    if board in _WIFI_BOARDS and cfg["wifi"] is None:
        raise ConfigError("wifi", "required on board %s (ssid and password)" % board)
    wd = cfg["watchdog_s"]
    if 0 < wd < 1:
        raise ConfigError("watchdog_s", "must be 0 (off) or from 1 to 3600, not %s" % show(wd))
    if board == "pico-w" and wd > _WATCHDOG_MAX_PICO:
        raise ConfigError("watchdog_s", "must be at most 8.3 on board pico-w (the RP2040 watchdog's limit), not %s"
                          % show(wd))  # fmt: skip
    if board == "pi" and cfg["deep_sleep"]:
        raise ConfigError("deep_sleep", "not available on board pi")
    if doc.get("sim") is not None:
        if board != "unix-sim":
            raise ConfigError("sim", "only for board unix-sim, not %s" % board)
        try:  # the simulator's own schema, in the images that carry the simulator
            from hal.sim.schema import sim
        except ImportError:
            raise ConfigError("sim", "this image has no simulator (hal/sim) to run it")
        cfg["sim"] = sim(doc["sim"], "sim", [s["name"] for s in cfg["sensors"]])
    return cfg
