# Ed25519 signature verification (RFC 8032 §5.1.7), for MicroPython and CPython: the
# node checks a release manifest's signature against its config's ota.pubkeys with it.
# Verification only; signing is the host's (`streetnode release`, with `cryptography`).
#
#   from firmware.ota import ed25519
#   ed25519.verify(public_key, message, signature)   # True or False, never raises
#   v = ed25519.Verification(public_key, signature); v.update(piece) ...; v.result()
#                                    # the same in steps, for a loop with a time budget
#
# The check is the cofactorless one RFC 8032 §5.1.7 allows and OpenSSL, libsodium and
# `cryptography` make: encode([S]B - [k]A) == R, with k = SHA-512(R || A || M) mod L.
# Rejected (False): keys or signatures of the wrong length or type, S >= L (a malleable
# signature), an A whose y is >= p (non-canonical), that is not on the curve, whose x is
# 0 with the sign bit set, or of small order (order 1, 2, 4 or 8: with such a key some
# signatures verify for any message). R is compared as bytes with the canonical encoding of a
# computed point, so a non-canonical or off-curve R never matches.
#
# Speed: points in extended coordinates (X:Y:Z:T, x = X/Z, y = Y/Z, xy = T/Z; Hisil et
# al. 2008, the formulas of RFC 8032 §5.1.4) and one joint double-and-add over 4-bit
# windows of both scalars (Straus), so about 253 doublings and at most 128 additions per
# verification; field elements are Python integers reduced mod p = 2^255 - 19 with %.
# Timings: `python -m streetnode.bench.ota_verify` (docs/benchmarks.md).

from firmware.ota import sha512

_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493  # the order of the base point
_D = 37095705934669439343138083508754565189542113879843219016388785533085940283555  # -121665/121666
_D2 = 2 * _D % _P
_SQRT_M1 = 19681161376707505956807079304988542015446066515923890162744021073123829784752  # 2^((p-1)/4)
_BX = 15112221349535400772501151409588531511454012693041857206046113283949847762202
_BY = 46316835694926478169428394003475163141307993866256225615783033603165251855960


def _sq(a, n):
    # a^(2^n) mod p
    P = _P
    for _ in range(n):
        a = a * a % P
    return a


def _chain(z):
    # The addition chain of ref10 (Bernstein et al.): z^(2^250 - 1) and z^11 with 250
    # squarings and 11 multiplications, shared by the inversion and the square root.
    # (MicroPython's three-argument pow() is optional per port, and slower than this.)
    P = _P
    z2 = z * z % P
    z9 = _sq(z2, 2) * z % P
    z11 = z9 * z2 % P
    z5 = z11 * z11 % P * z9 % P  # z^(2^5 - 1)
    z10 = _sq(z5, 5) * z5 % P
    z20 = _sq(z10, 10) * z10 % P
    z40 = _sq(z20, 20) * z20 % P
    z50 = _sq(z40, 10) * z10 % P
    z100 = _sq(z50, 50) * z50 % P
    z200 = _sq(z100, 100) * z100 % P
    z250 = _sq(z200, 50) * z50 % P
    return z250, z11


def _invert(z):
    # z^(p - 2) = z^(2^255 - 21)
    z250, z11 = _chain(z)
    return _sq(z250, 5) * z11 % _P


def _pow_p58(z):
    # z^((p - 5) / 8) = z^(2^252 - 3), for the square root of RFC 8032 §5.1.3
    z250, _ = _chain(z)
    return _sq(z250, 2) * z % _P


def _add(p, q):
    # RFC 8032 §5.1.4 addition (a = -1), complete: also for p == q and the neutral point.
    P = _P
    x1, y1, z1, t1 = p
    x2, y2, z2, t2 = q
    a = (y1 - x1) * (y2 - x2) % P
    b = (y1 + x1) * (y2 + x2) % P
    c = t1 * _D2 * t2 % P
    d = 2 * z1 * z2 % P
    e = b - a
    f = d - c
    g = d + c
    h = b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _double(p):
    # RFC 8032 §5.1.4 doubling: 4 squarings and 4 multiplications, T is not read.
    P = _P
    x1, y1, z1, _ = p
    a = x1 * x1 % P
    b = y1 * y1 % P
    c = 2 * z1 * z1 % P
    h = a + b
    s = x1 + y1
    e = h - s * s % P
    g = a - b
    f = c + g
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _decode(s):
    # RFC 8032 §5.1.3: the point of a 32-byte encoding, or None where it is not one.
    y = _int(s) & ((1 << 255) - 1)
    sign = s[31] >> 7
    if y >= _P:
        return None
    P = _P
    u = (y * y - 1) % P
    v = (_D * y * y + 1) % P
    v3 = v * v % P * v % P
    x = u * v3 % P * _pow_p58(u * v3 % P * v3 % P * v % P) % P
    vx2 = v * x % P * x % P
    if vx2 != u:
        if vx2 != P - u:
            return None  # not on the curve: u/v has no square root
        x = x * _SQRT_M1 % P
    if x == 0 and sign:
        return None
    if x & 1 != sign:
        x = P - x
    return (x, y, 1, x * y % P)


