"""`streetnode broker-config`: the fleet's password file, ACL and config snippet, loaded into a
real mosquitto. A node cannot publish as another, read another's commands or get anything
through `#`; anonymous and wrong-password clients are refused; a read-only operator cannot command;
a real MicroPython node publishes and answers commands under the ACL."""

import json
import os
import stat
import threading
import time

import pytest

from host_tests.fleet import Collector
from streetnode import cli
from streetnode.common import mqtt
from streetnode.common.broker import Broker, find_mosquitto, free_port
from streetnode.security import acl

NODES = ("lamp-a", "lamp-b", "lamp-n")


def _provision(work, node_id, port, capsys):
    code = cli.main(["provision", "--id", node_id, "--board", "unix-sim", "--broker", "127.0.0.1:%d" % port,
                     "--preset", "air", "--interval", "0.3", "--register", str(work / "fleet-register.csv"),
                     "--out", str(work / "nodes" / node_id)])  # fmt: skip
    out = capsys.readouterr()
    assert code == 0, out.err


def _password(work, node_id):
    return json.loads((work / "nodes" / node_id / "config.json").read_text())["mqtt"]["password"]


@pytest.fixture
def fleet(tmp_path, capsys):
    """A provisioned fleet of three and broker-config's files: (work dir, port, out dir)."""
    work = tmp_path
    port = free_port()
    for n in NODES:
        _provision(work, n, port, capsys)
    code = cli.main(["broker-config", "--register", str(work / "fleet-register.csv"), "--out", str(work / "broker"),
                     "--listen", "127.0.0.1:%d" % port])  # fmt: skip
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "3 node(s) and 4 operator(s)" in out.out and "passwords would cross the network in clear" in out.err
    return work, port, work / "broker"


def test_broker_config_writes_the_fleet_and_the_same_node_lines_as_provision(fleet, capsys):
    work, port, out = fleet
    assert stat.S_IMODE(os.stat(out / "mosquitto.passwd").st_mode) == 0o600
    users = [line.split(":")[0] for line in (out / "mosquitto.passwd").read_text().splitlines()]
    assert users == list(NODES) + ["monitor", "bridge", "crew", "ota"]
    text = (out / "mosquitto.acl").read_text()
    for n in NODES:  # provision's lines for the node, exactly, and its hash reused
        assert (work / "nodes" / n / "mosquitto.acl").read_text() in text
        assert (work / "nodes" / n / "mosquitto.passwd").read_text() in (out / "mosquitto.passwd").read_text()
    assert acl.node_acl("lamp-a") == (
        "user lamp-a\ntopic write streetnode/lamp-a/status\ntopic write streetnode/lamp-a/data\n"
        "topic write streetnode/lamp-a/health\ntopic write streetnode/lamp-a/cmd/result\n"
        "topic write streetnode/lamp-a/ota/status\ntopic read streetnode/lamp-a/cmd\ntopic read streetnode/lamp-a/ota/#\n"
        "topic read streetnode/lamp-a/status\ntopic read streetnode/lamp-a/data\n")
    conf = (out / "mosquitto.conf").read_text().splitlines()
    for line in ("allow_anonymous false", "password_file %s" % (out / "mosquitto.passwd"),
                 "acl_file %s" % (out / "mosquitto.acl"), "listener %d 127.0.0.1" % port):  # fmt: skip
        assert line in conf
    pw = {}
    for name in ("monitor", "bridge", "crew", "ota"):
        f = out / ("%s.password" % name)
        assert stat.S_IMODE(os.stat(f).st_mode) == 0o600
        pw[name] = f.read_text()
    # Run again (a node was added, say): the operators keep their passwords; TLS lines when given.
    (out.parent / "ca.pem").write_text("x")
    code = cli.main(["broker-config", "--register", str(work / "fleet-register.csv"), "--out", str(out),
                     "--ca", str(out.parent / "ca.pem"), "--server-cert", str(out.parent / "ca.pem"),
                     "--server-key", str(out.parent / "ca.pem")])  # fmt: skip
    res = capsys.readouterr()
    assert code == 0 and "new operator passwords" not in res.out and "in clear" not in res.err, res
    assert all((out / ("%s.password" % n)).read_text() == pw[n] for n in pw)
    conf = (out / "mosquitto.conf").read_text().splitlines()
    assert "listener 8883" in conf and "cafile %s" % (out.parent / "ca.pem") in conf


