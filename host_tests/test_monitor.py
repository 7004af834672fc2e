"""`streetnode monitor` against a simulated fleet on a real mosquitto: a node that loses
readings (its link cut while its outbox holds 2 records), one with a frozen sensor, one
in a brown-out boot loop and one that goes silent each raise their alert, and nothing at
all fires for the healthy node. Plus the table's rendering (in place, fitted, sorted)."""

import io
import json
import threading
import time

import pytest

from host_tests.fieldfleet import Cutter, Fleet, wait_until
from streetnode import cli
from streetnode.field import fleetwatch, monitor, report
from streetnode.common.mqtt import BrokerOptions
from streetnode.field.capture import LiveSource


@pytest.fixture
def fleet(tmp_path, mpy_tree, mosquitto):
    f = Fleet(tmp_path, mpy_tree, mosquitto)
    yield f
    f.stop()


class _Until:
    """A message source that ends the monitor, as Ctrl-C does, once `done` is set."""

    def __init__(self, source, done):
        self.source, self.done = source, done

    def get(self, timeout):
        if self.done.is_set():
            raise KeyboardInterrupt
        return self.source.get(timeout)

    def drain(self):
        return self.source.drain()


def _committed(board, tmp_path):
    """The highest seq a running node committed, from a fresh copy of its outbox on its
    flash (LittleFS commits are atomic); None when the copy caught it between two writes."""
    import tempfile

    from firmware.outbox import Outbox

    try:
        with tempfile.TemporaryDirectory(dir=str(tmp_path)) as d:
            board.runner.image.pull(d, "outbox")
            return Outbox(d + "/outbox").last_seq
    except Exception:  # noqa: BLE001 - look again
        return None


def test_each_alert_fires_and_nothing_for_the_healthy_node(fleet, mosquitto, tmp_path):
    cutter = Cutter(mosquitto)
    fleet.add("good")
    fleet.add("lossy", via=cutter, outbox={"max_records": 2})
    fleet.add("frozen", faults=[{"sensor": "air", "kind": "frozen", "at_s": 0}])
    fleet.add("loop", faults=[{"sensor": "air", "kind": "brownout", "at_s": 1.0}])
    fleet.add("quiet")
    src = LiveSource(BrokerOptions(mosquitto.host, mosquitto.port), monitor.fleet_topics("streetnode"))
    # silent after 10 s without data (the nodes sample every 0.2 s): the healthy node
    # would have to be starved of the CPU for 10 s to raise it on a loaded machine
    model = fleetwatch.Fleet("streetnode", stuck_n=8, stuck_s=1.0, min_silence_s=10.0, reboot_k=3, reboot_window_s=60)
    out = io.StringIO()
    capture_path = tmp_path / "capture.jsonl"
    capture = monitor.CaptureWriter(str(capture_path))
    events = []
    done = threading.Event()
    # Until every alert below has fired (bounded: 300 s), however slow the machine; the
    # healthy node is watched all that time.
    t = threading.Thread(target=lambda: events.extend(monitor.watch(_Until(src, done), model, out, duration=300,
                                                                    capture=capture, tty=False)))  # fmt: skip
    expected = ("ALERT lossy gap:", "ALERT frozen stuck air:", "ALERT loop reboot_loop:", "ALERT quiet silent:")
    try:
        fleet.start()
        t.start()
        wait_until(lambda: "lossy" in model.nodes and len(model.nodes["lossy"].seqs) >= 5, 60, "lossy's first readings")
        cutter.cut()  # its Wi-Fi is gone: readings pile up in an outbox of 2
        # until it committed 6 readings more than arrived: at least 2 let go (it keeps fewer than 4)
        arrived = max(model.nodes["lossy"].all_seqs())
        wait_until(lambda: (_committed(fleet.boards["lossy"], tmp_path) or 0) >= arrived + 6, 120,
                   "lossy committing 6 readings offline", step=0.2)  # fmt: skip
        cutter.mend()
        fleet.boards["quiet"].kill()  # the lamp post lost power
        wait_until(lambda: all(e in out.getvalue() for e in expected), 240, "every alert: %s" % (expected,), step=0.2)
        done.set()
        t.join(30)
    finally:
        done.set()
        src.close()
        capture.close()
        cutter.close()
    assert not t.is_alive()
    fired = {}
    for ev in events:
        if ev.what == "alert":
            fired.setdefault(ev.node, set()).add((ev.kind, ev.subject))
    text = out.getvalue()
    assert "good" not in fired, (fired["good"], text)
    assert ("gap", "") in fired.get("lossy", set()), text
    assert ("stuck", "air") in fired.get("frozen", set()), text
    assert ("reboot_loop", "") in fired.get("loop", set()), text
    assert ("silent", "") in fired.get("quiet", set()), text
    # not a TTY: events as lines, and the final table
    assert "ALERT lossy gap:" in text and "reading(s) lost" in text
    assert "ALERT frozen stuck air:" in text
    lossy = model.nodes["lossy"]
    health = lossy.health
    assert health["dropped"] > 0 and len(lossy.lost) > 0
    assert lossy.missing() == sorted(lossy.lost)  # every hole is confirmed lost, none filled later
    assert model.nodes["good"].missing() == [] and model.nodes["good"].alerts == {}
    # the capture replays into the same verdict: report counts the same lost seqs
    lines = [json.loads(x) for x in capture_path.read_text().splitlines()]
    assert any(x.get("event") == "alert" and x["node"] == "lossy" and x["kind"] == "gap" for x in lines)
    summary = report.summarise(report.load(str(capture_path)))
    assert summary["nodes"]["lossy"]["missing"] == len(lossy.lost)
    assert summary["nodes"]["good"]["missing"] == 0


