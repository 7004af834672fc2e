"""A virtual MicroPython board for the tests: the real unix-port interpreter behind a
pseudo-terminal, its flash a board's flash (LittleFS v2 of the ESP32-DevKitC's 2 MiB in
DIR/flash.img, hal/sim/flash.py), answering mpremote's raw REPL like a board on USB.

    with VirtualBoard(tmp_path / "board") as board:
        subprocess.run(["mpremote", "connect", board.port, "fs", "ls"])
        board.read("main.py"); board.files()   # the flash seen from the host
        board.power_cut(); board.power_on()
    VirtualBoard(DIR, flash_size=None)        # the directory itself as the flash

How it stands in for a board:
- The port (`board.port`, a /dev/pts/N) belongs to a pty pair the harness keeps for the
  board's whole life, so the path stays the same across reboots and mpremote (or deploy)
  can reconnect. The harness relays bytes between that pair and the interpreter's own pty.
- A boot mounts the image at / (so / is the board's flash and nothing of the host's is
  seen; an image that does not mount is set aside and formatted, with a report on the
  console) and runs with sys.path as on a board ('', .frozen, lib): boot.py, then main.py,
  then stays at the REPL (`micropython -i`). Ctrl-C from the host reaches the interpreter
  as SIGINT (its pty is the controlling terminal, ISIG on), so it interrupts main.py and
  leaves the REPL, as on a board.
- The unix port ends the process on a soft reset (Ctrl-D in the raw REPL) and on Ctrl-D at
  the friendly REPL. The harness then boots it again as a board would: after a soft reset
  in the raw REPL only boot.py runs and the board is back in the raw REPL ("MPY: soft
  reboot", then the raw REPL banner; what boot.py prints is not relayed there); otherwise
  boot.py and main.py run.
- `machine` is a small module earlier on sys.path (the unix port's built-in one has no
  reset): reset() and deepsleep(ms) leave a note and end the script, and the harness boots
  the board again (after ms for a deep sleep) with reset_cause() telling the firmware why;
  sys.exit() in main.py soft-reboots it, as on a board. (`-i` would otherwise hold the
  process at its REPL after a SystemExit: the harness ends it on the note.)
- power_cut() kills the interpreter with SIGKILL at any instant (a block of the flash
  can be left half programmed, as a power cut leaves it); power_on() boots it again. Bytes sent to a board that is off are lost;
  bytes sent while it boots are delivered once the interpreter runs.
"""

import errno
import os
import select
import signal
import subprocess
import sys
import tempfile
import termios
import threading
import time
import tty
from pathlib import Path

from streetnode.common import mpy
from streetnode.common.paths import REPO
from streetnode.sim.flashimg import FlashImage

IMAGE_NAME = "flash.img"  # hal/sim/flash.IMAGE_NAME
ESP32_VFS_BYTES = 2 * 1024 * 1024  # hal/sim/flash.ESP32_VFS_BYTES: the ESP32-DevKitC's VFS partition

PWRON_RESET, HARD_RESET, WDT_RESET, DEEPSLEEP_RESET, SOFT_RESET = 1, 2, 3, 4, 5  # ESP32's values
_READY = b"\x00vboard-up\x00"  # first bytes of each boot, stripped: the interpreter runs
_RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n"
_OUT_MAX = 64 * 1024  # board output kept for a host that does not read (USB CDC would block)

_MACHINE = """\
# machine for the virtual board (stands in for the board's built-in module)
import time
PWRON_RESET, HARD_RESET, WDT_RESET, DEEPSLEEP_RESET, SOFT_RESET = 1, 2, 3, 4, 5
# Opened at import, before the board's flash is mounted at / (the host's files are gone
# then): why the script left, one line; the harness acts on a whole line only.
_left = open(%(flag)r, "w")
_said = False
def reset_cause():
    return %(cause)d
def _say(why):
    global _said
    if not _said:
        _said = True
        _left.write(why + "\\n")
        _left.flush()
def _leave(why):
    _say(why)
    raise SystemExit(0)
def reset():
    _leave("reset")
def soft_reset():
    _leave("soft")
def deepsleep(ms=0):
    _leave("deepsleep %%d" %% ms)
def lightsleep(ms=0):
    time.sleep_ms(ms)
def idle():
    pass
def unique_id():
    return b"vboard"
def freq():
    return 240000000
"""

