# The node's entry point inside a firmware slot (imported by the board's main.py):
# the node's data directory is data/ next to the slots, so it survives firmware changes.
import sys

from firmware.node import main

DATA_DIR = "data"

# The unix port boots through the same loader (firmware/main_unix.py); it hands over the
# reset cause and its simulated flash's hook as the module `streetnode_board`.
try:
    import streetnode_board as _board
except ImportError:
    _board = None

rc = main(DATA_DIR, getattr(_board, "cause", None), getattr(_board, "after_boot", None))
# On a board main() resets or deep-sleeps the chip itself; where that is unavailable
# (a unix-port board), its exit code says what the board should do next.
if rc:
    sys.exit(rc)
