# The resilience of firmware/mqtt.py's MQTTLink on its own: a scripted backend and a
# VirtualClock, so reconnect schedules, keepalive and dead-broker detection are checked to
# the millisecond without sockets. (The real backends against a real broker:
# host_tests/test_mqtt_link.py.) Runs on CPython and inside MicroPython.

import json
from errno import ECONNREFUSED, ECONNRESET, ETIMEDOUT

from firmware.mqtt import Jitter, MQTTLink, backoff_ms
from hal import clock
from host_tests.device.support import heap_allocated, raises, virtual_clock


class ScriptedBroker:
    """The backend interface of firmware/mqtt.py, answering as told."""

    def __init__(self):
        self.deadline = 0
        self.rx = 0
        self.up = True  # accepts connections
        self.answers = True  # False: a frozen broker (nothing comes back)
        self.session = False
        self.opens = []  # ticks of every open() attempt
        self.ops = []
        self.pings = 0
        self.aborts = 0
        self.closes = 0
        self.retained = {}
        self.published = 0
        self.incoming = []
        self.will = None
        self._on_message = None

    def _need(self):
        if not self.up or not self.session:
            raise OSError(ECONNRESET, "connection lost")
        if not self.answers:
            raise OSError(ETIMEDOUT, "no answer")

    def open(self, server, port, client_id, keepalive_s, clean, will_topic, will_payload, on_message):
        self.opens.append(clock.ticks_ms())
        if not self.up:
            raise OSError(ECONNREFUSED, "refused")
        self.session = True
        self._need()
        self.will = (will_topic, will_payload)
        self.keepalive_s = keepalive_s
        self._on_message = on_message
        self.ops.append("open")
        self.rx += 1

    def publish(self, topic, payload, retain, qos):
        self._need()
        if retain:
            self.retained[topic] = payload
            self.ops.append("retain " + topic)
        self.published += 1
        self.rx += 1

    def subscribe(self, topic, qos):
        self._need()
        self.ops.append("sub %s %d" % (topic, qos))
        self.rx += 1

    def check(self):
        if not self.up or not self.session:
            raise OSError(ECONNRESET, "connection lost")
        while self.incoming and self.answers:
            self.rx += 1
            self._on_message("streetnode/n1/cmd", self.incoming.pop(0))

    def ping(self):
        self.pings += 1
        if self.answers:
            self.rx += 1

    def abort(self):
        self.session = False
        self.aborts += 1

    def close(self):
        self.session = False
        self.closes += 1


def _link(**kw):
    clk = virtual_clock(1000)
    be = ScriptedBroker()
    got = []
    opts = dict(seed=5, backoff_base_ms=1000, backoff_cap_ms=8000, keepalive_s=10, on_cmd=got.append, backend=be)
    opts.update(kw)
    link = MQTTLink("n1", "broker", **opts)
    return link, be, clk, got


def test_connect_subscribes_then_announces_online_with_the_will_set():
    link, be, clk, got = _link(status={"fw": "1.2.0", "boot": 7})
    assert link.connect() is True and link.connected
    assert be.ops == ["open", "sub streetnode/n1/cmd 1", "retain streetnode/n1/status"]
    online = {"state": "online", "fw": "1.2.0", "boot": 7, "broker": "broker:1883", "ts": None}
    assert json.loads(be.retained["streetnode/n1/status"]) == online
    topic, will = be.will
    assert topic == "streetnode/n1/status"
    assert json.loads(will) == dict(online, state="offline")
    assert link.reconnects == 0 and link.failures == 0 and link.delays == []


def test_failed_attempts_follow_the_jittered_exponential_schedule():
    link, be, clk, got = _link()
    be.up = False
    for _ in range(40000):  # 40 s, polled every millisecond
        link.poll()
        clk.advance(1)
    rand = Jitter(5).random
    want = [backoff_ms(k, rand(), 1000, 8000) for k in range(len(be.opens))]
    assert link.delays == want[-16:]
    gaps = [clock.ticks_diff(b, a) for a, b in zip(be.opens, be.opens[1:])]
    assert gaps == want[: len(gaps)]  # each attempt exactly when its delay ran out
    assert be.opens[0] == 1000  # the first attempt at once
    assert link.failures == len(be.opens) and link.reconnects == 0
    assert 6 <= len(be.opens) <= 40  # backing off: not one attempt per poll


def test_publish_while_backing_off_fails_at_once_without_network():
    link, be, clk, got = _link()
    be.up = False
    assert link.publish("data", b"{}") is False
    attempts = len(be.opens)
    wait = link.next_retry_ms()
    assert wait == link.delays[-1]
    if wait > 0:
        assert link.publish("data", b"{}") is False
        assert len(be.opens) == attempts  # not due: no attempt
    clk.advance(wait)
    be.up = True
    assert link.publish("data", b'{"seq": 1}') is True
    assert be.published == 2  # online status + data
    assert link.failures == 0 and link.next_retry_ms() == 0


