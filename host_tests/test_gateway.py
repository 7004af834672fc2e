"""The Raspberry Pi gateway: the systemd unit, its install step into a staging root, and the
unit's own ExecStart running the node firmware on CPython against a real mosquitto, exit 3
on a reboot request and resuming its seq when started again, as systemd does."""

import argparse
import json
import os
import shutil
import stat
import subprocess
import sys

import pytest

from host_tests.fleet import Collector, missing, node_config
from streetnode import cli
from streetnode.technician import gateway, provision

PYTHON = sys.executable


def parse_unit(text):
    """{section: {key: [values]}} of a unit file (systemd allows a key more than once)."""
    out, section = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = out.setdefault(line.strip("[]"), {})
            continue
        k, _, v = line.partition("=")
        section.setdefault(k, []).append(v)
    return out


def run(argv, capsys):
    code = cli.main(["gateway"] + argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_unit_file_content():
    unit = parse_unit(gateway.unit_text("/opt/streetnode/bin/python"))
    s = unit["Service"]
    assert s["Restart"] == ["always"] and int(s["RestartSec"][0]) > 0
    assert s["User"] == ["streetnode"] and s["Group"] == ["streetnode"]
    assert s["StateDirectory"] == ["streetnode"] and s["StateDirectoryMode"] == ["0700"]
    assert "3" in s["SuccessExitStatus"][0].split() and "3" in s["RestartForceExitStatus"][0].split()
    assert gateway.exec_start(gateway.unit_text("/opt/streetnode/bin/python")) == [
        "/opt/streetnode/bin/python", "-I", "-u", "-m", "streetnode.technician.gateway", "run", "--state-dir",
        "/var/lib/streetnode"]
    assert s["NoNewPrivileges"] == ["yes"] and s["ProtectSystem"] == ["strict"]
    assert unit["Unit"]["After"][0].startswith("network-online.target") and unit["Unit"]["Wants"] == [
        "network-online.target"]  # fmt: skip
    assert unit["Unit"]["StartLimitIntervalSec"] == ["0"]
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def test_unit_passes_systemd_analyze_verify(tmp_path):
    tool = shutil.which("systemd-analyze")
    if not tool:
        pytest.skip("systemd-analyze is not installed")
    path = tmp_path / gateway.SERVICE
    path.write_text(gateway.unit_text(PYTHON))
    p = subprocess.run([tool, "verify", str(path)], capture_output=True, text=True)
    complaints = [line for line in (p.stdout + p.stderr).splitlines() if gateway.SERVICE in line]
    assert p.returncode == 0 and not complaints, p.stdout + p.stderr
    # and it does complain about a broken one (the check is not blind)
    path.write_text(gateway.unit_text(PYTHON).replace("Restart=always", "Restart=alwayz"))
    p = subprocess.run([tool, "verify", str(path)], capture_output=True, text=True)
    assert "alwayz" in p.stdout + p.stderr


def provisioned_pi(tmp_path, capsys, monkeypatch, node="gw-rathaus", board="pi", extra=()):
    from host_tests.test_provision import make_ca

    monkeypatch.chdir(tmp_path)
    make_ca(tmp_path / "city-ca.pem")
    parser = argparse.ArgumentParser()
    provision.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["provision", "--id", node, "--board", board, "--broker", "mqtt.siegen.de",
                              "--ca", "city-ca.pem", "--preset", "air", *extra])  # fmt: skip
    assert args.func(args) == 0
    capsys.readouterr()
    return tmp_path / "nodes" / node / "config.json"


