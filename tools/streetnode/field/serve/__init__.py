"""`streetnode serve`: the crew's web page, for a phone in the street.

A fleet page (every node, its alerts as `monitor` raises them, problem nodes first), a node
page (live readings, the last hour, health, the commissioning check of `streetnode check`
run from the page, identify), served by the tool itself: no CDN, nothing from the internet.

Starlette + uvicorn: a small, well-kept ASGI pair (Starlette needs only anyio; uvicorn's
h11 is pure Python, so a Pi gateway runs it as it is) whose async streaming responses
carry Server-Sent Events. SSE rather than WebSockets: the updates go one way, to the
phone; EventSource reconnects by itself after a tunnel or a dead spot, it is plain HTTP
through any proxy, and the few commands are ordinary POSTs with the session cookie.

Exit codes: 0 stopped (Ctrl-C); 1 the broker could not be used; 2 usage error.
"""

import argparse
import getpass
import ipaddress
import sys

from streetnode.common import mqtt
from streetnode.common.errors import EXIT_USAGE, Failure


def parse_listen(text):
    host, _, port = (text or "").rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise Failure("--listen must be HOST:PORT, not %r" % text, EXIT_USAGE)
    return host, int(port)


def is_loopback(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_register(path):
    """node id -> the register's public columns (never a secret column a city may add)."""
    from streetnode.technician.provision import read_register as read

    out = {}
    for row in read(path):
        nid = (row.get("id") or "").strip().lower()
        if nid:
            out[nid] = {k: (row.get(k) or "").strip() for k in ("site", "board", "sensors", "lat", "lon", "firmware")}
    return out


def set_password(path, stream=sys.stdin):
    from streetnode.field.serve import auth

    if stream.isatty():
        pw = getpass.getpass("crew password: ")
        if getpass.getpass("again: ") != pw:
            raise Failure("the two passwords differ", EXIT_USAGE)
    else:
        pw = stream.readline().rstrip("\r\n")
    try:
        auth.write_hash_file(path, pw)
    except ValueError as e:
        raise Failure(str(e), EXIT_USAGE) from None
    print("crew password hash written to %s (mode 0600); start the page with --crew-password-file %s" % (path, path))
    return 0


def main(args):
    if args.set_crew_password:
        if not args.crew_password_file:
            raise Failure("--set-crew-password needs --crew-password-file FILE (where the hash goes)", EXIT_USAGE)
        return set_password(args.crew_password_file)
    import uvicorn

    from streetnode.field import check
    from streetnode.field.monitor import fleet_options
    from streetnode.field.serve import app, auth, hub

    try:
        opts = mqtt.BrokerOptions.from_args(args)
        host, port = parse_listen(args.listen)
        check.validate(args.check_readings, args.check_timeout)
        stored = auth.read_hash_file(args.crew_password_file) if args.crew_password_file else None
        register = read_register(args.register) if args.register else {}
        fleet_opts = fleet_options(args)
    except ValueError as e:
        raise Failure(str(e), EXIT_USAGE) from None
    loopback = is_loopback(host)
    if not loopback and stored is None:
        raise Failure("--listen %s is reachable from the network: give --crew-password-file (reading the fleet "
                      "is open only on a loopback listener)" % args.listen, EXIT_USAGE)  # fmt: skip
    if bool(args.tls_cert) != bool(args.tls_key):
        raise Failure("--tls-cert and --tls-key go together", EXIT_USAGE)
    prefix = args.prefix.rstrip("/")
    h = hub.Hub(opts, prefix, fleet_opts, {
        "timeout": args.check_timeout, "readings": args.check_readings, "stuck_s": args.check_stuck_s,
        "expect_fw": args.expect_fw, "min_rssi": args.min_rssi, "max_skew_s": args.max_clock_skew}, register)  # fmt: skip
    h.start()  # BrokerError: one line, exit 1
    a = app.build(h, auth.Auth(stored, idle_s=args.session_minutes * 60.0), open_reading=loopback,
                  secure_cookie=bool(args.tls_cert))  # fmt: skip
    scheme = "https" if args.tls_cert else "http"
    print("streetnode serve: %s://%s:%d/ (fleet under %s/ on %s; reading %s, commands %s)" % (
        scheme, "[%s]" % host if ":" in host else host, port, prefix, opts.address,
        "open (loopback listener)" if loopback else "after sign-in",
        "after sign-in" if stored else "off (no --crew-password-file)"), flush=True)  # fmt: skip
    if not loopback and not args.tls_cert:
        print("warning: the crew password crosses the network in clear: give --tls-cert/--tls-key", file=sys.stderr)
    try:
        server = uvicorn.Server(uvicorn.Config(a, host=host, port=port, log_level="warning", access_log=False,
                                               timeout_graceful_shutdown=3, ssl_certfile=args.tls_cert,
                                               ssl_keyfile=args.tls_key))  # fmt: skip
        a.page.stopping = lambda: server.should_exit
        server.run()
    finally:
        h.close()
    return 0


EPILOG = """examples:
  streetnode serve --set-crew-password --crew-password-file ~/.crew-pw   # once: asks for it, stores its hash
  streetnode serve --broker 127.0.0.1:1883 --crew-password-file ~/.crew-pw --register fleet-register.csv
  streetnode serve --broker mqtt.siegen.de:8883 --ca ca.pem --user crew --password-file ~/.mqtt-pw \\
      --listen 0.0.0.0:8443 --tls-cert page.pem --tls-key page.key --crew-password-file ~/.crew-pw

Reading the fleet is open on a loopback listener (the default 127.0.0.1:8080; reach it from a
phone through an SSH tunnel or a reverse proxy); on any other address it needs the crew
password too. Sending a command (identify, the check's health requests) always needs it.
Wrong passwords block the address for 1 s, 2 s, 4 s, ... (at most 60 s); a session ends after
--session-minutes without use and 12 hours after the sign-in.
"""


def register(sub):
    from streetnode.field import check
    from streetnode.field.monitor import add_alert_options

    p = sub.add_parser(
        "serve",
        help="the crew's web page for a phone: fleet, node readings, commissioning check, identify",
        description="Serves a small web page (no CDN, all assets from this tool) with the fleet and its "
        "alerts, each node's live readings, last hour and health, the commissioning check and identify.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    mqtt.add_broker_options(p, required=False, help_broker="the fleet's MQTT broker (required)")
    p.add_argument("--prefix", default="streetnode", help="topic prefix (default streetnode)")
    p.add_argument("--listen", default="127.0.0.1:8080", metavar="HOST:PORT", help="where the page listens (default 127.0.0.1:8080)")
    p.add_argument("--register", metavar="FILE", help="the fleet register (CSV): sites to search by")
    p.add_argument("--crew-password-file", metavar="FILE", help="the crew password's hash (see --set-crew-password)")
    p.add_argument("--set-crew-password", action="store_true",
                   help="ask for a crew password (or read a line from stdin), write its hash to --crew-password-file, exit")  # fmt: skip
    p.add_argument("--session-minutes", type=float, default=30.0, metavar="MIN", help="a session ends after this long unused (default 30)")
    p.add_argument("--tls-cert", metavar="FILE", help="serve HTTPS with this certificate (PEM)")
    p.add_argument("--tls-key", metavar="FILE", help="... and its private key")
    g = p.add_argument_group("the check run from the page (as streetnode check's options)")
    g.add_argument("--check-timeout", type=float, default=check.DEFAULT_TIMEOUT_S, metavar="S", help="default %(default)s")
    g.add_argument("--check-readings", type=int, default=check.DEFAULT_READINGS, metavar="N", help="default %(default)s")
    g.add_argument("--check-stuck-s", type=float, default=check.DEFAULT_STUCK_S, metavar="S", help="default %(default)s")
    g.add_argument("--expect-fw", metavar="VERSION", help="default: this checkout's firmware version")
    g.add_argument("--min-rssi", type=int, default=check.DEFAULT_MIN_RSSI, metavar="DBM", help="default %(default)s")
    g.add_argument("--max-clock-skew", type=float, default=check.DEFAULT_MAX_SKEW_S, metavar="S", help="default %(default)s")
    add_alert_options(p.add_argument_group("alerts (as streetnode monitor's options)"))
    p.set_defaults(func=main)
    return p
