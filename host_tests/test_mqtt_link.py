"""firmware/mqtt.py against a real broker, inside the real MicroPython interpreter (umqtt.simple,
the pinned release) and on CPython (paho-mqtt): the same test for both backends.

The link runs in its own process (host_tests/mqtt_agent.py), driven line by line, so that
the test can SIGKILL it, stop and restart the broker under it, or freeze the broker
(SIGSTOP) to play a dead one. An observer in this process (the host tools' client,
streetnode.common.mqtt) sees what the broker delivers. Every wait is bounded; nothing here asserts on durations.
"""

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from types import SimpleNamespace
from pathlib import Path

import pytest

from firmware import mqtt
from host_tests import pki
from streetnode.common import mpy
from streetnode.common import mqtt as host_mqtt
from streetnode.common.broker import Broker, free_port

REPO = Path(__file__).resolve().parents[1]
AGENT = Path(__file__).with_name("mqtt_agent.py")
INTERPRETERS = ["micropython", "cpython"]
ETIMEDOUT = 110


class Agent:
    """One link in its own interpreter process."""

    def __init__(self, interp, device_lib, broker, node="sim-1", **opts):
        opts = dict(node_id=node, server=broker.host, port=broker.port, **opts)
        opts.setdefault("timeout_s", 1)
        opts.setdefault("seed", 7)
        env = dict(os.environ)
        if interp == "micropython":
            cmd = [mpy.executable(), str(AGENT)]
            env["MICROPYPATH"] = "%s:%s:.frozen" % (device_lib, REPO)
        else:
            cmd = [sys.executable, str(AGENT)]
            env["PYTHONPATH"] = str(REPO)
        self.interp = interp
        self.node = node
        self.proc = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.proc.stdin.write(json.dumps(opts) + "\n")
        self.proc.stdin.flush()
        self._lines = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        first = self._read(20)
        assert first["backend"] == ("umqtt" if interp == "micropython" else "paho"), first

    def _pump(self):
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _read(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                if self.interp == "cpython" and self.proc.poll() is None:
                    self.proc.send_signal(signal.SIGUSR1)  # faulthandler: where it hangs
                    time.sleep(0.5)
                self.kill()
                pytest.fail("%s agent gave no answer within %s s (hung?)\n%s" % (self.interp, timeout, self.stderr()))
            if line is None:
                pytest.fail("%s agent exited (%s)\n%s" % (self.interp, self.proc.wait(), self.stderr()))
            if line.startswith("@@ "):
                return json.loads(line[3:])

    def stderr(self):
        if self.proc.poll() is None:
            return ""
        return self.proc.stderr.read()[-3000:]

    def call(self, line, timeout=None):
        if timeout is None:  # a safety net against hangs, generous for a loaded machine
            words = line.split()
            timeout = 20 + (int(words[-1]) / 1000 if words[0] in ("until", "poll") else 0)
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self._read(timeout)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.kill()


class Observer:
    """The host tools' MQTT client in the test process, recording everything under `streetnode/#`
    (subscribed, SUBACK in, before it returns)."""

    def __init__(self, broker, topic="streetnode/#"):
        self.msgs = queue.Queue()
        self.seen = []
        self.client = host_mqtt.connect(host_mqtt.BrokerOptions(broker.host, broker.port), "observer-" + uuid.uuid4().hex[:8],
                                        on_message=lambda c_, u, m: self.msgs.put((m.topic, m.payload, m.retain)),
                                        subscribe=[topic])  # fmt: skip

    def wait_for(self, topic, pred=lambda p: True, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                t, payload, retain = self.msgs.get(timeout=0.05)
            except queue.Empty:
                continue
            self.seen.append((t, payload, retain))
            if t == topic and pred(payload):
                return payload, retain
        raise AssertionError("no matching message on %s within %s s; saw %r" % (topic, timeout, self.seen[-10:]))

    def publish(self, topic, payload):
        self.client.publish(topic, payload, qos=1).wait_for_publish(5)

    def close(self):
        self.client.disconnect()  # wakes the network thread at once
        self.client.loop_stop()


@pytest.fixture
def agents():
    started = []
    yield started
    for a in started:
        a.close()


@pytest.fixture
def observers():
    started = []
    yield started
    for o in started:
        o.close()


def start(agents, *args, **kw):
    a = Agent(*args, **kw)
    agents.append(a)
    return a


def observe(observers, broker):
    o = Observer(broker)
    observers.append(o)
    return o


def state_of(payload):
    """The status payload without its "broker" (host:port of the broker in use, checked here)."""
    d = json.loads(payload)
    assert ":" in d.pop("broker"), d
    return d


def expected_delays(seed, outages, base_ms, cap_ms):
    """The delays the link must have scheduled: `outages` = attempts per outage, in order."""
    rand = mqtt.Jitter(seed).random
    out = []
    for n in outages:
        out.append([mqtt.backoff_ms(k, rand(), base_ms, cap_ms) for k in range(n)])
    return out


# -- connection, status, last will --------------------------------------------------------------


@pytest.mark.parametrize("interp", INTERPRETERS)
def test_online_status_is_retained_and_qos1_publish_is_acked(interp, mosquitto, device_lib, agents, observers):
    a = start(agents, interp, device_lib, mosquitto, status={"fw": "0.1.0", "boot": 3, "reset": "power"})
    r = a.call("connect")
    assert r["ok"] and r["state"]["connected"]
    late = observe(observers, mosquitto)  # subscribes after the fact: sees the retained status
    payload, retained = late.wait_for("streetnode/sim-1/status")
    assert retained
    assert state_of(payload) == {"state": "online", "fw": "0.1.0", "boot": 3, "reset": "power", "ts": None}
    r = a.call('pub data 1 0 {"seq": 1}')
    assert r["ok"] is True
    payload, retained = late.wait_for("streetnode/sim-1/data")
    assert json.loads(payload) == {"seq": 1} and not retained


@pytest.mark.parametrize("interp", INTERPRETERS)
def test_last_will_offline_when_the_node_is_killed(interp, mosquitto, device_lib, agents, observers):
    a = start(agents, interp, device_lib, mosquitto, status={"fw": "0.1.0"})
    assert a.call("connect")["ok"]
    o = observe(observers, mosquitto)
    o.wait_for("streetnode/sim-1/status", lambda p: state_of(p)["state"] == "online")
    a.kill()  # SIGKILL: no DISCONNECT, the broker sees the socket close
    payload, _ = o.wait_for("streetnode/sim-1/status", lambda p: state_of(p)["state"] == "offline")
    assert state_of(payload) == {"state": "offline", "fw": "0.1.0", "ts": None}
    late = observe(observers, mosquitto)
    payload, retained = late.wait_for("streetnode/sim-1/status")
    assert retained and state_of(payload)["state"] == "offline"


@pytest.mark.parametrize("interp", INTERPRETERS)
def test_clean_close_leaves_offline_retained(interp, mosquitto, device_lib, agents, observers):
    a = start(agents, interp, device_lib, mosquitto)
    assert a.call("connect")["ok"]
    assert a.call("close")["ok"]
    late = observe(observers, mosquitto)
    payload, retained = late.wait_for("streetnode/sim-1/status")
    assert retained and state_of(payload)["state"] == "offline"
    assert a.call("poll 200")["state"]["connected"] is False  # closed: no reconnect behind our back


# -- QoS 1 only with PUBACK, dead broker ------------------------------------------------------


@pytest.mark.parametrize("interp", INTERPRETERS)
def test_a_dead_broker_is_detected_and_publish_is_false_without_puback(interp, mosquitto, device_lib, agents):
    a = start(agents, interp, device_lib, mosquitto, keepalive_s=2, backoff_base_ms=100, backoff_cap_ms=400)
    assert a.call("connect")["ok"]
    r = a.call("poll 1300")  # idle across a ping (every 1 s): answered, the link stays up
    assert r["state"]["connected"] and r["state"]["reconnects"] == 0 and r["state"]["delays"] == []

    # Keepalive: a frozen broker (socket open, nothing answers) fails its next ping within 1 s.
    mosquitto.pause()
    try:
        r = a.call("until down 8000")
        assert r["ok"], r
        assert r["state"]["last_error"] == ETIMEDOUT
    finally:
        mosquitto.resume()
    r = a.call("until connected 8000")
    assert r["ok"] and r["state"]["reconnects"] == 1

    # QoS 1: no PUBACK, no True; the call returns after timeout_s=1, whatever the broker does.
    mosquitto.pause()
    try:
        r = a.call("pub data 1 0 frozen")
        assert r["ok"] is False
        assert r["state"]["connected"] is False and r["state"]["last_error"] == ETIMEDOUT
    finally:
        mosquitto.resume()
    r = a.call("until connected 8000")
    assert r["ok"] and r["state"]["reconnects"] == 2
    assert a.call("pub data 1 0 thawed")["ok"] is True


# -- commands -----------------------------------------------------------------------------------


@pytest.mark.parametrize("interp", INTERPRETERS)
def test_cmd_subscription_delivers_and_survives_a_reconnect(interp, mosquitto, device_lib, agents, observers):
    a = start(agents, interp, device_lib, mosquitto, backoff_base_ms=100, backoff_cap_ms=400)
    assert a.call("connect")["ok"]
    o = observe(observers, mosquitto)
    o.publish("streetnode/sim-1/cmd", b'{"id": "1", "cmd": "identify", "args": {}}')
    o.publish("streetnode/sim-2/cmd", b'{"id": "x", "cmd": "reboot", "args": {}}')  # another node's
    r = a.call("poll 300")
    assert [json.loads(c)["id"] for c in r["cmds"]] == ["1"]

    mosquitto.restart()  # no persistence: the subscription exists only if the link renews it
    r = a.call("until connected 8000")
    assert r["ok"] and r["state"]["reconnects"] == 1
    o2 = observe(observers, mosquitto)
    o2.publish("streetnode/sim-1/cmd", b'{"id": "2", "cmd": "health", "args": {}}')
    r = a.call("poll 300")
    assert [json.loads(c)["id"] for c in r["cmds"]] == ["2"]


# -- outages: backoff, clean failures, reconnects ------------------------------------------------


@pytest.mark.parametrize("interp", INTERPRETERS)
def test_broker_restarts_back_off_exponentially_with_jitter(interp, mosquitto, device_lib, agents, observers):
    base, cap, seed, attempts = 50, 200, 11, 5
    a = start(agents, interp, device_lib, mosquitto, backoff_base_ms=base, backoff_cap_ms=cap, seed=seed)
    assert a.call("connect")["ok"]
    per_outage = []
    for outage in range(3):
        mosquitto.stop()
        r = a.call("pub data 1 0 lost")  # the broker is gone: False, at once or after the timeout
        assert r["ok"] is False and r["state"]["connected"] is False
        r = a.call("until failures=%d 10000" % attempts)
        assert r["ok"], r
        r = a.call("pub data 1 0 still-down")  # backing off: refused without touching the network
        assert r["ok"] is False
        mosquitto.start()
        r = a.call("until connected 10000")
        assert r["ok"], r
        assert r["state"]["reconnects"] == outage + 1
        per_outage.append(r["state"]["delays"])
        a.call("clear")
        assert a.call('pub data 1 0 {"back": %d}' % outage)["ok"] is True

    # Each outage starts again at the base; the envelope doubles per failed attempt up to the cap;
    # the jitter is the seeded sequence, continued across outages: the exact delays are known.
    want = expected_delays(seed, [len(d) for d in per_outage], base, cap)
    assert per_outage == want
    for delays in per_outage:
        assert len(delays) >= attempts  # one after the loss, then one per failed attempt
        for k, d in enumerate(delays):
            assert 0 <= d < min(cap, base << k)
    flat = [d for delays in per_outage for d in delays]
    assert len(set(flat)) > len(flat) // 2  # jittered, not a fixed schedule
    o = observe(observers, mosquitto)
    payload, retained = o.wait_for("streetnode/sim-1/status")
    assert retained and state_of(payload)["state"] == "online"


@pytest.mark.parametrize("interp", INTERPRETERS)
def test_connection_refused_never_hangs_and_counts_failures(interp, device_lib, agents):
    nowhere = SimpleNamespace(host="127.0.0.1", port=free_port())  # nothing listens there
    a = start(agents, interp, device_lib, nowhere, backoff_base_ms=50, backoff_cap_ms=200)
    r = a.call("connect")
    assert r["ok"] is False and r["state"]["failures"] == 1 and r["state"]["reconnects"] == 0
    r = a.call("until failures=4 5000")
    assert r["ok"] and not r["state"]["connected"]


@pytest.mark.parametrize("interp", INTERPRETERS)
def test_a_silent_server_times_out_connect_and_connack(interp, device_lib, agents):
    # Two loopback servers that never accept(): one with a full backlog (the kernel drops our
    # SYN: TCP connect itself hangs) and one that completes TCP but never sends a CONNACK.
    full = socket.socket()
    full.bind(("127.0.0.1", 0))
    full.listen(0)
    fillers = []
    for _ in range(4):
        f = socket.socket()
        f.setblocking(False)
        f.connect_ex(full.getsockname())
        fillers.append(f)
    mute = socket.socket()
    mute.bind(("127.0.0.1", 0))
    mute.listen(8)
    try:
        for srv in (full, mute):
            where = SimpleNamespace(host="127.0.0.1", port=srv.getsockname()[1])
            a = start(agents, interp, device_lib, where, backoff_base_ms=50, backoff_cap_ms=100)
            r = a.call("connect")  # the agent call would fail the test if this hung
            assert r["ok"] is False and r["state"]["last_error"] == ETIMEDOUT, r
    finally:
        for s_ in fillers + [full, mute]:
            s_.close()


def test_umqtt_packet_id_wraps_around(mosquitto, device_lib, agents):
    # umqtt.simple 1.3.4 counts packet ids without wrapping at 65535; after 65535 QoS 1 messages
    # on one connection every publish would wait for a PUBACK that cannot match. The backend wraps.
    a = start(agents, "micropython", device_lib, mosquitto)
    assert a.call("connect")["ok"]
    assert a.call("pid 65533")["ok"]
    for i in range(4):
        assert a.call("pub data 1 0 n%d" % i)["ok"] is True


# -- TLS ----------------------------------------------------------------------------------------


@pytest.fixture
def tls_broker(tmp_path):
    with pki.tls_broker(tmp_path) as found:
        yield found


@pytest.mark.parametrize("interp", INTERPRETERS)
def test_tls_with_a_der_ca_verifies_the_broker(interp, tls_broker, device_lib, agents):
    b, ca_der, other_der = tls_broker
    good = start(
        agents, interp, device_lib, b, ca_der_hex=ca_der.hex(), server_hostname="localhost", node="tls-ok", keepalive_s=2
    )
    r = good.call("connect")
    assert r["ok"], r
    assert good.call("pub data 1 0 secret")["ok"] is True
    r = good.call("poll 1300")  # a ping and its answer through TLS, non-blocking reads: still up
    assert r["state"]["connected"] and r["state"]["reconnects"] == 0

    for node, ca, host in (("tls-wrong-ca", other_der, "localhost"), ("tls-wrong-name", ca_der, "broker.example")):
        bad = start(agents, interp, device_lib, b, ca_der_hex=ca.hex(), server_hostname=host, node=node)
        r = bad.call("connect")
        assert r["ok"] is False and r["state"]["failures"] == 1, (node, r)


def test_ussl_bridge_lets_bare_umqtt_use_tls(tls_broker, device_lib):
    # umqtt 1.3.4's own ssl=True path imports `ussl`: firmware/compat/ussl.py, copied into the
    # device lib, bridges it to 1.29's ssl with the same DER CA and host name check.
    b, ca_der, _ = tls_broker
    code = (
        "import ssl, binascii\n"
        "from umqtt.simple import MQTTClient\n"
        "p = {'cadata': binascii.unhexlify('%s'), 'cert_reqs': ssl.CERT_REQUIRED, 'server_hostname': 'localhost'}\n"
        "c = MQTTClient('bare-tls', '%s', %d, ssl=True, ssl_params=p)\n"
        "c.connect()\n"
        "c.publish(b'streetnode/bare-tls/data', b'x', qos=1)\n"
        "c.disconnect()\n"
        "print('TLS-OK')\n"
    ) % (ca_der.hex(), b.host, b.port)
    proc = mpy.run_code(code, path=[device_lib], capture=True, timeout=30)
    assert "TLS-OK" in proc.stdout, proc.stdout + proc.stderr


# -- the embedded broker ------------------------------------------------------------------------


@pytest.mark.parametrize("interp", INTERPRETERS)
def test_amqtt_smoke(interp, amqtt_broker, device_lib, agents, observers):
    o = observe(observers, amqtt_broker)
    a = start(agents, interp, device_lib, amqtt_broker, status={"fw": "0.1.0"})
    assert a.call("connect")["ok"]
    payload, _ = o.wait_for("streetnode/sim-1/status")
    assert state_of(payload) == {"state": "online", "fw": "0.1.0", "ts": None}
    assert a.call('pub data 1 0 {"seq": 1}')["ok"] is True
    o.wait_for("streetnode/sim-1/data", lambda p: json.loads(p) == {"seq": 1})
    o.publish("streetnode/sim-1/cmd", b'{"id": "a", "cmd": "identify", "args": {}}')
    r = a.call("poll 500")
    assert [json.loads(c)["id"] for c in r["cmds"]] == ["a"]
    a.kill()
    o.wait_for("streetnode/sim-1/status", lambda p: state_of(p)["state"] == "offline")
