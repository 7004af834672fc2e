"""`streetnode bench`: the table's structure and the numbers that are not timings
(transactions, heap, simulated waits, the values read). Timings are measured, never
asserted."""

import re
import subprocess
import sys
from types import SimpleNamespace

import pytest

from streetnode.common.paths import REPO
from streetnode.bench import bme280 as bench
from streetnode.bench.harness import device_script

TITLES = [title for title, _ in bench._COLUMNS]
OURS = "streetnode drivers.bme280"


@pytest.fixture(scope="module")
def result():
    return bench.run(3)


def _row(rows, driver_prefix, interpreter_prefix):
    found = [r for r in rows if r["driver"].startswith(driver_prefix) and r["interpreter"].startswith(interpreter_prefix)]
    assert len(found) == 1, [(r["driver"], r["interpreter"]) for r in rows]
    return found[0]


def test_every_driver_has_a_row_on_its_interpreter(result):
    rows, skipped = result
    assert skipped == {}
    assert [(r["driver"].split()[0], r["interpreter"].split()[0]) for r in rows] == [
        (OURS.split()[0], "MicroPython"),
        ("bme280-upy", "MicroPython"),
        (OURS.split()[0], "CPython"),
        ("adafruit_bme280", "CPython"),
    ]
    for r in rows:
        assert r["readings"] == 3 and r["us_per_reading"] > 0
        assert r["heap_per_reading"] >= 0 and r["tx_per_reading"] >= 1


def test_our_driver_two_transactions_per_forced_reading_no_heap_in_measure(result):
    rows, _ = result
    for interpreter in ("MicroPython", "CPython"):
        ours = _row(rows, OURS, interpreter)
        assert ours["tx_per_reading"] == 2
        assert ours["setup_tx"] == 8
        assert ours["sim_ms_per_reading"] == 10  # the datasheet's 9.3 ms maximum, rounded up
        assert ours["ratio_tx"] == 1 and ours["ratio_us"] == 1
    assert _row(rows, OURS, "MicroPython")["heap_per_fetch"] == 0


def test_peers_numbers_on_the_same_chip(result):
    rows, _ = result
    upy = _row(rows, "bme280-upy", "MicroPython")
    ada = _row(rows, "adafruit_bme280", "CPython")
    assert (upy["setup_tx"], upy["tx_per_reading"], upy["sim_ms_per_reading"]) == (17, 4, 50)
    assert (ada["setup_tx"], ada["tx_per_reading"]) == (13, 46)
    assert upy["ratio_tx"] == 2 and ada["ratio_tx"] == 23
    assert upy["heap_per_reading"] > _row(rows, OURS, "MicroPython")["heap_per_reading"]


def test_every_driver_reads_the_simulated_air(result):
    rows, _ = result
    truth = device_script(bench.SCRIPT).ENV
    for r in rows:
        t, h, p = r["values"]
        assert abs(t - truth["temperature"]) <= 0.011, r
        assert abs(p - truth["pressure"]) <= 0.015, r  # bme280-upy's int32 default: whole Pa
        if r["driver"].startswith("bme280-upy"):
            assert abs(h - truth["humidity"]) > 0.3  # its humidity formula (test_bme280_peers)
        else:
            assert abs(h - truth["humidity"]) <= 0.03, r


def _plain_rows(text):
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("driver "))
    header = re.split(r"\s{2,}", lines[start].strip())
    assert set(lines[start + 1].replace(" ", "")) == {"-"}
    body = []
    for line in lines[start + 2 :]:
        if not line.strip():
            break
        body.append(re.split(r"\s{2,}", line.strip()))
    return header, body


def test_cli_prints_the_plain_table():
    proc = subprocess.run(
        [sys.executable, "-m", "streetnode.cli", "bench", "--readings", "3"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    header, body = _plain_rows(proc.stdout)
    assert header == TITLES
    assert len(body) == 4 and all(len(cells) == len(TITLES) for cells in body)
    cells = dict(zip(header, body[0]))
    assert (cells["driver"], cells["interpreter"]) == (OURS, "MicroPython 1.29")
    assert (cells["tx/reading"], cells["heap B/fetch"], cells["× tx"]) == ("2", "0", "1.0")
    assert "VirtualClock" in proc.stdout and "3 readings each" in proc.stdout


def test_markdown_table(capsys):
    assert bench.main(SimpleNamespace(readings=2, markdown=True)) == 0
    out = capsys.readouterr().out
    table = [line for line in out.splitlines() if line.startswith("|")]
    assert len(table) == 2 + 4
    assert [c.strip() for c in table[0].strip("|").split("|")] == TITLES
    assert all(line.count("|") == len(TITLES) + 1 for line in table)
    assert re.fullmatch(r"\|(---\|){2}(---:\|){%d}" % (len(TITLES) - 2), table[1])
    assert any(line.startswith("- ") for line in out.splitlines())


def test_bad_reading_count_is_a_clear_error():
    with pytest.raises(ValueError, match="--readings"):
        bench.run(0)
    proc = subprocess.run(
        [sys.executable, "-m", "streetnode.cli", "bench", "--readings", "0"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 1 and "--readings must be at least 1" in proc.stderr
