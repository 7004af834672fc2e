"""Every device test (host_tests/device/test_*.py) again, inside the real MicroPython
interpreter: pytest runs them on CPython directly, and here once more on MicroPython,
one pytest item per test function so that a failure names the function."""

import ast
import functools
import json
from pathlib import Path

import pytest

from streetnode.common import mpy

DEVICE_TESTS = Path(__file__).with_name("device")


def _collect():
    for path in sorted(DEVICE_TESTS.glob("test_*.py")):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                yield "host_tests.device." + path.stem, node.name


@functools.lru_cache(maxsize=None)
def _results(module):
    proc = mpy.run(["host_tests/mprun.py", module], capture=True, timeout=600)
    results = {}
    for line in proc.stdout.splitlines():
        if line.startswith("@@RESULT "):
            r = json.loads(line[len("@@RESULT ") :])
            results[r["name"]] = r
    return results, proc


@pytest.mark.parametrize("module,function", list(_collect()), ids=lambda v: v.rsplit(".", 1)[-1])
def test_on_micropython(module, function):
    results, proc = _results(module)
    if function not in results:
        pytest.fail(
            "%s.%s did not run on MicroPython (exit %d)\n%s\n%s"
            % (module, function, proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:])
        )
    r = results[function]
    if not r["ok"]:
        pytest.fail("on MicroPython:\n" + r["error"])
