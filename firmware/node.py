# The node: boot, then one loop that samples, commits every cycle to the outbox before
# publishing it, drains the backlog after an outage without starving fresh readings,
# reports health, answers commands, and feeds the watchdog only while it makes progress.
#
#   node = Node("/data")      # the directory on flash holding config.json, outbox/, state
#   node.boot()
#   node.run()                # forever (or deep sleep after one cycle on battery nodes)
#
# Resilience has one home per layer: the MQTT link (firmware/mqtt.py) owns reconnects,
# the outbox owns durability, sensor slots own sensor faults; this loop only decides
# what to do next and never lets an exception out of a step.

import gc
import json
import sys

from firmware.version import FW_VERSION
from firmware import payloads
from firmware.backoff import entropy_seed
from firmware.logs import LogRing
from firmware.net import Net
from firmware.outbox import Outbox
from firmware.sensors import Sensors
from hal import clock

_DRAIN_BUDGET_MS = 250  # backlog publishing per loop pass, so sampling keeps its schedule
_WINDOW = 16  # backlog records in flight at once (QoS 1, matched to seqs by packet id)
_DRAIN_BATCH = 4  # records read from flash at a time: their payloads are in RAM together
# The outbox persists its ack position every this many acks (and whenever a segment of
# 50 records goes): a state file write costs 1-3 ms here, 8 acks apart it was most of the
# drain's time. After a power cut at most this many delivered records go out again, the
# contract's harmless redelivery.
_ACK_PERSIST_EVERY = 50
_ERROR_PAUSE_MS = 50  # after a step that raised: the next pass is not at once
_BLINK_MS = 250  # the identify LED's half period
_DEEP_AWAKE_MAX_MS = 20000  # longest a deep-sleep node stays awake trying to publish
_UNSAVED_MAX = 8  # readings the flash refused, held in RAM until published (then dropped)
_GC_THRESHOLD = 4096  # bytes allocated between two collections, at least (boot, below)


def _load(name):
    """A module needed only now and then: config validation (about 22 KB of heap on the
    64-bit unix port, 11 KB on a board), the boot counter, the board table and the remote
    commands are loaded when they are needed (boot, a config change, a command) and let
    go again with _unload(), so that they do not sit in a small board's heap for the
    node's whole life. On CPython (a Pi gateway) they stay: memory is plenty there, and
    other code may hold the module (and its ConfigError class). `name` is under firmware/
    unless it is dotted ("hal.boards")."""
    full = name if "." in name else "firmware." + name
    __import__(full)
    return sys.modules[full]


# Modules that config validation loads besides its own package, let go with it (the
# board table: firmware/config/schema.py checks a board's pins with it).
_ALSO_UNLOAD = {"config": ("hal.sim.schema", "hal.boards")}


def _unload(*names):
    if sys.implementation.name != "micropython":
        return
    for name in names:
        full = name if "." in name else "firmware." + name
        for mod in [m for m in sys.modules if m == full or m.startswith(full + ".")] + list(_ALSO_UNLOAD.get(name, ())):
            sys.modules.pop(mod, None)
            parent, child = mod.rsplit(".", 1)
            parent = sys.modules.get(parent)
            if parent is not None and child in parent.__dict__:
                delattr(parent, child)
    gc.collect()


def _command_id(payload):
    """The id of a command the node could not handle, for its refusal; "" where even the id
    cannot be read (not JSON, no string id, or the heap still too full)."""
    try:
        cid = json.loads(payload).get("id")
    except (MemoryError, ValueError, AttributeError, TypeError, UnicodeError):
        return ""
    return cid if isinstance(cid, str) and len(cid) <= 64 else ""  # commands.MAX_ID


