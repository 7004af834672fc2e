"""`streetnode sim`: a fleet of virtual nodes, each the real firmware on the real MicroPython
interpreter with simulated sensors in a simulated street, publishing to a broker of their
own (mosquitto when installed, else the embedded amqtt) or the one given.

A node process that dies is started again, as a board reboots, and the sim says so. Each
node's flash is a board's: LittleFS on a simulated block device of the board's size
(--flash-size, default the ESP32-DevKitC's 2 MiB VFS partition; hal/sim/flash.py) in
<state-dir>/<node>/flash.img, or with --flash-size host the directory itself. A node
started again on the same state resumes its seq and its outbox.

Each node boots as a board does, through the board's loader (technician/board/) from its
own firmware slots: install_slots() puts the unix bundle's loader at the flash root, its
app/ into slot a/ and the config into data/ (as `streetnode deploy` lays out a board), so
an update over the air (firmware/ota/) runs the same path in the sim as on a board.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from streetnode.common import deps, mpy, mqtt
from streetnode.common.paths import REPO
from streetnode.sim.flashimg import FlashImage, parse_size

EXIT_REBOOT = 3  # firmware/node.py
EXIT_DEEPSLEEP = 4

DEFAULT_SENSORS = [
    {"name": "air", "driver": "bme280", "bus": "i2c0", "address": 0x76,
     "options": {"oversampling_pressure": 4, "oversampling_humidity": 2, "iir_filter": 4}},
]  # fmt: skip

OPTIONAL_SENSORS = {
    # Added when their drivers are in the tree (the air-quality set).
    "pm": {"name": "pm", "driver": "pms5003", "bus": "uart1", "options": {"power_pin": "pm_power"}},
    "co2": {"name": "co2", "driver": "scd4x", "bus": "i2c0", "address": 0x62},
}


CA_FILE = "ca.der"  # in each node's flash, with --ca


def node_config(node_id, opts, interval_s, sensors, seed):
    """A node's config.json for the broker options `opts` (its brokers, TLS with CA_FILE, user):
    several brokers (--broker h1:p1,h2:p2) become the node's mqtt.hosts, tried in order."""
    if len(opts.hosts) > 1:
        m = {"hosts": [{"host": h, "port": p} for h, p in opts.hosts], "keepalive_s": 30}
    else:
        m = {"host": opts.host, "port": opts.port, "keepalive_s": 30}
    if opts.tls:
        m.update(tls=True, ca=CA_FILE)
    if opts.user:
        m.update(user=opts.user, password=opts.password)
    return {
        "node_id": node_id,
        "site": "Siegen (simulated)",
        "board": "unix-sim",
        "interval_s": interval_s,
        "health_every": 5,
        "mqtt": m,
        "sensors": sensors,
        "sim": {"seed": seed},
    }


