# Ed25519 verification (firmware/ota/ed25519.py) and SHA-512 (firmware/ota/sha512.py)
# against RFC 8032's vectors, signatures made by `cryptography` (host_tests/device/
# ed25519_data.py, checked against cryptography by host_tests/test_ed25519_vectors.py),
# and malformed input of every kind: False, never an exception. Runs on CPython and
# inside MicroPython.

import binascii
import hashlib

from firmware.ota import ed25519, sha512
from host_tests.device import ed25519_data

L = 2**252 + 27742317777372353535851937790883648493
P = 2**255 - 19


def _h(s):
    return binascii.unhexlify(s)


def _le(n, size=32):
    out = bytearray(size)
    for i in range(size):
        out[i] = n & 0xFF
        n >>= 8
    return bytes(out)


def _int(b):
    n = 0
    for i in range(len(b) - 1, -1, -1):
        n = (n << 8) | b[i]
    return n


def _flip(b, bit):
    out = bytearray(b)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def _vector(i):
    _, pk, msg, sig = ed25519_data.MADE[i]
    return _h(pk), _h(msg), _h(sig)


def test_rfc8032_test_vectors():
    names = []
    for name, _, pk, msg, sig in ed25519_data.RFC8032:
        assert ed25519.verify(_h(pk), _h(msg), _h(sig)) is True, name
        names.append(name)
    assert names == ["TEST 1", "TEST 2", "TEST 3", "TEST 1024", "SHA(abc)"]


def test_signatures_made_by_cryptography():
    for i in range(len(ed25519_data.MADE)):
        pk, msg, sig = _vector(i)
        assert ed25519.verify(pk, msg, sig) is True, "vector %d (%d bytes)" % (i, len(msg))
        assert ed25519.verify(bytearray(pk), bytearray(msg), bytearray(sig)) is True
    assert len(ed25519_data.MADE) >= 10


def test_flipped_bits_in_r_s_and_message_are_rejected():
    pk, msg, sig = _vector(6)  # a 111-byte message
    for bit in (0, 1, 7, 100, 200, 254, 255):  # R: the low and the sign bit too
        assert ed25519.verify(pk, msg, _flip(sig, bit)) is False, "R bit %d" % bit
    for bit in (256, 257, 300, 400, 500, 507):  # S (bits 509-511 make S >= L, below)
        assert ed25519.verify(pk, msg, _flip(sig, bit)) is False, "S bit %d" % (bit - 256)
    for bit in (0, 7, 8 * 55, 8 * 110 + 7):
        assert ed25519.verify(pk, _flip(msg, bit), sig) is False, "message bit %d" % bit
    assert ed25519.verify(pk, msg + b"\x00", sig) is False
    assert ed25519.verify(pk, msg[:-1], sig) is False
    pk0, msg0, sig0 = _vector(0)  # the empty message
    assert ed25519.verify(pk0, b"\x00", sig0) is False


def test_a_flipped_public_key_bit_or_another_key_is_rejected():
    pk, msg, sig = _vector(3)
    for bit in (0, 9, 128, 254, 255):
        assert ed25519.verify(_flip(pk, bit), msg, sig) is False, "key bit %d" % bit
    for i in (4, 5):
        other, _, other_sig = _vector(i)
        assert ed25519.verify(other, msg, sig) is False
        assert ed25519.verify(pk, msg, other_sig) is False
    rfc_pk = _h(ed25519_data.RFC8032[0][2])
    assert ed25519.verify(rfc_pk, msg, sig) is False


def test_wrong_lengths_and_types_are_rejected_without_raising():
    pk, msg, sig = _vector(2)
    for bad_pk in (b"", pk[:31], pk + b"\x00", None, 5, pk.hex() if hasattr(pk, "hex") else "x" * 32, [1] * 32):
        assert ed25519.verify(bad_pk, msg, sig) is False
    for bad_sig in (b"", sig[:63], sig + b"\x00", sig[:32], None, "x" * 64, 0):
        assert ed25519.verify(pk, msg, bad_sig) is False
    for bad_msg in (None, "text", 12, [1, 2]):
        assert ed25519.verify(pk, bad_msg, sig) is False
    assert ed25519.verify(pk, msg, sig) is True


def test_s_not_below_l_is_rejected():
    # S + L satisfies the verification equation as well (it is S mod L): refusing it is
    # what makes a signature non-malleable (RFC 8032 §5.1.7 step 1, §8.4).
    for i in (0, 1, 8):
        pk, msg, sig = _vector(i)
        s = _int(sig[32:])
        assert s < L
        if s + L < 2**256:
            assert ed25519.verify(pk, msg, sig[:32] + _le(s + L)) is False
        assert ed25519.verify(pk, msg, sig[:32] + _le(L)) is False
        assert ed25519.verify(pk, msg, sig[:32] + _le(2**256 - 1)) is False
        assert ed25519.verify(pk, msg, sig[:32] + _le(s + 16 * L)) is False


