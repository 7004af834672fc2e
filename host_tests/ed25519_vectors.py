"""Makes host_tests/device/ed25519_data.py, the Ed25519 vectors the device tests read
inside MicroPython (where `cryptography` does not exist): RFC 8032 §7.1's test vectors,
signatures made by `cryptography` from fixed seeds over messages of many lengths, and
encodings that are not points. host_tests/test_ed25519_vectors.py checks that the file
is what this makes; after changing it, run:

    .venv/bin/python -m host_tests.ed25519_vectors
"""

import hashlib
from pathlib import Path

DATA = Path(__file__).with_name("device") / "ed25519_data.py"

# RFC 8032 §7.1, TEST 1, 2, 3, 1024 and SHA(abc): (name, secret key, public key, message, signature)
RFC8032 = [
    ("TEST 1", "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
    ("TEST 2", "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
    ("TEST 3", "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
     "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"),
    ("TEST 1024", "f5e5767cf153319517630f226876b86c8160cc583bc013744c6bf255f5cc0ee5",
     "278117fc144c72340f67d0f2316e8386ceffbf2b2428c9c51fef7c597f1d426e",
     "08b8b2b733424243760fe426a4b54908632110a66c2f6591eabd3345e3e4eb98fa6e264bf09efe12ee50f8f54e9f77b1e355f6c50544e23fb1433ddf73be84d879de7c0046dc4996d9e773f4bc9efe5738829adb26c81b37c93a1b270b20329d658675fc6ea534e0810a4432826bf58c941efb65d57a338bbd2e26640f89ffbc1a858efcb8550ee3a5e1998bd177e93a7363c344fe6b199ee5d02e82d522c4feba15452f80288a821a579116ec6dad2b3b310da903401aa62100ab5d1a36553e06203b33890cc9b832f79ef80560ccb9a39ce767967ed628c6ad573cb116dbefefd75499da96bd68a8a97b928a8bbc103b6621fcde2beca1231d206be6cd9ec7aff6f6c94fcd7204ed3455c68c83f4a41da4af2b74ef5c53f1d8ac70bdcb7ed185ce81bd84359d44254d95629e9855a94a7c1958d1f8ada5d0532ed8a5aa3fb2d17ba70eb6248e594e1a2297acbbb39d502f1a8c6eb6f1ce22b3de1a1f40cc24554119a831a9aad6079cad88425de6bde1a9187ebb6092cf67bf2b13fd65f27088d78b7e883c8759d2c4f5c65adb7553878ad575f9fad878e80a0c9ba63bcbcc2732e69485bbc9c90bfbd62481d9089beccf80cfe2df16a2cf65bd92dd597b0707e0917af48bbb75fed413d238f5555a7a569d80c3414a8d0859dc65a46128bab27af87a71314f318c782b23ebfe808b82b0ce26401d2e22f04d83d1255dc51addd3b75a2b1ae0784504df543af8969be3ea7082ff7fc9888c144da2af58429ec96031dbcad3dad9af0dcbaaaf268cb8fcffead94f3c7ca495e056a9b47acdb751fb73e666c6c655ade8297297d07ad1ba5e43f1bca32301651339e22904cc8c42f58c30c04aafdb038dda0847dd988dcda6f3bfd15c4b4c4525004aa06eeff8ca61783aacec57fb3d1f92b0fe2fd1a85f6724517b65e614ad6808d6f6ee34dff7310fdc82aebfd904b01e1dc54b2927094b2db68d6f903b68401adebf5a7e08d78ff4ef5d63653a65040cf9bfd4aca7984a74d37145986780fc0b16ac451649de6188a7dbdf191f64b5fc5e2ab47b57f7f7276cd419c17a3ca8e1b939ae49e488acba6b965610b5480109c8b17b80e1b7b750dfc7598d5d5011fd2dcc5600a32ef5b52a1ecc820e308aa342721aac0943bf6686b64b2579376504ccc493d97e6aed3fb0f9cd71a43dd497f01f17c0e2cb3797aa2a2f256656168e6c496afc5fb93246f6b1116398a346f1a641f3b041e989f7914f90cc2c7fff357876e506b50d334ba77c225bc307ba537152f3f1610e4eafe595f6d9d90d11faa933a15ef1369546868a7f3a45a96768d40fd9d03412c091c6315cf4fde7cb68606937380db2eaaa707b4c4185c32eddcdd306705e4dc1ffc872eeee475a64dfac86aba41c0618983f8741c5ef68d3a101e8a3b8cac60c905c15fc910840b94c00a0b9d0",
     "0aab4c900501b3e24d7cdf4663326a3a87df5e4843b2cbdb67cbf6e460fec350aa5371b1508f9f4528ecea23c436d94b5e8fcd4f681e30a6ac00a9704a188a03"),
    ("SHA(abc)", "833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
     "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
     "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
     "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b58909351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704"),
]  # fmt: skip

# Message lengths around SHA-512's block (128 bytes; the padding needs 17) and a manifest's size.
LENGTHS = (0, 1, 31, 32, 33, 64, 111, 112, 127, 128, 129, 239, 240, 255, 256, 1000, 4000)

P = 2**255 - 19
D = -121665 * pow(121666, P - 2, P) % P


def _seed(i):
    return hashlib.sha256(b"streetnode ed25519 vector %d" % i).digest()


def _message(i, n):
    out = b""
    while len(out) < n:
        out += hashlib.sha256(b"streetnode message %d %d" % (i, len(out))).digest()
    return out[:n]


def on_curve(y, sign=0):
    """Whether y (< p) is the y of a curve point (RFC 8032 §5.1.3, with Python's pow)."""
    u = (y * y - 1) % P
    v = (D * y * y + 1) % P
    x2 = u * pow(v, P - 2, P) % P
    return x2 == 0 or pow(x2, (P - 1) // 2, P) == 1


def made():
    """(seed, public key, message, signature) as hex, signed by `cryptography`."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
    out = []
    for i, n in enumerate(LENGTHS):
        key = Ed25519PrivateKey.from_private_bytes(_seed(i))
        msg = _message(i, n)
        out.append((_seed(i).hex(), key.public_key().public_bytes(*raw).hex(), msg.hex(), key.sign(msg).hex()))
    return out


def not_on_curve():
    """Canonical 32-byte encodings (y < p) that are no point: small y, and one near p."""
    ys = [y for y in range(2, 40) if not on_curve(y)][:3] + [y for y in range(P - 40, P) if not on_curve(y)][:1]
    return [y.to_bytes(32, "little").hex() for y in ys]


L = 2**252 + 27742317777372353535851937790883648493


def _add(p, q):  # RFC 8032 §5.1.4, as its §6 illustration
    a, b = (p[1] - p[0]) * (q[1] - q[0]) % P, (p[1] + p[0]) * (q[1] + q[0]) % P
    c, d = 2 * p[3] * q[3] * D % P, 2 * p[2] * q[2] % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _mul(s, p):
    q = (0, 1, 1, 0)
    while s > 0:
        if s & 1:
            q = _add(q, p)
        p = _add(p, p)
        s >>= 1
    return q


def _enc(p):
    zi = pow(p[2], P - 2, P)
    x, y = p[0] * zi % P, p[1] * zi % P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def noncanonical_r():
    """(public key, message, signature with canonical R, signature with R's y spelled
    y + p), hex: A = [a]B + T with T of order 4, so [S]B - [k]A is the neutral point
    (y = 1, also spelled p + 1) when S = k a mod L and k = 0 mod 4. The first verifies,
    the second must not (a verifier that decodes R and compares points accepts it)."""
    by = 4 * pow(5, P - 2, P) % P
    bx = _recover_x(by, 0)
    base = (bx, by, 1, bx * by % P)
    sqrt_m1 = pow(2, (P - 1) // 4, P)
    t = (sqrt_m1, 0, 1, 0)  # (sqrt(-1), 0): order 4
    a = int.from_bytes(hashlib.sha256(b"streetnode mixed-order key").digest(), "little") % L
    key = _enc(_add(_mul(a, base), t))
    r_can = (1).to_bytes(32, "little")
    r_other = (P + 1).to_bytes(32, "little")
    i = 0
    while True:
        msg = b"streetnode non-canonical R %d" % i
        ks = [int.from_bytes(hashlib.sha512(r + key + msg).digest(), "little") % L for r in (r_can, r_other)]
        if ks[0] % 4 == 0 and ks[1] % 4 == 0:
            break
        i += 1
    sigs = [r + (k * a % L).to_bytes(32, "little") for r, k in zip((r_can, r_other), ks)]
    return [(key.hex(), msg.hex(), sigs[0].hex(), sigs[1].hex())]


def _recover_x(y, sign):
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P != 0:
        x = x * pow(2, (P - 1) // 4, P) % P
    if x & 1 != sign:
        x = P - x
    return x


def release():
    """A release manifest as `streetnode release` writes it (canonical JSON), signed by
    a fixed key: (public key, manifest, signature), hex."""
    import json

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"streetnode release key").digest())
    files = [{"path": p, "size": n, "sha256": hashlib.sha256(p.encode()).hexdigest()}
             for p, n in (("board.json", 900), ("firmware/node.mpy", 21000), ("manifest.json", 7000),
                          ("node_main.mpy", 200))]  # fmt: skip
    manifest = {"format": 1, "version": "0.2.0", "target": "unix", "loader": 1, "made": "2026-12-02T04:05:19Z",
                "allow_downgrade": False, "files": files}  # fmt: skip
    data = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    pk = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return (pk.hex(), data.hex(), key.sign(data).hex())


def render():
    lines = [
        "# Generated by host_tests/ed25519_vectors.py (checked by host_tests/test_ed25519_vectors.py): do not edit.",
        "# RFC 8032 §7.1: (name, secret key, public key, message, signature), hex",
        "RFC8032 = [",
    ]
    lines += ["    %r," % (v,) for v in RFC8032]
    lines += ["]", "", "# Signed by `cryptography` %s: (seed, public key, message, signature), hex" % _crypto_version(),
              "MADE = ["]
    lines += ["    %r," % (v,) for v in made()]
    lines += ["]", "", "# Encodings with y < p that are not on the curve, hex", "NOT_ON_CURVE = ["]
    lines += ["    %r," % v for v in not_on_curve()]
    lines += ["]", "", "# A key with a small-order component: (key, message, sig with canonical R, sig with R = p + 1), hex",
              "NONCANONICAL_R = ["]
    lines += ["    %r," % (v,) for v in noncanonical_r()]
    lines += ["]", "", "# A signed release manifest: (public key, manifest, signature), hex", "RELEASE = %r" % (release(),), ""]
    return "\n".join(lines)


def _crypto_version():
    import cryptography

    return cryptography.__version__


if __name__ == "__main__":
    DATA.write_text(render())
    print("wrote", DATA)
