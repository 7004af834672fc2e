"""`streetnode check NODE`: the commissioning test a field crew runs before the ladder
comes down. It listens to the node's topics, asks it for a health report at once
(the `health` command), waits for its retained status, a few readings and a fresh
health message, and then judges each item PASS or FAIL with the reason.

Exit codes: 0 every check passed; 1 something failed (or the broker could not be
used); 2 usage error; 3 the node never showed up within --timeout.
"""

import argparse
import json
import re
import sys
import time

from streetnode.field import fleetwatch
from streetnode.common import errors, nodeid, options
from streetnode.common.mqtt import BrokerOptions, add_broker_options
from streetnode.field.capture import LiveSource, retained
from streetnode.common.paths import REPO

EXIT_PASS = errors.EXIT_OK
EXIT_FAIL = errors.EXIT_FAILED
EXIT_USAGE = errors.EXIT_USAGE
EXIT_NOT_FOUND = errors.EXIT_NOT_FOUND

WATCHDOG_CAUSES = ("wdt", "watchdog")
NOT_READY = ("warmup", "closed")  # sensor slot states that are worth waiting for


def monitor_ago(seconds):
    from streetnode.field.monitor import ago

    return ago(seconds)


def firmware_version():
    """The version of the firmware in this checkout (firmware/version.py)."""
    text = (REPO / "firmware" / "version.py").read_text()
    m = re.search(r'FW_VERSION\s*=\s*"([^"]+)"', text)
    return m.group(1) if m else None


class Item:
    __slots__ = ("name", "ok", "detail", "na")

    def __init__(self, name, ok, detail, na=False):
        self.name, self.ok, self.detail, self.na = name, ok, detail, na

    def verdict(self):
        return "PASS" if self.ok else "FAIL"

    def as_dict(self):
        d = {"check": self.name, "result": "pass" if self.ok else "fail", "detail": self.detail}
        if self.na:
            d["result"] = "n/a"
        return d


class Countdown:
    """Progress while waiting: in place on a terminal, plain lines otherwise (a line when
    the progress changes, else at most every 10 s)."""

    def __init__(self, stream, enabled=True):
        self.stream = stream
        self.tty = enabled and hasattr(stream, "isatty") and stream.isatty()
        self.enabled = enabled
        self.last_text = None
        self.last_t = 0.0

    def show(self, text, left_s):
        if not self.enabled:
            return
        now = time.monotonic()
        line = "%s  (%d s left)" % (text, max(0, int(left_s + 0.999)))
        if self.tty:
            self.stream.write("\r\x1b[K" + line)
            self.stream.flush()
        elif text != self.last_text or now - self.last_t >= 10:
            self.stream.write(line + "\n")
            self.stream.flush()
            self.last_text, self.last_t = text, now

    def done(self):
        if self.tty:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


