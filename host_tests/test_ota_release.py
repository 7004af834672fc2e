"""`streetnode keys new`, `streetnode release` (and `release verify`, ota.release.check)
and `provision --ota-pubkey`: the fleet key's files, a signed release that is
byte-identical when rebuilt, carries its version in the bundle, and verifies inside the
real MicroPython with the release's own compiled verifier; tampering and bad input fail
with the documented exit codes."""

import json
import os
import stat
import subprocess

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from streetnode import cli
from streetnode.common import mpy
from streetnode.common.errors import EXIT_INPUT, EXIT_INVALID, EXIT_KEY, EXIT_USAGE, EXIT_VERIFY, Failure
from streetnode.ota import keys, release

EPOCH = "1764648000"  # 2025-12-02T04:00:00Z


def run(argv, capsys):
    try:
        code = cli.main(argv)
    except SystemExit as e:  # argparse
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """A key pair and a signed unix release of version 0.2.0."""
    base = tmp_path_factory.mktemp("ota")
    key_path, pub_path, _ = keys.new(base / "keys")
    out, manifest = release.make("unix", key_path, base / "rel", version="0.2.0", env={"SOURCE_DATE_EPOCH": EPOCH})
    return base, key_path, pub_path, out, manifest


def test_keys_new_writes_a_private_0600_key_and_a_base64_pub(tmp_path, capsys):
    code, out, err = run(["keys", "new", "--out", str(tmp_path / "k")], capsys)
    assert code == 0, err
    key_file, pub_file = tmp_path / "k" / "fleet.key", tmp_path / "k" / "fleet.pub"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    pem = key_file.read_bytes()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8
    key = serialization.load_pem_private_key(pem, None)
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    text = pub_file.read_text()
    assert text.endswith("\n") and len(text.strip()) == 44
    assert keys.read_public(pub_file) == keys.public_raw(key)
    body = b"".join(pem.splitlines()[1:-1]).decode()
    assert body not in out and body[:20] not in out + err and "PRIVATE" not in out  # never printed
    assert text.strip() in out
    # never overwritten
    code, out, err = run(["keys", "new", "--out", str(tmp_path / "k")], capsys)
    assert code == EXIT_KEY == 3
    assert err.strip() == ("streetnode keys new: error: %s already exists: a fleet key is never overwritten (the "
                           "nodes trust it); choose another --out" % key_file)  # fmt: skip
    assert key_file.read_bytes() == pem


def test_release_layout_and_manifest_format(fleet):
    base, _, pub_path, out, manifest = fleet
    data = (out / "manifest.json").read_bytes()
    assert data == json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    assert sorted(manifest) == ["allow_downgrade", "files", "format", "loader", "made", "target", "version"]
    assert manifest["format"] == 1 and manifest["version"] == "0.2.0" and manifest["target"] == "unix"
    assert manifest["loader"] == 1 and manifest["allow_downgrade"] is False
    assert manifest["made"] == "2025-12-02T04:00:00Z"
    paths = [f["path"] for f in manifest["files"]]
    assert paths == sorted(paths) and len(set(paths)) == len(paths)
    assert {"node_main.mpy", "board.json", "manifest.json", "firmware/node.mpy", "firmware/ota/ed25519.mpy",
            "firmware/ota/sha512.mpy", "firmware/ota/release.mpy", "lib/umqtt/simple.mpy"} <= set(paths)
    assert not [p for p in paths if p.startswith("app/") or p in ("boot.py", "main.py")]
    assert len((out / "manifest.sig").read_bytes()) == 64
    bundle_manifest = json.loads((out / "bundle" / "manifest.json").read_text())
    assert bundle_manifest["version"] == "0.2.0"
    rel = release.check(out, [pub_path])
    assert rel.manifest == manifest and len(rel.files) == len(paths)
    assert rel.files[paths.index("firmware/node.mpy")][1] == out / "bundle" / "app" / "firmware" / "node.mpy"


def test_release_is_byte_identical_when_rebuilt(fleet, tmp_path):
    _, key_path, _, out, _ = fleet
    again, _ = release.make("unix", key_path, tmp_path / "again", version="0.2.0", env={"SOURCE_DATE_EPOCH": EPOCH})

    def tree(root):
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    a, b = tree(out), tree(again)
    assert sorted(a) == sorted(b)
    assert [k for k in a if a[k] != b[k]] == []


