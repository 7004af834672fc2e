"""A node id as the contract defines it (CONTRACT.md section 3: 1 to 32 characters of
a-z 0-9 -), checked by every host command that takes one, before it waits for anything:
the rule itself is the firmware's config validator's (firmware/config/schema.py).

    p.add_argument("node", type=nodeid.argument)          # a usage error (exit 2) naming the fault
    p.add_argument("--nodes", type=nodeid.id_list)        # "lamp-1,lamp-2"
    nodeid.check("Lamp-0042")                             # ValueError: ... lowercase ...
"""

import argparse

from streetnode.common.paths import device_code

MAX_LEN = 32


def _chars():
    device_code()
    from firmware.config import schema

    return schema._NODE_CHARS


def check(text, what="node id"):
    """`text` when it is a node id; ValueError saying what is wrong (and how to write it) otherwise."""
    if not isinstance(text, str) or not text:
        raise ValueError("a %s is 1 to %d characters of a-z 0-9 -, not an empty one" % (what, MAX_LEN))
    if len(text) > MAX_LEN:
        raise ValueError("%s %r is %d characters long; ids are at most %d" % (what, text, len(text), MAX_LEN))
    allowed = _chars()
    bad = [c for c in text if c not in allowed]
    if bad:
        hint = ""
        if text.lower() != text and all(c in allowed for c in text.lower()):
            hint = ": ids are lowercase, did you mean %s?" % text.lower()
        elif "_" in bad and all(c in allowed for c in text.lower().replace("_", "-")):
            hint = ": did you mean %s?" % text.lower().replace("_", "-")
        raise ValueError("%s %r is not 1 to %d characters of a-z 0-9 - (it has %r)%s" % (
            what, text, MAX_LEN, bad[0], hint))  # fmt: skip
    return text


def argument(text):
    """argparse type for a NODE argument: a bad id is a usage error."""
    try:
        return check(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e))


def id_list(text):
    """argparse type for --nodes ID,ID,...: each id checked, none twice."""
    ids = [t.strip() for t in (text or "").split(",") if t.strip()]
    if not ids:
        raise argparse.ArgumentTypeError("--nodes wants ID,ID,... (at least one node id)")
    out = []
    for t in ids:
        argument(t)
        if t not in out:
            out.append(t)
    return out
