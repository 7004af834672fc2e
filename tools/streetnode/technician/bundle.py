"""`streetnode bundle`: everything a board needs, compiled for its chip, with a manifest.

    streetnode bundle --target esp32 [--out DIR] [--json]

A bundle is a directory:

    loader.py, boot.py, main.py   the board's loader (copied to the board's root; loader.py
                            first, the other two import it; LOADER_VERSION in loader.py)
    app/                    one firmware slot (copied to a/ or b/ on the board):
      node_main.mpy         the node's entry point
      board.json            the board description: target, boards, chip, bus pins
      firmware/ drivers/ hal/   the device code as .mpy (mpy-cross, -march for the chip)
      lib/                  pinned device packages (umqtt.simple) and our bridges, as .mpy
    manifest.json           every file above with its size and sha256, the firmware
                            version and the target (deploy copies it into the slot last)

The same sources give a byte-identical bundle: files are compiled one by one in sorted
order with a fixed embedded source name, nothing records a time or a host path, and the
manifest is written with sorted keys.
"""

import argparse
import hashlib
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from streetnode.common import build, deps
from streetnode.common.errors import Failure
from streetnode.common.files import replace_dir
from streetnode.common.paths import REPO
from streetnode.common.paths import device_code
from streetnode.technician import manifests

BOARD_DIR = Path(__file__).resolve().parent / "board"
MANIFEST = "manifest.json"
APP = "app"  # the slot's directory inside a bundle
FORMAT = 1

# target -> what it is compiled for, which boards (config "board") run it, and the
# manifests whose files it carries (technician/manifests.py evaluates them): the
# firmware's manifest names the rest (hal, drivers, umqtt.simple); the unix target
# adds the simulated board (hal/sim/manifest.py).
TARGETS = {
    "esp32": {"march": "xtensawin", "boards": ("esp32-devkitc",), "block": 4096, "require": ("firmware",)},
    "rp2": {"march": "armv6m", "boards": ("pico-w",), "block": 4096, "require": ("firmware",)},
    "unix": {"march": None, "boards": ("unix-sim",), "block": 4096, "require": ("firmware", "hal.sim")},
}
PARTS = ("firmware", "drivers", "hal", "deps", "board")
LOADERS = ("loader.py", "boot.py", "main.py")  # the board root's loader, in the order deploy writes them


def _versions():
    # firmware/version.py is device code; read it without importing the package's state.
    ns = {}
    exec((REPO / "firmware" / "version.py").read_text(), ns)
    return ns


def firmware_version():
    """FW_VERSION of firmware/version.py: the version a bundle carries unless told another."""
    return _versions()["FW_VERSION"]


def loader_needed():
    """LOADER of firmware/version.py: the boot loader version the firmware needs (a release's
    manifest names it as "loader"; a node whose loader.py LOADER_VERSION is lower refuses)."""
    return _versions()["LOADER"]


def contents(target, lib=None):
    """{path in the slot without .mpy: (source, opt)} of what `target` carries, from
    the manifests (manifests.ManifestError, a Failure, naming the manifest that is wrong)."""
    if target not in TARGETS:
        raise Failure("unknown target %r (known: %s)" % (target, ", ".join(sorted(TARGETS))))
    return manifests.resolve(TARGETS[target]["require"], lib)


def slot_path(rel):
    """Where a module named by the manifests sits in the slot: our packages at the top,
    everything else (umqtt, the ussl bridge) under lib/, compiled (.mpy)."""
    under_lib = not rel.startswith(build.PACKAGES)
    return ("lib/" if under_lib else "") + rel[:-3] + ".mpy"


