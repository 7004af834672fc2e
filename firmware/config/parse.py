# Untrusted JSON, bounded before it is parsed: at most MAX_BYTES bytes, nesting at most
# MAX_DEPTH deep and MAX_CONTAINERS objects and lists in all, so that neither
# interpreter can be made to run out of memory or stack.

import json

from firmware.config.messages import ConfigError

MAX_BYTES = 16384
MAX_DEPTH = 6
MAX_CONTAINERS = 256


def parse_json(data, max_bytes=MAX_BYTES, max_depth=MAX_DEPTH, max_containers=MAX_CONTAINERS):
    """Parse untrusted JSON (bytes or str) with the size, nesting and container count
    checked first. Raises ConfigError saying what is wrong."""
    if isinstance(data, str):
        data = data.encode()
    if len(data) > max_bytes:
        raise ConfigError("", "%d bytes, more than the %d allowed" % (len(data), max_bytes))
    depth = containers = 0
    in_string = escaped = False
    for c in data:
        if in_string:
            if escaped:
                escaped = False
            elif c == 0x5C:  # backslash
                escaped = True
            elif c == 0x22:
                in_string = False
        elif c == 0x22:
            in_string = True
        elif c == 0x7B or c == 0x5B:  # { [
            depth += 1
            containers += 1
            if depth > max_depth:
                raise ConfigError("", "nested more than %d deep" % max_depth)
            if containers > max_containers:
                raise ConfigError("", "more than %d objects and lists" % max_containers)
        elif c == 0x7D or c == 0x5D:
            depth -= 1
    try:
        return json.loads(data)
    except MemoryError:
        raise ConfigError("", "too large to parse in the memory free")
    except ValueError:  # also bad UTF-8 (UnicodeError is a ValueError)
        if not data.strip():
            raise ConfigError("", "empty")
        if in_string or depth > 0:
            raise ConfigError("", "not valid JSON: it ends early (truncated?)")
        raise ConfigError("", "not valid JSON")


def check_shape(obj, path, depth=0, counter=None):
    """The same bounds for an object that is already parsed (a remote patch)."""
    if counter is None:
        counter = [0]
    t = type(obj)
    if t is dict or t is list:
        counter[0] += 1
        if depth >= MAX_DEPTH:
            raise ConfigError(path, "nested more than %d deep" % MAX_DEPTH)
        if counter[0] > MAX_CONTAINERS:
            raise ConfigError(path, "more than %d objects and lists" % MAX_CONTAINERS)
        for v in obj.values() if t is dict else obj:
            check_shape(v, path, depth + 1, counter)
