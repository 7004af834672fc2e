# An idle node waits for its next due event instead of napping (issue 12), and drains a
# backlog with several QoS 1 publishes in flight: the whole node (firmware/node.py) with
# a virtual clock and a scripted broker behind the real MQTTLink, so every wait and every
# packet is seen to the millisecond. (With a real broker and interpreter:
# host_tests/test_node.py; the figures: python -m streetnode.bench.idle.)

import json

from firmware.mqtt import MQTTLink
from firmware.node import Node, next_wait_ms
from hal import clock
from host_tests.device.scratch import remove_tree, scratch_dir
from host_tests.device.support import virtual_clock

START = 5000


class ScriptedBroker:
    """The backend interface of firmware/mqtt.py. PUBACKs of send() wait in the "network"
    until check() reads them (up to `ack_batch` per check); commands arrive at set ticks."""

    def __init__(self):
        self.opened = None
        self.deadline = 0
        self.rx = 0
        self.on_puback = None
        self.up = True
        self.arrivals = []  # [tick, payload] commands the broker sends, in tick order
        self.waits = []  # (tick, ms) of every wait() that waited
        self.published = []  # (tick, topic, payload, how)
        self.pings = 0
        self.ack_batch = 1000
        self.send_ms = 0  # virtual time each send() takes (a slow link)
        self.max_in_flight = 0
        self._wire = []  # PUBACK packet ids sent by the broker, not yet read
        self._pid = 0
        self._on_message = None

    def open(self, server, port, client_id, keepalive_s, clean, will_topic, will_payload, on_message):
        if not self.up:
            raise OSError(111, "refused")
        self._on_message = on_message
        self.opened = clock.ticks_ms()
        self.rx += 1

    def _need(self):
        if not self.up:
            raise OSError(104, "connection lost")

    def publish(self, topic, payload, retain, qos):
        self._need()
        self.published.append((clock.ticks_ms(), topic, payload, "publish"))
        self.rx += qos

    def send(self, topic, payload, retain=False):
        self._need()
        self._pid += 1
        clock.sleep_ms(self.send_ms)
        self.published.append((clock.ticks_ms(), topic, payload, "send"))
        self._wire.append(self._pid)
        self.max_in_flight = max(self.max_in_flight, len(self._wire))
        return self._pid

    def subscribe(self, topic, qos):
        self._need()
        self.rx += 1

    def check(self):
        self._need()
        n = 0
        while self._wire and n < self.ack_batch:
            self.rx += 1
            n += 1
            self.on_puback(self._wire.pop(0))
        now = clock.ticks_ms()
        while self.arrivals and clock.ticks_diff(now, self.arrivals[0][0]) >= 0:
            self.rx += 1
            self._on_message("streetnode/n1/cmd", self.arrivals.pop(0)[1])

    def wait(self, ms):
        self._need()
        if self._wire:
            return  # PUBACKs are waiting on the socket: no wait at all
        now = clock.ticks_ms()
        self.waits.append((now, ms))
        if self.arrivals:
            d = clock.ticks_diff(self.arrivals[0][0], now)
            if d < ms:
                ms = d if d > 0 else 0
        clock.sleep_ms(ms)  # the virtual clock moves: to the arrival or by ms

    def ping(self):
        self._need()
        self.pings += 1
        self.rx += 1

    def abort(self):
        self._wire = []

    def close(self):
        self._wire = []

    def topics(self, sub):
        return [p for p in self.published if p[1].endswith("/" + sub)]


def _node(interval_s=60, keepalive_s=30, health_every=5):
    virtual_clock(START)
    d = scratch_dir("idle")
    cfg = {
        "node_id": "n1",
        "board": "unix-sim",
        "interval_s": interval_s,
        "health_every": health_every,
        "mqtt": {"host": "broker.invalid", "keepalive_s": keepalive_s},
        "sensors": [{"name": "air", "driver": "bme280", "bus": "i2c0", "address": 0x76}],
    }
    with open(d + "/config.json", "w") as f:
        f.write(json.dumps(cfg))
    be = ScriptedBroker()
    link = MQTTLink("n1", "broker.invalid", keepalive_s=keepalive_s, seed=3, backend=be)
    node = Node(d, link=link, cause="power_on").boot()
    return node, be, d


def _run_until(node, end_ms, at=None):
    """node.run() until the virtual clock reaches end_ms; at = (tick, fn): fn() once then."""
    passes = [0]

    def stop():
        passes[0] += 1
        now = clock.ticks_ms()
        if at is not None and passes[0] > 0 and clock.ticks_diff(now, at[0]) >= 0 and at[1] is not None:
            at[1]()
            at[1] = None
        return clock.ticks_diff(now, end_ms) >= 0

    node.run(stop)
    return passes[0]


