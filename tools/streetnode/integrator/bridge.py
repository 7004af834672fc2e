"""`streetnode bridge`: the fleet's readings from the MQTT broker into a city's platforms,
as a long-running service that loses nothing and counts nothing twice.

    streetnode bridge --broker mqtt.city.de --ca city-ca.pem --user bridge --password-file pw \\
        --to sensorthings=https://sta.city.de/FROST-Server/v1.1 --to homeassistant \\
        --register fleet-register.csv --state-dir /var/lib/streetnode-bridge
    streetnode bridge ... --unit > /etc/systemd/system/streetnode-bridge.service

How nothing is lost: a persistent MQTT session (clean session off, a fixed client id, QoS 1)
with manual acknowledgement. A message is acknowledged to the broker only once every target
took it (or refused it for good, into the dead letters): until then the broker keeps it and
everything behind it, and a bridge killed with SIGKILL gets it again on its next start. A
target that is down is retried with exponential backoff (0.5 s doubling to 60 s).

How nothing counts twice: state.json in the state directory holds, per target and node, the
seqs delivered and the seqs sent but unconfirmed; a seq delivered is not sent again, an
unconfirmed one is looked up at the target first (see delivery.py, sensorthings.py).

Health: a line per --status-every seconds (forwarded, retried, dead-lettered per target) and
the same figures, retained, on `<prefix>/_bridge/<name>/status` (offline as its last will).
"""

import argparse
import json
import os
import queue
import shlex
import signal
import sys
import threading
import time
import traceback
from pathlib import Path

from streetnode.common import mqtt
from streetnode.common import errors
from streetnode.common.errors import Failure
from streetnode.integrator import register as fleet_register
from streetnode.integrator.delivery import DeadLetters, DeliveryState
from streetnode.integrator.readings import Malformed, parse_data, parse_object, topic_node
from streetnode.integrator.target import TargetUnavailable

SERVICE = "streetnode-bridge.service"
STATE_DIR = "/var/lib/streetnode-bridge"
DEFAULT_USER = "streetnode-bridge"
HA_STATUS = "homeassistant/status"
BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 60.0
EXIT_CONFIG = 4
# glibc's malloc arenas for the bridge process (MALLOC_ARENA_MAX in the systemd unit; the
# benchmark runs the bridge with it too). See docs/integrator.md, "The bridge, measured".
MALLOC_ARENA_MAX = 2
# Messages held in memory unacknowledged. A broker should send no more than its in-flight
# window (mosquitto's max_inflight_messages, 20), but mosquitto 2.0.11 (Debian 12's) sends
# 20 more for every PUBACK, so a backlog (a fleet draining its outboxes, a target that was
# down) would all come into the bridge's memory: 15,000 messages, +120 MiB, in the benchmark.
# Past this many the bridge leaves a message unacknowledged at the broker, which keeps it,
# and reconnects once it has handled what it holds: the broker then sends those again.
MAX_HELD = 1000


def default_state_dir():
    env = os.environ.get("STATE_DIRECTORY")  # systemd's StateDirectory=
    if env:
        return env.split(":")[0]
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return os.path.join(base, "streetnode-bridge")


def log(text):
    print("%s bridge: %s" % (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), text), flush=True)


def parse_targets(items):
    """--to values -> {"sensorthings": URL, "homeassistant": PREFIX, "sensor-community": URL}."""
    from streetnode.integrator.homeassistant import DEFAULT_PREFIX
    from streetnode.integrator.sensorcommunity import DEFAULT_URL

    out = {}
    for item in items or ():
        kind, _, value = item.partition("=")
        kind = kind.strip().lower()
        if kind == "sensorthings":
            if not value.startswith(("http://", "https://")):
                raise ValueError("--to sensorthings=URL needs the service root, e.g. "
                                 "sensorthings=https://sta.example.org/FROST-Server/v1.1, not %r" % item)  # fmt: skip
        elif kind == "homeassistant":
            value = value or DEFAULT_PREFIX
        elif kind in ("sensor-community", "sensorcommunity"):
            kind = "sensor-community"
            value = value or DEFAULT_URL
        else:
            raise ValueError("--to %r: the targets are sensorthings=URL, homeassistant[=PREFIX] and "
                             "sensor-community[=URL]" % item)  # fmt: skip
        if kind in out:
            raise ValueError("--to %s given twice" % kind)
        out[kind] = value
    if not out:
        raise ValueError("give at least one --to (sensorthings=URL, homeassistant, sensor-community)")
    return out


