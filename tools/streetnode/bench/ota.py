"""Benchmark (issue 14): an update over the air, end to end. A signed release pushed to one
sim node (the real firmware on the real MicroPython unix port, booting through the board's
loader from its slots on a simulated 2 MiB LittleFS flash) with `streetnode ota push`'s
rollout, against a real broker on loopback started for the run:

- the time from the push's start (the release checked on the host) to the node confirming
  the new version, split by the node's retained ota/status: transfer (offer to every file
  written and read back from flash; the manifest's signature is checked on the node in
  it), the final check (every file hashed once more, the switch of the slot pointer) and
  switch + trial (reboot into the new slot, connect, `confirm_cycles` published cycles);
- the node's heap during the transfer, from the collector (gc.mem_alloc, gc.mem_free)
  sampled after every loop pass by a second node booted through
  bench/device/ota_node_micropython.py (the normal node has no such hook), in the heap it
  is given (--heap, the sim's 512k by default);
- every reading taken meanwhile arrives (seq continuous).

    python -m streetnode.bench.ota [--interval 1] [--heap 512k] [--markdown] [--update docs/benchmarks.md]
    python -m streetnode.bench.ota --smallest [--markdown]   # the smallest heap that takes the update

The node pushed to is a unix-sim node, so the release pushed is `streetnode release
--target unix`: the esp32 release's files byte for byte (bytecode .mpy is the same for
every -march) plus the simulator the sim node runs on. The esp32 release is built in the
same run and its own transfer is given as an estimate from the measured one.
"""

import argparse
import io
import json
import math
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

from streetnode.bench import harness
from streetnode.bench.harness import DEVICE, render
from streetnode.common import deps, mqtt
from streetnode.common.broker import Broker
from streetnode.common.build import compile_tree

SCRIPT = DEVICE / "ota_node_micropython.py"
HEAP = "512k"
FLASH = 2 * 1024 * 1024  # the ESP32-DevKitC's VFS partition, as `streetnode sim`
CONFIRM_CYCLES = 3  # the config's default (firmware/config/schema.py)


def bumped(version):
    """A version after `version` ("0.1.0" -> "0.1.1"), as a release to install must be."""
    parts = version.split(".")
    parts[-1] = str(int(parts[-1]) + 1)
    return ".".join(parts)


class _Watch:
    """One node's ota/status, status and data seqs on the broker, with arrival times."""

    def __init__(self, opts, node):
        self.lock = threading.Lock()
        self.node = node
        self.states = []  # (perf_counter, ota/status doc)
        self.status = {}
        self.seqs = set()
        self.client = mqtt.connect(opts, None, on_message=self._on,
                                   subscribe=["streetnode/%s/#" % node])  # fmt: skip

    def _on(self, c, u, msg):
        t = time.perf_counter()
        try:
            doc = json.loads(msg.payload)
        except ValueError:
            return
        sub = msg.topic.split("/", 2)[2]
        with self.lock:
            if sub == "ota/status":
                self.states.append((t, doc))
            elif sub == "status":
                self.status = doc
            elif sub == "data":
                self.seqs.add(doc["seq"])

    def wait(self, cond, timeout, what):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                if cond(self):
                    return
            time.sleep(0.02)
        raise RuntimeError("%s: timed out after %d s waiting for %s (last ota/status: %s)" % (
            self.node, timeout, what, self.states[-1][1] if self.states else None))  # fmt: skip

    def first(self, after, pred):
        """Arrival time of the first ota/status after `after` that pred() holds for, or None."""
        with self.lock:
            for t, st in self.states:
                if t >= after and pred(st):
                    return t
        return None

    def missing(self):
        with self.lock:
            s = self.seqs
            return len(set(range(min(s), max(s) + 1)) - s) if s else None

    def close(self):
        mqtt.close(self.client)