def test_non_canonical_public_keys_are_rejected():
    pk, msg, sig = _vector(1)
    # y >= p: y + p for y = 0..18 is a second spelling of the same y, and 2^255 - 1
    for y in (P, P + 1, P + 2, P + 18, 2**255 - 1):
        enc = _le(y)
        assert ed25519._decode(enc) is None, y - P
        assert ed25519.verify(enc, msg, sig) is False
        assert ed25519.verify(_flip(enc, 255), msg, sig) is False
    # x = 0 with the sign bit set ("-0"): y = 1 (the neutral point) and y = p - 1
    assert ed25519._decode(_flip(_le(1), 255)) is None
    assert ed25519._decode(_flip(_le(P - 1), 255)) is None
    assert ed25519._decode(_le(1)) is not None  # the canonical spellings do decode ...
    assert ed25519.verify(_le(1), msg, sig) is False  # ... but small order keys are refused


def test_public_keys_that_are_no_point_are_rejected():
    pk, msg, sig = _vector(1)
    for enc in ed25519_data.NOT_ON_CURVE:
        enc = _h(enc)
        assert ed25519._decode(enc) is None
        assert ed25519.verify(enc, msg, sig) is False
        assert ed25519.verify(_flip(enc, 255), msg, sig) is False


def test_small_order_public_keys_are_rejected():
    # The neutral point (y = 1), the point of order 2 (y = p - 1), those of order 4 (y = 0)
    pk, msg, sig = _vector(1)
    for enc in (_le(1), _le(P - 1), _le(0), _flip(_le(0), 255)):
        assert ed25519._decode(enc) is not None
        assert ed25519.verify(enc, msg, sig) is False
    # With the neutral point as key, R = [S]B would verify for any message: S = 0, R = encoding of y = 1.
    assert ed25519.verify(_le(1), b"anything", _le(1) + _le(0)) is False


def test_non_canonical_r_is_rejected():
    # The same signature with R's y spelled y + p cannot match the canonical encoding of
    # the computed point; ed25519_data.NONCANONICAL_R has one that is valid when spelled
    # canonically (a key with a small-order component, see host_tests/ed25519_vectors.py).
    for pk, msg, sig_canonical, sig_other in ed25519_data.NONCANONICAL_R:
        assert ed25519.verify(_h(pk), _h(msg), _h(sig_canonical)) is True
        assert ed25519.verify(_h(pk), _h(msg), _h(sig_other)) is False
        assert _h(sig_other)[:32] == _le(P + 1)
    pk, msg, sig = _vector(1)
    r = _int(sig[:32]) & (2**255 - 1)
    if r + P < 2**255:  # only when y < 19, practically never: then it is a second spelling
        assert ed25519.verify(pk, msg, _le(r + P | (_int(sig[:32]) >> 255 << 255)) + sig[32:]) is False
    assert ed25519.verify(pk, msg, _le(P + 1) + sig[32:]) is False


def test_sha512_matches_hashlib_or_the_standard():
    # CPython: against hashlib. MicroPython has no sha512: against FIPS 180-4's examples.
    known = {
        b"": "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e",
        b"abc": "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
        b"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu":
        "8e959b75dae313da8cf4f72814fc143f8f7779c6eb9f7fa17299aeadb6889018501d289e4900f7e4331b99dec4b5433ac7d329eeb6dd26545e96e55b874be909",
    }  # fmt: skip
    for data in known:
        assert sha512.SHA512(data).hexdigest() == known[data]
    ref = getattr(hashlib, "sha512", None)
    for n in (0, 1, 55, 56, 63, 64, 111, 112, 113, 127, 128, 129, 239, 255, 256, 1000, 3000):
        data = bytes((i * 7 + n) & 0xFF for i in range(n))
        digest = sha512.SHA512(data).digest()
        assert len(digest) == 64
        if ref is not None:
            assert digest == ref(data).digest(), n
        # incremental: in pieces of every size, the same digest
        for piece in (1, 7, 128, 129):
            h = sha512.SHA512()
            for i in range(0, n, piece):
                h.update(data[i : i + piece])
            assert h.digest() == digest, (n, piece)
        assert sha512.new(data).digest() == digest


def test_sha512_digest_leaves_the_state_alone():
    h = sha512.SHA512(b"ab")
    first = h.digest()
    assert h.digest() == first
    h.update(b"c")
    assert h.hexdigest() == sha512.SHA512(b"abc").hexdigest()


def test_verification_in_pieces_is_the_same():
    pk, msg, sig = _vector(15)  # 1000 bytes
    for piece in (1, 13, 128, 1000):
        v = ed25519.Verification(pk, sig)
        for i in range(0, len(msg), piece):
            v.update(msg[i : i + piece])
        assert v.result() is True, piece
    v = ed25519.Verification(pk, sig)
    v.update(msg[:-1])
    assert v.result() is False
    v = ed25519.Verification(pk, sig)
    v.update(msg)
    v.update("text")  # a wrong type spoils it
    assert v.result() is False
    assert ed25519.Verification(pk[:31], sig).result() is False
    assert ed25519.Verification(pk, None).result() is False
