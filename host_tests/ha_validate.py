"""Run by a Python with homeassistant==2024.3.3 installed: validates discovery configs with Home
Assistant's own code. stdin: JSON [[topic, config, sample data payload or null], ...]. Prints
one line per problem; exit 1 when there is one."""

import json
import sys

import jinja2
from homeassistant.components.mqtt import sensor as mqtt_sensor
from homeassistant.components.mqtt.discovery import TOPIC_MATCHER
from homeassistant.components.sensor import DEVICE_CLASS_UNITS, SensorDeviceClass

problems = 0
for topic, cfg, sample in json.load(sys.stdin):
    try:
        if not TOPIC_MATCHER.match(topic.split("/", 1)[1]):
            raise ValueError("topic does not match TOPIC_MATCHER")
        out = mqtt_sensor.DISCOVERY_SCHEMA(dict(cfg))
        dropped = set(cfg) - set(out)
        if dropped:
            raise ValueError("keys dropped by the schema: %s" % dropped)
        dc = out.get("device_class")
        if dc is not None and out.get("unit_of_measurement") not in DEVICE_CLASS_UNITS[SensorDeviceClass(dc)]:
            raise ValueError("unit %r is not one of %s's" % (out.get("unit_of_measurement"), dc))
        if sample is not None:
            value = jinja2.Template(cfg["value_template"]).render(value_json=sample)
            float(value)
    except Exception as e:  # noqa: BLE001 - report every problem
        problems += 1
        print("%s: %s: %s" % (topic, type(e).__name__, e))
print("checked with homeassistant's own schemas: %d problems" % problems)
sys.exit(1 if problems else 0)
