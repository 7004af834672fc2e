"""Option types and checks shared by the subcommands, so that a bad value is a usage
error (exit 2, that subcommand's usage) before anything starts, the same in every command.

    p.add_argument("--interval", type=options.positive_float)
    p.add_argument("--duration", type=options.nonnegative_float)
"""

import argparse
import math


def _number(text, kind):
    try:
        v = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a %s" % (text, "whole number" if kind is int else "number"))
    if kind is float and not math.isfinite(v):
        raise argparse.ArgumentTypeError("%r is not a finite number" % text)
    return v


def positive_float(text):
    v = _number(text, float)
    if v <= 0:
        raise argparse.ArgumentTypeError("must be more than 0, not %s" % text)
    return v


def nonnegative_float(text):
    v = _number(text, float)
    if v < 0:
        raise argparse.ArgumentTypeError("must be 0 or more, not %s" % text)
    return v


def positive_int(text):
    v = _number(text, int)
    if v <= 0:
        raise argparse.ArgumentTypeError("must be at least 1, not %s" % text)
    return v


def check_broker_syntax(args):
    """The broker options as written, for every subcommand that has them (cli.main, before
    the command runs: deploy and sim too): --broker HOST[:PORT] (no port: 1883, 8883 with
    TLS) and --cert with --key. What goes with what else is each command's (its defaults
    may come from a node's config)."""
    from streetnode.common import mqtt
    from streetnode.common.errors import UsageError

    broker = getattr(args, "broker", None)
    if broker:
        try:
            mqtt.parse_broker(broker, bool(getattr(args, "tls", False) or getattr(args, "ca", None)))
        except ValueError as e:
            raise UsageError(str(e))
    if bool(getattr(args, "cert", None)) != bool(getattr(args, "key", None)):
        raise UsageError("--cert and --key go together (the client certificate and its private key)")


def walk(parser):
    """(parser, every subparser below it), depth first."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from walk(child)
