"""`streetnode cmd NODE COMMAND [ARG=VALUE ...]`: send one command to a node (or a group)
over MQTT and print its answer (`<prefix>/<node>/cmd/result`, CONTRACT.md section 3).

    streetnode cmd lamp-0042 identify seconds=30 --broker mqtt.siegen.de
    streetnode cmd --nodes lamp-1,lamp-2 set_interval interval_s=30 --broker ...
    streetnode cmd --all health --broker ...

ARG=VALUE: VALUE is JSON when it parses as JSON (30, true, {"a": 1}), else a string.
The commands and their arguments are the firmware's (firmware/commands.py), checked here
before anything is sent.

Exit codes: 0 every node answered ok; 1 a node answered ok:false (or the broker could not
be used); 2 usage error; 3 a node did not answer within --timeout (or --all found none).
"""

import argparse
import json
import os
import sys
import time

from streetnode.common import errors, mqtt, nodeid, options
from streetnode.common.errors import UsageError
from streetnode.common.paths import device_code
from streetnode.field.capture import LiveSource

EXIT_NO_ANSWER = errors.EXIT_NOT_FOUND  # 3, as check's "never showed up"
DEFAULT_TIMEOUT_S = 10.0
DISCOVER_S = 2.0  # --all: how long to collect the retained statuses


def schema():
    device_code()
    from firmware import commands

    return commands.SCHEMA


def parse_args_words(cmd, words):
    """ARG=VALUE words -> the args object, checked against the firmware's schema."""
    known = schema()
    if cmd not in known:
        raise UsageError("unknown command %r: the commands are %s" % (cmd, ", ".join(sorted(known))))
    args = {}
    for w in words:
        key, eq, text = w.partition("=")
        if not eq or not key:
            raise UsageError("%r is not ARG=VALUE (e.g. interval_s=30)" % w)
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        args[key] = value
    spec = known[cmd]
    for key, value in args.items():
        if key not in spec:
            raise UsageError("%s takes %s, not %s" % (cmd, ", ".join(sorted(spec)) or "no arguments", key))
        types = spec[key][0]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise UsageError("%s: %s=%s is not a %s" % (cmd, key, json.dumps(value), "/".join(t.__name__ for t in types)))
    for key, (types, required) in spec.items():
        if required and key not in args:
            raise UsageError("%s needs %s=..." % (cmd, key))
    return args


def online_nodes(src, prefix, seconds, skip=()):
    """The nodes whose retained status says online, collected for `seconds` (subscribed to
    <prefix>/+/status); (online, offline) sorted lists."""
    states = {}
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        m = src.get(min(0.2, max(0.0, end - time.monotonic())))
        for topic, payload, _t in ([m] if m else []) + src.drain():
            parts = topic.split("/")
            if len(parts) == 3 and parts[2] == "status" and parts[1] not in skip:
                try:
                    states[parts[1]] = json.loads(payload).get("state")
                except (ValueError, AttributeError):
                    pass
    on = sorted(n for n, s in states.items() if s == "online")
    return on, sorted(n for n in states if n not in on)


def send(src, prefix, nodes, cmd, args, timeout):
    """Publish the command to each node and wait for their results; {node: result or None}."""
    base = "cli-%d-%d" % (os.getpid(), int(time.time() * 1000) % 1000000)
    ids = {}
    for i, node in enumerate(nodes):
        cid = "%s-%d" % (base, i)
        ids[cid] = node
        src.publish("%s/%s/cmd" % (prefix, node), json.dumps({"id": cid, "cmd": cmd, "args": args}))
    results = {n: None for n in nodes}
    end = time.monotonic() + timeout
    while time.monotonic() < end and any(r is None for r in results.values()):
        m = src.get(min(0.2, max(0.0, end - time.monotonic())))
        for topic, payload, _t in ([m] if m else []) + src.drain():
            if not topic.endswith("/cmd/result"):
                continue
            try:
                msg = json.loads(payload)
            except ValueError:
                continue
            node = ids.get(msg.get("id")) if isinstance(msg, dict) else None
            if node is not None and topic == "%s/%s/cmd/result" % (prefix, node):
                results[node] = msg
    return results


def run(opts, prefix, cmd, args, nodes=None, all_nodes=False, timeout=DEFAULT_TIMEOUT_S, skip=(), discover_s=DISCOVER_S):
    """(results {node: result or None}, offline nodes) for one command to `nodes` or all online."""
    topics = ["%s/+/cmd/result" % prefix] if all_nodes else ["%s/%s/cmd/result" % (prefix, n) for n in nodes]
    if all_nodes:
        topics.append("%s/+/status" % prefix)
    src = LiveSource(opts, topics, name="streetnode-cmd")
    try:
        offline = []
        if all_nodes:
            nodes, offline = online_nodes(src, prefix, discover_s, skip)
            if not nodes:
                return {}, offline
        return send(src, prefix, nodes, cmd, args, timeout), offline
    finally:
        src.close()


def _extra(result):
    return {k: v for k, v in result.items() if k not in ("id", "ok", "error")}


