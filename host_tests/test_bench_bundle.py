"""The bundle size table (python -m streetnode.bench.bundle, docs/technician.md) is bundle's
own size report for every target: it cannot drift from what `streetnode bundle` builds."""

from streetnode.bench import bundle as bench_bundle
from streetnode.technician import bundle


def test_the_table_is_the_size_report_of_every_target(tmp_path):
    res = bench_bundle.run()
    assert set(res) == {"esp32", "rp2", "unix"}
    _, manifest = bundle.make("esp32", tmp_path / "esp32")
    assert res["esp32"][1] == bundle.sizes(manifest)  # the same figures `streetnode bundle` reports
    esp32, unix = res["esp32"][1], res["unix"][1]
    assert res["rp2"][1]["drivers"] == esp32["drivers"]  # bytecode does not depend on the chip
    assert unix["hal"]["files"] > esp32["hal"]["files"]  # the simulator rides only in unix
    table = bench_bundle.markdown(res)
    total = [line for line in table.splitlines() if line.startswith("| **total**")]
    assert len(total) == 1 and "%d, " % esp32["total"]["files"] in total[0]
