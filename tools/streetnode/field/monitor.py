"""`streetnode monitor`: a live table of the whole fleet with alerts, for the operations desk.

On a terminal the table is redrawn in place (cursor home, each line cleared to its end,
never the whole screen: no flicker with hundreds of nodes), at most a few times a
second, alerting nodes first, cut to the terminal's height with a "… N more" line.
When stdout is not a terminal (a log file, a pipe) alerts and clears are printed as
lines instead. --capture FILE records every message and alert for `streetnode report`.

Exit codes: 0 no alert active at the end (--once/--duration, or Ctrl-C); 1 an alert was
active at the end, or the broker could not be used; 2 usage error.
"""

import argparse
import shutil
import sys
import time

from streetnode.field import fleetwatch
from streetnode.common import mqtt, options
from streetnode.field.capture import CaptureWriter, LiveSource, retained

SHORT = {
    "temperature": ("", "°C", 1),
    "humidity": ("", "%RH", 0),
    "pressure": ("", "hPa", 0),
    "pm1_0": ("pm1 ", "µg/m³", 0),
    "pm2_5": ("pm2.5 ", "µg/m³", 0),
    "pm10": ("pm10 ", "µg/m³", 0),
    "co2": ("", "ppm", 0),
    "illuminance": ("", "lx", 0),
}
ORDER = ("temperature", "humidity", "pressure", "pm2_5", "pm10", "pm1_0", "co2", "illuminance")


def natural(node_id):
    """sim-2 before sim-10."""
    out = []
    num = ""
    for ch in node_id + "\0":
        if ch.isdigit():
            num += ch
            continue
        if num:
            out.append((1, int(num), ""))
            num = ""
        if ch != "\0":
            out.append((0, 0, ch))
    return out


