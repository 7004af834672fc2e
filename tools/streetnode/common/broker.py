"""A throw-away MQTT broker on a free loopback port, for tests and `streetnode sim`.

    with Broker() as b:                 # mosquitto when installed, else the embedded amqtt
        print(b.kind, b.host, b.port)
        b.restart()                     # same port: clients see an outage, then the broker again

Debian's mosquitto is run with a config file of our own in a temporary directory (the system
service is never touched); amqtt (a Python dependency) is the fallback that always exists.
The broker process dies with us: stop() on exit, atexit for the forgotten ones, and the kernel
(PR_SET_PDEATHSIG) if this process is killed outright.
"""

import atexit
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from pathlib import Path

from streetnode.common.errors import Failure

KINDS = ("mosquitto", "amqtt")
_live = weakref.WeakSet()


def find_mosquitto():
    """The mosquitto executable, or None. Debian puts it in /usr/sbin (not on a user's PATH)."""
    found = shutil.which("mosquitto")
    if found:
        return found
    return "/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else None


_GIVEN = []  # the ports free_port handed out last, newest at the end
_GIVEN_LOCK = threading.Lock()


def free_port(host="127.0.0.1"):
    """A TCP port free on `host` now, and none of the last 64 this process handed out: the
    caller binds it later (a broker it starts), and two callers that ask before either has
    bound (a cluster's Redis and its instances) would otherwise get the same port at times."""
    with _GIVEN_LOCK:
        while True:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind((host, 0))
                port = s.getsockname()[1]
            if port not in _GIVEN:
                _GIVEN.append(port)
                del _GIVEN[:-64]
                return port


def _die_with_parent():
    # Runs in the child before exec: ask the kernel for SIGKILL when our parent dies.
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: atexit still covers orderly exits
        pass