class Counters:
    def __init__(self, names):
        self.received = 0
        self.malformed = 0
        self.duplicates = 0
        self.per = {n: {"forwarded": 0, "retried": 0, "dead_lettered": 0} for n in names}

    def as_dict(self):
        return {"received": self.received, "malformed": self.malformed, "duplicates": self.duplicates,
                "targets": self.per}  # fmt: skip


class Bridge:
    def __init__(self, opts, targets, register=None, state_dir=None, prefix="streetnode", name="bridge",
                 batch=None, max_batch=200, status_every=60.0, logger=log, max_held=MAX_HELD):  # fmt: skip
        self.opts = opts
        self.spec = targets
        self.register = register or {}
        self.state_dir = Path(state_dir or default_state_dir())
        self.prefix = prefix.strip("/")
        self.name = name
        self.client_id = "streetnode-bridge-%s" % name
        self.status_topic = "%s/_bridge/%s/status" % (self.prefix, name)
        self.batch = batch
        self.max_batch = max_batch
        self.status_every = status_every
        self.log = logger
        self.stop_event = threading.Event()
        self.inbox = queue.Queue()
        self.max_held = max(1, max_held)
        self._left = 0  # messages of this connection left unacknowledged at the broker (MAX_HELD)
        self.left_at_broker = 0
        self._generation = 0
        self.targets = []
        self.client = None
        self.started = time.time()

    # -- MQTT -----------------------------------------------------------------------------

    def _on_connect(self, client):
        self._generation += 1  # acks of messages from an earlier connection are not sent
        if "homeassistant" in self.spec:
            client.subscribe(HA_STATUS, qos=1)

    def _on_message(self, client, userdata, msg):
        if msg.topic != HA_STATUS and self.inbox.qsize() >= self.max_held:
            if msg.qos > 0:  # not acknowledged: the broker keeps it for the next connection
                self._left += 1
            return
        self.inbox.put((self._generation, msg))

    def _fetch_again(self):
        """Messages were left at the broker (MAX_HELD): everything held is handled and
        acknowledged, so disconnect (the acks go first) and connect again; the broker sends
        what it still holds for the session, the left messages among it."""
        n, self._left = self._left, 0
        self.left_at_broker += n
        self.log("%d messages past the %d held were left unacknowledged at the broker (it sent past its "
                 "in-flight window); connecting again to have them sent" % (n, self.max_held))  # fmt: skip
        c = self.client
        c.disconnect()
        c.loop_stop()
        c.connect_async(c.host, c.port, c.keepalive)
        c.loop_start()  # paho connects (retrying) in its thread; on_connect subscribes again

    def start(self):
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as e:
            raise Failure("state directory %s: %s" % (self.state_dir, e.strerror or e), EXIT_CONFIG) from None
        self.state = DeliveryState(self.state_dir)
        self.dead = DeadLetters(self.state_dir)
        will = (self.status_topic, json.dumps({"state": "offline"}), 1, True)
        topics = ["%s/+/%s" % (self.prefix, k) for k in ("data", "status", "health")]
        self.client = mqtt.connect(self.opts, self.client_id, on_connect=self._on_connect, on_message=self._on_message,
                                   subscribe=topics, clean_session=False, manual_ack=True, will=will)  # fmt: skip
        self._make_targets()
        self.counters = Counters([t.name for t in self.targets])
        self.log("connected to %s as %s; targets: %s; state in %s" % (self.opts.address, self.client_id,
                 ", ".join(t.name for t in self.targets), self.state_dir))  # fmt: skip
        return self

    def _make_targets(self):
        if "sensorthings" in self.spec:
            from streetnode.integrator.sensorthings import SensorThings

            self.targets.append(SensorThings(self.spec["sensorthings"], self.register, batch=self.batch, log=self.log))
        if "homeassistant" in self.spec:
            from streetnode.integrator.homeassistant import HomeAssistant

            self.targets.append(HomeAssistant(self.client, self.state_dir, self.prefix, self.spec["homeassistant"],
                                              self.register, log=self.log))  # fmt: skip
        if "sensor-community" in self.spec:
            from streetnode.integrator.sensorcommunity import SensorCommunity

            self.targets.append(SensorCommunity(self.register, self.spec["sensor-community"], log=self.log))

    # -- the loop -------------------------------------------------------------------------

    def run(self):
        next_status = time.monotonic() + self.status_every
        try:
            while not self.stop_event.is_set():
                batch = self._take()
                if batch:
                    self._handle(batch)
                if self._left and self.inbox.empty() and not self.stop_event.is_set():
                    self._fetch_again()
                if time.monotonic() >= next_status:
                    self.report()
                    next_status = time.monotonic() + self.status_every
        finally:
            self.close()

    def _take(self):
        try:
            first = self.inbox.get(timeout=0.5)
        except queue.Empty:
            return []
        batch = [first]
        while len(batch) < self.max_batch:
            try:
                batch.append(self.inbox.get_nowait())
            except queue.Empty:
                break
        return batch

    def _handle(self, batch):
        readings = []
        seen = set()
        for _, msg in batch:
            topic = msg.topic
            if topic == HA_STATUS:
                if msg.payload.strip() == b"online":
                    for t in self.targets:
                        if t.name == "homeassistant":
                            t.birth()
                continue
            node = topic_node(self.prefix, topic, "data")
            if node is not None:
                self.counters.received += 1
                try:
                    r = parse_data(self.prefix, topic, msg.payload, time.time())
                except Malformed as e:
                    self.counters.malformed += 1
                    self.log("skipped a malformed message on %s: %s" % (topic, e))
                    self.dead.add(None, topic, msg.payload, "malformed: %s" % e)
                    continue
                if r.key in seen:
                    self.counters.duplicates += 1
                    continue
                seen.add(r.key)
                readings.append(r)
                continue
            for kind in ("status", "health"):
                node = topic_node(self.prefix, topic, kind)
                if node is not None:
                    obj = parse_object(msg.payload)
                    if obj is not None:
                        for t in self.targets:
                            try:
                                getattr(t, "node_" + kind)(node, obj)
                            except TargetUnavailable as e:
                                self.log("%s: %s (tried again with the next %s)" % (t.name, e, kind))
                    break
        for t in self.targets:
            if not self._deliver(t, readings):
                return  # stopping: nothing acknowledged, the broker sends it all again
        self.state.save()
        for generation, msg in batch:
            if msg.qos > 0 and generation == self._generation:
                self.client.ack(msg.mid, msg.qos)

    def _deliver(self, t, readings):
        """Hand `readings` to target t until it took or refused each; False when stopping.

        Which may be at the target already is the state's to say, not the message's DUP
        flag: every send is in state.json before it goes out, so a reading of a node the state
        knows that is neither done nor sent never reached the target from this state. A DUP
        says only that the broker sent it before, e.g. to this bridge when it left it at the
        broker (MAX_HELD): looking those up would cost a request per Datastream each time."""
        todo = [r for r in readings if not self.state.is_done(t.name, r.node, r.seq)]
        if len(todo) < len(readings):
            self.counters.duplicates += len(readings) - len(todo)
        if not todo and not getattr(t, "resend_all", False):
            return True
        uncertain = {r.key for r in todo if self.state.is_uncertain(t.name, r.node, r.seq)}
        delay = BACKOFF_MIN_S
        down_since = None
        last_log = 0.0
        while True:
            keys = [r.key for r in todo]
            self.state.mark_sent(t.name, keys)
            self.state.save()
            try:
                outcome = t.deliver(todo, uncertain)
            except Exception as e:  # noqa: BLE001 - a target's bug must not lose or ack a reading
                if not isinstance(e, TargetUnavailable):
                    self.log("%s: unexpected error (retrying): %s" % (t.name, traceback.format_exc().strip().splitlines()[-1]))
                self.counters.per[t.name]["retried"] += 1
                uncertain.update(keys)
                now = time.monotonic()
                if down_since is None:
                    down_since = now
                if now - last_log >= 30:
                    self.log("%s: %s; %d readings wait, retrying in %.1f s" % (t.name, e, len(todo), delay))
                    last_log = now
                if self.stop_event.wait(delay):
                    return False
                delay = min(BACKOFF_MAX_S, delay * 2)
                continue
            if down_since is not None:
                self.log("%s: back after %.0f s" % (t.name, time.monotonic() - down_since))
            by_key = {r.key: r for r in todo}
            done = []
            for key, reason in outcome.items():
                r = by_key.get(key)
                if r is None:
                    continue
                done.append(key)
                if reason:
                    self.counters.per[t.name]["dead_lettered"] += 1
                    self.log("%s: refused %s seq %d for good: %s" % (t.name, r.node, r.seq, reason))
                    self.dead.add(t.name, r.topic, r.payload, reason, r.seq)
                else:
                    self.counters.per[t.name]["forwarded"] += 1
            self.state.mark_done(t.name, done)
            todo = [r for r in todo if r.key not in outcome]
            if not todo:
                return True

    # -- health ---------------------------------------------------------------------------

    def status(self):
        return dict(self.counters.as_dict(), state="online", client_id=self.client_id, uptime_s=int(time.time() - self.started),
                    backlog=self.inbox.qsize(), left_at_broker=self.left_at_broker + self._left)  # fmt: skip

    def report(self):
        s = self.status()
        parts = ["%s %d forwarded, %d retried, %d dead-lettered" % (n, c["forwarded"], c["retried"], c["dead_lettered"])
                 for n, c in s["targets"].items()]  # fmt: skip
        self.log("received %d (%d malformed, %d duplicates); %s" % (s["received"], s["malformed"], s["duplicates"], "; ".join(parts)))
        if self.client is not None:
            self.client.publish(self.status_topic, json.dumps(s), qos=1, retain=True)

    def stop(self, *_):
        self.stop_event.set()

    def close(self):
        if self.client is None:
            return
        try:
            self.report()
            info = self.client.publish(self.status_topic, json.dumps({"state": "offline"}), qos=1, retain=True)
            info.wait_for_publish(2)
        except (RuntimeError, ValueError):
            pass
        for t in self.targets:
            t.close()
        mqtt.close(self.client)
        self.client = None


