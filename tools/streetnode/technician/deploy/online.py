"""--wait-online: after the reset, wait on the broker for the node's live `online` status and
the first reading after it (common.mqtt, with the node's own broker settings unless the
command line says otherwise)."""

import json
import os
import threading
import time

from streetnode.common import mqtt
from streetnode.common.errors import EXIT_INPUT, EXIT_OFFLINE, Failure


def broker_options(args, cfg, data_files):
    """The broker to watch: the node's config (its brokers, TLS with its CA, its own MQTT user,
    whom provision's ACL lets read its topics), each part replaced by what the command line
    gives (--broker, --tls, --ca, --user, --password-file)."""
    m = cfg["mqtt"]
    ca = dict(data_files).get(m.get("ca")) if m.get("tls") else None
    hosts = [(h["host"], h["port"]) for h in m.get("hosts") or [{"host": m["host"], "port": m.get("port")}]]
    node = mqtt.BrokerOptions(m["host"], m.get("port"), m.get("tls"), user=m.get("user"), password=m.get("password"),
                              ca_data=ca, hosts=hosts)  # fmt: skip
    try:
        return mqtt.BrokerOptions.from_args(args, defaults=node)
    except ValueError as e:
        raise Failure(str(e), EXIT_INPUT)


class OnlineWatcher:
    """Subscribes to the node's status and data before the reset; after it, waits for a live
    (not retained) `online` and the first reading that follows."""

    def __init__(self, cfg, opts):
        self.where = opts.address
        base = "%s/%s/" % (cfg["mqtt"].get("prefix") or "streetnode", cfg["node_id"])
        self.topics = (base + "status", base + "data")
        self.lock = threading.Lock()
        self.armed = False
        self.status = None
        self.data = None
        try:
            self.client = mqtt.connect(opts, "streetnode-deploy-%d" % os.getpid(), on_message=self._on_message,
                                       subscribe=self.topics)  # fmt: skip
        except mqtt.BrokerError as e:
            raise Failure("--wait-online: %s" % e, EXIT_INPUT)

    def _on_message(self, client, userdata, msg):
        try:
            payload = json.loads(msg.payload)
        except ValueError:
            return
        with self.lock:
            if not self.armed or msg.retain:  # a retained status is the node before this deploy
                return
            if msg.topic == self.topics[0] and payload.get("state") == "online":
                self.status = payload
            elif msg.topic == self.topics[1] and self.status is not None and self.data is None:
                self.data = payload

    def arm(self):
        with self.lock:
            self.armed = True

    def wait(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if self.data is not None:
                    return self.status, self.data
            time.sleep(0.05)
        with self.lock:
            what = "its first reading" if self.status else "status online"
        raise Failure("deployed, but the node did not publish %s on %s within %gs: check its Wi-Fi and broker "
                      "settings, or watch its console with `mpremote connect PORT repl`" % (what, self.where, timeout),
                      EXIT_OFFLINE)  # fmt: skip

    def close(self):
        mqtt.close(self.client)
