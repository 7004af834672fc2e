"""`streetnode sim` as a user runs it: its own broker, live table, a node killed like a
board losing power is restarted, and no reading goes missing."""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from streetnode.common.paths import REPO


def _streetnode():
    exe = Path(sys.executable).with_name("streetnode")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "streetnode.cli"]


SUMMARY = re.compile(r"received (\d+) readings from (\d+) node\(s\), (\d+) missing, (\d+) still queued in outboxes "
                     r"\((\d+) committed\)$", re.M)  # fmt: skip


def _wait(cond, timeout, what, proc=None):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out waiting for " + what
        assert proc is None or proc.poll() is None, "the sim ended before " + what
        time.sleep(0.2)


def _stop_when(proc, cond, what, timeout=180):
    """Wait (bounded) for cond while the sim runs, then stop it as a user does (SIGTERM); its output."""
    try:
        _wait(cond, timeout, what, proc)
        proc.send_signal(signal.SIGTERM)
        return proc.communicate(timeout=120)[0]
    finally:
        proc.kill()


def _outbox_now(state, node):
    """(last seq, seqs waiting) of a running node's outbox, or None when caught mid-write."""
    from streetnode.sim.fleet import node_outbox

    try:
        return node_outbox(state / node)
    except Exception:  # noqa: BLE001 - a copy taken between two writes: look again
        return None


