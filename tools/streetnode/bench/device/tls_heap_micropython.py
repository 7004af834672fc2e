# Device side of `python -m streetnode.bench.tls`: the node's MQTT link (umqtt) connecting to a
# real broker, with TLS (the CA in DER, certificate and name verified) or without, stopping at
# each step for the host to read this process's C heap from /proc.
#
#   micropython tools/streetnode/bench/device/tls_heap_micropython.py HOST PORT CA_DER|-
#
# Prints one JSON line per step (the MicroPython heap after a collection, and the peak of
# the heap's allocations so far when the build counts them) and waits for a line on stdin.

import gc
import json
import sys

import micropython

from firmware.mqtt import MQTTLink




def step(name, **extra):
    gc.collect()
    out = {"step": name, "mem_alloc": gc.mem_alloc(), "mem_free": gc.mem_free()}
    out.update(extra)
    print(json.dumps(out))
    sys.stdin.readline()


host, port, ca_path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ca = None
if ca_path != "-":
    with open(ca_path, "rb") as f:
        ca = f.read()
step("start")
link = MQTTLink("tls-bench", host, port, ca_der=ca, keepalive_s=60)
step("link")
gc.collect()
before = gc.mem_alloc()
gc.disable()  # what the handshake allocates, garbage included, before any collection
ok = link.connect()
during = gc.mem_alloc() - before
gc.enable()
step("connected", ok=ok, error=repr(link.last_error) if not ok else None, allocated_during=during)
link.publish("data", b'{"seq": 1}')
step("published")
link.close()
step("closed")
micropython.mem_info()