class Broker:
    """An MQTT 3.1.1 broker on `host:port`, anonymous, without persistence.

    kind: "mosquitto", "amqtt" or None (mosquitto when installed, else amqtt).
    tls: None, or {"cafile", "certfile", "keyfile"} (PEM paths) for a TLS-only listener
    (mosquitto only); with "require_certificate": True a client needs a certificate the CA signed.
    """

    def __init__(self, kind=None, host="127.0.0.1", port=None, tls=None, start_timeout=15.0, persistence=False,
                 users=None, conf=None):  # fmt: skip
        if kind is None:
            kind = "mosquitto" if find_mosquitto() else "amqtt"
        if kind not in KINDS:
            raise ValueError("broker kind must be one of %s, got %r" % (", ".join(KINDS), kind))
        if kind == "mosquitto" and not find_mosquitto():
            raise Failure("mosquitto is not installed (apt-get install mosquitto)")
        if tls and kind != "mosquitto":
            raise ValueError("a TLS listener needs mosquitto, not %s" % kind)
        self.kind = kind
        self.host = host
        self.port = port
        self.tls = dict(tls) if tls else None
        if persistence and kind != "mosquitto":
            raise ValueError("persistence needs mosquitto, not %s" % kind)
        # persistence: sessions and queued QoS 1 messages survive stop()/start(), as on a
        # city's broker; a subscriber with a persistent session misses nothing.
        self.persistence = persistence
        # users: {name: password}; then only they may connect (mosquitto's password_file).
        if users and kind != "mosquitto":
            raise ValueError("users need mosquitto, not %s" % kind)
        self.users = dict(users) if users else None
        # conf: a mosquitto config snippet (e.g. `streetnode broker-config`'s) that brings its
        # own listener (on host:port), password_file and acl_file, in place of ours.
        if conf and (kind != "mosquitto" or users or tls):
            raise ValueError("conf goes with mosquitto and neither users nor tls (the snippet has its own)")
        self.conf = conf
        self.start_timeout = start_timeout
        self.proc = None
        self.restarts = 0
        self._dir = None

    @property
    def address(self):
        return "%s:%d" % (self.host, self.port)

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def __repr__(self):
        return "<Broker %s %s %s>" % (self.kind, self.address if self.port else "-", "up" if self.running else "down")

    # -- configuration

    def _mosquitto_config(self):
        own = self.conf.splitlines() if self.conf else [
            "listener %d %s" % (self.port, self.host),
            "allow_anonymous %s" % ("false" if self.users else "true"),
        ]
        lines = own + [
            "persistence %s" % ("true" if self.persistence else "false"),
            "log_dest file %s" % (Path(self._dir) / "broker.log"),
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
        ]
        if os.geteuid() == 0:
            # As root mosquitto would switch to user "mosquitto", who cannot read our 0700
            # temp dir (certificates, log): stay who we are, as for any other user.
            lines.append("user root")
        if self.users:
            pw = Path(self._dir) / "passwords"
            pw.write_text("")
            for name, password in self.users.items():
                subprocess.run(["mosquitto_passwd", "-b", str(pw), name, password], check=True, capture_output=True)
            os.chmod(pw, 0o600)
            lines.append("password_file %s" % pw)
        if self.persistence:
            lines += ["persistence_location %s/" % self._dir, "max_queued_messages 0"]
        if self.tls:
            lines += [
                "cafile %s" % self.tls["cafile"],
                "certfile %s" % self.tls["certfile"],
                "keyfile %s" % self.tls["keyfile"],
            ]
            if self.tls.get("require_certificate"):
                lines.append("require_certificate true")
        path = Path(self._dir) / "mosquitto.conf"
        path.write_text("\n".join(lines) + "\n")
        return [find_mosquitto(), "-c", str(path)]

    def _amqtt_config(self):
        # amqtt 0.12.1's broker script: `-c` YAML with listeners and plugins (no $SYS, no logging
        # plugins: quiet, and nothing else on the wire for the tests to filter out).
        text = (
            "listeners:\n"
            "  default:\n"
            "    type: tcp\n"
            "    bind: %s:%d\n"
            "plugins:\n"
            "  amqtt.plugins.authentication.AnonymousAuthPlugin:\n"
            "    allow_anonymous: true\n"
        ) % (self.host, self.port)
        path = Path(self._dir) / "amqtt.yaml"
        path.write_text(text)
        return [sys.executable, "-m", "amqtt.scripts.broker_script", "-c", str(path)]

    # -- life cycle

    def start(self):
        if self.running:
            return self
        if self._dir is None:
            self._dir = tempfile.mkdtemp(prefix="streetnode-broker-")
        if self.port is None:
            self.port = free_port(self.host)
        cmd = self._mosquitto_config() if self.kind == "mosquitto" else self._amqtt_config()
        log = open(Path(self._dir) / "process.log", "ab")
        try:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, preexec_fn=_die_with_parent, cwd=self._dir
            )
        finally:
            log.close()
        _live.add(self)
        self._wait_ready()
        return self

    def _wait_ready(self):
        deadline = time.monotonic() + self.start_timeout
        while True:
            code = self.proc.poll()
            if code is not None:
                self.proc = None
                raise Failure("%s exited with code %s on %s: %s" % (self.kind, code, self.address, self.log_tail()))
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    pass
                # mosquitto opens its listener before it loads the TLS files and may still exit:
                # ready only once its log says it runs (amqtt: once it listens)
                if self.kind != "mosquitto" or " running" in self.log_tail(50):
                    return
                raise OSError("listening, not running yet")
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise Failure("%s did not listen on %s within %.0f s" % (self.kind, self.address, self.start_timeout))
                time.sleep(0.02)

    def log_tail(self, n=5):
        """The last lines the broker wrote (its own log and its stderr)."""
        out = []
        for name in ("broker.log", "process.log"):
            p = Path(self._dir or ".") / name
            if p.exists():
                out += p.read_text(errors="replace").strip().splitlines()
        return " | ".join(out[-n:]) if out else "(no output)"

    def stop(self):
        """Stop the broker (SIGTERM, then SIGKILL); clients see the connection drop."""
        p, self.proc = self.proc, None
        if p is not None:
            if p.poll() is None:
                try:
                    os.kill(p.pid, signal.SIGCONT)  # a paused broker cannot handle SIGTERM
                except ProcessLookupError:
                    pass
                p.terminate()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)
        return self

    def kill(self):
        """Kill the broker outright (SIGKILL), like a crashed server."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None
        return self

    def restart(self):
        """Stop and start again on the same port."""
        self.stop()
        self.restarts += 1
        return self.start()

    def pause(self):
        """SIGSTOP: connections stay open but nothing answers (a hung broker)."""
        if self.running:
            os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self):
        if self.running:
            os.kill(self.proc.pid, signal.SIGCONT)

    def close(self):
        """Stop and remove the temporary directory."""
        self.stop()
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()


@atexit.register
def _stop_all():
    for b in list(_live):
        b.close()
