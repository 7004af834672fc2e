"""A short run of the over-the-air benchmark (tools/streetnode/bench/ota.py) in CI so that it
cannot rot: a release pushed to a sim node is confirmed, its phases are all seen, the heap
sampler reports every state, and no reading is lost. The figures of record come from the
command in docs/benchmarks.md; timings are measured, never asserted."""

import pytest

from streetnode.bench import ota as bench_ota
from streetnode.common import broker as _broker


def test_bumped_versions():
    assert bench_ota.bumped("0.1.0") == "0.1.1"
    assert bench_ota.bumped("1.2.3.9") == "1.2.3.10"


def test_heap_records_keep_the_last_line_of_each_run_of_a_state():
    log = "\n".join([
        "mqtt: connected",
        'bench-heap {"state": "idle", "fw": "0.1.0", "passes": 3, "peak": 5, "live": 4, "free": 9, "heap": 20}',
        'bench-heap {"state": "receiving", "fw": "0.1.0", "passes": 3, "peak": 7, "live": 5, "free": 8, "heap": 20}',
        'bench-heap {"state": "receiving", "fw": "0.1.0", "passes": 10, "peak": 9, "live": 6, "free": 7, "heap": 20}',
        'bench-heap {"state": "trial", "fw": "0.1.0", "passes": 2, "peak": 7, "live": 5, "free": 8, "heap": 20}',
        'bench-heap {"state": "trial", "fw": "0.1.1", "passes": 3, "peak": 6, "live": 4, "free": 9, "heap": 20}',
    ])  # fmt: skip
    recs = bench_ota.heap_records(log)
    assert [(r["state"], r["fw"], r["passes"]) for r in recs] == [
        ("idle", "0.1.0", 3), ("receiving", "0.1.0", 10), ("trial", "0.1.0", 2), ("trial", "0.1.1", 3)]


def test_ota_benchmark_pushes_confirms_and_samples_the_heap():
    if not _broker.find_mosquitto():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto); CI installs it")
    res = bench_ota.run(interval_s=0.5, nodelay=False)
    for key in ("push", "heap_push"):
        p = res[key]
        assert p["version"] == bench_ota.bumped(res["from"])
        # every phase was seen on the node's ota/status, in order
        for phase in ("offer_s", "transfer_s", "final_check_s", "trial_s", "to_confirmed_s"):
            assert p[phase] is not None and p[phase] >= 0, (key, phase, p)
        assert p["missing_readings"] == 0 and p["readings"] > 0, p
    assert res["push"]["chunks"] > res["push"]["files"] > res["esp32"]["files"] > 0
    states = [r["state"] for r in res["heap_by_state"]]
    assert states[0] == "idle" and "receiving" in states and "verifying" in states and states[-1] == "confirmed", states
    heap = res["heap_by_state"][1]
    assert 0 < heap["live"] <= heap["peak"] < heap["heap"] and heap["free"] > 0, heap
    text = bench_ota.tables(res, markdown=True)
    assert "| 3. transfer: every file sent" in text and "| OTA state | running |" in text


def test_the_heap_bisection_finds_the_boundary_in_steps():
    from streetnode.bench import harness

    tried = []

    def ok(k):
        tried.append(k)
        return k >= 300

    assert harness.smallest(ok, 128, 512, 16) == (304, 288)
    assert len(tried) <= 5 and all(k % 16 == 0 for k in tried)
    assert harness.smallest(lambda k: True, 128, 512, 16) == (144, 128)  # lo is taken to fail
