"""`streetnode bridge` into Home Assistant (MQTT discovery, validated with Home Assistant's own
code: homeassistant==2024.3.3 in .venv-ha, host_tests/ha_validate.py) and sensor.community (its push format, against a local recording endpoint); the
systemd unit; the delivery state and the payload checks on their own."""

import json
import os
import subprocess
import sys
import threading

import paho.mqtt.client as mqtt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from host_tests.bridgekit import T0, BridgeProc, Publisher, Recorder, bridge_status, values, wait_for
from streetnode.common.paths import REPO
from streetnode.integrator.delivery import MAX_RANGES, DeliveryState, Ranges
from streetnode.integrator.readings import Malformed, parse_data

REGISTER = ("id,site,lat,lon,board,sensors,firmware,date,sensor_community\n"
            "ha-1,Rathausplatz,50.87,8.02,esp32-devkitc,air:bme280@i2c0;pm:sps30@i2c0,0.3.1,2026-12-01T00:00:00Z,esp32-123456\n"
            "ha-2,,,,pico-w,air:bme280@i2c0,0.3.1,2026-12-01T00:00:00Z,\n")  # fmt: skip


class Retained:
    """Everything under a topic filter, latest per topic (retained configs included)."""

    def __init__(self, broker, topic):
        self.lock = threading.Lock()
        self.latest = {}
        self.count = 0
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.c.on_message = self._on
        self.c.connect(broker.host, broker.port)
        self.c.subscribe(topic, qos=1)
        self.c.loop_start()

    def _on(self, c, u, m):
        with self.lock:
            self.latest[m.topic] = m.payload
            self.count += 1

    def configs(self):
        with self.lock:
            return {t: json.loads(p) for t, p in self.latest.items() if p and t.endswith("/config")}

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


def test_home_assistant_discovery(mosquitto, tmp_path):
    ha_python = home_assistant_python()
    reg = tmp_path / "fleet-register.csv"
    reg.write_text(REGISTER)
    bridge = BridgeProc(mosquitto, tmp_path / "bridge", ["homeassistant"], "--register", str(reg)).start()
    ha = Retained(mosquitto, "homeassistant/#")
    pub = Publisher(mosquitto)
    samples = {}
    try:
        pub.send("streetnode/ha-1/status", json.dumps({"state": "online", "fw": "0.3.1"}), retain=True)
        for seq in (1, 2):  # readings 10 s apart: expire_after three intervals
            body = {"seq": seq, "ts": T0 + 10 * seq, "synced": True,
                    "sensors": {"air": values("ha-1", seq), "pm": {"pm1_0": 2.0, "pm2_5": 3.5, "pm10": 7.25}}}  # fmt: skip
            pub.send("streetnode/ha-1/data", json.dumps(body))
            samples["ha-1"] = body
        body = {"seq": 1, "ts": None, "synced": False, "sensors": {"air": values("ha-2", 1)}}
        pub.send("streetnode/ha-2/data", json.dumps(body))
        samples["ha-2"] = body
        wait_for(lambda: len(ha.configs()) == 9 and ha.configs()["homeassistant/sensor/ha-1/air_temperature/config"]
                 ["expire_after"] == 30, 30, "9 discovery configs")  # fmt: skip
        configs = ha.configs()
        out = validate_with_home_assistant(ha_python, [[t, c, samples[t.split("/")[2]]] for t, c in configs.items()])
        assert out.returncode == 0 and "9 configs checked" in out.stdout, out.stdout + out.stderr
        t = configs["homeassistant/sensor/ha-1/pm_pm2_5/config"]
        assert t["device_class"] == "pm25" and t["unit_of_measurement"] == "µg/m³" and t["state_class"] == "measurement"
        assert t["state_topic"] == "streetnode/ha-1/data" and t["value_template"] == "{{ value_json.sensors['pm']['pm2_5'] }}"
        assert t["availability"][0]["topic"] == "streetnode/ha-1/status"
        assert t["device"] == {"identifiers": ["streetnode-ha-1"], "name": "ha-1", "manufacturer": "streetnode",
                               "model": "SPS30 on esp32-devkitc", "sw_version": "0.3.1", "suggested_area": "Rathausplatz"}  # fmt: skip
        assert configs["homeassistant/sensor/ha-2/air_pressure/config"]["device_class"] == "atmospheric_pressure"
        assert "suggested_area" not in configs["homeassistant/sensor/ha-2/air_pressure/config"]["device"]
        # Home Assistant restarts: every config again
        before = ha.count
        pub.send("homeassistant/status", "online")
        pub.reading("ha-2", 2, synced=False)
        wait_for(lambda: ha.count >= before + 9, 30, "the configs sent again")
        # the pm sensor leaves ha-1's config: its entities go
        pub.send("streetnode/ha-1/health", json.dumps({"uptime_s": 5, "sensors": {"air": "ok"}}))
        wait_for(lambda: not any("/ha-1/pm_" in t for t in ha.configs()), 30, "the pm entities removed")
        assert sum("/ha-1/air_" in t for t in ha.configs()) == 3
        late = Retained(mosquitto, "homeassistant/#")  # what a Home Assistant starting now would find
        wait_for(lambda: len(late.configs()) == 6, 15, "6 retained configs")
        late.close()
        assert "entity pm_pm10 removed" in bridge.output()
    finally:
        pub.close()
        ha.close()
        bridge.stop()


