# The simulated radio of a unix-sim node with a "wifi" section: a station interface with
# the interface of MicroPython's network.WLAN, an access point whose faults are scheduled
# like the sensors' (hal/sim/schedule.py), the sockets that go through the radio, and an
# NTP server. firmware/net.py runs against it exactly as against a board's radio.
#
#   radio = SimWLAN(faults=[{"kind": "wlan_down", "at_s": 60, "for_s": 20}])
#   network = SimNetwork(radio)          # what `import network` is on a board
#   wlan = network.WLAN(network.STA_IF)  # the one station
#   wlan.active(True); wlan.connect("city-iot", "secret")
#   wlan.status()                        # STAT_CONNECTING, then STAT_GOT_IP (or a failure)
#
# An attempt takes assoc_ms (association) and then dhcp_ms (an address) before
# isconnected() is True; the RSSI wanders around rssi_dbm by up to rssi_swing_db. Faults:
#   wlan_down   the AP is gone (out of range, power cut): the station loses its association
#               at once, sockets through it die, attempts end in STAT_NO_AP_FOUND
#   ap_refuses  the AP refuses new associations (overloaded, MAC filter): STAT_CONNECT_FAIL;
#               a station already associated stays
#   ntp_silent  the NTP server does not answer: a request times out (SimNTP)
#
# While the station is not up, the sockets the MQTT backend opened through it are closed
# (every call on them then fails with EBADF; the broker sees the connection go) and name
# lookups fail, so the link loses its connection as on a board (GatedSockets).

import math
from errno import EHOSTUNREACH, EPERM, ETIMEDOUT

from hal import clock
from hal.sim.board import RADIO_FAULT_KINDS  # noqa: F401  (public here too)
from hal.sim.schedule import switch_due

STA_IF = 0
AP_IF = 1
# The Pico W's (cyw43) numbers; an ESP32 has others, firmware/net.py asks by name.
STAT_IDLE = 0
STAT_CONNECTING = 1
STAT_WRONG_PASSWORD = -3
STAT_NO_AP_FOUND = -2
STAT_CONNECT_FAIL = -1
STAT_GOT_IP = 3

_IDLE, _ASSOC, _DHCP, _UP = 0, 1, 2, 3
_SOCKETS_KEPT = 4  # sockets remembered to kill on a drop: the link has one at a time
_NTP_RTT_MS = 15
_BSSID = b"\x02\x5e\x00\x00\x00\x01"


