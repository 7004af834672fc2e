"""A short run of the deep-sleep benchmark (tools/streetnode/bench/deepsleep.py) in CI so
that it cannot rot: one wake-up of a deep-sleep node under the bench's wrapper and one
as the node's own command, the phases there and adding up. The figures of record come
from the command in docs/benchmarks.md; timings are measured, never asserted."""

from streetnode.bench import deepsleep


def test_deepsleep_benchmark_times_a_wake_up_by_phase():
    res = deepsleep.run(cycles=1, wifi=False)
    v = res["variants"]["no_radio"]
    assert v["wrapped_to_deepsleep_ms"] > 0 and v["plain_to_exit_ms"] > 0
    assert v["plain_to_reading_ms"] is not None  # the wake-up's reading reached the broker
    ph = v["phases_ms"]
    # the wrapper saw every step of the wake-up, from the loader to the goodbye
    for key in ("interpreter", "loader", "import_core", "config", "outbox_open", "sensor_read", "commit",
                "connect/connack", "connect/subscribe", "publish", "close/publish"):  # fmt: skip
        assert ph.get(key, 0) > 0, (key, ph)
    # own times: the phases (the interpreter's start apart) are the wrapped wake-up's time
    inside = sum(t for k, t in ph.items() if k != "interpreter")  # "other" holds what no row names
    assert abs(inside + ph["interpreter"] - v["wrapped_to_deepsleep_ms"]) < 1.0, (inside, v)
    text = deepsleep.table(res, markdown=True)
    assert "| **awake: process start to machine.deepsleep()**" in text
    assert text.count("\n| ") == len(deepsleep.ROWS) + 1 + 1 + 4  # head, rows, everything else, totals
