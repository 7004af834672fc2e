"""`streetnode broker-config`: what mosquitto needs for the whole fleet, from the register.

    streetnode broker-config --register fleet-register.csv --out broker/ \\
        --ca city-ca.pem --server-cert mqtt.pem --server-key mqtt.key

writes broker/mosquitto.passwd (0600: every node's and operator's password hash),
broker/mosquitto.acl (each node its own topics only, each operator its role's), broker/
mosquitto.conf (a snippet that uses them: listener, allow_anonymous false, password_file,
acl_file, and the TLS files when given), and broker/<operator>.password (0600) for each
operator account, generated once and kept on later runs.

A node's password hash comes from where `provision` left it: NODES/<id>/mosquitto.passwd,
else the password in NODES/<id>/config.json (NODES defaults to nodes/ beside the register);
its topic prefix from that config.json. The lines for a node are the ones provision writes
(streetnode.security.acl), so adding a node either way gives the same broker rights.
"""

import argparse
import json
import os
import secrets
import sys
from pathlib import Path

from streetnode.common.errors import EXIT_INVALID, Failure
from streetnode.common.files import write_atomic
from streetnode.security import acl

PASSWD_FILE = "mosquitto.passwd"
ACL_FILE = "mosquitto.acl"
CONF_FILE = "mosquitto.conf"
DEFAULT_PREFIX = "streetnode"


def operator_spec(text):
    """'NAME:ROLE' or 'NAME' (role readonly); argparse type for --operator."""
    name, _, role = text.partition(":")
    role = role or "readonly"
    try:
        acl.check_user(name)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e))
    if role not in acl.ROLES:
        raise argparse.ArgumentTypeError("--operator %s: role %r is not one of %s" % (text, role, ", ".join(acl.ROLES)))
    return name, role


def listen_spec(text):
    """'PORT' or 'HOST:PORT' -> (host or None, port)."""
    host, sep, port = text.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError("--listen %s: PORT or HOST:PORT, the port 1 to 65535" % text)
    return (host.strip("[]") or None) if sep else None, int(port)


def node_credentials(node_id, node_dir):
    """(password hash, prefix) of a provisioned node, from its directory; Failure when it has none."""
    prefix, password = DEFAULT_PREFIX, None
    cfg_path = node_dir / "config.json"
    if cfg_path.exists():
        try:
            m = json.loads(cfg_path.read_text(encoding="utf-8")).get("mqtt") or {}
        except (OSError, ValueError) as e:
            raise Failure("%s: cannot be read as a node's config (%s)" % (cfg_path, e), EXIT_INVALID) from None
        prefix = m.get("prefix") or DEFAULT_PREFIX
        if m.get("user") not in (None, node_id):
            raise Failure("%s: the node's MQTT user is %r, not its id %s (the ACL is by node id)"
                          % (cfg_path, m.get("user"), node_id), EXIT_INVALID)  # fmt: skip
        password = m.get("password") if m.get("user") else None
    passwd = node_dir / PASSWD_FILE
    if passwd.exists():
        for line in passwd.read_text(encoding="utf-8").splitlines():
            user, sep, digest = line.partition(":")
            if sep and user == node_id and digest:
                return digest, prefix
    if password:
        return acl.mosquitto_hash(password), prefix
    return None, prefix


def operator_password(out, name):
    """The operator's password from OUT/<name>.password, generated (192 bits) the first time."""
    path = out / ("%s.password" % name)
    if path.exists():
        pw = path.read_text(encoding="utf-8").splitlines()[:1]
        if pw and len(pw[0]) >= 12:
            return pw[0], False
        raise Failure("%s: holds no password of 12 or more characters; remove it to generate one" % path, EXIT_INVALID)
    pw = secrets.token_urlsafe(24)
    write_atomic(path, pw + "\n", 0o600)
    return pw, True


def conf_text(out, listen, tls):
    host, port = listen
    lines = [
        "# streetnode broker-config: include in mosquitto.conf (mosquitto 2)",
        "per_listener_settings false",
        "allow_anonymous false",
        "password_file %s" % (out / PASSWD_FILE),
        "acl_file %s" % (out / ACL_FILE),
        "listener %d%s" % (port, " " + host if host else ""),
    ]
    if tls:
        lines += ["cafile %s" % tls[0], "certfile %s" % tls[1], "keyfile %s" % tls[2], "tls_version tlsv1.2"]
    else:
        lines.append("# no TLS: passwords cross the network in clear (give --ca, --server-cert, --server-key)")
    return "\n".join(lines) + "\n"


