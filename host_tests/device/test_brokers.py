# Broker failover without sockets: mqtt.hosts in the node's config (firmware/config/schema.py)
# and MQTTLink's host rotation (firmware/mqtt.py) on a scripted backend and a VirtualClock.
# (Real brokers: host_tests/test_failover.py, two mosquittos and an aedes cluster.) Runs on
# CPython and inside MicroPython.

import json
from errno import ECONNREFUSED

from firmware import config
from firmware.config import ConfigError
from firmware.mqtt import MQTTLink, broker_list
from hal import clock
from host_tests.device.support import message, raises, virtual_clock
from host_tests.device.test_mqtt_logic import ScriptedBroker


class Brokers(ScriptedBroker):
    """Several brokers behind one scripted backend: `down` holds the (host, port) that refuse."""

    def __init__(self):
        super().__init__()
        self.down = set()
        self.tried = []  # (host, port) of every open(), in order
        self.at = None  # the broker of the current session

    def open(self, server, port, *args):
        self.tried.append((server, port))
        self.up = (server, port) not in self.down
        self.at = (server, port)
        super().open(server, port, *args)

    def kill(self, host_port):
        """That broker dies: refuses from now on, and a session on it is gone."""
        self.down.add(host_port)
        if self.at == host_port:
            self.up = False


HOSTS = [("a.city", 1883), ("b.city", 1884), ("c.city", 1885)]


def _link(hosts=HOSTS, **kw):
    clk = virtual_clock(1000)
    be = Brokers()
    opts = dict(seed=5, backoff_base_ms=1000, backoff_cap_ms=8000, keepalive_s=10, backend=be)
    opts.update(kw)
    return MQTTLink("n1", hosts, **opts), be, clk


def _until_connected(link, clk, limit_ms=120000):
    for _ in range(limit_ms):
        link.poll()
        if link.connected:
            return
        clk.advance(1)
    raise AssertionError("no connection within %d ms" % limit_ms)


# -- the link -------------------------------------------------------------------------------


def test_the_first_broker_is_tried_first_and_named_in_the_online_status():
    link, be, clk = _link()
    assert link.connect()
    assert be.tried == [("a.city", 1883)]
    assert link.broker == "a.city:1883" and (link.server, link.port) == ("a.city", 1883)
    assert json.loads(be.retained["streetnode/n1/status"]) == {"state": "online", "broker": "a.city:1883", "ts": None}
    assert json.loads(be.will[1]) == {"state": "offline", "broker": "a.city:1883", "ts": None}


def test_a_dead_first_broker_costs_one_short_delay_then_the_second_one():
    link, be, clk = _link()
    be.kill(("a.city", 1883))
    assert not link.connect() and link.last_error == ECONNREFUSED
    assert link.broker == "b.city:1884"  # the next attempt goes there
    assert link.delays[-1] < 1000  # within the backoff's base: the first round of the list
    _until_connected(link, clk)
    assert be.tried == [("a.city", 1883), ("b.city", 1884)]
    assert link.broker == "b.city:1884" and link.failures == 0
    assert json.loads(be.retained["streetnode/n1/status"])["broker"] == "b.city:1884"


def test_a_node_that_loses_its_broker_goes_on_to_the_next_and_stays_there():
    link, be, clk = _link()
    assert link.connect()
    be.kill(("a.city", 1883))
    assert link.publish("data", b'{"seq": 1}') is False  # the session on a.city is gone
    assert not link.connected and link.broker == "b.city:1884"
    assert link.delays[-1] < 1000  # jittered within the base: a fleet does not arrive at once
    _until_connected(link, clk)
    assert link.broker == "b.city:1884" and link.reconnects == 1
    be.down.clear()  # a.city is back: the node stays where it is until that one fails
    for _ in range(60):
        clk.advance(1000)
        link.poll()
    assert link.connected and be.tried == [("a.city", 1883), ("b.city", 1884)]
    be.kill(("b.city", 1884))
    link.poll()
    _until_connected(link, clk)
    assert link.broker == "c.city:1885" and link.reconnects == 2
    be.kill(("c.city", 1885))
    link.poll()
    _until_connected(link, clk)
    assert link.broker == "a.city:1883"  # the list wraps round
    assert be.tried == [("a.city", 1883), ("b.city", 1884), ("c.city", 1885), ("a.city", 1883)]