def part_of(path):
    """The size report's part of a bundle path ('app/firmware/node.mpy' -> 'firmware')."""
    parts = path.split("/")
    if parts[0] == APP and len(parts) > 2:
        return {"firmware": "firmware", "drivers": "drivers", "hal": "hal", "lib": "deps"}.get(parts[1], "board")
    return "board"


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def _compile(src, rel, out, march, opt=None):
    cmd = build.mpy_cross() + (["-march=" + march] if march else []) + (["-O%d" % opt] if opt else [])
    cmd += ["-s", rel, "-o", str(out), str(src)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise Failure("mpy-cross failed on %s: %s" % (rel, (proc.stderr or proc.stdout).strip()))


def _board_description(target):
    device_code()
    from hal import boards

    spec = TARGETS[target]
    return {
        "target": target,
        "march": spec["march"],
        "boards": {name: boards.BOARDS[name] for name in spec["boards"]},
        "layout": {"slots": ["a", "b"], "pointer": "slot", "data": "data", "maintenance_marker": "maint"},
        "mpy": "6.3",
        "micropython": "1.29",
    }


def _json_bytes(obj):
    return (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode()


def _version_source(version, stage):
    # firmware/version.py with FW_VERSION set to `version` (streetnode release --version):
    # compiled under its own name, so the bundle stays byte-identical for the same version.
    src = (REPO / "firmware" / "version.py").read_text()
    lines = ['FW_VERSION = "%s"' % version if ln.startswith("FW_VERSION =") else ln for ln in src.splitlines()]
    path = stage / ".version.py"
    path.write_text("\n".join(lines) + "\n")
    return path


def make(target, out=None, lib=None, version=None):
    """Build the bundle for `target` into `out` (default build/bundle/<target>); returns
    (path, manifest). The old content of `out` is replaced as a whole. `version` (a
    checked version string) replaces firmware/version.py's FW_VERSION in the bundle."""
    if target not in TARGETS:
        raise Failure("unknown target %r (known: %s)" % (target, ", ".join(sorted(TARGETS))))
    spec = TARGETS[target]
    out = Path(out) if out else REPO / "build" / "bundle" / target
    lib = Path(lib) if lib else deps.device_lib()
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".bundle-", dir=str(out.parent)))
    try:
        app = stage / APP
        carried = contents(target, lib)
        if version is not None:
            carried["firmware/version.py"] = (_version_source(version, stage), carried["firmware/version.py"][1])
        for rel in sorted(carried):
            src, opt = carried[rel]
            dest = app / slot_path(rel)
            dest.parent.mkdir(parents=True, exist_ok=True)
            _compile(src, rel, dest, spec["march"], opt)
        _compile(BOARD_DIR / "node_main.py", "node_main.py", app / "node_main.mpy", spec["march"])
        for name in LOADERS:  # stay source: the board runs these by name
            shutil.copyfile(BOARD_DIR / name, stage / name)
        (app / "board.json").write_bytes(_json_bytes(_board_description(target)))
        if version is not None:
            (stage / ".version.py").unlink()
        files = []
        for path in sorted(p for p in stage.rglob("*") if p.is_file()):
            rel = path.relative_to(stage).as_posix()
            data = path.read_bytes()
            files.append({"path": rel, "size": len(data), "sha256": sha256(data), "part": part_of(rel)})
        manifest = {
            "format": FORMAT,
            "name": "streetnode",
            "version": firmware_version() if version is None else version,
            "target": target,
            "march": spec["march"],
            "boards": list(spec["boards"]),
            "deps": [repr(p) for p in deps.PACKAGES],
            "files": files,
        }
        (stage / MANIFEST).write_bytes(_json_bytes(manifest))
        replace_dir(stage, out)
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)
    return out, manifest


def load(path):
    """The manifest of the bundle at `path`, after checking that every file it lists is
    there with its size and sha256 (Failure naming the first that is not)."""
    path = Path(path)
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except FileNotFoundError:
        raise Failure("%s is not a bundle: no %s (make one with `streetnode bundle`)" % (path, MANIFEST))
    except (OSError, ValueError) as e:
        raise Failure("%s/%s cannot be read: %s" % (path, MANIFEST, e))
    if manifest.get("format") != FORMAT or manifest.get("target") not in TARGETS:
        raise Failure("%s/%s: not a streetnode bundle manifest of format %d" % (path, MANIFEST, FORMAT))
    for f in manifest["files"]:
        p = path / f["path"]
        if not p.is_file():
            raise Failure("bundle %s is incomplete: %s is missing" % (path, f["path"]))
        data = p.read_bytes()
        if len(data) != f["size"] or sha256(data) != f["sha256"]:
            raise Failure("bundle %s is damaged: %s differs from its manifest" % (path, f["path"]))
    return manifest


