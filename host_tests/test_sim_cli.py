"""`streetnode sim` as a user runs it: its own broker, live table, a node killed like a
board losing power is restarted, and no reading goes missing."""

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streetnode.common.paths import REPO


def _streetnode():
    exe = Path(sys.executable).with_name("streetnode")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "streetnode.cli"]


@pytest.mark.usefixtures("mpy_tree")
def test_sim_runs_a_fleet_restarts_a_killed_node_and_loses_nothing(tmp_path):
    # Over TLS where mosquitto is installed (CI installs it): the embedded broker on a TLS-only
    # listener with a CA the sim made, the nodes verifying its certificate and its name.
    from streetnode.common.broker import find_mosquitto

    tls = ["--tls"] if find_mosquitto() else []
    state = tmp_path / "fleet"
    proc = subprocess.Popen(
        _streetnode() + ["sim", "--nodes", "2", "--interval", "0.5", "--duration", "14", "--state-dir", str(state)]
        + tls,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        # The nodes start once their flash is laid out (the loader and slot a/): then a few seconds on.
        deadline = time.monotonic() + 90
        while not (state / "sim-2" / "node.log").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(4)
        # Power cut on sim-2: SIGKILL its interpreter, as a board loses power.
        killed = subprocess.run(["pkill", "-9", "-f", "firmware.main_unix %s" % (state / "sim-2")])
        assert killed.returncode == 0, "no sim-2 process to kill"
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    assert re.search(r"embedded broker \((mosquitto|amqtt)%s\) on 127\.0\.0\.1:\d+" % (", TLS" if tls else ""), out), out
    assert "sim-2 died (exit -9), restarting as a board reboots" in out, out
    m = re.search(r"received (\d+) readings from 2 node\(s\), (\d+) missing", out)
    assert m, out
    assert int(m.group(1)) >= 20 and m.group(2) == "0", out
    assert "sim-1    " in out and "online" in out
    # The restarted node resumed its seq on the same flash (boot 2).
    # It runs on LittleFS of the ESP32-DevKitC's size by default.
    from streetnode.sim.flashimg import FlashImage

    image = FlashImage(state / "sim-2" / "flash.img")
    assert image.path.stat().st_size == 2 * 1024 * 1024
    assert '"boot_count": 2' in image.get_bytes("data/state.json").decode()
    assert re.search(r"sim-1 flash: \d+ of 2048 KiB used", out), out
    assert re.search(r"flash: sim-1 \d+% of 2048 KiB ok", out), out
    if tls:  # each node carries the run's CA in DER, as a provisioned node its ca.der
        ca_der = (state / "broker-tls" / "ca.der").read_bytes()
        assert "its CA in %s" % (state / "broker-tls" / "ca.pem") in out, out
        assert image.get_bytes("data/ca.der") == ca_der
        assert '"tls": true' in image.get_bytes("data/config.json").decode()


def test_sim_tls_alone_is_the_embedded_broker_and_refuses_a_ca_without_broker(tmp_path):
    r = subprocess.run(_streetnode() + ["sim", "--tls", "--ca", "x.pem", "--duration", "1", "--state-dir", str(tmp_path)],
                       cwd=REPO, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 1
    assert "--tls without --broker makes its own CA for the embedded broker" in r.stderr, r.stderr


def test_sim_refuses_a_bad_flash_size(tmp_path):
    r = subprocess.run(_streetnode() + ["sim", "--flash-size", "12k", "--duration", "1", "--state-dir", str(tmp_path)],
                       cwd=REPO, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode != 0
    assert "flash size must be a multiple of 4 KiB and at least 64 KiB" in r.stdout + r.stderr
