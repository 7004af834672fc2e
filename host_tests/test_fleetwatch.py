"""The fleet model of the field commands (tools/streetnode/field/fleetwatch.py), fed with
hand-made messages: pure, no broker, no clock."""

import json

import pytest

from streetnode.field.fleetwatch import BOUNDS, Fleet, base_quantity, format_ranges, out_of_bounds, quiet, ranges

P = "streetnode"


class Feeder:
    """Publishes a node's messages into a Fleet with a jittering street of values."""

    def __init__(self, fleet, node="n1", interval=60.0, t0=1764270000.0):
        self.fleet, self.node, self.interval, self.t = fleet, node, interval, t0
        self.seq = 0
        self.k = 0

    def values(self):
        self.k += 1
        j = (self.k * 7919 % 13) / 100.0  # a little different every time, never twice alike in a row
        return {"air": {"temperature": 12.0 + j, "humidity": 60.0 - j, "pressure": 1001.0 + j / 10},
                "light": {"illuminance": 800.0 + 10 * j}}  # fmt: skip

    def status(self, state="online", boot_count=1, reset_cause="power_on", fw="0.1.0"):
        self.fleet.feed("%s/%s/status" % (P, self.node), json.dumps(
            {"state": state, "fw": fw, "boot_count": boot_count, "reset_cause": reset_cause}), self.t)  # fmt: skip

    def data(self, seq=None, sensors=None, ts="auto", advance=True, synced=True):
        if seq is None:
            self.seq += 1
            seq = self.seq
        if advance:
            self.t += self.interval
        body = {"seq": seq, "ts": int(self.t) if ts == "auto" else ts, "synced": synced,
                "sensors": sensors if sensors is not None else self.values()}  # fmt: skip
        self.fleet.feed("%s/%s/data" % (P, self.node), json.dumps(body), self.t + 0.05)
        return body

    def health(self, outbox=0, dropped=0, boot_count=1, errors=None, sensors=None, **extra):
        h = {"uptime_s": 100, "mem_free": 1000, "mem_alloc": 1000, "outbox": outbox, "dropped": dropped,
             "reconnects": 0, "errors": errors or {"air": 0, "light": 0}, "fw": "0.1.0", "boot_count": boot_count,
             "sensors": sensors or {"air": "ok", "light": "ok"}}  # fmt: skip
        h.update(extra)
        self.fleet.feed("%s/%s/health" % (P, self.node), json.dumps(h), self.t + 0.1)


def _kinds(fleet, node="n1"):
    return sorted(k for k, _ in fleet.nodes[node].alerts)


def test_bounds_table_covers_the_contract_quantities():
    assert set(BOUNDS) == {"temperature", "humidity", "pressure", "pm1_0", "pm2_5", "pm10", "co2", "illuminance"}
    assert out_of_bounds("temperature", 21.5) is None
    assert "outside" in out_of_bounds("temperature", 150.0)
    assert "outside" in out_of_bounds("humidity", -1)
    assert "outside" in out_of_bounds("pressure", 1013.25 * 10)
    assert "not a number" in out_of_bounds("co2", "400")
    assert "outside" in out_of_bounds("pm2_5_rh_corrected", -5)
    assert out_of_bounds("voltage", 99999) is None  # not ours to judge
    assert out_of_bounds("temperature", None) is None
    assert base_quantity("pm10_rh_corrected") == "pm10" and base_quantity("pm1_0") == "pm1_0"


def test_quiet_values_are_dark_clean_or_saturated():
    assert quiet("illuminance", 0.0) and not quiet("illuminance", 300.0)
    # a street lamp's steady light at night: the same count for hours, not a stuck chip
    assert quiet("illuminance", 5.0) and quiet("illuminance", 50.0) and not quiet("illuminance", 51.0)
    assert quiet("pm2_5", 1) and not quiet("pm2_5", 12)
    assert quiet("humidity", 100.0) and not quiet("humidity", 60.0)
    assert not quiet("temperature", 0.0)


def test_ranges_and_their_text():
    assert ranges([1, 2, 3, 5, 7, 8]) == [(1, 3), (5, 5), (7, 8)]
    assert ranges([]) == []
    assert format_ranges([(1, 3), (5, 5)]) == "1-3, 5"
    assert format_ranges([(i, i) for i in range(0, 20, 2)], limit=3) == "0, 2, 4, … 7 more"


def test_healthy_node_raises_nothing():
    f = Fleet(P)
    n = Feeder(f)
    n.status()
    for i in range(200):
        n.data()
        if i % 10 == 0:
            n.health()
        assert f.tick(n.t + 1) == []
    node = f.nodes["n1"]
    assert node.alerts == {}
    assert node.missing() == [] and node.duplicates == 0
    assert node.interval_s() == pytest.approx(60.0)
    assert set(node.sensors) == {"air", "light"}


