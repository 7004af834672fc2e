# The node's link layer and wall clock: WLAN on ESP32 / Pico W with timeouts and
# backoff; nothing to do on the unix port or a Raspberry Pi (the OS runs the network
# and keeps the time). Time from NTP where the network allows; until then readings
# carry ts null and the payload says the clock is not synced.
#
# The radio is `network.WLAN(network.STA_IF)` on a board; the simulator hands in its own
# `network` and `ntptime` stand-ins (hal/sim/wlan.py), so this very code runs in the sim
# and the tests. Retries (association, NTP) follow the one backoff policy with full
# jitter (firmware/backoff.py), like the broker's.
#
#   net = Net({"ssid": "city-iot", "password": "..."}, "pool.ntp.org", seed=entropy_seed(node_id))
#   if net.ensure():   # never blocks (but for one NTP request of at most _NTP_TIMEOUT_S)
#       ...            # the radio is up: talk to the broker
#   net.next_due_ms()  # when ensure() has something to do again

import time

from firmware.backoff import Jitter, backoff_ms
from hal import clock

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


try:
    import network as _network
except ImportError:  # unix port, CPython
    _network = None

# Boards before MicroPython 1.22 count from 2000-01-01; the contract's ts is Unix time.
_EPOCH_OFFSET = 0 if time.gmtime(0)[0] == 1970 else 946684800
_EARLIEST_PLAUSIBLE = 1735689600  # 2025-01-01: an RTC before this has not been set

_CONNECT_TIMEOUT_MS = const(20000)  # an association (and DHCP) that takes longer is given up (wifi.timeout_s)
_BACKOFF_BASE_MS = const(2000)  # WLAN retries: 0..2 s after a loss, doubling to 0..120 s
_BACKOFF_CAP_MS = const(120000)
_CONNECTING_POLL_MS = const(100)  # how often a connection attempt in progress is looked at
# One NTP request blocks the loop at most this long (ntptime's socket timeout on a board;
# its default is 1 s). A board's RTC drifts a few seconds a day: resync hourly, and after
# every reconnect; a server that does not answer is asked again with the backoff.
_NTP_TIMEOUT_S = const(1)
_NTP_RESYNC_MS = const(3600000)
_NTP_RETRY_BASE_MS = const(10000)
_NTP_RETRY_CAP_MS = const(600000)

# The radio's answers that end an attempt before its timeout (ESP32 and Pico W names).
_FAILED_NAMES = (
    "STAT_NO_AP_FOUND", "STAT_WRONG_PASSWORD", "STAT_CONNECT_FAIL", "STAT_ASSOC_FAIL",
    "STAT_HANDSHAKE_TIMEOUT", "STAT_BEACON_TIMEOUT",
)  # fmt: skip

# Net.state() values, reported in health as wlan.state.
UP = "up"
CONNECTING = "connecting"
DOWN = "down"  # not associated, waiting for the next attempt


