"""Benchmarks of a whole node: the firmware on the real MicroPython interpreter
against a real broker, all in one run.

- time from process start to the first reading at a subscriber (its PUBACK comes with it),
  with the firmware compiled to .mpy and from source;
- the backlog drain rate after an outage, against the ceiling: the same umqtt.simple
  publishing QoS 1 in a bare loop (streetnode.bench.mqtt), in the same run: several
  rounds of each in turns, the median of their ratios;
- the node's heap after a collection, from its own health reports during the drain.

    python -m streetnode.bench.node [--records 1000] [--starts 5] [--rounds 5]
"""

import argparse
import sys
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from streetnode.bench import mqtt as bench_mqtt
from streetnode.common import deps, mpy, mqtt
from streetnode.common.broker import Broker
from streetnode.common.build import compile_tree
from streetnode.common.paths import REPO

HEAP = "512k"


class _Arrivals:
    def __init__(self, broker):
        self.data = {}  # seq -> arrival (perf_counter)
        self.times = []  # arrival of every reading, repeats included (the bare loop repeats one)
        self.health = []
        self.lock = threading.Lock()
        # QoS 0: the broker then forwards each reading as it gets it, not paced by this
        # subscriber's PUBACKs (at most 20 in flight to it, acknowledged from Python), so
        # the arrival rate is the node's publishing rate.
        self.c = mqtt.connect(mqtt.BrokerOptions(broker.host, broker.port), "bench-node-%d" % os.getpid(),
                              on_message=self._msg,
                              on_connect=lambda c: c.subscribe("streetnode/#", qos=0))  # fmt: skip

    def _msg(self, c, u, msg):
        t = time.perf_counter()
        with self.lock:
            if msg.topic.endswith("/data"):
                self.times.append(t)
                self.data.setdefault(json.loads(msg.payload)["seq"], t)
            elif msg.topic.endswith("/health"):
                self.health.append(json.loads(msg.payload))

    def reset(self):
        with self.lock:
            self.data.clear()
            self.times.clear()
            self.health.clear()

    def wait(self, cond, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                if cond():
                    return True
            time.sleep(0.001)
        return False

    def close(self):
        mqtt.close(self.c)


def _config(d, port, interval_s):
    cfg = {
        "node_id": "bench",
        "board": "unix-sim",
        "interval_s": interval_s,
        "health_every": 1,
        "mqtt": {"host": "127.0.0.1", "port": port, "keepalive_s": 30},
        "outbox": {"max_records": 100000},
        "sensors": [{"name": "air", "driver": "bme280", "bus": "i2c0", "address": 0x76}],
    }
    (Path(d) / "config.json").write_text(json.dumps(cfg))


def _start(d, compiled, lib, tree):
    if compiled:
        where = mpy.compiled(tree, d)  # the .mpy tree only (from the repository, -m would import its sources)
        args = ["-m", "firmware.main_unix", str(d)]
    else:
        where = {"env": mpy.environment([lib]), "cwd": str(d)}  # the sources, compiled at start
        args = [str(REPO / "firmware" / "main_unix.py"), str(d)]
    return subprocess.Popen(mpy.command(args, heapsize=HEAP), **where, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip


def _stop(p):
    p.terminate()
    p.wait(10)


def _rate(times):
    """Arrivals per second from the first to the last of `times`."""
    return int((len(times) - 1) / (times[-1] - times[0])) if len(times) > 1 and times[-1] > times[0] else 0


def run(records=1000, starts=5, rounds=5):
    lib = deps.device_lib()
    tree = compile_tree(lib=lib)
    res = {"heap": HEAP}
    work = tempfile.mkdtemp(prefix="bench-node-")
    try:
        with Broker() as broker:
            res["broker"] = broker.kind
            rx = _Arrivals(broker)
            idle_allocs = []  # the .mpy node's first health, no backlog: its heap at rest
            for compiled in (True, False):
                times = []
                for i in range(starts):
                    d = Path(work) / ("start-%s-%d" % (compiled, i))
                    d.mkdir()
                    _config(d, broker.port, 60)
                    rx.reset()
                    t0 = time.perf_counter()
                    p = _start(d, compiled, lib, tree)
                    ok = rx.wait(lambda: 1 in rx.data, 30)
                    if ok:
                        times.append((rx.data[1] - t0) * 1000)
                    if compiled and rx.wait(lambda: rx.health, 30):
                        with rx.lock:
                            idle_allocs += [h["mem_alloc"] for h in rx.health if h.get("mem_alloc") is not None]
                    _stop(p)
                res["first_reading_ms_" + ("mpy" if compiled else "source")] = round(statistics.median(times), 1) if times else None
            # The outage: the node commits `records` cycles with no broker to reach; its
            # flash is kept, and each round drains a copy of it.
            backlog = Path(work) / "backlog"
            backlog.mkdir()
            _config(backlog, 1, 0.05)
            p = _start(backlog, True, lib, tree)
            time.sleep(records * 0.05 + 3)
            _stop(p)
            _config(backlog, broker.port, 3600)
            drains, bares, bares_rx, allocs = [], [], [], []
            drained = []
            for i in range(rounds):  # drain and bare in turns: both see the same machine
                d = Path(work) / ("drain-%d" % i)
                shutil.copytree(backlog, d)
                rx.reset()
                p = _start(d, True, lib, tree)
                rx.wait(lambda: len(rx.data) >= records, 120)
                time.sleep(1)
                _stop(p)
                with rx.lock:
                    arrivals = sorted(rx.data.values())
                    allocs += [h["mem_alloc"] for h in rx.health if h.get("mem_alloc") is not None]
                n = len(arrivals)
                drained.append(n)
                drains.append(_rate(arrivals))
                rx.reset()
                bares.append(bench_mqtt.bare_qos1(broker.port, 1000))
                rx.wait(lambda: len(rx.times) >= 1020, 10)  # its 20 warm-up publishes too
                with rx.lock:
                    bares_rx.append(_rate(rx.times[20:]))
                shutil.rmtree(d, ignore_errors=True)
            rx.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ratios = [a / b for a, b in zip(drains, bares)]
    res["rounds"] = rounds
    res["drained"] = min(drained)
    res["drain_rounds"] = drains
    res["bare_rounds"] = bares
    res["ratio_rounds"] = [round(r, 3) for r in ratios]
    res["drain_per_s"] = int(statistics.median(drains))
    res["bare_umqtt_qos1_per_s"] = int(statistics.median(bares))
    res["drain_vs_bare"] = round(statistics.median(ratios), 3)
    # the bare loop's publishes as the same subscriber saw them: the drain's own yardstick
    res["bare_rx_rounds"] = bares_rx
    res["bare_rx_per_s"] = int(statistics.median(bares_rx))
    res["drain_vs_bare_rx"] = round(statistics.median([a / b for a, b in zip(drains, bares_rx) if b]), 3)
    res["mem_alloc_after_gc"] = {"min": min(allocs), "max": max(allocs)} if allocs else None
    res["mem_alloc_idle_after_gc"] = {"min": min(idle_allocs), "max": max(idle_allocs)} if idle_allocs else None
    return res


def main(argv=None):
    p = argparse.ArgumentParser(prog="streetnode-bench-node", description=__doc__.split("\n\n")[0])
    p.add_argument("--records", type=int, default=1000, help="backlog size (default 1000)")
    p.add_argument("--starts", type=int, default=5, help="process starts per variant (default 5)")
    p.add_argument("--rounds", type=int, default=5,
                   help="drains of the backlog, each followed by a round of the bare loop (default 5)")
    p.add_argument("--markdown", action="store_true", help="the table as Markdown (for docs/benchmarks.md)")
    p.add_argument("--json", action="store_true", help="the raw figures as JSON")
    args = p.parse_args(argv)
    res = run(args.records, args.starts, args.rounds)
    if args.json:
        print(json.dumps(res, indent=1))
        return 0
    print(table(res, args.records, args.starts, args.markdown))
    return 0 if res.get("drained") else 1


def table(res, records, starts, markdown=False):
    """The figures of one run as a table (harness.render)."""
    from streetnode.bench.harness import render

    def ms(v):
        return "%.0f ms" % v if v is not None else "no reading arrived"

    mem = res.get("mem_alloc_after_gc")
    idle = res.get("mem_alloc_idle_after_gc")

    def heap_span(h):
        return "%d .. %d B" % (h["min"], h["max"]) if h else "no health report"

    rows = [
        ["process start to the first reading at a subscriber, `.mpy` (median of %d)" % starts,
         ms(res.get("first_reading_ms_mpy"))],
        ["the same, compiled from source at start", ms(res.get("first_reading_ms_source"))],
        ["backlog drain after an outage (at least %d records arrived of %d and more), median of %d rounds"
         % (res["drained"], records, res["rounds"]), "%d records/s" % res["drain_per_s"]],
        ["bare umqtt.simple QoS 1 publishes in a loop, same run, a round after each drain (median)",
         "%d /s" % res["bare_umqtt_qos1_per_s"]],
        ["drain / bare: median of the rounds' ratios (min .. max)",
         "%.2f (%.2f .. %.2f)" % (res["drain_vs_bare"], min(res["ratio_rounds"]), max(res["ratio_rounds"]))],
        ["the bare loop's publishes as the same subscriber received them (median)", "%d /s" % res["bare_rx_per_s"]],
        ["drain / bare at the subscriber: median of the rounds' ratios", "%.2f" % res["drain_vs_bare_rx"]],
        ["node heap after a collection, at its first reading, no backlog (64-bit objects)", heap_span(idle)],
        ["the same during the drain, 16 records in flight", heap_span(mem)],
    ]  # fmt: skip
    notes = [
        "the node as .mpy with a BME280 on the real MicroPython unix port, heap %s, broker %s" % (res["heap"], res["broker"]),
        "drain: arrivals at a QoS 0 subscriber on the same machine (first to last), each round a copy of the same "
        "backlog on flash; bare: the same umqtt in a bare QoS 1 loop with TCP_NODELAY, 1000 publishes "
        "(streetnode.bench.mqtt), against the same broker right after each drain",
        "rounds, records/s: drain %s; bare %s; bare at the subscriber %s"
        % (res["drain_rounds"], res["bare_rounds"], res["bare_rx_rounds"]),
        "node heap: gc.mem_alloc() after a collection, from the node's own health reports. The heap benchmark "
        "(python -m streetnode.bench.heap) measures less: its node is firmware.node booted by that benchmark's "
        "own script on a virtual clock, a host directory for flash and no backlog, without the unix port's entry "
        "firmware/main_unix",
    ]  # fmt: skip
    return render("A whole node against mosquitto", ["what", "figure"], rows, notes, [], markdown, left=lambda i, n: i < 1)


if __name__ == "__main__":
    from streetnode.bench import docs

    sys.exit(docs.run("python -m streetnode.bench.node", main))
