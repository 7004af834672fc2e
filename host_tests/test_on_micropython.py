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


def _unplain(path):
    """What in a device test module would not run as a test inside MicroPython: the runner
    there (host_tests/mprun.py) calls each top-level test_* function without arguments and
    nothing else, so a test class, an async or generator test, a fixture argument or a
    pytest decorator would pass on CPython and be skipped unseen on MicroPython."""
    import ast

    tree = ast.parse(path.read_text(), str(path))
    bad = []
    for node in tree.body:
        where = "%s:%d" % (path.name, getattr(node, "lineno", 0))
        if isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            bad.append("%s: class %s (a test class)" % (where, node.name))
        elif isinstance(node, ast.AsyncFunctionDef) and node.name.startswith("test_"):
            bad.append("%s: async def %s" % (where, node.name))
        elif isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
            a = node.args
            if a.args or a.posonlyargs or a.kwonlyargs or a.vararg or a.kwarg:
                bad.append("%s: %s takes arguments (fixtures do not exist on MicroPython)" % (where, node.name))
            if node.decorator_list:
                bad.append("%s: %s is decorated (parametrize or marks do not run on MicroPython)" % (where, node.name))
            if any(isinstance(n, (ast.Yield, ast.YieldFrom)) for n in ast.walk(node)):
                bad.append("%s: %s is a generator (its body would never run)" % (where, node.name))
    return bad


def test_device_tests_are_plain_top_level_functions():
    bad = [b for path in sorted(DEVICE_TESTS.glob("test_*.py")) for b in _unplain(path)]
    assert not bad, "device tests that MicroPython would not run:\n" + "\n".join(bad)


def test_the_plainness_check_finds_each_shape(tmp_path):
    src = tmp_path / "test_shapes.py"
    src.write_text(
        "import pytest\n"
        "class TestA:\n    def test_x(self):\n        pass\n"
        "async def test_b():\n    pass\n"
        "def test_c(tmp_path):\n    pass\n"
        "@pytest.mark.parametrize('v', [1])\ndef test_d():\n    pass\n"
        "def test_e():\n    yield 1\n"
        "def test_ok():\n    pass\n"
    )
    found = _unplain(src)
    assert [b.split(": ", 1)[1].split(" ")[0] for b in found] == ["class", "async", "test_c", "test_d", "test_e"], found