def test_with_every_broker_down_the_list_is_tried_in_turn_and_the_backoff_grows_per_round():
    link, be, clk = _link()
    for h in HOSTS:
        be.kill(h)
    for _ in range(60000):  # 60 s, polled every millisecond
        link.poll()
        clk.advance(1)
    n = len(be.tried)
    assert be.tried == [HOSTS[i % 3] for i in range(n)]  # in order, round after round
    assert 9 <= n <= 60  # backing off: not one attempt per poll
    # attempt k waits within the envelope of its round k // 3: 1 s, 2 s, 4 s, then the 8 s cap
    for k in range(len(link.delays)):
        assert 0 <= link.delays[k] < 8000
    gaps = [clock.ticks_diff(b, a) for a, b in zip(be.opens, be.opens[1:])]
    for k in range(len(gaps)):
        assert gaps[k] < min(8000, 1000 << (k // 3)), (k, gaps)
    be.down.clear()
    be.up = True
    _until_connected(link, clk)
    assert link.failures == 0


def test_one_host_behaves_as_before():
    link, be, clk = _link("broker.local", port=1999)
    assert link.hosts == [("broker.local", 1999)]
    be.kill(("broker.local", 1999))
    for _ in range(5000):
        link.poll()
        clk.advance(1)
    assert set(be.tried) == {("broker.local", 1999)} and len(be.tried) >= 2
    assert link.broker == "broker.local:1999"


def test_broker_list_fills_ports_and_names_a_bad_entry():
    assert broker_list("h", None, 1883) == [("h", 1883)]
    assert broker_list("h", 1999, 1883) == [("h", 1999)]
    assert broker_list([("a", None), ("b", 2000), "c"], None, 8883) == [("a", 8883), ("b", 2000), ("c", 8883)]
    for bad in ([], [("", 1883)], [("a", 0)], [("a", 70000)], [("a", "1883")], [(None, 1883)]):
        raises(ValueError, broker_list, bad, None, 1883)
    e = raises(ValueError, MQTTLink, "n1", [("a", 1883), ("b", -1)], backend=Brokers())
    assert "-1" in str(e)
    tls = MQTTLink("n1", [("a", None), ("b", 9000)], ca_der=b"\x30\x82", backend=Brokers())
    assert tls.hosts == [("a", 8883), ("b", 9000)]  # the TLS port where none is given


def test_an_ipv6_broker_is_named_with_brackets():
    link, be, clk = _link([("::1", 1883), ("b.city", 1883)])
    assert link.broker == "[::1]:1883"


# -- mqtt.hosts in the node's config ------------------------------------------------------


def _cfg(mqtt):
    return {"node_id": "lamp-1", "board": "unix-sim", "mqtt": mqtt}


def _mqtt(mqtt):
    return config.validate(_cfg(mqtt))["mqtt"]


def test_hosts_as_objects_or_strings_become_objects_with_ports():
    m = _mqtt({"hosts": [{"host": "a.city"}, {"host": "b.city", "port": 1884}, "c.city:1885", "d.city", "[::1]:1886",
                         "[fd00::2]", "10.0.0.7:1887"]})  # fmt: skip
    assert m["hosts"] == [
        {"host": "a.city", "port": 1883},
        {"host": "b.city", "port": 1884},
        {"host": "c.city", "port": 1885},
        {"host": "d.city", "port": 1883},
        {"host": "::1", "port": 1886},
        {"host": "fd00::2", "port": 1883},
        {"host": "10.0.0.7", "port": 1887},
    ]
    assert (m["host"], m["port"]) == ("a.city", 1883)  # host and port: the first broker
    assert _mqtt({"hosts": ["a", "b:1"], "port": 2000})["hosts"] == [{"host": "a", "port": 2000},
                                                                      {"host": "b", "port": 1}]  # fmt: skip
    tls = _mqtt({"hosts": ["a", "b"], "tls": True, "ca": "ca.der"})
    assert tls["hosts"] == [{"host": "a", "port": 8883}, {"host": "b", "port": 8883}]


def test_mqtt_host_and_port_are_a_list_of_one_and_validation_is_idempotent():
    one = config.validate(_cfg({"host": "mqtt.city", "port": 1999}))
    assert one["mqtt"]["hosts"] == [{"host": "mqtt.city", "port": 1999}]
    assert (one["mqtt"]["host"], one["mqtt"]["port"]) == ("mqtt.city", 1999)
    assert config.validate(one) == one
    many = config.validate(_cfg({"hosts": ["a:1", "b:2"]}))
    assert config.validate(many) == many
    # host and port given with hosts: they must be its first entry
    assert _mqtt({"host": "a", "port": 1, "hosts": ["a:1", "b:2"]}) == many["mqtt"]


def test_bad_hosts_get_an_error_that_names_the_entry():
    cases = [
        ({"hosts": []}, "mqtt.hosts: must be a list of 1 to 8 brokers, not 0"),
        ({"hosts": "a:1,b:2"}, 'mqtt.hosts: must be a list of 1 to 8 brokers, not "a:1,b:2"'),
        ({"hosts": ["h%d" % i for i in range(9)]}, "mqtt.hosts: must be a list of 1 to 8 brokers, not 9"),
        ({"hosts": ["a", 7]}, 'mqtt.hosts[1]: must be {"host": ..., "port": ...} or "host:port", not 7'),
        ({"hosts": ["a", "b:x"]}, 'mqtt.hosts[1]: must end in a port from 1 to 65535 after the colon, not "b:x"'),
        ({"hosts": ["b:0"]}, "mqtt.hosts[0]: must end in a port from 1 to 65535"),
        ({"hosts": ["b:"]}, "mqtt.hosts[0]: must end in a port from 1 to 65535"),
        ({"hosts": [":1883"]}, "mqtt.hosts[0]: must be a string of 1 to 253 characters"),
        ({"hosts": ["a b:1"]}, "mqtt.hosts[0]: must be 1 to 253 characters of a host name or IP address"),
        ({"hosts": ["[::1"]}, "mqtt.hosts[0]: must be \"[IPv6 address]:port\" with the brackets closed"),
        ({"hosts": [{"host": "a", "port": 70000}]}, "mqtt.hosts[0].port: must be an integer from 1 to 65535"),
        ({"hosts": [{"port": 1}]}, "mqtt.hosts[0].host: required"),
        ({"hosts": [{"host": "a", "prot": 1}]}, 'mqtt.hosts[0].prot: unknown key (did you mean "port"?)'),
        ({"hosts": ["a:1", {"host": "a", "port": 1}]}, "mqtt.hosts[1]: a:1 is already mqtt.hosts[0]"),
        ({"host": "x", "hosts": ["a", "b"]}, 'mqtt.host: is "x" but mqtt.hosts starts with "a"'),
        ({"host": "a", "port": 2, "hosts": ["a:1"]}, "mqtt.port: is 2 but mqtt.hosts starts with port 1"),
        ({"port": 1}, "mqtt.host: required (or mqtt.hosts, a list of brokers)"),
    ]
    for mqtt, want in cases:
        got = message(raises(ConfigError, config.validate, _cfg(mqtt)))
        assert got.startswith(want), (mqtt, got)


def test_a_patch_sets_one_spelling_of_the_brokers_and_drops_the_other():
    one = config.validate(_cfg({"host": "old.city"}))
    many = config.patch(one, {"mqtt": {"hosts": ["a.city:1", "b.city:2"]}})  # no nulls needed
    assert many["mqtt"]["hosts"] == [{"host": "a.city", "port": 1}, {"host": "b.city", "port": 2}]
    assert many["mqtt"]["host"] == "a.city"
    back = config.patch(many, {"mqtt": {"host": "new.city"}})
    assert back["mqtt"]["hosts"] == [{"host": "new.city", "port": 1}]  # the port stays as it was
    assert config.patch(one, {"mqtt": {"port": 1999}})["mqtt"]["hosts"] == [{"host": "old.city", "port": 1999}]
    e = raises(ConfigError, config.patch, many, {"mqtt": {"port": 1999}})
    assert message(e).startswith("mqtt.port: is 1999 but mqtt.hosts starts with port 1"), message(e)
    assert config.patch(many, {"interval_s": 30})["mqtt"] == many["mqtt"]  # neighbours leave it alone
