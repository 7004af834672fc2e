"""`streetnode bundle`: reproducible bytes, a manifest that matches the files, the right
modules per target, a size report, and a unix bundle that runs on the real MicroPython."""

import hashlib
import json
import os
import subprocess
import sys

import pytest

from streetnode.common import mpy
from streetnode.common.errors import Failure
from streetnode.technician import bundle


def _tree(path):
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def esp32(tmp_path_factory, device_lib):
    out, manifest = bundle.make("esp32", tmp_path_factory.mktemp("b") / "esp32", lib=device_lib)
    return out, manifest


@pytest.fixture(scope="module")
def unix(tmp_path_factory, device_lib):
    out, manifest = bundle.make("unix", tmp_path_factory.mktemp("b") / "unix", lib=device_lib)
    return out, manifest


def test_same_sources_give_byte_identical_bundles(esp32, tmp_path, device_lib):
    first, _ = esp32
    # Another directory, built later: no path, time or order may leak into the bytes.
    second, _ = bundle.make("esp32", tmp_path / "elsewhere" / "again", lib=device_lib)
    a, b = _tree(first), _tree(second)
    assert sorted(a) == sorted(b)
    assert [name for name in a if a[name] != b[name]] == []
    # Building over an existing bundle replaces it as a whole, with the same bytes.
    (second / "stale.txt").write_text("left from an older bundle")
    bundle.make("esp32", second, lib=device_lib)
    assert _tree(second) == a


def test_manifest_lists_every_file_with_size_and_sha256(esp32):
    out, manifest = esp32
    on_disk = _tree(out)
    assert json.loads(on_disk.pop("manifest.json")) == manifest
    listed = {f["path"]: f for f in manifest["files"]}
    assert sorted(listed) == sorted(on_disk)
    for path, data in on_disk.items():
        assert listed[path]["size"] == len(data), path
        assert listed[path]["sha256"] == hashlib.sha256(data).hexdigest(), path
    assert manifest["target"] == "esp32" and manifest["march"] == "xtensawin"
    assert manifest["version"] == bundle.firmware_version()
    assert manifest["boards"] == ["esp32-devkitc"]
    assert [f["path"] for f in manifest["files"]] == sorted(listed)
    assert listed["app/firmware/node.mpy"]["part"] == "firmware"
    assert listed["app/lib/umqtt/simple.mpy"]["part"] == "deps"
    assert listed["app/drivers/bme280/__init__.mpy"]["part"] == "drivers"
    assert listed["boot.py"]["part"] == "board"
    board = json.loads(on_disk["app/board.json"])
    assert board["target"] == "esp32" and board["boards"]["esp32-devkitc"]["i2c"]["0"]["sda"] == 21


def test_targets_carry_only_their_modules(esp32, unix):
    chip = {f["path"] for f in esp32[1]["files"]}
    sim = {f["path"] for f in unix[1]["files"]}
    assert not [p for p in chip if p.startswith("app/hal/sim/")]
    assert "app/hal/sim/bme280.mpy" in sim
    for host_only in ("app/firmware/mqtt_paho.mpy", "app/hal/blinka.mpy", "app/firmware/compat/ussl.mpy"):
        assert host_only not in chip and host_only not in sim
    assert "app/firmware/main_unix.mpy" in sim and "app/firmware/main_unix.mpy" not in chip
    assert "app/lib/ussl.mpy" in chip
    assert not [p for p in chip | sim if p.endswith(".py") and p not in ("boot.py", "main.py", "loader.py")]
    assert chip <= sim


def test_load_refuses_a_damaged_or_incomplete_bundle(esp32, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(esp32[0], copy)
    assert bundle.load(copy) == esp32[1]
    target = copy / "app" / "firmware" / "node.mpy"
    data = target.read_bytes()
    target.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))  # the last byte, always changed
    with pytest.raises(Failure, match="app/firmware/node.mpy differs"):
        bundle.load(copy)
    target.unlink()
    with pytest.raises(Failure, match="node.mpy is missing"):
        bundle.load(copy)
    with pytest.raises(Failure, match="not a bundle"):
        bundle.load(tmp_path)


def test_size_report_per_part(esp32):
    manifest = esp32[1]
    sizes = bundle.sizes(manifest)
    assert sum(sizes[p]["bytes"] for p in bundle.PARTS) == sizes["total"]["bytes"] == sum(f["size"] for f in manifest["files"])
    assert sizes["total"]["files"] == len(manifest["files"])
    for p in bundle.PARTS:
        assert sizes[p]["files"] > 0
        # whole 4 KiB file-system blocks, at least one per file
        assert sizes[p]["flash"] % 4096 == 0 and sizes[p]["flash"] >= sizes[p]["bytes"]
    assert sizes["two_slots"] > sizes["total"]["flash"]
    text = bundle.size_report(manifest)
    for p in bundle.PARTS + ("total",):
        assert "\n  %s " % p in text