def test_unknown_topics_and_bad_payloads_are_ignored():
    f = Fleet(P)
    assert f.feed("other/n1/data", b"{}", 1.0) is None
    assert f.feed("streetnode/n1/cmd", b'{"id": "1", "cmd": "health"}', 1.0) is None
    assert f.feed("streetnode/n1/data", b"not json", 1.0) is None
    assert f.feed("streetnode/n1/data", b"[1, 2]", 1.0) is None
    assert f.feed("streetnode/n1/data", b'{"seq": "7"}', 1.0) == "n1"
    assert f.malformed == 3
    assert f.nodes["n1"].seqs == {}


def test_redelivery_of_the_same_seq_is_harmless():
    f = Fleet(P)
    n = Feeder(f)
    n.status()
    for _ in range(5):
        body = n.data()
    f.feed("streetnode/n1/data", json.dumps(body), n.t + 1)  # QoS 1 redelivery
    assert f.nodes["n1"].duplicates == 1
    assert f.tick(n.t + 2) == []
    assert f.nodes["n1"].missing() == []


def test_hole_filled_by_the_backlog_is_not_a_gap():
    f = Fleet(P)
    n = Feeder(f)
    n.status()
    for _ in range(3):
        n.data()
    # an outage: 4..6 wait in the outbox; 7 is published first (fresh first), then the backlog
    n.seq = 6
    n.data()
    n.health(outbox=3)  # still draining
    assert f.nodes["n1"].missing() == [4, 5, 6]
    assert "gap" not in _kinds(f) and f.tick(n.t + 10) == []
    for s in (4, 5, 6):
        n.data(seq=s, advance=False)
    n.health(outbox=0)
    assert f.tick(n.t + 30) == []
    assert f.nodes["n1"].missing() == []


def test_lost_readings_are_counted_once_the_outbox_is_empty():
    f = Fleet(P, stuck_n=50)
    n = Feeder(f, interval=1.0)
    n.status()
    for _ in range(10):
        n.data()
    n.seq = 15  # 11..15 dropped by a full outbox
    for _ in range(3):
        n.data()
    n.health(outbox=0, dropped=5)
    assert f.tick(n.t + 0.5) == []  # in-flight data may still overtake: not yet
    events = f.tick(n.t + 3)
    assert [(e.what, e.kind) for e in events] == [("alert", "gap")]
    assert "5 reading(s) lost: seq 11-15" in events[0].detail and "dropped 5" in events[0].detail
    assert sorted(f.nodes["n1"].lost) == [11, 12, 13, 14, 15]
    # more losses update the alert, and say so
    n.seq = 25
    n.data()
    n.health(outbox=0, dropped=7)
    events = f.tick(n.t + 3)
    assert [(e.what, e.kind) for e in events] == [("alert", "gap")]
    assert "12 reading(s) lost: seq 11-15, 19-25" in events[0].detail


def test_a_hole_older_than_the_grace_period_is_lost_without_health():
    f = Fleet(P, gap_grace_s=100, gap_hold_s=1000, silence_factor=1000)
    n = Feeder(f)
    n.status()
    n.data()
    n.data(seq=3)
    f.tick(n.t)
    assert f.tick(n.t + 50) == []
    events = f.tick(n.t + 101)
    assert [e.kind for e in events] == ["gap"] and "seq 2" in events[0].detail
    # the gap alert clears after the hold time without new losses
    events = f.tick(n.t + 1200)
    assert [(e.what, e.kind) for e in events if e.kind == "gap"] == [("clear", "gap")]


def test_seq_restarting_after_the_outbox_was_erased_is_not_a_gap():
    f = Fleet(P)
    n = Feeder(f)
    n.status(boot_count=4)
    for _ in range(30):
        n.data()
    n.status(boot_count=5)
    n.seq = 0
    for _ in range(5):
        n.data()  # 1..5 again, with other times
    node = f.nodes["n1"]
    assert node.seq_resets == 1
    assert sorted(node.seqs) == [1, 2, 3, 4, 5]
    assert len(node.all_seqs()) == 30
    events = f.tick(n.t + 1)
    assert [e.kind for e in events] == ["seq_reset"]
    assert "gap" not in _kinds(f)