class _Node:
    """A sim node on its flash image, restarted when it exits (a board's reboot)."""

    def __init__(self, work, name, bundle, pub, opts, interval_s, heap, lib, entry):
        from streetnode.sim import fleet
        from streetnode.sim.flashimg import FlashImage

        d = Path(work) / name
        d.mkdir()
        cfg = fleet.node_config(name, opts, interval_s, list(fleet.DEFAULT_SENSORS), seed=1)
        cfg["ota"] = {"pubkeys": [fleet.ota_pubkey(pub)], "confirm_cycles": CONFIRM_CYCLES}
        image = FlashImage(d / "flash.img")
        image.format(FLASH)
        fleet.install_slots(d, bundle, json.dumps(cfg), image=image)
        self.interval_s = interval_s
        self.proc = fleet.NodeProcess(name, d, heap, lib, None, entry=entry)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._supervise, daemon=True)

    def _supervise(self):
        while not self._stop.is_set():
            self.proc.check(self.interval_s, received=time.monotonic())  # never given up
            time.sleep(0.02)

    def start(self):
        self.proc.start()
        self._thread.start()

    def stop(self):
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(5)
        self.proc.stop()

    def log(self):
        return (self.proc.dir / "node.log").read_text(errors="replace")


def _push(opts, release_dir, pub, watch, timeout):
    """Push the release to the watched node as `streetnode ota push` does; the phases' times."""
    from streetnode.ota import push

    t0 = time.perf_counter()
    rel = push.Release(release_dir, pubkeys=[pub])  # the host's check, as the command does first
    checked = time.perf_counter()
    out = io.StringIO()
    result = push.rollout(opts, rel, [watch.node], canary=0, batch=1, max_failures=1, timeout=timeout, out=out,
                          as_json=True)  # fmt: skip
    done = time.perf_counter()
    if not result["ok"]:
        raise RuntimeError("the push did not confirm: %s" % (result["nodes"][watch.node]["reason"],))
    mine = lambda st: st.get("release") == rel.id  # noqa: E731
    receiving = watch.first(checked, lambda st: mine(st) and st.get("state") == "receiving")
    received = watch.first(checked, lambda st: mine(st) and st.get("state") == "verifying" and st.get("progress") == 100)
    trial = watch.first(checked, lambda st: st.get("state") == "trial" and st.get("version") == rel.version)
    confirmed = watch.first(checked, lambda st: st.get("state") == "confirmed" and st.get("fw") == rel.version)
    ignored = max([st.get("ignored", 0) for _, st in watch.states] or [0])
    return {"version": rel.version, "files": len(rel.files), "bytes": sum(len(f) for f in rel.files),
            "manifest_bytes": len(rel.manifest_bytes), "check_s": checked - t0, "total_s": done - t0,
            "offer_s": receiving - checked if receiving else None,
            "transfer_s": received - receiving if received and receiving else None,
            "final_check_s": trial - received if trial and received else None,
            "trial_s": confirmed - trial if confirmed and trial else None,
            "to_confirmed_s": confirmed - t0 if confirmed else None, "ignored": ignored}  # fmt: skip


def chunks(sizes, chunk):
    """Chunks (one round trip each) a transfer of files of `sizes` takes."""
    return sum(max(1, math.ceil(s / chunk)) for s in sizes if s)


def heap_records(log):
    """The sampler's figures per run of an OTA state (the last `bench-heap {json}` line of
    each run of lines with the same state and running version), in order."""
    out = []
    for line in log.splitlines():
        if not line.startswith("bench-heap {"):
            continue
        rec = json.loads(line[len("bench-heap ") :])
        if out and (out[-1]["state"], out[-1]["fw"]) == (rec["state"], rec["fw"]) and rec["passes"] >= out[-1]["passes"]:
            out[-1] = rec
        else:
            out.append(rec)
    return out


