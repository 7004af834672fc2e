"""Where the field commands' messages come from: a live MQTT subscription, or a capture
file written by `streetnode monitor --capture FILE` and read by `streetnode report`.

A capture is JSON lines, one per message or event, in arrival order:

    {"t": 1764270000.123, "topic": "streetnode/lamp-1/data", "payload": "{\\"seq\\": 7, ...}"}
    {"t": 1764270005.0, "event": "alert", "node": "lamp-1", "kind": "gap", "subject": "", "detail": "..."}

`t` is the arrival time (Unix seconds, float) at the capturing computer; `payload` the
message as text (UTF-8, undecodable bytes replaced) exactly as published. Lines with an
"event" key are the monitor's alerts, for the record; readers skip what they do not know.
"""

import json
import os
import queue
import threading
import time


def parse_broker(text):
    host, _, port = (text or "").rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("--broker must be HOST:PORT, not %r" % text)
    return host.strip("[]"), int(port)


def read_password(path):
    """The first line of a password file (so the password is not in the shell history)."""
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return f.readline().rstrip("\r\n")
    except OSError as e:
        raise ValueError("cannot read the password file %s: %s" % (path, e.strerror or e))


class LiveSource:
    """A paho-mqtt subscription; messages go to a queue as (topic, payload bytes, t)."""

    def __init__(self, host, port, topics, user=None, password=None, name="streetnode-field", connect_timeout=10.0):
        import paho.mqtt.client as mqtt

        self.queue = queue.Queue()
        self.topics = list(topics)
        self.connected = threading.Event()
        self.refused = None
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="%s-%d-%d" % (name, os.getpid(), id(self)))
        if user:
            self.client.username_pw_set(user, password)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.2, 5)
        self.on_connect = None  # called (in paho's thread) after every (re)subscription
        try:
            self.client.connect(host, port, keepalive=30)
        except OSError as e:
            raise ConnectionError("cannot reach the broker %s:%d: %s" % (host, port, e.strerror or e))
        self.client.loop_start()
        deadline = time.monotonic() + connect_timeout
        while not self.connected.is_set() and self.refused is None and time.monotonic() < deadline:
            time.sleep(0.02)
        if self.refused is not None:
            self.close()
            raise ConnectionError("the broker %s:%d refused the connection: %s" % (host, port, self.refused))
        if not self.connected.is_set():
            self.close()
            raise ConnectionError("no answer from the broker %s:%d within %.0f s" % (host, port, connect_timeout))

    def _on_connect(self, client, userdata, flags, rc, props=None):
        if rc.is_failure:
            self.refused = str(rc)
            return
        for t in self.topics:
            client.subscribe(t, qos=1)
        self.connected.set()
        if self.on_connect:
            self.on_connect()

    def _on_message(self, client, userdata, msg):
        self.queue.put((msg.topic, bytes(msg.payload), time.time()))

    def publish(self, topic, payload, qos=1):
        self.client.publish(topic, payload, qos=qos)

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

    def close(self):
        try:
            self.client.loop_stop()
            self.client.disconnect()
        except Exception:  # noqa: BLE001 - closing a dead connection must not hide the real error
            pass


class CaptureWriter:
    def __init__(self, path):
        self.path = path
        self.f = open(path, "a", encoding="utf-8")

    def message(self, topic, payload, t):
        if isinstance(payload, (bytes, bytearray)):
            payload = bytes(payload).decode("utf-8", "replace")
        self.f.write(json.dumps({"t": round(t, 3), "topic": topic, "payload": payload}) + "\n")

    def event(self, ev):
        d = ev.as_dict()
        d["event"] = d.pop("event")
        self.f.write(json.dumps(d) + "\n")

    def flush(self):
        self.f.flush()

    def close(self):
        self.f.close()


def read_capture(path, since=None, until=None):
    """Yield (topic, payload text, t) of the messages in a capture, between since and until
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
            yield rec["topic"], rec.get("payload", ""), float(t)
