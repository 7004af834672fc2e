# The node's config file (firmware/config/): validation with key-path errors, the
# last-good fallback, atomic saves, merge patches and hostile input. Runs on CPython and
# inside MicroPython.

import json
import random

from firmware import config
from firmware.config import ConfigError
from host_tests.device.scratch import ScratchDir, files, read_bytes, write_bytes
from host_tests.device.support import message, raises

MINIMAL = {"node_id": "lamp-1", "board": "unix-sim", "mqtt": {"host": "127.0.0.1"}}


def _full():
    # Every key there is, as docs/node.md shows it.
    return {
        "node_id": "lamp-0042",
        "site": "Siegen, Koblenzer Strasse",
        "location": {"lat": 50.8748, "lon": 8.0243, "alt_m": 240},
        "board": "esp32-devkitc",
        "wifi": {"ssid": "city-iot", "password": "correct horse", "timeout_s": 20},
        "mqtt": {
            "host": "mqtt.siegen.de",
            "port": 8883,
            "user": "lamp-0042",
            "password": "s3cret",
            "prefix": "siegen/streetnode",
            "keepalive_s": 60,
            "tls": True,
            "ca": "city-ca.der",
        },
        "interval_s": 60,
        "health_every": 10,
        "outbox": {"max_records": 2000},
        "watchdog_s": 30,
        "deep_sleep": False,
        "ntp": {"host": "ntp.siegen.de"},
        "sensors": [
            {
                "name": "air",
                "driver": "bme280",
                "bus": "i2c0",
                "address": 0x77,
                "options": {"iir_filter": 4, "mode": "forced", "fast": True, "pin": None},
                "interval_s": 300,
                "warmup_s": 0,
                "window": {"n": 5, "agg": "mean"},
                "enabled": True,
            },
            {"name": "pm", "driver": "pms5003", "bus": "uart2", "options": {"power_pin": "pm_power"}},
            {"name": "light", "driver": "bh1750", "bus": "i2c1", "address": "auto"},
        ],
    }


def _sim():
    cfg = dict(MINIMAL)
    cfg["sensors"] = [{"name": "air", "driver": "bme280", "bus": "i2c0"}]
    cfg["sim"] = {"seed": 3, "faults": [{"sensor": "air", "kind": "eio", "at_s": 60, "for_s": 30}]}
    return cfg


def _error(obj):
    return message(raises(ConfigError, config.validate, obj))


def _with(path, value, base=None):
    """A copy of base (the full example) with the key path set (value _DELETE: removed)."""
    cfg = json.loads(json.dumps(base or _full()))
    node = cfg
    parts = path.replace("[", ".").replace("]", "").split(".")
    for part in parts[:-1]:
        node = node[int(part)] if part.isdigit() else node[part]
    last = parts[-1]
    if value is _DELETE:
        del node[last]
    elif last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return cfg


_DELETE = object()


# -- validation -------------------------------------------------------------------------------------


def test_minimal_config_gets_every_default():
    cfg = config.validate(MINIMAL)
    assert cfg == {
        "node_id": "lamp-1",
        "site": "",
        "location": None,
        "board": "unix-sim",
        "wifi": None,
        "mqtt": {
            "host": "127.0.0.1",
            "port": 1883,
            "hosts": [{"host": "127.0.0.1", "port": 1883}],  # mqtt.host is a list of one broker
            "user": None,
            "password": None,
            "prefix": "streetnode",
            "keepalive_s": 60,
            "tls": False,
            "ca": None,
        },
        "interval_s": 60,
        "health_every": 10,
        "outbox": {"max_records": 1000},
        "watchdog_s": 0,
        "deep_sleep": False,
        "ntp": {"host": ""},
        "sensors": [],
        "ota": {"pubkeys": [], "confirm_cycles": 3, "trial_boots": 3, "trial_timeout_s": 600},
    }
    assert MINIMAL == {"node_id": "lamp-1", "board": "unix-sim", "mqtt": {"host": "127.0.0.1"}}  # untouched
    assert config.validate(cfg) == cfg  # validating a validated config changes nothing


