# Helpers for device tests: plain functions that run unchanged on CPython (under pytest)
# and inside the real MicroPython interpreter (under host_tests/mprun.py), where pytest
# and its fixtures do not exist.

from hal import clock


def raises(errno_or_type, fn, *args, **kwargs):
    """Call fn and return the exception it raised; fail unless it raised `errno_or_type`
    (an exception class, or an int errno for OSError)."""
    try:
        fn(*args, **kwargs)
    except Exception as e:  # noqa: BLE001 - checked below
        if isinstance(errno_or_type, int):
            assert isinstance(e, OSError), "expected OSError(%d), got %r" % (errno_or_type, e)
            assert e.args[0] == errno_or_type, "expected errno %d, got %r" % (errno_or_type, e)
        else:
            assert isinstance(e, errno_or_type), "expected %r, got %r" % (errno_or_type, e)
        return e
    raise AssertionError("%r did not raise %r" % (fn, errno_or_type))


def message(exc):
    """The text of an exception, as str() gives it on both interpreters."""
    return " ".join(str(a) for a in exc.args)


def close(a, b, tol):
    return a is not None and b is not None and abs(a - b) <= tol


def virtual_clock(start_ms=0):
    """Install and return a fresh VirtualClock (tests restore nothing: each installs its own)."""
    return clock.install(clock.VirtualClock(start_ms))


def heap_allocated(fn, repeat=1):
    """Heap bytes allocated by calling fn() `repeat` times, with the collector off
    (MicroPython's gc.mem_alloc); None where the interpreter cannot say (CPython)."""
    import gc

    if not hasattr(gc, "mem_alloc"):
        return None
    gc.collect()
    gc.disable()
    try:
        before = gc.mem_alloc()
        for _ in range(repeat):
            fn()
        return gc.mem_alloc() - before
    finally:
        gc.enable()


class Rng:
    """A seeded xorshift32 generator: MicroPython's random has no Random class, and
    tests must draw the same numbers on both interpreters."""

    def __init__(self, seed):
        self.state = (seed * 2654435761 & 0xFFFFFFFF) or 1

    def getrandbits(self, k):
        out = 0
        got = 0
        while got < k:
            x = self.state
            x ^= (x << 13) & 0xFFFFFFFF
            x ^= x >> 17
            x ^= (x << 5) & 0xFFFFFFFF
            self.state = x
            out = (out << 32) | x
            got += 32
        return out >> (got - k)

    def randint(self, a, b):
        return a + self.getrandbits(32) % (b - a + 1)

    def choice(self, seq):
        return seq[self.randint(0, len(seq) - 1)]

    def random(self):
        return self.getrandbits(32) / 4294967296.0
