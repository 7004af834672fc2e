"""Benchmark of the outbox on a board's flash (issue 17): the outbox inside MicroPython on
LittleFS (the simulated block device of hal/sim/flash.py, backed by a file) against the
host-directory mode; the flash bytes a record takes on LittleFS; and how many records the
stock ESP32-DevKitC (2 MiB VFS) and Pico W (848 KiB) flash hold while offline, so how many
hours of readings at one a minute they bridge.

    python -m streetnode.bench.flash [--records 500] [--markdown]

Rates are this machine's (a host file behind the block device, no flash timing): they
compare the two modes, they are not a board's speed. Capacity is exact for the record
sizes shown: it is counted, not timed.
"""

import argparse
import json
import subprocess
import sys
import tempfile

from streetnode.bench.harness import DEVICE, render
from streetnode.common import mpy
from streetnode.sim.flashimg import BOARD_FLASH_BYTES

SCRIPT = DEVICE / "flash_micropython.py"
KINDS = {"air": "BME280", "street": "BME280 + PMS5003 + SCD41"}


def _device(*args):
    with tempfile.TemporaryDirectory(prefix="streetnode-bench-flash-") as d:
        r = mpy.run([str(SCRIPT)] + [str(a) for a in args[:2]] + [d] + [str(a) for a in args[2:]],
                    capture_output=True, text=True, timeout=900)  # fmt: skip
    if r.returncode != 0:
        raise RuntimeError("flash benchmark on MicroPython failed: %s" % (r.stdout + r.stderr)[-2000:])
    return json.loads(r.stdout.strip().splitlines()[-1])


def run(records=500, kinds=("air", "street"), boards=("esp32-devkitc", "pico-w")):
    rates = [(mode, _device("rate", mode, records, "street")) for mode in ("lfs", "host")]
    caps = [(board, kind, _device("capacity", BOARD_FLASH_BYTES[board], kind)) for board in boards for kind in kinds]
    return rates, caps


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m streetnode.bench.flash", description=__doc__.split("\n\n")[0])
    p.add_argument("--records", type=int, default=500, help="records appended and drained per mode (default 500)")
    p.add_argument("--markdown", action="store_true", help="Markdown tables (for the README)")
    args = p.parse_args(argv)
    if args.records < 10:
        p.error("--records must be at least 10")
    rates, caps = run(args.records)
    body = []
    for mode, r in rates:
        name = "LittleFS (simulated board flash)" if mode == "lfs" else "host directory"
        body.append([name, "%d" % r["payload_bytes"], "%.0f" % r["append_per_s"], "%.0f" % r["drain_per_s"]])
    print(render("Outbox on MicroPython 1.29 (unix port), %d records of a street node" % args.records,
                 ["flash", "payload B", "appended/s", "drained/s"], body,
                 ["appended: committed to flash (flushed) one by one; drained: read 4 at a time, acknowledged",
                  "a host file behind the block device: the two modes compared, not a board's flash speed"],
                 [], args.markdown, left=lambda i, n: i < 1))  # fmt: skip
    print()
    body = []
    for board, kind, c in caps:
        body.append([board, KINDS[kind], "%d" % (c["size"] // 1024), "%d" % c["payload_bytes"],
                     "%.0f" % c["bytes_per_record"], "%d" % c["records"], "%.1f" % (c["records"] / 60.0)])  # fmt: skip
    print(render("Records held offline on LittleFS (outbox max_records 100000, default reserve 16 KiB kept free)",
                 ["board", "sensors", "flash KiB", "payload B", "flash B/record", "records", "hours at 60 s"], body,
                 ["records: appended without acknowledgement until the outbox first had to drop one",
                  "flash B/record: free bytes used per record held (payload, 12 B framing, LittleFS metadata)",
                  "the default config keeps max_records 1000 (16.7 h at 60 s); raise outbox.max_records to use the flash"],
                 [], args.markdown, left=lambda i, n: i < 2))  # fmt: skip
    return 0


if __name__ == "__main__":
    from streetnode.bench import docs

    sys.exit(docs.run("python -m streetnode.bench.flash", main))
