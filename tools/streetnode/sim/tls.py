"""`streetnode sim --tls` without --broker: the embedded mosquitto gets a TLS-only listener
with a CA and a server certificate generated for this run (streetnode.security.pki), for
`localhost` and the loopback address it listens on. The nodes carry the CA in DER (as a
provisioned node's ca.der) and verify the broker's certificate and name; the sim writes the
CA as ca.pem into the state directory so that monitor/check can join with `--ca`.
"""

from pathlib import Path

from streetnode.common.files import write_atomic
from streetnode.security.pki import CA


def embedded_pki(directory, host="127.0.0.1"):
    """Write ca.pem, ca.der, server.pem, server.key (0600) into `directory`: returns (the
    Broker's tls dict, the CA in DER)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    ca = CA.new("streetnode sim CA", days=7)
    cert, key = ca.issue("localhost", dns=["localhost"], ips=[host])
    (d / "ca.pem").write_bytes(ca.pem)
    (d / "ca.der").write_bytes(ca.der)
    (d / "server.pem").write_bytes(cert)
    keyfile = d / "server.key"
    write_atomic(keyfile, key, 0o600)
    return {"cafile": d / "ca.pem", "certfile": d / "server.pem", "keyfile": keyfile}, ca.der