_BOOT = """\
# what a board's firmware does at each boot, for the virtual board
import sys
sys.stdout.write(%(ready)r)
sys.path[:] = [%(rom)r, %(repo)r]
import machine
if %(image)r:
    # The board's flash: LittleFS v2 in the image, mounted at / as a board's boot does
    # (formatted afresh and reported when it does not mount); the host's files are gone.
    import os
    from hal.sim import flash as _flash
    _dev, _report = _flash.mount(%(image)r, "/")
    os.chdir("/")
    for _m in list(sys.modules):
        if _m == "hal" or _m.startswith("hal."):
            del sys.modules[_m]  # the board's own hal (in its slot) is the one its code imports
    del _m, _flash
    if _report:
        print(_report)
sys.path[:] = ["", ".frozen", "lib"] + ([] if %(image)r else [%(rom)r])
def _run(name):
    try:
        f = open(name)
    except OSError:
        return
    src = f.read()
    f.close()
    exec(compile(src, name, "exec"), {"__name__": "__main__", "__file__": name})
try:
    _run("boot.py")
    if %(main)r:
        _run("main.py")
except SystemExit:  # sys.exit() in main.py: a board soft-resets (the harness reboots us)
    machine._say("exit")
    raise
except KeyboardInterrupt as e:
    sys.print_exception(e)
except Exception as e:  # a board prints the traceback and stays at the REPL
    sys.print_exception(e)
del _run
"""


def _board_termios(fd):
    # Raw bytes both ways (the firmware writes its own \\r\\n), but Ctrl-C still signals.
    a = termios.tcgetattr(fd)
    a[0] &= ~(termios.ICRNL | termios.IXON | termios.INLCR | termios.IGNCR | termios.ISTRIP)
    a[1] &= ~termios.OPOST
    a[3] &= ~(termios.ECHO | termios.ICANON | termios.IEXTEN)
    a[3] |= termios.ISIG
    termios.tcsetattr(fd, termios.TCSANOW, a)