def render(results, offline, cmd, timeout, as_json=False, single=False):
    """(text, exit code)."""
    ok = [n for n, r in results.items() if r is not None and r.get("ok") is True]
    failed = [n for n, r in results.items() if r is not None and r.get("ok") is not True]
    silent = [n for n, r in results.items() if r is None]
    code = EXIT_NO_ANSWER if silent or not results else (errors.EXIT_FAILED if failed else errors.EXIT_OK)
    if as_json:
        return json.dumps({"command": cmd, "results": results, "offline": offline, "exit_code": code},
                          sort_keys=True), code  # fmt: skip
    lines = []
    for node, r in results.items():
        if r is None:
            lines.append("%s  NO ANSWER  within %.0f s (is it online? `streetnode monitor --once`)" % (node, timeout))
        elif r.get("ok") is True:
            extra = _extra(r)
            if single and extra:
                lines.append("%s  OK" % node)
                lines.append(json.dumps(extra, indent=2, sort_keys=True))
            else:
                lines.append("%s  OK%s" % (node, "  " + json.dumps(extra, sort_keys=True) if extra else ""))
        else:
            lines.append("%s  FAILED  %s" % (node, r.get("error") or "refused"))
    if not single:
        if not results:
            lines.append("no node online%s" % (" (offline: %s)" % ", ".join(offline) if offline else ""))
        else:
            lines.append("%s: %d node(s), %d ok, %d failed, %d no answer%s" % (
                cmd, len(results), len(ok), len(failed), len(silent),
                "; offline, not sent: %s" % ", ".join(offline) if offline else ""))  # fmt: skip
    return "\n".join(lines), code


def targets(args):
    """(nodes or None, all, COMMAND, ARG words) from the positional words and --all/--nodes."""
    words = list(args.words)
    if args.all or args.nodes:
        if args.all and args.nodes:
            raise UsageError("--all and --nodes do not go together")
        if not words:
            raise UsageError("give the COMMAND (e.g. health)")
        return args.nodes, bool(args.all), words[0], words[1:]
    if len(words) < 2:
        raise UsageError("give NODE and COMMAND (or --all / --nodes ID,ID COMMAND)")
    try:
        return [nodeid.check(words[0])], False, words[1], words[2:]
    except ValueError as e:
        raise UsageError(str(e))


def main(args, out=None):
    out = out or sys.stdout
    nodes, all_nodes, cmd, words = targets(args)
    cargs = parse_args_words(cmd, words)
    opts = mqtt.BrokerOptions.from_args(args)
    prefix = args.prefix.rstrip("/")
    skip = retired_nodes(args)
    if nodes:
        nodes = [n for n in nodes if n not in skip] or nodes
    results, offline = run(opts, prefix, cmd, cargs, nodes, all_nodes, args.timeout, skip)
    text, code = render(results, offline, cmd, args.timeout, args.json, single=not all_nodes and len(results) == 1)
    out.write(text + "\n")
    out.flush()
    return code


def retired_nodes(args):
    """Nodes the register marks retired (left out of --all)."""
    path = getattr(args, "register", None)
    if not path:
        return set()
    from streetnode.field import retire

    return retire.retired(path)


EPILOG = """examples:
  streetnode cmd lamp-0042 identify seconds=30 --broker mqtt.siegen.de:1883
  streetnode cmd lamp-0042 get_config --broker mqtt.siegen.de --tls --ca city-ca.pem --user ops --password-file ~/.ops-pw
  streetnode cmd lamp-0042 set_sensor name=air 'options={"oversampling": 4}' --broker ...
  streetnode cmd lamp-0042 patch_config 'patch={"health_every": 10}' --broker ...
  streetnode cmd --nodes lamp-1,lamp-2 set_interval interval_s=30 --broker ...
  streetnode cmd --all health --broker ...          # every node whose status says online

commands (the firmware's): identify [seconds=S], reboot [delay_ms=MS], set_interval interval_s=S,
  set_sensor name=NAME [options={...}] [interval_s=S] [enabled=true|false], patch_config patch={...},
  get_config, health, logs [lines=N]

exit codes: 0 every node answered ok, 1 a node answered ok:false (or the broker could not be
used), 2 usage error, 3 a node did not answer within --timeout (--all: no node online)
"""


def register(sub):
    p = sub.add_parser(
        "cmd",
        help="send one command (identify, reboot, set_interval, get_config, ...) to a node or a group",
        description="Publishes a command on <prefix>/NODE/cmd and prints the node's cmd/result; the "
        "exit code says whether every node answered ok.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("words", nargs="*", metavar="NODE COMMAND [ARG=VALUE ...]",
                   help="the node id (not with --all/--nodes), the command and its arguments")  # fmt: skip
    g = p.add_mutually_exclusive_group()
    g.add_argument("--nodes", type=nodeid.id_list, metavar="ID,ID,...", help="send to these nodes")
    g.add_argument("--all", action="store_true", help="send to every node whose retained status says online")
    mqtt.add_broker_options(p, help_broker="the fleet's MQTT broker")
    p.add_argument("--prefix", default="streetnode", help="topic prefix (default streetnode)")
    p.add_argument("--timeout", type=options.positive_float, default=DEFAULT_TIMEOUT_S, metavar="S",
                   help="wait this long for the answers (default 10)")  # fmt: skip
    p.add_argument("--register", metavar="FILE", help="fleet-register.csv: --all leaves out the nodes it marks retired")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object")
    p.set_defaults(func=main)
    return p
