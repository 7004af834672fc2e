"""The host tools' one MQTT client: one set of broker options for every command that talks
to a broker (check, monitor, report, deploy --wait-online, sim, ota, bridge, serve, the
benchmarks and the tests), and one way to open a paho-mqtt client with them.

    p = argparse.ArgumentParser(); add_broker_options(p)
    opts = BrokerOptions.from_args(p.parse_args())
    client = connect(opts, "streetnode-check")        # connected, loop running, or BrokerError

`--broker HOST[:PORT]` (the port defaults to 1883, 8883 with --tls), `--tls` with `--ca FILE`
(PEM or DER; the system's CAs without it), `--cert FILE --key FILE` where the broker wants a
client certificate, `--user USER`, `--password-file FILE` (its first line: a password is never
on the command line).
"""

import os
import ssl
import threading
import time

from streetnode.common.errors import Failure

DEFAULT_PORT = 1883
DEFAULT_TLS_PORT = 8883
EXIT_BROKER = 1


class BrokerError(Failure):
    """The broker cannot be reached, refuses us, or the broker options are wrong."""

    def __init__(self, message, code=EXIT_BROKER):
        super().__init__(message, code)


def parse_broker(text, tls=False):
    """'host', 'host:port', '[::1]:port' -> (host, port); the port defaults by TLS."""
    text = (text or "").strip()
    if not text:
        raise ValueError("--broker must be HOST or HOST:PORT, not %r" % text)
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
        if rest and not rest.startswith(":"):
            raise ValueError("--broker must be HOST or HOST:PORT, not %r" % text)
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        host, port = text, ""
    if not host:
        raise ValueError("--broker must be HOST or HOST:PORT, not %r" % text)
    if port == "":
        return host, DEFAULT_TLS_PORT if tls else DEFAULT_PORT
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("--broker must be HOST or HOST:PORT with a port from 1 to 65535, not %r" % text)
    return host, int(port)


def read_password(path):
    """The first line of a password file (so the password is not in the shell history)."""
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return f.readline().rstrip("\r\n")
    except OSError as e:
        raise ValueError("cannot read the password file %s: %s" % (path, e.strerror or e))


class BrokerOptions:
    """Where the broker is and how to talk to it."""

    def __init__(self, host, port=None, tls=False, ca=None, cert=None, key=None, user=None, password=None):
        self.host = host
        self.tls = bool(tls or ca or cert)
        self.port = port or (DEFAULT_TLS_PORT if self.tls else DEFAULT_PORT)
        self.ca = ca
        self.cert = cert
        self.key = key
        self.user = user
        self.password = password

    @classmethod
    def from_args(cls, args, required=True):
        """From add_broker_options' arguments; None when --broker was not given and not required."""
        text = getattr(args, "broker", None)
        if not text:
            if required:
                raise ValueError("--broker HOST[:PORT] is required")
            return None
        tls = bool(getattr(args, "tls", False) or getattr(args, "ca", None))
        host, port = parse_broker(text, tls)
        cert, key = getattr(args, "cert", None), getattr(args, "key", None)
        if bool(cert) != bool(key):
            raise ValueError("--cert and --key go together (the client certificate and its private key)")
        return cls(host, port, tls, getattr(args, "ca", None), cert, key,
                   getattr(args, "user", None), read_password(getattr(args, "password_file", None)))

    @property
    def address(self):
        return ("[%s]:%d" if ":" in self.host else "%s:%d") % (self.host, self.port)

    def __repr__(self):  # never the password
        return "BrokerOptions(%s%s%s)" % (self.address, ", tls" if self.tls else "", ", user=" + self.user if self.user else "")


def add_broker_options(parser, required=True, help_broker="the MQTT broker"):
    """The broker options every command that talks to a broker takes."""
    g = parser.add_argument_group("broker")
    g.add_argument("--broker", required=required, metavar="HOST[:PORT]",
                   help="%s (port default 1883, 8883 with --tls)" % help_broker)
    g.add_argument("--tls", action="store_true", help="connect with TLS (the system's CAs unless --ca)")
    g.add_argument("--ca", metavar="FILE", help="the broker's CA certificate, PEM or DER (turns TLS on)")
    g.add_argument("--cert", metavar="FILE", help="client certificate (PEM), where the broker asks for one")
    g.add_argument("--key", metavar="FILE", help="the client certificate's private key (PEM)")
    g.add_argument("--user", help="MQTT user name")
    g.add_argument("--password-file", metavar="FILE", help="file whose first line is the MQTT password")
    return g


def _ssl_context(opts):
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if opts.ca:
        try:
            data = open(opts.ca, "rb").read()
        except OSError as e:
            raise BrokerError("cannot read the CA file %s: %s" % (opts.ca, e.strerror or e))
        try:
            if b"-----BEGIN" in data:
                ctx.load_verify_locations(cadata=data.decode("ascii", "replace"))
            else:
                ctx.load_verify_locations(cadata=data)  # DER, as the nodes carry it
        except (ssl.SSLError, ValueError) as e:
            raise BrokerError("the CA file %s holds no usable certificate: %s" % (opts.ca, e))
    if opts.cert:
        try:
            ctx.load_cert_chain(opts.cert, opts.key)
        except (OSError, ssl.SSLError) as e:
            raise BrokerError("cannot load the client certificate %s: %s" % (opts.cert, e))
    return ctx


def new_client(opts, client_id=None, clean_session=True, manual_ack=False, will=None):
    """A paho-mqtt client set up for `opts` (TLS, credentials), not yet connected.
    client_id None: a unique one. will: (topic, payload, qos, retain)."""
    import paho.mqtt.client as paho

    cid = client_id or "streetnode-%d-%x" % (os.getpid(), id(opts) ^ int(time.time() * 1000) & 0xFFFFFF)
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=cid, clean_session=clean_session,
                         manual_ack=manual_ack)
    if opts.tls:
        client.tls_set_context(_ssl_context(opts))
    if opts.user:
        client.username_pw_set(opts.user, opts.password)
    if will:
        client.will_set(*will)
    client.reconnect_delay_set(0.2, 5)
    return client


def connect(opts, client_id=None, timeout=10.0, on_connect=None, on_message=None, subscribe=(), **kwargs):
    """A connected client with its network loop running: the topics in `subscribe` (QoS 1)
    are subscribed again on every reconnect, on_connect(client) called after that.
    Raises BrokerError with one line that names the broker."""
    client = new_client(opts, client_id, **kwargs)
    done = threading.Event()
    state = {"refused": None}

    def _on_connect(c, userdata, flags, rc, props=None):
        if rc.is_failure:
            state["refused"] = str(rc)
            done.set()
            return
        for t in subscribe:
            c.subscribe(t, qos=1)
        if on_connect:
            on_connect(c)
        done.set()

    client.on_connect = _on_connect
    if on_message:
        client.on_message = on_message
    try:
        client.connect(opts.host, opts.port, keepalive=30)
    except ssl.SSLError as e:
        raise BrokerError("TLS with the broker %s failed: %s" % (opts.address, e.reason or e))
    except OSError as e:
        raise BrokerError("cannot reach the broker %s: %s" % (opts.address, e.strerror or e))
    client.loop_start()
    if not done.wait(timeout):
        close(client)
        raise BrokerError("no answer from the broker %s within %.0f s" % (opts.address, timeout))
    if state["refused"] is not None:
        close(client)
        raise BrokerError("the broker %s refused the connection: %s" % (opts.address, state["refused"]))
    return client


def close(client):
    try:
        client.loop_stop()
        client.disconnect()
    except Exception:  # noqa: BLE001 - closing a dead connection must not hide the real error
        pass