def _node_run(work, name, broker, bundle, rel_dir, pub, interval_s, heap, lib, entry, timeout, online_s=120):
    """One fresh node on `broker`, the release pushed to it; (figures, the node's log).
    RuntimeError when it does not come online, the push fails or a reading is lost."""
    opts = mqtt.BrokerOptions(broker.host, broker.port)
    node = _Node(work, name, bundle, pub, opts, interval_s, heap, lib, entry)
    watch = _Watch(opts, name)
    try:
        node.start()
        watch.wait(lambda w: w.status.get("state") == "online" and w.states and w.seqs, online_s,
                   "the node online with its ota/status and a first reading")  # fmt: skip
        figures = _push(opts, rel_dir, pub, watch, timeout)
        seq_at_confirm = max(watch.seqs)
        # readings after the confirmation: every one taken meanwhile must have arrived
        watch.wait(lambda w: max(w.seqs) > seq_at_confirm + 1, 60, "readings after the confirmation")
        if entry[0] != "-m":  # the sampler's line for the confirmed state (it writes one after 3 passes)
            end = time.monotonic() + 60
            while time.monotonic() < end and not [r for r in heap_records(node.log())
                                                  if r["state"] == "confirmed" and r["passes"] >= 3]:  # fmt: skip
                time.sleep(0.2)
        figures["missing_readings"] = watch.missing()
        figures["readings"] = len(watch.seqs)
    finally:
        watch.close()
        node.stop()
    return figures, node.log()


def _setup(work):
    """The compiled tree, a fleet key, the running bundle and a signed unix release of the next
    version in `work`: (lib, running version, bundle dir, release dir, fleet.pub, manifest)."""
    from streetnode.ota import keys
    from streetnode.ota import release as relmod
    from streetnode.technician import bundle as bundlemod

    lib = compile_tree(lib=deps.device_lib())
    key, pub, _ = keys.new(Path(work) / "keys")
    running = bundlemod.firmware_version()
    bundle, _ = bundlemod.make("unix", out=Path(work) / "bundle-unix")
    rel_dir, manifest = relmod.make("unix", key, Path(work) / "release-unix", bumped(running))
    return lib, running, bundle, rel_dir, pub, manifest


def smallest(interval_s=1.0, step_k=16, lo_k=128, hi_k=512, timeout=180.0):
    """The smallest heap, in steps of `step_k` KiB, in which a fresh node boots, takes the
    release and confirms it with every reading arriving: a bisection between lo_k (taken to
    fail) and hi_k KiB, each probe a whole push. None when even hi_k fails."""
    work = Path(tempfile.mkdtemp(prefix="bench-ota-min-"))
    probes = []
    try:
        lib, running, bundle, rel_dir, pub, _ = _setup(work)
        with Broker() as broker:

            def ok(k):
                try:
                    _node_run(work, "bench-ota-%dk" % k, broker, bundle, rel_dir, pub, interval_s, "%dk" % k, lib,
                              ("-m", "firmware.main_unix"), timeout, online_s=60)  # fmt: skip
                    probes.append((k, True, None))
                    return True
                except RuntimeError as e:
                    probes.append((k, False, str(e)[:200]))
                    return False

            out = {"step_k": step_k, "broker": broker.kind, "interval_s": interval_s}
            if not ok(hi_k):
                out["runs_in_k"] = None
            else:
                out["runs_in_k"], out["fails_at_k"] = harness.smallest(ok, lo_k, hi_k, step_k)
            out["probes"] = probes
            return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(interval_s=1.0, heap=HEAP, timeout=600.0, nodelay=True):
    """The figures of one run; nodelay: also the push through a mosquitto with TCP_NODELAY."""
    from streetnode.common.broker import find_mosquitto, free_port
    from streetnode.ota import keys, push
    from streetnode.ota import release as relmod

    work = Path(tempfile.mkdtemp(prefix="bench-ota-"))
    try:
        lib, running, bundle, rel_dir, pub, manifest = _setup(work)
        esp_dir, esp = relmod.make("esp32", work / "keys" / keys.KEY_FILE, work / "release-esp32", bumped(running))
        unix_files = {f["path"]: f["sha256"] for f in manifest["files"]}
        same = [f for f in esp["files"] if unix_files.get(f["path"]) == f["sha256"]]
        sizes = [f["size"] for f in manifest["files"]]
        res = {"heap": heap, "interval_s": interval_s, "from": running, "confirm_cycles": CONFIRM_CYCLES,
               "chunk": push.CHUNK, "flash_kib": FLASH // 1024,
               "esp32": {"files": len(esp["files"]), "bytes": sum(f["size"] for f in esp["files"]),
                         "same_as_unix": len(same),
                         "chunks": chunks([f["size"] for f in esp["files"]], push.CHUNK)}}  # fmt: skip
        args = (bundle, rel_dir, pub, interval_s, heap, lib)
        with Broker() as broker:
            res["broker"] = broker.kind
            res["push"], _ = _node_run(work, "bench-ota", broker, *args, ("-m", "firmware.main_unix"), timeout)
            res["push"]["chunks"] = chunks(sizes, push.CHUNK) + chunks([res["push"]["manifest_bytes"]], push.CHUNK)
            res["heap_push"], log = _node_run(work, "bench-ota-heap", broker, *args, (str(SCRIPT),), timeout)
            res["heap_by_state"] = heap_records(log)
        if nodelay and broker.kind == "mosquitto" and find_mosquitto():
            # The same push through a mosquitto that sends without waiting (TCP_NODELAY on its
            # sockets; its default is off): each chunk is one round trip of small packets.
            port = free_port()
            conf = "listener %d 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n" % port
            with Broker("mosquitto", port=port, conf=conf) as fast:
                res["push_nodelay"], _ = _node_run(work, "bench-ota-nodelay", fast, *args,
                                                   ("-m", "firmware.main_unix"), timeout)  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return res


