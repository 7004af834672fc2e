# The umqtt.simple backend of firmware/mqtt.py, for MicroPython (the boards and the unix
# port): the same interface as firmware/mqtt_paho.py's PahoBackend, so MQTTLink's
# resilience (firmware/mqtt.py) is written once. umqtt.simple 1.3.4 is used unchanged:
# this module hands it sockets with timeouts and translates its failures into OSError.

import socket as _socket

from umqtt import simple as _umqtt  # imports usocket: fails on CPython, as it should

from hal import clock

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


try:
    from errno import ECONNABORTED, ECONNREFUSED, ECONNRESET, EIO, ENOTCONN, ETIMEDOUT
except ImportError:  # a port without errno names: Linux/lwIP numbers
    EIO, ECONNABORTED, ECONNREFUSED, ECONNRESET, ENOTCONN, ETIMEDOUT = 5, 103, 111, 104, 107, 110

_CHECK_ROUNDS = const(8)  # packets read per check() at most, so poll() stays short
_MAX_READ = const(4096)  # the longest topic or payload we accept from the broker
_PID_MAX = const(65535)
_IPPROTO_TCP = const(6)  # the same numbers on Linux and lwIP; MicroPython's unix
_TCP_NODELAY = const(1)  # socket module does not name them


class _Sock:
    """What umqtt.simple gets as its socket: the real socket (TLS-wrapped when asked) with a
    timeout on every blocking call, connect included; the link call's deadline checked on
    every read and write; end of stream raised as OSError; and a count of reads (.rx)."""

    def __init__(self, be):
        self._be = be
        self._raw = _socket.socket()
        self._raw.settimeout(be.timeout_s)
        self._s = self._raw

    def connect(self, addr):
        self._due()
        self._raw.connect(addr)
        try:
            # umqtt sends a packet in several small writes; with Nagle's algorithm each QoS 1
            # publish then waits for the broker's delayed ACK: 44 ms instead of 0.08 ms each
            # on loopback (measured, 1.29 unix port). lwIP has the option too.
            self._raw.setsockopt(_IPPROTO_TCP, _TCP_NODELAY, 1)
        except OSError:  # a stack without it: slower, still correct
            pass
        ctx = self._be.tls_context()
        if ctx is not None:
            try:
                self._s = ctx.wrap_socket(self._raw, server_hostname=self._be.server_hostname)
            except ValueError as e:  # MicroPython's verdict on the broker's certificate
                raise OSError(ECONNABORTED, "TLS: broker certificate rejected: %s" % str(e).strip())

    def _due(self):
        if clock.ticks_diff(self._be.deadline, clock.ticks_ms()) <= 0:
            raise OSError(ETIMEDOUT, "MQTT call took longer than its timeout")

    def read(self, n):
        self._due()
        if n > _MAX_READ:
            # Nothing a node is sent is this long (a command is at most 2 KB): a hostile or
            # broken packet. Reading it would exhaust the heap; leave the connection instead
            # (with a clean session the broker forgets the packet).
            raise OSError(EIO, "incoming packet part of %d bytes is over the %d-byte limit" % (n, _MAX_READ))
        d = self._s.read(n)
        if d is None:  # non-blocking and nothing there (umqtt's check_msg)
            return None
        if len(d) < n:
            raise OSError(ECONNRESET, "broker closed the connection")
        self._be.rx += 1
        return d

    def write(self, buf, n=None):
        self._due()
        if n is None:
            n = len(buf)
            done = self._s.write(buf)
        else:
            done = self._s.write(buf, n)
        if done is None or done < n:
            raise OSError(ETIMEDOUT, "broker did not take our bytes in time")
        return done

    def setblocking(self, flag):
        # umqtt's check_msg switches to non-blocking and back with setblocking(True),
        # which would mean "no timeout" on a plain socket: restore the timeout instead.
        if flag:
            self._raw.settimeout(self._be.timeout_s)
        else:
            self._raw.setblocking(False)

    def close(self):
        self._s.close()


