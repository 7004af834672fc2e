# Device half of `python -m streetnode.bench.flash`: the outbox on LittleFS (the simulated
# board flash, hal/sim/flash.py) or on a host directory, inside MicroPython. Prints one
# JSON line.
#   micropython flash_micropython.py rate lfs|host DIR RECORDS SENSORS
#   micropython flash_micropython.py capacity SIZE DIR SENSORS
# SENSORS: "air" (a BME280) or "street" (BME280, PMS5003, SCD41), the record a node writes.

import json
import sys
import time

from firmware import payloads
from firmware.outbox import Outbox
from hal.sim import flash


def body(kind, i):
    sensors = {"air": {"temperature": 21.53 + i % 7 * 0.01, "humidity": 45.21, "pressure": 1013.25}}
    if kind == "street":
        sensors["pm"] = {"pm1_0": 4.1, "pm2_5": 7.9 + i % 5, "pm10": 11.2}
        sensors["co2"] = {"co2": 612.0 + i % 9, "temperature": 21.9, "humidity": 44.0}
    return payloads.data_body(1764270000 + 60 * i, True, sensors)


def where(mode, d, size):
    if mode == "host":
        return d
    dev, report = flash.mount(d + "/flash.img", "/bench", size=size)
    return "/bench"


def rate(mode, d, n, kind):
    root = where(mode, d, 2 * 1024 * 1024)
    box = Outbox(root + "/outbox", max_records=n + 100)
    records = [body(kind, i) for i in range(n)]
    t0 = time.ticks_us()
    for r in records:
        box.append(r)
    t1 = time.ticks_us()
    got = 0
    while True:
        batch = box.oldest(4)
        if not batch:
            break
        for seq, _ in batch:
            box.ack(seq)
            got += 1
    t2 = time.ticks_us()
    assert got == n, (got, n)
    return {"append_per_s": n * 1e6 / time.ticks_diff(t1, t0), "drain_per_s": n * 1e6 / time.ticks_diff(t2, t1),
            "payload_bytes": len(records[0])}


def capacity(size, d, kind):
    root = where("lfs", d, size)
    total, free0 = flash.usage(root)
    box = Outbox(root + "/outbox", max_records=100000)
    i = 0
    while box.dropped == 0 and box.committed:
        box.append(body(kind, i))
        i += 1
    held = box.pending()
    _, free1 = flash.usage(root)
    return {"size": total, "free_before": free0, "records": held, "bytes_per_record": (free0 - free1) / held,
            "payload_bytes": len(body(kind, 0))}


if __name__ == "__main__":
    what = sys.argv[1]
    if what == "rate":
        out = rate(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
    else:
        out = capacity(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    print(json.dumps(out))