class SimWLAN:
    """network.WLAN(network.STA_IF) of the simulator. `faults`: [{"kind": one of
    RADIO_FAULT_KINDS, "at_s": t, "for_s": d (0 or absent: for good)}], times from the
    radio's creation (the board's boot). `ssid`: the AP's name (None: whatever the node asks
    for; another name is not found)."""

    def __init__(self, clk=None, faults=(), assoc_ms=1500, dhcp_ms=500, rssi_dbm=-67, rssi_swing_db=6, ssid=None,
                 seed=0):  # fmt: skip
        self.clock = clk if clk is not None else clock.current()
        self._t0 = self.clock.ticks_ms()
        self.faults = []
        for f in faults:
            if f.get("kind") not in RADIO_FAULT_KINDS:
                raise ValueError("radio fault kind must be one of %s, not %r" % (", ".join(RADIO_FAULT_KINDS), f.get("kind")))
            self.faults.append([f, "pending"])
        if assoc_ms < 0 or dhcp_ms < 0:
            raise ValueError("assoc_ms and dhcp_ms must be >= 0, got %r and %r" % (assoc_ms, dhcp_ms))
        self.assoc_ms = assoc_ms
        self.dhcp_ms = dhcp_ms
        self.rssi_dbm = rssi_dbm
        self.rssi_swing_db = rssi_swing_db
        self.ap_ssid = ssid
        self.seed = seed & 0xFFFF
        self.ap_down = False
        self.ap_refuses = False
        self.ntp_silent = False
        self._active = False
        self._phase = _IDLE
        self._status = STAT_IDLE
        self._since = self._t0
        self._ssid = None
        self._cfg = {"hostname": "streetnode", "pm": 0}
        self.sockets = []  # sockets opened through the radio (GatedSockets)
        self.connects = 0  # connect() calls
        self.drops = 0  # associations lost to a wlan_down fault
        self.log = []  # (t_ms since boot, event): "up", "drop", "no_ap", "refused"

    # -- time --------------------------------------------------------------------------

    def tick(self, now=None):
        """Switch scheduled faults and move an attempt on; returns the fault changes made."""
        now = self.clock.ticks_ms() if now is None else now
        t_ms = self.clock.ticks_diff(now, self._t0)
        changes = []
        for entry in self.faults:
            on = switch_due(entry, t_ms)
            if on is not None:
                kind = entry[0]["kind"]
                changes.append(("wlan", kind, on))
                if kind == "wlan_down":
                    self.ap_down = on
                    if on and self._phase != _IDLE:
                        if self._phase == _UP:
                            self.drops += 1
                        self._end(t_ms, STAT_NO_AP_FOUND, "drop")
                elif kind == "ap_refuses":
                    self.ap_refuses = on
                else:
                    self.ntp_silent = on
        self._advance(now, t_ms)
        return changes

    def _advance(self, now, t_ms):
        if self._phase == _ASSOC and self.clock.ticks_diff(now, self._since) >= self.assoc_ms:
            if self.ap_down or (self.ap_ssid is not None and self._ssid != self.ap_ssid):
                self._end(t_ms, STAT_NO_AP_FOUND, "no_ap")
                return
            if self.ap_refuses:
                self._end(t_ms, STAT_CONNECT_FAIL, "refused")
                return
            self._phase = _DHCP
            self._since = self.clock.ticks_add(self._since, self.assoc_ms)
        if self._phase == _DHCP and self.clock.ticks_diff(now, self._since) >= self.dhcp_ms:
            self._phase = _UP
            self._status = STAT_GOT_IP
            self.log.append((t_ms, "up"))

    def _end(self, t_ms, status, event):
        self._phase = _IDLE
        self._status = status
        self.log.append((t_ms, event))
        self.kill_sockets()

    def kill_sockets(self):
        for s in self.sockets:
            try:
                s.close()
            except OSError:  # already closed
                pass
        self.sockets = []

    # -- network.WLAN ------------------------------------------------------------------

    def active(self, flag=None):
        if flag is None:
            return self._active
        self._active = bool(flag)
        if not flag:
            self.disconnect()
            self._status = STAT_IDLE
        return self._active

    def connect(self, ssid=None, key=None, bssid=None):
        if not self._active:
            raise OSError(EPERM, "WLAN not active")
        self.tick()
        self.connects += 1
        self._ssid = ssid
        self.kill_sockets()
        self._phase = _ASSOC
        self._status = STAT_CONNECTING
        self._since = self.clock.ticks_ms()

    def disconnect(self):
        self.kill_sockets()
        self._phase = _IDLE
        self._status = STAT_IDLE

    def isconnected(self):
        self.tick()
        return self._phase == _UP

    def status(self, param=None):
        self.tick()
        if param is None:
            return self._status
        if param == "rssi":
            if self._phase != _UP:
                raise OSError(EHOSTUNREACH, "not associated")
            return self.rssi()
        raise ValueError("unknown status param %r" % (param,))

    def config(self, *args, **kwargs):
        if kwargs:
            for k in kwargs:
                self._cfg[k] = kwargs[k]
            return None
        key = args[0] if args else None
        if key in ("essid", "ssid"):
            return self._ssid or ""
        if key == "rssi":
            return self.status("rssi")
        if key == "mac":
            return b"\x02\x5e\x00\x00\x10" + bytes((self.seed & 0xFF,))
        if key == "channel":
            return 6
        if key in self._cfg:
            return self._cfg[key]
        raise ValueError("unknown config param %r" % (key,))

    def ifconfig(self, *args):
        if self._phase != _UP:
            return ("0.0.0.0", "0.0.0.0", "0.0.0.0", "0.0.0.0")
        return ("10.23.%d.%d" % (self.seed >> 8 & 0xFF, 10 + self.seed % 240), "255.255.0.0", "10.23.0.1", "10.23.0.1")

    def scan(self):
        self.tick()
        if not self._active or self.ap_down:
            return []
        # (ssid, bssid, channel, RSSI, security (3: WPA2-PSK), hidden)
        return [((self.ap_ssid or self._ssid or "city-iot").encode(), _BSSID, 6, self.rssi(), 3, False)]

    # -- the air -------------------------------------------------------------------------

    def rssi(self, now=None):
        """dBm: rssi_dbm plus a slow swing (people, buses, rain) and a faster flutter."""
        now = self.clock.ticks_ms() if now is None else now
        t = self.clock.ticks_diff(now, self._t0) / 1000.0 + self.seed
        swing = 0.7 * math.sin(t * 6.2832 / 47.0) + 0.3 * math.sin(t * 6.2832 / 6.1)
        return int(round(self.rssi_dbm + self.rssi_swing_db * swing))


