"""`streetnode provision`: a node's config.json, its broker CA as DER, its MQTT
credentials, and its line in the fleet register (the city's asset list).

    streetnode provision --id lamp-0042 --board esp32 --site "Koblenzer Strasse 12" \\
        --lat 50.8748 --lon 8.0243 --ssid city-iot --broker mqtt.siegen.de --ca city-ca.pem \\
        --preset air

writes nodes/lamp-0042/ (config.json, ca.der, mosquitto.passwd, mosquitto.acl) and adds
lamp-0042 to fleet-register.csv. Secrets (the Wi-Fi password, the node's MQTT password)
go into files readable by their owner only (0600), never to the terminal unless
--show-secrets asks for the MQTT password.

The config is checked by the firmware's own validate() (firmware/config/), so what
provision accepts, the node accepts.
"""

import argparse
import contextlib
import csv
import datetime
import getpass
import io
import json
import os
import re
import secrets
import ssl
import sys
from pathlib import Path

from streetnode.common.errors import EXIT_EXISTS, EXIT_INVALID, Failure  # noqa: F401
from streetnode.common.files import write_atomic
from streetnode.common.mqtt import is_loopback
from streetnode.common.paths import device_code
from streetnode.security.acl import mosquitto_hash, node_acl, passwd_line  # noqa: F401 (mosquitto_hash: tests)


BOARD_ALIASES = {"esp32": "esp32-devkitc", "pico": "pico-w", "picow": "pico-w"}
BOARDS = ("esp32-devkitc", "pico-w", "pi", "unix-sim")
WIFI_BOARDS = ("esp32-devkitc", "pico-w")

# preset -> (sensor name, driver, bus kind); the bus is the board's first of that kind.
PRESETS = {
    "air": ("air", "bme280", "i2c"),
    "climate": ("climate", "sht4x", "i2c"),
    "light": ("light", "bh1750", "i2c"),
    "co2": ("co2", "scd4x", "i2c"),
    "pm": ("pm", "pms5003", "uart"),
    "pm-sds011": ("pm", "sds011", "uart"),
    "pm-sps30": ("pm", "sps30", "i2c"),
}

REGISTER_FIELDS = ("id", "site", "lat", "lon", "board", "sensors", "firmware", "date")
CA_FILE = "ca.der"
WIFI_PASSWORD_ENV = "STREETNODE_WIFI_PASSWORD"
MQTT_PASSWORD_ENV = "STREETNODE_MQTT_PASSWORD"

PASSWD_FILE = "mosquitto.passwd"
ACL_FILE = "mosquitto.acl"


# -- pieces a test can call -----------------------------------------------------------------


def board_name(text):
    """'esp32' -> 'esp32-devkitc'; argparse type for --board."""
    name = BOARD_ALIASES.get(text.lower(), text.lower())
    if name not in BOARDS:
        raise argparse.ArgumentTypeError(
            "unknown board %r (known: %s; esp32 and pico are short for esp32-devkitc and pico-w)"
            % (text, ", ".join(BOARDS))
        )
    return name


def sensor_spec(text):
    """'air:bme280:i2c0[:0x76|118|auto]' -> a config sensor; argparse type for --sensor."""
    parts = text.split(":")
    if len(parts) not in (3, 4) or not all(parts):
        raise argparse.ArgumentTypeError("%r is not NAME:DRIVER:BUS[:ADDRESS] (e.g. air:bme280:i2c0:0x76)" % text)
    sensor = {"name": parts[0], "driver": parts[1], "bus": parts[2]}
    if len(parts) == 4:
        a = parts[3].lower()
        if a == "auto":
            sensor["address"] = "auto"
        else:
            try:
                sensor["address"] = int(a, 16) if a.startswith("0x") else int(a)
            except ValueError:
                raise argparse.ArgumentTypeError(
                    "%r: address %r is not a number (0x76 or 118) or auto" % (text, parts[3])
                ) from None
    return sensor


