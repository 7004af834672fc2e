"""`streetnode deploy` end to end: the real mpremote (its transport, and its command for the
virtual board's own checks) against a virtual board (the real MicroPython behind a pty,
host_tests/virtual_board.py), the node publishing to a real mosquitto."""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from host_tests.fleet import Collector, missing, node_config
from host_tests.virtual_board import PWRON_RESET, SOFT_RESET, VirtualBoard
from streetnode.common import build
from streetnode.technician import bundle

STREETNODE = [sys.executable, "-m", "streetnode.cli"]
MPREMOTE = str(Path(sys.executable).with_name("mpremote"))
VARIANT = "streetnode variant v2"


@pytest.fixture(scope="module")
def v1(tmp_path_factory, device_lib):
    return bundle.make("unix", tmp_path_factory.mktemp("bundles") / "v1", lib=device_lib)[0]


@pytest.fixture(scope="module")
def v2(tmp_path_factory, v1, device_lib):
    """Another version of the same firmware: most files differ (another embedded source
    name), and its entry point says which version booted."""
    out = tmp_path_factory.mktemp("bundles") / "v2"
    shutil.copytree(v1, out)
    app = out / bundle.APP
    for rel, src in build.sources(device_lib):
        dest = app / (rel[:-3] + ".mpy")
        if rel.startswith(("firmware/", "drivers/")) and dest.exists():
            bundle._compile(src, "v2/" + rel, dest, None)
    entry = out / "node_main_v2.py"
    entry.write_text("print(%r)\n" % VARIANT + (bundle.BOARD_DIR / "node_main.py").read_text())
    bundle._compile(entry, "node_main.py", app / "node_main.mpy", None)
    entry.unlink()
    manifest = json.loads((out / bundle.MANIFEST).read_text())
    for f in manifest["files"]:
        data = (out / f["path"]).read_bytes()
        f["size"], f["sha256"] = len(data), hashlib.sha256(data).hexdigest()
    manifest["version"] += "+v2"
    (out / bundle.MANIFEST).write_bytes(bundle._json_bytes(manifest))
    assert bundle.load(out) == manifest
    return out


def _config(tmp_path, broker, name="lamp.json", **extra):
    path = tmp_path / name
    path.write_text(json.dumps(node_config("vb-1", broker, interval_s=0.2, **extra)))
    return path


def _deploy(board, config, bundle_dir, *extra, timeout=90):
    cmd = STREETNODE + ["deploy", "--port", board.port, "--config", str(config), "--bundle", str(bundle_dir)]
    return subprocess.run(cmd + list(extra), capture_output=True, text=True, timeout=timeout)


def _online(broker):
    return ["--wait-online", "--broker", "%s:%d" % (broker.host, broker.port), "--timeout", "30"]


def _app_files(bundle_dir):
    return [f for f in bundle.load(bundle_dir)["files"] if f["path"].startswith(bundle.APP + "/")]


def _slot_matches(flash, slot, bundle_dir):
    for f in _app_files(bundle_dir):
        p = flash / slot / f["path"][len(bundle.APP) + 1:]
        if not p.is_file() or hashlib.sha256(p.read_bytes()).hexdigest() != f["sha256"]:
            return False
    return (flash / slot / bundle.MANIFEST).read_bytes() == (bundle_dir / bundle.MANIFEST).read_bytes()


def _differing(a, b):
    """How many slot files differ between two bundles (the manifest apart)."""
    fa = {f["path"]: f["sha256"] for f in _app_files(a)}
    return sum(1 for f in _app_files(b) if fa.get(f["path"]) != f["sha256"])


def _one_line_error(proc):
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("streetnode deploy: error: "), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    return lines[0]