def test_board_dependent_defaults():
    wifi = {"ssid": "x"}
    esp = config.validate({"node_id": "a", "board": "esp32-devkitc", "wifi": wifi, "mqtt": {"host": "h", "tls": True,
                                                                                         "ca": "ca.der"}})
    assert esp["watchdog_s"] == 60 and esp["ntp"] == {"host": "pool.ntp.org"}
    assert esp["mqtt"]["port"] == 8883  # the TLS port when TLS is on
    assert esp["wifi"] == {"ssid": "x", "password": "", "timeout_s": 20}
    pico = config.validate({"node_id": "a", "board": "pico-w", "wifi": wifi, "mqtt": {"host": "h"}})
    assert pico["watchdog_s"] == 8 and pico["mqtt"]["port"] == 1883
    pi = config.validate({"node_id": "a", "board": "pi", "mqtt": {"host": "h"}})
    assert pi["watchdog_s"] == 0 and pi["ntp"] == {"host": ""}


def test_full_example_validates_and_fills_sensor_defaults():
    cfg = config.validate(_full())
    assert cfg["mqtt"]["prefix"] == "siegen/streetnode"
    air, pm, light = cfg["sensors"]
    assert air["window"] == {"n": 5, "agg": "mean"} and air["address"] == 0x77
    assert pm == {
        "name": "pm",
        "driver": "pms5003",
        "bus": "uart2",
        "address": None,
        "options": {"power_pin": "pm_power"},
        "interval_s": None,  # follows the node's interval_s
        "warmup_s": None,  # the driver's own warm-up
        "window": {"n": 1, "agg": "median"},
        "enabled": True,
        "rh_correction": None,  # no humidity correction published
    }
    assert light["address"] == "auto"
    assert config.validate(_sim())["sim"] == {
        "seed": 3,
        "start_hour": 8.0,
        "faults": [{"sensor": "air", "kind": "eio", "at_s": 60, "for_s": 30}],
    }


def test_errors_name_the_key_path_and_why():
    cases = [
        (_with("sensors[1].interval_s", "fast"), 'sensors[1].interval_s: must be a number from 1 to 86400, not "fast"'),
        (_with("node_id", "Lamp_1"), 'node_id: must be 1 to 32 characters of a-z 0-9 -, not "Lamp_1" ("L")'),
        (_with("node_id", "a" * 50), "node_id: must be a string of 1 to 32 characters of a-z 0-9 -, not " + '"' +
         "a" * 37 + '..."'),
        (_with("node_id", _DELETE), "node_id: required"),
        (_with("mqtt.port", 0), "mqtt.port: must be an integer from 1 to 65535, not 0"),
        (_with("mqtt.port", 1883.0), "mqtt.port: must be an integer from 1 to 65535, not 1883.0"),
        (_with("mqtt.port", True), "mqtt.port: must be an integer from 1 to 65535, not true"),
        (_with("mqtt.tls", "yes"), 'mqtt.tls: must be true or false, not "yes"'),
        (_with("mqtt.host", "my broker"), 'mqtt.host: must be 1 to 253 characters of a host name or IP address, not '
                                          '"my broker" (" ")'),
        (_with("mqtt.prefix", "a/+/b"), 'mqtt.prefix: must be 1 to 64 characters of A-Z a-z 0-9 _ - per topic level,'
                                        ' not "+" ("+")'),
        (_with("mqtt.prefix", "streetnode/"), "mqtt.prefix: must not have empty topic levels (a leading, trailing or "
                                              "double /)"),
        (_with("board", "esp8266"), 'board: must be one of "esp32-devkitc", "pico-w", "unix-sim", "pi", not '
                                    '"esp8266"'),
        (_with("location.lat", 91), "location.lat: must be a number from -90 to 90, not 91"),
        (_with("location", [50.8, 8.0]), "location: must be an object, not a list"),
        (_with("sensors", {}), "sensors: must be a list of sensors, not an object"),
        (_with("sensors[0].driver", "dht22"), 'sensors[0].driver: must be one of "bh1750", "bme280", "pms5003", '
                                              '"scd4x", "sds011", "sht4x", "sps30", not "dht22"'),
        (_with("sensors[0].window.agg", "max"), 'sensors[0].window.agg: must be one of "median", "mean", not "max"'),
        (_with("sensors[0].window.n", 0), "sensors[0].window.n: must be an integer from 1 to 60, not 0"),
        (_with("sensors[2].address", 0x80), 'sensors[2].address: must be an I2C address from 8 to 119 (0x08 to 0x77)'
                                            ' or "auto", not 128'),
        (_with("sensors[0].options.iir_filter", [4]), "sensors[0].options.iir_filter: must be a number, a string, "
                                                      "true, false or null, not a list"),
        (_with("sensors[0].options.IIR", 4), 'sensors[0].options.IIR: must be 1 to 32 characters of a-z 0-9 _ for an '
                                             'option name, not "IIR" ("I")'),
        (_with("interval_s", 0.5), "interval_s: must be a number from 1 to 86400, not 0.5"),
        (_with("outbox.max_records", -1), "outbox.max_records: must be an integer from 1 to 100000, not -1"),
        (_with("wifi.password", "short"), "wifi.password: must be empty (an open network) or 8 to 63 characters"),
        (_with("ntp.host", 5), 'ntp.host: must be a host name, or "" for no NTP, not 5'),
        (_with("deep_sleep", 0), "deep_sleep: must be true or false, not 0"),
    ]  # fmt: skip
    for cfg, expected in cases:
        got = _error(cfg)
        assert got == expected, "\n%s\n%s" % (got, expected)


