"""What the host halves of the benchmarks share: where the device halves are, loading one
on CPython, the installed version of a peer, and the table renderer."""

import importlib.util
import math
import sys
from pathlib import Path

from streetnode.common.paths import REPO

DEVICE = Path(__file__).resolve().parent / "device"
"""The halves that run inside MicroPython (and on CPython), with the repository on MICROPYPATH."""


def version(dist):
    try:
        from importlib import metadata

        return metadata.version(dist)
    except Exception:  # noqa: BLE001 - a missing peer is reported, not fatal
        return None


def device_script(script):
    """A device-side benchmark script (device/*.py) imported on CPython, with the repository
    and device/ on sys.path: the same harness measures both interpreters."""
    for entry in (str(DEVICE), str(REPO)):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    spec = importlib.util.spec_from_file_location("streetnode_" + Path(script).stem, script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def render(title, head, body, notes, extra, markdown=False, left=lambda i, n: i < 2):
    """A benchmark table as plain text or Markdown, with its notes (and `extra` lines)
    under it as bullets. left(i, n): whether column i of n is left-aligned text."""
    n = len(head)
    lines = [title, ""]
    if markdown:
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "|".join("---" if left(i, n) else "---:" for i in range(n)) + "|")
        lines.extend("| " + " | ".join(row) + " |" for row in body)
    else:
        widths = [max(len(x) for x in col) for col in zip(head, *body)]

        def fmt(cells):
            return "  ".join(
                c.ljust(w) if left(i, n) else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
            ).rstrip()

        lines.append(fmt(head))
        lines.append(fmt(["-" * w for w in widths]))
        lines.extend(fmt(row) for row in body)
    lines.append("")
    bullet = "- " if markdown else "  "
    lines.extend(bullet + note for note in list(notes) + list(extra))
    return "\n".join(lines)


def figure(value):
    """A measured number for a table cell: one decimal unless it is a whole number."""
    if isinstance(value, float) and not math.isclose(value, round(value)):
        return "%.1f" % value
    return "%d" % round(value)


def smallest(ok, lo, hi, step):
    """The smallest size from lo + step to hi, in steps of `step`, for which ok(size) holds,
    by bisection, with ok(lo) taken to fail and ok(hi) to hold (the caller probes hi):
    (smallest size that ran, the size under it that failed or lo)."""
    while hi - lo > step:
        mid = lo + ((hi - lo) // 2 // step) * step or lo + step
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi, lo
