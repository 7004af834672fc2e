"""Benchmark (not a test): QoS 1 publishes per second on loopback, firmware/mqtt.py's link
against a bare umqtt.simple loop in the same MicroPython run, plus heap bytes per publish;
and the link on CPython (paho) for the gateway.

    .venv/bin/python -m streetnode.bench.mqtt [--n 2000]

The bare loop is measured twice: as umqtt.simple ships (Nagle's algorithm on: each QoS 1
publish waits for the broker's delayed ACK) and with TCP_NODELAY, which is what the link
sets. The fair ceiling for the link is the second one.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from streetnode.common import deps, mpy
from streetnode.common.broker import Broker
from streetnode.common.paths import REPO

_DEVICE = r"""
import gc, sys, time
from umqtt.simple import MQTTClient
from firmware import mqtt

port, n, n_nagle, rounds = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
bare_only = sys.argv[5:] == ["bare"]  # only the bare loop with TCP_NODELAY (bench.node's ceiling)
payload = b'{"seq": 123456, "ts": 1790000000, "sensors": {"bme280": {"temperature": 21.53, "humidity": 45.21, "pressure": 1013.25}}}'
out = {"payload_bytes": len(payload)}

def measure(name, publish, count):
    for _ in range(20):  # warm up: topic built, buffers grown, first PUBACKs
        publish()
    gc.collect()
    gc.disable()
    a = gc.mem_alloc()
    t = time.ticks_us()
    for _ in range(count):
        publish()
    dt = time.ticks_diff(time.ticks_us(), t)
    b = gc.mem_alloc()
    gc.enable()
    r = out.setdefault(name, {"n": count, "per_s": 0, "rounds": [], "heap_bytes_per_publish": (b - a) // count})
    r["rounds"].append(count * 1000000 // dt)
    r["per_s"] = max(r["rounds"])  # best of the rounds: the machine may be shared

def bare(nodelay):
    c = MQTTClient("bench-bare-%d" % nodelay, "127.0.0.1", port)
    c.connect()
    if nodelay:
        c.sock.setsockopt(6, 1, 1)  # IPPROTO_TCP, TCP_NODELAY
    return c

topic = b"streetnode/bench/data"
if not bare_only:
    c = bare(0)
    measure("bare_umqtt", lambda: c.publish(topic, payload, False, 1), n_nagle)
    c.disconnect()
c = bare(1)
link = None if bare_only else mqtt.MQTTLink("bench", "127.0.0.1", port, seed=1)
assert bare_only or link.connect()
for _ in range(rounds):  # interleaved, so both see the same machine
    measure("bare_umqtt_nodelay", lambda: c.publish(topic, payload, False, 1), n)
    if link is not None:
        measure("link", lambda: link.publish("data", payload), n)
c.disconnect()
if link is not None:
    link.close()
print("@@" + __import__("json").dumps(out))
"""

_GATEWAY = r"""
import json, sys, time
sys.path.insert(0, sys.argv[3])
from firmware import mqtt
port, n = int(sys.argv[1]), int(sys.argv[2])
payload = b'{"seq": 123456, "ts": 1790000000, "sensors": {"bme280": {"temperature": 21.53, "humidity": 45.21, "pressure": 1013.25}}}'
link = mqtt.MQTTLink("bench-gw", "127.0.0.1", port, seed=1)
assert link.connect()
for _ in range(20):
    link.publish("data", payload)
rates = []
for _ in range(int(sys.argv[4])):
    t = time.perf_counter()
    for _ in range(n):
        assert link.publish("data", payload)
    rates.append(int(n / (time.perf_counter() - t)))
link.close()
print("@@" + json.dumps({"link_paho": {"n": n, "per_s": max(rates), "rounds": rates}}))
"""


def _last_json(proc):
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("@@"):
            return json.loads(line[2:])
    raise RuntimeError("benchmark run failed (exit %d): %s" % (proc.returncode, (proc.stderr or proc.stdout)[-500:]))


def run(n=1000, n_nagle=40, kind=None, rounds=5):
    """Return the measurements as a dict (one MicroPython run, one CPython run)."""
    lib = deps.device_lib()
    with Broker(kind) as broker, tempfile.TemporaryDirectory() as d:
        dev = os.path.join(d, "bench_device.py")
        with open(dev, "w") as f:
            f.write(_DEVICE)
        gw = os.path.join(d, "bench_gateway.py")
        with open(gw, "w") as f:
            f.write(_GATEWAY)
        proc = mpy.run([dev, str(broker.port), str(n), str(n_nagle), str(rounds)], path=[lib], capture_output=True, text=True, timeout=600)
        res = _last_json(proc)
        proc = subprocess.run(
            [sys.executable, gw, str(broker.port), str(n), str(REPO), str(rounds)], capture_output=True, text=True, timeout=600
        )
        res.update(_last_json(proc))
        res["broker"] = broker.kind
    res["link_vs_bare_nodelay"] = round(res["link"]["per_s"] / res["bare_umqtt_nodelay"]["per_s"], 3)
    res["link_vs_bare_as_shipped"] = round(res["link"]["per_s"] / res["bare_umqtt"]["per_s"], 1)
    return res


def bare_qos1(port, n=1000):
    """Publishes/s of the bare umqtt.simple QoS 1 loop with TCP_NODELAY, one round of n,
    against the broker on loopback `port` (one MicroPython run): bench.node's ceiling."""
    with tempfile.TemporaryDirectory() as d:
        dev = os.path.join(d, "bench_device.py")
        with open(dev, "w") as f:
            f.write(_DEVICE)
        proc = mpy.run([dev, str(port), str(n), "0", "1", "bare"], path=[deps.device_lib()], capture_output=True,
                       text=True, timeout=600)  # fmt: skip
    return _last_json(proc)["bare_umqtt_nodelay"]["per_s"]


def format_table(res):
    rows = [
        ("umqtt.simple bare loop, as shipped (Nagle on)", res["bare_umqtt"]),
        ("umqtt.simple bare loop + TCP_NODELAY", res["bare_umqtt_nodelay"]),
        ("MQTTLink on MicroPython (umqtt backend)", res["link"]),
        ("MQTTLink on CPython (paho backend)", res["link_paho"]),
    ]
    lines = ["| QoS 1 publish, loopback %s, %d-byte payload | publishes/s | heap bytes/publish |" % (res["broker"], res["payload_bytes"]), "| --- | ---: | ---: |"]
    for name, r in rows:
        lines.append("| %s | %d | %s |" % (name, r["per_s"], r.get("heap_bytes_per_publish", "n/a")))
    lines.append("")
    lines.append("- best of %d rounds of %d publishes (rounds: bare+NODELAY %s, link %s)" % (
        len(res["link"]["rounds"]), res["link"]["n"], res["bare_umqtt_nodelay"]["rounds"], res["link"]["rounds"]))
    lines.append(
        "- link / bare+NODELAY = %.3f; link / bare as shipped = %.1fx"
        % (res["link_vs_bare_nodelay"], res["link_vs_bare_as_shipped"])
    )
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(prog="bench_mqtt", description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=1000, help="publishes per round (default 1000)")
    p.add_argument("--rounds", type=int, default=5, help="rounds, best one counts (default 5)")
    p.add_argument("--broker", choices=["mosquitto", "amqtt"], default=None)
    p.add_argument("--json", action="store_true")
    p.add_argument("--markdown", action="store_true", help="the table as Markdown (it is; for --update)")
    args = p.parse_args(argv)
    t = time.monotonic()
    res = run(args.n, kind=args.broker, rounds=args.rounds)
    print(json.dumps(res, indent=1) if args.json else format_table(res))
    print("(%.1f s)" % (time.monotonic() - t), file=sys.stderr)
    return 0


if __name__ == "__main__":
    from streetnode.bench import docs

    sys.exit(docs.run("python -m streetnode.bench.mqtt", main))
