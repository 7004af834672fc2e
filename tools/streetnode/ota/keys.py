"""`streetnode keys new`: the fleet's Ed25519 signing key (RFC 8032), made by `cryptography`.

    streetnode keys new --out keys/

writes keys/fleet.key (the private key, PEM PKCS#8, mode 0600, never printed: keep it on
the machine that signs releases, never on a node) and keys/fleet.pub: one line, the
standard base64 of the raw 32-byte public key, exactly as a node's config carries it in
ota.pubkeys (`streetnode provision --ota-pubkey keys/fleet.pub`). A PEM public key
("-----BEGIN PUBLIC KEY-----", e.g. from `openssl pkey -pubout`) is read as well.
"""

import argparse
import base64
import os
from pathlib import Path

from streetnode.common.errors import EXIT_KEY, Failure

KEY_FILE = "fleet.key"
PUB_FILE = "fleet.pub"


def _crypto():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    return serialization, ed25519


def public_text(raw):
    """The fleet.pub / ota.pubkeys spelling of a raw 32-byte public key."""
    return base64.b64encode(raw).decode()


def new(out):
    """Make DIR/fleet.key (0600) and DIR/fleet.pub; returns (key path, pub path, pub text).
    Refuses (EXIT_KEY) when either is already there: a fleet key is never replaced by
    accident, the nodes trust it."""
    serialization, ed25519 = _crypto()
    out = Path(out)
    key_path, pub_path = out / KEY_FILE, out / PUB_FILE
    for p in (key_path, pub_path):
        if p.exists():
            raise Failure("%s already exists: a fleet key is never overwritten (the nodes trust it); "
                          "choose another --out" % p, EXIT_KEY)  # fmt: skip
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise Failure("--out %s: cannot create it (%s)" % (out, e.strerror or e), EXIT_KEY) from None
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())  # fmt: skip
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    try:
        fd = os.open(str(key_path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise Failure("%s already exists: a fleet key is never overwritten" % key_path, EXIT_KEY) from None
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    os.chmod(str(key_path), 0o600)  # whatever the umask
    text = public_text(raw)
    pub_path.write_text(text + "\n")
    return key_path, pub_path, text


def read_private(path):
    """The Ed25519 private key in a PEM (or DER) file; Failure(EXIT_KEY) saying what is wrong."""
    serialization, ed25519 = _crypto()
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise Failure("--key %s: cannot be read (%s)" % (path, e.strerror or e), EXIT_KEY) from None
    try:
        load = serialization.load_pem_private_key if b"-----BEGIN" in data else serialization.load_der_private_key
        key = load(data, password=None)
    except TypeError:  # an encrypted key
        raise Failure("--key %s: the key is encrypted; streetnode signs with an unencrypted PKCS#8 key "
                      "(as `streetnode keys new` writes it)" % path, EXIT_KEY) from None  # fmt: skip
    except (ValueError, Exception) as e:  # noqa: BLE001 - cryptography's errors vary by format
        if b"PUBLIC KEY" in data or path.suffix == ".pub":
            raise Failure("--key %s: this is a public key; releases are signed with the private fleet.key" % path,
                          EXIT_KEY) from None  # fmt: skip
        raise Failure("--key %s: not a private key (%s)" % (path, str(e).splitlines()[0] if str(e) else "unreadable"),
                      EXIT_KEY) from None  # fmt: skip
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise Failure("--key %s: %s key, not Ed25519 (make one with `streetnode keys new`)"
                      % (path, _kind(key)), EXIT_KEY)  # fmt: skip
    return key


def _kind(key):
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, rsa

    for cls, name in ((rsa.RSAPrivateKey, "an RSA"), (ec.EllipticCurvePrivateKey, "an ECDSA"),
                      (ed448.Ed448PrivateKey, "an Ed448"), (dsa.DSAPrivateKey, "a DSA")):  # fmt: skip
        if isinstance(key, cls):
            return name
    return "another kind of"


def public_raw(key):
    serialization, _ = _crypto()
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def read_public(path, option="--pub", code=EXIT_KEY):
    """The raw 32-byte public key in `path`: fleet.pub's one line of base64, or a PEM
    public key; Failure(code) saying what is wrong."""
    serialization, ed25519 = _crypto()
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise Failure("%s %s: cannot be read (%s)" % (option, path, e.strerror or e), code) from None
    if b"PRIVATE KEY" in data:
        raise Failure("%s %s: this is a private key; give the public fleet.pub (the private key never goes "
                      "to a node)" % (option, path), code)  # fmt: skip
    if b"-----BEGIN" in data:
        try:
            key = serialization.load_pem_public_key(data)
        except ValueError as e:
            raise Failure("%s %s: not a PEM public key (%s)" % (option, path, e), code) from None
        if not isinstance(key, ed25519.Ed25519PublicKey):
            raise Failure("%s %s: not an Ed25519 public key" % (option, path), code)
        return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    text = data.decode("ascii", "replace").strip()
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        raw = b""
    if len(raw) != 32 or public_text(raw) != text:
        raise Failure("%s %s: not an Ed25519 public key (expected one line of base64 of 32 bytes, as "
                      "`streetnode keys new` writes fleet.pub)" % (option, path), code)  # fmt: skip
    return raw


def _new(args):
    key_path, pub_path, text = new(args.out)
    print("fleet key: %s (private, mode 0600: keep it on the signing machine, never on a node)" % key_path)
    print("public key: %s  %s" % (pub_path, text))
    print("give it to the nodes with: streetnode provision ... --ota-pubkey %s" % pub_path)
    return 0


def register(sub):
    k = sub.add_parser(
        "keys",
        help="the fleet's Ed25519 key pair that signs firmware releases",
        description="Manages the fleet's signing key. `keys new` makes an Ed25519 key pair with the "
        "`cryptography` library: DIR/fleet.key (PEM PKCS#8, mode 0600, never printed) and DIR/fleet.pub "
        "(one line: the base64 of the 32-byte public key, as a node's config holds it in ota.pubkeys).",
        epilog="examples:\n  streetnode keys new --out keys/\n\n"
        "exit codes: 0 written, 1 failed, 2 usage error, 3 DIR already holds a key (never overwritten)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ks = k.add_subparsers(dest="keys_command", metavar="ACTION")
    ks.required = True
    n = ks.add_parser("new", help="make a new fleet key pair in DIR",
                      description="Makes DIR/fleet.key (0600) and DIR/fleet.pub; refuses if either exists.")  # fmt: skip
    n.add_argument("--out", required=True, metavar="DIR", help="where to write fleet.key and fleet.pub")
    n.set_defaults(func=_new)
    return k
