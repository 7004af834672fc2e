"""`streetnode report`: the weekly look at the network. From a capture (written by
`streetnode monitor --capture`) or a live listen of --duration seconds, per node:
data completeness (distinct seqs received against those expected from the seq range),
the missing seq ranges, reboots, and a PNG plot of each quantity over time; with a
summary in Markdown and JSON.

    OUT/summary.md  OUT/summary.json  OUT/<node>/<quantity>.png  (OUT/capture.jsonl when live)

Exit codes: 0 report written; 1 nothing to report or an input that cannot be used;
2 usage error.
"""

import argparse
import json
import os
import re
import sys
import time
from datetime import datetime, timezone

from streetnode.field import fleetwatch
from streetnode.common import mqtt, options
from streetnode.common.errors import UsageError
from streetnode.field.capture import CaptureWriter, LiveSource, read_capture, retained
from streetnode.field.monitor import fleet_topics

_REL = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_time(text, now=None):
    """Unix seconds from an ISO 8601 time (UTC unless it says otherwise) or a relative
    one: 7d, 12h, 30m, 90s, 2w before now."""
    now = time.time() if now is None else now
    s = (text or "").strip()
    m = _REL.match(s)
    if m:
        return now - float(m.group(1)) * _UNIT_S[m.group(2)]
    try:
        dt = datetime.fromisoformat(s[:-1] + "+00:00" if s.endswith("Z") else s)
    except ValueError:
        raise ValueError("not a time: %r (use ISO 8601 such as 2026-11-20T08:00Z, or 7d, 12h, 30m)" % text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def load(path, since=None, until=None):
    return list(read_capture(path, since, until))


def summarise(messages, prefix="streetnode", retired=()):
    """The report's numbers, from (topic, payload, t) messages in arrival order; the nodes in
    `retired` left out."""
    fleet = fleetwatch.Fleet(prefix, gap_grace_s=0.0)
    fleet.retired = set(retired)
    series = {}  # node -> quantity -> sensor -> [(time, value)]
    boot_counts = {}  # node -> boot counts in the order seen (status and health), never falling
    first_t = last_t = None
    for m in messages:
        topic, payload, t = m
        node = fleet.feed(topic, payload, t, retained(m))
        if node is None:
            continue
        first_t = t if first_t is None else min(first_t, t)
        last_t = t if last_t is None else max(last_t, t)
        try:
            msg = json.loads(payload)
        except ValueError:
            continue
        if not topic.endswith("/data"):
            c = msg.get("boot_count")
            seen = boot_counts.setdefault(node, [])
            if isinstance(c, int) and not isinstance(c, bool) and (not seen or c >= seen[-1]):
                seen.append(c)
        else:
            when = msg.get("ts") if isinstance(msg.get("ts"), (int, float)) else t
            sensors = msg.get("sensors") if isinstance(msg.get("sensors"), dict) else {}
            for sname, values in sensors.items():
                if not isinstance(values, dict):
                    continue
                for q, v in values.items():
                    if isinstance(v, (int, float)) and not isinstance(v, bool):
                        series.setdefault(node, {}).setdefault(q, {}).setdefault(sname, []).append((when, v))
    if last_t is not None:
        fleet.tick(last_t)  # the state at the end of the capture: offline, silent, ...
    nodes = {}
    for node_id in sorted(fleet.nodes, key=_natural):
        n = fleet.nodes[node_id]
        received = expected = 0
        gaps = []
        for epoch in n.epochs:
            if not epoch:
                continue
            lo, hi = min(epoch), max(epoch)
            received += len(epoch)
            expected += hi - lo + 1
            gaps.extend(fleetwatch.ranges(s for s in range(lo, hi + 1) if s not in epoch))
        all_seqs = n.all_seqs()
        boots = boot_counts.get(node_id)
        nodes[node_id] = {
            "received": received,
            "expected": expected,
            "missing": expected - received,
            "completeness": round(100.0 * received / expected, 2) if expected else None,
            "gaps": [list(g) for g in gaps],
            "seq_first": min(all_seqs) if all_seqs else None,
            "seq_last": max(all_seqs) if all_seqs else None,
            "duplicates": n.duplicates,
            "seq_resets": n.seq_resets,
            "boot_count_first": boots[0] if boots else None,
            "boot_count_last": boots[-1] if boots else None,
            "reboots": (boots[-1] - boots[0]) if boots else 0,
            "first_seen": n.first_seen,
            "last_seen": n.heard,  # by the node's own ts for retained messages
            "state": (n.status or {}).get("state"),
            "alerts": sorted({kind for kind, _ in n.alerts}),
            "interval_s": n.interval_s(),
            "fw": (n.status or n.health or {}).get("fw"),
            "dropped": (n.health or {}).get("dropped"),
            "quantities": sorted(series.get(node_id, {})),
        }
    return {"from": first_t, "to": last_t, "messages": fleet.messages, "malformed": fleet.malformed,
            "nodes": nodes, "series": series}  # fmt: skip


def _natural(s):
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", s)]


def plot(summary, out_dir):
    """One PNG per node and quantity: every sensor that measures it, over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    written = []
    for node, quantities in summary["series"].items():
        d = os.path.join(out_dir, _safe(node))
        os.makedirs(d, exist_ok=True)
        for q, by_sensor in sorted(quantities.items()):
            fig, ax = plt.subplots(figsize=(8, 3), dpi=90)
            for sname, pts in sorted(by_sensor.items()):
                pts.sort()
                xs = [datetime.fromtimestamp(p[0], timezone.utc) for p in pts]
                ax.plot(xs, [p[1] for p in pts], marker="." if len(pts) < 50 else None, linewidth=1, label=sname)
            base = fleetwatch.base_quantity(q)
            unit = fleetwatch.UNITS.get(base, "") if base else ""
            ax.set_title("%s: %s" % (node, q))
            ax.set_ylabel("%s%s" % (q, " [%s]" % unit if unit else ""))
            ax.set_xlabel("time (UTC)")
            ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M:%S"))
            fig.autofmt_xdate()
            if len(by_sensor) > 1:
                ax.legend(loc="best", fontsize="small")
            ax.grid(True, alpha=0.3)
            fig.tight_layout()
            path = os.path.join(d, _safe(q) + ".png")
            fig.savefig(path)
            plt.close(fig)
            written.append(path)
    return written


def _safe(name):
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "_"


def _iso(t):
    return "-" if t is None else datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def markdown(summary, pngs=None):
    lines = ["# streetnode report", "", "From %s to %s, %d message(s)%s." % (
        _iso(summary["from"]), _iso(summary["to"]), summary["messages"],
        ", %d malformed" % summary["malformed"] if summary["malformed"] else ""), ""]  # fmt: skip
    lines += ["| node | state | last heard | alerts | received | expected | completeness | missing | gaps (seq) | reboots | seq range |",
              "| ---- | ----- | ---------- | ------ | -------: | -------: | -----------: | ------: | ---------- | ------: | --------- |"]  # fmt: skip
    for node, s in summary["nodes"].items():
        comp = "-" if s["completeness"] is None else "%.2f %%" % s["completeness"]
        gaps = fleetwatch.format_ranges([tuple(g) for g in s["gaps"]], limit=8) or "none"
        rng = "-" if s["seq_first"] is None else "%d-%d" % (s["seq_first"], s["seq_last"])
        if s["seq_resets"]:
            rng += " (restarted %d×)" % s["seq_resets"]
        lines.append("| %s | %s | %s | %s | %d | %d | %s | %d | %s | %d | %s |" % (
            node, s["state"] or "-", _iso(s["last_seen"]), ", ".join(s["alerts"]) or "none", s["received"], s["expected"], comp, s["missing"], gaps, s["reboots"], rng))  # fmt: skip
    if pngs:
        lines += ["", "## Plots", ""]
        for p in pngs:
            lines.append("- %s" % p)
    lines += ["", "Completeness counts distinct seqs received against the seqs between the first and the "
              "last one received (per seq epoch); readings before the first or after the last received "
              "one cannot be known to be missing."]  # fmt: skip
    return "\n".join(lines) + "\n"


def write(summary, out_dir, plots=True):
    os.makedirs(out_dir, exist_ok=True)
    pngs = plot(summary, out_dir) if plots else []
    rel = [os.path.relpath(p, out_dir) for p in pngs]
    data = {k: v for k, v in summary.items() if k != "series"}
    data["plots"] = rel
    with open(os.path.join(out_dir, "summary.json"), "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    with open(os.path.join(out_dir, "summary.md"), "w", encoding="utf-8") as f:
        f.write(markdown(summary, rel))
    return pngs


def _listen(args, opts, out_dir):
    prefix = args.prefix.rstrip("/")
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "capture.jsonl")
    cap = CaptureWriter(path)
    src = LiveSource(opts, fleet_topics(prefix), name="streetnode-report")
    end = time.monotonic() + args.duration
    try:
        while time.monotonic() < end:
            m = src.get(min(0.5, max(0.0, end - time.monotonic())))
            for msg in ([m] if m else []) + src.drain():
                topic, payload, t = msg
                cap.message(topic, payload, t, retained(msg))
    finally:
        src.close()
        cap.close()
    return path


def main(args, out=None):
    out = out or sys.stdout
    if bool(args.capture) == bool(args.broker):
        raise UsageError("give either --capture FILE or --broker HOST:PORT with --duration")
    if args.broker and not args.duration:
        raise UsageError("--broker needs --duration S (how long to listen)")
    opts = mqtt.BrokerOptions.from_args(args, required=False)
    try:
        since = parse_time(args.since) if args.since else None
        until = parse_time(args.until) if args.until else None
    except ValueError as e:
        raise UsageError(str(e))
    if since is not None and until is not None and since > until:
        raise UsageError("--since is after --until")
    path = args.capture or _listen(args, opts, args.out)
    messages = load(path, since, until)
    gone = set()
    if args.register:
        from streetnode.field.retire import retired as retired_nodes

        gone = retired_nodes(args.register)
    summary = summarise(messages, args.prefix.rstrip("/"), gone)
    if not summary["nodes"]:
        raise ValueError("no node messages in %s%s" % (path, " in that time range" if since or until else ""))
    pngs = write(summary, args.out, plots=not args.no_plots)
    for node, s in summary["nodes"].items():
        comp = "-" if s["completeness"] is None else "%.2f%%" % s["completeness"]
        out.write("%-20s %6d/%-6d %8s  missing %d  reboots %d\n" % (
            node, s["received"], s["expected"], comp, s["missing"], s["reboots"]))  # fmt: skip
    out.write("wrote %s, %s and %d plot(s)\n" % (
        os.path.join(args.out, "summary.md"), os.path.join(args.out, "summary.json"), len(pngs)))  # fmt: skip
    return 0


EPILOG = """examples:
  streetnode report --capture week48.jsonl --out report-week48
  streetnode report --capture fleet.jsonl --since 7d --out weekly
  streetnode report --capture fleet.jsonl --since 2026-11-20T00:00Z --until 2026-11-27T00:00Z
  streetnode report --broker mqtt.siegen.de:1883 --duration 3600 --out last-hour

times: ISO 8601 (UTC unless an offset is given) or relative to now: 90s, 30m, 12h, 7d, 2w

exit codes: 0 report written, 1 nothing to report or unusable input, 2 usage error
"""


def register(sub):
    p = sub.add_parser(
        "report",
        help="per-node completeness, gaps, reboots and plots from a capture or a live listen",
        description="Per node: data completeness (distinct seqs received against expected from the seq "
        "range), the missing seq ranges, reboots, and one PNG plot per quantity over time; a summary in "
        "Markdown and JSON. Reads a capture of `streetnode monitor --capture`, or listens --duration seconds.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--capture", metavar="FILE", help="a capture file (JSON lines) of streetnode monitor")
    mqtt.add_broker_options(p, required=False, help_broker="listen to the broker instead (with --duration)")
    p.add_argument("--duration", type=options.positive_float, metavar="S", help="how long to listen with --broker")
    p.add_argument("--prefix", default="streetnode", help="topic prefix (default streetnode)")
    p.add_argument("--register", metavar="FILE", help="fleet-register.csv: leave out the nodes it marks retired")
    p.add_argument("--since", metavar="T", help="only messages that arrived at or after T")
    p.add_argument("--until", metavar="T", help="only messages that arrived at or before T")
    p.add_argument("--out", default="streetnode-report", metavar="DIR", help="output directory (default streetnode-report)")
    p.add_argument("--no-plots", action="store_true", help="only the summary")
    p.set_defaults(func=main)
    return p
