# What both device-side benchmark scripts measure with, on MicroPython and CPython alike:
# microseconds, heap bytes per call, and the interpreter's name.

import gc
import sys
import time


def ticks_us():
    if hasattr(time, "ticks_us"):
        return time.ticks_us()
    return time.perf_counter_ns() // 1000


def us_since(start):
    if hasattr(time, "ticks_diff"):
        return time.ticks_diff(time.ticks_us(), start)
    return time.perf_counter_ns() // 1000 - start


def heap_bytes(fn, n):
    """Heap bytes per call of fn. MicroPython: allocated with the collector off
    (gc.mem_alloc over n calls). CPython: the largest tracemalloc peak above the
    baseline during one call (CPython frees at once; there is no allocation counter)."""
    if hasattr(gc, "mem_alloc"):
        gc.collect()
        gc.disable()
        try:
            before = gc.mem_alloc()
            for _ in range(n):
                fn()
            used = gc.mem_alloc() - before
        finally:
            gc.enable()
        return used / n
    import tracemalloc

    tracemalloc.start()
    try:
        worst = 0
        for _ in range(n):
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            fn()
            worst = max(worst, tracemalloc.get_traced_memory()[1] - base)
    finally:
        tracemalloc.stop()
    return worst


def interpreter():
    impl = sys.implementation
    name = "MicroPython" if impl.name == "micropython" else "CPython" if impl.name == "cpython" else impl.name
    return "%s %s" % (name, ".".join(str(x) for x in impl.version[:2]))
