"""The field crew's model of a fleet: what each node said, judged.

Pure: no network, no clock of its own. Feed it what arrives, `(topic, payload, t)` with
`t` the arrival time in seconds (time.time() live, the capture's time on replay), and
call `tick(t)` now and then; `check`, `monitor` and `report` are views on it.

    fleet = Fleet(prefix="streetnode")
    fleet.feed("streetnode/lamp-1/data", b'{"seq": 7, ...}', 1764270000.0)
    events = fleet.tick(1764270100.0)      # alerts raised or cleared since the last call
    fleet.nodes["lamp-1"].alerts           # what is wrong now

Alerts (kind, subject):
  silent      no data for longer than `silence_factor` x the node's interval (learnt from
              the data's ts per seq, else from arrival times), and at least `min_silence_s`
  gap         readings lost for good: seqs missing after the node said its outbox was
              empty (a health with outbox 0 arrived after the hole), or a hole older than
              `gap_grace_s`; stays up `gap_hold_s` after the last loss
  stuck       every quantity of a sensor repeated exactly `stuck_n` readings in a row
              over at least `stuck_s` seconds (real sensors jitter); values where a
              constant is normal (dark, clean air, fog) do not count
  bounds      a reading outside the plausible range of its quantity (BOUNDS)
  no_values   a sensor gave only nulls `stuck_n` readings in a row and for `no_values_s`
              (and its health does not say it is warming up)
  reboot_loop the boot count rose `reboot_k` times within `reboot_window_s`
  offline     the status says offline and the node was last heard longer ago than the
              silence limit (a deep-sleep node, offline between its wake-ups, does not
              alert while its data keeps coming)

"Heard" is the node's time, not the tool's: a live message counts at its arrival, a
retained one (the broker held it; `feed(..., retained=True)`) at the `ts` it carries
(status and health carry the node's clock; an offline will carries the time it was armed,
the node's last connect), and not at all when it carries none.
"""

import json

# Physically plausible values of the contract's quantities, in its units, for a street
# sensor in central Europe (wider than any weather: these catch broken sensors, not heat).
BOUNDS = {
    "temperature": (-40.0, 60.0),  # °C
    "humidity": (0.0, 100.0),  # %RH
    "pressure": (850.0, 1090.0),  # hPa, station pressure from sea level to 1500 m
    "pm1_0": (0.0, 1000.0),  # µg/m³: the optical sensors' range
    "pm2_5": (0.0, 1000.0),
    "pm10": (0.0, 1000.0),
    "co2": (300.0, 10000.0),  # ppm: outdoor air is above 400, the SCD4x ends at 40000
    "illuminance": (0.0, 150000.0),  # lx: direct sun is about 100000
}

UNITS = {
    "temperature": "°C",
    "humidity": "%RH",
    "pressure": "hPa",
    "pm1_0": "µg/m³",
    "pm2_5": "µg/m³",
    "pm10": "µg/m³",
    "co2": "ppm",
    "illuminance": "lx",
}

# A value that may legitimately stay the same for a long time: darkness and street
# lighting (a lamp's steady light reads the same BH1750 count all night; EN 13201's
# lighting classes for streets are 2 to 50 lx), clean air, saturated air. Such readings
# neither prove nor disprove a stuck sensor.
_QUIET = {
    "illuminance": lambda v: v <= 50.0,
    "pm1_0": lambda v: v <= 3.0,
    "pm2_5": lambda v: v <= 3.0,
    "pm10": lambda v: v <= 3.0,
    "humidity": lambda v: v >= 99.5,
}

DEFAULTS = {
    "silence_factor": 3.0,
    "min_silence_s": 5.0,
    "stuck_n": 10,
    "stuck_s": 30.0,  # and for this long: an SCD4x measures every 5 s, a fast node reads it twice
    "gap_grace_s": 600.0,
    "gap_hold_s": 3600.0,
    "reboot_k": 3,
    "reboot_window_s": 3600.0,
    "no_values_s": 60.0,  # nulls for a shorter time are a sensor starting up (SCD4x: 5 s)
    "interval_s": None,  # the fleet's interval when known; else learnt per node
}


def base_quantity(name):
    """pm2_5_rh_corrected -> pm2_5: derived values share their quantity's bounds and unit."""
    for q in BOUNDS:
        if name == q or name.startswith(q + "_"):
            return q
    return None