def _small_order(p):
    # [8]P is the neutral point (X = 0, Y = Z): a key of order 1, 2, 4 or 8, with which
    # some signatures verify for every message (libsodium refuses these keys too).
    q = _double(_double(_double(p)))
    return q[0] % _P == 0 and (q[1] - q[2]) % _P == 0


def _encode(p):
    # RFC 8032 §5.1.2: y with the sign of x in the top bit, little-endian.
    x, y, z, _ = p
    zi = _invert(z)
    x = x * zi % _P
    y = y * zi % _P
    return _bytes(y | ((x & 1) << 255))


def _int(b):
    # Little-endian bytes as an integer (int.from_bytes without keyword arguments).
    n = 0
    for i in range(len(b) - 1, -1, -1):
        n = (n << 8) | b[i]
    return n


def _bytes(n):
    out = bytearray(32)
    for i in range(32):
        out[i] = n & 0xFF
        n >>= 8
    return bytes(out)


_NEUTRAL = (0, 1, 1, 0)
_B_TABLE = None  # [0]B .. [15]B, made on the first verification


def _table(p):
    t = [_NEUTRAL, p]
    for i in range(2, 16):
        t.append(_double(t[i // 2]) if i & 1 == 0 else _add(t[i - 1], p))
    return t


def _double_mult(s, tb, k, ta):
    # [s]B + [k]A' from the tables of B and A' = -A: Straus over 4-bit windows, top down.
    r = _NEUTRAL
    for shift in range(252, -4, -4):
        if r is not _NEUTRAL:
            r = _double(_double(_double(_double(r))))
        i = (s >> shift) & 15
        if i:
            r = _add(r, tb[i])
        i = (k >> shift) & 15
        if i:
            r = _add(r, ta[i])
    return r


class Verification:
    """verify() in two steps, for a node that must keep sampling while it checks: feed the
    message with update() in pieces (SHA-512 is the slow part on MicroPython, about
    linear in the message), then result() does the curve arithmetic once. Malformed keys
    or signatures make result() False, never an exception.

        v = Verification(public_key, signature)
        v.update(chunk) ...      # any number of pieces
        v.result()               # True or False
    """

    def __init__(self, public_key, signature):
        self.ok = (isinstance(public_key, (bytes, bytearray)) and len(public_key) == 32
                   and isinstance(signature, (bytes, bytearray)) and len(signature) == 64)  # fmt: skip
        self.public_key = bytes(public_key) if self.ok else b""
        self.signature = bytes(signature) if self.ok else b""
        self.hash = sha512.new(self.signature[:32])
        self.hash.update(self.public_key)

    def update(self, data):
        if not isinstance(data, (bytes, bytearray, memoryview)):
            self.ok = False
        elif self.ok:
            self.hash.update(data)

    def result(self):
        global _B_TABLE
        if not self.ok:
            return False
        try:
            signature = self.signature
            s = _int(signature[32:])
            if s >= _L:
                return False
            a = _decode(self.public_key)
            if a is None or _small_order(a):
                return False
            k = _int(self.hash.digest()) % _L
            if _B_TABLE is None:
                _B_TABLE = _table((_BX, _BY, 1, _BX * _BY % _P))
            neg_a = ((_P - a[0]) % _P, a[1], 1, (_P - a[3]) % _P)
            r = _double_mult(s, _B_TABLE, k, _table(neg_a))
            return _encode(r) == signature[:32]
        except MemoryError:
            raise  # not a verdict on the signature: the caller reports it as such
        except Exception:  # noqa: BLE001 - malformed input is a rejection, never an exception
            return False


def verify(public_key, message, signature):
    """True when `signature` (64 bytes) is a valid Ed25519 signature of `message` (bytes)
    by `public_key` (32 bytes); False for anything else, malformed input included."""
    try:
        v = Verification(public_key, signature)
        v.update(message)
        return v.result()
    except MemoryError:
        raise
    except Exception:  # noqa: BLE001
        return False
