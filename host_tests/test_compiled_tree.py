"""Nodes run from the compiled tree, as they claim: `micropython -m firmware.main_unix`
puts its working directory first on sys.path, so a node started from the repository would
import the repository's sources and compile them in its heap (it did, until every node
spawner went through streetnode.common.mpy.compiled)."""

import subprocess

import pytest

from streetnode.common import mpy
from streetnode.common.errors import Failure
from streetnode.common.paths import REPO

WHERE = "import firmware.node, drivers.bme280, hal.sim.board; print(firmware.node.__file__, drivers.bme280.__file__, hal.sim.board.__file__)"


def test_a_node_started_through_compiled_loads_the_mpy_files(mpy_tree, tmp_path):
    p = subprocess.run(mpy.command(["-c", WHERE]), **mpy.compiled(mpy_tree, tmp_path), capture_output=True,
                       text=True, timeout=60)  # fmt: skip
    assert p.returncode == 0, p.stderr
    files = p.stdout.split()
    assert len(files) == 3 and all(f.startswith(str(mpy_tree)) and f.endswith(".mpy") for f in files), files


def test_the_repository_as_working_directory_is_refused(mpy_tree):
    with pytest.raises(Failure) as e:
        mpy.compiled(mpy_tree, REPO)
    assert "firmware/ would be imported first" in str(e.value)


def test_what_the_refusal_prevents(mpy_tree):
    """The reason, shown: the same command run from the repository imports its sources."""
    env = mpy.compiled(mpy_tree, "/")["env"]
    p = subprocess.run(mpy.command(["-c", WHERE]), env=env, cwd=str(REPO), capture_output=True, text=True,
                       timeout=60)  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert p.stdout.split()[0] == "firmware/node.py", p.stdout


def test_every_node_spawner_goes_through_compiled():
    """Every place that starts `-m firmware.main_unix` passes mpy.compiled's env and cwd."""
    spawners = [REPO / "host_tests" / "fleet.py", REPO / "tools" / "streetnode" / "sim" / "fleet.py",
                REPO / "tools" / "streetnode" / "bench" / "node.py", REPO / "tools" / "streetnode" / "bench" / "deepsleep.py"]  # fmt: skip
    for path in spawners:
        text = path.read_text(encoding="utf-8")
        assert "mpy.compiled(" in text and "cwd=REPO" not in text, path
    for path in list((REPO / "tools").rglob("*.py")) + list((REPO / "host_tests").glob("*.py")):
        text = path.read_text(encoding="utf-8")
        if path.name != "test_compiled_tree.py" and '"firmware.main_unix"' in text and "Popen" in text:
            assert path in spawners, "%s starts nodes without mpy.compiled" % path
