"""The node on a board's flash: LittleFS in a block device of the board's size
(hal/sim/flash.py), with the real firmware on the real MicroPython interpreter against a
real mosquitto. A full, failing or read-only flash never stops the node (issue 17)."""

import json
import time

import pytest

from host_tests.fleet import Collector, NodeRunner, missing, node_config

SMALL_FLASH = 256 * 1024  # a small flash fills in seconds; the boards' sizes are in flash.py


@pytest.fixture
def collector(mosquitto):
    c = Collector(mosquitto)
    yield c
    c.close()


@pytest.fixture
def runner(tmp_path, mpy_tree):
    nodes = []

    def make(name="n1", **kwargs):
        r = NodeRunner(tmp_path / name, mpy_tree, **kwargs)
        nodes.append(r)
        return r

    yield make
    for r in nodes:
        r.stop()


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
