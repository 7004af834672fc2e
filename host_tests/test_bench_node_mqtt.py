"""Short runs of the whole-node and MQTT benchmarks (tools/streetnode/bench/node.py and
mqtt.py) in CI so that they cannot rot: the figures are there and hold together. The
figures of record come from the commands in docs/benchmarks.md; timings are measured,
never asserted."""

from streetnode.bench import mqtt as bench_mqtt
from streetnode.bench import node as bench_node


def test_mqtt_benchmark_measures_every_variant_in_one_run():
    res = bench_mqtt.run(n=50, n_nagle=3, rounds=1)
    for key in ("bare_umqtt", "bare_umqtt_nodelay", "link", "link_paho"):
        assert res[key]["per_s"] > 0, (key, res[key])
    # the link's own allocation per publish, measured on MicroPython (and umqtt's)
    assert res["link"]["heap_bytes_per_publish"] >= 0
    assert res["link_vs_bare_nodelay"] > 0
    table = bench_mqtt.format_table(res)
    assert table.count("\n| ") == 5 and "link / bare+NODELAY" in table


def test_node_benchmark_starts_drains_and_reports_its_heap():
    res = bench_node.run(records=40, starts=1, rounds=2)
    assert res["first_reading_ms_mpy"] > 0 and res["first_reading_ms_source"] > 0
    # the outage: every committed reading of the backlog arrives in the drain
    assert res["drained"] >= 40, res
    assert res["drain_per_s"] > 0 and res["bare_umqtt_qos1_per_s"] > 0
    # drain and bare in turns, a ratio per round; the bare loop's publishes reached the subscriber
    assert len(res["drain_rounds"]) == len(res["bare_rounds"]) == len(res["ratio_rounds"]) == 2
    assert res["bare_rx_per_s"] > 0 and res["drain_vs_bare_rx"] > 0
    assert res["mem_alloc_after_gc"] and res["mem_alloc_after_gc"]["min"] > 0
    assert res["mem_alloc_idle_after_gc"] and res["mem_alloc_idle_after_gc"]["min"] > 0
    text = bench_node.table(res, 40, 1, markdown=True)
    assert "| drain / bare: median of the rounds' ratios (min .. max) |" in text and "records/s" in text
