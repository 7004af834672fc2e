"""Benchmark (not a test): `streetnode bridge` into a real SensorThings API v1.1 server
(django-ogc-sensorthings on SQLite, uvicorn on loopback; the test extra), in one run:

1. observations per second into the server, DataArray batches (CreateObservations) against
   one POST per observation, the same readings through the same target code;
2. the whole bridge as the service runs it (a process, a persistent session on mosquitto,
   manual acks, the state file), fed a simulated hour of fleet traffic (default 50 nodes
   every 10 s = 18,000 readings, 54,000 observations) as fast as it takes them: its rate and
   its memory (VmRSS) when it started and after the hour.

    .venv/bin/python -m streetnode.bench.bridge [--nodes 50] [--hour-s 3600] [--interval 10] [--markdown]
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
    """{mode: (observations, seconds)} through SensorThings.deliver, batched and one by one."""
    from streetnode.integrator.sensorthings import SensorThings

    out = {}
    for mode, batch in (("DataArray batches of %d readings" % batch_size, True), ("one POST per observation", False)):
        node = "bench-" + ("batch" if batch else "single")
        rs = _readings(node, 1, readings)
        t = SensorThings(sta_url, batch=batch, log=lambda *_: None)
        t.deliver(rs[:1], set())  # entities created outside the clock
        start = time.perf_counter()
        for i in range(1, len(rs), batch_size):
            t.deliver(rs[i : i + batch_size], set())
        out[mode] = ((len(rs) - 1) * 3, time.perf_counter() - start, t.requests_sent)
    return out


def fleet_hour(broker, sta_url, nodes, readings_per_node, state_dir):
    """The bridge process fed an hour of traffic: (messages, seconds, rss start, rss end, status)."""
    import paho.mqtt.client as mqtt

    argv = [sys.executable, "-m", "streetnode.integrator.bridge", "--broker", broker.address, "--to",
            "sensorthings=" + sta_url, "--state-dir", state_dir, "--status-every", "1", "--name", "bench"]  # fmt: skip
    log = open(os.path.join(state_dir, "bridge.log"), "ab")
    proc = subprocess.Popen(argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    status = {}
    done = threading.Event()
    total = nodes * readings_per_node

    def on_message(c, u, m):
        s = json.loads(m.payload)
        status.update(s)
        if s.get("targets", {}).get("sensorthings", {}).get("forwarded", 0) >= total:
            done.set()

    watch = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    watch.on_message = on_message
    watch.connect(broker.host, broker.port)
    watch.subscribe("streetnode/_bridge/bench/status", qos=1)
    watch.loop_start()
    try:
        deadline = time.monotonic() + 60
        while "received" not in status and time.monotonic() < deadline:
            time.sleep(0.1)  # the bridge is up (its first status)
        rss_start = rss_kib(proc.pid)
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
                infos.append(pub.publish("streetnode/fleet-%d/data" % n, json.dumps(body), qos=1))
            for i in infos:
                i.wait_for_publish(30)
        if not done.wait(3600):
            raise RuntimeError("the bridge did not forward the hour within an hour: %s" % status)
        seconds = time.perf_counter() - start
        rss_end = rss_kib(proc.pid)
        pub.loop_stop()
        pub.disconnect()
        return total, seconds, rss_start, rss_end, dict(status)
    finally:
        watch.loop_stop()
        watch.disconnect()
        proc.terminate()
        proc.wait(30)
        log.close()


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m streetnode.bench.bridge", description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=int, default=50, help="fleet size for the simulated hour (default 50)")
    p.add_argument("--interval", type=float, default=10.0, help="the fleet's sampling interval in s (default 10)")
    p.add_argument("--hour-s", type=float, default=3600.0, help="simulated time in s (default 3600)")
    p.add_argument("--readings", type=int, default=601, help="readings per mode in the comparison (default 601)")
    p.add_argument("--batch-size", type=int, default=20, help="readings per batch in the comparison (default 20: "
                   "mosquitto's max_inflight_messages, what the bridge holds unacknowledged at once)")  # fmt: skip
    p.add_argument("--markdown", action="store_true")
    args = p.parse_args(argv)
    from streetnode.integrator.sta_server import StaServer

    with tempfile.TemporaryDirectory(prefix="streetnode-bench-bridge-") as tmp, \
            Broker("mosquitto", persistence=True) as broker, StaServer(os.path.join(tmp, "sta")) as sta:  # fmt: skip
        rates = target_rates(sta.url, args.readings, args.batch_size)
        per_node = int(args.hour_s / args.interval)
        os.makedirs(os.path.join(tmp, "bridge"))
        total, seconds, rss0, rss1, status = fleet_hour(broker, sta.url, args.nodes, per_node, os.path.join(tmp, "bridge"))
    rows = [(mode, obs, s, obs / s, req) for mode, (obs, s, req) in rates.items()]
    if args.markdown:
        print("| into django-ogc-sensorthings 1.2.0 (SQLite) | observations | s | observations/s | requests |")
        print("| --- | ---: | ---: | ---: | ---: |")
        for mode, obs, s, rate, req in rows:
            print("| %s | %d | %.1f | %.0f | %d |" % (mode, obs, s, rate, req))
    else:
        for mode, obs, s, rate, req in rows:
            print("%-40s %6d observations in %6.1f s: %6.0f observations/s (%d requests)" % (mode, obs, s, rate, req))
    print("speed-up batched/single: %.1fx" % (rows[0][3] / rows[1][3]))
    print("simulated hour: %d nodes every %.0f s = %d readings (%d observations) through the bridge process in %.1f s: "
          "%.0f readings/s, %.0f observations/s" % (args.nodes, args.interval, total, total * 3, seconds, total / seconds,
                                                    total * 3 / seconds))  # fmt: skip
    print("bridge memory (VmRSS): %.1f MiB at start, %.1f MiB after the hour" % (rss0 / 1024, rss1 / 1024))
    print("bridge status: %s" % json.dumps(status.get("targets")))
    return 0


if __name__ == "__main__":
    from streetnode.bench import docs

    sys.exit(docs.run("python -m streetnode.bench.bridge", main))
