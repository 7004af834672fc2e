"""`streetnode ota status`: the fleet's running versions and update states, from the
retained <prefix>/<node>/status and <prefix>/<node>/ota/status on the broker."""

import json
import sys
import time

from streetnode.common import mqtt


def collect(opts, prefix, wait_s=2.0):
    """{node: {"online", "fw", "slot", "state", "version", "from", "reason", "progress"}}."""
    nodes = {}

    def on_message(c, u, msg):
        parts = msg.topic.split("/")
        try:
            doc = json.loads(msg.payload)
        except ValueError:
            return
        if not isinstance(doc, dict) or len(parts) < 3:
            return
        n = nodes.setdefault(parts[1], {"online": None, "fw": None, "slot": None, "state": None, "version": None,
                                        "from": None, "reason": None, "progress": None})  # fmt: skip
        if parts[2:] == ["status"]:
            n["online"] = doc.get("state") == "online"
            n["fw"] = doc.get("fw") or n["fw"]
            n["slot"] = doc.get("slot") or n["slot"]
        elif parts[2:] == ["ota", "status"]:
            for k in ("state", "version", "from", "reason", "progress"):
                n[k] = doc.get(k)
            n["fw"] = doc.get("fw") or n["fw"]
            n["slot"] = doc.get("slot") or n["slot"]

    c = mqtt.connect(opts, None, on_message=on_message, subscribe=[prefix + "/+/status", prefix + "/+/ota/status"])
    time.sleep(wait_s)
    mqtt.close(c)
    return nodes


def run(args, out=sys.stdout):
    nodes = collect(mqtt.BrokerOptions.from_args(args), args.prefix, args.wait)
    if args.json:
        print(json.dumps(nodes, indent=1, sort_keys=True), file=out)
        return 0
    rows = [("node", "online", "fw", "slot", "ota", "version", "reason")]
    for name in sorted(nodes):
        n = nodes[name]
        state = n["state"] or "-"
        if state == "receiving" and n["progress"] is not None:
            state = "receiving %d%%" % n["progress"]
        rows.append((name, {True: "yes", False: "no", None: "?"}[n["online"]], n["fw"] or "?", n["slot"] or "-",
                     state, n["version"] or "-", n["reason"] or ""))  # fmt: skip
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(str(r[i]).ljust(widths[i]) for i in range(len(widths))) + "  " + r[-1], file=out)
    if len(rows) == 1:
        print("(no nodes on the broker)", file=out)
    return 0
