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


def _checked(kind, ok, need, name):
    """An argparse type: a number of kind (int or float) for which ok(value) holds."""

    def check(text):
        v = _number(text, kind)
        if not ok(v):
            raise argparse.ArgumentTypeError("must be %s, not %s" % (need, text))
        return v

    check.__name__ = name
    return check


positive_float = _checked(float, lambda v: v > 0, "more than 0", "positive_float")
nonnegative_float = _checked(float, lambda v: v >= 0, "0 or more", "nonnegative_float")
positive_int = _checked(int, lambda v: v > 0, "at least 1", "positive_int")


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
            mqtt.parse_brokers(broker, bool(getattr(args, "tls", False) or getattr(args, "ca", None)))
        except ValueError as e:
            raise UsageError(str(e))
    # only where --cert is a broker option (release's --key is its signing key)
    if hasattr(args, "cert") and bool(getattr(args, "cert", None)) != bool(getattr(args, "key", None)):
        raise UsageError("--cert and --key go together (the client certificate and its private key)")


def walk(parser):
    """(parser, every subparser below it), depth first."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from walk(child)