def make_platform(cfg):
    """The hal backend for the board named in the config."""
    board = cfg.get("board", "unix-sim")
    if board == "unix-sim":
        from hal.sim.board import SimPlatform
        from hal.sim.environment import StreetEnvironment

        sim = cfg.get("sim") or {}
        seed = sim.get("seed")
        if seed is None:
            seed = sum(ord(c) for c in cfg["node_id"])
        env = StreetEnvironment(seed=seed, start_hour=sim.get("start_hour", 8.0))
        return SimPlatform(
            cfg.get("sensors", ()), env=env, faults=sim.get("faults", ()), wifi=cfg.get("wifi"), wlan=sim.get("wlan")
        )
    if board == "pi":
        from hal.blinka import BlinkaPlatform

        return BlinkaPlatform()
    from hal.machine_bus import MachinePlatform

    return MachinePlatform(board)


def next_wait_ms(waits, cap_ms=None):
    """How long the loop may wait: the soonest of `waits` (milliseconds until each thing is
    due; None for one that is not due at all), never below 0, at most cap_ms (None: no
    cap). None when nothing at all is due (and no cap)."""
    best = cap_ms
    for w in waits:
        if w is not None and (best is None or w < best):
            best = w
    if best is not None and best < 0:
        best = 0
    return best


def reset_cause():
    try:
        import machine

        cause = machine.reset_cause()
    except (ImportError, AttributeError):
        return None
    for name in ("PWRON_RESET", "HARD_RESET", "WDT_RESET", "DEEPSLEEP_RESET", "SOFT_RESET"):
        if getattr(machine, name, None) == cause:
            return name[:-6].lower()
    return str(cause)


