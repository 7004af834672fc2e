"""Test harness for updates over the air: releases signed with `cryptography` directly (the
release format of tools/streetnode/ota/release.py), a sim fleet whose nodes boot through
the board's loader from their own slots (streetnode.sim.fleet.install_slots), and a
collector of every node's data seqs and ota/status on the real broker."""

import base64
import hashlib
import json
import shutil
import subprocess
import threading
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from streetnode.common import build, deps, mqtt
from streetnode.sim import fleet as simfleet
from streetnode.sim.flashimg import FlashImage
from streetnode.technician import bundle as bundlemod


def new_key(directory):
    """(private key, path of fleet.pub as base64 text)."""
    key = Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    pub = Path(directory) / "fleet.pub"
    pub.write_text(base64.b64encode(raw).decode() + "\n")
    return key, pub


def pubkey_b64(key):
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def canonical(manifest):
    return json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()


def make_release(bundle_dir, out, key, version, replace=None, allow_downgrade=False, target="unix", loader=1):
    """A release of the bundle's slot (app/) in `out`: the files, manifest.json, manifest.sig.
    `replace`: {slot path: bytes} swapped in before signing (a broken version)."""
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    files = {}
    app = Path(bundle_dir) / "app"
    for p in sorted(x for x in app.rglob("*") if x.is_file()):
        files[p.relative_to(app).as_posix()] = p.read_bytes()
    files.update(replace or {})
    entries = []
    for rel in sorted(files):
        (out / "bundle" / "app" / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / "bundle" / "app" / rel).write_bytes(files[rel])
        entries.append({"path": rel, "size": len(files[rel]), "sha256": hashlib.sha256(files[rel]).hexdigest()})
    manifest = {"format": 1, "version": version, "target": target, "loader": loader, "made": "2026-12-02T04:00:00Z",
                "allow_downgrade": allow_downgrade, "files": entries}  # fmt: skip
    data = canonical(manifest)
    (out / "manifest.json").write_bytes(data)
    (out / "manifest.sig").write_bytes(key.sign(data))
    return out


def compile_module(source, name, tmp):
    """A .mpy of `source` (the unix port's bytecode)."""
    src = Path(tmp) / (name + ".py")
    src.write_text(source)
    dst = Path(tmp) / (name + ".mpy")
    subprocess.run(build.mpy_cross() + ["-s", name + ".py", "-o", str(dst), str(src)], check=True)
    return dst.read_bytes()


class Collector:
    """Every node's data seqs and its latest ota/status and status."""

    def __init__(self, broker, prefix="streetnode"):
        self.lock = threading.Lock()
        self.seqs = {}
        self.ota = {}
        self.status = {}
        opts = mqtt.BrokerOptions(broker.host, broker.port)
        self.client = mqtt.connect(opts, None, on_message=self._on, subscribe=[prefix + "/#"])

    def _on(self, c, u, msg):
        parts = msg.topic.split("/")
        try:
            doc = json.loads(msg.payload)
        except ValueError:
            return
        with self.lock:
            if parts[2:] == ["data"]:
                self.seqs.setdefault(parts[1], set()).add(doc["seq"])
            elif parts[2:] == ["ota", "status"]:
                self.ota[parts[1]] = doc
            elif parts[2:] == ["status"]:
                self.status[parts[1]] = doc

    def wait(self, what, timeout=90.0, why=""):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                if what(self):
                    return
            time.sleep(0.1)
        with self.lock:
            raise AssertionError("timed out waiting for %s; ota: %s; status: %s" % (why, self.ota, self.status))

    def missing(self, node):
        with self.lock:
            s = self.seqs.get(node, set())
            return sorted(set(range(1, max(s) + 1)) - s) if s else []

    def close(self):
        mqtt.close(self.client)


class OtaFleet:
    """N sim nodes (sim-1..N) booting through the loader; one compiled tree, one bundle."""

    def __init__(self, tmp, broker, n, key, ota=None, interval_s=0.5, heap="512k"):
        self.tmp = Path(tmp)
        self.broker = broker
        self.lib = build.compile_tree(lib=deps.device_lib())
        self.bundle, _ = bundlemod.make("unix", out=self.tmp / "bundle-unix")
        self.nodes = {}
        opts = mqtt.BrokerOptions(broker.host, broker.port)
        for i in range(1, n + 1):
            node_id = "sim-%d" % i
            d = self.tmp / node_id
            d.mkdir(parents=True, exist_ok=True)
            cfg = simfleet.node_config(node_id, opts, interval_s, list(simfleet.DEFAULT_SENSORS), seed=i)
            cfg["ota"] = dict({"pubkeys": [pubkey_b64(key)]} if key else {}, **(ota or {}))
            image = FlashImage(d / "flash.img")
            image.format(2 * 1024 * 1024)
            simfleet.install_slots(d, self.bundle, json.dumps(cfg), image=image)
            self.nodes[node_id] = simfleet.NodeProcess(node_id, d, heap, self.lib, None)

    def start(self):
        for n in self.nodes.values():
            n.start()

    def supervise(self, stop):
        """Restart nodes that exit (a board's reboot), until stop is set (a thread)."""
        while not stop.is_set():
            for n in self.nodes.values():
                # The sim gives up on a node that dies 5 times in a row without a reading
                # (NodeProcess.check); these tests cut the power more often than that on
                # purpose, so every start counts as a node that got going: never given up.
                n.check(0.5, received=time.monotonic())
            time.sleep(0.1)

    def stop(self):
        for n in self.nodes.values():
            n.stop()

    def log(self, node_id):
        try:
            return (self.nodes[node_id].dir / "node.log").read_text(errors="replace")[-3000:]
        except OSError:
            return ""