class Commissioning:
    """The state of one check: a Fleet model fed by the node's messages, and the health
    commands sent. Pure apart from `send` (a function(topic, payload)), so tests can
    replay messages into it."""

    def __init__(self, node, prefix="streetnode", readings=3, send=None, stuck_s=30.0):
        self.node_id = node
        self.prefix = prefix
        self.readings = readings
        self.stuck_s = stuck_s
        self.fleet = fleetwatch.Fleet(prefix, stuck_n=readings, stuck_s=stuck_s)
        self.first_data_t = None
        self.send = send
        self.health_asked = []  # times the health command went out
        self.first_health = None
        self.data_count = 0
        self._n = 0

    @property
    def node(self):
        return self.fleet.nodes.get(self.node_id)

    def ask_health(self, t):
        self._n += 1
        if self.send:
            cmd = {"id": "check-%d-%d" % (int(t), self._n), "cmd": "health", "args": {}}
            self.send("%s/%s/cmd" % (self.prefix, self.node_id), json.dumps(cmd))
        self.health_asked.append(t)

    def feed(self, topic, payload, t, retained=False):
        before = self.node
        prev = (before.status or {}).get("state") if before is not None and before.status else None
        who = self.fleet.feed(topic, payload, t, retained)
        if who != self.node_id:
            return
        kind = topic.rsplit("/", 1)[-1]
        n = self.node
        if topic.endswith("/health") and self.first_health is None:
            self.first_health = n.health
        if kind == "data":
            self.data_count += 1
            if self.first_data_t is None:
                self.first_data_t = t
        if kind == "status" and prev not in (None, "online") and n.status.get("state") == "online":
            self.ask_health(t)  # it came (back) online: it missed what was sent while it was away

    def live(self):
        """True once the node showed a sign of life (online status, data or health)."""
        n = self.node
        if n is None:
            return False
        return (n.status or {}).get("state") == "online" or n.last_data_t is not None or n.health is not None

    def waiting_for(self):
        """What is still missing, as a list of short phrases (empty: ready to judge)."""
        n = self.node
        if n is None or n.status is None:
            return ["status"]
        out = []
        if n.status.get("state") != "online" and n.last_data_t is None:
            out.append("online status")
        if self.data_count < self.readings:
            out.append("readings %d/%d" % (self.data_count, self.readings))
        elif n.last_data_t - self.first_data_t < self.stuck_s:
            out.append("readings over %.0f s (to tell a stuck sensor)" % self.stuck_s)
        else:
            states = (n.health or {}).get("sensors") or {}
            # worth waiting for: a sensor warming up, or one giving values that has too few yet
            slow = [name for name, tr in sorted(n.sensors.items())
                    if tr.valued < self.readings and (states.get(name) in NOT_READY or (tr.valued and not tr.nulls))]
            if slow or (n.health is None and any(tr.valued < self.readings for tr in n.sensors.values())):
                out.append("sensors starting up (%s)" % ", ".join(slow) if slow else "sensor states")
        last_ask = self.health_asked[-1] if self.health_asked else None
        if n.health is None or (last_ask is not None and n.health_t < last_ask):
            out.append("health")
        return out

    def progress(self):
        n = self.node
        state = ((n.status or {}).get("state") or "no status") if n else "no status"
        return "%s (%s): waiting for %s" % (self.node_id, state, ", ".join(self.waiting_for()) or "nothing")

    # -- the verdict ---------------------------------------------------------------------

    def judge(self, t, expected_fw=None, min_rssi=-80, max_skew_s=120):
        n = self.node
        items = []
        st = (n.status or {}) if n else {}
        h = (n.health or {}) if n else {}
        # online
        state = st.get("state")
        if state == "online":
            items.append(Item("online", True, "online (status retained by the broker)"))
        elif state:
            items.append(Item("online", False, "status says %s" % state))
        else:
            items.append(Item("online", False, "no status message"))
        # firmware
        fw = st.get("fw") or h.get("fw")
        if fw is None:
            items.append(Item("firmware", False, "the node did not say its firmware version"))
        elif expected_fw and fw != expected_fw:
            items.append(Item("firmware", False, "%s, expected %s" % (fw, expected_fw)))
        else:
            items.append(Item("firmware", True, fw if not expected_fw else "%s (as expected)" % fw))
        # clock
        d = n.data if n else None
        if d is None:
            items.append(Item("clock", False, "no reading to judge the clock by"))
        else:
            ts = d.get("ts")
            arrived = n.seqs.get(d.get("seq"), (None, t))[1]
            if d.get("synced") is False or ts is None:
                items.append(Item("clock", False, "not synced (ts %s): readings carry no time" % ("null" if ts is None else ts)))
            elif abs(ts - arrived) > max_skew_s:
                items.append(Item("clock", False, "node clock %+.0f s off this computer's (more than %d s)" % (ts - arrived, max_skew_s)))
            else:
                items.append(Item("clock", True, "synced, within %.0f s of this computer's clock" % abs(ts - arrived)))
        # sensors
        names = set(n.sensors) if n else set()
        names |= set((h.get("errors") or {})) | set((h.get("sensors") or {}))
        if not names:
            items.append(Item("sensors", False, "no sensor seen in readings or health"))
        e0 = (self.first_health or {}).get("errors") or {}
        e1 = h.get("errors") or {}
        states = h.get("sensors") or {}
        for name in sorted(names):
            items.append(self._sensor(n, name, e0.get(name), e1.get(name), states.get(name)))
        # outbox
        if not h:
            items.append(Item("outbox", False, "no health message"))
        elif h.get("outbox") == 0:
            items.append(Item("outbox", True, "empty (records ever dropped: %s)" % h.get("dropped", "?")))
        else:
            items.append(Item("outbox", False, "%s record(s) waiting to be published" % h.get("outbox")))
        # signal
        rssi = h.get("rssi")
        if not h:
            items.append(Item("signal", False, "no health message"))
        elif rssi is None:
            items.append(Item("signal", True, "n/a (no radio)", na=True))
        elif rssi >= min_rssi:
            items.append(Item("signal", True, "%d dBm (at least %d dBm)" % (rssi, min_rssi)))
        else:
            items.append(Item("signal", False, "%d dBm, weaker than %d dBm: move the antenna or the node" % (rssi, min_rssi)))
        # reboots
        count = n.boot_count if n else None
        cause = st.get("reset_cause") or h.get("reset_cause")
        during = len(n.boots) if n else 0
        if count is None:
            items.append(Item("reboots", False, "the node did not say its boot count"))
        elif during:
            items.append(Item("reboots", False, "rebooted %d time(s) during the check (boot count %d, last reset %s)" % (during, count, cause)))
        elif cause in WATCHDOG_CAUSES:
            items.append(Item("reboots", False, "last reset by the watchdog (boot count %d): the firmware hung" % count))
        else:
            items.append(Item("reboots", True, "boot count %d, last reset %s" % (count, cause)))
        # config
        if h:
            err = h.get("config_error")
            if err:
                items.append(Item("config", False, "running on the last good config: %s" % err))
            else:
                items.append(Item("config", True, "config.json valid"))
        return items

    def _sensor(self, n, name, errors_before, errors_now, state):
        label = "sensor %s" % name
        tr = n.sensors.get(name) if n else None
        if tr is None or tr.valued == 0:
            why = "no values in %d reading(s)" % (tr.readings if tr else 0)
            if state:
                why += " (state %s)" % state
            return Item(label, False, why)
        if tr.ever_bad:
            return Item(label, False, "implausible: " + "; ".join(tr.ever_bad[q] for q in sorted(tr.ever_bad)))
        if tr.stuck(self.readings, self.stuck_s, n.last_data_t):
            return Item(label, False, "stuck: the same values in %d readings in a row (%s)" % (
                tr.repeats, ", ".join("%s %s" % (q, fleetwatch._num(v)) for q, v in tr.signature)))  # fmt: skip
        if isinstance(errors_before, int) and isinstance(errors_now, int) and errors_now > errors_before:
            return Item(label, False, "error count rose from %d to %d during the check" % (errors_before, errors_now))
        if tr.nulls:
            return Item(label, False, "no values in the latest %d reading(s) (state %s)" % (tr.nulls, state))
        if tr.valued < self.readings:
            return Item(label, False, "only %d reading(s) with values, %d needed to judge it" % (tr.valued, self.readings))
        shown = []
        for q in sorted(tr.latest):
            v = tr.latest[q]
            unit = fleetwatch.UNITS.get(fleetwatch.base_quantity(q) or "", "")
            shown.append("%s %s%s" % (q, "n/a" if v is None else fleetwatch._num(v), " " + unit if unit and v is not None else ""))
        return Item(label, True, ", ".join(shown))


