# The node state (firmware/state.py: boot counter, reset causes) and the atomic file
# helper it shares with the config and the outbox (firmware/atomic.py). Runs on CPython
# and inside MicroPython.

import json
import os

from firmware import atomic, state
from host_tests.device.scratch import ScratchDir, files, read_bytes, write_bytes
from host_tests.device.support import raises


def _reboot():
    state._booted.clear()  # what a new process (a reboot) starts with


class _StateDir(ScratchDir):
    """A scratch directory for the node state; on the way out the next test gets a fresh boot."""

    def __init__(self):
        super().__init__("st")

    def __exit__(self, exc_type, exc, tb):
        super().__exit__(exc_type, exc, tb)
        _reboot()
        return False


def test_boot_counts_once_per_boot_and_keeps_the_causes():
    with _StateDir() as d:
        _reboot()
        st = state.boot(d, "power_on")
        assert (st["boot_count"], st["reset_cause"], st["previous_reset_cause"]) == (1, "power_on", None)
        assert state.boot(d, "soft") is st and st["boot_count"] == 1  # the same boot
        _reboot()
        st = state.boot(d, "watchdog")
        assert (st["boot_count"], st["reset_cause"], st["previous_reset_cause"]) == (2, "watchdog", "power_on")
        for _ in range(5):
            _reboot()
            st = state.boot(d + "/", "deep_sleep")
        assert st["boot_count"] == 7 and "state_error" not in st
        assert json.loads(read_bytes(d + "/state.json"))["boot_count"] == 7


def test_extra_keys_are_kept():
    with _StateDir() as d:
        _reboot()
        st = state.boot(d, None)
        st["last_ntp"] = 1764270000
        state.save(d, st)
        _reboot()
        st = state.boot(d, "hard")
        assert st["last_ntp"] == 1764270000 and st["boot_count"] == 2 and st["previous_reset_cause"] is None


def test_unusable_state_file_counts_from_zero_and_says_why():
    with _StateDir() as d:
        for junk, why in (
            (b'{"boot_count": 4', "state.json unusable, counting from 0: "),
            (b"[4]", "not a JSON object"),
            (b'{"boot_count": -3}', "boot_count is not a count"),
            (b'{"boot_count": "4"}', "boot_count is not a count"),
            (b'{"boot_count": 4, "reset_cause": 5}', "reset_cause is not a string"),
            (b" " * 5000, "more than"),
        ):
            write_bytes(d + "/state.json", junk)
            _reboot()
            st = state.boot(d, "power_on")
            assert st["boot_count"] == 1, junk
            assert why in st["state_error"], (junk, st["state_error"])
            assert "state_error" not in json.loads(read_bytes(d + "/state.json"))  # RAM only


def test_a_state_that_cannot_be_written_does_not_stop_the_boot():
    with _StateDir() as d:
        _reboot()
        st = state.boot(d + "/missing/dir", "power_on")
        assert st["boot_count"] == 1 and "not written" in st["state_error"]


def test_leftover_temp_state_is_ignored():
    with _StateDir() as d:
        _reboot()
        state.boot(d, "power_on")
        write_bytes(d + "/state.json.tmp", b'{"boot_count": 99')
        _reboot()
        assert state.boot(d, "power_on")["boot_count"] == 2
        assert files(d) == ["state.json"]


# -- the atomic helper ------------------------------------------------------------------------------


def test_atomic_write_replaces_the_whole_file():
    with ScratchDir("at") as d:
        p = d + "/f"
        assert atomic.read(p, 100) is None and not atomic.exists(p) and atomic.size(p) == -1
        atomic.write(p, "first version, longer")
        atomic.write(p, b"second")
        assert read_bytes(p) == b"second" and atomic.read(p, 100) == b"second"
        assert files(d) == ["f"] and atomic.size(p) == 6
        raises(ValueError, atomic.read, p, 5)  # more than allowed: not read at all
        atomic.remove(p)
        atomic.remove(p)  # already gone: fine
        assert not atomic.exists(p)


def test_atomic_read_cleans_up_after_a_cut():
    with ScratchDir("at") as d:
        p = d + "/f"
        atomic.write(p, b"old")
        write_bytes(p + ".tmp", b"new but never renamed")  # cut before the rename
        assert atomic.read(p, 100) == b"old" and files(d) == ["f"]
        os.remove(p)
        write_bytes(p + ".tmp", b"complete")  # FAT: old removed, temp not yet renamed
        assert atomic.read(p, 100) == b"complete" and files(d) == ["f"]


def test_atomic_replace_falls_back_when_rename_cannot_overwrite():
    # FAT refuses to rename onto an existing file (EEXIST); replace() removes it first.
    real = atomic._rename
    calls = []

    def fat_rename(src, dst):
        calls.append(dst)
        if atomic.exists(dst):
            raise OSError(17, "EEXIST")
        real(src, dst)

    with ScratchDir("at") as d:
        try:
            p = d + "/f"
            atomic.write(p, b"one")
            atomic._rename = fat_rename
            atomic.write(p, b"two")
            atomic._rename = real
            assert read_bytes(p) == b"two" and files(d) == ["f"] and len(calls) == 2
        finally:
            atomic._rename = real