def test_error_carries_the_path():
    e = raises(ConfigError, config.validate, _with("sensors[1].interval_s", "fast"))
    assert e.path == "sensors[1].interval_s"
    assert isinstance(e, ValueError)


def test_unknown_keys_are_errors_with_a_hint():
    assert _error(_with("mqtt.hots", "x")) == 'mqtt.hots: unknown key (did you mean "host"?)'
    assert _error(_with("intervall_s", 5)) == 'intervall_s: unknown key (did you mean "interval_s"?)'
    assert _error(_with("sensors[0].Address", 5)) == 'sensors[0].Address: unknown key (did you mean "address"?)'
    assert _error(_with("colour", "red")) == (
        "colour: unknown key (known keys: node_id, site, location, board, wifi, mqtt, interval_s, health_every, "
        "outbox, watchdog_s, deep_sleep, ntp, sensors, ota, sim)"
    )
    assert _error(_with("mqtt.zz", 1)).startswith("mqtt.zz: unknown key (known keys: host, port,")
    long_key = "k" * 500
    assert len(_error(_with(long_key, 1))) < 300  # a hostile key does not make a hostile message


def test_cross_checks():
    assert _error(_with("mqtt.ca", _DELETE)) == "mqtt.ca: required with tls: the broker's CA certificate (DER file name)"
    assert _error(_with("mqtt.tls", False)) == "mqtt.ca: only used with tls: set mqtt.tls to true as well"
    assert _error(_with("mqtt.user", _DELETE)) == "mqtt.password: needs mqtt.user as well (MQTT sends no password alone)"
    assert _error(_with("mqtt.ca", "../etc/ca.der")).startswith('mqtt.ca: must be 1 to 64 characters of A-Z a-z 0-9 ')
    assert _error(_with("mqtt.ca", ".hidden")) == 'mqtt.ca: must not start with a dot, not ".hidden"'
    assert _error(_with("wifi", _DELETE)) == "wifi: required on board esp32-devkitc (ssid and password)"
    pico = _with("board", "pico-w")
    pico["sensors"] = []
    assert _error(pico) == ("watchdog_s: must be at most 8.3 on board pico-w (the RP2040 watchdog's limit), not 30")
    assert _error(_with("watchdog_s", 0.5)) == "watchdog_s: must be 0 (off) or from 1 to 3600, not 0.5"
    pi = _with("deep_sleep", True, dict(MINIMAL, board="pi"))
    assert _error(pi) == "deep_sleep: not available on board pi"
    assert _error(_with("sensors[1].name", "air")) == 'sensors[1].name: "air" is taken by sensors[0]'
    assert _error(_with("sensors[1].bus", "i2c0")) == 'sensors[1].bus: driver pms5003 needs a UART bus, not "i2c0"'
    assert _error(_with("sensors[0].bus", "uart1")) == (
        'sensors[0].bus: driver bme280 needs a I2C bus or a SPI bus, not "uart1"'
    )
    assert _error(_with("sensors[0].bus", "i2c7")) == (
        "sensors[0].bus: board esp32-devkitc has no i2c7 (its i2c buses: i2c0, i2c1)"
    )
    assert _error(_with("sensors[0].bus", "can0")) == 'sensors[0].bus: must be a bus name like i2c0, spi0 or uart1, ' \
                                                      'not "can0"'  # fmt: skip
    assert _error(_with("sensors[1].address", 0x30)) == "sensors[1].address: only for I2C sensors (this one is on uart2)"
    two_pm = _with("sensors[2]", {"name": "pm2", "driver": "sds011", "bus": "uart2"})
    assert _error(two_pm) == "sensors[2]: uart2 is already used by sensor pm"
    clash = _with("sensors[2]", {"name": "air2", "driver": "sht4x", "bus": "i2c0", "address": 0x77})
    assert _error(clash) == "sensors[2]: i2c0 at address 0x77 is already used by sensor air"
    default_clash = _with("sensors[2]", {"name": "air2", "driver": "bme280", "bus": "i2c0"})
    default_clash["sensors"][0]["address"] = None
    assert _error(default_clash) == "sensors[2]: i2c0 at address 0x76 is already used by sensor air"
    default_clash["sensors"][2]["enabled"] = False  # a disabled sensor claims nothing
    assert config.validate(default_clash)["sensors"][2]["enabled"] is False
    assert _error(_with("sim", {"seed": 1})) == "sim: only for board unix-sim, not esp32-devkitc"
    bad_fault = _with("sim.faults[0].sensor", "nope", _sim())
    assert _error(bad_fault) == 'sim.faults[0].sensor: must be one of "air", not "nope"'
    bad_kind = _with("sim.faults[0].kind", "melt", _sim())
    assert _error(bad_kind) == (
        'sim.faults[0].kind: must be one of "absent", "eio", "stuck_busy", "corrupt", "hang", "frozen", "brownout", not "melt"'
    )
    many = _with("sensors", [{"name": "s%d" % i, "driver": "bh1750", "bus": "i2c0", "address": 8 + i}
                             for i in range(17)])  # fmt: skip
    assert _error(many) == "sensors: more than 16 sensors"


