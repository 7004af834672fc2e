"""`streetnode deploy`: put a bundle and a node's config on a board over USB, safely.

    streetnode deploy --port /dev/ttyUSB0 --config lamp-0042.json [--bundle DIR | --target T]
                      [--wait-online [--broker HOST:PORT]] [--no-reset]

The board keeps two firmware slots, a/ and b/, and a pointer file `slot` naming the active
one (see board/boot.py). A deploy writes only the inactive slot: files the running version
already has are copied on the board itself, only changed files travel over the cable; then
every file of the slot is hashed on the board and compared with the manifest, and only then
is the pointer replaced (written to slot.tmp, renamed over slot). A cable pulled at any
moment leaves a pointer to a complete slot, so the board boots the previous version (or the
new one, once the rename is done). The config goes to data/config.json the same way
(temp name, sha256 checked on the board, rename); data/ (outbox, state) is never touched.

mpremote is used through its Python API (mpremote.transport_serial.SerialTransport), not as
one `mpremote` process per step: one connection for the whole deploy instead of a
reconnect and raw-REPL entry per file, a progress callback per chunk for the progress bar,
and TransportError exceptions that become one-line messages. It is the same code the
`mpremote` command runs (raw REPL, raw paste, fs_writefile), pinned with it.
"""

import argparse
import contextlib
import io
import json
import os
import sys
import time
from pathlib import Path

from streetnode.technician import bundle as bundlemod
from streetnode.technician.bundle import sha256
from streetnode.field.capture import parse_broker
from streetnode.common.paths import device_code

# Exit codes (also in --help).
EXIT_OK = 0
EXIT_FAILED = 1  # the deploy stopped part way (board still boots its previous version)
EXIT_INPUT = 3  # config or bundle refused before the board was touched
EXIT_NO_BOARD = 4  # no board answers at the port
EXIT_VERIFY = 5  # files on the board differ from the manifest after copying
EXIT_OFFLINE = 6  # deployed, but --wait-online timed out

SLOTS = ("a", "b")
POINTER = "slot"
DATA = "data"
MAINT = "maint"
CHUNK = 512  # bytes per raw-REPL write: a few KB of RAM on the board for the repr'd chunk

TARGET_OF_BOARD = {board: target for target, spec in bundlemod.TARGETS.items() for board in spec["boards"]}


class DeployError(RuntimeError):
    def __init__(self, message, code=EXIT_FAILED):
        super().__init__(message)
        self.code = code


# -- code that runs on the board (sent through the raw REPL) -----------------------------------

_HELPERS = """\
import os, hashlib, binascii, json
def _h(p):
    d = hashlib.sha256()
    b = bytearray(512)
    m = memoryview(b)
    with open(p, 'rb') as f:
        while True:
            n = f.readinto(b)
            if not n:
                break
            d.update(m[:n])
    return binascii.hexlify(d.digest()).decode()
def _walk(p, out, sizes):
    for e in os.ilistdir(p):
        q = p + '/' + e[0]
        if e[1] & 0x4000:
            _walk(q, out, sizes)
        else:
            out[q] = _h(q)
            sizes[q] = os.stat(q)[6]
def _mkdirs(p):
    q = ''
    for part in p.split('/'):
        q = q + '/' + part if q else part
        try:
            os.mkdir(q)
        except OSError:
            pass
def _cp(src, dst):
    b = bytearray(512)
    m = memoryview(b)
    with open(src, 'rb') as f, open(dst, 'wb') as g:
        while True:
            n = f.readinto(b)
            if not n:
                break
            g.write(m[:n])
def _replace(src, dst):
    try:
        os.rename(src, dst)
    except OSError:
        os.remove(dst)  # FAT: no rename onto a file; the readers promote a lone temp
        os.rename(src, dst)
def _rm(p):
    try:
        os.remove(p)
    except OSError:
        pass
"""