def _controlling_terminal():
    os.setsid()
    import fcntl

    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class VirtualBoard:
    def __init__(self, flash, heap="1m", env=None, flash_size=ESP32_VFS_BYTES):
        """flash: the board's directory. flash_size: its flash, LittleFS v2 of that many
        bytes in flash/flash.img (made and formatted when missing; default the ESP32-DevKitC's
        VFS partition); None: the directory itself is the flash (host-directory mode)."""
        # heap: 1 MiB of the 64-bit unix port, where a node interrupted into the REPL (all it
        # loaded still there) and deploy's steps share it; a board has its own figures
        # (docs/benchmarks.md, heap on a small board).
        self.flash = Path(flash)
        self.flash.mkdir(parents=True, exist_ok=True)
        self.image = None
        if flash_size is not None:
            self.image = FlashImage(self.flash / IMAGE_NAME)
            if not self.image.exists():
                self.image.format(flash_size)
        self.heap = heap
        self.env = env or {}
        self.rom = Path(tempfile.mkdtemp(prefix="vboard-rom-"))
        self._flag = self.rom / "left"
        self._lock = threading.RLock()
        self._proc = None
        self._board_fd = None
        self._powered = False
        self._stop = False
        self._pending = bytearray()  # host bytes waiting for the interpreter to run
        self._up = False
        self._head = b""
        self._raw = False
        self._swallow = None  # after a raw-REPL soft reset: output held until the raw banner
        self._tail = b""
        self._wake_at = None
        self._console = bytearray()
        self._out = bytearray()  # board output the host has not read yet
        self._cut_on = None  # power_cut_when(): bytes from the host that pull the cable
        self._heard = b""
        self.cut = threading.Event()
        self.boots = []  # (mode, cause) of every boot: mode "run" (boot.py + main.py) or "raw"
        self._host_fd, self._port_fd = os.openpty()
        tty.setraw(self._port_fd)  # no echo of the board's output back into the board
        os.set_blocking(self._host_fd, False)
        self.port = os.ttyname(self._port_fd)
        self._thread = threading.Thread(target=self._loop, name="vboard", daemon=True)

    # -- control ------------------------------------------------------------------------

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.close()

    def start(self):
        self._thread.start()
        self.power_on()
        return self

    def power_on(self, cause=PWRON_RESET):
        with self._lock:
            self._powered = True
            if self._proc is None:
                self._boot("run", cause)

    def power_cut(self):
        """The cable pulled: the interpreter dies at once, whatever it was doing."""
        with self._lock:
            self._powered = False
            self._wake_at = None
            self._kill()

    def power_cut_when(self, pattern):
        """Pull the cable the moment the host sends `pattern` (before the board gets it):
        a cut at an exact step of a deploy. `cut` is set when it happened."""
        with self._lock:
            self._cut_on = pattern
            self._heard = b""
            self.cut.clear()

    def close(self):
        self.power_cut()
        self._stop = True
        if self._thread.is_alive():
            self._thread.join(5)
        for fd in (self._host_fd, self._port_fd):
            try:
                os.close(fd)
            except OSError:
                pass
        for p in self.rom.iterdir():
            p.unlink()
        self.rom.rmdir()

    def console(self):
        """Everything the board printed since it was made, as text."""
        with self._lock:
            return self._console.decode("utf-8", "replace")

    def wait_console(self, text, timeout=10, start=0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.console()[start:]:
                return
            time.sleep(0.02)
        raise AssertionError("board did not print %r in %ss; console tail:\n%s" % (text, timeout, self.console()[-2000:]))

    def running(self):
        with self._lock:
            return self._proc is not None and self._proc.poll() is None

    # -- the flash, seen from the host ------------------------------------------------------
    # Reads run while the board runs (LittleFS commits are atomic: a reader sees the last
    # commit); writes only while it is off (one file system, one writer).

    def read(self, name):
        """A file's bytes, or None when the flash has no such file."""
        if self.image is None:
            p = self.flash / name
            return p.read_bytes() if p.is_file() else None
        return self.image.get_bytes(name)

    def exists(self, name):
        return self.read(name) is not None

    def files(self):
        """A host copy of everything on the flash (a fresh directory each call)."""
        if self.image is None:
            return self.flash
        return self.image.pull(tempfile.mkdtemp(prefix="vboard-flash-", dir=str(self.flash)))

    def _off(self, what):
        if self.running():
            raise RuntimeError("%s: the board is running (power_cut() it first)" % what)

    def write(self, name, data):
        self._off("write %s" % name)
        data = data.encode() if isinstance(data, str) else data
        if self.image is None:
            (self.flash / name).parent.mkdir(parents=True, exist_ok=True)
            (self.flash / name).write_bytes(data)
        else:
            self.image.put_bytes(name, data)

    def remove(self, name):
        """Delete a file if it is there."""
        self._off("remove %s" % name)
        if self.image is None:
            if (self.flash / name).exists():
                (self.flash / name).unlink()
        elif self.exists(name):
            self.image.remove(name)

    def df(self):
        """{"size", "free", "used"} bytes of the board's flash (LittleFS only)."""
        return self.image.df()

    # -- the interpreter ---------------------------------------------------------------

    def _left(self):
        """Why the script left (machine.reset(), deepsleep, sys.exit), once said in full."""
        try:
            text = self._flag.read_text()
        except OSError:
            return None
        return text.strip() if text.endswith("\n") else None

    def _boot(self, mode, cause):
        (self.rom / "machine.py").write_text(_MACHINE % {"flag": str(self._flag), "cause": cause})
        (self.rom / "_vboard.py").write_text(_BOOT % {
            "ready": _READY.decode(), "rom": str(self.rom), "main": mode == "run", "repo": str(REPO),
            "image": str(self.image.path) if self.image else "",
        })  # fmt: skip
        if self._flag.exists():
            self._flag.unlink()  # machine.py opens it afresh
        board_fd, slave = os.openpty()
        _board_termios(slave)
        env = dict(os.environ, MICROPYPATH=".frozen")
        env.update(self.env)
        cmd = [mpy.executable(), "-X", "heapsize=%s" % self.heap, "-i", str(self.rom / "_vboard.py")]
        self._proc = subprocess.Popen(
            cmd, stdin=slave, stdout=slave, stderr=slave, cwd=str(self.flash), env=env, preexec_fn=_controlling_terminal
        )
        os.close(slave)
        os.set_blocking(board_fd, False)
        self._board_fd = board_fd
        self._up = False
        self._head = b""
        self._raw = False
        self._tail = b""
        if mode == "raw":
            self._swallow = bytearray()
            self._pending[0:0] = b"\r\x01"
        else:
            self._swallow = None
        self.boots.append((mode, cause))

    def _kill(self):
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.send_signal(signal.SIGKILL)
            self._proc.wait()
            self._proc = None
        if self._board_fd is not None:
            os.close(self._board_fd)
            self._board_fd = None
        self._pending = bytearray()

    def _ended(self):
        """The interpreter process ended by itself: boot again as the board would."""
        rc = self._proc.poll()  # None: it left by machine.reset()/sys.exit() and `-i` holds it at a REPL
        why = self._left() or ""
        self._drain()
        self._kill()
        if not self._powered:
            return
        if why == "reset":
            self._boot("run", SOFT_RESET)  # machine.reset() on an ESP32 reports a soft reset
        elif why.startswith("deepsleep"):
            ms = int(why.split()[1] or 0)
            self._wake_at = time.monotonic() + ms / 1000.0
        elif why in ("soft", "exit") or rc == 0:
            raw = self._raw and why != "soft"
            self._to_host(b"MPY: soft reboot\r\n")
            self._boot("raw" if raw else "run", self.boots[-1][1] if self.boots else PWRON_RESET)
        else:  # the firmware exited (sys.exit(n) where a board would reset) or crashed
            self._boot("run", SOFT_RESET)

    def _drain(self):
        if self._board_fd is None:
            return
        while True:
            try:
                r, _, _ = select.select([self._board_fd], [], [], 0)
                if not r:
                    return
                data = os.read(self._board_fd, 4096)
            except OSError:
                return
            if not data:
                return
            self._from_board(data)

    # -- the relay ------------------------------------------------------------------------

    def _to_host(self, data):
        self._console += data
        self._out += data
        if len(self._out) > _OUT_MAX:  # nobody reads the port: the oldest bytes are lost
            del self._out[: len(self._out) - _OUT_MAX]
        self._flush_host()

    def _flush_host(self):
        while self._out:
            try:
                n = os.write(self._host_fd, self._out)
            except OSError as e:  # the pty is full: the rest waits for the host to read
                if e.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EIO):
                    raise
                return
            del self._out[:n]

    def _to_board(self, data):
        if self._raw and b"\x02" in data:  # Ctrl-B: back to the friendly REPL
            self._raw = False
        view = memoryview(bytes(data))
        while view:
            try:
                n = os.write(self._board_fd, view)
            except OSError as e:
                if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK):  # its input is full: let it talk
                    self._drain()
                    time.sleep(0.001)
                    continue
                return  # the interpreter is gone; _ended() takes it from here
            view = view[n:]

    def _from_board(self, data):
        if not self._up:
            self._head += data
            if len(self._head) < len(_READY) and _READY.startswith(self._head):
                return
            data = self._head[len(_READY):] if self._head.startswith(_READY) else self._head
            self._up = True
        self._tail = (self._tail + data)[-64:]
        if _RAW_BANNER in self._tail:
            self._raw = True
        if self._swallow is not None:
            self._swallow += data
            cut = self._swallow.find(_RAW_BANNER)
            if cut < 0:
                return
            data = bytes(self._swallow[cut:])
            self._swallow = None
        if data:
            self._to_host(data)

    def _loop(self):
        while not self._stop:
            with self._lock:
                fds = [self._host_fd] + ([self._board_fd] if self._board_fd is not None else [])
            try:
                readable, _, _ = select.select(fds, [self._host_fd] if self._out else [], [], 0.02)
            except (OSError, ValueError):
                readable = []
            with self._lock:
                if self._stop:
                    return
                self._flush_host()
                if self._host_fd in readable:
                    try:
                        data = os.read(self._host_fd, 4096)
                    except OSError:
                        data = b""
                    if self._cut_on is not None and self._powered:
                        self._heard = (self._heard + data)[-(len(data) + len(self._cut_on)):]
                        if self._cut_on in self._heard:
                            self._cut_on = None
                            self._powered = False
                            self._wake_at = None
                            self._kill()
                            self.cut.set()
                    if self._powered:  # bytes to a board that is off are lost
                        self._pending += data
                if self._board_fd is not None and self._board_fd in readable:
                    try:
                        data = os.read(self._board_fd, 4096)
                    except OSError:
                        data = b""
                    if data:
                        self._from_board(data)
                if self._proc is not None and (self._proc.poll() is not None or self._left()):
                    self._ended()
                if self._proc is None and self._wake_at is not None and time.monotonic() >= self._wake_at:
                    self._wake_at = None
                    self._boot("run", DEEPSLEEP_RESET)
                if self._pending and self._proc is not None and self._up and self._swallow is None:
                    data, self._pending = bytes(self._pending), bytearray()
                    self._to_board(data)
                elif self._pending and self._proc is not None and self._up and self._pending.startswith(b"\r\x01"):
                    # the raw-REPL entry after a soft reset goes first; the host waits for its banner
                    self._to_board(b"\r\x01")
                    del self._pending[:2]


if __name__ == "__main__":  # a board to play with: python -m host_tests.virtual_board DIR
    with VirtualBoard(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp()) as b:
        print("virtual board at", b.port, "- flash", b.flash, "- Ctrl-C to stop")
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