class _SocketModule:
    """Stands in for umqtt.simple's `socket` module during connect(): sockets with timeouts."""

    def __init__(self, be):
        self._be = be

    def socket(self, *args):
        return _Sock(self._be)

    def getaddrinfo(self, *args):
        return _socket.getaddrinfo(*args)


class UmqttBackend:
    """umqtt.simple 1.3.4, unchanged; we give it our sockets and translate its failures."""

    def __init__(self, timeout_s, ca_der=None, server_hostname=None):
        self.timeout_s = timeout_s
        self.deadline = 0
        self.rx = 0
        self.server_hostname = server_hostname
        self._ca_der = ca_der
        self._ctx = None
        self._c = None
        self._sockets = _SocketModule(self)

    def tls_context(self):
        if self._ca_der is None:
            return None
        if self._ctx is None:
            import ssl

            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.load_verify_locations(cadata=self._ca_der)  # DER only: PEM is refused
            ctx.verify_mode = ssl.CERT_REQUIRED  # MicroPython's default is CERT_NONE
            self._ctx = ctx
        return self._ctx

    def open(self, server, port, client_id, keepalive_s, clean, will_topic, will_payload, on_message):
        if self.server_hostname is None and self._ca_der is not None:
            self.server_hostname = server
        c = _umqtt.MQTTClient(
            client_id, server, port, user=getattr(self, "user", None), password=getattr(self, "password", None),
            keepalive=keepalive_s,
        )  # fmt: skip
        c.set_last_will(will_topic, will_payload, retain=True, qos=1)
        c.set_callback(on_message)
        self._c = c
        real = _umqtt.socket
        _umqtt.socket = self._sockets  # only for this connect: other umqtt users keep theirs
        try:
            c.connect(clean)
        except _umqtt.MQTTException as e:
            raise OSError(ECONNREFUSED, "broker refused the connection, CONNACK code %s" % e.args[0])
        except (AssertionError, IndexError) as e:
            raise OSError(EIO, "not an MQTT broker's answer: %r" % (e,))
        finally:
            _umqtt.socket = real

    def _client(self):
        c = self._c
        if c is None:
            raise OSError(ENOTCONN, "not connected")
        if c.pid >= _PID_MAX:  # umqtt 1.3.4 never wraps its packet id: do it for it
            c.pid = 0
        return c

    def publish(self, topic, payload, retain, qos):
        try:
            self._client().publish(topic, payload, retain, qos)
        except (AssertionError, IndexError, _umqtt.MQTTException) as e:
            raise OSError(EIO, "bad answer to PUBLISH: %r" % (e,))

    def subscribe(self, topic, qos):
        try:
            self._client().subscribe(topic, qos)
        except (AssertionError, IndexError, _umqtt.MQTTException) as e:
            raise OSError(EIO, "broker refused SUBSCRIBE to %s: %r" % (topic, e))

    def check(self):
        c = self._client()
        for _ in range(_CHECK_ROUNDS):
            before = self.rx
            try:
                op = c.check_msg()
            except (AssertionError, IndexError) as e:
                raise OSError(EIO, "bad packet from the broker: %r" % (e,))
            except MemoryError:  # the stream is desynchronised now: start a new session
                raise OSError(EIO, "no memory for a packet from the broker")
            if op is not None:  # a packet umqtt leaves to its caller: nothing we await now
                raise OSError(EIO, "unexpected packet 0x%02x from the broker" % op)
            if self.rx == before:  # nothing was waiting
                return

    def ping(self):
        self._client().ping()

    def abort(self):
        c, self._c = self._c, None
        if c is not None and c.sock is not None:
            try:
                c.sock.close()
            except OSError:  # already gone: nothing left to release
                pass

    def close(self):
        c, self._c = self._c, None
        if c is not None:
            try:
                c.disconnect()
            finally:
                c.sock.close()