def sizes(manifest):
    """{part: {"files", "bytes", "flash"}} plus "total"; flash counts whole file-system
    blocks (littlefs allocates a file in blocks), which is what the board really spends."""
    block = TARGETS[manifest["target"]]["block"]
    report = {p: {"files": 0, "bytes": 0, "flash": 0} for p in PARTS + ("total",)}
    root = 0
    for f in manifest["files"]:
        blocks = max(1, -(-f["size"] // block)) * block
        for key in (f["part"], "total"):
            report[key]["files"] += 1
            report[key]["bytes"] += f["size"]
            report[key]["flash"] += blocks
        root += 0 if f["path"].startswith(APP + "/") else blocks
    # On the board: the app (and its copy of the manifest) once per slot, boot.py and main.py once.
    manifest_flash = max(1, -(-len(_json_bytes(manifest)) // block)) * block
    report["two_slots"] = 2 * (report["total"]["flash"] - root + manifest_flash) + root
    return report


def _kib(n):
    return "%.1f KiB" % (n / 1024.0)


def size_report(manifest):
    rep = sizes(manifest)
    lines = [
        "streetnode %s for %s (%s): size report" % (manifest["version"], manifest["target"], ", ".join(manifest["boards"])),
        "  %-9s %6s %11s %11s" % ("part", "files", "bytes", "flash"),
    ]
    for p in PARTS + ("total",):
        r = rep[p]
        lines.append("  %-9s %6d %11s %11s" % (p, r["files"], _kib(r["bytes"]), _kib(r["flash"])))
    lines.append(
        "  flash for two slots (A/B deploys): %s (file-system blocks of %d bytes)"
        % (_kib(rep["two_slots"]), TARGETS[manifest["target"]]["block"])
    )
    return "\n".join(lines)


def _run(args):
    out, manifest = make(args.target, args.out)
    if args.json:
        print(json.dumps({"bundle": str(out), "version": manifest["version"], "target": manifest["target"],
                          "sizes": sizes(manifest)}, indent=1, sort_keys=True))
    else:
        print(size_report(manifest))
        print("bundle: %s (%d files, manifest.json)" % (out, len(manifest["files"])))
    return 0


def register(sub):
    b = sub.add_parser(
        "bundle",
        help="compile the firmware for a board into a bundle with a manifest and a size report",
        description="Compiles firmware/, drivers/ and hal/ with mpy-cross for the target's chip "
        "(xtensawin for esp32, armv6m for rp2; the simulator only in the unix target): the files "
        "the device packages' manifest.py files name, from firmware/manifest.py on, with the "
        "pinned device packages they require (umqtt.simple, checked by sha256), the board's boot.py/main.py and "
        "a board description, and writes manifest.json: every file with its size and sha256, "
        "the firmware version and the target. The same sources give a byte-identical bundle. "
        "Prints the flash each part needs.",
        epilog="examples:\n"
        "  streetnode bundle --target esp32\n"
        "  streetnode bundle --target rp2 --out /tmp/pico-bundle\n"
        "  streetnode bundle --target unix --json\n\n"
        "exit codes: 0 bundle written, 1 failed (mpy-cross, a dependency that does not match\n"
        "its pinned sha256), 2 usage error",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    b.add_argument("--target", required=True, choices=sorted(TARGETS), help="the chip family to compile for")
    b.add_argument("--out", metavar="DIR", help="where to write the bundle (default build/bundle/TARGET); replaced as a whole")
    b.add_argument("--json", action="store_true", help="print the size report as JSON")
    b.set_defaults(func=_run)