def test_the_time_is_the_last_commit_without_source_date_epoch():
    proc = subprocess.run(["git", "-C", str(release.REPO), "log", "-1", "--format=%cI"], capture_output=True, text=True)
    made = release.made_time({})
    if proc.returncode == 0 and proc.stdout.strip():
        import datetime

        when = datetime.datetime.fromisoformat(proc.stdout.strip()).astimezone(datetime.timezone.utc)
        assert made == when.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert release.made_time({"SOURCE_DATE_EPOCH": "0"}) == "1970-01-01T00:00:00Z"
    with pytest.raises(Failure, match="SOURCE_DATE_EPOCH='soon' is not a whole number"):
        release.made_time({"SOURCE_DATE_EPOCH": "soon"})


def test_the_release_verifies_inside_micropython_with_its_own_compiled_code(fleet):
    # Only the release's slot on the path: its firmware/ota (as .mpy) checks its own manifest
    # and reports the version the release wrote into firmware/version.py.
    _, _, pub_path, out, _ = fleet
    app = out / "bundle" / "app"
    code = (
        "import binascii\n"
        "from firmware.ota import release, keys\n"
        "from firmware.version import FW_VERSION\n"
        "key = keys.decode(%r)\n"
        "data = open(%r, 'rb').read()\n"
        "sig = open(%r, 'rb').read()\n"
        "m, why = release.accept(data, sig, [key], 'unix-sim', '0.1.0', 1)\n"
        "print(FW_VERSION, why, m and m['version'], release.__file__)\n"
        "bad = bytearray(data); bad[100] ^= 1\n"
        "print(release.accept(bytes(bad), sig, [key], 'unix-sim', '0.1.0', 1)[1])\n"
        % (pub_path.read_text().strip(), str(out / "manifest.json"), str(out / "manifest.sig"))
    )
    env = dict(os.environ, MICROPYPATH="%s:%s:.frozen" % (app, app / "lib"))
    proc = subprocess.run([mpy.executable(), "-c", code], cwd=app, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    first, second = proc.stdout.splitlines()
    assert first.split()[:3] == ["0.2.0", "None", "0.2.0"] and first.endswith(".mpy")
    assert second == "bad signature: the manifest is not signed by any of the node's 1 ota.pubkeys"


def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_tampered_releases_do_not_verify(fleet, tmp_path, capsys):
    base, _, pub_path, out, _ = fleet
    # one byte of one file
    r1 = _copy(out, tmp_path / "r1")
    f = r1 / "bundle" / "app" / "firmware" / "node.mpy"
    blob = bytearray(f.read_bytes())
    blob[50] ^= 0x20
    f.write_bytes(bytes(blob))
    code, _, err = run(["release", "verify", str(r1), "--pub", str(pub_path)], capsys)
    assert code == EXIT_VERIFY == 5
    assert err.strip() == "streetnode release verify: error: %s: bundle/app/firmware/node.mpy differs from the signed manifest" % r1
    # the manifest edited
    r2 = _copy(out, tmp_path / "r2")
    m = (r2 / "manifest.json").read_bytes().replace(b'"allow_downgrade":false', b'"allow_downgrade":true')
    (r2 / "manifest.json").write_bytes(m)
    with pytest.raises(Failure, match="bad signature: manifest.json is not signed by this key") as e:
        release.check(r2, [pub_path])
    assert e.value.code == EXIT_VERIFY
    # another key
    _, other_pub, _ = keys.new(tmp_path / "other")
    with pytest.raises(Failure, match="bad signature"):
        release.check(out, [other_pub])
    assert release.check(out, [other_pub, pub_path]).key == keys.read_public(pub_path)  # a rotation: either key
    # a file missing, the signature cut
    r3 = _copy(out, tmp_path / "r3")
    (r3 / "bundle" / "app" / "board.json").unlink()
    with pytest.raises(Failure, match="bundle/app/board.json is missing"):
        release.check(r3, [pub_path])
    (r3 / "manifest.sig").write_bytes(b"x" * 10)
    with pytest.raises(Failure, match="manifest.sig: 10 bytes, an Ed25519 signature has 64"):
        release.check(r3, [pub_path])
    code, _, err = run(["release", "verify", str(tmp_path), "--pub", str(pub_path)], capsys)
    assert code == EXIT_INPUT == 3 and "is not a release: no manifest.json" in err
    code, _, err = run(["release", "verify", str(out), "--pub", str(tmp_path / "nope.pub")], capsys)
    assert code == EXIT_INPUT and "--pub %s: cannot be read" % (tmp_path / "nope.pub") in err
    code, out_text, err = run(["release", "verify", str(out), "--pub", str(pub_path)], capsys)
    assert code == 0, err
    assert "release 0.2.0 for unix, signed by %s" % pub_path.read_text().strip() in out_text


def test_bad_input_is_one_line_with_the_exit_code(fleet, tmp_path, capsys):
    base, key_path, pub_path, _, _ = fleet
    rsa_like = tmp_path / "ec.key"
    rsa_like.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))  # fmt: skip
    junk = tmp_path / "junk.key"
    junk.write_text("hello\n")
    out = str(tmp_path / "rel")
    cases = [
        (["--target", "unix", "--key", str(tmp_path / "missing.key"), "--out", out], EXIT_KEY,
         "--key %s: cannot be read (No such file or directory)" % (tmp_path / "missing.key")),
        (["--target", "unix", "--key", str(rsa_like), "--out", out], EXIT_KEY, "an ECDSA key, not Ed25519"),
        (["--target", "unix", "--key", str(pub_path), "--out", out], EXIT_KEY,
         "this is a public key; releases are signed with the private fleet.key"),
        (["--target", "unix", "--key", str(junk), "--out", out], EXIT_KEY, "--key %s: not a private key" % junk),
        (["--target", "unix", "--key", str(key_path), "--out", out, "--version", "1.2-beta"], EXIT_USAGE,
         "--version '1.2-beta': must be 1 to 4 dot-separated numbers"),
        (["--target", "unix", "--key", str(key_path)], EXIT_USAGE, "release needs --out"),
        (["--target", "unix", "--key", str(key_path), "--out", str(base / "keys")], EXIT_INPUT,
         "exists and is not a release"),
    ]
    for argv, want_code, want in cases:
        code, stdout, err = run(["release"] + argv, capsys)
        assert code == want_code, (argv, err)
        why = err.strip().splitlines()[-1]
        if want_code == EXIT_USAGE:  # a usage error: the subcommand's usage, then why
            assert err.startswith("usage: streetnode release") and want in why, (argv, err)
        else:
            assert err.startswith("streetnode release: error: ") and want in err, (argv, err)
            assert len(err.strip().splitlines()) == 1
    code, _, err = run(["release", "--target", "avr", "--key", str(key_path), "--out", out], capsys)
    assert code == EXIT_USAGE and "invalid choice: 'avr'" in err
    assert not os.path.exists(out)