def home_assistant_python():
    """The Python that has Home Assistant's own code: STREETNODE_HA_PYTHON, else .venv-ha's
    (`make test` installs it; without it the test skips, and in CI that fails)."""
    python = os.environ.get("STREETNODE_HA_PYTHON") or os.path.join(REPO, ".venv-ha", "bin", "python")
    if not os.path.exists(python):
        pytest.skip("Home Assistant's own code is not installed: make .venv-ha/.installed-stamp (about 20 s)")
    return python


def validate_with_home_assistant(python, items):
    """host_tests/ha_validate.py run by Home Assistant's Python on [[topic, config, sample payload]]."""
    return subprocess.run([python, os.path.join(REPO, "host_tests", "ha_validate.py")], input=json.dumps(items),
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def test_home_assistants_own_code_refuses_what_it_would_refuse():
    """The check can fail: Home Assistant's schemas, unit table and template engine each
    refuse a config of the kind the bridge might get wrong, and pass the good one."""
    python = home_assistant_python()
    good = {"name": "x", "unique_id": "u", "state_topic": "a/b", "value_template": "{{ value_json.sensors['air']['h'] }}",
            "state_class": "measurement", "expire_after": 30, "device_class": "humidity",
            "unit_of_measurement": "%", "device": {"identifiers": ["d"]}}  # fmt: skip
    sample = {"seq": 1, "sensors": {"air": {"h": 45.5}}}
    bad = {"unit": {"unit_of_measurement": "%RH"}, "class": {"device_class": "pm2_5"}, "state": {"state_class": "avg"},
           "device": {"device": {"name": "no identifiers"}}, "wildcard": {"state_topic": "a/#/b"},
           "expire": {"expire_after": -1}, "unknown_key": {"value_json": "x"},
           "template": {"value_template": "{{ value_json.sensors['pm']['h'] }}"}}  # fmt: skip
    items = [["homeassistant/sensor/n/good/config", good, sample], ["homeassistant/sensor/n/o.k/config", good, sample]]
    items += [["homeassistant/sensor/n/%s/config" % k, dict(good, **v), sample] for k, v in bad.items()]
    out = validate_with_home_assistant(python, items)
    assert out.returncode == 1, out.stdout + out.stderr
    refused = {line.split("/")[3] for line in out.stdout.splitlines() if line.startswith("homeassistant/")}
    assert refused == set(bad) | {"o.k"}, out.stdout
    assert "%d configs checked with Home Assistant 2024.3.3's own code: %d problems" % (len(items), len(bad) + 1) in out.stdout


def test_sensor_community_push_format(mosquitto, tmp_path):
    reg = tmp_path / "fleet-register.csv"
    reg.write_text(REGISTER)
    rec = Recorder()
    bridge = BridgeProc(mosquitto, tmp_path / "bridge", ["sensor-community=" + rec.url], "--register", str(reg)).start()
    pub = Publisher(mosquitto)
    try:
        body = {"seq": 1, "ts": T0, "synced": True, "sensors": {
            "air": {"temperature": 21.5, "humidity": 45.25, "pressure": 1013.25},
            "pm": {"pm1_0": 3.1, "pm2_5": 5.25, "pm10": None}}}  # fmt: skip
        pub.send("streetnode/ha-1/data", json.dumps(body))
        pub.send("streetnode/ha-1/data", json.dumps(body))  # the node sends it again
        pub.reading("ha-2", 1)  # not opted in
        pub.send("streetnode/ha-1/data", json.dumps(dict(body, seq=2)))
        wait_for(lambda: len(rec.requests) >= 4, 30, "4 pushes")
        wait_for(lambda: '"forwarded": 3' in bridge.output() or "3 forwarded" in bridge.output(), 30, "3 handled")
        assert len(rec.requests) == 4, [r["body"] for r in rec.requests]
        first = {r["headers"]["X-Pin"]: r for r in rec.requests[:2]}
        assert set(first) == {"1", "11"}
        for r in rec.requests:
            assert r["headers"]["X-Sensor"] == "esp32-123456" and r["headers"]["Content-Type"] == "application/json"
        pm = json.loads(first["1"]["body"])
        assert pm["software_version"].startswith("streetnode")
        assert pm["sensordatavalues"] == [{"value_type": "P0", "value": "3.10"}, {"value_type": "P2", "value": "5.25"}]
        bme = json.loads(first["11"]["body"])["sensordatavalues"]
        assert sorted((v["value_type"], v["value"]) for v in bme) == [("humidity", "45.25"), ("pressure", "101325.00"),
                                                                       ("temperature", "21.50")]  # fmt: skip
    finally:
        pub.close()
        bridge.stop()
        rec.close()


def test_a_backlog_past_what_the_bridge_holds_stays_at_the_broker(mosquitto, tmp_path):
    """A backlog (here 300 readings sent while the bridge was away) comes in faster than the
    broker's in-flight window should allow (mosquitto 2.0.11 sends 20 more per PUBACK). The
    bridge holds at most --max-held of them, leaves the rest unacknowledged at the broker and
    connects again for them: every reading pushed once, none twice."""
    reg = tmp_path / "fleet-register.csv"
    reg.write_text(REGISTER)
    rec = Recorder()
    bridge = BridgeProc(mosquitto, tmp_path / "bridge", ["sensor-community=" + rec.url], "--register", str(reg),
                        "--max-held", "5")  # fmt: skip
    pub = Publisher(mosquitto)
    try:
        bridge.start()  # its persistent session exists: the broker keeps what comes while it is away
        bridge.stop()
        for seq in range(1, 301):
            pub.reading("ha-1", seq)
        bridge.start()
        forwarded = lambda: bridge_status(mosquitto).get("targets", {}).get("sensor-community", {}).get("forwarded")  # noqa: E731
        wait_for(lambda: len(rec.requests) >= 300 and forwarded() == 300, 120, "300 pushes")
        status = bridge_status(mosquitto)
        assert status["left_at_broker"] > 0, status  # the path under test was taken
        assert "left unacknowledged at the broker" in bridge.output()
        assert status["targets"]["sensor-community"] == {"forwarded": 300, "retried": 0, "dead_lettered": 0}
        assert len(rec.requests) == 300  # none twice (sensor.community has no lookup)
    finally:
        pub.close()
        bridge.stop()
        rec.close()


def test_sensor_community_refusal_is_a_dead_letter(mosquitto, tmp_path):
    reg = tmp_path / "fleet-register.csv"
    reg.write_text(REGISTER)
    rec = Recorder(status=400)
    bridge = BridgeProc(mosquitto, tmp_path / "bridge", ["sensor-community=" + rec.url], "--register", str(reg)).start()
    pub = Publisher(mosquitto)
    try:
        pub.reading("ha-1", 1)
        wait_for(lambda: bridge.dead_letters(), 30, "the dead letter")
        (d,) = bridge.dead_letters()
        assert d["target"] == "sensor-community" and "400" in d["reason"] and d["seq"] == 1
    finally:
        pub.close()
        bridge.stop()
        rec.close()


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "streetnode.cli", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=60)  # fmt: skip


