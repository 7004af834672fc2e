"""`streetnode cmd`, `streetnode logs` and `streetnode retire` against real nodes (the
firmware on the MicroPython unix port) on a real mosquitto."""

import json
import time

import paho.mqtt.client as paho
import pytest

from host_tests.fleet import Collector, node_config
from host_tests.virtual_board import VirtualBoard
from streetnode import cli


def _wait(cond, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


@pytest.fixture
def two_nodes(runner, mosquitto):
    col = Collector(mosquitto)
    for name in ("lamp-1", "lamp-2"):
        r = runner(name)
        r.write_config(node_config(name, mosquitto, interval_s=0.5))
        r.start()
    col.wait(lambda: all(col.status.get(n) and col.status[n][-1]["state"] == "online" for n in ("lamp-1", "lamp-2")),
             30, "both nodes online")  # fmt: skip
    yield mosquitto
    col.close()


def _cli(argv, capsys):
    try:
        code = cli.main(argv)
    except SystemExit as e:
        code = e.code
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_cmd_sends_one_command_and_prints_the_result(two_nodes, capsys):
    b = ["--broker", "%s:%d" % (two_nodes.host, two_nodes.port)]
    code, out, err = _cli(["cmd", "lamp-1", "get_config"] + b, capsys)
    assert code == 0, (out, err)
    assert out.startswith("lamp-1  OK\n")
    assert json.loads(out.split("\n", 1)[1])["config"]["node_id"] == "lamp-1"
    code, out, err = _cli(["cmd", "lamp-1", "identify", "seconds=999"] + b, capsys)
    assert code == 1 and "FAILED  seconds must be in (0, 300]" in out, (out, err)
    code, out, err = _cli(["cmd", "lamp-1", "set_interval", "interval_s=2", "--json"] + b, capsys)
    assert code == 0 and json.loads(out)["results"]["lamp-1"]["ok"] is True, out
    # a group, with a summary; a node that does not exist does not answer
    code, out, err = _cli(["cmd", "--nodes", "lamp-1,lamp-2,lamp-9", "health", "--timeout", "3"] + b, capsys)
    assert code == 3, (out, err)
    assert "lamp-1  OK" in out and "lamp-2  OK" in out and "lamp-9  NO ANSWER" in out
    assert "health: 3 node(s), 2 ok, 0 failed, 1 no answer" in out
    code, out, err = _cli(["cmd", "--all", "health"] + b, capsys)
    assert code == 0 and "health: 2 node(s), 2 ok, 0 failed, 0 no answer" in out, (out, err)
    # checked before anything is sent: usage errors
    for argv, says in [(["cmd", "lamp-1", "set_interval"], "set_interval needs interval_s"),
                       (["cmd", "lamp-1", "set_interval", "interval_s=fast"], "is not a int/float"),
                       (["cmd", "lamp-1", "explode"], "unknown command 'explode'"),
                       (["cmd", "Lamp-1", "health"], "ids are lowercase")]:  # fmt: skip
        code, out, err = _cli(argv + b, capsys)
        assert code == 2 and says in err and "usage: streetnode cmd" in err, (argv, err)


def test_logs_over_mqtt_shows_the_lines_the_node_keeps(two_nodes, capsys):
    b = ["--broker", "%s:%d" % (two_nodes.host, two_nodes.port)]
    _cli(["cmd", "lamp-2", "identify", "seconds=0"] + b, capsys)  # refused: a line in its log
    code, out, err = _cli(["logs", "lamp-2"] + b, capsys)
    assert code == 0, (out, err)
    lines = out.splitlines()
    assert any("boot 1 (reset" in x for x in lines), out
    assert any("mqtt: connected" in x for x in lines), out
    assert any("cmd refused: seconds must be in (0, 300]" in x for x in lines), out
    code, out, err = _cli(["logs", "lamp-2", "--lines", "1"] + b, capsys)
    assert code == 0 and len(out.splitlines()) == 1 and "cmd refused" in out, out
    code, out, err = _cli(["logs", "lamp-9", "--timeout", "1"] + b, capsys)
    assert code == 3 and "no answer" in out


def test_logs_over_the_cable_follows_the_console(tmp_path, capsys):
    flash = tmp_path / "flash"
    flash.mkdir()
    (flash / "main.py").write_text("import time\nfor i in range(100000):\n    print('tick', i)\n    time.sleep(0.05)\n")
    with VirtualBoard(flash, flash_size=None) as board:  # main.py put in the host directory
        board.wait_console("tick 3")
        code, out, err = _cli(["logs", "--port", board.port, "--duration", "1.5"], capsys)
        assert board.running()  # following the console does not stop what runs
    assert code == 0, err
    ticks = [line for line in out.splitlines() if line.startswith("tick ")]
    assert len(ticks) >= 5, out
    code, out, err = _cli(["logs", "--port", str(tmp_path / "no-such-port"), "--duration", "1"], capsys)
    assert code == 4 and "no board at" in err


def test_retire_clears_retained_messages_and_the_register_silences_it(mosquitto, tmp_path, capsys):
    b = ["--broker", "%s:%d" % (mosquitto.host, mosquitto.port)]
    c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="old-fleet")
    c.connect(mosquitto.host, mosquitto.port)
    c.loop_start()
    old = int(time.time()) - 7200
    retained = {
        "streetnode/gone-1/status": {"state": "offline", "ts": old},
        "streetnode/gone-1/ota/status": {"state": "confirmed"},
        "homeassistant/sensor/gone-1/air_temperature/config": {"name": "t"},
        "streetnode/keep-1/status": {"state": "offline", "ts": old},
    }
    for topic, body in retained.items():
        c.publish(topic, json.dumps(body), qos=1, retain=True).wait_for_publish(10)
    c.disconnect()
    c.loop_stop()
    reg = tmp_path / "fleet-register.csv"
    reg.write_text("id,site,lat,lon,board,sensors,firmware,date,owner\n"
                   "gone-1,Markt 1,,,esp32-devkitc,air:bme280@i2c0,0.9.0,2026-01-01T00:00:00Z,city\n"
                   "keep-1,Markt 2,,,esp32-devkitc,air:bme280@i2c0,0.9.0,2026-01-01T00:00:00Z,city\n")  # fmt: skip
    code, out, err = _cli(["monitor", "--once", "--settle", "1"] + b, capsys)
    assert code == 1 and "2 node(s), 2 alerting" in out
    code, out, err = _cli(["retire", "gone-1", "--register", str(reg)] + b, capsys)
    assert code == 0, err
    for topic in list(retained)[:3]:
        assert "cleared %s" % topic in out, out
    assert "keep-1" not in out
    rows = reg.read_text().splitlines()
    assert rows[0] == "id,site,lat,lon,board,sensors,firmware,date,owner,retired"
    assert rows[1].startswith("gone-1,Markt 1,") and rows[1].endswith(",city," + rows[1].rsplit(",", 1)[1])
    assert rows[1].rsplit(",", 1)[1].startswith("20") and rows[2].endswith(",city,")
    # the broker no longer holds it: only keep-1 is left (and alerts)
    code, out, err = _cli(["monitor", "--once", "--settle", "1"] + b, capsys)
    assert code == 1 and "1 node(s), 1 alerting" in out and "gone-1" not in out, out
    # a node still powered comes back; the register keeps it out of the monitor
    c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="zombie")
    c.connect(mosquitto.host, mosquitto.port)
    c.loop_start()
    c.publish("streetnode/gone-1/status", json.dumps({"state": "offline", "ts": old}), qos=1, retain=True).wait_for_publish(10)
    c.disconnect()
    c.loop_stop()
    code, out, err = _cli(["monitor", "--once", "--settle", "1", "--register", str(reg)] + b, capsys)
    assert "gone-1" not in out and "1 node(s)" in out, out
    code, out, err = _cli(["retire", "nobody", "--register", str(reg)] + b, capsys)
    assert code == 1 and "not in the register" in err
