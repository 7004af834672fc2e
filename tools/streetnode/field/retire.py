"""`streetnode retire NODE`: forget a decommissioned node. Clears what the broker keeps for
it (every retained message under <prefix>/NODE/: status, ota/status, ...; and the Home
Assistant discovery configs the bridge announced under <discovery prefix>/+/NODE/...), and
marks it retired in the fleet register (column `retired`: the date), so that monitor, check,
report and cmd --all given --register leave it out. A node that is still powered publishes
its status again: unplug it first.

Exit codes: 0 cleared (and marked); 1 the broker could not be used, or the node is not in
the register; 2 usage error.
"""

import argparse
import datetime
import sys
import time

from streetnode.common import mqtt, nodeid, options
from streetnode.common.errors import EXIT_FAILED, Failure
from streetnode.field.capture import LiveSource, retained

COLUMN = "retired"


def retired(path):
    """The node ids the register at `path` marks retired (an empty set without a register)."""
    from streetnode.technician.provision import read_register

    return {(r.get("id") or "").strip().lower() for r in read_register(path) if (r.get(COLUMN) or "").strip()}


def clear(opts, prefix, node, discovery="homeassistant", settle=2.0):
    """Empty every retained message of `node`; returns the topics cleared."""
    topics = ["%s/%s/#" % (prefix, node)]
    if discovery:
        topics.append("%s/+/%s/#" % (discovery, node))
    src = LiveSource(opts, topics, name="streetnode-retire")
    found = []
    try:
        end = time.monotonic() + settle
        while time.monotonic() < end:
            m = src.get(min(0.2, max(0.0, end - time.monotonic())))
            for msg in ([m] if m else []) + src.drain():
                if retained(msg) and msg[1] and msg[0] not in found:
                    found.append(msg[0])
        for topic in found:
            info = src.client.publish(topic, b"", qos=1, retain=True)
            info.wait_for_publish(10)
    finally:
        src.close()
    return found


def main(args, out=None):
    out = out or sys.stdout
    opts = mqtt.BrokerOptions.from_args(args)
    if args.register:
        from streetnode.technician.provision import read_register

        if not any((r.get("id") or "").strip().lower() == args.node for r in read_register(args.register)):
            raise Failure("node %s is not in the register %s" % (args.node, args.register), EXIT_FAILED)
    cleared = clear(opts, args.prefix.rstrip("/"), args.node, args.discovery_prefix, args.settle)
    for topic in cleared:
        out.write("cleared %s\n" % topic)
    if not cleared:
        out.write("the broker kept nothing for %s\n" % args.node)
    if args.register:
        from streetnode.technician.provision import mark_retired

        when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        mark_retired(args.register, args.node, when)
        out.write("marked %s retired in %s (%s)\n" % (args.node, args.register, when))
    out.flush()
    return 0


EPILOG = """examples:
  streetnode retire lamp-0042 --broker mqtt.siegen.de:1883 --register fleet-register.csv
  streetnode monitor --broker mqtt.siegen.de:1883 --register fleet-register.csv   # leaves it out

exit codes: 0 cleared (and marked retired), 1 the broker could not be used or the node is
not in --register, 2 usage error
"""


def register(sub):
    p = sub.add_parser(
        "retire",
        help="forget a decommissioned node: clear its retained messages, mark it retired in the register",
        description="Clears the retained messages the broker keeps for NODE (status, ota/status, Home "
        "Assistant discovery configs) and marks it retired in the fleet register, so the field "
        "commands stop alerting on it.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("node", metavar="NODE", type=nodeid.argument, help="the node id")
    mqtt.add_broker_options(p, help_broker="the fleet's MQTT broker")
    p.add_argument("--prefix", default="streetnode", help="topic prefix (default streetnode)")
    p.add_argument("--register", metavar="FILE", help="fleet-register.csv: mark the node retired there")
    p.add_argument("--discovery-prefix", default="homeassistant", metavar="PREFIX",
                   help="Home Assistant's discovery prefix (default homeassistant; '' for none)")  # fmt: skip
    p.add_argument("--settle", type=options.positive_float, default=2.0, metavar="S",
                   help="how long to collect the retained messages (default 2)")  # fmt: skip
    p.set_defaults(func=main)
    return p
