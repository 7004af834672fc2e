"""Every device test (host_tests/device/test_*.py) again, inside the real MicroPython
interpreter: pytest runs them on CPython directly, and here once more on MicroPython,
one pytest item per test function so that a failure names the function."""

import functools
import importlib
import inspect
import json
from pathlib import Path

import pytest

from streetnode.common import mpy

DEVICE_TESTS = Path(__file__).with_name("device")


def _collect():
    """(module, function) for every test_* function of the device test modules: the ones
    they define and the ones they register (host_tests/device/pm_uart_checks.py), as
    host_tests/mprun.py finds them inside MicroPython."""
    for path in sorted(DEVICE_TESTS.glob("test_*.py")):
        module = "host_tests.device." + path.stem
        tests = importlib.import_module(module)
        for name in sorted(vars(tests)):
            if name.startswith("test_") and inspect.isfunction(getattr(tests, name)):
                yield module, name


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
