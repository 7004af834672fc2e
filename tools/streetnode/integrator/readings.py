"""A node's data message (CONTRACT.md section 3) checked and taken apart:

    r = parse_data("streetnode", "streetnode/lamp-1/data", payload, received=time.time())
    r.node, r.seq, r.ts, r.synced, r.values     # values: [(sensor, quantity, number)]

Anything else raises Malformed with the reason: the bridge logs it, keeps it in the dead
letters and goes on.
"""

import json
import math
import re

MAX_PAYLOAD = 64 * 1024  # a cycle of every sensor the firmware knows is well under 1 KiB
NODE_ID = re.compile(r"^[a-z0-9-]{1,32}$")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


class Malformed(ValueError):
    """A message that is not a node's data message as the contract has it."""


class Reading:
    __slots__ = ("node", "seq", "ts", "synced", "values", "received", "topic", "payload")

    def __init__(self, node, seq, ts, synced, values, received, topic, payload):
        self.node = node
        self.seq = seq
        self.ts = ts
        self.synced = synced
        self.values = values
        self.received = received
        self.topic = topic
        self.payload = payload

    @property
    def key(self):
        return (self.node, self.seq)

    @property
    def clock_ok(self):
        """The node's clock was synced: ts is the time of the reading."""
        return self.ts is not None and self.synced is not False

    def __repr__(self):
        return "<Reading %s seq %d, %d values>" % (self.node, self.seq, len(self.values))


def topic_node(prefix, topic, kind):
    """The node id of `<prefix>/<node>/<kind>`, or None when the topic is not that."""
    parts = topic.split("/")
    pre = prefix.split("/")
    if len(parts) != len(pre) + 2 or parts[: len(pre)] != pre or parts[-1] != kind:
        return None
    return parts[len(pre)]


def _number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def parse_data(prefix, topic, payload, received):
    node = topic_node(prefix, topic, "data")
    if node is None or not NODE_ID.match(node):
        raise Malformed("topic %r is not <prefix>/<node id>/data" % topic)
    if len(payload) > MAX_PAYLOAD:
        raise Malformed("payload of %d bytes (more than %d)" % (len(payload), MAX_PAYLOAD))
    try:
        msg = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as e:
        raise Malformed("not JSON (%s)" % e) from None
    if not isinstance(msg, dict):
        raise Malformed("not a JSON object")
    seq = msg.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        raise Malformed("seq must be an integer from 1, not %r" % (seq,))
    ts = msg.get("ts")
    if ts is not None and (not _number(ts) or not math.isfinite(ts) or not 0 <= ts < 253402300800):
        raise Malformed("ts must be unix seconds or null, not %r" % (ts,))
    synced = msg.get("synced")
    if synced is not None and not isinstance(synced, bool):
        raise Malformed("synced must be true, false or absent, not %r" % (synced,))
    sensors = msg.get("sensors")
    if not isinstance(sensors, dict):
        raise Malformed("sensors must be an object")
    values = []
    for sensor, quantities in sensors.items():
        if not _NAME.match(sensor):
            raise Malformed("sensor name %r" % sensor)
        if not isinstance(quantities, dict):
            raise Malformed("sensors.%s must be an object" % sensor)
        for q, v in quantities.items():
            if not _NAME.match(q):
                raise Malformed("quantity name %r" % q)
            if v is None:
                continue  # a channel the chip does not have, or a failed read: no reading
            if not _number(v):
                raise Malformed("sensors.%s.%s must be a number or null, not %r" % (sensor, q, v))
            if isinstance(v, float) and not math.isfinite(v):
                raise Malformed("sensors.%s.%s is not a finite number" % (sensor, q))
            values.append((sensor, q, v))
    return Reading(node, seq, ts, synced, values, received, topic, payload)


def parse_object(payload, limit=MAX_PAYLOAD):
    """A status or health payload as a dict, or None when it is not a JSON object."""
    if len(payload) > limit:
        return None
    try:
        msg = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    return msg if isinstance(msg, dict) else None
