"""`streetnode sim`'s options, checked before anything starts (no broker, no node, no temp
folder): a bad value is refused with its reason, as a usage error, instead of nodes that die
at every start with the reason in a log nobody sees.

    check(args)        # Failure(EXIT_USAGE) naming the option and why; fills args.heap_bytes,
                       # args.faults and args.overrides

The interval is checked by the firmware's own config validator (the node would refuse it the
same way). --fault and --set give per-node config: the sim writes each node's config.json on
every start, so they are applied to it each time and persist across restarts."""

import json
import re

from streetnode.common.errors import EXIT_USAGE, Failure

MIN_HEAP = 256 * 1024  # measured: a node dies at boot in 128k (MemoryError), runs in 256k
# With --romfs the heap is a board's, around the image (the sim's nodes start in about 160k:
# docs/integrator.md); below this not even the firmware's first imports fit.
MIN_ROMFS_HEAP = 32 * 1024
MAX_HEAP = 64 * 1024 * 1024
_SIZE = re.compile(r"^(\d+)([kKmM]?)$")
NODE_ID = re.compile(r"^[a-z0-9-]{1,32}$")  # CONTRACT.md section 3


def _usage(message):
    return Failure(message, EXIT_USAGE)


def heap_bytes(text, minimum=MIN_HEAP):
    """'512k' -> 524288, as MicroPython's -X heapsize reads it (bytes, k or m)."""
    m = _SIZE.match(str(text).strip())
    if not m:
        raise _usage("--heap %s: a size is a number of bytes with an optional k or M (e.g. 512k), not %r" % (text, text))
    n = int(m.group(1)) * {"": 1, "k": 1024, "m": 1024 * 1024}[m.group(2).lower()]
    if n < minimum:
        raise _usage("--heap %s: a node needs at least %dk%s (it dies at boot with a MemoryError below that)"
                     % (text, minimum // 1024, " around its ROMFS image" if minimum == MIN_ROMFS_HEAP else ""))  # fmt: skip
    if n > MAX_HEAP:
        raise _usage("--heap %s: at most %dM per node" % (text, MAX_HEAP // (1024 * 1024)))
    return n


def parse_fault(text, nodes):
    """'sim-2:air:frozen:at=60,for=120' -> ('sim-2', {"sensor": "air", "kind": "frozen",
    "at_s": 60, "for_s": 120}), checked against the simulator's fault schema."""
    parts = text.split(":")
    if len(parts) not in (3, 4) or not all(parts[:3]):
        raise _usage("--fault %s: write NODE:SENSOR:KIND[:at=S,for=S] (e.g. sim-2:air:frozen:at=60)" % text)
    node, sensor, kind = parts[:3]
    if node not in nodes:
        raise _usage("--fault %s: no node %s in this sim (its nodes: %s)" % (text, node, _names(nodes)))
    fault = {"sensor": sensor, "kind": kind}
    if len(parts) == 4:
        for item in parts[3].split(","):
            key, eq, value = item.partition("=")
            if not eq or not key:
                raise _usage("--fault %s: %r is not KEY=VALUE" % (text, item))
            key = {"at": "at_s", "for": "for_s"}.get(key, key)
            try:
                fault[key] = json.loads(value)
            except ValueError:
                fault[key] = value
    return node, fault


def parse_set(text, nodes):
    """'sim-2:interval_s=30' or 'sim-2:{"health_every": 2}' -> ('sim-2', patch)."""
    node, colon, rest = text.partition(":")
    if not colon or not rest:
        raise _usage("--set %s: write NODE:KEY=JSON or NODE:{json object} (e.g. sim-2:health_every=2)" % text)
    if node not in nodes:
        raise _usage("--set %s: no node %s in this sim (its nodes: %s)" % (text, node, _names(nodes)))
    if rest.startswith("{"):
        try:
            patch = json.loads(rest)
        except ValueError as e:
            raise _usage("--set %s: not a JSON object (%s)" % (text, e))
    else:
        key, eq, value = rest.partition("=")
        if not eq or not key:
            raise _usage("--set %s: write NODE:KEY=JSON" % text)
        try:
            patch = {key: json.loads(value)}
        except ValueError:
            patch = {key: value}
    if not isinstance(patch, dict) or "node_id" in patch:
        raise _usage("--set %s: a JSON object that keeps the node id" % text)
    return node, patch


def _names(nodes):
    return "%s to %s" % (nodes[0], nodes[-1]) if len(nodes) > 1 else nodes[0]


def check(args, node_ids, make_config):
    """Check every option and the config each node will get (`make_config(node_id)`, with its
    --set and --fault applied, validated by the firmware). Returns {node_id: config}."""
    if args.nodes < 1:
        raise _usage("--nodes must be at least 1, not %d" % args.nodes)
    if args.duration < 0:
        raise _usage("--duration must be 0 (run until stopped) or a number of seconds, not %g" % args.duration)
    args.heap_bytes = heap_bytes(args.heap, MIN_ROMFS_HEAP if getattr(args, "romfs", False) else MIN_HEAP)
    faults = {}
    for text in getattr(args, "fault", None) or ():
        node, fault = parse_fault(text, node_ids)
        faults.setdefault(node, []).append(fault)
    patches = {}
    for text in getattr(args, "set", None) or ():
        node, patch = parse_set(text, node_ids)
        patches.setdefault(node, []).append(patch)
    from streetnode.common.paths import device_code

    device_code()
    from firmware import config as fwconfig
    from firmware.config.merge import merge

    configs = {}
    for node in node_ids:
        cfg = make_config(node)
        for patch in patches.get(node, ()):
            cfg = merge(cfg, patch)  # RFC 7396, as the node's patch_config command
        if node in faults:
            sim = dict(cfg.get("sim") or {})
            sim["faults"] = list(sim.get("faults") or ()) + faults[node]
            cfg["sim"] = sim
        try:
            fwconfig.validate(json.loads(json.dumps(cfg)))
        except ValueError as e:
            where = "--interval" if "interval_s" in str(e) and node not in patches else "%s's config (with --fault/--set)" % node
            raise _usage("%s: %s" % (where, e))
        configs[node] = cfg
    return configs