def broker_config(args):
    from streetnode.technician.provision import read_register

    register = Path(args.register)
    if not register.exists():
        raise Failure("register %s does not exist (streetnode provision writes it)" % register, EXIT_INVALID)
    rows = read_register(register)
    nodes_dir = Path(args.nodes_dir) if args.nodes_dir else register.parent / "nodes"
    tls_files = (args.ca, args.server_cert, args.server_key)
    if any(tls_files) and not all(tls_files):
        raise Failure("--ca, --server-cert and --server-key go together (the broker's TLS files)", EXIT_INVALID)
    tls = tuple(str(Path(f).resolve()) for f in tls_files) if all(tls_files) else None
    for f in tls or ():
        if not Path(f).is_file():
            raise Failure("%s: no such file" % f, EXIT_INVALID)
    listen = args.listen or (None, 8883 if tls else 1883)

    passwd, blocks, missing, prefixes = [], [], [], []
    ids = [(r.get("id") or "").strip() for r in rows if (r.get("id") or "").strip()]
    operators = args.operator or list(acl.DEFAULT_OPERATORS)
    names = [n for n, _ in operators]
    clash = sorted({n for n in names if names.count(n) > 1} | (set(names) & set(ids)))
    if clash:
        raise Failure("operator name(s) %s used twice or also a node id" % ", ".join(clash), EXIT_INVALID)
    for node_id in ids:
        digest, prefix = node_credentials(node_id, nodes_dir / node_id)
        if digest is None:
            missing.append(node_id)
            continue
        passwd.append(acl.passwd_line(node_id, digest))
        blocks.append(acl.node_acl(node_id, prefix))
        if prefix not in prefixes:
            prefixes.append(prefix)
    if missing:
        raise Failure("no MQTT credentials for %s in %s (provisioned --anonymous, or their directories are elsewhere: "
                      "--nodes-dir DIR)" % (", ".join(missing), nodes_dir), EXIT_INVALID)  # fmt: skip

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    out = out.resolve()
    made = []
    for name, role in operators:
        pw, new = operator_password(out, name)
        if new:
            made.append(name)
        passwd.append(acl.passwd_line(name, acl.mosquitto_hash(pw)))
        blocks.append("# operator, role %s: %s\n%s" % (role, acl.ROLES[role],
                      acl.operator_acl(name, role, prefixes or [DEFAULT_PREFIX])))  # fmt: skip
    header = "# streetnode broker-config from %s: %d node(s), %d operator(s)\n" % (register, len(passwd) - len(operators),
                                                                              len(operators))  # fmt: skip
    write_atomic(out / PASSWD_FILE, "".join(passwd), 0o600)
    write_atomic(out / ACL_FILE, header + "\n".join(blocks), 0o644)
    write_atomic(out / CONF_FILE, conf_text(out, listen, tls), 0o644)
    print("%d node(s) and %d operator(s) (%s) in %s/: %s, %s, %s" % (
        len(passwd) - len(operators), len(operators), ", ".join("%s=%s" % o for o in operators), out, PASSWD_FILE,
        ACL_FILE, CONF_FILE))  # fmt: skip
    if made:
        print("new operator passwords (0600, use as --password-file): %s" % ", ".join(
            str(out / ("%s.password" % n)) for n in made))  # fmt: skip
    if not tls:
        print("warning: no TLS in %s: passwords would cross the network in clear (--ca, --server-cert, --server-key)"
              % (out / CONF_FILE), file=sys.stderr)  # fmt: skip
    print("next: 'include_dir' or copy %s into mosquitto's config, then reload mosquitto" % (out / CONF_FILE))
    return 0


HELP_EPILOG = """\
examples:
  streetnode broker-config --register fleet-register.csv --out broker \\
      --ca city-ca.pem --server-cert mqtt.pem --server-key mqtt.key
  streetnode broker-config --register fleet-register.csv --out broker --operator monitor \\
      --operator crew:crew --operator bridge:bridge --operator ota:ota --listen 127.0.0.1:1883

roles (--operator NAME[:ROLE], default readonly; without --operator: monitor, bridge, crew, ota):
  readonly  monitor, report, check, deploy --wait-online: read <prefix>/#
  bridge    streetnode bridge: read <prefix>/# and homeassistant/status, publish <prefix>/_bridge/# and homeassistant/#
  crew      commands to nodes (serve): read <prefix>/#, publish <prefix>/+/cmd
  ota       ota push and status: read <prefix>/#, publish <prefix>/+/ota/#

a node (user = its id) publishes only to its own status, data, health, cmd/result, ota/status and
subscribes only to its own cmd and ota/# topics.

exit codes: 0 written   1 failed (I/O)   2 usage error   4 invalid: no register, a node without credentials
"""


def register(sub):
    p = sub.add_parser(
        "broker-config",
        help="mosquitto's password file, ACL and config snippet for the whole fleet, from the register",
        description="Writes DIR/mosquitto.passwd, DIR/mosquitto.acl and DIR/mosquitto.conf for every node "
        "in the fleet register (its credentials from its provisioned directory) and the operator accounts, "
        "whose passwords it generates into DIR/<name>.password (0600).",
        epilog=HELP_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--register", required=True, metavar="FILE", help="the fleet register (CSV) provision writes")
    p.add_argument("--out", required=True, metavar="DIR", help="where the broker's files go")
    p.add_argument("--nodes-dir", metavar="DIR", help="the nodes' directories (default: nodes/ beside the register)")
    p.add_argument("--operator", action="append", type=operator_spec, metavar="NAME[:ROLE]",
                   help="an operator account (repeat; roles: %s)" % ", ".join(acl.ROLES))
    p.add_argument("--listen", type=listen_spec, metavar="[HOST:]PORT",
                   help="the broker's listener (default 8883 with TLS, else 1883, all addresses)")
    t = p.add_argument_group("the broker's TLS (all three)")
    t.add_argument("--ca", metavar="FILE", help="the CA certificate (PEM) that signed the broker's certificate")
    t.add_argument("--server-cert", metavar="FILE", help="the broker's certificate (PEM)")
    t.add_argument("--server-key", metavar="FILE", help="the broker's private key (PEM)")
    p.set_defaults(func=broker_config)
    return p
