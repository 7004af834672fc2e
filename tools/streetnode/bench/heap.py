"""The node's heap on a small board: the whole node (firmware, a simulated BME280,
the MQTT link to a real broker, the outbox) run for 10 000 sampling cycles inside the real
MicroPython interpreter with a board-sized heap, in one run:

- from a ROMFS image (`mpremote romfs build`), as a board runs its firmware from flash:
  bytecode executes in place. The unix port has no ROM partition, so the image is one
  bytes object in the heap, and the heap is 96 KiB *plus the image*: what is measured
  is the 96 KiB around it;
- from plain .mpy files (the bytecode loaded into the heap), with a larger heap;
- allocations per cycle, counted with the collector off, the simulator's share apart.

Reports the live heap (after a collection) at each tenth of the run (no growth after
warm-up), the highest heap use after a loop pass, and bytes allocated per cycle.

    python -m streetnode.bench.heap [--cycles 10000] [--heap 96k] [--mpy-heap 160k]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from streetnode.common import deps, mpy
from streetnode.bench import harness
from streetnode.bench.harness import DEVICE, render
from streetnode.common.broker import Broker
from streetnode.common.build import compile_tree, image_heap_bytes, romfs_image
from streetnode.common.paths import REPO

SCRIPT = DEVICE / "node_heap_micropython.py"


def size_bytes(text):
    """'96k' -> 98304; '1m' -> 1048576; '5000' -> 5000."""
    text = text.strip().lower()
    scale = {"k": 1024, "m": 1024 * 1024}.get(text[-1:], 1)
    return int(text[:-1] if scale > 1 else text) * scale


def _config(directory, port):
    cfg = {
        "node_id": "heap-bench",
        "board": "unix-sim",
        "interval_s": 1,
        "health_every": 10,
        "mqtt": {"host": "127.0.0.1", "port": port, "keepalive_s": 60},
        "sensors": [{"name": "air", "driver": "bme280", "bus": "i2c0", "address": 0x76}],
        "sim": {"start_hour": 8.0},  # the default: here so that the simulator's schema is loaded (and let go) too
    }
    Path(directory).mkdir(parents=True)
    (Path(directory) / "config.json").write_text(json.dumps(cfg))


def _node(mode, directory, cycles, heap, tree, image=None):
    env = dict(os.environ, MICROPYPATH="%s:%s:.frozen" % (tree, REPO))
    args = [str(SCRIPT), mode, str(directory), str(cycles)] + ([str(image)] if image else [])
    proc = subprocess.run(mpy.command(args, heapsize=str(heap)), cwd=REPO, env=env, capture_output=True, text=True)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"error": "exit %d: %s" % (proc.returncode, tail[0])}
    return json.loads(lines[-1])


def run(cycles=10000, heap="96k", mpy_heap="160k", count_heap="512k"):
    tree = compile_tree(lib=deps.device_lib())
    work = Path(tempfile.mkdtemp(prefix="bench-heap-"))
    try:
        image = romfs_image(tree, work / "firmware.romfs")
        image_size = image.stat().st_size
        image_heap = image_heap_bytes(image_size)
        board_heap = size_bytes(heap)
        res = {"cycles": cycles, "image_bytes": image_size}
        with Broker() as broker:
            res["broker"] = broker.kind
            _config(work / "rom", broker.port)
            res["rom"] = _node("run", work / "rom", cycles, board_heap + image_heap, tree, image)
            res["rom"]["heap"] = board_heap
            _config(work / "mpy", broker.port)
            res["mpy"] = _node("run", work / "mpy", cycles, size_bytes(mpy_heap), tree)
            res["mpy"]["heap"] = size_bytes(mpy_heap)
            _config(work / "count", broker.port)
            res["count"] = _node("count", work / "count", min(cycles, 2000), size_bytes(count_heap), tree)
        for key in ("rom", "mpy"):
            r = res[key]
            if "live" in r:
                extra = image_heap if key == "rom" else 0
                r["live_besides_image"] = [v - extra for v in r["live"]]
                r["peak_besides_image"] = r["peak"] - extra
                r["growth_after_warmup"] = r["live"][-1] - r["live"][1] if len(r["live"]) > 1 else None
        return res
    finally:
        shutil.rmtree(work, ignore_errors=True)


def smallest(cycles=500, step_k=4, rom_range=(64, 128), mpy_range=(96, 192)):
    """The smallest heap, in steps of `step_k` KiB, in which the node runs `cycles` cycles
    with every reading published and no step error, from the ROMFS image (the heap
    around the image) and from .mpy files: a bisection between the ranges' ends (KiB),
    each probe a whole run against the broker. None where even the top of a range fails."""
    tree = compile_tree(lib=deps.device_lib())
    work = Path(tempfile.mkdtemp(prefix="bench-heap-min-"))
    probes = []
    try:
        image = romfs_image(tree, work / "firmware.romfs")
        image_heap = image_heap_bytes(image.stat().st_size)
        out = {"cycles": cycles, "step_k": step_k}
        with Broker() as broker:
            for key, (lo, hi) in (("rom", rom_range), ("mpy", mpy_range)):
                n = [0]

                def ok(k, key=key, n=n):
                    n[0] += 1
                    d = work / ("%s-%d-%d" % (key, k, n[0]))
                    _config(d, broker.port)
                    extra = image_heap if key == "rom" else 0
                    r = _node("run", d, cycles, k * 1024 + extra, tree, image if key == "rom" else None)
                    good = ("error" not in r and r["step_errors"] == 0 and r["cycles"] == cycles
                            and r["published"] + r["pending"] == cycles)  # fmt: skip
                    probes.append((key, k, good, r.get("error")))
                    return good

                if not ok(hi):
                    out[key] = None
                    continue
                out[key], out[key + "_fails_at"] = harness.smallest(ok, lo, hi, step_k)
        out["probes"] = probes
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _kib(v):
    return "%.1f KiB" % (v / 1024.0)


def table(res):
    rows = []
    for key, what in (("rom", "from a ROMFS image"), ("mpy", "from .mpy files")):
        r = res[key]
        if "error" in r:
            rows.append([what, _kib(r.get("heap", 0)), "failed: " + r["error"], "", "", ""])
            continue
        lost = r["cycles"] - r["published"] - r["pending"]
        rows.append([
            what, _kib(r["heap"]), "%d cycles, %d published, %d lost, %d step errors" % (r["cycles"], r["published"], lost, r["step_errors"]),
            _kib(r["live_besides_image"][0]) + " .. " + _kib(r["live_besides_image"][-1]),
            "%+d B" % r["growth_after_warmup"], _kib(r["peak_besides_image"]),
        ])  # fmt: skip
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(prog="streetnode-bench-heap", description=__doc__.split("\n\n")[0])
    p.add_argument("--cycles", type=int, default=10000, help="sampling cycles per run (default 10000)")
    p.add_argument("--heap", default="96k", help="the board's heap, besides the ROMFS image (default 96k)")
    p.add_argument("--mpy-heap", default="160k", help="heap for the run from .mpy files (default 160k)")
    p.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    p.add_argument("--json", action="store_true", help="print the raw figures as JSON")
    p.add_argument("--smallest", action="store_true",
                   help="instead: bisect the smallest heap (4 KiB steps) that runs --cycles cycles, both ways")
    args = p.parse_args(argv)
    if args.smallest:
        m = smallest(cycles=args.cycles)
        if args.json:
            print(json.dumps(m, indent=2, sort_keys=True))
            return 0
        rows = []
        for key, what in (("rom", "from a ROMFS image (the heap around the image)"), ("mpy", "from .mpy files")):
            if m[key] is None:
                rows.append([what, "more than the range tried", ""])
            else:
                rows.append([what, "%d KiB" % m[key], "%d KiB" % m[key + "_fails_at"]])
        notes = ["%d cycles against the broker per probe, every reading published, no step error; bisection in %d KiB "
                 "steps, %d probes; the 64-bit unix port, whose objects are about twice a 32-bit board's"
                 % (m["cycles"], m["step_k"], len(m["probes"]))]  # fmt: skip
        print(render("The smallest heap the node runs in", ["firmware runs", "runs in", "does not run in"], rows,
                     notes, [], args.markdown, left=lambda i, n: i < 1))  # fmt: skip
        return 0
    res = run(args.cycles, args.heap, args.mpy_heap)
    if args.json:
        print(json.dumps(res, indent=2, sort_keys=True))
        return 0 if "error" not in res["rom"] else 1
    title = "The node (firmware, simulated BME280, MQTT to %s, outbox) for %d cycles" % (res["broker"], res["cycles"])
    notes = [
        "ROMFS image: %d bytes (flash on a board; here a bytes object in a heap of the board's heap plus the image)"
        % res["image_bytes"],
        "live heap: after a collection at each tenth of the run; growth: last tenth against the second",
        "peak: the most heap in use after any loop pass, garbage included",
    ]
    head = ["firmware runs", "heap", "result", "live heap", "growth", "peak"]
    print(render(title, head, table(res), notes, [], args.markdown))
    c = res["count"]
    print()
    if "error" in c:
        print("allocation count failed: " + c["error"])
    else:
        row = ["%d B" % c["per_cycle"], "%d B" % c["firmware_per_cycle"], "%d B" % c["sim_per_cycle"], "%.1f" % c["passes_per_cycle"]]
        notes = ["counted with the collector off over %d cycles after warm-up; the simulator's share "
                 "(chip model and fault schedule) is what a board's real chip does not cost" % (c["cycles"] * 9 // 10)]
        head = ["allocated per cycle", "firmware", "simulator", "loop passes per cycle"]
        print(render("Heap bytes allocated per sampling cycle", head, [row], notes, [], args.markdown, left=lambda i, n: False))
    return 0 if "error" not in res["rom"] and "error" not in res["mpy"] else 1


if __name__ == "__main__":
    from streetnode.bench import docs

    sys.exit(docs.run("python -m streetnode.bench.heap", main))