def test_a_lost_link_is_reconnected_and_counted():
    link, be, clk, got = _link()
    assert link.connect()
    for n in range(1, 4):
        be.abort()  # the broker went away under us
        assert link.publish("data", b"x") is False
        assert not link.connected and link.last_error == ECONNRESET
        assert link.delays[-1] < 1000  # first attempt after a loss: within the base
        clk.advance(link.next_retry_ms())
        link.poll()
        assert link.connected and link.reconnects == n
    assert json.loads(be.retained["streetnode/n1/status"]) == {"state": "online", "broker": "broker:1883", "ts": None}


def test_pings_at_half_the_keepalive_and_a_live_broker_keeps_the_link():
    link, be, clk, got = _link(keepalive_s=10)
    assert link.connect()
    for _ in range(30):  # 30 s in steps of 1 s
        clk.advance(1000)
        link.poll()
    assert be.pings == 6  # every 5 s
    assert link.connected and link.reconnects == 0


def test_a_frozen_broker_is_dropped_after_an_unanswered_ping():
    link, be, clk, got = _link(keepalive_s=10)
    assert link.connect()
    be.answers = False
    down_at = None
    for ms in range(0, 20000, 100):
        clk.advance(100)
        link.poll()
        if not link.connected:
            down_at = ms + 100
            break
    # ping at 5 s, still unanswered 5 s later: dropped at 10 s (not earlier, not much later)
    assert down_at == 10000, down_at
    assert link.last_error == ETIMEDOUT and be.aborts == 1


def test_commands_are_delivered_by_poll_and_a_failing_handler_does_not_break_the_link():
    link, be, clk, got = _link()
    assert link.connect()
    be.incoming = [b'{"id": "1"}', b'{"id": "2"}']
    assert got == []  # nothing is delivered behind the caller's back
    assert link.poll() == 2
    assert got == [b'{"id": "1"}', b'{"id": "2"}']

    def bad(payload):
        raise ValueError("handler bug")

    link.on_cmd = bad
    be.incoming = [b"boom"]
    raises(ValueError, link.poll)
    assert link.connected  # the protocol work was done before the handler ran
    link.on_cmd = got.append
    be.incoming = [b"after"]
    link.poll()
    assert got[-1] == b"after"


def test_commands_beyond_the_inbox_drop_the_oldest_and_count():
    link, be, clk, got = _link()
    assert link.connect()
    be.incoming = [b"%d" % i for i in range(20)]
    link._be.check()  # 20 arrive during one backend call (as during a long publish)
    link.poll()
    assert got == [b"%d" % i for i in range(12, 20)]
    assert link.cmd_dropped == 12


def test_close_announces_offline_and_stays_closed_until_connect():
    link, be, clk, got = _link()
    assert link.connect()
    link.close()
    assert json.loads(be.retained["streetnode/n1/status"]) == {"state": "offline", "broker": "broker:1883", "ts": None}
    assert be.closes == 1 and not link.connected
    clk.advance(100000)
    assert link.poll() == 0 and link.publish("data", b"x") is False
    assert len(be.opens) == 1
    assert link.connect() and link.reconnects == 1


def test_publish_path_allocates_nothing_of_its_own():
    link, be, clk, got = _link()
    assert link.connect()
    payload = b'{"seq": 1}'
    link.publish("data", payload)  # first use builds the topic once
    n = heap_allocated(lambda: link.publish("data", payload), 50)
    assert n is None or n == 0, n  # None on CPython (no gc.mem_alloc)
    assert link.topic("data") is link.topic("data")


def test_bad_options_are_named():
    be = ScriptedBroker()
    for bad in ("", "Node", "a b", "x" * 33, "sim_1", 7):
        e = raises(ValueError, MQTTLink, bad, "h", backend=be)
        assert repr(bad) in str(e)
    raises(ValueError, MQTTLink, "n1", "h", prefix="a/#", backend=be)
    raises(ValueError, MQTTLink, "n1", "h", keepalive_s=1, backend=be)
    raises(ValueError, MQTTLink, "n1", "h", timeout_s=0, backend=be)
    raises(ValueError, MQTTLink, "n1", "h", backoff_base_ms=5000, backoff_cap_ms=1000, backend=be)
    e = raises(ValueError, MQTTLink, "n1", "h", ca_der=b"-----BEGIN CERTIFICATE-----", backend=be)
    assert "PEM" in str(e)
    assert MQTTLink("n1", "h", ca_der=b"\x30\x82", backend=be).port == 8883
    assert MQTTLink("sim-32", "h", backend=be).port == 1883
