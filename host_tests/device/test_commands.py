# Remote command parsing and dispatch, including thousands of hostile payloads.
# Runs on CPython and inside MicroPython.

import json

from firmware import commands
from host_tests.device.support import Rng


def _handlers(log):
    def set_interval(args):
        if args["interval_s"] < 1:
            raise ValueError("interval_s must be >= 1")
        log.append(("set_interval", args["interval_s"]))
        return {"interval_s": args["interval_s"]}

    def boom(args):
        raise KeyError("bug")

    return {"set_interval": set_interval, "health": lambda args: log.append(("health",)), "identify": boom}


def test_valid_command_runs_and_answers_with_its_id():
    log = []
    r = commands.handle(b'{"id": "7", "cmd": "set_interval", "args": {"interval_s": 30}}', _handlers(log))
    assert r == {"id": "7", "ok": True, "interval_s": 30}
    assert log == [("set_interval", 30)]
    assert commands.handle('{"id": "8", "cmd": "health"}', _handlers(log)) == {"id": "8", "ok": True}


def test_refusals_name_the_reason_and_keep_the_id():
    log = []
    h = _handlers(log)
    cases = (
        ('{"id": "1", "cmd": "format_flash"}', "unknown command"),
        ('{"id": "1", "cmd": "set_interval", "args": {}}', "missing argument interval_s"),
        ('{"id": "1", "cmd": "set_interval", "args": {"interval_s": "5"}}', "wrong type"),
        ('{"id": "1", "cmd": "set_interval", "args": {"interval_s": true}}', "wrong type"),
        ('{"id": "1", "cmd": "set_interval", "args": {"interval_s": 0}}', "interval_s must be >= 1"),
        ('{"id": "1", "cmd": "set_interval", "args": {"interval_s": 5, "x": 1}}', "unknown argument"),
        ('{"id": "1", "cmd": "health", "args": [1]}', "args must be an object"),
        ('{"id": "1", "cmd": "health", "extra": 1}', "unknown field"),
        ('{"id": "1", "cmd": "reboot"}', "not supported"),
        ('{"id": "1", "cmd": "identify"}', "internal error: KeyError"),
    )
    for payload, reason in cases:
        r = commands.handle(payload, h)
        assert r["ok"] is False and r["id"] == "1", (payload, r)
        assert reason in r["error"], (payload, r)
    assert log == []


def test_malformed_payloads_answer_without_an_id():
    h = _handlers([])
    for payload in (b"", b"\xff\xfe", b"[]", b"null", b'{"cmd": "health"}', b'{"id": 5, "cmd": "health"}',
                    b'{"id": "", "cmd": "health"}', ('{"id": "%s", "cmd": "health"}' % ("x" * 65)).encode(),
                    b"x" * (commands.MAX_PAYLOAD + 1), b"[" * 5000 + b"]" * 5000, b'{"id": "1"'):
        r = commands.handle(payload, h)
        assert r["ok"] is False and r["id"] == "" and r["error"], (payload[:40], r)


def test_a_heap_too_full_to_parse_the_command_says_so_not_that_it_is_not_json():
    class NoHeap:
        @staticmethod
        def loads(text):
            raise MemoryError("memory allocation failed, allocating 512 bytes")

    log = []
    real = commands.json
    commands.json = NoHeap
    try:
        r = commands.handle(b'{"id": "7", "cmd": "health"}', _handlers(log))
    finally:
        commands.json = real
    assert r == {"id": "", "ok": False, "error": "out of memory: send it again"}, r
    assert log == []
    assert commands.handle(b'{"id": "7", "cmd": "health"}', _handlers(log)) == {"id": "7", "ok": True}


def test_thousands_of_hostile_payloads_never_raise():
    rng = Rng(1234)
    log = []
    h = _handlers(log)
    valid = 0
    pieces = ['{', '}', '[', ']', '"id"', '"cmd"', '"args"', ':', ',', '"7"', '"health"', '"set_interval"',
              '{"interval_s": 5}', '1e999', '-0', 'null', 'true', '"\\u0000"', '"\\ud800"', '9' * 30]
    for i in range(3000):
        kind = i % 4
        if kind == 0:
            payload = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 300)))
        elif kind == 1:
            payload = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 40))).encode()
        elif kind == 2:
            depth = rng.randint(1, 3000)
            payload = ('{"id": "d", "cmd": "health", "args": %s1%s}' % ("[" * depth, "]" * depth)).encode()
        else:
            msg = {"id": rng.choice(["a", 1, None, "x" * 70, "ok"]), "cmd": rng.choice(["health", "set_interval", "rm", 3]),
                   "args": rng.choice([{}, {"interval_s": rng.choice([5, -1, "x", 2.5, None])}, [], "s", None])}
            payload = json.dumps(msg).encode()
        r = commands.handle(payload, h)
        assert isinstance(r, dict) and isinstance(r["ok"], bool) and isinstance(r["id"], str)
        if r["ok"]:
            valid += 1
        else:
            assert r["error"]
    # Only well-formed commands reached a handler, and each valid one did.
    assert len(log) == valid and valid > 20, valid