def test_broker_config_refuses_what_it_cannot_make_safe(fleet, capsys):
    work, port, out = fleet
    reg = str(work / "fleet-register.csv")
    os.remove(work / "nodes" / "lamp-b" / "mosquitto.passwd")  # the password in config.json still serves
    assert cli.main(["broker-config", "--register", reg, "--out", str(out)]) == 0
    capsys.readouterr()
    cfg = json.loads((work / "nodes" / "lamp-b" / "config.json").read_text())
    del cfg["mqtt"]["user"], cfg["mqtt"]["password"]
    (work / "nodes" / "lamp-b" / "config.json").write_text(json.dumps(cfg))
    for argv, why in (
        ([], "no MQTT credentials for lamp-b"),
        (["--nodes-dir", str(work / "elsewhere")], "no MQTT credentials for lamp-a, lamp-b, lamp-n"),
        (["--operator", "lamp-a:crew"], "operator name(s) lamp-a used twice or also a node id"),
        (["--ca", "ca.pem"], "--ca, --server-cert and --server-key go together"),
    ):
        code = cli.main(["broker-config", "--register", reg, "--out", str(out)] + argv)
        err = capsys.readouterr().err
        assert code == 4 and why in err and err.count("\n") == 1, (argv, err)
    with pytest.raises(SystemExit) as e:  # a usage error (argparse)
        cli.main(["broker-config", "--register", reg, "--out", str(out), "--operator", "x:admin"])
    assert e.value.code == 2 and "role 'admin' is not one of" in capsys.readouterr().err


@pytest.fixture
def locked(fleet):
    if not find_mosquitto():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto); CI installs it")
    work, port, out = fleet
    with Broker("mosquitto", port=port, conf=(out / "mosquitto.conf").read_text()) as b:
        yield work, b, out


def _opts(b, user=None, password=None):
    return mqtt.BrokerOptions(b.host, b.port, user=user, password=password)