def test_wrong_types_everywhere_are_caught_at_their_path():
    hostile = [[], {}, "x", "", -1, 0, 1.5, 1e300, True, False, "a" * 300, [1, 2], {"a": 1}]
    leaves = []

    def walk(node, path):
        if type(node) is dict:
            for k in node:
                walk(node[k], path + "." + k if path else k)
        elif type(node) is list:
            for i in range(len(node)):
                walk(node[i], "%s[%d]" % (path, i))
        if path:
            leaves.append(path)

    walk(_full(), "")
    checked = 0
    for path in leaves:
        for value in hostile:
            try:
                config.validate(_with(path, value))
            except ConfigError as e:
                # the error is about this key or something inside or beside it that
                # depends on it (a sensor, a cross-check)
                top = path.split(".")[0].split("[")[0]
                assert e.path.split(".")[0].split("[")[0] in (top, "mqtt", "wifi", "watchdog_s"), (path, value, e.path)
                checked += 1
    assert checked > len(leaves) * 8  # nearly every hostile value is refused


def test_a_simulated_street_may_sample_faster_than_real_time():
    assert config.validate(dict(MINIMAL, interval_s=0.05))["interval_s"] == 0.05
    assert _error(dict(MINIMAL, interval_s=0.01)) == "interval_s: must be a number from 0.05 to 86400, not 0.01"
    assert _error(_with("interval_s", 0.5)) == "interval_s: must be a number from 1 to 86400, not 0.5"  # a board


def test_not_an_object():
    for v in ([], "x", 5, None, True):
        assert _error(v) == "config: must be an object, not %s" % config._show(v)
    assert _error({1: 2}) == "config: keys must be strings, not 1"


# -- parsing ---------------------------------------------------------------------------------------


def test_parse_json_guards_size_depth_and_count():
    assert config.parse_json(b'{"a": [1, {"b": "}]{["}]}') == {"a": [1, {"b": "}]{["}]}
    assert message(raises(ConfigError, config.parse_json, b"[" * 7 + b"]" * 7)) == "nested more than 6 deep"
    assert message(raises(ConfigError, config.parse_json, b"[" * 100000, 200000)) == "nested more than 6 deep"
    assert config.parse_json(b"[" * 6 + b"]" * 6) == [[[[[[]]]]]]
    many = b"[" + b",".join([b"[]"] * 300) + b"]"
    assert message(raises(ConfigError, config.parse_json, many)) == "more than 256 objects and lists"
    assert message(raises(ConfigError, config.parse_json, b" " * 16385)) == "16385 bytes, more than the 16384 allowed"
    assert message(raises(ConfigError, config.parse_json, b"")) == "empty"
    assert message(raises(ConfigError, config.parse_json, b'{"a": "b')) == "not valid JSON: it ends early (truncated?)"
    assert message(raises(ConfigError, config.parse_json, b'{"a": 1} x')) == "not valid JSON at line 1, column 10 (unexpected 'x')"
    assert message(raises(ConfigError, config.parse_json, b"\xff\xfe{")).startswith("not valid JSON")
    # escaped quotes and brackets inside strings do not count
    assert config.parse_json('{"a": "\\"[[[[[[[[["}') == {"a": '"[[[[[[[[['}


