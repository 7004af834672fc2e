"""Per-node MQTT credentials: a broker that only lets known nodes in (mosquitto's
password_file). The node with its password publishes; a wrong password is refused and the
node keeps backing off without harm. On CPython (paho) and on MicroPython (umqtt)."""

import time

import pytest

from host_tests.fleet import Collector, NodeRunner, node_config
from streetnode.common import broker as _broker


def _refusals(broker):
    """CONNECTs the broker refused (mosquitto logs each as 'not authorised')."""
    return broker.log_tail(100000).count("not authorised")


def _wait(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(0.1)


def _last_seq(node, tmp_path):
    """The highest seq a stopped node committed, from its outbox (a copy of its flash)."""
    from firmware.outbox import Outbox

    return Outbox(str(node.flash_copy(tmp_path / "copy") / "outbox")).last_seq


@pytest.fixture
def locked_broker():
    if not _broker.find_mosquitto():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto); CI installs it")
    with _broker.Broker("mosquitto", users={"n1": "s3cret-n1", "ops": "ops-pw"}) as b:
        yield b


def test_paho_link_connects_with_its_password_and_is_refused_without(locked_broker):
    from firmware.mqtt import MQTTLink

    good = MQTTLink("n1", locked_broker.host, locked_broker.port, user="n1", password="s3cret-n1", seed=1)
    assert good.connect()
    assert good.publish("data", b"{}")
    good.close()
    for user, password in (("n1", "wrong"), (None, None)):
        bad = MQTTLink("n1", locked_broker.host, locked_broker.port, user=user, password=password, seed=1)
        assert not bad.connect()
        assert bad.last_error is not None and bad.failures == 1


def test_node_on_micropython_uses_its_credentials(locked_broker, tmp_path, mpy_tree):
    collector = Collector(locked_broker, user="ops", password="ops-pw")  # the operations desk
    try:
        good = NodeRunner(tmp_path / "n1", mpy_tree)
        cfg = node_config("n1", locked_broker, interval_s=0.2)
        cfg["mqtt"].update(user="n1", password="s3cret-n1")
        good.write_config(cfg)
        good.start()
        collector.wait(lambda: len(collector.seqs("n1")) >= 3, 30, "readings from the node with its password")
        good.stop()
        bad = NodeRunner(tmp_path / "n2", mpy_tree)
        cfg = node_config("n2", locked_broker, interval_s=0.2)
        cfg["mqtt"].update(user="n1", password="guess")
        bad.write_config(cfg)
        bad.start()
        # Refused twice (the broker's log says so): it backed off and tried again, however
        # slow the machine. Then a marker through the broker: anything n2 had published
        # before it would have arrived first.
        _wait(lambda: _refusals(locked_broker) >= 2, 60, "the broker refusing n2 twice")
        collector.publish("streetnode/marker/data", b'{"seq": 1, "ts": null, "sensors": {}}')
        collector.wait(lambda: collector.seqs("marker") == [1], 30, "the marker")
        assert bad.alive()  # refused, backing off, still sampling into its outbox
        assert "n2" not in collector.data and "n2" not in collector.status
        assert " as n2 (" not in locked_broker.log_tail(100000)  # never let in
        bad.stop()
        assert b'"next"' in bad.read_file("outbox/state")
        assert _last_seq(bad, tmp_path) >= 1  # its readings wait in its outbox
    finally:
        collector.close()