def test_unit_file_runs_the_bridge_with_the_given_arguments():
    from streetnode.integrator import bridge
    from streetnode.technician.gateway import exec_start

    p = run_cli("bridge", "--broker", "mqtt.example.org:8883", "--ca", "/etc/streetnode/ca.pem", "--user", "bridge",
                "--password-file", "/etc/streetnode/bridge.pw", "--to", "sensorthings=https://sta.example.org/v1.1",
                "--to", "homeassistant", "--register", "/etc/streetnode/fleet-register.csv", "--unit")  # fmt: skip
    assert p.returncode == 0, p.stderr
    unit = p.stdout
    assert "StateDirectory=streetnode-bridge" in unit and "Restart=always" in unit and "User=streetnode-bridge" in unit
    assert "\nEnvironment=MALLOC_ARENA_MAX=%d\n" % bridge.MALLOC_ARENA_MAX in unit  # glibc's arenas, as benchmarked
    argv = exec_start(unit)
    assert argv[1:5] == ["-I", "-u", "-m", "streetnode.integrator.bridge"]
    import argparse

    parser = argparse.ArgumentParser()
    bridge.add_arguments(parser)
    args = parser.parse_args(argv[5:])
    assert not args.unit and args.state_dir == "/var/lib/streetnode-bridge" and args.broker == "mqtt.example.org:8883"
    assert args.to == ["sensorthings=https://sta.example.org/v1.1", "homeassistant"]
    assert args.password_file == "/etc/streetnode/bridge.pw"


