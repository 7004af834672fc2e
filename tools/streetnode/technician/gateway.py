"""`streetnode gateway`: the node firmware on a Raspberry Pi, on CPython, its sensors on the
Pi's header through Adafruit Blinka (board "pi": hal/blinka.py's BlinkaPlatform), run by
systemd.

    streetnode gateway run [--state-dir /var/lib/streetnode]    what the service runs
    python -m streetnode.technician.gateway run ...                         the same, as the unit starts it
                                                                 (only this module and the
                                                                 device code are imported)
    streetnode gateway install --config nodes/gw-1/config.json   config + unit into place
    streetnode gateway unit                                      print the unit file

The state directory is the gateway's "flash": config.json (+ the CA file it names), the
outbox, state.json. It is systemd's StateDirectory=streetnode, owned by the service's
own user. The node process exits 3 when it wants a reboot (a remote "reboot" command);
systemd starts it again (Restart=always), as a board restarts after machine.reset().
"""

import argparse
import grp
import os
import pwd
import shlex
import subprocess
import sys
from pathlib import Path

from streetnode.common import errors
from streetnode.common.errors import EXIT_NO_CONFIG, EXIT_NOT_ROOT, EXIT_USAGE, Failure  # noqa: F401
from streetnode.common.files import write_atomic
from streetnode.common.paths import device_code

SERVICE = "streetnode-gateway.service"
STATE_DIR = "/var/lib/streetnode"
UNIT_DIR = "etc/systemd/system"
DEFAULT_USER = "streetnode"
# Where the docs (docs/technician.md) put streetnode on a Pi: a venv outside any home
# directory. A staging root (an SD card) gets this path, not the laptop's venv (--python).
PI_PYTHON = "/opt/streetnode/bin/python"
HARDWARE_GROUPS = ("i2c", "spi", "gpio", "dialout")  # Raspberry Pi OS: /dev/i2c-1, spidev, gpiochip, serial0
EXIT_REBOOT = 3  # firmware/node.py EXIT_REBOOT
_BOOT_ID = "/proc/sys/kernel/random/boot_id"
_BOOT_ID_FILE = "gateway.boot_id"
_MCU_BOARDS = ("esp32-devkitc", "pico-w")

UNIT_TEMPLATE = """\
# streetnode gateway: the node firmware on CPython with Blinka (board "pi").
# Written by `streetnode gateway install`; the node's directory is /var/lib/streetnode.
[Unit]
Description=streetnode gateway node (street sensors over MQTT)
Wants=network-online.target
After=network-online.target time-sync.target
# A node on a mast never gives up: no start rate limit.
StartLimitIntervalSec=0

[Service]
Type=simple
User={user}
Group={user}
# -I: isolated (neither the working directory nor PYTHON* variables decide what is
# imported: a stray board.py must not replace Blinka's); -u: log lines reach the journal.
ExecStart={python} -I -u -m streetnode.technician.gateway run --state-dir {state_dir}
# /var/lib/streetnode, created and owned by the service user, kept across restarts.
StateDirectory=streetnode
StateDirectoryMode=0700
WorkingDirectory={state_dir}
Restart=always
RestartSec=5
# Exit 3 = the node asked for a reboot (remote "reboot" command): a restart, not a failure.
SuccessExitStatus={reboot}
RestartForceExitStatus={reboot}
TimeoutStopSec=15
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=read-only
PrivateTmp=yes

[Install]
WantedBy=multi-user.target
"""


def unit_text(python=None, user=DEFAULT_USER, state_dir=STATE_DIR):
    """The systemd unit for a gateway whose streetnode is installed for `python`."""
    return UNIT_TEMPLATE.format(python=python or sys.executable, user=user, state_dir=state_dir, reboot=EXIT_REBOOT)


def exec_start(unit):
    """The argv of a unit's ExecStart= line."""
    for line in unit.splitlines():
        if line.startswith("ExecStart="):
            return shlex.split(line[len("ExecStart=") :])
    raise ValueError("no ExecStart= line")


# -- run ----------------------------------------------------------------------------------------


def reset_cause(state_dir, boot_id_path=_BOOT_ID):
    """The reset cause: "power_on" on the first start after the Pi booted, "soft" when
    systemd restarts the service within one boot (after a reboot request or a crash):
    told apart by the kernel's boot id, remembered in the state directory."""
    try:
        with open(boot_id_path) as f:
            boot_id = f.read().strip()
    except OSError:
        return "power_on"
    mark = Path(state_dir) / _BOOT_ID_FILE
    try:
        previous = mark.read_text().strip()
    except OSError:
        previous = None
    if previous == boot_id:
        return "soft"
    try:
        write_atomic(mark, boot_id + "\n", 0o600)
    except OSError:
        pass
    return "power_on"


