# The node's MQTT link: the one place where the link's resilience lives.
#
# After Peter Hinch's mqtt_as: every public call is "ensure connected, try, on OSError
# drop the link and schedule a reconnect"; OSError is the one failure type that leaves
# this module (a broker refusing us, garbage on the wire and timeouts all become one).
# Nothing blocks beyond `timeout_s` per call. Reconnects back off exponentially with
# full jitter, so a city of nodes does not arrive at once after a broker restart.
#
# The wire protocol is not ours: micropython-lib's umqtt.simple on MicroPython (a pinned
# release fetched by tools/streetnode/common/deps.py, never edited) and paho-mqtt on CPython
# (the Raspberry Pi gateway). Each adapter has its own module, side by side:
# firmware/mqtt_umqtt.py and firmware/mqtt_paho.py. Both sit behind the same small
# backend interface:
#   deadline (ticks), rx (changes whenever something arrives), on_puback(pid) (set by
#   the link), open(), publish(), send() (QoS 1, PUBACK later), subscribe(), check(),
#   wait(ms) (block until the broker sends or ms passed), ping(), abort(), close()
# so the resilience below is written once.
#
#   link = MQTTLink("lamp-17", "broker.local", status={"fw": "0.3.0", "boot": 12})
#   link = MQTTLink("lamp-17", [("mqtt-a.local", 1883), ("mqtt-b.local", 1883)])  # failover
#   link.on_cmd = handle           # handle(payload_bytes), called from poll()
#   link.poll()                    # often: reconnects when due, pings, delivers commands
#   if link.publish("data", payload):   # QoS 1: True only once the PUBACK arrived
#       outbox.ack(seq)
#   link.send("data", payload, seq)     # QoS 1 in flight: seq lands in link.acks on PUBACK
#   link.wait(link.next_due_ms())       # idle: one poll on the socket until something is due

import json

from hal import clock

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


try:
    from errno import EIO, ETIMEDOUT
except ImportError:  # a port without errno names: Linux/lwIP numbers
    EIO, ETIMEDOUT = 5, 110
ENETDOWN = const(100)  # Linux's number, as MicroPython uses on every port (not in its errno)

_DELAYS_KEPT = const(16)  # backoff delays remembered in .delays (for health and tests)
_INBOX = const(8)  # commands held between two poll() calls; older ones are dropped
_IN_FLIGHT_MAX = const(16)  # QoS 1 publishes sent and not yet acknowledged, at most

# -- backend: umqtt.simple on MicroPython, paho-mqtt on CPython -----------------------------

BACKEND = None
try:
    from firmware.mqtt_umqtt import UmqttBackend  # imports umqtt.simple: fails on CPython

    BACKEND = "umqtt"
except ImportError:
    UmqttBackend = None
if BACKEND is None:
    try:
        import paho.mqtt.client  # noqa: F401  (fails fast where there is no paho)

        from firmware.mqtt_paho import PahoBackend  # CPython only: kept out of the boards' RAM

        BACKEND = "paho"
    except ImportError:
        PahoBackend = None


# -- backoff: the one policy of every retry (firmware/backoff.py) -------------------------

from firmware.backoff import Jitter, backoff_ms, entropy_seed  # noqa: E402,F401  (also public here)


# -- the broker list ---------------------------------------------------------------------------


def broker_list(server, port, default_port):
    """[(host, port), ...] from one host name (with `port`, else default_port) or a list of
    (host, port) pairs (a port of None: `port`, else default_port). ValueError on a bad one."""
    items = [server] if isinstance(server, str) else server
    if not items:
        raise ValueError("need at least one broker")
    out = []
    for item in items:
        if isinstance(item, str):
            host, p = item, None
        else:
            host, p = item
        if p is None:
            p = port or default_port
        if not isinstance(host, str) or not host or type(p) is not int or not 0 < p < 65536:
            raise ValueError("a broker is a host name and a port 1..65535, got %r" % (item,))
        out.append((host, p))
    return out


# -- the link --------------------------------------------------------------------------------


def _check_node_id(node_id):
    ok = isinstance(node_id, str) and 1 <= len(node_id) <= 32
    if ok:
        for c in node_id:
            if not ("a" <= c <= "z" or "0" <= c <= "9" or c == "-"):
                ok = False
    if not ok:
        raise ValueError("node id must be 1 to 32 characters of a-z 0-9 -, got %r" % (node_id,))


