"""streetnode provision: configs the firmware accepts, the CA as DER, credentials the real
mosquitto accepts, a register that refuses a second node with the same id, and no secret
on the terminal or in the register."""

import argparse
import csv
import datetime
import json
import os
import signal
import stat
import subprocess
import sys
import time

import pytest

from firmware import config as fwconfig
from streetnode.common import broker as _broker
from streetnode.common import errors
from streetnode.technician import provision

WIFI_PW = "wifi-Secret-7781"
FIXED_NOW = datetime.datetime(2026, 11, 27, 12, 0, 0, tzinfo=datetime.timezone.utc)


def make_ca(path, cn="Siegen test CA", pem=True):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.derive_private_key(12345, ec.SECP256R1())  # deterministic
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    start = datetime.datetime(2026, 1, 1)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(7).not_valid_before(start).not_valid_after(start + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM if pem else serialization.Encoding.DER))
    return cert.public_bytes(serialization.Encoding.DER)


def run(argv, capsys=None):
    """provision's own parser (as cli registers it, run as cli.main runs it): (exit code, stdout, stderr)."""
    parser = argparse.ArgumentParser(prog="streetnode")
    provision.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["provision"] + argv)
    code = errors.run(args)
    out = capsys.readouterr() if capsys else None
    return code, (out.out if out else ""), (out.err if out else "")


@pytest.fixture
def work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(provision.WIFI_PASSWORD_ENV, raising=False)
    monkeypatch.delenv(provision.MQTT_PASSWORD_ENV, raising=False)
    (tmp_path / "wifi.txt").write_text(WIFI_PW + "\n")
    return tmp_path


def esp32_args(node="lamp-0042", *extra):
    return ["--id", node, "--board", "esp32", "--site", "Koblenzer Strasse 12", "--lat", "50.8748", "--lon",
            "8.0243", "--ssid", "city-iot", "--wifi-password-file", "wifi.txt", "--broker", "mqtt.siegen.de",
            "--preset", "air", *extra]  # fmt: skip


def test_esp32_node_config_is_valid_with_der_ca_and_private_files(work, capsys):
    der = make_ca(work / "city-ca.pem")
    code, out, err = run(esp32_args("lamp-0042", "--ca", "city-ca.pem", "--sensor", "pm:pms5003:uart2"), capsys)
    assert code == 0, err
    node = work / "nodes" / "lamp-0042"
    cfg = json.loads((node / "config.json").read_text())
    full = fwconfig.validate(cfg)  # the firmware accepts it as written
    assert full["wifi"] == {"ssid": "city-iot", "password": WIFI_PW, "timeout_s": 20}
    assert full["mqtt"]["host"] == "mqtt.siegen.de" and full["mqtt"]["port"] == 8883 and full["mqtt"]["tls"]
    assert full["mqtt"]["user"] == "lamp-0042" and len(full["mqtt"]["password"]) == 32
    assert full["location"]["lat"] == 50.8748 and full["site"] == "Koblenzer Strasse 12"
    assert [(s["name"], s["driver"], s["bus"]) for s in full["sensors"]] == [("air", "bme280", "i2c0"),
                                                                               ("pm", "pms5003", "uart2")]
    assert (node / full["mqtt"]["ca"]).read_bytes() == der  # what cryptography encodes as DER
    # fwconfig.load reads it from the directory, as the node will
    loaded, error = fwconfig.load(str(node))
    assert error is None and loaded["node_id"] == "lamp-0042"
    assert stat.S_IMODE(os.stat(node / "config.json").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(node / "mosquitto.passwd").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(node).st_mode) == 0o700
    assert "lamp-0042" in out and "config.json" in out


def test_no_secret_on_the_terminal_or_in_the_register(work, capsys):
    make_ca(work / "ca.pem")
    code, out, err = run(esp32_args("lamp-0001", "--ca", "ca.pem"), capsys)
    assert code == 0
    cfg = json.loads((work / "nodes" / "lamp-0001" / "config.json").read_text())
    secrets_ = [WIFI_PW, cfg["mqtt"]["password"]]
    register = (work / "fleet-register.csv").read_text()
    passwd = (work / "nodes" / "lamp-0001" / "mosquitto.passwd").read_text()
    for s in secrets_:
        for where, text in (("stdout", out), ("stderr", err), ("register", register), ("passwd", passwd)):
            assert s not in text, "a secret in " + where
    # a refused run (duplicate) and a rejected one (a Wi-Fi password too long) say nothing secret either
    long_pw = "L" * 70
    (work / "long.txt").write_text(long_pw)
    code2, out2, err2 = run(esp32_args("lamp-0001"), capsys)
    code3, out3, err3 = run(["--id", "lamp-0002", "--board", "pico", "--ssid", "x", "--wifi-password-file",
                             "long.txt", "--broker", "m"], capsys)  # fmt: skip
    assert (code2, code3) == (provision.EXIT_EXISTS, provision.EXIT_INVALID)
    for text in (out2, err2, out3, err3):
        assert WIFI_PW not in text and long_pw not in text
    assert "70 characters" in err3 and err3.count("\n") == 1
    # --show-secrets prints the MQTT password, and only that
    code4, out4, _ = run(["--id", "gw-1", "--board", "pi", "--broker", "m", "--show-secrets"], capsys)
    pw = json.loads((work / "nodes" / "gw-1" / "config.json").read_text())["mqtt"]["password"]
    assert code4 == 0 and pw in out4


