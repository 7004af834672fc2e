"""Test harness for `streetnode bridge`: the bridge as a process (so a test can SIGKILL it),
node-shaped data messages published straight to the broker, a real SensorThings server read
back through its REST API, and an HTTP endpoint that records what it is sent."""

import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import requests

from streetnode.common.paths import REPO

T0 = 1764590000  # the fake fleet's clock: reading seq of any node was taken at T0 + seq


def values(node, seq):
    """The deterministic BME280 reading a fake node publishes as `seq`."""
    h = sum(map(ord, node))
    return {"temperature": round(5 + ((seq * 7 + h) % 300) / 10, 2), "humidity": round(30 + (seq * 3 + h) % 60, 1),
            "pressure": round(990 + ((seq + h) % 400) / 10, 2)}  # fmt: skip


def payload(node, seq, synced=True, sensors=None):
    return json.dumps({"seq": seq, "ts": T0 + seq if synced else None, "synced": synced,
                       "sensors": sensors if sensors is not None else {"air": values(node, seq)}})  # fmt: skip


class Publisher:
    """Publishes node-shaped messages at QoS 1 and waits for the broker's PUBACK."""

    def __init__(self, broker):
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="pub-%d-%d" % (os.getpid(), id(self)))
        self.client.connect(broker.host, broker.port, keepalive=30)
        self.client.loop_start()

    def send(self, topic, body, retain=False):
        info = self.client.publish(topic, body, qos=1, retain=retain)
        info.wait_for_publish(10)
        assert info.is_published(), "broker did not take %s" % topic

    def reading(self, node, seq, **kw):
        self.send("streetnode/%s/data" % node, payload(node, seq, **kw))

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()


class Feeder(threading.Thread):
    """A fake fleet publishing seq 1, 2, ... for each node at `rate` messages a second."""

    def __init__(self, publisher, nodes, rate=20.0):
        super().__init__(daemon=True)
        self.pub = publisher
        self.nodes = nodes
        self.rate = rate
        self.seq = 0
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            self.seq += 1
            for n in self.nodes:
                self.pub.reading(n, self.seq)
            time.sleep(len(self.nodes) / self.rate)

    def stop(self):
        self.halt.set()
        self.join(10)
        return self.seq


class BridgeProc:
    """`python -m streetnode.integrator.bridge ...` with its output in state_dir/bridge.log."""

    def __init__(self, broker, state_dir, targets, *extra):
        self.dir = Path(state_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.argv = [sys.executable, "-m", "streetnode.integrator.bridge", "--broker", broker.address,
                     "--state-dir", str(self.dir), "--status-every", "1"]  # fmt: skip
        for t in targets:
            self.argv += ["--to", t]
        self.argv += list(extra)
        self.log = self.dir / "bridge.log"
        self.proc = None

    def start(self):
        out = open(self.log, "ab")
        self.proc = subprocess.Popen(self.argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        out.close()
        wait_for(lambda: "connected to" in self.output() or not self.alive(), 30, "the bridge to connect")
        assert self.alive(), self.output()
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def output(self):
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def dead_letters(self):
        path = self.dir / "dead-letters.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def bridge_status(broker, name="bridge"):
    """The bridge's retained status message."""
    got = {}
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    c.on_message = lambda cl, u, m: got.setdefault("s", json.loads(m.payload))
    c.connect(broker.host, broker.port)
    c.subscribe("streetnode/_bridge/%s/status" % name, qos=1)
    c.loop_start()
    try:
        wait_for(lambda: "s" in got, 15, "the bridge's retained status")
    finally:
        c.loop_stop()
        c.disconnect()
    return got["s"]


def wait_for(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.2)
    raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))


def get_all(url, path, params):
    """Every entity of a collection, paged with $skip (the server caps $top at 100)."""
    out = []
    skip = 0
    while True:
        r = requests.get(url + "/" + path, params=dict(params, **{"$top": 100, "$skip": skip}), timeout=30)
        r.raise_for_status()
        page = r.json()["value"]
        out += page
        if len(page) < 100:
            return out
        skip += 100


def _datastream_observations(url, ds):
    """Every Observation of a Datastream. Read by seq ranges of 50 (one page each) until as
    many as its $count: this server's $skip pages overlap (400 Observations paged by 100 give
    401 rows, one id twice), so plain paging can neither count nor be trusted to be whole."""
    base = url + "/Datastreams('%s')/Observations" % ds
    total = requests.get(base, params={"$count": "true", "$top": 0}, timeout=30).json()["@iot.count"]
    got = {}
    lo = 1
    while len(got) < total:
        assert lo < 1_000_000, "only %d of %d Observations found" % (len(got), total)
        page = requests.get(base, params={"$filter": "parameters/seq ge %d and parameters/seq le %d" % (lo, lo + 49),
                                          "$top": 100}, timeout=30).json()["value"]  # fmt: skip
        assert len(page) < 100
        for o in page:
            got[o["@iot.id"]] = o
        lo += 50
    return list(got.values())


def observations(url, node):
    """[(sensor, quantity, seq, result, phenomenonTime, resultQuality)] of a node, from the
    server: its Thing's Datastreams, then each Datastream's Observations by navigation (this
    server's $expand=Datastream on a page of Observations repeats the first one's)."""
    things = get_all(url, "Things", {"$filter": "name eq '%s'" % node, "$expand": "Datastreams($select=id,properties)"})
    out = []
    for t in things:
        for d in t["Datastreams"]:
            p = d["properties"]
            for o in _datastream_observations(url, d["@iot.id"]):
                assert o["parameters"]["node"] == node
                out.append((p["sensor"], p["quantity"], o["parameters"]["seq"], o["result"], o["phenomenonTime"],
                            o.get("resultQuality")))  # fmt: skip
    return out


def seq_counts(obs, quantity="temperature"):
    counts = {}
    for sensor, q, seq, *_ in obs:
        if q == quantity:
            counts[seq] = counts.get(seq, 0) + 1
    return counts


def unix(iso):
    import datetime

    return datetime.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


class Recorder:
    """An HTTP endpoint on loopback that answers 201 (or `status`) and records every request."""

    def __init__(self, status=201):
        self.requests = []
        self.status = status
        rec = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                rec.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                self.send_response(rec.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/v1/push-sensor-data/" % self.server.server_port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
