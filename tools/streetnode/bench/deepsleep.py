"""Benchmark (not a test): how long a battery node (config `deep_sleep: true`) is awake per
cycle, from the process start (the board's boot) to its machine.deepsleep() call, and where
that time goes. The node runs as `streetnode sim` runs it (the board's loader and the
firmware slot on a LittleFS flash image, the compiled tree, the real MicroPython unix
port) against a mosquitto started here, once without a radio (the unix port's network)
and once with the simulator's Wi-Fi and NTP (hal/sim/wlan.py).

Each cycle is a wake-up as the sim makes it after the interval (reset cause deepsleep),
timed twice, in turns: the node's own command (process start to exit, and to the
reading at a subscriber), and under a bench-only wrapper (device/deepsleep_micropython.py)
that wraps the firmware's functions as they are imported and reports each phase's time
until deepsleep(); the node itself carries no timing code.

    python -m streetnode.bench.deepsleep [--cycles 10] [--markdown] [--json]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from streetnode.bench.harness import DEVICE, render
from streetnode.common import deps, mpy, mqtt
from streetnode.common.broker import Broker
from streetnode.sim.fleet import DEFAULT_SENSORS, EXIT_DEEPSLEEP, install_slots, node_config
from streetnode.sim.flashimg import BOARD_FLASH_BYTES, FlashImage

HEAP = "512k"  # as the sim's nodes
SCRIPT = DEVICE / "deepsleep_micropython.py"
NODE = "ds-1"

# (phase keys the wrapper reports, what the row says), in the order of a wake-up
ROWS = [
    (("interpreter",), "process start to the first line of Python: the `micropython` command (a CPython wrapper), "
                       "the interpreter's start"),
    (("import_port", "mount"), "unix port: its start-up module, mount the LittleFS flash image"),
    (("loader", "import_loader"), "board loader: boot.py, main.py, the slot pointer (loader.py)"),
    (("import_core",), "imports: the firmware's modules (node, outbox, sensors, net, payloads, ...) and built-ins"),
    (("import_config", "config"), "config: import the validation modules, load and validate config.json"),
    (("state",), "state: the boot counter (read, written to flash)"),
    (("unload",), "let go of the config modules again (gc.collect)"),
    (("outbox_open",), "outbox: open, find the segments and the ack position"),
    (("import_sim", "platform"), "the simulated board and street (simulator only: not on a board)"),
    (("import_drivers", "sensors_init"), "sensors: import the driver, set up the BME280 (chip id, calibration)"),
    (("import_mqtt", "import_ota", "objects"), "MQTT client and OTA receiver: import, make the objects"),
    (("sensor_read",), "sensor read (a forced BME280 measurement: the simulated chip takes its conversion time)"),
    (("commit",), "commit the reading to flash (outbox append, flushed)"),
    (("wifi_ntp",), "Wi-Fi: drive the association, NTP request"),
    (("waits",), "the loop waiting (for the radio to associate, for the broker)"),
    (("connect/connack",), "MQTT CONNECT, CONNACK (TCP connect included)"),
    (("connect/subscribe",), "SUBSCRIBE cmd, ota/offer, ota/chunk, each waiting for its SUBACK"),
    (("connect", "connect/publish"), "status online (retained, QoS 1, waits for the PUBACK)"),
    (("publish",), "the reading: PUBLISH QoS 1, wait for its PUBACK"),
    (("flash_free",), "health report: the free flash (statvfs: LittleFS walks the whole file system)"),
    (("health", "health/publish"), "health report: the rest (gc.collect, the JSON), PUBLISH QoS 0"),
    (("sync",), "outbox: the ack position to flash"),
    (("close", "close/publish"), "status offline (retained, QoS 1), DISCONNECT"),
]  # fmt: skip
_LISTED = {k for keys, _ in ROWS for k in keys}
OTHER = "everything else: the loop's own work (payload, scheduling), the rest of boot, the wrapper"


class _Readings:
    """Arrival times (time.time()) of the node's readings, by seq."""

    def __init__(self, broker):
        self.at = {}
        self.lock = threading.Lock()
        self.client = mqtt.connect(mqtt.BrokerOptions(broker.host, broker.port), "bench-deepsleep-%d" % os.getpid(),
                                   on_message=self._msg, subscribe=("streetnode/%s/data" % NODE,), qos=0)  # fmt: skip

    def _msg(self, client, userdata, msg):
        t = time.time()
        with self.lock:
            self.at.setdefault(json.loads(msg.payload)["seq"], t)

    def wait(self, seq, timeout=10.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                if seq in self.at:
                    return self.at[seq]
            time.sleep(0.002)
        return None

    def close(self):
        mqtt.close(self.client)


# an import's time goes to the phase its module serves (imports of a module already loaded, too)
_GROUPS = (("firmware.config", "config"), ("hal.sim.schema", "config"), ("firmware.ota", "ota"),
           ("firmware.mqtt", "mqtt"), ("umqtt", "mqtt"), ("firmware.main_unix", "port"), ("hal.sim", "sim"),
           ("drivers", "drivers"), ("loader", "loader"))  # fmt: skip


def import_group(module):
    for prefix, group in _GROUPS:
        if module.startswith(prefix):
            return "import_" + group
    return "import_core"


def _node_dir(work, name, bundle_dir, broker, wifi):
    d = work / name
    d.mkdir()
    cfg = node_config(NODE, mqtt.BrokerOptions(broker.host, broker.port), 60, list(DEFAULT_SENSORS), seed=1)
    cfg["deep_sleep"] = True
    if wifi:  # the simulator's radio: association and DHCP (hal/sim/wlan.py's defaults), NTP
        cfg["wifi"] = {"ssid": "city-iot", "password": "streetnode-sim"}
        cfg["ntp"] = {"host": "pool.ntp.org"}
    image = FlashImage(d / "flash.img")
    image.format(BOARD_FLASH_BYTES["esp32-devkitc"])
    install_slots(d, bundle_dir, json.dumps(cfg), image=image)
    return d


def _wake(d, lib, cause, wrapped):
    """One wake-up: (spawn ns, exit ns, the wrapper's figures or None)."""
    args = [str(SCRIPT)] if wrapped else ["-m", "firmware.main_unix"]
    t0 = time.time_ns()
    p = subprocess.Popen(mpy.command(args + [str(d), cause], heapsize=HEAP), **mpy.compiled(lib, d),  # as the sim's nodes
                         stdout=subprocess.PIPE if wrapped else subprocess.DEVNULL, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL)  # fmt: skip
    out, _ = p.communicate(timeout=60)
    t1 = time.time_ns()
    if p.returncode != EXIT_DEEPSLEEP:
        tail = (out or b"").decode("utf-8", "replace")[-800:]
        raise RuntimeError("the node exited with %s, not %d (deep sleep): %s" % (p.returncode, EXIT_DEEPSLEEP, tail))
    figures = None
    if wrapped:
        for line in out.decode("utf-8", "replace").splitlines():
            if line.startswith("@@"):
                figures = json.loads(line[2:])
        if figures is None:
            raise RuntimeError("the wrapper printed no figures: %s" % out.decode("utf-8", "replace")[-800:])
    return t0, t1, figures


def _variant(d, lib, rx, cycles, seq):
    """cycles wake-ups of the node in d, plain and wrapped in turns; seq: the last seq so far."""
    plain_exit, plain_reading, wrapped_awake, wrapped_exit = [], [], [], []
    phases = {}
    imports = {}
    with rx.lock:
        rx.at.clear()  # seqs of another node's flash
    for _ in range(cycles):
        for wrapped in (False, True):
            t0, t1, fig = _wake(d, lib, "deepsleep", wrapped)
            seq += 1
            arrived = rx.wait(seq)
            if not wrapped:
                plain_exit.append((t1 - t0) / 1e6)
                if arrived is not None:
                    plain_reading.append(arrived * 1000 - t0 / 1e6)
                continue
            wrapped_awake.append((fig["sleep_ns"] - t0) / 1e6)
            wrapped_exit.append((t1 - t0) / 1e6)
            ph = {}
            for k, v in fig["phases"].items():
                k = import_group(k[7:]) if k.startswith("import:") else k
                ph[k] = ph.get(k, 0) + v
            ph["interpreter"] = (fig["wall0_ns"] - t0) / 1000
            ph["other"] = sum(ph.pop(k) for k in list(ph) if k not in _LISTED)
            for k, v in fig["phases"].items():
                if k.startswith("import:"):
                    imports.setdefault(k[7:], []).append(v / 1000)
            for k, v in ph.items():
                phases.setdefault(k, []).append(v / 1000)
    med = {k: statistics.median(v + [0.0] * (cycles - len(v))) for k, v in phases.items()}
    return seq, {
        "plain_to_exit_ms": statistics.median(plain_exit),
        "plain_to_exit_ms_range": [min(plain_exit), max(plain_exit)],
        "plain_to_reading_ms": statistics.median(plain_reading) if plain_reading else None,
        "wrapped_to_deepsleep_ms": statistics.median(wrapped_awake),
        "wrapped_to_deepsleep_ms_range": [min(wrapped_awake), max(wrapped_awake)],
        "wrapped_to_exit_ms": statistics.median(wrapped_exit),
        "phases_ms": med,
        "imports_ms": {k: round(statistics.median(v + [0.0] * (cycles - len(v))), 2) for k, v in imports.items()},
    }


def run(cycles=10, wifi=True):
    if cycles < 1:
        raise ValueError("--cycles must be at least 1")
    from streetnode.common.build import compile_tree
    from streetnode.technician import bundle as bundlemod

    lib = compile_tree(lib=deps.device_lib())
    work = Path(tempfile.mkdtemp(prefix="bench-deepsleep-"))
    res = {"cycles": cycles, "heap": HEAP, "load_before": os.getloadavg()[0], "variants": {}}
    try:
        bundle_dir, _ = bundlemod.make("unix", out=work / ".bundle-unix")
        with Broker() as broker:
            res["broker"] = broker.kind
            rx = _Readings(broker)
            try:
                for name, radio in (("no_radio", False), ("wifi", True)) if wifi else (("no_radio", False),):
                    d = _node_dir(work, name, bundle_dir, broker, radio)
                    _wake(d, lib, "power_on", False)  # the first boot: state, outbox made; not counted
                    if rx.wait(1) is None:
                        raise RuntimeError("the first reading of the node (%s) did not arrive" % name)
                    _, res["variants"][name] = _variant(d, lib, rx, cycles, 1)
            finally:
                rx.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    res["load_after"] = os.getloadavg()[0]
    return res


def table(res, markdown=False):
    variants = res["variants"]
    names = [n for n in ("no_radio", "wifi") if n in variants]
    head = ["phase of a wake-up"] + ["%s, ms" % ("no radio" if n == "no_radio" else "simulated Wi-Fi + NTP")
                                     for n in names]  # fmt: skip
    head.insert(2, "share")
    rows = []
    for keys, text in ROWS:
        cells = [sum(variants[n]["phases_ms"].get(k, 0.0) for k in keys) for n in names]
        total = variants[names[0]]["wrapped_to_deepsleep_ms"]
        rows.append([text, "%.1f" % cells[0], "%.0f %%" % (100 * cells[0] / total)] + ["%.1f" % c for c in cells[1:]])
    cells = [variants[n]["phases_ms"].get("other", 0.0) for n in names]
    total = variants[names[0]]["wrapped_to_deepsleep_ms"]
    rows.append([OTHER, "%.1f" % cells[0], "%.0f %%" % (100 * cells[0] / total)] + ["%.1f" % c for c in cells[1:]])

    def each(key, fmt="%.0f"):
        return [fmt % variants[n][key] if variants[n][key] is not None else "none arrived" for n in names]

    def with_range(key):
        return ["%.0f (%.0f .. %.0f)" % ((variants[n][key],) + tuple(variants[n][key + "_range"])) for n in names]

    bold = ["**awake: process start to machine.deepsleep()** (median, min .. max)"] + with_range("wrapped_to_deepsleep_ms")
    rows.append(bold[:2] + ["100 %"] + bold[2:])
    for label, cells in (
        ("the same wrapped wake-up, process start to its exit", each("wrapped_to_exit_ms")),
        ("the node's own command (no wrapper), process start to exit (median, min .. max)",
         with_range("plain_to_exit_ms")),
        ("the node's own command, process start to its reading at a subscriber", each("plain_to_reading_ms")),
    ):  # fmt: skip
        rows.append([label, cells[0], ""] + cells[1:])
    notes = [
        "%d wake-ups per column (reset cause deepsleep, after one first boot), each timed under the wrapper and "
        "again as the node's own command, in turns; phases: the median of each over the wrapped wake-ups, so they "
        "need not add up to the median total exactly" % res["cycles"],
        "the node as the sim runs it: board loader and firmware slot on a 2 MiB LittleFS image (esp32-devkitc), "
        "compiled tree, a BME280, MicroPython unix port, heap %s, broker %s on loopback; the simulated radio "
        "takes 1.5 s to associate and 0.5 s for DHCP (hal/sim/wlan.py's assumptions, not a measurement)"
        % (res["heap"], res["broker"]),
        "a phase's own time: imports are counted under the phase they serve; load average %.1f before, %.1f after"
        % (res["load_before"], res["load_after"]),
    ]  # fmt: skip
    return render("Deep sleep: one wake-up of a battery node", head, rows, notes, [], markdown, left=lambda i, n: i < 1)


def main(argv=None):
    p = argparse.ArgumentParser(prog="streetnode-bench-deepsleep", description=__doc__.split("\n\n")[0])
    p.add_argument("--cycles", type=int, default=10, help="wake-ups timed per variant (default 10)")
    p.add_argument("--no-wifi", action="store_true", help="only the node without a radio")
    p.add_argument("--markdown", action="store_true", help="the table as Markdown (for docs/benchmarks.md)")
    p.add_argument("--json", action="store_true", help="the raw figures as JSON")
    args = p.parse_args(argv)
    try:
        res = run(args.cycles, not args.no_wifi)
    except (RuntimeError, ValueError) as e:
        print("bench deepsleep: %s" % e, file=sys.stderr)
        return 2
    print(json.dumps(res, indent=1) if args.json else table(res, args.markdown))
    return 0


if __name__ == "__main__":
    from streetnode.bench import docs

    sys.exit(docs.run("python -m streetnode.bench.deepsleep", main))
