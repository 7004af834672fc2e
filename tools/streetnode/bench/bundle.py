"""What a bundle takes of a board's flash, per part and target: `streetnode bundle`'s own
size report (technician/bundle.py, `sizes`) for every target, built from this tree into a
temporary directory, as one table for the technician's guide.

    python -m streetnode.bench.bundle [--markdown]

Counted, not timed: the same tree always gives the same figures.
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

from streetnode.technician import bundle

TARGETS = ("esp32", "rp2", "unix")


def run(targets=TARGETS):
    """{target: (version, sizes)} from bundles built now."""
    out = {}
    with tempfile.TemporaryDirectory(prefix="streetnode-bench-bundle-") as d:
        for t in targets:
            _, manifest = bundle.make(t, Path(d) / t)
            out[t] = (manifest["version"], bundle.sizes(manifest))
    return out


def markdown(res):
    version = next(iter(res.values()))[0]
    head = "| part (version %s) | " % version + " | ".join("%s files, bytes, flash" % t for t in res) + " |"
    lines = [head, "| --- |" + " ---: |" * len(res)]
    for part in bundle.PARTS + ("total",):
        cells = []
        for _, rep in res.values():
            r = rep[part]
            cells.append("%d, %s, %s" % (r["files"], bundle._kib(r["bytes"]), bundle._kib(r["flash"])))
        name = "**total**" if part == "total" else part
        lines.append("| %s | %s |" % (name, " | ".join(cells)))
    lines.append("| flash for two slots (A/B) | %s |" % " | ".join(bundle._kib(rep["two_slots"]) for _, rep in res.values()))
    lines.append("")
    lines.append("- flash: whole file-system blocks (%s), an upper bound: littlefs stores very small files "
                 "inline; two slots: the app twice, boot.py and main.py once" %
                 ", ".join("%s %d B" % (t, bundle.TARGETS[t]["block"]) for t in res))  # fmt: skip
    lines.append("- unix adds the simulator (hal/sim) and firmware/main_unix to what esp32 and rp2 carry")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(prog="streetnode-bench-bundle", description=__doc__.split("\n\n")[0])
    p.add_argument("--markdown", action="store_true", help="print a Markdown table instead of JSON")
    args = p.parse_args(argv)
    res = run()
    print(markdown(res) if args.markdown else json.dumps({t: rep for t, (_, rep) in res.items()}, indent=1))
    return 0


if __name__ == "__main__":
    from streetnode.bench import docs

    sys.exit(docs.run("python -m streetnode.bench.bundle", main))
