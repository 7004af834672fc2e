"""The docs' figures come from the commands that measure them: a benchmark run with
`--update DOC` writes its output into DOC between the markers that name its command,
with the date, the machine and the command beside it, instead of printing it.

In a doc (docs/benchmarks.md), a generated block is

    <!-- bench: python -m streetnode.bench.flash --markdown -->
    ... written by that command ...
    <!-- /bench -->

The command in the marker is the one that writes the block (without `--update DOC`), so
a reader sees how each figure was made and `host_tests/test_bench_docs.py` checks that
every block names a benchmark that exists and carries its provenance line.
"""

import contextlib
import io
import os
import platform
import re
import sys
import time

from streetnode.common.errors import EXIT_USAGE, Failure
from streetnode.common.files import write_atomic

BLOCK = re.compile(r"<!-- bench: (?P<command>[^>]*?) -->\n(?P<body>.*?)<!-- /bench -->", re.S)
PROVENANCE = "<sub>Written by `%s` on %s; %s.</sub>"
PROVENANCE_RE = re.compile(r"^<sub>Written by `(?P<command>[^`]+)` on (?P<date>\d{4}-\d\d-\d\d); .+\.</sub>$", re.M)


def machine():
    """Cores, CPU architecture and the interpreters' versions, for the provenance line."""
    parts = ["%d cores (%s)" % (os.cpu_count() or 1, platform.machine() or "?"),
             "CPython %s" % platform.python_version()]  # fmt: skip
    try:
        from streetnode.common import mpy

        r = mpy.run(["-c", "import sys; print('%d.%d.%d' % sys.implementation.version[:3])"], capture=True, timeout=30)
        if r.returncode == 0:
            parts.append("MicroPython %s (unix port)" % r.stdout.strip())
    except Failure:
        pass
    try:
        load = os.getloadavg()[0]
        parts.append("load %.1f at the start" % load)
    except OSError:
        pass
    return ", ".join(parts)


def blocks(text):
    """[(command, body)] of the generated blocks in a doc's text."""
    return [(m.group("command"), m.group("body")) for m in BLOCK.finditer(text)]


def render_block(command, output, markdown, date=None, where=None):
    """The body of a block: the provenance line, then the output (fenced unless Markdown)."""
    date = date or time.strftime("%Y-%m-%d", time.gmtime())
    head = PROVENANCE % (command, date, where if where is not None else machine())
    out = output.strip("\n")
    if not markdown:
        out = "```text\n" + out + "\n```"
    return head + "\n\n" + out + "\n"


def replace(text, command, body):
    """text with the block of `command` holding `body`; a Failure when the doc has no
    block for it (a figure must have its place chosen by hand once) or has it twice."""
    found = [m for m in BLOCK.finditer(text) if m.group("command") == command]
    if not found:
        raise Failure("no block <!-- bench: %s --> in the doc: add the two markers where the figures go" % command,
                      EXIT_USAGE)  # fmt: skip
    if len(found) > 1:
        raise Failure("the doc has %d blocks for `%s`: keep one" % (len(found), command), EXIT_USAGE)
    m = found[0]
    return text[: m.start("body")] + body + text[m.end("body") :]


def split_update(argv):
    """(argv without `--update DOC`, DOC or None)."""
    argv = list(argv)
    doc = None
    for i, a in enumerate(argv):
        if a == "--update":
            if i + 1 >= len(argv):
                raise Failure("--update needs the doc to write, e.g. --update docs/benchmarks.md", EXIT_USAGE)
            doc = argv[i + 1]
            del argv[i : i + 2]
            break
        if a.startswith("--update="):
            doc = a.split("=", 1)[1]
            del argv[i]
            break
    return argv, doc


def run(command_prefix, main, argv=None):
    """Run a benchmark's main(argv); with `--update DOC` its output goes into DOC's block
    for `command_prefix + argv` instead of stdout. The exit code is main's."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if "-h" in argv or "--help" in argv:
        return _help(main, argv)
    try:
        argv, doc = split_update(argv)
        if doc is None:
            return main(argv)
        command = " ".join([command_prefix] + argv)
        with open(doc, encoding="utf-8") as f:
            text = f.read()
        replace(text, command, "")  # the block exists: fail before the (long) run
        where = machine()
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            rc = main(argv)
        if rc:
            sys.stdout.write(buf.getvalue())
            raise Failure("the benchmark failed (exit %s): %s left as it was" % (rc, doc), rc)
        body = render_block(command, buf.getvalue(), "--markdown" in argv, where=where)
        write_atomic(doc, replace(text, command, body).encode("utf-8"))
        print("%s: the block of `%s` written" % (doc, command))
        return 0
    except Failure as e:
        print("%s: %s" % (command_prefix, e), file=sys.stderr)
        return e.code
    except OSError as e:
        print("%s: %s" % (command_prefix, e), file=sys.stderr)
        return EXIT_USAGE


def _help(main, argv):
    """main's own --help, with the option this wrapper adds."""
    buf = io.StringIO()
    rc = 0
    with contextlib.redirect_stdout(buf):
        try:
            rc = main(argv)
        except SystemExit as e:
            rc = e.code or 0
    sys.stdout.write(buf.getvalue().rstrip("\n") + "\n")
    print("  --update DOC          write the output into DOC, in the block that names this command")
    print("                        (<!-- bench: COMMAND --> ... <!-- /bench -->), with date and machine")
    return rc


def add_readings_options(parser, default):
    """--readings and --markdown, as the driver benchmarks take them (`streetnode bench`,
    `streetnode bench-sensors`, and their modules through readings_cli)."""
    parser.add_argument("--readings", type=int, default=default, help="readings per driver (default %d)" % default)
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")


def readings_cli(prog, main, default):
    """main(argv) for a driver benchmark whose main takes parsed --readings/--markdown
    (bench.bme280, bench.sensors: what `streetnode bench[-sensors]` parse), for run()."""
    import argparse

    def cli(argv):
        p = argparse.ArgumentParser(prog=prog)
        add_readings_options(p, default)
        return main(p.parse_args(argv))

    return cli
