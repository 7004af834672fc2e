"""The serial board: one connection to a MicroPython board through mpremote's transport
(its Python API, not one `mpremote` process per step: one raw-REPL entry for the whole
deploy, a progress callback per chunk, TransportError as one-line Failures)."""

import contextlib
import io
import json
import os
import time

from streetnode.common.errors import EXIT_NO_BOARD, Failure
from streetnode.technician.deploy import board_code

CHUNK = 512  # bytes per raw-REPL write: a few KB of RAM on the board for the repr'd chunk


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
            raise Failure("no board at %s: the port does not exist (is the USB cable plugged in?)" % self.port, EXIT_NO_BOARD)
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
                    raise Failure("no board at %s: %s" % (self.port, e), EXIT_NO_BOARD)
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
            raise Failure("no MicroPython board answers at %s (%s)" % (self.port, e), EXIT_NO_BOARD)
        self.in_raw = True
        self.exec(board_code.HELPERS)

    def exec(self, code):
        from mpremote.transport import TransportError, TransportExecError

        try:
            return self.t.exec(code).decode("utf-8", "replace")
        except TransportExecError as e:
            last = (e.error_output.strip().splitlines() or ["?"])[-1]
            raise Failure("the board refused a step: %s" % last)
        except (TransportError, OSError) as e:
            raise Failure("lost the board at %s: %s" % (self.port, e))

    def write_file(self, path, data, progress=None):
        from mpremote.transport import TransportError

        try:
            self.t.fs_writefile(path, data, chunk_size=CHUNK, progress_callback=progress)
        except (TransportError, OSError) as e:
            raise Failure("lost the board while writing %s: %s" % (path, e))

    def survey(self, extra=()):
        """Both slots, the loaders and the `extra` files hashed, the pointer, the free flash.
        (Only the data files deploy installs are among `extra`: the outbox may be large.)"""
        out = self.exec(board_code.SURVEY % list(extra))
        try:
            return json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise Failure("the board answered the survey with %r" % out[-200:])

    def identify(self):
        """{"platform", "implementation", "machine"} as the board reports them."""
        out = self.exec(board_code.IDENTIFY)
        try:
            return json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise Failure("the board did not say what it is (answered %r)" % out[-200:])

    def hashes(self, paths):
        return json.loads(self.exec(board_code.hashes(paths)).strip().splitlines()[-1])

    def reset(self):
        """machine.reset(), without waiting for an answer (the board is gone at once)."""
        from mpremote.transport import TransportError

        try:
            self.t.exec_raw_no_follow(board_code.RESET)
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