def test_provision_puts_the_key_into_the_config(tmp_path, capsys, monkeypatch, fleet):
    _, _, pub_path, _, _ = fleet
    monkeypatch.chdir(tmp_path)
    # a PEM public key (openssl pkey -pubout) is read as well
    pem_pub = tmp_path / "second.pem"
    second = ed25519.Ed25519PrivateKey.generate().public_key()
    pem_pub.write_bytes(second.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    argv = ["provision", "--id", "sim-7", "--board", "unix-sim", "--broker", "127.0.0.1:1883", "--anonymous",
            "--ota-pubkey", str(pub_path), "--ota-pubkey", str(pem_pub)]  # fmt: skip
    code, _, err = run(argv, capsys)
    assert code == 0, err
    cfg = json.loads((tmp_path / "nodes" / "sim-7" / "config.json").read_text())
    raw2 = second.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert cfg["ota"]["pubkeys"] == [pub_path.read_text().strip(), keys.public_text(raw2)]
    key_file = pub_path.parent / "fleet.key"
    for bad, want in ((key_file, "this is a private key; give the public fleet.pub"),
                      (tmp_path / "none.pub", "cannot be read"),
                      (tmp_path / "nodes" / "sim-7" / "config.json", "not an Ed25519 public key")):  # fmt: skip
        argv = ["provision", "--id", "sim-8", "--board", "unix-sim", "--broker", "127.0.0.1", "--anonymous",
                "--ota-pubkey", str(bad)]  # fmt: skip
        code, _, err = run(argv, capsys)
        assert code == EXIT_INVALID == 4, err
        assert "--ota-pubkey %s: %s" % (bad, want) in err, err
    three = ["--ota-pubkey", str(pub_path)] * 3
    code, _, err = run(["provision", "--id", "sim-9", "--board", "unix-sim", "--broker", "h", "--anonymous"] + three,
                       capsys)  # fmt: skip
    assert code == EXIT_INVALID and "ota.pubkeys: at most 2 keys" in err
