# What a config error says: the key path, why, values in their JSON spelling, and for an
# unknown key the known one it was probably meant to be ("did you mean").

import json


class ConfigError(ValueError):
    """A config (or patch) that is not valid: str() is "key.path: why"; .path is the key
    path ("" when the whole document is wrong)."""

    def __init__(self, path, why):
        super().__init__("%s: %s" % (path, why) if path else why)
        self.path = path


def show(v):
    """A value as the error message shows it: JSON spelling, long strings cut short."""
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    t = type(v)
    if t is str:
        return json.dumps(v if len(v) <= 40 else v[:37] + "...")
    if t is int or t is float:
        return repr(v)
    if t is list:
        return "a list"
    if t is dict:
        return "an object"
    return "a value of type %s" % t.__name__


def distance(a, b):
    # Edit distance with adjacent swaps (hots -> host is 1), for "did you mean".
    before, prev = None, list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if before is not None and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], before[j - 2] + 1)
        before, prev = prev, cur
    return prev[len(b)]


def hint(key, known):
    """'did you mean "host"?' for the closest known key, or the list of known keys."""
    best = None
    limit = 1 if len(key) <= 5 else 2
    for cand in known:
        d = distance(key.lower(), cand)
        if d <= limit and (best is None or d < best[0]):
            best = (d, cand)
    return 'did you mean "%s"?' % best[1] if best else "known keys: " + ", ".join(known)


def join(path, key):
    if len(key) > 40:  # a hostile key must not make a hostile message
        key = key[:37] + "..."
    return path + "." + key if path else key
