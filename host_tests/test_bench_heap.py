"""The heap benchmark of a whole node (tools/streetnode/bench/heap.py) works and its
figures hold together: a short run on the real interpreter against the real broker.
The figures of record come from `python -m streetnode.bench.heap` (docs/benchmarks.md)."""

from streetnode.bench import heap as bench_heap


def test_size_bytes():
    assert bench_heap.size_bytes("96k") == 96 * 1024
    assert bench_heap.size_bytes("1M") == 1024 * 1024
    assert bench_heap.size_bytes("5000") == 5000


def test_a_short_run_in_a_board_sized_heap_publishes_every_cycle_without_growth():
    # The board's 96 KiB around the ROMFS image, issue 12's goal, and 156k for the run from
    # .mpy files (issue 12's 128 KiB from .mpy files is not reached). The smallest heaps of
    # record are written by `python -m streetnode.bench.heap --smallest` in docs/benchmarks.md,
    # "Heap on a small board".
    res = bench_heap.run(cycles=200, heap="96k", mpy_heap="156k")
    for key in ("rom", "mpy"):
        r = res[key]
        assert "error" not in r, (key, r)
        assert r["cycles"] == 200 and r["step_errors"] == 0
        assert r["published"] + r["pending"] == 200 and r["dropped"] == 0
        assert r["sensor_errors"] == {"air": 0}
        # config validation is loaded for boot and let go again (firmware/node.py)
        assert r["config_module_loaded"] is False
        assert len(r["live"]) == 10
        # growth is measured over the last 180 cycles (live[1] at cycle 20 to live[-1] at
        # 200): a leak of 2 bytes a cycle (360 B) or more fails this (the runs here grow by 0)
        window = r["cycles"] - r["cycles"] // len(r["live"])
        assert window == 180
        print(key, "live heap", r["live"], "growth", r["growth_after_warmup"])
        assert r["growth_after_warmup"] < 2 * window, r["live"]
    # the ROMFS run stays inside the board's heap around the image
    assert res["rom"]["peak_besides_image"] <= res["rom"]["heap"]
    c = res["count"]
    assert "error" not in c, c
    assert c["per_cycle"] > 0 and c["firmware_per_cycle"] > 0 and c["sim_per_cycle"] > 0
    assert abs(c["per_cycle"] - c["firmware_per_cycle"] - c["sim_per_cycle"]) < 1
