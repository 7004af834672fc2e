"""Benchmark (not a test): `streetnode bridge` into a real SensorThings API v1.1 server
(django-ogc-sensorthings on SQLite, uvicorn on loopback; the test extra), in one run:

1. observations per second into the server, DataArray batches (CreateObservations) against
   one POST per observation, the same readings through the same target code;
2. the whole bridge as the service runs it (a process, a persistent session on mosquitto,
   manual acks, the state file, MALLOC_ARENA_MAX as the systemd unit sets it), fed a
   simulated hour of fleet traffic (default 50 nodes every 10 s = 18,000 readings, 54,000
   observations) as fast as it takes them: its rate, and its memory (VmRSS and, with
   --tracemalloc, the Python heap) along the run, sampled by what it had forwarded.

    .venv/bin/python -m streetnode.bench.bridge [--nodes 50] [--hour-s 3600] [--interval 10] [--markdown]
    .venv/bin/python -m streetnode.bench.bridge --readings 0 --hour-s 14400 --tracemalloc   # memory only, 4 h
    .venv/bin/python -m streetnode.bench.bridge --markdown --update docs/integrator.md
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

from streetnode.common.broker import Broker
from streetnode.common.paths import REPO

SAMPLES = 8  # memory figures along the run, besides the start

# Run as the bridge process with --tracemalloc: the bridge's own main, and a thread that
# writes the Python heap (tracemalloc: current bytes, and the 5 biggest allocation sites)
# to a file every second, for the benchmark to read beside VmRSS.
_TRACED = r"""
import json, os, sys, threading, time, tracemalloc
tracemalloc.start()
out = sys.argv.pop(1)
def dump():
    n = 0
    top = top_max = []
    most = 0
    while True:
        cur, peak = tracemalloc.get_traced_memory()
        if n % 10 == 0:
            stats = tracemalloc.take_snapshot().statistics("lineno")[:5]
            top = [["%s:%d" % (s.traceback[0].filename, s.traceback[0].lineno), s.size, s.count] for s in stats]
            if cur > most:
                most, top_max = cur, top
        with open(out + ".tmp", "w") as f:
            json.dump({"current": cur, "peak": peak, "top": top, "top_max": top_max, "max": most}, f)
        os.replace(out + ".tmp", out)
        n += 1
        time.sleep(1)