_SURVEY = """\
_out = {}
_sizes = {}
for _top in ('a', 'b'):
    try:
        _walk(_top, _out, _sizes)
    except OSError:
        pass
for _f in ['boot.py', 'main.py'] + %r:
    try:
        _out[_f] = _h(_f)
    except OSError:
        pass
try:
    with open('slot') as _p:
        _slot = _p.read().strip()
except OSError:
    _slot = None
try:
    _s = os.statvfs('/')
    _free = _s[0] * _s[3]
except (OSError, AttributeError):
    _free = None
print(json.dumps({'slot': _slot, 'files': _out, 'sizes': _sizes, 'free': _free}))
"""


def _pr(value):
    return repr(value)


# -- the connection -----------------------------------------------------------------------------


class Board:
    """One serial connection to a MicroPython board through mpremote's transport."""

    def __init__(self, port, connect_timeout=5.0):
        self.port = port
        self.connect_timeout = connect_timeout
        self.t = None
        self.in_raw = False

    def open(self, wait=0.0):
        from mpremote.transport import TransportError
        from mpremote.transport_serial import SerialTransport

        if not os.path.exists(self.port) and not wait:
            raise DeployError("no board at %s: the port does not exist (is the USB cable plugged in?)" % self.port, EXIT_NO_BOARD)
        deadline = time.monotonic() + wait
        while True:
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    # A read timeout, so a port where nothing answers cannot hang us (mpremote
                    # reads a pty byte by byte and would otherwise block for ever).
                    self.t = SerialTransport(self.port, baudrate=115200, timeout=2)
                return self
            except (TransportError, OSError) as e:
                if time.monotonic() >= deadline:
                    raise DeployError("no board at %s: %s" % (self.port, e), EXIT_NO_BOARD)
                time.sleep(0.1)

    def close(self):
        if self.t is not None:
            try:
                if self.in_raw:
                    self.t.exit_raw_repl()
                self.t.close()
            except OSError:
                pass
            self.t = None
            self.in_raw = False

    def read_until(self, ending, timeout):
        return self.t.read_until(1, ending, timeout=None, timeout_overall=timeout)

    def raw_repl(self):
        """Stop whatever runs (Ctrl-C) and enter the raw REPL, without a soft reset."""
        from mpremote.transport import TransportError

        try:
            with contextlib.redirect_stdout(io.StringIO()):
                self.t.enter_raw_repl(soft_reset=False, timeout_overall=self.connect_timeout)
        except (TransportError, OSError) as e:
            raise DeployError("no MicroPython board answers at %s (%s)" % (self.port, e), EXIT_NO_BOARD)
        self.in_raw = True
        self.exec(_HELPERS)

    def exec(self, code):
        from mpremote.transport import TransportError, TransportExecError

        try:
            return self.t.exec(code).decode("utf-8", "replace")
        except TransportExecError as e:
            last = (e.error_output.strip().splitlines() or ["?"])[-1]
            raise DeployError("the board refused a step: %s" % last)
        except (TransportError, OSError) as e:
            raise DeployError("lost the board at %s: %s" % (self.port, e))

    def write_file(self, path, data, progress=None):
        from mpremote.transport import TransportError

        try:
            self.t.fs_writefile(path, data, chunk_size=CHUNK, progress_callback=progress)
        except (TransportError, OSError) as e:
            raise DeployError("lost the board while writing %s: %s" % (path, e))

    def survey(self, data_names=()):
        # Only the data files deploy installs are hashed: the outbox may be large.
        out = self.exec(_SURVEY % [DATA + "/" + n for n in data_names])
        try:
            return json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise DeployError("the board answered the survey with %r" % out[-200:])

    def hashes(self, paths):
        code = "print(json.dumps({p: (_h(p) if _ex(p) else None) for p in %s}))" % _pr(list(paths))
        code = "def _ex(p):\n    try:\n        os.stat(p)\n        return True\n    except OSError:\n        return False\n" + code
        return json.loads(self.exec(code).strip().splitlines()[-1])

    def reset(self):
        """machine.reset(), without waiting for an answer (the board is gone at once)."""
        from mpremote.transport import TransportError

        try:
            self.t.exec_raw_no_follow("import machine\nmachine.reset()")
        except (TransportError, OSError):
            pass
        self.in_raw = False
        self.close()

    def wait_repl(self, timeout=10.0):
        """After a reset: reconnect and wait for the friendly prompt, without a Ctrl-C that
        could land in boot.py; then enter the raw REPL."""
        self.open(wait=timeout)
        deadline = time.monotonic() + timeout
        seen = b""
        while time.monotonic() < deadline:
            seen += self.read_until(b">>> ", timeout=1.0)
            if seen.endswith(b">>> "):
                break
            try:
                self.t.serial.write(b"\r")  # the prompt went by before we listened: ask again
            except OSError:
                self.close()
                self.open(wait=max(0.1, deadline - time.monotonic()))
        else:
            # No prompt (a board that booted the node after all): stop it with Ctrl-C instead.
            print("the board did not stop at its REPL after the reset; interrupting it", flush=True)
        self.raw_repl()