# -- the command ----------------------------------------------------------------------------


def _bridge_from_args(args):
    try:
        opts = mqtt.BrokerOptions.from_args(args)
        targets = parse_targets(args.to)
    except ValueError as e:
        raise Failure(str(e), 2) from None
    reg = {}
    if args.register:
        if not os.path.exists(args.register):
            raise Failure("--register %s does not exist" % args.register, EXIT_CONFIG)
        reg = fleet_register.load(args.register)
    if "sensor-community" in targets and not any(i.sensor_community for i in reg.values()):
        raise Failure("--to sensor-community pushes only the nodes the register opts in (column sensor_community); "
                      "no node in %s has one" % (args.register or "(no --register)"), EXIT_CONFIG)  # fmt: skip
    batch = {"auto": None, "on": True, "off": False}[args.batch]
    return Bridge(opts, targets, reg, args.state_dir, args.prefix, args.name, batch, args.max_batch, args.status_every,
                  max_held=args.max_held)  # fmt: skip


UNIT_TEMPLATE = """\
# streetnode bridge: the fleet's readings from the broker into the city's platforms.
# Written by `streetnode bridge ... --unit`; its state (what was delivered, dead letters)
# is in {state_dir}.
[Unit]
Description=streetnode bridge (MQTT to SensorThings / Home Assistant / sensor.community)
Wants=network-online.target
After=network-online.target
StartLimitIntervalSec=0

[Service]
Type=simple
User={user}
Group={user}
ExecStart={exec_start}
Environment=MALLOC_ARENA_MAX={arena_max}
StateDirectory={state_name}
StateDirectoryMode=0700
Restart=always
RestartSec=5
# SIGTERM: the batch in hand is not acknowledged, so the broker sends it again next start.
TimeoutStopSec=30
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=read-only
PrivateTmp=yes

[Install]
WantedBy=multi-user.target
"""


