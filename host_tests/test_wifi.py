"""A node with a (simulated) radio: the board's WLAN code (firmware/net.py) on the real
MicroPython interpreter against the simulator's WLAN (hal/sim/wlan.py), its MQTT socket
going through that radio to a real mosquitto. Through a Wi-Fi outage of some seconds and
an access point that then refuses for a while: no reading lost, the loop sleeps while the
radio is down (loop passes counted by the node itself), health reports the radio, and
readings before the first NTP answer carry ts null."""

import time

import pytest

from host_tests.fleet import Collector, missing, node_config

WIFI = {"ssid": "city-iot", "password": "secret-123"}


@pytest.fixture
def collector(mosquitto):
    c = Collector(mosquitto)
    yield c
    c.close()


def test_a_wifi_outage_and_a_refusing_ap_lose_no_reading(mosquitto, collector, runner):
    node = runner("n1")
    faults = [
        {"kind": "ntp_silent", "at_s": 0, "for_s": 2},  # the first readings have no time
        {"kind": "wlan_down", "at_s": 10, "for_s": 6},  # the AP goes
        {"kind": "ap_refuses", "at_s": 16, "for_s": 5},  # and refuses when it is back
    ]
    cfg = node_config(
        "n1", mosquitto, interval_s=0.2, wifi=WIFI, ntp={"host": "pool.ntp.org"},
        sim={"seed": 5, "faults": faults, "wlan": {"assoc_ms": 800, "dhcp_ms": 300}},
    )  # fmt: skip
    node.write_config(cfg)
    started = time.monotonic()
    node.start()
    collector.wait(lambda: collector.health.get("n1"), 60, "the first health")
    before = collector.health["n1"][0]
    assert before["wlan"]["state"] == "up" and before["wlan"]["drops"] == 0
    assert -100 < before["rssi"] < -30 and before["rssi"] == before["wlan"]["rssi"]
    # The outage: health stops (nothing reaches the broker), then resumes after the drop.
    collector.wait(lambda: any(h["wlan"]["drops"] == 1 for h in collector.health["n1"]), 120, "health after the drop")
    after = next(h for h in collector.health["n1"] if h["wlan"]["drops"] == 1)
    assert time.monotonic() - started >= 16  # it came back after the outage, not before
    assert after["wlan"]["connects"] == 2 and after["wlan"]["down_s"] >= 6
    assert after["reconnects"] >= 1
    # Loop passes per second between the last health before the outage and the first
    # after it: sampling 5 times a second, the radio looked at every 100 ms while an
    # attempt runs, sleeping otherwise. A loop spinning through the outage makes
    # hundreds of thousands.
    last_before = [h for h in collector.health["n1"] if h["wlan"]["drops"] == 0][-1]
    span_s = max(1, after["uptime_s"] - last_before["uptime_s"])
    per_s = (after["loop_passes"] - last_before["loop_passes"]) / span_s
    assert span_s >= 6 and per_s < 60, (span_s, per_s)
    # The backlog of the outage drains; no seq is missing.
    collector.wait(lambda: any(h["outbox"] == 0 for h in collector.health["n1"] if h["wlan"]["drops"] == 1), 90,
                   "the backlog drained")  # fmt: skip
    # NTP answers again after its 2 s of silence; the node's retry comes after a jittered
    # backoff (and again after the reconnect): wait for the first synced reading.
    collector.wait(lambda: any(p["synced"] for p in collector.data["n1"]), 120, "a reading with the NTP time")
    node.stop()
    seqs = collector.seqs("n1")
    assert missing(seqs) == [] and min(seqs) == 1
    data = collector.data["n1"]
    unsynced = [p for p in data if not p["synced"]]
    synced = [p for p in data if p["synced"]]
    assert unsynced and synced and data[0]["synced"] is False
    assert all(p["ts"] is None for p in unsynced)
    assert all(isinstance(p["ts"], int) for p in synced)
    assert "step failed" not in node.output()
