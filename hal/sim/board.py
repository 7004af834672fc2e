# The "unix-sim" board: simulated buses with a chip model for every configured sensor,
# all in one simulated street, and a schedule of faults to switch on and off while the
# node runs (how `streetnode sim` and the tests make sensors fail on a live node).
#
# The node asks it for buses and pins by name exactly as it asks a real board
# (hal/machine_bus.MachinePlatform): platform.bus("i2c0", "i2c"), platform.pin("led").

from errno import EIO

from hal import clock
from hal.sim.bus import SimI2C, SimPin
from hal.sim.environment import StreetEnvironment
from hal.sim.schedule import switch_due

# Which chip model stands in for which driver, and at which default address: the
# "sim" (a class in hal/sim/<driver>.py) and "address" of each driver in drivers/registry.py.

FAULT_KINDS = ("absent", "eio", "stuck_busy", "corrupt", "hang", "frozen", "brownout")
# frozen:   the chip keeps converting one and the same air: every reading repeats exactly
#           (a sensor "stuck" at a value, which real sensors in a street never are).
# brownout: the board resets when the fault switches on (the supply dips): SimPlatform
#           raises SystemExit(EXIT_REBOOT), so a node process ends as a board that reset;
#           since each boot starts the fault schedule again, at_s > 0 makes a boot loop.

# The radio's faults (hal/sim/wlan.py, loaded only for a node with a wifi section): no sensor.
RADIO_FAULT_KINDS = ("wlan_down", "ap_refuses", "ntp_silent")

EXIT_REBOOT = 3  # firmware/node.py: the exit code of a board reset on the unix port

# A street's air is never still: turbulence and sensor noise make every reading of a
# real sensor differ a little from the one before. Amplitudes (uniform +-) per quantity,
# absolute or relative (True: a fraction of the value); a new draw every _JITTER_MS.
_JITTER = (
    ("temperature", 0.08, False), ("humidity", 0.3, False), ("pressure", 0.1, False),
    ("pm1_0", 0.04, True), ("pm2_5", 0.04, True), ("pm10", 0.04, True),
    ("co2", 4.0, False), ("illuminance", 0.015, True),
)  # fmt: skip
_JITTER_MS = 100