def test_a_syntax_error_names_its_line_and_column():
    # The same place on MicroPython (whose json says only "syntax error in JSON") and
    # CPython. MicroPython's json.loads alone lets a missing colon or a trailing comma pass.
    text = b'{\n  "node_id": "lamp-1",\n  "interval_s" 60,\n  "sensors": []\n}'
    assert message(raises(ConfigError, config.parse_json, text)) == "not valid JSON at line 3, column 16 (unexpected '6')"
    text = b'{\n  "node_id": "st\xc3\xa4dt",\n  "interval_s": tru\n}'
    assert message(raises(ConfigError, config.parse_json, text)) == "not valid JSON at line 3, column 20 (unexpected end of line)"
    assert message(raises(ConfigError, config.parse_json, b'{node_id: 1}')) == "not valid JSON at line 1, column 2 (unexpected 'n')"
    assert message(raises(ConfigError, config.parse_json, b'{"a": 1}\n\n}')) == "not valid JSON at line 3, column 1 (unexpected '}')"
    assert message(raises(ConfigError, config.parse_json, b'{"a": [1, 2,]}')) == "not valid JSON at line 1, column 13 (unexpected ']')"
    assert config.error_at(b'{"a": [1, 2,]}') == 12
    assert config.error_at(b'{"a": 01}') == 7
    assert config.error_at(b'{"a": "x\\q"}') == 9
    assert config.error_at(b'{"a": [1.5e-3, -0, true, false, null, "\\u00e4\\n"]}') is None


def test_non_finite_numbers_are_refused():
    for text in (b'{"interval_s": 1e999}', b'{"interval_s": -1e999}'):
        cfg = dict(MINIMAL)
        cfg.update(config.parse_json(text))
        assert _error(cfg).startswith("interval_s: must be a number from 0.05 to 86400, not ")
    cfg = dict(MINIMAL, interval_s=float("nan"))
    assert _error(cfg).startswith("interval_s: must be a number")


# -- files -----------------------------------------------------------------------------------------


class _GoodDir(ScratchDir):
    """A scratch directory holding a valid config and its last good copy."""

    def __init__(self):
        super().__init__("cfg")

    def __enter__(self):
        d = super().__enter__()
        config.save(d, _full())
        return d


def test_save_writes_config_and_last_good_copy():
    with ScratchDir("cfg") as d:
        saved = config.save(d, MINIMAL)
        assert saved == config.validate(MINIMAL)
        assert files(d) == ["config.good.json", "config.json"]
        assert json.loads(read_bytes(d + "/config.json")) == saved
        assert read_bytes(d + "/config.good.json") == read_bytes(d + "/config.json")
        assert config.load(d) == (saved, None)
        raises(ConfigError, config.save, d, _with("interval_s", 0))
        assert config.load(d) == (saved, None)  # nothing was written


def test_load_refreshes_the_last_good_copy_only_when_it_changed():
    with _GoodDir() as d:
        write_bytes(d + "/config.json", json.dumps(MINIMAL))
        cfg, err = config.load(d)
        assert err is None and cfg["node_id"] == "lamp-1"
        assert read_bytes(d + "/config.good.json") == read_bytes(d + "/config.json")
        write_bytes(d + "/config.good.json.tmp", b"junk")  # a cut-short write: ignored, removed
        assert config.load(d) == (cfg, None)
        assert files(d) == ["config.good.json", "config.json"]