class SimNetwork:
    """What `import network` gives on a board, for the simulator's one radio."""

    STA_IF = STA_IF
    AP_IF = AP_IF
    STAT_IDLE = STAT_IDLE
    STAT_CONNECTING = STAT_CONNECTING
    STAT_WRONG_PASSWORD = STAT_WRONG_PASSWORD
    STAT_NO_AP_FOUND = STAT_NO_AP_FOUND
    STAT_CONNECT_FAIL = STAT_CONNECT_FAIL
    STAT_GOT_IP = STAT_GOT_IP

    def __init__(self, radio):
        self.radio = radio

    def WLAN(self, interface=STA_IF):  # noqa: N802 - network.WLAN's name
        if interface != STA_IF:
            raise ValueError("the sim board has a station interface only")
        return self.radio


class SimNTP:
    """ntptime of the simulator: settime() answers (after a round trip) while the station
    is up and no ntp_silent fault is on; otherwise it waits `timeout` seconds, as the
    board's socket does, and raises OSError(ETIMEDOUT). The unix port's clock is the
    host's, already right: an answer sets nothing, it makes the node count as synced."""

    def __init__(self, radio, clk=None):
        self.radio = radio
        self.clock = clk if clk is not None else clock.current()
        self.host = "pool.ntp.org"
        self.timeout = 1
        self.requests = 0
        self.answers = 0
        self.blocked_ms = []  # how long each request took

    def settime(self):
        self.requests += 1
        start = self.clock.ticks_ms()
        try:
            if not self.radio.isconnected() or self.radio.ntp_silent:
                self.clock.sleep_ms(int(self.timeout * 1000))
                raise OSError(ETIMEDOUT, "NTP: no answer from %s" % self.host)
            self.clock.sleep_ms(_NTP_RTT_MS)
            self.answers += 1
        finally:
            self.blocked_ms.append(self.clock.ticks_diff(self.clock.ticks_ms(), start))
            if len(self.blocked_ms) > 16:
                self.blocked_ms.pop(0)


class GatedSockets:
    """A `socket` module whose sockets go through the radio: name lookups fail while the
    station is not up, and the radio closes the sockets it carried when it falls."""

    def __init__(self, real, radio):
        self.real = real
        self.radio = radio

    def socket(self, *args):
        s = self.real.socket(*args)
        sockets = self.radio.sockets
        if len(sockets) >= _SOCKETS_KEPT:
            sockets.pop(0)
        sockets.append(s)
        return s

    def getaddrinfo(self, *args):
        if not self.radio.isconnected():
            raise OSError(EHOSTUNREACH, "sim WLAN down: no route to %s" % (args[0] if args else "?"))
        return self.real.getaddrinfo(*args)

    def __getattr__(self, name):
        return getattr(self.real, name)


def gate_mqtt_sockets(radio):
    """Route the MQTT backend's sockets (firmware/mqtt_umqtt.py, MicroPython) through the
    radio. On CPython (paho) there is nothing to gate: returns False."""
    try:
        from firmware import mqtt_umqtt
    except ImportError:
        return False
    real = mqtt_umqtt._socket
    if isinstance(real, GatedSockets):
        real = real.real
    mqtt_umqtt._socket = GatedSockets(real, radio)
    return True
