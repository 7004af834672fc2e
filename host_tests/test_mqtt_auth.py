"""Per-node MQTT credentials: a broker that only lets known nodes in (mosquitto's
password_file). The node with its password publishes; a wrong password is refused and the
node keeps backing off without harm. On CPython (paho) and on MicroPython (umqtt)."""

import time

import pytest

from host_tests.fleet import Collector, NodeRunner, node_config
from streetnode.common import broker as _broker


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
        time.sleep(3)
        assert bad.alive()  # refused, backing off, still sampling into its outbox
        assert "n2" not in collector.data
        bad.stop()
        assert b'"next"' in bad.read_file("outbox/state")
    finally:
        collector.close()
