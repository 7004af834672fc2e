"""The `streetnode` command. Errors are one line on stderr and a non-zero exit code:
1 for a failed operation, 2 for a usage error, 3 to 6 as each command documents them
(streetnode.common.errors names them all)."""

import argparse
import sys

from streetnode import __version__
from streetnode.bench import docs as bench_docs
from streetnode.common import errors, mqtt, options
from streetnode.technician import bundle, deploy, flash, gateway, provision
from streetnode.field import check, cmd, logs, monitor, report, retire, serve
from streetnode.integrator import bridge
from streetnode.security import broker_config
from streetnode.ota import keys as ota_keys, release as ota_release, rollout as ota_rollout


def _demo(args):
    from streetnode.common import mpy

    script = "tools/streetnode/sim/demo_bme280.py"
    proc = mpy.run([script, str(args.hours), str(args.every_min)], heapsize=args.heap)
    return proc.returncode


def _sim(args):
    from streetnode.sim.fleet import run

    summary = run(args)
    return 1 if not summary else 0


def _bench(args):
    from streetnode.bench.bme280 import main as bench_main

    return bench_main(args)


def _bench_sensors(args):
    from streetnode.bench.sensors import main as bench_main

    return bench_main(args)


def build_parser():
    p = argparse.ArgumentParser(
        prog="streetnode",
        description="Firmware tooling for the streetnode street sensor network.",
        epilog="Run 'streetnode COMMAND --help' for a command's options and examples.",
    )
    p.add_argument("--version", action="version", version="streetnode " + __version__)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    s = sub.add_parser(
        "sim",
        help="a fleet of virtual nodes: the real firmware on the real MicroPython, simulated sensors",
        description="Runs N virtual nodes (ids sim-1 to sim-N), each the real firmware on the real "
        "MicroPython interpreter with simulated sensors in a simulated street, publishing to a broker. "
        "Without --broker it starts one on a free loopback port (mosquitto when installed, else amqtt) "
        "and prints its address. A node process that dies is started again, as a board reboots.",
        epilog="examples:\n  streetnode sim --nodes 3 --duration 60\n"
        "  streetnode sim --nodes 20 --broker 127.0.0.1:1883 --interval 5 --state-dir /tmp/fleet\n"
        "  streetnode sim --nodes 6 --broker mqtt-a.local,mqtt-b.local   # failover: tried in order\n"
        "  streetnode sim --nodes 2 --flash-size pico-w\n"
        "  streetnode sim --romfs --heap 192k --nodes 3 --duration 60   # firmware in ROM, the heap around it\n"
        "  streetnode sim --nodes 2 --tls --duration 30   # embedded broker on TLS, a CA made for the run\n"
        "  streetnode sim --nodes 3 --fault sim-2:air:frozen:at=60   # rehearse a FAIL with streetnode check\n"
        "  streetnode sim --broker localhost --tls --ca ca.pem --user sim --password-file sim-pw.txt",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("--nodes", type=int, default=3, help="how many nodes (default 3)")
    mqtt.add_broker_options(s, required=False, help_broker="publish to this broker instead of an embedded one "
                            "(the nodes use --tls/--ca and --user/--password-file too; --tls alone: the embedded "
                            "broker on TLS with a CA the sim generates)")  # fmt: skip
    s.add_argument("--interval", type=float, default=5.0, metavar="SECONDS", help="sampling interval (default 5)")
    s.add_argument("--duration", type=float, default=0, metavar="SECONDS",
                   help="stop after this long (default 0: run until stopped with Ctrl-C or SIGTERM)")
    s.add_argument("--heap", default="512k", metavar="SIZE", help="MicroPython heap per node (default 512k: the "
                   "unix port is 64-bit and each node also carries its simulated chips)")
    s.add_argument("--romfs", action="store_true",
                   help="run each node's firmware from a ROMFS image of the compiled tree (bytecode in place, as "
                   "from a board's ROM partition); --heap is then the heap around the image, as on a board "
                   "(at least 32k; the sim's nodes, with three sensors and the board's loader, start in about 160k, "
                   "one with only the BME280 in 112k)")
    s.add_argument("--fault", action="append", metavar="NODE:SENSOR:KIND[:at=S,for=S]",
                   help="switch a simulated sensor fault on in one node (repeatable; kinds: absent, eio, stuck_busy, "
                   "corrupt, hang, frozen, brownout; at= seconds after boot, for= how long, default to the end), "
                   "e.g. sim-2:air:frozen:at=60")
    s.add_argument("--set", action="append", metavar="NODE:KEY=JSON",
                   help="override a key of one node's config (repeatable; a JSON merge patch as "
                   "NODE:{...} too), e.g. sim-2:health_every=2")
    s.add_argument("--state-dir", metavar="DIR", help="each node's flash lives in DIR/<node id> (default: a temporary directory)")
    s.add_argument("--keep-state", action="store_true", help="keep the temporary state directory")
    s.add_argument("--flash-size", default="esp32-devkitc", metavar="SIZE",
                   help="each node's flash: LittleFS on a simulated block device of SIZE (bytes, NNk, NNM, or a "
                   "board: esp32-devkitc = 2M, pico-w = 848k; default esp32-devkitc), in DIR/<node id>/flash.img; "
                   "'host' runs on the state directory itself (debugging)")
    s.add_argument("--ota-key", metavar="FILE", help="the fleet's public key (fleet.pub from `streetnode keys new`): "
                   "put into each node's config as ota.pubkeys, so the nodes accept releases signed with it")
    s.set_defaults(func=_sim)

    d = sub.add_parser(
        "demo",
        help="a BME280 read by the real driver on the real MicroPython interpreter, over a simulated day",
        description="Runs the BME280 driver inside MicroPython against a simulated chip in a "
        "simulated Siegen street, and prints what it reads.",
        epilog="example: streetnode demo --hours 24 --every-min 60",
    )
    d.add_argument("--hours", type=float, default=24.0, help="simulated hours (default 24)")
    d.add_argument("--every-min", type=int, default=60, help="minutes between readings (default 60)")
    d.add_argument("--heap", default="128k", help="MicroPython heap size (default 128k; it dies in 96k)")
    d.set_defaults(func=_demo)

    b = sub.add_parser(
        "bench",
        help="benchmark the BME280 driver against its peers on the same simulated chip",
        description="Bus transactions, heap bytes and microseconds per reading for our BME280 "
        "driver and its peers, all in one run on the real MicroPython interpreter (and CPython "
        "for the CircuitPython driver).",
        epilog="example: streetnode bench --readings 200 --markdown",
    )
    bench_docs.add_readings_options(b, 200)
    b.set_defaults(func=_bench)

    bs = sub.add_parser(
        "bench-sensors",
        help="benchmark the SHT4x, BH1750, SCD4x, SPS30 and PMS5003 drivers against their peers",
        description="Bus transactions, heap and time per reading of our air-quality drivers and "
        "Adafruit's, Sensirion's and Pimoroni's, on the same simulated chips, in one run.",
        epilog="example: streetnode bench-sensors --readings 200 --markdown",
    )
    bench_docs.add_readings_options(bs, 50)
    bs.set_defaults(func=_bench_sensors)

    # The technician's commands in the order of the job, then the field crew's, then the
    # integrator's: each
    # module defines its subcommand (options, --help examples, exit codes) in register().
    for module in (ota_keys, provision, bundle, ota_release, flash, deploy, gateway, check, monitor, cmd, logs, retire,
                   report, serve, bridge, broker_config,
                   ota_rollout):
        module.register(sub)
    for parser in options.walk(p):
        if parser is not p:
            parser.set_defaults(_parser=parser)  # a UsageError prints this subcommand's usage
    return p


def main(argv=None):
    """Exit codes: 0 ok, 1 failed, 2 usage error (argparse's, and every UsageError a
    command raises, with that subcommand's usage), 3-6 per command."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # argparse would show the top-level usage: show the subcommand's own
        getattr(args, "_parser", parser).error("unrecognized arguments: %s" % " ".join(extra))
    return errors.run(args, before=options.check_broker_syntax)


if __name__ == "__main__":
    sys.exit(main())
