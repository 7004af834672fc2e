# The config's life on flash: config.json as written by a technician or a remote change,
# and config.good.json, the last one that validated, which the node runs on when
# config.json is missing, unreadable or invalid.

import json

from firmware import atomic
from firmware.config.messages import ConfigError
from firmware.config.parse import MAX_BYTES, parse_json
from firmware.config.schema import validate

CONFIG_FILE = "config.json"
GOOD_FILE = "config.good.json"
SECRET_MODE = 0o600  # both files can hold the Wi-Fi and MQTT passwords (where there is chmod)


def _read(directory, name):
    """The validated config in directory/name, or ConfigError saying why not."""
    try:
        data = atomic.read(directory + "/" + name, MAX_BYTES)
    except ValueError:
        raise ConfigError("", "larger than the %d bytes allowed" % MAX_BYTES)
    except OSError as e:
        raise ConfigError("", "cannot be read (%s)" % (e,))
    if data is None:
        raise ConfigError("", "missing")
    return data, validate(parse_json(data))


def load(directory):
    """(config, error): config.json validated with its defaults filled in, and None; or,
    when config.json is missing, unreadable or invalid, the last good config and a
    message naming the problem ("config.json: sensors[1].bus: ..."). Raises
    ConfigError with both reasons when there is no usable config at all. (A valid
    config.json whose last-good copy cannot be written comes with a message too.)"""
    directory = directory.rstrip("/") or "/"
    try:
        data, cfg = _read(directory, CONFIG_FILE)
    except ConfigError as e:
        error = "%s: %s" % (CONFIG_FILE, e)
    else:
        try:
            good = atomic.read(directory + "/" + GOOD_FILE, MAX_BYTES)
        except (ValueError, OSError):
            good = None
        if good != data:  # written only when it changed: flash wears
            try:
                atomic.write(directory + "/" + GOOD_FILE, data, SECRET_MODE)
            except OSError as e:  # run on the valid config all the same, and say so
                return cfg, "%s: could not be updated (%s)" % (GOOD_FILE, e)
        return cfg, None
    try:
        return _read(directory, GOOD_FILE)[1], error
    except ConfigError as e:
        raise ConfigError("", "%s; and the last good config %s: %s" % (error, GOOD_FILE, e))


def save(directory, config):
    """Validate, then write config.json atomically and make it the last good config;
    returns the validated config. ConfigError if invalid (nothing is written)."""
    cfg = validate(config)
    directory = directory.rstrip("/") or "/"
    data = json.dumps(cfg)
    atomic.write(directory + "/" + CONFIG_FILE, data, SECRET_MODE)
    atomic.write(directory + "/" + GOOD_FILE, data, SECRET_MODE)
    return cfg
