"""A dead fleet is not a healthy one: against a real mosquitto holding the retained
`offline` statuses of nodes that died long ago, monitor --once, check and report say
so, with "last seen" from the nodes' own timestamps (not from when the retained
message reached the tool), and exit non-zero."""

import json
import time

import paho.mqtt.client as paho

from streetnode import cli
from streetnode.field import report

AGES = {"old-1": 3600, "old-2": 45 * 60, "old-3": 2 * 86400}  # seconds since each was last heard


def _dead():
    """The nodes' last timestamps, from now (not from when this module was imported: the
    whole suite runs for minutes before these tests do)."""
    now = time.time()
    return {node: now - age for node, age in AGES.items()}


def _retain(broker, statuses):
    c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="retainer")
    c.connect(broker.host, broker.port)
    c.loop_start()
    for node, ts in statuses.items():
        body = {"state": "offline", "fw": "0.9.0", "boot_count": 4, "reset_cause": "hard", "ts": int(ts)}
        c.publish("streetnode/%s/status" % node, json.dumps(body), qos=1, retain=True).wait_for_publish(10)
    c.disconnect()
    c.loop_stop()


def test_monitor_once_alerts_on_a_dead_fleet(mosquitto, capsys):
    _retain(mosquitto, _dead())
    code = cli.main(["monitor", "--broker", "%s:%d" % (mosquitto.host, mosquitto.port), "--once", "--settle", "1"])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "3 node(s), 3 alerting" in out, out
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("old-")}
    assert "offline" in lines["old-1"] and " 60m " in lines["old-1"], out  # seen from the node's ts
    assert " 45m " in lines["old-2"] and " 2d " in lines["old-3"], out
    assert "offline" in lines["old-1"].split()[-1], out  # the alerts column names it


def test_check_reports_how_long_ago_a_dead_node_was_heard(mosquitto, capsys):
    _retain(mosquitto, {"old-1": _dead()["old-1"]})
    code = cli.main(["check", "old-1", "--broker", "%s:%d" % (mosquitto.host, mosquitto.port), "--timeout", "2", "--quiet"])
    out = capsys.readouterr().out
    assert code == 3, out
    assert "offline" in out and "last heard 60m ago" in out, out


def test_report_replays_retained_statuses_by_their_timestamps(mosquitto, tmp_path, capsys):
    dead = _dead()
    _retain(mosquitto, dead)
    cap = tmp_path / "cap.jsonl"
    code = cli.main(["monitor", "--broker", "%s:%d" % (mosquitto.host, mosquitto.port), "--once", "--settle", "1",
                     "--capture", str(cap)])
    assert code == 1
    rec = [json.loads(line) for line in cap.read_text().splitlines() if '"topic"' in line]
    assert rec and all(r.get("retained") for r in rec)
    summary = report.summarise(report.load(str(cap)))
    assert abs(summary["nodes"]["old-1"]["last_seen"] - int(dead["old-1"])) < 2
    assert summary["nodes"]["old-1"]["state"] == "offline"
    assert "offline" in summary["nodes"]["old-1"]["alerts"]
