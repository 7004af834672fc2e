"""The host tools' one MQTT client: one set of broker options for every command that talks
to a broker (check, monitor, report, deploy --wait-online, sim, ota, bridge, serve, the
benchmarks and the tests), and one way to open a paho-mqtt client with them.

    p = argparse.ArgumentParser(); add_broker_options(p)
    opts = BrokerOptions.from_args(p.parse_args())
    client = connect(opts, "streetnode-check", subscribe=["streetnode/+/status"], on_message=f)
    # connected and subscribed (SUBACK in), network loop running; or BrokerError

`connect(..., wait=False)` returns at once and keeps trying in the background (the sim's live
view: its broker may come up later). A Failure from here carries EXIT_FAILED, the code every
field command documents for "the broker could not be used" (deploy maps it to its own).

`--broker HOST[:PORT]` (the port defaults to 1883, 8883 with --tls), or several brokers of one
cluster or failover pair, `--broker HOST[:PORT],HOST[:PORT],...`, tried in order (a client that
cannot reach one, or loses it, goes on to the next; `streetnode sim` gives its nodes the list as
their mqtt.hosts), `--tls` with `--ca FILE`
(PEM or DER; the system's CAs without it), `--cert FILE --key FILE` where the broker wants a
client certificate, `--user USER`, `--password-file FILE` (its first line: a password is never
on the command line).

A password never goes in clear by accident: with --user but without TLS, port 8883 (MQTT over
TLS) is refused outright, and any host but a loopback one (127.0.0.0/8, ::1, localhost) needs
--allow-plaintext-password, said on purpose (e.g. a broker on a private VPN).
"""

import ipaddress
import os
import ssl
import threading
import time

from streetnode.common.errors import EXIT_FAILED, Failure, UsageError

DEFAULT_PORT = 1883
DEFAULT_TLS_PORT = 8883


class BrokerError(Failure):
    """The broker cannot be reached, refuses us, or the broker options are wrong (a Failure:
    a command that cares which, deploy, catches this one)."""

    def __init__(self, message, code=EXIT_FAILED):
        super().__init__(message, code)


_BAD_BROKER = "--broker must be HOST:PORT or HOST (port 1883, 8883 with TLS), not %r"
MAX_BROKERS = 8  # as a node's mqtt.hosts (firmware/config/schema.py)


def parse_broker(text, tls=False):
    """'host', 'host:port', '[::1]:port' -> (host, port); the port defaults by TLS."""
    text = (text or "").strip()
    if not text or "," in text:
        raise ValueError(_BAD_BROKER % text + (" (one broker here)" if "," in text else ""))
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
        if rest and not rest.startswith(":"):
            raise ValueError(_BAD_BROKER % text)
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        host, port = text, ""
    if not host or any(c in host for c in " /@") or text.endswith(":"):
        raise ValueError(_BAD_BROKER % text)
    if port == "":
        return host, DEFAULT_TLS_PORT if tls else DEFAULT_PORT
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(_BAD_BROKER % text + " (the port is a number from 1 to 65535)")
    return host, int(port)


def parse_brokers(text, tls=False):
    """'h1:p1,h2:p2,...' (one or more brokers, as parse_broker spells each) -> [(host, port)]."""
    parts = [p.strip() for p in (text or "").split(",")]
    if any(not p for p in parts):
        raise ValueError("--broker must be HOST[:PORT] or a list HOST[:PORT],HOST[:PORT],... without empty "
                         "entries, not %r" % (text or ""))  # fmt: skip
    if len(parts) > MAX_BROKERS:
        raise ValueError("--broker lists %d brokers: at most %d (a node's mqtt.hosts holds no more)" % (
            len(parts), MAX_BROKERS))  # fmt: skip
    out = []
    for p in parts:
        b = parse_broker(p, tls)
        if b in out:
            raise ValueError("--broker names %s twice" % _address(*b))
        out.append(b)
    return out


def _address(host, port):
    return ("[%s]:%d" if ":" in host else "%s:%d") % (host, port)


def read_password(path):
    """The first line of a password file (so the password is not in the shell history)."""
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return f.readline().rstrip("\r\n")
    except OSError as e:
        raise ValueError("cannot read the password file %s: %s" % (path, e.strerror or e))