DEFAULT_TIMEOUT_S = 300.0  # three readings at a 60 s interval, plus a PM sensor's warm-up
DEFAULT_READINGS = 3
DEFAULT_STUCK_S = 30.0
DEFAULT_MIN_RSSI = -80
DEFAULT_MAX_SKEW_S = 120.0


def validate(readings, timeout):
    """The check's own limits, for every caller (`check`, `serve`)."""
    if readings < 3:
        raise errors.UsageError("--readings must be at least 3 (fewer cannot tell a stuck sensor)")
    if timeout <= 0:
        raise errors.UsageError("--timeout must be positive")


def topics(prefix, node):
    """What a check listens to."""
    base = "%s/%s/" % (prefix, node)
    return [base + "status", base + "data", base + "health", base + "cmd/result"]


def commission(src, node, prefix="streetnode", readings=DEFAULT_READINGS, stuck_s=DEFAULT_STUCK_S,
               timeout=DEFAULT_TIMEOUT_S, expected_fw=None, min_rssi=DEFAULT_MIN_RSSI,
               max_skew_s=DEFAULT_MAX_SKEW_S, progress=None, broker=""):  # fmt: skip
    """One commissioning check on an open message source (`get(timeout)`, `drain()`,
    `publish(topic, payload)` and an `on_connect` attribute called after a broker reconnect;
    subscribed to `topics(prefix, node)`): ask for health, wait for what is missing, judge.
    progress(text, seconds_left) is called while waiting. Returns (exit code, result dict);
    the source stays open (its owner closes it)."""
    validate(readings, timeout)
    expected = expected_fw or firmware_version()
    com = Commissioning(node, prefix, readings, send=src.publish, stuck_s=stuck_s)
    started = time.time()
    deadline = time.monotonic() + timeout
    asked_final = False
    com.ask_health(time.time())
    src.on_connect = lambda: com.ask_health(time.time())  # after a broker reconnect
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        msg = src.get(min(0.25, left))
        batch = ([msg] if msg else []) + src.drain()
        for m in batch:
            com.feed(m[0], m[1], m[2], retained(m))
        missing = com.waiting_for()
        if not asked_final and not any(m.startswith(("readings", "sensors")) for m in missing):
            # the readings are in: a fresh health tells the outbox and error counts now
            com.ask_health(time.time())
            asked_final = True
            missing = com.waiting_for()
        if asked_final and not missing:
            break
        if progress:
            progress(com.progress(), left)
    finished = time.time()
    result = {"node": node, "broker": broker, "prefix": prefix, "started": started,
              "finished": finished, "readings": com.data_count}  # fmt: skip
    if not com.live():
        n = com.node
        last = ""
        if n is not None and n.status:
            heard = "at an unknown time" if n.heard is None else "%s ago (%s)" % (
                monitor_ago(time.time() - n.heard), fleetwatch.stamp(n.heard))  # fmt: skip
            last = " (its retained status says %s, boot count %s; last heard %s)" % (
                n.status.get("state"), n.status.get("boot_count"), heard)  # fmt: skip
        result.update(result="not_found", exit_code=EXIT_NOT_FOUND, checks=[],
                      reason="no sign of %s within %.0f s%s" % (node, timeout, last))  # fmt: skip
        return EXIT_NOT_FOUND, result
    items = com.judge(time.time(), expected, min_rssi, max_skew_s)
    failed = [i for i in items if not i.ok]
    code = EXIT_FAIL if failed else EXIT_PASS
    n = com.node
    result.update(
        result="fail" if failed else "pass",
        exit_code=code,
        checks=[i.as_dict() for i in items],
        status=n.status,
        health=n.health,
        latest=n.data,
        waited_for=com.waiting_for(),
    )
    return code, result