def unit_argv(argv):
    """The bridge's own arguments without --unit, --user, --python and --state-dir."""
    out = []
    skip = False
    for i, a in enumerate(argv):
        if skip:
            skip = False
            continue
        if a == "--unit":
            continue
        if a in ("--state-dir", "--unit-user", "--python"):
            skip = True
            continue
        if a.startswith(("--state-dir=", "--unit-user=", "--python=")):
            continue
        out.append(a)
    return out


def unit_text(argv, python=None, user=DEFAULT_USER, state_dir=STATE_DIR):
    cmd = [python or sys.executable, "-I", "-u", "-m", "streetnode.integrator.bridge"] + unit_argv(argv) + ["--state-dir", state_dir]
    return UNIT_TEMPLATE.format(exec_start=shlex.join(cmd), user=user, state_dir=state_dir, arena_max=MALLOC_ARENA_MAX,
                                state_name=state_dir.rstrip("/").split("/")[-1])  # fmt: skip


def run(args):
    if args.unit:
        argv = args.argv if getattr(args, "argv", None) is not None else sys.argv[2:]
        try:  # a unit that cannot start is refused here
            parse_targets(args.to)
            mqtt.parse_brokers(args.broker, args.tls or bool(args.ca))  # the password file is the service's to read
        except ValueError as e:
            raise Failure(str(e), 2) from None
        sys.stdout.write(unit_text(argv, args.python, args.unit_user, args.state_dir or STATE_DIR))
        return 0
    bridge = _bridge_from_args(args)
    try:
        bridge.start()
    except mqtt.BrokerError as e:
        raise Failure(str(e)) from None
    signal.signal(signal.SIGTERM, bridge.stop)
    signal.signal(signal.SIGINT, bridge.stop)
    bridge.run()
    return 0


