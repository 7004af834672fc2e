# A node on the unix port (or CPython): the firmware as it runs on a board, with the
# directory standing in for the board's flash.
#   micropython firmware/main_unix.py STATE_DIR [RESET_CAUSE]
# Exit codes: 0 stopped, 3 reboot requested, 4 deep sleep (see firmware/node.py).

import sys

from firmware.node import main

if __name__ == "__main__":
    if len(sys.argv) < 2:
        print("usage: main_unix.py STATE_DIR [RESET_CAUSE]")
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "power_on"))