def run_check(args, out=sys.stdout, err=sys.stderr, source_factory=LiveSource):
    """The whole check; returns (exit code, result dict)."""
    opts = BrokerOptions.from_args(args)
    validate(args.readings, args.timeout)
    prefix = args.prefix.rstrip("/")
    src = source_factory(opts, topics(prefix, args.node), name="streetnode-check")
    countdown = Countdown(err if args.json else out, enabled=not args.quiet)
    try:
        return commission(src, args.node, prefix, args.readings, args.stuck_s, args.timeout, args.expect_fw,
                          args.min_rssi, args.max_clock_skew, countdown.show, opts.address)  # fmt: skip
    finally:
        countdown.done()
        src.close()


def render(result):
    """The line-by-line text of a result."""
    lines = ["streetnode check %s on %s (prefix %s)" % (result["node"], result["broker"], result["prefix"])]
    if result["result"] == "not_found":
        lines.append("NOT FOUND  %s" % result["reason"])
        lines.append("Is the node powered and in Wi-Fi range, and are NODE, --broker and --prefix right?")
        return "\n".join(lines)
    for c in result["checks"]:
        verdict = {"pass": "PASS", "fail": "FAIL", "n/a": "PASS"}[c["result"]]
        lines.append("%s  %-14s %s" % (verdict, c["check"], c["detail"]))
    failed = [c for c in result["checks"] if c["result"] == "fail"]
    if result.get("waited_for"):
        lines.append("(still waiting for %s when the time was up)" % ", ".join(result["waited_for"]))
    if failed:
        lines.append("RESULT: FAIL - %d of %d checks failed: %s" % (len(failed), len(result["checks"]),
                                                                   ", ".join(c["check"] for c in failed)))  # fmt: skip
    else:
        lines.append("RESULT: PASS - all %d checks passed" % len(result["checks"]))
    return "\n".join(lines)