def test_lower_seq_after_a_reboot_is_the_backlog_not_a_gap():
    f = Fleet(P)
    n = Feeder(f)
    n.status(boot_count=1)
    for _ in range(5):
        n.data()
    n.seq = 7
    n.data()  # 6, 7 still in the outbox across the reboot
    n.status(boot_count=2, reset_cause="soft")
    n.data(seq=6, advance=False)
    n.data(seq=7, advance=False)
    n.health(outbox=0, boot_count=2)
    assert f.tick(n.t + 5) == []
    assert f.nodes["n1"].missing() == [] and f.nodes["n1"].seq_resets == 0


def test_silent_node_alerts_after_its_interval_and_clears():
    f = Fleet(P, silence_factor=3, min_silence_s=5)
    n = Feeder(f, interval=60.0)
    n.status()
    for _ in range(5):
        n.data()
    assert f.tick(n.t + 120) == []  # 2 intervals: late, not silent
    events = f.tick(n.t + 200)
    assert [(e.what, e.kind) for e in events] == [("alert", "silent")]
    assert "interval 60 s" in events[0].detail
    n.status("offline")
    f.tick(n.t + 250)
    assert "status offline" in f.nodes["n1"].alerts[("silent", "")].detail
    n.status("online")
    n.t += 300
    n.data(advance=False)
    events = f.tick(n.t + 1)
    assert sorted((e.what, e.kind) for e in events) == [("clear", "offline"), ("clear", "silent")]


def test_interval_learnt_from_arrivals_without_a_clock():
    f = Fleet(P, min_silence_s=0.5)
    n = Feeder(f, interval=0.2)
    n.status()
    for _ in range(10):
        n.data(ts=None, synced=False)
    assert f.nodes["n1"].interval_s() == pytest.approx(0.2)
    assert f.tick(n.t + 0.4) == []
    assert [e.kind for e in f.tick(n.t + 0.7)] == ["silent"]


def test_interval_given_for_the_fleet_wins():
    f = Fleet(P, interval_s=10.0, min_silence_s=1)
    n = Feeder(f, interval=60.0)
    n.status()
    n.data()
    n.data()
    assert [e.kind for e in f.tick(n.t + 31)] == ["silent"]


def test_stuck_sensor_alerts_after_n_identical_readings():
    f = Fleet(P, stuck_n=10)
    n = Feeder(f)
    n.status()
    frozen = {"temperature": 17.31, "humidity": 55.2, "pressure": 990.1}
    for i in range(9):
        n.data(sensors={"air": frozen, "light": n.values()["light"]})
    assert f.tick(n.t) == []
    n.data(sensors={"air": frozen, "light": n.values()["light"]})
    events = f.tick(n.t)
    assert [(e.kind, e.subject) for e in events] == [("stuck", "air")]
    assert "10 readings" in events[0].detail and "temperature 17.31" in events[0].detail
    n.data()
    assert [(e.what, e.kind) for e in f.tick(n.t)] == [("clear", "stuck")]


def test_one_changing_quantity_means_not_stuck():
    f = Fleet(P, stuck_n=5)
    n = Feeder(f)
    n.status()
    for i in range(20):
        n.data(sensors={"air": {"temperature": 17.31, "humidity": 55.2, "pressure": 990.1 + i / 100}})
    assert f.tick(n.t) == []


def test_darkness_and_clean_air_are_not_stuck():
    f = Fleet(P, stuck_n=5)
    n = Feeder(f)
    n.status()
    for _ in range(20):
        n.data(sensors={"light": {"illuminance": 0.0}, "pm": {"pm1_0": 0, "pm2_5": 1, "pm10": 2}})
    assert f.tick(n.t) == []


def test_a_street_lamps_steady_light_is_not_stuck_but_a_frozen_day_is():
    f = Fleet(P, stuck_n=5)
    lamp, day = Feeder(f, "lamp"), Feeder(f, "day")
    lamp.status()
    day.status()
    for _ in range(20):
        lamp.data(sensors={"light": {"illuminance": 5.0}})
        day.data(sensors={"light": {"illuminance": 812.0}})
    assert [(e.node, e.kind) for e in f.tick(day.t) if e.what == "alert"] == [("day", "stuck")]


def test_out_of_bounds_alert_and_clear():
    f = Fleet(P)
    n = Feeder(f)
    n.status()
    n.data(sensors={"air": {"temperature": 150.0, "humidity": 50.0, "pressure": 1000.0}})
    events = f.tick(n.t)
    assert [(e.kind, e.subject) for e in events] == [("bounds", "air")]
    assert "temperature 150 °C outside -40..60" in events[0].detail
    n.data()
    assert [(e.what, e.kind) for e in f.tick(n.t)] == [("clear", "bounds")]


