"""`streetnode check` against real nodes (the firmware on the real MicroPython, simulated
sensors) on a real mosquitto: a healthy node passes, a faulty one fails with the reason,
a missing one exits with the not-found code."""

import io
import json

import pytest

from host_tests.fieldfleet import Fleet
from streetnode.field import check
from streetnode import cli


@pytest.fixture
def fleet(tmp_path, mpy_tree, mosquitto):
    f = Fleet(tmp_path, mpy_tree, mosquitto)
    yield f
    f.stop()


def _check(broker, node, *extra):
    out = io.StringIO()
    args = cli.build_parser().parse_args(
        ["check", node, "--broker", "%s:%d" % (broker.host, broker.port), "--timeout", "20", "--readings", "5", "--stuck-s", "0.5", *extra]
    )
    code = check.main(args, out=out, err=io.StringIO())
    return code, out.getvalue()


def _by_name(result):
    return {c["check"]: c for c in result["checks"]}


def test_healthy_node_passes_and_faulty_ones_fail_with_the_reason(fleet, mosquitto, tmp_path):
    fleet.add("good")
    fleet.add("frozen", faults=[{"sensor": "air", "kind": "frozen", "at_s": 0}])
    fleet.add("broken", faults=[{"sensor": "light", "kind": "eio", "at_s": 0}])
    fleet.start()

    report = tmp_path / "good.json"
    code, text = _check(mosquitto, "good", "--json", "--report", str(report))
    result = json.loads(text)
    assert code == 0, text
    assert result["result"] == "pass"
    checks = _by_name(result)
    assert set(checks) == {"online", "firmware", "clock", "sensor air", "sensor light", "outbox", "signal",
                           "reboots", "config"}  # fmt: skip
    assert all(c["result"] in ("pass", "n/a") for c in checks.values()), checks
    assert checks["signal"] == {"check": "signal", "result": "n/a", "detail": "n/a (no radio)"}
    assert checks["firmware"]["detail"].startswith(check.firmware_version())
    assert "temperature" in checks["sensor air"]["detail"] and "°C" in checks["sensor air"]["detail"]
    saved = json.loads(report.read_text())
    assert saved["result"] == "pass" and saved["node"] == "good" and "checked_at" in saved

    code, text = _check(mosquitto, "frozen")
    assert code == 1, text
    line = [x for x in text.splitlines() if "sensor air" in x][0]
    assert line.startswith("FAIL") and "stuck" in line, text
    assert [x for x in text.splitlines() if "sensor light" in x][0].startswith("PASS")
    assert "RESULT: FAIL - 1 of" in text

    code, text = _check(mosquitto, "broken")
    assert code == 1, text
    line = [x for x in text.splitlines() if "sensor light" in x][0]
    assert line.startswith("FAIL") and "no values" in line and "(state absent)" in line, text

    code, text = _check(mosquitto, "good", "--expect-fw", "9.9.9")
    assert code == 1
    assert [x for x in text.splitlines() if "firmware" in x][0].startswith("FAIL")


def test_node_rebooting_during_the_check_fails(fleet, mosquitto):
    fleet.add("loop", faults=[{"sensor": "air", "kind": "brownout", "at_s": 1.5}])
    fleet.start()
    code, text = _check(mosquitto, "loop", "--readings", "12")
    assert code == 1, text
    line = [x for x in text.splitlines() if "reboots" in x][0]
    assert line.startswith("FAIL") and "rebooted" in line, text


def test_absent_node_is_not_found(mosquitto):
    out = io.StringIO()
    args = cli.build_parser().parse_args(
        ["check", "nobody", "--broker", "%s:%d" % (mosquitto.host, mosquitto.port), "--timeout", "1.5", "--json"]
    )
    code = check.main(args, out=out, err=io.StringIO())
    assert code == check.EXIT_NOT_FOUND == 3
    result = json.loads(out.getvalue())
    assert result["result"] == "not_found" and "nobody" in result["reason"]


