"""A real clustered MQTT broker for the failover tests: aedes instances (host_tests/cluster/,
npm packages pinned in its package-lock.json, installed by `make cluster`) sharing one Redis
(Debian's redis-server): a message published to one instance reaches the subscribers of every
other, as in the clustered brokers (EMQX, VerneMQ, HiveMQ) a city runs.

    with AedesCluster(2) as c:
        a, b = c.instances            # each: .host, .port, .address, .kill(), .running
        a.kill()                      # SIGKILL: the instance dies as a crashed server does

Every process dies with the test process (PR_SET_PDEATHSIG) and on close().
"""

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from streetnode.common.broker import _die_with_parent, free_port

CLUSTER_DIR = Path(__file__).with_name("cluster")


def missing():
    """Why the cluster cannot run here (a line for pytest.skip), or None."""
    if not shutil.which("redis-server"):
        return "redis-server is not installed (apt-get install redis-server); CI installs it"
    if not shutil.which("node"):
        return "node is not installed (apt-get install nodejs npm); CI installs it"
    if not (CLUSTER_DIR / "node_modules" / "aedes").is_dir():
        return "the cluster's npm packages are not installed: make cluster (npm ci in host_tests/cluster)"
    return None


def _wait_port(port, proc, what, log, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("%s exited with %s: %s" % (what, proc.returncode, log.read_text(errors="replace")[-2000:]))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("%s did not listen on port %d within %.0f s" % (what, port, timeout))


class Instance:
    def __init__(self, cluster, index):
        self.cluster = cluster
        self.id = "aedes-%d" % (index + 1)
        self.host = "127.0.0.1"
        self.port = free_port()
        self.proc = None
        self.log = cluster.dir / (self.id + ".log")

    @property
    def address(self):
        return "%s:%d" % (self.host, self.port)

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self):
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                ["node", str(CLUSTER_DIR / "broker.mjs"), str(self.port), str(self.cluster.redis_port), self.id],
                cwd=CLUSTER_DIR, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,
            )  # fmt: skip
        _wait_port(self.port, self.proc, self.id, self.log)
        return self

    def kill(self):
        """SIGKILL, as a crashed or unplugged server: no goodbye to its clients."""
        if self.running:
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait()

    def __repr__(self):
        return "<aedes %s on %s %s>" % (self.id, self.address, "up" if self.running else "down")


class AedesCluster:
    def __init__(self, n, directory):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.redis_port = free_port()
        self.redis = None
        self.instances = [Instance(self, i) for i in range(n)]

    def start(self):
        log = self.dir / "redis.log"
        with open(log, "ab") as out:
            self.redis = subprocess.Popen(
                ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", str(self.dir)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent,
            )  # fmt: skip
        _wait_port(self.redis_port, self.redis, "redis-server", log)
        for inst in self.instances:
            inst.start()
        return self

    def close(self):
        for inst in self.instances:
            inst.kill()
        if self.redis is not None and self.redis.poll() is None:
            self.redis.terminate()
            try:
                self.redis.wait(10)
            except subprocess.TimeoutExpired:
                self.redis.kill()
                self.redis.wait()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()
