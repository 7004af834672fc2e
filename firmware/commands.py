# Remote commands on <prefix>/<node>/cmd, answered on <prefix>/<node>/cmd/result.
#
#   in:  {"id": "42", "cmd": "set_interval", "args": {"interval_s": 30}}
#   out: {"id": "42", "ok": true, ...}  or  {"id": "42", "ok": false, "error": "why"}
#
# Everything a command says is untrusted: the payload size is checked before parsing,
# parsing errors of any kind (bad UTF-8, deep nesting, MemoryError) become ok:false,
# and a handler never sees arguments that are not the types it asked for. Nothing a
# command says can raise out of handle().
#
# What each command does to the running node is here too (node_handlers): the node loads
# this module for a command and lets it go again (firmware/node.py _load/_unload), so the
# handlers do not sit in a small board's heap between commands.

import json

from hal import clock

MAX_PAYLOAD = 2048  # bytes; a patch of the whole config fits, a flood does not
MAX_ID = 64

# cmd -> {arg: (types, required)}; a handler gets exactly these keys.
SCHEMA = {
    "set_interval": {"interval_s": ((int, float), True)},
    "set_sensor": {"name": ((str,), True), "options": ((dict,), False), "interval_s": ((int, float), False),
                   "enabled": ((bool,), False)},
    "patch_config": {"patch": ((dict,), True)},
    "reboot": {"delay_ms": ((int,), False)},
    "identify": {"seconds": ((int, float), False)},
    "health": {},
    "get_config": {},
    "logs": {"lines": ((int,), False)},
}  # fmt: skip


def _reply(cid, ok, error=None, extra=None):
    out = {"id": cid, "ok": ok}
    if error is not None:
        out["error"] = error
    if extra:
        for k in extra:
            out[k] = extra[k]
    return out


def parse(payload):
    """(id, cmd, args) of a command payload, or raise ValueError with the reason.
    `id` is returned as soon as it is known, in the exception's second argument."""
    if payload is None or len(payload) > MAX_PAYLOAD:
        raise ValueError("payload over %d bytes" % MAX_PAYLOAD, "")
    try:
        if isinstance(payload, (bytes, bytearray, memoryview)):
            payload = bytes(payload).decode()
        msg = json.loads(payload)
    except MemoryError:  # a heap too full now, or nesting too deep for it: not "not JSON"
        raise ValueError("out of memory: send it again", "")
    except Exception:  # noqa: BLE001 - UnicodeError, ValueError, RuntimeError (depth)
        raise ValueError("not a JSON object", "")
    if not isinstance(msg, dict):
        raise ValueError("not a JSON object", "")
    cid = msg.get("id")
    if not isinstance(cid, str) or not 0 < len(cid) <= MAX_ID:
        raise ValueError("id must be a string of 1 to %d characters" % MAX_ID, "")
    cmd = msg.get("cmd")
    if not isinstance(cmd, str) or cmd not in SCHEMA:
        raise ValueError("unknown command %s" % (json.dumps(cmd)[:40] if isinstance(cmd, str) else "(none)"), cid)
    args = msg.get("args", {})
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise ValueError("args must be an object", cid)
    schema = SCHEMA[cmd]
    for key in args:
        if key not in schema:
            raise ValueError("%s: unknown argument %s" % (cmd, json.dumps(key)[:40]), cid)
    for key in schema:
        types, required = schema[key]
        if key not in args:
            if required:
                raise ValueError("%s: missing argument %s" % (cmd, key), cid)
            continue
        v = args[key]
        # bool is an int in Python: only accept it where bool is asked for.
        if not isinstance(v, types) or (isinstance(v, bool) and bool not in types):
            raise ValueError("%s: %s has the wrong type" % (cmd, key), cid)
    for k in msg:
        if k not in ("id", "cmd", "args"):
            raise ValueError("unknown field %s" % json.dumps(k)[:40], cid)
    return cid, cmd, args