threading.Thread(target=dump, daemon=True).start()
from streetnode.integrator.bridge import main
sys.exit(main(sys.argv[1:]))
"""


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


def _readings(node, first, count, t0=1764590000):
    from streetnode.integrator.readings import parse_data

    out = []
    for seq in range(first, first + count):
        body = {"seq": seq, "ts": t0 + seq * 10, "synced": True,
                "sensors": {"air": {"temperature": 20 + seq % 50 / 10, "humidity": 40 + seq % 30, "pressure": 1000 + seq % 20}}}  # fmt: skip
        out.append(parse_data("streetnode", "streetnode/%s/data" % node, json.dumps(body).encode(), time.time()))
    return out


def target_rates(sta_url, readings, batch_size):
    """{mode: (observations, seconds, requests)} through SensorThings.deliver, batched and one by one."""
    from streetnode.integrator.sensorthings import SensorThings

    out = {}
    for mode, batch in (("DataArray `CreateObservations`, batches of %d readings" % batch_size, True),
                        ("one POST per observation", False)):  # fmt: skip
        node = "bench-" + ("batch" if batch else "single")
        rs = _readings(node, 1, readings)
        t = SensorThings(sta_url, batch=batch, log=lambda *_: None)
        t.deliver(rs[:1], set())  # entities created outside the clock
        sent = t.requests_sent
        start = time.perf_counter()
        for i in range(1, len(rs), batch_size):
            t.deliver(rs[i : i + batch_size], set())
        out[mode] = ((len(rs) - 1) * 3, time.perf_counter() - start, t.requests_sent - sent)
    return out


def fleet_hour(broker, sta_url, nodes, readings_per_node, state_dir, arena_max, traced, fleet="fleet"):
    """The bridge process fed an hour of traffic: a dict of messages, seconds, samples
    [(readings forwarded, VmRSS KiB, Python heap bytes or None)], final status, top sites."""
    import paho.mqtt.client as mqtt

    heap_file = os.path.join(state_dir, "heap.json")
    args = ["--broker", broker.address, "--to", "sensorthings=" + sta_url, "--state-dir", state_dir,
            "--status-every", "1", "--name", "bench"]  # fmt: skip
    argv = [sys.executable] + (["-c", _TRACED, heap_file] if traced else ["-m", "streetnode.integrator.bridge"]) + args
    env = dict(os.environ)
    env.pop("MALLOC_ARENA_MAX", None)
    if arena_max:
        env["MALLOC_ARENA_MAX"] = str(arena_max)
    log = open(os.path.join(state_dir, "bridge.log"), "ab")
    proc = subprocess.Popen(argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env)
    status = {}
    done = threading.Event()
    total = nodes * readings_per_node
    samples = []
    marks = [total * (i + 1) // SAMPLES for i in range(SAMPLES)]

    def heap():
        try:
            with open(heap_file) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def on_message(c, u, m):
        s = json.loads(m.payload)
        status.update(s)
        forwarded = s.get("targets", {}).get("sensorthings", {}).get("forwarded", 0)
        if marks and forwarded >= marks[0]:  # at each eighth of the run (a status a second)
            rss, py = rss_kib(proc.pid), heap().get("current")
            while marks and forwarded >= marks[0]:
                samples.append((marks.pop(0), rss, py))
        if forwarded >= total:
            done.set()

    watch = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    watch.on_message = on_message
    watch.connect(broker.host, broker.port)
    watch.subscribe("streetnode/_bridge/bench/status", qos=1)
    watch.loop_start()
    try:
        deadline = time.monotonic() + 60
        while "received" not in status or (traced and not heap()):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the bridge did not start (see %s)" % log.name)
            time.sleep(0.1)  # the bridge is up (its first status)
        time.sleep(1.5)
        samples.insert(0, (0, rss_kib(proc.pid), heap().get("current")))
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-fleet")
        pub.max_inflight_messages_set(100)
        pub.connect(broker.host, broker.port)
        pub.loop_start()
        start = time.perf_counter()
        for seq in range(1, readings_per_node + 1):
            infos = []
            for n in range(nodes):
                body = {"seq": seq, "ts": 1764590000 + seq * 10, "synced": True,
                        "sensors": {"air": {"temperature": 20 + (seq + n) % 50 / 10, "humidity": 40 + seq % 30,
                                            "pressure": 1000 + n % 20}}}  # fmt: skip
                infos.append(pub.publish("streetnode/%s-%d/data" % (fleet, n), json.dumps(body), qos=1))
            for i in infos:
                i.wait_for_publish(30)
        if not done.wait(4 * 3600):
            raise RuntimeError("the bridge did not forward the traffic within 4 hours: %s" % status)
        seconds = time.perf_counter() - start
        pub.loop_stop()
        pub.disconnect()
        time.sleep(1.5)  # the heap file of the end
        h = heap()
        return {"messages": total, "seconds": seconds, "samples": samples, "status": dict(status),
                "top": h.get("top") or [], "top_max": h.get("top_max") or [], "max": h.get("max")}  # fmt: skip
    finally:
        watch.loop_stop()
        watch.disconnect()
        proc.terminate()
        proc.wait(30)
        log.close()


def _mib(kib):
    return "%.1f" % (kib / 1024) if kib is not None else "-"


def _arenas(text):
    try:
        out = [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError("N or N,N,...: MALLOC_ARENA_MAX values, 0 for glibc's default") from None
    if any(n < 0 for n in out):
        raise argparse.ArgumentTypeError("MALLOC_ARENA_MAX is 0 (glibc's default) or more")
    return out


def main(argv=None):
    from streetnode.integrator.bridge import MALLOC_ARENA_MAX

    p = argparse.ArgumentParser(prog="python -m streetnode.bench.bridge", description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=int, default=50, help="fleet size for the simulated hour (default 50)")
    p.add_argument("--interval", type=float, default=10.0, help="the fleet's sampling interval in s (default 10)")
    p.add_argument("--hour-s", type=float, default=3600.0, help="simulated time in s (default 3600)")
    p.add_argument("--readings", type=int, default=601, help="readings per mode in the comparison (default 601; "
                   "0: no comparison, the simulated hour only)")  # fmt: skip
    p.add_argument("--batch-size", type=int, default=20, help="readings per batch in the comparison (default 20: "
                   "mosquitto's max_inflight_messages, what the bridge holds unacknowledged at once)")  # fmt: skip
    p.add_argument("--arena-max", type=_arenas, default=[MALLOC_ARENA_MAX], metavar="N[,N...]",
                   help="MALLOC_ARENA_MAX of the bridge process, one simulated hour each (default %d, the systemd "
                   "unit's; 0: glibc's own default, 8 per core)" % MALLOC_ARENA_MAX)  # fmt: skip
    p.add_argument("--tracemalloc", action="store_true", help="also sample the bridge's Python heap (tracemalloc; "
                   "slows the bridge, so its rate is not the service's)")  # fmt: skip
    p.add_argument("--markdown", action="store_true", help="print the figures as Markdown")
    args = p.parse_args(argv)
    from streetnode.integrator.sta_server import StaServer

    per_node = int(args.hour_s / args.interval)
    runs = []
    with tempfile.TemporaryDirectory(prefix="streetnode-bench-bridge-") as tmp, StaServer(os.path.join(tmp, "sta")) as sta:
        rates = target_rates(sta.url, args.readings, args.batch_size) if args.readings > 1 else {}
        for arena in args.arena_max:
            state = os.path.join(tmp, "bridge-%d" % arena)
            os.makedirs(state)
            with Broker("mosquitto", persistence=True) as broker:
                run = fleet_hour(broker, sta.url, args.nodes, per_node, state, arena, args.tracemalloc, "fleet%d" % arena)
            run["arena"] = "MALLOC_ARENA_MAX=%d" % arena if arena else "glibc's default arenas"
            if arena == MALLOC_ARENA_MAX:
                run["arena"] += " (the unit's)"
            runs.append(run)
    rows = [(mode, obs, s, obs / s, req) for mode, (obs, s, req) in rates.items()]
    hours = args.hour_s / 3600
    total = args.nodes * per_node
    what = "%s%d nodes every %.0f s (%d readings, %d observations)" % (
        "%.3g simulated hours of " % hours if hours != 1 else "a simulated hour of ", args.nodes, args.interval,
        total, total * 3)  # fmt: skip
    traced = " (tracemalloc on: slower than the service)" if args.tracemalloc else ""
    if args.markdown:
        if rows:
            print("| into django-ogc-sensorthings 1.2.0 (SQLite), same run | observations | s | observations/s | requests |")
            print("| --- | ---: | ---: | ---: | ---: |")
            for mode, obs, s, rate, req in rows:
                print("| %s | %d | %.1f | %.0f | %d |" % (mode, obs, s, rate, req))
            print("\nBatched is %.0fx faster.\n" % (rows[0][3] / rows[1][3]))
        print("The bridge process as the service runs it (persistent session, manual acks, state file), fed %s "
              "as fast as it takes them%s:\n" % (what, traced))  # fmt: skip
        print("| bridge process | s | readings/s | observations/s | VmRSS at start, MiB | at the end, MiB |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for r in runs:
            print("| %s | %.0f | %.0f | %.0f | %s | %s |" % (r["arena"], r["seconds"], total / r["seconds"],
                  total * 3 / r["seconds"], _mib(r["samples"][0][1]), _mib(r["samples"][-1][1])))  # fmt: skip
        fastest = max(total / r["seconds"] for r in runs)
        print("\nOne bridge keeps up with about %d nodes at a %.0f s interval. Memory along the run, by readings "
              "forwarded:\n" % (int(fastest * args.interval / 100) * 100, args.interval))  # fmt: skip
        cols = [n for n, _, _ in runs[0]["samples"]]
        print("| readings forwarded | %s |" % " | ".join("%d" % n for n in cols))
        print("| --- |%s" % (" ---: |" * len(cols)))
        for r in runs:
            print("| VmRSS, %s, MiB | %s |" % (r["arena"], " | ".join(_mib(k) for _, k, _ in r["samples"])))
            if args.tracemalloc:
                print("| Python heap (tracemalloc), %s, MiB | %s |" % (r["arena"], " | ".join(
                    _mib(b / 1024 if b is not None else None) for _, _, b in r["samples"])))  # fmt: skip
    else:
        for mode, obs, s, rate, req in rows:
            print("%-55s %6d observations in %6.1f s: %6.0f observations/s (%d requests)" % (mode, obs, s, rate, req))
        if rows:
            print("speed-up batched/single: %.1fx" % (rows[0][3] / rows[1][3]))
        for r in runs:
            print("%s through the bridge process (%s%s) in %.1f s: %.0f readings/s, %.0f observations/s"
                  % (what, r["arena"], traced, r["seconds"], total / r["seconds"], total * 3 / r["seconds"]))  # fmt: skip
            print("  memory by readings forwarded (VmRSS MiB%s): %s" % (
                " / Python heap MiB" if args.tracemalloc else "",
                ", ".join("%d: %s%s" % (n, _mib(k), " / %s" % _mib(b / 1024) if b is not None else "")
                          for n, k, b in r["samples"])))  # fmt: skip
            for when, top in (("at the end", r["top"]), ("at its largest (%s MiB)" % _mib((r["max"] or 0) / 1024), r["top_max"])):
                for where, size, count in top:
                    print("  python heap %s: %8.1f KiB in %6d blocks at %s" % (when, size / 1024, count, where))
            print("  bridge status: %s" % json.dumps(r["status"].get("targets")))
    return 0


if __name__ == "__main__":
    from streetnode.bench import docs

    sys.exit(docs.run("python -m streetnode.bench.bridge", main))