def test_virtual_board_answers_mpremote(tmp_path):
    """The harness itself: the real mpremote command copies, hashes, execs, soft-resets
    (the interpreter restarts behind the same port) and hard-resets the board."""
    src = tmp_path / "hello.py"
    src.write_bytes(b"print('hello from flash')\n")

    def mpremote(*args):
        p = subprocess.run([MPREMOTE, "connect", board.port] + list(args), capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, p.stderr
        return p.stdout

    board = VirtualBoard(tmp_path / "flash")
    assert (tmp_path / "flash" / "flash.img").stat().st_size == 2 * 1024 * 1024  # LittleFS, the ESP32's partition
    board.write("main.py", "import time\nprint('main runs')\nwhile True:\n    time.sleep_ms(10)\n")
    with board:
        board.wait_console("main runs")
        board.power_cut()
        board.power_on()
        board.wait_console("main runs", start=board.console().index("main runs") + 1)
        mpremote("fs", "cp", str(src), ":hello.py")  # Ctrl-C stops main.py, soft reset, raw REPL
        assert board.read("hello.py") == src.read_bytes()
        assert sorted(mpremote("exec", "import os; print(sorted(os.listdir('/')))").strip()[2:-2].split("', '")) == [
            "hello.py", "main.py"]  # the board's root is its flash, nothing of the host's
        assert mpremote("exec", "import os; s = os.statvfs('/'); print(s[0] * s[2])").strip() == str(2 * 1024 * 1024)
        assert hashlib.sha256(src.read_bytes()).hexdigest() in mpremote("fs", "sha256sum", ":hello.py")
        assert mpremote("exec", "import hello").strip() == "hello from flash"
        assert mpremote("exec", "import machine; print(machine.reset_cause())").strip() == str(PWRON_RESET)
        assert ("raw", PWRON_RESET) in board.boots  # mpremote's soft reset: boot.py only, raw REPL
        mark = len(board.console())
        mpremote("reset")
        board.wait_console("main runs", start=mark)
        assert board.boots[-1] == ("run", SOFT_RESET)  # machine.reset(): boot.py and main.py again


def test_virtual_board_deep_sleep_and_sys_exit_reboot_it(tmp_path):
    main = (
        "import machine, os, sys\n"
        "print('cause', machine.reset_cause())\n"
        "if machine.reset_cause() == 1:\n"
        "    machine.deepsleep(200)\n"
        "elif 'exited' not in os.listdir():\n"
        "    open('exited', 'w').close()\n"
        "    sys.exit()\n"
        "print('done')\n"
    )
    board = VirtualBoard(tmp_path / "flash")
    board.write("main.py", main)
    with board:
        board.wait_console("done")
        # woken from deep sleep with its cause; sys.exit() in main.py soft-reboots (cause kept)
        assert board.boots == [("run", 1), ("run", 4), ("run", 4)]
        text = board.console()
        assert text.index("cause 1") < text.index("cause 4") < text.index("MPY: soft reboot") < text.index("done")


def test_blank_board_deploy_publishes_then_second_deploy_copies_nothing(mosquitto, tmp_path, v1):
    config = _config(tmp_path, mosquitto)
    board_dir = tmp_path / "flash"
    col = Collector(mosquitto)
    try:
        with VirtualBoard(board_dir) as board:
            proc = _deploy(board, config, v1, *_online(mosquitto))
            assert proc.returncode == 0, proc.stderr + proc.stdout
            n = len(_app_files(v1)) + 1  # the slot's files and its manifest
            assert "%d files to copy" % n in proc.stdout and "verified %d files in slot a" % n in proc.stdout
            assert proc.stdout.count("\ncopy ") == n  # plain progress lines without a terminal
            assert "node vb-1 is online (fw 0.1.0) and published reading seq 1" in proc.stdout
            col.wait(lambda: 1 in col.seqs("vb-1"), 15, "seq 1 from the deployed node")
            flash = board.files()
            assert (flash / "slot").read_text() == "a"
            assert _slot_matches(flash, "a", v1)
            assert (flash / "data" / "config.json").read_bytes() == config.read_bytes()
            for name in ("loader.py", "boot.py", "main.py"):
                assert (flash / name).read_bytes() == (v1 / name).read_bytes()
            assert not (flash / "maint").exists()

            seen = len(col.seqs("vb-1"))
            again = _deploy(board, config, v1, *_online(mosquitto))
            assert again.returncode == 0, again.stderr
            assert "nothing copied" in again.stdout and "copy " not in again.stdout
            assert not (board.files() / "b").exists()
            col.wait(lambda: len(col.seqs("vb-1")) > seen + 3, 15, "readings after the second deploy")
            seqs = col.seqs("vb-1")
            assert missing(seqs) == [] and min(seqs) == 1  # data/ survived: seq goes on, no gap
    finally:
        col.close()


def test_a_node_that_cannot_start_reboots_instead_of_sitting_at_the_repl(mosquitto, tmp_path, v1):
    """board/main.py: a boot failure (here: no config at all, not even the last good one)
    is printed and the board resets after a pause, so a lamp-post node retries by itself
    and its rising boot count shows the loop."""
    config = _config(tmp_path, mosquitto)
    board_dir = tmp_path / "flash"
    with VirtualBoard(board_dir) as board:
        proc = _deploy(board, config, v1, "--no-reset")
        assert proc.returncode == 0, proc.stderr + proc.stdout
        board.power_cut()
        for name in ("config.json", "config.good.json"):
            board.remove("data/" + name)
        assert not board.exists("data/config.json")
        board.power_on()
        board.wait_console("ConfigError: config.json: missing")
        board.wait_console("node failed to start; rebooting in 10 s")
        mark = len(board.console())
        board.wait_console("node failed to start", timeout=20, start=mark)  # booted again, failed again
        assert board.boots[-1] == ("run", SOFT_RESET)


# Exact moments to pull the cable (the board dies before it receives these bytes).
CUTS = {
    "maintenance": b"machine.reset()",  # marker for a maintenance boot written, reset not sent
    "mid-copy": b"b/firmware/node.mpy'",  # half the new slot written
    "config": b"'data/config.json.tmp'",  # slot verified, config about to be written
    "pointer": b"_replace('slot.tmp'",  # everything written, the pointer's rename not done
    "deploy-killed": None,  # the laptop side dies after 10 files; then the board is power-cycled
}


@pytest.mark.parametrize("cut", sorted(CUTS))
def test_interrupted_deploy_boots_previous_version_then_next_deploy_completes(mosquitto, tmp_path, v1, v2, cut):
    config = _config(tmp_path, mosquitto)
    config2 = _config(tmp_path, mosquitto, name="lamp2.json", site="Siegen, Sandstrasse")
    board_dir = tmp_path / "flash"
    col = Collector(mosquitto)
    try:
        with VirtualBoard(board_dir) as board:
            assert _deploy(board, config, v1).returncode == 0
            col.wait(lambda: len(col.seqs("vb-1")) >= 3, 15, "v1 publishing")

            if CUTS[cut]:
                board.power_cut_when(CUTS[cut])
            proc = subprocess.Popen(
                STREETNODE + ["deploy", "--port", board.port, "--config", str(config2), "--bundle", str(v2)],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            )
            try:
                if CUTS[cut]:
                    assert board.cut.wait(60), "the deploy never reached the cut point"
                else:
                    for line in proc.stdout:
                        if line.startswith("copy 10/"):
                            break
                    else:
                        raise AssertionError("the deploy ended before its 10th file")
            finally:
                proc.kill()  # SIGKILL: mpremote's connection dies with it, mid-write
                out = proc.communicate()[0]
            assert "slot b is active" not in out
            if not CUTS[cut]:
                board.power_cut()

            seen = len(col.seqs("vb-1"))
            board.power_on()  # the technician plugs the cable back in
            col.wait(lambda: len(col.seqs("vb-1")) > seen + 3, 20, "the previous version publishing again")
            flash = board.files()
            assert (flash / "slot").read_text() == "a" and _slot_matches(flash, "a", v1)
            assert VARIANT not in board.console()
            assert not (flash / "maint").exists()  # a power-on never leaves the board idle
            # The config is installed (atomically) just before the pointer switches.
            installed = config2 if cut == "pointer" else config
            assert (flash / "data" / "config.json").read_bytes() == installed.read_bytes()

            proc = _deploy(board, config2, v2, *_online(mosquitto))
            assert proc.returncode == 0, proc.stderr + proc.stdout
            assert "slot b is active: streetnode 0.1.0+v2" in proc.stdout
            counts = re.search(r"(\d+) files to copy .*, (\d+) reused from slot a, (\d+) already there", proc.stdout)
            copied, reused, there = (int(g) for g in counts.groups())
            assert copied + reused + there == len(_app_files(v2)) + 1
            if cut in ("config", "pointer"):  # the cut deploy had written them all: none travels again
                assert copied == 0 and there == len(_app_files(v2)) + 1
            elif cut in ("mid-copy", "deploy-killed"):  # what the cut deploy finished stays; the rest is copied
                assert there > 0 and copied > 0
            else:  # only what differs from the running version travels; the rest is copied on the board
                assert copied == _differing(v1, v2) + 1 and reused == len(_app_files(v2)) - _differing(v1, v2)
            flash = board.files()
            assert (flash / "slot").read_text() == "b" and _slot_matches(flash, "b", v2)
            assert (flash / "data" / "config.json").read_bytes() == config2.read_bytes()
            board.wait_console(VARIANT)
            seen = len(col.seqs("vb-1"))
            col.wait(lambda: len(col.seqs("vb-1")) > seen + 3, 15, "v2 publishing")
            assert missing(col.seqs("vb-1")) == []
    finally:
        col.close()


def test_bad_inputs_are_one_line_errors_with_their_exit_codes(tmp_path, v1, device_lib):
    silent_master, silent_slave = os.openpty()  # a port where no board answers
    try:
        port = os.ttyname(silent_slave)
        good = tmp_path / "good.json"
        good.write_text(json.dumps({"node_id": "lamp-1", "board": "unix-sim", "mqtt": {"host": "127.0.0.1"}}))

        def deploy(config, *extra, port=port):
            cmd = STREETNODE + ["deploy", "--port", port, "--config", str(config), "--connect-timeout", "1"]
            return subprocess.run(cmd + list(extra), capture_output=True, text=True, timeout=60)

        p = deploy(tmp_path / "absent.json", "--bundle", str(v1))
        assert p.returncode == 3 and "absent.json not found" in _one_line_error(p)

        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps({"node_id": "lamp-1", "board": "unix-sim", "mqtt": {"host": "h"}, "intervall_s": 5}))
        p = deploy(bad, "--bundle", str(v1))
        assert p.returncode == 3 and "intervall_s: unknown key" in _one_line_error(p)

        broken = tmp_path / "broken.json"
        broken.write_text('{"node_id": "lamp-1",')
        p = deploy(broken, "--bundle", str(v1))
        assert p.returncode == 3 and "broken.json is invalid" in _one_line_error(p)

        chip, _ = bundle.make("esp32", tmp_path / "esp32", lib=device_lib)
        p = deploy(good, "--bundle", str(chip))
        assert p.returncode == 3 and "is for esp32" in _one_line_error(p)

        p = deploy(good, "--bundle", str(tmp_path))
        assert p.returncode == 3 and "not a bundle" in _one_line_error(p)

        p = deploy(good, "--bundle", str(v1), port=str(tmp_path / "ttyUSB9"))
        assert p.returncode == 4 and "no board at" in _one_line_error(p)

        p = deploy(good, "--bundle", str(v1))
        assert p.returncode == 4 and "no MicroPython board answers at %s" % port in _one_line_error(p)

        p = subprocess.run(STREETNODE + ["deploy", "--config", str(good)], capture_output=True, text=True)
        assert p.returncode == 2 and "--port" in p.stderr
        help_text = subprocess.run(STREETNODE + ["deploy", "--help"], capture_output=True, text=True).stdout
        assert "exit codes" in help_text and "examples" in help_text
    finally:
        os.close(silent_master)
        os.close(silent_slave)


