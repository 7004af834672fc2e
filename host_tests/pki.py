"""Certificates for TLS tests (cryptography): a CA, a server certificate signed by it, and a
second CA that signed nothing; and a TLS-only mosquitto that presents the server certificate."""

import contextlib
import datetime
import ipaddress

import pytest

from streetnode.common.broker import Broker, find_mosquitto


def make_pki(d, ip="127.0.0.1"):
    """Into directory `d`: ca.pem, ca.der, server.pem, server.key (the server certificate for
    `localhost` and `ip`), client.pem, client.key (a client certificate). Returns (CA in DER, the other CA in DER)."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def cert(subject, issuer, key, sign_key, ca, sans=None):
        b = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return b.sign(sign_key, hashes.SHA256())

    out = {}
    for name in ("ca", "other-ca"):
        key = ec.generate_private_key(ec.SECP256R1())
        out[name] = (key, cert("streetnode test " + name, "streetnode test " + name, key, key, True))
    ca_key, ca_cert = out["ca"]
    srv_key = ec.generate_private_key(ec.SECP256R1())
    sans = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(ip))]
    srv_cert = cert("localhost", "streetnode test ca", srv_key, ca_key, False, sans)
    pem, der = serialization.Encoding.PEM, serialization.Encoding.DER
    (d / "ca.pem").write_bytes(ca_cert.public_bytes(pem))
    (d / "ca.der").write_bytes(ca_cert.public_bytes(der))
    (d / "server.pem").write_bytes(srv_cert.public_bytes(pem))
    (d / "server.key").write_bytes(srv_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    cli_key = ec.generate_private_key(ec.SECP256R1())  # a client certificate, for brokers that want one
    (d / "client.pem").write_bytes(cert("streetnode crew", "streetnode test ca", cli_key, ca_key, False).public_bytes(pem))
    (d / "client.key").write_bytes(cli_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return ca_cert.public_bytes(der), out["other-ca"][1].public_bytes(der)


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
