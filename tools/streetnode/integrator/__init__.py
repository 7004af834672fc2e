"""The integrator's tools: `streetnode bridge` carries the fleet's readings from the MQTT broker
into a city's platforms (OGC SensorThings API, Home Assistant, sensor.community)."""
