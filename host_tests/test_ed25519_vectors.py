"""The Ed25519 vectors the device tests read (host_tests/device/ed25519_data.py) are
what host_tests/ed25519_vectors.py makes, and `cryptography` (OpenSSL) agrees with
every verdict the device tests expect; and on CPython, our verifier and `cryptography`
agree on random keys, messages and corrupted signatures."""

import os

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from firmware.ota import ed25519
from host_tests import ed25519_vectors
from host_tests.device import ed25519_data

RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw


def _ok(pk, msg, sig):
    try:
        Ed25519PublicKey.from_public_bytes(pk).verify(sig, msg)
        return True
    except (InvalidSignature, ValueError):
        return False


def test_data_file_is_what_the_generator_makes():
    assert ed25519_vectors.DATA.read_text() == ed25519_vectors.render(), (
        "host_tests/device/ed25519_data.py is stale: run .venv/bin/python -m host_tests.ed25519_vectors")


def test_rfc8032_vectors_are_the_rfcs():
    for name, sk, pk, msg, sig in ed25519_data.RFC8032:
        key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(sk))
        assert key.public_key().public_bytes(*RAW).hex() == pk, name
        assert key.sign(bytes.fromhex(msg)).hex() == sig, name
    assert len(bytes.fromhex(ed25519_data.RFC8032[3][3])) == 1023  # TEST 1024's message


def test_cryptography_agrees_with_the_device_tests_verdicts():
    for _, pk, msg, sig in ed25519_data.MADE:
        assert _ok(bytes.fromhex(pk), bytes.fromhex(msg), bytes.fromhex(sig))
    for pk, msg, canonical, other in ed25519_data.NONCANONICAL_R:
        pk, msg = bytes.fromhex(pk), bytes.fromhex(msg)
        assert _ok(pk, msg, bytes.fromhex(canonical)) is ed25519.verify(pk, msg, bytes.fromhex(canonical)) is True
        assert _ok(pk, msg, bytes.fromhex(other)) is ed25519.verify(pk, msg, bytes.fromhex(other)) is False
    _, pk, msg, sig = ed25519_data.MADE[5]
    pk, msg, sig = bytes.fromhex(pk), bytes.fromhex(msg), bytes.fromhex(sig)
    s = int.from_bytes(sig[32:], "little")
    high = sig[:32] + (s + ed25519_vectors.L).to_bytes(32, "little")
    assert not _ok(pk, msg, high) and not ed25519.verify(pk, msg, high)  # S >= L


@pytest.mark.parametrize("seed", range(40))
def test_random_keys_messages_and_corruptions_agree_with_cryptography(seed):
    rnd = __import__("random").Random(seed)
    key = Ed25519PrivateKey.from_private_bytes(bytes(rnd.getrandbits(8) for _ in range(32)))
    pk = key.public_key().public_bytes(*RAW)
    msg = os.urandom(rnd.choice((0, 1, 64, 127, 128, 500, 3000)))
    sig = key.sign(msg)
    assert ed25519.verify(pk, msg, sig) is True
    for _ in range(4):
        bit = rnd.randrange(512)
        bad = bytearray(sig)
        bad[bit // 8] ^= 1 << (bit % 8)
        assert ed25519.verify(pk, msg, bytes(bad)) is _ok(pk, msg, bytes(bad)) is False
        bit = rnd.randrange(256)
        badpk = bytearray(pk)
        badpk[bit // 8] ^= 1 << (bit % 8)
        assert ed25519.verify(bytes(badpk), msg, sig) is _ok(bytes(badpk), msg, sig) is False
