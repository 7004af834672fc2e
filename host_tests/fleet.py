"""Test harness for whole nodes: the firmware on the real MicroPython interpreter as a
process (its flash a directory), and a collector (the host tools' MQTT client,
streetnode.common.mqtt) on the same real broker."""

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

from streetnode.common import mpy, mqtt


def node_config(node_id, broker, interval_s=0.2, sensors=None, **extra):
    cfg = {
        "node_id": node_id,
        "board": "unix-sim",
        "interval_s": interval_s,
        "health_every": 5,
        "mqtt": {"host": broker.host, "port": broker.port, "keepalive_s": 10},
        "sensors": sensors
        if sensors is not None
        else [{"name": "air", "driver": "bme280", "bus": "i2c0", "address": 0x76}],
    }
    cfg.update(extra)
    return cfg


ESP32_FLASH = 2 * 1024 * 1024  # the VFS partition of a stock ESP32-DevKitC (hal/sim/flash.py)


class NodeRunner:
    """One node: `micropython -m firmware.main_unix DIR CAUSE`, run from the compiled tree
    (streetnode.common.build: firmware, drivers, hal and umqtt as .mpy). Its flash is a
    board's: a LittleFS image of `flash` bytes in DIR (hal/sim/flash.py; default the
    ESP32-DevKitC's 2 MiB) with the flash faults `flash_faults` (hal/sim/flash.FlashJig);
    with flash=None, DIR itself (the host-directory mode)."""

    def __init__(self, directory, mpy_tree, heap="512k", flash=ESP32_FLASH, flash_faults=(), pause_us=0):
        from streetnode.sim.flashimg import FlashImage

        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.lib = mpy_tree
        self.heap = heap
        self.proc = None
        self.log = self.dir / "node.log"
        self.image = None
        if flash:
            self.image = FlashImage(self.dir / "flash.img")
            if not self.image.exists():
                self.image.format(flash)
            self.set_flash_faults(flash_faults, pause_us)

    def set_flash_faults(self, faults, pause_us=0):
        """The flash faults of the next boots (times from each boot)."""
        (self.dir / "flash.json").write_text(json.dumps({"faults": list(faults), "pause_us": pause_us}))

    def write_file(self, name, data):
        if self.image is not None:
            self.image.put_bytes(name, data)
        else:
            (self.dir / name).parent.mkdir(parents=True, exist_ok=True)
            (self.dir / name).write_bytes(data)

    def read_file(self, name):
        """A file of the node's flash (None when missing); only while the node is stopped."""
        if self.image is not None:
            return self.image.get_bytes(name)
        p = self.dir / name
        return p.read_bytes() if p.exists() else None

    def flash_copy(self, target):
        """The node's flash as a host directory to open on CPython (a copy for an image)."""
        if self.image is None:
            return self.dir
        return self.image.pull(target)

    def write_config(self, cfg):
        self.write_file("config.json", json.dumps(cfg).encode())

    def start(self, cause="power_on"):
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [mpy.executable(), "-X", "heapsize=%s" % self.heap, "-m", "firmware.main_unix", str(self.dir), cause],
                **mpy.compiled(self.lib, self.dir),  # from the .mpy tree, not the repository's sources
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout=5):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def output(self):
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class Collector:
    """Everything the fleet publishes, by node and kind, for assertions."""

    def __init__(self, broker, prefix="streetnode", client_id=None, user=None, password=None):
        self.prefix = prefix
        self.lock = threading.RLock()
        self.data = {}  # node -> [payload dict] in arrival order
        self.status = {}  # node -> [payload dict]
        self.health = {}
        self.results = {}  # node -> [payload dict]
        self.raw_errors = []
        self.connected = threading.Event()  # set on every (re)connection
        # A persistent session (clean_session False, QoS 1): on a broker with persistence,
        # what the fleet publishes while the collector reconnects is queued for it.
        # What nodes publish, not their cmd topics: a test's own command flood echoed back
        # would fill this client's queue at the broker, which then drops messages to it.
        self.client = mqtt.connect(
            mqtt.BrokerOptions(broker.host, broker.port, user=user, password=password),
            client_id or "collector-%d-%d" % (os.getpid(), id(self)),
            on_message=self._on_message,
            on_connect=lambda client: self.connected.set(),
            subscribe=[self.prefix + "/+/" + kind for kind in ("status", "data", "health", "cmd/result")],
            clean_session=False,
            keepalive=10,
            reconnect_max_s=0.5,
        )

    def _on_message(self, client, userdata, msg):
        parts = msg.topic.split("/")
        if len(parts) < 3:
            return
        node, kind = parts[1], "/".join(parts[2:])
        try:
            payload = json.loads(msg.payload)
        except ValueError:
            with self.lock:
                self.raw_errors.append((msg.topic, msg.payload))
            return
        target = {"data": self.data, "status": self.status, "health": self.health, "cmd/result": self.results}.get(kind)
        if target is not None:
            with self.lock:
                target.setdefault(node, []).append(payload)

    def seqs(self, node):
        with self.lock:
            return [p["seq"] for p in self.data.get(node, [])]

    def wait(self, cond, timeout, what="condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if cond():
                    return
            time.sleep(0.05)
        raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))

    def publish(self, topic, payload, qos=1):
        info = self.client.publish(topic, payload, qos=qos)
        info.wait_for_publish(5)

    def close(self):
        mqtt.close(self.client)


def missing(seqs):
    """Seqs between the first and the last that never arrived."""
    if not seqs:
        return []
    have = set(seqs)
    return [s for s in range(min(have), max(have) + 1) if s not in have]
