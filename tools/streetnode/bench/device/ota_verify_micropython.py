# Device half of `python -m streetnode.bench.ota_verify`: Ed25519 verification of a release
# manifest (firmware/ota/ed25519.py) and SHA-512 (firmware/ota/sha512.py), inside
# MicroPython or on CPython. Prints one JSON line.
#   micropython ota_verify_micropython.py KEY_HEX MANIFEST_FILE SIG_HEX ROUNDS
# ROUNDS 0: one verification only (the host runs it in ever smaller heaps).

import binascii
import gc
import json
import sys

from firmware.ota import ed25519, sha512
from measure import ticks_us, us_since


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


def timed(fn, rounds):
    out = []
    for _ in range(rounds):
        t = ticks_us()
        fn()
        out.append(us_since(t))
    return median(out)


def main(key_hex, path, sig_hex, rounds):
    key = binascii.unhexlify(key_hex)
    sig = binascii.unhexlify(sig_hex)
    with open(path, "rb") as f:
        manifest = f.read()
    assert ed25519.verify(key, manifest, sig), "the benchmark's signature does not verify"
    if rounds == 0:
        print(json.dumps({"ok": True}))
        return
    ed25519.verify(key, b"", sig)  # the base point's table, made once per boot
    verify_us = timed(lambda: ed25519.verify(key, manifest, sig), rounds)
    curve_us = timed(lambda: ed25519.verify(key, b"", sig), rounds)  # hashing 64 bytes only
    block = bytes(range(256)) * 32  # 8 KiB
    sha_us = timed(lambda: sha512.SHA512(block).digest(), max(1, rounds // 2))
    heap = None
    if hasattr(gc, "mem_alloc"):
        gc.collect()
        gc.disable()
        try:
            before = gc.mem_alloc()
            ed25519.verify(key, b"", sig)  # the curve part; hashing allocates per 128-byte block
            heap = gc.mem_alloc() - before
        finally:
            gc.enable()
    print(json.dumps({
        "interpreter": sys.implementation.name,
        "manifest_bytes": len(manifest),
        "verify_us": verify_us,
        "curve_us": curve_us,
        "sha512_us_per_kib": sha_us / 8.0,
        "heap_bytes": heap,
    }))  # fmt: skip


main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
