"""The broker options every command that talks MQTT shares (streetnode.common.mqtt): check,
monitor, report and sim against a TLS-only mosquitto, HOST without a port meaning 1883 (8883
with TLS), the same options on every command, and clear errors for wrong ones."""

import json
import random
import re
import socket
import subprocess
import sys
import time

import pytest

from host_tests import pki
from streetnode.common.paths import REPO
from streetnode import cli
from streetnode.common import mqtt
from streetnode.common.broker import Broker, find_mosquitto, free_port

STATUS = {"state": "online", "fw": "0.0-test", "boot_count": 1, "reset_cause": "power_on"}


def _retain_status(opts, node="lamp-1"):
    """A node's retained online status, published over `opts` (so the publisher got in too)."""
    c = mqtt.connect(opts, "test-publisher")
    try:
        c.publish("streetnode/%s/status" % node, json.dumps(STATUS), qos=1, retain=True).wait_for_publish(5)
    finally:
        mqtt.close(c)


@pytest.fixture
def tls(tmp_path):
    with pki.tls_broker(tmp_path) as (b, _ca, other_der):
        (tmp_path / "other-ca.der").write_bytes(other_der)
        yield b, tmp_path


def test_check_monitor_and_report_on_a_tls_only_broker(tls, tmp_path, capsys):
    b, d = tls
    _retain_status(mqtt.BrokerOptions(b.host, b.port, ca=str(d / "ca.pem")))
    at = ["--broker", b.address]

    code = cli.main(["monitor", *at, "--ca", str(d / "ca.pem"), "--once", "--settle", "0.5"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert re.search(r"^lamp-1 .*online", out.out, re.M), out.out

    # The CA in DER (as the nodes carry it) does as well; check sees the retained status.
    code = cli.main(["check", "lamp-1", *at, "--ca", str(d / "ca.der"), "--timeout", "1", "--quiet"])
    out = capsys.readouterr()
    assert "PASS  online" in out.out and "on %s" % b.address in out.out, out.out + out.err
    assert code == 1 and "error" not in out.err  # no readings in 1 s: FAIL, but the broker was used

    code = cli.main(["report", *at, "--tls", "--ca", str(d / "ca.pem"), "--duration", "1", "--no-plots",
                     "--out", str(tmp_path / "report")])  # fmt: skip
    out = capsys.readouterr()
    assert code == 0, out.err
    assert out.out.startswith("lamp-1 "), out.out
    assert "lamp-1" in json.loads((tmp_path / "report" / "summary.json").read_text())["nodes"]


def test_a_tls_broker_refuses_what_does_not_verify_with_one_line_each(tls, capsys):
    b, d = tls
    at = ["monitor", "--broker", b.address, "--once", "--settle", "0.5"]
    for extra, why in (
        (["--tls"], "certificate verify failed"),  # the system's CAs do not know the test CA
        (["--ca", str(d / "other-ca.der")], "certificate verify failed"),
        ([], "closed the connection before answering (does it want TLS: --tls, --ca?)"),  # plain MQTT
        (["--ca", str(d / "server.key")], "holds no usable certificate"),
        (["--ca", str(d / "absent.pem")], "cannot read the CA file"),
    ):
        code = cli.main(at + extra)
        err = capsys.readouterr().err
        assert code == 1 and why in err and err.count("\n") == 1, (extra, err)
        assert err.startswith("streetnode monitor: error: "), err
    code = cli.main(["check", "lamp-1", "--broker", "localhost:%d" % b.port, "--ca", str(d / "ca.pem"), "--timeout", "1"])
    assert code == 3, capsys.readouterr().err  # the certificate names localhost as well: in, no such node


def _free_loopback(*ports):
    """A loopback address (127.x.y.z: all of 127/8 reaches this machine) where `ports` are
    free, so that a test may take the default ports without meeting another broker."""
    for _ in range(20):
        host = "127.%d.%d.%d" % (random.randint(1, 254), random.randint(0, 255), random.randint(1, 254))
        try:
            for port in ports:
                with socket.socket() as s:
                    s.bind((host, port))
            return host
        except OSError:
            continue
    pytest.skip("ports %s are taken on every loopback address tried (a broker listening on all addresses?)" % (ports,))


def test_broker_without_a_port_means_1883_and_8883_with_tls(tmp_path, capsys):
    if not find_mosquitto():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto); CI installs it")
    host = _free_loopback(1883, 8883)
    with Broker("mosquitto", host=host, port=1883):
        _retain_status(mqtt.BrokerOptions(host))
        code = cli.main(["monitor", "--broker", host, "--once", "--settle", "0.5"])
        out = capsys.readouterr()
        assert code == 0 and re.search(r"^lamp-1 .*online", out.out, re.M), out.out + out.err
    with pki.tls_broker(tmp_path, host=host, port=8883):
        _retain_status(mqtt.BrokerOptions(host, tls=True, ca=str(tmp_path / "ca.pem")))
        code = cli.main(["monitor", "--broker", host, "--ca", str(tmp_path / "ca.der"), "--once", "--settle", "0.5"])
        out = capsys.readouterr()
        assert code == 0 and re.search(r"^lamp-1 .*online", out.out, re.M), out.out + out.err


MQTT_COMMANDS = [["check", "lamp-1"], ["monitor"], ["report"], ["deploy", "--port", "/dev/null", "--config", "c.json"],
                 ["sim"]]  # fmt: skip


@pytest.mark.parametrize("command", MQTT_COMMANDS, ids=lambda c: c[0])
def test_every_command_that_talks_mqtt_takes_the_same_broker_options(command, tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("s3cret\nsecond line is not the password\n")
    parser = cli.build_parser()
    args = parser.parse_args(command + ["--broker", "mqtt.example.org", "--tls", "--ca", "ca.pem", "--cert", "c.pem",
                                        "--key", "c.key", "--user", "crew", "--password-file", str(pw)])  # fmt: skip
    o = mqtt.BrokerOptions.from_args(args)
    assert (o.host, o.port, o.tls, o.ca, o.cert, o.key, o.user, o.password) == (
        "mqtt.example.org", 8883, True, "ca.pem", "c.pem", "c.key", "crew", "s3cret")  # fmt: skip
    assert "s3cret" not in repr(o)
    for given, where in (("mqtt.example.org", ("mqtt.example.org", 1883)), ("10.0.0.5:1884", ("10.0.0.5", 1884)),
                         ("[::1]", ("::1", 1883)), ("[fd00::5]:8884", ("fd00::5", 8884))):  # fmt: skip
        o = mqtt.BrokerOptions.from_args(parser.parse_args(command + ["--broker", given]))
        assert (o.host, o.port, o.tls) == where + (False,)
    o = mqtt.BrokerOptions.from_args(parser.parse_args(command + ["--broker", "mqtt.example.org", "--ca", "ca.der"]))
    assert (o.port, o.tls) == (8883, True)  # a CA turns TLS on


def test_wrong_broker_options_are_clear_errors(tmp_path, capsys):
    cases = [
        (["monitor", "--broker", "mqtt:port"], "--broker must be HOST:PORT or HOST"),
        (["monitor", "--broker", "mqtt:70000"], "a number from 1 to 65535"),
        (["monitor", "--broker", "mqtt:"], "--broker must be HOST:PORT or HOST"),
        (["monitor", "--broker", "mqtt", "--cert", "c.pem"], "--cert and --key go together"),
        (["monitor", "--broker", "mqtt", "--password-file", "pw"], "--password-file goes with --user"),
        (["monitor", "--broker", "mqtt", "--user", "u", "--password-file", str(tmp_path / "none")],
         "cannot read the password file"),
        (["report", "--capture", "x.jsonl", "--tls"], "go with --broker"),
    ]  # fmt: skip
    for argv, why in cases:
        code = cli.main(argv)
        err = capsys.readouterr().err
        if "password file" in why:  # a file that cannot be read: a failure, one line
            assert code == 1 and why in err and err.count("\n") == 1, (argv, err)
        else:  # a usage error: exit 2, the subcommand's usage, then the one-line reason
            assert code == 2 and why in err and err.startswith("usage: streetnode %s" % argv[0]), (argv, err)


def _sim(*args):
    exe = [sys.executable, "-m", "streetnode.cli", "sim", "--nodes", "1", "--interval", "0.5", *args]
    return subprocess.Popen(exe, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.usefixtures("mpy_tree")
def test_sim_nodes_publish_over_tls_with_the_ca_given(tls):
    b, d = tls
    proc = _sim("--broker", b.address, "--ca", str(d / "ca.pem"), "--duration", "12")
    try:
        out, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    m = re.search(r"received (\d+) readings from 1 node\(s\), (\d+) missing", out)
    assert proc.returncode == 0 and m, out
    assert int(m.group(1)) >= 3 and m.group(2) == "0", out
    assert "embedded broker" not in out


@pytest.mark.usefixtures("mpy_tree")
def test_sim_waits_for_a_broker_that_comes_up_later():
    if not find_mosquitto():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto); CI installs it")
    port = free_port()
    proc = _sim("--broker", "127.0.0.1:%d" % port, "--duration", "16")
    broker = Broker("mosquitto", port=port)
    try:
        time.sleep(4)  # the nodes and the live view are trying meanwhile
        broker.start()  # (from this thread: the broker dies with the thread that started it)
        out, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
        broker.close()
    m = re.search(r"received (\d+) readings from 1 node\(s\), (\d+) missing", out)
    assert proc.returncode == 0 and m, out
    assert int(m.group(1)) >= 3 and m.group(2) == "0", out


def test_a_broker_that_wants_a_client_certificate(tmp_path, capsys):
    with pki.tls_broker(tmp_path, require_certificate=True) as (b, _ca, _other):
        at = ["monitor", "--broker", b.address, "--ca", str(tmp_path / "ca.pem"), "--once", "--settle", "0.5"]
        code = cli.main(at + ["--cert", str(tmp_path / "client.pem"), "--key", str(tmp_path / "client.key")])
        out = capsys.readouterr()
        assert code == 0, out.err
        code = cli.main(at)  # no certificate: the broker ends the handshake
        err = capsys.readouterr().err
        assert code == 1 and err.startswith("streetnode monitor: error: ") and b.address in err, err
        assert "client certificate" in err, err
        code = cli.main(at + ["--cert", str(tmp_path / "client.key"), "--key", str(tmp_path / "client.pem")])
        err = capsys.readouterr().err
        assert code == 1 and "cannot load the client certificate" in err, err