def test_wait_online_times_out_with_a_clear_message(mosquitto, tmp_path, v1):
    from streetnode.common.broker import free_port

    config = tmp_path / "lamp.json"  # the node's broker is somewhere nobody listens
    cfg = node_config("vb-1", mosquitto, interval_s=0.2)
    cfg["mqtt"]["port"] = free_port()
    config.write_text(json.dumps(cfg))
    with VirtualBoard(tmp_path / "flash") as board:
        p = _deploy(board, config, v1, "--wait-online", "--broker", "%s:%d" % (mosquitto.host, mosquitto.port), "--timeout", "2")
    assert p.returncode == 6
    assert "deployed, but the node did not publish status online" in _one_line_error(p)
    assert "slot a is active" in p.stdout


def _survey(slot, files, free=10**6, sizes=None):
    return {"slot": slot, "files": files, "free": free, "sizes": sizes or {}}


def test_plan_copies_only_what_changed_and_checks_flash(v1, v2):
    from streetnode.technician import deploy

    m1, m2 = bundle.load(v1), bundle.load(v2)
    running = {"a/" + f["path"][4:]: f["sha256"] for f in _app_files(v1)}
    running["a/manifest.json"] = hashlib.sha256((v1 / "manifest.json").read_bytes()).hexdigest()
    for name in ("loader.py", "boot.py", "main.py"):
        running[name] = hashlib.sha256((v1 / name).read_bytes()).hexdigest()
    same = deploy.Plan(_survey("a", running), m1, v1, [])
    assert same.nothing_to_do and same.copy == [] and same.local == []
    plan = deploy.Plan(_survey("a", running), m2, v2, [("config.json", b"{}")])
    assert plan.target == "b" and not plan.nothing_to_do and plan.our_loader_runs
    assert len(plan.copy) == _differing(v1, v2) + 1 and len(plan.local) == len(_app_files(v2)) - _differing(v1, v2)
    assert all(src.startswith("a/") and dest.startswith("b/") for src, dest in plan.local)
    assert plan.loaders == [] and plan.data == [("config.json", b"{}")]
    sizes = {dest: (v2 / src).stat().st_size for dest, (_, src) in plan.want.items()}
    need = plan.bytes_needed(sizes)
    assert need >= sum(sizes.values())
    # A stale slot b of the same size is freed by the rewrite.
    stale = dict(running, **{"b/" + p[2:]: "0" * 64 for p in running if p.startswith("a/")})
    stale_sizes = {"b/" + p[2:]: sizes["b/" + p[2:]] for p in running if p.startswith("a/")}
    replan = deploy.Plan(_survey("a", stale, sizes=stale_sizes), m2, v2, [("config.json", b"{}")])
    assert replan.bytes_needed(sizes) < need and replan.remove == []


