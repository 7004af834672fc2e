# Millisecond clock shared by drivers, firmware and the simulator.
#
# On a board these are time.ticks_ms/ticks_diff/ticks_add/sleep_ms. Tests and the
# simulator install a VirtualClock so that a simulated day passes in a second.
# Every function delegates to the installed source, because the tick period is
# the source's own (2**30 on ESP32/RP2040, 2**62 on the unix port).

import time

try:
    _ticks_ms = time.ticks_ms
    _ticks_diff = time.ticks_diff
    _ticks_add = time.ticks_add
    _sleep_ms = time.sleep_ms
    import sys

    if sys.platform in ("linux", "darwin"):
        # The unix port's sleep_ms sleeps in slices of about 0.6 ms (3,000 system calls
        # for 2 s, measured on 1.29); its time.sleep is one call (pselect6) but takes a
        # float (32 bytes of heap): for long sleeps only. Boards keep sleep_ms, which
        # lets the chip idle.
        _slices = time.sleep_ms

        def _sleep_ms(ms):
            if ms >= 50:
                time.sleep(ms / 1000)
            elif ms > 0:
                _slices(ms)

except AttributeError:  # CPython (Raspberry Pi gateway, host tools)
    _PERIOD = 1 << 30
    _HALF = _PERIOD >> 1

    def _ticks_ms():
        return int(time.monotonic() * 1000) & (_PERIOD - 1)

    def _ticks_diff(end, start):
        return ((end - start + _HALF) & (_PERIOD - 1)) - _HALF

    def _ticks_add(ticks, delta):
        return (ticks + delta) & (_PERIOD - 1)

    def _sleep_ms(ms):
        if ms > 0:
            time.sleep(ms / 1000)


class SystemClock:
    """The interpreter's own clock."""

    ticks_ms = staticmethod(_ticks_ms)
    ticks_diff = staticmethod(_ticks_diff)
    ticks_add = staticmethod(_ticks_add)
    sleep_ms = staticmethod(_sleep_ms)


class VirtualClock:
    """A clock that only moves when told: sleep_ms() returns at once.

    The tick counter wraps like a board's (period 2**30 by default); start it near
    the wrap to test code that compares ticks.
    """

    def __init__(self, start_ms=0, period=1 << 30):
        self.now_ms = start_ms  # monotonic, never wraps
        self._mask = period - 1
        self._half = period >> 1

    def ticks_ms(self):
        return self.now_ms & self._mask

    def ticks_diff(self, end, start):
        return ((end - start + self._half) & self._mask) - self._half

    def ticks_add(self, ticks, delta):
        return (ticks + delta) & self._mask

    def sleep_ms(self, ms):
        if ms > 0:
            self.now_ms += ms

    advance = sleep_ms


system = SystemClock()
_source = system


def install(source=None):
    """Make `source` the clock for everything that uses hal.clock; None restores the system clock."""
    global _source
    _source = system if source is None else source
    return _source


def current():
    return _source


def ticks_ms():
    return _source.ticks_ms()


def ticks_diff(end, start):
    return _source.ticks_diff(end, start)


def ticks_add(ticks, delta):
    return _source.ticks_add(ticks, delta)


def sleep_ms(ms):
    _source.sleep_ms(ms)