def node_ca(opts):
    """The broker's CA in DER, as the nodes carry it (--ca may be PEM or DER); None without TLS."""
    if not opts.tls:
        return None
    if opts.cert:
        raise ValueError("the simulated nodes carry no client certificate: --cert and --key are not for sim")
    if not opts.ca:
        raise ValueError("--tls for the simulated nodes needs --ca FILE (each node carries the broker's CA)")
    try:
        with open(opts.ca, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ValueError("cannot read the CA file %s: %s" % (opts.ca, e.strerror or e))
    if b"-----BEGIN" in data:
        import ssl

        return ssl.PEM_cert_to_DER_cert(data.decode("ascii", "replace"))
    return data


def ota_pubkey(path):
    """The base64 of a fleet's 32-byte Ed25519 public key from FILE (`streetnode keys new`'s
    fleet.pub: base64 text, PEM or the raw 32 bytes); ValueError naming the problem."""
    import base64
    import binascii

    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ValueError("cannot read the OTA key %s: %s" % (path, e.strerror or e))
    raw = None
    if b"-----BEGIN" in data:
        from cryptography.hazmat.primitives import serialization

        try:
            key = serialization.load_pem_public_key(data)
            raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        except (ValueError, TypeError, AttributeError) as e:
            raise ValueError("%s is not an Ed25519 public key: %s" % (path, e))
    elif len(data) == 32:
        raw = data
    else:
        try:
            raw = base64.b64decode(data.strip(), validate=True)
        except (binascii.Error, ValueError):
            raw = None
    if raw is None or len(raw) != 32:
        raise ValueError("%s is not a fleet public key (base64 of 32 bytes, from `streetnode keys new`)" % path)
    return base64.b64encode(raw).decode()


# What a slot leaves to the ROMFS image with --romfs: the compiled tree's packages.
ROMFS_SUPPLIES = ("app/firmware/", "app/drivers/", "app/hal/", "app/lib/")


def install_slots(node_dir, bundle_dir, config_text, ca_der=None, image=None, romfs=False):
    """Lay a node's flash out as a board's: the loader at the root, the bundle's app/ in
    slot a/ with the pointer on it, data/config.json (and the CA). A flash that already
    has a slot keeps its firmware (a node resumed on its state, or updated over the air):
    only the config is written. romfs: the slot holds only node_main and the board's
    description; the firmware's packages come from the ROMFS image (firmware/main_unix.py)."""
    files = {}  # path in the flash -> bytes
    has_slot = ("slot" in image.listing()) if image is not None else (Path(node_dir) / "slot").exists()
    if not has_slot:
        bundle_dir = Path(bundle_dir)
        for path in sorted(p for p in bundle_dir.rglob("*") if p.is_file()):
            rel = path.relative_to(bundle_dir).as_posix()
            if romfs and rel.startswith(ROMFS_SUPPLIES):
                continue
            if rel.startswith("app/"):
                files["a/" + rel[4:]] = path.read_bytes()
            elif rel == "manifest.json":
                files["a/manifest.json"] = path.read_bytes()
            else:
                files[rel] = path.read_bytes()  # the loader: loader.py, boot.py, main.py
        files["slot"] = b"a"
    files["data/config.json"] = config_text.encode()
    if ca_der:
        files["data/" + CA_FILE] = ca_der
    with tempfile.TemporaryDirectory() as stage:
        root = Path(stage) if image is not None else Path(node_dir)
        for rel, data in files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data)
        if image is not None:
            image.push(stage)


def available_sensors():
    out = list(DEFAULT_SENSORS)
    for spec in OPTIONAL_SENSORS.values():
        if (REPO / "drivers" / spec["driver"]).is_dir() and (REPO / "hal" / "sim" / (spec["driver"] + ".py")).exists():
            out.append(spec)
    return out


OUTBOX_DIR = "data/outbox"  # a node's outbox on its flash (the board's layout: data/ beside the slots)


def node_outbox(node_dir, image=True, where=OUTBOX_DIR):
    """(the highest seq the node ever committed, the set of seqs still waiting in its outbox)
    from its flash, read on CPython with the firmware's own Outbox (a copy of the folder for
    a LittleFS image; never while the node runs); (0, set()) for a flash with no outbox yet.
    where: the outbox's folder on the flash (a node without slots keeps it at "outbox").
    An outbox that cannot be read raises (OSError, ValueError, FlashError)."""
    from firmware.outbox import Outbox

    node_dir = Path(node_dir)
    if not image:
        folder = node_dir / where
        if not (folder / "state").exists() and not any(folder.glob("*.seg")):
            return 0, set()
        box = Outbox(str(folder))
        return box.last_seq, {seq for seq, _ in box.records()}
    with tempfile.TemporaryDirectory(dir=str(node_dir)) as d:
        FlashImage(node_dir / "flash.img").pull(d, OUTBOX_DIR)
        return node_outbox(d, image=False)


