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
    doc = merge(config, changes)
    _one_broker_spelling(doc, changes)
    return validate(doc)


def _one_broker_spelling(doc, changes):
    # mqtt.host/port and mqtt.hosts spell one broker list (schema.py): a patch that sets one
    # spelling replaces the other, so {"mqtt": {"hosts": [...]}} needs no nulls beside it.
    m, c = doc.get("mqtt"), changes.get("mqtt")
    if type(m) is not dict or type(c) is not dict:
        return
    if "hosts" in c and "host" not in c:
        m.pop("host", None)
        if "port" not in c:
            m.pop("port", None)
    elif "hosts" not in c and ("host" in c or ("port" in c and len(m.get("hosts") or ()) <= 1)):
        m.pop("hosts", None)  # one broker again (a new port alone for a list: an error names it)