def test_next_wait_ms_is_the_soonest_due_event():
    assert next_wait_ms([None, 60000, 15000, None]) == 15000
    assert next_wait_ms([250, 60000, 15000]) == 250
    assert next_wait_ms([None, None]) is None  # nothing due at all
    assert next_wait_ms([None, None], 30000) == 30000  # the watchdog's cap
    assert next_wait_ms([60000, 45000], 30000) == 30000
    assert next_wait_ms([60000, 5000], 30000) == 5000
    assert next_wait_ms([-12, 400]) == 0  # overdue: at once, never a negative wait
    assert next_wait_ms([0, 400]) == 0


def test_an_idle_node_waits_in_the_link_until_its_next_due_event():
    node, be, d = _node(interval_s=60, keepalive_s=30)
    try:
        node.step()  # boot pass: connect, first cycle, health
        node.step()
        now = clock.ticks_ms()
        # Sampling at START + 60 s, the link's ping at half the keepalive after connecting.
        opened = be.opened
        assert node.wait_ms(now) == clock.ticks_diff(opened + 15000, now) < clock.ticks_diff(START + 60000, now)
        _run_until(node, START + 61000)
        entered = [w for w in be.waits if w[1] > 0]
        assert len(entered) >= 4, be.waits
        for t, ms in entered:  # every wait ends exactly when a ping or a cycle is due
            assert (t + ms - opened) % 15000 == 0 or (t + ms - START) % 60000 == 0, (t, ms)
    finally:
        remove_tree(d)


def test_an_idle_node_does_not_spin():
    node, be, d = _node(interval_s=60, keepalive_s=30, health_every=5)
    try:
        passes = _run_until(node, START + 10 * 60000)
        # A minute holds one cycle (sample, publish), four pings and a health every five
        # cycles: a handful of passes. Napping 50 ms, it was 1,200.
        assert passes <= 10 * 8, passes
        assert len(be.topics("data")) == 10
        assert be.pings >= 38
        assert node.step_errors == 0
    finally:
        remove_tree(d)


def test_a_command_to_an_idle_node_is_answered_when_it_arrives():
    node, be, d = _node(interval_s=3600, keepalive_s=600)
    try:
        node.step()
        arrive = START + 37123
        be.arrivals.append([arrive, b'{"id": "c1", "cmd": "identify", "args": {"seconds": 1}}'])
        _run_until(node, START + 40000)
        results = be.topics("cmd/result")
        assert len(results) == 1, be.published
        t, topic, payload, how = results[0]
        assert t == arrive  # the wait returned when it arrived, not at the next ping
        assert json.loads(payload)["ok"] is True
        # Blinking for a second: woken for each LED change, then idle again.
        blink = [w for w in be.waits if arrive <= w[0] < arrive + 1000]
        assert 3 <= len(blink) <= 6, blink
    finally:
        remove_tree(d)


def test_a_command_that_finds_no_heap_is_refused_with_its_id_and_the_next_one_runs():
    import firmware.node as node_module

    node, be, d = _node(interval_s=3600, keepalive_s=600)
    real_load = node_module._load
    full = [True]

    def load(name):  # the heap is too full to load the commands module once
        if name == "commands" and full[0]:
            full[0] = False
            raise MemoryError("memory allocation failed, allocating 1536 bytes")
        return real_load(name)

    node_module._load = load
    try:
        node.step()
        be.arrivals.append([START + 1000, b'{"id": "c1", "cmd": "identify", "args": {"seconds": 1}}'])
        be.arrivals.append([START + 5000, b'{"id": "c2", "cmd": "identify", "args": {"seconds": 1}}'])
        _run_until(node, START + 9000)
        results = [json.loads(p[2]) for p in be.topics("cmd/result")]
        assert results == [{"id": "c1", "ok": False, "error": "out of memory: send it again"},
                           {"id": "c2", "ok": True}], results
        assert node.step_errors == 0  # answered, not a failed step
        assert [l for l in node.logs.last() if l.endswith("cmd refused: out of memory: send it again")], node.logs.last()
    finally:
        node_module._load = real_load
        remove_tree(d)


def test_backlog_drains_with_publishes_in_flight_and_fresh_readings_first():
    node, be, d = _node(interval_s=1, keepalive_s=600, health_every=1000)
    try:
        be.up = False
        be.ack_batch = 3  # PUBACKs read a few at a time
        be.send_ms = 40  # the drain outlasts a sampling interval
        backlog = []

        def broker_back():
            backlog.append(node.outbox.pending())
            be.up = True

        _run_until(node, START + 160000, [START + 40500, broker_back])
        assert backlog[0] >= 40  # 40 cycles committed while the broker was away
        data = be.topics("data")
        seqs = [json.loads(p[2])["seq"] for p in data]
        assert sorted(set(seqs)) == list(range(1, node.outbox.last_seq + 1))
        assert node.outbox.pending() == 0
        assert 1 < be.max_in_flight <= 16
        sent = [json.loads(p[2])["seq"] for p in data if p[3] == "send"]
        assert sent[:20] == list(range(1, 21))  # the backlog oldest first
        # A cycle that came due during the drain went out at once, ahead of older records.
        fresh = [json.loads(p[2])["seq"] for p in data if p[3] == "publish"]
        assert fresh and fresh[0] > sent[0]
    finally:
        remove_tree(d)
