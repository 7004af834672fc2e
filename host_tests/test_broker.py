"""tools/streetnode/common/broker.py: a broker on a free loopback port that never outlives us."""

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from streetnode.common.broker import Broker, find_mosquitto


def _accepts(b):
    try:
        with socket.create_connection((b.host, b.port), timeout=1):
            return True
    except OSError:
        return False


def _gone(pid, timeout=5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        # a zombie still answers kill(0): look at its state
        try:
            with open("/proc/%d/stat" % pid) as f:
                if f.read().split(")")[-1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize("kind", ["mosquitto", "amqtt"])
def test_start_restart_stop_on_one_port(kind):
    if kind == "mosquitto" and not find_mosquitto():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto); CI installs it")
    with Broker(kind) as b:
        assert b.kind == kind and b.host == "127.0.0.1" and b.running
        assert _accepts(b)
        port, pid = b.port, b.proc.pid
        b.restart()
        assert b.port == port and b.proc.pid != pid and _accepts(b)
        assert _gone(pid)
        b.stop()
        assert not b.running and not _accepts(b)
        b.start()
        pid = b.proc.pid
    assert _gone(pid)  # the context manager stopped it


def test_default_kind_prefers_mosquitto():
    b = Broker()
    assert b.kind == ("mosquitto" if find_mosquitto() else "amqtt")


def test_bad_options():
    with pytest.raises(ValueError, match="nope"):
        Broker("nope")
    with pytest.raises(ValueError, match="amqtt"):
        Broker("amqtt", tls={"cafile": "a", "certfile": "b", "keyfile": "c"})


def test_a_broker_that_cannot_start_says_why(tmp_path):
    if not find_mosquitto():
        pytest.skip("mosquitto is not installed")
    tls = {"cafile": tmp_path / "missing.pem", "certfile": tmp_path / "x.pem", "keyfile": tmp_path / "x.key"}
    with pytest.raises(RuntimeError, match="mosquitto exited"):
        Broker("mosquitto", tls=tls).start()


def test_the_broker_dies_with_a_killed_parent():
    code = (
        "import sys, time\n"
        "from streetnode.common.broker import Broker\n"
        "b = Broker().start()\n"
        "print(b.proc.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        pid = int(p.stdout.readline())
        os.kill(pid, 0)  # running
        p.send_signal(signal.SIGKILL)  # no atexit, no finally: only the kernel can clean up
        p.wait(5)
        assert _gone(pid), "broker %d outlived its killed parent" % pid
    finally:
        if p.poll() is None:
            p.kill()


def test_free_port_never_hands_out_a_port_it_gave_lately(monkeypatch):
    """Two callers that ask before either binds (a cluster's Redis and its instances) get two
    ports even where the kernel offers the same free port twice, as it may."""
    from streetnode.common import broker

    offers = iter([41001, 41001, 41002, 41001, 41002, 41003])

    class OneSocket:
        def __init__(self, *args):
            self.port = None

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def bind(self, addr):
            self.port = next(offers)

        def getsockname(self):
            return ("127.0.0.1", self.port)

    monkeypatch.setattr(broker, "_GIVEN", [])
    monkeypatch.setattr(broker.socket, "socket", OneSocket)
    assert [broker.free_port() for _ in range(3)] == [41001, 41002, 41003]
