"""`streetnode bench`: our BME280 driver against its peers on the same simulated chip.

All numbers come from one run:
  MicroPython  our drivers.bme280, and bme280-upy (copied at run time from this Python's
               site-packages into a temp dir on MICROPYPATH; never part of the repository)
  CPython      our drivers.bme280 again, and adafruit_bme280 through streetnode.bench.circuitpython's
               CircuitPythonI2C (it cannot run on MicroPython)
The harness is tools/streetnode/bench/device/bme280_micropython.py on both interpreters. Each driver gets a fresh
simulated BME280 (default calibration, constant air, bus log off) and a VirtualClock, so
sleeps cost no real time: the microseconds are the driver's work plus the simulator's.
"""

import json
import shutil
import sys
import tempfile
from pathlib import Path

from streetnode.bench.harness import DEVICE, device_script, figure, render, version as _version
from streetnode.common import mpy

SCRIPT = DEVICE / "bme280_micropython.py"
HEAP = "4m"  # MicroPython heap: room for the peers' garbage while the collector is off
ROUNDS = 5  # µs/reading is the best of this many rounds of --readings readings

_COLUMNS = (
    ("driver", "driver"),
    ("interpreter", "interpreter"),
    ("setup tx", "setup_tx"),
    ("tx/reading", "tx_per_reading"),
    ("heap B/reading", "heap_per_reading"),
    ("heap B/fetch", "heap_per_fetch"),
    ("µs/reading", "us_per_reading"),
    ("sim ms/reading", "sim_ms_per_reading"),
    ("× tx", "ratio_tx"),
    ("× heap", "ratio_heap"),
    ("× µs", "ratio_us"),
    ("reading °C / %RH / hPa", "values"),
)

NOTES = (
    "Same chip model, default calibration, constant 21.53 °C / 45.21 %RH / 1013.25 hPa; "
    "oversampling x1 for all three channels, IIR filter off, forced mode, I2C.",
    "setup tx: bus transactions from the constructor until the driver is ready to read "
    "(bme280-upy resets and configures the chip during its first reading: counted here).",
    "tx/reading: transactions for one temperature + humidity + pressure reading. "
    "adafruit_bme280 triggers a conversion per property and polls the status every 2 ms "
    "(simulated time, the chip's typical 8 ms conversion): 46; bme280-upy polls every 50 ms.",
    "heap B/reading: MicroPython: bytes allocated per reading, gc.mem_alloc() with the "
    "collector off; CPython: the largest tracemalloc peak above the baseline during one "
    "reading (CPython frees at once). heap B/fetch: our measure(), the bus part alone.",
    "µs/reading: wall time per reading, best of %d rounds; the drivers' sleeps go to a "
    "VirtualClock and cost nothing, so this is the drivers' own work plus the simulator's. "
    "sim ms/reading: the simulated time the driver waited for the chip per reading." % ROUNDS,
    "× columns: ratio to our driver on the same interpreter (higher is worse).",
)


def _copy_upy(dest):
    """Copy the installed bme280-upy package into dest; returns its version or None."""
    version = _version("bme280-upy")
    if version is None:
        return None
    from importlib import metadata

    dist = metadata.distribution("bme280-upy")
    files = [f for f in dist.files or () if f.parts[0] == "bme280" and f.suffix == ".py"]
    if not files:
        return None
    for f in files:
        target = Path(dest) / f
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(dist.locate_file(f), target)
    return version


def _best_of(rows):
    best = dict(rows[0])
    best["us_per_reading"] = min(r["us_per_reading"] for r in rows)
    return best


def run_micropython(readings):
    """Rows measured inside the real MicroPython interpreter, and the skipped peers."""
    with tempfile.TemporaryDirectory(prefix="streetnode-bench-") as peers:
        version = _copy_upy(peers)
        path = (peers,) if version else ()
        rounds = []
        for _ in range(ROUNDS):
            proc = mpy.run(
                [str(SCRIPT), str(readings), version or ""],
                heapsize=HEAP,
                path=path,
                capture_output=True,
                text=True,
                timeout=120,
            )
            if proc.returncode != 0:
                raise RuntimeError("the MicroPython benchmark failed (exit %d): %s" % (proc.returncode, proc.stderr.strip()[-2000:]))
            rounds.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    rows = [_best_of([r["rows"][i] for r in rounds]) for i in range(len(rounds[0]["rows"]))]
    skipped = dict(rounds[0]["skipped"])
    if version is None:
        skipped["bme280-upy"] = "not installed (pip install bme280-upy)"
    return rows, skipped