def _s(v):
    return "%.1f s" % v if v is not None else "not seen"


def _kib(v):
    return "%.1f KiB" % (v / 1024.0)


def tables(res, markdown=False):
    """The run's figures as two tables (harness.render)."""
    p = res["push"]
    esp = res["esp32"]
    transfer = p["transfer_s"]
    fast = res.get("push_nodelay")
    rows = [
        ["the push, from its start to the node's confirmation", _s(p["to_confirmed_s"])],
        ["1. the release checked on the host (signature, every file)", "%.0f ms" % (p["check_s"] * 1000)],
        ["2. the rollout connected, the offer answered (it waits 0.5 s for retained states)", _s(p["offer_s"])],
        ["3. transfer: every file sent, written and read back (%d files, %s, %d chunks)"
         % (p["files"], _kib(p["bytes"]), p["chunks"]), _s(transfer)],
        ["4. final check of every file and the switch", _s(p["final_check_s"])],
        ["5. reboot into the new slot, trial until confirmed (%d cycles at %g s)"
         % (res["confirm_cycles"], res["interval_s"]), _s(p["trial_s"])],
        ["transfer rate", "%.1f KiB/s" % (p["bytes"] / 1024.0 / transfer) if transfer else "-"],
        ["the esp32 release (%d files, %s, %d chunks): transfer, estimate from the chunks"
         % (esp["files"], _kib(esp["bytes"]), esp["chunks"]),
         "%.1f s (estimate)" % (transfer * esp["chunks"] / p["chunks"]) if transfer else "-"],
    ]  # fmt: skip
    if fast:
        rows.append(["the same push through a mosquitto with `set_tcp_nodelay true`: transfer / all",
                     "%s / %s" % (_s(fast["transfer_s"]), _s(fast["to_confirmed_s"]))])  # fmt: skip
    rows.append(["readings lost during the push (seq gaps)", "%s of %s" % (p["missing_readings"], p["readings"])])
    notes = [
        "one sim node (unix-sim: the real firmware as .mpy on MicroPython's unix port, heap %s, its %d KiB LittleFS "
        "flash simulated), sampling every %g s, %s on loopback; release %s -> %s pushed with `streetnode ota push`'s "
        "rollout (one chunk of %d bytes in flight)" % (res["heap"], res["flash_kib"], res["interval_s"], res["broker"],
                                                       res["from"], p["version"], res["chunk"]),
        "the phases from the node's retained ota/status as the host receives it: receiving, verifying (progress 100), "
        "trial, confirmed; the manifest's Ed25519 check on the node is in the transfer (its own figure: "
        "python -m streetnode.bench.ota_verify)",
        "the release pushed is the unix one (a sim node takes no other target): the esp32 release's %d files, %d of "
        "them byte-identical here (bytecode .mpy is the same for every -march; board.json and the bundle's "
        "manifest.json differ), plus the simulator's; the esp32 line scales the measured transfer by its chunks"
        % (esp["files"], esp["same_as_unix"]),
    ]  # fmt: skip
    if fast:
        notes.append("one chunk is in flight at a time, so the transfer is round trips of small packets; mosquitto "
                     "sends with Nagle's algorithm on by default (set_tcp_nodelay false), which holds a packet back "
                     "behind the host's delayed ACK: the nodelay line is the same push, fresh node, in the same run")
    first = render("An update over the air to one node", ["what", "figure"], rows, notes, [], markdown,
                   left=lambda i, n: i < 1)  # fmt: skip
    hrows = []
    for r in res["heap_by_state"]:
        hrows.append([r["state"] or "-", r["fw"] or "-", "%d" % r["passes"], _kib(r["peak"]), _kib(r["live"]),
                      _kib(r["free"]) if r["free"] is not None else "-", _kib(r["heap"])])  # fmt: skip
    hnotes = [
        "a second node, the same push (%s in all), booted through tools/streetnode/bench/device/ota_node_micropython.py: "
        "after every loop pass gc.mem_alloc() (peak: what the pass left, its garbage included, the previous pass "
        "having ended with gc.collect()), then gc.collect() and gc.mem_alloc()/gc.mem_free() (live, least free)"
        % _s(res["heap_push"]["to_confirmed_s"]),
        "one row per ota/status state the node passed through, in order, with the version running (the trial's "
        "second row is the new version after its reboot); the 64-bit unix port's objects are about twice a 32-bit board's",
    ]  # fmt: skip
    second = render("The node's heap during the update (-X heapsize %s)" % res["heap"],
                    ["OTA state", "running", "loop passes", "peak in a pass", "live", "least free", "heap"], hrows, hnotes, [],
                    markdown, left=lambda i, n: i < 1)  # fmt: skip
    return first + "\n\n" + second


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m streetnode.bench.ota", description=__doc__.split("\n\n")[0])
    p.add_argument("--interval", type=float, default=1.0, help="the node's sampling interval in s (default 1)")
    p.add_argument("--heap", default=HEAP, help="MicroPython heap of the node (default %s, as the sim)" % HEAP)
    p.add_argument("--timeout", type=float, default=600.0, help="seconds a push may take before it fails (600)")
    p.add_argument("--markdown", action="store_true", help="the tables as Markdown (for docs/benchmarks.md)")
    p.add_argument("--json", action="store_true", help="the raw figures as JSON")
    p.add_argument("--smallest", action="store_true",
                   help="instead: bisect the smallest heap (16 KiB steps, 128k to 512k) a node takes the update in")
    args = p.parse_args(argv)
    if args.interval <= 0 or args.timeout <= 0:
        p.error("--interval and --timeout must be positive")
    if args.smallest:
        m = smallest(args.interval, timeout=min(args.timeout, 180.0))
        if args.json:
            print(json.dumps(m, indent=1, sort_keys=True))
            return 0
        row = ["%d KiB" % m["runs_in_k"], "%d KiB" % m["fails_at_k"]] if m["runs_in_k"] else ["more than 512 KiB", "-"]
        tried = ", ".join("%dk %s" % (k, "ran" if good else "failed") for k, good, _ in m["probes"])
        notes = ["a fresh sim node per probe, booted in that -X heapsize, the unix release pushed to it as in the table "
                 "above: it runs when the node confirms the new version and every reading arrives; bisection in %d KiB "
                 "steps (probes: %s); the 64-bit unix port, whose objects are about twice a 32-bit board's"
                 % (m["step_k"], tried)]  # fmt: skip
        failed = [(k, why) for k, good, why in m["probes"] if not good]
        if failed:
            k, why = max(failed)
            notes.append("at %dk: %s" % (k, why))
        print(render("The smallest heap a node takes an update in", ["takes the update in", "does not"], [row], notes,
                     [], args.markdown, left=lambda i, n: False))  # fmt: skip
        return 0 if m["runs_in_k"] else 1
    try:
        res = run(args.interval, args.heap, args.timeout)
    except RuntimeError as e:
        print("bench ota: %s" % e, file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(res, indent=1, sort_keys=True))
    else:
        print(tables(res, args.markdown))
    return 0


if __name__ == "__main__":
    from streetnode.bench import docs

    sys.exit(docs.run("python -m streetnode.bench.ota", main))