@pytest.mark.parametrize("to, message", [
    ("sensorthings=ftp://x", "needs the service root"),
    ("influx=http://x", "the targets are"),
])  # fmt: skip
def test_bad_targets_are_usage_errors(to, message):
    p = run_cli("bridge", "--broker", "127.0.0.1:1", "--to", to)
    # a usage error: the subcommand's usage, then why on the last line
    assert p.returncode == 2 and message in p.stderr.strip().splitlines()[-1] and p.stderr.startswith("usage: streetnode bridge")


def test_sensor_community_without_opted_in_nodes_is_refused(tmp_path):
    p = run_cli("bridge", "--broker", "127.0.0.1:1", "--to", "sensor-community")
    assert p.returncode == 4 and "sensor_community" in p.stderr


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 3000), max_size=400))
def test_ranges_hold_exactly_the_seqs_added(seqs):
    r = Ranges()
    for s in seqs:
        r.add(s)
    assert all(s in r for s in seqs)
    assert sum(b - a + 1 for a, b in r.r) == len(set(seqs))
    assert all(r.r[i][1] + 1 < r.r[i + 1][0] for i in range(len(r.r) - 1))  # disjoint, not adjacent


def test_ranges_stay_small_and_forget_into_the_floor(tmp_path):
    """A node that lost every other reading: the gaps are forgotten oldest first, and a
    forgotten seq counts as uncertain (looked up at the server), never as new."""
    state = DeliveryState(tmp_path)
    state.mark_done("sensorthings", [("n", s) for s in range(1, 4 * MAX_RANGES, 2)])
    r = state.done["sensorthings"]["n"]
    assert len(r.r) == MAX_RANGES and r.floor > 0
    assert state.is_uncertain("sensorthings", "n", 2) and not state.is_uncertain("sensorthings", "n", 4 * MAX_RANGES - 2)
    assert state.is_done("sensorthings", "n", 4 * MAX_RANGES - 1)


def test_delivery_state_survives_a_restart(tmp_path):
    s = DeliveryState(tmp_path)
    s.mark_sent("sensorthings", [("n", 1), ("n", 2), ("n", 3)])
    s.mark_done("sensorthings", [("n", 2)])
    s.save()
    s2 = DeliveryState(tmp_path)
    assert s2.is_done("sensorthings", "n", 2) and not s2.is_done("sensorthings", "n", 1)
    assert s2.is_uncertain("sensorthings", "n", 1) and s2.is_uncertain("sensorthings", "n", 3)
    assert s2.is_uncertain("sensorthings", "other", 5)  # a node this state never delivered: looked up
    (tmp_path / "state.json").write_text("{not json")
    with pytest.raises(ValueError, match="cannot be read"):
        DeliveryState(tmp_path)


@pytest.mark.parametrize("payload, reason", [
    (b'{"seq": 0, "sensors": {}}', "seq must be"),
    (b'{"seq": true, "sensors": {}}', "seq must be"),
    (b'{"seq": 1, "ts": -5, "sensors": {}}', "ts must be"),
    (b'{"seq": 1, "synced": "yes", "sensors": {}}', "synced"),
    (b'{"seq": 1, "sensors": []}', "sensors must be"),
    (b'{"seq": 1, "sensors": {"air": {"t": [1]}}}', "number or null"),
    (b'{"seq": 1, "sensors": {"air": {"t": Infinity}}}', "finite"),
    (b'{"seq": 1, "sensors": {"a/b": {"t": 1}}}', "sensor name"),
])  # fmt: skip
def test_payload_checks(payload, reason):
    with pytest.raises(Malformed, match=reason):
        parse_data("streetnode", "streetnode/n-1/data", payload, 0)


def test_payload_parsed():
    r = parse_data("streetnode", "streetnode/n-1/data",
                   b'{"seq": 7, "ts": 1764590000, "synced": true, "sensors": {"air": {"temperature": 21.5, "humidity": null}}}', 5)  # fmt: skip
    assert (r.node, r.seq, r.ts, r.clock_ok, r.values) == ("n-1", 7, 1764590000, True, [("air", "temperature", 21.5)])
    with pytest.raises(Malformed, match="topic"):
        parse_data("streetnode", "streetnode/N_1/data", b"{}", 0)
