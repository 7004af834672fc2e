"""`python -m streetnode.bench.flash`: the device half on a small flash (what is counted,
never how fast)."""

from streetnode.bench import flash as bench


def test_rate_runs_on_both_modes_and_capacity_is_counted():
    for mode in ("lfs", "host"):
        r = bench._device("rate", mode, 30, "street")
        assert r["payload_bytes"] > 150 and r["append_per_s"] > 0 and r["drain_per_s"] > 0
    c = bench._device("capacity", 128 * 1024, "air")
    assert c["size"] == 128 * 1024
    # 12 bytes of framing per record, and LittleFS's own: never less than the payload takes
    assert c["bytes_per_record"] >= c["payload_bytes"] + 12
    assert c["records"] * c["bytes_per_record"] <= c["free_before"]
    assert c["records"] > 100