class _Inbox:
    def __init__(self):
        self.lock = threading.Lock()
        self.msgs = []

    def __call__(self, client, userdata, msg):
        with self.lock:
            self.msgs.append((msg.topic, msg.payload))

    def wait(self, topic, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if any(t == topic for t, _ in self.msgs):
                    return list(self.msgs)
            time.sleep(0.05)
        raise AssertionError("nothing on %s within %ss; got %s" % (topic, timeout, self.msgs))


def _publish(client, topic, payload=b"{}"):
    client.publish(topic, payload, qos=1).wait_for_publish(5)


def test_the_acl_keeps_nodes_to_their_own_topics_and_operators_to_their_roles(locked):
    work, b, out = locked
    op = {n: (out / ("%s.password" % n)).read_text().strip() for n in ("monitor", "crew")}
    clients = []

    def connect(user, password, **kw):
        c = mqtt.connect(_opts(b, user, password), "%s-%d" % (user or "anon", len(clients)), **kw)
        clients.append(c)
        return c

    try:
        # Anonymous and a wrong password: refused at CONNECT.
        for user, password in ((None, None), ("lamp-a", "not-its-password"), ("monitor", _password(work, "lamp-a"))):
            with pytest.raises(mqtt.BrokerError, match="refused the connection"):
                connect(user, password)
        seen = _Inbox()
        connect("monitor", op["monitor"], subscribe=["streetnode/#"], on_message=seen)
        b_cmds = _Inbox()
        connect("lamp-b", _password(work, "lamp-b"), subscribe=["streetnode/lamp-b/cmd"], on_message=b_cmds)
        a = connect("lamp-a", _password(work, "lamp-a"))

        # A publishes as B, then as itself: the subscriber gets A's own and never B's.
        _publish(a, "streetnode/lamp-b/data", b'{"seq": 999}')
        _publish(a, "streetnode/lamp-b/status", b'{"state": "offline"}')
        _publish(a, "streetnode/lamp-a/data", b'{"seq": 1}')
        got = seen.wait("streetnode/lamp-a/data")
        assert not [t for t, _ in got if "/lamp-b/" in t], got

        # A subscribes to B's commands and to everything: mosquitto grants the subscriptions
        # and delivers only what A may read, its own commands.
        spy = _Inbox()
        connect("lamp-a", _password(work, "lamp-a"), subscribe=["streetnode/lamp-b/cmd", "#", "streetnode/+/cmd"],
                on_message=spy)  # fmt: skip
        # The read-only operator's command is dropped; the crew's arrive (in order: one publisher).
        ro = connect("monitor", op["monitor"])
        _publish(ro, "streetnode/lamp-b/cmd", b'{"id": "ro", "cmd": "reboot"}')
        crew = connect("crew", op["crew"])
        _publish(crew, "streetnode/lamp-b/cmd", b'{"id": "crew", "cmd": "health"}')
        _publish(a, "streetnode/lamp-b/health", b'{"uptime_s": 1}')  # and A publishing as B once more
        _publish(crew, "streetnode/lamp-a/cmd", b'{"id": "crew-a", "cmd": "health"}')
        got = b_cmds.wait("streetnode/lamp-b/cmd")
        assert [p for _, p in got] == [b'{"id": "crew", "cmd": "health"}'], got
        got = spy.wait("streetnode/lamp-a/cmd")
        assert got == [("streetnode/lamp-a/cmd", b'{"id": "crew-a", "cmd": "health"}')], got
        # and reads back its own data (what deploy --wait-online watches with the node's account)
        _publish(a, "streetnode/lamp-a/data", b'{"seq": 2}')
        assert spy.wait("streetnode/lamp-a/data")[-1] == ("streetnode/lamp-a/data", b'{"seq": 2}')
        assert not [t for t, _ in seen.wait("streetnode/lamp-a/cmd") if "/lamp-b/" in t and not t.endswith("/cmd")]
    finally:
        for c in clients:
            mqtt.close(c)


def test_a_micropython_node_publishes_and_answers_commands_under_the_acl(locked, runner):
    work, b, out = locked
    cfg = json.loads((work / "nodes" / "lamp-n" / "config.json").read_text())
    node = runner("lamp-n")
    node.write_config(cfg)  # provision's config, unchanged: its user, its password
    monitor = Collector(b, user="monitor", password=(out / "monitor.password").read_text().strip())
    crew = mqtt.connect(_opts(b, "crew", (out / "crew.password").read_text().strip()), "crew-n")
    try:
        node.start()
        monitor.wait(lambda: len(monitor.seqs("lamp-n")) >= 3, 60, "readings from the node under the ACL")
        monitor.wait(lambda: any(s.get("state") == "online" for s in monitor.status.get("lamp-n", [])), 30, "online")
        _publish(crew, "streetnode/lamp-n/cmd", json.dumps({"id": "c1", "cmd": "health"}).encode())
        monitor.wait(lambda: any(r.get("id") == "c1" and r.get("ok") for r in monitor.results.get("lamp-n", [])),
                     30, "the node's answer on cmd/result")  # fmt: skip
        seqs = monitor.seqs("lamp-n")
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
    finally:
        mqtt.close(crew)
        monitor.close()


def test_the_config_snippet_with_tls_files_runs_a_tls_listener_for_the_fleet(fleet, capsys):
    if not find_mosquitto():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto); CI installs it")
    from host_tests import pki

    work, port, out = fleet
    pki.make_pki(work)
    code = cli.main(["broker-config", "--register", str(work / "fleet-register.csv"), "--out", str(out),
                     "--listen", "127.0.0.1:%d" % port, "--ca", str(work / "ca.pem"), "--server-cert",
                     str(work / "server.pem"), "--server-key", str(work / "server.key")])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    monitor_pw = out / "monitor.password"
    with Broker("mosquitto", port=port, conf=(out / "mosquitto.conf").read_text()) as b:
        at = ["monitor", "--broker", b.address, "--once", "--settle", "0.3", "--user", "monitor",
              "--password-file", str(monitor_pw)]  # fmt: skip
        code = cli.main(at + ["--ca", str(work / "ca.der")])
        res = capsys.readouterr()
        assert code == 0, res.err
        code = cli.main(at)  # no TLS: the listener hangs up (a loopback host, so the tool let it try)
        err = capsys.readouterr().err
        assert code == 1 and "does it want TLS" in err, err
        with pytest.raises(mqtt.BrokerError, match="refused the connection"):
            mqtt.connect(mqtt.BrokerOptions(b.host, b.port, ca=str(work / "ca.pem")), "anon-tls")


def test_provision_never_leaves_a_node_to_send_its_password_in_clear_unsaid(tmp_path, capsys):
    base = ["provision", "--board", "unix-sim", "--register", str(tmp_path / "reg.csv")]
    code = cli.main(base + ["--id", "n-1", "--broker", "mqtt.siegen.de:8883", "--out", str(tmp_path / "n-1")])
    err = capsys.readouterr().err
    assert code == 4 and "port 8883 is MQTT over TLS: give --ca FILE" in err, err
    assert not (tmp_path / "n-1").exists()
    code = cli.main(base + ["--id", "n-2", "--broker", "mqtt.siegen.de", "--out", str(tmp_path / "n-2")])
    out = capsys.readouterr().out
    assert code == 0 and "warning: no --ca: n-2 will send its MQTT password to mqtt.siegen.de in clear" in out, out
    code = cli.main(base + ["--id", "n-3", "--broker", "127.0.0.1:1884", "--out", str(tmp_path / "n-3")])
    assert code == 0 and "warning" not in capsys.readouterr().out