def test_broken_config_falls_back_to_the_last_good_one():
    with _GoodDir() as d:
        good = config.validate(_full())
        cases = [
            (json.dumps(_with("sensors[1].interval_s", "fast")), 'config.json: sensors[1].interval_s: must be a '
                                                                 'number from 1 to 86400, not "fast"'),
            ("{'node_id': 'x'}", "config.json: not valid JSON at line 1, column 2 (unexpected \"'\")"),
            ("", "config.json: empty"),
            ("[" * 50, "config.json: nested more than 6 deep"),
            (" " * 20000, "config.json: larger than the 16384 bytes allowed"),
            ("[1, 2]", "config.json: config: must be an object, not a list"),
        ]  # fmt: skip
        for text, expected in cases:
            write_bytes(d + "/config.json", text)
            cfg, err = config.load(d)
            assert cfg == good and err == expected, err
        assert json.loads(read_bytes(d + "/config.good.json")) == good  # never overwritten by a bad one
        import os

        os.remove(d + "/config.json")
        assert config.load(d) == (good, "config.json: missing")


def test_no_usable_config_at_all_raises_with_both_reasons():
    with ScratchDir("cfg") as d:
        e = raises(ConfigError, config.load, d)
        assert message(e) == "config.json: missing; and the last good config config.good.json: missing"
        write_bytes(d + "/config.json", b"{")
        write_bytes(d + "/config.good.json", json.dumps(_with("board", "vax")))
        assert message(raises(ConfigError, config.load, d)) == (
            "config.json: not valid JSON: it ends early (truncated?); and the last good config config.good.json: "
            'board: must be one of "esp32-devkitc", "pico-w", "unix-sim", "pi", not "vax"'
        )


def test_truncated_config_at_every_byte_offset():
    with _GoodDir() as d:
        good = config.validate(_full())
        whole = read_bytes(d + "/config.json")
        for cut in range(len(whole)):
            write_bytes(d + "/config.json", whole[:cut])
            cfg, err = config.load(d)
            assert cfg == good, cut
            expected = "config.json: empty" if cut == 0 else "config.json: not valid JSON: it ends early (truncated?)"
            assert err == expected, (cut, err)
        assert read_bytes(d + "/config.good.json") == whole
        write_bytes(d + "/config.json", whole)
        assert config.load(d) == (good, None)


def test_random_garbage_never_escapes_as_another_exception():
    with _GoodDir() as d:
        random.seed(11)
        good = config.validate(_full())
        whole = read_bytes(d + "/config.json")
        for i in range(150):
            if i % 3 == 0:
                data = bytes(random.getrandbits(8) for _ in range(random.getrandbits(7)))
            else:  # flip a few bytes of the real thing
                data = bytearray(whole)
                for _ in range(1 + random.getrandbits(2)):
                    data[random.getrandbits(16) % len(data)] = random.getrandbits(8)
            write_bytes(d + "/config.json", data)
            cfg, err = config.load(d)
            assert err is None or err.startswith("config.json: "), err
            if err is None:
                good = cfg  # a flip that still validates becomes the last good config
            else:
                assert cfg == good


# -- patches ---------------------------------------------------------------------------------------


def test_patch_is_a_json_merge_patch():
    cfg = config.validate(_full())
    before = json.dumps(cfg)
    new = config.patch(cfg, {"interval_s": 30, "mqtt": {"keepalive_s": 120}, "location": None})
    assert new["interval_s"] == 30 and new["mqtt"]["keepalive_s"] == 120
    assert new["mqtt"]["host"] == "mqtt.siegen.de"  # untouched neighbours stay
    assert new["location"] is None  # removed: back to the default
    assert json.dumps(cfg) == before  # the original is not modified
    assert config.patch(cfg, {}) == cfg
    one = config.patch(cfg, {"sensors": [{"name": "t", "driver": "sht4x", "bus": "i2c0"}]})
    assert [s["name"] for s in one["sensors"]] == ["t"]  # a list is replaced as a whole
    assert config.patch(cfg, {"watchdog_s": None})["watchdog_s"] == 60  # the board's default


def test_invalid_patch_leaves_the_config_alone():
    cfg = config.validate(_full())
    before = json.dumps(cfg)
    cases = [
        ({"interval_s": "fast"}, 'interval_s: must be a number from 1 to 86400, not "fast"'),
        ({"mqtt": {"hots": "x"}}, 'mqtt.hots: unknown key (did you mean "host"?)'),
        ({"node_id": None}, "node_id: required"),
        ({"sensors": [{"name": "x"}]}, "sensors[0].driver: required"),
        ([1], "patch: must be an object, not a list"),
        ("x", 'patch: must be an object, not "x"'),
        ({"site": {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}}, "patch: nested more than 6 deep"),
    ]
    for changes, expected in cases:
        got = message(raises(ConfigError, config.patch, cfg, changes))
        assert got == expected, got
    assert json.dumps(cfg) == before


