"""Benchmark (issue 14): how long a node takes to check a release's signature. The node's
Ed25519 verifier (firmware/ota/ed25519.py, with the pure SHA-512 of firmware/ota/sha512.py
where hashlib has none) on a release manifest, inside MicroPython 1.29 (unix port) and on
CPython, next to `cryptography` (OpenSSL) on CPython for scale; and SHA-512's throughput.

    python -m streetnode.bench.ota_verify [--files 72] [--rounds 20] [--markdown] [--update docs/benchmarks.md]

The manifest is a real one's shape: --files entries like `streetnode release` writes
(57 for the esp32 target, 76 for unix at the time of writing). The ESP32 line is an estimate, not a measurement: see its note.
"""

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from streetnode.bench.harness import DEVICE, figure, render, version
from streetnode.common import mpy
from streetnode.common.paths import REPO

SCRIPT = DEVICE / "ota_verify_micropython.py"
# A 240 MHz ESP32 (Xtensa LX6) against the unix port on this kind of x86 core: MicroPython's
# bytecode runs roughly 10-20 times slower there, and its big integers use 16-bit digits on
# 32-bit ports (32-bit on the 64-bit unix port), so a 256-bit product costs up to 4 times the
# digit multiplications. Hence 20 to 50 times the unix port's time: an estimate to plan with.
ESP32_FACTOR = (20, 50)
HEAPS_K = (8, 12, 16, 24, 32, 48, 64, 96, 128)


def manifest(files):
    """Canonical manifest bytes with `files` entries, as `streetnode release` writes them."""
    from streetnode.ota.release import manifest_bytes

    entries = [{"path": "firmware/module_%03d.mpy" % i, "size": 1000 + 37 * i,
                "sha256": hashlib.sha256(b"%d" % i).hexdigest()} for i in range(files - 1)]  # fmt: skip
    entries.append({"path": "node_main.mpy", "size": 200, "sha256": hashlib.sha256(b"main").hexdigest()})
    return manifest_bytes({"format": 1, "version": "0.2.0", "target": "esp32", "loader": 1,
                           "made": "2026-12-02T04:00:00Z", "allow_downgrade": False,
                           "files": sorted(entries, key=lambda f: f["path"])})  # fmt: skip


