# The node's entry point inside a firmware slot (imported by the board's main.py):
# the node's data directory is data/ next to the slots, so it survives firmware changes.
import sys

from firmware.node import main

DATA_DIR = "data"

rc = main(DATA_DIR)
# On a board main() resets or deep-sleeps the chip itself; where that is unavailable
# (a unix-port board), its exit code says what the board should do next.
if rc:
    sys.exit(rc)