def run(args):
    device_code()
    from firmware import config as fwconfig
    from firmware.node import main

    state = args.state_dir.rstrip("/") or "/"
    if not os.path.isdir(state):
        raise Failure("state directory %s does not exist: install a config with streetnode gateway install" % state,
                      EXIT_NO_CONFIG)  # fmt: skip
    try:
        cfg, _ = fwconfig.load(state)  # the node itself falls back to config.good.json the same way
    except fwconfig.ConfigError as e:
        raise Failure("no usable config in %s (%s)" % (state, e), EXIT_NO_CONFIG) from None
    if cfg["board"] in _MCU_BOARDS:
        raise Failure("the config in %s is for board %s; a gateway runs board pi (provision it with --board pi)"
                      % (state, cfg["board"]), EXIT_NO_CONFIG)  # fmt: skip
    return main(state, reset_cause(state, args.boot_id_file))


# -- install ------------------------------------------------------------------------------------


def _read_config(path):
    device_code()
    from firmware import config as fwconfig

    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise Failure("--config %s: cannot be read (%s)" % (path, e.strerror or e), EXIT_NO_CONFIG) from None
    try:
        cfg = fwconfig.validate(fwconfig.parse_json(data))
    except fwconfig.ConfigError as e:
        raise Failure("--config %s: %s" % (path, e), EXIT_NO_CONFIG) from None
    if cfg["board"] != "pi":
        raise Failure("--config %s is for board %s; a gateway needs board pi (provision it with --board pi)"
                      % (path, cfg["board"]), EXIT_NO_CONFIG)  # fmt: skip
    return data, cfg


def _group_exists(name):
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


