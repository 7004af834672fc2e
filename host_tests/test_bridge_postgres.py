"""`streetnode bridge` into django-ogc-sensorthings on PostgreSQL (Debian's postgresql, a
cluster of its own on loopback, made by initdb for this module): the same promise as on
SQLite, read back through the server's REST API. Measured here: initdb about 12 s, the
server's migrate on PostgreSQL about 60 s (2 shared cores), so one module run, not one
per test."""

import glob
import os
import shutil
import subprocess
import time

import pytest

from host_tests.bridgekit import BridgeProc, Publisher, get_all, observations, seq_counts, wait_for
from streetnode.common.broker import Broker, find_mosquitto, free_port

pytest.importorskip("sensorthings", reason="django-ogc-sensorthings is in the test extra")
pytest.importorskip("psycopg", reason="psycopg is in the test extra")

from streetnode.integrator.sta_server import StaServer  # noqa: E402


def _pg_bin():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return os.path.dirname(found[-1]) if found else None


class Postgres:
    """A PostgreSQL cluster in a temporary directory; run as user postgres when we are root
    (PostgreSQL refuses root), trusting loopback connections of user sta."""

    def __init__(self, directory):
        self.bin = _pg_bin()
        self.dir = directory
        self.data = directory / "data"
        self.port = free_port()
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, *argv):
        p = subprocess.run(self.as_user + list(argv), capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stdout + p.stderr
        return p.stdout

    def start(self):
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.as_user:
            shutil.chown(self.dir, "postgres")
        self._run(os.path.join(self.bin, "initdb"), "-D", str(self.data), "-A", "trust", "-U", "sta")
        self._run(os.path.join(self.bin, "pg_ctl"), "-D", str(self.data), "-w", "-l", str(self.dir / "log"), "-o",
                  "-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off" % (self.port, self.dir), "start")  # fmt: skip
        return self

    def stop(self):
        if self.data.exists():
            subprocess.run(self.as_user + [os.path.join(self.bin, "pg_ctl"), "-D", str(self.data), "-m", "fast", "stop"],
                           capture_output=True, timeout=60)  # fmt: skip

    def database(self):
        return {"ENGINE": "django.db.backends.postgresql", "NAME": "postgres", "USER": "sta", "HOST": "127.0.0.1",
                "PORT": self.port}  # fmt: skip


@pytest.fixture(scope="module")
def pg_sta(tmp_path_factory):
    if _pg_bin() is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql); CI installs it")
    # Its own directory under /tmp: pytest's are root's alone (0700), which user postgres
    # could not enter.
    import tempfile
    from pathlib import Path

    where = Path(tempfile.mkdtemp(prefix="streetnode-pg-"))
    os.chmod(where, 0o755)
    pg = Postgres(where / "pg").start()
    sta = StaServer(tmp_path_factory.mktemp("sta-pg"), database=pg.database(), start_timeout=300)
    try:
        yield sta.start()
    finally:
        sta.close()
        pg.stop()
        shutil.rmtree(where, ignore_errors=True)


def test_every_seq_once_on_postgresql_through_a_restart_of_the_bridge(pg_sta, tmp_path):
    if not find_mosquitto():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto); CI installs it")
    with Broker("mosquitto", persistence=True) as broker:
        pub = Publisher(broker)
        bridge = BridgeProc(broker, tmp_path / "bridge", ["sensorthings=" + pg_sta.url], "--name", "pg").start()
        try:
            nodes = ["pg-1", "pg-2"]
            for seq in range(1, 41):
                for n in nodes:
                    pub.reading(n, seq)
                if seq == 20:
                    bridge.kill()  # SIGKILL mid-run
                    bridge.start()
            for n in nodes:
                wait_for(lambda: len(seq_counts(observations(pg_sta.url, n), "pressure")) >= 40, 120, "%s at the server" % n)
            time.sleep(1)
            for n in nodes:
                obs = observations(pg_sta.url, n)
                for q in ("temperature", "humidity", "pressure"):
                    counts = seq_counts(obs, q)
                    assert sorted(counts) == list(range(1, 41)) and set(counts.values()) == {1}, (n, q, counts)
            things = get_all(pg_sta.url, "Things", {"$filter": "startswith(name, 'pg-')"})
            assert sorted(t["name"] for t in things) == nodes
            assert "PostgreSQL" in subprocess.run(
                ["psql", "-h", "127.0.0.1", "-p", str(pg_sta.database["PORT"]), "-U", "sta", "-d", "postgres", "-tAc",
                 "select version()"], capture_output=True, text=True, timeout=30).stdout  # fmt: skip
        finally:
            bridge.stop()
            pub.close()
