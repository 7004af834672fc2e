"""The broker options every command that talks MQTT shares (streetnode.common.mqtt): check,
monitor, report and sim against a TLS-only mosquitto, HOST without a port meaning 1883 (8883
with TLS), the same options on every command, and clear errors for wrong ones."""

import json
import random
import re
import signal
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
def test_sim_waits_for_a_broker_that_comes_up_later(tmp_path):
    if not find_mosquitto():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto); CI installs it")
    from streetnode.sim.fleet import node_outbox

    def committed():  # sim-1's outbox on its running flash (LittleFS commits are atomic)
        try:
            return node_outbox(tmp_path / "sim-1")[0]
        except Exception:  # noqa: BLE001 - not there yet, or caught between two writes
            return 0

    def wait(cond, what):
        deadline = time.monotonic() + 120
        while not cond():
            assert time.monotonic() < deadline and proc.poll() is None, "timed out waiting for " + what
            time.sleep(0.2)

    port = free_port()
    proc = _sim("--broker", "127.0.0.1:%d" % port, "--state-dir", str(tmp_path))
    broker = Broker("mosquitto", port=port)
    seen = set()
    sub = None
    try:
        wait(lambda: committed() >= 3, "sim-1 committing 3 readings with no broker")  # it samples and keeps trying
        broker.start()  # (from this thread: the broker dies with the thread that started it)
        sub = mqtt.connect(mqtt.BrokerOptions("127.0.0.1", port), "test-later",
                           on_message=lambda c, u, msg: seen.add(json.loads(msg.payload)["seq"]),
                           subscribe=["streetnode/sim-1/data"])  # fmt: skip
        wait(lambda: {1, 2, 3} <= seen, "the readings from before the broker")  # the nodes came
        # and the sim's own view (the broker's log names it), then 3 readings more that it saw too
        wait(lambda: " as streetnode-sim-view-" in broker.log_tail(100000), "the sim's view at the broker")
        after = max(seen)
        wait(lambda: {after + 1, after + 2, after + 3} <= seen, "3 readings after the view came")
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
        if sub is not None:
            mqtt.close(sub)
        broker.close()
    m = re.search(r"received (\d+) readings from 1 node\(s\), (\d+) missing, (\d+) still queued in outboxes "
                  r"\((\d+) committed\)", out)  # fmt: skip
    assert proc.returncode == 0 and m, out
    received, missing, queued, committed = map(int, m.groups())
    # What the node delivered before the view subscribed is still in its outbox (acks are
    # persisted every 50, a SIGTERM persists none), so it counts as queued, not missing.
    assert received >= 3 and missing == 0 and received + queued == committed, out


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


# -- every MQTT subcommand has the one set of broker options, and none sends a password in clear

# The subcommands that talk to a broker; the ones other work adds (ota push/status, cmd, logs)
# are found by walking the parser and held to the same rule.
TALKS_MQTT = {"check", "monitor", "report", "sim", "deploy", "bridge", "serve"}
NAMES_A_BROKER = {"provision"}  # writes the broker into a node's config, talks to none


def _subcommands(parser, path=()):
    """(name path, subparser) for every subcommand, nested ones (ota push) too."""
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield path + (name,), sub
                yield from _subcommands(sub, path + (name,))


def _broker_option_strings():
    import argparse

    p = argparse.ArgumentParser()
    mqtt.add_broker_options(p)
    return {s for a in p._actions for s in a.option_strings if s not in ("-h", "--help")}


def test_every_subcommand_that_talks_mqtt_has_its_broker_options_from_add_broker_options():
    canonical = _broker_option_strings()
    assert {"--broker", "--tls", "--ca", "--cert", "--key", "--user", "--password-file",
            "--allow-plaintext-password"} <= canonical  # fmt: skip
    found = set()
    for path, sub in _subcommands(cli.build_parser()):
        groups = [g for g in sub._action_groups if getattr(g, "streetnode_broker_options", False)]
        strings = {s for a in sub._actions for s in a.option_strings}
        if not groups and path[0] not in NAMES_A_BROKER:
            # a look-alike (a --broker of its own) would escape the rules below
            assert "--broker" not in strings and "--password-file" not in strings, path
            continue
        if not groups:
            continue
        found.add(" ".join(path))
        assert len(groups) == 1, path
        own = {s for a in groups[0]._group_actions for s in a.option_strings}
        assert own == canonical, (path, own ^ canonical)
    assert TALKS_MQTT <= found, TALKS_MQTT - found
    for later in ("ota push", "ota status", "cmd", "logs"):  # as other branches land
        top = later.split()[0]
        if any(p[0] == top for p, _ in _subcommands(cli.build_parser())):
            assert later in found or later == top, later