def handle(payload, handlers):
    """Run one command; returns the result dict to publish. `handlers` maps cmd to a
    function(args) returning a dict of extra result fields (or None); a handler
    signals a refused command with ValueError (the message is the reason)."""
    try:
        cid, cmd, args = parse(payload)
    except ValueError as e:
        return _reply(e.args[1] if len(e.args) > 1 else "", False, e.args[0])
    fn = handlers.get(cmd)
    if fn is None:
        return _reply(cid, False, "command %s not supported on this node" % cmd)
    try:
        return _reply(cid, True, None, fn(args))
    except ValueError as e:
        return _reply(cid, False, str(e.args[0]) if e.args else "refused")
    except Exception as e:  # noqa: BLE001 - a command must never take the node down
        return _reply(cid, False, "internal error: %s" % (e.__class__.__name__,))


_SECRETS = ("password",)
# A change of these needs a reboot: the link, the radio, the board and the outbox are set up at boot.
_AT_BOOT = ("node_id", "mqtt", "wifi", "board", "ntp", "outbox", "watchdog_s")


def redact(obj):
    if isinstance(obj, dict):
        return {k: ("***" if k in _SECRETS and obj[k] else redact(obj[k])) for k in obj}
    if isinstance(obj, list):
        return [redact(v) for v in obj]
    return obj


def node_handlers(node):
    """cmd -> handler(args) for the node `node` (firmware/node.py Node)."""
    return {
        "set_interval": lambda args: set_interval(node, args),
        "set_sensor": lambda args: set_sensor(node, args),
        "patch_config": lambda args: change(node, args["patch"]),
        "reboot": lambda args: reboot(node, args),
        "identify": lambda args: identify(node, args),
        "health": lambda args: health(node, args),
        "get_config": lambda args: {"config": redact(node.config)},
        "logs": lambda args: logs(node, args),
    }


def change(node, patch):
    """Validate, save atomically, then apply; ValueError (reason) if anything is wrong."""
    from firmware.node import _load, _unload

    cfgmod = _load("config")
    try:
        new = cfgmod.patch(node.config, patch)
        try:
            cfgmod.save(node.dir, new)
        except OSError as e:
            raise ValueError("could not save the config: %s" % (e,))
    finally:
        cfgmod = None
        _unload("config")
    needs_reboot = False
    for key in _AT_BOOT:
        if new.get(key) != node.config.get(key):
            needs_reboot = True
    node._apply(new)
    node.config_error = None
    return {"reboot_required": needs_reboot}


def set_interval(node, args):
    out = change(node, {"interval_s": args["interval_s"]})
    node._next_cycle = clock.ticks_add(clock.ticks_ms(), node.interval_ms)
    return out


def set_sensor(node, args):
    sensors = [dict(s) for s in node.config.get("sensors", ())]
    for s in sensors:
        if s["name"] == args["name"]:
            if "options" in args:
                s["options"] = args["options"]
            for key in ("interval_s", "enabled"):
                if key in args:
                    s[key] = args[key]
            return change(node, {"sensors": sensors})
    raise ValueError("no sensor named %s" % args["name"])


def reboot(node, args):
    node._reboot_at = clock.ticks_add(clock.ticks_ms(), max(0, args.get("delay_ms", 1000)))
    return {"reboot_in_ms": args.get("delay_ms", 1000)}


def identify(node, args):
    seconds = args.get("seconds", 10)
    if not 0 < seconds <= 300:
        raise ValueError("seconds must be in (0, 300]")
    node._identify_until = clock.ticks_add(clock.ticks_ms(), int(seconds * 1000))
    return None


def health(node, args):
    node._health_due = True
    return None


def logs(node, args):
    n = args.get("lines", node.logs.max)
    if n < 0:
        raise ValueError("lines must be 0 or more")
    return {"lines": node.logs.last(n), "dropped": node.logs.dropped}