def test_progress_bar_on_a_terminal_and_lines_otherwise():
    import io

    from streetnode.technician.deploy import Progress

    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty, plain = Tty(), io.StringIO()
    for stream in (tty, plain):
        bar = Progress(3000, 2, stream=stream)
        bar.file("a/firmware/node.mpy", 1000)
        bar.update(1000, 1000)
        bar.file("a/firmware/config.mpy", 2000)
        bar.update(1000, 2000)
        bar.update(2000, 2000)
        bar.end()
    assert "\r[" in tty.getvalue() and "100% 2/2" in tty.getvalue() and " 66% 2/2" in tty.getvalue()
    assert plain.getvalue().splitlines() == ["copy 1/2 a/firmware/node.mpy (1000 bytes)", "copy 2/2 a/firmware/config.mpy (2000 bytes)"]


def test_ca_file_installed_and_wait_online_uses_the_nodes_credentials(tmp_path, v1):
    """A provisioned node: its own MQTT user (the broker lets only it in) and, next to the
    config, the CA file the config names, installed into data/ like the config."""
    from streetnode.common.broker import Broker, find_mosquitto

    if not find_mosquitto():
        pytest.skip("mosquitto is not installed")
    with Broker("mosquitto", users={"vb-1": "pw-of-vb-1"}) as broker:
        cfg = node_config("vb-1", broker, interval_s=0.2)
        cfg["mqtt"].update(user="vb-1", password="pw-of-vb-1")
        config = tmp_path / "node" / "config.json"
        config.parent.mkdir()
        config.write_text(json.dumps(cfg))
        with VirtualBoard(tmp_path / "flash") as board:
            p = _deploy(board, config, v1, "--wait-online", "--timeout", "30")  # broker from the config
            assert p.returncode == 0, p.stderr + p.stdout
            assert "published reading seq 1" in p.stdout

    cfg["mqtt"].update(tls=True, ca="ca.der")
    config.write_text(json.dumps(cfg))
    with VirtualBoard(tmp_path / "flash2") as board:
        p = _deploy(board, config, v1)
        assert p.returncode == 3 and "names the CA certificate ca.der" in _one_line_error(p)
        der = bytes(range(256)) * 3  # content is the node's business; deploy installs bytes
        (config.parent / "ca.der").write_bytes(der)
        p = _deploy(board, config, v1, "--no-reset")
        assert p.returncode == 0, p.stderr
        assert "installed data/ca.der" in p.stdout
        assert board.read("data/ca.der") == der