def test_no_host_module_opens_a_paho_client_of_its_own():
    tools = REPO / "tools" / "streetnode"
    offenders = []
    for path in tools.rglob("*.py"):
        rel = path.relative_to(tools).as_posix()
        if rel == "common/mqtt.py" or rel.startswith("bench/"):  # benchmarks drive brokers raw, on loopback
            continue
        if re.search(r"^\s*(import paho|from paho)", path.read_text(), re.M):
            offenders.append(rel)
    assert offenders == []


PLAIN_PASSWORD = [["check", "lamp-1"], ["monitor", "--once"], ["report", "--duration", "1"], ["sim", "--duration", "1"],
                  ["bridge", "--to", "homeassistant"], ["serve"]]  # fmt: skip


@pytest.mark.parametrize("command", PLAIN_PASSWORD, ids=lambda c: c[0])
def test_no_command_sends_a_password_in_clear_by_accident(command, tmp_path, capsys):
    pw = tmp_path / "pw"
    pw.write_text("s3cret-password\n")
    cred = ["--user", "crew", "--password-file", str(pw)]
    for broker, why in (("mqtt.example.org:8883", "port 8883 is MQTT over TLS: add --tls"),
                        ("mqtt.example.org", "would cross the network in clear to mqtt.example.org:1883"),
                        ("10.1.2.3:1884", "--allow-plaintext-password if that network is trusted")):  # fmt: skip
        code = cli.main(command + ["--broker", broker] + cred)
        err = capsys.readouterr().err
        # a usage error (options that do not go together): exit 2, the subcommand's usage, then why
        assert code == 2 and why in err.splitlines()[-1] and err.startswith("usage: streetnode "), (broker, err)
        assert "s3cret" not in err
    # on purpose, the options say so; 8883 without TLS stays refused even then
    args = cli.build_parser().parse_args(command + ["--broker", "10.1.2.3", "--allow-plaintext-password"] + cred)
    assert mqtt.BrokerOptions.from_args(args).password == "s3cret-password"
    with pytest.raises(ValueError, match="port 8883 is MQTT over TLS"):
        mqtt.BrokerOptions.from_args(cli.build_parser().parse_args(
            command + ["--broker", "10.1.2.3:8883", "--allow-plaintext-password"] + cred))  # fmt: skip


def test_a_password_in_clear_only_to_loopback_and_never_past_new_client(tmp_path):
    for host in ("127.0.0.1", "127.8.9.10", "localhost", "::1"):
        assert mqtt.is_loopback(host), host
    for host in ("10.0.0.1", "mqtt.example.org", "localhost.example.org", "0.0.0.0", "fe80::1"):
        assert not mqtt.is_loopback(host), host
    pw = tmp_path / "pw"
    pw.write_text("s3cret-password\n")
    args = cli.build_parser().parse_args(["monitor", "--broker", "[::1]", "--user", "u", "--password-file", str(pw)])
    assert mqtt.BrokerOptions.from_args(args).port == 1883
    # Options built in code (not from the command line) are held to it when the client is made.
    with pytest.raises(mqtt.BrokerError, match="port 8883 is MQTT over TLS"):
        mqtt.new_client(mqtt.BrokerOptions("127.0.0.1", 8883, user="u", password="p"))
    with pytest.raises(mqtt.BrokerError, match="in clear"):
        mqtt.new_client(mqtt.BrokerOptions("mqtt.example.org", user="u", password="p"))
    mqtt.new_client(mqtt.BrokerOptions("mqtt.example.org", user="u", password="p", allow_plaintext_password=True))
    mqtt.new_client(mqtt.BrokerOptions("mqtt.example.org", tls=True, user="u", password="p"))


def test_deploy_wait_online_refuses_a_node_config_that_would_send_its_password_in_clear(tmp_path):
    from streetnode.common.errors import Failure
    from streetnode.technician.deploy import online

    cfg = {"node_id": "lamp-1", "mqtt": {"host": "mqtt.example.org", "port": 1883, "user": "lamp-1", "password": "pw"}}
    args = cli.build_parser().parse_args(["deploy", "--port", "/dev/null", "--config", "c.json"])
    with pytest.raises(Failure, match="in clear"):
        online.broker_options(args, cfg, [])
    args = cli.build_parser().parse_args(["deploy", "--port", "/dev/null", "--config", "c.json",
                                          "--allow-plaintext-password"])  # fmt: skip
    assert online.broker_options(args, cfg, []).password == "pw"
