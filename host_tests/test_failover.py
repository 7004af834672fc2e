"""Broker failover against real brokers: a node's mqtt.hosts and `--broker h1:p1,h2:p2`.

- Two independent mosquittos, the first killed: a `streetnode sim` fleet moves to the second,
  and every seq each node committed is on one of the two (or still in its outbox).
- A real clustered broker (aedes instances sharing Redis, host_tests/aedes_cluster.py): the
  instance a group of nodes is on is killed, they move to another instance, and a subscriber
  on the surviving instance receives every seq, counted against each node's own outbox.
(The rotation logic itself, to the millisecond: host_tests/device/test_brokers.py.)
"""

import json
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

from host_tests import aedes_cluster
from host_tests.fleet import Collector
from streetnode.common import mqtt
from streetnode.common.paths import REPO
from streetnode.sim.fleet import node_config


def _outbox(flash_dir):
    """(last seq given out, seqs still waiting) of a node's outbox on a copy of its flash."""
    from firmware.outbox import Outbox

    box = Outbox(str(flash_dir / "outbox"))
    return box.last_seq, {seq for seq, _ in box.records()}


def _lost(last, waiting, received):
    """Seqs the node committed that reached no subscriber and are not in its outbox either."""
    return sorted(set(range(1, last + 1)) - set(received) - waiting)


# -- the host side: one syntax for a list of brokers --------------------------------------------


def test_parse_brokers_takes_a_comma_separated_list_and_names_what_is_wrong():
    assert mqtt.parse_brokers("a") == [("a", 1883)]
    assert mqtt.parse_brokers("a:1,b, [::1]:3", tls=False) == [("a", 1), ("b", 1883), ("::1", 3)]
    assert mqtt.parse_brokers("a,b:9", tls=True) == [("a", 8883), ("b", 9)]
    for bad, why in [("a,,b", "without empty entries"), ("a,", "without empty entries"), ("a:1,a:1", "a:1 twice"),
                     ("a,b:x", "HOST:PORT or HOST"), (",".join("h%d" % i for i in range(9)), "at most 8")]:  # fmt: skip
        with pytest.raises(ValueError) as e:
            mqtt.parse_brokers(bad)
        assert why in str(e.value), (bad, str(e.value))
    with pytest.raises(ValueError, match="one broker here"):
        mqtt.parse_broker("a,b")  # where only one broker makes sense


def test_broker_options_carry_the_list_and_sim_gives_it_to_the_nodes():
    args = types.SimpleNamespace(broker="mqtt-a.city:1884,mqtt-b.city", tls=False, ca=None, cert=None, key=None,
                                 user=None, password_file=None)  # fmt: skip
    opts = mqtt.BrokerOptions.from_args(args)
    assert opts.hosts == [("mqtt-a.city", 1884), ("mqtt-b.city", 1883)]
    assert (opts.host, opts.port) == ("mqtt-a.city", 1884) and opts.addresses == "mqtt-a.city:1884,mqtt-b.city:1883"
    cfg = node_config("sim-1", opts, 5, [], seed=1)
    assert cfg["mqtt"]["hosts"] == [{"host": "mqtt-a.city", "port": 1884}, {"host": "mqtt-b.city", "port": 1883}]
    one = node_config("sim-1", mqtt.BrokerOptions("h", 1999), 5, [], seed=1)
    assert (one["mqtt"]["host"], one["mqtt"]["port"]) == ("h", 1999) and "hosts" not in one["mqtt"]
    from firmware import config

    assert config.validate(cfg)["mqtt"]["hosts"] == cfg["mqtt"]["hosts"]  # what the node's own check accepts


def _streetnode():
    exe = Path(sys.executable).with_name("streetnode")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "streetnode.cli"]


def test_a_bad_broker_list_is_refused_by_the_command_line():
    proc = subprocess.run(_streetnode() + ["sim", "--broker", "a:1,,b", "--duration", "1"],
                          capture_output=True, text=True, timeout=120, cwd=REPO)  # fmt: skip
    assert proc.returncode != 0
    assert "without empty entries" in proc.stderr, proc.stderr


def test_the_host_client_fails_over_to_the_next_broker(mosquitto, tmp_path):
    from streetnode.common.broker import Broker

    with Broker("mosquitto") as second:
        opts = mqtt.BrokerOptions(None, hosts=[(mosquitto.host, mosquitto.port), (second.host, second.port)])
        got = []
        c = mqtt.connect(opts, "watcher", subscribe=["t/#"], on_message=lambda cl, u, m: got.append(m.payload),
                         reconnect_max_s=0.5)  # fmt: skip
        try:
            mosquitto.stop()
            pub = mqtt.connect(mqtt.BrokerOptions(second.host, second.port), "pub")
            deadline = time.monotonic() + 30
            while b"after" not in got and time.monotonic() < deadline:
                pub.publish("t/1", b"after", qos=1).wait_for_publish(5)
                time.sleep(0.2)
            mqtt.close(pub)
            assert b"after" in got  # resubscribed on the second broker
        finally:
            mqtt.close(c)
        with pytest.raises(mqtt.BrokerError, match="none of the brokers"):
            mqtt.connect(mqtt.BrokerOptions(None, hosts=[(mosquitto.host, mosquitto.port), ("127.0.0.1", 1)]),
                         timeout=5)  # fmt: skip