class JitteryAir:
    """A StreetEnvironment as real sensors see it: the street's value plus deterministic
    noise (seeded, the same on CPython and MicroPython) that changes every 100 ms."""

    def __init__(self, env, seed=0):
        self.env = env
        self.seed = (seed * 2654435761 + 12345) & 0xFFFFFFFF

    def set(self, **values):
        self.env.set(**values)

    def noise(self, index, t_ms):
        """A number in [-1, 1) from (seed, quantity index, time bucket)."""
        h = (self.seed ^ ((t_ms // _JITTER_MS) * 40503 + index * 9973)) & 0xFFFFFFFF
        for _ in range(2):  # xorshift32 rounds
            h ^= (h << 13) & 0xFFFFFFFF
            h ^= h >> 17
            h ^= (h << 5) & 0xFFFFFFFF
        return (h & 0xFFFFFF) / 8388608.0 - 1.0

    def sample(self, quantity, t_ms):
        v = self.env.sample(quantity, t_ms)
        for i in range(len(_JITTER)):
            name, amp, relative = _JITTER[i]
            if name == quantity:
                return v + (v * amp if relative else amp) * self.noise(i, t_ms)
        return v


class FrozenAir:
    """What a frozen chip converts: the air of the first moment it is asked, for ever."""

    def __init__(self, env):
        self.env = env
        self.t_ms = None

    def set(self, **values):
        self.env.set(**values)

    def sample(self, quantity, t_ms):
        if self.t_ms is None:
            self.t_ms = t_ms
        return self.env.sample(quantity, self.t_ms)


def _model_class(driver):
    from drivers import registry

    return registry.model_class(driver), registry.DRIVERS[driver]["address"]


class SimPlatform:
    """Buses, pins and chip models for the sensors of a node config.

    `faults`: a list of {"sensor": name, "kind": one of FAULT_KINDS, "at_s": t, "for_s": d}
    (d 0 or absent: until the end), applied by tick() as simulated time passes; the radio's
    faults ({"kind": one of hal/sim/wlan.RADIO_FAULT_KINDS, ...}, no sensor) go to its WLAN.

    `wifi`: the node's "wifi" section. With one, the board has a radio (hal/sim/wlan.py):
    .network and .ntptime are what `import network` and `import ntptime` give on a board
    (firmware/net.py takes them), and the MQTT backend's sockets go through the radio.
    Without, .network is None: the unix port's own network, always up. `wlan`: the
    SimWLAN's options (assoc_ms, dhcp_ms, rssi_dbm, rssi_swing_db, ssid).
    """

    def __init__(self, sensors, env=None, faults=(), clk=None, wifi=None, wlan=None):
        self.clock = clk if clk is not None else clock.current()
        self.env = env if env is not None else StreetEnvironment()
        # The chips of a simulated street see it with real sensors' jitter; a constant
        # Environment (the lab of the unit tests) stays exact.
        self.air = self.env
        if isinstance(self.env, StreetEnvironment):
            self.air = JitteryAir(self.env, int(self.env.offset * 1000) + 500)
        self.buses = {}
        self.pins = {}
        self.chips = {}
        self._t0 = self.clock.ticks_ms()
        for spec in sensors:
            self._add(spec)
        self.faults = []
        radio_faults = [f for f in faults if f.get("kind") in RADIO_FAULT_KINDS]
        self.radio = self.network = self.ntptime = None
        if wifi:
            from hal.sim.wlan import SimNetwork, SimNTP, SimWLAN, gate_mqtt_sockets

            self.radio = SimWLAN(self.clock, radio_faults, **(wlan or {}))
            self.network = SimNetwork(self.radio)
            self.ntptime = SimNTP(self.radio, self.clock)
            gate_mqtt_sockets(self.radio)
        elif radio_faults:
            raise ValueError("sim radio faults (%s) need a wifi section" % radio_faults[0]["kind"])
        for f in faults:
            if f.get("kind") in RADIO_FAULT_KINDS:
                continue
            if f.get("sensor") not in self.chips:
                raise ValueError("sim fault for unknown sensor %r" % (f.get("sensor"),))
            if f.get("kind") not in FAULT_KINDS:
                raise ValueError("sim fault kind must be one of %s, not %r" % (", ".join(FAULT_KINDS), f.get("kind")))
            self.faults.append([f, "pending"])

    def _add(self, spec):
        from drivers import registry  # imported here: the node lets it go after boot (firmware/node.py)

        driver = spec["driver"]
        if driver not in registry.DRIVERS:
            raise ValueError("no simulated chip for driver %r" % (driver,))
        cls, default_address = _model_class(driver)
        chip = cls(env=self.air, clock=self.clock)
        bus_name = spec["bus"]
        if bus_name.startswith("uart"):
            if bus_name in self.buses:
                raise ValueError("%s already has a device" % bus_name)
            from hal.sim.uart import SimUART

            self.buses[bus_name] = SimUART(chip, clock=self.clock, log=False, rxbuf=512)
            power = (spec.get("options") or {}).get("power_pin")
            if isinstance(power, str) and "power_pin" in registry.DRIVERS[driver]["pins"]:
                chip.attach_power(self.pin(power))
        elif bus_name.startswith("spi"):
            from hal.sim.spi import SimSPI

            bus = self.buses.get(bus_name) or SimSPI(clock=self.clock, log=False)
            self.buses[bus_name] = bus
            bus.attach(chip, self.chip_select(bus_name))
        else:
            bus = self.buses.get(bus_name) or SimI2C(clock=self.clock, log=False)
            self.buses[bus_name] = bus
            address = spec.get("address")
            bus.attach(chip, default_address if address in (None, "auto") else address)
        self.chips[spec["name"]] = chip

    # -- what the node asks for ---------------------------------------------------------

    def bus(self, name, kind=None):
        bus = self.buses.get(name)
        if bus is None:
            raise OSError(EIO, "sim board: no bus %s" % name)
        return bus

    def pin(self, name):
        pin = self.pins.get(name)
        if pin is None:
            pin = self.pins[name] = SimPin(name, value=0)
        return pin

    def chip_select(self, bus_name):
        return self.pin("cs-" + bus_name)

    # -- faults over time ---------------------------------------------------------------

    def tick(self, now=None):
        """Switch scheduled faults on and off; returns the list of changes made."""
        now = self.clock.ticks_ms() if now is None else now
        t_ms = self.clock.ticks_diff(now, self._t0)
        changes = []
        for entry in self.faults:
            on = switch_due(entry, t_ms)
            if on is not None:
                f = entry[0]
                self._switch(f, on)
                changes.append((f["sensor"], f["kind"], on))
        if self.radio is not None:
            changes += self.radio.tick(now)
        return changes

    def _switch(self, f, on):
        chip = self.chips[f["sensor"]]
        faults = chip.faults
        kind = f["kind"]
        if kind == "absent":
            faults.absent = on
            if not on and f.get("power_cycle", True) and hasattr(chip, "power_cycle"):
                chip.power_cycle()  # it comes back as a re-plugged chip does
        elif kind == "eio":
            if on:
                faults.fail(1, EIO, count=1 << 30)
            else:
                faults.clear()
        elif kind == "stuck_busy":
            faults.stuck_busy = on
        elif kind == "corrupt":
            faults.corrupt(1 << 30 if on else 0, f.get("mode", "ones"))
        elif kind == "hang":
            if on and hasattr(chip, "hang"):
                chip.hang()
            elif not on and hasattr(chip, "power_cycle"):
                chip.power_cycle()
        elif kind == "frozen":
            if on:
                chip.env = FrozenAir(chip.env)
                if hasattr(chip, "noise"):
                    chip.noise = False  # the PM models' own jitter freezes too
            else:
                if isinstance(chip.env, FrozenAir):
                    chip.env = chip.env.env
                if hasattr(chip, "noise"):
                    chip.noise = True
        elif kind == "brownout" and on:
            raise SystemExit(EXIT_REBOOT)