def test_cli_prints_the_report_and_json(tmp_path, device_lib):
    exe = [sys.executable, "-m", "streetnode.cli", "bundle", "--target", "rp2", "--out", str(tmp_path / "rp2")]
    proc = subprocess.run(exe, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "for rp2 (pico-w)" in proc.stdout and "firmware" in proc.stdout and "total" in proc.stdout
    proc = subprocess.run(exe + ["--json"], capture_output=True, text=True)
    report = json.loads(proc.stdout)
    assert report["target"] == "rp2" and report["sizes"]["total"]["files"] > 30
    proc = subprocess.run([sys.executable, "-m", "streetnode.cli", "bundle", "--target", "avr"], capture_output=True, text=True)
    assert proc.returncode == 2 and "invalid choice" in proc.stderr


def test_unix_bundle_runs_on_micropython(unix):
    # Only the bundle on the path (not the repository): every import must come from it.
    app = unix[0] / "app"
    env = dict(os.environ, MICROPYPATH="%s:%s:.frozen" % (app, app / "lib"))
    code = "import firmware.node, umqtt.simple, hal.sim.board, json; print(json.load(open('board.json'))['target'])"
    proc = subprocess.run([mpy.executable(), "-c", code], cwd=app, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert proc.stdout.strip() == "unix"


def test_every_device_package_has_a_manifest():
    from streetnode.technician import manifests

    packages = manifests.device_packages()
    assert {"firmware", "firmware/config", "drivers", "drivers/bme280", "hal", "hal/sim"} <= set(packages)
    missing = [p for p in packages if not (bundle.REPO / p / "manifest.py").is_file()]
    assert missing == []


def test_the_bundle_carries_what_the_manifests_name(esp32, unix, device_lib):
    for out, manifest in (esp32, unix):
        named = {"app/" + bundle.slot_path(rel) for rel in bundle.contents(manifest["target"], device_lib)}
        carried = {f["path"] for f in manifest["files"]} - {"boot.py", "main.py", "loader.py", "app/node_main.mpy", "app/board.json"}
        assert carried == named, manifest["target"]
    # Every device module ships on some target, but for the two that run on CPython only.
    from streetnode.technician import manifests

    shipped = set(bundle.contents("esp32", device_lib)) | set(bundle.contents("unix", device_lib))
    tree = {p.relative_to(bundle.REPO).as_posix() for top in ("firmware", "drivers", "hal")
            for p in (bundle.REPO / top).rglob("*.py") if p.name != "manifest.py" and "__pycache__" not in p.parts}
    tree = {"ussl.py" if rel == "firmware/compat/ussl.py" else rel for rel in tree}
    assert sorted(tree - shipped) == ["firmware/mqtt_paho.py", "hal/blinka.py"]
    # A driver ships as drivers/<chip>/ beside hal/, not as a top-level package.
    assert "drivers/bme280/__init__.py" in shipped and "bme280/__init__.py" not in shipped
    assert manifests.evaluate(["drivers.bme280"])[1]["drivers/bme280/manifest.py"]["version"] == "0.1.0"


def test_a_wrong_manifest_is_named(tmp_path, monkeypatch):
    from streetnode.technician import manifests

    monkeypatch.setattr(manifests, "REPO", tmp_path)
    (tmp_path / "pkg").mkdir()
    cases = {
        'package("pkg/nothere", base_path="..")': "pkg/manifest.py: package('pkg/nothere'): ",
        'module("gone.py")': "pkg/manifest.py: ",
        'require("no.such")': "pkg/manifest.py: require('no.such'): no no/such/manifest.py",
        'freeze("x")': "name 'freeze' is not defined (a manifest may call metadata, require, include, package, module)",
        'package(': "pkg/manifest.py: cannot be read",
    }
    for text, message in cases.items():
        (tmp_path / "pkg" / "manifest.py").write_text(text + "\n")
        with pytest.raises(manifests.ManifestError) as e:
            manifests.resolve(["pkg"])
        assert message in str(e.value), (text, str(e.value))
    monkeypatch.setattr(bundle, "TARGETS", dict(bundle.TARGETS, esp32=dict(bundle.TARGETS["esp32"], require=("pkg",))))
    with pytest.raises(Failure, match="pkg/manifest.py"):
        bundle.contents("esp32")