class _VirtualSleep:
    """adafruit_bme280 calls time.sleep(seconds): route it to the installed VirtualClock."""

    def __init__(self, module):
        self.module = module
        self.saved = module.sleep

    def __enter__(self):
        from hal import clock

        def sleep(seconds):
            clock.sleep_ms(-(-int(round(seconds * 1e6)) // 1000))

        self.module.sleep = sleep
        return self

    def __exit__(self, *exc):
        self.module.sleep = self.saved
        return False


def _adafruit(h, readings, heap_readings, version):
    import adafruit_bme280.basic as adafruit

    from streetnode.bench.circuitpython import CircuitPythonI2C

    def make(i2c):
        # The quick-start class of Adafruit's README; its pressure oversampling defaults to
        # x16: set x1 like the others (a plain attribute here, sent with every trigger).
        sensor = adafruit.Adafruit_BME280_I2C(CircuitPythonI2C(i2c), h.ADDRESS)
        sensor.overscan_pressure = adafruit.OVERSCAN_X1
        return sensor

    with _VirtualSleep(adafruit):
        return h.measure(
            "adafruit_bme280 %s" % version,
            make,
            lambda s: (s.temperature, s.relative_humidity, s.pressure),
            readings,
            heap_readings,
            values=lambda r: r,
        )


def run_cpython(readings):
    h = device_script(SCRIPT)
    heap_readings = min(readings, 20)
    rows = [_best_of([h.ours(readings, heap_readings) for _ in range(ROUNDS)])]
    skipped = {}
    version = _version("adafruit-circuitpython-bme280")
    if version is None:
        skipped["adafruit_bme280"] = "not installed (pip install adafruit-circuitpython-bme280)"
    else:
        rows.append(_best_of([_adafruit(h, readings, heap_readings, version) for _ in range(ROUNDS)]))
    return rows, skipped


def _ratios(rows):
    base = {}
    for r in rows:
        if r["driver"].startswith("streetnode"):
            base[r["interpreter"]] = r
    for r in rows:
        b = base.get(r["interpreter"])
        for key, out in (("tx_per_reading", "ratio_tx"), ("heap_per_reading", "ratio_heap"), ("us_per_reading", "ratio_us")):
            if b is None or not b[key]:
                r[out] = None
            else:
                r[out] = r[key] / b[key]
    return rows


def run(readings=200):
    """Every row of the benchmark (dicts, see tools/streetnode/bench/device/bme280_micropython.py) and the skipped peers."""
    if readings < 1:
        raise ValueError("--readings must be at least 1, not %d" % readings)
    mp_rows, mp_skipped = run_micropython(readings)
    cp_rows, cp_skipped = run_cpython(readings)
    skipped = dict(mp_skipped)
    skipped.update(cp_skipped)
    return _ratios(mp_rows + cp_rows), skipped


def _cell(key, value):
    if value is None:
        return "n/a"
    if key == "values":
        return "%.2f / %.2f / %.2f" % tuple(value)
    if key in ("driver", "interpreter"):
        return value
    if key.startswith("ratio"):
        return "%.1f" % value
    if key == "us_per_reading":
        return "%.1f" % value
    return figure(value)


def format_table(rows, skipped, readings, markdown=False):
    head = [title for title, _ in _COLUMNS]
    body = [[_cell(key, r.get(key)) for _, key in _COLUMNS] for r in rows]
    extra = ["skipped %s: %s" % (name, why) for name, why in sorted(skipped.items())]
    title = "BME280 drivers on the same simulated chip, %d readings each" % readings
    return render(title, head, body, NOTES, extra, markdown)


def main(args):
    rows, skipped = run(args.readings)
    print(format_table(rows, skipped, args.readings, markdown=args.markdown))
    return 0



if __name__ == "__main__":
    import sys

    from streetnode.bench import docs

    sys.exit(docs.run("python -m streetnode.bench.bme280", docs.readings_cli("python -m streetnode.bench.bme280", main, 200)))