def test_register_rows_and_duplicate_refused_without_writing(work, capsys):
    for node in ("lamp-0001", "lamp-0002"):
        args = esp32_args(node)
        parser = argparse.ArgumentParser()
        provision.register(parser.add_subparsers(dest="command"))
        assert provision.provision(parser.parse_args(["provision"] + args), now=FIXED_NOW) == 0
    before = (work / "fleet-register.csv").read_bytes()
    rows = list(csv.DictReader(open(work / "fleet-register.csv")))
    assert [r["id"] for r in rows] == ["lamp-0001", "lamp-0002"]
    from firmware.version import FW_VERSION

    assert rows[0] == {"id": "lamp-0001", "site": "Koblenzer Strasse 12", "lat": "50.8748", "lon": "8.0243",
                       "board": "esp32-devkitc", "sensors": "air:bme280@i2c0", "firmware": FW_VERSION,
                       "date": "2026-11-27T12:00:00Z"}  # fmt: skip
    code, out, err = run(esp32_args("lamp-0002", "--out", "elsewhere"), capsys)
    assert code == provision.EXIT_EXISTS == 3
    assert "already in the register" in err and err.count("\n") == 1
    assert (work / "fleet-register.csv").read_bytes() == before
    assert not (work / "elsewhere").exists()
    # an --out that already holds a node is refused too
    code, _, err = run(esp32_args("lamp-0003", "--out", "nodes/lamp-0001"), capsys)
    assert code == 3 and "already holds" in err


def test_register_keeps_extra_columns_and_rejects_a_foreign_file(work, capsys):
    (work / "fleet-register.csv").write_text("id,site,lat,lon,board,sensors,firmware,date,owner\n"
                                             "lamp-9,x,1,2,pi,,0.1.0,2026-01-01T00:00:00Z,Tiefbauamt\n")  # fmt: skip
    assert run(["--id", "gw-2", "--board", "pi", "--broker", "m", "--anonymous"], capsys)[0] == 0
    rows = list(csv.DictReader(open(work / "fleet-register.csv")))
    assert rows[0]["owner"] == "Tiefbauamt" and rows[1]["id"] == "gw-2" and rows[1]["owner"] == ""
    (work / "other.csv").write_text("name,value\na,1\n")
    code, _, err = run(["--id", "gw-3", "--board", "pi", "--broker", "m", "--register", "other.csv"], capsys)
    assert code == 1 and "not a fleet register" in err


def test_invalid_inputs_exit_4_with_the_firmwares_message(work, capsys):
    cases = [
        (["--id", "Lamp", "--board", "pi", "--broker", "m"], "node_id"),
        (["--id", "gw-1", "--board", "pi", "--broker", "m", "--sensor", "air:bme280:i2c0"], "board pi has no i2c0"),
        (["--id", "gw-1", "--board", "pi", "--broker", "m", "--preset", "air", "--sensor", "t:sht4x:i2c1:0x76"],
         "already used by sensor air"),
        (["--id", "gw-1", "--board", "pi", "--broker", "m", "--sensor", "pm:pms5003:i2c1"], "needs a UART bus"),
        (["--id", "gw-1", "--board", "pi", "--broker", "m", "--lat", "91", "--lon", "8"], "location.lat"),
        (["--id", "gw-1", "--board", "pi", "--broker", "m", "--tls"], "--tls needs --ca"),
        (["--id", "n-1", "--board", "esp32", "--broker", "m"], "needs --ssid"),
        (["--id", "n-1", "--board", "pi", "--broker", "m", "--ssid", "x"], "joins no Wi-Fi"),
        (["--id", "n-1", "--board", "esp32", "--broker", "m", "--ssid", "x"], "no Wi-Fi password"),  # stdin no tty
        (["--id", "gw-1", "--board", "pi", "--broker", "m:http"], "port"),
    ]
    for argv, expected in cases:
        code, out, err = run(argv, capsys)
        assert code == provision.EXIT_INVALID, (argv, err)
        assert expected in err and err.count("\n") == 1 and err.startswith("streetnode provision: error:"), err
    assert not (work / "fleet-register.csv").exists() and not (work / "nodes").exists()


