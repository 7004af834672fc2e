# The paho-mqtt backend of firmware/mqtt.py, for CPython (the Raspberry Pi gateway, host
# tools): the same interface as UmqttBackend, so MQTTLink's resilience is written once.
# A module of its own so that the boards never compile or hold it.

import ssl as _ssl
from errno import ECONNABORTED, ECONNREFUSED, ECONNRESET, EIO, ENOTCONN, ETIMEDOUT

import paho.mqtt.client as _paho

from hal import clock

_CHECK_ROUNDS = 8  # packets read per check() at most, as in firmware/mqtt_umqtt.py
_KEEPALIVE_TIMEOUT = 141  # paho's reason code when its own keepalive check drops the link


class PahoBackend:
    """paho-mqtt 2.x driven synchronously (no background thread): loop() only inside our
    calls, each bounded by the deadline."""

    def __init__(self, timeout_s, ca_der=None, server_hostname=None):
        self.timeout_s = timeout_s
        self.deadline = 0
        self.rx = 0
        self._ca_der = ca_der
        self._server_hostname = server_hostname
        self._c = None
        self._connack = None
        self._gone = False
        self._why = ECONNRESET
        self._subacks = {}
        self.on_puback = None

    def _tls_context(self):
        name = self._server_hostname

        class _Context(_ssl.SSLContext):
            # paho names the server by the host it connects to; a gateway may connect by
            # address and verify a name.
            def wrap_socket(self, sock, server_hostname=None, **kw):
                return super().wrap_socket(sock, server_hostname=name or server_hostname, **kw)

        ctx = _Context(_ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(cadata=bytes(self._ca_der))  # the same DER file as the boards
        ctx.verify_mode = _ssl.CERT_REQUIRED
        return ctx

    def open(self, server, port, client_id, keepalive_s, clean, will_topic, will_payload, on_message):
        self.abort()
        c = _paho.Client(
            _paho.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean, protocol=_paho.MQTTv311
        )
        c.connect_timeout = self.timeout_s
        c.will_set(will_topic, will_payload, qos=1, retain=True)
        if getattr(self, "user", None):
            c.username_pw_set(self.user, getattr(self, "password", None))
        if self._ca_der is not None:
            c.tls_set_context(self._tls_context())
        self._on_message = on_message
        self._connack = None
        self._gone = False
        self._why = ECONNRESET
        self._subacks = {}
        c.on_connect = self._connected
        c.on_disconnect = self._disconnected
        c.on_message = self._message
        c.on_subscribe = self._subscribed
        c.on_publish = self._published
        c.on_log = self._log
        self._c = c
        try:
            c.connect(server, port, keepalive_s)  # OSError on failure
        except _ssl.SSLError as e:  # the same errno as on the boards for a rejected broker
            raise OSError(ECONNABORTED, "TLS: broker certificate rejected: %s" % (e,))
        except TimeoutError:  # socket.timeout carries no errno
            raise OSError(ETIMEDOUT, "no connection to %s:%s within %s s" % (server, port, self.timeout_s))
        self._wait(self._has_connack)
        if self._connack.is_failure:
            raise OSError(ECONNREFUSED, "broker refused the connection: %s" % self._connack)

    # paho callbacks (VERSION2 signatures)
    def _connected(self, client, userdata, flags, reason_code, properties):
        self._connack = reason_code

    def _disconnected(self, client, userdata, flags, reason_code, properties):
        self._gone = True
        if reason_code == _KEEPALIVE_TIMEOUT:  # paho's own keepalive check got there first
            self._why = ETIMEDOUT

    def _message(self, client, userdata, msg):
        self._on_message(msg.topic, msg.payload)

    def _subscribed(self, client, userdata, mid, reason_codes, properties):
        self._subacks[mid] = reason_codes

    def _published(self, client, userdata, mid, reason_code, properties):
        if self.on_puback is not None:
            self.on_puback(mid)

    def _log(self, client, userdata, level, buf):
        if buf.startswith("Received "):  # every packet from the broker is logged so
            self.rx += 1

    def _has_connack(self):
        return self._connack is not None

    def _wait(self, done):
        c = self._c
        while not done():
            if self._gone or c is None:
                raise OSError(self._why, "connection to the broker lost")
            left = clock.ticks_diff(self.deadline, clock.ticks_ms())
            if left <= 0:
                raise OSError(ETIMEDOUT, "no answer from the broker within the timeout")
            if c.loop(left / 1000) != _paho.MQTT_ERR_SUCCESS:
                raise OSError(self._why, "connection to the broker lost")

    def _client(self):
        if self._c is None or self._gone:
            raise OSError(ENOTCONN, "not connected")
        return self._c

    def publish(self, topic, payload, retain, qos):
        info = self._client().publish(topic, payload, qos, retain)
        if info.rc != _paho.MQTT_ERR_SUCCESS:
            raise OSError(ENOTCONN, "publish refused: %s" % _paho.error_string(info.rc))
        if qos:
            self._wait(info.is_published)

    def send(self, topic, payload, retain=False):
        """A QoS 1 publish whose PUBACK comes later (on_puback(mid)); returns its mid."""
        info = self._client().publish(topic, payload, 1, retain)
        if info.rc != _paho.MQTT_ERR_SUCCESS:
            raise OSError(ENOTCONN, "publish refused: %s" % _paho.error_string(info.rc))
        return info.mid

    def wait(self, ms):
        """Block up to ms for the broker (paho's own select), handling what arrives."""
        if self._client().loop(ms / 1000) != _paho.MQTT_ERR_SUCCESS or self._gone:
            raise OSError(self._why, "connection to the broker lost")

    def subscribe(self, topic, qos):
        rc, mid = self._client().subscribe(topic, qos)
        if rc != _paho.MQTT_ERR_SUCCESS:
            raise OSError(ENOTCONN, "subscribe refused: %s" % _paho.error_string(rc))
        self._wait(lambda: mid in self._subacks)
        codes = self._subacks.pop(mid)
        if any(rc.is_failure for rc in codes):
            raise OSError(EIO, "broker refused SUBSCRIBE to %s: %s" % (topic, codes))

    def check(self):
        c = self._client()
        for _ in range(_CHECK_ROUNDS):
            before = self.rx
            if c.loop(0) != _paho.MQTT_ERR_SUCCESS or self._gone:
                raise OSError(self._why, "connection to the broker lost")
            if self.rx == before:
                return

    def ping(self):
        # paho has no public ping; its own keepalive pings only after a full interval.
        if self._client()._send_pingreq() != _paho.MQTT_ERR_SUCCESS:
            raise OSError(ECONNRESET, "cannot send PINGREQ")

    def abort(self):
        c, self._c = self._c, None
        if c is not None:
            s = c.socket()
            if s is not None:
                s.close()
            c._reset_sockets()  # also paho's wake-up socket pair, or each reconnect leaks two fds

    def close(self):
        c = self._c
        if c is not None:
            c.disconnect()
            self._c = None
            c._reset_sockets()
