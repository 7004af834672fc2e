# The node's sensors: each configured sensor in a slot with its own interval, warm-up,
# window aggregate and error count. A sensor that fails gives null for its quantities
# and counts an error; one that is absent at boot or stops answering is opened again
# later, so a sensor that comes back is used again without a reboot.
#
# A slot samples `window.n` times per interval (evenly spaced) and take() hands the
# node one value per quantity: the median or mean of the good samples, or None.

from errno import EAGAIN

from hal import clock

# What each driver is (its module and class, bus kinds, quantities) is in
# drivers/registry.py, read when a slot is made (the node lets the table go again,
# firmware/node.py); the driver module itself is imported when its slot opens.
# Warm-up is the drivers' own business (the PM sensors' 30 s of fan and laser, the
# SCD4x's first 5 s): they raise OSError(EAGAIN) or give None until readings count.
# A slot's warmup_s (config) discards readings for longer still, where a site needs it.

# After this many failed reads in a row the driver is dropped and opened again, so a
# chip that lost power is set up from scratch (identity, calibration, mode).
_REOPEN_AFTER = 3
_RETRY_MAX_MS = 60000


def median(values):
    s = sorted(values)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


def mean(values):
    return sum(values) / len(values)


AGGREGATES = {"median": median, "mean": mean}


def rh_corrected(values, rh, kappa):
    """PM values with, next to each raw value, `<name>_rh_corrected` (kappa-Koehler, see
    drivers/pm_correction.py): null when the humidity or the raw value is missing, or the
    air is near saturation. The raw values stay as they are."""
    from drivers.pm_correction import kappa_koehler_correct

    out = dict(values)
    for q in ("pm1_0", "pm2_5", "pm10"):
        if q in values:
            v = None
            if values[q] is not None and rh is not None:
                v = kappa_koehler_correct(values[q], min(max(rh, 0.0), 100.0), kappa)
            out[q + "_rh_corrected"] = None if v is None else round(v, 2)
    return out


def aggregate(samples, quantities, how):
    """One value per quantity from a list of read() dicts; None where no sample had one."""
    if len(samples) == 1:
        # One sample (a window of 1, the usual case): its values as they are, in a dict of
        # their own, without a list and a sort per quantity (~700 bytes a cycle).
        s = samples[0]
        out = {}
        for q in quantities:
            out[q] = s.get(q)
        return out
    fn = AGGREGATES[how]
    out = {}
    for q in quantities:
        vals = [s[q] for s in samples if s.get(q) is not None]
        out[q] = fn(vals) if vals else None
    return out