def preset_sensor(preset, board):
    """The sensor a preset names, on the board's first bus of the kind it needs."""
    from hal.boards import BOARDS as BOARD_TABLE

    name, driver, kind = PRESETS[preset]
    buses = sorted(BOARD_TABLE[board].get(kind, {}))
    if not buses:
        raise Failure("preset %s: board %s has no %s bus" % (preset, board, kind.upper()), EXIT_INVALID)
    return {"name": name, "driver": driver, "bus": "%s%d" % (kind, buses[0])}


def _der_length_ok(der):
    # One ASN.1 SEQUENCE spanning exactly the data (X.690 8.1.3): a certificate, not a
    # fragment or two glued together.
    if len(der) < 2 or der[0] != 0x30:
        return False
    n = der[1]
    if n < 0x80:
        return 2 + n == len(der)
    k = n & 0x7F
    if k == 0 or k > 4 or len(der) < 2 + k:
        return False
    return 2 + k + int.from_bytes(der[2 : 2 + k], "big") == len(der)


def ca_to_der(data, where="--ca"):
    """The DER bytes of the one certificate in `data` (PEM or DER), checked by OpenSSL
    (ssl's cadata parser); Failure naming what is wrong otherwise."""
    if b"-----BEGIN" in data:
        text = data.decode("ascii", "replace")
        blocks = re.findall(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", text, re.S)
        if not blocks:
            raise Failure("%s: a PEM file without a CERTIFICATE block (a key or a request?)" % where, EXIT_INVALID)
        if len(blocks) > 1:
            raise Failure("%s: %d certificates in one file; give the one CA certificate that signed the broker's "
                          "certificate (the node trusts exactly one)" % (where, len(blocks)), EXIT_INVALID)  # fmt: skip
        try:
            der = ssl.PEM_cert_to_DER_cert(blocks[0])
        except ValueError as e:
            raise Failure("%s: not a valid PEM certificate (%s)" % (where, e), EXIT_INVALID) from None
    else:
        der = bytes(data)
    if not _der_length_ok(der):
        raise Failure("%s: not a certificate (neither PEM nor DER)" % where, EXIT_INVALID)
    try:
        ssl.create_default_context(cadata=der)
    except (ssl.SSLError, ValueError) as e:
        raise Failure("%s: OpenSSL cannot read this certificate (%s)" % (where, e), EXIT_INVALID) from None
    return der


def read_register(path):
    """The rows of the fleet register (a list of dicts), [] when it does not exist yet."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except OSError as e:
        raise Failure("register %s: cannot be read (%s)" % (path, e.strerror or e)) from None
    reader = csv.DictReader(io.StringIO(text))
    if text.strip() and "id" not in (reader.fieldnames or ()):
        raise Failure("register %s: not a fleet register (no id column in its first line)" % path)
    return list(reader)


def register_row(cfg, fw_version, when):
    loc = cfg.get("location") or {}
    return {
        "id": cfg["node_id"],
        "site": cfg.get("site", ""),
        "lat": "" if loc.get("lat") is None else repr(loc["lat"]),
        "lon": "" if loc.get("lon") is None else repr(loc["lon"]),
        "board": cfg["board"],
        "sensors": ";".join(
            "%s:%s@%s" % (s["name"], s["driver"], s["bus"]) for s in cfg.get("sensors", [])
        ),
        "firmware": fw_version,
        "date": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


@contextlib.contextmanager
def register_lock(path):
    """Hold the register's lock (flock on .<name>.lock beside it): two technicians
    provisioning into one register at once can neither lose a line nor register one id
    twice, and the loser writes no node directory."""
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / ("." + path.name + ".lock"), "a") as lk:
        fcntl.flock(lk.fileno(), fcntl.LOCK_EX)
        yield


def add_to_register(path, row):
    """Append `row` to the register (hold register_lock), refusing an id it already has
    (Failure with EXIT_EXISTS). The file is rewritten whole and atomically: a power cut
    leaves the old register or the new one."""
    path = Path(path)
    rows = read_register(path)
    check_new_id(rows, row["id"], path)
    out = io.StringIO()
    fields = list(REGISTER_FIELDS)
    for r in rows:  # keep columns the city added to its copy
        fields += [k for k in r if k not in fields and k is not None]
    w = csv.DictWriter(out, fieldnames=fields, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow(r)
    w.writerow(row)
    write_atomic(path, out.getvalue(), 0o644)


def mark_retired(path, node_id, when):
    """Set the `retired` column of node_id's row to `when` (streetnode retire), under the
    register's lock and atomically, keeping every other column."""
    path = Path(path)
    with register_lock(path):
        rows = read_register(path)
        fields = list(REGISTER_FIELDS)
        for r in rows:
            fields += [k for k in r if k not in fields and k is not None]
        if "retired" not in fields:
            fields.append("retired")
        for r in rows:
            if (r.get("id") or "").strip().lower() == node_id:
                r["retired"] = when
        out = io.StringIO()
        w = csv.DictWriter(out, fieldnames=fields, lineterminator="\n", extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(r)
        write_atomic(path, out.getvalue(), 0o644)


def check_new_id(rows, node_id, path):
    for r in rows:
        if (r.get("id") or "").strip().lower() == node_id:
            raise Failure("node %s is already in the register %s (provisioned %s); choose another id"
                          % (node_id, path, r.get("date") or "earlier"), EXIT_EXISTS)  # fmt: skip


# -- secrets ------------------------------------------------------------------------------------


def _read_secret_file(path, what):
    try:
        if path == "-":
            line = sys.stdin.readline()
        else:
            with open(path, encoding="utf-8") as f:
                line = f.readline()
    except OSError as e:
        raise Failure("%s file %s: cannot be read (%s)" % (what, path, e.strerror or e), EXIT_INVALID) from None
    return line.rstrip("\r\n")


def wifi_password(args):
    """From --wifi-password-file, then $STREETNODE_WIFI_PASSWORD, then a prompt (twice)
    when stdin is a terminal; --wifi-open for an open network."""
    if args.wifi_open:
        return ""
    if args.wifi_password_file:
        pw = _read_secret_file(args.wifi_password_file, "--wifi-password-file")
    elif os.environ.get(WIFI_PASSWORD_ENV) is not None:
        pw = os.environ[WIFI_PASSWORD_ENV]
    elif sys.stdin.isatty():
        pw = getpass.getpass("Wi-Fi password for %s: " % args.ssid)
        if getpass.getpass("again: ") != pw:
            raise Failure("the two Wi-Fi passwords differ", EXIT_INVALID)
    else:
        raise Failure("no Wi-Fi password: use --wifi-password-file FILE, $%s, --wifi-open, or run in a terminal "
                      "to be asked" % WIFI_PASSWORD_ENV, EXIT_INVALID)  # fmt: skip
    if not 8 <= len(pw) <= 63:  # checked here so that validate() never quotes it
        raise Failure("the Wi-Fi password has %d characters; WPA2 needs 8 to 63 (--wifi-open for an open network)"
                      % len(pw), EXIT_INVALID)  # fmt: skip
    return pw


def mqtt_password(args):
    """From --mqtt-password-file, then $STREETNODE_MQTT_PASSWORD, else a new random one
    (192 bits from `secrets`, 32 URL-safe characters)."""
    if args.mqtt_password_file:
        pw = _read_secret_file(args.mqtt_password_file, "--mqtt-password-file")
    elif os.environ.get(MQTT_PASSWORD_ENV) is not None:
        pw = os.environ[MQTT_PASSWORD_ENV]
    else:
        return secrets.token_urlsafe(24)
    if not 12 <= len(pw) <= 128:
        raise Failure("the MQTT password has %d characters; use 12 to 128 (or let provision generate one)"
                      % len(pw), EXIT_INVALID)  # fmt: skip
    return pw


def _scrub(text, hidden):
    for s in hidden:
        if s:
            text = text.replace(s, "***")
    return text


# -- the command --------------------------------------------------------------------------------


def _broker(text):
    host, sep, port = text.rpartition(":")
    if not sep or "]" in port:
        return text, None
    try:
        return host, int(port)
    except ValueError:
        raise Failure("--broker %s: the port %r is not a number" % (text, port), EXIT_INVALID) from None


def build_config(args, wifi_pw, mqtt_pw):
    """The config dict from the options (not yet validated)."""
    cfg = {"node_id": args.id, "board": args.board}
    if args.site:
        cfg["site"] = args.site
    if args.lat is not None or args.lon is not None or args.alt is not None:
        cfg["location"] = {"lat": args.lat, "lon": args.lon}
        if args.alt is not None:
            cfg["location"]["alt_m"] = args.alt
    if args.board in WIFI_BOARDS:
        cfg["wifi"] = {"ssid": args.ssid, "password": wifi_pw}
    host, port = _broker(args.broker)
    mqtt = {"host": host}
    if port is not None:
        mqtt["port"] = port
    if mqtt_pw is not None:
        mqtt["user"] = args.id
        mqtt["password"] = mqtt_pw
    if args.prefix:
        mqtt["prefix"] = args.prefix
    if args.ca:
        mqtt["tls"] = True
        mqtt["ca"] = CA_FILE
    cfg["mqtt"] = mqtt
    if args.interval is not None:
        cfg["interval_s"] = args.interval
    sensors = [preset_sensor(p, args.board) for p in args.preset or ()]
    sensors += list(args.sensor or ())
    cfg["sensors"] = sensors
    pubkeys = getattr(args, "ota_pubkey", None)
    if pubkeys:
        from streetnode.ota import keys as ota_keys

        cfg["ota"] = {"pubkeys": [ota_keys.public_text(ota_keys.read_public(p, "--ota-pubkey", EXIT_INVALID))
                                  for p in pubkeys]}  # fmt: skip
    return cfg


def provision(args, now=None):
    device_code()
    from firmware import config as fwconfig
    from firmware.version import FW_VERSION

    if args.board in WIFI_BOARDS and not args.ssid:
        raise Failure("board %s needs --ssid (the Wi-Fi network the node joins)" % args.board, EXIT_INVALID)
    if args.board not in WIFI_BOARDS and (args.ssid or args.wifi_open or args.wifi_password_file):
        raise Failure("board %s joins no Wi-Fi itself (its OS has the network): drop the Wi-Fi options" % args.board,
                      EXIT_INVALID)  # fmt: skip
    if args.tls and not args.ca:
        raise Failure("--tls needs --ca FILE: the broker's CA certificate (PEM or DER)", EXIT_INVALID)
    if not args.ca and not args.anonymous and _broker(args.broker)[1] == 8883:
        raise Failure("--broker %s: port 8883 is MQTT over TLS: give --ca FILE, or the node would send its password "
                      "there in clear" % args.broker, EXIT_INVALID)  # fmt: skip
    out = Path(args.out) if args.out else Path("nodes") / args.id
    register = Path(args.register)

    # Everything that can be refused is checked before anything is written.
    if (out / fwconfig.CONFIG_FILE).exists():
        raise Failure("%s already holds a node's config.json; remove it or choose another --out" % out, EXIT_EXISTS)
    check_new_id(read_register(register), args.id, register)
    der = None
    if args.ca:
        try:
            der = ca_to_der(Path(args.ca).read_bytes(), "--ca " + args.ca)
        except OSError as e:
            raise Failure("--ca %s: cannot be read (%s)" % (args.ca, e.strerror or e), EXIT_INVALID) from None
    wifi_pw = wifi_password(args) if args.board in WIFI_BOARDS else None
    mqtt_pw = None if args.anonymous else mqtt_password(args)
    cfg = build_config(args, wifi_pw, mqtt_pw)
    try:
        full = fwconfig.validate(cfg)
    except fwconfig.ConfigError as e:
        raise Failure("config %s" % _scrub(str(e), (wifi_pw, mqtt_pw)), EXIT_INVALID) from None

    when = now or datetime.datetime.now(datetime.timezone.utc)
    with register_lock(register):  # checked again under the lock: another run may have won
        check_new_id(read_register(register), args.id, register)
        if (out / fwconfig.CONFIG_FILE).exists():
            raise Failure("%s already holds a node's config.json; remove it or choose another --out" % out,
                          EXIT_EXISTS)  # fmt: skip
        out.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(out, 0o700)  # the directory of a node's secrets
        if der is not None:
            write_atomic(out / CA_FILE, der, 0o644)
        if mqtt_pw is not None:
            # the same lines as `streetnode broker-config` writes for the whole fleet
            write_atomic(out / PASSWD_FILE, passwd_line(args.id, mosquitto_hash(mqtt_pw)), 0o600)
            write_atomic(out / ACL_FILE, node_acl(args.id, full["mqtt"]["prefix"]), 0o644)
        write_atomic(out / fwconfig.CONFIG_FILE, json.dumps(cfg, indent=2, sort_keys=True) + "\n", 0o600)
        add_to_register(register, register_row(full, FW_VERSION, when))

    files = [fwconfig.CONFIG_FILE] + ([CA_FILE] if der is not None else [])
    print("provisioned %s (%s, %d sensor%s, firmware %s) in %s/: %s" % (
        args.id, full["board"], len(full["sensors"]), "" if len(full["sensors"]) == 1 else "s", FW_VERSION, out,
        ", ".join(files)))  # fmt: skip
    print("registered in %s" % register)
    if mqtt_pw is not None and der is None and not is_loopback(full["mqtt"]["host"]):
        print("warning: no --ca: %s will send its MQTT password to %s in clear (TLS needs the broker's CA)"
              % (args.id, full["mqtt"]["host"]))  # fmt: skip
    if mqtt_pw is not None:
        print("broker admin: add %s/mosquitto.passwd to mosquitto's password_file and %s/mosquitto.acl to its "
              "acl_file, then reload mosquitto (MQTT user %s; the password is only in config.json, mode 0600)"
              % (out, out, args.id))  # fmt: skip
        if args.show_secrets:
            print("mqtt password for %s: %s" % (args.id, mqtt_pw))
    if full["board"] == "pi":
        print("next: sudo streetnode gateway install --config %s/%s" % (out, fwconfig.CONFIG_FILE))
    else:
        print("next: streetnode flash ..., then streetnode deploy --config %s/%s" % (out, fwconfig.CONFIG_FILE))
    return 0


HELP_EPILOG = """\
examples:
  # an ESP32 on the city's Wi-Fi, TLS broker, a BME280 on i2c0 (asks for the Wi-Fi password)
  streetnode provision --id lamp-0042 --board esp32 --site "Koblenzer Strasse 12" \\
      --lat 50.8748 --lon 8.0243 --ssid city-iot --broker mqtt.siegen.de --ca city-ca.pem --preset air

  # a Pico W from a script: the password from a file, two sensors spelled out
  streetnode provision --id lamp-0043 --board pico --lat 50.87 --lon 8.02 --ssid city-iot \\
      --wifi-password-file wifi.txt --broker mqtt.siegen.de:8883 --ca city-ca.pem \\
      --sensor air:bme280:i2c0:0x76 --sensor pm:pms5003:uart1

  # a Raspberry Pi gateway (no Wi-Fi options: the OS has the network)
  streetnode provision --id gw-rathaus --board pi --broker mqtt.siegen.de --ca city-ca.pem --preset air

secrets:
  Wi-Fi password: --wifi-password-file FILE ('-' = first line of stdin), else $STREETNODE_WIFI_PASSWORD,
  else asked twice when run in a terminal. Never on the command line (shell history, ps).
  MQTT password: generated (secrets, 192 bits) unless --mqtt-password-file or $STREETNODE_MQTT_PASSWORD.
  Both are written only into OUT/config.json (mode 0600); OUT/mosquitto.passwd (0600) holds the
  mosquitto_passwd hash for the broker, OUT/mosquitto.acl the node's topic rights.
  Nothing secret is printed, unless --show-secrets (the MQTT password only).

presets (the sensor on the board's first bus of its kind):
  air = bme280 (I2C), climate = sht4x, light = bh1750, co2 = scd4x, pm-sps30 = sps30 (I2C);
  pm = pms5003, pm-sds011 = sds011 (UART)

register (CSV, one row per node): id, site, lat, lon, board, sensors, firmware, date (UTC).

exit codes:
  0 provisioned   1 failed (I/O)   2 usage error
  3 refused: the id is already in the register, or --out already holds a node
  4 invalid: the config (as the firmware checks it), the CA file or a secret is wrong or missing
"""


def register(sub):
    p = sub.add_parser(
        "provision",
        help="create a node's config (Wi-Fi, broker, credentials, CA, sensors) and register it",
        description="Creates a node's directory (config.json, the broker's CA as DER, the broker's "
        "password and ACL entries for the node) and adds the node to the fleet register. The config "
        "is checked by the firmware's own validator. Refuses an id that is already registered.",
        epilog=HELP_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--id", required=True, metavar="NODE_ID", help="the node id: 1-32 of a-z 0-9 - (the MQTT user too)")
    p.add_argument("--board", required=True, type=board_name, metavar="BOARD",
                   help="esp32 (esp32-devkitc), pico (pico-w), pi, unix-sim")
    p.add_argument("--site", default="", help="where the node hangs, free text up to 64 characters")
    p.add_argument("--lat", type=float, help="latitude in degrees (WGS 84)")
    p.add_argument("--lon", type=float, help="longitude in degrees (WGS 84)")
    p.add_argument("--alt", type=float, metavar="METRES", help="altitude in metres (optional)")
    w = p.add_argument_group("Wi-Fi (esp32, pico)")
    w.add_argument("--ssid", help="the network the node joins")
    w.add_argument("--wifi-password-file", metavar="FILE",
                   help="read the Wi-Fi password from FILE's first line ('-': stdin)")  # fmt: skip
    w.add_argument("--wifi-open", action="store_true", help="an open network (no password)")
    m = p.add_argument_group("broker")
    m.add_argument("--broker", required=True, metavar="HOST[:PORT]",
                   help="the MQTT broker (port default 1883, 8883 with TLS)")  # fmt: skip
    m.add_argument("--ca", metavar="FILE", help="the broker's CA certificate (PEM or DER); turns TLS on")
    m.add_argument("--tls", action="store_true", help="use TLS (needs --ca)")
    m.add_argument("--prefix", help="topic prefix (default streetnode)")
    m.add_argument("--mqtt-password-file", metavar="FILE", help="use this MQTT password instead of a generated one")
    m.add_argument("--anonymous", action="store_true",
                   help="no MQTT user and password (a broker that allows anonymous nodes)")  # fmt: skip
    m.add_argument("--show-secrets", action="store_true", help="print the node's MQTT password on stdout")
    u = p.add_argument_group("over-the-air updates")
    u.add_argument("--ota-pubkey", action="append", metavar="FILE",
                   help="the fleet's public key (fleet.pub from `streetnode keys new`) the node accepts signed "
                   "releases from; repeat once for a key rotation. Without it the node refuses every update")
    s = p.add_argument_group("sensors")
    s.add_argument("--sensor", action="append", type=sensor_spec, metavar="NAME:DRIVER:BUS[:ADDRESS]",
                   help="a sensor, e.g. air:bme280:i2c0:0x76 (repeat for more)")
    s.add_argument("--preset", action="append", choices=sorted(PRESETS), help="a sensor by preset (repeat for more)")
    s.add_argument("--interval", type=float, metavar="SECONDS", help="sampling interval (default 60)")
    o = p.add_argument_group("output")
    o.add_argument("--out", metavar="DIR", help="the node's directory (default nodes/NODE_ID)")
    o.add_argument("--register", default="fleet-register.csv", metavar="FILE",
                   help="the fleet register, CSV (default fleet-register.csv)")
    p.set_defaults(func=provision)
    return p
