"""The node on a board's flash: LittleFS in a block device of the board's size
(hal/sim/flash.py), with the real firmware on the real MicroPython interpreter against a
real mosquitto. A full, failing or read-only flash never stops the node (issue 17)."""

import json
import time

import pytest

from host_tests.fleet import Collector, missing, node_config

SMALL_FLASH = 256 * 1024  # a small flash fills in seconds; the boards' sizes are in flash.py


@pytest.fixture
def collector(mosquitto):
    c = Collector(mosquitto)
    yield c
    c.close()


def _healths(collector, node="n1"):
    with collector.lock:
        return list(collector.health.get(node, []))


def test_a_node_booted_on_a_full_flash_comes_up_and_publishes(mosquitto, collector, runner):
    node = runner("n1", flash=SMALL_FLASH, flash_faults=[{"kind": "fill", "at_s": 0}])
    node.write_config(node_config("n1", mosquitto, interval_s=0.2))
    node.start()
    collector.wait(lambda: len(collector.seqs("n1")) >= 10, 60, "readings from a node on a full flash")
    collector.wait(lambda: any(h.get("flash") == "full" for h in _healths(collector)), 30, "health saying the flash is full")
    assert node.alive(), node.output()[-3000:]
    seqs = collector.seqs("n1")
    assert seqs[0] == 1 and missing(seqs) == []
    h = [h for h in _healths(collector) if h.get("flash") == "full"][-1]
    assert h["flash_free"] < 8192 and h["flash_errors"] == 0, h
    assert h["boot_count"] == 1 and h["reset_cause"] == "power_on", h
    # Booted again on the same full flash: the count goes on (state.json is small enough
    # for LittleFS to keep in its directory block) or says why it could not.
    node.stop()
    n = len(_healths(collector))
    node.start(cause="soft")
    collector.wait(lambda: len(_healths(collector)) > n, 60, "health after the second boot")
    h = _healths(collector)[-1]
    assert h["reset_cause"] == "soft" and (h["boot_count"] == 2 or "state.json" in h.get("state_error", "")), h
    last = collector.seqs("n1")[-1]
    collector.wait(lambda: collector.seqs("n1")[-1] >= last + 5, 30, "readings after the second boot")
    assert node.alive(), node.output()[-3000:]
    assert missing(collector.seqs("n1")) == [] and len(set(collector.seqs("n1"))) == len(collector.seqs("n1"))


def test_flash_filled_while_running_held_full_then_freed(mosquitto, collector, runner):
    hold_s = 60
    node = runner("n1", flash=SMALL_FLASH, flash_faults=[{"kind": "fill", "at_s": 4, "for_s": hold_s}])
    node.write_config(node_config("n1", mosquitto, interval_s=0.2))
    node.start()
    pid = node.proc.pid
    collector.wait(lambda: any(h.get("flash") == "full" for h in _healths(collector)), 60, "health saying full")
    full_at = len(collector.seqs("n1"))
    # Held full: readings go on, from RAM, with their seq.
    collector.wait(lambda: len(collector.seqs("n1")) >= full_at + 100, 60, "readings while the flash is full")
    # A config change now: saved if it found room, else refused; either way whole on flash.
    collector.publish("streetnode/n1/cmd", json.dumps({"id": "c1", "cmd": "set_interval", "args": {"interval_s": 0.25}}))
    collector.wait(lambda: any(r.get("id") == "c1" for r in collector.results.get("n1", [])), 30, "the command's result")
    r = [r for r in collector.results["n1"] if r.get("id") == "c1"][0]
    assert r["ok"] is True or "could not save the config" in r["error"], r
    interval = 0.25 if r["ok"] else 0.2
    collector.wait(lambda: _healths(collector)[-1].get("flash") == "ok", hold_s + 60, "health saying ok once freed")
    n = len(collector.seqs("n1"))
    collector.wait(lambda: len(collector.seqs("n1")) >= n + 10, 30, "readings after the flash was freed")
    assert node.alive() and node.proc.pid == pid, node.output()[-3000:]
    healths = _healths(collector)
    assert all(h["boot_count"] == 1 for h in healths)  # no reboot
    full = [h for h in healths if h.get("flash") == "full"]
    # Health comes once a second: full for (nearly) the whole minute, and said so.
    assert len(full) >= hold_s // 2 and all(h["flash_free"] < 16384 and h["flash_errors"] == 0 for h in full)
    assert healths[-1]["dropped"] == 0  # connected throughout: nothing was let go
    seqs = collector.seqs("n1")
    assert seqs[0] == 1 and missing(seqs) == []
    assert "step failed" not in node.output()
    node.stop()
    for name in ("config.json", "config.good.json"):  # never the thing lost
        assert json.loads(node.read_file(name))["interval_s"] == interval, name


