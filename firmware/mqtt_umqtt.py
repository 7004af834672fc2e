# The umqtt.simple backend of firmware/mqtt.py, for MicroPython (the boards and the unix
# port): the same interface as firmware/mqtt_paho.py's PahoBackend, so MQTTLink's
# resilience (firmware/mqtt.py) is written once. umqtt.simple 1.3.4 is used unchanged:
# this module hands it sockets with timeouts and translates its failures into OSError.

import select as _select
import socket as _socket

from umqtt import simple as _umqtt  # imports usocket: fails on CPython, as it should

from hal import clock

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


# errno values as constants (underscored: no module globals, no RAM on a board); MicroPython uses these
# Linux numbers on every port, lwIP's included.
_EIO = const(5)
_ECONNABORTED = const(103)
_ECONNRESET = const(104)
_ENOTCONN = const(107)
_ETIMEDOUT = const(110)
_ECONNREFUSED = const(111)

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
        self._blocking = True

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
                raise OSError(_ECONNABORTED, "TLS: broker certificate rejected: %s" % str(e).strip())

    def _due(self):
        if clock.ticks_diff(self._be.deadline, clock.ticks_ms()) <= 0:
            raise OSError(_ETIMEDOUT, "MQTT call took longer than its timeout")

    def read(self, n):
        self._due()
        if n > _MAX_READ:
            # Nothing a node is sent is this long (a command is at most 2 KB): a hostile or
            # broken packet. Reading it would exhaust the heap; leave the connection instead
            # (with a clean session the broker forgets the packet).
            raise OSError(_EIO, "incoming packet part of %d bytes is over the %d-byte limit" % (n, _MAX_READ))
        d = self._s.read(n)
        if d is None:  # non-blocking and nothing there (umqtt's check_msg)
            return None
        if len(d) < n:
            raise OSError(_ECONNRESET, "broker closed the connection")
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
            raise OSError(_ETIMEDOUT, "broker did not take our bytes in time")
        return done

    def setblocking(self, flag):
        # umqtt's check_msg switches to non-blocking and back with setblocking(True),
        # which would mean "no timeout" on a plain socket: restore the timeout instead.
        # umqtt calls setblocking(True) after every packet it reads: only a change costs
        # system calls (fcntl, setsockopt).
        if flag == self._blocking:
            return
        self._blocking = flag
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
    """umqtt.simple 1.3.4, unchanged; we give it our sockets and translate its failures.

    QoS 1 PUBLISH packets are written here (send()), not by umqtt's publish(), which waits
    for each PUBACK and swallows those of other packet ids: several may be in flight, and
    every PUBACK read (by check(), or while publish() waits for its own) is handed to
    on_puback(pid). Waiting for the broker is one select.poll on the socket (wait())."""

    def __init__(self, timeout_s, ca_der=None, server_hostname=None):
        self.timeout_s = timeout_s
        self.deadline = 0
        self.rx = 0
        self.on_puback = None
        self._poller = None
        # True once a check() found nothing waiting: only then does the socket's poll tell
        # the whole truth (TLS may hold bytes it already read; check() stops after
        # _CHECK_ROUNDS packets).
        self._quiet = False
        self._hdr = bytearray(5)  # a PUBLISH's fixed header: type and remaining length
        self._topic = None
        self._topic_block = None
        self._awaited = 0
        self.server_hostname = server_hostname
        self._name = server_hostname  # the name to verify; None: each broker's own host name
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
        if self._ca_der is not None:  # with a broker list, each broker is checked by its own name
            self.server_hostname = self._name or server
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
            raise OSError(_ECONNREFUSED, "broker refused the connection, CONNACK code %s" % e.args[0])
        except (AssertionError, IndexError) as e:
            raise OSError(_EIO, "not an MQTT broker's answer: %r" % (e,))
        finally:
            _umqtt.socket = real
        self._quiet = False
        p = _select.poll()
        p.register(c.sock._raw, _select.POLLIN)  # the raw socket: TLS sits on top of it
        self._poller = p

    def _client(self):
        c = self._c
        if c is None:
            raise OSError(_ENOTCONN, "not connected")
        if c.pid >= _PID_MAX:  # umqtt 1.3.4 never wraps its packet id: do it for it
            c.pid = 0
        return c

    def publish(self, topic, payload, retain, qos):
        c = self._client()
        if not qos:
            c.publish(topic, payload, retain, 0)
            return
        pid = self.send(topic, payload, retain)
        self._awaited = pid
        self._quiet = False
        try:
            while self._awaited:  # blocking reads, each bounded by the timeout and deadline
                self._packet(c.wait_msg())
        except (AssertionError, IndexError, _umqtt.MQTTException) as e:
            raise OSError(_EIO, "bad answer to PUBLISH: %r" % (e,))
        finally:
            self._awaited = 0

    def send(self, topic, payload, retain=False):
        """Write a QoS 1 PUBLISH and return its packet id; its PUBACK comes later."""
        c = self._client()
        pid = c.pid + 1
        c.pid = pid
        # The topic's length, its bytes and room for the packet id, kept for the topic sent
        # last (a backlog goes to one topic): a few dozen bytes, not a buffer per reading.
        t = self._topic_block
        if topic is not self._topic:
            b = topic.encode() if isinstance(topic, str) else bytes(topic)
            t = bytearray(len(b) + 4)
            t[0] = len(b) >> 8
            t[1] = len(b) & 0xFF
            t[2 : 2 + len(b)] = b
            self._topic = topic
            self._topic_block = t
        t[-2] = pid >> 8
        t[-1] = pid & 0xFF
        rem = len(t) + len(payload)
        h = self._hdr
        h[0] = 0x32 | (1 if retain else 0)
        i = 1
        while rem > 0x7F:
            h[i] = (rem & 0x7F) | 0x80
            rem >>= 7
            i += 1
        h[i] = rem
        s = c.sock
        s.write(h, i + 1)
        s.write(t)
        s.write(payload)
        return pid

    def _packet(self, op):
        # What umqtt's wait_msg leaves to us: PUBACKs (others it handles itself).
        if op is None:
            return
        if op != 0x40:
            raise OSError(_EIO, "unexpected packet 0x%02x from the broker" % op)
        d = self._c.sock.read(3)
        if d[0] != 2:
            raise OSError(_EIO, "bad PUBACK from the broker")
        pid = d[1] << 8 | d[2]
        if pid == self._awaited:
            self._awaited = 0
        elif self.on_puback is not None:
            self.on_puback(pid)

    def subscribe(self, topic, qos):
        try:
            self._client().subscribe(topic, qos)
        except (AssertionError, IndexError, _umqtt.MQTTException) as e:
            raise OSError(_EIO, "broker refused SUBSCRIBE to %s: %r" % (topic, e))

    def check(self):
        c = self._client()
        if self._quiet and not self._ready(0):
            return  # nothing arrived: not one call on the socket but the poll
        self._quiet = False
        for _ in range(_CHECK_ROUNDS):
            before = self.rx
            try:
                self._packet(c.check_msg())
            except (AssertionError, IndexError) as e:
                raise OSError(_EIO, "bad packet from the broker: %r" % (e,))
            except MemoryError:  # the stream is desynchronised now: start a new session
                raise OSError(_EIO, "no memory for a packet from the broker")
            if self.rx == before:  # nothing was waiting
                self._quiet = True
                return

    def _ready(self, ms):
        for _ in self._poller.ipoll(ms):  # ipoll: no list allocated
            return True
        return False

    def wait(self, ms):
        """Block up to ms in one poll on the socket; returns early when the broker sends."""
        self._client()
        if self._quiet:
            self._ready(ms)

    def ping(self):
        self._client().ping()

    def abort(self):
        self._poller = None
        c, self._c = self._c, None
        if c is not None and c.sock is not None:
            try:
                c.sock.close()
            except OSError:  # already gone: nothing left to release
                pass

    def close(self):
        self._poller = None
        c, self._c = self._c, None
        if c is not None:
            try:
                c.disconnect()
            finally:
                c.sock.close()
