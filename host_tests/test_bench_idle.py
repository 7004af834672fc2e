"""A short run of the idle benchmark (tools/streetnode/bench/idle.py) in CI so that it
cannot rot: it boots its nodes, watches them, answers commands and writes its table. The
figures of record come from the commands in docs/benchmarks.md; timings are measured,
never asserted."""

import pytest

from streetnode.bench import idle


@pytest.mark.usefixtures("mpy_tree")
def test_idle_benchmark_watches_idle_nodes_and_writes_its_table():
    res = idle.run(nodes=2, duration=1.0, commands=2)
    assert res["nodes"] == 2 and res["readings_in_window"] == 0, res  # interval 3600 s: nothing due
    assert res["cpu_s_per_node_hour"] >= 0 and res["wakeups_per_node_s"] >= 0
    assert res["cmd_answered"] == "2/2" and res["cmd_rtt_ms_median"] > 0, res
    table = idle.markdown(res)
    assert table.startswith("| 2 idle sim node(s), interval 3600 s, watched 1 s")
    assert "| command to its result, median (max); 2/2 answered |" in table and "strace" not in table
    # the parse of strace's summary (-c) that the --strace row is made of
    calls, total = idle.parse_strace_summary(
        "% time     seconds  usecs/call     calls    errors syscall\n"
        "------ ----------- ----------- --------- --------- ----------------\n"
        " 60.00    0.000300          18        16           fcntl\n"
        " 40.00    0.000200          28         7           poll\n"
        "------ ----------- ----------- --------- --------- ----------------\n"
        "100.00    0.000500          21        23           total\n")  # fmt: skip
    assert calls == {"fcntl": 16, "poll": 7} and total == 23