def ago(seconds):
    if seconds is None:
        return "-"
    s = max(0, seconds)
    if s < 90:
        return "%ds" % s
    if s < 5400:
        return "%dm" % (s // 60)
    if s < 172800:
        return "%dh" % (s // 3600)
    return "%dd" % (s // 86400)


def readings_text(n):
    """The latest value of each quantity (first sensor that has it), with units."""
    seen = {}
    for name in sorted(n.sensors):
        for q, v in n.sensors[name].latest.items():
            if q in SHORT and v is not None and q not in seen:
                seen[q] = v
    parts = []
    for q in ORDER:
        if q in seen:
            label, unit, digits = SHORT[q]
            parts.append("%s%.*f%s" % (label, digits, seen[q], unit))
    return " ".join(parts) if parts else "-"


def alerts_text(n):
    if not n.alerts:
        return ""
    parts = []
    for (kind, subject), a in sorted(n.alerts.items()):
        if kind == "gap":
            parts.append("gap(%d lost)" % len(n.lost))
        else:
            parts.append("%s%s" % (kind, "(" + subject + ")" if subject else ""))
    return " ".join(parts)


HEADER = ("node", "state", "seen", "seq", "lost", "box", "rc", "err", "readings", "alerts")


def ordered(fleet):
    """Alerting nodes first (most alerts first), then by node id."""
    return sorted(fleet.nodes.values(), key=lambda n: (-len(n.alerts), natural(n.id)))


def row(n, now):
    h = n.health or {}
    errs = h.get("errors")
    err = sum(v for v in errs.values() if isinstance(v, int)) if isinstance(errs, dict) else None
    return (
        n.id, (n.status or {}).get("state") or "?", ago(None if n.heard is None else now - n.heard),
        _s(n.hi), str(len(n.lost)), _s(h.get("outbox")), _s(h.get("reconnects")), _s(err),
        readings_text(n), alerts_text(n),
    )  # fmt: skip


def rows(fleet, now):
    return [row(n, now) for n in ordered(fleet)]


def _s(v):
    return "-" if v is None else str(v)


def table(fleet, now, width=200, height=None):
    """The table as lines of at most `width` characters, at most `height` lines in all.
    Only the rows that fit are formatted: a redraw costs the screen, not the fleet."""
    nodes = ordered(fleet)
    alerting = sum(1 for n in nodes if n.alerts)
    title = "streetnode monitor  %s  %d node(s), %d alerting" % (
        time.strftime("%H:%M:%S", time.localtime(now)), len(nodes), alerting)  # fmt: skip
    shown = nodes
    if height is not None and len(nodes) > height - 2:
        shown = nodes[: max(0, height - 3)]
    body = [row(n, now) for n in shown]
    widths = [len(h) for h in HEADER]
    widths[0] = 8  # short ids (sim-1) still line up
    for r in body:
        for i in range(len(HEADER) - 1):
            widths[i] = max(widths[i], len(r[i]))
    widths[0] = min(widths[0], 32)
    fmt = "  ".join("%%-%ds" % w if i in (0, 1, 8) else "%%%ds" % w for i, w in enumerate(widths[:-1])) + "  %s"
    lines = [title, fmt % HEADER]
    for r in body:
        lines.append(fmt % r)
    if len(shown) < len(nodes):
        lines.append("… %d more" % (len(nodes) - len(shown)))
    return [line[:width] for line in lines]


class Screen:
    """In-place redraws on a terminal: cursor home, each line followed by clear-to-end-of-
    line, then clear below; no full-screen clear, so nothing flickers."""

    def __init__(self, stream, max_fps=4.0):
        self.stream = stream
        self.min_gap = 1.0 / max_fps
        self.last = 0.0
        self.redraws = 0
        self.started = False

    def size(self):
        cols, lines = shutil.get_terminal_size((120, 40))  # COLUMNS/LINES, the terminal, or 120x40
        return max(cols, 20), max(lines, 5)

    def due(self, now):
        return now - self.last >= self.min_gap

    def draw(self, lines, now):
        if not self.started:
            self.stream.write("\x1b[?25l\x1b[H")  # hide the cursor while we draw
            self.started = True
        self.stream.write("\x1b[H" + "".join(line + "\x1b[K\r\n" for line in lines[:-1]) + lines[-1] + "\x1b[K\x1b[J")
        self.stream.flush()
        self.last = now
        self.redraws += 1

    def close(self):
        if self.started:
            self.stream.write("\r\n\x1b[?25h")
            self.stream.flush()


def _stamp(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def fleet_options(args):
    opt = {}
    for name in ("silence_factor", "min_silence_s", "stuck_n", "stuck_s", "reboot_k", "reboot_window_s", "gap_grace_s", "interval_s"):
        v = getattr(args, name, None)
        if v is not None:
            opt[name] = v
    return opt


def watch(source, fleet, out, duration=None, once=False, settle=3.0, capture=None, tty=None, events_shown=5,
          clock=time.time):  # fmt: skip
    """Feed messages from `source` into `fleet` and show it until the duration is over
    (None: until Ctrl-C). Returns the list of all events."""
    tty = out.isatty() if tty is None and hasattr(out, "isatty") else bool(tty)
    screen = Screen(out) if tty and not once else None
    start = clock()
    end = start + (settle if once else duration) if (once or duration) else None
    recent = []
    all_events = []
    last_tick = 0.0
    dirty = True
    try:
        while True:
            now = clock()
            if end is not None and now >= end:
                break
            msg = source.get(0.1)
            batch = ([msg] if msg else []) + source.drain()
            for msg in batch:
                topic, payload, t = msg
                fleet.feed(topic, payload, t, retained(msg))
                if capture:
                    capture.message(topic, payload, t, retained(msg))
                dirty = True
            now = clock()
            if now - last_tick >= 0.25:
                last_tick = now
                events = fleet.tick(now)
                for ev in events:
                    all_events.append(ev)
                    line = "%s %s" % (_stamp(ev.t), ev.text())
                    if capture:
                        capture.event(ev)
                    if screen is not None:
                        recent.append(line)
                        del recent[:-events_shown]
                    elif not once:
                        out.write(line + "\n")
                        out.flush()
                    dirty = True
                if capture:
                    capture.flush()
            if screen is not None and (dirty or now - screen.last >= 1.0) and screen.due(now):
                cols, lines = screen.size()
                room = max(3, lines - 1 - (len(recent) + 1 if recent else 0))
                shown = table(fleet, now, cols, room)
                if recent:
                    shown = shown + ["recent events:"] + [r[:cols] for r in recent]
                screen.draw(shown, now)
                dirty = False
    except KeyboardInterrupt:
        pass
    finally:
        if screen is not None:
            screen.close()
    now = clock()
    all_events.extend(fleet.tick(now))
    if once or screen is None:
        if once:
            for ev in all_events:
                out.write("%s %s\n" % (_stamp(ev.t), ev.text()))
        out.write("\n".join(table(fleet, now)) + "\n")
        out.flush()
    return all_events


def main(args, out=None):
    out = out or sys.stdout
    opts = mqtt.BrokerOptions.from_args(args)
    prefix = args.prefix.rstrip("/")
    fleet = fleetwatch.Fleet(prefix, **fleet_options(args))
    if args.register:
        from streetnode.field.retire import retired as retired_nodes

        fleet.retired = retired_nodes(args.register)
    src = LiveSource(opts, fleet_topics(prefix), name="streetnode-monitor")
    capture = CaptureWriter(args.capture) if args.capture else None
    try:
        watch(src, fleet, out, duration=args.duration, once=args.once, settle=args.settle, capture=capture)
    finally:
        src.close()
        if capture:
            capture.close()
    return 1 if fleet.alerts() else 0


EPILOG = """examples:
  streetnode monitor --broker mqtt.siegen.de:1883
  streetnode monitor --broker mqtt.siegen.de:1883 --capture week48.jsonl
  streetnode monitor --broker mqtt.siegen.de --tls --ca city-ca.pem --user ops --password-file ~/.ops-pw
  streetnode monitor --broker 127.0.0.1:1883 --once            # one table, for a script
  streetnode monitor --broker 127.0.0.1:1883 --duration 3600 > alerts.log

alerts:
  silent       no data for --silence-factor x the node's interval (learnt from its data)
  gap          readings lost for good (seq numbers that will never arrive), counted
  stuck        a sensor repeating exactly the same values --stuck-n readings in a row
               and for --stuck-s seconds
  bounds       a reading outside physically plausible bounds
  no_values    a sensor giving only nulls (not while it warms up)
  reboot_loop  the boot count rising --reboot-k times within --reboot-window seconds
  offline      the status says offline (the node left, or its will) and it has not been
               heard for the silence limit

columns: seen = since the node was last heard (by its own ts for the messages the
broker retained; "-": never, or a retained message without a time), lost = readings lost, box = outbox depth,
rc = reconnects, err = sensor errors (from the latest health message)

exit codes: 0 no alert active at the end, 1 an alert active at the end (or the broker
could not be used), 2 usage error
"""


def fleet_topics(prefix):
    """What a node publishes: status, data, health (not its cmd topics)."""
    return ["%s/+/%s" % (prefix, kind) for kind in ("status", "data", "health")]


def add_alert_options(p):
    p.add_argument("--interval", dest="interval_s", type=options.positive_float, metavar="S",
                   help="the fleet's sampling interval (default: learnt per node from its data)")  # fmt: skip
    p.add_argument("--silence-factor", type=options.positive_float, metavar="X", help="silent after X intervals without data (default 3)")
    p.add_argument("--min-silence", dest="min_silence_s", type=options.nonnegative_float, metavar="S", help="and at least S seconds (default 5)")
    p.add_argument("--stuck-n", type=options.positive_int, metavar="N", help="stuck after N identical readings in a row (default 10)")
    p.add_argument("--stuck-s", type=options.nonnegative_float, metavar="S", help="... over at least S seconds (default 30)")
    p.add_argument("--reboot-k", type=options.positive_int, metavar="K", help="a reboot loop is K reboots ... (default 3)")
    p.add_argument("--reboot-window", dest="reboot_window_s", type=options.positive_float, metavar="S", help="... within S seconds (default 3600)")
    p.add_argument("--gap-grace", dest="gap_grace_s", type=options.nonnegative_float, metavar="S",
                   help="a missing seq counts as lost after S seconds even without a health message (default 600)")  # fmt: skip


def register(sub):
    p = sub.add_parser(
        "monitor",
        help="live table of the whole fleet with alerts (silent, lost readings, stuck, bounds, reboot loops)",
        description="Subscribes to every node under the prefix and shows a live table: last seen, latest "
        "readings with units, outbox depth, reconnects, sensor errors and alerts. Without a terminal, "
        "prints alerts as lines.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    mqtt.add_broker_options(p, help_broker="the fleet's MQTT broker")
    p.add_argument("--prefix", default="streetnode", help="topic prefix (default streetnode)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--once", action="store_true", help="listen --settle seconds, print one table and exit")
    g.add_argument("--duration", type=options.positive_float, metavar="S", help="stop after S seconds (default: until Ctrl-C)")
    p.add_argument("--settle", type=options.positive_float, default=3.0, metavar="S", help="how long --once listens (default 3)")
    p.add_argument("--capture", metavar="FILE", help="append every message and alert to FILE (JSON lines) for report")
    p.add_argument("--register", metavar="FILE", help="fleet-register.csv: leave out the nodes it marks retired "
                   "(streetnode retire)")  # fmt: skip
    add_alert_options(p)
    p.set_defaults(func=main)
    return p