def test_ca_conversion_pem_der_and_refusals(work, capsys):
    der = make_ca(work / "ca.pem")
    assert provision.ca_to_der((work / "ca.pem").read_bytes()) == der
    der2 = make_ca(work / "ca.der", pem=False)  # (ECDSA signs with a fresh nonce: another certificate)
    assert provision.ca_to_der((work / "ca.der").read_bytes()) == der2  # DER passes through
    (work / "two.pem").write_bytes((work / "ca.pem").read_bytes() * 2)
    (work / "key.pem").write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    (work / "junk.der").write_bytes(b"\x30\x03abc")  # a SEQUENCE, but no certificate
    (work / "cut.der").write_bytes(der[:-10])
    for name, why in (("two.pem", "2 certificates"), ("key.pem", "without a CERTIFICATE"),
                      ("junk.der", "OpenSSL cannot read"), ("cut.der", "not a certificate"),
                      ("missing.pem", "cannot be read")):  # fmt: skip
        code, _, err = run(["--id", "gw-1", "--board", "pi", "--broker", "m", "--ca", name], capsys)
        assert code == 4 and why in err, (name, err)


def test_secrets_from_env_and_a_given_mqtt_password(work, capsys, monkeypatch):
    monkeypatch.setenv(provision.WIFI_PASSWORD_ENV, "env-wifi-pass")
    (work / "mqtt.txt").write_text("given-mqtt-password-123\n")
    code, out, _ = run(["--id", "n-5", "--board", "pico", "--ssid", "city-iot", "--broker", "m:1884",
                        "--mqtt-password-file", "mqtt.txt", "--preset", "pm"], capsys)  # fmt: skip
    assert code == 0
    cfg = fwconfig.validate(json.loads((work / "nodes" / "n-5" / "config.json").read_text()))
    assert cfg["wifi"]["password"] == "env-wifi-pass" and cfg["mqtt"]["password"] == "given-mqtt-password-123"
    assert cfg["mqtt"]["port"] == 1884 and cfg["sensors"][0]["bus"] == "uart0"  # the Pico's first UART
    assert "given-mqtt-password-123" not in out and "env-wifi-pass" not in out
    # generated passwords differ per node (secrets, not a seeded random)
    run(["--id", "n-6", "--board", "pi", "--broker", "m"], capsys)
    run(["--id", "n-7", "--board", "pi", "--broker", "m"], capsys)
    pws = {json.loads((work / "nodes" / n / "config.json").read_text())["mqtt"]["password"] for n in ("n-6", "n-7")}
    assert len(pws) == 2


def test_sensor_spec_parsing():
    assert provision.sensor_spec("air:bme280:i2c0:0x77") == {"name": "air", "driver": "bme280", "bus": "i2c0",
                                                             "address": 0x77}  # fmt: skip
    assert provision.sensor_spec("air:bme280:i2c0:118")["address"] == 118
    assert provision.sensor_spec("air:bme280:i2c0:auto")["address"] == "auto"
    assert "address" not in provision.sensor_spec("pm:pms5003:uart1")
    for bad in ("air:bme280", "air::i2c0", "a:b:c:d:e", "air:bme280:i2c0:seven"):
        with pytest.raises(argparse.ArgumentTypeError):
            provision.sensor_spec(bad)


def test_mosquitto_accepts_the_generated_password_line(work, capsys):
    """The mosquitto.passwd line provision writes is what the real mosquitto 2 verifies."""
    if not _broker.find_mosquitto():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto); CI installs it")
    from firmware.mqtt import MQTTLink

    assert run(["--id", "gw-9", "--board", "pi", "--broker", "127.0.0.1"], capsys)[0] == 0
    node = work / "nodes" / "gw-9"
    password = json.loads((node / "config.json").read_text())["mqtt"]["password"]
    with _broker.Broker("mosquitto", users={"ops": "ops-password"}) as b:
        pwfile = os.path.join(b._dir, "passwords")  # the password_file Broker made for "ops"
        with open(pwfile, "a") as f:
            f.write((node / "mosquitto.passwd").read_text())
        b.proc.send_signal(signal.SIGHUP)  # mosquitto re-reads its password_file
        deadline = time.monotonic() + 10
        while True:
            link = MQTTLink("gw-9", b.host, b.port, user="gw-9", password=password, seed=1)
            if link.connect():
                break
            assert time.monotonic() < deadline, "mosquitto never accepted the provisioned password"
            time.sleep(0.1)
        assert link.publish("data", b"{}")
        link.close()
        # one character changed; a fixed replacement would equal the password's own last
        # character once in 64 generated passwords (CI met that: "...x" + "x" connected)
        wrong_password = password[:-1] + ("b" if password[-1] == "a" else "a")
        assert wrong_password != password
        wrong = MQTTLink("gw-9", b.host, b.port, user="gw-9", password=wrong_password, seed=1)
        assert not wrong.connect()