class Net:
    """The WLAN station and the clock.

    connects   successful associations (the first one included)
    drops      times the WLAN fell after it was up
    ntp_syncs  NTP answers taken
    last_status the radio's status() when the last attempt failed, or None
    """

    def __init__(self, wifi=None, ntp_host=None, network=None, ntptime=None, seed=None):
        self.wifi = wifi
        self.ntp_host = ntp_host
        self.wlan = None
        self._ntptime = ntptime
        net = network if network is not None else _network
        self._rand = None  # made only for a radio: heap is short on a board
        self.failures = 0  # WLAN attempts failed in a row: the backoff's exponent
        self._ntp_failures = 0
        self._retry_delay = None
        self._timeout_ms = int(((wifi or {}).get("timeout_s") or _CONNECT_TIMEOUT_MS / 1000) * 1000)
        self._connecting_since = None
        self._up = False
        now = clock.ticks_ms()
        self._retry_at = now
        self._down_since = now
        self._down_ms = 0
        self._ntp_due = None  # ticks of the next NTP request while up; None: none planned
        self.connects = 0
        self.drops = 0
        self.ntp_syncs = 0
        self.last_status = None
        self._synced = net is None  # the OS keeps time where there is no radio module
        self._failed = ()
        if net is not None and wifi:
            self._rand = Jitter(clock.ticks_ms() if seed is None else seed).random
            self._failed = tuple(getattr(net, n) for n in _FAILED_NAMES if hasattr(net, n))
            self.wlan = net.WLAN(net.STA_IF)
            self.wlan.active(True)

    def up(self):
        return self.wlan is None or self.wlan.isconnected()

    def state(self):
        """UP, CONNECTING or DOWN as the last ensure() found it; None without a radio."""
        if self.wlan is None:
            return None
        if self._up:
            return UP
        return CONNECTING if self._connecting_since is not None else DOWN

    def ensure(self):
        """Drive the WLAN towards connected without blocking; True when the link is up."""
        wlan = self.wlan
        if wlan is None:
            return True
        now = clock.ticks_ms()
        if wlan.isconnected():
            if not self._up:  # (re)associated, with an address
                self._up = True
                self._connecting_since = None
                self.failures = 0
                self._down_ms += clock.ticks_diff(now, self._down_since)
                self.connects += 1
                self._ntp_failures = 0
                self._ntp_due = now  # the clock again after every reconnect
            if self._ntp_due is not None and clock.ticks_diff(now, self._ntp_due) >= 0:
                self.sync_time()
            return True
        if self._up:  # it fell: the first retry within 0..base, jittered
            self._up = False
            self.drops += 1
            self._down_since = now
            self._retry_at = clock.ticks_add(now, self._next_delay())
            return False
        if self._connecting_since is not None:
            st = wlan.status()
            if st not in self._failed and clock.ticks_diff(now, self._connecting_since) < self._timeout_ms:
                return False
            self._give_up(now, st)  # refused, no AP, or too slow: wait, try again
            return False
        if clock.ticks_diff(now, self._retry_at) >= 0:
            try:
                wlan.connect(self.wifi["ssid"], self.wifi.get("password") or "")
            except OSError as e:  # the radio itself refused (a board's "Wifi Internal Error")
                self._give_up(now, e.args[0] if e.args else None)
                return False
            self._connecting_since = now
        return False

    def _give_up(self, now, status):
        self.last_status = status
        try:
            self.wlan.disconnect()
        except OSError:  # nothing to leave
            pass
        self._connecting_since = None
        self._retry_at = clock.ticks_add(now, self._next_delay())

    def _next_delay(self):
        d = self._retry_delay = backoff_ms(self.failures, self._rand(), _BACKOFF_BASE_MS, _BACKOFF_CAP_MS)
        self.failures += 1
        return d

    def next_due_ms(self):
        """Milliseconds until ensure() has something to do (None: nothing, or no radio): a
        connection attempt in progress is looked at every _CONNECTING_POLL_MS, a retry when
        its backoff ends, an NTP request when due."""
        if self.wlan is None:
            return None
        now = clock.ticks_ms()
        if self._up:
            if self._ntp_due is None:
                return None
            d = clock.ticks_diff(self._ntp_due, now)
        elif self._connecting_since is not None:
            return _CONNECTING_POLL_MS
        else:
            d = clock.ticks_diff(self._retry_at, now)
        return d if d > 0 else 0

    def retry_ms(self):
        """The last WLAN backoff delay handed out (ms), or None."""
        return self._retry_delay

    def down_s(self):
        """Seconds the WLAN was not up since boot (the time to the first association too)."""
        ms = self._down_ms
        if self.wlan is not None and not self._up:
            ms += clock.ticks_diff(clock.ticks_ms(), self._down_since)
        return ms // 1000

    def rssi(self):
        if self.wlan is None or not self.wlan.isconnected():
            return None
        try:
            return self.wlan.status("rssi")
        except (ValueError, OSError, TypeError):
            return None

    def health(self):
        """The radio's part of health (None without a radio): state, rssi, connects, drops,
        down_s, ntp_syncs, and last_status after a failed attempt."""
        if self.wlan is None:
            return None
        out = {
            "state": self.state(),
            "rssi": self.rssi(),
            "connects": self.connects,
            "drops": self.drops,
            "down_s": self.down_s(),
            "ntp_syncs": self.ntp_syncs,
        }
        if self.last_status is not None:
            out["last_status"] = self.last_status
        return out

    def sync_time(self):
        """One NTP request (blocking at most _NTP_TIMEOUT_S) and the next one planned: in
        _NTP_RESYNC_MS after an answer, with the backoff after none."""
        if self.wlan is None or not self.ntp_host:  # "" in the config: no NTP wanted
            self._ntp_due = None
            return self._synced
        ntp = self._ntptime
        if ntp is None:
            try:
                import ntptime as ntp
            except ImportError:  # an image without ntptime: the clock stays unsynced
                self._ntp_due = None
                return self._synced
            self._ntptime = ntp
        try:
            ntp.host = self.ntp_host
            ntp.timeout = _NTP_TIMEOUT_S
            ntp.settime()
            self._synced = True
            self.ntp_syncs += 1
            self._ntp_failures = 0
            self._ntp_due = clock.ticks_add(clock.ticks_ms(), _NTP_RESYNC_MS)
        except (OSError, OverflowError, IndexError):  # no answer, or a garbled one
            d = backoff_ms(self._ntp_failures, self._rand(), _NTP_RETRY_BASE_MS, _NTP_RETRY_CAP_MS)
            self._ntp_failures += 1
            self._ntp_due = clock.ticks_add(clock.ticks_ms(), d)
        return self._synced

    def synced(self):
        return self._synced and time.time() + _EPOCH_OFFSET >= _EARLIEST_PLAUSIBLE

    def unix_time(self):
        """Seconds since 1970 (int), or None while the clock is not synced."""
        if not self.synced():
            return None
        return int(time.time()) + _EPOCH_OFFSET