def out_of_bounds(quantity, value):
    """None when plausible (or unknown), else a reason."""
    q = base_quantity(quantity)
    if q is None or value is None:
        return None
    lo, hi = BOUNDS[q]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return "%s is not a number (%r)" % (quantity, value)
    if value < lo or value > hi:
        return "%s %s %s outside %g..%g" % (quantity, _num(value), UNITS[q], lo, hi)
    return None


def quiet(quantity, value):
    q = base_quantity(quantity)
    fn = _QUIET.get(q)
    return fn is not None and value is not None and fn(value)


def stamp(t):
    """A time as ISO 8601 UTC to the second."""
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _number(v):
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _num(v):
    if isinstance(v, float):
        return ("%.3f" % v).rstrip("0").rstrip(".")
    return str(v)


def ranges(seqs):
    """[(first, last), ...] of consecutive runs in a sorted iterable of ints."""
    out = []
    for s in seqs:
        if out and s == out[-1][1] + 1:
            out[-1][1] = s
        else:
            out.append([s, s])
    return [tuple(r) for r in out]


def format_ranges(rs, limit=6):
    parts = ["%d" % a if a == b else "%d-%d" % (a, b) for a, b in rs[:limit]]
    if len(rs) > limit:
        parts.append("… %d more" % (len(rs) - limit))
    return ", ".join(parts)


class Alert:
    __slots__ = ("node", "kind", "subject", "detail", "since", "updated")

    def __init__(self, node, kind, subject, detail, t):
        self.node, self.kind, self.subject, self.detail = node, kind, subject, detail
        self.since = self.updated = t

    def key(self):
        return (self.kind, self.subject)

    def text(self):
        return "%s %s%s: %s" % (self.node, self.kind, " " + self.subject if self.subject else "", self.detail)

    def as_dict(self):
        return {"node": self.node, "kind": self.kind, "subject": self.subject, "detail": self.detail, "since": self.since}


class Event:
    """An alert raised or cleared (or a notable fact such as a seq reset)."""

    __slots__ = ("t", "node", "what", "kind", "subject", "detail")

    def __init__(self, t, node, what, kind, subject, detail):
        self.t, self.node, self.what, self.kind, self.subject, self.detail = t, node, what, kind, subject, detail

    def text(self):
        sub = " " + self.subject if self.subject else ""
        return "%s %s %s%s: %s" % (self.what.upper(), self.node, self.kind, sub, self.detail)

    def as_dict(self):
        return {"t": self.t, "node": self.node, "event": self.what, "kind": self.kind, "subject": self.subject,
                "detail": self.detail}  # fmt: skip


class SensorTrack:
    """One sensor of one node: the latest values, how long they have repeated, null streaks."""

    def __init__(self, name):
        self.name = name
        self.latest = {}
        self.signature = None
        self.repeats = 0  # readings in a row with the same non-quiet values
        self.run_since = None  # arrival time of the first of them
        self.nulls = 0  # readings in a row with no value at all
        self.nulls_since = None  # arrival time of the first of them
        self.readings = 0
        self.bad = {}  # quantity -> reason (out of bounds) in the latest reading
        self.ever_bad = {}  # quantity -> the first reason seen
        self.valued = 0  # readings with at least one value

    def add(self, values, t=None):
        self.readings += 1
        self.latest = dict(values)
        present = {q: v for q, v in values.items() if v is not None}
        self.nulls = 0 if present else self.nulls + 1
        self.nulls_since = None if present else (self.nulls_since if self.nulls > 1 else t)
        if present:
            self.valued += 1
        self.bad = {}
        for q, v in present.items():
            why = out_of_bounds(q, v)
            if why:
                self.bad[q] = why
                self.ever_bad.setdefault(q, why)
        sig = tuple(sorted((q, v) for q, v in present.items() if not quiet(q, v)))
        if not sig:
            self.signature, self.repeats, self.run_since = None, 0, None
        elif sig == self.signature:
            self.repeats += 1
        else:
            self.signature, self.repeats, self.run_since = sig, 1, t

    def stuck(self, n, seconds, t):
        """True when the same values came n readings in a row, for at least `seconds`."""
        return (
            self.signature is not None and self.repeats >= n and (self.run_since is None or t - self.run_since >= seconds)
        )