def delivery(expected, waiting, received):
    """(committed, queued, missing) of one node: of the seqs it was to deliver (`expected`),
    those that never arrived (not in `received`) but are still `waiting` in its outbox, and
    those that never arrived and are gone (lost)."""
    return len(expected), len((expected & waiting) - received), len(expected - waiting - received)


CRASH_LIMIT = 5  # deaths in a row without a reading published: the node is given up
LOG_TAIL = 8  # lines of a node's log printed when it dies at boot


class NodeProcess:
    def __init__(self, node_id, directory, heap, lib, log, romfs=None, entry=("-m", "firmware.main_unix")):
        """entry: what MicroPython runs, before the directory and the reset cause (a
        benchmark's own boot script in place of firmware/main_unix.py)."""
        self.node_id = node_id
        self.dir = directory
        self.heap = heap
        self.lib = lib
        self.romfs = romfs  # the ROMFS image the node runs its firmware from, or None
        self.log = log
        self.entry = list(entry)
        self.proc = None
        self.starts = 0
        self.restart_at = None
        self.cause = "power_on"
        self.log_at = 0  # where this start's lines begin in node.log
        self.fails = 0  # deaths in a row without publishing
        self.received_at_start = 0
        self.given_up = False

    def start(self, received=0):
        self.starts += 1
        path = self.dir / "node.log"
        self.log_at = path.stat().st_size if path.exists() else 0
        self.received_at_start = received
        out = open(path, "ab")
        self.proc = subprocess.Popen(
            mpy.command(self.entry + [str(self.dir), self.cause] + ([str(self.romfs)] if self.romfs else []),
                        heapsize=self.heap),
            **mpy.compiled(self.lib, self.dir),  # the compiled tree only, not the repository's sources
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        out.close()

    def log_tail(self, n=LOG_TAIL):
        """The last n lines this start wrote to node.log."""
        try:
            with open(self.dir / "node.log", "rb") as f:
                f.seek(self.log_at)
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return []
        return [line for line in text.splitlines() if line.strip()][-n:]

    def check(self, interval_s, received=0):
        """Restart a node that exited, as a board would come back; returns the lines to
        print about it (a death at boot comes with the node's last lines; after
        CRASH_LIMIT deaths in a row without a reading it is not started again)."""
        now = time.monotonic()
        if self.proc is not None and self.proc.poll() is not None:
            code = self.proc.returncode
            self.proc = None
            if code == EXIT_DEEPSLEEP:
                self.cause, self.restart_at = "deepsleep", now + interval_s
                self.fails = 0
                return ["%s sleeps for %ss" % (self.node_id, interval_s)]
            self.cause = "soft" if code == EXIT_REBOOT else "hard"
            published = received > self.received_at_start
            self.fails = 0 if published else self.fails + 1
            if code == EXIT_REBOOT and published:
                lines = ["%s rebooted on request" % self.node_id]
            elif code == EXIT_REBOOT:  # the board's loader reboots a node that fails to start
                lines = ["%s died (exit %s: a reboot before its first reading), restarting as a board reboots"
                         % (self.node_id, code)]
            else:
                lines = ["%s died (exit %s), restarting as a board reboots" % (self.node_id, code)]
            if self.fails >= CRASH_LIMIT:
                self.given_up = True
                lines = ["%s died at every start (%d times in a row without publishing a reading): not restarted; "
                         "its last lines (%s):" % (self.node_id, self.fails, self.dir / "node.log")]
                return lines + ["  | " + t for t in self.log_tail()]
            self.restart_at = now
            if self.fails == 1:  # died before its first reading: say why, once
                lines[0] += "; it published nothing, its last lines:"
                lines += ["  | " + t for t in self.log_tail()]
            return lines
        if self.proc is None and self.restart_at is not None and now >= self.restart_at:
            self.restart_at = None
            self.start(received)
        return []

    def stop(self, timeout=5.0):
        p = self.proc
        if p is None:
            return
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.proc = None


class LiveView:
    """Subscribes to the fleet's topics and feeds them to the field crew's fleet model
    (fleetwatch): the same table and alerts as `streetnode monitor`."""

    def __init__(self, opts, prefix="streetnode"):
        from streetnode.field.fleetwatch import Fleet

        self.prefix = prefix
        self.fleet = Fleet(prefix)
        self.lock = threading.Lock()
        self.flash = {}  # node -> the flash fields of its last health
        # wait=False: a broker that is not up yet is waited for, as the nodes wait for it
        self.client = mqtt.connect(opts, "streetnode-sim-view-%d" % os.getpid(), on_message=self._on_message,
                                   subscribe=[prefix + "/+/#"], wait=False)  # fmt: skip

    def _on_message(self, client, userdata, msg):
        with self.lock:
            self.fleet.feed(msg.topic, msg.payload, time.time())
            if msg.topic.endswith("/health"):
                try:
                    h = json.loads(msg.payload)
                except ValueError:
                    return
                if isinstance(h, dict) and "flash" in h:
                    self.flash[msg.topic.split("/")[-2]] = (h.get("flash"), h.get("flash_free"), h.get("flash_errors"))

    def flash_line(self, sizes):
        """Flash use per node from their health: 'sim-1 3% of 2048 KiB ok, ...'."""
        with self.lock:
            parts = []
            for node in sorted(self.flash):
                state, free, errors = self.flash[node]
                size = sizes.get(node)
                if size and free is not None:
                    use = "%d%% of %d KiB" % (round(100.0 * (size - free) / size), size // 1024)
                else:
                    use = "%s KiB free" % (free // 1024 if free is not None else "?")
                parts.append("%s %s %s%s" % (node, use, state, " (%d errors)" % errors if errors else ""))
            return "flash: " + ", ".join(parts) if parts else ""

    def events(self):
        """Alerts raised or cleared since the last call, as lines."""
        with self.lock:
            return [ev.text() for ev in self.fleet.tick(time.time())]

    def table_lines(self, width=200, height=None):
        """The monitor's table without its title line, at most `height` lines."""
        from streetnode.field.monitor import table

        with self.lock:
            return table(self.fleet, time.time(), width, None if height is None else height + 1)[1:]

    def received(self, node):
        with self.lock:
            n = self.fleet.nodes.get(node)
            return len(n.all_seqs()) if n is not None else 0

    def seqs(self, node):
        with self.lock:
            n = self.fleet.nodes.get(node)
            return set(n.all_seqs()) if n is not None else set()

    def summary(self, ours=None, outboxes=None):
        """Per node: readings received, first/last seq, duplicates, and against what the node
        committed on its flash: `outboxes` maps a node to (seqs this run was to deliver: those
        committed during the run and those waiting at its start, the seqs still waiting in
        its outbox at the end), or to None when its flash could not be read. Then `committed`
        is how many seqs the run had to deliver, `queued` how many of them never arrived but
        are still in the outbox (a later start sends them), `missing` how many never arrived
        and are gone (lost). Without a node's outbox, `missing` counts the holes between
        received seqs only and `committed`/`queued` are None. Only the nodes `ours` names
        when given (with --broker the broker may carry other nodes too); a node of which
        nothing arrived is there when it committed readings in this run."""
        outboxes = outboxes or {}
        with self.lock:
            out = {}
            names = set(self.fleet.nodes) | {k for k, v in outboxes.items() if v is not None and v[0]}
            for node in sorted(names):
                if ours is not None and node not in ours:
                    continue
                n = self.fleet.nodes.get(node)
                seqs = set(n.all_seqs()) if n is not None else set()
                s = out[node] = {
                    "received": len(seqs),
                    "first": min(seqs) if seqs else None,
                    "last": max(seqs) if seqs else None,
                    "duplicates": n.duplicates if n is not None else 0,
                    "committed": None,
                    "queued": None,
                    "missing": len(n.missing()) if n is not None else 0,
                }
                box = outboxes.get(node)
                if box is not None:
                    s["committed"], s["queued"], s["missing"] = delivery(box[0], box[1], seqs)
            return out

    def close(self):
        mqtt.close(self.client)


class _Stopped(Exception):
    """SIGTERM/SIGINT before the fleet runs: clean up (temp folder, broker) and leave."""


def run(args, out=sys.stdout):
    from streetnode.common.broker import Broker
    from streetnode.sim import options
    from streetnode.sim.table import SimDisplay

    node_ids = ["sim-%d" % i for i in range(1, max(args.nodes, 0) + 1)]
    flash_arg = getattr(args, "flash_size", "esp32-devkitc") or "host"
    try:
        flash_size = None if flash_arg == "host" else parse_size(flash_arg)
    except ValueError as e:
        raise ValueError("--flash-size: %s" % e)
    embedded_tls = bool(getattr(args, "tls", False)) and not getattr(args, "broker", None)
    if embedded_tls:  # sim --tls: the embedded broker with a CA of its own (sim/tls.py)
        if any(getattr(args, k, None) for k in ("ca", "cert", "user", "password_file")):
            raise ValueError("--tls without --broker makes its own CA for the embedded broker: --ca, --cert, --user "
                             "and --password-file go with --broker")  # fmt: skip
        from streetnode.common.broker import find_mosquitto

        if not find_mosquitto():
            raise ValueError("--tls needs mosquitto for the embedded broker (apt-get install mosquitto)")
        opts = None
    else:
        opts = mqtt.BrokerOptions.from_args(args, required=False)
    ca_der = node_ca(opts) if opts else None
    sensors = available_sensors()
    # Every option and every node's config checked before anything starts (the broker's
    # address is not known yet: the check's config carries a placeholder one).
    check_opts = opts or mqtt.BrokerOptions("127.0.0.1", 1883)
    options.check(args, node_ids or ["sim-1"],
                  lambda node: node_config(node, check_opts, args.interval, sensors, seed=node_ids.index(node) + 1))
    display = SimDisplay(out)
    pubkey = ota_pubkey(args.ota_key) if getattr(args, "ota_key", None) else None
    stop = threading.Event()
    running = [False]

    def on_signal(signum, frame):
        stop.set()
        if not running[0]:
            raise _Stopped()

    old = signal.signal(signal.SIGINT, on_signal), signal.signal(signal.SIGTERM, on_signal)
    broker = None
    temp_state = None
    view = None
    nodes = []
    sizes = {}
    summary = {}
    at_start = {}  # node -> (last seq, seqs waiting) on its flash before this run, or None
    try:
        from streetnode.common.build import compile_tree, image_heap_bytes, romfs_image

        lib = compile_tree(lib=deps.device_lib())  # firmware, drivers, hal and umqtt as .mpy
        if args.state_dir:
            state_dir = Path(args.state_dir).resolve()
        else:
            temp_state = tempfile.mkdtemp(prefix="streetnode-sim-")
            state_dir = Path(temp_state)
        state_dir.mkdir(parents=True, exist_ok=True)
        romfs = None
        heap = args.heap
        if getattr(args, "romfs", False):
            # As a board with a ROM partition: the bytecode runs in place from the image, and
            # --heap is the board's heap around it (the unix port holds the image in its heap).
            romfs = romfs_image(lib, state_dir / ".firmware.romfs")
            heap = str(args.heap_bytes + image_heap_bytes(romfs.stat().st_size))
            display.note("firmware from a ROMFS image (%d bytes), %s of heap around it" % (romfs.stat().st_size, args.heap))
        if opts is None:
            tls = None
            if embedded_tls:
                from streetnode.sim.tls import embedded_pki

                tls, ca_der = embedded_pki(state_dir / "broker-tls")
            broker = Broker("mosquitto" if tls else None, tls=tls)
            broker.start()
            opts = mqtt.BrokerOptions(broker.host, broker.port, tls=bool(tls), ca=str(tls["cafile"]) if tls else None)
            display.note("embedded broker (%s%s) on %s%s" % (broker.kind, ", TLS" if tls else "", opts.address,
                         ", its CA in %s" % tls["cafile"] if tls else ""))  # fmt: skip
        watch = opts.address + (" --ca %s" % opts.ca if opts.ca else (" --tls" if opts.tls else ""))
        display.note("watch this fleet: streetnode monitor --broker %s   (or: streetnode check sim-1 --broker %s)"
                     % (watch, watch))  # fmt: skip
        configs = options.check(args, node_ids,
                                lambda node: node_config(node, opts, args.interval, sensors, seed=node_ids.index(node) + 1))
        from streetnode.technician import bundle as bundlemod

        bundle_dir, _ = bundlemod.make("unix", out=state_dir / ".bundle-unix")  # each node's slot a/
        for node_id in node_ids:
            d = state_dir / node_id
            d.mkdir(exist_ok=True)
            if (d / "flash.img").exists() or (d / OUTBOX_DIR).exists():  # resumed: what it committed before
                at_start[node_id] = _outbox_or_none(d, (d / "flash.img").exists(), display.note)
            else:
                at_start[node_id] = (0, set())
            n = NodeProcess(node_id, d, heap, lib, out, romfs)
            cfg = configs[node_id]
            if pubkey:
                cfg["ota"] = dict(cfg.get("ota") or {}, pubkeys=[pubkey])
            _write_config(d, bundle_dir, json.dumps(cfg, indent=1), ca_der, flash_size, romfs is not None)
            if flash_size is not None:
                sizes[node_id] = (d / "flash.img").stat().st_size
            nodes.append(n)
        view = LiveView(opts)
        display.note("%d node(s), state in %s, sensors: %s" % (
            len(nodes), state_dir, ", ".join(s["driver"] for s in sensors)))  # fmt: skip
        if flash_size is None:
            display.note("flash: the state directory itself (host mode)")
        else:
            display.note("flash: LittleFS, %d KiB per node (%s)" % (flash_size // 1024, flash_arg))
        if not args.duration:
            display.note("running until stopped (Ctrl-C; --duration 0 means no end)")
        for f in getattr(args, "fault", None) or ():
            display.note("fault: %s (in its config on every start)" % f)
        running[0] = True
        if stop.is_set():
            raise _Stopped()
        start = time.monotonic()
        for n in nodes:
            n.start()
        next_table = start + max(args.interval, 2.0)
        while not stop.is_set():
            now = time.monotonic()
            if args.duration and now - start >= args.duration:
                break
            for n in nodes:
                for event in n.check(args.interval, view.received(n.node_id)):
                    display.line(event)
            if nodes and all(n.given_up for n in nodes):
                break
            for line in view.events():
                display.line(line)
            if now >= next_table:
                display.table(view.table_lines, [view.flash_line(sizes)])
                next_table = now + (1.0 if display.tty else max(args.interval, 2.0))
            stop.wait(0.2)
    except _Stopped:
        pass
    finally:
        running[0] = True  # a second signal while cleaning up must not cut the clean-up short
        for n in nodes:
            n.stop()
        display.close()
        outboxes = {}  # node -> (seqs this run was to deliver, seqs still waiting), or None
        if view is not None:
            for n in nodes:
                start = at_start.get(n.node_id)
                end = _outbox_or_none(n.dir, (n.dir / "flash.img").exists(), lambda line: print(line, file=out, flush=True))
                if start is not None and end is not None:  # this run's seqs, and those it found waiting
                    outboxes[n.node_id] = (set(range(start[0] + 1, end[0] + 1)) | start[1], end[1])
                else:
                    outboxes[n.node_id] = None
            # What left an outbox was acknowledged by the broker: wait for the view to have it
            # (bounded: what a full outbox dropped never comes).
            gone = {k: v[0] - v[1] for k, v in outboxes.items() if v is not None}
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline and any(not gone[k] <= view.seqs(k) for k in gone):
                time.sleep(0.1)
            print(time.strftime("\n%H:%M:%S final"), file=out, flush=True)
            for line in view.table_lines():
                print(line, file=out, flush=True)
        if sizes:
            for n in nodes:
                try:
                    df = FlashImage(n.dir / "flash.img").df()
                    print("%s flash: %d of %d KiB used" % (n.node_id, df["used"] // 1024, df["size"] // 1024),
                          file=out, flush=True)  # fmt: skip
                except Exception as e:  # noqa: BLE001 - a report line, never a reason to fail the run
                    print("%s flash: %s" % (n.node_id, e), file=out, flush=True)
        if view is not None:
            for n in nodes:  # alive but silent (a heap too small for its drivers, say): say why
                if not n.given_up and not view.received(n.node_id):
                    where = "" if temp_state and not args.keep_state else " (%s)" % (n.dir / "node.log")
                    print("%s published no reading in this run; its last lines%s:" % (n.node_id, where), file=out,
                          flush=True)  # fmt: skip
                    for t in n.log_tail():
                        print("  | " + t, file=out, flush=True)
            summary = view.summary(set(node_ids), outboxes)
            view.close()
        if broker is not None:
            broker.close()
        signal.signal(signal.SIGINT, old[0])
        signal.signal(signal.SIGTERM, old[1])
        if temp_state and not args.keep_state:
            shutil.rmtree(temp_state, ignore_errors=True)
    print(summary_line(summary), file=out, flush=True)
    dead = [n.node_id for n in nodes if n.given_up]
    if dead:
        from streetnode.common.errors import Failure

        raise Failure("%s died at every start (see the lines above)" % ", ".join(dead))
    return summary


def summary_line(summary):
    """'received 40 readings from 2 node(s), 0 missing, 2 still queued in outboxes (42 committed)':
    missing and queued against what the nodes committed on their flash (LiveView.summary)."""
    line = "received %d readings from %d node(s), %d missing" % (
        sum(s["received"] for s in summary.values()), len(summary), sum(s["missing"] for s in summary.values()))
    known = [s for s in summary.values() if s["committed"] is not None]
    if known:
        line += ", %d still queued in outboxes (%d committed)" % (sum(s["queued"] for s in known),
                                                                  sum(s["committed"] for s in known))  # fmt: skip
    unknown = sorted(k for k, s in summary.items() if s["committed"] is None)
    if unknown:
        line += "; %s: flash not read, missing counts the holes between received seqs only" % ", ".join(unknown)
    return line


def _outbox_or_none(d, image, say):
    """node_outbox(), or None after saying why (a report, never a reason to fail the run)."""
    try:
        return node_outbox(d, image)
    except Exception as e:  # noqa: BLE001 - a damaged outbox is the node's to repair, not the sim's
        say("%s: its outbox could not be read (%s)" % (Path(d).name, e))
        return None


def _write_config(d, bundle_dir, text, ca_der, flash_size, romfs=False):
    """What `streetnode deploy` would copy, written as the sim starts: the loader and the
    firmware in slot a/ (once: a flash that has a slot keeps its firmware, updated over the
    air or not), the node's config (with the sim's --fault and --set in it, so they hold
    for every start of this run; a remote patch_config holds until the sim is started
    again) and its CA (install_slots)."""
    if flash_size is None:
        install_slots(d, bundle_dir, text, ca_der, romfs=romfs)
        return
    image = FlashImage(d / "flash.img")
    if not image.exists():
        image.format(flash_size)  # a blank board's flash, as the boot scripts format it
    install_slots(d, bundle_dir, text, ca_der, image=image, romfs=romfs)
