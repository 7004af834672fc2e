"""The crew password and sessions of `streetnode serve`.

The password file holds one line, `scrypt$N$r$p$<salt>$<hash>` (salt and hash in base64):
the password itself is never stored. hashlib.scrypt is in the standard library (OpenSSL);
n=2**14, r=8, p=1 costs about 16 MiB and some tens of ms per try, which is what slows a
guesser down on the box itself. Over the network a wrong password also blocks the address
that sent it for a time that doubles with each failure (1 s, 2 s, ... at most
MAX_DELAY_S), and one address checks one password at a time.

Sessions are random tokens (a cookie) kept in memory: they end IDLE_S after their last
use and at most LIFETIME_S after the sign-in, and all of them with the server.
"""

import base64
import hashlib
import hmac
import os
import secrets
import threading
import time

from streetnode.common.files import write_atomic

SCHEME = "scrypt"
N, R, P = 2**14, 8, 1
MIN_LENGTH = 8
IDLE_S = 30 * 60.0
LIFETIME_S = 12 * 3600.0
FIRST_DELAY_S = 1.0
MAX_DELAY_S = 60.0
FORGET_S = 3600.0  # an address that failed this long ago starts afresh


def _b64(b):
    return base64.b64encode(b).decode("ascii")


def hash_password(password, salt=None, n=N, r=R, p=P):
    """The stored form of a password (a str of one line)."""
    if not isinstance(password, str) or len(password) < MIN_LENGTH:
        raise ValueError("the crew password must have at least %d characters" % MIN_LENGTH)
    salt = salt or os.urandom(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=64 * 1024 * 1024, dklen=32)
    return "%s$%d$%d$%d$%s$%s" % (SCHEME, n, r, p, _b64(salt), _b64(digest))


def parse_hash(text):
    """(n, r, p, salt, digest) of a stored hash, or ValueError saying what is wrong."""
    parts = (text or "").strip().split("$")
    if len(parts) != 6 or parts[0] != SCHEME:
        raise ValueError("not a crew password hash (make one with: streetnode serve --set-crew-password "
                         "--crew-password-file FILE)")  # fmt: skip
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, digest = base64.b64decode(parts[4], validate=True), base64.b64decode(parts[5], validate=True)
    except ValueError:
        raise ValueError("a damaged crew password hash (its numbers or base64 do not parse)") from None
    if n < 2**10 or n & (n - 1) or not 0 < r <= 64 or not 0 < p <= 16 or len(salt) < 8 or len(digest) < 16:
        raise ValueError("a crew password hash with parameters out of range (n=%d r=%d p=%d)" % (n, r, p))
    return n, r, p, salt, digest


def verify_password(password, stored):
    """True when `password` matches the stored hash (compared in constant time)."""
    n, r, p, salt, digest = parse_hash(stored)
    got = hashlib.scrypt((password or "").encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=64 * 1024 * 1024,
                         dklen=len(digest))  # fmt: skip
    return hmac.compare_digest(got, digest)


def read_hash_file(path):
    try:
        with open(path, encoding="utf-8") as f:
            line = f.readline().strip()
    except OSError as e:
        raise ValueError("cannot read the crew password file %s: %s" % (path, e.strerror or e))
    try:
        parse_hash(line)
    except ValueError as e:
        raise ValueError("crew password file %s: %s" % (path, e)) from None
    return line


def write_hash_file(path, password):
    write_atomic(path, hash_password(password) + "\n", 0o600)


class Throttled(Exception):
    def __init__(self, retry_after, busy=False):
        super().__init__("a password from this address is being checked: try again in a moment" if busy else
                         "too many wrong passwords: try again in %d s" % max(1, round(retry_after)))  # fmt: skip
        self.retry_after = retry_after


class Auth:
    """Sign-in with the crew password, sessions, and the slow-down for wrong passwords.
    `stored` None: no crew password, nobody can sign in. clock: seconds (monotonic)."""

    def __init__(self, stored, idle_s=IDLE_S, lifetime_s=LIFETIME_S, clock=time.monotonic, verify=verify_password):
        if stored is not None:
            parse_hash(stored)
        self.stored = stored
        self.idle_s, self.lifetime_s = idle_s, lifetime_s
        self.clock = clock
        self.verify = verify
        self.sessions = {}  # sha256(token) -> [signed in at, last used]
        self.failures = {}  # address -> [count, time of the last failure]
        self.busy = set()  # addresses whose password is being checked now
        self.lock = threading.Lock()

    @property
    def enabled(self):
        return self.stored is not None

    def delay(self, address):
        """Seconds until `address` may try a password again (0: now)."""
        f = self.failures.get(address)
        if not f:
            return 0.0
        now = self.clock()
        if now - f[1] >= FORGET_S:
            del self.failures[address]
            return 0.0
        wait = min(MAX_DELAY_S, FIRST_DELAY_S * 2 ** (f[0] - 1))
        return max(0.0, f[1] + wait - now)

    def sign_in(self, password, address):
        """A new session token, or None for a wrong password; Throttled while `address` must
        wait (the password is then not even looked at)."""
        if not self.enabled:
            return None
        with self.lock:
            wait = self.delay(address)
            if wait > 0:
                raise Throttled(wait)
            if address in self.busy:
                raise Throttled(FIRST_DELAY_S, busy=True)
            self.busy.add(address)
        try:
            ok = self.verify(password, self.stored)
        finally:
            with self.lock:
                self.busy.discard(address)
        with self.lock:
            now = self.clock()
            if not ok:
                f = self.failures.setdefault(address, [0, now])
                f[0] += 1
                f[1] = now
                return None
            self.failures.pop(address, None)
            self._prune(now)
            token = secrets.token_urlsafe(32)
            self.sessions[self._key(token)] = [now, now]
            return token

    def valid(self, token):
        """True (and the session's idle time starts again) for a live session."""
        if not token:
            return False
        with self.lock:
            now = self.clock()
            s = self.sessions.get(self._key(token))
            if s is None:
                return False
            if now - s[1] >= self.idle_s or now - s[0] >= self.lifetime_s:
                del self.sessions[self._key(token)]
                return False
            s[1] = now
            return True

    def sign_out(self, token):
        with self.lock:
            self.sessions.pop(self._key(token or ""), None)

    @staticmethod
    def _key(token):
        return hashlib.sha256(token.encode("utf-8")).hexdigest()  # a memory dump shows no live token

    def _prune(self, now):
        for k, s in list(self.sessions.items()):
            if now - s[1] >= self.idle_s or now - s[0] >= self.lifetime_s:
                del self.sessions[k]
        for a, f in list(self.failures.items()):
            if now - f[1] >= FORGET_S:
                del self.failures[a]
