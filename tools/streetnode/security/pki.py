"""A small certificate authority (cryptography, ECDSA P-256): a CA and the certificates it
signs, for `streetnode sim --tls` and the tests. A city's broker has its own CA; this is for
brokers that live as long as one run.

    ca = CA.new("streetnode sim CA")
    cert_pem, key_pem = ca.issue("localhost", dns=["localhost"], ips=["127.0.0.1"])
    ca.pem, ca.der                       # what the broker's cafile and the nodes' ca.der hold
"""

import datetime
import ipaddress


def _x509():
    try:
        from cryptography import x509
    except ImportError:  # a main dependency: only a broken install lacks it
        raise RuntimeError("the Python package cryptography is missing (pip install -e . installs it)")
    return x509


def _key_pem(key):
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())  # fmt: skip


class CA:
    def __init__(self, key, cert):
        self.key, self.cert = key, cert

    @classmethod
    def new(cls, name, days=30):
        from cryptography.hazmat.primitives.asymmetric import ec

        key = ec.generate_private_key(ec.SECP256R1())
        return cls(key, _build(name, name, key.public_key(), key, True, days))

    @property
    def pem(self):
        from cryptography.hazmat.primitives import serialization

        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def der(self):
        from cryptography.hazmat.primitives import serialization

        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def key_pem(self):
        return _key_pem(self.key)

    def issue(self, name, dns=(), ips=(), days=30):
        """A certificate for `name` (a server: its SANs `dns` and `ips`; none: a client), signed
        by this CA: (certificate PEM, private key PEM)."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        x509 = _x509()
        key = ec.generate_private_key(ec.SECP256R1())
        sans = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        issuer = self.cert.subject.rfc4514_string().partition("=")[2]
        cert = _build(name, issuer, key.public_key(), self.key, False, days, sans)
        return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def _build(subject, issuer, public_key, sign_key, ca, days, sans=None):
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    x509 = _x509()
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))  # a board's clock may lag
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return b.sign(sign_key, hashes.SHA256())
