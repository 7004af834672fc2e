"""The crew page's password and sessions (streetnode.field.serve.auth), and the refusals of
`streetnode serve` at start, without a browser."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from streetnode.field.serve import auth, hub
from streetnode.field.serve.auth import Auth, Throttled

REPO = Path(__file__).resolve().parent.parent
PW = "ladder-and-lamp-42"


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_the_hash_verifies_the_password_and_holds_no_trace_of_it():
    h = auth.hash_password(PW)
    assert h.startswith("scrypt$16384$8$1$") and PW not in h and "\n" not in h
    assert auth.verify_password(PW, h)
    assert not auth.verify_password(PW + "x", h)
    assert not auth.verify_password("", h)
    assert auth.hash_password(PW) != h  # a fresh salt every time
    with pytest.raises(ValueError, match="at least 8"):
        auth.hash_password("short")


@pytest.mark.parametrize("bad, why", [
    ("ladder-and-lamp-42", "not a crew password hash"),  # a plain password where the hash belongs
    ("scrypt$16384$8$1$!!$AAAA", "damaged"),
    ("scrypt$1000$8$1$AAAAAAAAAAA=$AAAAAAAAAAAAAAAAAAAAAA==", "out of range"),
])  # fmt: skip
def test_a_file_that_is_not_a_hash_is_refused_with_the_reason(tmp_path, bad, why):
    f = tmp_path / "crew.pw"
    f.write_text(bad + "\n")
    with pytest.raises(ValueError, match=why):
        auth.read_hash_file(str(f))


def test_sessions_end_when_unused_and_after_their_lifetime():
    clock = Clock()
    a = Auth(auth.hash_password(PW), idle_s=60, lifetime_s=300, clock=clock)
    token = a.sign_in(PW, "10.0.0.7")
    assert token and a.valid(token)
    assert not a.valid(token + "x") and not a.valid(None)
    for _ in range(5):  # used every 50 s: the idle time starts again each time
        clock.t += 50
        assert a.valid(token)
    clock.t += 49  # 299 s after the sign-in
    assert a.valid(token)
    clock.t += 2  # past the lifetime, however busy
    assert not a.valid(token)
    t2 = a.sign_in(PW, "10.0.0.7")
    clock.t += 60  # unused for the idle time
    assert not a.valid(t2)
    t3 = a.sign_in(PW, "10.0.0.7")
    a.sign_out(t3)
    assert not a.valid(t3)


def test_wrong_passwords_slow_the_address_down_and_the_right_one_waits_too():
    clock = Clock()
    a = Auth(auth.hash_password(PW), clock=clock)
    waits = []
    for _ in range(8):
        assert a.sign_in("guess-guess", "10.0.0.9") is None
        waits.append(a.delay("10.0.0.9"))
        with pytest.raises(Throttled):  # even the right password is not looked at meanwhile
            a.sign_in(PW, "10.0.0.9")
        clock.t += waits[-1]
    assert waits == [1, 2, 4, 8, 16, 32, 60, 60]
    assert a.delay("10.0.0.8") == 0  # another address is not blocked
    token = a.sign_in(PW, "10.0.0.9")
    assert token and a.valid(token)
    assert a.delay("10.0.0.9") == 0  # a success forgets the failures
    assert a.sign_in("guess-guess", "10.0.0.9") is None and a.delay("10.0.0.9") == 1


def test_one_address_checks_one_password_at_a_time():
    seen = []

    def verify(password, stored):
        if not seen:  # while the first password is being checked:
            seen.append("checking")
            with pytest.raises(Throttled, match="being checked"):
                a.sign_in(PW, "10.0.0.5")  # the same address waits
            seen.append(a.sign_in(PW, "10.0.0.6"))  # another one goes on
        return password == PW

    a = Auth(auth.hash_password(PW), clock=Clock(), verify=verify)
    assert a.sign_in(PW, "10.0.0.5")
    assert seen[0] == "checking" and seen[1]


def test_without_a_crew_password_nobody_signs_in():
    a = Auth(None)
    assert not a.enabled and a.sign_in(PW, "127.0.0.1") is None


def test_secrets_in_a_result_are_never_shown():
    r = hub.redact({"id": "x", "ok": True, "config": {"wifi": {"ssid": "city", "password": "p"}, "mqtt": {
        "user": "n", "password": "q", "ca_cert": "..."}, "ota_key": "k", "sensors": [{"name": "air"}]}})  # fmt: skip
    text = repr(r)
    assert "'p'" not in text and "'q'" not in text and "'k'" not in text
    assert r["config"]["wifi"]["ssid"] == "city" and r["config"]["sensors"] == [{"name": "air"}]


def _serve(*args, stdin=""):
    return subprocess.run([sys.executable, "-m", "streetnode.cli", "serve", *args], input=stdin, text=True,
                          capture_output=True, cwd=str(REPO), timeout=60)  # fmt: skip


def test_set_crew_password_stores_only_the_hash_readable_by_its_owner(tmp_path):
    f = tmp_path / "crew.pw"
    r = _serve("--set-crew-password", "--crew-password-file", str(f), stdin=PW + "\n")
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(os.stat(f).st_mode) == 0o600
    text = f.read_text()
    assert PW not in text and auth.verify_password(PW, text.strip())
    r = _serve("--set-crew-password", "--crew-password-file", str(f), stdin="short\n")
    assert r.returncode == 2 and "at least 8" in r.stderr


def test_serve_refuses_bad_starts_with_the_reason(tmp_path):
    plain = tmp_path / "plain.pw"
    plain.write_text(PW + "\n")
    r = _serve("--broker", "127.0.0.1:1", "--crew-password-file", str(plain))
    assert r.returncode == 2 and "not a crew password hash" in r.stderr, r.stderr
    r = _serve("--listen", "127.0.0.1:8080")
    assert r.returncode == 2 and "--broker" in r.stderr, r.stderr
    r = _serve("--broker", "127.0.0.1:1", "--listen", "nowhere")
    assert r.returncode == 2 and "--listen must be HOST:PORT" in r.stderr, r.stderr
    r = _serve("--broker", "127.0.0.1:1", "--check-readings", "2")
    assert r.returncode == 2 and "at least 3" in r.stderr, r.stderr
    r = _serve("--broker", "127.0.0.1:1", "--listen", "127.0.0.1:0")  # nothing listens on port 1
    assert r.returncode == 1 and "cannot reach the broker 127.0.0.1:1" in r.stderr, r.stderr
