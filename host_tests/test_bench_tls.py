"""`python -m streetnode.bench.tls`: the node's link connects over verified TLS inside
MicroPython, and the figures it reports are there and plausible (TLS costs more than TCP)."""

import pytest

from streetnode.common.broker import find_mosquitto


@pytest.mark.usefixtures("mpy_tree")
def test_tls_heap_bench_measures_both_links(capsys):
    if not find_mosquitto():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto); CI installs it")
    from streetnode.bench import tls

    res = tls.run("128k")
    for key in ("plain", "tls"):
        assert res[key]["connected"]["ok"] is True, res[key]["connected"]
        assert set(tls.STEPS) <= set(res[key]), res[key]
    plain, secure = res["plain"]["connected"], res["tls"]["connected"]
    assert secure["allocated_during"] > plain["allocated_during"] > 0
    assert secure["c_heap_rss"] - res["tls"]["start"]["c_heap_rss"] > 0
    assert tls.main(["--markdown"]) == 0
    assert "| TLS (ECDSA P-256, verified) |" in capsys.readouterr().out
