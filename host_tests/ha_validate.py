"""Run by the Python of .venv-ha (homeassistant==2024.3.3, `make .venv-ha/.installed-stamp`):
validates MQTT discovery configs with Home Assistant's own code. stdin: JSON
[[topic, config, sample data payload or null], ...]. Prints one line per problem and a
summary; exit 1 when there is a problem.

Each config goes through what Home Assistant does with a discovery message on that topic:
mqtt/discovery.py's TOPIC_MATCHER, mqtt/sensor.py's DISCOVERY_SCHEMA (which also drops keys
it does not know: a dropped key is a problem here), sensor/const.py's DEVICE_CLASS_UNITS
(Home Assistant warns at run time about a unit its device class does not have), and its
value_template rendered against the node's payload by Home Assistant's template engine
(MqttValueTemplate on a real HomeAssistant instance), as a number."""

import asyncio
import json
import sys
import tempfile

from homeassistant.components.mqtt import sensor as mqtt_sensor
from homeassistant.components.mqtt.discovery import TOPIC_MATCHER
from homeassistant.components.mqtt.models import MqttValueTemplate
from homeassistant.components.sensor import DEVICE_CLASS_UNITS, SensorDeviceClass
from homeassistant.const import __version__
from homeassistant.core import HomeAssistant


def check(hass, topic, cfg, sample):
    m = TOPIC_MATCHER.match(topic.split("/", 1)[1])
    if not m or m.group("component") != "sensor":
        raise ValueError("topic does not match TOPIC_MATCHER as a sensor")
    out = mqtt_sensor.DISCOVERY_SCHEMA(dict(cfg))
    dropped = set(cfg) - set(out)
    if dropped:
        raise ValueError("keys dropped by the schema: %s" % sorted(dropped))
    dc = out.get("device_class")
    if dc is not None and out.get("unit_of_measurement") not in DEVICE_CLASS_UNITS[SensorDeviceClass(dc)]:
        raise ValueError("unit %r is not one of %s's" % (out.get("unit_of_measurement"), dc))
    if sample is not None:
        template = MqttValueTemplate(out["value_template"], hass=hass)
        value = template.async_render_with_possible_json_value(json.dumps(sample))
        try:
            float(value)
        except (TypeError, ValueError):
            raise ValueError("value_template renders %r from the node's payload, not a number" % value) from None


async def main():
    hass = HomeAssistant(tempfile.mkdtemp(prefix="ha-validate-"))
    problems = 0
    items = json.load(sys.stdin)
    for topic, cfg, sample in items:
        try:
            check(hass, topic, cfg, sample)
        except Exception as e:  # noqa: BLE001 - report every problem
            problems += 1
            print("%s: %s: %s" % (topic, type(e).__name__, e))
    await hass.async_stop(force=True)
    print("%d configs checked with Home Assistant %s's own code: %d problems" % (len(items), __version__, problems))
    return 1 if problems else 0


sys.exit(asyncio.run(main()))
