"""In CI a skip is a failure (host_tests/conftest.py): a test that skips and a module that
skips while it is collected (a pinned peer's importorskip) both fail there, and both still
skip on a developer's machine."""

import os
import subprocess
import sys

from streetnode.common.paths import REPO

SKIPPING = '''
import pytest

def test_skips_inside():
    pytest.skip("a tool is missing")
'''
SKIPPING_MODULE = '''
import pytest
pytest.importorskip("streetnode_no_such_module")

def test_never_collected():
    pass
'''


def _pytest(tmp_path, ci):
    (tmp_path / "test_inside.py").write_text(SKIPPING)
    (tmp_path / "test_module.py").write_text(SKIPPING_MODULE)
    env = dict(os.environ, CI="true" if ci else "")
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    p = subprocess.run([sys.executable, "-m", "pytest", "-p", "host_tests.conftest", "-q", "-rA", "--continue-on-collection-errors", "--rootdir",
                        str(tmp_path), "-c", os.devnull, str(tmp_path)],  # fmt: skip
                       cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout + p.stderr


def test_in_ci_both_kinds_of_skip_fail(tmp_path):
    code, out = _pytest(tmp_path, ci=True)
    assert code != 0, out
    assert "skipped in CI, where nothing may be: Skipped: a tool is missing" in out and "1 failed, 1 error" in out, out
    assert "skipped while collected in CI, where nothing may be" in out and "streetnode_no_such_module" in out, out


def test_elsewhere_they_skip(tmp_path):
    code, out = _pytest(tmp_path, ci=False)
    assert code == 0, out
    assert "2 skipped" in out, out