def _user_exists(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def setup_commands(user, groups=None, here=True):
    """The commands that create the service user and start the service (argv lists).
    here False: for another machine (a staging root for a Pi): the user and groups of this
    machine say nothing about it, so the user is created and all the Pi's groups named."""
    cmds = []
    if not here or not _user_exists(user):
        cmds.append(["useradd", "--system", "--user-group", "--home-dir", STATE_DIR, "--no-create-home",
                     "--shell", "/usr/sbin/nologin", user])  # fmt: skip
    groups = [g for g in (HARDWARE_GROUPS if groups is None else groups) if not here or _group_exists(g)]
    if groups:
        cmds.append(["usermod", "--append", "--groups", ",".join(groups), user])
    cmds += [["systemctl", "daemon-reload"], ["systemctl", "enable", SERVICE], ["systemctl", "restart", SERVICE]]
    return cmds


def install(args):
    data, cfg = _read_config(args.config)
    src_dir = Path(args.config).resolve().parent
    ca_name = cfg["mqtt"]["ca"]
    ca = None
    if ca_name:
        try:
            ca = (src_dir / ca_name).read_bytes()
        except OSError as e:
            raise Failure("the config names CA file %s, but %s cannot be read (%s)" % (ca_name, src_dir / ca_name,
                          e.strerror or e), EXIT_NO_CONFIG) from None  # fmt: skip
    if (args.root is None) == (not args.system):
        raise Failure("say where to install: --root DIR (a staging tree, e.g. a Pi's SD card) or --system (this "
                      "machine's /etc/systemd/system and %s, as root)" % STATE_DIR, EXIT_USAGE)  # fmt: skip
    here = bool(args.system)
    root = Path("/" if here else args.root)
    if args.enable and (not here or os.geteuid() != 0):
        raise Failure("--enable runs useradd and systemctl: it needs root (sudo) and --system", EXIT_NOT_ROOT)
    python = args.python or (sys.executable if here else PI_PYTHON)
    state = root / STATE_DIR.lstrip("/")
    units = root / UNIT_DIR
    try:
        state.mkdir(parents=True, exist_ok=True, mode=0o700)
        units.mkdir(parents=True, exist_ok=True)
        if ca is not None:
            write_atomic(state / ca_name, ca, 0o644)
        write_atomic(state / "config.json", data, 0o600)
        write_atomic(units / SERVICE, unit_text(python, args.user), 0o644)
    except PermissionError as e:
        raise Failure("cannot write %s (%s): run with sudo, or give --root DIR" % (e.filename, e.strerror)) from None
    if not here:
        print("staged for a Pi: ExecStart runs %s (--python to change it); install streetnode there with "
              "`python3 -m venv /opt/streetnode && /opt/streetnode/bin/pip install streetnode[gateway]`" % python)
    print("installed %s: config %s%s, unit %s" % (cfg["node_id"], state / "config.json",
                                                 " and %s" % (state / ca_name) if ca is not None else "",
                                                 units / SERVICE))  # fmt: skip
    if here and python.startswith(("/home/", "/root/")):
        print("note: %s is under a home directory, which the service user may not be able to read; a venv in "
              "/opt/streetnode is the safe place" % python)  # fmt: skip
    cmds = setup_commands(args.user, here=here)
    if not args.enable:
        print("to start it (as root%s):" % ("" if here else ", on the Pi"))
        for c in cmds:
            print("  " + shlex.join(c))
        print("then watch it: journalctl -u %s -f" % SERVICE)
        return 0
    for c in cmds:
        print("+ " + shlex.join(c))
        p = subprocess.run(c, capture_output=True, text=True)
        if p.returncode != 0:
            why = (p.stderr or p.stdout).strip().splitlines()
            raise Failure("%s failed (exit %d%s)" % (shlex.join(c), p.returncode, ": " + why[-1] if why else ""))
    print("started; watch it: journalctl -u %s -f" % SERVICE)
    return 0


def print_unit(args):
    sys.stdout.write(unit_text(args.python, args.user))
    return 0


EPILOG = """\
examples:
  # on the Pi, in a venv outside any home directory:
  sudo python3 -m venv /opt/streetnode
  sudo /opt/streetnode/bin/pip install ./streetnode     # (the repository, or a wheel built from it)
  streetnode provision --id gw-rathaus --board pi --broker mqtt.siegen.de --ca city-ca.pem --preset air
  sudo /opt/streetnode/bin/streetnode gateway install --config nodes/gw-rathaus/config.json --system --enable

  # or, on a laptop, write everything under a staging root (a Pi's SD card) with the Pi's
  # paths (ExecStart /opt/streetnode/bin/python; --python to change it) and print the commands
  streetnode gateway install --config nodes/gw-rathaus/config.json --root /tmp/pi-image

  streetnode gateway run --state-dir /var/lib/streetnode   # what the service runs
  streetnode gateway unit > streetnode-gateway.service

exit codes:
  run:     0 stopped, 3 the node asked for a reboot (systemd restarts it), 4 no usable config,
           1 any other failure (systemd restarts it)
  install: 0 installed, 1 failed (a command or a write), 2 usage (neither --root nor --system),
           4 invalid config or not board pi,
           5 --enable without root
"""


def register(sub):
    p = sub.add_parser(
        "gateway",
        help="run the node on a Raspberry Pi (CPython + Blinka) as a systemd service",
        description="A Raspberry Pi gateway runs the same node firmware on CPython, its sensors on the Pi's "
        "header through Adafruit Blinka (board pi). 'install' puts a provisioned config into "
        "/var/lib/streetnode and the systemd unit into /etc/systemd/system; 'run' is what the unit starts.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_actions(p)
    return p


def _add_actions(p):
    gs = p.add_subparsers(dest="gateway_command", metavar="ACTION")
    gs.required = True
    r = gs.add_parser("run", help="run the node from a state directory (what the service runs)", epilog=EPILOG,
                      formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    r.add_argument("--state-dir", default=STATE_DIR, metavar="DIR",
                   help="the node's directory (default %s)" % STATE_DIR)  # fmt: skip
    r.add_argument("--boot-id-file", default=_BOOT_ID, help=argparse.SUPPRESS)
    r.set_defaults(func=run)
    i = gs.add_parser("install", help="install a config and the systemd unit", epilog=EPILOG,
                      formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    i.add_argument("--config", required=True, metavar="FILE", help="the node's config.json (from streetnode provision)")
    where = i.add_mutually_exclusive_group()
    where.add_argument("--root", metavar="DIR", help="stage under DIR for a Pi (an SD card's root): the Pi's paths "
                       "(--python default %s) and groups (%s)" % (PI_PYTHON, ", ".join(HARDWARE_GROUPS)))
    where.add_argument("--system", action="store_true", help="install into this machine: /etc/systemd/system and "
                       "%s (root)" % STATE_DIR)
    i.add_argument("--user", default=DEFAULT_USER, help="the service's own user (default %s)" % DEFAULT_USER)
    i.add_argument("--python", metavar="PATH", help="the Python with streetnode installed (default: with --system "
                   "this one, %s; with --root %s)" % (sys.executable, PI_PYTHON))  # fmt: skip
    i.add_argument("--enable", action="store_true", help="with --system: also create the user and enable and start "
                   "the service (root)")
    i.set_defaults(func=install)
    u = gs.add_parser("unit", help="print the systemd unit file", epilog=EPILOG,
                      formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    u.add_argument("--user", default=DEFAULT_USER)
    u.add_argument("--python", metavar="PATH")
    u.set_defaults(func=print_unit)


def main(argv=None):
    """`python -m streetnode.technician.gateway ACTION ...`: what the systemd unit starts. The same
    actions as `streetnode gateway`, without importing the other subcommands (and their
    host-only dependencies) into a service that runs for months."""
    parser = argparse.ArgumentParser(prog="python -m streetnode.technician.gateway", description="The Raspberry Pi gateway "
                                     "(see: streetnode gateway --help).", epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    _add_actions(parser)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    args.command = "gateway"
    return errors.run(args)  # one line, as cli.main does; systemd restarts the service


if __name__ == "__main__":
    sys.exit(main())
