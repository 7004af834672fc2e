# The node's link layer and wall clock: WLAN on ESP32 / Pico W with timeouts and
# backoff; nothing to do on the unix port or a Raspberry Pi (the OS runs the network
# and keeps the time). Time from NTP where the network allows; until then readings
# carry ts null and the payload says the clock is not synced.

import time

from hal import clock

try:
    import network
except ImportError:  # unix port, CPython
    network = None

# Boards before MicroPython 1.22 count from 2000-01-01; the contract's ts is Unix time.
_EPOCH_OFFSET = 0 if time.gmtime(0)[0] == 1970 else 946684800
_EARLIEST_PLAUSIBLE = 1735689600  # 2025-01-01: an RTC before this has not been set

_CONNECT_TIMEOUT_MS = 15000
_BACKOFF_MIN_MS = 2000
_BACKOFF_MAX_MS = 300000
_CONNECTING_POLL_MS = 100  # how often a connection attempt in progress is looked at


class Net:
    def __init__(self, wifi=None, ntp_host=None):
        self.wifi = wifi
        self.ntp_host = ntp_host
        self.wlan = None
        self._connecting_since = None
        self._backoff_ms = _BACKOFF_MIN_MS
        self._retry_at = clock.ticks_ms()
        self.connects = 0
        self._synced = network is None  # the OS keeps time where there is no radio module
        if network is not None and wifi:
            self.wlan = network.WLAN(network.STA_IF)
            self.wlan.active(True)

    def up(self):
        return self.wlan is None or self.wlan.isconnected()

    def ensure(self):
        """Drive the WLAN towards connected without blocking; True when the link is up."""
        if self.wlan is None:
            return True
        if self.wlan.isconnected():
            if self._connecting_since is not None:
                self._connecting_since = None
                self._backoff_ms = _BACKOFF_MIN_MS
                self.connects += 1
                self.sync_time()
            return True
        now = clock.ticks_ms()
        if self._connecting_since is not None:
            if clock.ticks_diff(now, self._connecting_since) < _CONNECT_TIMEOUT_MS:
                return False
            self.wlan.disconnect()  # give up this attempt, wait, try again
            self._connecting_since = None
            self._retry_at = clock.ticks_add(now, self._backoff_ms)
            self._backoff_ms = min(self._backoff_ms * 2, _BACKOFF_MAX_MS)
            return False
        if clock.ticks_diff(now, self._retry_at) >= 0:
            self.wlan.connect(self.wifi["ssid"], self.wifi.get("password") or "")
            self._connecting_since = now
        return False

    def next_due_ms(self):
        """Milliseconds until ensure() has something to do (None: nothing, the link is up or
        there is no radio): a connection attempt in progress is looked at every
        _CONNECTING_POLL_MS, a retry when its backoff ends."""
        if self.wlan is None or self.wlan.isconnected():
            return None
        if self._connecting_since is not None:
            return _CONNECTING_POLL_MS
        d = clock.ticks_diff(self._retry_at, clock.ticks_ms())
        return d if d > 0 else 0

    def rssi(self):
        if self.wlan is None or not self.wlan.isconnected():
            return None
        try:
            return self.wlan.status("rssi")
        except (ValueError, OSError, TypeError):
            return None

    def sync_time(self):
        if self.wlan is None or not self.ntp_host:  # "" in the config: no NTP wanted
            return self._synced
        try:
            import ntptime

            if self.ntp_host:
                ntptime.host = self.ntp_host
            ntptime.settime()
            self._synced = True
        except (OSError, ImportError, OverflowError):
            pass
        return self._synced

    def synced(self):
        return self._synced and time.time() + _EPOCH_OFFSET >= _EARLIEST_PLAUSIBLE

    def unix_time(self):
        """Seconds since 1970 (int), or None while the clock is not synced."""
        if not self.synced():
            return None
        return int(time.time()) + _EPOCH_OFFSET