class MQTTLink:
    """A node's connection to the broker under `<prefix>/<node_id>/` (see CONTRACT.md §3).

    `server` is one host name (with `port`) or a list of brokers, (host, port) pairs tried
    in order: a failed attempt or a lost session moves on to the next one (wrapping round),
    and a node stays on the broker it reached until that one fails. The backoff grows per
    round of the list, so a dead broker costs one short, jittered delay before the next.

    connected   True while a session is up
    hosts       the brokers, [(host, port), ...]; server, port and broker ("host:port")
                name the one in use (or tried next)
    reconnects  successful connections after the first one
    failures    consecutive failed attempts (the backoff exponent, per round of hosts)
    delays      the last backoff delays scheduled, in ms (oldest first)
    last_error  errno of the last failure (ETIMEDOUT, ECONNREFUSED, ...), or None
    cmd_dropped commands let go because poll() was not called in time
    """

    def __init__(
        self,
        node_id,
        server,
        port=None,
        prefix="streetnode",
        keepalive_s=60,
        timeout_s=5,
        backoff_base_ms=1000,
        backoff_cap_ms=60000,
        seed=None,
        rand=None,
        ca_der=None,
        server_hostname=None,
        status=None,
        on_cmd=None,
        clean_session=True,
        client_id=None,
        backend=None,
        user=None,
        password=None,
    ):
        _check_node_id(node_id)
        if not prefix or "+" in prefix or "#" in prefix:
            raise ValueError("prefix must be a non-empty topic without wildcards, got %r" % (prefix,))
        if not 2 <= keepalive_s <= 65535:
            raise ValueError("keepalive_s must be 2..65535, got %r" % (keepalive_s,))
        if not 0 < timeout_s <= 300:
            raise ValueError("timeout_s must be in (0, 300], got %r" % (timeout_s,))
        backoff_ms(0, 0, backoff_base_ms, backoff_cap_ms)  # validates base and cap
        if ca_der is not None and (not isinstance(ca_der, (bytes, bytearray)) or ca_der[:1] != b"\x30"):
            raise ValueError("ca_der must be a DER certificate (bytes starting 0x30), not PEM")
        self.node_id = node_id
        self.hosts = broker_list(server, port, 8883 if ca_der else 1883)
        self._use(0)
        self.client_id = client_id or node_id
        self.keepalive_s = keepalive_s
        self.clean_session = clean_session
        self.status = dict(status or {})
        self.on_cmd = on_cmd
        # More sub-topics subscribed on every connection (e.g. "ota/offer"); what arrives on
        # them goes to on_message(sub, payload) instead of on_cmd.
        self.subs = []
        self.on_message = None
        self.unix_time = None  # the node's clock (firmware/net.py), so a status says when it was set
        self._timeout_ms = int(timeout_s * 1000)
        self._base_ms = backoff_base_ms
        self._cap_ms = backoff_cap_ms
        self._rand = rand or Jitter(entropy_seed(node_id) if seed is None else seed).random
        self._base = prefix + "/" + node_id + "/"
        self._topics = {}
        if backend is None:
            if BACKEND == "umqtt":
                backend = UmqttBackend(timeout_s, ca_der, server_hostname)
            elif BACKEND == "paho":
                backend = PahoBackend(timeout_s, ca_der, server_hostname)
            else:
                raise ImportError("no MQTT backend: umqtt.simple (MicroPython) or paho-mqtt (CPython)")
        # Per-node credentials (MQTT CONNECT user name and password), used by every backend.
        backend.user = user
        backend.password = password if user else None
        backend.on_puback = self._puback
        self._be = backend
        self._in_flight = {}  # packet id -> the caller's tag, for send()
        self.acks = []  # tags of sent publishes whose PUBACK arrived, oldest first
        self.connected = False
        self.reconnects = 0
        self.failures = 0
        self.delays = []
        self.last_error = None
        self.cmd_dropped = 0
        self._ever = False
        self._closed = False
        self._inbox = []
        self._next_try = clock.ticks_ms()  # the first attempt may happen at once
        self._last_ping = 0
        self._ping_out = None  # ticks when an unanswered ping went out
        self._rx_seen = 0

    # -- topics and payloads

    def topic(self, sub):
        """`<prefix>/<node>/<sub>`, built once per sub-topic."""
        t = self._topics.get(sub)
        if t is None:
            t = self._topics[sub] = self._base + sub
        return t

    def _use(self, i):
        self._host_i = i
        self.server, self.port = self.hosts[i]
        self.broker = ("[%s]:%d" if ":" in self.server else "%s:%d") % (self.server, self.port)

    def _status_payload(self, state):
        d = dict(self.status)
        d["state"] = state
        d["broker"] = self.broker
        # When: a retained status (or the will, armed at connect) is how a field tool that
        # subscribes later tells a node gone for an hour from one gone for a second.
        d["ts"] = self.unix_time() if self.unix_time is not None else None
        return json.dumps(d).encode()

    # -- public calls

    def connect(self):
        """Connect now if the backoff allows; True when connected. Publishes the retained
        `online` status and (re)subscribes to `cmd` on every connection."""
        self._closed = False
        if self.connected:
            return True
        if clock.ticks_diff(clock.ticks_ms(), self._next_try) < 0:
            return False  # backing off
        self._start()
        be = self._be
        try:
            be.open(
                self.server,
                self.port,
                self.client_id,
                self.keepalive_s,
                self.clean_session,
                self.topic("status"),
                self._status_payload("offline"),
                self._received,
            )
            be.subscribe(self.topic("cmd"), 1)
            for sub in self.subs:
                be.subscribe(self.topic(sub), 1)
            be.publish(self.topic("status"), self._status_payload("online"), True, 1)
        except OSError as e:
            self._lost(e)
            return False
        now = clock.ticks_ms()
        self.connected = True
        self.failures = 0
        if self._ever:
            self.reconnects += 1
        self._ever = True
        self._last_ping = now
        self._ping_out = None
        self._rx_seen = be.rx
        return True

    def publish(self, sub, payload, qos=1, retain=False):
        """Publish to `<prefix>/<node>/<sub>`. With QoS 1, True only once the broker's PUBACK
        arrived (the caller may then drop the record); False when the link is down, backing
        off, or failed within the timeout (the link is then dropped and a reconnect planned)."""
        if self._closed or not (self.connected or self.connect()):
            return False
        if isinstance(payload, str):
            payload = payload.encode()
        self._start()
        try:
            self._be.publish(self.topic(sub), payload, retain, qos)
        except OSError as e:
            self._lost(e)
            return False
        return True

    def send(self, sub, payload, tag, retain=False):
        """QoS 1 publish without waiting for its PUBACK: when it arrives (read by poll(),
        pump() or while publish() waits), `tag` is appended to .acks. False when the link
        is down or too many are in flight. A lost link forgets what was in flight: those
        tags never show up, and the caller sends them again."""
        if self._closed or not (self.connected or self.connect()):
            return False
        if len(self._in_flight) >= _IN_FLIGHT_MAX:
            return False
        if isinstance(payload, str):
            payload = payload.encode()
        self._start()
        try:
            pid = self._be.send(self.topic(sub), payload, retain)
        except OSError as e:
            self._lost(e)
            return False
        self._in_flight[pid] = tag
        return True

    def in_flight(self):
        """Publishes sent with send() whose PUBACK has not arrived yet."""
        return len(self._in_flight)

    def pump(self, ms):
        """Wait up to ms for the broker, then read what it sent (PUBACKs, commands). For a
        sender with publishes in flight; it does not ping (poll() does)."""
        if not self.connected:
            return
        self._start()
        try:
            self._be.wait(ms)
            self._be.check()
        except OSError as e:
            self._lost(e)

    def wait(self, ms):
        """Sleep up to ms, in one poll on the broker's socket while connected: returns as soon
        as the broker sends something (a command is then answered at once). Then call
        poll(). Down or closed, a plain sleep."""
        if ms <= 0 or self._inbox:
            return
        if self.connected:
            try:
                self._be.wait(ms)
            except OSError as e:
                self._lost(e)
            return
        clock.sleep_ms(ms)

    def next_due_ms(self):
        """Milliseconds until poll() has something to do by the clock (0: now): the next
        ping, a ping answer overdue, the next connection attempt. None when closed."""
        if self._closed:
            return None
        if self._inbox or not self.connected:
            return 0 if self._inbox else self.next_retry_ms()
        half = self._half_keepalive()
        now = clock.ticks_ms()
        d = clock.ticks_diff(clock.ticks_add(self._last_ping, half), now)
        if self._ping_out is not None:
            d2 = clock.ticks_diff(clock.ticks_add(self._ping_out, half), now)
            if d2 < d:
                d = d2
        return d if d > 0 else 0

    def poll(self):
        """Keep the link alive and deliver commands; call it often (it never blocks beyond the
        timeout). Reconnects when the backoff says so, pings at half the keepalive, drops a
        link whose broker did not answer a ping within half the keepalive, and calls
        on_cmd(payload) for each command received. Returns the number of commands delivered.
        Call it at least every keepalive_s / 2, or the broker drops the node and sends its will."""
        if self._closed:
            return 0
        if self.connected or self.connect():
            self._start()
            be = self._be
            try:
                be.check()
                now = clock.ticks_ms()
                if be.rx != self._rx_seen:  # anything from the broker proves it alive
                    self._rx_seen = be.rx
                    self._ping_out = None
                elif self._ping_out is not None and clock.ticks_diff(now, self._ping_out) >= self._half_keepalive():
                    raise OSError(ETIMEDOUT, "broker did not answer a ping within %d ms" % self._half_keepalive())
                if clock.ticks_diff(now, self._last_ping) >= self._half_keepalive():
                    be.ping()
                    self._last_ping = now
                    if self._ping_out is None:
                        self._ping_out = now
            except OSError as e:
                self._lost(e)
        return self._deliver()

    def close(self):
        """Leave cleanly: retained `offline` status, then DISCONNECT (which suppresses the will).
        poll() and publish() stay quiet until connect() is called again."""
        if self.connected:
            self._start()
            try:
                self._be.publish(self.topic("status"), self._status_payload("offline"), True, 1)
                self._be.close()
            except OSError:  # leaving anyway: the broker sends the will instead
                self._be.abort()
        self.connected = False
        self._closed = True

    def radio_down(self):
        """The WLAN under the link fell (firmware/net.py says so): the session went with it.
        Dropped now, as mqtt_as does when the interface reports down; the reconnect is
        planned with the backoff and tried once the caller polls again (with the radio up)."""
        if self.connected:
            i = self._host_i
            self._lost(OSError(ENETDOWN, "WLAN down"))
            if self._host_i != i:
                self._use(i)  # the broker did not fail us: no reason to move to the next one

    def next_retry_ms(self):
        """Milliseconds until the next connection attempt (0 when connected or due)."""
        if self.connected:
            return 0
        d = clock.ticks_diff(self._next_try, clock.ticks_ms())
        return d if d > 0 else 0

    # -- the one place failures go

    def _half_keepalive(self):
        return self.keepalive_s * 500

    def _start(self):
        self._be.deadline = clock.ticks_add(clock.ticks_ms(), self._timeout_ms)

    def _lost(self, exc):
        self._be.abort()
        self.connected = False
        if self._in_flight:
            self._in_flight = {}  # a new session: the caller sends them again
        err = exc.args[0] if exc.args else None
        if not isinstance(err, int):  # e.g. CPython's TimeoutError("timed out"): no errno
            err = ETIMEDOUT if "timed out" in str(exc) else EIO
        self.last_error = err
        n = len(self.hosts)
        if n > 1:  # a broker that failed us: the next one in the list, after a short delay
            self._use((self._host_i + 1) % n)
        delay = backoff_ms(self.failures // n, self._rand(), self._base_ms, self._cap_ms)
        self.failures += 1
        self._next_try = clock.ticks_add(clock.ticks_ms(), delay)
        if len(self.delays) >= _DELAYS_KEPT:
            self.delays.pop(0)
        self.delays.append(delay)

    def _puback(self, pid):
        # From the backend, whenever it reads a PUBACK: only those of send() are ours.
        tag = self._in_flight.pop(pid, None)
        if tag is not None:
            self.acks.append(tag)

    def _received(self, topic, payload):
        # Called by the backend in the middle of its protocol work: only queue here, so a
        # command handler that raises cannot leave the protocol half done.
        if len(self._inbox) >= _INBOX:
            self._inbox.pop(0)
            self.cmd_dropped += 1
        self._inbox.append((topic, payload))

    def _deliver(self):
        n = 0
        base = self._base
        while self._inbox:
            topic, payload = self._inbox.pop(0)
            n += 1
            if self.subs and topic is not None:
                if type(topic) is not str:
                    topic = bytes(topic).decode()
                if topic.startswith(base) and topic[len(base):] in self.subs:
                    if self.on_message is not None:
                        self.on_message(topic[len(base):], payload)
                    continue
            if self.on_cmd is not None:
                self.on_cmd(payload)
        return n