@pytest.mark.usefixtures("mpy_tree")
def test_sim_runs_a_fleet_restarts_a_killed_node_and_loses_nothing(tmp_path):
    # Over TLS where mosquitto is installed (CI installs it): the embedded broker on a TLS-only
    # listener with a CA the sim made, the nodes verifying its certificate and its name.
    from streetnode.common.broker import find_mosquitto

    tls = ["--tls"] if find_mosquitto() else []
    state = tmp_path / "fleet"
    proc = subprocess.Popen(
        _streetnode() + ["sim", "--nodes", "2", "--interval", "0.5", "--state-dir", str(state)] + tls,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        # Until sim-2 has booted and committed readings (its state and outbox on its flash:
        # LittleFS commits are atomic, so the host reads the last one), however slow the
        # machine; then a little longer, so that the kill lands in a running node.
        from streetnode.sim.flashimg import FlashImage

        deadline = time.monotonic() + 120
        while True:
            assert time.monotonic() < deadline and proc.poll() is None, "sim-2 never committed a reading"
            try:
                img = FlashImage(state / "sim-2" / "flash.img")
                if img.exists() and img.get_bytes("data/state.json") and img.get_bytes("data/outbox/state"):
                    break
            except Exception:  # noqa: BLE001 - not there yet, or caught between two writes
                pass
            time.sleep(0.5)
        time.sleep(1)
        # Power cut on sim-2: SIGKILL its interpreter, as a board loses power.
        killed = subprocess.run(["pkill", "-9", "-f", "firmware.main_unix %s" % (state / "sim-2")])
        assert killed.returncode == 0, "no sim-2 process to kill"
        # Until sim-2 is back (its second boot) and each node committed 10 readings, then stopped
        # as a user stops it (SIGTERM), however slow the machine.
        def both_going():
            try:
                booted = b'"boot_count": 2' in FlashImage(state / "sim-2" / "flash.img").get_bytes("data/state.json")
            except Exception:  # noqa: BLE001 - caught between two writes: look again
                return False
            return booted and all((_outbox_now(state, n) or (0,))[0] >= 10 for n in ("sim-1", "sim-2"))

        out = _stop_when(proc, both_going, "sim-2 back and 10 readings from each node")
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    assert re.search(r"embedded broker \((mosquitto|amqtt)%s\) on 127\.0\.0\.1:\d+" % (", TLS" if tls else ""), out), out
    assert "sim-2 died (exit -9), restarting as a board reboots" in out, out
    m = SUMMARY.search(out)
    assert m, out
    received, nodes, missing, queued, committed = map(int, m.groups())
    assert nodes == 2 and committed >= 20 and missing == 0, out
    # counted against what the nodes committed on their flash: what did not arrive is still queued
    from streetnode.sim.fleet import node_outbox

    assert committed == sum(node_outbox(state / n)[0] for n in ("sim-1", "sim-2")), out
    assert received + queued == committed, out
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


@pytest.mark.usefixtures("mpy_tree")
def test_demo_runs_at_its_default_heap():
    """`streetnode demo` as the help lists it: no options, the default heap (issue 11)."""
    r = subprocess.run(_streetnode() + ["demo"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "MemoryError" not in r.stdout + r.stderr and "Traceback" not in r.stdout + r.stderr
    assert len(re.findall(r"^\d\d:\d\d +-?\d+\.\d\d +\d+\.\d\d +\d+\.\d\d", r.stdout, re.M)) == 25, r.stdout
    assert "interpreter: micropython" in r.stdout


def _sim(tmp_path, *args, timeout=120, **kw):
    env = dict(os.environ, TMPDIR=str(tmp_path))  # the sim's temp folder lands here
    return subprocess.run(_streetnode() + ["sim"] + list(args), cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env=env, **kw)  # fmt: skip


def _temp_folders(tmp_path):
    return sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("streetnode-sim-"))


@pytest.mark.parametrize("option, reason", [
    (["--interval", "0.01"], "--interval: interval_s: must be a number from 0.05 to 86400, not 0.01"),
    (["--heap", "8k"], "--heap 8k: a node needs at least 256k"),
    (["--romfs", "--heap", "8k"], "--heap 8k: a node needs at least 32k around its ROMFS image"),
    (["--heap", "12q"], "--heap 12q: a size is a number of bytes with an optional k or M"),
    (["--duration", "-5"], "--duration must be 0 (run until stopped) or a number of seconds, not -5"),
    (["--fault", "sim-2:air:melted"], 'sim.faults[0].kind: must be one of "absent"'),
    (["--fault", "sim-7:air:frozen"], "no node sim-7 in this sim (its nodes: sim-1 to sim-3)"),
    (["--set", "sim-1:interval_s=0"], "sim-1's config (with --fault/--set): interval_s: must be a number"),
])  # fmt: skip
def test_sim_checks_its_options_before_anything_starts(tmp_path, option, reason):
    r = _sim(tmp_path, *option, "--duration" if "--duration" not in option else "--nodes", "3")
    assert r.returncode == 2, r.stdout + r.stderr
    assert reason in r.stderr, r.stderr
    assert "embedded broker" not in r.stdout and "died" not in r.stdout  # nothing started
    assert _temp_folders(tmp_path) == []


@pytest.mark.usefixtures("mpy_tree")
def test_sim_romfs_runs_the_nodes_from_a_romfs_image_with_the_heap_around_it(tmp_path):
    # issue 12: the firmware's bytecode in place from a ROMFS image of the compiled tree, as
    # from a board's ROM partition; --heap is the heap around the image. The nodes carry the
    # sim's three sensors, which need more than a one-BME280 node (docs/benchmarks.md).
    from streetnode.sim.flashimg import FlashImage

    state = tmp_path / "fleet"
    r = _sim(tmp_path, "--romfs", "--heap", "256k", "--nodes", "2", "--interval", "0.5", "--duration", "12",
             "--state-dir", str(state), timeout=240)  # fmt: skip
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert re.search(r"firmware from a ROMFS image \(\d+ bytes\), 256k of heap around it", out), out
    m = re.search(r"received (\d+) readings from 2 node\(s\), (\d+) missing", out)
    assert m and int(m.group(1)) >= 4 and m.group(2) == "0", out
    assert (state / ".firmware.romfs").stat().st_size > 0
    # The slot holds only node_main and the board's description: the rest came from the image.
    listing = FlashImage(state / "sim-1" / "flash.img").listing()
    assert "a/node_main.mpy" in listing and not [p for p in listing if p.startswith("a/firmware/")], listing


@pytest.mark.usefixtures("mpy_tree")
def test_sim_romfs_says_why_a_node_does_not_fit_its_heap(tmp_path):
    # A heap too small for the node: its MemoryError is in the sim's own output, not only in node.log.
    r = _sim(tmp_path, "--romfs", "--heap", "48k", "--nodes", "1", "--interval", "0.5", "--duration", "15",
             timeout=240)  # fmt: skip
    out = r.stdout + r.stderr
    assert re.search(r"sim-1 died \(exit \d+[^)]*\), restarting as a board reboots; it published nothing, its last lines:",
                     out), out
    assert re.search(r"^  \| MemoryError: memory allocation failed", out, re.M), out


@pytest.mark.usefixtures("mpy_tree")
def test_sim_shows_the_last_lines_of_a_node_that_lives_but_published_nothing(tmp_path):
    # Alive but silent (here its broker's port is wrong; a heap too small for its drivers
    # does the same): the run ends with the node's own last lines, not only a count of 0.
    r = _sim(tmp_path, "--nodes", "2", "--interval", "0.5", "--duration", "10",
             "--set", 'sim-2:{"mqtt": {"port": 1}}', timeout=180)  # fmt: skip
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "sim-2 published no reading in this run; its last lines:" in out, out
    assert "sim-1 published no reading" not in out, out
    tail = out.split("sim-2 published no reading in this run; its last lines:")[1]
    assert re.search(r"^  \| boot 1 \(reset power_on\)", tail, re.M), out
    assert re.search(r"^  \| mqtt: no link: ECONNREFUSED$", tail, re.M), out  # once, by its name
    assert tail.count("mqtt: no link") == 1, out
    assert _temp_folders(tmp_path) == []


@pytest.mark.usefixtures("mpy_tree")
def test_sim_shows_why_a_node_dies_at_boot_and_stops_restarting_it(tmp_path):
    # A CA file the node's config names but its flash does not hold: it dies at every boot.
    r = _sim(tmp_path, "--nodes", "1", "--interval", "0.5", "--duration", "200",
             "--set", 'sim-1:{"mqtt": {"tls": true, "ca": "missing-ca.der"}}', timeout=180)  # fmt: skip
    out = r.stdout + r.stderr
    assert re.search(r"sim-1 died \(exit \d+[^)]*\), restarting as a board reboots; it published nothing, its last lines:",
                     out), out
    assert re.search(r"^  \| .*(OSError|ENOENT|Errno 2)", out, re.M), out  # the node's own last words
    assert "sim-1 died at every start (5 times in a row without publishing a reading): not restarted" in out, out
    assert out.count("sim-1 died (exit") == 4, out  # not restarted forever; the run ended early
    assert r.returncode == 1 and "sim-1 died at every start" in r.stderr
    assert _temp_folders(tmp_path) == []


@pytest.mark.usefixtures("mpy_tree")
def test_sim_ended_by_sigterm_removes_its_temp_folder(tmp_path):
    env = dict(os.environ, TMPDIR=str(tmp_path))
    proc = subprocess.Popen(_streetnode() + ["sim", "--nodes", "1", "--interval", "0.5"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "running until stopped" in line:
                break
        assert _temp_folders(tmp_path), "".join(lines)
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert "received" in rest, rest
    assert _temp_folders(tmp_path) == []


@pytest.mark.usefixtures("mpy_tree")
def test_sim_on_an_external_broker_counts_only_its_own_nodes_and_keeps_its_faults(tmp_path):
    from streetnode.common import mqtt
    from streetnode.common.broker import Broker
    from streetnode.sim.flashimg import FlashImage

    with Broker() as broker:
        opts = mqtt.BrokerOptions(broker.host, broker.port)
        other = mqtt.connect(opts, "someone-else")
        other.publish("streetnode/lamp-9/status", json.dumps({"state": "online", "ts": time.time()}), qos=1, retain=True)
        stop = threading.Event()

        def publish():  # another fleet on the same broker, publishing all along
            seq = 0
            while not stop.is_set():
                seq += 1
                other.publish("streetnode/lamp-9/data", json.dumps({"seq": seq, "ts": time.time(), "sensors": {}}), qos=1)
                stop.wait(0.3)

        t = threading.Thread(target=publish, daemon=True)
        t.start()
        try:
            state = tmp_path / "fleet"
            r = _sim(tmp_path, "--nodes", "1", "--interval", "0.5", "--duration", "8", "--broker",
                     "%s:%d" % (broker.host, broker.port), "--state-dir", str(state),
                     "--fault", "sim-1:air:frozen:at=0")  # fmt: skip
        finally:
            stop.set()
            t.join()
            mqtt.close(other)
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"received \d+ readings from 1 node\(s\), 0 missing", r.stdout), r.stdout
    assert "watch this fleet: streetnode monitor --broker %s:%d" % (broker.host, broker.port) in r.stdout
    cfg = json.loads(FlashImage(state / "sim-1" / "flash.img").get_bytes("data/config.json"))
    assert cfg["sim"]["faults"] == [{"sensor": "air", "kind": "frozen", "at_s": 0}]


def test_sim_table_redraws_in_place_on_a_terminal_cut_to_its_height(monkeypatch):
    import io

    from streetnode.sim.table import SimDisplay

    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setenv("LINES", "12")
    monkeypatch.setenv("COLUMNS", "80")
    rows = ["sim-%d  online" % i for i in range(1, 31)]

    def table_lines(width, height):
        if height is None:  # not a terminal: the whole table
            return ["node  state"] + rows
        assert height <= 12
        shown = rows if len(rows) <= height - 1 else rows[: height - 2] + ["… %d more" % (len(rows) - height + 2)]
        return ["node  state"] + shown

    out = Tty()
    d = SimDisplay(out)
    d.line("sim-3 died (exit 1), restarting as a board reboots")
    d.table(table_lines)
    d.table(table_lines)
    d.close()
    text = out.getvalue()
    frames = text.split("\x1b[H")[1:]
    assert len(frames) >= 2  # redrawn from the top, not scrolled
    assert all(f.count("\n") <= 12 for f in frames), frames
    assert "more" in frames[-1] and "sim-3 died" in frames[-1]
    plain = io.StringIO()
    SimDisplay(plain).table(table_lines)
    assert "\x1b" not in plain.getvalue() and "sim-30" in plain.getvalue()


@pytest.mark.usefixtures("mpy_tree")
def test_sim_counts_against_each_nodes_flash_what_is_lost_and_what_is_still_queued(tmp_path):
    """The summary counts against what each node committed on its flash, not between the
    seqs that arrived: sim-1's radio goes down for good 8 s after boot, with an outbox of
    5 records, so what it commits from then on stays on its flash (the newest 5 to 9 of
    them, the older ones dropped: lost) and nothing of it arrives. A second run on the same
    flash, with its radio up, publishes what was queued."""
    from streetnode.common import mqtt
    from streetnode.common.broker import Broker
    from streetnode.sim.fleet import node_outbox

    seen, offline, lock = {}, set(), threading.Lock()

    def on_message(client, userdata, msg):
        node = msg.topic.split("/")[1]
        body = json.loads(msg.payload)
        with lock:
            if msg.topic.endswith("/data"):
                seen.setdefault(node, set()).add(body["seq"])
            elif msg.topic.endswith("/status") and body.get("state") == "offline":
                offline.add(node)

    def seqs(node):
        with lock:
            return set(seen.get(node, ()))

    state = tmp_path / "fleet"
    radio = {"wifi": {"ssid": "city-iot", "password": "secret-123"}, "outbox": {"max_records": 5},
             "sim": {"faults": [{"kind": "wlan_down", "at_s": 8}]}}  # fmt: skip
    with Broker() as broker:
        sub = mqtt.connect(mqtt.BrokerOptions(broker.host, broker.port), "test-sim-count", on_message=on_message,
                           subscribe=["streetnode/+/data", "streetnode/+/status"])  # fmt: skip
        try:
            base = ["sim", "--nodes", "2", "--interval", "0.5", "--broker", "%s:%d" % (broker.host, broker.port),
                    "--state-dir", str(state)]  # fmt: skip
            proc = subprocess.Popen(_streetnode() + base + ["--set", "sim-1:" + json.dumps(radio)], cwd=REPO,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
            # Until sim-1's radio is down (the broker gave its last will) and it has committed
            # more than its outbox holds since its last reading arrived, however slow the machine.
            def piled_up():
                box = "sim-1" in offline and seqs("sim-1") and _outbox_now(state, "sim-1")
                return bool(box) and box[0] >= max(seqs("sim-1")) + 12 and len(seqs("sim-2")) >= 3

            out = _stop_when(proc, piled_up, "sim-1 to commit 12 readings offline")
            assert proc.returncode == 0, out
            boxes = {n: node_outbox(state / n) for n in ("sim-1", "sim-2")}  # the flash, read once the nodes stopped
            m = SUMMARY.search(out)
            assert m, out
            received, nodes, missing, queued, committed = map(int, m.groups())
            # this subscriber sees what the sim's own view saw (both subscribed before the nodes started)
            _wait(lambda: len(seqs("sim-1")) + len(seqs("sim-2")) >= received, 30, "the readings the sim received")
            (last1, waiting1), (last2, waiting2) = boxes["sim-1"], boxes["sim-2"]
            assert nodes == 2 and committed == last1 + last2, (out, boxes)
            assert received == len(seqs("sim-1")) + len(seqs("sim-2")), out
            assert queued == len(waiting1 - seqs("sim-1")) + len(waiting2 - seqs("sim-2")), (out, boxes)
            assert missing == len(set(range(1, last1 + 1)) - waiting1 - seqs("sim-1")) \
                + len(set(range(1, last2 + 1)) - waiting2 - seqs("sim-2")), (out, boxes)  # fmt: skip
            assert 5 <= len(waiting1 - seqs("sim-1")) <= queued, (out, boxes)  # sim-1's outbox: its newest records
            assert missing >= 3, out  # the older ones sim-1 dropped to keep the newest 5
            # The queued ones are real: a second run on the same flash, radio up, publishes them.
            queued1 = waiting1 - seqs("sim-1")
            proc = subprocess.Popen(_streetnode() + base, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True)  # fmt: skip
            out2 = _stop_when(proc, lambda: queued1 <= seqs("sim-1"), "sim-1's queued readings")
        finally:
            mqtt.close(sub)
    m = SUMMARY.search(out2)
    assert proc.returncode == 0 and m, out2
    assert int(m.group(3)) == 0, out2  # what this run committed and found waiting, all arrived or still queued
    last1b, _ = node_outbox(state / "sim-1")
    last2b, _ = node_outbox(state / "sim-2")
    # this run's seqs and the ones it found waiting (sim-1's 5 or more, sim-2's few)
    assert int(m.group(5)) == (last1b - last1) + (last2b - last2) + len(waiting1) + len(waiting2), (out2, boxes)