class SensorSlot:
    """One configured sensor. `platform` opens buses and pins by name (hal backends)."""

    def __init__(self, spec, platform, default_interval_s):
        self.name = spec["name"]
        self.kind = spec["driver"]
        from drivers.registry import DRIVERS  # here: the node lets the table go once its slots are made

        if self.kind not in DRIVERS:
            raise ValueError("sensor %s: unknown driver %r" % (self.name, self.kind))
        entry = DRIVERS[self.kind]
        self._module, self._class, self.quantities = "drivers." + self.kind, entry["cls"], entry["quantities"]
        self._pins = entry["pins"]
        kind = (spec.get("bus") or "")[:3]
        self.bus_kind = kind if kind in ("i2c", "spi") else "uart" if kind == "uar" else entry["buses"][0]
        self.spec = spec
        self.platform = platform
        interval_s = spec.get("interval_s") or default_interval_s
        window = spec.get("window") or {}
        self.window_n = window.get("n", 1)
        self.how = window.get("agg", "median")
        self.period_ms = int(interval_s * 1000) // self.window_n
        self.warmup_ms = int((spec.get("warmup_s") or 0) * 1000)
        self.driver = None
        self.state = "closed"  # closed, warmup, ok, failing, absent, misconfigured
        self.errors = 0
        self.reads = 0
        self.last_error = None
        self.reopened = 0
        self._failures = 0
        self._samples = []
        now = clock.ticks_ms()
        self._next_ms = now
        self._retry_ms = now
        self._warm_until = now

    def _error(self, e):
        self.errors += 1
        self.last_error = str(e)

    def _say(self, state, what, e):
        """One console line (the journal on a Pi gateway) when the slot changes state: why a
        sensor is not read, not only its driver library's warning. Not on every retry."""
        if state != self.state:
            print("sensor %s (%s on %s): %s: %s" % (self.name, self.kind, self.spec.get("bus"), what, e))

    def _open(self, now):
        if self.state == "misconfigured" or clock.ticks_diff(now, self._retry_ms) < 0:
            return
        spec = self.spec
        try:
            mod = __import__(self._module, None, None, (self._class,))
            cls = getattr(mod, self._class)
            options = dict(spec.get("options") or {})
            for key in self._pins:
                if isinstance(options.get(key), str):
                    options[key] = self.platform.pin(options[key])
            bus = self.platform.bus(spec["bus"], self.bus_kind)
            address = spec.get("address")
            if self.bus_kind == "uart":
                self.driver = cls(bus, **options)
            elif self.bus_kind == "spi":
                self.driver = cls(bus, self.platform.chip_select(spec["bus"]), **options)
            elif address is None:
                self.driver = cls(bus, **options)
            else:
                if address == "auto":  # wherever its chip answers (drivers/detect.py)
                    from drivers.detect import resolve_address

                    address = resolve_address(bus, self.kind)
                self.driver = cls(bus, address, **options)
        except (OSError, MemoryError) as e:
            # MemoryError: no room to load the driver now; like an absent chip, try later.
            self._error(e if isinstance(e, OSError) else "out of memory opening the driver")
            self._say("absent", "not read, retrying", self.last_error)
            self.state = "absent"
            # Retry at the sampling period, but at least once a minute.
            self._retry_ms = clock.ticks_add(now, min(max(self.period_ms, 1000), _RETRY_MAX_MS))
            return
        except (ValueError, TypeError, ImportError, AttributeError) as e:
            # A bad option or driver: retrying cannot help until the config changes.
            self._error(e)
            self._say("misconfigured", "not read until the config changes", e)
            self.state = "misconfigured"
            return
        self._failures = 0
        self._warm_until = clock.ticks_add(now, self.warmup_ms)
        if self.state in ("absent", "misconfigured"):
            print("sensor %s (%s on %s): found" % (self.name, self.kind, spec.get("bus")))
        self.state = "warmup" if self.warmup_ms else "ok"

    def due(self, now):
        return clock.ticks_diff(now, self._next_ms) >= 0

    def poll(self, now):
        """Sample if due. Returns True if it sampled (well or not)."""
        if not self.due(now):
            return False
        self._next_ms = clock.ticks_add(self._next_ms, self.period_ms)
        if clock.ticks_diff(now, self._next_ms) > 0:
            self._next_ms = clock.ticks_add(now, self.period_ms)  # fell behind: no burst of catch-up reads
        if self.driver is None:
            self._open(now)
            if self.driver is None:
                return True
        try:
            values = self.driver.read()
        except OSError as e:
            if e.args and e.args[0] == EAGAIN:
                self.state = "warmup"  # the driver says its readings do not count yet
                return True
            self._error(e)
            self._failures += 1
            self.state = "failing"
            if self._failures >= _REOPEN_AFTER:
                self.driver = None
                self.reopened += 1
            return True
        self._failures = 0
        self.reads += 1
        if clock.ticks_diff(now, self._warm_until) < 0:
            self.state = "warmup"
            return True
        self.state = "ok"
        self._samples.append(values)
        if len(self._samples) > self.window_n:
            self._samples.pop(0)
        return True

    def take(self):
        """The quantities for this cycle (aggregate of the window), and start a new window."""
        out = aggregate(self._samples, self.quantities, self.how)
        self._samples = []
        return out

    def health(self):
        return {"state": self.state, "errors": self.errors, "last_error": self.last_error}


class Sensors:
    """All slots of a config, polled by the node's loop."""

    def __init__(self, config, platform):
        self.slots = []
        for spec in config.get("sensors", ()):
            if spec.get("enabled", True):
                self.slots.append(SensorSlot(spec, platform, config.get("interval_s", 60)))

    def poll(self, now):
        n = 0
        for slot in self.slots:
            if slot.poll(now):
                n += 1
        return n

    def take(self):
        out = {slot.name: slot.take() for slot in self.slots}
        for slot in self.slots:
            corr = slot.spec.get("rh_correction")
            if corr:
                rh = (out.get(corr["humidity_from"]) or {}).get("humidity")
                out[slot.name] = rh_corrected(out[slot.name], rh, corr.get("kappa", 0.3))
        return out

    def errors(self):
        return {slot.name: slot.errors for slot in self.slots}

    def next_due_ms(self, now):
        """Milliseconds until the next slot is due (0 if one is due now; None without slots)."""
        best = None
        for slot in self.slots:
            d = clock.ticks_diff(slot._next_ms, now)
            if best is None or d < best:
                best = d
        return None if best is None else 0 if best < 0 else best
