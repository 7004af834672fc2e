"""The `streetnode ota` subcommands: push (a staged rollout) and status (the fleet's versions)."""

import argparse

from streetnode.common.mqtt import add_broker_options


def _push(args):
    from streetnode.ota.push import run

    return run(args)


def _status(args):
    from streetnode.ota.status import run

    return run(args)


def register(sub):
    o = sub.add_parser("ota", help="update nodes over the air: staged rollout of a signed release, fleet status",
                       description="Over-the-air updates over the nodes' own MQTT link (docs/technician.md).")
    osub = o.add_subparsers(dest="ota_command", required=True)
    p = osub.add_parser(
        "push",
        help="roll a signed release out to nodes: canaries first, then batches, halting on failures",
        description="Checks the release (files and signature) before sending anything, then updates the "
        "canary nodes and waits for them to confirm, then the rest in batches. Stops after --max-failures "
        "rejections or rollbacks and leaves the nodes not yet started on untouched.",
        epilog="examples:\n"
        "  streetnode ota push rel-0.2.0 --pub keys/fleet.pub --broker 127.0.0.1:1883 --all --canary 1 --batch 10\n"
        "  streetnode ota push rel-0.2.0 --pub keys/fleet.pub --broker mqtt.siegen.de --tls --ca ca.pem --user ota \\\n"
        "      --password-file ota-pw --nodes lamp-0042,lamp-0043 --json\n\n"
        "exit codes:\n"
        "  0  every targeted node confirmed the new version\n"
        "  1  a node rejected it, rolled back, or did not confirm within --timeout (halted after --max-failures)\n"
        "  2  usage error\n"
        "  3  the release does not verify (damaged file, bad signature): nothing sent",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("release", metavar="RELEASE_DIR", help="a release made by `streetnode release`")
    add_broker_options(p)
    p.add_argument("--pub", action="append", metavar="FILE",
                   help="the fleet's public key (fleet.pub) the release must be signed with; twice while the key "
                   "is rotated (default: RELEASE_DIR/fleet.pub)")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--nodes", metavar="ID,ID", help="the nodes to update, in this order")
    who.add_argument("--all", action="store_true", help="every node with a retained status on the broker")
    p.add_argument("--canary", type=int, default=1, metavar="N", help="nodes updated first, alone (default 1)")
    p.add_argument("--batch", type=int, default=10, metavar="M", help="nodes updated at once after the canaries (default 10)")
    p.add_argument("--max-failures", type=int, default=1, metavar="K", help="stop after this many rejections or rollbacks (default 1)")
    p.add_argument("--timeout", type=float, default=900, metavar="SECONDS",
                   help="per node, from the offer to its confirmation (default 900)")
    p.add_argument("--prefix", default="streetnode", help="the fleet's topic prefix (default streetnode)")
    p.add_argument("--json", action="store_true", help="the outcome per node as JSON")
    p.set_defaults(func=_push)
    s = osub.add_parser("status", help="the fleet's running versions, slots and update states",
                        epilog="example: streetnode ota status --broker 127.0.0.1:1883 --json")
    add_broker_options(s)
    s.add_argument("--prefix", default="streetnode", help="the fleet's topic prefix (default streetnode)")
    s.add_argument("--wait", type=float, default=2.0, metavar="SECONDS", help="how long to collect retained states (default 2)")
    s.add_argument("--json", action="store_true", help="as JSON")
    s.set_defaults(func=_status)
