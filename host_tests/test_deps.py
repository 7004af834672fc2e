"""tools/streetnode/common/deps.py: umqtt from the package index, pinned by sha256, cached."""

import hashlib
import sys
import textwrap

import pytest

from streetnode.common import deps
from streetnode.common.errors import Failure


def _files_ok(lib):
    for rel, digest in deps.UMQTT.files.items():
        assert hashlib.sha256((lib / rel).read_bytes()).hexdigest() == digest
    assert (lib / "ussl.py").read_bytes() == (deps.COMPAT / "ussl.py").read_bytes()


def test_fetch_verify_then_offline(tmp_path, monkeypatch):
    lib = deps.device_lib(tmp_path)  # from the package index, through pip
    assert lib == tmp_path / "lib"
    _files_ok(lib)
    assert b"class MQTTClient" in (lib / "umqtt" / "simple.py").read_bytes()
    assert [p.name for p in tmp_path.iterdir()] == ["lib"]  # no work dirs left behind

    (lib / "umqtt" / "simple.py").write_text("tampered")  # a changed file is fetched again
    assert deps.device_lib(tmp_path) == lib
    _files_ok(lib)

    def no_network(*a, **k):
        raise AssertionError("pip must not run when the lib is cached")

    monkeypatch.setattr(deps.subprocess, "run", no_network)
    assert deps.device_lib(tmp_path) == lib  # offline from now on


def test_an_archive_with_another_hash_is_refused(tmp_path, monkeypatch):
    bad = deps.Package(deps.UMQTT.name, deps.UMQTT.version, "0" * 64, deps.UMQTT.files)
    monkeypatch.setattr(deps, "PACKAGES", (bad,))
    with pytest.raises(Failure) as e:
        deps.device_lib(tmp_path)
    msg = str(e.value)
    assert "\n" not in msg and "refusing" in msg and deps.UMQTT.archive_sha256 in msg
    assert not (tmp_path / "lib").exists()


def _fake_pip(tmp_path, body):
    script = tmp_path / "fake_pip.py"
    script.write_text(textwrap.dedent(body))
    return [sys.executable, str(script)]


def test_a_failed_download_is_one_line(tmp_path):
    pip = _fake_pip(
        tmp_path,
        """
        import sys
        print("Looking in indexes: https://pypi.org/simple")
        print("ERROR: Could not find a version that satisfies the requirement", file=sys.stderr)
        sys.exit(1)
        """,
    )
    with pytest.raises(Failure) as e:
        deps.device_lib(tmp_path / "cache", pip=pip)
    msg = str(e.value)
    assert "\n" not in msg
    assert "cannot download micropython-umqtt.simple==1.3.4" in msg and "Could not find a version" in msg


def test_a_file_that_differs_from_its_pin_is_refused(tmp_path):
    # pip's behaviour for this sdist (unpack, then refuse to build), with other file contents.
    pip = _fake_pip(
        tmp_path,
        """
        import os, sys
        d = os.path.join(os.environ["TMPDIR"], "pip-download-x", "micropython-umqtt-simple_1", "umqtt")
        os.makedirs(d)
        open(os.path.join(d, "simple.py"), "w").write("print('not the pinned file')")
        print("ERROR: ... does not appear to be a Python project: neither 'setup.py' nor 'pyproject.toml' found.")
        sys.exit(1)
        """,
    )
    with pytest.raises(Failure) as e:
        deps.device_lib(tmp_path / "cache", pip=pip)
    msg = str(e.value)
    assert "\n" not in msg and "umqtt/simple.py has sha256" in msg and "pinned" in msg
    assert not (tmp_path / "cache" / "lib").exists()
