# Remote changes are JSON merge patches (RFC 7396): objects merge key by key, null
# removes a key (back to its default), anything else, a list such as "sensors" too,
# replaces the old value as a whole. The result is validated before it is used.

from firmware.config.messages import ConfigError, show
from firmware.config.parse import check_shape
from firmware.config.schema import validate


def _copy(v):
    t = type(v)
    if t is dict:
        return {k: _copy(v[k]) for k in v}
    if t is list:
        return [_copy(x) for x in v]
    return v


def merge(target, patch):
    """target with `patch` applied (RFC 7396), as a new value; target is not changed."""
    if type(patch) is not dict:
        return _copy(patch)
    out = dict(target) if type(target) is dict else {}
    for k in patch:
        v = patch[k]
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge(out.get(k), v)
    return out


def patch(config, changes):
    """A new config: `changes` applied to `config` as a JSON merge patch (RFC 7396), then
    validated. `config` is never modified; ConfigError names what the result gets wrong."""
    if type(changes) is not dict:
        raise ConfigError("patch", "must be an object, not %s" % show(changes))
    check_shape(changes, "patch")
    return validate(merge(config, changes))