def test_usage_errors_exit_2_and_help_has_examples(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["check", "lamp-1"])  # no --broker
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        cli.main(["check", "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert "examples:" in text and "exit codes:" in text
    assert cli.main(["check", "lamp-1", "--broker", "nonsense:port"]) == 2
    assert "--broker must be HOST:PORT" in capsys.readouterr().err


# -- the verdicts, from hand-made messages (no broker) -------------------------------------

T = 1795000000.0


def _session(readings=3, status=None, health=None, data=None, n_data=3):
    sent = []
    com = check.Commissioning("lamp-1", readings=readings, send=lambda topic, payload: sent.append((topic, payload)),
                              stuck_s=1.0)  # fmt: skip
    com.ask_health(T)
    st = {"state": "online", "fw": "0.1.0", "boot_count": 5, "reset_cause": "power_on"}
    st.update(status or {})
    com.feed("streetnode/lamp-1/status", json.dumps(st), T)
    for i in range(n_data):
        body = {"seq": 10 + i, "ts": int(T) + i, "synced": True,
                "sensors": {"air": {"temperature": 20.0 + i / 10, "humidity": 50.0 + i, "pressure": 1000.0 + i}}}  # fmt: skip
        body.update(data or {})
        com.feed("streetnode/lamp-1/data", json.dumps(body), T + i)
    h = {"outbox": 0, "dropped": 0, "errors": {"air": 0}, "fw": "0.1.0", "boot_count": 5, "sensors": {"air": "ok"},
         "config_error": None}  # fmt: skip
    h.update(health or {})
    com.feed("streetnode/lamp-1/health", json.dumps(h), T + 5)
    return com, sent


def _verdicts(com, **kw):
    return {i.name: (i.verdict(), i.detail) for i in com.judge(T + 6, "0.1.0", **kw)}


def test_all_good_passes_and_the_health_command_is_well_formed():
    com, sent = _session()
    v = _verdicts(com)
    assert all(x[0] == "PASS" for x in v.values()), v
    assert v["signal"] == ("PASS", "n/a (no radio)")
    assert com.waiting_for() == []
    (topic, payload), = sent
    assert topic == "streetnode/lamp-1/cmd"
    cmd = json.loads(payload)
    assert cmd["cmd"] == "health" and cmd["args"] == {} and cmd["id"].startswith("check-")
    from firmware import commands

    assert commands.parse(payload.encode())[1] == "health"  # the firmware accepts it


def test_each_failure_has_its_reason():
    v = _verdicts(_session(health={"rssi": -91})[0])
    assert v["signal"][0] == "FAIL" and "-91 dBm" in v["signal"][1]
    assert _verdicts(_session(health={"rssi": -60})[0])["signal"] == ("PASS", "-60 dBm (at least -80 dBm)")
    assert _verdicts(_session(health={"rssi": -85})[0], min_rssi=-90)["signal"][0] == "PASS"
    v = _verdicts(_session(status={"reset_cause": "wdt"})[0])
    assert v["reboots"][0] == "FAIL" and "watchdog" in v["reboots"][1]
    v = _verdicts(_session(health={"outbox": 12})[0])
    assert v["outbox"] == ("FAIL", "12 record(s) waiting to be published")
    v = _verdicts(_session(health={"config_error": "interval_s: must be a number"})[0])
    assert v["config"][0] == "FAIL" and "interval_s" in v["config"][1]
    v = _verdicts(_session(data={"ts": None, "synced": False})[0])
    assert v["clock"][0] == "FAIL" and "not synced" in v["clock"][1]
    v = _verdicts(_session(status={"fw": "0.0.9"})[0])
    assert v["firmware"] == ("FAIL", "0.0.9, expected 0.1.0")
    v = _verdicts(_session(status={"state": "offline"})[0])
    assert v["online"] == ("FAIL", "status says offline")
    hot = {"sensors": {"air": {"temperature": 99.0, "humidity": 50.0, "pressure": 1000.0}}}
    v = _verdicts(_session(data=hot)[0])
    assert v["sensor air"][0] == "FAIL" and "implausible: temperature 99 °C outside -40..60" in v["sensor air"][1]
    dead = {"sensors": {"air": {"temperature": None, "humidity": None, "pressure": None}}}
    v = _verdicts(_session(data=dead, health={"sensors": {"air": "failing"}})[0])
    assert v["sensor air"] == ("FAIL", "no values in 3 reading(s) (state failing)")
    stuck = {"sensors": {"air": {"temperature": 20.0, "humidity": 50.0, "pressure": 1000.0}}}
    v = _verdicts(_session(data=stuck)[0])
    assert v["sensor air"][0] == "FAIL" and v["sensor air"][1].startswith("stuck: the same values in 3 readings")
    # a BMP280 has no humidity channel: null there is fine
    bmp = {"sensors": {"air": {"temperature": 20.5, "humidity": None, "pressure": 1000.5}}}
    com, _ = _session(data=bmp)
    com.feed("streetnode/lamp-1/data", json.dumps({"seq": 20, "ts": int(T), "synced": True, "sensors": {
        "air": {"temperature": 20.7, "humidity": None, "pressure": 1000.9}}}), T + 4)  # fmt: skip
    v = _verdicts(com)
    assert v["sensor air"][0] == "PASS" and "humidity n/a" in v["sensor air"][1]


def test_error_count_rising_during_the_check_fails():
    com, _ = _session()
    com.feed("streetnode/lamp-1/health", json.dumps({"outbox": 0, "errors": {"air": 3}, "boot_count": 5}), T + 6)
    v = _verdicts(com)
    assert v["sensor air"] == ("FAIL", "error count rose from 0 to 3 during the check")


def test_reboot_during_the_check_fails_and_asks_for_health_again():
    com, sent = _session()
    com.feed("streetnode/lamp-1/status", json.dumps({"state": "offline", "boot_count": 5}), T + 7)
    com.feed("streetnode/lamp-1/status", json.dumps({"state": "online", "boot_count": 6, "reset_cause": "soft"}), T + 8)
    assert len(sent) == 2  # the node missed the first command while it was away
    v = _verdicts(com)
    assert v["reboots"][0] == "FAIL" and "rebooted 1 time(s) during the check" in v["reboots"][1]


def test_waiting_for_says_what_is_missing():
    com = check.Commissioning("lamp-1", readings=3, stuck_s=30)
    assert com.waiting_for() == ["status"]
    assert not com.live()
    com.feed("streetnode/lamp-1/status", json.dumps({"state": "offline", "boot_count": 2}), T)
    assert not com.live()  # a retained offline status is no sign of life
    assert "online status" in com.waiting_for()
    com.feed("streetnode/lamp-1/status", json.dumps({"state": "online", "boot_count": 3}), T + 1)
    assert com.live()
    assert com.waiting_for() == ["readings 0/3", "health"]
    assert com.progress() == "lamp-1 (online): waiting for readings 0/3, health"
    for i in range(3):
        com.feed("streetnode/lamp-1/data", json.dumps({"seq": i + 1, "ts": int(T), "sensors": {}}), T + 2 + i)
    assert com.waiting_for()[0] == "readings over 30 s (to tell a stuck sensor)"
    com.feed("streetnode/lamp-1/data", json.dumps({"seq": 9, "ts": int(T), "sensors": {}}), T + 40)
    assert com.waiting_for() == ["health"]


def test_countdown_in_place_on_a_tty_and_lines_otherwise():
    class TTY(io.StringIO):
        def isatty(self):
            return True

    tty = TTY()
    c = check.Countdown(tty)
    c.show("waiting for x", 10)
    c.show("waiting for x", 9)
    c.done()
    assert tty.getvalue().count("\r\x1b[K") == 3 and "\n" not in tty.getvalue()
    plain = io.StringIO()
    c = check.Countdown(plain)
    for left in (10, 9.5, 9):
        c.show("waiting for x", left)
    c.show("waiting for y", 8)
    assert plain.getvalue().splitlines() == ["waiting for x  (10 s left)", "waiting for y  (8 s left)"]


def test_text_report_file(tmp_path):
    result = {"node": "lamp-1", "broker": "h:1", "prefix": "streetnode", "finished": T, "result": "pass",
              "checks": [{"check": "online", "result": "pass", "detail": "online"}]}  # fmt: skip
    path = tmp_path / "lamp-1.txt"
    check._write_report(str(path), result)
    text = path.read_text()
    assert text.startswith("Commissioning check, 2026-") and "PASS  online" in text and "RESULT: PASS" in text


def test_waits_for_sensors_that_are_starting_up():
    com = check.Commissioning("lamp-1", readings=3, stuck_s=0)
    com.feed("streetnode/lamp-1/status", json.dumps({"state": "online", "boot_count": 1}), T)
    com.feed("streetnode/lamp-1/health", json.dumps({"outbox": 0, "sensors": {"pm": "warmup", "co2": "ok"}}), T)
    nulls = {"pm": {"pm2_5": None}, "co2": {"co2": None}}
    for i in range(3):
        com.feed("streetnode/lamp-1/data", json.dumps({"seq": i + 1, "ts": int(T), "sensors": nulls}), T + i)
    assert com.waiting_for() == ["sensors starting up (pm)"]  # co2 says ok but gives nothing: no wait
    com.feed("streetnode/lamp-1/data", json.dumps({"seq": 4, "ts": int(T), "sensors": {
        "pm": {"pm2_5": None}, "co2": {"co2": 420}}}), T + 4)  # fmt: skip
    assert com.waiting_for() == ["sensors starting up (co2, pm)"]  # co2 started: wait for 3 of its readings
    com.feed("streetnode/lamp-1/health", json.dumps({"outbox": 0, "sensors": {"pm": "failing", "co2": "ok"}}), T + 4)
    for i in range(2):
        com.feed("streetnode/lamp-1/data", json.dumps({"seq": 5 + i, "ts": int(T), "sensors": {
            "pm": {"pm2_5": None}, "co2": {"co2": 421 + i}}}), T + 5 + i)  # fmt: skip
    assert com.waiting_for() == []
    v = {i.name: i for i in com.judge(T + 8)}
    assert v["sensor co2"].ok and not v["sensor pm"].ok


def test_credentials_from_a_password_file(tmp_path, capsys):
    from streetnode.common import broker as _broker

    if not _broker.find_mosquitto():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto); CI installs it")
    with _broker.Broker("mosquitto", users={"ops": "ops-pw"}) as b:
        good, bad = tmp_path / "good", tmp_path / "bad"
        good.write_text("ops-pw\n")
        bad.write_text("guess\n")
        base = ["check", "nobody", "--broker", "%s:%d" % (b.host, b.port), "--timeout", "1", "--quiet", "--user", "ops"]
        assert cli.main(base + ["--password-file", str(good)]) == check.EXIT_NOT_FOUND  # in, but no such node
        assert cli.main(base + ["--password-file", str(bad)]) == 1
        assert "refused the connection" in capsys.readouterr().err
        assert cli.main(base + ["--password-file", str(tmp_path / "missing")]) == 1
        assert "cannot read the password file" in capsys.readouterr().err
