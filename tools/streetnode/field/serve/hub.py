"""What the crew page knows: one MQTT connection (common.mqtt, the host's one client) feeding
the fleet evaluation `monitor` uses (fleetwatch.Fleet, its alerts), the last hour of each
quantity for the plots, the commands the page sent with their results, and the
commissioning checks run from the page (check.commission, the code `streetnode check` runs).

paho's network thread feeds it; the web server reads it; one lock between them.
"""

import itertools
import json
import os
import re
import threading
import time

from streetnode.common import mqtt
from streetnode.field import check, fleetwatch
from streetnode.field.capture import MessageQueue

HOUR_S = 3600.0
POINTS = 720  # per series: past it the hour is thinned to every other point (plots stay small)
NODE_ID = re.compile(r"^[a-z0-9-]{1,32}$")
SECRET = re.compile(r"pass|psk|secret|key|token|cred|cert", re.I)


def redact(obj):
    """A payload with every value whose name smells of a secret replaced (never shown)."""
    if isinstance(obj, dict):
        return {k: ("•••" if SECRET.search(str(k)) else redact(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [redact(v) for v in obj]
    return obj


class Series:
    """(t, value) of one quantity over the last hour, at most POINTS of them."""

    __slots__ = ("points",)

    def __init__(self):
        self.points = []

    def add(self, t, v):
        p = self.points
        p.append((t, v))
        if p[0][0] < t - HOUR_S:
            i = 0
            while i < len(p) and p[i][0] < t - HOUR_S:
                i += 1
            del p[:i]
        if len(p) > POINTS:
            thin = p[::2]
            if thin[-1] is not p[-1]:
                thin.append(p[-1])  # the newest point stays
            self.points = thin


class Tap(MessageQueue):
    """One check's view of the hub's subscription: the message source check.commission
    reads (get/drain/publish/on_connect), fed with its node's messages only."""

    def __init__(self, hub, topics):
        super().__init__()
        self.hub = hub
        self.topics = set(topics)
        self.on_connect = None

    def put(self, topic, payload, t):
        if topic in self.topics:
            self.queue.put((topic, payload, t))

    def publish(self, topic, payload, qos=1):
        self.hub.publish(topic, payload, qos)


class CheckRun:
    """A commissioning check started from the page, in a thread of its own."""

    def __init__(self, node, timeout):
        self.node = node
        self.timeout = timeout
        self.started = time.time()
        self.progress = "starting"
        self.left_s = timeout
        self.done = False
        self.code = None
        self.result = None
        self.error = None

    def as_view(self):
        return {"node": self.node, "running": not self.done, "progress": self.progress,
                "left_s": int(self.left_s + 0.999), "result": self.result, "error": self.error}  # fmt: skip


class Hub:
    def __init__(self, opts, prefix="streetnode", fleet_options=None, check_options=None, register=None,
                 connect=mqtt.connect):  # fmt: skip
        self.opts = opts
        self.prefix = prefix.rstrip("/")
        self.fleet = fleetwatch.Fleet(self.prefix, **(fleet_options or {}))
        self.check_options = dict(check_options or {})
        self.register = register or {}  # node id -> the register's row (public columns only)
        self.lock = threading.Lock()
        self.version = 0  # grows with every message: the live views send only when it moved
        self.series = {}  # node -> {"sensor quantity": Series}
        self.raw_status = {}  # node -> (topic, payload, t): a check starts from the retained status
        self.ota = {}  # node -> the retained ota/status
        self.sent = {}  # node -> the latest command the page sent: {"id", "cmd", "t", "result"}
        self.checks = {}  # node -> CheckRun
        self.events = []  # recent alert events
        self.taps = []
        self._ids = itertools.count(1)
        self._connect = connect
        self.client = None

    def topics(self):
        p = self.prefix
        return [p + "/+/status", p + "/+/data", p + "/+/health", p + "/+/cmd/result", p + "/+/ota/status"]

    def start(self):
        self.client = self._connect(self.opts, "streetnode-serve-%d" % os.getpid(), on_connect=self._on_connect,
                                    on_message=self._on_message, subscribe=self.topics())  # fmt: skip
        return self

    def close(self):
        if self.client is not None:
            mqtt.close(self.client)

    def publish(self, topic, payload, qos=1):
        self.client.publish(topic, payload, qos=qos)

    # -- what arrives (paho's thread) ------------------------------------------------------

    def _on_connect(self, client):
        with self.lock:
            taps = list(self.taps)
        for tap in taps:
            if tap.on_connect:
                tap.on_connect()

    def _on_message(self, client, userdata, msg):
        self.feed(msg.topic, bytes(msg.payload), time.time())

    def feed(self, topic, payload, t):
        where = self.fleet.split(topic)
        if where is None:
            return
        node, kind = where
        with self.lock:
            self.version += 1
            if kind == "ota/status":
                try:
                    self.ota[node] = json.loads(payload)
                except ValueError:
                    pass
                return
            if self.fleet.feed(topic, payload, t) is None:
                return
            if kind == "status":
                self.raw_status[node] = (topic, payload, t)
            elif kind == "data":
                self._plot(node, payload, t)
            elif kind == "cmd/result":
                self._result(node, payload, t)
            taps = list(self.taps)
        for tap in taps:
            tap.put(topic, payload, t)

    def _plot(self, node, payload, t):
        try:
            sensors = json.loads(payload).get("sensors")
        except (ValueError, AttributeError):
            return
        if not isinstance(sensors, dict):
            return
        mine = self.series.setdefault(node, {})
        for name, values in sensors.items():
            if not isinstance(values, dict):
                continue
            for q, v in values.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v:
                    mine.setdefault("%s %s" % (name, q), Series()).add(t, v)

    def _result(self, node, payload, t):
        try:
            msg = json.loads(payload)
        except ValueError:
            return
        s = self.sent.get(node)
        if isinstance(msg, dict) and s is not None and msg.get("id") == s["id"]:
            s["result"] = redact(msg)
            s["result_t"] = t

    def tick(self, now=None):
        with self.lock:
            events = self.fleet.tick(now or time.time())
            if events:
                self.version += 1
                self.events = (self.events + events)[-20:]
            return events

    # -- what the page asks for -----------------------------------------------------------

    def send(self, node, cmd, args=None):
        """Send a command to a node; its cmd/result shows on the node page."""
        cid = "serve-%d-%d" % (int(time.time()), next(self._ids))
        with self.lock:
            self.sent[node] = {"id": cid, "cmd": cmd, "t": time.time(), "result": None}
            self.version += 1
        self.publish("%s/%s/cmd" % (self.prefix, node), json.dumps({"id": cid, "cmd": cmd, "args": args or {}}))
        return cid

    def start_check(self, node):
        """A commissioning check of `node` (the one already running if there is one)."""
        o = self.check_options
        with self.lock:
            run = self.checks.get(node)
            if run is not None and not run.done:
                return run
            run = self.checks[node] = CheckRun(node, o.get("timeout", check.DEFAULT_TIMEOUT_S))
            tap = Tap(self, check.topics(self.prefix, node))
            raw = self.raw_status.get(node)
            if raw is not None:
                tap.put(*raw)  # what a fresh subscription would get first: the retained status
            self.taps.append(tap)
            self.version += 1

        def progress(text, left):
            run.progress, run.left_s = text, left
            with self.lock:
                self.version += 1

        def work():
            try:
                run.code, run.result = check.commission(
                    tap, node, self.prefix, o.get("readings", check.DEFAULT_READINGS),
                    o.get("stuck_s", check.DEFAULT_STUCK_S), run.timeout, o.get("expect_fw"),
                    o.get("min_rssi", check.DEFAULT_MIN_RSSI), o.get("max_skew_s", check.DEFAULT_MAX_SKEW_S),
                    progress, self.opts.address)  # fmt: skip
            except Exception as e:  # noqa: BLE001 - the page shows why the check could not run
                run.error = str(e) or e.__class__.__name__
            finally:
                with self.lock:
                    run.done = True
                    run.left_s = 0
                    self.taps.remove(tap)
                    self.version += 1

        threading.Thread(target=work, name="check-" + node, daemon=True).start()
        return run
