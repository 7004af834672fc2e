"""streetnode.bench.sensors: the table's structure and the numbers that are not timings
(transactions per reading and to set up, simulated waits, the values read). Timings and
heap are measured, never asserted."""

import re
from types import SimpleNamespace

import pytest

from streetnode.bench import sensors as bench_sensors

TITLES = [title for title, _ in bench_sensors._COLUMNS]
READINGS = 3

# (sensor, driver prefix): (setup tx, tx per reading, simulated ms per reading)
OURS = {
    ("SHT4x", "streetnode drivers.sht4x"): (2, 2, 9),
    ("BH1750", "streetnode drivers.bh1750 (continuous)"): (7, 1, 200),
    ("BH1750", "streetnode drivers.bh1750 (one_time)"): (7, 2, 380),
    ("SCD4x", "streetnode drivers.scd4x"): (6, 2, 5001),
    ("SPS30", "streetnode drivers.sps30"): (7, 4, 1000),
    ("PMS5003", "streetnode drivers.pms5003 (active)"): (11, 1, 2300),
    ("PMS5003", "streetnode drivers.pms5003 (passive)"): (3, 2, 40),
}
PEERS = {
    ("SHT4x", "adafruit_sht4x"): (2, 2),
    ("BH1750", "adafruit_bh1750"): (3, 1),
    ("SCD4x", "adafruit_scd4x"): (3, 8),  # each property polls data-ready (2 tx) first
    ("SCD4x", "sensirion_i2c_scd4x"): (2, 2),
    ("SPS30", "sensirion_i2c_sps30"): (1, 4),
    ("PMS5003", "pms5003 (Pimoroni)"): (1, 4),  # read(1), read(1), read(2), read(28)
}
AIR = bench_sensors._harness().ENV
EXPECTED_VALUES = {
    "SHT4x": [AIR["temperature"], AIR["humidity"]],
    "BH1750": [AIR["illuminance"]],
    "SCD4x": [AIR["co2"], AIR["temperature"], AIR["humidity"]],
    "SPS30": [AIR["pm1_0"], AIR["pm2_5"], AIR["pm10"]],
    "PMS5003": [AIR["pm1_0"], AIR["pm2_5"], AIR["pm10"]],
}


@pytest.fixture(scope="module")
def result():
    return bench_sensors.run(READINGS)


def _row(rows, sensor, driver_prefix, interpreter_prefix):
    found = [
        r
        for r in rows
        if r["sensor"] == sensor and r["driver"].startswith(driver_prefix) and r["interpreter"].startswith(interpreter_prefix)
    ]
    assert len(found) == 1, [(r["sensor"], r["driver"], r["interpreter"]) for r in rows]
    return found[0]


def test_every_driver_has_a_row_grouped_by_sensor(result):
    rows, skipped = result
    assert skipped == {}  # every peer is pinned in the test extras
    assert len(rows) == 2 * len(OURS) + len(PEERS)
    sensors = [r["sensor"] for r in rows]
    assert sensors == sorted(sensors, key=bench_sensors._harness().SENSORS.index)
    for (sensor, driver), _ in OURS.items():
        _row(rows, sensor, driver, "MicroPython 1.29")
        _row(rows, sensor, driver, "CPython")
    for (sensor, driver), _ in PEERS.items():
        _row(rows, sensor, driver, "CPython")
    assert not any(r["interpreter"].startswith("MicroPython") and not r["driver"].startswith("streetnode") for r in rows)
    for r in rows:
        assert r["readings"] == READINGS and r["us_per_reading"] > 0 and r["heap_per_reading"] >= 0


def test_our_transactions_per_reading_and_to_set_up(result):
    rows, _ = result
    for (sensor, driver), (setup_tx, tx, sim_ms) in OURS.items():
        for interpreter in ("MicroPython", "CPython"):
            r = _row(rows, sensor, driver, interpreter)
            assert (r["setup_tx"], r["tx_per_reading"], r["sim_ms_per_reading"]) == (setup_tx, tx, sim_ms), r


def test_peers_transactions_on_the_same_chips(result):
    rows, _ = result
    for (sensor, driver), (setup_tx, tx) in PEERS.items():
        r = _row(rows, sensor, driver, "CPython")
        assert (r["setup_tx"], r["tx_per_reading"]) == (setup_tx, tx), r
        ours = [o for o in rows if o["sensor"] == sensor and o["interpreter"] == r["interpreter"]][0]
        assert ours["driver"].startswith("streetnode")
        assert r["ratio_tx"] == tx / ours["tx_per_reading"]


def test_ratios_are_to_our_first_row_of_the_sensor(result):
    rows, _ = result
    for (sensor, driver), (_, tx, _) in OURS.items():
        for interpreter in ("MicroPython", "CPython"):
            r = _row(rows, sensor, driver, interpreter)
            first = [o for o in rows if o["sensor"] == sensor and o["interpreter"] == r["interpreter"]][0]
            assert r["ratio_tx"] == tx / first["tx_per_reading"]
            assert r["ratio_heap"] == pytest.approx(r["heap_per_reading"] / first["heap_per_reading"])
    assert _row(rows, "BH1750", "streetnode drivers.bh1750 (one_time)", "MicroPython")["ratio_tx"] == 2


def test_every_driver_reads_the_simulated_air(result):
    rows, _ = result
    for r in rows:
        assert r["values"] == pytest.approx(EXPECTED_VALUES[r["sensor"]], abs=0.011), r


def test_markdown_table_and_footnotes(capsys):
    assert bench_sensors.main(SimpleNamespace(readings=2, markdown=True)) == 0
    out = capsys.readouterr().out
    table = [line for line in out.splitlines() if line.startswith("|")]
    assert len(table) == 2 + 2 * len(OURS) + len(PEERS)
    assert [c.strip() for c in table[0].strip("|").split("|")] == TITLES
    assert all(line.count("|") == len(TITLES) + 1 for line in table)
    assert re.fullmatch(r"\|(---\|){3}(---:\|){%d}---\|" % (len(TITLES) - 4), table[1])
    cells = [c.strip() for c in table[2].strip("|").split("|")]
    assert cells[:5] == ["SHT4x", "streetnode drivers.sht4x", "MicroPython 1.29", "2", "2"]
    assert cells[-1] == "21.53 °C / 45.21 %RH"
    notes = [line for line in out.splitlines() if line.startswith("- ")]
    assert len(notes) == len(bench_sensors.NOTES) and "2 readings each" in out


def test_plain_table():
    rows, skipped = bench_sensors.run(1)
    skipped = dict(skipped, example_peer="not installed (pip install example)")
    text = bench_sensors.format_table(rows, skipped, 1)
    lines = text.splitlines()
    start = lines.index(next(line for line in lines if line.startswith("sensor ")))
    assert re.split(r"\s{2,}", lines[start].strip()) == TITLES
    assert set(lines[start + 1].replace(" ", "")) == {"-"}
    body = lines[start + 2 : start + 2 + len(rows)]
    assert all(len(re.split(r"\s{2,}", line.strip())) == len(TITLES) for line in body)
    assert lines[start + 2 + len(rows)] == ""
    assert lines[-1] == "  left out: example_peer: not installed (pip install example)"


def test_bad_reading_count_is_a_clear_error():
    with pytest.raises(ValueError, match="--readings"):
        bench_sensors.run(0)
