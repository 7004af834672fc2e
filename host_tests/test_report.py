"""`streetnode report`: exact completeness numbers and gap ranges from a capture with
known gaps, one PNG per quantity, --since/--until, and a live listen of a real node."""

import json
import os

import pytest

from host_tests.fieldfleet import Fleet
from streetnode import cli
from streetnode.field import report

PNG = b"\x89PNG\r\n\x1a\n"
T0 = 1795000000.0  # 2026-11-19T...Z


def _write_capture(path):
    """n1: seqs 1..100 at 60 s with 10-14, 50 and 90-91 missing, 20 redelivered, a reboot
    (boot count 3 -> 4) at seq 60. n2: seqs 1..30 complete, then its outbox erased: 1..10
    again. Plus junk lines and an event line, as a real capture may hold."""
    lines = []

    def msg(t, topic, payload):
        lines.append(json.dumps({"t": t, "topic": topic, "payload": json.dumps(payload)}))

    msg(T0, "streetnode/n1/status", {"state": "online", "fw": "0.1.0", "boot_count": 3, "reset_cause": "power_on"})
    missing = set(range(10, 15)) | {50, 90, 91}
    for seq in range(1, 101):
        t = T0 + 60 * seq
        if seq == 60:
            msg(t - 1, "streetnode/n1/status", {"state": "online", "fw": "0.1.0", "boot_count": 4, "reset_cause": "soft"})
        if seq in missing:
            continue
        body = {"seq": seq, "ts": int(t), "synced": True, "sensors": {
            "air": {"temperature": 10 + seq / 10, "humidity": 60 - seq / 10, "pressure": 1000 + seq / 100},
            "co2": {"co2": 420 + seq, "temperature": 11 + seq / 10, "humidity": None}}}  # fmt: skip
        msg(t, "streetnode/n1/data", body)
        if seq == 20:
            msg(t + 1, "streetnode/n1/data", body)  # a QoS 1 redelivery
        if seq % 10 == 0:
            msg(t + 2, "streetnode/n1/health", {"outbox": 0, "dropped": 0, "boot_count": 4 if seq >= 60 else 3})
    for seq in list(range(1, 31)) + list(range(1, 11)):
        t = T0 + 10 * len(lines)
        msg(t, "streetnode/n2/data", {"seq": seq, "ts": int(t), "sensors": {"light": {"illuminance": 100.0 + seq}}})
    lines.append('{"t": 1, "event": "alert", "node": "n1", "kind": "gap", "subject": "", "detail": "x"}')
    lines.append("{broken line")
    lines.append(json.dumps({"t": T0, "topic": "streetnode/n1/cmd", "payload": "{}"}))
    path.write_text("\n".join(lines) + "\n")


def test_exact_completeness_gaps_reboots_and_plots(tmp_path, capsys):
    cap = tmp_path / "week.jsonl"
    _write_capture(cap)
    out = tmp_path / "rep"
    assert cli.main(["report", "--capture", str(cap), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "n1" in printed and "92/100" in printed
    data = json.loads((out / "summary.json").read_text())
    n1 = data["nodes"]["n1"]
    assert (n1["received"], n1["expected"], n1["missing"]) == (92, 100, 8)
    assert n1["completeness"] == 92.0
    assert n1["gaps"] == [[10, 14], [50, 50], [90, 91]]
    assert n1["duplicates"] == 1 and n1["reboots"] == 1 and n1["seq_resets"] == 0
    assert (n1["seq_first"], n1["seq_last"]) == (1, 100)
    assert n1["interval_s"] == pytest.approx(60.0)
    n2 = data["nodes"]["n2"]
    assert (n2["received"], n2["expected"], n2["missing"], n2["seq_resets"]) == (40, 40, 0, 1)
    # one PNG per quantity, with the PNG signature
    assert sorted(os.listdir(out / "n1")) == ["co2.png", "humidity.png", "pressure.png", "temperature.png"]
    assert sorted(os.listdir(out / "n2")) == ["illuminance.png"]
    for node, q in (("n1", "co2"), ("n1", "humidity"), ("n1", "pressure"), ("n1", "temperature"), ("n2", "illuminance")):
        blob = (out / node / (q + ".png")).read_bytes()
        assert blob[:8] == PNG and len(blob) > 2000
    assert sorted(data["plots"]) == sorted(["n1/co2.png", "n1/humidity.png", "n1/pressure.png", "n1/temperature.png",
                                            "n2/illuminance.png"])  # fmt: skip
    md = (out / "summary.md").read_text()
    assert "| 92 | 100 | 92.00 % | 8 | 10-14, 50, 90-91 | 1 | 1-100 |" in md
    assert "| 40 | 40 | 100.00 % | 0 | none | 0 | 1-30 (restarted 1×) |" in md


def test_since_and_until_cut_the_capture(tmp_path):
    cap = tmp_path / "week.jsonl"
    _write_capture(cap)
    msgs = report.load(str(cap), since=T0 + 60 * 41, until=T0 + 60 * 60 + 30)
    s = report.summarise(msgs)["nodes"]["n1"]
    assert (s["seq_first"], s["seq_last"]) == (41, 60)
    assert (s["received"], s["expected"], s["gaps"]) == (19, 20, [[50, 50]])


def test_parse_time():
    now = 1795000000.0
    assert report.parse_time("7d", now) == now - 7 * 86400
    assert report.parse_time("12h", now) == now - 12 * 3600
    assert report.parse_time("30m", now) == now - 1800
    assert report.parse_time("2026-11-20T00:00:00Z") == 1795132800.0
    assert report.parse_time("2026-11-20T01:00:00+01:00") == 1795132800.0
    assert report.parse_time("2026-11-20") == 1795132800.0
    with pytest.raises(ValueError, match="not a time"):
        report.parse_time("last tuesday")


def test_usage_and_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["report", "--help"])
    assert e.value.code == 0 and "examples:" in capsys.readouterr().out
    assert cli.main(["report", "--out", str(tmp_path)]) == 2
    assert "either --capture" in capsys.readouterr().err
    assert cli.main(["report", "--capture", str(tmp_path / "none.jsonl"), "--out", str(tmp_path)]) == 1
    assert "cannot read the capture" in capsys.readouterr().err
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert cli.main(["report", "--capture", str(empty), "--out", str(tmp_path)]) == 1
    assert "no node messages" in capsys.readouterr().err
    assert cli.main(["report", "--capture", str(empty), "--since", "soon"]) == 2


def test_live_listen_of_a_real_node(tmp_path, mpy_tree, mosquitto):
    fleet = Fleet(tmp_path, mpy_tree, mosquitto)
    fleet.add("n1")
    fleet.start()
    try:
        out = tmp_path / "live"
        code = cli.main(["report", "--broker", "%s:%d" % (mosquitto.host, mosquitto.port), "--duration", "3",
                         "--out", str(out)])  # fmt: skip
    finally:
        fleet.stop()
    assert code == 0
    data = json.loads((out / "summary.json").read_text())
    n1 = data["nodes"]["n1"]
    assert n1["received"] >= 5 and n1["missing"] == 0 and n1["completeness"] == 100.0
    assert (out / "capture.jsonl").exists()
    assert sorted(os.listdir(out / "n1")) == ["humidity.png", "illuminance.png", "pressure.png", "temperature.png"]
