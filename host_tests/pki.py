"""Certificates for TLS tests (cryptography): a CA, a server certificate signed by it, and a
second CA that signed nothing; and a TLS-only mosquitto that presents the server certificate."""

import contextlib

import pytest

from streetnode.common.broker import Broker, find_mosquitto


def make_pki(d, ip="127.0.0.1"):
    """Into directory `d`: ca.pem, ca.der, server.pem, server.key (the server certificate for
    `localhost` and `ip`), client.pem, client.key (a client certificate). Returns (CA in DER, the other CA in DER)."""
    from streetnode.security.pki import CA  # the one the sim uses for `sim --tls`

    ca, other = CA.new("streetnode test ca"), CA.new("streetnode test other-ca")
    (d / "ca.pem").write_bytes(ca.pem)
    (d / "ca.der").write_bytes(ca.der)
    cert, key = ca.issue("localhost", dns=["localhost"], ips=[ip])
    (d / "server.pem").write_bytes(cert)
    (d / "server.key").write_bytes(key)
    cert, key = ca.issue("streetnode crew")  # a client certificate, for brokers that want one
    (d / "client.pem").write_bytes(cert)
    (d / "client.key").write_bytes(key)
    return ca.der, other.der


@contextlib.contextmanager
def tls_broker(d, host="127.0.0.1", port=None, require_certificate=False, **kwargs):
    """A TLS-only mosquitto with make_pki's certificates in `d`: yields (broker, CA DER, other CA DER)."""
    if not find_mosquitto():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto); CI installs it")
    ca_der, other_der = make_pki(d, host)
    tls = {"cafile": d / "ca.pem", "certfile": d / "server.pem", "keyfile": d / "server.key",
           "require_certificate": require_certificate}
    with Broker("mosquitto", host=host, port=port, tls=tls, **kwargs) as b:
        yield b, ca_der, other_der