def test_install_into_a_staging_root(tmp_path, capsys, monkeypatch):
    config = provisioned_pi(tmp_path, capsys, monkeypatch)
    root = tmp_path / "root"
    code, out, err = run(["install", "--config", str(config), "--root", str(root), "--python",
                          "/opt/streetnode/bin/python"], capsys)  # fmt: skip
    assert code == 0, err
    state = root / "var/lib/streetnode"
    assert (state / "config.json").read_bytes() == config.read_bytes()
    assert (state / "ca.der").read_bytes() == (config.parent / "ca.der").read_bytes()
    assert stat.S_IMODE(os.stat(state / "config.json").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o700
    unit = (root / "etc/systemd/system" / gateway.SERVICE).read_text()
    assert unit == gateway.unit_text("/opt/streetnode/bin/python")
    assert "systemctl daemon-reload" in out and "systemctl enable streetnode-gateway.service" in out
    # the Pi's groups (the README's), not this machine's; the user is created there
    assert "usermod --append --groups i2c,spi,gpio,dialout streetnode" in out, out
    assert "useradd --system" in out
    password = json.loads(config.read_text())["mqtt"]["password"]
    assert password not in out + err
    # installing a changed config again replaces it and keeps the node's state
    (state / "state.json").write_text('{"boot_count": 7}')
    cfg = json.loads(config.read_text())
    cfg["interval_s"] = 30
    config.write_text(json.dumps(cfg))
    code, out, err = run(["install", "--config", str(config), "--root", str(root)], capsys)
    assert code == 0, err
    # staged for a Pi without --python: the Pi's documented venv, never this laptop's
    assert gateway.exec_start((root / "etc/systemd/system" / gateway.SERVICE).read_text())[0] == gateway.PI_PYTHON
    assert sys.executable not in (root / "etc/systemd/system" / gateway.SERVICE).read_text()
    assert json.loads((state / "config.json").read_text())["interval_s"] == 30
    assert (state / "state.json").read_text() == '{"boot_count": 7}'


def test_install_refusals(tmp_path, capsys, monkeypatch):
    esp = provisioned_pi(tmp_path, capsys, monkeypatch, node="lamp-1", board="esp32",
                         extra=("--ssid", "x", "--wifi-open"))  # fmt: skip
    root = tmp_path / "root"
    code, _, err = run(["install", "--config", str(esp), "--root", str(root)], capsys)
    assert code == gateway.EXIT_NO_CONFIG == 4 and "board esp32-devkitc" in err and err.count("\n") == 1
    bad = tmp_path / "bad.json"
    bad.write_text('{"node_id": "gw-1", "board": "pi", "mqtt": {"host": "m", "prot": 1883}}')
    code, _, err = run(["install", "--config", str(bad), "--root", str(root)], capsys)
    assert code == 4 and 'mqtt.prot: unknown key (did you mean "port"?)' in err
    nocafile = tmp_path / "noca" / "config.json"
    nocafile.parent.mkdir()
    nocafile.write_text('{"node_id": "gw-1", "board": "pi", "mqtt": {"host": "m", "tls": true, "ca": "ca.der"}}')
    code, _, err = run(["install", "--config", str(nocafile), "--root", str(root)], capsys)
    assert code == 4 and "CA file ca.der" in err
    good = tmp_path / "good.json"
    good.write_text('{"node_id": "gw-1", "board": "pi", "mqtt": {"host": "m"}}')
    code, _, err = run(["install", "--config", str(good), "--root", str(root), "--enable"], capsys)
    assert code == gateway.EXIT_NOT_ROOT == 5 and "needs root" in err
    # neither a staging root nor --system: never the running machine's /etc/systemd/system by default
    code, out, err = run(["install", "--config", str(good)], capsys)
    why = err.splitlines()[-1]  # a usage error: the subcommand's usage, then why
    assert code == 2 and err.startswith("usage: streetnode gateway install") and "--root DIR" in why and "--system" in why, err
    assert "installed" not in out
    assert not (root / "var").exists()


def test_run_refuses_without_a_config_or_with_a_board_config(tmp_path, capsys):
    code, _, err = run(["run", "--state-dir", str(tmp_path / "none")], capsys)
    assert code == 4 and "does not exist" in err
    (tmp_path / "empty").mkdir()
    code, _, err = run(["run", "--state-dir", str(tmp_path / "empty")], capsys)
    assert code == 4 and "no usable config" in err
    (tmp_path / "esp").mkdir()
    (tmp_path / "esp" / "config.json").write_text(json.dumps(
        {"node_id": "n", "board": "esp32-devkitc", "wifi": {"ssid": "x"}, "mqtt": {"host": "m"}}))  # fmt: skip
    code, _, err = run(["run", "--state-dir", str(tmp_path / "esp")], capsys)
    assert code == 4 and "a gateway runs board pi" in err


def test_reset_cause_tells_a_pi_boot_from_a_service_restart(tmp_path):
    boot = tmp_path / "boot_id"
    boot.write_text("aaaa\n")
    state = tmp_path / "state"
    state.mkdir()
    assert gateway.reset_cause(str(state), str(boot)) == "power_on"
    assert gateway.reset_cause(str(state), str(boot)) == "soft"
    boot.write_text("bbbb\n")  # the Pi rebooted
    assert gateway.reset_cause(str(state), str(boot)) == "power_on"


def _service_process(state_dir, boot_id_file):
    """The unit's own ExecStart, with the state directory of the test (as systemd runs it)."""
    argv = gateway.exec_start(gateway.unit_text(PYTHON, state_dir=str(state_dir)))
    assert argv[:6] == [PYTHON, "-I", "-u", "-m", "streetnode.technician.gateway", "run"]
    argv += ["--boot-id-file", str(boot_id_file)]
    log = open(state_dir / "service.log", "ab")
    try:
        return subprocess.Popen(argv, cwd=str(state_dir), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)  # fmt: skip
    finally:
        log.close()


def _stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_service_runs_the_node_on_cpython_reboots_with_exit_3_and_resumes(mosquitto, tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    boot_id = tmp_path / "boot_id"
    boot_id.write_text("boot-1\n")
    (state / "config.json").write_text(json.dumps(node_config("gw-sim", mosquitto, interval_s=0.2)))
    collector = Collector(mosquitto)
    proc = _service_process(state, boot_id)
    try:
        collector.wait(lambda: len(collector.seqs("gw-sim")) >= 3, 30, "three readings from the gateway")
        with collector.lock:
            first = collector.status["gw-sim"][0]
            air = collector.data["gw-sim"][0]["sensors"]["air"]
        assert first["state"] == "online" and first["reset_cause"] == "power_on" and first["boot_count"] == 1
        assert 0 < air["temperature"] < 40 and 900 < air["pressure"] < 1100  # the simulated street's BME280
        collector.publish("streetnode/gw-sim/cmd", json.dumps({"id": "r1", "cmd": "reboot", "args": {"delay_ms": 0}}))
        assert proc.wait(20) == gateway.EXIT_REBOOT == 3  # systemd: RestartForceExitStatus=3
        before = max(collector.seqs("gw-sim"))
        proc = _service_process(state, boot_id)  # Restart=always
        collector.wait(lambda: max(collector.seqs("gw-sim")) >= before + 3, 30, "readings after the restart")
        with collector.lock:
            second = [s for s in collector.status["gw-sim"] if s.get("boot_count") == 2]
        assert second and second[0]["reset_cause"] == "soft"
        assert missing(collector.seqs("gw-sim")) == []  # the seq carried on across the restart
    finally:
        _stop(proc)
        collector.close()
    assert "Traceback" not in (state / "service.log").read_text()


def test_service_runs_board_pi_through_blinka(mosquitto, tmp_path):
    """The gateway's own board: BlinkaPlatform on CPython. There is no Pi header here, so the
    BME280 cannot be opened; the node must run all the same, publish its cycles and report
    the sensor's fault in health."""
    state = tmp_path / "state"
    state.mkdir()
    boot_id = tmp_path / "boot_id"
    boot_id.write_text("boot-1\n")
    cfg = {"node_id": "gw-pi", "board": "pi", "interval_s": 1, "health_every": 1,
           "mqtt": {"host": mosquitto.host, "port": mosquitto.port, "keepalive_s": 10},
           "sensors": [{"name": "air", "driver": "bme280", "bus": "i2c1"}]}  # fmt: skip
    (state / "config.json").write_text(json.dumps(cfg))
    # A stray board.py in the working directory must not stand in for Blinka's (python -I).
    (state / "board.py").write_text("open(%r, 'w').close()\n" % str(tmp_path / "shadowed"))
    collector = Collector(mosquitto)
    proc = _service_process(state, boot_id)
    try:
        collector.wait(lambda: len(collector.seqs("gw-pi")) >= 2 and collector.health.get("gw-pi"), 30,
                       "cycles and health from the pi board")  # fmt: skip
        with collector.lock:
            data = collector.data["gw-pi"][0]
            health = collector.health["gw-pi"][-1]
        assert collector.seqs("gw-pi")[:2] == [1, 2] and "air" in data["sensors"]
        assert health["errors"]["air"] >= 1
        assert proc.poll() is None
        assert not (tmp_path / "shadowed").exists()
    finally:
        _stop(proc)
        collector.close()
    # the journal says why the sensor is not read (not only Blinka's warning), once, not per retry
    journal = (state / "service.log").read_text()
    assert journal.count("sensor air (bme280 on i2c1): not read") == 1, journal
