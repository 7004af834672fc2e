"""Home Assistant MQTT discovery for the fleet: per node a device, per sensor and quantity
a sensor entity whose state Home Assistant reads straight from the node's data topic
(`value_template` into the payload), available while the node's status says online, expired
when no reading came for three intervals.

Configs are retained at `<discovery prefix>/sensor/<node>/<sensor>_<quantity>/config`, sent
again when Home Assistant announces itself (`homeassistant/status` = online), and removed (an
empty retained config) when a node's health or the register no longer lists the sensor.
What was announced is kept in the state directory, so a restarted bridge can still remove it.
"""

import json
import time
from pathlib import Path

from streetnode.common.files import write_atomic
from streetnode.integrator.quantities import chip, quantity
from streetnode.integrator.target import Target, TargetUnavailable

DEFAULT_PREFIX = "homeassistant"
DEFAULT_INTERVAL_S = 60.0
EXPIRE_INTERVALS = 3


def object_id(sensor, q):
    return "%s_%s" % (sensor, q)


def config_topic(prefix, node, sensor, q):
    return "%s/sensor/%s/%s/config" % (prefix, node, object_id(sensor, q))


def discovery_config(node, sensor, q, topic_prefix, info=None, fw=None, interval_s=None):
    """The discovery payload (a dict) of one sensor entity."""
    facts = quantity(q)
    driver = info.drivers.get(sensor) if info else None
    model = chip(driver)[0] if driver else "streetnode node"
    device = {
        "identifiers": ["streetnode-%s" % node],
        "name": node,
        "manufacturer": "streetnode",
        "model": "%s%s" % (model, " on %s" % info.board if info and info.board else ""),
    }
    if fw:
        device["sw_version"] = fw
    if info and info.site:
        device["suggested_area"] = info.site
    cfg = {
        "name": "%s %s" % (sensor, facts[0] if facts else q),
        "unique_id": "streetnode-%s-%s-%s" % (node, sensor, q),
        "object_id": "%s_%s_%s" % (node.replace("-", "_"), sensor, q),
        "state_topic": "%s/%s/data" % (topic_prefix, node),
        "value_template": "{{ value_json.sensors['%s']['%s'] }}" % (sensor, q),
        "state_class": "measurement",
        "availability": [{
            "topic": "%s/%s/status" % (topic_prefix, node),
            "value_template": "{{ value_json.state }}",
            "payload_available": "online",
            "payload_not_available": "offline",
        }],
        "expire_after": int(round(max(1.0, interval_s or DEFAULT_INTERVAL_S) * EXPIRE_INTERVALS)),
        "qos": 1,
        "device": device,
    }
    if facts:
        cfg["device_class"] = facts[5]
        cfg["unit_of_measurement"] = facts[6]
    return cfg


class HomeAssistant(Target):
    name = "homeassistant"

    def __init__(self, client, state_dir, topic_prefix="streetnode", prefix=DEFAULT_PREFIX, register=None,
                 timeout=10.0, log=print):  # fmt: skip
        self.client = client
        self.topic_prefix = topic_prefix
        self.prefix = prefix
        self.register = register or {}
        self.timeout = timeout
        self.log = log
        self.path = Path(state_dir) / "homeassistant.json"
        try:
            self.announced = {n: {tuple(k.split("/", 1)): v for k, v in d.items()}
                              for n, d in json.loads(self.path.read_text()).items()}  # fmt: skip
        except (OSError, ValueError):
            self.announced = {}  # node -> {(sensor, quantity): config dict}
        self.fw = {}
        self._last = {}  # node -> (seq, ts) for the interval estimate
        self.interval = {}
        self.resend_all = False
        self.sent = 0
        self.removed = 0

    def _save(self):
        data = {n: {"%s/%s" % k: v for k, v in d.items()} for n, d in self.announced.items()}
        write_atomic(self.path, json.dumps(data), 0o600)

    def _publish(self, topic, payload):
        info = self.client.publish(topic, payload, qos=1, retain=True)
        if info.rc != 0:
            raise TargetUnavailable("publish to %s failed (rc %d): not connected to the broker" % (topic, info.rc))
        deadline = time.monotonic() + self.timeout
        while not info.is_published():
            if time.monotonic() > deadline:
                raise TargetUnavailable("the broker did not confirm the discovery config %s" % topic)
            time.sleep(0.005)

    def _interval(self, r):
        info = self.register.get(r.node)
        if info and info.interval_s:
            return info.interval_s
        last = self._last.get(r.node)
        if r.clock_ok:
            self._last[r.node] = (r.seq, r.ts)
            if last and r.seq > last[0] and r.ts > last[1]:
                est = (r.ts - last[1]) / (r.seq - last[0])
                old = self.interval.get(r.node)
                if old is None or abs(est - old) > 0.5 * old:
                    self.interval[r.node] = est
        return self.interval.get(r.node)

    def _config(self, node, sensor, q, interval):
        return discovery_config(node, sensor, q, self.topic_prefix, self.register.get(node), self.fw.get(node), interval)

    def deliver(self, readings, uncertain):
        changed = False
        if self.resend_all:
            for node, entities in self.announced.items():
                for (sensor, q), cfg in entities.items():
                    self._publish(config_topic(self.prefix, node, sensor, q), json.dumps(cfg))
                    self.sent += 1
            self.resend_all = False
        for r in readings:
            interval = self._interval(r)
            mine = self.announced.setdefault(r.node, {})
            for sensor, q, _ in r.values:
                cfg = self._config(r.node, sensor, q, interval)
                if mine.get((sensor, q)) != cfg:
                    self._publish(config_topic(self.prefix, r.node, sensor, q), json.dumps(cfg))
                    mine[(sensor, q)] = cfg
                    self.sent += 1
                    changed = True
        if changed:
            self._save()
        return {r.key: None for r in readings}

    def node_status(self, node, status):
        fw = status.get("fw")
        if isinstance(fw, str) and fw:
            self.fw[node] = fw

    def node_health(self, node, health):
        """A node's health lists its configured sensors: entities of any other are removed."""
        sensors = health.get("sensors")
        if not isinstance(sensors, dict) or node not in self.announced:
            return
        self.remove_missing(node, set(sensors))

    def remove_missing(self, node, sensors):
        gone = [k for k in self.announced.get(node, {}) if k[0] not in sensors]
        for sensor, q in gone:
            self._publish(config_topic(self.prefix, node, sensor, q), b"")
            del self.announced[node][(sensor, q)]
            self.removed += 1
            self.log("homeassistant: %s: sensor %s left the config, entity %s removed" % (node, sensor, object_id(sensor, q)))
        if gone:
            self._save()

    def birth(self):
        """Home Assistant (re)started: send every config again with the next batch."""
        self.resend_all = True
