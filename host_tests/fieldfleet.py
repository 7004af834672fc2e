"""Test harness for the field commands (check, monitor, report): nodes that come back after a reset as
boards do, and a fleet of them on one broker, for check, monitor and report tests."""

import threading
import time

from host_tests.fleet import NodeRunner, node_config

EXIT_REBOOT = 3  # firmware/node.py

AIR = {"name": "air", "driver": "bme280", "bus": "i2c0", "address": 0x76}
LIGHT = {"name": "light", "driver": "bh1750", "bus": "i2c0"}


class Board:
    """A NodeRunner whose process is started again when it ends, as a board that reset
    (exit 3: cause "soft"; any other exit: "hard"), until stop()."""

    def __init__(self, directory, mpy_tree, heap="512k"):
        self.runner = NodeRunner(directory, mpy_tree, heap=heap)
        self.restarts = 0
        self._stop = threading.Event()
        self._thread = None

    @property
    def dir(self):
        return self.runner.dir

    def write_config(self, cfg):
        self.runner.write_config(cfg)

    def start(self):
        self.runner.start()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self):
        while not self._stop.wait(0.05):
            p = self.runner.proc
            if p is not None and p.poll() is not None:
                cause = "soft" if p.returncode == EXIT_REBOOT else "hard"
                self.restarts += 1
                self.runner.start(cause=cause)

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        self.runner.stop()

    def kill(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        self.runner.kill()

    def output(self):
        return self.runner.output()


def field_config(node_id, broker, interval_s=0.2, sensors=None, faults=None, **extra):
    """A unix-sim node config with an air sensor and a light sensor (both jitter, as in a
    street), optional sim faults, health every 5 cycles."""
    cfg = node_config(node_id, broker, interval_s=interval_s, sensors=sensors or [AIR, LIGHT], **extra)
    if faults:
        cfg["sim"] = {"faults": faults}
    return cfg


class Fleet:
    """Boards started together; stop() stops them all (use as a fixture's finaliser)."""

    def __init__(self, root, mpy_tree, broker):
        self.root = root
        self.tree = mpy_tree
        self.broker = broker
        self.boards = {}

    def add(self, node_id, via=None, **kwargs):
        """A node publishing to the fleet's broker, or through `via` (a Cutter)."""
        b = Board(self.root / node_id, self.tree)
        b.write_config(field_config(node_id, via or self.broker, **kwargs))
        self.boards[node_id] = b
        return b

    def start(self):
        for b in self.boards.values():
            b.start()
        return self

    def stop(self):
        for b in self.boards.values():
            b.stop()


def wait_until(cond, timeout, what="condition", step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(step)
    raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))


class Cutter:
    """A TCP relay in front of the broker for one node: cut() drops its connection and
    refuses new ones (the node's Wi-Fi is gone) until mend(). Other nodes, the monitor
    and the broker itself see nothing of it."""

    def __init__(self, broker):
        import socket

        self.target = (broker.host, broker.port)
        self._socket = socket
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(8)
        self.lsock.settimeout(0.1)
        self.host, self.port = self.lsock.getsockname()
        self.is_cut = threading.Event()
        self.closed = threading.Event()
        self.conns = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed.is_set():
            try:
                c, _ = self.lsock.accept()
            except OSError:
                continue
            if self.is_cut.is_set():
                c.close()  # no network: the connection attempt fails
                continue
            try:
                u = self._socket.create_connection(self.target, timeout=2)
            except OSError:
                c.close()
                continue
            with self.lock:
                self.conns += [c, u]
            threading.Thread(target=self._pipe, args=(c, u), daemon=True).start()
            threading.Thread(target=self._pipe, args=(u, c), daemon=True).start()

    def _pipe(self, a, b):
        try:
            while True:
                data = a.recv(4096)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(self._socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def cut(self):
        self.is_cut.set()
        with self.lock:
            conns, self.conns = self.conns, []
        for s in conns:
            try:
                s.shutdown(self._socket.SHUT_RDWR)
            except OSError:
                pass

    def mend(self):
        self.is_cut.clear()

    def close(self):
        self.closed.set()
        self.cut()
        self.lsock.close()
