"""A throw-away OGC SensorThings API v1.1 server on loopback: django-ogc-sensorthings (a
v1.1 implementation on Django's ORM, with its DataArray extension) on SQLite, served by
uvicorn. For the bridge's tests and benchmark, and for trying the bridge out:

    python -m streetnode.integrator.sta_server --port 8080      # prints the service root URL

    with StaServer() as sta:            # a temporary directory, a free port
        sta.url                         # http://127.0.0.1:PORT/sensorthings/v1.1
        sta.stop(); sta.start()         # same port, same database: an outage

Needs the test extra (pip install -e '.[test]'): django-ogc-sensorthings, Django, uvicorn.
"""

import argparse
import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from streetnode.common.broker import _die_with_parent, free_port

SETTINGS = '''\
import json
import os
from uuid import UUID
SECRET_KEY = "streetnode-test-server-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth",
                  "sensorthings.versions.v1_1", "sensorthings.versions.v1_1.backends.django",
                  "sensorthings.versions.v1_1.extensions.dataarray"]
DATABASES = {"default": json.loads(os.environ["STA_DATABASE"]) if os.environ.get("STA_DATABASE") else
             {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["STA_DB"], "OPTIONS": {"timeout": 20}}}
ROOT_URLCONF = "sta_urls"
USE_TZ = True
SENSORTHINGS_V1_1_SERVICE_URL = os.environ["STA_URL"]
SENSORTHINGS_V1_1_BACKEND_ADAPTER = "sensorthings.versions.v1_1.backends.django.adapter.DjangoBackendAdapter"
SENSORTHINGS_V1_1_ID_TYPE = UUID
SENSORTHINGS_V1_1_ID_DELIMITER = "'"
LOGGING = {"version": 1, "disable_existing_loggers": False,
           "handlers": {"console": {"class": "logging.StreamHandler"}},
           "loggers": {"django.request": {"handlers": ["console"], "level": "ERROR"}}}
'''
URLS = '''\
from django.urls import path, include
urlpatterns = [path("sensorthings/", include("sensorthings.versions.v1_1.urls"))]
'''
ASGI = '''\
import os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sta_settings")
from django.core.asgi import get_asgi_application
application = get_asgi_application()
'''

_template = {}  # python -> path of a migrated, empty database (migrate once per process)


def _remove(path):
    try:
        os.unlink(path)
    except OSError:
        pass


class StaServer:
    def __init__(self, directory=None, host="127.0.0.1", port=None, python=None, start_timeout=60.0, database=None):
        """database: Django's DATABASES["default"] (e.g. PostgreSQL: {"ENGINE":
        "django.db.backends.postgresql", "NAME", "USER", "HOST", "PORT"}); default SQLite
        in the directory."""
        self.database = database
        self._own_dir = directory is None
        self.dir = Path(directory or tempfile.mkdtemp(prefix="streetnode-sta-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.port = port or free_port(host)
        self.python = python or sys.executable
        self.start_timeout = start_timeout
        self.proc = None
        self.base = "http://%s:%d/sensorthings" % (host, self.port)
        self.url = self.base + "/v1.1"
        self.db = self.dir / "sta.sqlite3"
        self.log = self.dir / "server.log"
        for name, text in (("sta_settings.py", SETTINGS), ("sta_urls.py", URLS), ("sta_asgi.py", ASGI)):
            (self.dir / name).write_text(text)

    def _env(self):
        env = dict(os.environ, DJANGO_SETTINGS_MODULE="sta_settings", STA_DB=str(self.db), STA_URL=self.base,
                   PYTHONPATH=str(self.dir))  # fmt: skip
        if self.database:
            env["STA_DATABASE"] = json.dumps(self.database)
        return env

    def _migrate(self):
        if self.database:
            marker = self.dir / "migrated"
            if not marker.exists():
                p = subprocess.run([self.python, "-m", "django", "migrate", "-v", "0"], cwd=self.dir, env=self._env(),
                                   capture_output=True, text=True)  # fmt: skip
                if p.returncode != 0:
                    raise RuntimeError("django migrate failed: %s" % (p.stderr.strip().splitlines() or ["?"])[-1])
                marker.write_text("")
            return
        if self.db.exists():
            return
        tpl = _template.get(self.python)
        if tpl is None or not os.path.exists(tpl):
            p = subprocess.run([self.python, "-m", "django", "migrate", "-v", "0"], cwd=self.dir, env=self._env(),
                               capture_output=True, text=True)  # fmt: skip
            if p.returncode != 0:
                raise RuntimeError("django migrate failed: %s" % (p.stderr.strip().splitlines() or ["?"])[-1])
            fd, tpl = tempfile.mkstemp(prefix="streetnode-sta-template-", suffix=".sqlite3")
            os.close(fd)
            atexit.register(_remove, tpl)
            shutil.copyfile(self.db, tpl)
            _template[self.python] = tpl
        else:
            shutil.copyfile(tpl, self.db)

    def start(self):
        self._migrate()
        out = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [self.python, "-m", "uvicorn", "sta_asgi:application", "--host", self.host, "--port", str(self.port),
             "--log-level", "warning", "--no-access-log"],
            cwd=self.dir, env=self._env(), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent)  # fmt: skip
        out.close()
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("the SensorThings server exited (%s): %s" % (self.proc.returncode, self.output()[-500:]))
            try:
                with urllib.request.urlopen(self.url + "/", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the SensorThings server did not answer within %.0f s" % self.start_timeout)
            time.sleep(0.1)

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def output(self):
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def close(self):
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m streetnode.integrator.sta_server",
                                description="A local SensorThings API v1.1 server (django-ogc-sensorthings on SQLite) "
                                "to try the bridge against.")  # fmt: skip
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--dir", help="keep its database here (default: a temporary directory, removed on exit)")
    args = p.parse_args(argv)
    if args.dir:
        os.makedirs(args.dir, exist_ok=True)
    server = StaServer(args.dir, port=args.port).start()
    print("SensorThings API v1.1 at %s (Ctrl-C stops it)" % server.url, flush=True)
    try:
        server.proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