def is_loopback(host):
    """True for localhost and the loopback addresses (127.0.0.0/8, ::1): traffic that never
    leaves this machine. A name that merely resolves there does not count."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_plaintext_password(opts):
    """Refuse options that would send a password in clear (ValueError naming the way out)."""
    if opts.tls or not opts.user:
        return
    for host, port in opts.hosts:  # every broker of a failover list
        address = _address(host, port)
        if port == DEFAULT_TLS_PORT:
            raise UsageError("port %d is MQTT over TLS: add --tls (and --ca FILE) or the password for %s would go to "
                             "%s in clear" % (DEFAULT_TLS_PORT, opts.user, address))
        if not is_loopback(host) and not opts.allow_plaintext_password:
            raise UsageError("the password for %s would cross the network in clear to %s: add --tls (and --ca FILE), "
                             "or --allow-plaintext-password if that network is trusted" % (opts.user, address))


class BrokerOptions:
    """Where the broker is and how to talk to it. ca: a CA file (PEM or DER); ca_data: the CA
    itself (PEM text or DER bytes, e.g. the one a node's config names). hosts: the brokers
    [(host, port), ...] tried in order (a port of None: the default); host and port are the first."""

    def __init__(self, host, port=None, tls=False, ca=None, cert=None, key=None, user=None, password=None,
                 ca_data=None, allow_plaintext_password=False, hosts=None):  # fmt: skip
        self.tls = bool(tls or ca or cert or ca_data)
        default = DEFAULT_TLS_PORT if self.tls else DEFAULT_PORT
        self.hosts = [(h, p or default) for h, p in hosts] if hosts else [(host, port or default)]
        self.host, self.port = self.hosts[0]
        self.ca, self.ca_data = ca, ca_data
        self.cert, self.key = cert, key  # a client certificate and its key go together
        self.user, self.password = user, password
        self.allow_plaintext_password = bool(allow_plaintext_password)

    @classmethod
    def from_args(cls, args, required=True, defaults=None):
        """From add_broker_options' arguments. What the command line leaves out comes from
        `defaults` (a BrokerOptions, e.g. the node's own broker settings); None when there is
        neither a --broker nor defaults and the broker is not required. Options that do not go
        together are a UsageError (exit 2); an unreadable password file a ValueError."""
        get = lambda name: getattr(args, name, None)  # noqa: E731
        d = defaults
        if not get("broker") and d is None:
            if required:
                raise UsageError("--broker HOST[:PORT] is required")
            if get("tls") or get("ca") or get("cert") or get("user") or get("password_file") or get(
                    "allow_plaintext_password"):
                raise UsageError("--tls, --ca, --cert, --user, --password-file and --allow-plaintext-password go with "
                                 "--broker")
            return None
        if bool(get("cert")) != bool(get("key")):
            raise UsageError("--cert and --key go together (the client certificate and its private key)")
        tls = bool(get("tls") or get("ca") or get("cert") or (d is not None and d.tls))
        if get("broker"):
            try:
                hosts = parse_brokers(get("broker"), tls)
            except ValueError as e:
                raise UsageError(str(e))
        else:
            hosts = [(h, p if d.tls == tls else None) for h, p in d.hosts]
        ca, ca_data = (get("ca"), None) if get("ca") else ((d.ca, d.ca_data) if d is not None else (None, None))
        cert, key = (get("cert"), get("key")) if get("cert") else ((d.cert, d.key) if d is not None else (None, None))
        if get("user"):
            user, password = get("user"), read_password(get("password_file"))
        elif get("password_file"):
            raise UsageError("--password-file goes with --user (MQTT sends no password alone)")
        else:
            user, password = (d.user, d.password) if d is not None else (None, None)
        allow = bool(get("allow_plaintext_password") or (d is not None and d.allow_plaintext_password))
        opts = cls(hosts[0][0], hosts[0][1], tls, ca, cert, key, user, password, ca_data, allow, hosts=hosts)
        check_plaintext_password(opts)
        return opts

    @property
    def address(self):
        """The first broker, "host:port"."""
        return _address(self.host, self.port)

    @property
    def addresses(self):
        """Every broker, "host:port,host:port" (as --broker takes them)."""
        return ",".join(_address(h, p) for h, p in self.hosts)

    def __repr__(self):  # never the password
        return "BrokerOptions(%s%s%s)" % (self.addresses, ", tls" if self.tls else "", ", user=" + self.user if self.user else "")


def add_broker_options(parser, required=True, help_broker="the MQTT broker"):
    """The broker options every command that talks to a broker takes."""
    g = parser.add_argument_group("broker")
    g.add_argument("--broker", required=required, metavar="HOST[:PORT][,...]",
                   help="%s (port default 1883, 8883 with --tls); several, comma-separated: brokers of one "
                        "cluster or failover pair, tried in order" % help_broker)
    g.add_argument("--tls", action="store_true", help="connect with TLS (the system's CAs unless --ca)")
    g.add_argument("--ca", metavar="FILE", help="the broker's CA certificate, PEM or DER (turns TLS on)")
    g.add_argument("--cert", metavar="FILE", help="client certificate (PEM), where the broker asks for one")
    g.add_argument("--key", metavar="FILE", help="the client certificate's private key (PEM)")
    g.add_argument("--user", help="MQTT user name")
    g.add_argument("--password-file", metavar="FILE", help="file whose first line is the MQTT password (with --user)")
    g.add_argument("--allow-plaintext-password", action="store_true",
                   help="send --user's password without TLS to a host that is not loopback (a trusted network only)")
    g.streetnode_broker_options = True  # how a test tells these options from look-alikes
    return g


def _load_ca(ctx, data, where):
    try:
        if isinstance(data, str) or b"-----BEGIN" in data:
            ctx.load_verify_locations(cadata=data if isinstance(data, str) else data.decode("ascii", "replace"))
        else:
            ctx.load_verify_locations(cadata=bytes(data))  # DER, as the nodes carry it
    except (ssl.SSLError, ValueError, TypeError) as e:
        raise BrokerError("the CA %s holds no usable certificate: %s" % (where, e))


def _ssl_context(opts):
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if opts.ca:
        try:
            with open(opts.ca, "rb") as f:
                data = f.read()
        except OSError as e:
            raise BrokerError("cannot read the CA file %s: %s" % (opts.ca, e.strerror or e))
        _load_ca(ctx, data, "file " + opts.ca)
    elif opts.ca_data:
        _load_ca(ctx, opts.ca_data, "certificate")
    if opts.cert:
        try:
            ctx.load_cert_chain(opts.cert, opts.key)
        except (OSError, ssl.SSLError) as e:
            raise BrokerError("cannot load the client certificate %s: %s" % (opts.cert, e))
    return ctx


def new_client(opts, client_id=None, clean_session=True, manual_ack=False, will=None, reconnect_max_s=5.0):
    """A paho-mqtt client set up for `opts` (TLS, credentials), not yet connected.
    client_id None: a unique one. will: (topic, payload, qos, retain)."""
    import paho.mqtt.client as paho

    cid = client_id or "streetnode-%d-%x" % (os.getpid(), (id(opts) ^ int(time.time() * 1000)) & 0xFFFFFF)
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=cid, clean_session=clean_session,
                         manual_ack=manual_ack)
    if opts.tls:
        client.tls_set_context(_ssl_context(opts))
    if opts.user:
        try:
            check_plaintext_password(opts)
        except ValueError as e:
            raise BrokerError(str(e))
        client.username_pw_set(opts.user, opts.password)
    if will:
        client.will_set(*will)
    client.reconnect_delay_set(min(0.2, reconnect_max_s), reconnect_max_s)
    return client


def connect(opts, client_id=None, timeout=10.0, on_connect=None, on_message=None, subscribe=(), qos=1,
            wait=True, keepalive=30, **kwargs):  # fmt: skip
    """A client with its network loop running. The topics in `subscribe` are subscribed
    (at `qos`) again on every reconnect, on_connect(client) called after that.
    wait True: returns once connected and the first subscriptions are acknowledged, or
    raises BrokerError with one line that names the broker. wait False: returns at once
    and keeps trying in the background (paho reconnects with a back-off).
    With several brokers (opts.hosts) each is tried in turn until one answers, and a client
    that later loses its broker, or cannot reach it, reconnects to the next one."""
    errors = []
    for i in range(len(opts.hosts) if wait else 1):
        try:
            return _connect(opts, i, client_id, timeout, on_connect, on_message, subscribe, qos, wait, keepalive,
                            kwargs)  # fmt: skip
        except BrokerError as e:
            errors.append(str(e))
    if len(errors) == 1:
        raise BrokerError(errors[0])
    raise BrokerError("none of the brokers %s could be used: %s" % (opts.addresses, "; ".join(errors)))


def _connect(opts, first, client_id, timeout, on_connect, on_message, subscribe, qos, wait, keepalive, kwargs):
    client = new_client(opts, client_id, **kwargs)
    done = threading.Event()
    host, port = opts.hosts[first]
    address = _address(host, port)
    state = {"refused": None, "pending": set(), "at": first}

    def _failover(c):
        # The broker in use failed us: paho's next (re)connection goes to the next one.
        if len(opts.hosts) > 1:
            state["at"] = (state["at"] + 1) % len(opts.hosts)
            # paho's host/port setters refuse while it is tearing the lost connection down; its
            # reconnect() reads these two (paho-mqtt 2.x, pinned in pyproject.toml).
            c._host, c._port = opts.hosts[state["at"]]

    def _on_connect(c, userdata, flags, rc, props=None):
        if rc.is_failure:
            state["refused"] = "refused the connection: %s" % rc
            done.set()
            return
        state["pending"] = {c.subscribe(t, qos=qos)[1] for t in subscribe}
        if on_connect:
            on_connect(c)
        if not state["pending"]:
            done.set()

    def _on_subscribe(c, userdata, mid, reason_codes, props=None):
        if any(getattr(r, "is_failure", False) for r in reason_codes) and not done.is_set():
            state["refused"] = "refused a subscription to %s (its ACL?)" % ", ".join(subscribe)
        state["pending"].discard(mid)
        if not state["pending"]:
            done.set()

    def _on_disconnect(c, userdata, flags, rc, props=None):
        if wait and not done.is_set():  # before the CONNACK: e.g. plain MQTT to a TLS listener
            state["refused"] = "closed the connection before answering (%s)" % (
                "does it want TLS: --tls, --ca?" if not opts.tls
                else "is the client certificate one it accepts?" if opts.cert
                else "does it want a client certificate, --cert and --key?")
            done.set()
        elif rc != 0:  # lost, not our own disconnect()
            _failover(c)

    client.on_connect = _on_connect
    client.on_subscribe = _on_subscribe
    client.on_disconnect = _on_disconnect
    client.on_connect_fail = lambda c, userdata: _failover(c)
    if on_message:
        client.on_message = on_message
    if not wait:
        client.connect_async(host, port, keepalive=keepalive)
        client.loop_start()
        return client
    try:
        client.connect(host, port, keepalive=keepalive)
    except ssl.SSLError as e:
        if isinstance(e, ssl.SSLCertVerificationError):
            why = "certificate verify failed: %s (is the CA the one that signed its certificate, and HOST its name?)" % (
                e.verify_message)
        else:
            why = str(e.reason or e)  # e.g. WRONG_VERSION_NUMBER: no TLS on that port
            if not opts.cert and "CERTIFICATE" in why.upper():
                why += " (does it want a client certificate, --cert and --key?)"
        raise BrokerError("TLS with the broker %s failed: %s" % (address, why))
    except OSError as e:
        raise BrokerError("cannot reach the broker %s: %s" % (address, e.strerror or e))
    client.loop_start()
    if not done.wait(timeout):
        close(client)
        raise BrokerError("no answer from the broker %s within %.0f s" % (address, timeout))
    if state["refused"] is not None:
        close(client)
        raise BrokerError("the broker %s %s" % (address, state["refused"]))
    return client


def close(client):
    """Disconnect (which wakes the network thread at once), then stop its loop."""
    try:
        client.disconnect()
        client.loop_stop()
    except Exception:  # noqa: BLE001 - closing a dead connection must not hide the real error
        pass
