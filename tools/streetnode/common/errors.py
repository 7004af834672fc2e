"""The host tool's one failure type and its exit codes: a command raises Failure(message, code),
cli.main prints it as one line 'streetnode COMMAND: error: ...' on stderr and exits with the
code. Every other exception is a bug's or a library's, printed the same way with exit 1."""

# Exit codes, as each command's --help documents them. 0, 1 and 2 mean the same everywhere;
# 3 to 6 are per command (a script checks them against the command it ran).
EXIT_OK = 0
EXIT_FAILED = 1  # the operation failed (or the broker could not be used)
EXIT_USAGE = 2  # argparse: unknown option, missing argument, options that do not go together
# check
EXIT_NOT_FOUND = 3  # the node never showed up within --timeout
# deploy
EXIT_INPUT = 3  # config, bundle, flash space or broker refused before the board was changed
EXIT_NO_BOARD = 4  # no board answers at the port (also flash)
EXIT_VERIFY = 5  # files on the board differ from the manifest after copying
EXIT_OFFLINE = 6  # deployed, but the node did not come online within --timeout
# flash
EXIT_BAD_FIRMWARE = 3  # not the right kind of file for this board, or it does not fit
# provision
EXIT_EXISTS = 3  # the node id is already in the register, or --out already holds a node
EXIT_INVALID = 4  # the config, the CA or a secret is wrong or missing
# gateway
EXIT_NO_CONFIG = 4  # run: no usable config; install: the config is invalid or not for a gateway
EXIT_NOT_ROOT = 5  # install --enable without root
# keys new, release (and release verify, which also uses EXIT_VERIFY)
EXIT_KEY = 3  # keys new: --out already holds a key; release: the key is missing, unreadable or not Ed25519
# (release verify: 3 the release or the public key cannot be read, 5 the signature or a file does not verify)
EXIT_INTERRUPTED = 130  # Ctrl-C


class Failure(RuntimeError):
    """A refusal or failure the command reports in one line and exits with `code`."""

    def __init__(self, message, code=EXIT_FAILED):
        super().__init__(message)
        self.code = code


class UsageError(Failure, ValueError):
    """A command line that does not make sense (a bad option value, options that do not go
    together): exit 2 with the subcommand's usage, as argparse's own errors. A ValueError
    too, so code that checks options for other callers (serve) keeps catching it."""

    def __init__(self, message):
        super().__init__(message, EXIT_USAGE)


def one_line(text):
    """The first non-empty line of a (possibly multi-line) message, e.g. esptool's."""
    for line in str(text).splitlines():
        line = line.strip()
        if line:
            return line
    return str(text).strip() or "failed"


def script(name, func):
    """A `python -m streetnode.common.NAME` entry point: prints what func() returns, or a
    Failure as one line, and exits with its code."""
    import sys

    try:
        print(func())
    except Failure as e:
        print("streetnode %s: error: %s" % (name, one_line(e)), file=sys.stderr)
        sys.exit(e.code)


def command_name(args):
    """'deploy', or 'gateway run' for a command with actions (their dest: <command>_command)."""
    name = getattr(args, "command", None) or "?"
    action = getattr(args, "%s_command" % name.replace("-", "_"), None)
    return "%s %s" % (name, action) if action else name


def run(args, stderr=None, before=None):
    """Run a parsed command (`args.func`) and return its exit code: the one place where a
    Failure, or any other exception, becomes one line 'streetnode COMMAND: error: ...'."""
    import sys

    try:
        if before is not None:
            before(args)
        return args.func(args) or EXIT_OK
    except Failure as e:
        if e.code != EXIT_USAGE:
            print("streetnode %s: error: %s" % (command_name(args), one_line(e)), file=stderr or sys.stderr)
            return e.code
        parser = getattr(args, "_parser", None)
        if parser is not None:
            (stderr or sys.stderr).write(parser.format_usage())
        print("streetnode %s: error: %s" % (command_name(args), one_line(e)), file=stderr or sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as e:  # noqa: BLE001 - one line, no traceback, for technicians and scripts
        print("streetnode %s: error: %s" % (command_name(args), one_line(e)), file=stderr or sys.stderr)
        return e.code if isinstance(e, Failure) else EXIT_FAILED
