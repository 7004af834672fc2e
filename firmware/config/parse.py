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
    if not data.strip():
        raise ConfigError("", "empty")
    # Strict syntax first, on both interpreters: MicroPython's json.loads lets a missing
    # colon or a trailing comma pass, and says only "syntax error" where it does not.
    at = error_at(data)
    if at is not None:
        if at >= len(data.rstrip()):
            raise ConfigError("", "not valid JSON: it ends early (truncated?)")
        line, col = line_col(data, at)
        c = data[at]
        what = ("%r" % chr(c)) if 0x20 <= c < 0x7F else "end of line" if c == 0x0A else "byte 0x%02x" % c
        raise ConfigError("", "not valid JSON at line %d, column %d (unexpected %s)" % (line, col, what))
    try:
        return json.loads(data)
    except MemoryError:
        raise ConfigError("", "too large to parse in the memory free")
    except ValueError:  # bad UTF-8 (UnicodeError is a ValueError)
        raise ConfigError("", "not valid JSON (is it UTF-8?)")


# -- where a JSON text goes wrong -------------------------------------------------------
# MicroPython's json.loads says only "syntax error in JSON"; CPython's position differs
# from it. This small validator names the same place on both: the offset of the first
# byte that cannot continue a JSON text. (A 2 KB config: about 8 ms on the unix port.)

_WS = b" \t\r\n"


def line_col(data, at):
    """1-based line and column (in characters: UTF-8 continuation bytes do not count)."""
    line, start = 1, 0
    for i in range(at):
        if data[i] == 0x0A:
            line, start = line + 1, i + 1
    col = 1
    for i in range(start, at):
        if not 0x80 <= data[i] < 0xC0:
            col += 1
    return line, col


def error_at(data):
    """The offset of the first byte where `data` stops being JSON; len(data) when it ends
    early; None when the syntax is right (then the fault is the encoding)."""
    try:
        i = _skip(data, _value(data, _skip(data, 0), 0))
    except IndexError as e:
        return e.args[0]
    return i if i < len(data) else None


def _skip(d, i):
    while i < len(d) and d[i] in _WS:
        i += 1
    return i


def _bad(i):
    return IndexError(i)


def _value(d, i, depth):
    n = len(d)
    if i >= n:
        raise _bad(i)
    c = d[i]
    if c == 0x22:
        return _string(d, i)
    if c == 0x7B or c == 0x5B:  # { [
        close = 0x7D if c == 0x7B else 0x5D
        i = _skip(d, i + 1)
        if i < n and d[i] == close:
            return i + 1
        while True:
            if close == 0x7D:
                if i >= n or d[i] != 0x22:
                    raise _bad(i)
                i = _skip(d, _string(d, i))
                if i >= n or d[i] != 0x3A:  # :
                    raise _bad(i)
                i = _skip(d, i + 1)
            i = _skip(d, _value(d, i, depth + 1))
            if i < n and d[i] == 0x2C:  # ,
                i = _skip(d, i + 1)
            elif i < n and d[i] == close:
                return i + 1
            else:
                raise _bad(i)
    for word in (b"true", b"false", b"null"):
        if c == word[0]:
            for k in range(len(word)):
                if i + k >= n or d[i + k] != word[k]:
                    raise _bad(i + k)
            return i + len(word)
    return _number(d, i)


def _digits(d, i):
    j = i
    while j < len(d) and 0x30 <= d[j] <= 0x39:
        j += 1
    if j == i:
        raise _bad(i)
    return j


def _number(d, i):
    n = len(d)
    if d[i] == 0x2D:  # -
        i += 1
    if i < n and d[i] == 0x30:
        i += 1
    else:
        i = _digits(d, i)
    if i < n and d[i] == 0x2E:  # .
        i = _digits(d, i + 1)
    if i < n and d[i] in b"eE":
        i += 1
        if i < n and d[i] in b"+-":
            i += 1
        i = _digits(d, i)
    return i


def _string(d, i):
    n = len(d)
    i += 1
    while i < n:
        c = d[i]
        if c == 0x22:
            return i + 1
        if c < 0x20:
            raise _bad(i)
        if c == 0x5C:
            i += 1
            if i >= n:
                raise _bad(i)
            if d[i] == 0x75:  # \uXXXX
                for k in range(1, 5):
                    if i + k >= n or d[i + k] not in b"0123456789abcdefABCDEF":
                        raise _bad(i + k)
                i += 4
            elif d[i] not in b'"\\/bfnrt':
                raise _bad(i)
        i += 1
    raise _bad(i)


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