class Node:
    def __init__(self, directory, platform=None, link=None, cause=None):
        self.dir = directory.rstrip("/") or "/"
        self._platform = platform
        self._link = link
        self.cause = cause
        self.started_ms = clock.ticks_ms()
        self.cycles = 0
        self.published = 0
        self.reboot_requested = False
        self.step_errors = 0
        self.passes = 0  # loop passes since boot (health's loop_passes: a spinning loop shows)
        self.wdt = None
        self.flash_report = None  # set by the unix port when its flash had to be formatted
        self.kept_outboxes = []  # former node ids of this board whose outboxes wait on flash
        self._unsaved = []  # (seq, body) the outbox could not commit (a full or failing flash)
        self.logs = LogRing()  # the last lines printed, for the `logs` command
        # what the log last said of the link: True (connected), else the failure it gave
        # (None before any): a failure is logged once, not at every attempt
        self._link_said = None

    # -- boot ---------------------------------------------------------------------------

    def boot(self):
        if hasattr(gc, "threshold"):
            # Collect after every few KiB allocated, not only when the heap is full: the few
            # objects that outlive a loop pass then stay low in the heap instead of being
            # strewn over all of it, which left a 100 KiB heap with 15 KiB free in holes too
            # small for a 300-byte health report (the collector does not move objects).
            # `python -m streetnode.bench.heap --smallest --cycles 200`: ROMFS 100 -> 92 KiB,
            # .mpy 156 -> 148 KiB. A large heap (a sim node's 512k) collects less often.
            gc.threshold(max(_GC_THRESHOLD, gc.mem_free() // 16))
        self.state = _load("state").boot(self.dir, self.cause or reset_cause())
        cfg, err = _load("config").load(self.dir)
        _unload("state", "config")
        self.config_error = err
        self.config = cfg
        self.log("boot %s (reset %s), fw %s" % (self.state["boot_count"], self.state.get("reset_cause"), FW_VERSION))
        if err:
            self.log("config: %s - running on the last good config" % (err,))
        self.board_error = None
        if self._platform is None:
            self.board_error = _load("hal.boards").fits(cfg["board"], sys.platform, sys.implementation.name)
            _unload("hal.boards")  # a board's own buses (hal/machine_bus.py) import it again
            if self.board_error:  # its buses and pins are not this board's: nothing would work
                return self
        from firmware.outbox import adopt

        self.kept_outboxes = adopt(self.dir + "/outbox", cfg["node_id"])
        if self.kept_outboxes:  # a re-deploy under a new id: the old id's records wait for it
            print("outbox: records of node id(s) %s kept on flash (outbox.<id>); deploy the board under that id "
                  "again to publish them" % ", ".join(self.kept_outboxes))
        self.outbox = Outbox(
            self.dir + "/outbox", max_records=cfg["outbox"]["max_records"], ack_persist_every=_ACK_PERSIST_EVERY
        )
        self.platform = self._platform or make_platform(cfg)
        self._tick = getattr(self.platform, "tick", None)  # bound once: none per loop pass
        # The radio: the board's own `network` and `ntptime`, or the simulator's stand-ins
        # (hal/sim/wlan.py) that the sim platform carries.
        self.net = Net(
            cfg.get("wifi"),
            (cfg.get("ntp") or {}).get("host"),
            network=getattr(self.platform, "network", None),
            ntptime=getattr(self.platform, "ntptime", None),
            seed=entropy_seed(cfg["node_id"]) ^ 0x5A5A,
        )
        self._net_up = False
        self.link = self._link or self._make_link(cfg)
        self.link.on_cmd = self._on_cmd
        self.ota = None
        try:
            from firmware.ota.receiver import Receiver

            self.ota = Receiver(self)  # after the config: it reads ota.pubkeys from it
            self.link.subs = ["ota/offer", "ota/chunk"]
            self.link.on_message = self.ota.on_message
            self.link.status["fw"] = self.ota.fw
            self.link.status["slot"] = self.ota.slot
        except ImportError as e:  # a tree without firmware/ota (a trimmed build): no updates
            print("ota: not available:", e)
        self.link.unix_time = self.net.unix_time
        self._apply(cfg)
        now = clock.ticks_ms()
        self._next_cycle = now
        self._health_due = True
        self._results = []
        self._identify_until = None
        self._reboot_at = None
        self._sent = 0  # the highest backlog seq sent while records are in flight
        self._drained = False  # the last drain found nothing to send: do not spin on it
        self._waits = [None] * 6  # filled each pass: no allocation while idle
        self._wait_cap = None
        wd = cfg.get("watchdog_s")
        if wd and hasattr(self.platform, "watchdog"):
            self.wdt = self.platform.watchdog(int(wd * 1000))
            self._wait_cap = int(wd * 500)  # fed at least twice per watchdog period
        return self

    def _make_link(self, cfg):
        from firmware.mqtt import MQTTLink
        from firmware.version import FW_VERSION

        m = cfg["mqtt"]
        ca = None
        if m.get("tls") and m.get("ca"):
            with open(self.dir + "/" + m["ca"], "rb") as f:
                ca = f.read()
        status = {"fw": FW_VERSION, "boot_count": self.state["boot_count"], "reset_cause": self.state.get("reset_cause")}
        hosts = m.get("hosts") or [{"host": m["host"], "port": m.get("port")}]
        return MQTTLink(
            cfg["node_id"],
            [(h["host"], h["port"]) for h in hosts],  # tried in order: failover (firmware/mqtt.py)
            m.get("port"),
            prefix=m.get("prefix", "streetnode"),
            keepalive_s=m.get("keepalive_s", 60),
            ca_der=ca,
            status=status,
            user=m.get("user"),
            password=m.get("password"),
        )

    def _apply(self, cfg):
        """Make `cfg` the running config: everything but the network settings applies at once."""
        self.config = cfg
        self.interval_ms = int(cfg["interval_s"] * 1000)
        self.health_every = cfg["health_every"]
        self.sensors = Sensors(cfg, self.platform)
        _unload("drivers.registry")  # read while the slots (and the sim's chips) were made

    # -- the loop -------------------------------------------------------------------------

    def step(self):
        """One pass of the main loop; returns ms until the next thing is due."""
        now = clock.ticks_ms()
        if self._tick is not None:
            self._tick(now)
        self.sensors.poll(now)
        fresh = None
        if clock.ticks_diff(now, self._next_cycle) >= 0:
            fresh = self._cycle(now)
        self._net_up = self.net.ensure()
        if self._net_up:
            self.link.poll()
            if self.link.connected:
                self._publish(fresh)
        elif self.link.connected:
            # The radio fell under a link that still thinks it is up: its session is gone
            # with the WLAN (on a board it would find out at the next ping, a keepalive
            # later). Dropped now, the loop sleeps until the radio is due instead of trying
            # to drain a backlog into a dead socket.
            self.link.radio_down()
        if self.ota is not None:
            self.ota.tick(now)
        said = self._link_said
        if self.link.connected:
            if said is not True:
                self._link_said = True
                self.log("mqtt: connected (reconnects %d)" % self.link.reconnects)
        elif said is True or self.link.last_error != said:  # lost, or cannot connect (again, or for a new reason)
            import errno

            err = self._link_said = self.link.last_error
            self.log("mqtt: no link: %s" % (errno.errorcode.get(err, err) if isinstance(err, int) else err,))
        self._identify(now)
        if self.wdt is not None:
            self.wdt.feed()  # reached only when the pass completed
        if self._reboot_at is not None and clock.ticks_diff(now, self._reboot_at) >= 0:
            self.reboot_requested = True
        return self.wait_ms(clock.ticks_ms())

    def wait_ms(self, now):
        """Milliseconds until the next thing is due: a sensor sample, the sampling cycle, the
        link (ping, reconnect), the radio, a blink, a reboot; 0 while there is work (a
        backlog, results or health to publish)."""
        link = self.link
        w = self._waits
        if link.connected and (self._results or self._health_due or (self.outbox.pending() and not self._drained)):
            return 0  # a backlog to drain or replies to send: straight on with the next pass
        if self.ota is not None and self.ota.busy():
            return 0  # a backlog to drain or replies to send: straight on with the next pass
        w[0] = self.sensors.next_due_ms(now)
        w[1] = clock.ticks_diff(self._next_cycle, now)
        w[2] = link.next_due_ms() if self._net_up else None  # no radio, no broker to try
        w[3] = self.net.next_due_ms()
        w[4] = None if self._identify_until is None else _BLINK_MS - now % _BLINK_MS
        w[5] = None if self._reboot_at is None else clock.ticks_diff(self._reboot_at, now)
        return next_wait_ms(w, self._wait_cap)

    def _cycle(self, now):
        self._next_cycle = clock.ticks_add(self._next_cycle, self.interval_ms)
        if clock.ticks_diff(now, self._next_cycle) >= 0:
            self._next_cycle = clock.ticks_add(now, self.interval_ms)  # overslept: no catch-up burst
        body = payloads.data_body(self.net.unix_time(), self.net.synced(), self.sensors.take())
        seq = self.outbox.append(body)  # on flash before anyone sees it
        if not self.outbox.committed:  # the flash refused it: the seq is given, publish from RAM
            self._unsaved.append((seq, body))
            if len(self._unsaved) > _UNSAVED_MAX:
                self.outbox.let_go(self._unsaved.pop(0)[0])
        self.cycles += 1
        if self.cycles % self.health_every == 0:
            self._health_due = True
        return (seq, body) if self.outbox.committed else None

    def _publish(self, fresh):
        link = self.link
        # Command results and health first: they are small and someone waits for them.
        while self._results and link.connected:
            if link.publish("cmd/result", self._results[0], 1):
                self._results.pop(0)
        # Readings the flash could not take exist only in RAM: they go first.
        while self._unsaved and link.connected:
            seq, body = self._unsaved[0]
            if not link.publish("data", payloads.with_seq(seq, body), 1):
                break
            self._unsaved.pop(0)
            self.published += 1
        # The fresh cycle goes out at once, even behind a backlog; from RAM, not read back.
        if fresh is not None:
            seq, body = fresh
            if self.outbox.pending() > 1:
                if link.publish("data", payloads.with_seq(seq, body), 1):
                    self.outbox.ack(seq)
                    self.published += 1
            elif not link.in_flight() and link.send("data", payloads.with_seq(seq, body), seq):
                self._sent = seq  # its PUBACK acks it in the outbox, as for the backlog
        self._drain()
        if self._health_due and link.connected and link.publish("health", self.health(), 0):
            self._health_due = False

    def _drain(self):
        # The backlog, oldest first, with up to _WINDOW QoS 1 publishes in flight: each
        # record leaves the outbox only when its own PUBACK (matched by packet id) arrived.
        link = self.link
        outbox = self.outbox
        start = clock.ticks_ms()
        more = True
        self._drained = False
        while link.connected:
            self._take_acks()
            left = _DRAIN_BUDGET_MS - clock.ticks_diff(clock.ticks_ms(), start)
            if left <= 0:
                return
            flying = link.in_flight()
            if more and flying < _WINDOW and outbox.pending() > flying:
                want = min(_WINDOW - flying, _DRAIN_BATCH)
                batch = outbox.oldest(want, self._sent if flying else None)
                more = len(batch) == want
                for seq, body in batch:
                    if not link.send("data", payloads.with_seq(seq, body), seq):
                        break
                    self._sent = seq
                if batch:
                    continue
            if not flying:
                self._drained = not outbox.pending() or not more
                return
            link.pump(left)  # until a PUBACK (or anything) arrives: no spinning

    def _take_acks(self):
        acks = self.link.acks
        while acks:
            if self.outbox.ack(acks.pop(0)):
                self.published += 1

    def health(self):
        gc.collect()  # so mem_free/mem_alloc count live objects, not garbage
        extra = {
            "boot_count": self.state["boot_count"],
            "reset_cause": self.state.get("reset_cause"),
            "seq": self.outbox.last_seq,
            "sensors": {s.name: s.state for s in self.sensors.slots},
            "config_error": self.config_error,
            "step_errors": self.step_errors,
            "loop_passes": self.passes,
            "broker": getattr(self.link, "broker", None),  # "host:port" of the broker in use
            "ts": self.net.unix_time(),
        }
        if self.kept_outboxes:
            extra["kept_outboxes"] = self.kept_outboxes  # former node ids whose records wait on flash
        if self.ota is not None:
            extra["fw"] = self.ota.fw  # the running release's version (firmware/ota)
            extra["slot"] = self.ota.slot
        self._flash_health(extra)
        wlan = self.net.health()
        if wlan is not None:
            extra["wlan"] = wlan
            if wlan["rssi"] is not None:
                extra["rssi"] = wlan["rssi"]
            extra["synced"] = self.net.synced()
        uptime_s = clock.ticks_diff(clock.ticks_ms(), self.started_ms) // 1000
        return payloads.health(
            uptime_s, self.outbox.pending(), self.outbox.dropped, self.link.reconnects, self.sensors.errors(), extra
        )

    def _flash_health(self, extra):
        """flash: "ok", "full" (the last append found no room, or less than the outbox's
        reserve is free) or "failing" (writes the flash refused otherwise, counted in
        flash_errors); flash_free in bytes."""
        ob = self.outbox
        free = ob.free_bytes()
        full = ob.full or (free is not None and free < ob.reserve_bytes)  # below the reserve
        extra["flash"] = "failing" if ob.write_errors else ("full" if full else "ok")
        extra["flash_free"] = free
        extra["flash_errors"] = ob.write_errors
        if self._unsaved:
            extra["unsaved"] = len(self._unsaved)
        if ob.last_error is not None and extra["flash"] != "ok":
            extra["flash_error"] = str(ob.last_error)
        st_err = self.state.get("state_error")
        if st_err:
            extra["state_error"] = st_err  # the boot counter and reset cause live in RAM only
        if self.flash_report:
            extra["flash_report"] = self.flash_report
        if ob.repairs:
            extra["outbox_repairs"] = ob.repairs  # damaged stretches cut out at boot
        if ob.state_error:
            extra["outbox_error"] = ob.state_error

    def run(self, stop=None):
        """Loop until stop() says so or a reboot is requested; a step that raises is counted
        and the loop goes on (the watchdog resets a node that stops making progress)."""
        deep = self.config.get("deep_sleep")
        while not self.reboot_requested and not (stop and stop()):
            self.passes += 1
            try:
                wait = self.step()
            except MemoryError:
                self.step_errors += 1
                gc.collect()
                wait = _ERROR_PAUSE_MS
            except Exception as e:  # noqa: BLE001 - the loop must outlive any bug in a step
                self.step_errors += 1
                self.log("step failed: %r" % (e,))
                wait = _ERROR_PAUSE_MS
            if deep and self.cycles and (self.outbox.pending() == 0 or self._deep_deadline()):
                self.outbox.sync()
                self.link.close()
                return "deepsleep"
            if wait is None:
                wait = self.interval_ms
            if wait:
                # Connected: one poll on the broker's socket, so a command wakes the node
                # at once; down: a plain sleep until the next thing is due.
                self.link.wait(wait)
        self.outbox.sync()
        self.link.close()
        return "reboot" if self.reboot_requested else "stopped"

    def _deep_deadline(self):
        # A battery node that cannot publish goes back to sleep after a while anyway:
        # the reading is committed and waits in the outbox for the next wake-up.
        return clock.ticks_diff(clock.ticks_ms(), self.started_ms) > _DEEP_AWAKE_MAX_MS

    # -- commands -----------------------------------------------------------------------

    def _on_cmd(self, payload):
        result = None
        try:
            cmds = _load("commands")
            result = cmds.handle(payload, cmds.node_handlers(self))
        except MemoryError:
            pass  # the commands module did not fit in the heap: refused below
        finally:
            cmds = None
            _unload("commands")
        if result is None:
            # Answered, so the sender knows to send it again rather than wait for a result
            # that never comes (the command did not run); the heap is collected first.
            gc.collect()
            result = {"id": _command_id(payload), "ok": False, "error": "out of memory: send it again"}
        if not result["ok"]:
            self.log("cmd refused: %s" % (result.get("error"),))
        self._results.append(json.dumps(result).encode())
        if len(self._results) > 16:
            self._results.pop(0)  # a flood of commands cannot grow the queue without bound

    def log(self, text):
        """Print a line, and keep it (with the uptime) for the `logs` command."""
        self.logs.log("%ds " % (clock.ticks_diff(clock.ticks_ms(), self.started_ms) // 1000), text)

    def reboot_soon(self, delay_ms):
        """Reboot after delay_ms (the outbox is synced and the link closed first)."""
        self._reboot_at = clock.ticks_add(clock.ticks_ms(), delay_ms)

    def _identify(self, now):
        if self._identify_until is None:
            return
        try:
            led = self.platform.pin("led")
        except (ValueError, OSError):
            self._identify_until = None
            return
        if clock.ticks_diff(self._identify_until, now) <= 0:
            led.value(0)
            self._identify_until = None
        else:
            led.value((now // 250) & 1)  # 2 Hz blink


# Exit codes of a node process on the unix port, read by `streetnode sim`'s supervisor:
# it restarts the process at once after a reboot, after the interval after a deep sleep.
EXIT_REBOOT = 3
EXIT_DEEPSLEEP = 4


def wait_for_config(why):
    """A config for another board: say so once and wait (a reboot would only loop, the boot
    count climbing) until a technician deploys the right config (deploy interrupts this with
    Ctrl-C, as it stops a running node)."""
    import time

    print("streetnode: %s; not starting: deploy a config for this board (streetnode deploy)" % why)
    while True:
        time.sleep(60)


def main(directory, cause=None, after_boot=None):
    """Boot and run a node from `directory`; on a board this never returns.
    `after_boot(node)`: the unix port's hook for the simulated flash (firmware/main_unix.py)."""
    node = Node(directory, cause=cause).boot()  # no usable config at all raises: the loader's fallback
    if node.board_error:
        return wait_for_config(node.board_error)
    if after_boot is not None:
        after_boot(node)
    how = node.run()
    try:
        import machine
    except ImportError:
        machine = None
    if how == "deepsleep":
        if machine is not None and hasattr(machine, "deepsleep"):
            machine.deepsleep(node.interval_ms)
        return EXIT_DEEPSLEEP
    if how == "reboot":
        if machine is not None and hasattr(machine, "reset"):
            machine.reset()
        return EXIT_REBOOT
    return 0