# -- a mosquitto pair: the first one killed --------------------------------------------------


def _health_broker(collector, node):
    with collector.lock:
        h = collector.health.get(node) or []
        return h[-1].get("broker") if h else None


@pytest.mark.usefixtures("mpy_tree")
def test_a_sim_fleet_moves_to_the_second_mosquitto_and_loses_nothing(mosquitto, tmp_path):
    from streetnode.common.broker import Broker
    from streetnode.sim.flashimg import FlashImage

    nodes = ["sim-1", "sim-2"]
    with Broker("mosquitto") as second:
        first_seen, second_seen = Collector(mosquitto), Collector(second)
        state = tmp_path / "fleet"
        sim = subprocess.Popen(
            _streetnode() + ["sim", "--nodes", "2", "--interval", "0.3", "--duration", "300", "--state-dir", str(state),
                             "--broker", "%s,%s" % (mosquitto.address, second.address)],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        try:
            first_seen.wait(lambda: all(len(first_seen.seqs(n)) >= 5 for n in nodes), 120, "readings on the first")
            assert not any(second_seen.seqs(n) for n in nodes)  # tried in order: all on the first
            mosquitto.stop()  # the first broker dies
            second_seen.wait(lambda: all(len(second_seen.seqs(n)) >= 10 for n in nodes), 120,
                             "readings on the second after the first died")  # fmt: skip
            second_seen.wait(lambda: all(_health_broker(second_seen, n) == second.address for n in nodes), 60,
                             "health naming the second broker")  # fmt: skip
            with second_seen.lock:
                online = [s for s in second_seen.status.get("sim-1", []) if s.get("state") == "online"]
            assert online and online[-1]["broker"] == second.address
        finally:
            sim.terminate()
            out, _ = sim.communicate(timeout=60)
            first_seen.close()
            second_seen.close()
        assert sim.returncode == 0, out[-3000:]
    for n in nodes:
        last, waiting = _outbox(FlashImage(state / n / "flash.img").pull(tmp_path / (n + "-flash")) / "data")  # the board layout
        received = first_seen.seqs(n) + second_seen.seqs(n)
        assert last >= 15
        assert _lost(last, waiting, received) == [], (n, last, sorted(waiting))


# -- a clustered broker: aedes instances sharing Redis -----------------------------------------


@pytest.fixture
def cluster(tmp_path):
    why = aedes_cluster.missing()
    if why:
        pytest.skip(why)
    with aedes_cluster.AedesCluster(2, tmp_path / "cluster") as c:
        yield c


def _node_cfg(node_id, hosts):
    return {
        "node_id": node_id,
        "board": "unix-sim",
        "interval_s": 0.3,
        "health_every": 5,
        "mqtt": {"hosts": ["%s:%d" % (b.host, b.port) for b in hosts], "keepalive_s": 10},
        "sensors": [{"name": "air", "driver": "bme280", "bus": "i2c0", "address": 0x76}],
        "sim": {"seed": len(node_id)},
    }


def test_nodes_on_a_killed_cluster_instance_move_to_another_and_the_survivor_receives_every_seq(
        cluster, runner, tmp_path):  # fmt: skip
    a, b = cluster.instances
    groups = {"a-1": [a, b], "a-2": [a, b], "b-1": [b, a]}  # two nodes on instance a, one on b
    nodes = {}
    for name, hosts in groups.items():
        nodes[name] = runner(name)
        nodes[name].write_config(_node_cfg(name, hosts))
    survivor = Collector(b)  # on the instance that survives, from the start
    try:
        for r in nodes.values():
            r.start()
        survivor.wait(lambda: all(len(survivor.seqs(n)) >= 5 for n in groups), 120,
                      "readings from every node across the cluster")  # fmt: skip
        assert _health_broker(survivor, "a-1") in (None, a.address)
        a.kill()  # the instance of group a dies (SIGKILL: no goodbye)
        assert a.running is False
        marks = {n: max(survivor.seqs(n)) for n in groups}
        survivor.wait(lambda: all(_health_broker(survivor, n) == b.address for n in groups), 120,
                      "every node's health naming the surviving instance")  # fmt: skip
        survivor.wait(lambda: all(max(survivor.seqs(n)) >= marks[n] + 10 for n in groups), 120,
                      "readings after the failover")  # fmt: skip
        for r in nodes.values():
            r.stop()
            assert "Traceback" not in r.output(), r.output()[-3000:]
    finally:
        survivor.close()
    for n, r in nodes.items():
        last, waiting = _outbox(r.flash_copy(tmp_path / (n + "-flash")))
        assert last >= 15
        assert _lost(last, waiting, survivor.seqs(n)) == [], (n, last, sorted(waiting))