def run(files=72, rounds=20):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    pub = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    data = manifest(files)
    sig = key.sign(data)
    rows = {}
    with tempfile.TemporaryDirectory(prefix="streetnode-bench-ota-") as d:
        path = Path(d) / "manifest.json"
        path.write_bytes(data)
        args = [pub.hex(), str(path), sig.hex(), str(rounds)]
        r = mpy.run([str(SCRIPT)] + args, path=[str(DEVICE)], capture=True, timeout=900)
        if r.returncode != 0:
            raise RuntimeError("the verifier benchmark failed on MicroPython: %s" % (r.stdout + r.stderr)[-2000:])
        rows["micropython"] = json.loads(r.stdout.strip().splitlines()[-1])
        rows["micropython"]["smallest_heap_k"] = None
        for k in HEAPS_K:  # the smallest heap the whole check runs in
            r = mpy.run([str(SCRIPT)] + args[:3] + ["0"], path=[str(DEVICE)], heapsize="%dk" % k, capture=True,
                        timeout=900)  # fmt: skip
            if r.returncode == 0:
                rows["micropython"]["smallest_heap_k"] = k
                break
        r = subprocess.run([sys.executable, str(SCRIPT)] + args, cwd=str(REPO), capture_output=True, text=True,
                           timeout=900, env=_cpython_env())  # fmt: skip
        if r.returncode != 0:
            raise RuntimeError("the verifier benchmark failed on CPython: %s" % (r.stdout + r.stderr)[-2000:])
        rows["cpython"] = json.loads(r.stdout.strip().splitlines()[-1])
    public = key.public_key()
    times = []
    for _ in range(max(rounds, 50)):
        t = time.perf_counter()
        public.verify(sig, data)
        times.append((time.perf_counter() - t) * 1e6)
    rows["openssl"] = {"verify_us": sorted(times)[len(times) // 2], "manifest_bytes": len(data)}
    return rows


def _cpython_env():
    import os

    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(DEVICE), str(REPO)]))


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m streetnode.bench.ota_verify", description=__doc__.split("\n\n")[0])
    p.add_argument("--files", type=int, default=72, help="files in the manifest (default 72, about a release's)")
    p.add_argument("--rounds", type=int, default=20, help="verifications timed per interpreter; the median shows")
    p.add_argument("--markdown", action="store_true", help="a Markdown table (for docs/benchmarks.md)")
    args = p.parse_args(argv)
    if args.files < 1 or args.rounds < 1:
        p.error("--files and --rounds must be at least 1")
    rows = run(args.files, args.rounds)
    mp, cp, ossl = rows["micropython"], rows["cpython"], rows["openssl"]
    ms = lambda us: figure(us / 1000.0)  # noqa: E731
    body = [
        ["MicroPython 1.29 (unix port)", "firmware/ota", ms(mp["verify_us"]), ms(mp["curve_us"]),
         figure(mp["sha512_us_per_kib"] / 1000.0), "%d" % mp["heap_bytes"],
         "%sk" % mp["smallest_heap_k"] if mp["smallest_heap_k"] else "> %dk" % HEAPS_K[-1]],
        ["CPython %d.%d" % sys.version_info[:2], "firmware/ota (hashlib's sha512)", ms(cp["verify_us"]),
         ms(cp["curve_us"]), figure(cp["sha512_us_per_kib"] / 1000.0), "-", "-"],
        ["CPython, cryptography %s" % (version("cryptography") or "?"), "OpenSSL", figure(ossl["verify_us"] / 1000.0),
         "-", "-", "-", "-"],
        ["ESP32 240 MHz (estimate, not measured)", "firmware/ota",
         "%s-%s" % (ms(mp["verify_us"] * ESP32_FACTOR[0]), ms(mp["verify_us"] * ESP32_FACTOR[1])),
         "%s-%s" % (ms(mp["curve_us"] * ESP32_FACTOR[0]), ms(mp["curve_us"] * ESP32_FACTOR[1])),
         "%s-%s" % (figure(mp["sha512_us_per_kib"] * ESP32_FACTOR[0] / 1000.0),
                    figure(mp["sha512_us_per_kib"] * ESP32_FACTOR[1] / 1000.0)), "-", "-"],
    ]  # fmt: skip
    notes = [
        "verify ms: one Ed25519 verification of a %d-byte manifest (%d files), median of %d; curve ms: the same "
        "with an empty message (the point arithmetic alone)" % (mp["manifest_bytes"], args.files, args.rounds),
        "SHA-512 ms/KiB: the pure firmware/ota/sha512.py on MicroPython (its hashlib has no sha512), hashlib on CPython",
        "curve heap B: bytes the curve part of one verification allocates on MicroPython (gc.mem_alloc with the "
        "collector off): short-lived big integers, collected as it goes; runs in heap: the smallest -X heapsize "
        "of %s KiB in which the whole check (SHA-512 of the manifest included) completes; the 64-bit unix port's "
        "objects are about twice a 32-bit board's" % "/".join("%d" % k for k in HEAPS_K),
        "ESP32: %d to %d times the unix port's time (bytecode 10-20x slower at 240 MHz, 16-bit big-integer digits "
        "on 32-bit ports): an estimate to plan with, not a measurement" % ESP32_FACTOR,
    ]
    print(render("Release signature check on the node (Ed25519, RFC 8032)",
                 ["interpreter", "code", "verify ms", "curve ms", "SHA-512 ms/KiB", "curve heap B", "runs in heap"], body, notes, [],
                 args.markdown))  # fmt: skip
    return 0


if __name__ == "__main__":
    from streetnode.bench import docs

    sys.exit(docs.run("python -m streetnode.bench.ota_verify", main))
