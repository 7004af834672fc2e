"""The node's heap for a TLS connection: the firmware's MQTT link (umqtt, as on the boards)
connecting to a real mosquitto over TLS (a CA and server certificate made for the run, the
CA in DER, certificate and host name verified) and, to compare, over plain TCP, inside the
real MicroPython unix interpreter. At each step (start, link made, connected, one QoS 1
publish, closed):

- the MicroPython heap after a collection (`gc.mem_alloc()`);
- what the handshake allocates on that heap with the collector off (garbage included: the
  most the connect needs on top of what was live);
- the process's C heap (the `[heap]` segment of /proc/PID/smaps): on the unix port mbedTLS
  takes its handshake and session buffers from libc malloc, not from the MicroPython heap
  (as on the ESP32, where they come from ESP-IDF's heap). Its resident size only grows
  (freed pages stay resident below glibc's 128 KiB trim threshold), so its growth from
  start to connected is the handshake's high-water mark, in whole 4 KiB pages.

    python -m streetnode.bench.tls [--heap 128k] [--markdown] [--update docs/benchmarks.md]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from streetnode.bench.harness import DEVICE, render
from streetnode.common import deps, mpy
from streetnode.common.broker import Broker
from streetnode.common.build import compile_tree
from streetnode.common.paths import REPO

SCRIPT = DEVICE / "tls_heap_micropython.py"
STEPS = ("start", "link", "connected", "published", "closed")


def c_heap(pid):
    """(size, rss) in bytes of the process's [heap] segment (libc malloc's brk arena)."""
    size = rss = 0
    with open("/proc/%d/smaps" % pid) as f:
        inside = False
        for line in f:
            if line[0] in "0123456789abcdef" and "-" in line.split()[0]:
                inside = line.rstrip().endswith("[heap]")
            elif inside and line.startswith("Size:"):
                size += int(line.split()[1]) * 1024
            elif inside and line.startswith("Rss:"):
                rss += int(line.split()[1]) * 1024
    return size, rss


def measure(host, port, ca_path, heap, tree):
    env = dict(os.environ, MICROPYPATH="%s:.frozen" % tree)
    proc = subprocess.Popen(mpy.command([str(SCRIPT), host, str(port), str(ca_path or "-")], heapsize=heap), cwd=REPO,
                            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    steps = {}
    try:
        for _ in STEPS:
            line = proc.stdout.readline()
            if not line.startswith("{"):
                raise RuntimeError("the device side stopped: %s %s" % (line.strip(), proc.stderr.read()[-300:]))
            s = json.loads(line)
            s["c_heap"], s["c_heap_rss"] = c_heap(proc.pid)
            steps[s["step"]] = s
            proc.stdin.write("\n")
            proc.stdin.flush()
        tail = proc.stdout.read()
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    for line in tail.splitlines():  # micropython.mem_info(): "mem: total=..., current=..., peak=..."
        if line.startswith("mem:"):
            steps["mem_stats"] = dict(kv.strip().split("=") for kv in line[4:].split(","))
    return steps


def run(heap="128k"):
    from streetnode.sim.tls import embedded_pki

    tree = compile_tree(lib=deps.device_lib())
    work = Path(tempfile.mkdtemp(prefix="bench-tls-"))
    try:
        tls, _der = embedded_pki(work / "pki")
        res = {"heap": heap}
        with Broker("mosquitto") as plain:
            res["plain"] = measure(plain.host, plain.port, None, heap, tree)
        with Broker("mosquitto", tls=tls) as b:
            res["tls"] = measure(b.host, b.port, work / "pki" / "ca.der", heap, tree)
        return res
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _kib(v):
    return "%.1f KiB" % (v / 1024.0)


def main(argv=None):
    p = argparse.ArgumentParser(prog="streetnode-bench-tls", description=__doc__.split("\n\n")[0])
    p.add_argument("--heap", default="128k", help="the MicroPython heap (default 128k)")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    p.add_argument("--json", action="store_true", help="print the raw figures as JSON")
    args = p.parse_args(argv)
    res = run(args.heap)
    if args.json:
        print(json.dumps(res, indent=2, sort_keys=True))
        return 0
    rows = []
    for key, what in (("plain", "plain TCP"), ("tls", "TLS (ECDSA P-256, verified)")):
        r = res[key]
        start, conn, closed = r["start"], r["connected"], r["closed"]
        if not conn.get("ok"):
            rows.append([what, "failed: %s" % conn.get("error"), "", "", "", ""])
            continue
        rows.append([
            what, _kib(conn["mem_alloc"] - r["link"]["mem_alloc"]), _kib(conn["allocated_during"]),
            _kib(closed["mem_alloc"] - r["link"]["mem_alloc"]),
            _kib(conn["c_heap_rss"] - start["c_heap_rss"]),
        ])  # fmt: skip
    head = ["link", "MicroPython heap, live while connected", "allocated by connect() (collector off)",
            "kept after close", "C heap high-water of the handshake"]
    notes = ["MicroPython 1.29 unix port (64-bit), heap %s; all figures against the link made but not connected" % res["heap"],
             "C heap: growth of the process's resident [heap] segment (4 KiB pages), where the unix port's mbedTLS "
             "allocates (on an ESP32: ESP-IDF's heap, outside MicroPython's)",
             "kept after close: the TLS context (the CA parsed once) stays for the next reconnect"]
    print(render("The MQTT link's heap with and without TLS", head, rows, notes, [], args.markdown))
    return 0 if all(res[k]["connected"].get("ok") for k in ("plain", "tls")) else 1


if __name__ == "__main__":
    from streetnode.bench import docs

    sys.exit(docs.run("python -m streetnode.bench.tls", main))