# -- planning -----------------------------------------------------------------------------------


class Plan:
    """What to do on the board: from a survey, a bundle's manifest and the data files."""

    def __init__(self, survey, manifest, bundle_dir, data_files):
        self.active = survey["slot"] if survey["slot"] in SLOTS else None
        self.free = survey.get("free")
        self.board_sizes = survey.get("sizes") or {}
        self.target = "b" if self.active == "a" else "a"
        have = survey["files"]
        want = {}  # board path -> (sha256, bundle path)
        for f in manifest["files"]:
            p = f["path"]
            if p.startswith(bundlemod.APP + "/"):
                want[self.target + p[len(bundlemod.APP):]] = (f["sha256"], p)
        man_bytes = (Path(bundle_dir) / bundlemod.MANIFEST).read_bytes()
        want[self.target + "/" + bundlemod.MANIFEST] = (sha256(man_bytes), bundlemod.MANIFEST)
        self.manifest_path = self.target + "/" + bundlemod.MANIFEST
        self.want = want
        # Is the active slot exactly this bundle already?
        current = {}
        if self.active:
            current = {p[len(self.active) + 1:]: s for p, s in have.items() if p.startswith(self.active + "/")}
        wanted_rel = {p[len(self.target) + 1:]: s for p, (s, _) in want.items()}
        self.up_to_date = bool(self.active) and current == wanted_rel
        self.copy, self.local, self.keep = [], [], []
        if not self.up_to_date:
            for path in sorted(want):
                sha, src = want[path]
                rel = path[len(self.target) + 1:]
                if have.get(path) == sha:
                    self.keep.append(path)
                elif self.active and current.get(rel) == sha:
                    self.local.append((self.active + "/" + rel, path))
                else:
                    self.copy.append((src, path))
            self.remove = sorted(p for p in have if p.startswith(self.target + "/") and p not in want)
        else:
            self.remove = []
        # The loaders at the root, and the node's data files.
        loader_sha = {n: sha256((Path(bundle_dir) / n).read_bytes()) for n in ("boot.py", "main.py")}
        self.loaders = [n for n in ("boot.py", "main.py") if have.get(n) != loader_sha[n]]
        self.data = [(name, data) for name, data in data_files if have.get(DATA + "/" + name) != sha256(data)]
        self.our_loader_runs = have.get("main.py") == loader_sha["main.py"] and self.active is not None

    def bytes_needed(self, sizes, block=4096):
        """Flash the deploy takes beyond what it frees in the slot it rewrites (whole blocks
        per file, as littlefs allocates them)."""
        blocks = lambda n: max(1, -(-n // block)) * block  # noqa: E731
        written = [dest for _, dest in self.copy] + [dest for _, dest in self.local]
        need = sum(blocks(sizes[dest]) for dest in written) + sum(blocks(len(data)) for _, data in self.data)
        freed = sum(blocks(self.board_sizes[p]) for p in written + self.remove if p in self.board_sizes)
        return need - freed

    @property
    def firmware_changes(self):
        return not self.up_to_date

    @property
    def nothing_to_do(self):
        return self.up_to_date and not self.loaders and not self.data


# -- output -------------------------------------------------------------------------------------


class Progress:
    """A bar on a terminal, one plain line per file otherwise (logs, CI, scripts)."""

    def __init__(self, total_bytes, files, stream=None):
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self.total = max(1, total_bytes)
        self.files = files
        self.done = 0
        self.n = 0

    def file(self, name, size):
        self.n += 1
        self.name = name
        self.base = self.done
        if not self.tty:
            print("copy %d/%d %s (%d bytes)" % (self.n, self.files, name, size), file=self.stream, flush=True)
        self.update(0, size)

    def update(self, written, size):
        self.done = self.base + written
        if self.tty:
            width = 24
            fill = int(width * self.done / self.total)
            line = "\r[%s%s] %3d%% %d/%d %s" % ("#" * fill, "." * (width - fill), 100 * self.done // self.total,
                                                 self.n, self.files, self.name[-40:])
            self.stream.write(line + " " * max(0, 70 - len(line)))
            self.stream.flush()

    def end(self):
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


# -- the deploy ---------------------------------------------------------------------------------


def read_config(path):
    """(bytes, validated config, extra data files) of a config file, checked on the host
    with the firmware's own validator; DeployError(EXIT_INPUT) naming the problem."""
    device_code()
    from firmware import config as cfgmod

    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DeployError("config file %s not found" % path, EXIT_INPUT)
    except OSError as e:
        raise DeployError("config file %s cannot be read: %s" % (path, e.strerror or e), EXIT_INPUT)
    try:
        cfg = cfgmod.validate(cfgmod.parse_json(raw))
    except ValueError as e:
        raise DeployError("config file %s is invalid: %s" % (path, e), EXIT_INPUT)
    files = [(cfgmod.CONFIG_FILE, raw)]
    ca = (cfg.get("mqtt") or {}).get("ca")
    if ca:
        ca_path = path.parent / ca
        try:
            files.append((ca, ca_path.read_bytes()))
        except OSError:
            raise DeployError("config file %s names the CA certificate %s, but %s is missing" % (path, ca, ca_path), EXIT_INPUT)
    return raw, cfg, files


def get_bundle(args, cfg):
    target = TARGET_OF_BOARD.get(cfg["board"])
    if target is None:
        raise DeployError("board %r in the config is not deployed with mpremote (boards: %s)"
                          % (cfg["board"], ", ".join(sorted(TARGET_OF_BOARD))), EXIT_INPUT)
    if args.bundle:
        try:
            manifest = bundlemod.load(args.bundle)
        except bundlemod.BundleError as e:
            raise DeployError(str(e), EXIT_INPUT)
        path = Path(args.bundle)
    else:
        if args.target and args.target != target:
            raise DeployError("--target %s does not run board %s (its target is %s)" % (args.target, cfg["board"], target), EXIT_INPUT)
        path, manifest = bundlemod.make(target)
        print("bundle: %s (streetnode %s for %s)" % (path, manifest["version"], target))
    if manifest["target"] != target:
        raise DeployError("bundle %s is for %s, but the config's board %s needs %s"
                          % (path, manifest["target"], cfg["board"], target), EXIT_INPUT)
    return path, manifest


def _kib(n):
    return "%.1f KiB" % (n / 1024.0)


def deploy(args):
    _raw, cfg, data_files = read_config(args.config)
    bundle_dir, manifest = get_bundle(args, cfg)
    watcher = None
    if args.wait_online:
        ca = dict(data_files).get((cfg["mqtt"] or {}).get("ca"))
        watcher = OnlineWatcher(cfg, args.broker, ca)  # before the board: a wrong broker fails fast
    try:
        node = cfg["node_id"]
        board = Board(args.port, connect_timeout=args.connect_timeout).open()
        try:
            board.raw_repl()
            survey = board.survey([name for name, _ in data_files])
            plan = Plan(survey, manifest, bundle_dir, data_files)
            if plan.nothing_to_do:
                print("%s already runs streetnode %s (%s) from slot %s with this config: nothing copied"
                      % (args.port, manifest["version"], manifest["target"], plan.active))
            else:
                _apply(board, plan, bundle_dir, manifest)
            if args.no_reset:
                print("not reset (--no-reset): the board runs the new version at its next reset")
                return EXIT_OK
            if watcher:
                watcher.arm()
            board.reset()
            print("reset %s: node %s starting" % (args.port, node))
        finally:
            board.close()
        if watcher:
            status, data = watcher.wait(args.timeout)
            print("node %s is online (fw %s) and published reading seq %s" % (node, status.get("fw"), data.get("seq")))
        return EXIT_OK
    finally:
        if watcher:
            watcher.close()


def _apply(board, plan, bundle_dir, manifest):
    bundle_dir = Path(bundle_dir)
    if plan.free is not None:
        sizes = {dest: (bundle_dir / src).stat().st_size for dest, (_, src) in plan.want.items()}
        need = plan.bytes_needed(sizes, bundlemod.TARGETS[manifest["target"]]["block"])
        if need > plan.free:
            raise DeployError("the board has %s of flash free, the new version needs %s: nothing was changed"
                              % (_kib(plan.free), _kib(need)), EXIT_INPUT)
    # A maintenance boot first: the node is not running, so no watchdog bites while we copy
    # (an RP2040's cannot be stopped). The marker is one-shot, and ignored after a power-on.
    if plan.our_loader_runs:  # a blank board (or another firmware) runs no node of ours
        board.exec("open(%r, 'w').close()" % MAINT)
        board.reset()
        board.wait_repl()
    if plan.firmware_changes:
        total = sum((bundle_dir / src).stat().st_size for src, _ in plan.copy)
        print("deploying streetnode %s (%s) into slot %s: %d files to copy (%s), %d reused from slot %s, %d already there, %d to remove"
              % (manifest["version"], manifest["target"], plan.target, len(plan.copy), _kib(total), len(plan.local),
                 plan.active or "-", len(plan.keep), len(plan.remove)))
        dirs = sorted({p.rsplit("/", 1)[0] for p in plan.want})
        board.exec("for _d in %r:\n    _mkdirs(_d)" % dirs)
        if plan.remove:
            board.exec("for _p in %r:\n    _rm(_p)" % plan.remove)
        # The slot's manifest goes last and the pointer never names this slot while we write.
        board.exec("_rm(%r)" % plan.manifest_path)
        if plan.local:
            board.exec("for _s, _d in %r:\n    _cp(_s, _d)" % plan.local)
        order = sorted(plan.copy, key=lambda c: c[1] == plan.manifest_path)
        bar = Progress(total, len(order))
        for src, dest in order:
            data = (bundle_dir / src).read_bytes()
            bar.file(dest, len(data))
            board.write_file(dest, data, progress=lambda w, s: bar.update(w, s))
        bar.end()
        if plan.manifest_path not in [d for _, d in order]:  # kept or reused: it was removed above
            board.write_file(plan.manifest_path, (bundle_dir / bundlemod.MANIFEST).read_bytes())
        # Verify the whole slot, as the board reads it back.
        got = board.survey()["files"]
        slot_files = {p: s for p, s in got.items() if p.startswith(plan.target + "/")}
        expected = {p: s for p, (s, _) in plan.want.items()}
        if slot_files != expected:
            bad = sorted(p for p in set(slot_files) | set(expected) if slot_files.get(p) != expected.get(p))
            raise DeployError("verification failed: %d file(s) in slot %s differ from the manifest (first: %s); "
                              "the board still boots slot %s" % (len(bad), plan.target, bad[0], plan.active or "none"), EXIT_VERIFY)
        print("verified %d files in slot %s" % (len(expected), plan.target))
    for name in plan.loaders:
        _install(board, name, (bundle_dir / name).read_bytes())
    if plan.data:
        board.exec("_mkdirs(%r)" % DATA)
    for name, data in plan.data:
        _install(board, DATA + "/" + name, data)
        print("installed %s/%s" % (DATA, name))
    if not plan.data:
        print("config unchanged")
    board.exec("_rm(%r)" % MAINT)  # never leave a marker for a later boot
    if plan.firmware_changes:
        _install(board, POINTER, plan.target.encode())
        print("slot %s is active: streetnode %s" % (plan.target, manifest["version"]))


def _install(board, path, data):
    """Write `path` atomically: a temp name, its sha256 checked on the board, a rename."""
    tmp = path + ".tmp"
    board.write_file(tmp, data)
    got, want = board.hashes([tmp])[tmp], sha256(data)
    if got != want:
        board.exec("_rm(%r)" % tmp)
        raise DeployError("verification failed for %s: the board holds sha256 %s, expected %s" % (path, got, want), EXIT_VERIFY)
    board.exec("_replace(%r, %r)" % (tmp, path))


# -- waiting for the node on the broker ---------------------------------------------------------


class OnlineWatcher:
    """Subscribes to the node's status and data before the reset; after it, waits for a live
    (not retained) `online` and the first reading that follows."""

    def __init__(self, cfg, broker=None, ca_der=None):
        import threading

        import paho.mqtt.client as mqtt

        m = cfg["mqtt"]
        if broker:
            try:
                host, port = parse_broker(broker)
            except ValueError as e:
                raise DeployError(str(e), EXIT_INPUT)
        else:
            host, port = m["host"], m.get("port") or (8883 if m.get("tls") else 1883)
        self.where = "%s:%d" % (host, port)
        base = "%s/%s/" % (m.get("prefix") or "streetnode", cfg["node_id"])
        self.topics = (base + "status", base + "data")
        self.lock = threading.Lock()
        self.armed = False
        self.status = None
        self.data = None
        self.connected = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="streetnode-deploy-%d" % os.getpid())
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        # The node's own MQTT user may read its topics (provision's ACL); --broker only moves
        # host and port, so the node's credentials and TLS settings still apply.
        if m.get("user"):
            self.client.username_pw_set(m["user"], m.get("password"))
        if m.get("tls"):
            import ssl

            try:
                self.client.tls_set_context(ssl.create_default_context(cadata=ca_der))
            except (ssl.SSLError, TypeError, ValueError) as e:
                raise DeployError("the CA certificate %s cannot be used: %s" % (m.get("ca"), e), EXIT_INPUT)
        try:
            self.client.connect(host, port, keepalive=30)
        except OSError as e:
            raise DeployError("cannot reach the broker %s for --wait-online: %s" % (self.where, e), EXIT_INPUT)
        self.client.loop_start()
        self.refused = None
        if not self.connected.wait(10):
            self.close()
            why = " (%s)" % self.refused if self.refused else ""
            raise DeployError("the broker %s did not accept a connection for --wait-online%s" % (self.where, why), EXIT_INPUT)

    def _on_connect(self, client, userdata, flags, rc, props=None):
        self.refused = rc
        if rc == 0:
            for t in self.topics:
                client.subscribe(t, qos=1)
            self.connected.set()

    def _on_message(self, client, userdata, msg):
        try:
            payload = json.loads(msg.payload)
        except ValueError:
            return
        with self.lock:
            if not self.armed or msg.retain:  # a retained status is the node before this deploy
                return
            if msg.topic == self.topics[0] and payload.get("state") == "online":
                self.status = payload
            elif msg.topic == self.topics[1] and self.status is not None and self.data is None:
                self.data = payload

    def arm(self):
        with self.lock:
            self.armed = True

    def wait(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if self.data is not None:
                    return self.status, self.data
            time.sleep(0.05)
        with self.lock:
            what = "its first reading" if self.status else "status online"
        raise DeployError("deployed, but the node did not publish %s on %s within %gs: check its Wi-Fi and broker "
                          "settings, or watch its console with `mpremote connect PORT repl`" % (what, self.where, timeout),
                          EXIT_OFFLINE)

    def close(self):
        self.client.loop_stop()
        try:
            self.client.disconnect()
        except OSError:
            pass


# -- the command line ---------------------------------------------------------------------------


def _run(args):
    try:
        return deploy(args)
    except DeployError as e:
        print("streetnode deploy: error: %s" % e, file=sys.stderr)
        return e.code
    except bundlemod.BundleError as e:
        print("streetnode deploy: error: %s" % e, file=sys.stderr)
        return EXIT_FAILED


def register(sub):
    d = sub.add_parser(
        "deploy",
        help="copy a bundle and a node's config onto a board over USB (only what changed), then reset it",
        description="Connects to the board with mpremote, reads the sha256 of every file on it, and "
        "copies only what changed into the board's inactive firmware slot; files the running version "
        "already has are copied on the board. Every file is verified on the board before the slot "
        "becomes active (one atomic rename), so a deploy cut off at any point leaves the board "
        "booting its previous version. The config (validated here first) is installed atomically "
        "into data/config.json; the node's outbox and state are kept. Then the board is reset.",
        epilog="examples:\n"
        "  streetnode deploy --port /dev/ttyUSB0 --config lamp-0042.json\n"
        "  streetnode deploy --port /dev/ttyACM0 --config pico-7.json --bundle build/bundle/rp2\n"
        "  streetnode deploy --port /dev/ttyUSB0 --config lamp-0042.json --wait-online --broker 10.0.0.5:1883\n\n"
        "exit codes:\n"
        "  0  deployed (or the board already ran this bundle and config: nothing copied)\n"
        "  1  failed part way (cable, board error); the board boots its previous version\n"
        "  2  usage error\n"
        "  3  refused before anything on the board was changed: config file missing or invalid\n"
        "     (the message names the key), bundle damaged or for another board, too little flash\n"
        "     free on the board, broker unreachable with --wait-online\n"
        "  4  no board answers at --port\n"
        "  5  files on the board differ from the manifest after copying; previous version kept\n"
        "  6  deployed, but the node did not come online and publish within --timeout",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    d.add_argument("--port", required=True, help="the board's serial port (/dev/ttyUSB0, /dev/ttyACM0, COM3)")
    d.add_argument("--config", required=True, metavar="FILE", help="the node's config.json (from `streetnode provision`)")
    src = d.add_mutually_exclusive_group()
    src.add_argument("--bundle", metavar="DIR", help="a bundle made by `streetnode bundle` (checked against its manifest)")
    src.add_argument("--target", choices=sorted(bundlemod.TARGETS),
                     help="build the bundle for this target now (default: the target of the config's board)")
    d.add_argument("--wait-online", action="store_true",
                   help="after the reset, wait for the node's live status online and its first reading on the broker")
    d.add_argument("--broker", metavar="HOST:PORT", help="the broker to watch (default: the config's mqtt host and port)")
    d.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS", help="how long --wait-online waits (default 60)")
    d.add_argument("--connect-timeout", type=float, default=5.0, metavar="SECONDS",
                   help="how long to wait for the board's REPL to answer (default 5)")
    d.add_argument("--no-reset", action="store_true", help="leave the board at its REPL; the new version runs at the next reset")
    d.set_defaults(func=_run)