def test_sensor_without_values_alerts_unless_warming_up():
    f = Fleet(P, stuck_n=3)
    n = Feeder(f)
    n.status()
    nulls = {"pm1_0": None, "pm2_5": None, "pm10": None}
    n.health(sensors={"pm": "warmup"}, errors={"pm": 0})
    for _ in range(5):
        n.data(sensors={"pm": nulls})
    assert f.tick(n.t) == []
    n.health(sensors={"pm": "failing"}, errors={"pm": 4})
    events = f.tick(n.t)
    assert [(e.kind, e.subject) for e in events] == [("no_values", "pm")]
    assert "state failing" in events[0].detail


def test_reboot_loop_from_the_boot_count():
    f = Fleet(P, reboot_k=3, reboot_window_s=600)
    n = Feeder(f)
    n.status(boot_count=10)  # a node with a long life: history is not a loop
    assert f.tick(n.t) == []
    for b in (11, 12):
        n.t += 60
        n.status(boot_count=b, reset_cause="soft")
    assert f.tick(n.t) == []
    n.t += 60
    n.health(boot_count=13)
    events = f.tick(n.t)
    assert [e.kind for e in events] == ["reboot_loop"]
    assert "3 reboots" in events[0].detail and "boot count 13" in events[0].detail
    events = f.tick(n.t + 700)
    assert [(e.what, e.kind) for e in events] == [("clear", "reboot_loop")]


def test_alerts_are_per_node():
    f = Fleet(P, stuck_n=3)
    good, bad = Feeder(f, "good"), Feeder(f, "bad")
    good.status()
    bad.status()
    for _ in range(5):
        good.data()
        bad.data(sensors={"air": {"temperature": 5.0, "humidity": 5.0, "pressure": 900.0}})
    f.tick(bad.t)
    assert f.nodes["good"].alerts == {}
    assert list(f.nodes["bad"].alerts) == [("stuck", "air")]
    assert [a.node for a in f.alerts()] == ["bad"]


def test_unknown_option_is_refused():
    with pytest.raises(ValueError, match="stuck"):
        Fleet(P, stuck=3)


def test_node_summary_as_dict():
    f = Fleet(P)
    n = Feeder(f)
    n.status()
    n.data()
    n.data(seq=3)
    n.health(outbox=2)
    d = f.nodes["n1"].as_dict()
    assert d["state"] == "online" and d["seq"] == 3 and d["received"] == 2 and d["missing"] == 1
    assert d["outbox"] == 2 and set(d["readings"]) == {"air", "light"}
    json.dumps(d)


def test_sensor_starting_up_is_not_a_sensor_without_values():
    nulls = {"co2": None, "temperature": None, "humidity": None}
    f = Fleet(P, stuck_n=3)
    n = Feeder(f, interval=0.5)
    n.status()
    for _ in range(12):  # 6 s of nulls at 0.5 s: an SCD4x's first measurement takes 5 s
        n.data(sensors={"co2": nulls})
    assert f.tick(n.t) == []
    f = Fleet(P, stuck_n=3, no_values_s=2.0)
    n = Feeder(f, interval=0.5)
    n.status()
    for _ in range(12):
        n.data(sensors={"co2": nulls})
    assert [(e.kind, e.subject) for e in f.tick(n.t)] == [("no_values", "co2")]


def test_events_text_and_dict():
    f = Fleet(P, stuck_n=2)
    n = Feeder(f)
    n.status()
    for _ in range(3):
        n.data(sensors={"air": {"temperature": 1.0}})
    (ev,) = f.tick(n.t)
    assert ev.text() == "ALERT n1 stuck air: same values 3 readings in a row (temperature 1)"
    d = ev.as_dict()
    assert d["event"] == "alert" and d["node"] == "n1" and d["kind"] == "stuck" and d["subject"] == "air"
    (alert,) = f.alerts()
    assert alert.as_dict()["since"] == n.t and alert.text().startswith("n1 stuck air:")


def test_repeats_faster_than_the_sensor_measures_are_not_stuck():
    # An SCD4x measures every 5 s: a node sampling every 0.5 s reads each value 10 times.
    f = Fleet(P, stuck_n=5, stuck_s=30)
    n = Feeder(f, interval=0.5)
    n.status()
    for i in range(40):
        v = 420 + i // 10
        n.data(sensors={"co2": {"co2": v, "temperature": 20.0 + v / 100, "humidity": 50.0 - v / 100}})
    assert f.tick(n.t) == []
    for _ in range(70):  # now frozen for 35 s
        n.data(sensors={"co2": {"co2": 999, "temperature": 25.0, "humidity": 40.0}})
    assert [(e.kind, e.subject) for e in f.tick(n.t)] == [("stuck", "co2")]