class NodeState:
    def __init__(self, node_id):
        self.id = node_id
        self.status = None  # the latest status payload
        self.status_t = None
        self.online_transitions = []  # arrival times of offline->online (or first online)
        self.health = None
        self.health_t = None
        self.first_seen = None
        self.last_seen = None  # any message (arrival time)
        self.heard = None  # when the node was last heard, by its own clock for retained messages
        self.last_data_t = None
        self.data = None  # the latest data payload (highest seq)
        self.epochs = [{}]  # seq -> (ts, arrival) per seq epoch (a new one when seq restarts)
        self.duplicates = 0
        self.seq_resets = 0
        self.sensors = {}  # name -> SensorTrack (fed in seq order as they arrive)
        self.boot_count = None
        self.boots = []  # arrival times at which the boot count was seen to rise
        self.alerts = {}  # (kind, subject) -> Alert
        self.lost = {}  # seq -> time confirmed lost (current epoch)
        self.holes_since = {}  # seq -> first time it was missing
        self.suspect = {}  # seq -> time a health said the outbox was empty while it was missing
        self.last_loss_t = None
        self._arrivals = []  # (arrival, seq) of the latest data, for the interval
        self._stamps = []  # (seq, ts) of the latest data with a time, for the interval
        self._interval = None  # cached; None after new data
        self._interval_dirty = True
        self.lo = self.hi = None  # the seq range of this epoch
        self.holes = set()  # seqs inside the range that have not arrived (this epoch)
        self.results = []  # cmd/result payloads

    # -- seq accounting --------------------------------------------------------------------

    @property
    def seqs(self):
        return self.epochs[-1]

    def all_seqs(self):
        out = set()
        for e in self.epochs:
            out.update(e)
        return out

    def missing(self):
        """Seqs between the lowest and highest received (this epoch) that never arrived."""
        return sorted(self.holes)

    def _add_seq(self, seq):
        if self.lo is None:
            self.lo = self.hi = seq
        elif seq > self.hi:
            self.holes.update(range(self.hi + 1, seq))
            self.hi = seq
        elif seq < self.lo:
            self.holes.update(range(seq + 1, self.lo))
            self.lo = seq
        else:
            self.holes.discard(seq)

    def interval_s(self):
        """The node's sampling interval: from ts per seq when the data spans 10 s or more,
        else the median arrival time per seq of fresh readings; None until known."""
        if not self._interval_dirty:
            return self._interval
        self._interval_dirty = False
        self._interval = self._learn_interval()
        return self._interval

    def _learn_interval(self):
        pts = self._stamps
        if len(pts) >= 2:
            (s0, t0), (s1, t1) = pts[0], pts[-1]
            if t1 - t0 >= 10 and s1 > s0:
                return (t1 - t0) / (s1 - s0)
        a = self._arrivals
        steps = []
        for i in range(1, len(a)):
            dt, ds = a[i][0] - a[i - 1][0], a[i][1] - a[i - 1][1]
            if ds > 0 and dt > 0:
                steps.append(dt / ds)
        if not steps:
            return None
        steps.sort()
        return steps[len(steps) // 2]

    def readings_per_sensor(self):
        return {name: dict(tr.latest) for name, tr in self.sensors.items()}

    def as_dict(self):
        h = self.health or {}
        return {
            "node": self.id,
            "state": (self.status or {}).get("state"),
            "fw": (self.status or h).get("fw"),
            "boot_count": self.boot_count,
            "last_seen": self.heard,
            "seq": self.hi,
            "received": len(self.all_seqs()),
            "missing": len(self.missing()),
            "lost": len(self.lost),
            "duplicates": self.duplicates,
            "outbox": h.get("outbox"),
            "reconnects": h.get("reconnects"),
            "errors": h.get("errors"),
            "readings": self.readings_per_sensor(),
            "alerts": [a.as_dict() for a in self.alerts.values()],
        }


class Fleet:
    def __init__(self, prefix="streetnode", **options):
        unknown = set(options) - set(DEFAULTS)
        if unknown:
            raise ValueError("unknown option(s): %s" % ", ".join(sorted(unknown)))
        self.prefix = prefix.rstrip("/")
        self.opt = dict(DEFAULTS)
        self.opt.update(options)
        self.nodes = {}
        self.retired = set()  # node ids to leave out (the register marks them retired)
        self.events = []  # not yet handed out by tick()/take_events()
        self.messages = 0
        self.malformed = 0

    # -- input ---------------------------------------------------------------------------

    def node(self, node_id):
        n = self.nodes.get(node_id)
        if n is None:
            n = self.nodes[node_id] = NodeState(node_id)
        return n

    def split(self, topic):
        """(node, kind) of a topic under the prefix, or None."""
        p = self.prefix + "/"
        if not topic.startswith(p):
            return None
        rest = topic[len(p) :].split("/", 1)
        if len(rest) < 2 or not rest[0]:
            return None
        return rest[0], rest[1]

    def feed(self, topic, payload, t, retained=False):
        """One message as it arrived at time t (seconds); `retained`: the broker held it
        (it arrived because we subscribed). Returns the node id or None."""
        where = self.split(topic)
        if where is None:
            return None
        node_id, kind = where
        if node_id in self.retired:
            return None
        if kind not in ("status", "data", "health", "cmd/result"):
            return None  # commands going in, or topics of other tools
        self.messages += 1
        try:
            msg = json.loads(payload) if isinstance(payload, (bytes, bytearray, str)) else payload
        except ValueError:
            msg = None
        if not isinstance(msg, dict):
            self.malformed += 1
            return None
        n = self.node(node_id)
        if n.first_seen is None:
            n.first_seen = t
        n.last_seen = t if n.last_seen is None else max(n.last_seen, t)
        heard = t if not retained else _number(msg.get("ts"))
        if heard is not None and (n.heard is None or heard > n.heard):
            n.heard = heard
        if kind == "status":
            self._status(n, msg, t)
        elif kind == "data":
            self._data(n, msg, t)
        elif kind == "health":
            self._health(n, msg, t)
        else:
            n.results.append((t, msg))
            del n.results[:-50]
        return node_id

    def _boot_count(self, n, count, t):
        if not isinstance(count, int) or isinstance(count, bool):
            return
        if n.boot_count is not None and count > n.boot_count:
            for _ in range(min(count - n.boot_count, 100)):
                n.boots.append(t)
        n.boot_count = count if n.boot_count is None else max(n.boot_count, count)

    def _status(self, n, msg, t):
        prev = (n.status or {}).get("state")
        n.status, n.status_t = msg, t
        if msg.get("state") == "online" and prev != "online":
            n.online_transitions.append(t)
        self._boot_count(n, msg.get("boot_count"), t)

    def _health(self, n, msg, t):
        n.health, n.health_t = msg, t
        self._boot_count(n, msg.get("boot_count"), t)
        if msg.get("outbox") == 0:
            # Everything the node numbered was published before this health: what is
            # still missing is lost, once in-flight QoS 1 data that a QoS 0 health may
            # have overtaken at the broker had time to arrive (confirmed in evaluate()).
            for seq in n.missing():
                n.suspect.setdefault(seq, t)

    def _data(self, n, msg, t):
        seq = msg.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
            self.malformed += 1
            return
        ts = msg.get("ts")
        ts = ts if isinstance(ts, (int, float)) and not isinstance(ts, bool) else None
        seen = n.seqs.get(seq)
        if seen is not None:
            if seen[0] == ts:
                n.duplicates += 1  # a redelivery: harmless
                return
            # The same seq with another time: the node's numbering started again (its
            # outbox was erased). Count from here as a new epoch, not as a gap.
            n.seq_resets += 1
            n.epochs.append({})
            n.lost, n.holes_since, n.suspect = {}, {}, {}
            n._arrivals, n._stamps = [], []
            n.lo = n.hi = None
            n.holes = set()
            self._event(t, n.id, "note", "seq_reset", "", "seq restarted at %d (was up to %d)" % (
                seq, max(n.epochs[-2])))  # fmt: skip
        n.seqs[seq] = (ts, t)
        n._add_seq(seq)
        n._interval_dirty = True
        n.holes_since.pop(seq, None)
        n.suspect.pop(seq, None)
        n.lost.pop(seq, None)  # arrived after all (should not happen: a late backlog)
        n.last_data_t = t
        latest = n.data.get("seq", 0) if n.data else 0
        if seq > latest:
            n.data = msg
            n._arrivals.append((t, seq))
            del n._arrivals[:-40]
            if ts is not None:
                n._stamps.append((seq, ts))
                del n._stamps[:-200]
            sensors = msg.get("sensors")
            if isinstance(sensors, dict):
                for name, values in sensors.items():
                    if isinstance(values, dict):
                        tr = n.sensors.get(name)
                        if tr is None:
                            tr = n.sensors[name] = SensorTrack(name)
                        tr.add(values, t)

    # -- judgement -----------------------------------------------------------------------

    def _event(self, t, node, what, kind, subject, detail):
        self.events.append(Event(t, node, what, kind, subject, detail))

    def _raise(self, n, t, kind, subject, detail):
        a = n.alerts.get((kind, subject))
        if a is None:
            n.alerts[(kind, subject)] = Alert(n.id, kind, subject, detail, t)
            self._event(t, n.id, "alert", kind, subject, detail)
        else:
            if a.detail != detail and kind == "gap":
                self._event(t, n.id, "alert", kind, subject, detail)  # more readings lost
            a.detail, a.updated = detail, t

    def _clear(self, n, t, kind, subject, detail="ok again"):
        a = n.alerts.pop((kind, subject), None)
        if a is not None:
            self._event(t, n.id, "clear", kind, subject, detail)

    def interval_of(self, n):
        return self.opt["interval_s"] or n.interval_s()

    def evaluate(self, n, t):
        o = self.opt
        # silent
        iv = self.interval_of(n)
        if n.last_data_t is not None and iv:
            limit = max(o["silence_factor"] * iv, o["min_silence_s"])
            quiet_s = t - n.last_data_t
            if quiet_s > limit:
                offline = (n.status or {}).get("state") == "offline"
                self._raise(n, t, "silent", "", "no data for %.0f s (interval %.3g s)%s" % (
                    quiet_s, iv, ", status offline" if offline else ""))  # fmt: skip
            else:
                self._clear(n, t, "silent", "", "data again")
        # offline: the node said so (or its will did), and has not been heard since long enough
        if (n.status or {}).get("state") == "offline":
            limit = max(o["silence_factor"] * iv, o["min_silence_s"]) if iv else o["min_silence_s"]
            if n.heard is None or t - n.heard > limit:
                self._raise(n, t, "offline", "", "status offline, last heard %s" % (
                    "at an unknown time" if n.heard is None else stamp(n.heard)))  # fmt: skip
        else:
            self._clear(n, t, "offline", "", "online again")
        # gaps: holes confirmed by an empty outbox, or older than the grace period
        confirm_s = max(2.0, 2 * (iv or 1.0))
        for seq in n.missing():
            first = n.holes_since.setdefault(seq, t)
            said = n.suspect.get(seq)
            if seq not in n.lost and (t - first >= o["gap_grace_s"] or (said is not None and t - said >= confirm_s)):
                n.lost[seq] = t
                n.last_loss_t = t
        if n.lost:
            if n.last_loss_t is not None and t - n.last_loss_t <= o["gap_hold_s"]:
                lost = sorted(n.lost)
                dropped = (n.health or {}).get("dropped")
                self._raise(n, t, "gap", "", "%d reading(s) lost: seq %s%s" % (
                    len(lost), format_ranges(ranges(lost)),
                    "; node dropped %s" % dropped if dropped else ""))  # fmt: skip
            else:
                self._clear(n, t, "gap", "", "no new losses for %.0f s" % o["gap_hold_s"])
        # sensors
        states = (n.health or {}).get("sensors") or {}
        for name, tr in n.sensors.items():
            if tr.stuck(o["stuck_n"], o["stuck_s"], n.last_data_t):
                vals = ", ".join("%s %s" % (q, _num(v)) for q, v in tr.signature)
                self._raise(n, t, "stuck", name, "same values %d readings in a row (%s)" % (tr.repeats, vals))
            else:
                self._clear(n, t, "stuck", name, "values change again")
            if tr.bad:
                self._raise(n, t, "bounds", name, "; ".join(tr.bad[q] for q in sorted(tr.bad)))
            else:
                self._clear(n, t, "bounds", name, "values plausible again")
            st = states.get(name)
            long_s = t - tr.nulls_since if tr.nulls_since is not None else 0
            if tr.nulls >= o["stuck_n"] and long_s >= o["no_values_s"] and st != "warmup":
                self._raise(n, t, "no_values", name, "no value %d readings in a row%s" % (
                    tr.nulls, " (state %s)" % st if st else ""))  # fmt: skip
            elif tr.nulls == 0:
                self._clear(n, t, "no_values", name, "values again")
        # reboot loop
        recent = [b for b in n.boots if t - b <= o["reboot_window_s"]]
        n.boots = recent
        if len(recent) >= o["reboot_k"]:
            self._raise(n, t, "reboot_loop", "", "%d reboots in %.0f s (boot count %s, last reset %s)" % (
                len(recent), o["reboot_window_s"], n.boot_count, (n.status or {}).get("reset_cause")))  # fmt: skip
        else:
            self._clear(n, t, "reboot_loop", "", "no more reboots")

    def tick(self, t):
        """Judge every node at time t; returns the events since the last call."""
        for n in self.nodes.values():
            self.evaluate(n, t)
        return self.take_events()

    def take_events(self):
        out, self.events = self.events, []
        return out

    def alerts(self):
        out = []
        for n in self.nodes.values():
            out.extend(n.alerts.values())
        return out