class FakeSource:
    """Messages for monitor.watch on a virtual clock: each get() takes `timeout` of the
    clock's time, so what the monitor draws depends on its rules, not on how fast this
    machine is. `feed(t)` may give one more message per get (a live fleet)."""

    def __init__(self, messages=(), start=None, feed=None):
        self.messages = list(messages)
        self.t = time.time() if start is None else start
        self.feed = feed

    def clock(self):
        return self.t

    def get(self, timeout):
        self.t += timeout
        if not self.messages and self.feed is not None:
            self.messages.append(self.feed(self.t))
        if self.messages:
            return self.messages.pop(0)
        return None

    def drain(self):
        out, self.messages = self.messages, []
        return out


class TTY(io.StringIO):
    def isatty(self):
        return True


def _fleet_of(n, now):
    f = fleetwatch.Fleet("streetnode", stuck_n=3, stuck_s=0)
    for i in range(1, n + 1):
        node = "lamp-%d" % i
        f.feed("streetnode/%s/status" % node, json.dumps({"state": "online", "fw": "0.1.0", "boot_count": 1}), now)
        for s in range(1, 4):
            temp, hum = (20.0, 50) if i == 7 else (20.0 + s / 10, 50 + s)  # lamp-7's sensor is stuck
            f.feed("streetnode/%s/data" % node, json.dumps(
                {"seq": s, "ts": int(now), "sensors": {"air": {"temperature": temp, "humidity": hum,
                                                               "pressure": 1000.0}}}), now)  # fmt: skip
    f.tick(now)
    return f


def test_table_sorts_alerting_nodes_first_and_fits_the_height():
    now = time.time()
    f = _fleet_of(300, now)
    lines = monitor.table(f, now, width=100, height=20)
    assert len(lines) == 20
    assert lines[0].startswith("streetnode monitor") and "300 node(s), 1 alerting" in lines[0]
    assert lines[1].split()[:3] == ["node", "state", "seen"]
    assert lines[2].startswith("lamp-7 ") and "stuck(air)" in lines[2]
    assert lines[3].startswith("lamp-1 ") and lines[4].startswith("lamp-2 ")
    assert lines[-1] == "… 283 more"
    assert all(len(x) <= 100 for x in lines)
    assert "20.3°C" in lines[3] and "53%RH" in lines[3] and "1000hPa" in lines[3]


def _frames(text):
    return [fr for fr in text.split("\x1b[H")[1:] if fr]


def test_tty_redraws_in_place_without_clearing_the_screen(monkeypatch):
    monkeypatch.setenv("COLUMNS", "90")
    monkeypatch.setenv("LINES", "12")
    now = time.time()
    f = _fleet_of(50, now)
    out = TTY()
    src = FakeSource(start=now)
    src.messages = [("streetnode/lamp-3/data", json.dumps({"seq": 4, "ts": int(now), "sensors": {}}), now)]
    monitor.watch(src, f, out, duration=1.2, tty=True, clock=src.clock)
    text = out.getvalue()
    assert "\x1b[2J" not in text  # never a full clear: no flicker
    frames = _frames(text)
    assert 1 <= len(frames) <= 6  # 1.2 s of the virtual clock: at most 4 redraws a second
    last = frames[-1].split("\x1b[J")[0]
    assert last.count("\x1b[K") == last.count("\r\n") + 1
    assert last.count("\r\n") <= 11  # fits 12 lines
    assert "… " in last and " more" in last


def test_tty_redraws_at_most_four_times_a_second_under_a_stream_of_data(monkeypatch):
    """A message on every pass (0.1 s of the virtual clock each) for 10 s: the table is
    redrawn for the new data, but never more than 4 times a second."""
    monkeypatch.setenv("COLUMNS", "90")
    monkeypatch.setenv("LINES", "12")
    now = time.time()
    f = _fleet_of(5, now)
    seq = iter(range(4, 10**6))
    src = FakeSource(start=now, feed=lambda t: ("streetnode/lamp-3/data", json.dumps(
        {"seq": next(seq), "ts": int(t), "sensors": {"air": {"temperature": 20.0 + (t % 3)}}}), t))  # fmt: skip
    out = TTY()
    monitor.watch(src, f, out, duration=10.0, tty=True, clock=src.clock)
    frames = _frames(out.getvalue())
    assert 30 <= len(frames) <= 41, len(frames)  # 4 a second at most, and kept up with the data


def test_not_a_tty_prints_events_as_lines():
    now = time.time()
    f = fleetwatch.Fleet("streetnode", stuck_n=3, stuck_s=0)
    msgs = []
    for s in range(1, 5):
        msgs.append(("streetnode/n1/data", json.dumps({"seq": s, "ts": None, "sensors": {"air": {"temperature": 99.0}}}), now))
    out = io.StringIO()
    src = FakeSource(msgs, start=now)
    monitor.watch(src, f, out, duration=0.6, tty=False, clock=src.clock)
    text = out.getvalue()
    assert "\x1b[" not in text
    assert "ALERT n1 bounds air: temperature 99 °C outside -40..60" in text
    assert "ALERT n1 stuck air:" in text


def test_monitor_help_and_usage():
    with pytest.raises(SystemExit) as e:
        cli.main(["monitor"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        cli.main(["monitor", "--broker", "h:1", "--once", "--duration", "3"])
    assert e.value.code == 2


def test_monitor_once_against_the_broker(mosquitto, capsys):
    code = cli.main(["monitor", "--broker", "%s:%d" % (mosquitto.host, mosquitto.port), "--once", "--settle", "0.5"])
    assert code == 0
    assert "0 node(s), 0 alerting" in capsys.readouterr().out
