"""Home Assistant MQTT discovery payloads checked two ways:

- check(topic, config): a faithful transcription of what Home Assistant 2024.3.3 accepts
  (homeassistant/components/mqtt/sensor.py DISCOVERY_SCHEMA, mqtt/mixins.py MQTT_ENTITY_DEVICE_INFO_SCHEMA
  and the availability list, mqtt/discovery.py TOPIC_MATCHER, sensor/const.py DEVICE_CLASS_UNITS for the
  device classes the bridge uses). Runs in CI, where the homeassistant package (400 MB, 14 min to
  install here) is not installed.
- ha_validate.py run by a Python that has homeassistant==2024.3.3 (STREETNODE_HA_PYTHON): Home
  Assistant's own schemas and its Jinja2 rendering of value_template against the node's payload.
"""

import re

TOPIC_MATCHER = re.compile(r"(?P<component>\w+)/(?:(?P<node_id>[a-zA-Z0-9_-]+)/)?(?P<object_id>[a-zA-Z0-9_-]+)/config")
SENSOR_KEYS = {
    "qos", "encoding", "state_topic", "value_template", "device_class", "expire_after", "force_update",
    "last_reset_value_template", "name", "suggested_display_precision", "state_class", "unit_of_measurement",
    "availability_topic", "availability_template", "payload_available", "payload_not_available", "availability_mode",
    "availability", "device", "origin", "enabled_by_default", "entity_category", "icon", "json_attributes_topic",
    "json_attributes_template", "object_id", "unique_id",
}  # fmt: skip
DEVICE_KEYS = {"identifiers", "connections", "manufacturer", "model", "name", "hw_version", "serial_number",
               "sw_version", "via_device", "suggested_area", "configuration_url"}  # fmt: skip
AVAILABILITY_KEYS = {"topic", "payload_available", "payload_not_available", "value_template"}
DEVICE_CLASS_UNITS = {  # homeassistant/components/sensor/const.py (2024.3)
    "temperature": {"°C", "°F", "K"},
    "humidity": {"%"},
    "atmospheric_pressure": {"cbar", "bar", "hPa", "mmHg", "inHg", "kPa", "mbar", "Pa", "psi"},
    "pm1": {"µg/m³"},
    "pm25": {"µg/m³"},
    "pm10": {"µg/m³"},
    "carbon_dioxide": {"ppm"},
    "illuminance": {"lx"},
}
STATE_CLASSES = {"measurement", "total", "total_increasing"}
_WILDCARD = re.compile(r"[#+]")


def _topic(t, where):
    assert isinstance(t, str) and t and "\0" not in t and len(t.encode()) <= 65535, "%s: bad topic %r" % (where, t)
    levels = t.split("/")
    for i, level in enumerate(levels):  # valid_subscribe_topic: a wildcard is a whole level, # the last
        assert level in ("+", "#") or not _WILDCARD.search(level), "%s: bad topic %r" % (where, t)
        assert level != "#" or i == len(levels) - 1, "%s: # must be the last level in %r" % (where, t)


def check(topic, cfg):
    """Raise AssertionError naming the first thing Home Assistant 2024.3.3 would refuse."""
    m = TOPIC_MATCHER.fullmatch(topic.split("/", 1)[1])
    assert m and m.group("component") == "sensor", "discovery topic %r" % topic
    extra = set(cfg) - SENSOR_KEYS  # (the bridge writes full names; HA would also expand abbreviations)
    assert not extra, "keys Home Assistant drops (REMOVE_EXTRA): %s" % extra
    _topic(cfg["state_topic"], "state_topic")
    assert "{{" in cfg["value_template"] and "}}" in cfg["value_template"]
    assert cfg["state_class"] in STATE_CLASSES
    assert isinstance(cfg["expire_after"], int) and cfg["expire_after"] >= 0
    assert cfg.get("qos", 0) in (0, 1, 2)
    dc = cfg.get("device_class")
    if dc is not None:
        assert dc in DEVICE_CLASS_UNITS, "device_class %r" % dc
        assert cfg.get("unit_of_measurement") in DEVICE_CLASS_UNITS[dc], "unit %r for %s" % (cfg.get("unit_of_measurement"), dc)
    for a in cfg.get("availability", []):
        assert set(a) <= AVAILABILITY_KEYS and "topic" in a, a
        _topic(a["topic"], "availability")
    dev = cfg["device"]
    assert set(dev) <= DEVICE_KEYS, set(dev) - DEVICE_KEYS
    assert dev.get("identifiers") or dev.get("connections"), "a device needs at least one identifier"
    assert all(isinstance(v, str) for k, v in dev.items() if k not in ("identifiers", "connections"))
    assert isinstance(cfg["unique_id"], str) and cfg["unique_id"]
