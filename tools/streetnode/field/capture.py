"""Where the field commands' messages come from: a live MQTT subscription, or a capture
file written by `streetnode monitor --capture FILE` and read by `streetnode report`.

A capture is JSON lines, one per message or event, in arrival order:

    {"t": 1764270000.123, "topic": "streetnode/lamp-1/data", "payload": "{\\"seq\\": 7, ...}"}
    {"t": 1764270005.0, "event": "alert", "node": "lamp-1", "kind": "gap", "subject": "", "detail": "..."}

`t` is the arrival time (Unix seconds, float) at the capturing computer; `payload` the
message as text (UTF-8, undecodable bytes replaced) exactly as published. Lines with an
"event" key are the monitor's alerts, for the record; readers skip what they do not know.
`"retained": true` marks a message the broker held (it arrived when we subscribed, so `t`
says nothing about when the node sent it: its own `ts` does).
"""

import json
import os
import queue
import time

from streetnode.common import mqtt


class Message(tuple):
    """(topic, payload, t) that also says whether the broker delivered it as retained
    (`.retained`): it unpacks as the 3-tuple every reader expects."""

    retained = False

    def __new__(cls, topic, payload, t, retained=False):
        m = tuple.__new__(cls, (topic, payload, t))
        m.retained = bool(retained)
        return m


def retained(msg):
    return getattr(msg, "retained", False)


class MessageQueue:
    """Messages as (topic, payload bytes, t), in arrival order: what the field commands read
    (get, drain) whatever feeds them."""

    def __init__(self):
        self.queue = queue.Queue()

    def get(self, timeout):
        """The next message or None after timeout seconds."""
        try:
            return self.queue.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None

    def drain(self):
        out = []
        while True:
            try:
                out.append(self.queue.get_nowait())
            except queue.Empty:
                return out


class LiveSource(MessageQueue):
    """A subscription (common.mqtt: the broker options of every command); messages go to a
    queue as (topic, payload bytes, t). BrokerError when the broker cannot be used."""

    def __init__(self, opts, topics, name="streetnode-field", connect_timeout=10.0):
        super().__init__()
        self.on_connect = None  # called (in the network thread) after every (re)subscription
        self.client = mqtt.connect(opts, "%s-%d-%d" % (name, os.getpid(), id(self)), timeout=connect_timeout,
                                   on_connect=self._on_connect, on_message=self._on_message, subscribe=topics)

    def _on_connect(self, client):
        if self.on_connect:
            self.on_connect()

    def _on_message(self, client, userdata, msg):
        self.queue.put(Message(msg.topic, bytes(msg.payload), time.time(), msg.retain))

    def publish(self, topic, payload, qos=1):
        self.client.publish(topic, payload, qos=qos)

    def close(self):
        mqtt.close(self.client)


class CaptureWriter:
    def __init__(self, path):
        self.path = path
        self.f = open(path, "a", encoding="utf-8")

    def message(self, topic, payload, t, retained=False):
        if isinstance(payload, (bytes, bytearray)):
            payload = bytes(payload).decode("utf-8", "replace")
        rec = {"t": round(t, 3), "topic": topic, "payload": payload}
        if retained:
            rec["retained"] = True
        self.f.write(json.dumps(rec) + "\n")

    def event(self, ev):
        d = ev.as_dict()
        d["event"] = d.pop("event")
        self.f.write(json.dumps(d) + "\n")

    def flush(self):
        self.f.flush()

    def close(self):
        self.f.close()


def read_capture(path, since=None, until=None):
    """Yield Message(topic, payload text, t, retained) of the messages in a capture, between since and until
    (Unix seconds, inclusive; None: open). Damaged lines (a capture cut short by a power
    loss) are skipped."""
    try:
        f = open(path, encoding="utf-8", errors="replace")
    except OSError as e:
        raise ValueError("cannot read the capture %s: %s" % (path, e.strerror or e))
    with f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if not isinstance(rec, dict) or "topic" not in rec or "t" not in rec:
                continue
            t = rec["t"]
            if not isinstance(t, (int, float)):
                continue
            if since is not None and t < since:
                continue
            if until is not None and t > until:
                continue
            yield Message(rec["topic"], rec.get("payload", ""), float(t), rec.get("retained") is True)
