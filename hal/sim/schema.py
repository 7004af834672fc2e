# The "sim" section of a unix-sim node's config: the simulated street's seed and start
# hour, and the faults to switch on and off while the node runs (hal/sim/board.py). It
# lives beside the simulator: validation on a board never loads it (firmware/config/
# schema.py imports it only for a config that has a "sim" section, on board unix-sim).
#
#   "sim": {"seed": 1, "start_hour": 8.0,
#           "faults": [{"sensor": "air", "kind": "eio", "at_s": 60, "for_s": 30}]}

from firmware.config.checks import REQUIRED, choice, get, integer, num, obj, string
from firmware.config.messages import ConfigError, show
from hal.sim.board import FAULT_KINDS

MAX_FAULTS = 64

_KIND_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_-"


def sim(v, path, sensor_names):
    """The validated "sim" section, its defaults filled in; faults may name only the
    node's sensors (`sensor_names`)."""
    obj(v, path, ("seed", "start_hour", "faults"))
    faults = get(v, path, "faults", _faults, [], sensor_names)
    return {
        "seed": get(v, path, "seed", integer, None, 0),
        "start_hour": get(v, path, "start_hour", num, 8.0, 0, 24),
        "faults": faults,
    }


def _fault_kind(v, path):
    string(v, path, 1, 16, _KIND_CHARS, " of a-z _")
    return choice(v, path, FAULT_KINDS)


def _faults(v, path, sensor_names):
    if type(v) is not list or len(v) > MAX_FAULTS:
        raise ConfigError(path, "must be a list of at most %d faults, not %s" % (MAX_FAULTS, show(v)))
    out = []
    for i in range(len(v)):
        p = "%s[%d]" % (path, i)
        f = obj(v[i], p, ("sensor", "kind", "at_s", "for_s"))
        out.append({
            "sensor": get(f, p, "sensor", choice, REQUIRED, sensor_names),
            "kind": get(f, p, "kind", _fault_kind, REQUIRED),
            "at_s": get(f, p, "at_s", num, 0, 0),
            "for_s": get(f, p, "for_s", num, 0, 0),
        })  # fmt: skip
    return out
