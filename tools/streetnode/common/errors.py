"""The host tool's failures: one line on stderr and an exit code a script can rely on."""

import sys


class Failure(Exception):
    """A refusal or failure the command reports in one line and exits with `code`."""

    def __init__(self, message, code=1):
        super().__init__(message)
        self.code = code


def one_line(text):
    """The first non-empty line of a (possibly multi-line) message, e.g. esptool's."""
    for line in str(text).splitlines():
        line = line.strip()
        if line:
            return line
    return str(text).strip() or "failed"


def guarded(command, func):
    """An argparse `func` that prints a Failure as 'streetnode COMMAND: error: ...' on
    stderr and returns its code (cli.main handles every other exception with exit 1)."""

    def run(args):
        try:
            return func(args)
        except Failure as e:
            print("streetnode %s: error: %s" % (command, one_line(e)), file=sys.stderr)
            return e.code

    return run
