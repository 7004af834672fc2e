"""`streetnode logs NODE`: what a node printed.

  over MQTT (--broker ...): the last lines the node keeps in RAM (firmware/logs.py, at most
      16 of 96 characters, since its last boot), asked for with its `logs` command;
  over the cable (--port PORT): follows the node's console through mpremote's serial
      transport (as deploy uses it), without stopping what it runs, until Ctrl-C or --duration.

Exit codes: 0 lines shown; 1 the node refused (or the broker could not be used); 2 usage
error; 3 no answer within --timeout; 4 no board at --port.
"""

import argparse
import sys
import time

from streetnode.common import mqtt, nodeid, options
from streetnode.common.errors import UsageError
from streetnode.field import cmd


def over_mqtt(args, out):
    if not args.node:
        raise UsageError("give NODE (the node id) with --broker")
    opts = mqtt.BrokerOptions.from_args(args)
    cargs = {"lines": args.lines} if args.lines is not None else {}
    results, _ = cmd.run(opts, args.prefix.rstrip("/"), "logs", cargs, [args.node], timeout=args.timeout)
    r = results.get(args.node)
    if r is None:
        out.write("%s: no answer within %.0f s (is it online? `streetnode monitor --once`)\n" % (args.node, args.timeout))
        return cmd.EXIT_NO_ANSWER
    if r.get("ok") is not True:
        out.write("%s: refused: %s\n" % (args.node, r.get("error")))
        return 1
    lines = r.get("lines") or []
    if r.get("dropped"):
        out.write("(%d older line(s) no longer kept)\n" % r["dropped"])
    for line in lines:
        out.write("%s\n" % line)
    if not lines:
        out.write("(no lines since its last boot)\n")
    out.flush()
    return 0


def over_cable(args, out):
    """Relay the board's console, line by line, without entering its REPL."""
    from streetnode.technician.deploy.serial_board import Board

    board = Board(args.port).open()
    end = None if not args.duration else time.monotonic() + args.duration
    buf = b""
    try:
        serial = board.t.serial
        while end is None or time.monotonic() < end:
            n = serial.in_waiting
            chunk = serial.read(n or 1) if n else b""
            if not chunk:
                time.sleep(0.05)
                continue
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                out.write(line.rstrip(b"\r").decode("utf-8", "replace") + "\n")
                out.flush()
    except KeyboardInterrupt:
        pass
    finally:
        if buf:
            out.write(buf.decode("utf-8", "replace") + "\n")
        board.close()
    return 0


def main(args, out=None):
    out = out or sys.stdout
    if bool(args.port) == bool(args.broker):
        raise UsageError("give --broker HOST[:PORT] (the lines the node keeps) or --port PORT (its console)")
    return over_cable(args, out) if args.port else over_mqtt(args, out)


EPILOG = """examples:
  streetnode logs lamp-0042 --broker mqtt.siegen.de:1883          # its last lines, over MQTT
  streetnode logs --port /dev/ttyUSB0                              # its console, over the cable
  streetnode logs --port /dev/ttyACM0 --duration 60 > lamp.log

exit codes: 0 lines shown, 1 the node refused (or the broker could not be used),
2 usage error, 3 no answer within --timeout, 4 no board at --port
"""


def register(sub):
    p = sub.add_parser(
        "logs",
        help="what a node printed: its last lines over MQTT, or its console over the cable",
        description="Over MQTT (--broker) asks the node for the last lines it keeps in RAM; over the "
        "cable (--port) follows its console through mpremote's serial transport.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("node", nargs="?", type=nodeid.argument, metavar="NODE", help="the node id (with --broker)")
    p.add_argument("--port", metavar="PORT", help="the board's serial port (e.g. /dev/ttyUSB0): follow its console")
    p.add_argument("--duration", type=options.positive_float, metavar="S", help="--port: stop after S seconds (default: Ctrl-C)")
    mqtt.add_broker_options(p, required=False, help_broker="the fleet's MQTT broker")
    p.add_argument("--prefix", default="streetnode", help="topic prefix (default streetnode)")
    p.add_argument("--lines", type=options.positive_int, metavar="N", help="at most the last N lines (default all it keeps)")
    p.add_argument("--timeout", type=options.positive_float, default=cmd.DEFAULT_TIMEOUT_S, metavar="S",
                   help="wait this long for the answer (default 10)")  # fmt: skip
    p.set_defaults(func=main)
    return p