def _esp32_config(tmp_path, broker):
    path = tmp_path / "esp32.json"
    path.write_text(json.dumps(node_config("vb-1", broker, interval_s=1, board="esp32-devkitc", sensors=[],
                                           wifi={"ssid": "street", "password": "secret-wifi"})))  # fmt: skip
    return path


def test_deploy_asks_the_board_what_it_is_and_refuses_a_config_for_another(mosquitto, tmp_path, v1):
    """An ESP32 config (and the esp32 bundle deploy builds for it) on a unix-port board: refused
    before anything on the board changes, naming the board, the config's board and the target."""
    flash = tmp_path / "flash"
    with VirtualBoard(flash) as board:
        proc = subprocess.run(STREETNODE + ["deploy", "--port", board.port, "--config", str(_esp32_config(tmp_path, mosquitto))],
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        assert proc.returncode == 3, proc.stdout + proc.stderr
        line = _one_line_error(proc)
        assert "(sys.platform linux)" in line and "the config's board is esp32-devkitc" in line, line
        assert "the bundle's target is esp32" in line and "nothing was changed" in line, line
        assert sorted(p.name for p in board.files().iterdir()) == []  # blank as before
        ok = _deploy(board, _config(tmp_path, mosquitto), v1, "--no-reset")
        assert ok.returncode == 0 and "config board unix-sim, bundle unix" in ok.stdout, ok.stdout + ok.stderr


def test_a_node_whose_config_is_for_another_board_says_so_once_and_waits(mosquitto, tmp_path, v1):
    """The config on flash names another board (copied by hand): the node says so and waits,
    instead of failing to start and rebooting every 10 s (boot_count climbing); a deploy of
    the right config then interrupts the wait as it stops a running node."""
    flash = tmp_path / "flash"
    with VirtualBoard(flash) as board:
        assert _deploy(board, _config(tmp_path, mosquitto), v1, "--no-reset").returncode == 0
        board.power_cut()
        board.write("data/config.json", _esp32_config(tmp_path, mosquitto).read_bytes())
        boots = len(board.boots)
        board.power_on()
        board.wait_console("not starting: deploy a config for this board", timeout=30)
        assert "the config is for board esp32-devkitc (esp32), but this board is linux micropython" in board.console()
        assert "rebooting" not in board.console() and "Traceback" not in board.console()
        assert json.loads(board.read("data/state.json"))["boot_count"] == 1
        assert board.running() and len(board.boots) == boots + 1
        proc = _deploy(board, _config(tmp_path, mosquitto), v1, *_online(mosquitto))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert board.console().count("not starting") == 1
