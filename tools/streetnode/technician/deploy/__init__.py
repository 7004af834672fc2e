"""`streetnode deploy`: put a bundle and a node's config on a board over USB, safely.

    streetnode deploy --port /dev/ttyUSB0 --config lamp-0042.json [--bundle DIR | --target T]
                      [--wait-online [--broker HOST[:PORT] --tls --ca FILE --user U ...]] [--no-reset]

The board keeps two firmware slots, a/ and b/, and a pointer file `slot` naming the active
one (see board/boot.py). A deploy writes only the inactive slot: files the running version
already has are copied on the board itself, only changed files travel over the cable; then
every file of the slot is hashed on the board and compared with the manifest, and only then
is the pointer replaced (written to slot.tmp, renamed over slot). A cable pulled at any
moment leaves a pointer to a complete slot, so the board boots the previous version (or the
new one, once the rename is done). The config goes to data/config.json the same way
(temp name, sha256 checked on the board, rename); data/ (outbox, state) is never touched.

The parts: board_code (what runs on the board, as text), serial_board (the connection),
plan (what to copy), progress (the bar), online (--wait-online on common.mqtt), run (the
deploy in order). This module is the command line.

mpremote is used through its Python API (mpremote.transport_serial.SerialTransport), not as
one `mpremote` process per step: one connection for the whole deploy instead of a
reconnect and raw-REPL entry per file, a progress callback per chunk for the progress bar,
and TransportError exceptions that become one-line messages. It is the same code the
`mpremote` command runs (raw REPL, raw paste, fs_writefile), pinned with it.
"""

import argparse

from streetnode.common.errors import EXIT_FAILED, EXIT_INPUT, EXIT_NO_BOARD, EXIT_OFFLINE, EXIT_OK, EXIT_VERIFY  # noqa: F401
from streetnode.common.mqtt import add_broker_options
from streetnode.technician import bundle as bundlemod
from streetnode.technician.deploy.serial_board import Board  # noqa: F401
from streetnode.technician.deploy.online import OnlineWatcher  # noqa: F401
from streetnode.technician.deploy.plan import Plan  # noqa: F401
from streetnode.technician.deploy.progress import Progress  # noqa: F401
from streetnode.technician.deploy.run import deploy, get_bundle, read_config  # noqa: F401


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
        "  streetnode deploy --port /dev/ttyUSB0 --config lamp-0042.json --wait-online --broker 10.0.0.5:1883\n"
        "  streetnode deploy --port /dev/ttyUSB0 --config lamp-0042.json --wait-online --broker mqtt.siegen.de \\\n"
        "      --tls --ca city-ca.pem --user crew --password-file ~/.crew-pw\n\n"
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
    add_broker_options(d, required=False, help_broker="the broker --wait-online watches (default: the config's "
                       "mqtt settings, the node's own user and CA; each option given replaces its part)")
    d.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS", help="how long --wait-online waits (default 60)")
    d.add_argument("--connect-timeout", type=float, default=5.0, metavar="SECONDS",
                   help="how long to wait for the board's REPL to answer (default 5)")
    d.add_argument("--no-reset", action="store_true", help="leave the board at its REPL; the new version runs at the next reset")
    d.set_defaults(func=deploy)