EPILOG = """\
examples:
  # a city's SensorThings server (FROST or any v1.1) and Home Assistant on the same broker
  streetnode bridge --broker mqtt.siegen.de --ca city-ca.pem --user bridge --password-file bridge.pw \\
      --to sensorthings=https://sta.siegen.de/FROST-Server/v1.1 --to homeassistant \\
      --register fleet-register.csv --state-dir ./bridge-state

  # also push the opted-in nodes (register column sensor_community) to sensor.community
  streetnode bridge --broker 127.0.0.1:1883 --to sensorthings=http://127.0.0.1:8080/v1.1 \\
      --to sensor-community --register fleet-register.csv

  # as a systemd service: the same arguments and --unit print the unit file
  streetnode bridge --broker mqtt.siegen.de --ca /etc/streetnode/city-ca.pem --user bridge \\
      --password-file /etc/streetnode/bridge.pw --to sensorthings=https://sta.siegen.de/FROST-Server/v1.1 \\
      --register /etc/streetnode/fleet-register.csv --unit | sudo tee /etc/systemd/system/streetnode-bridge.service

files in --state-dir: state.json (what each target took), dead-letters.jsonl (refused readings,
  malformed messages, with the reason), homeassistant.json (the discovery configs announced)

exit codes: 0 stopped (SIGTERM/Ctrl-C), 1 the broker cannot be reached or another failure,
  2 usage, 4 bad register or state directory
"""


def add_arguments(p):
    mqtt.add_broker_options(p)
    p.add_argument("--to", action="append", metavar="TARGET", help="sensorthings=URL (the service root, "
                   "e.g. .../v1.1), homeassistant[=DISCOVERY_PREFIX], sensor-community[=URL]; repeatable")  # fmt: skip
    p.add_argument("--register", metavar="FILE", help="the fleet register (fleet-register.csv): sites, positions, chips")
    p.add_argument("--state-dir", metavar="DIR", help="delivery state and dead letters (default $STATE_DIRECTORY "
                   "or ~/.local/state/streetnode-bridge)")  # fmt: skip
    p.add_argument("--prefix", default="streetnode", help="the fleet's topic prefix (default streetnode)")
    p.add_argument("--name", default="bridge", help="this bridge's name: client id streetnode-bridge-NAME, its "
                   "status on PREFIX/_bridge/NAME/status (default bridge); two bridges need two names")  # fmt: skip
    p.add_argument("--batch", choices=("auto", "on", "off"), default="auto", help="SensorThings: many observations "
                   "per request with the DataArray extension (auto: when the server declares it)")  # fmt: skip
    p.add_argument("--max-batch", type=int, default=200, metavar="N", help="messages handled per round (default 200)")
    p.add_argument("--max-held", type=int, default=MAX_HELD, metavar="N", help="messages held in memory "
                   "unacknowledged (default %d); past them a message stays at the broker, which sends it "
                   "again when the bridge reconnects" % MAX_HELD)  # fmt: skip
    p.add_argument("--status-every", type=float, default=60.0, metavar="SECONDS", help="status line and retained "
                   "status message interval (default 60)")  # fmt: skip
    p.add_argument("--unit", action="store_true", help="print a systemd unit that runs the bridge with these arguments")
    p.add_argument("--unit-user", default=DEFAULT_USER, help="--unit: the service's user (default %s)" % DEFAULT_USER)
    p.add_argument("--python", metavar="PATH", help="--unit: the Python with streetnode installed (default this one)")
    p.set_defaults(func=run)


def register(sub):
    p = sub.add_parser(
        "bridge",
        help="carry every reading from the broker into SensorThings, Home Assistant and sensor.community",
        description="A long-running service: subscribes to the fleet's data with a persistent session and "
        "acknowledges each message only after every target took it, so nothing is lost while a target is "
        "down; a redelivered reading is not created twice.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(p)
    return p


def main(argv=None):
    """`python -m streetnode.integrator.bridge ...`: what the systemd unit starts."""
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(prog="python -m streetnode.integrator.bridge", epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    add_arguments(p)
    args = p.parse_args(argv)
    args.argv = argv
    args.command = "bridge"
    return errors.run(args)  # one line, as cli.main does; systemd restarts the service


if __name__ == "__main__":
    sys.exit(main())
