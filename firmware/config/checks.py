# Generic checks of a parsed JSON value: each takes (value, key path, ...), returns the
# value and raises ConfigError naming the path and why, with the value as JSON spells it.

import json

from firmware.config.messages import ConfigError, hint, join, show

REQUIRED = object()


def obj(v, path, known):
    """v must be an object whose keys are all in `known`."""
    if type(v) is not dict:
        raise ConfigError(path or "config", "must be an object, not %s" % show(v))
    bad = []
    for k in v:
        if type(k) is not str:
            raise ConfigError(path or "config", "keys must be strings, not %s" % show(k))
        if k not in known:
            bad.append(k)
    if bad:
        bad.sort()
        raise ConfigError(join(path, bad[0]), "unknown key (%s)" % hint(bad[0], known))
    return v


def num(v, path, lo, hi=None, what="a number"):
    t = type(v)
    ok = (t is int or (t is float and v - v == 0)) and v >= lo and (hi is None or v <= hi)
    if what == "an integer":
        ok = ok and t is int
    if not ok:
        rng = ">= %s" % lo if hi is None else "from %s to %s" % (lo, hi)
        raise ConfigError(path, "must be %s %s, not %s" % (what, rng, show(v)))
    return v


def integer(v, path, lo, hi=None):
    return num(v, path, lo, hi, "an integer")


def boolean(v, path):
    if v is not True and v is not False:
        raise ConfigError(path, "must be true or false, not %s" % show(v))
    return v


def string(v, path, lo, hi, chars=None, chars_text=""):
    if type(v) is not str or not lo <= len(v) <= hi:
        size = "%d to %d characters" % (lo, hi) if lo != hi else "%d characters" % lo
        raise ConfigError(path, "must be a string of %s%s, not %s" % (size, chars_text, show(v)))
    if chars is not None:
        for c in v:
            if c not in chars:
                raise ConfigError(path, "must be %d to %d characters%s, not %s (%s)" % (
                    lo, hi, chars_text, show(v), json.dumps(c)))  # fmt: skip
    return v


def choice(v, path, choices):
    if type(v) is not str or v not in choices:
        raise ConfigError(path, "must be one of %s, not %s" % (", ".join(json.dumps(c) for c in choices), show(v)))
    return v


def get(d, path, key, check, default, *args):
    """d[key] checked by check(value, key path, *args); absent or null gives default."""
    v = d.get(key)
    if v is None:
        if default is REQUIRED:
            raise ConfigError(join(path, key), "required")
        return default
    return check(v, join(path, key), *args)