def test_patch_then_save_then_load_round_trip():
    with _GoodDir() as d:
        cfg, err = config.load(d)
        new = config.patch(cfg, {"sensors": cfg["sensors"][:1], "health_every": 3})
        config.save(d, new)
        assert config.load(d) == (new, None)
        assert json.loads(read_bytes(d + "/config.good.json"))["health_every"] == 3


# -- ota ----------------------------------------------------------------------------------------------

_KEY1 = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="  # RFC 8032 TEST 1's public key
_KEY2 = "PUAXw+hDiVqStwqnTRt+vJyYLM8uxJaMwM1V8Sr0Zgw="  # TEST 2's


def test_ota_section_gets_its_defaults_and_keeps_keys():
    cfg = config.validate(_with("ota", {"pubkeys": [_KEY1, _KEY2], "trial_timeout_s": 120}))
    assert cfg["ota"] == {"pubkeys": [_KEY1, _KEY2], "confirm_cycles": 3, "trial_boots": 3, "trial_timeout_s": 120}
    assert config.validate(cfg) == cfg
    sim = config.validate(dict(MINIMAL, ota={"trial_timeout_s": 2, "confirm_cycles": 1, "trial_boots": 1}))
    assert sim["ota"] == {"pubkeys": [], "confirm_cycles": 1, "trial_boots": 1, "trial_timeout_s": 2}


def test_ota_keys_decode_or_are_none():
    from firmware.ota import keys

    cfg = config.validate(_with("ota", {"pubkeys": [_KEY1]}))
    assert keys.pubkeys(cfg) == [bytes(bytearray.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"))]
    assert keys.pubkeys(config.validate(MINIMAL)) is None
    assert keys.pubkeys({}) is None
    assert keys.decode(_KEY2) is not None and len(keys.decode(_KEY2)) == 32
    for bad in ("", _KEY1[:-1], _KEY1 + "=", "*" * 43 + "=", None, 5):
        assert keys.decode(bad) is None, bad


def test_ota_errors_name_the_key():
    assert _error(_with("ota", {"pubkeys": _KEY1})) == (
        'ota.pubkeys: must be a list of base64 Ed25519 public keys, not "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaa..."')
    assert _error(_with("ota", {"pubkeys": [_KEY1, _KEY2, _KEY1]})) == (
        "ota.pubkeys: at most 2 keys (the fleet key and the one it is rotated to), not 3")
    assert _error(_with("ota", {"pubkeys": [_KEY1, _KEY1]})) == "ota.pubkeys[1]: is the same key as ota.pubkeys[0]"
    short = _KEY1[:40] + "="
    assert _error(_with("ota", {"pubkeys": [short]})).startswith(
        "ota.pubkeys[0]: must be an Ed25519 public key: base64 of 32 bytes (44 characters, as `streetnode keys new`")
    assert _error(_with("ota", {"pubkeys": ["-" + _KEY1[1:]]})) == (
        'ota.pubkeys[0]: must be base64 (A-Z a-z 0-9 + /), not "-1qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaa..." ("-")')
    assert _error(_with("ota", {"pubkeys": [_KEY1[:42] + "p="]})).startswith(
        "ota.pubkeys[0]: is not the canonical base64 of 32 bytes")
    assert _error(_with("ota", {"pubkeys": [1]})).startswith("ota.pubkeys[0]: must be an Ed25519 public key")
    assert _error(_with("ota", {"trial_timeout_s": 10})) == "ota.trial_timeout_s: must be a number from 30 to 86400, not 10"
    assert _error(dict(MINIMAL, ota={"trial_timeout_s": 0})) == "ota.trial_timeout_s: must be a number from 1 to 86400, not 0"
    assert _error(_with("ota", {"confirm_cycles": 0})) == "ota.confirm_cycles: must be an integer from 1 to 100, not 0"
    assert _error(_with("ota", {"trial_boots": 2.5})) == "ota.trial_boots: must be an integer from 1 to 10, not 2.5"
    assert _error(_with("ota", {"pubkey": [_KEY1]})) == 'ota.pubkey: unknown key (did you mean "pubkeys"?)'
    assert _error(_with("ota", [])) == "ota: must be an object, not a list"