def report_text(result, as_json=False):
    """The report for the fleet register: JSON, or the text `check` prints, with its time."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(result["finished"]))
    if as_json:
        return json.dumps(dict(result, checked_at=stamp), indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    return "Commissioning check, %s\n%s\n" % (stamp, render(result))


def _write_report(path, result):
    with open(path, "w", encoding="utf-8") as f:
        f.write(report_text(result, path.endswith(".json")))


def main(args, out=None, err=None):
    out = out or sys.stdout
    err = err or sys.stderr
    code, result = run_check(args, out, err)
    if args.json:
        out.write(json.dumps(result, sort_keys=True, ensure_ascii=False) + "\n")
    else:
        out.write(render(result) + "\n")
    out.flush()
    if args.report:
        _write_report(args.report, result)
    return code


EPILOG = """examples:
  streetnode check lamp-0042 --broker mqtt.siegen.de:1883
  streetnode check lamp-0042 --broker mqtt.siegen.de --tls --ca city-ca.pem --user crew \\
      --password-file ~/.crew-pw --report lamp-0042-commissioning.txt
  streetnode check sim-1 --broker 127.0.0.1:1883 --json --timeout 60

what is checked (each line PASS or FAIL with the reason):
  online      the retained status says online
  firmware    the node's version is --expect-fw (default: this checkout's firmware/version.py)
  clock       readings are time-stamped (synced) and within --max-clock-skew of this computer
  sensor X    each configured sensor gives values, inside physically plausible bounds, not
              the same values in every reading (stuck), and its error count does not rise
  outbox      nothing waiting to be published
  signal      Wi-Fi RSSI at least --min-rssi dBm; "n/a (no radio)" on nodes without one
  reboots     no reboot during the check, last reset not by the watchdog
  config      the node runs on its config.json, not on the last good one

exit codes: 0 all passed, 1 a check failed (or the broker could not be used),
            2 usage error, 3 the node never showed up within --timeout
"""


def register(sub):
    p = sub.add_parser(
        "check",
        help="commissioning test of one node: PASS/FAIL per item, exit 0 only when all pass",
        description="Waits (with a countdown) for the node's retained status, a few readings and a "
        "health message (asked for at once with the health command), then reports line by line "
        "PASS or FAIL with the reason.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("node", metavar="NODE", type=nodeid.argument, help="the node id, e.g. lamp-0042 (a-z 0-9 -)")
    add_broker_options(p, help_broker="the MQTT broker the node publishes to")
    p.add_argument("--prefix", default="streetnode", help="topic prefix (default streetnode)")
    p.add_argument("--timeout", type=options.positive_float, default=DEFAULT_TIMEOUT_S, metavar="S",
                   help="give up after this many seconds (default 300: three readings at a 60 s interval, "
                   "plus a PM sensor's warm-up)")  # fmt: skip
    p.add_argument("--readings", type=int, default=DEFAULT_READINGS, metavar="N", help="readings to wait for (default 3, at least 3)")
    p.add_argument("--stuck-s", type=options.nonnegative_float, default=DEFAULT_STUCK_S, metavar="S",
                   help="readings must span S seconds before a sensor repeating its values counts as stuck "
                   "(default 30: an SCD4x measures only every 5 s)")  # fmt: skip
    p.add_argument("--expect-fw", metavar="VERSION", help="expected firmware version (default: this checkout's)")
    p.add_argument("--min-rssi", type=int, default=DEFAULT_MIN_RSSI, metavar="DBM", help="weakest acceptable Wi-Fi signal (default -80)")
    p.add_argument("--max-clock-skew", type=options.positive_float, default=DEFAULT_MAX_SKEW_S, metavar="S",
                   help="largest accepted difference between the node's ts and this computer's clock (default 120)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the result as one JSON object (the countdown goes to stderr)")
    p.add_argument("--report", metavar="FILE", help="also write the result to FILE (JSON if it ends in .json, else text)")
    p.add_argument("--quiet", action="store_true", help="no countdown")
    p.set_defaults(func=main)
    return p
