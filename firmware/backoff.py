# One backoff policy for every retry a node makes: the WLAN (firmware/net.py), the broker
# (firmware/mqtt.py), NTP. Exponential envelope with full jitter (AWS's "Exponential
# Backoff And Jitter": the delay is uniform in [0, envelope)), so a city of nodes that lost
# the same access point or broker does not come back in the same instant. Pure: the random
# source is handed in, so tests give the same delays on MicroPython and CPython.
#
#   rand = Jitter(seed).random
#   delay_ms = backoff_ms(failures, rand(), 2000, 120000)  # 0..2 s, then 0..4 s, ... 0..120 s
#
# Each user keeps its own count of failures in a row (reset on success): a class for that
# cost 450 bytes of a board's heap (measured on the ROMFS image), more than the counter.

from hal import clock


def backoff_ms(attempt, u, base_ms=1000, cap_ms=60000):
    """Delay before retry number `attempt` (0 = first after a loss), with full jitter:
    u * min(cap_ms, base_ms * 2**attempt) for u in [0, 1). Integer milliseconds."""
    if attempt < 0:
        raise ValueError("attempt must be >= 0, got %r" % (attempt,))
    if not 0 <= u < 1:
        raise ValueError("u must be in [0, 1), got %r" % (u,))
    if base_ms <= 0 or cap_ms < base_ms:
        raise ValueError("need 0 < base_ms <= cap_ms, got %r and %r" % (base_ms, cap_ms))
    envelope = base_ms
    while attempt > 0 and envelope < cap_ms:  # doubling, not 2**attempt: no big ints on a board
        envelope <<= 1
        attempt -= 1
    if envelope > cap_ms:
        envelope = cap_ms
    return int(u * envelope)


class Jitter:
    """The random source for backoff: xorshift32, seedable, the same numbers on MicroPython
    and CPython. random() returns a float in [0, 1)."""

    def __init__(self, seed):
        # Scramble the seed first (murmur3's finaliser): xorshift's first outputs for nearby
        # seeds (node ids "sim-1", "sim-2", ...) are alike, and a city would retry in step.
        h = seed & 0xFFFFFFFF
        h ^= h >> 16
        h = (h * 0x85EBCA6B) & 0xFFFFFFFF
        h ^= h >> 13
        h = (h * 0xC2B2AE35) & 0xFFFFFFFF
        h ^= h >> 16
        self._x = h or 0x9E3779B9  # xorshift must not start at 0

    def random(self):
        x = self._x
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self._x = x
        return x / 4294967296


def entropy_seed(node_id):
    """A seed that differs between nodes and boots: os.urandom where there is one, mixed
    with the node id (two nodes booting in the same millisecond still spread out)."""
    seed = clock.ticks_ms()
    try:
        import os

        seed ^= int.from_bytes(os.urandom(4), "big")
    except (ImportError, AttributeError, OSError):  # no hardware RNG: ticks and id only
        pass
    for c in node_id.encode():
        seed = (seed * 31 + c) & 0xFFFFFFFF
    return seed