def test_cli_exit_codes_through_the_streetnode_command(work):
    """The installed entry point: usage errors 2, duplicates 3, invalid 4, one line each."""
    cmd = [sys.executable, "-m", "streetnode.cli", "provision"]
    ok = subprocess.run(cmd + ["--id", "gw-1", "--board", "pi", "--broker", "m"], capture_output=True, text=True,
                        stdin=subprocess.DEVNULL)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    dup = subprocess.run(cmd + ["--id", "gw-1", "--board", "pi", "--broker", "m"], capture_output=True, text=True)
    usage = subprocess.run(cmd + ["--board", "pi"], capture_output=True, text=True)
    badboard = subprocess.run(cmd + ["--id", "x", "--board", "arduino", "--broker", "m"], capture_output=True,
                              text=True)  # fmt: skip
    assert (dup.returncode, usage.returncode, badboard.returncode) == (3, 2, 2)
    assert dup.stderr.count("\n") == 1 and "Traceback" not in dup.stderr + usage.stderr + badboard.stderr
    helptext = subprocess.run(cmd + ["--help"], capture_output=True, text=True).stdout
    assert "examples:" in helptext and "exit codes:" in helptext


def test_parallel_runs_register_one_id_once(work):
    """Six technicians provision the same id into one register at the same moment: one
    wins, five are refused with exit 3, the register has one row and only one node
    directory was written; distinct ids all land, none lost."""
    cmd = [sys.executable, "-m", "streetnode.cli", "provision", "--board", "pi", "--broker", "m", "--anonymous"]
    procs = [subprocess.Popen(cmd + ["--id", "gw-same", "--out", "out-%d" % i], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE) for i in range(6)]  # fmt: skip
    codes = sorted(p.wait(60) for p in procs)
    for p in procs:
        p.stderr.close()
    assert codes == [0, 3, 3, 3, 3, 3]
    rows = list(csv.DictReader(open(work / "fleet-register.csv")))
    assert [r["id"] for r in rows] == ["gw-same"]
    assert sum((work / ("out-%d" % i)).exists() for i in range(6)) == 1
    procs = [subprocess.Popen(cmd + ["--id", "gw-%d" % i], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for i in range(6)]  # fmt: skip
    assert [p.wait(60) for p in procs] == [0] * 6
    rows = list(csv.DictReader(open(work / "fleet-register.csv")))
    assert sorted(r["id"] for r in rows) == ["gw-%d" % i for i in range(6)] + ["gw-same"]


def test_wifi_password_from_stdin_and_from_the_prompt(work, capsys, monkeypatch):
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO("stdin-wifi-pass\n"))
    assert run(["--id", "n-1", "--board", "pico", "--ssid", "x", "--wifi-password-file", "-", "--broker", "m"],
               capsys)[0] == 0  # fmt: skip
    assert json.loads((work / "nodes/n-1/config.json").read_text())["wifi"]["password"] == "stdin-wifi-pass"

    class Tty(io.StringIO):
        def isatty(self):
            return True

    answers = []
    monkeypatch.setattr(sys, "stdin", Tty(""))
    monkeypatch.setattr(provision.getpass, "getpass", lambda prompt="": answers.pop(0))
    answers[:] = ["typed-wifi-pass", "typed-wifi-pass"]
    assert run(["--id", "n-2", "--board", "pico", "--ssid", "x", "--broker", "m"], capsys)[0] == 0
    assert json.loads((work / "nodes/n-2/config.json").read_text())["wifi"]["password"] == "typed-wifi-pass"
    answers[:] = ["typed-wifi-pass", "typo-wifi-pass"]
    code, _, err = run(["--id", "n-3", "--board", "pico", "--ssid", "x", "--broker", "m"], capsys)
    assert code == 4 and "differ" in err and "typo-wifi-pass" not in err and "typed-wifi-pass" not in err
    assert not (work / "nodes/n-3").exists()