def test_failing_and_read_only_flash_keep_the_node_up(mosquitto, collector, runner):
    worn = runner("worn", flash=SMALL_FLASH, flash_faults=[{"kind": "eio", "every": 3, "at_s": 2, "for_s": 8}])
    locked = runner("locked", flash=SMALL_FLASH, flash_faults=[{"kind": "read_only", "at_s": 0}])
    worn.write_config(node_config("worn", mosquitto, interval_s=0.2))
    locked.write_config(node_config("locked", mosquitto, interval_s=0.2))
    worn.start()
    locked.start()
    for name in ("worn", "locked"):
        collector.wait(lambda: any(h.get("flash") == "failing" and h["flash_errors"] > 0
                                   for h in _healths(collector, name)), 60, "%s saying its flash is failing" % name)
    collector.wait(lambda: len(collector.seqs("worn")) >= 60 and len(collector.seqs("locked")) >= 60, 60,
                   "readings from both")
    for name, node in (("worn", worn), ("locked", locked)):
        assert node.alive(), node.output()[-3000:]
        seqs = collector.seqs(name)
        assert seqs[0] == 1 and missing(seqs) == [], (name, missing(seqs)[:10])
        h = _healths(collector, name)[-1]
        assert h["flash"] == "failing" and h["flash_errors"] > 0, h
    # A locked flash keeps nothing: the boot counter and the last-good config say so.
    h = _healths(collector, "locked")[-1]
    assert "state.json" in h.get("state_error", ""), h
    assert "config.good.json" in (h.get("config_error") or ""), h


def test_corruption_found_at_boot_is_repaired_and_reported(mosquitto, collector, runner):
    node = runner("n1", flash=SMALL_FLASH)
    cfg = node_config("n1", mosquitto, interval_s=0.1)
    cfg["mqtt"]["port"] = 1  # nobody listens: the records stay in the outbox
    node.write_config(cfg)
    node.start()
    # Until its first segment holds a few records (looked at on the running node's flash:
    # LittleFS commits are atomic), however slow the machine.
    def first_segment():
        try:
            sizes = node.image.listing()
        except Exception:  # noqa: BLE001 - caught between two writes: look again
            return 0
        segs = sorted(n for n in sizes if n.endswith(".seg"))
        return sizes[segs[0]] if segs else 0

    deadline = time.monotonic() + 120
    while first_segment() <= 600:
        assert time.monotonic() < deadline and node.alive(), "the node committed no 600 bytes of records"
        time.sleep(0.2)
    node.kill()
    node.write_config(dict(cfg, mqtt=dict(cfg["mqtt"], port=mosquitto.port)))  # now a good config ...
    assert node.read_file("config.good.json")
    node.write_file("config.json", b'{"node_id": "n1", "board": ')  # ... torn on flash
    node.write_file("state.json", b'{"boot_count": 1, "reset_')  # a torn boot counter
    segs = sorted(n for n in node.image.listing() if n.endswith(".seg"))
    seg = node.read_file(segs[0])
    assert len(seg) > 600
    node.write_file(segs[0], seg[:300] + b"\x00garbage\xff" * 20 + seg[300:])  # garbage in the middle
    # The old config had port 1: the last good copy is what the node must fall back on,
    # so give it the right port (as a technician's deploy would have).
    node.write_file("config.good.json", json.dumps(dict(cfg, mqtt=dict(cfg["mqtt"], port=mosquitto.port))).encode())
    node.start(cause="hard")
    collector.wait(lambda: any(h.get("outbox_repairs") for h in _healths(collector)), 60, "health with the repair")
    h = [h for h in _healths(collector) if h.get("outbox_repairs")][-1]
    assert "config.json" in h["config_error"], h
    assert "state.json" in h["state_error"], h
    collector.wait(lambda: _healths(collector)[-1]["outbox"] == 0, 60, "the outbox drained")
    seqs = collector.seqs("n1")
    assert seqs and len(missing(seqs)) <= 5 and node.alive()  # only the records under the garbage are gone
    assert _healths(collector)[-1]["dropped"] >= len(missing(seqs))

